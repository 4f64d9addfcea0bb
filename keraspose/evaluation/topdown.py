"""COCO keypoint AP of a top-down estimator on a keypoint dataset.

MMPose's test loop, without its runner: every sample of the dataset (one
person box: an annotated person, or a detection from a ``bbox_file``) is
cropped as in MMPose's validation pipeline (``GetBBoxCenterScale`` with
padding 1.25, aspect ratio fixed, affine warp), sent through the network
(with the model's flip test), decoded by the head's codec (one path with
``TopdownEstimator.predict``: ``predict_crops``), mapped back to
image pixels and handed to :class:`~keraspose.evaluation.CocoMetric` with
the sample's annotation id, box score and ``prod(bbox_scale)`` as the
OKS-NMS area, which is what MMPose's ``CocoMetric`` receives.

Only numpy crosses the model boundary, so this runs on every backend.
"""

from __future__ import annotations

import sys
from typing import Dict, Optional

import numpy as np

from keraspose.evaluation.coco_metric import CocoMetric

__all__ = ["evaluate_topdown", "predict_dataset"]


def _progress_bar(total, enabled):
    if not enabled:
        return None
    import keras  # the Progbar; imported here so the metrics stay Keras-free

    # A live bar on a terminal; one line at the end when the output is a file or a pipe.
    return keras.utils.Progbar(total, unit_name="person", verbose=1 if sys.stdout.isatty() else 2)


def predict_dataset(model, dataset, batch_size: int = 32, flip_test: Optional[bool] = None, progress: bool = False):
    """Predict every sample (person box) of a top-down dataset.

    Yields ``(sample, keypoints (K, 2), keypoint_scores (K,), area)`` per
    sample, in dataset order; keypoints are in image pixels and ``area`` is
    ``prod(bbox_scale)``, MMPose's OKS-NMS area. Images are read once per
    run of consecutive samples on the same image (datasets list the people of
    an image together).
    """
    from keraspose.models.topdown_estimator import load_image  # lazily: imports Keras

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)
    bar = _progress_bar(n, progress)
    pending, crops, centers, scales = [], [], [], []
    cached_path, cached_image = None, None

    def flush():
        c, s = np.stack(centers), np.stack(scales)
        # The same inference path as TopdownEstimator.predict, whatever the head.
        keypoints, scores = model.predict_crops(np.stack(crops), c, s, batch_size=batch_size, flip_test=flip_test)
        out = [(sample, keypoints[i], scores[i], float(np.prod(s[i]))) for i, sample in enumerate(pending)]
        for buffer in (pending, crops, centers, scales):
            buffer.clear()
        return out

    done = 0
    for index in range(n):
        sample = dataset[index]
        path = sample["img_path"]
        if path != cached_path:
            cached_image, cached_path = load_image(path, f"dataset[{index}]['img_path']"), path
        crop, center, scale = model.crop_people(cached_image, np.asarray(sample["bbox"], np.float32).reshape(1, 4))
        pending.append(sample)
        crops.append(crop[0])
        centers.append(center[0])
        scales.append(scale[0])
        if len(pending) == batch_size or index == n - 1:
            for item in flush():
                yield item
                done += 1
            if bar is not None:
                bar.update(done)


def evaluate_topdown(
    model,
    dataset,
    ann_file=None,
    *,
    batch_size: int = 32,
    flip_test: Optional[bool] = None,
    progress: bool = False,
    outfile_prefix: Optional[str] = None,
    **metric_kwargs,
) -> Dict[str, float]:
    """COCO keypoint AP/AR of ``model`` on ``dataset``, scored as MMPose does.

    Args:
        model: a :class:`~keraspose.TopdownEstimator`.
        dataset: a :class:`~keraspose.CocoStyleDataset` (annotated boxes, or
            detections through ``bbox_file``); its samples carry the
            annotation/image ids the metric needs.
        ann_file: the ground truth; default ``dataset.ann_file``.
        batch_size: people per network call.
        flip_test: override the model's test-time flip.
        progress: show a progress bar.
        outfile_prefix: also write ``<prefix>.keypoints.json`` (COCO results).
        **metric_kwargs: passed to :class:`CocoMetric` (``score_mode``,
            ``nms_mode``, ``nms_thr``, ``use_area``, ``prefix``, ...).

    Returns:
        ``{"coco/AP": ..., "coco/AP .5": ..., ..., "coco/AR (L)": ...}``.

    Example:
        >>> import keraspose
        >>> model = keraspose.TopdownEstimator.from_preset("tinypose_coco_256x192")  # doctest: +SKIP
        >>> data = keraspose.CocoStyleDataset("person_keypoints_val2017.json", "val2017", test_mode=True)  # doctest: +SKIP
        >>> keraspose.evaluate_topdown(model, data)["coco/AP"]  # doctest: +SKIP
    """
    if ann_file is None:
        ann_file = getattr(dataset, "ann_file", None)
        if ann_file is None:
            raise ValueError("evaluate_topdown: pass ann_file (the dataset does not say which file it came from)")
    dataset_k = getattr(dataset, "num_keypoints", None)
    model_k = model.metainfo.num_keypoints
    if dataset_k is not None and dataset_k != model_k:
        raise ValueError(
            f"the model predicts {model_k} keypoints but the dataset '{ann_file}' has {dataset_k}; "
            "evaluate a model trained on this keypoint set"
        )
    if len(dataset) == 0:
        raise ValueError(f"evaluate_topdown: the dataset from '{ann_file}' has no samples")
    metric_kwargs.setdefault("metainfo", model.metainfo)
    metric = CocoMetric(ann_file, outfile_prefix=outfile_prefix, **metric_kwargs)
    for sample, keypoints, scores, area in predict_dataset(model, dataset, batch_size, flip_test, progress):
        metric.add(sample, keypoints[None], scores[None], areas=[area], bboxes=sample["bbox"])
    return metric.evaluate()
