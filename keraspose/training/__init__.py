"""Training: the top-down data pipeline that feeds ``model.fit`` and MMPose's recipe."""

from keraspose.training.callbacks import CocoEvaluation, SyncDatasetEpoch
from keraspose.training.pipeline import (
    TopdownPyDataset,
    train_pipeline,
    val_pipeline,
)
from keraspose.training.layer_decay import LayerDecayAdamW, vit_layer_id, vit_uses_weight_decay
from keraspose.training.schedules import (
    VITPOSE_LAYER_DECAY,
    WarmupCosineSchedule,
    WarmupMultiStepSchedule,
    hrnet_recipe,
    rtmpose_recipe,
    vitpose_recipe,
)

__all__ = [
    "VITPOSE_LAYER_DECAY",
    "vitpose_recipe",
    "LayerDecayAdamW",
    "vit_layer_id",
    "vit_uses_weight_decay",
    "CocoEvaluation",
    "SyncDatasetEpoch",
    "TopdownPyDataset",
    "WarmupCosineSchedule",
    "WarmupMultiStepSchedule",
    "hrnet_recipe",
    "rtmpose_recipe",
    "train_pipeline",
    "val_pipeline",
]
