from keraspose.models.heads.heatmap_head import HeatmapHead
from keraspose.models.heads.regression_head import (
    GlobalAveragePooling,
    IntegralRegressionHead,
    RealNVP,
    RegressionHead,
    RLEHead,
)

__all__ = ["GlobalAveragePooling", "HeatmapHead", "IntegralRegressionHead", "RealNVP", "RegressionHead", "RLEHead"]
