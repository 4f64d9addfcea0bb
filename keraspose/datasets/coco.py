"""COCO-format top-down keypoint datasets: one sample per annotated person.

:class:`CocoStyleDataset` reads any COCO-format keypoint file (COCO itself,
or a custom keypoint set described by a metainfo file) and yields one sample
dict per person, with the key names and value conventions of MMPose 1.x's
``BaseCocoStyleDataset`` in top-down mode, so that data prepared for MMPose
and numbers reported by it carry over:

* people are dropped when crowd (``iscrowd``), without labelled keypoints
  (``num_keypoints == 0`` or all coordinates 0), or whose box, clipped to the
  image (``[0, width - 1] x [0, height - 1]``), has no area;
* ``bbox`` is the clipped box as (1, 4) float32 ``x1, y1, x2, y2``;
* ``keypoints`` (1, K, 2) and ``keypoints_visible`` (1, K) = ``min(1, v)``.

For evaluation with detected boxes (``bbox_file``, a COCO detection results
json as MMPose's ``COCO_val2017_detections_AP_H_56_person.json``) there is
one sample per detected person box instead, with dummy keypoints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from keraspose.datasets._validation import check_images_exist, read_json, validate_coco_dict

__all__ = ["CocoStyleDataset", "resolve_metainfo"]


def resolve_metainfo(metainfo):
    """``DatasetMetainfo`` from a name (``"coco"``), a json path, a dict or an instance."""
    from keraspose.metainfo import load_metainfo  # lazily: the metainfo module imports Keras

    return load_metainfo(metainfo)


class _BaseKeypointDataset:
    """List-like behaviour shared by the datasets: len, indexing (copies), iteration."""

    data_list: List[Dict[str, Any]]

    def __len__(self) -> int:
        return len(self.data_list)

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        # A copy, so a transform that edits the sample in place cannot
        # corrupt the dataset for the next epoch.
        sample = self.data_list[idx]
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in sample.items()}

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    @property
    def num_keypoints(self) -> int:
        return self.metainfo.num_keypoints

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(ann_file='{self.ann_file}', samples={len(self)}, "
            f"keypoints={self.num_keypoints}, test_mode={self.test_mode})"
        )


class CocoStyleDataset(_BaseKeypointDataset):
    """Top-down samples (one per person) from a COCO-format keypoint annotation file.

    Args:
        ann_file: COCO keypoint annotation json (``images``, ``annotations``
            with ``keypoints`` as ``x, y, v`` triplets, ``bbox`` as
            ``x, y, w, h``).
        image_root: folder the images' ``file_name`` are relative to.
        metainfo: the keypoint set: a built-in name (``"coco"``), a metainfo
            json path (for a custom keypoint set), a dict or a
            ``DatasetMetainfo``. Its keypoint count must match the file's.
        bbox_file: COCO detection results (a json list of ``image_id``,
            ``category_id``, ``bbox`` xywh, ``score``) to use instead of the
            annotated boxes; only with ``test_mode=True`` (evaluation).
        test_mode: evaluation rather than training data.
        bbox_score_thr: with ``bbox_file``, drop boxes scoring below it
            (MMPose's ``filter_cfg=dict(bbox_score_thr=...)``). Default: keep all.
        det_category_id: with ``bbox_file``, the category kept (1 = person).
        check_images: verify at construction that every image a sample
            refers to exists, so a wrong ``image_root`` fails immediately.

    Each sample is a dict: ``img_id``, ``img_path``, ``img_shape`` (h, w),
    ``id`` (annotation id; a running index for detections), ``bbox`` (1, 4)
    xyxy, ``bbox_score`` (1,), ``keypoints`` (1, K, 2),
    ``keypoints_visible`` (1, K), ``category_id``, and, for annotated
    people, ``area``, ``num_keypoints`` and ``iscrowd``.

    Example:
        >>> from keraspose.datasets import CocoStyleDataset
        >>> ds = CocoStyleDataset("coco/annotations/person_keypoints_val2017.json",
        ...                       "coco/val2017")  # doctest: +SKIP
        >>> sample = ds[0]  # doctest: +SKIP
        >>> sample["bbox"].shape, sample["keypoints"].shape  # doctest: +SKIP
        ((1, 4), (1, 17, 2))
    """

    def __init__(
        self,
        ann_file,
        image_root,
        metainfo="coco",
        bbox_file=None,
        test_mode: bool = False,
        bbox_score_thr: Optional[float] = None,
        det_category_id: int = 1,
        check_images: bool = True,
    ):
        self.ann_file = Path(os.fspath(ann_file))
        self.image_root = Path(os.fspath(image_root))
        self.metainfo = resolve_metainfo(metainfo)
        self.bbox_file = Path(os.fspath(bbox_file)) if bbox_file else None
        self.test_mode = test_mode
        if self.bbox_file is not None and not test_mode:
            raise ValueError(
                f"bbox_file '{self.bbox_file}' given with test_mode=False: detected boxes are for evaluation "
                "only; pass test_mode=True (or drop bbox_file to train on the annotated boxes)."
            )
        if bbox_score_thr is not None and self.bbox_file is None:
            raise ValueError("bbox_score_thr filters detected boxes and needs bbox_file")
        if not self.image_root.is_dir() and check_images:
            raise FileNotFoundError(f"image_root '{self.image_root}' is not a folder (images of '{self.ann_file}').")

        data = read_json(self.ann_file)
        validate_coco_dict(data, self.ann_file, self.metainfo.num_keypoints, self.metainfo.dataset_name)
        self._images = {img["id"]: img for img in data["images"]}

        if self.bbox_file is None:
            self.data_list = self._from_annotations(data)
        else:
            self.data_list = self._from_detections(det_category_id, bbox_score_thr)
        if check_images:
            check_images_exist((s["img_path"] for s in self.data_list), self.image_root, self.ann_file)

    def _img_path(self, img: dict) -> str:
        return os.path.join(self.image_root, img["file_name"])

    def _from_annotations(self, data: dict) -> List[Dict[str, Any]]:
        # Images, and each image's annotations, in file order: the order
        # pycocotools' getImgIds / getAnnIds give MMPose.
        anns_of: Dict[Any, list] = {img_id: [] for img_id in self._images}
        for ann in data["annotations"]:
            anns_of[ann["image_id"]].append(ann)
        samples = []
        for img_id in self._images:
            img = self._images[img_id]
            for ann in anns_of[img_id]:
                sample = self._parse_annotation(ann, img)
                if sample is not None and self._is_valid(sample):
                    samples.append(sample)
        return samples

    def _parse_annotation(self, ann: dict, img: dict) -> Optional[Dict[str, Any]]:
        if "bbox" not in ann or "keypoints" not in ann:
            return None
        w_img, h_img = img["width"], img["height"]
        x, y, w, h = ann["bbox"]
        # Clip to the last pixel, as MMPose does (x2 at most width - 1).
        x1, x2 = np.clip([x, x + w], 0, w_img - 1)
        y1, y2 = np.clip([y, y + h], 0, h_img - 1)
        bbox = np.array([x1, y1, x2, y2], dtype=np.float32).reshape(1, 4)
        raw = np.array(ann["keypoints"], dtype=np.float32).reshape(1, -1, 3)
        keypoints = raw[..., :2]
        if "num_keypoints" in ann:
            num_keypoints = ann["num_keypoints"]
        else:
            num_keypoints = int(np.count_nonzero(keypoints.max(axis=2)))
        if "area" in ann:
            area = np.array(ann["area"], dtype=np.float32)
        else:
            # The COCO convention for a missing area: 0.53 of the box.
            area = np.array(max((x2 - x1) * (y2 - y1) * 0.53, 1.0), dtype=np.float32)
        return {
            "img_id": ann["image_id"],
            "img_path": self._img_path(img),
            "img_shape": (img["height"], img["width"]),
            "id": ann["id"],
            "bbox": bbox,
            "bbox_score": np.ones(1, dtype=np.float32),
            "keypoints": keypoints,
            "keypoints_visible": np.minimum(1, raw[..., 2]),
            "num_keypoints": num_keypoints,
            "area": area,
            "iscrowd": ann.get("iscrowd", 0),
            "category_id": np.array(ann["category_id"]),
        }

    @staticmethod
    def _is_valid(sample: Dict[str, Any]) -> bool:
        """MMPose's top-down filter: no crowds, no unlabelled people, no empty boxes."""
        if sample.get("iscrowd", 0):
            return False
        if sample.get("num_keypoints", 1) == 0:
            return False
        w, h = sample["bbox"][0, 2:] - sample["bbox"][0, :2]
        if w <= 0 or h <= 0:
            return False
        return bool(np.max(sample["keypoints"]) > 0)

    def _from_detections(self, category_id: int, score_thr: Optional[float]) -> List[Dict[str, Any]]:
        dets = read_json(self.bbox_file, what="bbox_file")
        if not isinstance(dets, list):
            raise ValueError(
                f"bbox_file '{self.bbox_file}' must be a json list of detections "
                f"(image_id, category_id, bbox, score), got a json {type(dets).__name__}."
            )
        k = self.metainfo.num_keypoints
        samples = []
        for i, det in enumerate(dets):
            missing = [key for key in ("image_id", "category_id", "bbox", "score") if not isinstance(det, dict) or key not in det]
            if missing:
                raise ValueError(f"bbox_file '{self.bbox_file}': detection {i} lacks {missing}.")
            if det["category_id"] != category_id:
                continue  # not a person (or not the category asked for)
            img = self._images.get(det["image_id"])
            if img is None:
                raise ValueError(
                    f"bbox_file '{self.bbox_file}': detection {i} is on image_id {det['image_id']}, which is not in "
                    f"'{self.ann_file}'. The detections must come from the same image set."
                )
            if len(det["bbox"]) < 4:
                raise ValueError(f"bbox_file '{self.bbox_file}': detection {i} has bbox {det['bbox']!r}; expected x, y, w, h.")
            x, y, w, h = np.array(det["bbox"][:4], dtype=np.float32)
            samples.append(
                {
                    "img_id": det["image_id"],
                    "img_path": self._img_path(img),
                    "img_shape": (img["height"], img["width"]),
                    # A running id over the kept detections, as MMPose numbers them.
                    "id": len(samples),
                    "bbox": np.array([[x, y, x + w, y + h]], dtype=np.float32),
                    "bbox_score": np.array(det["score"], dtype=np.float32).reshape(1),
                    # Nothing is known about the keypoints of a detection.
                    "keypoints": np.zeros((1, k, 2), dtype=np.float32),
                    "keypoints_visible": np.ones((1, k), dtype=np.float32),
                    "category_id": np.array(det["category_id"]),
                }
            )
        if score_thr is not None:
            samples = [s for s in samples if not s["bbox_score"][0] < score_thr]
        return samples
