"""Converters from other toolboxes' checkpoints into keraspose models.

* :mod:`keraspose.convert.mmpose`: MMPose 1.x top-down pose models -> ``TopdownEstimator``;
* :mod:`keraspose.convert.mmdet`: MMDetection 3.x RTMDet detectors -> ``RTMDetector``;
* :mod:`keraspose.convert.ncnn`: PP-TinyPose's ncnn export;
* :mod:`keraspose.convert.onnx_rtmdet`: RTMDet ONNX exports (BatchNorm folded) -> ``RTMDetector``;
* :mod:`keraspose.convert.hf_transformers`: Hugging Face transformers checkpoints (``VitPose``) ->
  ``TopdownEstimator``, on the fly from ``from_preset("hf://...")``.

Model classes never import this package; catalogue presets reach a converter
by name through :mod:`keraspose.presets.registry`.
"""

from keraspose.convert.checkpoints import ConversionError
from keraspose.convert.mmdet import build_from_mmdet_config, from_mmdet, load_mmdet_config
from keraspose.convert.mmpose import (
    build_from_mmpose_config,
    check_checkpoint_shapes,
    from_mmpose,
    load_mmpose_config,
)
from keraspose.convert.hf_transformers import load_transformers_preset
from keraspose.convert.onnx_rtmdet import convert_rtmdet_onnx, load_onnx_rtmdet_weights  # onnx imported lazily

__all__ = [
    "ConversionError",
    "build_from_mmdet_config",
    "build_from_mmpose_config",
    "check_checkpoint_shapes",
    "convert_rtmdet_onnx",
    "from_mmdet",
    "from_mmpose",
    "load_mmdet_config",
    "load_mmpose_config",
    "load_transformers_preset",
    "load_onnx_rtmdet_weights",
]
