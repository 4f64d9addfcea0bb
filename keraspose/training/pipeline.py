"""A Keras data pipeline for top-down training: samples -> augmented crops and targets.

``TopdownPyDataset`` is a ``keras.utils.PyDataset``, so it feeds ``model.fit``
on every backend and can use worker processes (``workers=4,
use_multiprocessing=True``). Each item is one batch:
``x`` = normalised RGB crops ``(B, H, W, 3)`` float32 and ``y`` = the
codec's named targets, batched by the codec (``codec.batch_targets``):
``{"heatmaps": (B, h, w, K), "keypoint_weights": (B, K)}`` for heatmap
codecs, ``{"keypoint_x_labels": (B, K, Wx), "keypoint_y_labels": (B, K, Wy),
"keypoint_weights": (B, K)}`` for SimCC. The codec is the one the pipeline's
``GenerateTarget`` encodes with.

Reproducible: the order of an epoch is a permutation drawn from
``(seed, epoch)``, and every random transform is re-seeded from
``(seed, epoch, sample index)`` before each sample, so the same seed gives
the same batches whichever worker (thread or process) builds them.
``TopdownEstimator.fit`` turns off Keras' own (unseeded) shuffling of the
batch order for this dataset, which does its own.
"""

import copy
import math
import threading

import cv2
import keras
import numpy as np

from keraspose.transforms import (
    Compose,
    GenerateTarget,
    GetBBoxCenterScale,
    LoadImage,
    PhotometricDistortion,
    RandomBBoxTransform,
    RandomFlip,
    RandomHalfBody,
    TopdownAffine,
)


def train_pipeline(codec, metainfo, seed=0, photometric=False):
    """MMPose's standard top-down training transforms for ``codec`` (any kind).

    The crop uses UDP's warp when the codec asks for it (``codec.use_udp``).

    ``photometric=True`` adds MMPose's ``PhotometricDistortion`` (brightness,
    contrast, saturation, hue, channel swap) to each crop, after the affine
    warp, where it costs the least.
    """
    transforms = [
        LoadImage(),
        GetBBoxCenterScale(padding=1.25),
        RandomFlip(prob=0.5, direction="horizontal", metainfo=metainfo, seed=seed),
        RandomHalfBody(metainfo=metainfo, seed=seed),
        RandomBBoxTransform(seed=seed),
        TopdownAffine(input_size=codec.input_size, use_udp=getattr(codec, "use_udp", False)),
    ]
    if photometric:
        transforms.append(PhotometricDistortion(seed=seed))
    transforms.append(GenerateTarget(codec))
    return Compose(transforms)


def val_pipeline(codec):
    """Deterministic crops and targets (no augmentation), for validation loss/accuracy."""
    return Compose(
        [
            LoadImage(),
            GetBBoxCenterScale(padding=1.25),
            TopdownAffine(input_size=codec.input_size, use_udp=getattr(codec, "use_udp", False)),
            GenerateTarget(codec),
        ]
    )


def _pipeline_codec(pipeline):
    """The codec of the pipeline's ``GenerateTarget`` (it decides how targets batch)."""
    for transform in getattr(pipeline, "transforms", []):
        if isinstance(transform, GenerateTarget):
            return transform.encoder
    raise ValueError(
        "TopdownPyDataset: the pipeline has no GenerateTarget(codec) transform, so it makes no "
        "training targets; build it with keraspose.training.train_pipeline(codec, metainfo)"
    )


class TopdownPyDataset(keras.utils.PyDataset):
    """Batches of augmented person crops and their training targets for ``model.fit``.

    Args:
        samples: a sequence of per-person dicts with MMPose's keys
            (``img_path``, ``bbox`` (1, 4) xyxy, ``keypoints`` (1, K, 2),
            ``keypoints_visible`` (1, K)), e.g. a keraspose dataset.
        pipeline: a ``Compose`` of transforms ending in ``GenerateTarget``.
        preprocess: ``uint8 RGB crops -> network input`` (``model.preprocess``).
        batch_size, shuffle, seed: as usual; ``drop_last`` drops a short batch.
        num_shards, shard_index: data-parallel training with one process per
            replica (``torchrun``): this process's share of every global
            batch of ``batch_size * num_shards`` samples, drawn in the same
            order and with the same augmentations as one process would draw
            them, so the replicas together see exactly one process's batches.
            ``batch_size`` is then per replica. A short last global batch is
            filled up from the start of the epoch's order (as PyTorch's
            ``DistributedSampler`` pads), so every replica makes the same
            number of steps (their collectives must pair up).
            :func:`keraspose.training.distributed.shard_options` gives both.
        on_missing_image: ``"raise"`` (default) stops with the file's name;
            ``"skip"`` warns and fills the batch with another sample.

    Example:
    >>> data = TopdownPyDataset(samples, train_pipeline(codec, metainfo), model.preprocess)  # doctest: +SKIP
    >>> model.fit(data, epochs=2)  # doctest: +SKIP
    """

    def __init__(
        self, samples, pipeline, preprocess, batch_size=32, shuffle=True, seed=0,
        drop_last=False, on_missing_image="raise", num_shards=1, shard_index=0, **kwargs,
    ):
        super().__init__(**kwargs)
        if len(samples) == 0:
            raise ValueError("TopdownPyDataset: no samples (is the annotation file empty or fully filtered?)")
        if on_missing_image not in ("raise", "skip"):
            raise ValueError("on_missing_image must be 'raise' or 'skip'")
        self.samples = samples
        self.pipeline = pipeline
        self.codec = _pipeline_codec(pipeline)
        self.preprocess = preprocess
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.on_missing_image = on_missing_image
        self.num_shards = int(num_shards)
        self.shard_index = int(shard_index)
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise ValueError(
                f"TopdownPyDataset: shard_index={shard_index} must be in [0, num_shards={num_shards}); "
                "pass the process's rank and the world size"
            )
        self.epoch = 0
        self._order = self._make_order()

    def _make_order(self):
        if not self.shuffle:
            return np.arange(len(self.samples))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.samples))

    def __len__(self):
        n = len(self.samples) / (self.batch_size * self.num_shards)
        return math.floor(n) if self.drop_last else math.ceil(n)

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch):
        """Start epoch ``epoch``: its order and augmentations are drawn from ``(seed, epoch)``."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self._order = self._make_order()

    def _thread_pipeline(self):
        # Each thread gets its own copy of the transforms: re-seeding shared
        # ones would race when Keras builds batches in worker threads.
        local = self.__dict__.get("_local")
        if local is None:
            local = self.__dict__["_local"] = threading.local()
        if not hasattr(local, "pipeline"):
            local.pipeline = copy.deepcopy(self.pipeline)
        return local.pipeline

    def __getstate__(self):  # worker processes: thread-locals do not pickle
        state = dict(self.__dict__)
        state.pop("_local", None)
        return state

    def load_sample(self, index):
        """The transformed results dict of sample ``index`` (deterministic for an epoch)."""
        pipeline = self._thread_pipeline()
        for t in getattr(pipeline, "transforms", []):
            if hasattr(t, "rng"):
                t.rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        results = dict(self.samples[index])
        results = pipeline(results)
        if results is None:
            raise ValueError(f"the pipeline dropped sample {index}; training pipelines must keep every sample")
        return results

    def _batch_positions(self, batch_index):
        """Positions in the epoch's order of this shard's samples of batch ``batch_index``."""
        if self.num_shards == 1:
            return np.arange(batch_index * self.batch_size, min((batch_index + 1) * self.batch_size, len(self._order)))
        start = (batch_index * self.num_shards + self.shard_index) * self.batch_size
        # Wrapping around pads a short last global batch from the start.
        return np.arange(start, start + self.batch_size) % len(self._order)

    def __getitem__(self, batch_index):
        positions = self._batch_positions(batch_index)
        crops, encoded = [], []
        for position in positions:
            index = self._order[position]
            try:
                results = self.load_sample(index)
            except FileNotFoundError as err:
                if self.on_missing_image == "raise":
                    raise FileNotFoundError(
                        f"{err} (sample {index}); fix the path or pass on_missing_image='skip'"
                    ) from None
                import warnings

                warnings.warn(f"skipping sample {index}: {err}")
                # Keep the batch full with a deterministic stand-in sample.
                results = self.load_sample(self._order[(position + 1) % len(self._order)])
            crops.append(cv2.cvtColor(results["img"], cv2.COLOR_BGR2RGB))
            encoded.append(results)
        x = self.preprocess(np.stack(crops))
        # The codec knows its targets' names and the layout the head outputs them in.
        return x, self.codec.batch_targets(encoded)
