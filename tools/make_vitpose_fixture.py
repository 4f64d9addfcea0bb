"""Golden ViTPose outputs from MMPose 1.3.2 + mmpretrain 1.2.0 for tests/test_vitpose.py.

Run with the reference venv (mmpretrain 1.2.0 installed beside MMPose):

    /work/main/.mmpose-ref/bin/python tools/make_vitpose_fixture.py [classic] [simple] [counts]

``classic`` / ``simple``: MMPose's ViTPose-S COCO configs (two-deconvolution
head; FeatureMapProcessor neck + 3x3 conv head), with the backbone shrunk to
2 blocks of width 64 (4 heads) so the fixture and the test stay small. The
simple one lays its position embedding out for 128x96 crops, so running on
256x192 crops exercises mmpretrain's bicubic resize. Weights come from
tests/vitpose_weights.py on both sides; the classic head's BatchNorm
statistics are calibrated on the crops, perturbed and stored ("bn:<key>").
Writes tests/fixtures/vitpose_{classic,simple}.npz with the MMPose model dict
(JSON), the seed, the uint8 BGR crops of MMPose's UDP validation pipeline,
MMPose's heatmaps ("tensor" mode) and its predictions (test_step, image
pixels) with the flip test off and on.

``catalogue``: keraspose/presets/catalogue/vitpose_{s,b,l,h}[_simple]_coco.json from
MMPose's configs and its model-zoo file (vitpose_coco.yml: checkpoint URLs,
whose names carry the sha256 prefix, and the reported COCO metrics).

``layer_decay``: MMPose's layer-wise learning-rate decay groups and two AdamW
steps on the tiny classic model, into tests/fixtures/vitpose_layer_decay.json.

``counts``: the trainable parameter counts of MMPose's real ViTPose-S/B/L/H
(classic and simple) COCO models, into tests/fixtures/vitpose_param_counts.json.

mmpretrain.models imports torchvision, whose wheel does not load with this
torch build; nothing ViTPose uses needs it: tools/torchvision_stand_in.py
answers those imports with an empty package.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("KERASPOSE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

import torchvision_stand_in  # noqa: E402,F401  (before mmpretrain)
import torch  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.dataset import Compose, pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope("mmpose")
import mmpretrain.models  # noqa: E402,F401  (registers VisionTransformer under the mmpretrain scope)
import mmpose  # noqa: E402
import mmpose.datasets  # noqa: E402,F401
from mmpose.datasets.datasets.utils import parse_pose_metainfo  # noqa: E402
from mmpose.registry import MODELS  # noqa: E402

from vitpose_weights import synthetic_state_dict  # noqa: E402

MIM = os.path.join(os.path.dirname(mmpose.__file__), ".mim")
CFG_DIR = os.path.join(MIM, "configs", "body_2d_keypoint", "topdown_heatmap", "coco")
# portrait with 1 person, landscape with 2: three crops keep each fixture near 1 MB
IMAGES = ["000000069468.jpg", "000000113488.jpg"]
TINY_ARCH = {"embed_dims": 64, "num_layers": 2, "num_heads": 4, "feedforward_channels": 128}
VARIANTS = {
    "classic": ("td-hm_ViTPose-small_8xb64-210e_coco-256x192.py", 0, (256, 192)),
    "simple": ("td-hm_ViTPose-small-simple_8xb64-210e_coco-256x192.py", 1, (128, 96)),
}
SIZES = ("small", "base", "large", "huge")


def model_dict(config_name):
    cfg = Config.fromfile(os.path.join(CFG_DIR, config_name))
    model_cfg = cfg.model.to_dict()
    model_cfg["backbone"].pop("init_cfg", None)
    return model_cfg


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
    """Running statistics from the crops, then perturbed, so that BN in eval mode is no identity."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    model(inputs, None, mode="tensor")
    model.eval()
    rs = np.random.RandomState(1000 + seed)
    stats = {}
    state = model.state_dict()
    for key in sorted(state):
        if key.endswith("running_var"):
            var = state[key]
            var.mul_(torch.from_numpy(rs.uniform(0.5, 2.0, var.shape).astype(np.float32)))
            mean = state[key[: -len("running_var")] + "running_mean"]
            mean.add_(0.2 * var.sqrt() * torch.from_numpy(rs.standard_normal(mean.shape).astype(np.float32)))
            stats[key] = var.numpy().copy()
            stats[key[: -len("running_var")] + "running_mean"] = mean.numpy().copy()
    return stats


def decoding_sensitivity(model, samples, keypoints, trials=4):
    """How far MMPose's own keypoints move when its heatmaps change by float noise (1e-6 of their maximum).

    UDP's DARK step divides by the second derivative of the log-heatmap: on a
    random model's flat or negative peaks it amplifies float noise into tenths
    of a pixel. Measured here, on MMPose's side, per keypoint (image pixels),
    the test allows that much beyond its 1e-2 px.
    """
    rs = np.random.RandomState(0)
    last = model.head.final_layer

    def add_noise(module, inputs, output):
        scale = 1e-6 * output.abs().max()
        return output + scale * torch.from_numpy(rs.standard_normal(output.shape).astype(np.float32))

    handle = last.register_forward_hook(add_noise)
    moved = np.zeros(keypoints.shape[:2], np.float32)
    try:
        for _ in range(trials):
            out = model.test_step(pseudo_collate(samples))
            noisy = np.concatenate([o.pred_instances.keypoints for o in out])
            moved = np.maximum(moved, np.abs(noisy - keypoints).max(-1))
    finally:
        handle.remove()
    return moved


def make(variant):
    config_name, seed, img_size = VARIANTS[variant]
    model_cfg = model_dict(config_name)
    model_cfg["backbone"]["arch"] = dict(TINY_ARCH)
    model_cfg["backbone"]["img_size"] = list(img_size)
    model_cfg["head"]["in_channels"] = TINY_ARCH["embed_dims"]
    model = MODELS.build(ConfigDict(model_cfg))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("data_preprocessor")}
    weights = synthetic_state_dict(
        {k: tuple(v.shape) for k, v in state.items() if "running_" not in k and "num_batches" not in k}, seed
    )
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert not unexpected and all("running_" in k or "num_batches" in k or k.startswith("data_preprocessor")
                                  for k in missing), (missing, unexpected)
    model.eval()

    meta = parse_pose_metainfo(dict(from_file=os.path.join(MIM, "configs", "_base_", "datasets", "coco.py")))
    model.dataset_meta = meta
    input_size = tuple(model_cfg["head"]["decoder"]["input_size"])
    pipeline = Compose([
        dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
        dict(type="TopdownAffine", input_size=input_size, use_udp=True), dict(type="PackPoseInputs"),
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
        bn_stats = calibrate_batch_norm(model, batch["inputs"], seed) if variant == "classic" else {}
        heatmaps = model(batch["inputs"], None, mode="tensor")
        results, sensitivity = {}, {}
        for flip in (False, True):
            model.test_cfg = dict(model_cfg["test_cfg"], flip_test=flip)
            out = model.test_step(pseudo_collate(samples))
            results[flip] = (np.concatenate([o.pred_instances.keypoints for o in out]).astype(np.float32),
                             np.concatenate([o.pred_instances.keypoint_scores for o in out]).astype(np.float32))
            sensitivity[flip] = decoding_sensitivity(model, samples, results[flip][0])
    out = dict(
        seed=seed, model_json=json.dumps(model_cfg),
        image_names=np.array(IMAGES), owners=np.array(owners, np.int64),
        bboxes=np.concatenate([boxes[f] for f in IMAGES]),
        crops_bgr=np.stack([s["inputs"].permute(1, 2, 0).numpy() for s in samples]).astype(np.uint8),
        heatmaps=heatmaps.numpy().astype(np.float32),
        keypoints_noflip=results[False][0], scores_noflip=results[False][1],
        keypoints_flip=results[True][0], scores_flip=results[True][1],
        sensitivity_noflip=sensitivity[False], sensitivity_flip=sensitivity[True],
        num_parameters=np.int64(sum(p.numel() for p in model.parameters() if p.requires_grad)),
    )
    for key, value in bn_stats.items():
        out[f"bn:{key}"] = value.astype(np.float32)
    path = os.path.join(ROOT, "tests", "fixtures", f"vitpose_{variant}.npz")
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    hm = out["heatmaps"]
    print(f"{variant}: {len(samples)} crops, heatmaps {hm.shape} range [{hm.min():.3f}, {hm.max():.3f}], "
          f"scores {out['scores_noflip'].min():.2f}..{out['scores_noflip'].max():.2f}, "
          f"params {int(out['num_parameters'])}, {os.path.getsize(path) / 1e6:.2f} MB")


def counts():
    """MMPose's trainable parameter count of each real ViTPose COCO model."""
    result = {}
    for size in SIZES:
        for head in ("classic", "simple"):
            name = f"td-hm_ViTPose-{size}{'-simple' if head == 'simple' else ''}_8xb64-210e_coco-256x192.py"
            with torch.device("meta"):  # shapes only: ViT-H has 630M parameters
                model = MODELS.build(ConfigDict(model_dict(name)))
            result[f"{size}_{head}"] = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
            print(size, head, result[f"{size}_{head}"])
    path = os.path.join(ROOT, "tests", "fixtures", "vitpose_param_counts.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"source": "MMPose 1.3.2 + mmpretrain 1.2.0, configs/body_2d_keypoint/topdown_heatmap/coco/"
                   "td-hm_ViTPose-*_8xb64-210e_coco-256x192.py, trainable parameters", "counts": result}, f, indent=1)
    os.replace(path + ".tmp", path)


def layer_decay():
    """MMPose's layer-wise learning-rate decay on the tiny classic model: groups and two AdamW steps.

    The ViTPose-S config's optimizer (AdamW lr 5e-4, weight decay 0.1,
    LayerDecayOptimWrapperConstructor with layer_decay_rate 0.8 and its
    no-decay rules; num_layers set to the tiny model's 2 blocks, no gradient
    clipping) on the classic fixture model, two steps with seeded synthetic
    gradients (tests/vitpose_weights.py with seed 100 + step). Writes
    tests/fixtures/vitpose_layer_decay.json: per MMPose parameter name its
    lr scale and weight decay, and the L2 norm and the sum of its change
    after the two steps (both independent of the tensor layout).
    """
    from mmengine.optim import build_optim_wrapper

    config_name, seed, img_size = VARIANTS["classic"]
    model_cfg = model_dict(config_name)
    model_cfg["backbone"]["arch"] = dict(TINY_ARCH)
    model_cfg["head"]["in_channels"] = TINY_ARCH["embed_dims"]
    model = MODELS.build(ConfigDict(model_cfg))
    params = dict(model.named_parameters())
    weights = synthetic_state_dict({k: tuple(v.shape) for k, v in params.items()}, seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    cfg = Config.fromfile(os.path.join(CFG_DIR, config_name))
    optim_cfg = cfg.optim_wrapper.to_dict()
    optim_cfg.pop("clip_grad", None)
    optim_cfg["paramwise_cfg"]["num_layers"] = TINY_ARCH["num_layers"]
    wrapper = build_optim_wrapper(model, ConfigDict(optim_cfg))
    groups = {}
    for group in wrapper.optimizer.param_groups:
        for name in group["param_names"]:
            groups[name] = {"lr_scale": group["lr_scale"], "weight_decay": group["weight_decay"]}
    before = {k: v.detach().clone() for k, v in params.items()}
    for step in range(2):
        grads = synthetic_state_dict({k: tuple(v.shape) for k, v in params.items()}, 100 + step)
        for name, p in params.items():
            p.grad = torch.from_numpy(grads[name])
        wrapper.optimizer.step()
    result = {}
    for name, p in params.items():
        delta = (p.detach() - before[name]).double()
        result[name] = dict(groups[name], update_norm=float(delta.norm()), update_sum=float(delta.sum()))
    path = os.path.join(ROOT, "tests", "fixtures", "vitpose_layer_decay.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"source": f"MMPose 1.3.2 LayerDecayOptimWrapperConstructor, {config_name} optim_wrapper "
                   "(num_layers=2, no clip_grad), tiny classic fixture model, 2 steps",
                   "learning_rate": optim_cfg["optimizer"]["lr"], "weight_decay": optim_cfg["optimizer"]["weight_decay"],
                   "layer_decay_rate": optim_cfg["paramwise_cfg"]["layer_decay_rate"], "seed": seed,
                   "gradient_seeds": [100, 101], "parameters": result}, f, indent=1)
    os.replace(path + ".tmp", path)
    print("layer decay:", sorted({round(g["lr_scale"], 4) for g in groups.values()}), f"{len(result)} parameters")


def catalogue():
    import re

    import yaml

    zoo = {m["Name"]: m for m in yaml.safe_load(open(os.path.join(CFG_DIR, "vitpose_coco.yml")))["Models"]}
    out_dir = os.path.join(ROOT, "keraspose", "presets", "catalogue")
    for size in SIZES:
        for head in ("classic", "simple"):
            config = f"td-hm_ViTPose-{size}{'-simple' if head == 'simple' else ''}_8xb64-210e_coco-256x192"
            entry_zoo = zoo[config]
            metrics = entry_zoo["Results"][0]["Metrics"]
            url = entry_zoo["Weights"]
            prefix = re.search(r"-([0-9a-f]{8})_\d{8}\.pth$", url).group(1)
            model_cfg = model_dict(config + ".py")
            with torch.device("meta"):
                num_parameters = sum(p.numel() for p in MODELS.build(ConfigDict(model_cfg)).parameters() if p.requires_grad)
            name = f"vitpose_{size[0]}{'_simple' if head == 'simple' else ''}_coco"
            head_text = (
                "classic head: two 4x4 deconvolutions to 256 channels, then a 1x1 conv" if head == "classic" else
                "simple head: ReLU, x4 bilinear upsampling, then a 3x3 conv"
            )
            entry = {
                "name": name, "task": "pose", "converter": "mmpose",
                "description": (
                    f"ViTPose-{size[0].upper()} (plain ViT-{size} backbone, MAE-pretrained; {head_text}) for the 17 COCO "
                    "body keypoints, 256x192 input, UDP crops and heatmaps (UDPHeatmap codec, flip test without the "
                    "heatmap shift); trained on COCO."
                ),
                "class": "keraspose>TopdownEstimator",
                "hub_handle": f"hf://keraspose/{name}",
                "mmpose_config": config,
                "mmpose_config_url": "https://github.com/open-mmlab/mmpose/blob/main/configs/body_2d_keypoint/"
                f"topdown_heatmap/coco/{config}.py",
                "model_zoo_page": "https://github.com/open-mmlab/mmpose/blob/main/configs/body_2d_keypoint/"
                "topdown_heatmap/coco/vitpose_coco.md",
                "checkpoint_url": url, "checkpoint_sha256": None, "checkpoint_sha256_prefix": prefix,
                "checkpoint_sha256_note": "MMPose publishes only the first 8 hex digits of the sha256 (in the file "
                "name); the download is checked against that prefix.",
                "reported_ap": metrics["AP"],
                "reported_metrics": {"coco/AP": metrics["AP"], "coco/AP50": metrics["AP@0.5"],
                                     "coco/AP75": metrics["AP@0.75"], "coco/AR": metrics["AR"],
                                     "coco/AR50": metrics["AR@0.5"]},
                "metrics_source": "MMPose 1.x model zoo (configs/body_2d_keypoint/topdown_heatmap/coco/vitpose_coco.md "
                "and vitpose_coco.yml), COCO val2017 with detected person boxes (human AP 56.4), flip test",
                "num_parameters": int(num_parameters),
                "input_size": list(model_cfg["head"]["decoder"]["input_size"]),
                "num_keypoints": 17, "dataset": "coco", "license": "apache-2.0",
                "mmpose_model": model_cfg,
            }
            path = os.path.join(out_dir, name + ".json")
            with open(path + ".tmp", "w") as f:
                json.dump(entry, f, indent=2)
                f.write("\n")
            os.replace(path + ".tmp", path)
            print(name, prefix, metrics["AP"], num_parameters)


if __name__ == "__main__":
    torch.set_num_threads(2)
    for what in sys.argv[1:] or [*VARIANTS, "counts"]:
        {"counts": counts, "catalogue": catalogue, "layer_decay": layer_decay}.get(what, lambda: make(what))()
