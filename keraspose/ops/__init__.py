"""Small numeric helpers shared by models and pipelines (numpy, host side)."""

from keraspose.ops.boxes import box_iou, nms

__all__ = ["box_iou", "nms"]
