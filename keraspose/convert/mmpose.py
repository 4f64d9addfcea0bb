"""Convert MMPose 1.x top-down models (config + checkpoint) into TopdownEstimators.

``from_mmpose(config, checkpoint)`` builds the Keras model described by an
MMPose model config (the ``model=dict(...)`` of an MMPose config file, as a
dict or a JSON file) and loads every weight and BatchNorm statistic of the
checkpoint into it. The mapping from MMPose's state-dict keys to keraspose
variables comes from the models themselves (each block's
``checkpoint_keys``), and it is checked both ways: a checkpoint key nobody
claims, a variable nobody fills, or a shape that differs is an error naming
it. Nothing is skipped silently.

The checkpoint is read with ``torch.load(..., weights_only=True)``: no code
inside it is executed.
"""

import json
import os
import warnings

import numpy as np

from keraspose.codecs import IntegralRegressionLabel, MSRAHeatmap, RegressionLabel, SimCCLabel, UDPHeatmap
from keraspose.convert.checkpoints import ConversionError  # one error class for every converter
from keraspose.models.cspnext import CSPNeXtBackbone
from keraspose.models.heads import GlobalAveragePooling, HeatmapHead, IntegralRegressionHead, RegressionHead, RLEHead
from keraspose.models.hrnet import HRNetBackbone
from keraspose.models.resnet import ResNetBackbone
from keraspose.models.rtmpose import RTMCCHead
from keraspose.models.topdown_estimator import TopdownEstimator
from keraspose.models.vit import FeatureMapProcessor, ViTBackbone

# BatchNorm buffers/parameters -> ConvBN variable names.
_BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def load_mmpose_config(config):
    """An MMPose model config as a dict (from a dict or a JSON file).

    Accepts the model dict itself or a whole config holding it under ``model``.
    """
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if path.endswith(".py"):
            raise ConversionError(
                f"{path}: MMPose .py configs are Python code and are not executed by keraspose. "
                "Dump the model dict to JSON with MMPose "
                "(`Config.fromfile(path).model` -> json.dump) and pass that file."
            )
        try:
            with open(path) as f:
                config = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"MMPose config not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ConversionError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConversionError(f"config must be a dict or a JSON file path, got {type(config).__name__}")
    if "model" in config and isinstance(config["model"], dict):
        config = config["model"]
    if config.get("type") != "TopdownPoseEstimator":
        raise ConversionError(
            f"only MMPose TopdownPoseEstimator models can be converted; config type is {config.get('type')!r}"
        )
    return config


def _build_codec(cfg):
    kind = cfg.get("type")
    if kind == "MSRAHeatmap":
        return MSRAHeatmap(
            input_size=tuple(cfg["input_size"]), heatmap_size=tuple(cfg["heatmap_size"]),
            sigma=cfg["sigma"], unbiased=cfg.get("unbiased", False),
            blur_kernel_size=cfg.get("blur_kernel_size", 11),
        )
    if kind == "UDPHeatmap":
        return UDPHeatmap(
            input_size=tuple(cfg["input_size"]), heatmap_size=tuple(cfg["heatmap_size"]),
            heatmap_type=cfg.get("heatmap_type", "gaussian"), sigma=cfg.get("sigma", 2.0),
            radius_factor=cfg.get("radius_factor", 0.0546875), blur_kernel_size=cfg.get("blur_kernel_size", 11),
        )
    if kind == "IntegralRegressionLabel":
        return IntegralRegressionLabel(
            input_size=tuple(cfg["input_size"]), heatmap_size=tuple(cfg["heatmap_size"]), sigma=cfg["sigma"],
            unbiased=cfg.get("unbiased", False), blur_kernel_size=cfg.get("blur_kernel_size", 11),
            normalize=cfg.get("normalize", True),
        )
    if kind == "RegressionLabel":
        return RegressionLabel(input_size=tuple(cfg["input_size"]))
    if kind == "SimCCLabel":
        known = {"type", "input_size", "smoothing_type", "sigma", "simcc_split_ratio", "label_smooth_weight",
                 "normalize", "use_dark", "decode_visibility", "decode_beta"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConversionError(f"SimCCLabel options {unknown} are not supported")
        return SimCCLabel(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k != "type"})
    raise ConversionError(
        f"codec {kind!r} is not supported yet (supported: MSRAHeatmap, UDPHeatmap, SimCCLabel, RegressionLabel)"
    )


def _build_backbone(cfg):
    kind = cfg.get("type")
    if kind == "HRNet":
        return HRNetBackbone(cfg["extra"], in_channels=cfg.get("in_channels", 3), name="backbone")
    if kind == "ResNet":
        out_indices = cfg.get("out_indices", (3,))
        if isinstance(out_indices, int):
            out_indices = (out_indices,)
        if cfg.get("deep_stem") or cfg.get("avg_down") or cfg.get("style", "pytorch") != "pytorch":
            raise ConversionError("ResNet with deep_stem, avg_down or caffe style is not supported yet")
        return ResNetBackbone(
            cfg.get("depth", 50), in_channels=cfg.get("in_channels", 3),
            stem_channels=cfg.get("stem_channels", 64), base_channels=cfg.get("base_channels", 64),
            out_indices=out_indices, name="backbone",
        )
    if kind in ("CSPNeXt", "mmdet.CSPNeXt"):
        norm = cfg.get("norm_cfg") or {"type": "BN"}
        act = cfg.get("act_cfg") or {"type": "SiLU"}
        if norm.get("type") not in ("BN", "SyncBN", "BN2d") or act.get("type") not in ("SiLU", "Swish"):
            raise ConversionError(f"CSPNeXt with norm {norm} / act {act} is not supported (BN or SyncBN, SiLU)")
        out_indices = cfg.get("out_indices", (2, 3, 4))
        if isinstance(out_indices, int):
            out_indices = (out_indices,)
        return CSPNeXtBackbone(
            arch=cfg.get("arch", "P5"), deepen_factor=cfg.get("deepen_factor", 1.0),
            widen_factor=cfg.get("widen_factor", 1.0), out_indices=tuple(out_indices),
            use_depthwise=cfg.get("use_depthwise", False), expand_ratio=cfg.get("expand_ratio", 0.5),
            channel_attention=cfg.get("channel_attention", True),
            spp_kernel_sizes=tuple(cfg.get("spp_kernal_sizes", cfg.get("spp_kernel_sizes", (5, 9, 13)))),
            epsilon=float(norm.get("eps", 1e-5)), momentum=float(norm.get("momentum", 0.1)), name="backbone",
        )
    if kind in ("mmpretrain.VisionTransformer", "VisionTransformer"):
        return _build_vit_backbone(cfg)
    raise ConversionError(
        f"backbone {kind!r} is not supported yet (supported: HRNet, ResNet, CSPNeXt, mmpretrain.VisionTransformer)"
    )


def _build_vit_backbone(cfg):
    """ViTPose's backbone: mmpretrain's VisionTransformer with a feature-map output and no class token."""
    if cfg.get("with_cls_token", True) or cfg.get("out_type", "cls_token") != "featmap":
        raise ConversionError(
            "mmpretrain.VisionTransformer is supported as ViTPose uses it: with_cls_token=False, out_type='featmap' "
            f"(got with_cls_token={cfg.get('with_cls_token', True)}, out_type={cfg.get('out_type', 'cls_token')!r})"
        )
    unsupported = {"pre_norm": False, "layer_scale_init_value": 0.0, "frozen_stages": -1, "interpolate_mode": "bicubic"}
    for key, default in unsupported.items():
        if cfg.get(key, default) != default:
            raise ConversionError(f"mmpretrain.VisionTransformer with {key}={cfg[key]!r} is not supported")
    out_indices = cfg.get("out_indices", -1)
    if out_indices not in (-1, [-1], (-1,)):
        raise ConversionError(f"mmpretrain.VisionTransformer: only the last layer's output is supported, got out_indices={out_indices}")
    norm = cfg.get("norm_cfg") or {"type": "LN", "eps": 1e-6}
    if norm.get("type") != "LN":
        raise ConversionError(f"mmpretrain.VisionTransformer with norm {norm} is not supported (LN)")
    patch_cfg = dict(cfg.get("patch_cfg") or {})
    padding = patch_cfg.pop("padding", "corner")
    if not isinstance(padding, int) or patch_cfg:
        raise ConversionError(
            f"mmpretrain.VisionTransformer patch_cfg {cfg.get('patch_cfg')} is not supported (an integer padding only)"
        )
    arch = cfg.get("arch", "base")
    sizes = {}
    if isinstance(arch, dict):
        sizes = {k: arch[k] for k in ("embed_dims", "num_layers", "num_heads", "feedforward_channels")}
        arch = None
    elif str(arch).lower() not in ("b", "base", "l", "large", "h", "huge"):
        # mmpretrain's own 'small' is 768 wide, 8 deep: not ViTPose-S (a custom dict).
        raise ConversionError(f"mmpretrain.VisionTransformer arch {arch!r} is not supported (base, large, huge or a dict)")
    img_size = cfg.get("img_size", 224)
    return ViTBackbone(
        arch=str(arch).lower() if arch else None, **sizes,
        img_size=tuple(img_size) if isinstance(img_size, (list, tuple)) else (img_size, img_size),
        patch_size=cfg.get("patch_size", 16), patch_padding=padding, in_channels=cfg.get("in_channels", 3),
        qkv_bias=cfg.get("qkv_bias", True), drop_rate=cfg.get("drop_rate", 0.0),
        drop_path_rate=cfg.get("drop_path_rate", 0.0), layer_norm_epsilon=float(norm.get("eps", 1e-5)),
        final_norm=cfg.get("final_norm", True), name="backbone",
    )


def _build_rtmcc_head(cfg):
    codec_cfg = cfg.get("decoder") or cfg.get("encoder")
    return RTMCCHead(
        out_channels=cfg["out_channels"], input_size=tuple(cfg["input_size"]),
        in_featuremap_size=tuple(cfg["in_featuremap_size"]), simcc_split_ratio=cfg.get("simcc_split_ratio", 2.0),
        final_layer_kernel_size=cfg.get("final_layer_kernel_size", 1), gau_cfg=cfg.get("gau_cfg"),
        codec=_build_codec(codec_cfg) if codec_cfg else None, loss=_build_loss(cfg.get("loss"), "KLDiscretLoss"),
        name="head",
    )


def _build_regression_head(cfg):
    kind = cfg["type"]
    codec_cfg = cfg.get("decoder") or cfg.get("encoder")
    cls = RLEHead if kind == "RLEHead" else RegressionHead
    return cls(
        num_joints=cfg["num_joints"], codec=_build_codec(codec_cfg) if codec_cfg else None,
        loss=_build_loss(cfg.get("loss"), "RLELoss" if kind == "RLEHead" else "SmoothL1Loss"), name="head",
    )


def _build_integral_head(cfg):
    codec_cfg = cfg.get("decoder") or cfg.get("encoder")
    final = cfg.get("final_layer", {"kernel_size": 1})
    if final is None:
        raise ConversionError("IntegralRegressionHead with final_layer=None is not supported")
    return IntegralRegressionHead(
        num_joints=cfg["num_joints"], in_featuremap_size=tuple(cfg["in_featuremap_size"]),
        debias=cfg.get("debias", False), beta=cfg.get("beta", 1.0),
        deconv_out_channels=cfg.get("deconv_out_channels", (256, 256, 256)),
        deconv_kernel_sizes=cfg.get("deconv_kernel_sizes", (4, 4, 4)),
        conv_out_channels=cfg.get("conv_out_channels"), conv_kernel_sizes=cfg.get("conv_kernel_sizes"),
        final_kernel_size=final.get("kernel_size", 1),
        codec=_build_codec(codec_cfg) if codec_cfg else None, loss=_build_loss(cfg.get("loss"), "SmoothL1Loss"),
        name="head",
    )


def _build_head(cfg):
    kind = cfg.get("type")
    if kind == "IntegralRegressionHead":
        return _build_integral_head(cfg)
    if kind == "RTMCCHead":
        return _build_rtmcc_head(cfg)
    if kind in ("RegressionHead", "RLEHead"):
        return _build_regression_head(cfg)
    if kind != "HeatmapHead":
        raise ConversionError(
            f"head {kind!r} is not supported yet (supported: HeatmapHead, RTMCCHead, RegressionHead, RLEHead, "
            "IntegralRegressionHead)"
        )
    codec_cfg = cfg.get("decoder") or cfg.get("encoder")
    final = cfg.get("final_layer", {"kernel_size": 1})
    if final is None:
        raise ConversionError("HeatmapHead with final_layer=None is not supported")
    if final.get("padding", (final.get("kernel_size", 1) - 1) // 2) != (final.get("kernel_size", 1) - 1) // 2:
        raise ConversionError(f"HeatmapHead final_layer {final} is not supported (padding must keep the size)")
    # MMPose's defaults; its kernel sizes are ignored when there is no deconv.
    deconv_channels = cfg.get("deconv_out_channels", (256, 256, 256))
    deconv_kernels = cfg.get("deconv_kernel_sizes", (4, 4, 4)) if deconv_channels else None
    return HeatmapHead(
        out_channels=cfg["out_channels"],
        deconv_out_channels=deconv_channels,
        deconv_kernel_sizes=deconv_kernels,
        conv_out_channels=cfg.get("conv_out_channels"),
        conv_kernel_sizes=cfg.get("conv_kernel_sizes"),
        final_kernel_size=final.get("kernel_size", 1),
        codec=_build_codec(codec_cfg) if codec_cfg else None,
        loss=_build_loss(cfg.get("loss")),
        name="head",
    )


def _build_loss(cfg, default="KeypointMSELoss"):
    """The head's training loss: KeypointMSELoss or KLDiscretLoss."""
    from keraspose.losses import KeypointMSELoss, KLDiscretLoss, RLELoss, SmoothL1Loss

    defaults = {"KeypointMSELoss": lambda: KeypointMSELoss(use_target_weight=True), "KLDiscretLoss": KLDiscretLoss,
                "RLELoss": lambda: RLELoss(use_target_weight=True), "SmoothL1Loss": lambda: SmoothL1Loss(use_target_weight=True)}
    if cfg is None:  # MMPose's head defaults
        return defaults[default]()
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    others = {"RLELoss": (RLELoss, {"use_target_weight", "size_average", "residual", "q_distribution"}),
              "SmoothL1Loss": (SmoothL1Loss, {"use_target_weight", "loss_weight"})}
    if kind in others:
        cls, known = others[kind]
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConversionError(f"{kind} options {unknown} are not supported")
        return cls(**cfg)
    if kind == "KLDiscretLoss":
        unknown = sorted(set(cfg) - {"beta", "label_softmax", "label_beta", "use_target_weight", "mask", "mask_weight"})
        if unknown:
            raise ConversionError(f"KLDiscretLoss options {unknown} are not supported")
        return KLDiscretLoss(**cfg)
    if kind != "KeypointMSELoss":
        # Inference does not need the loss: convert, but say what fine-tuning would use.
        warnings.warn(
            f"the MMPose head's loss {kind!r} is not implemented in keraspose; the converted model "
            "trains with KeypointMSELoss(use_target_weight=True) unless you pass another loss to its head",
            stacklevel=3,
        )
        return KeypointMSELoss(use_target_weight=True)
    unknown = sorted(set(cfg) - {"use_target_weight", "loss_weight", "skip_empty_channel"})
    if unknown or cfg.get("skip_empty_channel"):
        warnings.warn(f"KeypointMSELoss options {unknown or ['skip_empty_channel']} are ignored by keraspose", stacklevel=3)
    return KeypointMSELoss(use_target_weight=cfg.get("use_target_weight", False), loss_weight=cfg.get("loss_weight", 1.0))


def _build_neck(cfg):
    kind = cfg.get("type")
    if kind == "GlobalAveragePooling":
        return GlobalAveragePooling(name="neck")
    if kind == "FeatureMapProcessor":
        unknown = sorted(set(cfg) - {"type", "scale_factor", "apply_relu", "align_corners", "select_index", "concat"})
        if unknown or cfg.get("align_corners") or cfg.get("concat") or cfg.get("select_index") is not None:
            raise ConversionError(
                f"FeatureMapProcessor {cfg} is not supported (scale_factor and apply_relu only, align_corners=False)"
            )
        return FeatureMapProcessor(
            scale_factor=cfg.get("scale_factor", 1.0), apply_relu=cfg.get("apply_relu", False), name="neck"
        )
    raise ConversionError(
        f"neck {kind!r} is not supported yet (supported: GlobalAveragePooling, FeatureMapProcessor)"
    )


def build_from_mmpose_config(config, metainfo=None):
    """An (unweighted, built) TopdownEstimator from an MMPose model config."""
    cfg = load_mmpose_config(config)
    neck = None
    if cfg.get("neck"):
        neck = _build_neck(cfg["neck"])
    head = _build_head(cfg["head"])
    if metainfo is None:
        if head.out_channels != 17:
            raise ConversionError(
                f"the head predicts {head.out_channels} keypoints; pass metainfo=... "
                "(a built-in name, a metainfo JSON file or a DatasetMetainfo) for that keypoint set"
            )
        metainfo = "coco"
    pre = cfg.get("data_preprocessor", {})
    test_cfg = cfg.get("test_cfg", {}) or {}
    codec = head.codec
    # MMPose's test_cfg defaults: flip_mode 'heatmap' and no shift for heatmap
    # heads; SimCC heads have neither.
    is_heatmap = isinstance(head, HeatmapHead)
    if isinstance(head, RegressionHead):
        # Coordinate heads: the flip test's shift is MMPose's shift_coords (default on).
        test_cfg = {**test_cfg, "shift_heatmap": test_cfg.get("shift_coords", True)}
    model = TopdownEstimator(
        backbone=_build_backbone(cfg["backbone"]),
        neck=neck,
        head=head,
        metainfo=metainfo,
        input_size=tuple(codec.input_size) if codec is not None else (192, 256),
        mean=pre.get("mean", (0.0, 0.0, 0.0)),
        std=pre.get("std", (1.0, 1.0, 1.0)),
        # bgr_to_rgb=True: MMPose converts its BGR images to RGB before
        # normalising, so the network (and mean/std) is in RGB order.
        channel_order="rgb" if pre.get("bgr_to_rgb", False) else "bgr",
        flip_test=test_cfg.get("flip_test", False),
        flip_mode=test_cfg.get("flip_mode", "heatmap") if is_heatmap else test_cfg.get("flip_mode"),
        shift_heatmap=test_cfg.get("shift_heatmap", False) if is_heatmap else test_cfg.get("shift_heatmap"),
    )
    model.build()
    return model


def checkpoint_mapping(model):
    """``{mmpose key: (keras variable, kind)}`` for every tensor a checkpoint holds.

    ``kind`` is ``"conv"`` (OIHW -> HWIO transpose), ``"linear"`` ((out, in)
    -> (in, out)), ``"vector"`` or ``"counter"`` (``num_batches_tracked``,
    which has no Keras counterpart).
    """
    mapping = {}
    for part, prefix in ((model.backbone, "backbone"), (model.head, "head")):
        if hasattr(part, "checkpoint_tensors"):  # linear layers and loose parameters (RTMCCHead)
            for key, variable, kind in part.checkpoint_tensors(prefix):
                mapping[key] = (variable, kind)
    entries = list(model.backbone.checkpoint_keys("backbone")) + list(model.head.checkpoint_keys("head"))
    for layer, conv_key, bn_key in entries:
        mapping[f"{conv_key}.weight"] = (layer.kernel, "conv")
        if layer.bias is not None:
            mapping[f"{conv_key}.bias"] = (layer.bias, "vector")
        if layer.norm:
            if bn_key is None:
                raise ConversionError(f"{layer.name}: has a BatchNorm but no checkpoint key for it")
            for field, attr in _BN_FIELDS.items():
                mapping[f"{bn_key}.{field}"] = (getattr(layer, attr), "vector")
            mapping[f"{bn_key}.num_batches_tracked"] = (None, "counter")
    return mapping


def _expected_shape(variable, kind):
    shape = tuple(variable.shape)
    if kind == "conv":  # Keras (kh, kw, a, b) <- PyTorch (b, a, kh, kw)
        return (shape[3], shape[2], shape[0], shape[1])
    if kind == "linear":  # Keras Dense (in, out) <- PyTorch Linear (out, in)
        return (shape[1], shape[0])
    return shape


def check_checkpoint_shapes(model, shapes):
    """Compare a checkpoint's ``{key: shape}`` with the model; raise listing every problem."""
    mapping = checkpoint_mapping(model)
    missing = sorted(k for k in mapping if k not in shapes)
    unexpected = sorted(k for k in shapes if k not in mapping)
    mismatched = []
    for key, (variable, kind) in mapping.items():
        if key in shapes and variable is not None:
            want = _expected_shape(variable, kind)
            got = tuple(shapes[key])
            if got != want:
                mismatched.append(f"{key}: checkpoint {list(got)} vs model {list(want)}")
    problems = []
    if missing:
        problems.append(f"{len(missing)} keys the model needs are not in the checkpoint: {missing[:10]}")
    if unexpected:
        problems.append(f"{len(unexpected)} checkpoint keys have no place in the model: {unexpected[:10]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shapes differ: {mismatched[:10]}")
    if problems:
        raise ConversionError(
            "the checkpoint does not match the model built from the config (is it the config "
            "this checkpoint was trained with?):\n  " + "\n  ".join(problems)
        )
    return mapping


def load_mmpose_state_dict(checkpoint):
    """The ``state_dict`` of an MMPose ``.pth`` as numpy arrays, read safely."""
    import torch

    path = os.fspath(checkpoint)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, not a checkpoint, pickled code...
        raise ConversionError(
            f"{path}: cannot read as a PyTorch checkpoint with weights_only=True ({type(e).__name__}: {e})"
        ) from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: no state_dict found in the checkpoint")
    out = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        # MMPose 0.x named the head keypoint_head.
        if key.startswith("keypoint_head."):
            key = "head." + key[len("keypoint_head."):]
        if key.startswith("data_preprocessor."):
            continue
        out[key] = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return out


def load_mmpose_weights(model, state_dict):
    """Copy an MMPose state dict (numpy) into a built TopdownEstimator."""
    mapping = check_checkpoint_shapes(model, {k: v.shape for k, v in state_dict.items()})
    for key, (variable, kind) in mapping.items():
        if variable is None:
            continue
        value = state_dict[key].astype(np.float32)
        if kind == "conv":
            value = value.transpose(2, 3, 1, 0)
        elif kind == "linear":
            value = value.T
        variable.assign(value)
    return model


def from_mmpose(config, checkpoint, metainfo=None):
    """A TopdownEstimator with the weights of an MMPose checkpoint.

    Args:
        config: MMPose model config: a dict, or a JSON file of it.
        checkpoint: path to the MMPose ``.pth`` (``{'meta', 'state_dict'}``).
        metainfo: keypoint set; defaults to COCO for 17-keypoint heads.

    Example:
    >>> from keraspose.convert import from_mmpose
    >>> model = from_mmpose("tiny_hrnet_coco_config.json", "tiny_hrnet_coco.pth")  # doctest: +SKIP
    """
    model = build_from_mmpose_config(config, metainfo=metainfo)
    return load_mmpose_weights(model, load_mmpose_state_dict(checkpoint))


# ---------------------------------------------------------------------------
# Catalogue converter protocol (keraspose.presets.registry)
# ---------------------------------------------------------------------------
def build_catalogue_entry(entry):
    """The (unweighted, built) TopdownEstimator of a catalogue entry with an embedded ``mmpose_model``."""
    if not isinstance(entry.get("mmpose_model"), dict):
        raise ConversionError(f"catalogue entry {entry.get('name')!r} has no mmpose_model to build from")
    return build_from_mmpose_config(entry["mmpose_model"], metainfo=entry.get("dataset"))


def convert_catalogue_entry(entry, checkpoint):
    """The TopdownEstimator of a catalogue entry with the weights of its downloaded MMPose checkpoint."""
    config = entry.get("mmpose_model") or entry.get("mmpose_config")
    return from_mmpose(config, checkpoint, metainfo=entry.get("dataset"))
