from keraspose.models.tinypose.tinypose_backbone import TinyPoseBackbone

__all__ = ["TinyPoseBackbone"]
