"""Evaluation: keypoint metrics (PCK, AUC, EPE, NME, OKS) and COCO keypoint AP.

Plain numpy and pycocotools, no Keras tensors: predictions are converted to
numpy before they get here. Semantics follow MMPose 1.x so that numbers are
comparable with MMPose's logs and model zoo.

Example:
    >>> import numpy as np
    >>> from keraspose.evaluation import keypoint_epe
    >>> keypoint_epe(np.zeros((1, 2, 2)), np.full((1, 2, 2), [3.0, 4.0]), np.ones((1, 2), bool))
    5.0
"""

from keraspose.evaluation.coco_metric import COCO_STATS_NAMES, CocoMetric, evaluate_coco_results, write_json_atomic
from keraspose.evaluation.topdown import detect_people, evaluate_topdown, evaluate_with_detector, predict_dataset
from keraspose.evaluation.functional import (
    COCO_SIGMAS,
    compute_oks,
    heatmap_argmax,
    keypoint_auc,
    keypoint_epe,
    keypoint_nme,
    keypoint_pck_accuracy,
    oks_nms,
    pose_pck_accuracy,
)

__all__ = [
    "COCO_SIGMAS",
    "COCO_STATS_NAMES",
    "CocoMetric",
    "compute_oks",
    "detect_people",
    "evaluate_coco_results",
    "evaluate_topdown",
    "evaluate_with_detector",
    "heatmap_argmax",
    "keypoint_auc",
    "keypoint_epe",
    "keypoint_nme",
    "keypoint_pck_accuracy",
    "oks_nms",
    "pose_pck_accuracy",
    "predict_dataset",
    "write_json_atomic",
]
