from keraspose.models.heads.heatmap_head import HeatmapHead

__all__ = ["HeatmapHead"]
