"""Exported detector and the runtime-only path (issue 12).

The bundled RTMDet-nano person detector, exported, run in the format's own
runtime on letterboxed coco_mini images, against keraspose's own detector
on the same images: the per-prior boxes and scores (``predict_raw`` ->
``decode_priors``) and the final detections (``RTMDetector.predict``).
``test_rtmdet_nano`` ties that detector to its original ONNX graph.

The runtime-only test runs the exported pose model, detector and pipeline in
a subprocess where importing Keras, torch, TensorFlow or JAX fails.

The cheapest format per backend runs by default (ONNX from torch, ~6 s);
SavedModel from TensorFlow/JAX and the extras-dependent formats are @long.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keraspose
from keraspose.export import EXPORT_FORMATS, METADATA_FILE, SUPPORTED_BACKENDS
from keraspose.ops.detection import decode_priors
from keraspose.runtime import ExportedDetector, ExportedPoseEstimator, load_exported
from keraspose.utils.images import letterbox, load_image

sys.path.insert(0, os.path.dirname(__file__))
from rtmdet_reference import coco_mini_images  # noqa: E402

BACKEND = keras.config.backend()
DEFAULT_FORMAT = "onnx" if BACKEND == "torch" else "tf_saved_model"
long_unless_torch = pytest.mark.long if BACKEND != "torch" else (lambda test: test)


def _can_export(fmt):
    return BACKEND in SUPPORTED_BACKENDS[fmt]


def _require_runtime(fmt):
    if fmt == "onnx":
        if BACKEND == "tensorflow":
            pytest.importorskip("tf2onnx", reason="ONNX export from tensorflow needs tf2onnx (keraspose[export])")
        pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime (keraspose[export])")
    if fmt == "litert":
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401
        except ImportError:
            pytest.importorskip("tensorflow", reason="no LiteRT runtime (ai-edge-litert or TensorFlow)")
    if fmt == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")


def _model_bytes(path):
    if path.endswith(".xml"):
        return os.path.getsize(path[:-4] + ".bin") + os.path.getsize(path)
    if os.path.isdir(path):
        variables = os.path.join(path, "variables")
        return sum(os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
    return os.path.getsize(path)


@pytest.fixture(scope="module")
def detector():
    return keraspose.RTMDetector.from_preset("rtmdet_nano_person")


@pytest.fixture(scope="module")
def images(data_dir):
    return [load_image(str(path)) for _, path in coco_mini_images(data_dir / "coco_mini")[:5]]


@pytest.fixture(scope="module")
def reference(detector, images):
    """keraspose's own per-prior outputs and detections on the images."""
    x, _ = detector.preprocess(images)
    raw = detector.predict_raw(x)
    boxes, scores = decode_priors(raw["cls_scores"], raw["bbox_preds"], detector.strides, detector.input_size)
    return boxes, scores, detector.predict(images, batch_size=len(images))


@pytest.fixture(scope="module")
def detector_export(detector, tmp_path_factory):
    _require_runtime(DEFAULT_FORMAT)
    out = tmp_path_factory.mktemp("det") / "rtmdet"
    return out, detector.export(out, format=DEFAULT_FORMAT)


def _check_export(detector, images, reference, out, path, max_size=1.05):
    want_boxes, want_scores, want_final = reference
    letterboxed = np.stack([letterbox(image, detector.input_size, detector.pad_value)[0] for image in images])
    runtime = ExportedDetector(out)
    n = sum(h * w for h, w in detector.level_sizes)
    for batch in (1, len(images)):  # one dynamic-batch file
        got = runtime.model(letterboxed[:batch])
        assert got["boxes"].shape == (batch, n, 4) and got["scores"].shape == (batch, n, 1)
        # Within 1e-2 px on the priors the post-processing reads (scoring above
        # the threshold). Elsewhere float32 noise of the stride-32 distances
        # reaches 2.1e-2 px (tf2onnx, LiteRT; 6.5e-5 of the 320 px input):
        # held to 1e-4 of the input size.
        box_err = np.abs(got["boxes"] - want_boxes[:batch]).max(-1)
        scored = (want_scores[:batch] > detector.score_threshold).any(-1)
        assert scored.any() and box_err[scored].max() <= 1e-2, box_err[scored].max()
        assert box_err.max() <= 1e-4 * max(detector.input_size), box_err.max()
        np.testing.assert_allclose(got["scores"], want_scores[:batch], rtol=0, atol=1e-4)
        for result, want in zip(runtime.predict(images[:batch], batch_size=batch), want_final[:batch]):
            assert len(result) == len(want) > 0
            np.testing.assert_allclose(result.boxes, want.boxes, rtol=0, atol=1e-2)
            np.testing.assert_allclose(result.scores, want.scores, rtol=0, atol=1e-4)
            np.testing.assert_array_equal(result.labels, want.labels)
            assert result.class_names == ("person",)
    # Each weight once (no folded-BatchNorm cache beside the weights).
    weights = sum(int(np.prod(v.shape)) * 4 for v in detector.weights)
    assert _model_bytes(path) < max_size * weights


def test_graph_decoding_matches_numpy(detector, images):
    # The graph's decoding (keras.ops) on the network's outputs = the numpy decoding RTMDetector.predict uses.
    from keraspose.export import DetectorExportModel

    x, _ = detector.preprocess(images[:2])
    raw = detector.predict_raw(x)
    boxes, scores = DetectorExportModel(detector).decode(
        [keras.ops.convert_to_tensor(c) for c in raw["cls_scores"]],
        [keras.ops.convert_to_tensor(p) for p in raw["bbox_preds"]],
    )
    want_boxes, want_scores = decode_priors(raw["cls_scores"], raw["bbox_preds"], detector.strides, detector.input_size)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(boxes), want_boxes)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), want_scores, rtol=1e-6, atol=0)
    assert (want_scores > detector.score_threshold).sum() > 100  # real detections, not an empty case


@long_unless_torch
def test_export_matches_keraspose(detector, images, reference, detector_export):
    _check_export(detector, images, reference, *detector_export)


@pytest.mark.long
@pytest.mark.parametrize("fmt", [f for f in EXPORT_FORMATS if f != DEFAULT_FORMAT and _can_export(f)])
def test_other_formats_match_keraspose(fmt, detector, images, reference, tmp_path):
    _require_runtime(fmt)
    path = detector.export(tmp_path / fmt, format=fmt)
    # OpenVINO's .bin also holds the graph's shape constants (1.2-1.3x for pose models).
    _check_export(detector, images, reference, tmp_path / fmt, path, max_size=1.3 if fmt == "openvino" else 1.05)


@long_unless_torch
def test_detector_metadata(detector, detector_export):
    out, path = detector_export
    assert sorted(os.listdir(out)) == sorted([METADATA_FILE, os.path.basename(path)])
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["task"] == "detection" and meta["format"] == DEFAULT_FORMAT
    assert meta["input"]["shape"] == [None, 320, 320, 3] and meta["input"]["dtype"] == "uint8"
    assert meta["input"]["channel_order"] == "rgb" and meta["preprocessing"]["network_channel_order"] == "bgr"
    assert meta["preprocessing"]["pad_value"] == detector.pad_value == 114
    np.testing.assert_allclose(meta["preprocessing"]["mean"], [103.53, 116.28, 123.675], rtol=1e-7)
    assert meta["decoding"]["strides"] == [8, 16, 32]
    assert meta["decoding"]["level_sizes"] == [[40, 40], [20, 20], [10, 10]]
    post = meta["postprocessing"]
    assert post["in_graph"] is False and post["score_threshold"] == 0.05 and post["iou_threshold"] == 0.6
    assert post["nms_pre"] == 1000 and post["max_per_image"] == 100
    assert meta["class_names"] == ["person"]
    assert meta["outputs"] == [
        {"name": "boxes", "shape": [None, 2100, 4], "units": "input pixels, xyxy"},
        {"name": "scores", "shape": [None, 2100, 1]},
    ]
    # A detector export is not a pose model, and the reverse.
    with pytest.raises(ValueError, match="is a detection model.*ExportedDetector"):
        ExportedPoseEstimator(out)


# -- refusals ---------------------------------------------------------------------


def test_refusals_leave_nothing_behind(detector, tmp_path):
    refused = next((f for f in EXPORT_FORMATS if not _can_export(f)), None)
    if refused is not None:  # the same error as for pose models
        with pytest.raises(ValueError, match=f"cannot be exported correctly from the {BACKEND} backend.*KERAS_BACKEND="):
            detector.export(tmp_path / "refused", format=refused)
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        detector.export(tmp_path / "tflite", format="tflite")
    with pytest.raises(ValueError, match="batch_size"):
        detector.export(tmp_path / "batch", format=DEFAULT_FORMAT, batch_size=0)
    assert os.listdir(tmp_path) == []


def test_cli_routes_a_detector_preset(tmp_path, capsys):
    from keraspose.cli import main

    out = tmp_path / "out"
    # Pose-model options are refused for a detector preset, nothing written.
    assert main(["export", "rtmdet_nano_person", "--format", DEFAULT_FORMAT, "--out", str(out), "--flip-test"]) == 2
    assert "--flip-test: pose-model options; 'rtmdet_nano_person' is a detector preset" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.mark.long
@pytest.mark.skipif(BACKEND != "torch", reason="one CLI export suffices: ONNX from torch is the quickest")
def test_cli_exports_a_detector_preset(tmp_path):
    from keraspose.cli import main

    out = tmp_path / "out"
    assert main(["export", "rtmdet_nano_person", "--format", "onnx", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["keraspose_export.json", "model.onnx"]
    assert load_exported(out).metadata["task"] == "detection"


# -- the runtime without Keras ------------------------------------------------------

_BLOCKED_RUN = textwrap.dedent('''
    import importlib.abc, json, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("keras", "torch", "tensorflow", "jax", "jaxlib"):
                raise ImportError("blocked for this test: " + name)
            return None

    sys.meta_path.insert(0, Blocked())
    import numpy as np
    import keraspose
    from keraspose.runtime import ExportedDetector, ExportedPoseEstimator, ExportedPoseInferencer

    pose_dir, det_dir, out, boxes, *paths = sys.argv[1:]
    boxes = np.asarray(json.loads(boxes), np.float32)
    found = ExportedDetector(det_dir).predict(paths, batch_size=2)
    posed = ExportedPoseEstimator(pose_dir).predict(paths[0], bboxes=boxes)
    people = ExportedPoseInferencer(pose_dir, det_dir).predict(paths)
    arrays = {"pose_keypoints": posed.keypoints, "pose_scores": posed.keypoint_scores}
    for i, (d, p) in enumerate(zip(found, people)):
        arrays.update({f"det_boxes{i}": d.boxes, f"det_scores{i}": d.scores, f"det_labels{i}": d.labels,
                       f"pipe_keypoints{i}": p.keypoints, f"pipe_scores{i}": p.keypoint_scores,
                       f"pipe_bboxes{i}": p.bboxes, f"pipe_bbox_scores{i}": p.bbox_scores})
    np.savez(out, **arrays)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "torch", "tensorflow", "jax"))
    print(json.dumps({"loaded": loaded}))
''')


@pytest.mark.skipif(BACKEND != "torch", reason="the exports are made from torch (ONNX, the quickest)")
def test_runtime_runs_without_keras(detector, detector_export, data_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from keraspose import PoseInferencer, TopdownEstimator

    pose = TopdownEstimator.from_preset("tinypose_coco_128x96")
    pose.export(tmp_path / "pose", format="onnx")
    paths = [str(path) for _, path in coco_mini_images(data_dir / "coco_mini")[:3]]
    boxes = [[10.0, 20.0, 200.0, 400.0], [300.0, 90.0, 480.0, 290.0]]
    script = tmp_path / "blocked.py"
    script.write_text(_BLOCKED_RUN)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(keraspose.__file__)), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "pose"), str(detector_export[0]), str(tmp_path / "out.npz"),
         json.dumps(boxes), *paths], capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1])["loaded"] == []
    got = np.load(tmp_path / "out.npz")
    # The same answers as the Keras models (the pose export has no flip test).
    want = pose.predict(load_image(paths[0]), bboxes=np.asarray(boxes, np.float32), flip_test=False)
    np.testing.assert_allclose(got["pose_keypoints"], want.keypoints, rtol=0, atol=1e-2)
    np.testing.assert_allclose(got["pose_scores"], want.keypoint_scores, rtol=0, atol=1e-4)
    pipeline = PoseInferencer(pose, detector)
    for i, (found, people) in enumerate(zip(detector.predict(paths), pipeline.predict(paths, flip_test=False))):
        assert len(got[f"det_boxes{i}"]) == len(found) > 0
        np.testing.assert_allclose(got[f"det_boxes{i}"], found.boxes, rtol=0, atol=1e-2)
        np.testing.assert_allclose(got[f"det_scores{i}"], found.scores, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(got[f"det_labels{i}"], found.labels)
        assert len(got[f"pipe_keypoints{i}"]) == len(people) > 0
        np.testing.assert_allclose(got[f"pipe_bboxes{i}"], people.bboxes, rtol=0, atol=1e-2)
        np.testing.assert_allclose(got[f"pipe_bbox_scores{i}"], people.bbox_scores, rtol=0, atol=1e-4)
        # Crops of boxes ~1e-4 px apart: a crop pixel's uint8 rounding may flip
        # (measured over 10 images: keypoints 9.2e-5 px, scores 1.7e-3).
        np.testing.assert_allclose(got[f"pipe_keypoints{i}"], people.keypoints, rtol=0, atol=1e-2)
        np.testing.assert_allclose(got[f"pipe_scores{i}"], people.keypoint_scores, rtol=0, atol=5e-3)
