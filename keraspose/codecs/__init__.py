"""Keypoint codecs: keypoints <-> training targets / network outputs (numpy)."""

from keraspose.codecs.base import KeypointCodec
from keraspose.codecs.heatmap import MSRAHeatmap, UDPHeatmap
from keraspose.codecs.regression import IntegralRegressionLabel, RegressionLabel, SimCCLabel

__all__ = ["IntegralRegressionLabel", "KeypointCodec", "MSRAHeatmap", "UDPHeatmap", "RegressionLabel", "SimCCLabel"]
