"""Training losses and metrics for heatmap heads, in keras.ops (every backend).

Heatmaps are channels-last ``(B, H, W, K)`` here, like the estimator's
output; keypoint weights are ``(B, K)``.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keraspose")
class KeypointMSELoss(keras.losses.Loss):
    """MMPose's KeypointMSELoss: mean squared error of heatmaps, per-keypoint weighted.

    With ``use_target_weight`` each keypoint's squared error is multiplied by
    its target weight (0 for invisible or out-of-crop keypoints) before the
    mean over every element, exactly as MMPose does.

    Example:
    >>> import numpy as np
    >>> loss = KeypointMSELoss()
    >>> float(loss.compute(np.ones((1, 4, 4, 2)), np.zeros((1, 4, 4, 2)), np.array([[1.0, 0.0]])))
    0.5
    """

    def __init__(self, use_target_weight=True, loss_weight=1.0, name="keypoint_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def compute(self, target, pred, keypoint_weights=None):
        squared = ops.square(pred - target)
        if self.use_target_weight and keypoint_weights is not None:
            w = ops.cast(keypoint_weights, squared.dtype)
            squared = squared * ops.expand_dims(ops.expand_dims(w, 1), 1)
        return ops.mean(squared) * self.loss_weight

    def call(self, y_true, y_pred):
        return self.compute(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config.update(use_target_weight=self.use_target_weight, loss_weight=self.loss_weight)
        return config


def heatmap_argmax(heatmaps):
    """(x, y) of each channel's maximum and the maximum, for ``(B, H, W, K)`` heatmaps."""
    shape = ops.shape(heatmaps)
    b, h, w, k = shape[0], shape[1], shape[2], shape[3]
    flat = ops.reshape(ops.transpose(heatmaps, (0, 3, 1, 2)), (b, k, h * w))
    idx = ops.argmax(flat, axis=-1)
    vals = ops.max(flat, axis=-1)
    x = ops.cast(idx % w, "float32")
    y = ops.cast(idx // w, "float32")
    return ops.stack([x, y], axis=-1), vals


@keras.saving.register_keras_serializable(package="keraspose")
class PoseAccuracy(keras.metrics.Mean):
    """MMPose's training accuracy ``acc_pose``: PCK of heatmap maxima at ``thr``.

    Per batch: the predicted and target heatmap maxima are compared, distances
    normalised by the heatmap size (H, W); a keypoint counts when its target
    weight is positive and its target heatmap has a positive maximum. The
    batch accuracy is the mean over keypoints that had any valid instance;
    this metric averages the batch accuracies, as MMPose's logs do.
    """

    def __init__(self, thr=0.05, name="acc_pose", **kwargs):
        super().__init__(name=name, **kwargs)
        self.thr = thr

    def update_state(self, target, pred, keypoint_weights):
        pred_xy, _ = heatmap_argmax(pred)
        gt_xy, gt_val = heatmap_argmax(target)
        shape = ops.shape(pred)
        norm = ops.cast(ops.stack([shape[1], shape[2]]), "float32")  # MMPose divides by (H, W)
        valid = ops.logical_and(ops.cast(keypoint_weights, "float32") > 0, gt_val > 0)
        dist = ops.sqrt(ops.sum(ops.square((pred_xy - gt_xy) / norm), axis=-1))
        hit = ops.cast(ops.logical_and(valid, dist < self.thr), "float32")
        valid_f = ops.cast(valid, "float32")
        per_kpt_valid = ops.sum(valid_f, axis=0)
        per_kpt_acc = ops.sum(hit, axis=0) / ops.maximum(per_kpt_valid, 1.0)
        has = ops.cast(per_kpt_valid > 0, "float32")
        acc = ops.sum(per_kpt_acc * has) / ops.maximum(ops.sum(has), 1.0)
        return super().update_state(acc)

    def get_config(self):
        config = super().get_config()
        config.update(thr=self.thr)
        return config
