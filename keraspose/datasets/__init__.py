"""Datasets: top-down samples (one per person) read from annotation files.

Plain numpy + pycocotools-format json, no Keras: each dataset is a list-like
of sample dicts with MMPose 1.x's key names (``img_path``, ``img_id``, ``id``,
``bbox`` (1, 4) xyxy, ``bbox_score``, ``keypoints`` (1, K, 2),
``keypoints_visible`` (1, K), ``area``, ``category_id``, ...), ready for the
transforms in :mod:`keraspose.transforms`.

Files are validated when the dataset is built: a missing or malformed json, a
keypoint count that disagrees with the metainfo, or images missing from
``image_root`` raise ``FileNotFoundError`` / ``ValueError`` naming the file
and the fix.

* :class:`CocoStyleDataset`: COCO-format files, for COCO or any custom
  keypoint set (pass its metainfo json), with ground-truth or detected boxes.
* :class:`MpiiDataset`: MPII in MMPose's json format.

Example:
    >>> from keraspose.datasets import CocoStyleDataset
    >>> ds = CocoStyleDataset("my_keypoints.json", "images/",
    ...                       metainfo="my_metainfo.json")  # doctest: +SKIP
    >>> len(ds), ds[0]["keypoints"].shape  # doctest: +SKIP
    (1200, (1, 5, 2))
"""

from keraspose.datasets.coco import CocoStyleDataset, resolve_metainfo
from keraspose.datasets.mpii import MpiiDataset

__all__ = ["CocoStyleDataset", "MpiiDataset", "resolve_metainfo"]
