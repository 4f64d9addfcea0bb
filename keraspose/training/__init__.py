"""Training: the top-down data pipeline that feeds ``model.fit`` and MMPose's recipe."""

from keraspose.training.callbacks import CocoEvaluation, SyncDatasetEpoch
from keraspose.training.pipeline import (
    TopdownPyDataset,
    train_pipeline,
    val_pipeline,
)
from keraspose.training.schedules import WarmupMultiStepSchedule, hrnet_recipe

__all__ = [
    "CocoEvaluation",
    "SyncDatasetEpoch",
    "TopdownPyDataset",
    "WarmupMultiStepSchedule",
    "hrnet_recipe",
    "train_pipeline",
    "val_pipeline",
]
