"""Keypoint metrics as plain numpy functions, with MMPose 1.x semantics.

Everything here works on numpy arrays (no Keras tensors) so it can run inside
a data pipeline, a training callback or an offline evaluation script alike.
The numbers are meant to be *identical* to MMPose's (``mmpose.evaluation
.functional``), including the corner cases, because published results and
training logs are compared against MMPose's:

* a keypoint whose ``mask`` is False is ignored (it counts for nothing);
* an instance with a zero normalisation factor (for example a degenerate box)
  is ignored entirely, and a negative factor is treated as "infinitely large"
  (every distance becomes ~0), as in MMPose;
* a keypoint that is invisible in *every* instance gets accuracy ``-1`` in
  the per-keypoint array and is left out of the average.

Distances are stored in float32 as MMPose does, so threshold comparisons
round the same way.

Example:
    >>> import numpy as np
    >>> from keraspose.evaluation import keypoint_pck_accuracy
    >>> pred = np.array([[[10.0, 10.0], [20.0, 20.0]]])
    >>> gt = np.array([[[10.0, 11.0], [30.0, 20.0]]])
    >>> mask = np.array([[True, True]])
    >>> acc, avg, cnt = keypoint_pck_accuracy(pred, gt, mask, 0.2, np.array([[20.0, 20.0]]))
    >>> acc.tolist(), float(avg), cnt
    ([1.0, 0.0], 0.5, 2)
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "COCO_SIGMAS",
    "compute_oks",
    "heatmap_argmax",
    "keypoint_auc",
    "keypoint_epe",
    "keypoint_nme",
    "keypoint_pck_accuracy",
    "oks_nms",
    "pose_pck_accuracy",
]

#: The 17 COCO person keypoint OKS sigmas (the COCO evaluation defaults).
COCO_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)


def _normalized_distances(pred, gt, mask, norm_factor) -> np.ndarray:
    """(K, N) float32 distances ``|pred - gt| / norm_factor``, -1 where not counted.

    ``norm_factor`` is (N, D) (one factor per coordinate axis). The caller's
    arrays are never modified (MMPose overwrites ``norm_factor`` in place;
    we copy).
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must both be (N, K, D); got {pred.shape} and {gt.shape}")
    n, k, d = pred.shape
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (n, k):
        raise ValueError(f"mask must be (N, K) = {(n, k)}, got {mask.shape}")
    norm = np.array(norm_factor, copy=True)
    if norm.shape != (n, d):
        raise ValueError(f"norm_factor must be (N, D) = {(n, d)}, got {norm.shape}")

    # An instance with any zero factor cannot be normalised: drop all of it.
    counted = mask.copy()
    counted[(norm == 0).any(axis=1)] = False
    # Negative (invalid) factors become huge so they never divide by <= 0;
    # zero rows are already excluded above.
    norm = np.where(norm <= 0, 1e6, norm)

    distances = np.full((n, k), -1, dtype=np.float32)
    diff = (pred - gt) / norm[:, None, :]
    distances[counted] = np.linalg.norm(diff[counted], axis=-1)
    return distances.T


def _fraction_below(distances: np.ndarray, thr: float) -> float:
    """Share of the counted (``!= -1``) distances below ``thr``; -1 if none counted."""
    valid = distances != -1
    num_valid = valid.sum()
    if num_valid > 0:
        return (distances[valid] < thr).sum() / num_valid
    return -1


def keypoint_pck_accuracy(pred, gt, mask, thr, norm_factor):
    """PCK: share of keypoints within ``thr`` (normalised distance) of the truth.

    Args:
        pred: (N, K, 2) predicted keypoints.
        gt: (N, K, 2) ground-truth keypoints.
        mask: (N, K) bool, True where the ground truth is valid.
        thr: threshold on the normalised distance (typically 0.05-0.2).
        norm_factor: (N, 2) per-instance normalisation for x and y (e.g. the
            box or heatmap size).

    Returns:
        ``(acc, avg_acc, cnt)``: per-keypoint accuracy (K,) with -1 for a
        keypoint never counted, the mean over counted keypoints (0.0 if
        none), and the number of counted keypoints.
    """
    distances = _normalized_distances(pred, gt, mask, norm_factor)
    acc = np.array([_fraction_below(d, thr) for d in distances])
    valid_acc = acc[acc >= 0]
    cnt = len(valid_acc)
    avg_acc = valid_acc.mean() if cnt > 0 else 0.0
    return acc, avg_acc, cnt


def keypoint_auc(pred, gt, mask, norm_factor, num_thrs: int = 20) -> float:
    """Area under the PCK curve for thresholds ``0, 1/num_thrs, ..., (num_thrs-1)/num_thrs``.

    Args:
        pred, gt: (N, K, 2) keypoints.
        mask: (N, K) bool.
        norm_factor: one scalar normalisation (pixels) shared by every
            instance and both axes, as MMPose's ``keypoint_auc`` takes it.
        num_thrs: number of thresholds.

    Returns:
        The AUC, a float in [0, 1].
    """
    pred = np.asarray(pred)
    norm = np.tile(np.array([[norm_factor, norm_factor]]), (pred.shape[0], 1))
    auc = 0
    # Summed term by term, as MMPose does, so the float result is identical.
    for i in range(num_thrs):
        _, avg_acc, _ = keypoint_pck_accuracy(pred, gt, mask, 1.0 * i / num_thrs, norm)
        auc += 1.0 / num_thrs * avg_acc
    return auc


def _mean_counted(distances: np.ndarray) -> float:
    counted = distances[distances != -1]
    # float32 sum (as MMPose), divided in float64 so numpy 1 and 2 agree.
    return float(counted.sum()) / max(1, len(counted))


def keypoint_nme(pred, gt, mask, normalize_factor) -> float:
    """Normalised mean error: mean of ``|pred - gt| / normalize_factor`` over counted keypoints.

    Args:
        pred, gt: (N, K, 2) keypoints.
        mask: (N, K) bool.
        normalize_factor: (N, 2) per-instance factors (e.g. inter-ocular
            distance repeated for x and y).
    """
    return _mean_counted(_normalized_distances(pred, gt, mask, normalize_factor))


def keypoint_epe(pred, gt, mask) -> float:
    """End-point error: mean Euclidean pixel distance over the keypoints in ``mask``."""
    pred = np.asarray(pred)
    ones = np.ones((pred.shape[0], pred.shape[2]), dtype=np.float32)
    return _mean_counted(_normalized_distances(pred, gt, mask, ones))


def heatmap_argmax(heatmaps: np.ndarray):
    """Location (x, y) and value of each heatmap's maximum.

    Args:
        heatmaps: (K, H, W) or (N, K, H, W).

    Returns:
        ``(locs, vals)``: locs (…, K, 2) float32 ``(x, y)`` of the first
        maximum in row-major order, ``-1`` where the maximum is <= 0 (no
        detection, MMPose's convention); vals (…, K).
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim not in (3, 4):
        raise ValueError(f"heatmaps must be (K, H, W) or (N, K, H, W), got {heatmaps.shape}")
    lead, (h, w) = heatmaps.shape[:-2], heatmaps.shape[-2:]
    flat = heatmaps.reshape(-1, h * w)
    ys, xs = np.unravel_index(np.argmax(flat, axis=1), (h, w))
    locs = np.stack([xs, ys], axis=-1).astype(np.float32)
    vals = flat.max(axis=1)
    locs[vals <= 0.0] = -1
    return locs.reshape(*lead, 2), vals.reshape(lead)


def pose_pck_accuracy(output, target, mask, thr: float = 0.05, normalize=None, data_format: str = "channels_first"):
    """PCK between the argmax locations of predicted and target heatmaps.

    This is the training accuracy MMPose logs as ``acc_pose``.

    Args:
        output: predicted heatmaps, (N, K, H, W) (or (N, H, W, K) with
            ``data_format="channels_last"``, the Keras layout).
        target: target heatmaps, same shape.
        mask: (N, K) bool (or a 0/1 weight array; > 0 counts).
        thr: PCK threshold, as a fraction of ``normalize``.
        normalize: (N, 2) normalisation; default ``[[H, W]] * N``. Note the
            order: MMPose divides the x offset by H and the y offset by W,
            and we keep that so logged accuracies are comparable.

    Returns:
        ``(acc (K,), avg_acc, cnt)`` as :func:`keypoint_pck_accuracy`;
        ``(None, 0, 0)`` when there are no keypoints.
    """
    output = np.asarray(output)
    target = np.asarray(target)
    if data_format == "channels_last":
        output = np.moveaxis(output, -1, 1)
        target = np.moveaxis(target, -1, 1)
    elif data_format != "channels_first":
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
    n, k, h, w = output.shape
    if k == 0:
        return None, 0, 0
    if normalize is None:
        normalize = np.tile(np.array([[h, w]]), (n, 1))
    pred, _ = heatmap_argmax(output)
    gt, _ = heatmap_argmax(target)
    return keypoint_pck_accuracy(pred, gt, np.asarray(mask) > 0, thr, normalize)


def _as_instances(kpts: np.ndarray, k: Optional[int] = None) -> np.ndarray:
    """Reshape flat (K*3,) / (N, K*3) or (K, C) / (N, K, C) keypoints to (N, K, C)."""
    kpts = np.asarray(kpts)
    if kpts.ndim == 1:
        kpts = kpts.reshape(1, -1, 3)
    elif kpts.ndim == 2 and kpts.shape[-1] not in (2, 3):
        kpts = kpts.reshape(kpts.shape[0], -1, 3)
    elif kpts.ndim == 2:
        kpts = kpts[None]
    if kpts.ndim != 3 or kpts.shape[-1] not in (2, 3):
        raise ValueError(f"keypoints must be (K, 2|3), (N, K, 2|3) or flat K*3 rows, got {kpts.shape}")
    return kpts


def compute_oks(g, d, area_g, areas_d, sigmas=None, vis_thr: Optional[float] = None) -> np.ndarray:
    """Object keypoint similarity between one instance and several others (MMPose's ``oks_iou``).

    ``OKS = mean_k exp(-d_k^2 / (2 * s * (2 sigma_k)^2))`` with ``s`` the mean
    of the two areas. Used by OKS-NMS, where both sides are predictions.

    Args:
        g: keypoints of the reference instance, (K, 2|3) or flat (K*3,) as
            ``x, y, score`` triplets.
        d: keypoints of the others, (N, K, 2|3) or (N, K*3).
        area_g: area of the reference instance.
        areas_d: (N,) areas of the others.
        sigmas: (K,) OKS sigmas; default the COCO person sigmas.
        vis_thr: if given, only keypoints whose third value (score) exceeds
            it in *both* instances are averaged (needs 3 values per keypoint).

    Returns:
        (N,) float32 OKS values (0 where no keypoint qualifies).
    """
    g = _as_instances(g)[0]
    d = _as_instances(d)
    sigmas = COCO_SIGMAS if sigmas is None else np.asarray(sigmas)
    if len(sigmas) != g.shape[0] or d.shape[1] != g.shape[0]:
        raise ValueError(f"{len(sigmas)} sigmas for {g.shape[0]} / {d.shape[1]} keypoints")
    variances = (sigmas * 2) ** 2
    areas_d = np.asarray(areas_d).reshape(-1)
    ious = np.zeros(len(d), dtype=np.float32)
    for i in range(len(d)):
        dx = d[i, :, 0] - g[:, 0]
        dy = d[i, :, 1] - g[:, 1]
        # np.spacing(1) keeps two zero areas from dividing by zero.
        e = (dx**2 + dy**2) / variances / ((area_g + areas_d[i]) / 2 + np.spacing(1)) / 2
        if vis_thr is not None:
            if g.shape[1] < 3:
                raise ValueError("vis_thr needs keypoints with a score column (K, 3)")
            e = e[(g[:, 2] > vis_thr) & (d[i, :, 2] > vis_thr)]
        ious[i] = np.sum(np.exp(-e)) / len(e) if len(e) != 0 else 0.0
    return ious


def oks_nms(
    instances: Sequence[Mapping],
    thr: float,
    sigmas=None,
    vis_thr: Optional[float] = None,
    score_per_joint: bool = False,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression over the people of one image.

    The highest-scoring instance is kept, every remaining instance whose OKS
    with it exceeds ``thr`` is dropped, and so on.

    Args:
        instances: dicts with ``keypoints`` ((K, 2|3), x, y[, score]),
            ``score`` (a float, or (K,) per-keypoint scores with
            ``score_per_joint=True``) and ``area``.
        thr: OKS above which the lower-scoring instance is suppressed.
        sigmas: (K,) OKS sigmas (default COCO).
        vis_thr: see :func:`compute_oks`.
        score_per_joint: average ``score`` arrays first.

    Returns:
        Indices of the kept instances, highest score first (an int array).

    Example:
        >>> import numpy as np
        >>> a = {"keypoints": np.full((17, 2), 50.0), "score": 0.9, "area": 1e4}
        >>> b = {"keypoints": np.full((17, 2), 50.5), "score": 0.8, "area": 1e4}
        >>> c = {"keypoints": np.full((17, 2), 300.0), "score": 0.7, "area": 1e4}
        >>> oks_nms([a, b, c], thr=0.9).tolist()
        [0, 2]
    """
    if len(instances) == 0:
        return np.zeros((0,), dtype=np.int64)
    if score_per_joint:
        scores = np.array([np.mean(inst["score"]) for inst in instances])
    else:
        scores = np.array([inst["score"] for inst in instances])
    kpts = np.stack([_as_instances(inst["keypoints"])[0] for inst in instances])
    areas = np.array([inst["area"] for inst in instances])

    # Same (unstable) sort as MMPose so that ties are broken identically.
    order = scores.argsort()[::-1]
    keep = []
    while len(order) > 0:
        i = order[0]
        keep.append(i)
        overlaps = compute_oks(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas, vis_thr)
        order = order[np.where(overlaps <= thr)[0] + 1]
    return np.array(keep, dtype=np.int64)
