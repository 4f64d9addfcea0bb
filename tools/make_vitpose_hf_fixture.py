"""Tiny random Hugging Face transformers VitPose checkpoints and their heatmaps, for tests/test_vitpose_hf.py.

Run with the system python3 and transformers installed (only this script needs
it; keraspose reads the files with huggingface_hub and safetensors alone):

    python3 tools/make_vitpose_hf_fixture.py

Writes tests/fixtures/vitpose_hf_{simple,classic,moe}/: the ``config.json``
``VitPoseForPoseEstimation.save_pretrained`` writes (its ``model.safetensors``
is checked to hold exactly the weights of tests/vitpose_hf_weights.py, from
which the test rewrites it: the classic head alone is 4 MB) (a 2-block, width-64 backbone on 64x48 inputs: the layout of the
``usyd-community/vitpose-*`` repos at a size a test can run), plus
``reference.npz``: a random normalised input (B, 3, H, W), the dataset index
(MoE only) and transformers' heatmaps for it. ``layer_norm_eps`` is 1e-12 (transformers' default,
which the converter must carry over, not 1e-6).
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, os.path.join(ROOT, "tests"))

from vitpose_hf_weights import synthetic_state_dict  # noqa: E402


def make(name, use_simple_decoder, num_experts=1, seed=0):
    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(
        image_size=[64, 48], patch_size=[16, 16], hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        mlp_ratio=4, hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True, out_indices=[2],
        num_experts=num_experts, **({"part_features": 16} if num_experts > 1 else {}),
    )
    config = VitPoseConfig(backbone_config=backbone, use_simple_decoder=use_simple_decoder, num_labels=17)
    model = VitPoseForPoseEstimation(config).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    weights = synthetic_state_dict(shapes, seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    directory = os.path.join(OUT, f"vitpose_hf_{name}")
    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        saved = load_file(os.path.join(tmp, "model.safetensors"))
        # The test writes model.safetensors from tests/vitpose_hf_weights.py: it must be what transformers writes.
        assert sorted(saved) == sorted(weights), set(saved) ^ set(weights)
        for key, value in saved.items():
            assert value.dtype == weights[key].dtype and np.array_equal(value, weights[key]), key
        os.makedirs(directory)
        shutil.copy(os.path.join(tmp, "config.json"), directory)
    rs = np.random.RandomState(seed)
    pixels = rs.standard_normal((2, 3, 64, 48)).astype(np.float32)
    dataset_index = np.array([1, 1] if num_experts > 1 else [0, 0], np.int64)
    with torch.no_grad():
        kwargs = {"dataset_index": torch.from_numpy(dataset_index)} if num_experts > 1 else {}
        heatmaps = model(torch.from_numpy(pixels), **kwargs).heatmaps.numpy()
    np.savez_compressed(
        os.path.join(directory, "reference.npz"), pixel_values=pixels, heatmaps=heatmaps, dataset_index=dataset_index,
        seed=np.int64(seed), weight_keys=np.array(list(shapes)), weight_shapes=json.dumps({k: list(v) for k, v in shapes.items()}),
        num_parameters=np.int64(sum(p.numel() for p in model.parameters())),
    )
    size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
    print(name, heatmaps.shape, f"range [{heatmaps.min():.3f}, {heatmaps.max():.3f}]", f"{size / 1e6:.2f} MB",
          sorted(os.listdir(directory)))


if __name__ == "__main__":
    make("simple", True, seed=0)
    make("classic", False, seed=1)
    make("moe", True, num_experts=3, seed=2)
