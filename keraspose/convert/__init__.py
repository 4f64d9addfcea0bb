"""Converters from other toolboxes' checkpoints into keraspose models."""

from keraspose.convert.mmpose import (
    ConversionError,
    build_from_mmpose_config,
    check_checkpoint_shapes,
    from_mmpose,
    load_mmpose_config,
)

__all__ = [
    "ConversionError",
    "build_from_mmpose_config",
    "check_checkpoint_shapes",
    "from_mmpose",
    "load_mmpose_config",
]
