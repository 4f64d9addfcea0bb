"""MMDetection RTMDet checkpoints -> RTMDetector, against MMDetection 3.3.0 itself.

The fixture (tests/fixtures/mmdet/, made by tools/make_mmdet_checkpoint_fixture.py
with the reference venv) is a small RTMDet-nano-like person detector in
MMDetection's own format: its config as JSON, its random weights (BatchNorm
statistics perturbed) saved as official checkpoints are, and MMDetection's raw
outputs (``forward(mode="tensor")``) for a fixed normalised input.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

from keraspose.cli import main
from keraspose.convert.mmdet import (
    ConversionError,
    build_from_mmdet_config,
    checkpoint_mapping,
    from_mmdet,
    load_mmdet_config,
)
from keraspose.models.rtmdet import RTMDetector
from keraspose.presets import get_catalogue_entry, load_model_preset, load_preset_metadata, upload_preset

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mmdet")
CONFIG = os.path.join(FIXTURES, "tiny_rtmdet_config.json")
CHECKPOINT = os.path.join(FIXTURES, "tiny_rtmdet.pth")
OUTPUTS = os.path.join(FIXTURES, "tiny_rtmdet_outputs.npz")


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(OUTPUTS))


@pytest.fixture(scope="module")
def detector():
    return from_mmdet(CONFIG, CHECKPOINT)


def raw_outputs(model, reference):
    """The model's per-level outputs for the fixture input, in MMDetection's NCHW layout."""
    out = model(reference["input_nchw"].transpose(0, 2, 3, 1), training=False)
    arrays = {}
    for level in range(3):
        arrays[f"cls_score_{level}"] = keras.ops.convert_to_numpy(out["cls_scores"][level]).transpose(0, 3, 1, 2)
        arrays[f"bbox_pred_{level}"] = keras.ops.convert_to_numpy(out["bbox_preds"][level]).transpose(0, 3, 1, 2)
    return arrays


def assert_matches_mmdetection(model, reference):
    ours = raw_outputs(model, reference)
    for name, value in ours.items():
        expected = reference[name]
        assert value.shape == expected.shape, name
        scale = float(np.abs(expected).max())
        assert scale > 1e-3, name  # a zero reference would prove nothing
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-4 * scale, err_msg=name)


def _checkpoint(tmp_path, edit):
    data = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    edit(data["state_dict"])
    path = tmp_path / "edited.pth"
    torch.save(data, path)
    return str(path)


# ---------------------------------------------------------------------------
# parity and settings
# ---------------------------------------------------------------------------
def test_raw_outputs_match_mmdetection(detector, reference):
    assert_matches_mmdetection(detector, reference)


def test_settings_come_from_the_config(detector):
    assert detector.class_names == ("person",) and detector.num_classes == 1
    assert detector.input_size == (128, 128) and detector.pad_value == 114.0  # test pipeline Resize/Pad
    assert detector.channel_order == "bgr"  # bgr_to_rgb=False
    assert detector.mean == [103.53, 116.28, 123.675] and detector.std == [57.375, 57.12, 58.395]
    assert (detector.score_threshold, detector.nms_pre, detector.iou_threshold, detector.max_per_image) == (
        0.05, 1000, 0.6, 100)


def test_every_checkpoint_tensor_has_its_place(detector):
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    assert set(checkpoint_mapping(detector)) == set(state)
    # MMDetection's parameter count (printed by the fixture script): 152,673.
    assert sum(int(np.prod(v.shape)) for v in detector.trainable_weights) == 152673


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "truncated.pth"
    data = open(CHECKPOINT, "rb").read()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match=r"truncated\.pth: cannot read as a PyTorch checkpoint.*complete"):
        from_mmdet(CONFIG, str(path))


def test_missing_key(tmp_path):
    path = _checkpoint(tmp_path, lambda sd: sd.pop("bbox_head.rtm_reg.1.bias"))
    with pytest.raises(ConversionError, match=r"1 keys the model needs are not in the checkpoint, "
                                              r"the first 'bbox_head\.rtm_reg\.1\.bias'"):
        from_mmdet(CONFIG, path)


def test_extra_key(tmp_path):
    path = _checkpoint(tmp_path, lambda sd: sd.__setitem__("bbox_head.rtm_obj.0.weight", torch.zeros(1, 24, 1, 1)))
    with pytest.raises(ConversionError, match=r"1 checkpoint keys have no place in the model, "
                                              r"the first 'bbox_head\.rtm_obj\.0\.weight'"):
        from_mmdet(CONFIG, path)


def test_variable_no_checkpoint_key_fills(monkeypatch):
    # A model whose checkpoint_keys() forgot a layer: its variables stay unfilled -> an error, not random weights.
    real = RTMDetector.checkpoint_keys
    monkeypatch.setattr(RTMDetector, "checkpoint_keys", lambda self: real(self)[:-1])
    with pytest.raises(ConversionError) as info:
        from_mmdet(CONFIG, CHECKPOINT)
    message = str(info.value)
    assert "checkpoint keys have no place in the model, the first 'bbox_head.rtm_reg.2.bias'" in message
    assert "model variables are not filled by any checkpoint key, the first" in message


def test_config_does_not_match_checkpoint(tmp_path):
    config = json.load(open(CONFIG))
    config["model"]["backbone"]["widen_factor"] = 0.125  # the checkpoint's is 0.09375
    with pytest.raises(ConversionError) as info:
        from_mmdet(config, CHECKPOINT)
    message = str(info.value)
    assert "is it the config this checkpoint was trained with?" in message
    # The first mismatching key, with both shapes (PyTorch layout).
    assert "the first backbone.stem.0.conv.weight: checkpoint [3, 3, 3, 3] vs model [4, 3, 3, 3]" in message


def test_unsupported_and_py_configs(tmp_path):
    with pytest.raises(ConversionError, match=r"(?s)\.py configs are Python code.*Config\.fromfile"):
        load_mmdet_config(str(tmp_path / "rtmdet_m.py"))
    config = json.load(open(CONFIG))
    with pytest.raises(ConversionError, match="only MMDetection RTMDet.*'FasterRCNN'"):
        load_mmdet_config({"model": {**config["model"], "type": "FasterRCNN"}})
    config["model"]["bbox_head"]["with_objectness"] = True
    with pytest.raises(ConversionError, match="with_objectness"):
        build_from_mmdet_config(config)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConversionError, match="bad.json is not valid JSON"):
        load_mmdet_config(str(tmp_path / "bad.json"))


# ---------------------------------------------------------------------------
# presets, catalogue and CLI
# ---------------------------------------------------------------------------
def test_cli_convert_mmdet_writes_a_detector_preset(tmp_path, reference, capsys):
    out = str(tmp_path / "tiny_det")
    code = main(["convert", "mmdet", CONFIG, CHECKPOINT, "--out", out, "--license", "apache-2.0"])
    printed = capsys.readouterr().out
    assert code == 0 and "152,673 parameters, 1 class: person, input 128x128" in printed
    meta = load_preset_metadata(out)
    assert meta["task"] == "detector" and meta["class_names"] == ["person"]
    assert meta["mmdet_config"] == "tiny_rtmdet_config.json" and meta["source_checkpoint"] == "tiny_rtmdet.pth"
    loaded = RTMDetector.from_preset(out)
    assert_matches_mmdetection(loaded, reference)
    assert main(["info", out]) == 0
    info = capsys.readouterr().out
    assert "detector" in info and "1: person" in info and "RTMDetSepBNHead" in info and "128x128" in info


def test_cli_convert_mmdet_errors(tmp_path, capsys):
    assert main(["convert", "mmdet", CONFIG, str(tmp_path / "none.pth"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    broken = tmp_path / "broken.pth"
    broken.write_bytes(open(CHECKPOINT, "rb").read()[:1000])
    assert main(["convert", "mmdet", CONFIG, str(broken), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keraspose: error: cannot convert") and "broken.pth" in err and "Traceback" not in err


def test_cli_convert_mmdet_by_catalogue_config_name(tmp_path, reference, capsys, monkeypatch):
    # What the offline error message suggests: the config *name*; the catalogue ships the model dict.
    config = json.load(open(CONFIG))
    entry = {"name": "tiny_det", "task": "detector", "converter": "mmdet", "class": "keraspose>RTMDetector",
             "description": "tiny", "license": "apache-2.0", "mmdet_config": "tiny_rtmdet_128-person",
             "mmdet_model": config["model"], "mmdet_test_pipeline": config["test_pipeline"],
             "class_names": ["person"], "input_size": [128, 128]}
    (tmp_path / "catalogue").mkdir()
    (tmp_path / "catalogue" / "tiny_det.json").write_text(json.dumps(entry))
    monkeypatch.setenv("KERASPOSE_CATALOGUE_PATH", str(tmp_path / "catalogue"))
    out = str(tmp_path / "from_name")
    assert main(["convert", "mmdet", "tiny_rtmdet_128-person", CHECKPOINT, "--out", out]) == 0
    capsys.readouterr()
    assert load_preset_metadata(out)["license"] == "apache-2.0"
    assert_matches_mmdetection(RTMDetector.from_preset(out), reference)
    assert main(["convert", "mmdet", "no_such_config", CHECKPOINT, "--out", str(tmp_path / "x")]) == 2
    assert "MMDetection config not found: no_such_config (pass the config as a JSON file" in capsys.readouterr().err


def test_pose_model_refuses_a_detector_preset(tmp_path, detector):
    from keraspose import TopdownEstimator
    from keraspose.presets import PresetTaskError

    preset = detector.save_to_preset(str(tmp_path / "det"))
    with pytest.raises(PresetTaskError, match=r"is a detector \(RTMDetector\) preset; load it with "
                                              r"keraspose\.RTMDetector\.from_preset or use it as the detector "
                                              r"of keraspose\.PoseInferencer"):
        TopdownEstimator.from_preset(preset)


@pytest.mark.slow
def test_rtmdet_m_person_architecture_offline():
    # No download: the catalogue embeds MMDetection's model dict.
    entry = get_catalogue_entry("rtmdet_m_person")
    model = load_model_preset(RTMDetector, "rtmdet_m_person", load_weights=False)
    assert isinstance(model, RTMDetector)
    # MMDetection's parameter count of rtmdet_m_640-8xb32_coco-person (24.66M in MMPose's README).
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == entry["num_parameters"] == 24663447
    assert model.input_size == (640, 640) and model.class_names == ("person",) and model.pad_value == 114.0
    assert (model.score_threshold, model.nms_pre, model.iou_threshold, model.max_per_image) == (0.05, 1000, 0.6, 100)
    assert model.head.share_conv and model.head.exp_on_reg and model.channel_order == "bgr"


@pytest.mark.slow
def test_detector_preset_from_the_other_backend(tmp_path, reference):
    # Converted and saved by a process on another backend, loaded here: torch <-> TensorFlow,
    # and JAX loads torch's (converting RTMDet-m is slowest on JAX, so JAX does not convert).
    other = {"torch": "tensorflow", "tensorflow": "torch", "jax": "torch"}.get(keras.config.backend())
    if other is None:
        pytest.skip(f"no other backend is paired with {keras.config.backend()}")
    preset = str(tmp_path / "det")
    done = subprocess.run(
        [sys.executable, "-m", "keraspose", "convert", "mmdet", CONFIG, CHECKPOINT, "--out", preset],
        env=dict(os.environ, KERAS_BACKEND=other), timeout=300, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_preset_metadata(preset)["backend"] == other
    assert_matches_mmdetection(RTMDetector.from_preset(preset), reference)


def test_upload_a_converted_detector_to_the_hub(tmp_path, detector, reference, monkeypatch):
    from fake_hub import FakeHub
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    preset = detector.save_to_preset(str(tmp_path / "det"), metadata={"license": "apache-2.0"})
    with FakeHub(lifetime=60) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        upload_preset("hf://me/tiny_rtmdet", preset, token="hf_fake_token")
        assert hub.validated_yaml[0]["pipeline_tag"] == "object-detection"
        loaded = RTMDetector.from_preset("hf://me/tiny_rtmdet")
        assert hub.unknown_requests == []
    assert_matches_mmdetection(loaded, reference)

