from keraspose.models.hrnet.hrnet_backbone import HRModule, HRNetBackbone, hrnet_extra

__all__ = ["HRModule", "HRNetBackbone", "hrnet_extra"]
