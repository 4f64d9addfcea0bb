"""The example scripts run end to end (short settings). Marked long: run with -m long."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.long
def test_finetune_custom_keypoints_demo(tmp_path, monkeypatch):
    out = tmp_path / "ft"
    _run(EXAMPLES / "finetune_custom_keypoints.py",
         ["--preset", "tinypose_coco_128x96", "--epochs", "1", "--batch-size", "32", "--out", str(out)], monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_ap_after"] >= 0 and len(summary["loss"]) == 1
    assert (out / "best_preset" / "config.json").exists() and (out / "final_preset" / "config.json").exists()
    assert json.loads((out / "data" / "keypoints.json").read_text())["dataset_name"] == "upper_body"


@pytest.mark.long
def test_train_hrnet_demo(tmp_path, monkeypatch):
    out = tmp_path / "hr"
    _run(EXAMPLES / "train_hrnet_coco.py",
         ["--demo", "--width", "8", "--input-size", "96x128", "--epochs", "1", "--batch-size", "32",
          "--eval-every", "1", "--workers", "0", "--out", str(out)], monkeypatch)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_per_epoch"] == 3 and len(summary["coco/AP"]) == 1


@pytest.mark.long
def test_train_hrnet_demo_mixed_precision(tmp_path, monkeypatch):
    # The same flags on every backend; --devices 1 is the one-device default
    # (several devices: see the script's docstring and the README).
    import keras

    out = tmp_path / "hr_bf16"
    try:
        _run(EXAMPLES / "train_hrnet_coco.py",
             ["--demo", "--width", "8", "--input-size", "96x128", "--epochs", "1", "--batch-size", "32",
              "--eval-every", "1", "--workers", "0", "--devices", "1", "--mixed-precision", "bfloat16",
              "--out", str(out)], monkeypatch)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dtype_policy"] == "mixed_bfloat16" and summary["devices"] == 1
    assert all(np.isfinite(summary["loss"]))


@pytest.mark.long
def test_train_rtmpose_two_stages(tmp_path, monkeypatch):
    out = tmp_path / "rtm"
    _run(EXAMPLES / "train_rtmpose_coco_mini.py",
         ["--people", "8", "--epochs", "2", "--stage2-epochs", "1", "--batch-size", "8", "--out", str(out)], monkeypatch)
    history = json.loads((out / "history.json").read_text())
    assert len(history["acc_pose"]) == 2 and len(history["loss"]) == 2
    assert (out / "preset" / "config.json").exists()
