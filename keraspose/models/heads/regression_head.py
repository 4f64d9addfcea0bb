"""Coordinate regression heads: RegressionHead (DeepPose) and RLEHead, and the GlobalAveragePooling neck.

MMPose's ``RegressionHead`` is one linear layer from the pooled backbone
feature to K normalised ``(x, y)`` (the codec, :class:`~keraspose.codecs.RegressionLabel`,
multiplies by the input size). ``RLEHead`` (Li et al., "Human Pose
Regression with Residual Log-likelihood Estimation") predicts ``(x, y,
sigma_x, sigma_y)``; its loss, :class:`~keraspose.losses.RLELoss`, scores the
error under a learnt RealNVP flow (:class:`RealNVP`, trained with the model,
so it is a part of the head here as in MMPose), and the decoded score is
``1 - mean(sigmoid(sigma))``.

Flip test (MMPose's ``flip_coordinates``): ``x -> 1 - x`` of the mirrored
crop's coordinates, shifted left by one input pixel when the estimator's
``shift_heatmap`` (MMPose's ``shift_coords``, default on) is set, left/right
keypoints swapped, then averaged with the plain ones.
"""

import keras
import numpy as np
from keras import ops

from keraspose.layers.base import BaseLayer
from keraspose.losses import RLELoss, SmoothL1Loss, coordinate_pose_accuracy
from keraspose.models.heads.base import PoseHead
from keraspose.transforms import flip_coordinates

_LINEAR_INIT = keras.initializers.RandomNormal(stddev=0.01)  # MMPose's default_init_cfg


@keras.saving.register_keras_serializable(package="keraspose")
class GlobalAveragePooling(BaseLayer):
    """MMPose's ``GlobalAveragePooling`` neck: each feature map -> ``(B, C)``.

    Example:
    >>> import numpy as np
    >>> pool = GlobalAveragePooling(data_format="channels_last")
    >>> [tuple(f.shape) for f in pool([np.ones((2, 4, 3, 5), "float32")])]
    [(2, 5)]
    """

    def call(self, feats, training=None):
        axes = (2, 3) if self.data_format == "channels_first" else (1, 2)
        if isinstance(feats, (list, tuple)):
            return [ops.mean(f, axis=axes) for f in feats]
        return ops.mean(feats, axis=axes)


@keras.saving.register_keras_serializable(package="keraspose")
class RegressionHead(PoseHead):
    """DeepPose's head: pooled feature ``(B, C)`` -> normalised coordinates ``(B, K, 2)``.

    Args:
        num_joints: K.
        codec: a :class:`~keraspose.codecs.RegressionLabel`.
        loss: default ``SmoothL1Loss(use_target_weight=True)``.

    Example:
    >>> import numpy as np
    >>> head = RegressionHead(17)
    >>> tuple(head([np.zeros((2, 64), "float32")]).shape)
    (2, 17, 2)
    """

    output_names = ("coordinates",)
    suggested_codec = "RegressionLabel"
    out_dims = 2

    def __init__(self, num_joints, codec=None, loss=None, data_format=None, **kwargs):
        super().__init__(codec=codec, loss=loss, data_format=data_format, **kwargs)
        self.num_joints = int(num_joints)
        self.fc = keras.layers.Dense(self.num_joints * self.out_dims, kernel_initializer=_LINEAR_INIT, name="fc")

    @property
    def out_channels(self):
        return self.num_joints

    def default_loss(self):
        return SmoothL1Loss(use_target_weight=True)

    def config_for_keypoints(self, config, num_keypoints):
        return {**config, "num_joints": int(num_keypoints)}

    def build(self, input_shape=None):
        self.built = True

    def call(self, feats, training=None):
        x = feats[-1] if isinstance(feats, (list, tuple)) else feats
        x = ops.reshape(x, (ops.shape(x)[0], -1))
        return ops.reshape(self.fc(x), (-1, self.num_joints, self.out_dims))

    def resolve_test_cfg(self, flip_mode=None, shift_heatmap=None):
        if flip_mode not in (None, "coordinates"):
            raise ValueError(
                f"{type(self).__name__} flips coordinates (MMPose's flip_coordinates); flip_mode={flip_mode!r} "
                "is a heatmap setting: leave it unset (shift_heatmap carries MMPose's shift_coords)"
            )
        return None, True if shift_heatmap is None else bool(shift_heatmap)

    def _targets(self, outputs, targets):
        labels = ops.convert_to_tensor(targets["keypoint_labels"], dtype=outputs.dtype)
        weights = targets.get("keypoint_weights")
        if weights is None:
            weights = ops.ones(ops.shape(labels)[:2])
        return labels, ops.convert_to_tensor(weights, dtype=outputs.dtype)

    def compute_loss(self, outputs, targets):
        labels, weights = self._targets(outputs, targets)
        return self.loss_fn.compute(outputs[..., :2], labels, weights)

    def accuracy(self, outputs, targets, thr=0.05):
        """MMPose's ``acc_pose`` of regression heads: PCK of normalised coordinates (norm 1)."""
        labels, weights = self._targets(outputs, targets)
        return coordinate_pose_accuracy(outputs[..., :2], labels, weights, thr)

    def merge_flip(self, outputs, flipped, flip_indices, flip_mode=None, shift_heatmap=True):
        w, h = self.codec.input_size if self.codec is not None else (1, 1)
        flipped = flip_coordinates(flipped, flip_indices, shift_coords=shift_heatmap, input_size=(w, h))
        return (outputs + flipped) * 0.5

    def empty_outputs(self):
        return np.zeros((0, self.num_joints, self.out_dims), np.float32)

    def checkpoint_keys(self, prefix="head"):
        return []

    def checkpoint_tensors(self, prefix="head"):
        return [(f"{prefix}.fc.weight", self.fc.kernel, "linear"), (f"{prefix}.fc.bias", self.fc.bias, "vector")]

    def get_config(self):
        config = super().get_config()
        config.update(num_joints=self.num_joints)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class RealNVP(BaseLayer):
    """The RealNVP flow of RLE (MMPose's ``RealNVP``): 3 x 2 coupling layers over 2-D errors.

    :meth:`log_prob` is the log-density of ``(N, 2)`` points under the flow
    with a standard normal prior.
    """

    _MASKS = np.array([[0, 1], [1, 0]] * 3, np.float32)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        init = keras.initializers.GlorotUniform()  # MMPose: xavier_uniform with gain 0.01 (scaled below)

        def mlp(name, tanh):
            return [keras.layers.Dense(64, kernel_initializer=init, name=f"{name}_0"),
                    keras.layers.Dense(64, kernel_initializer=init, name=f"{name}_2"),
                    keras.layers.Dense(2, kernel_initializer=init, name=f"{name}_4")], tanh

        self.s = [mlp(f"s{i}", True)[0] for i in range(len(self._MASKS))]
        self.t = [mlp(f"t{i}", False)[0] for i in range(len(self._MASKS))]

    def build(self, input_shape=None):
        if self.built:
            return
        for net in self.s + self.t:
            x = (None, 2)
            for layer in net:
                layer.build(x)
                x = (None, layer.units)
            for layer in net:  # xavier_uniform(gain=0.01), zero bias as torch's default bias is replaced
                layer.kernel.assign(layer.kernel * 0.01)
        self.built = True

    @staticmethod
    def _run(net, x, tanh):
        x = ops.leaky_relu(net[0](x), negative_slope=0.01)
        x = ops.leaky_relu(net[1](x), negative_slope=0.01)
        x = net[2](x)
        return ops.tanh(x) if tanh else x

    def log_prob(self, x):
        if not self.built:
            self.build()
        z = x
        log_det = ops.zeros(ops.shape(x)[:1], dtype=x.dtype)
        for i in reversed(range(len(self._MASKS))):
            mask = ops.convert_to_tensor(self._MASKS[i], dtype=x.dtype)
            z_ = mask * z
            s = self._run(self.s[i], z_, True) * (1 - mask)
            t = self._run(self.t[i], z_, False) * (1 - mask)
            z = (1 - mask) * (z - t) * ops.exp(-s) + z_
            log_det = log_det - ops.sum(s, axis=1)
        prior = -0.5 * ops.sum(ops.square(z), axis=1) - float(np.log(2 * np.pi))
        return prior + log_det

    def call(self, x):
        return self.log_prob(x)

    def checkpoint_tensors(self, prefix):
        tensors = []
        for kind, nets in (("s", self.s), ("t", self.t)):
            for i, net in enumerate(nets):
                for j, layer in zip((0, 2, 4), net):
                    tensors.append((f"{prefix}.{kind}.{i}.{j}.weight", layer.kernel, "linear"))
                    tensors.append((f"{prefix}.{kind}.{i}.{j}.bias", layer.bias, "vector"))
        # Constant buffers (prior and masks): nothing to load.
        tensors += [(f"{prefix}.{name}", None, "buffer") for name in ("loc", "cov", "mask")]
        return tensors


@keras.saving.register_keras_serializable(package="keraspose")
class RLEHead(RegressionHead):
    """RLE's head: pooled feature -> ``(B, K, 4)``: normalised ``(x, y)`` and raw ``(sigma_x, sigma_y)``.

    The decoded outputs (:meth:`to_codec_layout`) carry ``sigmoid(sigma)``,
    and a keypoint's score is ``1 - mean(sigmoid(sigma))`` (MMPose's
    RegressionLabel): 0-1, higher is surer.

    Example:
    >>> import numpy as np
    >>> head = RLEHead(17)
    >>> tuple(head([np.zeros((2, 64), "float32")]).shape)
    (2, 17, 4)
    """

    out_dims = 4

    def __init__(self, num_joints, codec=None, loss=None, data_format=None, **kwargs):
        super().__init__(num_joints, codec=codec, loss=loss, data_format=data_format, **kwargs)
        # The flow is trained with the model (MMPose keeps it in the loss module).
        self.flow = RealNVP(name="flow")

    def default_loss(self):
        return RLELoss(use_target_weight=True)

    def build(self, input_shape=None):
        self.flow.build()
        self.built = True

    def compute_loss(self, outputs, targets):
        labels, weights = self._targets(outputs, targets)
        return self.loss_fn.compute(outputs[..., :2], outputs[..., 2:4], labels, self.flow, weights)

    def to_codec_layout(self, outputs):
        outputs = np.array(outputs, np.float32, copy=True)
        outputs[..., 2:] = 1.0 / (1.0 + np.exp(-outputs[..., 2:]))
        return outputs

    def checkpoint_tensors(self, prefix="head"):
        return super().checkpoint_tensors(prefix) + self.flow.checkpoint_tensors(f"{prefix}.loss_module.flow_model")
