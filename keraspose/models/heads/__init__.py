from keraspose.models.heads.heatmap_head import HeatmapHead
from keraspose.models.heads.regression_head import GlobalAveragePooling, RealNVP, RegressionHead, RLEHead

__all__ = ["GlobalAveragePooling", "HeatmapHead", "RealNVP", "RegressionHead", "RLEHead"]
