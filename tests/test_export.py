"""Deployment export (issue 12): the exported file, run in its own runtime, gives
the reference keypoints.

References: PP-TinyPose's own runtime (ncnn) on coco_mini people
(``tinypose/tinypose_128x96_crops.npz``) and MMPose's whole inference of the
tiny HRNet with and without flip test (``models/tiny_hrnet_coco_predict.json``),
both in image pixels: the exported keypoints are in crop pixels and go back
through ``crop_to_image``. The graph decoders are checked against the numpy
codecs on heatmaps/vectors that hit every edge rule.

ONNX is exported from every backend, SavedModel from TensorFlow and JAX, LiteRT
from TensorFlow (run where ai-edge-litert or TensorFlow's interpreter exists).
"""

import json
import os
from collections import defaultdict

import keras
import numpy as np
import pytest

import keraspose
from keraspose import TopdownEstimator
from keraspose.codecs import MSRAHeatmap, SimCCLabel, UDPHeatmap
from keraspose.export import (EXPORT_FORMATS, METADATA_FILE, SUPPORTED_BACKENDS, check_format_and_backend,
                              check_precision)
from keraspose.models.topdown_estimator import crop_to_image
from keraspose.runtime import load_exported
from keraspose.transforms import flip_heatmaps

BACKEND = keras.config.backend()


def _weights_bytes(model):
    return sum(int(np.prod(v.shape)) * 4 for v in model.weights)


def _can_export(fmt):
    return BACKEND in SUPPORTED_BACKENDS[fmt]


# The cheapest format of each backend runs by default (the whole default run of
# this file stays under ~40 s per backend); the others are @long. ONNX from
# TensorFlow goes through tf2onnx (the `export` extra).
DEFAULT_FORMAT = "onnx" if BACKEND == "torch" else "tf_saved_model"
_ONNX_CONVERTER = {"tensorflow": "tf2onnx"}.get(BACKEND)


# SavedModel exports from TensorFlow/JAX take 20-60 s each on the 2-core box:
# there only the tiny HRNet's flip-test export runs by default.
long_unless_torch = pytest.mark.long if BACKEND != "torch" else pytest.mark.usefixtures()
long_on_jax = pytest.mark.long if BACKEND == "jax" else pytest.mark.usefixtures()


def _require_exporter(fmt):
    if fmt == "onnx" and _ONNX_CONVERTER:
        pytest.importorskip(_ONNX_CONVERTER, reason=f"ONNX export from {BACKEND} needs {_ONNX_CONVERTER} (pip install 'keraspose[export]')")
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime (pip install 'keraspose[export]')")


def _model_bytes(path):
    """The weights-bearing part of an export: the file, or a SavedModel's variables."""
    if path.endswith(".xml"):  # the .bin holds the tensors; the .xml is the graph's text
        return os.path.getsize(path[:-4] + ".bin")
    if os.path.isdir(path):
        variables = os.path.join(path, "variables")
        return sum(os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
    return os.path.getsize(path)


def _other_formats():
    return [
        pytest.param(f, marks=pytest.mark.long)
        for f in ("onnx", "tf_saved_model") if f != DEFAULT_FORMAT and _can_export(f)
    ]


# -- graph decoding = the numpy codecs ------------------------------------------


def _edge_heatmaps(rng, b=3, k=6, h=8, w=6):
    """Heatmaps whose maxima sit on every edge case of the quarter-pixel rule."""
    hm = rng.uniform(0.0, 0.5, (b, k, h, w)).astype(np.float32)
    peaks = [(0, 0), (w - 1, h - 1), (1, 3), (w - 2, 1), (3, 4), (2, h - 2)]
    for i in range(b):
        for j in range(k):
            x, y = peaks[(i + j) % len(peaks)]
            hm[i, j, y, x] = 2.0
    hm[0, 1] = -rng.uniform(0.1, 1.0, (h, w))  # no positive value: keypoint at -1
    hm[1, 2, 4, 3] = 2.0
    hm[1, 2, 4, 4] = hm[1, 2, 4, 2] = 1.0  # equal neighbours: no shift
    return hm


def test_msra_decode_graph_matches_batch_decode():
    codec = MSRAHeatmap((24, 32), (6, 8), sigma=2.0)
    hm = _edge_heatmaps(np.random.default_rng(0))
    want_kp, want_sc = codec.batch_decode(hm)
    kp, sc = codec.decode_graph(keras.ops.convert_to_tensor(np.transpose(hm, (0, 2, 3, 1))))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kp), want_kp)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(sc), want_sc)
    assert (want_kp[0, 1] == -codec.scale_factor).all()  # the undetected keypoint took part


def test_simcc_decode_graph_matches_decode():
    codec = SimCCLabel((24, 32), simcc_split_ratio=2.0, sigma=(4.9, 5.66))
    rng = np.random.default_rng(1)
    sx, sy = rng.normal(size=(2, 5, 48)).astype(np.float32), rng.normal(size=(2, 5, 64)).astype(np.float32)
    sx[0, 0] = -np.abs(sx[0, 0]) - 0.1  # not positive: at -1
    want_kp, want_sc = codec.batch_decode({"simcc_x": sx, "simcc_y": sy})
    kp, sc = codec.decode_graph({"simcc_x": keras.ops.convert_to_tensor(sx), "simcc_y": keras.ops.convert_to_tensor(sy)})
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kp), want_kp)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(sc), want_sc)
    assert (want_kp[0, 0] == -0.5).all()


def test_udp_and_dark_decoding_refuse_to_export():
    with pytest.raises(NotImplementedError, match="include_decoding=False"):
        UDPHeatmap((24, 32), (6, 8)).decode_graph(None)
    with pytest.raises(NotImplementedError, match="DARK"):
        MSRAHeatmap((24, 32), (6, 8), sigma=2.0, unbiased=True).decode_graph(None)


# -- exported files against the references --------------------------------------


@pytest.fixture(scope="module")
def tinypose():
    return TopdownEstimator.from_preset("tinypose_coco_128x96")


@pytest.fixture(scope="module")
def tinypose_crops(tinypose, reference_dir):
    ref = np.load(reference_dir / "tinypose/tinypose_128x96_crops.npz")
    crops, centers, scales = [], [], []
    for i, image_file in enumerate(ref["image_file"]):
        image = keraspose.load_image(str(reference_dir.parent / "data/coco_mini/train2017" / str(image_file)))
        c, ctr, scl = tinypose.crop_people(image, ref["bbox_xyxy"][i : i + 1])
        crops.append(c)
        centers.append(ctr)
        scales.append(scl)
    return np.concatenate(crops), np.concatenate(centers), np.concatenate(scales), ref


@pytest.fixture(scope="module")
def tinypose_export(tinypose, tmp_path_factory):
    _require_exporter(DEFAULT_FORMAT)
    out = tmp_path_factory.mktemp("export") / "tinypose"
    path = tinypose.export(out, format=DEFAULT_FORMAT)
    return out, path


def _check_tinypose(tinypose, tinypose_crops, out, path, max_size=1.05):
    crops, centers, scales, ref = tinypose_crops
    runtime = load_exported(out)
    want_kp, want_sc = tinypose.predict_crops(crops, centers, scales, flip_test=False)
    for batch in (1, len(crops)):  # one dynamic-batch file
        got = runtime(crops[:batch])
        assert got["keypoints"].shape == (batch, 17, 2) and got["scores"].shape == (batch, 17)
        image_kp = crop_to_image(got["keypoints"], centers[:batch], scales[:batch], tinypose.input_size)
        # The original runtime's keypoints (ncnn), with test_tinypose's tolerances...
        np.testing.assert_allclose(image_kp, ref["keypoints"][:batch], atol=1e-2)
        np.testing.assert_allclose(got["scores"], ref["scores"][:batch], rtol=1e-3, atol=1e-4)
        # ... and keraspose's own predict on the same crops (issue 12's acceptance).
        np.testing.assert_allclose(image_kp, want_kp[:batch], rtol=0, atol=1e-2)
        np.testing.assert_allclose(got["scores"], want_sc[:batch], rtol=0, atol=1e-4)
    # Each weight once: no folded-BatchNorm cache baked in beside the weights.
    assert _model_bytes(path) < max_size * _weights_bytes(tinypose)


@long_unless_torch
def test_export_matches_ncnn_and_keraspose(tinypose, tinypose_crops, tinypose_export):
    _check_tinypose(tinypose, tinypose_crops, *tinypose_export)


@pytest.mark.long
@pytest.mark.parametrize("fmt", [f for f in EXPORT_FORMATS if f != DEFAULT_FORMAT and _can_export(f)])
def test_other_formats_match_ncnn_and_keraspose(fmt, tinypose, tinypose_crops, tmp_path):
    _require_exporter(fmt)
    if fmt == "litert":
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401
        except ImportError:
            pytest.importorskip("tensorflow", reason="no LiteRT runtime (ai-edge-litert or TensorFlow) installed")
    if fmt == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")
    path = tinypose.export(tmp_path / fmt, format=fmt)
    _check_tinypose(tinypose, tinypose_crops, tmp_path / fmt, path)


@long_unless_torch
def test_export_metadata_travels_with_the_file(tinypose, tinypose_export):
    out, path = tinypose_export
    assert sorted(os.listdir(out)) == sorted([METADATA_FILE, os.path.basename(path)])
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["format"] == DEFAULT_FORMAT and meta["model_file"] == os.path.basename(path)
    assert meta["task"] == "pose"
    assert meta["input"]["shape"] == [None, 128, 96, 3] and meta["input"]["dtype"] == "uint8"
    assert meta["input"]["channel_order"] == "rgb"
    np.testing.assert_allclose(meta["preprocessing"]["mean"], [123.675, 116.28, 103.53], rtol=1e-7)
    np.testing.assert_allclose(meta["preprocessing"]["std"], [58.395, 57.12, 57.375], rtol=1e-7)
    assert meta["keypoint_names"][:3] == ["nose", "left_eye", "right_eye"] and len(meta["keypoint_names"]) == 17
    assert [1, 2] in meta["flip_pairs"] and meta["flip_indices"][1] == 2
    assert [15, 13] in meta["skeleton"] or [13, 15] in meta["skeleton"]
    assert meta["decoding"]["codec"] == "MSRAHeatmap" and meta["decoding"]["flip_test"] is False
    assert [o["name"] for o in meta["outputs"]] == ["keypoints", "scores"]
    assert meta["crop"]["bbox_padding"] == 1.25
    assert meta["precision"] == "float32" and meta["quantization"] is None


@pytest.fixture(scope="module")
def tiny_hrnet(reference_dir):
    from keraspose.convert import from_mmpose

    d = reference_dir / "models"
    return from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")


def _mmpose_people(model, reference_dir, mode):
    instances = json.loads((reference_dir / "models/tiny_hrnet_coco_predict.json").read_text())["instances"][mode]
    by_image = defaultdict(list)
    for inst in instances:
        by_image[inst["image_file"]].append(inst)
    crops, centers, scales, kps, scores = [], [], [], [], []
    for f in sorted(by_image):
        image = keraspose.load_image(str(reference_dir.parent / "data/mmpose_tests/coco" / f))
        c, ctr, scl = model.crop_people(image, np.array([i["bbox_xyxy"] for i in by_image[f]], np.float32))
        crops.append(c)
        centers.append(ctr)
        scales.append(scl)
        kps += [i["keypoints"] for i in by_image[f]]
        scores += [i["keypoint_scores"] for i in by_image[f]]
    return np.concatenate(crops), np.concatenate(centers), np.concatenate(scales), np.array(kps), np.array(scores)


@pytest.mark.parametrize("fmt", [DEFAULT_FORMAT] + _other_formats())
def test_flip_test_export_matches_mmpose(fmt, tiny_hrnet, reference_dir, tmp_path):
    _require_exporter(fmt)
    crops, centers, scales, want_kp, want_sc = _mmpose_people(tiny_hrnet, reference_dir, "flip")
    tiny_hrnet.export(tmp_path / "out", format=fmt, flip_test=True)
    runtime = load_exported(tmp_path / "out")
    for batch in (1, 5):
        got = runtime(crops[:batch])
        image_kp = crop_to_image(got["keypoints"], centers[:batch], scales[:batch], tiny_hrnet.input_size)
        np.testing.assert_allclose(image_kp, want_kp[:batch], rtol=0, atol=1e-2)
        np.testing.assert_allclose(got["scores"], want_sc[:batch], rtol=1e-4, atol=1e-6)


@long_on_jax
def test_raw_heatmaps_export_matches_mmpose_network(tiny_hrnet, reference_dir, tmp_path):
    # Without preprocessing and decoding: normalised crops in, heatmaps out.
    io = np.load(reference_dir / "models/tiny_hrnet_coco_io.npz")
    _require_exporter(DEFAULT_FORMAT)
    tiny_hrnet.export(tmp_path / "raw", format=DEFAULT_FORMAT, include_preprocessing=False, include_decoding=False)
    runtime = load_exported(tmp_path / "raw")
    assert runtime.metadata["input"]["dtype"] == "float32" and runtime.output_names == ["heatmaps"]
    got = runtime(np.ascontiguousarray(np.transpose(io["inputs_nchw"], (0, 2, 3, 1))))["heatmaps"]
    want = np.transpose(io["heatmaps_nchw"], (0, 2, 3, 1))
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_heatmap_flip_merge_graph_matches_numpy(tiny_hrnet):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 2, 8, 6, 17)).astype(np.float32)
    flip = tiny_hrnet.metainfo.flip_indices
    want = tiny_hrnet.head.merge_flip(np.transpose(a, (0, 3, 1, 2)), np.transpose(b, (0, 3, 1, 2)), flip,
                                      flip_mode="heatmap", shift_heatmap=True)
    got = tiny_hrnet.head.merge_flip_graph(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b), flip,
                                           flip_mode="heatmap", shift_heatmap=True)
    np.testing.assert_allclose(np.transpose(keras.ops.convert_to_numpy(got), (0, 3, 1, 2)), want, atol=1e-6)
    # and the merge is not trivially the identity: it shifts, swaps and mirrors.
    unshifted = flip_heatmaps(np.transpose(b, (0, 3, 1, 2)), flip, shift_heatmap=False)
    assert np.abs((np.transpose(a, (0, 3, 1, 2)) + unshifted) * 0.5 - want).max() > 0.1


# -- refusals ---------------------------------------------------------------------


def test_unsupported_pairs_name_the_backend_to_use():
    with pytest.raises(ValueError, match="wrong values at batch > 1.*KERAS_BACKEND=tensorflow"):
        check_format_and_backend("litert", "torch")
    with pytest.raises(ValueError, match="from the jax backend.*KERAS_BACKEND=torch"):
        check_format_and_backend("onnx", "jax")
    with pytest.raises(ValueError, match="from the torch backend.*KERAS_BACKEND=tensorflow"):
        check_format_and_backend("tf_saved_model", "torch")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        check_format_and_backend("tflite")
    assert set(EXPORT_FORMATS) == {"onnx", "tf_saved_model", "litert", "openvino"}


def test_refused_export_leaves_nothing_behind(tiny_hrnet, tmp_path):
    from keraspose.codecs import UDPHeatmap as Udp

    codec = tiny_hrnet.head.codec
    tiny_hrnet.head.codec = Udp(tiny_hrnet.input_size, codec.heatmap_size)
    try:
        with pytest.raises(NotImplementedError, match="UDPHeatmap"):
            tiny_hrnet.export(tmp_path / "udp", format=DEFAULT_FORMAT)
    finally:
        tiny_hrnet.head.codec = codec
    assert not os.path.exists(tmp_path / "udp")
    assert os.listdir(tmp_path) == []
    if not _can_export("litert"):
        with pytest.raises(ValueError, match=f"from the {BACKEND} backend"):
            tiny_hrnet.export(tmp_path / "lite", format="litert")
        assert os.listdir(tmp_path) == []


def test_unsupported_precisions_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="not available for format='tf_saved_model'.*formats that can: onnx, litert"):
        check_precision("tf_saved_model", "float16")
    with pytest.raises(ValueError, match="not available for format='openvino'"):
        check_precision("openvino", "int8")
    with pytest.raises(ValueError, match="precision: 'float32', 'float16' or 'int8', got 'bfloat16'"):
        check_precision("litert", "bfloat16")
    with pytest.raises(ValueError, match="pass calibration=.*calibration_crops"):
        check_precision("onnx", "int8")
    with pytest.raises(ValueError, match="only ONNX int8.*LiteRT int8 is dynamic range"):
        check_precision("litert", "int8", calibration=np.zeros((1, 128, 96, 3), np.uint8))
    for fmt, precision in (("litert", "float16"), ("litert", "int8"), ("onnx", "float16"), ("onnx", "float32")):
        check_precision(fmt, precision)


# -- the command ------------------------------------------------------------------


def test_cli_refuses_a_pair_before_loading_anything(tmp_path, capsys):
    from keraspose.cli import main

    refused = next((f for f in EXPORT_FORMATS if not _can_export(f)), None)
    if refused is None:
        pytest.skip(f"{BACKEND} writes every format")
    assert main(["export", "tinypose_coco_128x96", "--format", refused, "--out", str(tmp_path / "out")]) == 2
    assert f"from the {BACKEND} backend" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_cli_refuses_a_precision_before_loading_anything(tmp_path, capsys):
    from keraspose.cli import main

    out = str(tmp_path / "out")
    assert main(["export", "tinypose_coco_128x96", "--format", "tf_saved_model", "--precision", "int8",
                 "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--precision int8 is not available for --format tf_saved_model" in err or f"from the {BACKEND}" in err
    if _can_export("onnx"):
        assert main(["export", "tinypose_coco_128x96", "--format", "onnx", "--precision", "int8", "--out", out]) == 2
        assert "--calibration-ann-file JSON --calibration-image-root DIR" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(BACKEND != "torch", reason="one CLI export suffices: ONNX from torch is the quickest")
def test_cli_export_writes_model_and_metadata(tmp_path, capsys):
    from keraspose.cli import main

    out = tmp_path / "tp"
    assert main(["export", "tinypose_coco_128x96", "--format", "onnx", "--out", str(out), "--no-decoding"]) == 0
    assert sorted(os.listdir(out)) == ["keraspose_export.json", "model.onnx"]
    runtime = load_exported(out)
    assert runtime.output_names == ["heatmaps"]
    assert runtime(np.zeros((2, 128, 96, 3), np.uint8))["heatmaps"].shape == (2, 32, 24, 17)
    # An existing --out is refused, not half-overwritten.
    assert main(["export", "tinypose_coco_128x96", "--format", "onnx", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


@long_unless_torch
def test_runtime_predict_matches_mmpose(tiny_hrnet, reference_dir, tmp_path):
    from keraspose.runtime import OnnxPoseEstimator

    _require_exporter(DEFAULT_FORMAT)
    instances = json.loads((reference_dir / "models/tiny_hrnet_coco_predict.json").read_text())["instances"]["noflip"]
    by_image = defaultdict(list)
    for inst in instances:
        by_image[inst["image_file"]].append(inst)
    images = sorted(by_image)
    tiny_hrnet.export(tmp_path / "e", format=DEFAULT_FORMAT)
    results = OnnxPoseEstimator(tmp_path / "e").predict(
        [reference_dir.parent / "data/mmpose_tests/coco" / f for f in images],
        bboxes=[np.array([i["bbox_xyxy"] for i in by_image[f]]) for f in images], batch_size=4,
    )
    for f, result in zip(images, results):
        np.testing.assert_allclose(result.keypoints, [i["keypoints"] for i in by_image[f]], rtol=0, atol=1e-2)
        np.testing.assert_allclose(result.keypoint_scores, [i["keypoint_scores"] for i in by_image[f]],
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(DEFAULT_FORMAT != "onnx", reason="the ONNX export fixture is the torch run's (SavedModel elsewhere)")
def test_float16_onnx_stays_close_to_the_reference(tinypose, tinypose_crops, tinypose_export, tmp_path):
    from keraspose.export import quantize_onnx_export

    out, _ = tinypose_export
    path = quantize_onnx_export(out, tmp_path / "fp16", "float16")
    crops, centers, scales, ref = tinypose_crops
    runtime = load_exported(tmp_path / "fp16")
    assert runtime.metadata["precision"] == "float16"
    got = runtime(crops)
    # export(precision="float16") is the same conversion in one step.
    direct = load_exported(os.path.dirname(tinypose.export(tmp_path / "direct", format="onnx", precision="float16")))
    assert direct.metadata["precision"] == "float16" and sorted(os.listdir(tmp_path / "direct")) == sorted(
        [METADATA_FILE, "model.onnx"])
    np.testing.assert_array_equal(direct(crops)["keypoints"], got["keypoints"])
    image_kp = crop_to_image(got["keypoints"], centers, scales, tinypose.input_size)
    # Against PP-TinyPose's own runtime (ncnn, float32). float16 shifts the
    # heatmaps enough to move an argmax to a neighbouring heatmap pixel now
    # and then (measured: one keypoint of the 32x24 heatmaps, 9.7 image px =
    # 0.9 heatmap px; scores up to 0.11); on average it stays sub-pixel.
    heatmap_px = (scales[:, 0] / 24.0)[:, None, None]
    error = np.abs(image_kp - ref["keypoints"]) / heatmap_px
    confident = ref["scores"] > 0.3
    assert error[confident].max() <= 1.5 and error[confident].mean() < 0.1, (error.max(), error.mean())
    assert np.abs(got["scores"] - ref["scores"]).max() < 0.2
    assert np.abs(got["scores"] - ref["scores"]).mean() < 0.01
    assert os.path.getsize(path) < 0.55 * os.path.getsize(out / "model.onnx")
    with pytest.raises(ValueError, match="calibration"):
        quantize_onnx_export(out, tmp_path / "int8", "int8")
    with pytest.raises(ValueError, match="precision"):
        quantize_onnx_export(out, tmp_path / "bf16", "bfloat16")
    assert not (tmp_path / "int8").exists() and not (tmp_path / "bf16").exists()


# LiteRT float16 / int8 (TensorFlow's TFLiteConverter; issue 12's "each with its
# measured accuracy cost"). Against keraspose's own predict on the coco_mini
# crops, in heatmap pixels (32x24 heatmaps), keypoints scoring > 0.3. Measured
# (TinyPose 128x96, ai-edge-litert 2.3, batch 1 and 5; means over the batch of
# 5): float16 max 1.0 heatmap px (an argmax moved to the neighbouring pixel),
# mean 0.051; scores max 0.197, mean 0.012. int8 (dynamic range) max 0.5 px,
# mean 0.024; scores max 0.022, mean 0.0054. File / float32 weights: float16
# 0.546x, int8 0.360x (tensors under 1024 values stay float32: 0.29 MB; the
# graph and the per-channel scales: 0.35 MB).
_LITERT_TOLERANCE = {
    # precision: (max, mean heatmap px; max, mean score; file / float32 weights)
    "float16": (1.5, 0.1, 0.3, 0.02, 0.6),
    "int8": (1.0, 0.05, 0.05, 0.015, 0.4),
}


@pytest.mark.long  # two LiteRT conversions: ~25 s each on the 2-core box
@pytest.mark.skipif(not _can_export("litert"), reason="LiteRT is exported from TensorFlow")
@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_quantized_litert_stays_close_to_keraspose(precision, tinypose, tinypose_crops, tmp_path):
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        pytest.importorskip("tensorflow.lite", reason="no LiteRT runtime (ai-edge-litert or TensorFlow) installed")
    crops, centers, scales, _ = tinypose_crops
    path = tinypose.export(tmp_path / precision, format="litert", precision=precision)
    runtime = load_exported(tmp_path / precision)
    assert runtime.metadata["precision"] == precision and "TFLiteConverter" in runtime.metadata["quantization"]
    want_kp, want_sc = tinypose.predict_crops(crops, centers, scales, flip_test=False)
    max_px, mean_px, max_score, mean_score, max_size = _LITERT_TOLERANCE[precision]
    five = np.concatenate([crops, crops])[:5]  # one dynamic-batch file: batch 1 and 5
    index = np.arange(5) % len(crops)
    for batch in (1, 5):
        got = runtime(five[:batch])
        assert got["keypoints"].dtype == np.float32 and got["keypoints"].shape == (batch, 17, 2)
        rows = index[:batch]
        image_kp = crop_to_image(got["keypoints"], centers[rows], scales[rows], tinypose.input_size)
        heatmap_px = (scales[rows, 0] / 24.0)[:, None, None]
        error = np.abs(image_kp - want_kp[rows]) / heatmap_px
        confident = want_sc[rows] > 0.3
        score_error = np.abs(got["scores"] - want_sc[rows])
        assert error[confident].max() <= max_px and score_error.max() < max_score, (error.max(), score_error.max())
    # The means over the five people (one person alone can sit at the tail).
    assert error[confident].mean() < mean_px and score_error.mean() < mean_score, (error[confident].mean(),
                                                                                   score_error.mean())
    assert os.path.getsize(path) < max_size * _weights_bytes(tinypose)
