"""Training losses and metrics of the pose heads, in keras.ops (every backend).

Heatmaps are channels-last ``(B, H, W, K)`` here, like the estimator's
output; SimCC vectors ``(B, K, W)``; keypoint weights are ``(B, K)``.
"""

import keras
import numpy as np
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


def _pck_of_locations(pred_xy, gt_xy, valid, norm, thr):
    """MMPose's keypoint_pck_accuracy on (B, K, 2) locations: the mean over
    keypoints (that have any valid instance) of the fraction of valid
    instances closer than ``thr`` after dividing by ``norm``."""
    dist = ops.sqrt(ops.sum(ops.square((pred_xy - gt_xy) / norm), axis=-1))
    hit = ops.cast(ops.logical_and(valid, dist < thr), "float32")
    valid_f = ops.cast(valid, "float32")
    per_kpt_valid = ops.sum(valid_f, axis=0)
    per_kpt_acc = ops.sum(hit, axis=0) / ops.maximum(per_kpt_valid, 1.0)
    has = ops.cast(per_kpt_valid > 0, "float32")
    return ops.sum(per_kpt_acc * has) / ops.maximum(ops.sum(has), 1.0)


def heatmap_pose_accuracy(target, pred, keypoint_weights, thr=0.05):
    """One batch's ``acc_pose`` of channels-last heatmaps, as MMPose's heatmap heads compute it.

    The predicted and target heatmap maxima are compared, distances
    normalised by the heatmap size (H, W); a keypoint counts when its target
    weight is positive and its target heatmap has a positive maximum.
    """
    pred_xy, _ = heatmap_argmax(pred)
    gt_xy, gt_val = heatmap_argmax(target)
    shape = ops.shape(pred)
    norm = ops.cast(ops.stack([shape[1], shape[2]]), "float32")  # MMPose divides by (H, W)
    valid = ops.logical_and(ops.cast(keypoint_weights, "float32") > 0, gt_val > 0)
    return _pck_of_locations(pred_xy, gt_xy, valid, norm, thr)


def _simcc_locations(simcc_x, simcc_y):
    """MMPose's get_simcc_maximum: per-axis argmax, -1 where the score is <= 0."""
    xy = ops.cast(ops.stack([ops.argmax(simcc_x, axis=-1), ops.argmax(simcc_y, axis=-1)], axis=-1), "float32")
    score = ops.minimum(ops.max(simcc_x, axis=-1), ops.max(simcc_y, axis=-1))
    return ops.where(ops.expand_dims(score > 0, -1), xy, -ops.ones_like(xy))


def simcc_pose_accuracy(pred_x, pred_y, gt_x, gt_y, keypoint_weights, simcc_split_ratio, thr=0.05):
    """One batch's ``acc_pose`` of SimCC vectors, as MMPose's ``simcc_pck_accuracy``.

    Locations are the per-axis argmaxes over ``simcc_split_ratio``; like
    MMPose, the (x, y) distance is divided by ``(H, W)`` of the input (x by
    the height, y by the width); keypoints with a positive weight count.
    """
    wx = ops.shape(pred_x)[-1]
    wy = ops.shape(pred_y)[-1]
    ratio = float(simcc_split_ratio)
    # MMPose: W, H = int(Wx / ratio), int(Wy / ratio); normalize = (H, W).
    norm = ops.cast(ops.stack([ops.floor(wy / ratio), ops.floor(wx / ratio)]), "float32")
    pred_xy = _simcc_locations(pred_x, pred_y) / ratio
    gt_xy = _simcc_locations(gt_x, gt_y) / ratio
    valid = ops.cast(keypoint_weights, "float32") > 0
    return _pck_of_locations(pred_xy, gt_xy, valid, norm, thr)


def coordinate_pose_accuracy(pred, target, keypoint_weights, thr=0.05):
    """One batch's ``acc_pose`` of normalised coordinates ``(B, K, 2)``, as MMPose's
    regression heads compute it (``keypoint_pck_accuracy`` with a norm of 1)."""
    valid = ops.cast(keypoint_weights, "float32") > 0
    return _pck_of_locations(ops.cast(pred, "float32"), ops.cast(target, "float32"), valid, 1.0, thr)


@keras.saving.register_keras_serializable(package="keraspose")
class SmoothL1Loss(keras.losses.Loss):
    """MMPose's SmoothL1Loss (DeepPose): ``smooth_l1(pred * w, target * w)``, mean over every element.

    Example:
    >>> import numpy as np
    >>> float(SmoothL1Loss().compute(np.array([[[2.0, 0.0]]]), np.zeros((1, 1, 2)), np.ones((1, 1))))
    0.75
    """

    def __init__(self, use_target_weight=False, loss_weight=1.0, name="smooth_l1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.use_target_weight = bool(use_target_weight)
        self.loss_weight = float(loss_weight)

    def compute(self, pred, target, keypoint_weights=None):
        pred = ops.convert_to_tensor(pred)
        target = ops.cast(target, pred.dtype)
        if self.use_target_weight and keypoint_weights is not None:
            w = ops.expand_dims(ops.cast(keypoint_weights, pred.dtype), -1)
            pred, target = pred * w, target * w
        diff = ops.abs(pred - target)
        loss = ops.where(diff < 1.0, 0.5 * ops.square(diff), diff - 0.5)
        return ops.mean(loss) * self.loss_weight

    def call(self, y_true, y_pred):
        return self.compute(y_pred, y_true)

    def get_config(self):
        config = super().get_config()
        config.update(use_target_weight=self.use_target_weight, loss_weight=self.loss_weight)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class RLELoss(keras.losses.Loss):
    """MMPose's RLELoss: residual log-likelihood of the regression error under a learnt flow.

    ``error = (pred - target) / sigmoid(sigma)``; the loss is ``log(sigma) -
    log p_flow(error)`` plus, with ``residual``, the ``q_distribution``
    (``'laplace'``: ``log(2 sigma) + |error|``) term, weighted per keypoint,
    divided by the batch size (``size_average``) and summed. The flow (a
    :class:`~keraspose.models.heads.regression_head.RealNVP`) lives in the
    head, whose weights it is; ``compute`` takes it as an argument.
    """

    def __init__(self, use_target_weight=False, size_average=True, residual=True, q_distribution="laplace",
                 name="rle", **kwargs):
        super().__init__(name=name, **kwargs)
        if q_distribution not in ("laplace", "gaussian"):
            raise ValueError(f"RLELoss: q_distribution must be 'laplace' or 'gaussian', got {q_distribution!r}")
        self.use_target_weight = bool(use_target_weight)
        self.size_average = bool(size_average)
        self.residual = bool(residual)
        self.q_distribution = q_distribution

    def compute(self, pred, sigma, target, flow, keypoint_weights=None):
        pred = ops.convert_to_tensor(pred)
        target = ops.cast(target, pred.dtype)
        sigma = ops.sigmoid(ops.cast(sigma, pred.dtype))
        error = (pred - target) / (sigma + 1e-9)
        shape = ops.shape(target)
        log_phi = ops.reshape(flow.log_prob(ops.reshape(error, (-1, 2))), (shape[0], shape[1], 1))
        loss = ops.log(sigma) - log_phi
        if self.residual:
            if self.q_distribution == "laplace":
                loss = loss + ops.log(sigma * 2) + ops.abs(error)
            else:
                loss = loss + ops.log(sigma * float(np.sqrt(2 * np.pi))) + 0.5 * ops.square(error)
        if self.use_target_weight and keypoint_weights is not None:
            loss = loss * ops.expand_dims(ops.cast(keypoint_weights, loss.dtype), -1)
        if self.size_average:
            loss = loss / ops.cast(shape[0], loss.dtype)
        return ops.sum(loss)

    def call(self, y_true, y_pred):
        raise NotImplementedError("RLELoss needs the head's flow: use RLEHead.compute_loss")

    def get_config(self):
        config = super().get_config()
        config.update(use_target_weight=self.use_target_weight, size_average=self.size_average,
                      residual=self.residual, q_distribution=self.q_distribution)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class KLDiscretLoss(keras.losses.Loss):
    """MMPose's KLDiscretLoss: the SimCC classification loss (RTMPose).

    For each axis, the KL divergence ``KL(labels || softmax(beta * pred))``
    over the bins, averaged over the bins, weighted per keypoint, then
    *summed* over the instances and keypoints and divided by the number of
    keypoints K (MMPose's normalisation: the loss grows with the batch size).

    Args:
        beta: temperature of the prediction softmax (RTMPose: 10).
        label_softmax: replace the labels by ``softmax(label_beta * labels)``
            (RTMPose: True, with its unnormalised Gaussian labels).
        label_beta: temperature of that label softmax.
        use_target_weight: weight each keypoint by its target weight.
        mask, mask_weight: keypoint indices whose loss is multiplied by ``mask_weight``.

    Example:
    >>> import numpy as np
    >>> loss = KLDiscretLoss(beta=10.0, label_softmax=True)
    >>> x = np.zeros((1, 1, 4), "float32")
    >>> round(float(loss.compute(x, x, x, x, np.ones((1, 1)))), 6)
    0.0
    """

    def __init__(self, beta=1.0, label_softmax=False, label_beta=10.0, use_target_weight=True,
                 mask=None, mask_weight=1.0, name="kl_discret", **kwargs):
        super().__init__(name=name, **kwargs)
        self.beta = float(beta)
        self.label_softmax = bool(label_softmax)
        self.label_beta = float(label_beta)
        self.use_target_weight = bool(use_target_weight)
        self.mask = None if mask is None else [int(i) for i in mask]
        self.mask_weight = float(mask_weight)

    def _per_keypoint(self, pred, labels):
        log_pt = ops.log_softmax(pred * self.beta, axis=-1)
        if self.label_softmax:
            labels = ops.softmax(labels * self.label_beta, axis=-1)
        # PyTorch's KLDivLoss: labels * (log(labels) - log_pt), 0 where labels == 0.
        safe = ops.where(labels > 0, labels, ops.ones_like(labels))
        kl = ops.where(labels > 0, labels * ops.log(safe), ops.zeros_like(labels)) - labels * log_pt
        return ops.mean(kl, axis=-1)  # (B, K)

    def compute(self, pred_x, pred_y, target_x, target_y, keypoint_weights=None):
        pred_x = ops.convert_to_tensor(pred_x)
        k = ops.shape(pred_x)[1]
        total = 0.0
        for pred, target in ((pred_x, target_x), (pred_y, target_y)):
            pred = ops.convert_to_tensor(pred)
            loss = self._per_keypoint(pred, ops.cast(target, pred.dtype))
            if self.use_target_weight and keypoint_weights is not None:
                loss = loss * ops.cast(keypoint_weights, loss.dtype)
            if self.mask is not None:
                factor = [self.mask_weight if i in self.mask else 1.0 for i in range(int(k))]
                loss = loss * ops.convert_to_tensor(factor, loss.dtype)
            total = total + ops.sum(loss)
        return total / ops.cast(k, "float32")

    def call(self, y_true, y_pred):
        return self.compute(y_pred[0], y_pred[1], y_true[0], y_true[1])

    def get_config(self):
        config = super().get_config()
        config.update(beta=self.beta, label_softmax=self.label_softmax, label_beta=self.label_beta,
                      use_target_weight=self.use_target_weight, mask=self.mask, mask_weight=self.mask_weight)
        return config


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
        return super().update_state(heatmap_pose_accuracy(target, pred, keypoint_weights, self.thr))

    def add_batch_accuracy(self, accuracy):
        """Add one batch's accuracy, computed by the head (any head kind)."""
        return super().update_state(accuracy)

    def get_config(self):
        config = super().get_config()
        config.update(thr=self.thr)
        return config
