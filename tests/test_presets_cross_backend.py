"""A preset saved under one backend loads under the other and gives the same heatmaps.

The suite runs once per backend, and each run loads a preset saved by the
next backend in the cycle torch -> JAX -> TensorFlow -> torch (a subprocess
on that backend converts the tiny MMPose HRNet and saves it as a preset; this
process loads it), so every backend both writes and reads a preset of another.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keraspose import TopdownEstimator

# Whose preset each backend loads: one subprocess per suite run.
OTHER = {"torch": "jax", "jax": "tensorflow", "tensorflow": "torch"}


def test_preset_from_the_other_backend(tmp_path, reference_dir):
    other = OTHER.get(keras.config.backend())
    if other is None:
        pytest.skip(f"no other backend is paired with {keras.config.backend()}")
    preset, saved_out = tmp_path / "preset", tmp_path / "heatmaps.npy"
    models = reference_dir / "models"
    script = f"""
import numpy as np, keras
from keraspose.convert import from_mmpose
m = from_mmpose({str(models / 'tiny_hrnet_coco_config.json')!r}, {str(models / 'tiny_hrnet_coco.pth')!r})
m.save_to_preset({str(preset)!r})
x = np.load({str(models / 'tiny_hrnet_coco_io.npz')!r})["inputs_nchw"][:2].transpose(0, 2, 3, 1)
np.save({str(saved_out)!r}, keras.ops.convert_to_numpy(m.predict_on_batch(x)))
"""
    subprocess.run(
        [sys.executable, "-c", script], env=dict(os.environ, KERAS_BACKEND=other),
        check=True, timeout=300, capture_output=True,
    )
    assert json.loads((preset / "metadata.json").read_text())["backend"] == other
    model = TopdownEstimator.from_preset(preset)
    x = np.load(models / "tiny_hrnet_coco_io.npz")["inputs_nchw"][:2].transpose(0, 2, 3, 1)
    ours = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    theirs = np.load(saved_out)
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()
