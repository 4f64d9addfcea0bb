"""Reference side of bench_train_step.py; runs inside the MMPose venv.

usage: _mmpose_train_step.py CONFIG_JSON CHECKPOINT_OUT DATA_NPZ THREADS REPEATS WARMUP LR
Builds MMPose's TopdownPoseEstimator from the config (seeded random
weights), saves those initial weights to CHECKPOINT_OUT so keraspose starts
from the very same ones, then times training steps as MMPose's
``BaseModel.train_step`` does them, minus the data preprocessor (the input is
already normalised): ``model.loss`` (forward, KeypointMSELoss, acc_pose) ->
``parse_losses`` -> ``OptimWrapper.update_params`` (backward, Adam step,
zero_grad). Prints one JSON line with the first step's loss and the times.
"""

import json
import sys

from _reference import time_each

import numpy as np
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData, PixelData

from _mmpose_model import build_and_save

config_path, ckpt_out, data_npz, threads, repeats, warmup, lr = sys.argv[1:8]
threads, repeats, warmup, lr = int(threads), int(repeats), int(warmup), float(lr)
model = build_and_save(config_path, ckpt_out, threads, train=True)
from mmpose.structures import PoseDataSample  # noqa: E402  (after build_and_save set the scope)

data = np.load(data_npz)
x = torch.from_numpy(data["x"])  # (B, 3, H, W) normalised
samples = []
for hm, w in zip(data["heatmaps"], data["keypoint_weights"]):  # (K, h, w), (K,)
    s = PoseDataSample()
    s.gt_fields = PixelData(heatmaps=torch.from_numpy(hm))
    s.gt_instance_labels = InstanceData(keypoint_weights=torch.from_numpy(w)[None])
    samples.append(s)
optim_wrapper = OptimWrapper(optimizer=torch.optim.Adam(model.parameters(), lr=lr))


def step():
    with optim_wrapper.optim_context(model):
        losses = model.loss(x, samples)
    loss, log_vars = model.parse_losses(losses)
    optim_wrapper.update_params(loss)
    return log_vars


first = step()  # the first of the warm-up steps; its loss is compared with keraspose's
times = time_each(step, repeats, warmup - 1)
ordered = sorted(times)
print(json.dumps({
    "torch": torch.__version__, "threads": threads,
    "first_loss": float(first["loss_kpt"]), "first_acc": float(first["acc_pose"]),
    "median": ordered[len(times) // 2], "min": ordered[0], "times": times,
}))
