"""CSPNeXt (Lyu et al., "RTMDet: An Empirical Study of Designing Real-Time Object Detectors").

The backbone of RTMDet and RTMPose, configured like MMDetection 3.x's
``CSPNeXt`` and with the same arguments:

* **Stem**: three 3x3 conv + BN + SiLU (the first with stride 2), widths
  ``w/2, w/2, w`` with ``w = 64 * widen_factor``.
* **Stages 1-4** (``arch="P5"``; ``"P6"`` adds a fifth): a stride-2 3x3
  conv (depthwise-separable if ``use_depthwise``), on the last stage an
  :class:`~keraspose.models.cspnext.blocks.SPPBottleneck`, then a
  :class:`~keraspose.models.cspnext.blocks.CSPLayer` of
  ``max(round(n * deepen_factor), 1)`` CSPNeXt blocks with channel attention.

Output: the feature maps of ``out_indices`` (0 = the stem, 1..4 = the
stages), highest resolution first: for the default ``(2, 3, 4)`` strides
8, 16 and 32 with ``256, 512, 1024`` times ``widen_factor`` channels.

Sizes of MMDetection's RTMDet configs (deepen, widen): tiny (0.167, 0.375),
s (0.33, 0.5), m (0.67, 0.75), l (1, 1), x (1.33, 1.25); RTMDet-nano
(0.33, 0.25) with ``use_depthwise=True``.
"""

import keras

from keraspose.models.cspnext.blocks import CSPBase, CSPLayer, SPPBottleneck, conv_keys

# MMDetection's arch_settings: in, out, blocks, add_identity, use_spp per stage.
ARCH_SETTINGS = {
    "P5": [[64, 128, 3, True, False], [128, 256, 6, True, False], [256, 512, 6, True, False], [512, 1024, 3, False, True]],
    "P6": [
        [64, 128, 3, True, False], [128, 256, 6, True, False], [256, 512, 6, True, False],
        [512, 768, 3, True, False], [768, 1024, 3, False, True],
    ],
}


@keras.saving.register_keras_serializable(package="keraspose")
class CSPNeXtBackbone(CSPBase):
    """CSPNeXt backbone (MMDetection's ``CSPNeXt``).

    Args:
        arch: ``"P5"`` (4 stages) or ``"P6"`` (5 stages).
        deepen_factor: multiplies the number of blocks per stage.
        widen_factor: multiplies every width.
        out_indices: which outputs to return (0 = stem, i = stage i).
        use_depthwise: depthwise-separable stage convs and block 3x3 convs.
        expand_ratio: hidden width of each CSPLayer relative to its output.
        channel_attention: channel attention in every CSPLayer.
        spp_kernel_sizes: max-pool sizes of the last stage's SPP.
        norm: BatchNorm after every conv; ``False`` for BN-folded weights.
        epsilon, momentum: BatchNorm's (PyTorch convention; RTMDet's SyncBN defaults).
        data_format: ``None`` for the backend's preferred layout.

    Example:
    >>> import numpy as np
    >>> backbone = CSPNeXtBackbone(deepen_factor=0.33, widen_factor=0.25, data_format="channels_last")
    >>> [tuple(f.shape) for f in backbone(np.zeros((1, 64, 64, 3), "float32"))]
    [(1, 8, 8, 64), (1, 4, 4, 128), (1, 2, 2, 256)]
    """

    def __init__(
        self,
        arch="P5",
        deepen_factor=1.0,
        widen_factor=1.0,
        out_indices=(2, 3, 4),
        use_depthwise=False,
        expand_ratio=0.5,
        channel_attention=True,
        spp_kernel_sizes=(5, 9, 13),
        norm=True,
        epsilon=1e-5,
        momentum=0.1,
        data_format=None,
        **kwargs,
    ):
        super().__init__(norm=norm, epsilon=epsilon, momentum=momentum, data_format=data_format, **kwargs)
        if arch not in ARCH_SETTINGS:
            raise ValueError(f"CSPNeXtBackbone: arch must be one of {sorted(ARCH_SETTINGS)}, got {arch!r}")
        settings = ARCH_SETTINGS[arch]
        self.arch = arch
        self.deepen_factor = float(deepen_factor)
        self.widen_factor = float(widen_factor)
        self.out_indices = [int(i) for i in out_indices]
        bad = [i for i in self.out_indices if not 0 <= i <= len(settings)]
        if bad:
            raise ValueError(
                f"CSPNeXtBackbone: out_indices {bad} out of range; arch {arch!r} has outputs 0 (stem) to {len(settings)}"
            )
        self.use_depthwise = bool(use_depthwise)
        self.expand_ratio = float(expand_ratio)
        self.channel_attention = bool(channel_attention)
        self.spp_kernel_sizes = [int(k) for k in spp_kernel_sizes]

        stem_width = int(settings[0][0] * self.widen_factor // 2)
        self.stem = [
            self.conv(stem_width, 3, "stem_0", strides=2),
            self.conv(stem_width, 3, "stem_1"),
            self.conv(int(settings[0][0] * self.widen_factor), 3, "stem_2"),
        ]
        self.stages = []
        self.out_channels = []
        if 0 in self.out_indices:
            self.out_channels.append(int(settings[0][0] * self.widen_factor))
        for i, (c_in, c_out, num_blocks, add_identity, use_spp) in enumerate(settings):
            c_in, c_out = int(c_in * self.widen_factor), int(c_out * self.widen_factor)
            num_blocks = max(round(num_blocks * self.deepen_factor), 1)
            stage = [self.conv_module(c_in, c_out, 3, f"stage{i + 1}_conv", strides=2, depthwise=self.use_depthwise)]
            if use_spp:
                stage.append(
                    SPPBottleneck(c_out, c_out, self.spp_kernel_sizes, **self.norm_config(), name=f"stage{i + 1}_spp")
                )
            stage.append(
                CSPLayer(
                    c_out, c_out, self.expand_ratio, num_blocks, add_identity, self.use_depthwise,
                    self.channel_attention, **self.norm_config(), name=f"stage{i + 1}_csp",
                )
            )
            self.stages.append(stage)
            if i + 1 in self.out_indices:
                self.out_channels.append(c_out)

    def call(self, x, training=None):
        outputs = []
        for layer in self.stem:
            x = layer(x, training=training)
        if 0 in self.out_indices:
            outputs.append(x)
        for i, stage in enumerate(self.stages):
            for layer in stage:
                x = layer(x, training=training)
            if i + 1 in self.out_indices:
                outputs.append(x)
        return outputs

    def checkpoint_keys(self, prefix="backbone"):
        """``(layer, conv key, bn key or None)`` in MMDetection's state-dict names."""
        keys = []
        for i, layer in enumerate(self.stem):
            keys += conv_keys(layer, f"{prefix}.stem.{i}")
        for i, stage in enumerate(self.stages):
            for j, layer in enumerate(stage):
                name = f"{prefix}.stage{i + 1}.{j}"
                keys += conv_keys(layer, name) if j == 0 else layer.checkpoint_keys(name)
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            arch=self.arch, deepen_factor=self.deepen_factor, widen_factor=self.widen_factor,
            out_indices=self.out_indices, use_depthwise=self.use_depthwise, expand_ratio=self.expand_ratio,
            channel_attention=self.channel_attention, spp_kernel_sizes=self.spp_kernel_sizes,
        )
        return config
