"""Keras callbacks for pose training: COCO AP on validation data, best-by-AP presets.

``CocoEvaluation`` runs the whole top-down inference on a validation dataset
every ``every_n_epochs`` epochs and puts MMPose's ten COCO stats
(``coco/AP``, ``coco/AP .5``, ...) into the epoch's logs, so Keras' own
``History``, ``ModelCheckpoint(monitor="coco/AP", mode="max")``,
``EarlyStopping`` or ``TensorBoard`` see them like any other metric. With
``save_best`` it also writes the best model so far as a keraspose preset
(atomically, so an interruption never leaves a half-written preset).

Resuming after an interruption is Keras' ``BackupAndRestore``; the best AP so
far is kept in ``<save_best>/../<name>.best.json`` next to the preset so a
resumed run does not overwrite a better model with a worse one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras

from keraspose.evaluation.coco_metric import write_json_atomic
from keraspose.evaluation.topdown import evaluate_topdown

__all__ = ["CocoEvaluation", "SyncDatasetEpoch"]


class CocoEvaluation(keras.callbacks.Callback):
    """Report COCO keypoint AP on validation data every ``every_n_epochs`` epochs.

    Args:
        dataset: a :class:`~keraspose.CocoStyleDataset` (``test_mode=True``;
            annotated boxes or a ``bbox_file`` of detections).
        every_n_epochs: evaluate after epochs ``n, 2n, ...`` (and never in
            between; the stats are absent from those epochs' logs).
        save_best: a preset directory; whenever ``monitor`` improves, the
            model is saved there (``model.save_to_preset``), replacing the
            previous best.
        monitor: the stat that decides "best" (higher is better).
        batch_size, flip_test: as in ``model.predict``.
        verbose: print the stats after each evaluation.
        **metric_kwargs: passed to :class:`~keraspose.evaluation.CocoMetric`.

    Example:
    >>> val = keraspose.CocoStyleDataset(ann_file, image_root, test_mode=True)  # doctest: +SKIP
    >>> model.fit(train, epochs=210, callbacks=[
    ...     CocoEvaluation(val, every_n_epochs=10, save_best="best_preset"),
    ...     keras.callbacks.BackupAndRestore("backup")])  # doctest: +SKIP
    """

    def __init__(
        self, dataset, every_n_epochs=1, save_best=None, monitor="coco/AP", batch_size=32,
        flip_test=None, verbose=1, **metric_kwargs,
    ):
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if len(dataset) == 0:
            raise ValueError("CocoEvaluation: the validation dataset has no samples")
        self.dataset = dataset
        self.every_n_epochs = int(every_n_epochs)
        self.save_best = Path(os.fspath(save_best)) if save_best else None
        self.monitor = monitor
        self.batch_size = batch_size
        self.flip_test = flip_test
        self.verbose = verbose
        self.metric_kwargs = metric_kwargs
        self.best = -math.inf
        self.best_epoch = None
        self.history = []  # (epoch, stats) of every evaluation
        if self.save_best is not None:
            self._restore_best()

    @property
    def _best_record(self):
        return self.save_best.parent / f"{self.save_best.name}.best.json"

    def _restore_best(self):
        # A resumed run (BackupAndRestore) must compare against the best of
        # the interrupted run, not start again from -inf.
        if self._best_record.exists() and self.save_best.exists():
            record = json.loads(self._best_record.read_text())
            if record.get("monitor") == self.monitor:
                self.best, self.best_epoch = float(record["best"]), int(record["epoch"])

    def on_train_begin(self, logs=None):
        # Fail before the first epoch, not after it, on a dataset of another keypoint set.
        dataset_k = getattr(self.dataset, "num_keypoints", None)
        model_k = self.model.metainfo.num_keypoints
        if dataset_k is not None and dataset_k != model_k:
            raise ValueError(
                f"CocoEvaluation: the validation dataset has {dataset_k} keypoints but the model predicts "
                f"{model_k}; validate on data of the model's keypoint set"
            )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        stats = evaluate_topdown(
            self.model, self.dataset, batch_size=self.batch_size, flip_test=self.flip_test, **self.metric_kwargs
        )
        if self.monitor not in stats:
            raise ValueError(f"monitor {self.monitor!r} is not one of the stats {list(stats)}")
        self.history.append((epoch, dict(stats)))
        if logs is not None:
            logs.update(stats)
        value = stats[self.monitor]
        improved = value > self.best  # False for NaN: a diverged model is never "best"
        if self.verbose:
            short = [k for k in stats if k.split("/")[-1] in ("AP", "AP .5", "AP .75", "AR")]
            shown = " - ".join(f"{k}: {stats[k]:.4f}" for k in short)
            mark = ""
            if self.save_best is not None:
                mark = " (best, saved)" if improved else f" (best {self.best:.4f} at epoch {self.best_epoch + 1})"
            print(f"\nEpoch {epoch + 1}: {shown}{mark}", flush=True)
        if improved:
            self.best, self.best_epoch = value, epoch
            if self.save_best is not None:
                self.model.save_to_preset(
                    self.save_best, overwrite=True,
                    metadata={"best_epoch": epoch + 1, "monitor": self.monitor, "value": value},
                )
                write_json_atomic({"monitor": self.monitor, "best": value, "epoch": epoch}, self._best_record)


class SyncDatasetEpoch(keras.callbacks.Callback):
    """Tell a :class:`~keraspose.training.TopdownPyDataset` which epoch is starting.

    The dataset's order and augmentation are drawn from ``(seed, epoch)``;
    after ``BackupAndRestore`` resumes at epoch ``k`` this makes epoch ``k``
    see the batches it would have seen without the interruption.
    ``TopdownEstimator.fit`` adds it by itself when ``x`` is a
    ``TopdownPyDataset``.
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)
