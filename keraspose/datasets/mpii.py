"""MPII Human Pose in MMPose's json format (center/scale boxes, 16 joints).

MMPose's MPII annotation files are a json list with one entry per person::

    {"image": "005808361.jpg", "center": [966, 340], "scale": 4.718,
     "joints": [[804, 711], ...], "joints_vis": [1, ...]}

``center`` is in 1-based (MATLAB) pixels and ``scale`` is the person's size
in units of 200 px. The box is rebuilt the way MMPose does it: the center is
moved 15 px (at scale 1) down so limbs are not cropped, converted to 0-based
pixels, and the box is the square of side ``scale * 200`` around it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from keraspose.datasets._validation import check_images_exist, read_json
from keraspose.datasets.coco import _BaseKeypointDataset, resolve_metainfo

__all__ = ["MpiiDataset"]

# MPII's scale unit: a scale of 1 is a 200 px person.
_PIXEL_STD = 200.0


class MpiiDataset(_BaseKeypointDataset):
    """Top-down samples from an MPII annotation json in MMPose's format.

    Args:
        ann_file: the json list (see the module docstring).
        image_root: folder of the images named by ``image``.
        metainfo: keypoint set; MPII's 16 joints by default.
        test_mode: evaluation rather than training data.
        check_images: verify up front that every image exists.

    Samples have MMPose's keys: ``id`` (running index), ``img_id`` (the
    number in the file name), ``img_path``, ``bbox_center`` (1, 2),
    ``bbox_scale`` (1, 2) in pixels, ``bbox`` (1, 4) xyxy, ``bbox_score``,
    ``keypoints`` (1, K, 2), ``keypoints_visible`` (1, K), ``area`` (1,)
    = ``0.53 * box area`` and ``category_id``. People with no labelled
    joint are dropped.

    Example:
        >>> from keraspose.datasets import MpiiDataset
        >>> ds = MpiiDataset("mpii/annotations/mpii_val.json", "mpii/images")  # doctest: +SKIP
        >>> ds[0]["keypoints"].shape  # doctest: +SKIP
        (1, 16, 2)
    """

    def __init__(self, ann_file, image_root, metainfo="mpii", test_mode: bool = False, check_images: bool = True):
        self.ann_file = Path(os.fspath(ann_file))
        self.image_root = Path(os.fspath(image_root))
        self.metainfo = resolve_metainfo(metainfo)
        self.test_mode = test_mode
        anns = read_json(self.ann_file)
        self._validate(anns)
        self.data_list = self._parse(anns)
        if check_images:
            check_images_exist((s["img_path"] for s in self.data_list), self.image_root, self.ann_file)

    def _validate(self, anns: Any) -> None:
        where = f"MPII annotation file '{self.ann_file}'"
        if not isinstance(anns, list):
            hint = " (this looks like a COCO-format file: use CocoStyleDataset)" if isinstance(anns, dict) and "annotations" in anns else ""
            raise ValueError(f"{where} must hold a json list of people, got a json {type(anns).__name__}{hint}.")
        k = self.metainfo.num_keypoints
        for i, ann in enumerate(anns):
            missing = [key for key in ("image", "center", "scale", "joints", "joints_vis") if not isinstance(ann, dict) or key not in ann]
            if missing:
                raise ValueError(f"{where}: entry {i} lacks {missing}.")
            joints = np.asarray(ann["joints"], dtype=np.float64)
            if joints.ndim != 2 or joints.shape[1] != 2 or len(ann["joints_vis"]) != len(joints):
                raise ValueError(f"{where}: entry {i} needs 'joints' as [[x, y], ...] and one 'joints_vis' per joint.")
            if len(joints) != k:
                raise ValueError(
                    f"{where}: entry {i} has {len(joints)} joints but the metainfo "
                    f"('{self.metainfo.dataset_name}') defines {k}. Pass the matching metainfo."
                )

    def _image_id(self, name: str) -> int:
        # MPII names its images by number ("005808361.jpg" -> 5808361), and
        # MMPose uses that number as the image id; other names get a running
        # number so a custom dataset in this format still loads.
        stem = os.path.splitext(os.path.basename(name))[0]
        if stem.isdigit():
            return int(stem)
        return self._other_ids.setdefault(name, -1 - len(self._other_ids))

    def _parse(self, anns: list) -> List[Dict[str, Any]]:
        samples = []
        self._other_ids: Dict[str, int] = {}
        for ann_id, ann in enumerate(anns):
            center = np.array(ann["center"], dtype=np.float32)
            scale = np.array([ann["scale"], ann["scale"]], dtype=np.float32) * _PIXEL_STD
            if center[0] != -1:  # -1 marks an unknown center; leave it alone
                # Added in float64, then stored as float32, as MMPose does.
                center[1] = float(center[1]) + 15.0 / _PIXEL_STD * float(scale[1])
            center = (center - 1).reshape(1, 2)  # 1-based MATLAB pixels -> 0-based
            scale = scale.reshape(1, 2)
            top_left = center - 0.5 * scale
            bbox = np.concatenate([top_left, top_left + scale], axis=1)
            w, h = bbox[0, 2] - bbox[0, 0], bbox[0, 3] - bbox[0, 1]
            keypoints = np.array(ann["joints"], dtype=np.float32).reshape(1, -1, 2)
            sample = {
                "id": ann_id,
                "img_id": self._image_id(ann["image"]),
                "img_path": os.path.join(self.image_root, ann["image"]),
                "bbox_center": center,
                "bbox_scale": scale,
                "bbox": bbox,
                "bbox_score": np.ones(1, dtype=np.float32),
                "keypoints": keypoints,
                "keypoints_visible": np.array(ann["joints_vis"], dtype=np.float32).reshape(1, -1),
                "area": np.array([max(w * h * 0.53, 1.0)], dtype=np.float32),
                "category_id": ann.get("category_id", [1]),
            }
            # The same validity filter as MMPose's top-down datasets.
            if w > 0 and h > 0 and np.max(keypoints) > 0:
                samples.append(sample)
        return samples
