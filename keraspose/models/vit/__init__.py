"""ViTPose: a plain ViT backbone under a heatmap head (classic: two deconvolutions; simple: upsampling neck)."""

from keraspose.models.vit.feature_map_processor import FeatureMapProcessor
from keraspose.models.vit.resize import interpolation_matrix
from keraspose.models.vit.vit_backbone import VIT_ARCHS, VITPOSE_DROP_PATH, DropPath, ViTBackbone, ViTEncoderLayer, vit_arch

__all__ = [
    "DropPath",
    "FeatureMapProcessor",
    "VIT_ARCHS",
    "VITPOSE_DROP_PATH",
    "ViTBackbone",
    "ViTEncoderLayer",
    "interpolation_matrix",
    "vit_arch",
]
