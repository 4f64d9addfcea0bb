"""Shared by the reference-side scripts (run inside the MMPose venv).

``build_and_save`` builds MMPose's model from a config JSON with seeded
random weights and saves them, so that keraspose loads the very same weights
with ``from_mmpose`` and both sides time identical networks.
"""

import json

import torch
from mmengine.registry import init_default_scope


def build_and_save(config_path, checkpoint_out, threads, train):
    """MMPose's model from ``config_path`` (its ``model`` dict), weights saved to ``checkpoint_out``."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    init_default_scope("mmpose")
    from mmpose.registry import MODELS

    with open(config_path) as f:
        cfg = json.load(f)["model"]
    model = MODELS.build(cfg)
    model.init_weights()
    model.train(train)
    torch.save({"meta": {}, "state_dict": model.state_dict()}, checkpoint_out)
    return model
