"""Residual blocks shared by ResNet and HRNet (MMPose's BasicBlock/Bottleneck).

Each block can list where its weights live in an MMPose checkpoint
(:meth:`checkpoint_keys`), so the converter has no separate table that could
drift from the architecture.
"""

import keras

from keraspose import backend
from keraspose.layers.base import BaseLayer
from keraspose.layers import ConvBN


class _ResidualBlock(BaseLayer):
    """What both residual blocks share: the projection shortcut, the final
    add + ReLU, the shortcut's checkpoint keys and the config.

    Subclasses set ``self.convs``: ``(layer, mmpose conv name, mmpose bn name)``.
    """

    def __init__(self, in_channels, out_channels, strides=1, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.in_channels, self.out_channels, self.strides = in_channels, out_channels, strides
        self.downsample = None
        if strides != 1 or in_channels != out_channels:
            self.downsample = ConvBN(out_channels, 1, strides, data_format=data_format, name="downsample")

    def call(self, x, training=None):
        identity = x if self.downsample is None else self.downsample(x, training=training)
        y = x
        for layer, _, _ in self.convs:
            y = layer(y, training=training)
        return backend.relu_(backend.add_(y, identity))

    def checkpoint_keys(self, prefix):
        keys = [(layer, f"{prefix}.{conv}", f"{prefix}.{bn}") for layer, conv, bn in self.convs]
        if self.downsample is not None:
            keys.append((self.downsample, f"{prefix}.downsample.0", f"{prefix}.downsample.1"))
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, out_channels=self.out_channels,
            strides=self.strides,
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class BasicBlock(_ResidualBlock):
    """3x3 conv -> 3x3 conv, plus the (optionally projected) input, then ReLU.

    ``out_channels`` is the block's output width (expansion 1).
    """

    expansion = 1

    def __init__(self, in_channels, out_channels, strides=1, data_format=None, **kwargs):
        super().__init__(in_channels, out_channels, strides, data_format, **kwargs)
        self.conv1 = ConvBN(out_channels, 3, strides, activation="relu", data_format=data_format, name="conv1")
        self.conv2 = ConvBN(out_channels, 3, data_format=data_format, name="conv2")
        self.convs = [(self.conv1, "conv1", "bn1"), (self.conv2, "conv2", "bn2")]


@keras.saving.register_keras_serializable(package="keraspose")
class Bottleneck(_ResidualBlock):
    """1x1 -> 3x3 (strided, PyTorch style) -> 1x1 conv, plus the input, then ReLU.

    ``out_channels`` is the output width; the inner width is a quarter of it.
    """

    expansion = 4

    def __init__(self, in_channels, out_channels, strides=1, data_format=None, **kwargs):
        super().__init__(in_channels, out_channels, strides, data_format, **kwargs)
        mid = out_channels // self.expansion
        self.conv1 = ConvBN(mid, 1, activation="relu", data_format=data_format, name="conv1")
        self.conv2 = ConvBN(mid, 3, strides, activation="relu", data_format=data_format, name="conv2")
        self.conv3 = ConvBN(out_channels, 1, data_format=data_format, name="conv3")
        self.convs = [(self.conv1, "conv1", "bn1"), (self.conv2, "conv2", "bn2"), (self.conv3, "conv3", "bn3")]


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_res_layer(block, num_blocks, in_channels, out_channels, strides, data_format, name):
    """A run of ``num_blocks`` blocks; the first one changes width/stride."""
    blocks = []
    for i in range(num_blocks):
        blocks.append(
            block(
                in_channels if i == 0 else out_channels, out_channels,
                strides if i == 0 else 1, data_format=data_format, name=f"{name}_{i}",
            )
        )
    return blocks
