"""The building blocks of CSPNeXt (RTMDet's and RTMPose's backbone) and its neck.

Each block mirrors one MMDetection 3.x module and lists where its weights
live in a MMDetection state dict (:meth:`checkpoint_keys`):

* :class:`DepthwiseSeparableConvBN`: MMCV's ``DepthwiseSeparableConvModule``,
  a depthwise conv + BN + SiLU, then a 1x1 conv + BN + SiLU
  (keys ``.depthwise_conv.conv/.bn``, ``.pointwise_conv.conv/.bn``).
* :class:`ChannelAttention`: global average pool, a 1x1 conv with bias,
  hard sigmoid (PyTorch's ``relu6(x + 3) / 6``), times the input.
* :class:`CSPNeXtBlock`: a 3x3 conv (depthwise-separable if
  ``use_depthwise``), then a depthwise-separable 5x5 conv, plus the input
  when ``add_identity`` and the widths agree.
* :class:`CSPLayer`: the cross-stage-partial layer: two 1x1 convs split the
  input into a "main" path (through the blocks) and a "short" one,
  concatenated (main first), optionally channel attention, then a 1x1 conv.
* :class:`SPPBottleneck`: 1x1 conv to half width, concatenated with
  stride-1 max pools of 5, 9 and 13 (padding k // 2), then a 1x1 conv.

Every conv that MMDetection follows with a BatchNorm takes ``norm``:
``norm=False`` builds it as a conv with bias, the layout of a checkpoint
whose BatchNorm was folded away (e.g. an ONNX export); its ``checkpoint_keys``
then give ``None`` as the BatchNorm key. The activation is SiLU throughout
(RTMDet's configs).
"""

import weakref

import keras
from keras import ops

from keraspose import backend
from keraspose.layers import BaseLayer, ConvBN


def _run(layers, x, training):
    for layer in layers:
        x = layer(x, training=training)
    return x


def conv_keys(layer, prefix):
    """``checkpoint_keys`` of one conv module: a ConvBN or a depthwise-separable pair."""
    if isinstance(layer, ConvBN):
        return [(layer, f"{prefix}.conv", f"{prefix}.bn" if layer.norm else None)]
    return layer.checkpoint_keys(prefix)


class CSPBase(BaseLayer):
    """What every CSPNeXt layer shares: BatchNorm settings, layout and conv factories."""

    def __init__(self, norm=True, epsilon=1e-5, momentum=0.1, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.norm = bool(norm)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)

    def build(self, input_shape=None):
        # Sublayers build on the first real call; a symbolic trace of the
        # whole network first would only cost time.
        self.built = True

    def conv(self, filters, kernel_size, name, strides=1, groups=1, activation="silu"):
        """A MMCV ``ConvModule`` (conv, BN, SiLU); a biased conv when ``norm=False``."""
        return ConvBN(
            filters, kernel_size, strides, groups=groups, norm=self.norm, use_bias=not self.norm,
            activation=activation, epsilon=self.epsilon, momentum=self.momentum,
            data_format=self._data_format_arg, name=name,
        )

    def conv_module(self, in_channels, filters, kernel_size, name, strides=1, depthwise=False):
        """``DepthwiseSeparableConvModule if depthwise else ConvModule``, as MMDetection picks."""
        if depthwise:
            return DepthwiseSeparableConvBN(
                in_channels, filters, kernel_size, strides, norm=self.norm, epsilon=self.epsilon,
                momentum=self.momentum, data_format=self._data_format_arg, name=name,
            )
        return self.conv(filters, kernel_size, name, strides)

    def norm_config(self):
        return dict(norm=self.norm, epsilon=self.epsilon, momentum=self.momentum, data_format=self._data_format_arg)

    def concat(self, tensors):
        return ops.concatenate(tensors, axis=backend.channel_axis(self.data_format))

    def get_config(self):
        config = super().get_config()
        config.update(self.norm_config())
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class DepthwiseSeparableConvBN(CSPBase):
    """Depthwise ``kernel_size`` conv + BN + SiLU, then pointwise 1x1 conv + BN + SiLU.

    Example:
    >>> import numpy as np
    >>> layer = DepthwiseSeparableConvBN(8, 16, 3, strides=2, data_format="channels_last")
    >>> tuple(layer(np.zeros((1, 32, 32, 8), "float32")).shape)
    (1, 16, 16, 16)
    """

    def __init__(self, in_channels, filters, kernel_size, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.filters = int(in_channels), int(filters)
        self.kernel_size, self.strides = int(kernel_size), int(strides)
        self.depthwise_conv = self.conv(
            self.in_channels, self.kernel_size, "depthwise_conv", strides=self.strides, groups=self.in_channels
        )
        self.pointwise_conv = self.conv(self.filters, 1, "pointwise_conv")

    def call(self, x, training=None):
        return self.pointwise_conv(self.depthwise_conv(x, training=training), training=training)

    def checkpoint_keys(self, prefix):
        return conv_keys(self.depthwise_conv, f"{prefix}.depthwise_conv") + conv_keys(
            self.pointwise_conv, f"{prefix}.pointwise_conv"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, filters=self.filters, kernel_size=self.kernel_size, strides=self.strides
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class ChannelAttention(CSPBase):
    """``x * hardsigmoid(conv1x1(mean(x over H, W)))`` (MMDetection's ChannelAttention).

    The 1x1 conv has a bias and no BatchNorm (also in folded checkpoints).

    Example:
    >>> import numpy as np
    >>> layer = ChannelAttention(4, data_format="channels_last")
    >>> tuple(layer(np.ones((1, 5, 5, 4), "float32")).shape)
    (1, 5, 5, 4)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.fc = ConvBN(
            self.channels, 1, norm=False, use_bias=True, data_format=self._data_format_arg, name="fc"
        )

    def call(self, x, training=None):
        pooled = backend.global_avg_pool(x, self.data_format)
        return x * backend.hard_sigmoid(self.fc(pooled, training=training))

    def checkpoint_keys(self, prefix):
        return [(self.fc, f"{prefix}.fc", None)]

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class CSPNeXtBlock(CSPBase):
    """3x3 conv (depthwise-separable if ``use_depthwise``) -> depthwise-separable 5x5, plus the input.

    Example:
    >>> import numpy as np
    >>> block = CSPNeXtBlock(8, 8, data_format="channels_last")
    >>> tuple(block(np.zeros((1, 16, 16, 8), "float32")).shape)
    (1, 16, 16, 8)
    """

    def __init__(
        self, in_channels, out_channels, expansion=0.5, add_identity=True, use_depthwise=False,
        kernel_size=5, **kwargs,
    ):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.expansion = float(expansion)
        self.use_depthwise = bool(use_depthwise)
        self.kernel_size = int(kernel_size)
        self.add_identity_arg = bool(add_identity)
        self.add_identity = self.add_identity_arg and self.in_channels == self.out_channels
        hidden = int(self.out_channels * self.expansion)
        self.conv1 = self.conv_module(self.in_channels, hidden, 3, "conv1", depthwise=self.use_depthwise)
        self.conv2 = self.conv_module(hidden, self.out_channels, self.kernel_size, "conv2", depthwise=True)

    def call(self, x, training=None):
        y = self.conv2(self.conv1(x, training=training), training=training)
        return backend.add_(y, x) if self.add_identity else y

    def checkpoint_keys(self, prefix):
        return conv_keys(self.conv1, f"{prefix}.conv1") + conv_keys(self.conv2, f"{prefix}.conv2")

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, out_channels=self.out_channels, expansion=self.expansion,
            add_identity=self.add_identity_arg, use_depthwise=self.use_depthwise, kernel_size=self.kernel_size,
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class CSPLayer(CSPBase):
    """Cross-stage-partial layer with CSPNeXt blocks (MMDetection's ``use_cspnext_block=True``).

    Example:
    >>> import numpy as np
    >>> layer = CSPLayer(16, 16, num_blocks=1, channel_attention=True, data_format="channels_last")
    >>> tuple(layer(np.zeros((1, 8, 8, 16), "float32")).shape)
    (1, 8, 8, 16)
    """

    def __init__(
        self, in_channels, out_channels, expand_ratio=0.5, num_blocks=1, add_identity=True,
        use_depthwise=False, channel_attention=False, **kwargs,
    ):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.expand_ratio = float(expand_ratio)
        self.num_blocks = int(num_blocks)
        self.add_identity = bool(add_identity)
        self.use_depthwise = bool(use_depthwise)
        self.channel_attention = bool(channel_attention)
        mid = int(self.out_channels * self.expand_ratio)
        self.main_conv = self.conv(mid, 1, "main_conv")
        self.short_conv = self.conv(mid, 1, "short_conv")
        self.final_conv = self.conv(self.out_channels, 1, "final_conv")
        self.blocks = [
            CSPNeXtBlock(
                mid, mid, 1.0, self.add_identity, self.use_depthwise, **self.norm_config(), name=f"blocks_{i}"
            )
            for i in range(self.num_blocks)
        ]
        self.attention = ChannelAttention(2 * mid, **self.norm_config(), name="attention") if self.channel_attention else None

    def call(self, x, training=None):
        short = self.short_conv(x, training=training)
        main = _run(self.blocks, self.main_conv(x, training=training), training)
        y = self.concat([main, short])
        if self.attention is not None:
            y = self.attention(y, training=training)
        return self.final_conv(y, training=training)

    def checkpoint_keys(self, prefix):
        keys = []
        for name in ("main_conv", "short_conv", "final_conv"):
            keys += conv_keys(getattr(self, name), f"{prefix}.{name}")
        for i, block in enumerate(self.blocks):
            keys += block.checkpoint_keys(f"{prefix}.blocks.{i}")
        if self.attention is not None:
            keys += self.attention.checkpoint_keys(f"{prefix}.attention")
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, out_channels=self.out_channels, expand_ratio=self.expand_ratio,
            num_blocks=self.num_blocks, add_identity=self.add_identity, use_depthwise=self.use_depthwise,
            channel_attention=self.channel_attention,
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class SPPBottleneck(CSPBase):
    """Spatial pyramid pooling: 1x1 conv, concat with max pools (5, 9, 13), 1x1 conv.

    Example:
    >>> import numpy as np
    >>> layer = SPPBottleneck(16, 16, data_format="channels_last")
    >>> tuple(layer(np.zeros((1, 10, 10, 16), "float32")).shape)
    (1, 10, 10, 16)
    """

    def __init__(self, in_channels, out_channels, kernel_sizes=(5, 9, 13), **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.conv1 = self.conv(self.in_channels // 2, 1, "conv1")
        self.conv2 = self.conv(self.out_channels, 1, "conv2")

    def call(self, x, training=None):
        x = self.conv1(x, training=training)
        pools = [backend.max_pool2d(x, k, 1, k // 2, self.data_format) for k in self.kernel_sizes]
        return self.conv2(self.concat([x] + pools), training=training)

    def checkpoint_keys(self, prefix):
        return conv_keys(self.conv1, f"{prefix}.conv1") + conv_keys(self.conv2, f"{prefix}.conv2")

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, out_channels=self.out_channels, kernel_sizes=self.kernel_sizes)
        return config


class SharedKernelConvBN(ConvBN):
    """A ConvBN that uses another ConvBN's convolution kernel but has its own BatchNorm.

    MMDetection's ``RTMDetSepBNHead(share_conv=True)`` shares each stacked
    conv's weights across pyramid levels and keeps one BatchNorm per level
    ("separated BN"). The kernel is read from ``source`` on every call, so
    there is one trainable kernel, counted once. Built by its parent (not
    serialised on its own).
    """

    def __init__(self, source, **kwargs):
        super().__init__(**kwargs)
        if not source.norm or self.use_bias:
            raise ValueError("SharedKernelConvBN shares the kernel of a bias-free conv followed by BatchNorm")
        # A weak reference: not a tracked sublayer, so the kernel is neither
        # saved nor counted twice.
        object.__setattr__(self, "_source_ref", weakref.ref(source))

    @property
    def kernel(self):
        return self._source_ref().kernel

    def build(self, input_shape):
        source = self._source_ref()
        if not source.built:
            source.build(input_shape)
        self.bias = None
        self._add_batch_norm_weights()
