"""Data-parallel training on torch (torchrun, keraspose.training.distributed) equals one process.

``torchrun --nproc_per_node 2`` starts two CPU processes (``gloo``). Rank 0
first trains the tiny MMPose HRNet on coco_mini crops for two steps at batch
4 alone, before joining the process group, and again with every batch's
samples in reverse order: the float noise floor of this network, the same
computation summed in another order. Then both ranks join the group and
train the same two global batches, each its 2-sample shard
(``TopdownPyDataset(..., **distributed.dataset_options(4))``), with the
optimizer averaging the gradients (``distributed.average_gradients``) and
BatchNorm taking the global batch's statistics (SyncBN, automatic in a
process group). Each of those three pieces is needed: the mean of the two
ranks' losses must match one process to float tolerance, the weights must
stay within the noise floor, and both ranks must hold the same weights.

The torchrun test runs in the torch suite only (the subprocesses are torch
whatever the suite's backend); the device-count check runs on every backend.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

torch_only = pytest.mark.skipif(
    keras.config.backend() != "torch", reason="torch.distributed training is tested in the KERAS_BACKEND=torch run"
)

SCRIPT = r"""
import json, os, sys
import numpy as np
import keras
import torch

sys.path.insert(0, {tests!r})
from keraspose.convert import from_mmpose
from keraspose.metainfo import load_metainfo
from keraspose.training import TopdownPyDataset, distributed, train_pipeline
from coco_mini import coco_mini_training_samples

torch.set_num_threads(1)
models, out = {models!r}, {out!r}
samples = coco_mini_training_samples({data!r} + "/coco_mini")[:8]
rank = int(os.environ["RANK"])


def weights(model):
    # Keyed by the path inside the model (Keras numbers the second model's name).
    return {{v.path.split("/", 1)[1]: np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights}}


def train(reversed_batches=False):
    model = from_mmpose(models + "/tiny_hrnet_coco_config.json", models + "/tiny_hrnet_coco.pth")
    # A global batch of 4: 2 per process in the group, 4 alone.
    data = TopdownPyDataset(samples, train_pipeline(model.head.codec, load_metainfo("coco"), seed=0),
                            model.preprocess, seed=0, **distributed.dataset_options(4))
    # SGD at a small rate, as in test_data_parallel: updates linear in the gradient.
    model.compile(optimizer=keras.optimizers.SGD(1e-4))
    distributed.synchronize_weights(model)
    distributed.average_gradients(model.optimizer)
    initial = weights(model)
    losses = []
    for i in range(len(data)):
        x, y = data[i]
        if reversed_batches:
            x, y = x[::-1].copy(), {{k: v[::-1].copy() for k, v in y.items()}}
        losses.append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
    return losses, weights(model), initial


if rank == 0:  # one process, before the group exists
    single_losses, single, initial = train()
    reordered_losses, reordered, _ = train(reversed_batches=True)
    np.savez(out + "/single.npz", **single)
    np.savez(out + "/reordered.npz", **reordered)
    np.savez(out + "/initial.npz", **initial)
rank, world_size = distributed.initialize()
assert world_size == 2 and keras.config.backend() == "torch"
losses, state, _ = train()
np.savez(out + f"/rank{{rank}}.npz", **state)
with open(out + f"/rank{{rank}}.json", "w") as f:
    json.dump({{"losses": losses, **({{"single": single_losses}} if rank == 0 else {{}})}}, f)
torch.distributed.destroy_process_group()
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _update_err(other, single, initial):
    # max over variables of |other - single|, relative to the variable's largest training update
    return max(
        float(np.abs(other[k] - single[k]).max() / max(np.abs(single[k] - initial[k]).max(), 1e-12)) for k in single
    )


@torch_only
@pytest.mark.slow
def test_torchrun_two_processes_match_one(reference_dir, data_dir, tmp_path):
    tests = os.path.dirname(os.path.abspath(__file__))
    script = tmp_path / "train.py"
    script.write_text(
        SCRIPT.format(tests=tests, models=str(reference_dir / "models"), data=str(data_dir), out=str(tmp_path))
    )
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    single_losses = logs[0]["single"]
    single, reordered, initial, rank0, rank1 = (
        dict(np.load(tmp_path / f"{name}.npz")) for name in ("single", "reordered", "initial", "rank0", "rank1")
    )
    assert len(single_losses) == 2
    assert all(not np.array_equal(single[k], initial[k]) for k in single if "moving" in k)
    # Each rank logs its shard's loss (a mean over its 2 samples): their mean is the global batch's.
    for i, loss in enumerate(single_losses):
        assert (logs[0]["losses"][i] + logs[1]["losses"][i]) / 2 == pytest.approx(loss, rel=1e-4), logs
    for k in rank0:  # the replicas stay identical
        np.testing.assert_allclose(rank0[k], rank1[k], rtol=0, atol=1e-6 * max(1.0, np.abs(rank0[k]).max()), err_msg=k)
    floor = _update_err(reordered, single, initial)
    err = _update_err(rank0, single, initial)
    print({"single": single_losses, "ranks": [log["losses"] for log in logs], "distributed_err": err, "reordered_err": floor})
    assert floor < 0.2
    assert err <= 2 * floor + 1e-6


def test_data_parallel_refuses_more_devices_than_there_are():
    # Every backend: a clear error naming the count and the fix (torchrun on torch).
    from keraspose.training import distributed

    with pytest.raises(ValueError, match="devices=64"):
        with distributed.data_parallel(devices=64):
            pass
    with distributed.data_parallel(devices=1) as replicas:
        assert replicas == 1
