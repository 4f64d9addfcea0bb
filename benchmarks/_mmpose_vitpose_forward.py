"""Reference side of bench_vitpose_forward.py; runs inside the MMPose venv (with mmpretrain 1.2.0).

usage: _mmpose_vitpose_forward.py CONFIG_JSON CHECKPOINT_OUT INPUT_NPY THREADS REPEATS BATCHES
Registers mmpretrain's VisionTransformer (behind the torchvision stand-in),
then runs _mmpose_hrnet_forward.py's timing unchanged: build MMPose's model
from the config with seeded random weights, save them, and time the forward
pass ("tensor" mode: backbone + neck + head -> heatmaps) under torch.no_grad.
"""

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import torchvision_stand_in  # noqa: E402,F401  (before mmpretrain)
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope("mmpose")
import mmpretrain.models  # noqa: E402,F401  (registers VisionTransformer)

runpy.run_path(os.path.join(HERE, "_mmpose_hrnet_forward.py"), run_name="__main__")
