"""Training: the top-down data pipeline that feeds ``model.fit`` and MMPose's recipe."""

from keraspose.training.callbacks import CocoEvaluation, SyncDatasetEpoch
from keraspose.training.pipeline import (
    TopdownPyDataset,
    train_pipeline,
    val_pipeline,
)
from keraspose.training.schedules import WarmupCosineSchedule, WarmupMultiStepSchedule, hrnet_recipe, rtmpose_recipe

__all__ = [
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
