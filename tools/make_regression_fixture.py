"""Golden regression-head outputs (DeepPose RegressionHead, RLEHead) from MMPose 1.3.2 for tests/test_regression_heads.py.

Run with the reference venv:

    /work/main/.mmpose-ref/bin/python tools/make_regression_fixture.py

The models: the shared tiny reference ResNet-18 backbone (shared/reference/
models/tiny_res_coco.pth, its backbone weights), MMPose's
``GlobalAveragePooling`` neck and a ``RegressionHead`` or ``RLEHead`` with a
``RegressionLabel`` codec, test_cfg ``flip_test=True, shift_coords=True``, as
in MMPose's td-reg_res50[_rle]-8xb64-210e_coco-256x192 configs. The head's
weights (and RLE's RealNVP flow) are drawn here from a seed and stored.
"ipr": no neck, an ``IntegralRegressionHead`` (debias, the tiny model's own
SimpleBaseline heatmap head as its ``simplebaseline_head``) with an
``IntegralRegressionLabel`` codec, as ipr_res50_debias-8xb64-210e_coco-256x256.
Writes tests/fixtures/regression_{deeppose,rle,ipr}_tiny_res.npz with the model
dict, the head state dict ("head:<key>"), coco_mini boxes, MMPose's crops,
raw head outputs, predictions with the flip test off and on, and the loss
and acc_pose of the raw outputs against targets of random keypoints.
"""

import copy
import json
import os
import sys

import numpy as np
import torch
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("KERASPOSE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))

init_default_scope("mmpose")
import mmpose  # noqa: E402
import mmpose.datasets  # noqa: E402,F401
from mmpose.codecs import RegressionLabel  # noqa: E402
from mmpose.datasets.datasets.utils import parse_pose_metainfo  # noqa: E402
from mmpose.evaluation.functional import keypoint_pck_accuracy  # noqa: E402
from mmpose.registry import MODELS  # noqa: E402

sys.path.insert(0, HERE)
from make_rtmpose_fixture import IMAGES, people  # noqa: E402

MIM = os.path.join(os.path.dirname(mmpose.__file__), ".mim")
HEADS = {"deeppose": ("RegressionHead", 0, dict(type="SmoothL1Loss", use_target_weight=True)),
         "rle": ("RLEHead", 1, dict(type="RLELoss", use_target_weight=True)),
         "ipr": ("IntegralRegressionHead", 2, dict(type="SmoothL1Loss", use_target_weight=True))}


def head_weights(model, seed, dims):
    """Coordinates near the crop's middle that depend on the image; RLE sigmas on both sides of 0.5."""
    rs = np.random.RandomState(seed)
    state = {}
    for key, value in model.state_dict().items():
        if not key.startswith("head."):
            continue
        shape = tuple(value.shape)
        if key == "head.fc.weight":
            w = rs.standard_normal(shape) * (0.012 / np.sqrt(shape[1]))
        elif key == "head.fc.bias":
            w = np.concatenate([np.r_[rs.uniform(0.25, 0.75, 2), rs.uniform(-2, 2, dims - 2)] for _ in range(shape[0] // dims)])
        elif key.endswith("weight"):  # RealNVP linear layers
            w = rs.standard_normal(shape) * (0.5 / np.sqrt(shape[1]))
        elif key.endswith("bias"):
            w = rs.uniform(-0.1, 0.1, shape)
        else:  # RealNVP's buffers (prior, masks): keep
            continue
        state[key] = torch.from_numpy(np.asarray(w, np.float32))
    return state


def make(name):
    head_type, seed, loss = HEADS[name]
    models = os.path.join(SHARED, "reference", "models")
    base = json.load(open(os.path.join(models, "tiny_res_coco_config.json")))
    model_cfg = copy.deepcopy(base)
    if head_type == "IntegralRegressionHead":
        codec = dict(type="IntegralRegressionLabel", input_size=[192, 256], heatmap_size=[48, 64], sigma=2.0,
                     normalize=True)
        model_cfg["head"] = dict(type=head_type, in_channels=64, in_featuremap_size=(6, 8), num_joints=17,
                                 debias=True, deconv_out_channels=[32, 32, 32], deconv_kernel_sizes=[4, 4, 4],
                                 loss=loss, decoder=codec)
    else:
        codec = dict(type="RegressionLabel", input_size=[192, 256])
        model_cfg["neck"] = dict(type="GlobalAveragePooling")
        model_cfg["head"] = dict(type=head_type, in_channels=64, num_joints=17, loss=loss, decoder=codec)
    model_cfg["test_cfg"] = dict(flip_test=True, shift_coords=True)
    model = MODELS.build(model_cfg)
    state = torch.load(os.path.join(models, "tiny_res_coco.pth"), map_location="cpu", weights_only=True)["state_dict"]
    backbone = {k: v for k, v in state.items() if k.startswith("backbone.")}
    dims = 4 if head_type == "RLEHead" else 2
    if head_type == "IntegralRegressionHead":  # the tiny model's trained-shape heatmap head, renamed
        head = {k.replace("head.", "head.simplebaseline_head.", 1): v for k, v in state.items() if k.startswith("head.")}
    else:
        head = head_weights(model, 100 + seed, dims)
    missing, unexpected = model.load_state_dict({**backbone, **head}, strict=False)
    assert not unexpected and all(k.split(".")[-1] in ("loc", "cov", "mask", "linspace_x", "linspace_y")
                                  for k in missing), (missing, unexpected)
    model.eval()
    meta = parse_pose_metainfo(dict(from_file=os.path.join(MIM, "configs", "_base_", "datasets", "coco.py")))
    pipeline = Compose([dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
                        dict(type="TopdownAffine", input_size=(192, 256)), dict(type="PackPoseInputs")])
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
        raw = model(batch["inputs"], None, mode="tensor")
        if isinstance(raw, tuple):  # IntegralRegressionHead: (coordinates, heatmaps)
            raw = raw[0]
        results = {}
        for flip in (False, True):
            model.test_cfg = dict(model_cfg["test_cfg"], flip_test=flip)
            out = model.test_step(pseudo_collate(samples))
            results[flip] = (np.concatenate([o.pred_instances.keypoints for o in out]).astype(np.float32),
                             np.concatenate([o.pred_instances.keypoint_scores for o in out]).astype(np.float32))
        # Training: MMPose's codec, loss and accuracy on random keypoints.
        rs = np.random.RandomState(200 + seed)
        n = raw.shape[0]
        kpts = rs.uniform([-10, -10], [202, 266], (n, 17, 2)).astype(np.float32)
        kpts[: n // 2] = (raw[: n // 2, :, :2].numpy() * [192, 256] + rs.uniform(-6, 6, (n // 2, 17, 2))).astype(np.float32)
        vis = (rs.uniform(size=(n, 17)) > 0.2).astype(np.float32)
        enc = [RegressionLabel(input_size=(192, 256)).encode(kpts[i : i + 1], vis[i : i + 1]) for i in range(n)]
        labels = torch.from_numpy(np.concatenate([e["keypoint_labels"] for e in enc]))
        weights = torch.from_numpy(np.concatenate([e["keypoint_weights"] for e in enc]).astype(np.float32))
        if head_type == "IntegralRegressionHead":
            loss_value = model.head.loss_module(raw, labels, weights)
        elif head_type == "RLEHead":
            loss_value = model.head.loss_module(raw[..., :2], raw[..., 2:4], labels, weights.unsqueeze(-1))
        else:
            loss_value = model.head.loss_module(raw, labels, weights.unsqueeze(-1))
        _, acc, _ = keypoint_pck_accuracy(raw[..., :2].numpy(), labels.numpy(), weights.numpy() > 0, 0.05,
                                          np.ones((n, 2), np.float32))
    out = dict(
        model_json=json.dumps(model_cfg), image_names=np.array(IMAGES), owners=np.array(owners, np.int64),
        bboxes=np.concatenate([boxes[f] for f in IMAGES]),
        crops_bgr=np.stack([s["inputs"].permute(1, 2, 0).numpy() for s in samples]).astype(np.uint8),
        raw=raw.numpy(), keypoints_noflip=results[False][0], scores_noflip=results[False][1],
        keypoints_flip=results[True][0], scores_flip=results[True][1],
        train_keypoints=kpts, train_visible=vis, train_weights=weights.numpy(),
        train_loss=np.float64(loss_value.item()), train_acc_pose=np.float64(acc),
    )
    for key, value in head.items():
        out[f"head:{key}"] = value.numpy()
    path = os.path.join(ROOT, "tests", "fixtures", f"regression_{name}_tiny_res.npz")
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    print(f"{name}: {n} crops, coords {raw[..., :2].min():.2f}..{raw[..., :2].max():.2f}, "
          f"scores {out['scores_noflip'].min():.3f}..{out['scores_noflip'].max():.3f}, "
          f"loss {float(out['train_loss']):.4f} acc {float(out['train_acc_pose']):.3f}, {os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    torch.set_num_threads(2)
    for name in sys.argv[1:] or list(HEADS):
        make(name)
