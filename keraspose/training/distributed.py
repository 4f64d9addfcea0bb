"""Data-parallel training: one recipe on every backend, and torch's missing pieces.

:func:`data_parallel` (``keraspose.backend.data_parallel_scope``) puts
training on each backend's own engine: ``tf.distribute.MirroredStrategy``
(``MultiWorkerMirroredStrategy`` with ``TF_CONFIG``),
``keras.distribution.DataParallel`` on JAX, and one process per device under
``torchrun`` on torch. :func:`dataset_options` and :func:`average_gradients`
do what torch's engine does not (on the others they change nothing):

* Keras' torch trainer trains one process and has no
  ``DistributedDataParallel``. :func:`initialize` joins the process group
  ``torchrun`` describes in the environment (``gloo`` on CPU, ``nccl`` on
  CUDA); :func:`dataset_options` gives ``TopdownPyDataset`` this process's
  share of every global batch (same order and augmentations as one
  process); :func:`average_gradients` makes the optimizer average the
  gradients over the processes before applying them (one flat all-reduce,
  as DDP). This module and :mod:`keraspose.backend` are the only places
  that know about ``torch.distributed``.
* BatchNorm needs nothing on any backend: under data parallelism
  keraspose's BatchNorm normalises with the global batch's statistics in
  training (:func:`keraspose.backend.batch_norm_train`, MMPose's SyncBN),
  and the loss is scaled per replica where the engine sums gradients
  (``tf.distribute``).

On torch the loss each process logs is that of its own shard.

Example (the same script on every backend; on torch start it with
``torchrun --nproc_per_node 2 train.py``):
>>> from keraspose.training import distributed  # doctest: +SKIP
>>> with distributed.data_parallel(devices=2):  # doctest: +SKIP
...     model = build_model()
...     data = TopdownPyDataset(samples, pipeline, model.preprocess, **distributed.dataset_options(64))
...     model.compile(optimizer=keras.optimizers.AdamW(5e-4))
...     distributed.synchronize_weights(model)
...     distributed.average_gradients(model.optimizer)
...     model.fit(data, epochs=210)
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


def data_parallel(devices=1):
    """Context manager: train inside it on ``devices`` devices; yields the replica count.

    See :func:`keraspose.backend.data_parallel_scope`.
    """
    return backend.data_parallel_scope(devices)


def dataset_options(global_batch_size):
    """``TopdownPyDataset`` keyword arguments for a global batch of ``global_batch_size``.

    On TensorFlow and JAX the engine splits the global batch over the
    devices: the dataset yields all of it. Under ``torchrun`` each process
    loads its own share (``batch_size`` per process and its shard).
    """
    rank, world_size = rank_and_world_size()
    if global_batch_size % world_size:
        raise ValueError(
            f"the batch size {global_batch_size} does not split over {world_size} processes; "
            f"pass a multiple of {world_size}"
        )
    return {"batch_size": global_batch_size // world_size, **shard_options()}


def synchronize_weights(model):
    """Give every process the first process's weights (torch under ``torchrun``; nothing elsewhere).

    Call it once the model is built, before training, as
    ``DistributedDataParallel`` does: freshly initialised replicas differ
    unless every process seeded its initialisers alike.
    """
    with backend.inference_mode():
        backend.broadcast_from_first_replica_([v.value for v in model.weights])
    return model


def average_gradients(optimizer):
    """``optimizer``, made to average its gradients over the processes before applying them.

    Wraps the optimizer's ``apply`` (which Keras' torch trainer calls after
    ``loss.backward()``) on this instance only; with one process (and on
    TensorFlow and JAX) it changes nothing. Call it on ``model.optimizer``
    after ``compile``: under ``mixed_float16`` compile wraps the optimizer
    in a ``LossScaleOptimizer``, and the outermost must average (averaging
    scaled gradients is the same, and every process then sees the same
    overflow and skips the same steps; an inner one would let the processes
    disagree and wait on each other forever).
    """
    optimizer = keras.optimizers.get(optimizer)
    if rank_and_world_size()[1] == 1:
        return optimizer
    if getattr(optimizer, "_keraspose_averages_gradients", False):
        return optimizer
    apply = optimizer.apply

    def apply_averaged(grads, trainable_variables=None):
        return apply(backend.average_over_replicas_(list(grads)), trainable_variables)

    optimizer.apply = apply_averaged
    optimizer._keraspose_averages_gradients = True
    return optimizer
