"""CSPNeXtPAFPN: RTMDet's neck (MMDetection's ``CSPNeXtPAFPN``).

A path-aggregation FPN over the backbone's strides 8/16/32:

* **top-down**, from the coarsest level: a 1x1 conv reduces it to the next
  level's width (this *reduced* map is also what the bottom-up path later
  reads for the coarsest level), 2x nearest upsampling, concatenation with
  the next finer input (upsampled first) and a CSPLayer (no identity, no
  channel attention);
* **bottom-up**, from the finest: a stride-2 3x3 conv, concatenation with the
  top-down map of the next coarser level, a CSPLayer;
* **out convs**: a 3x3 conv per level to ``out_channels``.
"""

import keras

from keraspose import backend
from keraspose.models.cspnext.blocks import CSPBase, CSPLayer, conv_keys


@keras.saving.register_keras_serializable(package="keraspose")
class CSPNeXtPAFPN(CSPBase):
    """Path-aggregation FPN with CSPNeXt blocks.

    Args:
        in_channels: widths of the input levels, finest first.
        out_channels: width of every output level.
        num_csp_blocks: CSPNeXt blocks per CSPLayer.
        use_depthwise: depthwise-separable downsampling/out convs and blocks.
        expand_ratio: CSPLayer hidden width ratio.
        norm, epsilon, momentum, data_format: as in ``CSPNeXtBackbone``.

    Example:
    >>> import numpy as np
    >>> neck = CSPNeXtPAFPN([16, 32, 64], 16, num_csp_blocks=1, data_format="channels_last")
    >>> feats = [np.zeros((1, s, s, c), "float32") for s, c in ((8, 16), (4, 32), (2, 64))]
    >>> [tuple(f.shape) for f in neck(feats)]
    [(1, 8, 8, 16), (1, 4, 4, 16), (1, 2, 2, 16)]
    """

    def __init__(
        self, in_channels, out_channels, num_csp_blocks=3, use_depthwise=False, expand_ratio=0.5, **kwargs
    ):
        super().__init__(**kwargs)
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = int(out_channels)
        self.num_csp_blocks = int(num_csp_blocks)
        self.use_depthwise = bool(use_depthwise)
        self.expand_ratio = float(expand_ratio)
        c = self.in_channels
        n = len(c)

        def csp(c_in, c_out, name):
            return CSPLayer(
                c_in, c_out, self.expand_ratio, self.num_csp_blocks, add_identity=False,
                use_depthwise=self.use_depthwise, channel_attention=False, **self.norm_config(), name=name,
            )

        # Index k of the top-down lists serves input level n - 1 - k (coarsest first).
        self.reduce_layers, self.top_down_blocks = [], []
        for k, idx in enumerate(range(n - 1, 0, -1)):
            self.reduce_layers.append(self.conv(c[idx - 1], 1, f"reduce_layers_{k}"))
            self.top_down_blocks.append(csp(c[idx - 1] * 2, c[idx - 1], f"top_down_blocks_{k}"))
        self.downsamples, self.bottom_up_blocks = [], []
        for idx in range(n - 1):
            self.downsamples.append(
                self.conv_module(c[idx], c[idx], 3, f"downsamples_{idx}", strides=2, depthwise=self.use_depthwise)
            )
            self.bottom_up_blocks.append(csp(c[idx] * 2, c[idx + 1], f"bottom_up_blocks_{idx}"))
        self.out_convs = [
            self.conv_module(c[i], self.out_channels, 3, f"out_convs_{i}", depthwise=self.use_depthwise)
            for i in range(n)
        ]

    def call(self, inputs, training=None):
        inputs = list(inputs)
        if len(inputs) != len(self.in_channels):
            raise ValueError(f"CSPNeXtPAFPN expects {len(self.in_channels)} feature maps, got {len(inputs)}")
        n = len(inputs)
        # Top-down: inner[i] is level i after the top-down path.
        inner = [None] * n
        inner[n - 1] = inputs[n - 1]
        for k, idx in enumerate(range(n - 1, 0, -1)):
            reduced = self.reduce_layers[k](inner[idx], training=training)
            inner[idx] = reduced
            up = backend.upsample_nearest(reduced, 2, self.data_format)
            inner[idx - 1] = self.top_down_blocks[k](self.concat([up, inputs[idx - 1]]), training=training)
        # Bottom-up.
        outs = [inner[0]]
        for idx in range(n - 1):
            down = self.downsamples[idx](outs[-1], training=training)
            outs.append(self.bottom_up_blocks[idx](self.concat([down, inner[idx + 1]]), training=training))
        return [conv(x, training=training) for conv, x in zip(self.out_convs, outs)]

    def checkpoint_keys(self, prefix="neck"):
        keys = []
        for k, (reduce, block) in enumerate(zip(self.reduce_layers, self.top_down_blocks)):
            keys += conv_keys(reduce, f"{prefix}.reduce_layers.{k}")
            keys += block.checkpoint_keys(f"{prefix}.top_down_blocks.{k}")
        for k, (down, block) in enumerate(zip(self.downsamples, self.bottom_up_blocks)):
            keys += conv_keys(down, f"{prefix}.downsamples.{k}")
            keys += block.checkpoint_keys(f"{prefix}.bottom_up_blocks.{k}")
        for k, conv in enumerate(self.out_convs):
            keys += conv_keys(conv, f"{prefix}.out_convs.{k}")
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, out_channels=self.out_channels, num_csp_blocks=self.num_csp_blocks,
            use_depthwise=self.use_depthwise, expand_ratio=self.expand_ratio,
        )
        return config
