"""Golden UDP HRNet predictions from MMPose 1.3.2 for tests/test_udp.py.

Run with the reference venv:

    /work/main/.mmpose-ref/bin/python tools/make_udp_fixture.py

The model is the shared tiny reference HRNet (shared/reference/models/
tiny_hrnet_coco.pth; its final layer's weight and bias divided by
``HEATMAP_SCALE`` so the heatmaps peak near 1 as a trained model's do: UDP's
DARK decoding takes the log of heatmaps clipped to [1e-3, 50], and on the
raw random model's peaks of up to 58 its Newton step is ill-conditioned)
configured the way MMPose's UDP
configs are (td-hm_hrnet-w32_udp-8xb64-210e_coco-256x192): a
``UDPHeatmap`` codec (gaussian, sigma 2), ``TopdownAffine(use_udp=True)`` in
the pipeline and ``test_cfg = dict(flip_test=True, flip_mode='heatmap',
shift_heatmap=False)``. Writes tests/fixtures/udp_tiny_hrnet_coco.npz with
the model dict, coco_mini images and annotated boxes, MMPose's UDP crops
(uint8 BGR) and its predictions (image pixels) with the flip test off and on.
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
from mmpose.datasets.datasets.utils import parse_pose_metainfo  # noqa: E402
from mmpose.registry import MODELS  # noqa: E402

sys.path.insert(0, HERE)
from make_rtmpose_fixture import IMAGES, people  # noqa: E402

MIM = os.path.join(os.path.dirname(mmpose.__file__), ".mim")
HEATMAP_SCALE = 64.0


def main():
    models = os.path.join(SHARED, "reference", "models")
    model_cfg = json.load(open(os.path.join(models, "tiny_hrnet_coco_config.json")))
    model_cfg = copy.deepcopy(model_cfg)
    codec = dict(type="UDPHeatmap", input_size=[192, 256], heatmap_size=[48, 64], sigma=2)
    model_cfg["head"]["decoder"] = codec
    model_cfg["test_cfg"] = dict(flip_test=True, flip_mode="heatmap", shift_heatmap=False)
    model = MODELS.build(model_cfg)
    state = torch.load(os.path.join(models, "tiny_hrnet_coco.pth"), map_location="cpu", weights_only=True)
    weights = dict(state["state_dict"])
    for key in ("head.final_layer.weight", "head.final_layer.bias"):
        weights[key] = weights[key] / HEATMAP_SCALE
    model.load_state_dict(weights)
    model.eval()
    meta = parse_pose_metainfo(dict(from_file=os.path.join(MIM, "configs", "_base_", "datasets", "coco.py")))
    pipeline = Compose([
        dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
        dict(type="TopdownAffine", input_size=(192, 256), use_udp=True), dict(type="PackPoseInputs"),
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
    results = {}
    with torch.no_grad():
        for flip in (False, True):
            model.test_cfg = dict(model_cfg["test_cfg"], flip_test=flip)
            out = model.test_step(pseudo_collate(samples))
            results[flip] = (np.concatenate([o.pred_instances.keypoints for o in out]).astype(np.float32),
                             np.concatenate([o.pred_instances.keypoint_scores for o in out]).astype(np.float32))
    out = dict(
        model_json=json.dumps(model_cfg), heatmap_scale=np.float64(HEATMAP_SCALE), image_names=np.array(IMAGES), owners=np.array(owners, np.int64),
        bboxes=np.concatenate([boxes[f] for f in IMAGES]),
        crops_bgr=np.stack([s["inputs"].permute(1, 2, 0).numpy() for s in samples]).astype(np.uint8),
        keypoints_noflip=results[False][0], scores_noflip=results[False][1],
        keypoints_flip=results[True][0], scores_flip=results[True][1],
    )
    path = os.path.join(ROOT, "tests", "fixtures", "udp_tiny_hrnet_coco.npz")
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    print(f"{len(samples)} crops, scores {out['scores_noflip'].min():.3f}..{out['scores_noflip'].max():.3f}, "
          f"{os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
