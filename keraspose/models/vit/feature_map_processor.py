"""FeatureMapProcessor: the neck of ViTPose's "simple" head (MMPose's ``FeatureMapProcessor``).

ViTPose-simple replaces the two deconvolutions of the classic head by a
ReLU and a x4 bilinear upsampling (PyTorch's ``align_corners=False``) of the
1/16 feature map, then a 3x3 conv to K heatmaps (a ``HeatmapHead`` with no
deconvolution and ``final_kernel_size=3``). The upsampling is two fixed
interpolation matrices (:mod:`keraspose.models.vit.resize`), so every
backend computes PyTorch's numbers.
"""

import keras
from keras import ops

from keraspose.layers.base import BaseLayer
from keraspose.models.vit.resize import interpolation_matrix


@keras.saving.register_keras_serializable(package="keraspose")
class FeatureMapProcessor(BaseLayer):
    """ReLU (optional) then bilinear rescaling of each feature map.

    Args:
        scale_factor: the resize factor (4.0 in ViTPose-simple).
        apply_relu: ReLU before resizing.

    Example:
    >>> import numpy as np
    >>> neck = FeatureMapProcessor(4.0, data_format="channels_last")
    >>> [tuple(f.shape) for f in neck([np.ones((1, 4, 3, 8), "float32")])]
    [(1, 16, 12, 8)]
    """

    def __init__(self, scale_factor=1.0, apply_relu=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.scale_factor = float(scale_factor)
        self.apply_relu = bool(apply_relu)

    def _rescale(self, x):
        axes = (2, 3) if self.data_format == "channels_first" else (1, 2)
        h, w = int(x.shape[axes[0]]), int(x.shape[axes[1]])
        out_h, out_w = int(h * self.scale_factor), int(w * self.scale_factor)
        # PyTorch steps the source by 1 / scale_factor when given a factor.
        rows = interpolation_matrix(h, out_h, "bilinear", scale=1.0 / self.scale_factor)
        cols = interpolation_matrix(w, out_w, "bilinear", scale=1.0 / self.scale_factor)
        if self.data_format == "channels_first":
            return ops.einsum("hH,bcHW,wW->bchw", rows, x, cols)
        return ops.einsum("hH,bHWc,wW->bhwc", rows, x, cols)

    def call(self, feats, training=None):
        single = not isinstance(feats, (list, tuple))
        outputs = []
        for x in ([feats] if single else feats):
            if self.apply_relu:
                x = ops.relu(x)
            if self.scale_factor != 1.0:
                x = self._rescale(x)
            outputs.append(x)
        return outputs[0] if single else outputs

    def get_config(self):
        config = super().get_config()
        config.update(scale_factor=self.scale_factor, apply_relu=self.apply_relu)
        return config
