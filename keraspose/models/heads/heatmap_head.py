"""HeatmapHead: optional deconvolutions, optional convs, a final conv to K heatmaps.

MMPose's ``HeatmapHead`` (SimpleBaseline's head; HRNet uses it with no
deconvolution). The head is codec-aware: it owns the codec that turns its
heatmaps into keypoints (:meth:`decode`) and training targets into heatmaps.
"""

import keras
import numpy as np

from keraspose import backend
from keraspose.layers import ConvBN
from keraspose.losses import KeypointMSELoss, heatmap_pose_accuracy
from keraspose.models.heads.base import PoseHead, take_static
from keraspose.transforms import flip_heatmaps

# MMPose's deconvolution padding for each supported kernel size.
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


@keras.saving.register_keras_serializable(package="keraspose")
class HeatmapHead(PoseHead):
    """Heatmap head on the last feature map of a backbone.

    Args:
        out_channels: number of keypoints K.
        deconv_out_channels / deconv_kernel_sizes: transposed convs (stride 2,
            each followed by BN + ReLU), e.g. ``(256, 256, 256)`` / ``(4, 4, 4)``.
        conv_out_channels / conv_kernel_sizes: plain convs (+BN+ReLU) after them.
        final_kernel_size: the last conv (with bias, no BN) producing heatmaps.
        codec: a keraspose codec (e.g. ``MSRAHeatmap``) used by :meth:`decode`.
        loss: the training loss (default ``KeypointMSELoss(use_target_weight=True)``).

    Input: a list of feature maps (the last one is used) in ``data_format``.
    Output: heatmaps (B, K, H, W) channels-first or (B, H, W, K) channels-last;
    :meth:`network_outputs` always gives channels-last (the estimator's output).

    Flip test: the heatmaps of the mirrored crop are mirrored back, their
    left/right channels swapped and (``shift_heatmap``, MSRA's default)
    shifted one pixel right, then averaged with the plain ones.
    """

    output_names = ("heatmaps",)
    suggested_codec = "MSRAHeatmap or UDPHeatmap"

    def __init__(
        self, out_channels, deconv_out_channels=None, deconv_kernel_sizes=None,
        conv_out_channels=None, conv_kernel_sizes=None, final_kernel_size=1,
        codec=None, loss=None, data_format=None, **kwargs,
    ):
        # The codec and the training loss live with the head, as in MMPose.
        super().__init__(codec=codec, loss=loss, data_format=data_format, **kwargs)
        self.out_channels = int(out_channels)
        self.deconv_out_channels = list(deconv_out_channels or [])
        self.deconv_kernel_sizes = list(deconv_kernel_sizes or [4] * len(self.deconv_out_channels))
        self.conv_out_channels = list(conv_out_channels or [])
        self.conv_kernel_sizes = list(conv_kernel_sizes or [3] * len(self.conv_out_channels))
        self.final_kernel_size = final_kernel_size
        if len(self.deconv_kernel_sizes) != len(self.deconv_out_channels):
            raise ValueError(
                "HeatmapHead: deconv_out_channels and deconv_kernel_sizes must have the same "
                f"length, got {self.deconv_out_channels} and {self.deconv_kernel_sizes}"
            )
        if len(self.conv_kernel_sizes) != len(self.conv_out_channels):
            raise ValueError(
                "HeatmapHead: conv_out_channels and conv_kernel_sizes must have the same length"
            )
        self.deconv_layers = []
        for i, (c, k) in enumerate(zip(self.deconv_out_channels, self.deconv_kernel_sizes)):
            if k not in _DECONV_PADDING:
                raise ValueError(f"HeatmapHead: deconvolution kernel size must be 2, 3 or 4, got {k}")
            padding, output_padding = _DECONV_PADDING[k]
            self.deconv_layers.append(
                ConvBN(
                    c, k, 2, padding=padding, output_padding=output_padding, transpose=True,
                    activation="relu", data_format=data_format, name=f"deconv{i}",
                )
            )
        self.conv_layers = [
            ConvBN(c, k, activation="relu", data_format=data_format, name=f"conv{i}")
            for i, (c, k) in enumerate(zip(self.conv_out_channels, self.conv_kernel_sizes))
        ]
        self.final_layer = ConvBN(
            self.out_channels, final_kernel_size, norm=False, use_bias=True,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            data_format=data_format, name="final_layer",
        )

    def call(self, feats, training=None):
        x = feats[-1] if isinstance(feats, (list, tuple)) else feats
        for layer in self.deconv_layers + self.conv_layers:
            x = layer(x, training=training)
        return self.final_layer(x, training=training)

    def default_loss(self):
        return KeypointMSELoss(use_target_weight=True)

    def network_outputs(self, feats, training=None):
        """Heatmaps channels-last ``(B, h, w, K)``, whatever the layout inside."""
        heatmaps = self(feats, training=training)
        if self.data_format == "channels_first":
            heatmaps = backend.to_channels_last(heatmaps)
        return heatmaps

    def resolve_test_cfg(self, flip_mode=None, shift_heatmap=None):
        default_mode = getattr(self.codec, "flip_mode", "heatmap")
        flip_mode = default_mode if flip_mode is None else flip_mode
        if flip_mode not in ("heatmap", "udp_combined"):
            raise ValueError(
                f"flip_mode {flip_mode!r} is not supported by a heatmap head; use 'heatmap' "
                "(or 'udp_combined' with UDPHeatmap(heatmap_type='combined'))"
            )
        if shift_heatmap is None:
            shift_heatmap = getattr(self.codec, "flip_shift", True)
        return flip_mode, bool(shift_heatmap)

    def _targets(self, outputs, targets):
        # train_on_batch hands numpy targets over unconverted on some backends.
        target = keras.ops.convert_to_tensor(targets["heatmaps"], dtype=outputs.dtype)
        weights = targets.get("keypoint_weights")
        if weights is None:
            weights = keras.ops.ones(keras.ops.shape(target)[:1] + keras.ops.shape(target)[-1:])
        return target, keras.ops.convert_to_tensor(weights, dtype=outputs.dtype)

    def compute_loss(self, outputs, targets):
        """The training loss of channels-last heatmaps ``(B, h, w, K)`` against ``targets["heatmaps"]``."""
        target, weights = self._targets(outputs, targets)
        return self.loss_fn.compute(target, outputs, weights)

    def accuracy(self, outputs, targets, thr=0.05):
        """MMPose's ``acc_pose`` of one batch (PCK of the heatmap maxima)."""
        target, weights = self._targets(outputs, targets)
        return heatmap_pose_accuracy(target, outputs, weights, thr)

    def to_codec_layout(self, outputs):
        """Channels-last numpy heatmaps -> ``(B, K, h, w)``, MMPose's layout the codecs use."""
        return np.ascontiguousarray(np.transpose(outputs, (0, 3, 1, 2)))

    def merge_flip(self, outputs, flipped, flip_indices, flip_mode="heatmap", shift_heatmap=True):
        """Average ``(B, K, h, w)`` heatmaps with those of the mirrored crops, mirrored back."""
        flipped = flip_heatmaps(flipped, flip_indices, flip_mode=flip_mode, shift_heatmap=shift_heatmap)
        return (outputs + flipped) * 0.5

    def merge_flip_graph(self, outputs, flipped, flip_indices, flip_mode="heatmap", shift_heatmap=True):
        """:meth:`merge_flip` in ``keras.ops`` on channels-last heatmaps ``(B, h, w, K)``."""
        if flip_mode != "heatmap":
            raise NotImplementedError(
                f"HeatmapHead: the flip-test merge of flip_mode={flip_mode!r} has no graph form; "
                "export with flip_test=False"
            )
        ops = keras.ops
        flipped = take_static(ops.flip(flipped, axis=2), flip_indices, axis=3)
        if shift_heatmap:  # one pixel right, column 0 kept (flip_heatmaps)
            flipped = ops.concatenate([flipped[:, :, :1], flipped[:, :, :-1]], axis=2)
        return (outputs + flipped) * 0.5

    def empty_outputs(self):
        if self.codec is not None and hasattr(self.codec, "heatmap_size"):
            w, h = self.codec.heatmap_size
        else:
            w, h = 1, 1
        return np.zeros((0, self.out_channels, h, w), np.float32)

    def decode(self, heatmaps):
        """Keypoints ``(B, K, 2)`` in input-image pixels and scores ``(B, K)``.

        ``heatmaps``: numpy ``(B, K, H, W)`` (MMPose's layout, which the codec uses).
        """
        return super().decode(heatmaps)

    def checkpoint_keys(self, prefix="head"):
        """(layer, conv key, bn key) in MMPose's names; ReLUs take indices too."""
        keys = []
        for i, layer in enumerate(self.deconv_layers):
            keys.append((layer, f"{prefix}.deconv_layers.{3 * i}", f"{prefix}.deconv_layers.{3 * i + 1}"))
        for i, layer in enumerate(self.conv_layers):
            keys.append((layer, f"{prefix}.conv_layers.{3 * i}", f"{prefix}.conv_layers.{3 * i + 1}"))
        keys.append((self.final_layer, f"{prefix}.final_layer", None))
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            out_channels=self.out_channels,
            deconv_out_channels=self.deconv_out_channels,
            deconv_kernel_sizes=self.deconv_kernel_sizes,
            conv_out_channels=self.conv_out_channels,
            conv_kernel_sizes=self.conv_kernel_sizes,
            final_kernel_size=self.final_kernel_size,
        )
        return config
