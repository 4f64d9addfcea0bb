"""Convert MMDetection 3.x RTMDet detectors (config + checkpoint) into RTMDetectors.

``from_mmdet(config, checkpoint)`` builds the :class:`keraspose.RTMDetector`
an MMDetection config describes (CSPNeXt backbone, CSPNeXtPAFPN neck,
RTMDetSepBNHead) and loads every weight and BatchNorm statistic of the
checkpoint into it. The mapping from MMDetection's state-dict names to
keraspose variables comes from the model (``RTMDetector.checkpoint_keys()``)
and is checked both ways: a checkpoint key nothing claims, a variable
nothing fills, or a shape that differs is a :class:`ConversionError` naming
the key (and both shapes). A kernel MMDetection shares across pyramid levels
(``share_conv=True``) is listed under every level's name in a checkpoint;
those copies must agree.

The config is MMDetection's ``model`` dict as JSON (``.py`` configs are code
and are never executed here), optionally wrapped with the parts of the
whole config that matter at test time::

    {"model": {...}, "test_pipeline": [{"type": "Resize", ...}, {"type": "Pad", ...}],
     "classes": ["person"]}

From it the detector takes: the data preprocessor's ``mean``/``std`` and
``bgr_to_rgb`` (channel order); the test pipeline's ``Resize``/``Pad`` size
(the input size) and ``Pad`` value; ``test_cfg``'s ``score_thr``,
``nms_pre``, ``nms.iou_threshold``, ``max_per_img`` and ``min_bbox_size``.

The checkpoint is read with ``torch.load(..., weights_only=True)``.

Example:
>>> from keraspose.convert.mmdet import from_mmdet
>>> detector = from_mmdet("rtmdet_m_person.json", "rtmdet_m_person.pth")  # doctest: +SKIP
>>> detector.predict("street.jpg").boxes  # doctest: +SKIP
"""

import json
import os
import warnings

from keraspose.convert.checkpoints import ConversionError, check_and_load, conv_bn_mapping, read_state_dict

__all__ = ["ConversionError", "load_mmdet_config", "build_from_mmdet_config", "load_mmdet_weights", "from_mmdet",
           "build_catalogue_entry", "convert_catalogue_entry"]

_DUMP_HOWTO = (
    "Dump the config to JSON with MMEngine, e.g.\n"
    "    python -c \"from mmengine import Config; import json; c = Config.fromfile('CONFIG.py'); "
    "json.dump({'model': c.model.to_dict(), 'test_pipeline': c.test_pipeline, "
    "'classes': list(c.test_dataloader.dataset.get('metainfo', {}).get('classes', []))}, "
    "open('config.json', 'w'))\"\nand pass that file."
)
# MMDetection's defaults where a config leaves a field out.
_DEFAULT_NORM = {"type": "BN", "momentum": 0.03, "eps": 0.001}
_PYTORCH_BN = {"momentum": 0.1, "eps": 1e-5}


def _rtmdet_classes():
    try:
        from keraspose.models.rtmdet import COCO_CLASSES, CSPNeXtPAFPN, RTMDetector, RTMDetSepBNHead
        from keraspose.models.cspnext import CSPNeXtBackbone
    except ImportError as err:  # pragma: no cover - only on a build without the detector
        raise ConversionError(f"this keraspose has no RTMDetector ({err}); upgrade keraspose") from err
    return RTMDetector, CSPNeXtBackbone, CSPNeXtPAFPN, RTMDetSepBNHead, COCO_CLASSES


def load_mmdet_config(config):
    """``(model dict, test pipeline list or None, class names or None)`` from a dict or a JSON file.

    Accepts the model dict itself, or a whole config holding it under
    ``model`` (with ``test_pipeline`` or ``test_dataloader.dataset.pipeline``
    and class names under ``classes`` or ``test_dataloader.dataset.metainfo.classes``).
    """
    where = "config"
    if isinstance(config, (str, os.PathLike)):
        path = where = os.fspath(config)
        if path.endswith(".py"):
            raise ConversionError(
                f"{path}: MMDetection .py configs are Python code and are not executed by keraspose. "
                + _DUMP_HOWTO
            )
        try:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"MMDetection config not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConversionError(f"{path} is not valid JSON: {err}. " + _DUMP_HOWTO) from None
    if not isinstance(config, dict):
        raise ConversionError(f"config must be a dict or a JSON file path, got {type(config).__name__}")
    pipeline = config.get("test_pipeline")
    classes = config.get("classes")
    loader = config.get("test_dataloader")
    dataset = (loader.get("dataset") or {}) if isinstance(loader, dict) else {}
    if pipeline is None:
        pipeline = dataset.get("pipeline")
    if classes is None:
        classes = (dataset.get("metainfo") or {}).get("classes")
    model = config["model"] if isinstance(config.get("model"), dict) else config
    if model.get("type") != "RTMDet":
        raise ConversionError(
            f"{where}: only MMDetection RTMDet detectors can be converted; the model type is {model.get('type')!r}"
        )
    for part in ("backbone", "neck", "bbox_head"):
        if not isinstance(model.get(part), dict):
            raise ConversionError(f"{where}: the RTMDet model dict has no {part!r}")
    return model, pipeline, (list(classes) if classes else None)


def _norm_settings(cfg, part):
    norm = cfg.get("norm_cfg")
    if norm is None:
        norm = _DEFAULT_NORM
    if norm.get("type") not in ("BN", "SyncBN", "BN2d"):
        raise ConversionError(f"{part}: norm_cfg type {norm.get('type')!r} is not supported (BN, SyncBN)")
    act = cfg.get("act_cfg", {"type": "SiLU"})
    if act is None or act.get("type") not in ("SiLU", "Swish"):
        raise ConversionError(f"{part}: act_cfg {act!r} is not supported (SiLU)")
    return {"epsilon": float(norm.get("eps", _PYTORCH_BN["eps"])),
            "momentum": float(norm.get("momentum", _PYTORCH_BN["momentum"]))}


def _check_type(cfg, expected, part):
    if cfg.get("type") != expected:
        raise ConversionError(f"{part} {cfg.get('type')!r} is not supported yet (supported: {expected})")


def _input_size(pipeline, input_size):
    if input_size is not None:
        return tuple(int(v) for v in input_size)
    size = None
    for step in pipeline or []:
        kind = step.get("type")
        if kind in ("Resize", "LetterResize") and step.get("scale") is not None:
            scale = step["scale"]
            size = (scale, scale) if isinstance(scale, int) else tuple(scale)
        if kind == "Pad" and step.get("size") is not None:
            size = tuple(step["size"])
    return tuple(int(v) for v in size) if size else (640, 640)  # (w, h), as MMDetection's scale


def _pad_value(pipeline):
    for step in pipeline or []:
        if step.get("type") == "Pad":
            value = step.get("pad_val", 0)
            if isinstance(value, dict):
                value = value.get("img", 0)
            if isinstance(value, (list, tuple)):
                if len(set(value)) != 1:
                    raise ConversionError(f"Pad pad_val {value} differs per channel; keraspose pads with one value")
                value = value[0]
            return float(value)
    return None


def build_from_mmdet_config(config, class_names=None, input_size=None):
    """An (unweighted, built) RTMDetector from an MMDetection RTMDet config (dict or JSON file).

    Args:
        config: see the module docstring.
        class_names: one name per class (default: the config's ``classes``,
            else COCO's 80 names for an 80-class head).
        input_size: ``(width, height)`` of the network input (default: the
            test pipeline's Pad/Resize size, else 640x640).
    """
    RTMDetector, CSPNeXtBackbone, CSPNeXtPAFPN, RTMDetSepBNHead, coco_classes = _rtmdet_classes()
    model_cfg, pipeline, config_classes = load_mmdet_config(config)
    backbone_cfg, neck_cfg, head_cfg = model_cfg["backbone"], model_cfg["neck"], model_cfg["bbox_head"]

    _check_type(backbone_cfg, "CSPNeXt", "backbone")
    backbone = CSPNeXtBackbone(
        arch=backbone_cfg.get("arch", "P5"),
        deepen_factor=backbone_cfg.get("deepen_factor", 1.0),
        widen_factor=backbone_cfg.get("widen_factor", 1.0),
        out_indices=tuple(backbone_cfg.get("out_indices", (2, 3, 4))),
        use_depthwise=backbone_cfg.get("use_depthwise", False),
        expand_ratio=backbone_cfg.get("expand_ratio", 0.5),
        channel_attention=backbone_cfg.get("channel_attention", True),
        spp_kernel_sizes=tuple(backbone_cfg.get("spp_kernel_sizes", (5, 9, 13))),
        **_norm_settings(backbone_cfg, "backbone"),
        name="backbone",
    )
    if backbone_cfg.get("arch_ovewrite"):
        raise ConversionError("backbone: CSPNeXt arch_ovewrite is not supported")

    _check_type(neck_cfg, "CSPNeXtPAFPN", "neck")
    upsample = neck_cfg.get("upsample_cfg", {"scale_factor": 2, "mode": "nearest"})
    if upsample.get("mode", "nearest") != "nearest" or upsample.get("scale_factor", 2) != 2:
        raise ConversionError(f"neck: upsample_cfg {upsample} is not supported (nearest, scale_factor 2)")
    neck = CSPNeXtPAFPN(
        in_channels=list(neck_cfg["in_channels"]),
        out_channels=neck_cfg["out_channels"],
        num_csp_blocks=neck_cfg.get("num_csp_blocks", 3),
        use_depthwise=neck_cfg.get("use_depthwise", False),
        expand_ratio=neck_cfg.get("expand_ratio", 0.5),
        **_norm_settings(neck_cfg, "neck"),
        name="neck",
    )

    _check_type(head_cfg, "RTMDetSepBNHead", "bbox_head")
    if head_cfg.get("with_objectness", True):
        raise ConversionError("bbox_head: with_objectness=True (an objectness branch) is not supported")
    anchors = head_cfg.get("anchor_generator", {})
    if anchors.get("type", "MlvlPointGenerator") != "MlvlPointGenerator" or anchors.get("offset", 0.5) != 0:
        raise ConversionError(f"bbox_head: anchor_generator {anchors} is not supported (MlvlPointGenerator, offset 0)")
    coder = head_cfg.get("bbox_coder", {}).get("type", "DistancePointBBoxCoder")
    if coder != "DistancePointBBoxCoder":
        raise ConversionError(f"bbox_head: bbox_coder {coder!r} is not supported (DistancePointBBoxCoder)")
    head = RTMDetSepBNHead(
        num_classes=head_cfg["num_classes"],
        in_channels=head_cfg["in_channels"],
        feat_channels=head_cfg.get("feat_channels", 256),
        stacked_convs=head_cfg.get("stacked_convs", 2),
        strides=tuple(anchors.get("strides", (8, 16, 32))),
        share_conv=head_cfg.get("share_conv", True),
        exp_on_reg=head_cfg.get("exp_on_reg", False),
        use_depthwise=head_cfg.get("use_depthwise", False),
        pred_kernel_size=head_cfg.get("pred_kernel_size", 1),
        **_norm_settings(head_cfg, "bbox_head"),
        name="bbox_head",
    )

    num_classes = int(head_cfg["num_classes"])
    names = class_names or config_classes
    if names is None:
        if num_classes == len(coco_classes):
            names = coco_classes
        else:
            names = [f"class_{i}" for i in range(num_classes)]
            warnings.warn(f"the config names no classes; the detector's {num_classes} classes are called "
                          f"{names[:3]}...; pass class_names=[...]", stacklevel=2)
    if len(names) != num_classes:
        raise ConversionError(f"{len(names)} class names {list(names)[:5]} for a head of {num_classes} classes")

    pre = model_cfg.get("data_preprocessor") or {}
    test_cfg = model_cfg.get("test_cfg") or {}
    nms_cfg = test_cfg.get("nms") or {}
    if nms_cfg.get("type", "nms") != "nms":
        raise ConversionError(f"test_cfg.nms type {nms_cfg.get('type')!r} is not supported (nms)")
    settings = dict(
        input_size=_input_size(pipeline, input_size),
        mean=pre.get("mean", (0.0, 0.0, 0.0)),
        std=pre.get("std", (1.0, 1.0, 1.0)),
        # MMDetection reads images as BGR; bgr_to_rgb=True turns them to RGB
        # before normalising, so the network (and mean/std) is RGB then.
        channel_order="rgb" if pre.get("bgr_to_rgb", False) else "bgr",
        score_threshold=test_cfg.get("score_thr", 0.05),
        nms_pre=test_cfg.get("nms_pre", 1000),
        iou_threshold=nms_cfg.get("iou_threshold", 0.6),
        max_per_image=test_cfg.get("max_per_img", 100),
        min_bbox_size=test_cfg.get("min_bbox_size", 0),
        class_names=tuple(names),
    )
    pad = _pad_value(pipeline)
    if pad is not None:
        settings["pad_value"] = pad
    model = RTMDetector(backbone, neck, head, **settings)
    model.build()
    return model


def checkpoint_mapping(model):
    """``{MMDetection key: (keras variable or None, kind)}`` for every tensor an RTMDet checkpoint holds."""
    return conv_bn_mapping(model.checkpoint_keys())


def load_mmdet_weights(model, state_dict):
    """Copy an MMDetection RTMDet state dict (``{key: numpy array}``) into a built RTMDetector."""
    return check_and_load(model, checkpoint_mapping(model), state_dict)


def from_mmdet(config, checkpoint, class_names=None, input_size=None):
    """An RTMDetector with the weights of an MMDetection RTMDet checkpoint.

    Args:
        config: the MMDetection config as a dict or JSON file (see the module docstring).
        checkpoint: the ``.pth`` file (``{'meta', 'state_dict'}``), read with ``weights_only=True``.
        class_names, input_size: see :func:`build_from_mmdet_config`.

    Raises:
        ConversionError: an unsupported config, an unreadable or truncated
            checkpoint, or a checkpoint that does not fit the config (the
            message names the first mismatching key and both shapes).

    Example:
    >>> detector = from_mmdet("tiny_rtmdet_config.json", "tiny_rtmdet.pth")  # doctest: +SKIP
    """
    model = build_from_mmdet_config(config, class_names=class_names, input_size=input_size)
    return load_mmdet_weights(model, read_state_dict(checkpoint))


# ---------------------------------------------------------------------------
# Catalogue converter protocol (keraspose.presets.registry)
# ---------------------------------------------------------------------------
def _entry_config(entry):
    if not isinstance(entry.get("mmdet_model"), dict):
        raise ConversionError(f"catalogue entry {entry.get('name')!r} has no mmdet_model to build from")
    return {"model": entry["mmdet_model"], "test_pipeline": entry.get("mmdet_test_pipeline"),
            "classes": entry.get("class_names")}


def build_catalogue_entry(entry):
    """The (unweighted, built) RTMDetector of a catalogue entry with an embedded ``mmdet_model``."""
    return build_from_mmdet_config(_entry_config(entry), input_size=entry.get("input_size"))


def convert_catalogue_entry(entry, checkpoint):
    """The RTMDetector of a catalogue entry with the weights of its downloaded MMDetection checkpoint."""
    return from_mmdet(_entry_config(entry), checkpoint, input_size=entry.get("input_size"))
