"""RTMDetSepBNHead: RTMDet's detection head (MMDetection's ``RTMDetSepBNHead``).

Per pyramid level, two towers of ``stacked_convs`` 3x3 conv + BN + SiLU
(one for classification, one for box regression), then a ``pred_kernel_size``
conv with bias for the class logits (``rtm_cls``) and one for the four
distances left, top, right, bottom (``rtm_reg``). The distances are
multiplied by the level's stride, after an ``exp`` if ``exp_on_reg``.

``share_conv=True`` (RTMDet-s/m/l/x) shares each tower conv's *kernel* across
levels while every level keeps its own BatchNorm ("separated BN", hence the
name): MMDetection assigns level 0's ``conv`` module to the other levels.
A checkpoint then lists the same kernel under every level's name. With
folded BatchNorm (``norm=False``) the per-level kernels differ, so every
level gets its own conv; MMDetection cannot share depthwise-separable convs,
so ``share_conv`` with ``use_depthwise`` is an error there and here.
"""

import keras
from keras import ops

from keraspose.layers import ConvBN
from keraspose.models.cspnext.blocks import CSPBase, SharedKernelConvBN, conv_keys


@keras.saving.register_keras_serializable(package="keraspose")
class RTMDetSepBNHead(CSPBase):
    """RTMDet head with separated BatchNorm per level.

    Args:
        num_classes: classes (sigmoid logits, no background class).
        in_channels: width of the neck's outputs.
        feat_channels: width of the tower convs.
        stacked_convs: convs per tower.
        strides: the levels' strides, finest first.
        share_conv: share tower conv kernels across levels (not the BN).
        exp_on_reg: ``exp`` the distance outputs before the stride.
        use_depthwise: depthwise-separable tower convs.
        pred_kernel_size: kernel of ``rtm_cls``/``rtm_reg``.
        norm, epsilon, momentum, data_format: as in ``CSPNeXtBackbone``.

    ``call`` returns ``(cls_scores, bbox_preds)``: per level the logits
    ``num_classes`` wide and the distances (pixels of the input) 4 wide, in
    the layer's data format.

    Example:
    >>> import numpy as np
    >>> head = RTMDetSepBNHead(1, 16, 16, strides=(8, 16), data_format="channels_last")
    >>> cls, reg = head([np.zeros((1, 8, 8, 16), "float32"), np.zeros((1, 4, 4, 16), "float32")])
    >>> tuple(cls[0].shape), tuple(reg[1].shape)
    ((1, 8, 8, 1), (1, 4, 4, 4))
    """

    def __init__(
        self,
        num_classes,
        in_channels,
        feat_channels=256,
        stacked_convs=2,
        strides=(8, 16, 32),
        share_conv=True,
        exp_on_reg=False,
        use_depthwise=False,
        pred_kernel_size=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.feat_channels = int(feat_channels)
        self.stacked_convs = int(stacked_convs)
        self.strides = [int(s) for s in strides]
        self.share_conv = bool(share_conv)
        self.exp_on_reg = bool(exp_on_reg)
        self.use_depthwise = bool(use_depthwise)
        self.pred_kernel_size = int(pred_kernel_size)
        if self.num_classes < 1:
            raise ValueError(f"RTMDetSepBNHead: num_classes must be >= 1, got {num_classes}")
        if self.share_conv and self.use_depthwise:
            raise ValueError(
                "RTMDetSepBNHead: share_conv=True cannot share depthwise-separable convs "
                "(MMDetection fails on it too); pass share_conv=False with use_depthwise=True"
            )
        shared = self.share_conv and self.norm

        def tower(level, kind):
            convs = []
            for i in range(self.stacked_convs):
                chn = self.in_channels if i == 0 else self.feat_channels
                name = f"{kind}_{level}_{i}"
                if shared and level > 0:
                    source = getattr(self, kind)[0][i]
                    convs.append(
                        SharedKernelConvBN(
                            source, filters=self.feat_channels, kernel_size=3, norm=True, use_bias=False,
                            activation="silu", epsilon=self.epsilon, momentum=self.momentum,
                            data_format=self._data_format_arg, name=name,
                        )
                    )
                else:
                    convs.append(self.conv_module(chn, self.feat_channels, 3, name, depthwise=self.use_depthwise))
            return convs

        def pred(filters, name):
            return ConvBN(
                filters, self.pred_kernel_size, norm=False, use_bias=True,
                data_format=self._data_format_arg, name=name,
            )

        self.cls_convs, self.reg_convs, self.rtm_cls, self.rtm_reg = [], [], [], []
        for n in range(len(self.strides)):
            self.cls_convs.append(tower(n, "cls_convs"))
            self.reg_convs.append(tower(n, "reg_convs"))
            self.rtm_cls.append(pred(self.num_classes, f"rtm_cls_{n}"))
            self.rtm_reg.append(pred(4, f"rtm_reg_{n}"))

    def call(self, feats, training=None):
        feats = list(feats)
        if len(feats) != len(self.strides):
            raise ValueError(f"RTMDetSepBNHead expects {len(self.strides)} feature maps, got {len(feats)}")
        cls_scores, bbox_preds = [], []
        for n, (x, stride) in enumerate(zip(feats, self.strides)):
            cls_feat, reg_feat = x, x
            for layer in self.cls_convs[n]:
                cls_feat = layer(cls_feat, training=training)
            for layer in self.reg_convs[n]:
                reg_feat = layer(reg_feat, training=training)
            reg = self.rtm_reg[n](reg_feat, training=training)
            if self.exp_on_reg:
                reg = ops.exp(reg)
            cls_scores.append(self.rtm_cls[n](cls_feat, training=training))
            bbox_preds.append(reg * float(stride))
        return cls_scores, bbox_preds

    def checkpoint_keys(self, prefix="bbox_head"):
        """MMDetection names; with ``share_conv`` level n > 0 lists the shared kernel under its own name."""
        keys = []
        for n in range(len(self.strides)):
            for kind in ("cls_convs", "reg_convs"):
                for i, layer in enumerate(getattr(self, kind)[n]):
                    keys += conv_keys(layer, f"{prefix}.{kind}.{n}.{i}")
        for n in range(len(self.strides)):
            keys.append((self.rtm_cls[n], f"{prefix}.rtm_cls.{n}", None))
            keys.append((self.rtm_reg[n], f"{prefix}.rtm_reg.{n}", None))
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes, in_channels=self.in_channels, feat_channels=self.feat_channels,
            stacked_convs=self.stacked_convs, strides=self.strides, share_conv=self.share_conv,
            exp_on_reg=self.exp_on_reg, use_depthwise=self.use_depthwise, pred_kernel_size=self.pred_kernel_size,
        )
        return config
