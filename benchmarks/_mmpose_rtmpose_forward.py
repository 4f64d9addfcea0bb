"""Reference side of bench_rtmpose_forward.py; runs inside the MMPose venv.

usage: _mmpose_rtmpose_forward.py CONFIG_JSON CHECKPOINT_OUT INPUT_NPY THREADS REPEATS BATCHES
Builds MMPose's RTMPose (CSPNeXt from MMDetection) from the config with
seeded random weights, saves them, and times the forward pass (MMPose's
"tensor" mode: backbone + RTMCCHead -> simcc_x, simcc_y) under torch.no_grad.
"""

import importlib.util
import json
import os
import sys
import types

import numpy as np

SHARED = os.environ.get("KERASPOSE_SHARED", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "tools"))
import mmdet_ops_shim  # noqa: E402,F401  (before mmdet)

if importlib.util.find_spec("tqdm") is None:  # mmdet.datasets imports it; the venv has none
    sys.modules["tqdm"] = types.ModuleType("tqdm")
    sys.modules["tqdm"].tqdm = lambda iterable=None, *args, **kwargs: iterable
import torch  # noqa: E402
import mmdet.models  # noqa: E402,F401  (registers CSPNeXt)

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
            t0 = __import__("time").perf_counter()
            model._forward(x)
            times.append(__import__("time").perf_counter() - t0)
        times.sort()
        result["times"][str(b)] = {"median": times[len(times) // 2], "min": times[0]}
        if b == 1:
            sx, sy = model._forward(x)
            result["simcc_x_b1"] = sx.numpy().tolist()
print(json.dumps(result))
