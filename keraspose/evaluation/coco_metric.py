"""COCO keypoint evaluation (AP/AR at OKS thresholds) with MMPose's semantics.

Two entry points:

* :class:`CocoMetric` accumulates top-down predictions (keypoints in image
  space, per-keypoint scores, box scores) and scores them exactly as MMPose
  1.x's ``CocoMetric`` does: instance rescoring, OKS-NMS per image, then COCO
  keypoint evaluation with the dataset's sigmas and the annotation areas.
* :func:`evaluate_coco_results` scores a ready-made COCO results file (or
  list), by default with plain pycocotools, the way COCO leaderboards and
  most papers report AP.

MMPose evaluates with ``xtcocotools``, a fork of pycocotools. For keypoints
the fork differs in a few ways that can change the numbers on some data, and
``CocoMetric`` reproduces them on top of stock pycocotools (see
:func:`_mmpose_ground_truth`):

1. OKS uses the dataset's sigmas (pycocotools hard-codes COCO's 17).
2. ``use_area=False`` replaces the annotation area by ``0.53 * w * h`` of the
   box, for datasets without areas (CrowdPose, AIC).
3. A person is ignored when no keypoint is labelled (``v > 0``), counted from
   the keypoints rather than read from ``num_keypoints``.
4. Detections whose keypoint scores are all <= 0 are dropped.
5. An annotation id of 0 is a valid match (pycocotools uses 0 for "no match").
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from keraspose.datasets._validation import read_json, validate_coco_dict
from keraspose.evaluation.functional import COCO_SIGMAS, oks_nms

__all__ = ["CocoMetric", "evaluate_coco_results", "COCO_STATS_NAMES", "write_json_atomic"]

#: Names of pycocotools' ten keypoint stats, in its order (MMPose's names).
COCO_STATS_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")

_SCORE_MODES = ("bbox", "bbox_keypoint", "bbox_rle", "keypoint")
_NMS_MODES = ("oks_nms", "none")


def write_json_atomic(obj: Any, path, **dump_kwargs) -> Path:
    """Write ``obj`` as json to ``path`` via a temporary file and a rename.

    A crash (or a concurrent reader) never sees a half-written file: the
    rename is atomic on POSIX and Windows when both are in one folder.
    """
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, **dump_kwargs)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _quiet(verbose: bool):
    """pycocotools prints progress on every call; silence it unless asked."""
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def _coco_from_dict(dataset: dict, verbose: bool = False):
    from pycocotools.coco import COCO

    with _quiet(verbose):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


def _load_ground_truth(ann_file, num_keypoints: Optional[int] = None) -> dict:
    data = read_json(ann_file)
    validate_coco_dict(data, ann_file, num_keypoints=num_keypoints)
    return data


def _mmpose_ground_truth(data: dict, use_area: bool) -> dict:
    """A copy of a COCO ground-truth dict adjusted so pycocotools scores like xtcocotools.

    See the module docstring for the differences handled here (2, 3, 5).
    """
    data = dict(data)
    anns = []
    for new_id, ann in enumerate(data["annotations"], start=1):
        ann = dict(ann)
        # Matching bookkeeping only: ids are renumbered from 1 so that an
        # annotation id of 0 is not mistaken for "unmatched" by pycocotools.
        ann["id"] = new_id
        ann.setdefault("iscrowd", 0)
        if "keypoints" in ann:
            vis = np.asarray(ann["keypoints"], dtype=np.float64)[2::3]
            ann["num_keypoints"] = int(np.count_nonzero(vis > 0))
        else:
            ann["num_keypoints"] = 0
            ann["keypoints"] = []
        if not use_area or "area" not in ann:
            _, _, w, h = ann["bbox"]
            ann["area"] = w * h * 0.53
        anns.append(ann)
    data["annotations"] = anns
    return data


def _results_to_coco(coco_gt, results: Sequence[Mapping], verbose: bool = False):
    """Build the detections COCO object as ``COCO.loadRes`` does for keypoints.

    Each result's box and area are derived from the extent of its keypoints
    and it gets id ``i + 1``. Unlike ``loadRes``, an empty list is accepted
    (it scores 0 instead of crashing).
    """
    gt_images = set(coco_gt.getImgIds())
    anns = []
    for i, res in enumerate(results):
        if res["image_id"] not in gt_images:
            raise ValueError(
                f"result {i} has image_id {res['image_id']}, which is not in the ground-truth annotation file; "
                "predictions must use the image ids of the file they are scored against."
            )
        ann = dict(res)
        kpts = np.asarray(ann["keypoints"], dtype=np.float64)
        x, y = kpts[0::3], kpts[1::3]
        x0, x1, y0, y1 = np.min(x), np.max(x), np.min(y), np.max(y)
        ann["area"] = (x1 - x0) * (y1 - y0)
        ann["id"] = i + 1
        ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]
        ann.setdefault("iscrowd", 0)
        anns.append(ann)
    dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
        "annotations": anns,
    }
    return _coco_from_dict(dataset, verbose)


def _run_cocoeval(coco_gt, coco_dt, sigmas, verbose: bool) -> np.ndarray:
    from pycocotools.cocoeval import COCOeval

    with _quiet(verbose):
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


def _named_stats(stats, prefix: str) -> Dict[str, float]:
    return OrderedDict((f"{prefix}/{n}" if prefix else n, float(v)) for n, v in zip(COCO_STATS_NAMES, stats))


def evaluate_coco_results(
    ann_file,
    results: Union[str, os.PathLike, Sequence[Mapping]],
    *,
    sigmas=None,
    mmpose_semantics: bool = False,
    use_area: bool = True,
    prefix: str = "",
    verbose: bool = False,
) -> Dict[str, float]:
    """COCO keypoint AP/AR of a results file against a COCO annotation file.

    Args:
        ann_file: COCO keypoint annotation json (the ground truth).
        results: a COCO results json path, or the list itself: dicts with
            ``image_id``, ``category_id``, ``keypoints`` (flat ``x, y, score``
            triplets) and ``score``.
        sigmas: OKS sigmas; default COCO's 17.
        mmpose_semantics: False (default): stock pycocotools, the number
            COCO's own toolkit reports. True: xtcocotools' semantics as MMPose
            uses them (see the module docstring).
        use_area: only with ``mmpose_semantics``; False for datasets whose
            annotations have no ``area``.
        prefix: prepended to the stat names as ``"<prefix>/AP"``.
        verbose: let pycocotools print its tables.

    Returns:
        Ordered dict ``{"AP": ..., "AP .5": ..., ..., "AR (L)": ...}``.

    Example:
        >>> stats = evaluate_coco_results("person_keypoints_val2017.json", "results.json")  # doctest: +SKIP
        >>> round(stats["AP"], 3)  # doctest: +SKIP
        0.544
    """
    if isinstance(results, (str, os.PathLike)):
        results = read_json(results, what="results file")
        if not isinstance(results, list):
            raise ValueError("a COCO results file must hold a json list of detections")
    gt = _load_ground_truth(ann_file, num_keypoints=None if sigmas is None else len(sigmas))
    results = list(results)
    if not mmpose_semantics:
        if not use_area:
            raise ValueError("use_area=False is an xtcocotools rule: pass mmpose_semantics=True with it")
        if any("area" not in ann for ann in gt["annotations"]):
            raise ValueError(
                f"annotation file '{ann_file}' has annotations without 'area', which pycocotools needs. "
                "Score it as MMPose does for such datasets: mmpose_semantics=True, use_area=False."
            )
    else:
        gt = _mmpose_ground_truth(gt, use_area)
        results = [r for r in results if np.any(np.asarray(r["keypoints"], dtype=np.float64)[2::3] > 0)]
        if sigmas is None:
            sigmas = COCO_SIGMAS
    coco_gt = _coco_from_dict(gt, verbose)
    coco_dt = _results_to_coco(coco_gt, results, verbose)
    return _named_stats(_run_cocoeval(coco_gt, coco_dt, sigmas, verbose), prefix)


def _resolve_sigmas(sigmas, metainfo):
    if sigmas is not None:
        return np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if metainfo is None:
        return COCO_SIGMAS
    from keraspose.metainfo import load_metainfo  # imported lazily: pulls in Keras

    meta = load_metainfo(metainfo) if not hasattr(metainfo, "sigmas") else metainfo
    return np.asarray(meta.sigmas, dtype=np.float64)


class CocoMetric:
    """MMPose's COCO keypoint evaluator, for predictions in image coordinates.

    Feed it every prediction with :meth:`add`, then call :meth:`evaluate`.
    Scoring follows MMPose 1.3's ``CocoMetric`` step by step:

    1. predictions of an image are sorted by instance id and duplicates (the
       same id added twice, e.g. by a repeated batch) dropped;
    2. each person is rescored (``score_mode='bbox_keypoint'``): box score x
       mean of its keypoint scores above ``keypoint_score_thr`` (box score
       x 0 if none is above);
    3. OKS-NMS per image (``nms_thr``; area = the ``areas`` given, else the
       keypoints' bounding-box area);
    4. COCO keypoint evaluation with the dataset's sigmas and annotation
       areas, with xtcocotools' rules (see the module docstring).

    Args:
        ann_file: COCO-format ground-truth annotation json.
        metainfo: dataset metainfo (a name like ``"coco"``, a
            ``DatasetMetainfo`` or a path) supplying the sigmas.
        sigmas: OKS sigmas, overriding ``metainfo``. If both are None the
            COCO person sigmas are used.
        use_area: use annotation ``area`` for OKS (False: ``0.53 * w * h``).
        score_mode: ``'bbox_keypoint'``, ``'bbox'``, ``'keypoint'`` (mean
            keypoint score) or ``'bbox_rle'`` (box + mean + max score).
        keypoint_score_thr: keypoint scores counted by ``bbox_keypoint``.
        nms_mode: ``'oks_nms'`` or ``'none'``.
        nms_thr: OKS above which the lower-scored of two people is dropped.
        outfile_prefix: if set, :meth:`evaluate` writes the final results to
            ``<outfile_prefix>.keypoints.json`` (atomically).
        format_only: only write the results file, return ``{}``.
        prefix: stat-name prefix (``"coco/AP"``).
        verbose: let pycocotools print.

    Example:
        >>> import numpy as np
        >>> from keraspose.evaluation import CocoMetric
        >>> metric = CocoMetric("test_coco.json")  # doctest: +SKIP
        >>> kpts = np.zeros((1, 17, 2)); scores = np.ones((1, 17))
        >>> metric.add(785, kpts, scores, bbox_scores=[0.9], ids=[442619])  # doctest: +SKIP
        >>> metric.evaluate()["coco/AP"]  # doctest: +SKIP
        0.0
    """

    def __init__(
        self,
        ann_file,
        metainfo=None,
        sigmas=None,
        use_area: bool = True,
        score_mode: str = "bbox_keypoint",
        keypoint_score_thr: float = 0.2,
        nms_mode: str = "oks_nms",
        nms_thr: float = 0.9,
        outfile_prefix: Optional[str] = None,
        format_only: bool = False,
        prefix: str = "coco",
        verbose: bool = False,
    ):
        if score_mode not in _SCORE_MODES:
            raise ValueError(f"score_mode must be one of {_SCORE_MODES}, got {score_mode!r}")
        if nms_mode not in _NMS_MODES:
            raise ValueError(f"nms_mode must be one of {_NMS_MODES}, got {nms_mode!r}")
        if format_only and not outfile_prefix:
            raise ValueError("format_only=True needs outfile_prefix (where to write the results)")
        self.ann_file = ann_file
        self.sigmas = _resolve_sigmas(sigmas, metainfo)
        self.num_keypoints = len(self.sigmas)
        self.use_area = use_area
        self.score_mode = score_mode
        self.keypoint_score_thr = keypoint_score_thr
        self.nms_mode = nms_mode
        self.nms_thr = nms_thr
        self.outfile_prefix = outfile_prefix
        self.format_only = format_only
        self.prefix = prefix
        self.verbose = verbose
        # Read and check the ground truth now, so a wrong file fails at
        # construction rather than after a whole inference pass.
        self._gt = _load_ground_truth(ann_file, num_keypoints=self.num_keypoints)
        self._image_ids = {img["id"] for img in self._gt["images"]}
        self._auto_id = 0
        self.reset()

    def reset(self) -> None:
        """Forget every prediction added so far."""
        self._preds = []

    def __len__(self) -> int:
        return len(self._preds)

    def add(
        self,
        image_id,
        keypoints,
        keypoint_scores,
        bbox_scores=None,
        *,
        ids=None,
        areas=None,
        bboxes=None,
        category_id: int = 1,
    ) -> None:
        """Add the predicted people of one image (or one person).

        Args:
            image_id: the image's COCO id, or a dataset sample dict (as
                :class:`~keraspose.datasets.CocoStyleDataset` yields) from
                which ``img_id``, ``id``, ``bbox_score`` and ``category_id``
                are taken as defaults.
            keypoints: (N, K, 2) keypoints in image pixels (or (K, 2)).
            keypoint_scores: (N, K) (or (K,)).
            bbox_scores: (N,) detection scores; default 1 each (ground-truth
                boxes).
            ids: (N,) instance ids (annotation ids for ground-truth boxes);
                predictions of an image with equal ids count once. Default:
                a fresh id per person.
            areas: (N,) areas for OKS-NMS; MMPose's top-down pipeline uses
                ``prod(bbox_scale)``. Default: the keypoints' extent.
            bboxes: (N, 4) xyxy boxes, written to the results file as xywh.
            category_id: COCO category of the people.
        """
        if isinstance(image_id, Mapping):
            sample = image_id
            image_id = sample["img_id"]
            if ids is None and "id" in sample:
                ids = np.atleast_1d(sample["id"])
            if bbox_scores is None and "bbox_score" in sample:
                bbox_scores = sample["bbox_score"]
            if "category_id" in sample:
                category_id = int(np.asarray(sample["category_id"]).reshape(-1)[0])
        image_id = int(image_id)
        if image_id not in self._image_ids:
            raise ValueError(f"image_id {image_id} is not in the ground truth '{self.ann_file}'")
        kpts = np.asarray(keypoints, dtype=np.float64)
        if kpts.ndim == 2:
            kpts = kpts[None]
        k = self.num_keypoints
        if kpts.ndim != 3 or kpts.shape[1:] != (k, 2):
            raise ValueError(f"keypoints must be (N, {k}, 2) (image pixels), got {np.shape(keypoints)}")
        n = len(kpts)
        scores = np.asarray(keypoint_scores, dtype=np.float64).reshape(n, -1)
        if scores.shape != (n, k):
            raise ValueError(f"keypoint_scores must be (N, K) = {(n, k)}, got {np.shape(keypoint_scores)}")
        bbox_scores = np.ones(n) if bbox_scores is None else np.asarray(bbox_scores, dtype=np.float64).reshape(-1)
        if ids is None:
            ids = np.arange(self._auto_id, self._auto_id + n)
            self._auto_id += n
        ids = np.asarray(ids).reshape(-1)
        if areas is None:
            # MMPose's fallback: area of the keypoints' bounding box.
            span = kpts.max(axis=1) - kpts.min(axis=1)
            areas = span[:, 0] * span[:, 1]
        areas = np.asarray(areas, dtype=np.float64).reshape(-1)
        for name, arr in (("bbox_scores", bbox_scores), ("ids", ids), ("areas", areas)):
            if len(arr) != n:
                raise ValueError(f"{name} must have one value per person ({n}), got {len(arr)}")
        if bboxes is not None:
            bboxes = np.asarray(bboxes, dtype=np.float64).reshape(n, 4)
        for i in range(n):
            pred = {
                "id": ids[i].item(),
                "img_id": image_id,
                "category_id": category_id,
                "keypoints": kpts[i],
                "keypoint_scores": scores[i],
                "bbox_score": float(bbox_scores[i]),
                "area": float(areas[i]),
            }
            if bboxes is not None:
                x1, y1, x2, y2 = bboxes[i]
                pred["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            self._preds.append(pred)

    def _instance_score(self, pred) -> float:
        kpt_scores = pred["keypoint_scores"]
        if self.score_mode == "bbox":
            return pred["bbox_score"]
        if self.score_mode == "keypoint":
            return float(np.mean(kpt_scores))
        if self.score_mode == "bbox_rle":
            return float(pred["bbox_score"] + np.mean(kpt_scores) + np.max(kpt_scores))
        # bbox_keypoint: the box score times the mean of the confident
        # keypoints' scores (0 if there are none).
        confident = [float(s) for s in kpt_scores if s > self.keypoint_score_thr]
        mean = sum(confident) / len(confident) if confident else 0.0
        return pred["bbox_score"] * mean

    def results(self) -> list:
        """The predictions after dedup, rescoring and NMS, in COCO results format."""
        per_image = OrderedDict()
        for pred in self._preds:
            per_image.setdefault(pred["img_id"], []).append(pred)
        out = []
        for img_id, preds in per_image.items():
            # Sort by id (stable) and keep the first of equal ids.
            preds = sorted(preds, key=lambda p: p["id"])
            preds = [p for j, p in enumerate(preds) if j == 0 or p["id"] != preds[j - 1]["id"]]
            instances = [
                {
                    "keypoints": np.concatenate([p["keypoints"], p["keypoint_scores"][:, None]], axis=1),
                    "score": self._instance_score(p),
                    "area": p["area"],
                    "pred": p,
                }
                for p in preds
            ]
            if self.nms_mode == "oks_nms":
                keep = oks_nms(instances, self.nms_thr, sigmas=self.sigmas)
                instances = [instances[i] for i in keep]
            for inst in instances:
                res = {
                    "image_id": img_id,
                    "category_id": inst["pred"]["category_id"],
                    "keypoints": inst["keypoints"].reshape(-1).tolist(),
                    "score": float(inst["score"]),
                }
                if "bbox" in inst["pred"]:
                    res["bbox"] = [float(v) for v in inst["pred"]["bbox"]]
                out.append(res)
        return out

    def evaluate(self) -> Dict[str, float]:
        """Score every prediction added; returns ``{"coco/AP": ..., ...}`` (ten stats).

        With ``outfile_prefix`` set, the scored results are also written to
        ``<outfile_prefix>.keypoints.json``.
        """
        results = self.results()
        if self.outfile_prefix:
            write_json_atomic(results, f"{self.outfile_prefix}.keypoints.json", sort_keys=True, indent=4)
        if self.format_only:
            return {}
        gt = _mmpose_ground_truth(self._gt, self.use_area)
        # xtcocotools skips detections without any positive keypoint score.
        results = [r for r in results if np.any(np.asarray(r["keypoints"])[2::3] > 0)]
        coco_gt = _coco_from_dict(gt, self.verbose)
        coco_dt = _results_to_coco(coco_gt, results, self.verbose)
        return _named_stats(_run_cocoeval(coco_gt, coco_dt, self.sigmas, self.verbose), self.prefix)
