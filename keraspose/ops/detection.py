"""RTMDet's decoding and post-processing in numpy (no Keras): shared by
``RTMDetector.predict`` and the exported detector's runtime.

The network gives, per pyramid level of stride ``s`` and size ``h x w``,
class logits and the distances left/top/right/bottom (input pixels) of every
prior. Decoding (:func:`decode_priors`; the exported graph does the same in
``keras.ops``) flattens the levels finest first, prior index ``y * w + x``,
into one list of ``N = sum(h * w)`` priors: the prior sits at
``(x * s, y * s)``, its box is ``(px - l, py - t, px + r, py + b)`` clipped to
the input, its class scores are the sigmoid of the logits.

:func:`postprocess_detections` then applies MMDetection's ``test_cfg`` to one
image's decoded priors: per level the candidates (one prior and one class)
scoring above ``score_threshold``, best first (stable: ties keep the prior
order), at most ``nms_pre`` of them; boxes divided by the scale factors;
boxes not wider and taller than ``min_bbox_size`` dropped; NMS per class; the
``max_per_image`` best.

Example:
>>> import numpy as np
>>> prior_points([(1, 2), (1, 1)], [8, 16]).tolist()
[[0.0, 0.0], [8.0, 0.0], [0.0, 0.0]]
"""

import numpy as np

from keraspose.ops.boxes import nms

__all__ = ["decode_priors", "detection_results", "level_sizes", "postprocess_detections", "prior_points", "sigmoid"]


def sigmoid(x):
    """``1 / (1 + exp(-x))`` in the input's float dtype."""
    return 1.0 / (1.0 + np.exp(-x))


def level_sizes(input_size, strides):
    """``[(h, w), ...]`` of each level for an input ``(width, height)`` (a multiple of every stride)."""
    w, h = (int(v) for v in input_size)
    return [(h // int(s), w // int(s)) for s in strides]


def prior_points(sizes, strides):
    """``(N, 2)`` float32 ``(x * stride, y * stride)`` of every prior, levels in order, row-major."""
    points = []
    for (h, w), stride in zip(sizes, strides):
        ys, xs = np.divmod(np.arange(h * w), w)
        points.append(np.stack([xs * stride, ys * stride], axis=1))
    return np.concatenate(points).astype(np.float32)


def decode_priors(cls_scores, bbox_preds, strides, input_size):
    """Per-level raw outputs -> ``boxes (B, N, 4)`` (input pixels, clipped) and ``scores (B, N, C)`` (sigmoid).

    ``cls_scores``/``bbox_preds``: one channels-last array per level,
    ``(B, h, w, C)`` and ``(B, h, w, 4)``, as ``RTMDetector`` returns them.
    """
    cls_scores = [np.asarray(c, np.float32) for c in cls_scores]
    bbox_preds = [np.asarray(p, np.float32) for p in bbox_preds]
    batch = cls_scores[0].shape[0]
    sizes = [c.shape[1:3] for c in cls_scores]
    points = prior_points(sizes, strides)
    dist = np.concatenate([p.reshape(batch, h * w, 4) for p, (h, w) in zip(bbox_preds, sizes)], axis=1)
    px, py = points[None, :, 0], points[None, :, 1]
    boxes = np.stack([px - dist[..., 0], py - dist[..., 1], px + dist[..., 2], py + dist[..., 3]], axis=-1)
    in_w, in_h = input_size
    boxes[..., 0::2] = np.clip(boxes[..., 0::2], 0, in_w)
    boxes[..., 1::2] = np.clip(boxes[..., 1::2], 0, in_h)
    scores = np.concatenate([sigmoid(c.reshape(batch, h * w, c.shape[-1])) for c, (h, w) in zip(cls_scores, sizes)], axis=1)
    return boxes.astype(np.float32), scores.astype(np.float32)


def postprocess_detections(boxes, scores, sizes, score_threshold=0.05, nms_pre=1000, iou_threshold=0.6,
                           max_per_image=100, min_bbox_size=0.0, scale_factor=None):
    """One image's decoded priors -> ``(boxes (M, 4) float32, scores (M,) float32, labels (M,) int64)``, best first.

    Args:
        boxes: ``(N, 4)`` decoded, clipped boxes of every prior (input pixels).
        scores: ``(N, C)`` sigmoid class scores.
        sizes: ``[(h, w), ...]`` of the levels, finest first (``N = sum(h * w)``).
        score_threshold, nms_pre, iou_threshold, max_per_image, min_bbox_size:
            MMDetection's test_cfg (``nms_pre <= 0``: no limit).
        scale_factor: ``(w_scale, h_scale)`` of the letterbox (resized /
            original); ``None`` keeps the boxes in input pixels.

    Example:
    >>> boxes = np.array([[0, 0, 8, 8], [1, 1, 9, 9], [20, 20, 30, 30]], "float32")
    >>> scores = np.array([[0.9], [0.8], [0.7]], "float32")
    >>> b, s, l = postprocess_detections(boxes, scores, [(1, 3)], scale_factor=(0.5, 0.5))
    >>> b.tolist(), [round(float(v), 2) for v in s], l.tolist()  # the 0.8 box overlaps the 0.9 one: suppressed
    ([[0.0, 0.0, 16.0, 16.0], [40.0, 40.0, 60.0, 60.0]], [0.9, 0.7], [0, 0])
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32)
    num_classes = scores.shape[-1]
    counts = [int(h) * int(w) for h, w in sizes]
    if sum(counts) != len(boxes) or len(scores) != len(boxes):
        raise ValueError(
            f"postprocess_detections: {len(boxes)} boxes and {len(scores)} score rows for level sizes {list(sizes)} "
            f"(expected {sum(counts)} priors)"
        )
    kept_boxes, kept_scores, kept_labels = [], [], []
    start = 0
    for count in counts:
        level_boxes, flat = boxes[start : start + count], scores[start : start + count].reshape(-1)
        start += count
        candidates = np.flatnonzero(flat > score_threshold)
        # Best first; a stable order keeps ties in MMDetection's index order.
        candidates = candidates[np.argsort(-flat[candidates], kind="stable")]
        if nms_pre > 0:
            candidates = candidates[:nms_pre]
        prior, label = np.divmod(candidates, num_classes)
        kept_boxes.append(level_boxes[prior])
        kept_scores.append(flat[candidates])
        kept_labels.append(label)
    boxes = np.concatenate(kept_boxes).astype(np.float32).reshape(-1, 4)
    scores = np.concatenate(kept_scores).astype(np.float32)
    labels = np.concatenate(kept_labels).astype(np.int64)
    if scale_factor is not None:
        inverse = np.asarray([1 / scale_factor[0], 1 / scale_factor[1]] * 2, np.float32)
        boxes = boxes * inverse
    if min_bbox_size >= 0:
        keep = ((boxes[:, 2] - boxes[:, 0]) > min_bbox_size) & ((boxes[:, 3] - boxes[:, 1]) > min_bbox_size)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    if len(boxes):
        kept = np.concatenate(
            [np.flatnonzero(labels == c)[nms(boxes[labels == c], scores[labels == c], iou_threshold)]
             for c in np.unique(labels)]
        )
        kept = kept[np.argsort(-scores[kept], kind="stable")][:max_per_image]
        boxes, scores, labels = boxes[kept], scores[kept], labels[kept]
    return boxes.reshape(-1, 4), scores, labels


def detection_results(boxes, scores, detector, scale_factors=None):
    """A batch of decoded priors -> one ``DetectionResult`` per image, with ``detector``'s settings.

    ``detector``: anything with ``level_sizes``, ``score_threshold``,
    ``nms_pre``, ``iou_threshold``, ``max_per_image``, ``min_bbox_size`` and
    ``class_names`` (an ``RTMDetector`` or a ``keraspose.runtime.ExportedDetector``).
    """
    from keraspose.results import DetectionResult

    results = []
    for b in range(len(boxes)):
        found = postprocess_detections(
            boxes[b], scores[b], detector.level_sizes, score_threshold=detector.score_threshold,
            nms_pre=detector.nms_pre, iou_threshold=detector.iou_threshold, max_per_image=detector.max_per_image,
            min_bbox_size=detector.min_bbox_size, scale_factor=None if scale_factors is None else scale_factors[b],
        )
        results.append(DetectionResult(*found, class_names=detector.class_names))
    return results
