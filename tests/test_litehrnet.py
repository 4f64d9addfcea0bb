"""Lite-HRNet backbone: MMPose's parameter counts, config round trip, layouts.

Numerical parity of the NAIVE path against a real trained model is in
test_ncnn_convert.py (PP-TinyPose).
"""

import json

import keras
import numpy as np
import pytest

from keraspose import backend
from keraspose.models.litehrnet import LiteHRNetBackbone, litehrnet_extra, tinypose_extra

# Parameter counts (model.parameters(), i.e. without BatchNorm running
# statistics) of mmpose.models.backbones.LiteHRNet built with these extras,
# computed with MMPose 1.3.2. Lite-HRNet-18 is the `extra` of
# td-hm_litehrnet-18_8xb64-210e_coco-256x192.py.
MMPOSE_NUM_PARAMETERS = {
    "litehrnet_18": 1_130_072,
    # Same extra with module_type NAIVE: PP-TinyPose's "wider naive" net before BatchNorm folding.
    "wider_naive": 1_317_928,
}
# BatchNorm running_mean + running_var elements in those MMPose models.
MMPOSE_NUM_BN_STATS = {"litehrnet_18": 32_400, "wider_naive": 36_896}

EXTRAS = {"litehrnet_18": litehrnet_extra(18), "wider_naive": tinypose_extra()}


def _small_lite_extra():
    """Lite-HRNet-18 with one module and one block per stage: every layer type, built fast."""
    extra = litehrnet_extra(18)
    extra["stages_spec"]["num_modules"] = [1, 1, 1]
    extra["stages_spec"]["num_blocks"] = [1, 1, 1]
    return extra


def _zeros(h, w, data_format=None):
    df = backend.resolve_data_format(data_format)
    return np.zeros((1, 3, h, w) if df == "channels_first" else (1, h, w, 3), "float32")


def _randomize(model, seed=0):
    """Random weights, positive variances: a wrong path through any layer shows in the output."""
    rng = np.random.default_rng(seed)
    values = []
    for v in model.weights:
        a = rng.normal(0.0, 0.3, v.shape).astype("float32")
        if "variance" in v.name:
            a = np.abs(a) + 0.5
        values.append(a)
    model.set_weights(values)


def _to_nhwc(x, data_format):
    x = keras.ops.convert_to_numpy(x)
    return x.transpose(0, 2, 3, 1) if data_format == "channels_first" else x


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_parameter_count_matches_mmpose(name):
    net = LiteHRNetBackbone(EXTRAS[name])
    (feat,) = net(_zeros(64, 64))  # 64x64 is the smallest input whose 4 branches all exist
    trainable = sum(int(np.prod(v.shape)) for v in net.trainable_weights)
    stats = sum(int(np.prod(v.shape)) for v in net.non_trainable_weights)
    assert trainable == MMPOSE_NUM_PARAMETERS[name]
    assert stats == MMPOSE_NUM_BN_STATS[name]
    assert _to_nhwc(feat, net.data_format).shape == (1, 16, 16, 40)


def test_folded_variant_has_biases_and_no_batchnorm():
    net = LiteHRNetBackbone(tinypose_extra(), norm=False)
    net(_zeros(64, 64))
    assert not net.non_trainable_weights
    # Folding turns each conv's BatchNorm (gamma, beta) into one bias vector.
    per_bn = (MMPOSE_NUM_PARAMETERS["wider_naive"] - sum(int(np.prod(v.shape)) for v in net.trainable_weights))
    assert per_bn * 2 == MMPOSE_NUM_BN_STATS["wider_naive"]


def test_config_round_trip_gives_same_outputs():
    net = LiteHRNetBackbone(_small_lite_extra(), name="backbone")
    x = _zeros(64, 64) + np.random.default_rng(1).normal(size=_zeros(64, 64).shape).astype("float32")
    net(x)
    _randomize(net)
    config = net.get_config()
    assert config["data_format"] is None  # backend-neutral: resolved at build time
    config = json.loads(json.dumps(config))
    clone = LiteHRNetBackbone.from_config(config)
    clone(x)
    clone.set_weights(net.get_weights())
    with backend.inference_mode():
        a = keras.ops.convert_to_numpy(net(x)[0])
        b = keras.ops.convert_to_numpy(clone(x)[0])
    assert np.abs(a).max() > 1e-3  # random weights give a non-trivial output
    np.testing.assert_array_equal(a, b)

    # Through Keras' own serialization too (registered class).
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(net))
    assert isinstance(again, LiteHRNetBackbone) and again.get_config() == net.get_config()


@pytest.mark.skipif(backend.BACKEND != "torch", reason="TensorFlow's CPU kernels are channels-last only")
def test_channels_first_and_last_agree():
    """The LITE path (cross-resolution and spatial weighting) does not depend on the layout."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 64, 96, 3)).astype("float32")
    nets = {}
    for df in ("channels_last", "channels_first"):
        nets[df] = LiteHRNetBackbone(_small_lite_extra(), data_format=df)
        nets[df](_zeros(64, 96, df))
    _randomize(nets["channels_last"])
    nets["channels_first"].set_weights(nets["channels_last"].get_weights())
    with backend.inference_mode():
        a = _to_nhwc(nets["channels_last"](x)[0], "channels_last")
        b = _to_nhwc(nets["channels_first"](x.transpose(0, 3, 1, 2))[0], "channels_first")
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_bad_extra_is_a_clear_error():
    extra = litehrnet_extra(18)
    del extra["stages_spec"]
    with pytest.raises(ValueError, match="stages_spec"):
        LiteHRNetBackbone(extra)
    extra = litehrnet_extra(18)
    extra["stages_spec"]["module_type"] = ["LITE", "LITE", "FANCY"]
    with pytest.raises(ValueError, match="FANCY"):
        LiteHRNetBackbone(extra)
