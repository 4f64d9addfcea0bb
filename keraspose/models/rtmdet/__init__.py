"""RTMDet: the real-time object detector of MMDetection (person detector of RTMPose's pipeline)."""

from keraspose.models.rtmdet.cspnext_pafpn import CSPNeXtPAFPN
from keraspose.models.rtmdet.rtmdet_detector import (
    COCO_CLASSES,
    RTMDET_SIZES,
    DetectionResult,
    RTMDetector,
    rtmdet_config,
)
from keraspose.models.rtmdet.rtmdet_head import RTMDetSepBNHead

__all__ = [
    "COCO_CLASSES",
    "CSPNeXtPAFPN",
    "DetectionResult",
    "RTMDET_SIZES",
    "RTMDetSepBNHead",
    "RTMDetector",
    "rtmdet_config",
]
