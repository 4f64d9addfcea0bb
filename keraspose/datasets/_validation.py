"""Up-front checks of annotation files, so mistakes surface before anything runs.

A training or evaluation run that dies on sample 40,000 because an image is
missing, or that silently trains a 16-keypoint head on a 17-keypoint file, is
expensive. These helpers read and check annotation files and raise errors
that name the file and say what to change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional


__all__ = ["read_json", "validate_coco_dict", "check_images_exist"]


def read_json(path, what: str = "annotation file") -> Any:
    """Load a json file; ``FileNotFoundError`` / ``ValueError`` naming ``path`` otherwise."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: '{path}'. Check the path (relative paths are resolved from {os.getcwd()}).")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{what} '{path}' is not valid json ({err.msg} at line {err.lineno}, column {err.colno}). "
            "Re-export or repair the file."
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} '{path}' is not a UTF-8 text json file.") from None


def validate_coco_dict(data: Any, path, num_keypoints: Optional[int] = None, metainfo_name: str = "") -> None:
    """Check that ``data`` (loaded from ``path``) is a COCO keypoint annotation dict.

    Checks the top-level structure, that every annotation has an ``id``,
    ``image_id`` (of a listed image), ``bbox`` of 4 numbers and ``keypoints``
    of ``3 * K`` numbers with the same ``K`` throughout, and, when
    ``num_keypoints`` is given, that ``K`` equals it.

    Raises:
        ValueError: naming ``path``, the offending annotation and the fix.
    """
    if not isinstance(data, dict):
        raise ValueError(
            f"annotation file '{path}' must hold a COCO-format json object with 'images' and 'annotations', "
            f"got a json {type(data).__name__}. (A list of detections belongs in `bbox_file`, "
            "an MPII-style list in MpiiDataset.)"
        )
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"annotation file '{path}' has no '{key}' list: not a COCO-format keypoint file.")
        if not isinstance(data[key], list):
            raise ValueError(f"annotation file '{path}': '{key}' must be a list, got {type(data[key]).__name__}.")
    image_ids = set()
    for i, img in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name", "width", "height") if not isinstance(img, dict) or k not in img]
        if missing:
            raise ValueError(f"annotation file '{path}': images[{i}] lacks {missing}; every image needs id, file_name, width, height.")
        image_ids.add(img["id"])
    k_found = None
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"annotation file '{path}': annotations[{i}] is not an object.")
        missing = [k for k in ("id", "image_id", "category_id") if k not in ann]
        if missing:
            raise ValueError(f"annotation file '{path}': annotations[{i}] lacks {missing}.")
        where = f"annotation file '{path}': annotation id {ann['id']}"
        if ann["image_id"] not in image_ids:
            raise ValueError(f"{where} refers to image_id {ann['image_id']}, which is not in 'images'.")
        if "bbox" in ann and (not isinstance(ann["bbox"], (list, tuple)) or len(ann["bbox"]) != 4):
            raise ValueError(f"{where} has bbox {ann['bbox']!r}; expected [x, y, w, h].")
        if "keypoints" not in ann:
            continue
        kpts = ann["keypoints"]
        if not isinstance(kpts, (list, tuple)) or len(kpts) % 3 != 0:
            raise ValueError(f"{where}: 'keypoints' must be a flat list of x, y, v triplets, got {len(kpts) if isinstance(kpts, (list, tuple)) else type(kpts).__name__} values.")
        k = len(kpts) // 3
        if k_found is None:
            k_found = k
        elif k != k_found:
            raise ValueError(f"{where} has {k} keypoints but earlier annotations have {k_found}; every annotation needs the same keypoint count.")
    if num_keypoints is not None and k_found is not None and k_found != num_keypoints:
        meta = f" ('{metainfo_name}')" if metainfo_name else ""
        raise ValueError(
            f"annotation file '{path}' has {k_found} keypoints per person but the metainfo{meta} defines "
            f"{num_keypoints}. Pass the metainfo that matches the file (e.g. metainfo='coco' for 17 COCO "
            "keypoints, 'mpii' for 16) or a metainfo json describing your keypoint set."
        )


def check_images_exist(paths: Iterable[str], image_root, ann_file) -> None:
    """Raise ``FileNotFoundError`` listing the images (up to 5) that are not on disk."""
    missing = sorted({p for p in paths if not os.path.isfile(p)})
    if missing:
        shown = ", ".join(f"'{p}'" for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{len(missing)} image(s) referenced by '{ann_file}' are missing from image_root '{image_root}': "
            f"{shown}{more}. Fix image_root (it is joined with each image's file name), add the images, "
            "or pass check_images=False to skip this check."
        )


