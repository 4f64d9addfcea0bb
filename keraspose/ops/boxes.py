"""Box operations on the host (numpy): IoU and greedy non-maximum suppression.

Post-processing runs in numpy on every backend, so its result is the same bit
for bit whether the network ran on torch, TensorFlow or JAX.

Two conventions exist in the reference code and both are needed:

* MMCV's ``nms`` (used by MMDetection's detectors, ``offset=0``): box area is
  ``(x2 - x1) * (y2 - y1)``.
* MMPose's ``nms`` (used by its top-down demo to filter detections,
  ``offset=1``): area is ``(x2 - x1 + 1) * (y2 - y1 + 1)``, pixel-inclusive.

In both a box is suppressed when its IoU with a kept, higher-scoring box is
strictly greater than the threshold.
"""

import numpy as np


def box_iou(box, boxes, offset=0.0):
    """IoU of one xyxy ``box`` (4,) with each of ``boxes`` (N, 4)."""
    w = np.maximum(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + offset, 0.0)
    h = np.maximum(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + offset, 0.0)
    inter = w * h
    area = (box[2] - box[0] + offset) * (box[3] - box[1] + offset)
    areas = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    return inter / np.maximum(area + areas - inter, np.finfo(np.float32).tiny)


def nms(boxes, scores, iou_threshold, offset=0.0):
    """Greedy NMS: indices of the kept boxes, highest score first.

    Args:
        boxes: (N, 4) xyxy.
        scores: (N,).
        iou_threshold: a box whose IoU with a kept box is ``> iou_threshold``
            is dropped.
        offset: 0 for MMCV/MMDetection areas, 1 for MMPose's demo NMS.

    Ties in score keep the earlier box first (a stable sort), so the result
    does not depend on the backend that produced the scores.

    Example:
    >>> import numpy as np
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], "float32")
    >>> nms(boxes, np.array([0.9, 0.8, 0.7], "float32"), 0.5).tolist()
    [0, 2]
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"nms: {len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[box_iou(boxes[i], boxes[rest], offset) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
