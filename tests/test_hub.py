"""Preset handles, the catalogue, the Hugging Face Hub and the MMPose fallback, all offline.

How these tests stay off the network while running the real client code:

* ``tests/fake_hub.py`` is a threaded HTTP server on 127.0.0.1 (random port,
  stops by itself after its lifetime) that answers the Hub API calls
  huggingface_hub 2.4 makes for ``snapshot_download`` (model info, tree
  listing, HEAD/GET ``resolve`` with ``X-Repo-Commit``/``ETag`` headers) and
  for ``create_repo`` + ``upload_folder`` (``preupload`` answering "regular"
  for every file, so no LFS/Xet transfer, then the NDJSON ``commit``).
  Tests point the client at it with ``HF_ENDPOINT`` (read by keraspose at
  call time and passed on as ``endpoint=``) or ``endpoint=``.
* The Hugging Face cache is filled by ``snapshot_download`` itself from the
  fake Hub into a temporary ``HF_HOME``; then the server is stopped and
  ``HF_HUB_OFFLINE=1`` is set, and the preset is loaded through ``hf://`` from
  that cache: exactly the layout (``models--owner--repo/blobs``,
  ``snapshots/<commit>``, ``refs/main``) a real download leaves.
* huggingface_hub reads ``HF_HUB_OFFLINE``/``HF_ENDPOINT``/``HF_HOME`` once at
  import; the autouse fixture below sets the environment for each test *and*
  pins ``huggingface_hub.constants.HF_HUB_OFFLINE``, and by default points
  ``HF_ENDPOINT`` at a closed local port, so a test that forgets to set up a
  server fails fast instead of reaching huggingface.co.
* Official checkpoints are served by a plain ``http.server`` on 127.0.0.1 and
  converted by a stand-in converter (a callable), except in the one test that
  runs the real ``keraspose.convert.from_mmpose`` on the small MMPose-format
  checkpoint from ``../shared``.
"""

import hashlib
import http.server
import json
import os
import shutil
import socket
import threading
import time

import keras
import numpy as np
import pytest
from fake_hub import FakeHub
from test_presets_io import TinyPoseNet, make_model, outputs_of

from keraspose.presets.hub import BUNDLED_DIR as _BUNDLED_DIR
from keraspose.presets import (
    CONVERTERS,
    PRESET_FILES,
    TASKS,
    CheckpointDownloadError,
    PresetUnavailableError,
    catalogue_converter,
    catalogue_task,
    download_checkpoint,
    get_catalogue_entry,
    get_converter,
    list_presets,
    load_preset,
    load_preset_metadata,
    parse_handle,
    resolve_preset,
    save_preset,
    upload_preset,
    validate_preset,
)


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there: connection refused at once


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("KERASPOSE_HOME", str(tmp_path / "keraspose_home"))
    monkeypatch.delenv("KERASPOSE_CATALOGUE_PATH", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("KERASPOSE_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    monkeypatch.setenv("KERASPOSE_HUB_TIMEOUT", "3")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return tmp_path


def _go_offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def fake_hub(monkeypatch):
    with FakeHub(lifetime=60) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub
        assert hub.unknown_requests == [], "the client called an endpoint the fake Hub does not know"


class _FileServer:
    """Serves ``{path: bytes}`` over HTTP on 127.0.0.1 (the 'official checkpoint' host)."""

    def __init__(self, files):
        self.files = files
        self.hits = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits.append(self.path)
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server():
    servers = []

    def start(files):
        servers.append(_FileServer(files))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _write_catalogue(tmp_path, monkeypatch, **fields):
    entry = {
        "name": "tiny_test_preset",
        "description": "test entry",
        "class": "keraspose_tests>TinyPoseNet",
        "hub_handle": "hf://keraspose-test/tiny_test_preset",
        "mmpose_config": "td-hm_tiny_test",
        "checkpoint_url": _closed_port_url() + "/tiny-0000abcd_20240101.pth",
        "checkpoint_sha256": None,
        "license": "apache-2.0",
        "reported_ap": 0.5,
        "num_parameters": 1,
        "input_size": [5, 1],
        **fields,
    }
    directory = tmp_path / "extra_catalogue"
    directory.mkdir(exist_ok=True)
    (directory / "tiny_test_preset.json").write_text(json.dumps(entry))
    monkeypatch.setenv("KERASPOSE_CATALOGUE_PATH", str(directory))
    return entry


# ---------------------------------------------------------------------------
# handles and catalogue
# ---------------------------------------------------------------------------
def test_parse_handle(tmp_path):
    assert parse_handle("hf://owner/repo") == ("hf", "owner/repo", None)
    assert parse_handle("hf://owner/repo@refs/pr/1") == ("hf", "owner/repo", "refs/pr/1")
    assert parse_handle(str(tmp_path)) == ("local", str(tmp_path), None)
    assert parse_handle(tmp_path).kind == "local"
    assert parse_handle("hrnet_w32_coco").kind == "catalogue"
    with pytest.raises(ValueError, match="hf://owner/repo"):
        parse_handle("hf://just-a-name")
    with pytest.raises(FileNotFoundError, match="hf://owner/repo"):
        parse_handle("owner/repo")  # not a directory here: suggests the hf:// form


def test_catalogue_entries_are_complete():
    names = list_presets()
    assert {"hrnet_w32_coco", "hrnet_w32_coco_384x288", "hrnet_w48_coco", "simplebaseline_res50_coco",
            "tinypose_coco_256x192", "tinypose_coco_128x96", "rtmdet_m_person"} <= set(names)
    source_model_type = {"mmpose": "TopdownPoseEstimator", "mmdet": "RTMDet"}
    for name in names:
        entry = get_catalogue_entry(name)
        for field in ("name", "description", "class", "reported_ap", "num_parameters", "input_size", "license"):
            assert entry.get(field) not in (None, ""), (name, field)
        task = catalogue_task(entry)
        assert entry.get("task") and task in TASKS, name
        # What a preset predicts: keypoints for pose models, class names for detectors.
        assert entry.get("num_keypoints" if task == "pose" else "class_names"), name
        if entry.get("bundled"):  # shipped in the wheel: no Hub repo or checkpoint needed
            assert os.path.exists(os.path.join(_BUNDLED_DIR, entry["bundled"], "model.safetensors")), name
            continue
        converter = catalogue_converter(entry)
        assert converter == entry["converter"] and converter in CONVERTERS, name
        for field in ("hub_handle", f"{converter}_config", "checkpoint_url"):
            assert entry.get(field) not in (None, ""), (name, field)
        assert entry["hub_handle"].startswith("hf://")
        assert entry["checkpoint_url"].startswith("https://download.openmmlab.com/mmpose/")
        # OpenMMLab puts the first 8 hex digits of the sha256 in the file name.
        assert entry["checkpoint_sha256_prefix"] in entry["checkpoint_url"]
        assert entry[f"{converter}_model"]["type"] == source_model_type[converter]
    assert get_catalogue_entry("hrnet_w32_coco")["reported_ap"] == 0.749
    with pytest.raises(ValueError, match="Did you mean 'hrnet_w32_coco'"):
        get_catalogue_entry("hrnet_w32_coco_256x19")


def test_entries_without_a_converter_field_still_work(tmp_path, monkeypatch):
    # Catalogues written before "converter" existed: an MMPose config means MMPose.
    entry = _write_catalogue(tmp_path, monkeypatch)
    assert "converter" not in entry and catalogue_converter(get_catalogue_entry("tiny_test_preset")) == "mmpose"
    assert catalogue_task(get_catalogue_entry("tiny_test_preset")) == "pose"
    assert catalogue_converter({"name": "x", "bundled": "x"}) == "bundled"
    # Hugging Face's task names are accepted for ours.
    assert catalogue_task({"task": "object-detection"}) == "detector"
    assert catalogue_task({"class": "keraspose>RTMDetector"}) == "detector"
    with pytest.raises(ValueError, match="unknown converter 'caffe'.*register_converter"):
        get_converter("caffe")


# ---------------------------------------------------------------------------
# Hub download, cache, offline
# ---------------------------------------------------------------------------
def test_hub_download_then_offline_from_cache(tmp_path, fake_hub, monkeypatch):
    model = make_model()
    preset = save_preset(model, tmp_path / "p")
    commit = fake_hub.add_folder("owner/tiny", preset)

    path = resolve_preset("hf://owner/tiny")
    np.testing.assert_array_equal(outputs_of(load_preset(path, expected_class=TinyPoseNet)), outputs_of(model))

    # The standard Hub cache layout, under the HF_HOME set for this test.
    repo_cache = tmp_path / "hf_home" / "hub" / "models--owner--tiny"
    assert os.path.realpath(path) == os.path.realpath(repo_cache / "snapshots" / commit)
    assert (repo_cache / "refs" / "main").read_text() == commit
    blobs = set(os.listdir(repo_cache / "blobs"))
    weights = open(os.path.join(preset, "model.safetensors"), "rb").read()
    assert hashlib.sha256(weights).hexdigest() in blobs  # LFS files are stored under their sha256
    assert len(blobs) == len(PRESET_FILES)

    # Hub gone and offline mode on: same snapshot, straight from the cache.
    fake_hub.stop()
    _go_offline(monkeypatch)
    start = time.monotonic()
    offline_path = resolve_preset("hf://owner/tiny")
    assert time.monotonic() - start < 5
    assert offline_path == path
    np.testing.assert_array_equal(outputs_of(load_preset(offline_path)), outputs_of(model))
    assert resolve_preset(f"hf://owner/tiny@{commit}") == path


def test_unreachable_hub_falls_back_to_cache_quickly(tmp_path, fake_hub, monkeypatch):
    fake_hub.add_folder("owner/tiny", save_preset(make_model(), tmp_path / "p"))
    path = resolve_preset("hf://owner/tiny")
    fake_hub.stop()  # online mode, but nothing answers any more
    start = time.monotonic()
    assert resolve_preset("hf://owner/tiny") == path
    assert time.monotonic() - start < 5


def test_hub_revisions_and_missing_repo(tmp_path, fake_hub):
    first = fake_hub.add_folder("owner/tiny", save_preset(make_model(0), tmp_path / "a"))
    second = fake_hub.add_folder("owner/tiny", save_preset(make_model(1), tmp_path / "b"))
    old = load_preset(resolve_preset(f"hf://owner/tiny@{first}"))
    new = load_preset(resolve_preset("hf://owner/tiny@main"))
    np.testing.assert_array_equal(outputs_of(old), outputs_of(make_model(0)))
    np.testing.assert_array_equal(outputs_of(new), outputs_of(make_model(1)))
    assert second != first
    with pytest.raises(PresetUnavailableError, match="no such repo"):
        resolve_preset("hf://owner/does-not-exist")
    with pytest.raises(PresetUnavailableError, match="revision 'nope' does not exist"):
        resolve_preset("hf://owner/tiny@nope")


def test_hf_handle_offline_and_not_cached_fails_fast(monkeypatch):
    _go_offline(monkeypatch)
    start = time.monotonic()
    with pytest.raises(PresetUnavailableError, match=r"hf://owner/tiny.*offline mode.*Hugging Face cache"):
        resolve_preset("hf://owner/tiny")
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------------------
# catalogue presets without network
# ---------------------------------------------------------------------------
def test_catalogue_preset_offline_without_cache_fails_fast(monkeypatch):
    _go_offline(monkeypatch)
    entry = get_catalogue_entry("hrnet_w32_coco")
    start = time.monotonic()
    with pytest.raises(PresetUnavailableError) as info:
        resolve_preset("hrnet_w32_coco")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert entry["hub_handle"] in message  # hf://keraspose/hrnet_w32_coco
    assert entry["checkpoint_url"] in message
    assert "keraspose convert mmpose td-hm_hrnet-w32_8xb64-210e_coco-256x192" in message
    assert "from_preset(" in message


def test_catalogue_detector_offline_without_cache_fails_fast(monkeypatch):
    # The same fallback chain for an MMDetection checkpoint: its converter is named by the entry.
    _go_offline(monkeypatch)
    entry = get_catalogue_entry("rtmdet_m_person")
    start = time.monotonic()
    with pytest.raises(PresetUnavailableError) as info:
        resolve_preset("rtmdet_m_person")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert entry["hub_handle"] in message and entry["checkpoint_url"] in message
    assert "keraspose convert mmdet rtmdet_m_640-8xb32_coco-person CHECKPOINT.pth --out DIR" in message
    assert "from_preset(" in message


def test_catalogue_preset_with_dead_network_fails_fast(tmp_path, monkeypatch):
    # Online mode, but neither the Hub nor the checkpoint host answers.
    entry = _write_catalogue(tmp_path, monkeypatch)
    start = time.monotonic()
    with pytest.raises(PresetUnavailableError) as info:
        resolve_preset("tiny_test_preset", converter=lambda *a: pytest.fail("nothing to convert"))
    assert time.monotonic() - start < 10
    assert entry["hub_handle"] in str(info.value) and entry["checkpoint_url"] in str(info.value)


def test_catalogue_falls_back_to_official_checkpoint(tmp_path, monkeypatch, fake_hub, file_server):
    checkpoint = b"pretend this is an MMPose checkpoint" * 1000
    digest = hashlib.sha256(checkpoint).hexdigest()
    server = file_server({"/ckpt/tiny-%s_20240101.pth" % digest[:8]: checkpoint})
    url = f"{server.url}/ckpt/tiny-{digest[:8]}_20240101.pth"
    entry = _write_catalogue(tmp_path, monkeypatch, checkpoint_url=url, checkpoint_sha256_prefix=digest[:8],
                             mmpose_model={"type": "TopdownPoseEstimator", "tiny": True})
    calls = []

    def converter(config, checkpoint_path):
        calls.append((config, checkpoint_path))
        assert open(checkpoint_path, "rb").read() == checkpoint
        return make_model(7)

    # The Hub (fake, running) does not have the repo -> official checkpoint.
    path = resolve_preset("tiny_test_preset", converter=converter, progress=False)
    assert calls == [(entry["mmpose_model"], calls[0][1])]
    assert path == str(tmp_path / "keraspose_home" / "presets" / "tiny_test_preset")
    model = load_preset(path)
    np.testing.assert_array_equal(outputs_of(model), outputs_of(make_model(7)))
    meta = load_preset_metadata(path)
    assert meta["source_checkpoint"] == url and meta["source_checkpoint_sha256"] == digest
    assert meta["metrics"] == {"coco/AP": 0.5} and meta["license"] == "apache-2.0"

    # Second time: straight from the keraspose cache, no network, no conversion.
    server.close()
    fake_hub.stop()
    _go_offline(monkeypatch)
    assert resolve_preset("tiny_test_preset", converter=converter) == path
    assert len(calls) == 1


def test_checkpoint_checksum_mismatch_leaves_nothing(tmp_path, file_server, capfd):
    server = file_server({"/c.pth": b"x" * 5000})
    dest = tmp_path / "ckpts"
    with pytest.raises(CheckpointDownloadError, match="sha256 mismatch"):
        download_checkpoint(f"{server.url}/c.pth", dest, sha256="deadbeef")
    assert os.listdir(dest) == []
    path = download_checkpoint(f"{server.url}/c.pth", dest, sha256=hashlib.sha256(b"x" * 5000).hexdigest())
    assert open(path, "rb").read() == b"x" * 5000
    assert "c.pth" in capfd.readouterr().err  # the progress bar goes to stderr
    with pytest.raises(CheckpointDownloadError, match="HTTP 404"):
        download_checkpoint(f"{server.url}/missing.pth", dest)


# ---------------------------------------------------------------------------
# upload
# ---------------------------------------------------------------------------
def test_upload_then_download_round_trip(tmp_path, fake_hub, monkeypatch):
    model = make_model(3)
    preset = save_preset(model, tmp_path / "p", metadata={"license": "apache-2.0"})
    (tmp_path / "p" / ".cache").mkdir()  # stray files are not uploaded
    url = upload_preset("hf://me/tiny", preset, token="hf_fake_token", endpoint=fake_hub.url)
    assert "/me/tiny/commit/" in url
    assert set(fake_hub.files("me/tiny")) == set(PRESET_FILES)
    writes = [r for r in fake_hub.requests if r["method"] == "POST"]
    assert {r["path"].split("?")[0] for r in writes} == {
        "/api/repos/create", "/api/validate-yaml", "/api/models/me/tiny/preupload/main",
        "/api/models/me/tiny/commit/main"}
    # The generated model card's front matter is valid YAML with the Hub's fields.
    front = fake_hub.validated_yaml[0]
    assert front["library_name"] == "keraspose" and front["license"] == "apache-2.0"
    assert {"pose-estimation", "keypoint-detection", "keras"} <= set(front["tags"])
    assert all(r["authorization"] == "Bearer hf_fake_token" for r in writes)

    # Uploading again to the existing repo works (create_repo(exist_ok=True)).
    upload_preset("hf://me/tiny", save_preset(make_model(4), tmp_path / "p2"), token="hf_fake_token")
    loaded = load_preset(resolve_preset("hf://me/tiny"))
    np.testing.assert_array_equal(outputs_of(loaded), outputs_of(make_model(4)))


def test_upload_refuses_invalid_presets(tmp_path, fake_hub):
    preset = save_preset(make_model(), tmp_path / "p")
    os.remove(os.path.join(preset, "README.md"))
    with pytest.raises(ValueError, match="refusing to upload.*README.md"):
        upload_preset("hf://me/bad", preset, token="t")

    nan_model = make_model()
    nan_model.head.kernel.assign(np.full(nan_model.head.kernel.shape, np.nan, "float32"))
    nan_preset = save_preset(nan_model, tmp_path / "nan")
    with pytest.raises(ValueError, match="refusing to upload.*NaN"):
        upload_preset("hf://me/bad", nan_preset, token="t")

    tampered = save_preset(make_model(), tmp_path / "tampered")
    shutil.copyfile(os.path.join(save_preset(make_model(5), tmp_path / "other"), "model.safetensors"),
                    os.path.join(tampered, "model.safetensors"))
    with pytest.raises(ValueError, match="sha256"):
        upload_preset("hf://me/bad", tampered, token="t")
    with pytest.raises(ValueError, match="hf://owner/repo"):
        upload_preset("me/bad", preset)
    assert fake_hub.requests == []  # refused before anything was sent


def test_validate_preset_report(tmp_path):
    report = validate_preset(save_preset(make_model(), tmp_path / "p"))
    assert report["forward"] == "ok" and report["class_name"] == "keraspose_tests>TinyPoseNet"


# ---------------------------------------------------------------------------
# the real estimator and converter (needs ../shared)
# ---------------------------------------------------------------------------
def test_real_converter_through_catalogue_fallback(tmp_path, monkeypatch, file_server, reference_dir):
    from keraspose.convert import from_mmpose
    from keraspose.models.topdown_estimator import TopdownEstimator

    checkpoint = (reference_dir / "models" / "tiny_hrnet_coco.pth").read_bytes()
    config = json.loads((reference_dir / "models" / "tiny_hrnet_coco_config.json").read_text())
    digest = hashlib.sha256(checkpoint).hexdigest()
    server = file_server({"/tiny_hrnet.pth": checkpoint})
    _write_catalogue(tmp_path, monkeypatch, name="tiny_test_preset", checkpoint_url=f"{server.url}/tiny_hrnet.pth",
                     checkpoint_sha256=digest, mmpose_model=config, **{"class": "keraspose>TopdownEstimator"})
    _go_offline(monkeypatch)  # the Hub is skipped; checkpoint download still refused...
    with pytest.raises(PresetUnavailableError, match="offline"):
        TopdownEstimator.from_preset("tiny_test_preset")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(__import__("huggingface_hub").constants, "HF_HUB_OFFLINE", False)
    converted = []

    def converter(cfg, ckpt):  # the real converter; keeps its model to compare with
        converted.append(from_mmpose(cfg, ckpt))
        return converted[-1]

    path = resolve_preset("tiny_test_preset", converter=converter, progress=False)
    model = TopdownEstimator.from_preset(path, flip_test=False)
    assert isinstance(model, TopdownEstimator) and model.flip_test is False
    x = model.dummy_inputs(2) + 0.3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(converted[0](x)),
                               rtol=0, atol=1e-6)


def test_real_mmdet_converter_through_catalogue_fallback(tmp_path, monkeypatch, file_server):
    """A catalogue entry with "converter": "mmdet": downloaded, converted by keraspose.convert.mmdet, cached."""
    from keraspose.models.rtmdet import RTMDetector

    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mmdet")
    checkpoint = open(os.path.join(fixtures, "tiny_rtmdet.pth"), "rb").read()
    config = json.load(open(os.path.join(fixtures, "tiny_rtmdet_config.json")))
    reference = np.load(os.path.join(fixtures, "tiny_rtmdet_outputs.npz"))
    digest = hashlib.sha256(checkpoint).hexdigest()
    server = file_server({f"/tiny_rtmdet-{digest[:8]}.pth": checkpoint})
    _write_catalogue(
        tmp_path, monkeypatch, name="tiny_test_preset", task="detector", converter="mmdet",
        checkpoint_url=f"{server.url}/tiny_rtmdet-{digest[:8]}.pth", checkpoint_sha256_prefix=digest[:8],
        mmpose_config=None, mmdet_config="tiny_rtmdet", mmdet_model=config["model"],
        mmdet_test_pipeline=config["test_pipeline"], class_names=["person"], input_size=[128, 128],
        **{"class": "keraspose>RTMDetector"},
    )
    path = resolve_preset("tiny_test_preset", progress=False)
    meta = load_preset_metadata(path)
    assert meta["task"] == "detector" and meta["mmdet_config"] == "tiny_rtmdet" and "mmpose_config" not in meta
    assert meta["source_checkpoint_sha256"] == digest and meta["class_names"] == ["person"]
    model = load_preset(path, expected_class=RTMDetector)
    out = model(reference["input_nchw"].transpose(0, 2, 3, 1), training=False)
    for level in range(3):
        for key, name in (("cls_scores", "cls_score"), ("bbox_preds", "bbox_pred")):
            expected = reference[f"{name}_{level}"]
            ours = keras.ops.convert_to_numpy(out[key][level]).transpose(0, 3, 1, 2)
            np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4 * np.abs(expected).max())

