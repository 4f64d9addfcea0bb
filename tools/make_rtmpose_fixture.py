"""Golden RTMPose outputs from MMPose 1.3.2 for tests/test_rtmpose.py.

Run with the reference venv (MMPose 1.3.2, MMDetection 3.3.0 for CSPNeXt):

    /work/main/.mmpose-ref/bin/python tools/make_rtmpose_fixture.py [t] [s]

For RTMPose-t and RTMPose-s (MMPose's rtmpose-{t,s}_8xb256-420e_coco-256x192
configs, SyncBN -> BN) it writes tests/fixtures/rtmpose_{t,s}_coco.npz with:

* the MMPose model dict (JSON) the test converts, and the weights' seed:
  every weight comes from tests/rtmpose_weights.py on both sides; only the
  BatchNorm running statistics (calibrated on the fixture's crops, then
  perturbed, as for RTMDet) are stored, as "bn:<key>";
* real coco_mini images and annotated person boxes, the uint8 BGR crops of
  MMPose's validation pipeline (GetBBoxCenterScale, TopdownAffine);
* MMPose's raw head outputs ("tensor" mode) simcc_x / simcc_y for the crops;
* MMPose's predictions (TopdownPoseEstimator.test_step, image pixels)
  with the flip test off and on: keypoints and keypoint scores;
* per crop and keypoint, the gap between the two largest logits of each
  axis: argmax decoding is only stable where it is well above float noise;
* the training side: random keypoints (some invisible, some off the crop)
  encoded by MMPose's SimCCLabel with the config's codec, and MMPose's
  KLDiscretLoss (the config's beta/label_softmax) and simcc_pck_accuracy of
  the head outputs against them (the test encodes the same keypoints with
  keraspose's SimCCLabel, itself checked against MMPose in test_codecs).
"""

import json
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

import mmdet_ops_shim  # noqa: E402,F401  (before mmdet / mmcv.ops)

if importlib.util.find_spec("tqdm") is None:
    # mmdet.datasets imports tqdm for a progress bar this script never shows;
    # the reference venv does not have it.
    sys.modules["tqdm"] = types.ModuleType("tqdm")
    sys.modules["tqdm"].tqdm = lambda iterable=None, *args, **kwargs: iterable
import torch  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.dataset import Compose, pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope("mmpose")
import mmdet.models  # noqa: E402,F401  (registers CSPNeXt under the mmdet scope)
import mmpose  # noqa: E402
import mmpose.datasets  # noqa: E402,F401  (registers the transforms)
from mmpose.datasets.datasets.utils import parse_pose_metainfo  # noqa: E402
from mmpose.registry import MODELS  # noqa: E402

from rtmpose_weights import synthetic_state_dict  # noqa: E402

MIM = os.path.join(os.path.dirname(mmpose.__file__), ".mim")
CFG_DIR = os.path.join(MIM, "configs", "body_2d_keypoint", "rtmpose", "coco")
# landscape with 4 people, portrait with 1, landscape with 2
IMAGES = ["000000000790.jpg", "000000069468.jpg", "000000113488.jpg"]
MODELS_TO_MAKE = {"t": ("rtmpose-t_8xb256-420e_coco-256x192.py", 0), "s": ("rtmpose-s_8xb256-420e_coco-256x192.py", 1)}


def _sync_to_bn(obj):
    if isinstance(obj, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else _sync_to_bn(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_sync_to_bn(v) for v in obj]
    return obj


def model_dict(config_name):
    cfg = Config.fromfile(os.path.join(CFG_DIR, config_name))
    model_cfg = _sync_to_bn(cfg.model.to_dict())
    model_cfg["backbone"].pop("init_cfg", None)
    return cfg, model_cfg


def people():
    ann = json.load(open(os.path.join(SHARED, "data", "coco_mini", "annotations", "person_keypoints_train2017.json")))
    ids = {img["file_name"]: img["id"] for img in ann["images"]}
    boxes = {f: [] for f in IMAGES}
    for a in ann["annotations"]:
        for f in IMAGES:
            if a["image_id"] == ids[f] and a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0):
                x, y, w, h = a["bbox"]
                boxes[f].append([x, y, x + w, y + h])
    return {f: np.array(b, np.float32) for f, b in boxes.items()}


def calibrate_batch_norm(model, inputs, seed):
    """Running statistics from the crops, then perturbed (see tools/make_rtmdet_fixture.py)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    model(inputs, None, mode="tensor")
    model.eval()
    rs = np.random.RandomState(1000 + seed)
    stats = {}
    for key, value in sorted(model.state_dict().items()):
        if key.endswith("running_var"):
            value.mul_(torch.from_numpy(rs.uniform(0.5, 2.0, value.shape).astype(np.float32)))
            stats[key[: -len("running_var")] + "running_mean"] = None
            stats[key] = value.numpy().copy()
    for key in [k for k, v in stats.items() if v is None]:
        mean = model.state_dict()[key]
        var = torch.from_numpy(stats[key[: -len("running_mean")] + "running_var"])
        mean.add_(0.2 * var.sqrt() * torch.from_numpy(rs.standard_normal(mean.shape).astype(np.float32)))
        stats[key] = mean.numpy().copy()
    return stats


def top2_gap(v):
    s = np.sort(v, axis=-1)
    return s[..., -1] - s[..., -2]


def make(name):
    config_name, seed = MODELS_TO_MAKE[name]
    cfg, model_cfg = model_dict(config_name)
    model = MODELS.build(ConfigDict(model_cfg))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("data_preprocessor")}
    weights = synthetic_state_dict({k: tuple(v.shape) for k, v in state.items()}, seed)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert not unexpected and all(k.startswith("data_preprocessor") for k in missing), (missing, unexpected)
    model.eval()

    meta = parse_pose_metainfo(dict(from_file=os.path.join(MIM, "configs", "_base_", "datasets", "coco.py")))
    model.dataset_meta = meta
    pipeline = Compose([
        dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
        dict(type="TopdownAffine", input_size=tuple(model_cfg["head"]["input_size"])), dict(type="PackPoseInputs"),
    ])
    boxes = people()
    image_dir = os.path.join(SHARED, "data", "coco_mini", "train2017")
    samples, owners = [], []
    for i, f in enumerate(IMAGES):
        for box in boxes[f]:
            info = dict(img_path=os.path.join(image_dir, f), bbox=box[None], bbox_score=np.ones(1, np.float32))
            info.update(meta)
            samples.append(pipeline(info))
            owners.append(i)
    with torch.no_grad():
        batch = model.data_preprocessor(pseudo_collate(samples), False)
        bn_stats = calibrate_batch_norm(model, batch["inputs"], seed)
        simcc_x, simcc_y = model(batch["inputs"], None, mode="tensor")
        results = {}
        for flip in (False, True):
            model.test_cfg = dict(flip_test=flip)
            out = model.test_step(pseudo_collate(samples))
            results[flip] = (np.concatenate([o.pred_instances.keypoints for o in out]).astype(np.float32),
                             np.concatenate([o.pred_instances.keypoint_scores for o in out]).astype(np.float32))

    # Training: targets from MMPose's codec, its loss and accuracy.
    from mmpose.codecs import SimCCLabel
    from mmpose.evaluation.functional import simcc_pck_accuracy

    rs = np.random.RandomState(2000 + seed)
    n, k = simcc_x.shape[:2]
    w, h = model_cfg["head"]["input_size"]
    train_kpts = rs.uniform([-10, -10], [w + 10, h + 10], (n, k, 2)).astype(np.float32)
    # Half of the instances near their predictions: some accuracy hits.
    pred_xy = np.stack([simcc_x.numpy().argmax(-1), simcc_y.numpy().argmax(-1)], -1) / 2.0
    train_kpts[: n // 2] = (pred_xy[: n // 2] + rs.uniform(-3, 3, (n // 2, k, 2))).astype(np.float32)
    train_vis = (rs.uniform(size=(n, k)) > 0.2).astype(np.float32)
    codec_cfg = {key: v for key, v in model_cfg["head"]["decoder"].items() if key != "type"}
    codec = SimCCLabel(**codec_cfg)
    enc = [codec.encode(train_kpts[i : i + 1], train_vis[i : i + 1]) for i in range(n)]
    gt_x = torch.from_numpy(np.concatenate([e["keypoint_x_labels"] for e in enc]))
    gt_y = torch.from_numpy(np.concatenate([e["keypoint_y_labels"] for e in enc]))
    weights = torch.from_numpy(np.concatenate([e["keypoint_weights"] for e in enc]).astype(np.float32))
    loss = model.head.loss_module((simcc_x, simcc_y), (gt_x, gt_y), weights)
    _, acc, _ = simcc_pck_accuracy((simcc_x.numpy(), simcc_y.numpy()), (gt_x.numpy(), gt_y.numpy()),
                                   model_cfg["head"]["simcc_split_ratio"], weights.numpy() > 0)

    out = dict(
        seed=seed, model_json=json.dumps(model_cfg),
        train_keypoints=train_kpts, train_visible=train_vis, train_weights=weights.numpy(),
        train_loss=np.float64(loss.item()), train_acc_pose=np.float64(acc),
        image_names=np.array(IMAGES), owners=np.array(owners, np.int64),
        bboxes=np.concatenate([boxes[f] for f in IMAGES]),
        crops_bgr=np.stack([s["inputs"].permute(1, 2, 0).numpy() for s in samples]).astype(np.uint8),
        simcc_x=simcc_x.numpy(), simcc_y=simcc_y.numpy(),
        gap_x=top2_gap(simcc_x.numpy()), gap_y=top2_gap(simcc_y.numpy()),
        keypoints_noflip=results[False][0], scores_noflip=results[False][1],
        keypoints_flip=results[True][0], scores_flip=results[True][1],
        num_parameters=np.int64(sum(p.numel() for p in model.parameters() if p.requires_grad)),
    )
    for key, value in bn_stats.items():
        out[f"bn:{key}"] = value.astype(np.float32)
    path = os.path.join(ROOT, "tests", "fixtures", f"rtmpose_{name}_coco.npz")
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    print(f"{name}: {len(samples)} crops, params {int(out['num_parameters'])}, "
          f"simcc_x range [{out['simcc_x'].min():.2f}, {out['simcc_x'].max():.2f}], "
          f"scores {out['scores_noflip'].min():.2f}..{out['scores_noflip'].max():.2f}, "
          f"min gap x {out['gap_x'].min():.2e} y {out['gap_y'].min():.2e}, "
          f"distinct x argmax {len(np.unique(out['simcc_x'].argmax(-1)))}, "
          f"loss {float(out['train_loss']):.4f} acc {float(out['train_acc_pose']):.3f}, "
          f"{os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    torch.set_num_threads(2)
    for name in sys.argv[1:] or list(MODELS_TO_MAKE):
        make(name)
