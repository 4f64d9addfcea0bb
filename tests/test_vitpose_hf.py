"""Hugging Face transformers VitPose checkpoints loaded with ``from_preset("hf://...")``, offline.

Fixtures: tests/fixtures/vitpose_hf_{simple,classic,moe}/ from
tools/make_vitpose_hf_fixture.py: the ``config.json`` transformers'
``VitPoseForPoseEstimation.save_pretrained`` wrote for a tiny random model
(2 blocks of width 64 on 64x48 inputs, layer_norm_eps 1e-12; simple head,
classic head, and a 3-expert ViTPose+), and transformers' heatmaps for a
random input. Its ``model.safetensors`` holds exactly the tensors of
tests/vitpose_hf_weights.py (the tool checks it), rewritten here from them.

The repo goes through the real huggingface_hub client: served by the local
fake Hub (tests/fake_hub.py) into a temporary Hugging Face cache, then the Hub
is stopped, HF_HUB_OFFLINE=1 is set and ``hf://`` loads from that cache.
"""

import json
import socket
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from fake_hub import FakeHub
from safetensors.numpy import save as save_safetensors

from keraspose import TopdownEstimator
from keraspose.convert.checkpoints import ConversionError
from keraspose.models.vit import FeatureMapProcessor

sys.path.insert(0, str(Path(__file__).parent))
from vitpose_hf_weights import synthetic_state_dict  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_hub_env(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("KERASPOSE_HOME", str(tmp_path / "keraspose_home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("KERASPOSE_OFFLINE", raising=False)
    with socket.socket() as s:  # a closed port: nothing reaches huggingface.co
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
    monkeypatch.setenv("KERASPOSE_HUB_TIMEOUT", "3")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _repo_files(name):
    reference = np.load(FIXTURES / f"vitpose_hf_{name}" / "reference.npz")
    shapes = json.loads(str(reference["weight_shapes"]))
    weights = synthetic_state_dict(shapes, int(reference["seed"]))
    files = {
        "config.json": (FIXTURES / f"vitpose_hf_{name}" / "config.json").read_bytes(),
        "model.safetensors": save_safetensors(weights, metadata={"format": "pt"}),
    }
    return files, reference


def _cache_offline(monkeypatch, repo_id, files):
    """Put a repo into the (temporary) Hugging Face cache through the real client, then go offline."""
    from huggingface_hub import constants

    from keraspose.presets import resolve_preset

    with FakeHub(lifetime=60) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.add_repo(repo_id, files)
        resolve_preset(f"hf://{repo_id}")
        assert hub.unknown_requests == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _heatmaps(model, reference):
    x = np.transpose(reference["pixel_values"], (0, 2, 3, 1))  # the estimator takes channels-last crops
    # A direct call: predict_on_batch would compile each tiny model on JAX for seconds.
    return np.transpose(keras.ops.convert_to_numpy(model(x, training=False)), (0, 3, 1, 2))


@pytest.mark.parametrize("name", ["simple", "classic", "moe"])
def test_transformers_vitpose_matches_transformers(name, monkeypatch):
    files, reference = _repo_files(name)
    repo = f"usyd-community/vitpose-tiny-{name}"
    _cache_offline(monkeypatch, repo, files)
    options = {"dataset_index": int(reference["dataset_index"][0])} if name == "moe" else {}
    model = TopdownEstimator.from_preset(f"hf://{repo}", **options)
    got, expected = _heatmaps(model, reference), reference["heatmaps"]
    assert got.shape == expected.shape
    # Issue acceptance: within 1e-4 of the heatmaps' maximum.
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    assert isinstance(model.neck, FeatureMapProcessor) == (name != "classic")
    assert model.use_udp and model.flip_test and not model.shift_heatmap
    assert model.backbone.layer_norm_epsilon == 1e-12  # as the config stores it
    # Every transformers parameter has its place: the same count, less the class-token row of the position
    # embedding (folded into the patch rows) and, for ViTPose+, the two unused experts of each block.
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    unused_experts = 2 * 2 * (16 * 256 + 16) if name == "moe" else 0
    assert count == int(reference["num_parameters"]) - 64 - unused_experts


def test_converted_transformers_model_saves_as_keraspose_preset(monkeypatch, tmp_path):
    files, reference = _repo_files("simple")
    _cache_offline(monkeypatch, "usyd-community/vitpose-tiny-simple", files)
    model = TopdownEstimator.from_preset("hf://usyd-community/vitpose-tiny-simple")
    model.save_to_preset(tmp_path / "keraspose_vitpose")
    again = TopdownEstimator.from_preset(str(tmp_path / "keraspose_vitpose"))
    np.testing.assert_allclose(_heatmaps(again, reference), _heatmaps(model, reference), rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "keraspose_vitpose" / "config.json").read_text())["class_name"] == "TopdownEstimator"


def test_moe_needs_a_dataset_index_and_unknown_model_types_are_refused(monkeypatch):
    files, _ = _repo_files("moe")
    config = json.loads(files["config.json"])
    _cache_offline(monkeypatch, "usyd-community/vitpose-tiny-moe", files)
    with pytest.raises(ConversionError, match=r"dataset_index=N\) \(0: COCO, 1: AI Challenger, 2: MPII\)"):
        TopdownEstimator.from_preset("hf://usyd-community/vitpose-tiny-moe")
    with pytest.raises(ConversionError, match="dataset_index must be in 0..2"):
        TopdownEstimator.from_preset("hf://usyd-community/vitpose-tiny-moe", dataset_index=3)

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    other = {"config.json": json.dumps({**config, "model_type": "dinov2"}).encode()}
    _cache_offline(monkeypatch, "someone/dinov2-tiny", other)
    with pytest.raises(ConversionError, match="transformers model_type 'dinov2' is not supported"):
        TopdownEstimator.from_preset("hf://someone/dinov2-tiny")
