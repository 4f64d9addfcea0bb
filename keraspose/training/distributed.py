"""Data-parallel training with one process per device on torch (``torchrun``).

Keras' torch trainer trains one process; it has no ``DistributedDataParallel``.
This module is what the other two backends' engines do for us, in three
pieces, and the one place outside :mod:`keraspose.backend` that knows about
``torch.distributed`` (on TensorFlow and JAX it is not needed: use
``tf.distribute.MirroredStrategy`` / ``keras.distribution.DataParallel``,
see the README's "Training on several devices"):

* :func:`initialize` joins the process group ``torchrun`` describes in the
  environment (``gloo`` on CPU, ``nccl`` on CUDA);
* :func:`shard_options` gives ``TopdownPyDataset`` this process's share of
  every global batch (same order and augmentations as one process);
* :func:`average_gradients` makes an optimizer average the gradients over
  the processes before applying them (one flat all-reduce, as DDP).

BatchNorm needs nothing: once the process group is up, keraspose's
BatchNorm normalises with the global batch's statistics in training
(:func:`keraspose.backend.batch_norm_train`, MMPose's SyncBN). The loss each
process logs is that of its own shard.

Example (``torchrun --nproc_per_node 2 train.py``):
>>> from keraspose.training import distributed  # doctest: +SKIP
>>> rank, world_size = distributed.initialize()  # doctest: +SKIP
>>> data = TopdownPyDataset(samples, pipeline, model.preprocess, batch_size=32,
...                         **distributed.shard_options())  # doctest: +SKIP
>>> model.compile(optimizer=distributed.average_gradients(keras.optimizers.AdamW(5e-4)))  # doctest: +SKIP
>>> model.fit(data, epochs=210)  # doctest: +SKIP
"""

import os

import keras

from keraspose import backend


def _torch_distributed():
    if keras.config.backend() != "torch":
        raise RuntimeError(
            "keraspose.training.distributed is for the torch backend (KERAS_BACKEND=torch); "
            "on TensorFlow use tf.distribute.MirroredStrategy, on JAX keras.distribution.DataParallel"
        )
    import torch.distributed as dist

    return dist


def initialize(process_backend=None):
    """Join the process group that ``torchrun`` set up; ``(rank, world_size)``.

    Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) it does
    nothing and returns ``(0, 1)``: the same script trains on one process.
    ``process_backend`` defaults to ``"nccl"`` when CUDA is available, else
    ``"gloo"``; on CUDA each process takes the GPU of its ``LOCAL_RANK``.
    """
    dist = _torch_distributed()
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    import torch

    if process_backend is None:
        process_backend = "nccl" if torch.cuda.is_available() else "gloo"
    if process_backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(process_backend)
    return dist.get_rank(), dist.get_world_size()


def rank_and_world_size():
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if keras.config.backend() == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process():
    """Whether this process should write logs and checkpoints (rank 0)."""
    return rank_and_world_size()[0] == 0


def shard_options():
    """``TopdownPyDataset`` keyword arguments for this process's share of every batch."""
    rank, world_size = rank_and_world_size()
    return {"num_shards": world_size, "shard_index": rank}


def average_gradients(optimizer):
    """``optimizer``, made to average its gradients over the processes before applying them.

    Wraps the optimizer's ``apply`` (which Keras' torch trainer calls after
    ``loss.backward()``) on this instance only; with one process it changes
    nothing. Wrap the outermost optimizer (a ``LossScaleOptimizer``, if any:
    the average is linear, so averaging scaled gradients is the same, and every
    process then sees the same overflow and skips the same steps).
    """
    optimizer = keras.optimizers.get(optimizer)
    if getattr(optimizer, "_keraspose_averages_gradients", False):
        return optimizer
    apply = optimizer.apply

    def apply_averaged(grads, trainable_variables=None):
        return apply(backend.average_over_replicas_(list(grads)), trainable_variables)

    optimizer.apply = apply_averaged
    optimizer._keraspose_averages_gradients = True
    return optimizer
