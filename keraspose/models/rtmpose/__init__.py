"""RTMPose: CSPNeXt backbone + RTMCCHead (SimCC), MMPose's real-time top-down models."""

from keraspose.models.rtmpose.rtmcc_block import RTMCCBlock, ScaleNorm
from keraspose.models.rtmpose.rtmcc_head import RTMCCHead

__all__ = ["RTMCCBlock", "RTMCCHead", "ScaleNorm"]
