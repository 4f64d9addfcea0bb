"""Reference side of bench_hrnet_forward.py; runs inside the MMPose venv.

usage: _mmpose_hrnet_forward.py CONFIG_JSON CHECKPOINT_OUT INPUT_NPY THREADS REPEATS BATCHES
Builds MMPose's model from the config, saves its (seeded, random) weights to
CHECKPOINT_OUT so keraspose can load the very same weights, then times the
forward pass (backbone + head, MMPose's "tensor" mode) under torch.no_grad.
"""

import json
import sys
import time

import numpy as np
import torch

from _mmpose_model import build_and_save

config_path, ckpt_out, input_npy, threads, repeats, batches = sys.argv[1:7]
threads, repeats = int(threads), int(repeats)
model = build_and_save(config_path, ckpt_out, threads, train=False)

x_all = torch.from_numpy(np.load(input_npy))
result = {"torch": torch.__version__, "threads": threads, "times": {}}
with torch.no_grad():
    for b in map(int, batches.split(",")):
        x = x_all[:b].contiguous()
        for _ in range(3):
            model._forward(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model._forward(x)
            times.append(time.perf_counter() - t0)
        times.sort()
        result["times"][str(b)] = {"median": times[len(times) // 2], "min": times[0]}
        if b == 1:
            result["heatmaps_b1"] = model._forward(x).numpy().tolist()
print(json.dumps(result))
