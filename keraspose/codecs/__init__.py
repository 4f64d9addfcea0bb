"""Keypoint codecs: keypoints <-> training targets / network outputs (numpy)."""

from keraspose.codecs.base import KeypointCodec
from keraspose.codecs.heatmap import MSRAHeatmap, UDPHeatmap

__all__ = ["KeypointCodec", "MSRAHeatmap", "UDPHeatmap"]
