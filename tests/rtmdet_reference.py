"""The RTMDet-nano person detector as its ONNX graph runs it, for tests and benchmarks.

Written from ``shared/weights/README.md`` alone, *not* from keraspose's
detector, so the two can be compared: OpenCV (BGR) image, keep-ratio bilinear
resize of the long side to 320, bottom/right padding with 114 to 320x320, BGR
normalisation with MMDetection's mean/std, onnxruntime, then MMDetection's
``test_cfg`` in plain numpy (sigmoid, score > 0.05, top 1000 per level,
distances from priors at ``(x * stride, y * stride)``, clip to the padded
input, divide by the resize factor, drop empty boxes, greedy NMS at IoU 0.6
with MMCV's areas (no +1), at most 100 boxes).

It also scores person boxes with pycocotools (``coco_bbox_ap``).
"""

import contextlib
import io
import json
from pathlib import Path

import numpy as np

INPUT_SIZE = 320
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
STRIDES = (8, 16, 32)
PAD_VALUE = 114


def letterbox(image_bgr, size=INPUT_SIZE):
    """``(padded uint8 (size, size, 3), (x factor, y factor))`` as MMDetection's Resize + Pad."""
    import cv2

    h, w = image_bgr.shape[:2]
    factor = size / max(h, w)
    new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[:new_h, :new_w] = resized
    # MMDetection records the factor per axis from the rounded size.
    return canvas, (new_w / w, new_h / h)


def onnx_input(padded_bgr):
    """(1, 3, H, W) float32, normalised in BGR order."""
    x = (padded_bgr.astype(np.float32) - MEAN_BGR) / STD_BGR
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def onnx_session(onnx_path, threads=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, x):
    """The three raw outputs, (1, H, W, 5) each, stride 8 first."""
    outs = session.run(None, {session.get_inputs()[0].name: x})
    return sorted(outs, key=lambda o: -o.shape[1])


def _nms(boxes, scores, iou_threshold):
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.array(keep, np.int64)


def postprocess(outputs, scale, score_thr=0.05, nms_pre=1000, iou_threshold=0.6, max_per_img=100,
                size=INPUT_SIZE):
    """``(boxes (N, 4) xyxy in the original image, scores (N,))`` from the raw outputs of one image."""
    all_boxes, all_scores = [], []
    for out, stride in zip(outputs, STRIDES):
        out = np.asarray(out, np.float32).reshape(out.shape[-3], out.shape[-2], 5)
        h, w = out.shape[:2]
        ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
        px, py = (xs * stride).reshape(-1), (ys * stride).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-out[..., 0].reshape(-1).astype(np.float64)))
        dist = out[..., 1:].reshape(-1, 4)
        idx = np.nonzero(scores > score_thr)[0]
        idx = idx[np.argsort(-scores[idx], kind="stable")][:nms_pre]
        d = dist[idx]
        boxes = np.stack([px[idx] - d[:, 0], py[idx] - d[:, 1], px[idx] + d[:, 2], py[idx] + d[:, 3]], 1)
        all_boxes.append(np.clip(boxes, 0, size))
        all_scores.append(scores[idx])
    boxes = np.concatenate(all_boxes).astype(np.float64)
    scores = np.concatenate(all_scores)
    boxes /= np.array([scale[0], scale[1], scale[0], scale[1]])
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores = boxes[valid], scores[valid]
    keep = _nms(boxes, scores, iou_threshold)[:max_per_img]
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32)


def detect(session, image_bgr):
    """The whole ONNX pipeline on one BGR image: ``(boxes, scores, raw outputs)``."""
    padded, scale = letterbox(image_bgr)
    raw = run_onnx(session, onnx_input(padded))
    boxes, scores = postprocess(raw, scale)
    return boxes, scores, raw


def coco_mini_images(root):
    """``[(image id, path)]`` of every coco_mini image, sorted by id."""
    root = Path(root)
    coco = json.loads((root / "annotations/person_keypoints_train2017.json").read_text())
    return sorted((img["id"], root / "train2017" / img["file_name"]) for img in coco["images"])


def coco_bbox_ap(ann_file, detections):
    """pycocotools person bbox stats; ``detections``: ``{image id: (boxes xyxy, scores)}``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = []
    for image_id, (boxes, scores) in detections.items():
        for (x1, y1, x2, y2), s in zip(np.asarray(boxes, np.float64), np.asarray(scores, np.float64)):
            dets.append({"image_id": int(image_id), "category_id": 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = sorted(int(i) for i in detections)
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = ["AP", "AP .5", "AP .75", "AP (S)", "AP (M)", "AP (L)"]
    return dict(zip(names, map(float, ev.stats)))
