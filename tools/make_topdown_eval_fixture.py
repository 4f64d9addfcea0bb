"""MMPose 1.3.2's whole top-down evaluation of the tiny reference HRNet on test_coco with detected boxes.

Run with the MMPose reference venv's python (see ../shared/tools/mmpose_reference_env.sh):

    .mmpose-ref/bin/python tools/make_topdown_eval_fixture.py ../shared tests/fixtures

What MMPose's test loop does, with its own pieces: ``CocoDataset``
(top-down, ``bbox_file`` = test_coco_det_AP_H_56.json, boxes scoring >= 0.3),
the validation pipeline (LoadImage, GetBBoxCenterScale, TopdownAffine,
PackPoseInputs), ``TopdownPoseEstimator.test_step`` with the config's flip
test, and ``CocoMetric`` writing its results file. Saves
``tiny_hrnet_test_coco_det.keypoints.json`` (the rescored, OKS-NMSed results)
and ``tiny_hrnet_test_coco_det.stats.json``. The model has random weights, so
the AP is near zero; what the fixture pins down is every instance's keypoints
and score after the whole chain.
"""

import json
import sys
from pathlib import Path

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

shared, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
init_default_scope("mmpose")
import mmpose.datasets  # noqa: E402,F401  (registers datasets and transforms)
from mmpose.registry import DATASETS, METRICS, MODELS  # noqa: E402

torch.set_num_threads(2)
model_cfg = json.loads((shared / "reference/models/tiny_hrnet_coco_config.json").read_text())
model = MODELS.build(model_cfg)
state = torch.load(shared / "reference/models/tiny_hrnet_coco.pth", map_location="cpu", weights_only=True)
model.load_state_dict(state["state_dict"])
model.eval()

coco = shared / "data/mmpose_tests/coco"
dataset = DATASETS.build(dict(
    type="CocoDataset", data_root=str(coco), data_mode="topdown", ann_file="test_coco.json",
    bbox_file=str(coco / "test_coco_det_AP_H_56.json"), filter_cfg=dict(bbox_score_thr=0.3),
    data_prefix=dict(img=""), test_mode=True,
    pipeline=[
        dict(type="LoadImage"),
        dict(type="GetBBoxCenterScale"),
        dict(type="TopdownAffine", input_size=(192, 256)),
        dict(type="PackPoseInputs"),
    ],
))
prefix = out_dir / "tiny_hrnet_test_coco_det"
metric = METRICS.build(dict(type="CocoMetric", ann_file=str(coco / "test_coco.json"), outfile_prefix=str(prefix)))
metric.dataset_meta = dataset.metainfo
with torch.no_grad():
    for start in range(0, len(dataset), 8):
        batch = pseudo_collate([dataset[i] for i in range(start, min(start + 8, len(dataset)))])
        outputs = model.test_step(batch)
        metric.process([], [o.to_dict() for o in outputs])
stats = metric.evaluate(len(dataset))
(out_dir / "tiny_hrnet_test_coco_det.stats.json").write_text(
    json.dumps({"people": len(dataset), "stats": stats}, indent=1)
)
print(f"{len(dataset)} boxes; {stats}")
