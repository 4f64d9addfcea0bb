"""Hugging Face transformers checkpoints, converted on the fly (``from_preset("hf://usyd-community/vitpose-base-simple")``).

A transformers repo holds a ``config.json`` with a ``model_type`` and a
``model.safetensors``; keras-hub-style, the ``model_type`` picks a converter
(only ``"vitpose"`` so far). Nothing but ``safetensors`` (numpy) is needed at
run time: transformers itself is not imported.

transformers' ``VitPoseForPoseEstimation`` is the ViTPose of MMPose with
another layout, translated here into MMPose's state-dict names so that the
MMPose loader (:func:`keraspose.convert.mmpose.load_mmpose_weights`, which
checks every key and shape both ways) fills the model:

* separate ``query``/``key``/``value`` projections -> one fused ``qkv``;
* a position embedding with a class-token row that every patch token gets
  added to (``pos[:, 1:] + pos[:, :1]``) -> one patch position embedding;
* ``layer_norm_eps`` as the config stores it (1e-12 in transformers'
  defaults, 1e-6 in the released checkpoints);
* ``out_features``: the backbone's output stage (blocks after it are unused);
* ViTPose+ mixture-of-experts MLPs (``num_experts > 1``): the shared ``fc2``
  gives the first ``hidden - part_features`` channels, the expert of the
  chosen dataset the last ``part_features``; for one ``dataset_index`` that is
  one plain ``fc2`` with the two weight matrices stacked, so the converted
  model is a plain ViTPose;
* the classic decoder's ``deconv1/batchnorm1/deconv2/batchnorm2/conv`` and the
  simple decoder's ``conv`` -> keraspose's HeatmapHead (the simple one behind
  a ReLU + x4 bilinear :class:`~keraspose.models.vit.FeatureMapProcessor`).

Example:
>>> from keraspose import TopdownEstimator
>>> model = TopdownEstimator.from_preset("hf://usyd-community/vitpose-base-simple")  # doctest: +SKIP
>>> plus = TopdownEstimator.from_preset("hf://usyd-community/vitpose-plus-base", dataset_index=0)  # doctest: +SKIP
"""

import json
import os

import numpy as np

from keraspose.codecs import UDPHeatmap
from keraspose.convert.checkpoints import ConversionError
from keraspose.convert.mmpose import load_mmpose_weights
from keraspose.models.heads import HeatmapHead
from keraspose.models.topdown_estimator import TopdownEstimator
from keraspose.models.vit import FeatureMapProcessor, ViTBackbone

SUPPORTED_MODEL_TYPES = ("vitpose",)

#: ViTPose+'s experts, one per training dataset (transformers' model card).
VITPOSE_PLUS_DATASETS = {0: "COCO", 1: "AI Challenger", 2: "MPII", 3: "AP-10K", 4: "APT-36K", 5: "COCO-WholeBody"}


def is_transformers_config(config):
    """Whether a parsed ``config.json`` is a transformers model config (not a serialized Keras object)."""
    return isinstance(config, dict) and "model_type" in config and not (
        config.get("class_name") or config.get("registered_name")
    )


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path} is not valid JSON: {err}") from None


def _pair(value, name):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConversionError(f"transformers VitPose config: {name} must be one number or two, got {value}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _output_stage(backbone_cfg, num_layers):
    """The number of blocks before the backbone's (single) output: ``out_features`` ``["stageN"]``."""
    features = backbone_cfg.get("out_features")
    if features is None:
        indices = backbone_cfg.get("out_indices") or [num_layers]
        features = [f"stage{i if i >= 0 else num_layers + 1 + i}" for i in indices]
    if len(features) != 1 or not str(features[0]).startswith("stage"):
        raise ConversionError(
            f"transformers VitPose config: the backbone must output one stage, got out_features={features}"
        )
    stage = int(str(features[0])[len("stage"):])
    if not 1 <= stage <= num_layers:
        raise ConversionError(f"transformers VitPose config: out_features {features} is outside stage1..stage{num_layers}")
    return stage


def build_vitpose(config, metainfo=None, preprocessor=None):
    """The (built, unweighted) TopdownEstimator of a transformers ``vitpose`` config dict.

    Returns ``(model, num_layers_used)``.
    """
    backbone_cfg = config.get("backbone_config") or {}
    if backbone_cfg.get("model_type", "vitpose_backbone") != "vitpose_backbone":
        raise ConversionError(
            f"transformers VitPose with backbone model_type {backbone_cfg.get('model_type')!r} is not supported "
            "(vitpose_backbone only)"
        )
    act = backbone_cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConversionError(f"transformers VitPose with hidden_act={act!r} is not supported (exact 'gelu' only)")
    image_h, image_w = _pair(backbone_cfg.get("image_size", [256, 192]), "image_size")
    patch_h, patch_w = _pair(backbone_cfg.get("patch_size", [16, 16]), "patch_size")
    if patch_h != patch_w:
        raise ConversionError(f"transformers VitPose with non-square patches {patch_h}x{patch_w} is not supported")
    hidden = int(backbone_cfg.get("hidden_size", 768))
    total_layers = int(backbone_cfg.get("num_hidden_layers", 12))
    num_layers = _output_stage(backbone_cfg, total_layers)
    backbone = ViTBackbone(
        arch=None, embed_dims=hidden, num_layers=num_layers, num_heads=int(backbone_cfg.get("num_attention_heads", 12)),
        feedforward_channels=int(hidden * backbone_cfg.get("mlp_ratio", 4)), img_size=(image_h, image_w),
        patch_size=patch_h, patch_padding=2, in_channels=int(backbone_cfg.get("num_channels", 3)),
        qkv_bias=bool(backbone_cfg.get("qkv_bias", True)),
        layer_norm_epsilon=float(backbone_cfg.get("layer_norm_eps", 1e-12)), name="backbone",
    )
    grid = (image_h // patch_h, image_w // patch_w)  # transformers' patch grid
    if backbone.patch_resolution != grid:
        raise ConversionError(
            f"transformers VitPose image_size {[image_h, image_w]} is not a multiple of the patch size {patch_h}"
        )
    num_keypoints = int(config.get("num_labels") or len(config.get("id2label") or {}) or 17)
    if metainfo is None:
        if num_keypoints != 17:
            raise ConversionError(
                f"the transformers VitPose head predicts {num_keypoints} keypoints; pass metainfo=... (a built-in "
                "name, a metainfo JSON file or a DatasetMetainfo) for that keypoint set"
            )
        metainfo = "coco"
    simple = bool(config.get("use_simple_decoder", True))
    scale = float(config.get("scale_factor", 4)) if simple else 4.0
    heatmap_size = (int(grid[1] * scale), int(grid[0] * scale))
    codec = UDPHeatmap(input_size=(image_w, image_h), heatmap_size=heatmap_size, sigma=2.0)
    if simple:
        neck = FeatureMapProcessor(scale_factor=scale, apply_relu=True, name="neck")
        head = HeatmapHead(num_keypoints, deconv_out_channels=[], final_kernel_size=3, codec=codec, name="head")
    else:
        neck = None
        head = HeatmapHead(num_keypoints, deconv_out_channels=[256, 256], deconv_kernel_sizes=[4, 4],
                           final_kernel_size=1, codec=codec, name="head")
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # VitPoseImageProcessor's defaults
    rescale = 1.0 / 255.0
    if preprocessor:
        mean, std = preprocessor.get("image_mean", mean), preprocessor.get("image_std", std)
        rescale = preprocessor.get("rescale_factor", rescale) if preprocessor.get("do_rescale", True) else 1.0
    model = TopdownEstimator(
        backbone=backbone, neck=neck, head=head, metainfo=metainfo, input_size=(image_w, image_h),
        # The processor rescales to [0, 1] then normalises; keraspose normalises 0-255 pixels.
        mean=[m / rescale for m in mean], std=[s / rescale for s in std], channel_order="rgb",
        flip_test=True, flip_mode="heatmap", shift_heatmap=False,
    )
    model.build()
    return model, num_layers


def _load_safetensors(directory):
    from safetensors.numpy import load_file

    single = os.path.join(directory, "model.safetensors")
    if os.path.exists(single):
        return load_file(single)
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        state = {}
        for shard in sorted(set(_read_json(index)["weight_map"].values())):
            state.update(load_file(os.path.join(directory, shard)))
        return state
    raise ConversionError(
        f"{directory}: no model.safetensors (or model.safetensors.index.json); keraspose reads transformers "
        "checkpoints in safetensors format only (re-save with save_pretrained(..., safe_serialization=True))"
    )


def vitpose_state_dict_to_mmpose(state, num_layers, num_experts=1, dataset_index=None):
    """transformers VitPose tensors (numpy) -> MMPose's ViTPose state-dict names and layout."""
    state = {k: np.asarray(v, np.float32) if v.dtype != np.int64 else v for k, v in state.items()}
    out, used = {}, set()

    def take(key):
        if key not in state:
            raise ConversionError(f"the transformers VitPose checkpoint has no tensor {key!r}")
        used.add(key)
        return state[key]

    emb = "backbone.embeddings"
    out["backbone.patch_embed.projection.weight"] = take(f"{emb}.patch_embeddings.projection.weight")
    out["backbone.patch_embed.projection.bias"] = take(f"{emb}.patch_embeddings.projection.bias")
    pos = take(f"{emb}.position_embeddings")
    out["backbone.pos_embed"] = pos[:, 1:] + pos[:, :1]  # the class-token row is added to every patch
    for i in range(num_layers):
        src, dst = f"backbone.encoder.layer.{i}", f"backbone.layers.{i}"
        attn = f"{src}.attention.attention"
        for kind in ("weight", "bias"):
            parts = [f"{attn}.{name}.{kind}" for name in ("query", "key", "value")]
            if all(p in state for p in parts):
                out[f"{dst}.attn.qkv.{kind}"] = np.concatenate([take(p) for p in parts], axis=0)
            out[f"{dst}.attn.proj.{kind}"] = take(f"{src}.attention.output.dense.{kind}")
            out[f"{dst}.ln1.{kind}"] = take(f"{src}.layernorm_before.{kind}")
            out[f"{dst}.ln2.{kind}"] = take(f"{src}.layernorm_after.{kind}")
            out[f"{dst}.ffn.layers.0.0.{kind}"] = take(f"{src}.mlp.fc1.{kind}")
            fc2 = take(f"{src}.mlp.fc2.{kind}")
            if num_experts > 1:
                # shared fc2 -> the first channels, the dataset's expert -> the last part_features.
                fc2 = np.concatenate([fc2, take(f"{src}.mlp.experts.{dataset_index}.{kind}")], axis=0)
                for e in range(num_experts):
                    used.add(f"{src}.mlp.experts.{e}.{kind}")
            out[f"{dst}.ffn.layers.1.{kind}"] = fc2
    for kind in ("weight", "bias"):
        out[f"backbone.ln1.{kind}"] = take(f"backbone.layernorm.{kind}")
    head = {"head.conv": "head.final_layer", "head.deconv1": "head.deconv_layers.0",
            "head.batchnorm1": "head.deconv_layers.1", "head.deconv2": "head.deconv_layers.3",
            "head.batchnorm2": "head.deconv_layers.4"}
    for key in state:
        prefix, _, field = key.rpartition(".")
        if prefix in head:
            out[f"{head[prefix]}.{field}"] = take(key)
    # Blocks after the output stage feed nothing.
    unused = sorted(k for k in state if k not in used and not any(
        k.startswith(f"backbone.encoder.layer.{i}.") for i in range(num_layers, 10_000)))
    if unused:
        raise ConversionError(f"{len(unused)} tensors of the transformers VitPose checkpoint have no place: {unused[:10]}")
    return out


def load_vitpose(directory, config, load_weights=True, dataset_index=None, metainfo=None):
    """A TopdownEstimator from a transformers ``vitpose`` directory (config.json + safetensors)."""
    backbone_cfg = config.get("backbone_config") or {}
    num_experts = int(backbone_cfg.get("num_experts", 1) or 1)
    if num_experts > 1:
        if dataset_index is None:
            names = ", ".join(f"{i}: {n}" for i, n in VITPOSE_PLUS_DATASETS.items() if i < num_experts)
            raise ConversionError(
                f"{directory}: this ViTPose+ checkpoint has {num_experts} mixture-of-experts MLPs, one per training "
                f"dataset; choose one with from_preset(..., dataset_index=N) ({names})"
            )
        if not 0 <= int(dataset_index) < num_experts:
            raise ConversionError(f"dataset_index must be in 0..{num_experts - 1}, got {dataset_index}")
    elif dataset_index not in (None, 0):
        raise ConversionError(f"dataset_index={dataset_index} given, but {directory} has no mixture of experts")
    preprocessor_path = os.path.join(directory, "preprocessor_config.json")
    preprocessor = _read_json(preprocessor_path) if os.path.exists(preprocessor_path) else None
    model, num_layers = build_vitpose(config, metainfo=metainfo, preprocessor=preprocessor)
    if load_weights:
        state = vitpose_state_dict_to_mmpose(
            _load_safetensors(directory), num_layers, num_experts=num_experts,
            dataset_index=None if dataset_index is None else int(dataset_index),
        )
        load_mmpose_weights(model, state)
    return model


def load_transformers_preset(directory, load_weights=True, **options):
    """The keraspose model of a transformers checkpoint directory, by its ``model_type``.

    ``options``: ``dataset_index`` (ViTPose+), ``metainfo`` (other keypoint sets).
    """
    config = _read_json(os.path.join(directory, "config.json"))
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConversionError(
            f"{os.path.join(directory, 'config.json')}: transformers model_type {model_type!r} is not supported; "
            f"keraspose converts {', '.join(repr(t) for t in SUPPORTED_MODEL_TYPES)} checkpoints on the fly "
            "(e.g. hf://usyd-community/vitpose-base-simple)"
        )
    unknown = sorted(set(options) - {"dataset_index", "metainfo"})
    if unknown:
        raise ConversionError(
            f"options {unknown} do not apply to a transformers checkpoint; use dataset_index=... and metainfo=..., "
            "or convert it, save it with save_to_preset and load that with overrides"
        )
    return load_vitpose(directory, config, load_weights=load_weights, **options)
