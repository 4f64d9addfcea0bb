"""ResNet backbone as configured in MMPose (``ResNet(depth=...)``).

A 7x7 stride-2 stem conv, a 3x3 stride-2 max-pool, then four stages of
BasicBlocks (depth 18/34) or Bottlenecks (50/101/152), stride in the 3x3 conv
("pytorch" style). With :class:`~keraspose.models.heads.HeatmapHead`'s three
deconvolutions it is SimpleBaseline (Xiao et al., 2018).
"""

import keras

from keraspose.layers.base import BaseLayer
from keraspose import backend
from keraspose.layers import ConvBN
from keraspose.models.blocks import BasicBlock, Bottleneck, make_res_layer

RESNET_DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


@keras.saving.register_keras_serializable(package="keraspose")
class ResNetBackbone(BaseLayer):
    """ResNet-``depth`` with MMPose's ``stem_channels``/``base_channels``.

    Output: a list with the last stage's feature map (stride 32), like
    MMPose's default ``out_indices=(3,)``; ``out_indices`` picks others.

    Example:
    >>> import numpy as np
    >>> from keraspose.models.resnet import ResNetBackbone
    >>> net = ResNetBackbone(18, data_format="channels_last")
    >>> [tuple(f.shape) for f in net(np.zeros((1, 256, 192, 3), "float32"))]
    [(1, 8, 6, 512)]
    """

    def __init__(
        self, depth=50, in_channels=3, stem_channels=64, base_channels=64,
        out_indices=(3,), data_format=None, **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNetBackbone: depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
        self.depth, self.in_channels = depth, in_channels
        self.stem_channels, self.base_channels = stem_channels, base_channels
        self.out_indices = tuple(out_indices)
        block, counts = RESNET_DEPTHS[depth]
        self.conv1 = ConvBN(stem_channels, 7, 2, activation="relu", data_format=data_format, name="conv1")
        self.stages = []
        in_ch = stem_channels
        for i, n in enumerate(counts):
            out_ch = base_channels * 2**i * block.expansion
            self.stages.append(
                make_res_layer(block, n, in_ch, out_ch, 1 if i == 0 else 2, data_format, f"layer{i + 1}")
            )
            in_ch = out_ch
        self.out_channels = [base_channels * 2**i * block.expansion for i in self.out_indices]

    def call(self, x, training=None):
        x = self.conv1(x, training=training)
        x = backend.max_pool2d(x, 3, 2, 1, self.data_format)
        outs = []
        for i, blocks in enumerate(self.stages):
            for blk in blocks:
                x = blk(x, training=training)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def checkpoint_keys(self, prefix="backbone"):
        keys = [(self.conv1, f"{prefix}.conv1", f"{prefix}.bn1")]
        for i, blocks in enumerate(self.stages):
            for b, blk in enumerate(blocks):
                keys += blk.checkpoint_keys(f"{prefix}.layer{i + 1}.{b}")
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            depth=self.depth, in_channels=self.in_channels, stem_channels=self.stem_channels,
            base_channels=self.base_channels, out_indices=list(self.out_indices),
        )
        return config
