"""Reference side of bench_data_pipeline.py; runs inside the MMPose venv.

usage: _mmpose_data_pipeline.py DATA_ROOT ANN_FILE IMG_PREFIX THREADS PASSES WARMUP_PASSES BATCH_SIZE SEED
Builds MMPose's CocoDataset (data_mode='topdown') with MMPose's standard
top-down training pipeline from its registry and times, over the same
``PASSES`` passes of all samples that the keraspose side does:

* ``sample_packed``: ``dataset[i]`` (data info + the pipeline ending in
  PackPoseInputs), i.e. what one DataLoader worker does per sample;
* ``sample_nopack``: the same transforms without PackPoseInputs applied to
  ``dataset.get_data_info(i)``;
* ``batch``: ``pseudo_collate`` of ``BATCH_SIZE`` packed samples followed by
  ``PoseDataPreprocessor`` (stack, BGR->RGB, normalise), the MMPose
  counterpart of one ``TopdownPyDataset`` item.

Prints one JSON line with the per-pass seconds and sample counts.
"""

import json
import sys

from _reference import time_each

data_root, ann_file, img_prefix, threads, passes, warmup, batch_size, seed = sys.argv[1:9]
threads, passes, warmup, batch_size, seed = map(int, (threads, passes, warmup, batch_size, seed))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

cv2.setNumThreads(threads)
torch.set_num_threads(threads)
np.random.seed(seed)  # MMPose's random transforms draw from numpy's global RNG
torch.manual_seed(seed)

from mmengine.dataset import Compose, pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope("mmpose")
import mmpose  # noqa: E402
import mmpose.datasets  # noqa: E402,F401  (registers datasets and transforms)
import mmpose.models  # noqa: E402,F401  (registers PoseDataPreprocessor)
from mmpose.registry import DATASETS, MODELS  # noqa: E402

codec = dict(type="MSRAHeatmap", input_size=(192, 256), heatmap_size=(48, 64), sigma=2)
transforms = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="RandomFlip", direction="horizontal"),
    dict(type="RandomHalfBody"),
    dict(type="RandomBBoxTransform"),
    dict(type="TopdownAffine", input_size=codec["input_size"]),
    dict(type="GenerateTarget", encoder=codec),
]
dataset = DATASETS.build(
    dict(
        type="CocoDataset", data_root=data_root, ann_file=ann_file, data_prefix=dict(img=img_prefix),
        data_mode="topdown", test_mode=False, pipeline=transforms + [dict(type="PackPoseInputs")],
    )
)
nopack = Compose(transforms)
preprocessor = MODELS.build(
    dict(type="PoseDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
)
n = len(dataset)
batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def sample_packed():
    for i in range(n):
        dataset[i]


def sample_nopack():
    for i in range(n):
        out = nopack(dataset.get_data_info(i))
        assert out is not None


def batch():
    for idx in batches:
        preprocessor(pseudo_collate([dataset[i] for i in idx]), training=True)


result = {
    "mmpose": mmpose.__version__, "torch": torch.__version__, "opencv": cv2.__version__,
    "threads": threads, "samples": n, "times": {},
}
with torch.no_grad():
    for name, fn in [("sample_packed", sample_packed), ("sample_nopack", sample_nopack), ("batch", batch)]:
        result["times"][name] = time_each(fn, passes, warmup)

# One packed sample's shapes, to show both sides produce the same thing.
s = dataset[0]
result["shapes"] = {
    "img": list(s["inputs"].shape),
    "heatmaps": list(s["data_samples"].gt_fields.heatmaps.shape),
    "keypoint_weights": list(np.asarray(s["data_samples"].gt_instance_labels.keypoint_weights).shape),
}
print(json.dumps(result))
