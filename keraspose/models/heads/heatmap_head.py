"""HeatmapHead: optional deconvolutions, optional convs, a final conv to K heatmaps.

MMPose's ``HeatmapHead`` (SimpleBaseline's head; HRNet uses it with no
deconvolution). The head is codec-aware: it owns the codec that turns its
heatmaps into keypoints (:meth:`decode`) and training targets into heatmaps.
"""

import keras

from keraspose.layers.base import BaseLayer
from keraspose.losses import KeypointMSELoss
from keraspose import backend
from keraspose.layers import ConvBN

# MMPose's deconvolution padding for each supported kernel size.
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


@keras.saving.register_keras_serializable(package="keraspose")
class HeatmapHead(BaseLayer):
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
    Output: heatmaps (B, K, H, W) channels-first or (B, H, W, K) channels-last.
    """

    def __init__(
        self, out_channels, deconv_out_channels=None, deconv_kernel_sizes=None,
        conv_out_channels=None, conv_kernel_sizes=None, final_kernel_size=1,
        codec=None, loss=None, data_format=None, **kwargs,
    ):
        super().__init__(**kwargs)
        # The training loss lives with the head, as in MMPose.
        self.loss_fn = loss if loss is not None else KeypointMSELoss(use_target_weight=True)
        self.out_channels = int(out_channels)
        self.deconv_out_channels = list(deconv_out_channels or [])
        self.deconv_kernel_sizes = list(deconv_kernel_sizes or [4] * len(self.deconv_out_channels))
        self.conv_out_channels = list(conv_out_channels or [])
        self.conv_kernel_sizes = list(conv_kernel_sizes or [3] * len(self.conv_out_channels))
        self.final_kernel_size = final_kernel_size
        self.codec = codec
        self._data_format_arg = data_format
        self.data_format = backend.resolve_data_format(data_format)
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

    def compute_loss(self, heatmaps, target, keypoint_weights):
        """The head's training loss for channels-last heatmaps ``(B, h, w, K)``."""
        return self.loss_fn.compute(target, heatmaps, keypoint_weights)

    def decode(self, heatmaps):
        """Keypoints ``(B, K, 2)`` in input-image pixels and scores ``(B, K)``.

        ``heatmaps``: numpy ``(B, K, H, W)`` (MMPose's layout, which the codec uses).
        """
        if self.codec is None:
            raise ValueError("HeatmapHead.decode: this head has no codec; pass codec=... when building it")
        return self.codec.batch_decode(heatmaps)

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
            codec=keras.saving.serialize_keras_object(self.codec) if self.codec is not None else None,
            loss=keras.saving.serialize_keras_object(self.loss_fn),
            data_format=self._data_format_arg,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("codec", "loss"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
