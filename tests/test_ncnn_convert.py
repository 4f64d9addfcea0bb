"""PP-TinyPose from its ncnn export: LiteHRNetBackbone + 1x1 conv reproduce the real model's heatmaps.

The golden pairs (``input_nchw`` -> ``heatmaps``) were produced by the
original ncnn runtime (see shared/reference/README.md, tinypose/).
"""

import keras
import numpy as np
import pytest

from keraspose import backend
from keraspose.convert.mmpose import ConversionError
from keraspose.convert.ncnn import convert_tinypose, load_ncnn_weights, load_tinypose, parse_param
from keraspose.layers import ConvBN
from keraspose.models.litehrnet import LiteHRNetBackbone, tinypose_extra

SIZES = ("256x192", "128x96")


def _files(weights_dir, size):
    d = weights_dir / "pp_tinypose"
    return d / f"tinypose_{size}.param", d / f"tinypose_{size}.bin"


@pytest.fixture(scope="module", params=SIZES)
def converted(request, weights_dir, reference_dir):
    size = request.param
    tp = load_tinypose(*_files(weights_dir, size))
    ref = np.load(reference_dir / "tinypose" / f"tinypose_{size}_crops.npz")
    return size, tp, ref


def _heatmaps_nchw(tp, x_nchw):
    """Backbone + the 1x1 heatmap conv (as a matrix product) on channels-first input."""
    net = tp["backbone"]
    x = x_nchw if net.data_format == "channels_first" else x_nchw.transpose(0, 2, 3, 1)
    with backend.inference_mode():
        (feat,) = net(keras.ops.convert_to_tensor(x))
    feat = keras.ops.convert_to_numpy(feat)
    if net.data_format == "channels_first":
        feat = feat.transpose(0, 2, 3, 1)
    heatmaps = feat @ tp["final_kernel"][0, 0] + tp["final_bias"]
    return heatmaps.transpose(0, 3, 1, 2)


def test_heatmaps_match_the_ncnn_runtime(converted):
    size, tp, ref = converted
    h, w = (int(v) for v in size.split("x"))
    assert tp["input_size"] == (w, h)
    assert tp["final_kernel"].shape == (1, 1, 40, 17) and tp["final_bias"].shape == (17,)
    heatmaps = _heatmaps_nchw(tp, ref["input_nchw"])
    assert heatmaps.shape == ref["heatmaps"].shape == (len(ref["input_nchw"]), 17, h // 4, w // 4)
    # Measured: 2.8e-6 (256x192) and 4.5e-6 (128x96) on torch and TensorFlow.
    np.testing.assert_allclose(heatmaps, ref["heatmaps"], rtol=0, atol=1e-4)
    # Same peaks, so the same decoded keypoints.
    flat = heatmaps.reshape(*heatmaps.shape[:2], -1)
    ref_flat = ref["heatmaps"].reshape(flat.shape)
    np.testing.assert_array_equal(flat.argmax(-1), ref_flat.argmax(-1))


def test_every_ncnn_convolution_is_loaded(weights_dir):
    param, weights = _files(weights_dir, "128x96")
    layers = parse_param(param)
    backbone = LiteHRNetBackbone(tinypose_extra(), norm=False)
    final = ConvBN(17, 1, norm=False, use_bias=True, name="final_layer")
    df = backbone.data_format
    final(backbone(np.zeros((1, 3, 128, 96) if df == "channels_first" else (1, 128, 96, 3), "float32"))[0])
    loaded = load_ncnn_weights(backbone, final, param, weights)
    conv_names = [l["name"] for l in layers if l["type"] in ("Convolution", "ConvolutionDepthWise")]
    assert len(conv_names) == 269
    assert sorted(name for _, name in loaded) == sorted(conv_names)
    # One ncnn conv per Keras conv: backbone's and the final layer.
    assert len(loaded) == len(backbone.weights) // 2 + 1
    assert loaded[-1][1] == layers[-1]["name"] == "Conv_268"


def _edited_param(tmp_path, weights_dir, edit):
    param, weights = _files(weights_dir, "128x96")
    text = edit(param.read_text())
    path = tmp_path / "edited.param"
    path.write_text(text)
    return path, weights


def test_graph_mismatch_names_the_layer(tmp_path, weights_dir):
    # A fused ReLU removed from one conv: the walker stops at the blob that conv reads.
    def drop_relu(text):
        line = next(l for l in text.splitlines() if l.startswith("Convolution") and " Conv_12 " in l)
        return text.replace(line, line.replace(" 9=1", ""))

    param, weights = _edited_param(tmp_path, weights_dir, drop_relu)
    with pytest.raises(ConversionError, match=r"Conv_12 .*"):
        load_tinypose(param, weights)


def test_unused_ncnn_layer_is_an_error(tmp_path, weights_dir):
    # An extra layer nobody in the Keras model accounts for.
    def add_layer(text):
        lines = text.splitlines()
        n_layers, n_blobs = (int(v) for v in lines[1].split())
        lines[1] = f"{n_layers + 1} {n_blobs + 1}"
        lines.append("ReLU                     Relu_extra               1 1 relu_143.tmp_0 extra_out")
        return "\n".join(lines) + "\n"

    param, weights = _edited_param(tmp_path, weights_dir, add_layer)
    with pytest.raises(ConversionError, match="Relu_extra"):
        load_tinypose(param, weights)


def test_truncated_bin_is_an_error(tmp_path, weights_dir):
    param, weights = _files(weights_dir, "128x96")
    short = tmp_path / "short.bin"
    short.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ConversionError, match="ends"):
        load_tinypose(param, short)


def test_convert_tinypose_builds_a_topdown_estimator(weights_dir, reference_dir):
    model = convert_tinypose(*_files(weights_dir, "128x96"))
    ref = np.load(reference_dir / "tinypose" / "tinypose_128x96_crops.npz")
    assert isinstance(model.backbone, LiteHRNetBackbone)
    with backend.inference_mode():
        heatmaps = keras.ops.convert_to_numpy(model(ref["input_nchw"].transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(heatmaps.transpose(0, 3, 1, 2), ref["heatmaps"], rtol=0, atol=1e-4)
