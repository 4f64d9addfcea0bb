"""CSPNeXt: the backbone of RTMDet and RTMPose, and its blocks."""

from keraspose.models.cspnext.blocks import (
    ChannelAttention,
    CSPLayer,
    CSPNeXtBlock,
    DepthwiseSeparableConvBN,
    SPPBottleneck,
)
from keraspose.models.cspnext.cspnext_backbone import CSPNeXtBackbone

__all__ = [
    "CSPLayer",
    "CSPNeXtBackbone",
    "CSPNeXtBlock",
    "ChannelAttention",
    "DepthwiseSeparableConvBN",
    "SPPBottleneck",
]
