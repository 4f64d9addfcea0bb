"""Converters from other toolboxes' checkpoints into keraspose models."""

from keraspose.convert.mmpose import (
    ConversionError,
    build_from_mmpose_config,
    check_checkpoint_shapes,
    from_mmpose,
    load_mmpose_config,
)
from keraspose.convert.onnx_rtmdet import convert_rtmdet_onnx, load_onnx_rtmdet_weights  # onnx imported lazily

__all__ = [
    "ConversionError",
    "build_from_mmpose_config",
    "check_checkpoint_shapes",
    "convert_rtmdet_onnx",
    "from_mmpose",
    "load_mmpose_config",
    "load_onnx_rtmdet_weights",
]
