from keraspose.models.resnet.resnet_backbone import ResNetBackbone

__all__ = ["ResNetBackbone"]
