"""A shared set of checks for every public keraspose model class (keras-hub's ``run_backbone_test`` idea).

Each backbone, neck, head and model class gets one small :class:`ModelSpec`
below: how to build a tiny instance in a given layout, a batch of inputs, and
a ``keras.Model`` to put the layer in for a preset round trip. The checks in
``tests/test_harness.py`` then run every spec through the same checks:

* ``get_config``/``from_config`` round trip: same config, same outputs;
* channels-first and channels-last instances with the same weights agree;
* BatchNorm: moving statistics change in training mode only, and inference
  with BatchNorm folded into the convolutions equals the unfolded
  conv -> BatchNorm -> activation (computed here, independently of the folding);
* save/load preset round trip (``save_to_preset``/``from_preset``);
* a batch of B gives the B single-sample outputs (eager and compiled).

Which classes must have a spec is read from keraspose's own exports (the
``__all__`` of every package under ``keraspose.models`` and of ``keraspose``):
every ``keras.Model`` subclass and every layer named ``...Backbone``,
``...Neck``, ``...FPN`` or ``...Head``. A new family that exports such a
class fails ``test_every_public_model_class_has_a_spec`` until it adds a spec
here (usually five lines).
"""

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Callable, Optional

import keras
import numpy as np
from keras import ops

import keraspose
import keraspose.models
from keraspose import backend
from keraspose.layers import ConvBN
from keraspose.models.cspnext import CSPNeXtBackbone
from keraspose.models.heads import HeatmapHead
from keraspose.models.heads.regression_head import GlobalAveragePooling, IntegralRegressionHead, RegressionHead, RLEHead
from keraspose.models.hrnet import HRNetBackbone
from keraspose.models.litehrnet import IterativeHead, LiteHRNetBackbone
from keraspose.models.resnet import ResNetBackbone
from keraspose.models.rtmdet import CSPNeXtPAFPN, RTMDetector, RTMDetSepBNHead
from keraspose.models.rtmpose import RTMCCHead
from keraspose.models.topdown_estimator import TopdownEstimator
from keraspose.models.vit import ViTBackbone

ROLE_SUFFIXES = ("Backbone", "Neck", "FPN", "Head")


def public_model_classes():
    """Names of the exported backbone/neck/head/model classes, from ``__all__`` of keraspose and its model packages."""
    modules = [keraspose]
    for info in pkgutil.iter_modules(keraspose.models.__path__, "keraspose.models."):
        modules.append(importlib.import_module(info.name))
    found = {}
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if not inspect.isclass(obj) or not issubclass(obj, keras.layers.Layer):
                continue
            if issubclass(obj, keras.Model) or name.endswith(ROLE_SUFFIXES):
                found[name] = obj
    return found


@dataclasses.dataclass
class ModelSpec:
    """How the harness builds and feeds one class.

    make: ``data_format -> instance`` (``None``: the backend's layout).
    inputs: ``(batch, rng) -> numpy input`` in channels-last layout (an
        image batch, or a list of feature maps); the harness transposes it
        for a channels-first instance (models always take channels-last).
    as_model: ``(instance, data_format) -> keras.Model`` holding the layer,
        for the preset round trip; ``None`` for a model class itself.
    has_batchnorm: ``False`` for the heads without BatchNorm (the fully
        connected and SimCC heads): their training-mode call must then equal
        the inference-mode one instead.
    """

    name: str
    cls: type
    make: Callable
    inputs: Callable
    as_model: Optional[Callable] = None
    has_batchnorm: bool = True

    @property
    def is_model(self):
        return issubclass(self.cls, keras.Model)


def _image(h, w):
    return lambda batch, rng: rng.standard_normal((batch, h, w, 3)).astype("float32")


def _features(*shapes):
    """Feature maps (h, w, c), finest first."""
    return lambda batch, rng: [rng.standard_normal((batch, h, w, c)).astype("float32") for h, w, c in shapes]


def _pooled(c):
    """A pooled feature ``(B, C)`` (what GlobalAveragePooling gives the fully connected heads)."""
    return lambda batch, rng: [rng.standard_normal((batch, c)).astype("float32")]


def _tiny_hrnet_extra(multiscale_output=False):
    def stage(branches, block, channels):
        return {"num_modules": 1, "num_branches": branches, "block": block,
                "num_blocks": [1] * branches, "num_channels": channels}

    return {
        "stage1": stage(1, "BOTTLENECK", [8]),
        "stage2": stage(2, "BASIC", [4, 8]),
        "stage3": stage(3, "BASIC", [4, 8, 16]),
        "stage4": {**stage(4, "BASIC", [4, 8, 16, 32]), "multiscale_output": multiscale_output},
    }


def _tiny_litehrnet_extra():
    return {
        "stem": {"stem_channels": 8, "out_channels": 8, "expand_ratio": 1},
        "num_stages": 2,
        "stages_spec": {
            "num_modules": [1, 1], "num_branches": [2, 3], "num_blocks": [1, 1],
            "module_type": ["LITE", "NAIVE"], "with_fuse": [True, True], "reduce_ratios": [2, 2],
            "num_channels": [[8, 16], [8, 16, 32]],
        },
        "with_head": True,
    }


def _tiny_cspnext(df, depthwise=False):
    return CSPNeXtBackbone(deepen_factor=0.33, widen_factor=0.125, use_depthwise=depthwise, data_format=df)


def _tiny_pafpn(df, depthwise=False):
    return CSPNeXtPAFPN([32, 64, 128], 16, num_csp_blocks=1, use_depthwise=depthwise, data_format=df)


def _tiny_rtmdet_head(df, depthwise=False):
    return RTMDetSepBNHead(
        1, 16, 16, strides=(8, 16, 32), share_conv=not depthwise, use_depthwise=depthwise,
        exp_on_reg=not depthwise, data_format=df,
    )


def _tiny_resnet(df):
    return ResNetBackbone(18, stem_channels=8, base_channels=4, data_format=df)


def _tiny_heatmap_head(df):
    return HeatmapHead(17, deconv_out_channels=[8, 8], deconv_kernel_sizes=[4, 3], conv_out_channels=[8],
                       conv_kernel_sizes=[3], data_format=df)


def _tiny_rtmcc_head(df):
    # For the 2x2 map of the tiny ResNet on a 64x64 crop.
    return RTMCCHead(17, (64, 64), (2, 2), gau_cfg=dict(hidden_dims=16, s=8), data_format=df)


def _tiny_integral_head(df):
    return IntegralRegressionHead(17, (2, 2), deconv_out_channels=(8,), deconv_kernel_sizes=(4,), data_format=df)


def _pooled_pose_model(head, df):
    return _pose_model(_tiny_resnet(df), df, head=head, neck=GlobalAveragePooling(data_format=df))


def _pose_model(backbone, df, head=None, neck=None, size=(64, 64)):
    head = head if head is not None else HeatmapHead(17, conv_out_channels=[8], data_format=df)
    model = TopdownEstimator(backbone, head, neck=neck, input_size=size, flip_test=False)
    model.build()
    return model


def _detector(df, backbone=None, neck=None, head=None, depthwise=False):
    model = RTMDetector(
        backbone if backbone is not None else _tiny_cspnext(df, depthwise),
        neck if neck is not None else _tiny_pafpn(df, depthwise),
        head if head is not None else _tiny_rtmdet_head(df, depthwise),
        input_size=(64, 64), class_names=("person",),
    )
    model.build()
    return model


SPECS = [
    ModelSpec("HRNetBackbone", HRNetBackbone, lambda df: HRNetBackbone(_tiny_hrnet_extra(), stem_channels=8, data_format=df),
              _image(64, 64), lambda m, df: _pose_model(m, df)),
    # Lite-HRNet's refinement layer ("head" by MMPose's name); in a model, as the neck of a multi-scale HRNet.
    ModelSpec("IterativeHead", IterativeHead, lambda df: IterativeHead([4, 8, 16, 32], data_format=df),
              _features((16, 16, 4), (8, 8, 8), (4, 4, 16), (2, 2, 32)),
              lambda m, df: _pose_model(
                  HRNetBackbone(_tiny_hrnet_extra(multiscale_output=True), stem_channels=8, data_format=df), df, neck=m)),
    ModelSpec("ViTBackbone", ViTBackbone,
              lambda df: ViTBackbone(arch=None, embed_dims=32, num_layers=2, num_heads=2, img_size=(64, 64), data_format=df),
              _image(64, 64), lambda m, df: _pose_model(m, df), has_batchnorm=False),
    ModelSpec("ResNetBackbone", ResNetBackbone, _tiny_resnet, _image(64, 64), lambda m, df: _pose_model(m, df)),
    ModelSpec("LiteHRNetBackbone", LiteHRNetBackbone, lambda df: LiteHRNetBackbone(_tiny_litehrnet_extra(), data_format=df),
              _image(64, 64), lambda m, df: _pose_model(m, df)),
    ModelSpec("CSPNeXtBackbone", CSPNeXtBackbone, _tiny_cspnext, _image(64, 64),
              lambda m, df: _detector(df, backbone=m)),
    ModelSpec("CSPNeXtBackbone-depthwise", CSPNeXtBackbone, lambda df: _tiny_cspnext(df, True), _image(64, 64),
              lambda m, df: _detector(df, backbone=m, depthwise=True)),
    ModelSpec("CSPNeXtPAFPN", CSPNeXtPAFPN, _tiny_pafpn, _features((8, 8, 32), (4, 4, 64), (2, 2, 128)),
              lambda m, df: _detector(df, neck=m)),
    ModelSpec("HeatmapHead", HeatmapHead, _tiny_heatmap_head, _features((2, 2, 32)),
              lambda m, df: _pose_model(_tiny_resnet(df), df, head=m)),
    ModelSpec("RTMCCHead", RTMCCHead, _tiny_rtmcc_head, _features((2, 2, 32)),
              lambda m, df: _pose_model(_tiny_resnet(df), df, head=m), has_batchnorm=False),
    ModelSpec("RegressionHead", RegressionHead, lambda df: RegressionHead(17, data_format=df), _pooled(32),
              _pooled_pose_model, has_batchnorm=False),
    ModelSpec("RLEHead", RLEHead, lambda df: RLEHead(17, data_format=df), _pooled(32), _pooled_pose_model,
              has_batchnorm=False),
    ModelSpec("IntegralRegressionHead", IntegralRegressionHead, _tiny_integral_head, _features((2, 2, 32)),
              lambda m, df: _pose_model(_tiny_resnet(df), df, head=m)),
    ModelSpec("RTMDetSepBNHead", RTMDetSepBNHead, _tiny_rtmdet_head, _features((8, 8, 16), (4, 4, 16), (2, 2, 16)),
              lambda m, df: _detector(df, head=m)),
    ModelSpec("RTMDetSepBNHead-depthwise", RTMDetSepBNHead, lambda df: _tiny_rtmdet_head(df, True),
              _features((8, 8, 16), (4, 4, 16), (2, 2, 16)), lambda m, df: _detector(df, head=m, depthwise=True)),
    ModelSpec("TopdownEstimator", TopdownEstimator,
              lambda df: _pose_model(_tiny_resnet(df), df, head=_tiny_heatmap_head(df)), _image(64, 64)),
    ModelSpec("RTMDetector", RTMDetector, lambda df: _detector(df), _image(64, 64)),
]
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


# --------------------------------------------------------------------------
# Running an instance
# --------------------------------------------------------------------------


def _layout(x, data_format):
    """Channels-last numpy input(s) -> the instance's layout."""
    if isinstance(x, list):
        return [_layout(v, data_format) for v in x]
    if data_format == "channels_first" and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def flatten_outputs(out, data_format="channels_last"):
    """Any output structure (tensor, list, tuple, dict) -> a list of channels-last numpy arrays."""
    if isinstance(out, dict):
        return [a for key in sorted(out) for a in flatten_outputs(out[key], data_format)]
    if isinstance(out, (list, tuple)):
        return [a for v in out for a in flatten_outputs(v, data_format)]
    a = ops.convert_to_numpy(out)
    if data_format == "channels_first" and a.ndim == 4:
        a = a.transpose(0, 2, 3, 1)
    return [a]


def data_format_of(spec, instance):
    """Layout of the instance's inputs and outputs (models take and give channels-last)."""
    return "channels_last" if spec.is_model else instance.data_format


def run(spec, instance, x_nhwc, training=False):
    """One call; outputs as a flat list of channels-last numpy arrays."""
    df = data_format_of(spec, instance)
    x = _layout(x_nhwc, df)
    if isinstance(x, list):
        x = [ops.convert_to_tensor(v) for v in x]
    else:
        x = ops.convert_to_tensor(x)
    if training:
        out = instance(x, training=True)
    else:
        with backend.inference_mode():
            out = instance(x, training=False)
    return flatten_outputs(out, df)


def build(spec, data_format=None, rng=None, seed=0):
    """A built instance with non-trivial BatchNorm statistics and biases (seeded: the same weights every run)."""
    keras.utils.set_random_seed(seed)
    instance = spec.make(data_format)
    if not spec.is_model:
        run(spec, instance, spec.inputs(1, np.random.default_rng(0)))
    randomise_batchnorm(instance, rng if rng is not None else np.random.default_rng(1))
    return instance


def randomise_batchnorm(instance, rng):
    """Moving statistics, gammas, betas and biases away from their (trivial) initial values."""
    for v in instance.weights:
        name = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        if name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("moving_mean", "beta", "bias"):
            value = rng.standard_normal(shape) * 0.2
        else:
            continue
        v.assign(value.astype("float32"))


def copy_weights(src, dst):
    src_weights = src.weights
    dst_weights = dst.weights
    assert [tuple(v.shape) for v in src_weights] == [tuple(v.shape) for v in dst_weights]
    for s, d in zip(src_weights, dst_weights):
        d.assign(ops.convert_to_numpy(s))


def max_rel_err(got, expected):
    """max |got - expected| / max |expected| over all outputs (each output on its own scale)."""
    assert len(got) == len(expected)
    errs = []
    for a, b in zip(got, expected):
        assert a.shape == b.shape, (a.shape, b.shape)
        errs.append(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)))
    return max(errs)


def moving_statistics(instance):
    return {v.path: ops.convert_to_numpy(v).copy() for v in instance.non_trainable_weights
            if v.path.endswith(("moving_mean", "moving_variance"))}


# --------------------------------------------------------------------------
# The unfolded reference for ConvBN's inference
# --------------------------------------------------------------------------

_folded_call = ConvBN.call


def unfolded_conv_bn_call(self, inputs, training=None):
    """conv (raw kernel and bias) -> BatchNorm with the moving statistics -> activation, step by step."""
    if self.norm and training and self.trainable:
        return _folded_call(self, inputs, training=training)
    y = self._conv(inputs, backend.to_native_conv_kernel(ops.convert_to_tensor(self.kernel)), self.bias)
    if self.norm:
        shape = (1, -1, 1, 1) if self.data_format == "channels_first" else (-1,)

        def per_channel(v):
            return ops.reshape(ops.convert_to_tensor(v), shape)

        y = (y - per_channel(self.moving_mean)) / ops.sqrt(per_channel(self.moving_variance) + self.epsilon)
        y = y * per_channel(self.gamma) + per_channel(self.beta)
    if self.activation is not None:
        y = self.activation(y)
    return y
