"""Make the MMDetection-format RTMDet fixture and the rtmdet_m_person catalogue figures.

Run with the reference venv (MMDetection 3.3.0), from the repository root:

    /work/main/.mmpose-ref/bin/python tools/make_mmdet_checkpoint_fixture.py

Writes, under tests/fixtures/mmdet/:

* ``tiny_rtmdet_config.json``: ``{"model": MMDetection model dict, "test_pipeline": [...],
  "classes": ["person"]}`` of a small RTMDet-nano-like person detector
  (CSPNeXt with depthwise convs, CSPNeXtPAFPN, RTMDetSepBNHead, 1 class);
* ``tiny_rtmdet.pth``: its random weights (BN statistics perturbed so that a
  lost statistic shows), saved as ``{"meta": {...}, "state_dict": ...}`` like
  official checkpoints;
* ``tiny_rtmdet_outputs.npz``: a fixed normalised input (NCHW) and
  MMDetection's raw outputs for it (``forward(mode="tensor")``: per level the
  class logits and the box distances, already multiplied by the stride).

and, with ``--catalogue``, fills ``keraspose/presets/catalogue/rtmdet_m_person.json``'s
``mmdet_model``, ``mmdet_test_pipeline`` and ``num_parameters`` from MMPose's demo config
``rtmdet_m_640-8xb32_coco-person`` (its parameter count is MMDetection's, counted here).
"""

import argparse
import copy
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, "/work/shared/tools")
if "tqdm" not in sys.modules:
    try:
        import tqdm  # noqa: F401
    except ImportError:  # mmdet.datasets imports tqdm; the reference venv lacks it and nothing here uses it
        import types

        sys.modules["tqdm"] = types.ModuleType("tqdm")
        sys.modules["tqdm"].tqdm = lambda iterable=None, *a, **k: iterable
import mmdet_ops_shim  # noqa: E402,F401  (before mmdet: a pure-torch nms for mmcv-lite)
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope("mmdet")
from mmdet.registry import MODELS  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "mmdet")
CATALOGUE = os.path.join(REPO, "keraspose", "presets", "catalogue", "rtmdet_m_person.json")
SEED = 20260101
INPUT_HW = (96, 128)  # strides 8/16/32 -> 12x16, 6x8, 3x4; not square on purpose


def _plain(obj):
    """A config value as plain JSON data (ConfigDict -> dict, tuple -> list), SyncBN -> BN."""
    if isinstance(obj, dict):
        out = {k: _plain(v) for k, v in obj.items() if k not in ("init_cfg", "_scope_")}
        if out.get("type") == "SyncBN":
            out["type"] = "BN"
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _test_pipeline(cfg):
    pipeline = cfg.get("test_pipeline") or cfg.test_dataloader.dataset.pipeline
    # Loading and packing steps say nothing about the network input.
    return [_plain(step) for step in pipeline if step["type"] in ("Resize", "Pad", "LetterResize")]


def tiny_config():
    model = dict(
        type="RTMDet",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=[103.53, 116.28, 123.675],
                               std=[57.375, 57.12, 58.395], bgr_to_rgb=False, batch_augments=None),
        backbone=dict(type="CSPNeXt", arch="P5", expand_ratio=0.5, deepen_factor=0.33, widen_factor=0.09375,
                      use_depthwise=True, channel_attention=True, norm_cfg=dict(type="BN"),
                      act_cfg=dict(type="SiLU", inplace=True)),
        neck=dict(type="CSPNeXtPAFPN", in_channels=[24, 48, 96], out_channels=24, num_csp_blocks=1,
                  expand_ratio=0.5, use_depthwise=True, norm_cfg=dict(type="BN"),
                  act_cfg=dict(type="SiLU", inplace=True)),
        bbox_head=dict(type="RTMDetSepBNHead", num_classes=1, in_channels=24, stacked_convs=2, feat_channels=24,
                       anchor_generator=dict(type="MlvlPointGenerator", offset=0, strides=[8, 16, 32]),
                       bbox_coder=dict(type="DistancePointBBoxCoder"),
                       loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, beta=2.0, loss_weight=1.0),
                       loss_bbox=dict(type="GIoULoss", loss_weight=2.0), with_objectness=False,
                       exp_on_reg=False, share_conv=False, use_depthwise=True, pred_kernel_size=1,
                       norm_cfg=dict(type="BN"), act_cfg=dict(type="SiLU", inplace=True)),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.6),
                      max_per_img=100),
    )
    pipeline = [
        dict(type="Resize", scale=[128, 128], keep_ratio=True),
        dict(type="Pad", size=[128, 128], pad_val=dict(img=[114, 114, 114])),
    ]
    return {"model": model, "test_pipeline": pipeline, "classes": ["person"]}


def make_fixture():
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    config = tiny_config()
    model = MODELS.build(copy.deepcopy(config["model"])).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, module.num_features).astype("float32")))
                module.bias.copy_(torch.from_numpy(rng.normal(0, 0.2, module.num_features).astype("float32")))
                module.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.3, module.num_features).astype("float32")))
                module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, module.num_features).astype("float32")))
                module.num_batches_tracked.fill_(1234)
    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    os.makedirs(OUT, exist_ok=True)
    meta = {"mmdet_version": __import__("mmdet").__version__, "note": "keraspose test fixture, random weights"}
    torch.save({"meta": meta, "state_dict": state_dict}, os.path.join(OUT, "tiny_rtmdet.pth"))
    with open(os.path.join(OUT, "tiny_rtmdet_config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")

    h, w = INPUT_HW
    x = rng.normal(0, 1, (1, 3, h, w)).astype("float32")
    with torch.no_grad():
        cls_scores, bbox_preds = model(torch.from_numpy(x), mode="tensor")
    arrays = {"input_nchw": x}
    for level, (cls, box) in enumerate(zip(cls_scores, bbox_preds)):
        arrays[f"cls_score_{level}"] = cls.numpy()
        arrays[f"bbox_pred_{level}"] = box.numpy()
    np.savez_compressed(os.path.join(OUT, "tiny_rtmdet_outputs.npz"), **arrays)
    params = sum(p.numel() for p in model.parameters())
    size = os.path.getsize(os.path.join(OUT, "tiny_rtmdet.pth"))
    print(f"tiny RTMDet: {params} parameters, {len(state_dict)} state-dict tensors, checkpoint {size} bytes")
    for level in range(3):
        print(f"  level {level}: cls {arrays[f'cls_score_{level}'].shape} bbox {arrays[f'bbox_pred_{level}'].shape}")


def fill_catalogue():
    import mmpose

    demo = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "demo", "mmdetection_cfg",
                        "rtmdet_m_640-8xb32_coco-person.py")
    cfg = Config.fromfile(demo)
    model_cfg = _plain(cfg.model.to_dict())
    model = MODELS.build(copy.deepcopy(model_cfg))
    params = sum(p.numel() for p in model.parameters())
    with open(CATALOGUE) as f:
        entry = json.load(f)
    entry["num_parameters"] = int(params)
    entry["mmdet_model"] = model_cfg
    entry["mmdet_test_pipeline"] = _test_pipeline(cfg)
    with open(CATALOGUE, "w") as f:
        json.dump(entry, f, indent=1)
        f.write("\n")
    print(f"{CATALOGUE}: RTMDet-m person, {params} parameters (MMDetection), from {demo}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", action="store_true", help="also fill the rtmdet_m_person catalogue entry")
    args = parser.parse_args()
    make_fixture()
    if args.catalogue:
        fill_catalogue()
