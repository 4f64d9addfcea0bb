"""Preset tasks (pose model vs detector), the converter registry, and the CLI's view of both.

``StandInDetector`` below is a tiny registered ``keras.Model`` with
``preset_task = "detector"`` and ``class_names``: it checks the task logic
(metadata, model card, the refusal to load a preset of the other task,
``keraspose presets``/``info``/``upload``) without the real RTMDetector;
``tests/test_mmdet_convert.py`` covers the real one. This module also
serves as a converter module for the registry (``build_catalogue_entry`` /
``convert_catalogue_entry`` below), registered under the name ``standin``.
"""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from fake_hub import FakeHub
from huggingface_hub import constants as hf_constants

import keraspose
from keraspose.cli import main
from keraspose.presets import (
    CONVERTERS,
    PresetMixin,
    PresetTaskError,
    build_from_catalogue,
    get_catalogue_entry,
    load_preset,
    load_preset_metadata,
    register_converter,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@keras.saving.register_keras_serializable(package="keraspose_tests")
class StandInDetector(keras.Model, PresetMixin):
    """Images (B, 8, 8, 3) -> per-class scores; a stand-in for RTMDetector in these tests."""

    preset_task = "detector"

    def __init__(self, class_names=("person",), input_size=(8, 8), **kwargs):
        super().__init__(**kwargs)
        self.class_names = tuple(class_names)
        self.input_size = tuple(input_size)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.cls = keras.layers.Dense(len(self.class_names))

    def call(self, x, training=None):
        return self.cls(self.pool(x))

    def build_for_preset(self):
        if not self.built:
            self(self.dummy_inputs())

    def dummy_inputs(self, batch_size=1):
        w, h = self.input_size
        return np.linspace(0, 1, batch_size * h * w * 3, dtype="float32").reshape(batch_size, h, w, 3)

    def get_config(self):
        return {**super().get_config(), "class_names": list(self.class_names), "input_size": list(self.input_size)}


# -- this module as a registered converter ("converter": "standin") ---------
def build_catalogue_entry(entry):
    model = StandInDetector(class_names=entry["class_names"], input_size=entry["input_size"])
    model.build_for_preset()
    return model


def convert_catalogue_entry(entry, checkpoint):  # pragma: no cover - not downloaded in these tests
    raise AssertionError("no checkpoint is converted here")


def make_detector(seed=0, class_names=("person", "bicycle")):
    keras.utils.set_random_seed(seed)
    model = StandInDetector(class_names=class_names)
    model.build_for_preset()
    return model


@pytest.fixture
def detector_preset(tmp_path):
    return make_detector().save_to_preset(str(tmp_path / "det"), metadata={"license": "apache-2.0"})


@pytest.fixture
def standin_catalogue(tmp_path, monkeypatch):
    entry = {
        "name": "standin_det", "task": "detector", "converter": "standin", "class": "keraspose_tests>StandInDetector",
        "description": "a stand-in detector", "license": "apache-2.0", "class_names": ["person", "dog"],
        "input_size": [8, 8], "reported_ap": 0.5, "num_parameters": 8,
        "standin_model": {"type": "StandIn"}, "standin_config": "standin_8x8",
        "hub_handle": "hf://keraspose-test/standin_det", "checkpoint_url": "http://127.0.0.1:9/standin-00000000.pth",
    }
    folder = tmp_path / "catalogue"
    folder.mkdir()
    (folder / "standin_det.json").write_text(json.dumps(entry))
    monkeypatch.setenv("KERASPOSE_CATALOGUE_PATH", str(folder))
    monkeypatch.setitem(CONVERTERS, "standin", __name__)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("KERASPOSE_HOME", str(tmp_path / "home"))
    return entry


# ---------------------------------------------------------------------------
# no import cycle: models never import converters
# ---------------------------------------------------------------------------
def test_model_modules_do_not_import_converters():
    modules = ["keraspose.models.topdown_estimator"]
    if os.path.isdir(os.path.join(REPO, "keraspose", "models", "rtmdet")):
        modules.append("keraspose.models.rtmdet")
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        "import keraspose, keraspose.presets\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('keraspose.convert'))\n"
        "assert not loaded, loaded\n"
        "keraspose.presets.get_converter('mmpose')\n"
        "assert 'keraspose.convert.mmpose' in sys.modules  # imported by name, when needed\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_keraspose_from_mmpose_still_works():
    from keraspose.convert.mmpose import from_mmpose

    assert keraspose.from_mmpose is from_mmpose


# ---------------------------------------------------------------------------
# tasks: metadata, model card, refusing the other kind
# ---------------------------------------------------------------------------
def test_detector_preset_metadata_and_card(detector_preset):
    meta = load_preset_metadata(detector_preset)
    assert meta["task"] == "detector" and meta["class_names"] == ["person", "bicycle"] and meta["num_classes"] == 2
    assert "num_keypoints" not in meta
    card = open(os.path.join(detector_preset, "README.md")).read()
    front = card.split("---")[1]
    assert "pipeline_tag: object-detection" in front and '"object-detection"' in front
    assert "keypoint-detection" not in front
    assert "StandInDetector.from_preset" in card and "- Classes: `person, bicycle`" in card


def test_pose_preset_metadata_says_pose(tmp_path):
    model = keraspose.TopdownEstimator.from_preset("tinypose_coco_128x96")
    meta = load_preset_metadata(model.save_to_preset(str(tmp_path / "pose")))
    assert meta["task"] == "pose" and meta["num_keypoints"] == 17 and "class_names" not in meta


def test_save_refuses_a_contradicting_task(tmp_path):
    with pytest.raises(ValueError, match="task='pose'.*'detector'"):
        make_detector().save_to_preset(str(tmp_path / "x"), metadata={"task": "pose"})


def test_detector_preset_refused_by_the_pose_model(detector_preset):
    with pytest.raises(PresetTaskError) as info:
        keraspose.TopdownEstimator.from_preset(detector_preset)
    message = str(info.value)
    assert "is a detector (StandInDetector) preset; load it with keraspose.StandInDetector.from_preset" in message
    assert "or use it as the detector of keraspose.PoseInferencer" in message


def test_pose_preset_refused_by_a_detector():
    with pytest.raises(PresetTaskError, match=(
            r"'tinypose_coco_128x96' is a pose model \(TopdownEstimator\) preset; load it with "
            r"keraspose.TopdownEstimator.from_preset or use it as the pose model of keraspose.PoseInferencer")):
        StandInDetector.from_preset("tinypose_coco_128x96")


def test_catalogue_detector_refused_before_any_download(monkeypatch):
    # The catalogue says what the preset is: no Hub or checkpoint access is tried.
    import keraspose.presets.registry as registry

    monkeypatch.setattr(registry, "resolve_preset", lambda *a, **k: pytest.fail("must not resolve"))
    monkeypatch.setattr(registry, "build_from_catalogue", lambda *a, **k: pytest.fail("must not build"))
    for load_weights in (True, False):
        with pytest.raises(PresetTaskError, match=r"'rtmdet_m_person' is a detector \(RTMDetector\) preset.*"
                                                  r"keraspose.RTMDetector.from_preset.*PoseInferencer"):
            keraspose.TopdownEstimator.from_preset("rtmdet_m_person", load_weights=load_weights)


def test_detector_round_trip(detector_preset):
    model = make_detector()
    loaded = StandInDetector.from_preset(detector_preset)
    assert loaded.class_names == ("person", "bicycle")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(model.dummy_inputs())),
                                  keras.ops.convert_to_numpy(model(model.dummy_inputs())))


# ---------------------------------------------------------------------------
# converter registry
# ---------------------------------------------------------------------------
def test_registered_converter_builds_the_architecture_offline(standin_catalogue):
    model = StandInDetector.from_preset("standin_det", load_weights=False)
    assert isinstance(model, StandInDetector) and model.class_names == ("person", "dog")
    overridden = build_from_catalogue(get_catalogue_entry("standin_det"), class_names=["a", "b", "c"])
    assert overridden.class_names == ("a", "b", "c") and overridden.cls.kernel.shape[-1] == 3
    with pytest.raises(PresetTaskError, match="is a detector"):
        keraspose.TopdownEstimator.from_preset("standin_det", load_weights=False)


def test_offline_catalogue_detector_says_how_to_convert(standin_catalogue):
    from keraspose.presets import PresetUnavailableError

    with pytest.raises(PresetUnavailableError) as info:
        StandInDetector.from_preset("standin_det")
    message = str(info.value)
    assert standin_catalogue["hub_handle"] in message and standin_catalogue["checkpoint_url"] in message
    assert "keraspose convert standin standin_8x8 CHECKPOINT.pth --out DIR" in message


def test_register_converter_validates():
    with pytest.raises(ValueError, match="bundled"):
        register_converter("bundled", "x")
    register_converter("mine_for_test", __name__)
    try:
        from keraspose.presets import get_converter

        assert get_converter("mine_for_test").build_catalogue_entry is build_catalogue_entry
    finally:
        CONVERTERS.pop("mine_for_test")


def test_bundled_entry_builds_from_its_shipped_config():
    model = build_from_catalogue("tinypose_coco_128x96")
    assert isinstance(model, keraspose.TopdownEstimator) and model.input_size == (96, 128)


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_presets_lists_tasks(capsys):
    code, out, _ = _run(capsys, "presets")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "AP*", "PARAMS", "INPUT", "PREDICTS", "SOURCE"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line and not line.startswith(" ")}
    assert rows["rtmdet_m_person"][1:5] == ["detector", "0.625", "24.7M", "640x640"]
    assert "1 class (person)" in out
    assert rows["hrnet_w32_coco"][1:5] == ["pose", "0.749", "28.5M", "256x192"]


def test_cli_info_on_a_detector(capsys, detector_preset):
    code, out, _ = _run(capsys, "info", "rtmdet_m_person")
    assert code == 0
    for field, value in (("task", "detector"), ("class", "keraspose>RTMDetector"), ("classes", "person"),
                         ("parameters", "24,663,447"), ("reported AP", "0.625"), ("input \\(HxW\\)", "640x640")):
        assert re.search(rf"^{field} +{value}$", out, re.M), (field, out)
    assert "rtmdet_m_640-8xb32_coco-person" in out
    code, out, _ = _run(capsys, "info", detector_preset)
    assert code == 0
    assert "detector" in out and "2: person, bicycle" in out and "keraspose_tests>StandInDetector" in out
    assert "8x8" in out and "keypoints" not in out


def test_cli_upload_a_detector_preset(capsys, detector_preset, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with FakeHub(lifetime=60) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, out, err = _run(capsys, "upload", "me/det", detector_preset)
        assert code == 0, err
        assert "hf://me/det" in out
        front = hub.validated_yaml[0]
        assert front["pipeline_tag"] == "object-detection" and "object-detection" in front["tags"]
        assert set(hub.files("me/det")) == {"config.json", "model.safetensors", "metadata.json", "README.md"}
        # ... and it comes back as the detector it was.
        loaded = StandInDetector.from_preset("hf://me/det")
        assert loaded.class_names == ("person", "bicycle")
        assert hub.unknown_requests == []
    assert load_preset(detector_preset).class_names == ("person", "bicycle")
