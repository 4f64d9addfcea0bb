"""The coco_mini people and a plain pycocotools keypoint AP, shared by tests and tools.

This is how ``../shared/reference/tinypose/tinypose_*_coco_stats.json`` was
scored: COCO results format with ``score`` = mean keypoint score, then
pycocotools' COCOeval (iouType "keypoints") with COCO's sigmas.
"""

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def coco_mini_people(root):
    """Per image: path, (N, 4) xyxy ground-truth boxes of annotated people, image id."""
    root = Path(root)
    coco = json.loads((root / "annotations/person_keypoints_train2017.json").read_text())
    files = {img["id"]: img["file_name"] for img in coco["images"]}
    boxes = defaultdict(list)
    for ann in coco["annotations"]:
        if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
            x, y, w, h = ann["bbox"]
            boxes[ann["image_id"]].append([x, y, x + w, y + h])
    ids = sorted(boxes)
    return (
        [root / "train2017" / files[i] for i in ids],
        [np.array(boxes[i], np.float32) for i in ids],
        ids,
    )


def coco_keypoint_ap(ann_file, results, image_ids):
    """pycocotools keypoint stats of keraspose PoseResults (one per image id)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = []
    for image_id, result in zip(image_ids, results):
        for kpts, scores in zip(result.keypoints, result.keypoint_scores):
            flat = np.concatenate([kpts, scores[:, None]], axis=1).reshape(-1)
            dets.append({
                "image_id": int(image_id), "category_id": 1,
                "keypoints": [float(v) for v in flat], "score": float(scores.mean()),
            })
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = ["AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]
    return dict(zip(names, map(float, ev.stats)))


def coco_mini_training_samples(root):
    """The annotated people of coco_mini as MMPose-style training samples (one dict per person)."""
    root = Path(root)
    coco = json.loads((root / "annotations/person_keypoints_train2017.json").read_text())
    files = {img["id"]: img["file_name"] for img in coco["images"]}
    samples = []
    for ann in coco["annotations"]:
        if ann["num_keypoints"] > 0 and not ann["iscrowd"]:
            x, y, w, h = ann["bbox"]
            k = np.array(ann["keypoints"], np.float32).reshape(1, 17, 3)
            samples.append(dict(
                img_path=str(root / "train2017" / files[ann["image_id"]]),
                bbox=np.array([[x, y, x + w, y + h]], np.float32),
                bbox_score=np.ones(1, np.float32),
                keypoints=k[..., :2],
                keypoints_visible=np.minimum(1, k[..., 2]),
            ))
    return samples
