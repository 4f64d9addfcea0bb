"""Golden RTMDet outputs from MMDetection 3.3.0 for tests/test_rtmdet.py.

Run with the reference venv (MMDetection 3.3.0, mmcv-lite + the NMS shim):

    /work/main/.mmpose-ref/bin/python tools/make_rtmdet_fixture.py

For MMPose's two person detectors (rtmdet_nano_320-8xb32_coco-person and
rtmdet_m_640-8xb32_coco-person, SyncBN -> BN) it writes
tests/fixtures/rtmdet_{nano,m}_person.npz with:

* the weights' recipe (seed, cls_bias, reg_bias): kernels, BN affine
  parameters and biases are generated from tests/rtmdet_weights.py on both
  sides, not stored; the BatchNorm running statistics (calibrated on the
  images, then perturbed: see calibrate_batch_norm) are stored as "bn:<key>";
* real coco_mini images through MMDetection's own test pipeline: the padded
  uint8 BGR network images (MMDetection's Resize + Pad), scale factors,
  original shapes, and the normalised batch's checksum;
* the raw head outputs (MMDetection's "tensor" mode), channels-last;
* MMDetection's predict(rescale=True) boxes/scores/labels, once with the
  config's test_cfg and once with a tight one (nms_pre 20, max_per_img 10)
  so top-k truncation is exercised too.
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("KERASPOSE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
sys.path.insert(0, os.path.join(SHARED, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import importlib.util  # noqa: E402
import types  # noqa: E402

import mmdet_ops_shim  # noqa: E402,F401  (before mmdet)

if importlib.util.find_spec("tqdm") is None:
    # mmdet.datasets imports tqdm for a progress bar this script never shows;
    # the reference venv does not have it.
    sys.modules["tqdm"] = types.ModuleType("tqdm")
    sys.modules["tqdm"].tqdm = lambda iterable=None, *args, **kwargs: iterable
import torch  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.dataset import Compose, pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from rtmdet_weights import synthetic_state_dict  # noqa: E402

init_default_scope("mmdet")
from mmdet.registry import MODELS  # noqa: E402

import mmpose  # noqa: E402

CFG_DIR = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "demo", "mmdetection_cfg")
IMAGES = ["000000000790.jpg", "000000069468.jpg", "000000072258.jpg"]  # landscape, portrait, square
MODELS_TO_MAKE = {
    # name: config, seed, reg_bias, images
    "nano": ("rtmdet_nano_320-8xb32_coco-person.py", 0, 3.0, IMAGES),
    "m": ("rtmdet_m_640-8xb32_coco-person.py", 1, 1.0, IMAGES[:2]),
}
TARGET_CANDIDATES = 60  # per image, above score_thr, over all levels
TIGHT_CFG = dict(nms_pre=20, max_per_img=10)


def _sync_to_bn(obj):
    if isinstance(obj, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else _sync_to_bn(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_sync_to_bn(v) for v in obj]
    return obj


def build(config_name):
    cfg = Config.fromfile(os.path.join(CFG_DIR, config_name))
    model_cfg = _sync_to_bn(cfg.model.to_dict())
    model_cfg["backbone"].pop("init_cfg", None)
    model = MODELS.build(ConfigDict(model_cfg))
    model.eval()
    return cfg, model


def load_weights(model, seed, cls_bias, reg_bias):
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("data_preprocessor")}
    share = bool(getattr(model.bbox_head, "share_conv", False))
    weights = synthetic_state_dict({k: tuple(v.shape) for k, v in state.items()}, seed, share, cls_bias, reg_bias)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert not unexpected and all(k.startswith("data_preprocessor") for k in missing), (missing, unexpected)


def _instances(samples):
    return [
        (
            s.pred_instances.bboxes.numpy().astype(np.float32).copy(),
            s.pred_instances.scores.numpy().astype(np.float32).copy(),
            s.pred_instances.labels.numpy().astype(np.int64).copy(),
        )
        for s in samples
    ]


def calibrate_batch_norm(model, inputs, seed):
    """Set every BatchNorm's running statistics from the real batch, then perturb them.

    Random kernels with made-up running statistics collapse the signal to
    per-channel constants within a few dozen layers (the outputs would no
    longer depend on the image). Statistics measured on the fixture's own
    images keep every layer's activations in range; the perturbation
    (variance x U(0.5, 2), mean shifted by 0.2 std) keeps them non-trivial.
    They are stored in the fixture (a few hundred KB), unlike the kernels.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch -> its own statistics
    model.train()
    model(inputs, mode="tensor")
    model.eval()
    rs = np.random.RandomState(1000 + seed)
    stats = {}
    for key, value in sorted(model.state_dict().items()):
        if key.endswith("running_var"):
            value.mul_(torch.from_numpy(rs.uniform(0.5, 2.0, value.shape).astype(np.float32)))
            mean_key = key[: -len("running_var")] + "running_mean"
            stats[mean_key] = None
            stats[key] = value.numpy().copy()
    for key in [k for k, v in stats.items() if v is None]:
        mean = model.state_dict()[key]
        var = torch.from_numpy(stats[key[: -len("running_mean")] + "running_var"])
        mean.add_(0.2 * var.sqrt() * torch.from_numpy(rs.standard_normal(mean.shape).astype(np.float32)))
        stats[key] = mean.numpy().copy()
    return stats


def make(name):
    config_name, seed, reg_bias, images = MODELS_TO_MAKE[name]
    cfg, model = build(config_name)
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    image_dir = os.path.join(SHARED, "data", "coco_mini", "train2017")
    samples = [pipeline(dict(img_path=os.path.join(image_dir, f), img_id=i)) for i, f in enumerate(images)]
    with torch.no_grad():
        batch = model.data_preprocessor(pseudo_collate(samples), False)
        inputs, data_samples = batch["inputs"], batch["data_samples"]

        load_weights(model, seed, 0.0, reg_bias)
        bn_stats = calibrate_batch_norm(model, inputs, seed)
        # Pick the class-logit bias that lets ~TARGET_CANDIDATES per image pass score_thr.
        cls0, _ = model(inputs, mode="tensor")
        logits = torch.cat([c.flatten() for c in cls0]).numpy()
        thr_logit = np.log(cfg.model.test_cfg.score_thr / (1 - cfg.model.test_cfg.score_thr))
        quantile = 1 - TARGET_CANDIDATES * len(images) / logits.size
        cls_bias = float(np.round(thr_logit - np.quantile(logits, quantile), 3))

        load_weights(model, seed, cls_bias, reg_bias)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in bn_stats.items()}, strict=False)
        cls_scores, bbox_preds = model(inputs, mode="tensor")
        # predict() writes its results into the data samples it is given:
        # copy them out before the second call overwrites them.
        results = _instances(model.predict(inputs, data_samples, rescale=True))
        model.bbox_head.test_cfg = ConfigDict({**model.bbox_head.test_cfg.to_dict(), **TIGHT_CFG})
        tight = _instances(model.predict(inputs, data_samples, rescale=True))

    out = dict(
        seed=seed, cls_bias=cls_bias, reg_bias=reg_bias,
        image_names=np.array(images),
        padded_bgr=np.stack([s["inputs"].permute(1, 2, 0).numpy() for s in samples]).astype(np.uint8),
        scale_factors=np.array([d.scale_factor for d in data_samples], np.float64),
        ori_shapes=np.array([d.ori_shape for d in data_samples], np.int64),
        img_shapes=np.array([d.img_shape for d in data_samples], np.int64),
        input_sum=np.float64(inputs.double().sum()),
        input_abs_sum=np.float64(inputs.double().abs().sum()),
        tight_nms_pre=TIGHT_CFG["nms_pre"], tight_max_per_img=TIGHT_CFG["max_per_img"],
    )
    for key, value in bn_stats.items():
        out[f"bn:{key}"] = value.astype(np.float32)
    for i, (c, b) in enumerate(zip(cls_scores, bbox_preds)):
        out[f"cls_scores_{i}"] = c.permute(0, 2, 3, 1).numpy()
        out[f"bbox_preds_{i}"] = b.permute(0, 2, 3, 1).numpy()
    for tag, res in (("", results), ("tight_", tight)):
        for b, (boxes, scores, labels) in enumerate(res):
            out[f"{tag}boxes_{b}"], out[f"{tag}scores_{b}"], out[f"{tag}labels_{b}"] = boxes, scores, labels
    path = os.path.join(ROOT, "tests", "fixtures", f"rtmdet_{name}_person.npz")
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    counts = [len(out[f"boxes_{b}"]) for b in range(len(images))]
    candidates = [(torch.cat([c[b].flatten() for c in cls_scores]).sigmoid() > cfg.model.test_cfg.score_thr).sum().item()
                  for b in range(len(images))]
    print(f"{name}: cls_bias {cls_bias}, candidates {candidates}, boxes {counts}, "
          f"tight {[len(out[f'tight_boxes_{b}']) for b in range(len(images))]}, "
          f"params {sum(p.numel() for p in model.parameters())}, {os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(MODELS_TO_MAKE):
        make(name)
