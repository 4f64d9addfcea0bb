"""CSPNeXt backbone: sizes and names as MMDetection 3.3.0's ``CSPNeXt``.

Numerical parity with MMDetection is tested through the whole detector in
test_rtmdet.py (nano: depthwise blocks; m: plain convs, SPP, attention).
"""

import keras
import numpy as np
import pytest

from keraspose import CSPNeXtBackbone
from keraspose.models.cspnext import CSPLayer, CSPNeXtBlock, DepthwiseSeparableConvBN

# sum(p.numel() for p in CSPNeXt(deepen, widen).parameters()) and the number of
# nn.Conv2d modules, measured with MMDetection 3.3.0 in the reference venv.
MMDET_SIZES = {
    "tiny": (0.167, 0.375, 2_348_700, 37),
    "s": (0.33, 0.5, 4_378_320, 43),
    "m": (0.67, 0.75, 12_279_432, 61),
    "l": (1.0, 1.0, 26_138_912, 79),
}


def _count(layer):
    return sum(int(np.prod(v.shape)) for v in layer.trainable_weights)


@pytest.mark.parametrize("size", list(MMDET_SIZES))
def test_parameter_counts_equal_mmdetection(size):
    deepen, widen, params, convs = MMDET_SIZES[size]
    backbone = CSPNeXtBackbone(deepen_factor=deepen, widen_factor=widen, data_format="channels_last")
    outs = backbone(np.zeros((1, 64, 64, 3), "float32"))
    assert _count(backbone) == params
    assert len(backbone.checkpoint_keys()) == convs
    assert [o.shape[-1] for o in outs] == backbone.out_channels == [int(c * widen) for c in (256, 512, 1024)]
    assert [o.shape[1] for o in outs] == [8, 4, 2]


def test_checkpoint_keys_use_mmdetection_names():
    backbone = CSPNeXtBackbone(deepen_factor=0.33, widen_factor=0.25, use_depthwise=True)
    keys = {conv: bn for _, conv, bn in backbone.checkpoint_keys()}
    assert keys["backbone.stem.0.conv"] == "backbone.stem.0.bn"
    assert keys["backbone.stage1.0.depthwise_conv.conv"] == "backbone.stage1.0.depthwise_conv.bn"
    assert keys["backbone.stage2.1.blocks.0.conv1.pointwise_conv.conv"] == "backbone.stage2.1.blocks.0.conv1.pointwise_conv.bn"
    assert keys["backbone.stage4.1.conv1.conv"] == "backbone.stage4.1.conv1.bn"  # SPP
    assert keys["backbone.stage4.2.attention.fc"] is None
    assert keys["backbone.stage4.2.final_conv.conv"] == "backbone.stage4.2.final_conv.bn"
    folded = CSPNeXtBackbone(deepen_factor=0.33, widen_factor=0.25, use_depthwise=True, norm=False)
    assert all(bn is None for _, _, bn in folded.checkpoint_keys())
    assert len(folded.checkpoint_keys()) == len(keys)


def _randomise(layer, seed):
    rs = np.random.RandomState(seed)
    for v in layer.weights:
        if v.name == "moving_variance":
            v.assign(rs.uniform(0.5, 2.0, v.shape))
        elif v.name == "kernel":
            fan_in = np.prod(v.shape[:-1])
            v.assign(rs.standard_normal(v.shape) * np.sqrt(2.0 / fan_in))
        else:
            v.assign(rs.uniform(-0.3, 0.3, v.shape) + (1.0 if v.name == "gamma" else 0.0))


def test_folded_weights_give_the_same_features():
    """A BN-folded checkpoint (norm=False, conv + bias) computes what conv + BN did."""
    kwargs = dict(deepen_factor=0.33, widen_factor=0.25, use_depthwise=True, data_format="channels_last")
    x = np.random.RandomState(0).standard_normal((1, 64, 96, 3)).astype("float32")
    bn_model = CSPNeXtBackbone(**kwargs)
    bn_model(x)
    _randomise(bn_model, 1)
    folded = CSPNeXtBackbone(norm=False, **kwargs)
    folded(x)
    for (a, _, bn), (b, _, _) in zip(bn_model.checkpoint_keys(), folded.checkpoint_keys()):
        kernel = keras.ops.convert_to_numpy(a.kernel)
        if bn is None:
            b.kernel.assign(kernel)
            b.bias.assign(keras.ops.convert_to_numpy(a.bias))
            continue
        gamma, beta, mean, var = (keras.ops.convert_to_numpy(w) for w in (a.gamma, a.beta, a.moving_mean, a.moving_variance))
        scale = gamma / np.sqrt(var + a.epsilon)
        b.kernel.assign(kernel * scale)
        b.bias.assign(beta - mean * scale)
    for u, v in zip(bn_model(x), folded(x)):
        u, v = keras.ops.convert_to_numpy(u), keras.ops.convert_to_numpy(v)
        assert np.abs(u).max() > 0.05
        np.testing.assert_allclose(u, v, atol=1e-4 * np.abs(u).max())


@pytest.mark.skipif(keras.config.backend() != "torch", reason="channels_first is the torch layout")
def test_channels_first_matches_channels_last():
    kwargs = dict(deepen_factor=0.33, widen_factor=0.25)
    x = np.random.RandomState(0).standard_normal((1, 64, 64, 3)).astype("float32")
    last = CSPNeXtBackbone(data_format="channels_last", **kwargs)
    first = CSPNeXtBackbone(data_format="channels_first", **kwargs)
    last(x)
    first(np.transpose(x, (0, 3, 1, 2)))
    _randomise(last, 2)
    for a, b in zip(last.weights, first.weights):
        b.assign(a)
    outs_first = first(np.transpose(x, (0, 3, 1, 2)))
    for u, v in zip(last(x), outs_first):
        u = keras.ops.convert_to_numpy(u)
        v = np.transpose(keras.ops.convert_to_numpy(v), (0, 2, 3, 1))
        np.testing.assert_allclose(u, v, atol=1e-4 * np.abs(u).max())


def test_config_round_trip_and_out_indices():
    backbone = CSPNeXtBackbone(arch="P6", deepen_factor=0.33, widen_factor=0.25, out_indices=(0, 5), norm=False)
    again = CSPNeXtBackbone.from_config(backbone.get_config())
    assert again.get_config() == backbone.get_config()
    outs = again(np.zeros((1, 128, 128, 3), "float32") if again.data_format == "channels_last" else np.zeros((1, 3, 128, 128), "float32"))
    assert again.out_channels == [16, 256] and len(outs) == 2
    for layer in (CSPLayer(8, 8, channel_attention=True), CSPNeXtBlock(8, 8, use_depthwise=True), DepthwiseSeparableConvBN(8, 4, 5)):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch must be one of"):
        CSPNeXtBackbone(arch="P7")
    with pytest.raises(ValueError, match=r"out_indices \[5\] out of range"):
        CSPNeXtBackbone(out_indices=(2, 5))
