"""RTMDet against MMDetection 3.3.0 (fixtures from tools/make_rtmdet_fixture.py).

The fixtures hold MMDetection's own outputs for MMPose's two person
detectors (rtmdet_nano_320 and rtmdet_m_640, BN instead of SyncBN) on real
coco_mini images: the network images its test pipeline made, the raw head
outputs, and the boxes its predict(rescale=True) returned. The weights are
regenerated here from the same seed (tests/rtmdet_weights.py), plus the
stored BatchNorm statistics.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keraspose import DetectionResult, RTMDetector, TopdownEstimator
from keraspose.models.rtmdet import CSPNeXtPAFPN, RTMDetSepBNHead, rtmdet_config
from rtmdet_weights import synthetic_state_dict

FIXTURES = Path(__file__).parent / "fixtures"
BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def torch_shapes(model):
    """``{MMDetection key: torch shape}`` of everything checkpoint_keys names."""
    shapes = {}
    for layer, conv, bn in model.checkpoint_keys():
        kh, kw, cin, cout = layer.kernel.shape
        shapes[f"{conv}.weight"] = (cout, cin, kh, kw)
        if layer.bias is not None:
            shapes[f"{conv}.bias"] = (cout,)
        if bn is not None:
            for field in BN_FIELDS:
                shapes[f"{bn}.{field}"] = (cout,)
    return shapes


def load_state_dict(model, state):
    for layer, conv, bn in model.checkpoint_keys():
        layer.kernel.assign(state[f"{conv}.weight"].transpose(2, 3, 1, 0))
        if layer.bias is not None:
            layer.bias.assign(state[f"{conv}.bias"])
        if bn is not None:
            for field, attr in BN_FIELDS.items():
                getattr(layer, attr).assign(state[f"{bn}.{field}"])


def load_fixture_weights(model, fixture):
    state = synthetic_state_dict(
        torch_shapes(model), int(fixture["seed"]), model.head.share_conv,
        float(fixture["cls_bias"]), float(fixture["reg_bias"]),
    )
    state.update({k[3:]: fixture[k] for k in fixture.files if k.startswith("bn:")})
    load_state_dict(model, state)
    return model


_MODELS = {}


def fixture_model(size):
    """The person detector of ``size`` with the fixture's weights (built once per module: m takes seconds)."""
    if size not in _MODELS:
        fixture = np.load(FIXTURES / f"rtmdet_{size}_person.npz")
        _MODELS[size] = (load_fixture_weights(RTMDetector.build_person(size), fixture), fixture)
    return _MODELS[size]


# RTMDet-m (24.7M parameters, 640x640) takes ~10 s to build and run on 2 threads.
@pytest.fixture(scope="module", params=["nano", pytest.param("m", marks=pytest.mark.slow)])
def case(request):
    yield (request.param, *fixture_model(request.param))


@pytest.fixture(scope="module", autouse=True)
def _release_models():
    yield
    _MODELS.clear()


def without_build_config(config):
    if isinstance(config, dict):
        return {k: without_build_config(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, list):
        return [without_build_config(v) for v in config]
    return config


def normalised(model, padded_bgr):
    return (padded_bgr.astype(np.float32) - np.float32(model.mean)) / np.float32(model.std)


def assert_raw_close(raw, fixture):
    for kind in ("cls_scores", "bbox_preds"):
        for level, ours in enumerate(raw[kind]):
            ref = fixture[f"{kind}_{level}"]
            assert ours.shape == ref.shape, (kind, level)
            err = np.abs(ours - ref).max()
            assert err <= 1e-4 * np.abs(ref).max(), (kind, level, err, np.abs(ref).max())


def assert_detections_equal(results, fixture, prefix=""):
    """Same boxes (1e-2 px), scores and labels; the order may differ only between near-equal scores."""
    for b, result in enumerate(results):
        boxes, scores = fixture[f"{prefix}boxes_{b}"], fixture[f"{prefix}scores_{b}"]
        assert len(result) == len(boxes) > 0, (b, len(result), len(boxes))
        assert result.boxes.dtype == np.float32 and result.boxes.shape[1] == 4
        distance = np.abs(result.boxes[:, None, :] - boxes[None, :, :]).max(-1)
        match = distance.argmin(0)  # ours for each reference box
        assert len(set(match.tolist())) == len(boxes), f"image {b}: boxes do not pair up one to one"
        np.testing.assert_allclose(result.boxes[match], boxes, atol=1e-2)
        np.testing.assert_allclose(result.scores[match], scores, atol=1e-5)
        np.testing.assert_array_equal(result.labels[match], fixture[f"{prefix}labels_{b}"])
        # Best first; a reordering is only allowed within float noise of a tie.
        assert np.all(np.diff(result.scores) <= 0)
        np.testing.assert_allclose(result.scores, scores, atol=1e-5)


def test_parameter_counts_equal_mmdetection(case):
    # MMDetection 3.3.0's sum(p.numel() for p in model.parameters()) (the
    # fixtures' tools script prints them); the shared convs of "m" count once.
    size, model, _ = case
    expected = {"nano": 994_423, "m": 24_663_447}[size]
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == expected


def test_checkpoint_keys_use_mmdetection_names():
    model = fixture_model("nano")[0]
    keys = model.checkpoint_keys()
    # The nano ONNX export has one Conv per entry (123), named by module path.
    assert len(keys) == 123
    conv_names = [conv for _, conv, _ in keys]
    for name in (
        "backbone.stem.0.conv", "backbone.stage1.0.depthwise_conv.conv", "backbone.stage4.1.conv2.conv",
        "backbone.stage4.2.attention.fc", "backbone.stage1.1.blocks.0.conv2.pointwise_conv.conv",
        "neck.reduce_layers.0.conv", "neck.top_down_blocks.1.final_conv.conv",
        "neck.downsamples.0.depthwise_conv.conv", "neck.out_convs.2.pointwise_conv.conv",
        "bbox_head.cls_convs.0.0.depthwise_conv.conv", "bbox_head.rtm_cls.0", "bbox_head.rtm_reg.2",
    ):
        assert name in conv_names, name
    assert len(set(conv_names)) == len(conv_names)


def test_raw_outputs_match_mmdetection(case):
    _, model, fixture = case
    raw = model.predict_raw(normalised(model, fixture["padded_bgr"]))
    assert_raw_close(raw, fixture)


def test_preprocess_matches_mmdetection_pipeline(case, data_dir):
    _, model, fixture = case
    paths = [str(data_dir / "coco_mini" / "train2017" / name) for name in fixture["image_names"]]
    x, factors = model.preprocess(paths)
    np.testing.assert_array_equal(factors, fixture["scale_factors"])
    # cv2 bilinear on identical pixels: the same network image.
    padded = np.round(x * np.float32(model.std) + np.float32(model.mean))
    assert np.abs(padded - fixture["padded_bgr"]).max() <= 1
    assert abs(float(x.astype(np.float64).sum()) - float(fixture["input_sum"])) <= 1e-4 * float(fixture["input_abs_sum"])


def test_boxes_after_nms_match_mmdetection(case):
    _, model, fixture = case
    raw = model.predict_raw(normalised(model, fixture["padded_bgr"]))
    assert_detections_equal(model.postprocess(raw, fixture["scale_factors"]), fixture)


def test_topk_and_max_per_image_match_mmdetection(case):
    _, model, fixture = case
    raw = {
        kind: [fixture[f"{kind}_{i}"] for i in range(3)] for kind in ("cls_scores", "bbox_preds")
    }
    tight = RTMDetector.from_config(
        {**model.get_config(), "nms_pre": int(fixture["tight_nms_pre"]), "max_per_image": int(fixture["tight_max_per_img"])}
    )
    assert_detections_equal(tight.postprocess(raw, fixture["scale_factors"]), fixture, prefix="tight_")


def test_predict_from_image_paths_matches_mmdetection(data_dir):
    model, fixture = fixture_model("nano")
    paths = [data_dir / "coco_mini" / "train2017" / name for name in fixture["image_names"]]
    results = model.predict(paths, batch_size=2)
    assert_detections_equal(results, fixture)
    assert results[0].image_path == str(paths[0])
    single = model.predict(str(paths[1]))
    assert isinstance(single, DetectionResult)
    np.testing.assert_allclose(single.boxes, fixture["boxes_1"], atol=1e-2)
    instance = single.to_dict()["instances"][0]
    assert instance["class_name"] == "person" and len(instance["bbox"]) == 4


@pytest.mark.skipif(keras.config.backend() != "torch", reason="layouts differ only where channels_first is native")
def test_channels_last_matches_channels_first():
    first, fixture = fixture_model("nano")
    last = load_fixture_weights(RTMDetector.build_person("nano", data_format="channels_last"), fixture)
    assert first.data_format == "channels_first" and last.data_format == "channels_last"
    x = normalised(first, fixture["padded_bgr"][:1])
    a, b = first.predict_raw(x), last.predict_raw(x)
    for kind in a:
        for u, v in zip(a[kind], b[kind]):
            np.testing.assert_allclose(u, v, atol=1e-4 * np.abs(u).max())
    assert_raw_close(b, {k: fixture[k][:1] for k in fixture.files if k.startswith(("cls_scores_", "bbox_preds_"))})


def test_config_and_preset_round_trip(tmp_path):
    model, fixture = fixture_model("nano")
    config = model.get_config()
    json.dumps(config)
    again = RTMDetector.from_config({**config, "score_threshold": 0.1})
    assert without_build_config(again.get_config()) == without_build_config({**config, "score_threshold": 0.1})
    assert again.score_threshold == 0.1 and again.input_size == (320, 320) and again.channel_order == "bgr"
    model.save_to_preset(tmp_path / "det")
    loaded = RTMDetector.from_preset(str(tmp_path / "det"), iou_threshold=0.5)
    assert loaded.iou_threshold == 0.5 and loaded.mean == model.mean and loaded.pad_value == 114
    x = normalised(model, fixture["padded_bgr"][:1])
    for u, v in zip(model.predict_raw(x)["cls_scores"], loaded.predict_raw(x)["cls_scores"]):
        np.testing.assert_array_equal(u, v)
    # A detector preset is not a pose model, and the reverse.
    with pytest.raises(ValueError, match="RTMDetector"):
        TopdownEstimator.from_preset(str(tmp_path / "det"))
    pose = tmp_path / "pose"
    pose.mkdir()
    (pose / "config.json").write_text(json.dumps({"class_name": "TopdownEstimator", "registered_name": "keraspose>TopdownEstimator", "config": {}}))
    with pytest.raises(ValueError, match="pose-estimation preset.*not an object detector"):
        RTMDetector.from_preset(str(pose))


def test_share_conv_shares_kernels_not_batch_norm():
    feats = [np.zeros((1, s, s, 8), "float32") for s in (8, 4, 2)]
    head = RTMDetSepBNHead(3, 8, 8, share_conv=True, data_format="channels_last")
    head(feats)
    k0, k2 = head.cls_convs[0][1], head.cls_convs[2][1]
    assert k0.kernel is k2.kernel and k0.gamma is not k2.gamma
    # One trainable kernel per stacked conv and tower, counted once, as in MMDetection.
    kernels = [v for v in head.trainable_weights if v.name == "kernel"]
    assert len(kernels) == 2 * 2 + 2 * 3  # towers (level 0 only) + rtm_cls/rtm_reg per level
    assert sum(int(np.prod(v.shape)) for v in head.trainable_weights) == (
        2 * 2 * 8 * 8 * 9 + 2 * 2 * 3 * 2 * 8 + 3 * (8 * 3 + 3 + 8 * 4 + 4)
    )
    folded = RTMDetSepBNHead(3, 8, 8, share_conv=True, norm=False, data_format="channels_last")
    folded(feats)
    assert folded.cls_convs[2][1].kernel is not folded.cls_convs[0][1].kernel


def test_shared_kernels_survive_a_preset_round_trip(tmp_path):
    from keraspose import CSPNeXtBackbone

    def small():
        return RTMDetector(
            CSPNeXtBackbone(deepen_factor=0.33, widen_factor=0.125),
            CSPNeXtPAFPN([32, 64, 128], 32, num_csp_blocks=1),
            RTMDetSepBNHead(2, 32, 32, share_conv=True, exp_on_reg=True),
            input_size=(96, 64), class_names=("a", "b"),
        )

    model = small()
    model.build()
    rs = np.random.RandomState(0)
    for v in model.weights:
        v.assign(rs.uniform(0.5, 1.5, v.shape) if v.name == "moving_variance" else rs.standard_normal(v.shape) * 0.1)
    model.save_to_preset(tmp_path / "small")
    loaded = RTMDetector.from_preset(str(tmp_path / "small"))
    assert loaded.head.cls_convs[1][0].kernel is loaded.head.cls_convs[0][0].kernel
    x = rs.standard_normal((1, 64, 96, 3)).astype("float32")
    a, b = model.predict_raw(x), loaded.predict_raw(x)
    assert [t.shape for t in b["bbox_preds"]] == [(1, 8, 12, 4), (1, 4, 6, 4), (1, 2, 3, 4)]
    for kind in a:
        for u, v in zip(a[kind], b[kind]):
            np.testing.assert_array_equal(u, v)


def test_bad_inputs_give_clear_errors(tmp_path):
    model = fixture_model("nano")[0]
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        model.predict(str(tmp_path / "missing.jpg"))
    with pytest.raises(ValueError, match=r"images\[1\].*uint8"):
        model.predict([np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20, 3), np.float32)])
    with pytest.raises(ValueError, match=r"image.*\(H, W, 3\)"):
        model.predict(np.zeros((20, 20, 4), np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(np.zeros((20, 20, 3), np.uint8), batch_size=0)
    with pytest.raises(ValueError, match="3 levels"):
        model.postprocess({"cls_scores": [np.zeros((1, 4, 4, 1))], "bbox_preds": [np.zeros((1, 4, 4, 4))]}, None)
    with pytest.raises(ValueError, match="class_names"):
        RTMDetector.from_config({**model.get_config(), "class_names": ["a", "b"]})
    with pytest.raises(ValueError, match="multiple of the largest stride 32"):
        RTMDetector.build_person("nano", input_size=(330, 320))
    with pytest.raises(NotImplementedError, match="training RTMDetector"):
        model.fit(np.zeros((1, 320, 320, 3), "float32"))
    with pytest.raises(ValueError, match="size must be one of"):
        rtmdet_config("huge")
    with pytest.raises(ValueError, match="share_conv"):
        RTMDetSepBNHead(1, 16, 16, share_conv=True, use_depthwise=True)
    with pytest.raises(ValueError, match="expects 3 feature maps"):
        CSPNeXtPAFPN([8, 16, 32], 8, data_format="channels_last")([np.zeros((1, 4, 4, 8), "float32")])


def test_resize_rule_for_other_input_sizes():
    model = fixture_model("nano")[0]
    # MMCV's imrescale: long side to 320, int(x * s + 0.5); padding 114 below/right.
    padded, factor = model.resize_and_pad(np.zeros((50, 100, 3), np.uint8))
    assert factor == (3.2, 3.2) and padded.shape == (320, 320, 3)
    assert (padded[:160] == 0).all() and (padded[160:] == 114).all()
    wide = RTMDetector.from_config({**model.get_config(), "input_size": [320, 224]})
    # Long/short rule gives 224x320 for a portrait image, which would overflow
    # the 224-high input: it is fitted inside instead.
    padded, factor = wide.resize_and_pad(np.zeros((400, 100, 3), np.uint8))
    assert padded.shape == (224, 320, 3) and factor == (56 / 100, 224 / 400)
    assert (padded[:, :56] == 0).all() and (padded[:, 56:] == 114).all()


def test_empty_image_list_and_no_detections():
    model = fixture_model("nano")[0]
    assert model.predict([]) == []
    threshold = model.score_threshold
    try:
        model.score_threshold = 0.999
        result = model.predict(np.full((50, 80, 3), 114, np.uint8))
    finally:
        model.score_threshold = threshold
    assert result.boxes.shape == (0, 4) and result.scores.shape == (0,) and result.labels.shape == (0,)
