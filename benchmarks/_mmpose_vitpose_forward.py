"""Reference side of bench_vitpose_forward.py; runs inside the MMPose venv (with mmpretrain 1.2.0).

usage: _mmpose_vitpose_forward.py CONFIG_JSON CHECKPOINT_OUT INPUT_NPY THREADS REPEATS BATCHES
Builds MMPose's ViTPose (mmpretrain's VisionTransformer) from the config with
seeded random weights, saves them, and times the forward pass (MMPose's
"tensor" mode: backbone + neck + head -> heatmaps) under torch.no_grad.
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import torchvision_stand_in  # noqa: E402,F401  (before mmpretrain)
import torch  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope("mmpose")
import mmpretrain.models  # noqa: E402,F401  (registers VisionTransformer)

from _mmpose_model import build_and_save  # noqa: E402

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
