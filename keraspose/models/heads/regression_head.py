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

from keraspose import backend
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


@keras.saving.register_keras_serializable(package="keraspose")
class IntegralRegressionHead(RegressionHead):
    """Integral regression (Sun et al., "Integral Human Pose Regression"; MMPose's ``IntegralRegressionHead``).

    A SimpleBaseline heatmap head (deconvolutions, convs, final conv; or only
    a final conv without deconvolutions), a softmax over each map
    (``beta`` times the logits) and its expected position: normalised
    coordinates ``x / W``, ``y / H``. With ``debias`` the expectation is
    corrected for the softmax's uniform floor (``C / (C - 1) * (p - 1 / 2C)``,
    ``C`` the sum of the exponentials).

    Outputs ``{"coordinates": (B, K, 2), "heatmaps": (B, h, w, K)}`` (the
    softmax maps, for heatmap losses; ``(B, K, h, w)`` channels-first); the codec
    (:class:`~keraspose.codecs.IntegralRegressionLabel`) decodes the
    coordinates. The flip test merges coordinates as :class:`RegressionHead`.

    Example:
    >>> import numpy as np
    >>> head = IntegralRegressionHead(17, (6, 8), deconv_out_channels=(16,), deconv_kernel_sizes=(4,),
    ...                               data_format="channels_last")
    >>> out = head([np.zeros((1, 8, 6, 32), "float32")])
    >>> tuple(out["coordinates"].shape), tuple(out["heatmaps"].shape)
    ((1, 17, 2), (1, 16, 12, 17))
    """

    output_names = ("coordinates",)
    suggested_codec = "IntegralRegressionLabel"

    def __init__(self, num_joints, in_featuremap_size, debias=False, beta=1.0, deconv_out_channels=(256, 256, 256),
                 deconv_kernel_sizes=(4, 4, 4), conv_out_channels=None, conv_kernel_sizes=None, final_kernel_size=1,
                 codec=None, loss=None, data_format=None, **kwargs):
        # Not RegressionHead.__init__: this head has no fully-connected layer.
        PoseHead.__init__(self, codec=codec, loss=loss, data_format=data_format, **kwargs)
        from keraspose.layers import ConvBN
        from keraspose.models.heads.heatmap_head import HeatmapHead

        self.num_joints = int(num_joints)
        self.in_featuremap_size = (int(in_featuremap_size[0]), int(in_featuremap_size[1]))
        self.debias = bool(debias)
        self.beta = float(beta)
        self.deconv_out_channels = list(deconv_out_channels or [])
        self.deconv_kernel_sizes = list(deconv_kernel_sizes or [])
        self.conv_out_channels = list(conv_out_channels or [])
        self.conv_kernel_sizes = list(conv_kernel_sizes or [])
        self.final_kernel_size = int(final_kernel_size)
        scale = 2 ** len(self.deconv_out_channels)
        self.heatmap_size = (self.in_featuremap_size[0] * scale, self.in_featuremap_size[1] * scale)
        if self.deconv_out_channels:
            self.simplebaseline_head = HeatmapHead(
                self.num_joints, self.deconv_out_channels, self.deconv_kernel_sizes, self.conv_out_channels,
                self.conv_kernel_sizes, self.final_kernel_size, data_format=data_format, name="simplebaseline_head",
            )
            self.final_layer = None
        else:
            self.simplebaseline_head = None
            self.final_layer = ConvBN(self.num_joints, self.final_kernel_size, norm=False, use_bias=True,
                                      data_format=data_format, name="final_layer")
        w, h = self.heatmap_size
        # Pixel (i, j) of the flattened (h, w) map sits at x = j / W, y = i / H (MMPose's linspace).
        self._grid_x = np.tile(np.arange(w, dtype=np.float32) / w, h)
        self._grid_y = np.repeat(np.arange(h, dtype=np.float32) / h, w)

    def call(self, feats, training=None):
        if self.simplebaseline_head is not None:
            maps = self.simplebaseline_head(feats, training=training)
        else:
            maps = self.final_layer(feats[-1] if isinstance(feats, (list, tuple)) else feats, training=training)
        if self.data_format == "channels_first":
            maps = ops.transpose(maps, (0, 2, 3, 1))
        w, h = self.heatmap_size
        logits = ops.reshape(maps, (-1, h * w, self.num_joints))
        heatmaps = ops.softmax(logits * self.beta, axis=1)
        grid_x = ops.convert_to_tensor(self._grid_x[None, :, None], dtype=heatmaps.dtype)
        grid_y = ops.convert_to_tensor(self._grid_y[None, :, None], dtype=heatmaps.dtype)
        px = ops.sum(heatmaps * grid_x, axis=1)
        py = ops.sum(heatmaps * grid_y, axis=1)
        if self.debias:
            c = ops.sum(ops.exp(logits), axis=1)
            px = c / (c - 1) * (px - 1 / (2 * c))
            py = c / (c - 1) * (py - 1 / (2 * c))
        heatmaps = ops.reshape(heatmaps, (-1, h, w, self.num_joints))
        if self.data_format == "channels_first":
            # A head's maps are in its own layout, as HeatmapHead's are.
            heatmaps = ops.transpose(heatmaps, (0, 3, 1, 2))
        return {"coordinates": ops.stack([px, py], axis=-1), "heatmaps": heatmaps}

    def network_outputs(self, feats, training=None):
        """As :meth:`call`, with the heatmaps channels-last at the model's boundary, whatever the layout inside."""
        outputs = self(feats, training=training)
        if self.data_format == "channels_first":
            outputs = {**outputs, "heatmaps": backend.to_channels_last(outputs["heatmaps"])}
        return outputs

    def compute_loss(self, outputs, targets):
        return super().compute_loss(outputs["coordinates"], targets)

    def accuracy(self, outputs, targets, thr=0.05):
        return super().accuracy(outputs["coordinates"], targets, thr)

    def to_codec_layout(self, outputs):
        # Decoding and the flip test need only the coordinates.
        return np.asarray(outputs["coordinates"], np.float32)

    def config_for_keypoints(self, config, num_keypoints):
        return {**config, "num_joints": int(num_keypoints)}

    def checkpoint_keys(self, prefix="head"):
        if self.simplebaseline_head is not None:
            return self.simplebaseline_head.checkpoint_keys(f"{prefix}.simplebaseline_head")
        return [(self.final_layer, f"{prefix}.final_layer", None)]

    def checkpoint_tensors(self, prefix="head"):
        # MMPose stores its fixed sampling grids as (frozen) parameters.
        return [(f"{prefix}.linspace_x", None, "buffer"), (f"{prefix}.linspace_y", None, "buffer")]

    def get_config(self):
        config = PoseHead.get_config(self)
        config.update(
            num_joints=self.num_joints, in_featuremap_size=list(self.in_featuremap_size), debias=self.debias,
            beta=self.beta, deconv_out_channels=self.deconv_out_channels, deconv_kernel_sizes=self.deconv_kernel_sizes,
            conv_out_channels=self.conv_out_channels, conv_kernel_sizes=self.conv_kernel_sizes,
            final_kernel_size=self.final_kernel_size,
        )
        return config
