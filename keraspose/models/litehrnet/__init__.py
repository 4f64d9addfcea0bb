"""Lite-HRNet backbones: MMPose's Lite-HRNet-18/30 and PP-TinyPose's "wider naive" variant."""

from keraspose.models.litehrnet.litehrnet_backbone import (
    ConditionalChannelWeighting,
    IterativeHead,
    LiteHRModule,
    LiteHRNetBackbone,
    LiteHRNetStem,
    ShuffleUnit,
    concat_shuffle,
    litehrnet_extra,
    tinypose_extra,
)

__all__ = [
    "ConditionalChannelWeighting",
    "IterativeHead",
    "LiteHRModule",
    "LiteHRNetBackbone",
    "LiteHRNetStem",
    "ShuffleUnit",
    "concat_shuffle",
    "litehrnet_extra",
    "tinypose_extra",
]
