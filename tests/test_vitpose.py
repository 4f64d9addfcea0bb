"""ViTPose (ViT backbone, classic and simple heatmap heads) against MMPose 1.3.2 + mmpretrain 1.2.0.

Fixtures: tests/fixtures/vitpose_{classic,simple}.npz from tools/make_vitpose_fixture.py:
MMPose's ViTPose-S COCO configs with the backbone shrunk to 2 blocks of width
64, seeded weights from tests/vitpose_weights.py on both sides (the classic
head's BatchNorm statistics stored), UDP crops of coco_mini people, MMPose's
heatmaps and predictions. The simple model's position embedding is laid out
for 128x96 crops, so at 256x192 mmpretrain's bicubic resize is checked too.
Our model is built from the same MMPose model dict by the converter and
loaded through the MMPose state-dict mapping.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keraspose.convert.mmpose import ConversionError, _expected_shape, build_from_mmpose_config, checkpoint_mapping, load_mmpose_weights
from keraspose.models.vit import FeatureMapProcessor, ViTBackbone

sys.path.insert(0, str(Path(__file__).parent))
from vitpose_weights import synthetic_state_dict  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


def _state_dict(model, ref):
    mapping = checkpoint_mapping(model)
    shapes = {k: _expected_shape(var, kind) for k, (var, kind) in mapping.items() if var is not None}
    state = synthetic_state_dict({k: s for k, s in shapes.items() if "running_" not in k}, int(ref["seed"]))
    state.update({k[3:]: ref[k] for k in ref.files if k.startswith("bn:")})
    state.update({k: np.zeros((), np.int64) for k, (var, kind) in mapping.items() if kind == "counter"})
    return state


@pytest.fixture(scope="module", params=["classic", "simple"])
def converted(request):
    ref = np.load(FIXTURES / f"vitpose_{request.param}.npz")
    model = build_from_mmpose_config(json.loads(str(ref["model_json"])))
    load_mmpose_weights(model, _state_dict(model, ref))
    return model, ref


def test_heatmaps_match_mmpose(converted):
    model, ref = converted
    out = keras.ops.convert_to_numpy(model.predict_on_batch(model.preprocess(ref["crops_bgr"][..., ::-1])))
    got = np.transpose(out, (0, 3, 1, 2))
    expected = ref["heatmaps"]
    assert got.shape == expected.shape
    # Issue acceptance: within 1e-4 of the heatmaps' maximum.
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("flip", [False, True])
def test_predict_matches_mmpose(converted, data_dir, flip):
    model, ref = converted
    assert model.use_udp and model.flip_test and not model.shift_heatmap  # as the ViTPose configs set
    images = [str(data_dir / "coco_mini" / "train2017" / str(f)) for f in ref["image_names"]]
    owners = ref["owners"]
    boxes = [ref["bboxes"][owners == i] for i in range(len(images))]
    results = model.predict(images, bboxes=boxes, flip_test=flip, batch_size=4)
    keypoints = np.concatenate([r.keypoints for r in results])
    scores = np.concatenate([r.keypoint_scores for r in results])
    tag = "flip" if flip else "noflip"
    # UDP's DARK step turns float noise on a random model's flat peaks into
    # tenths of a pixel, in MMPose too: the fixture measured, per keypoint,
    # how far MMPose's own keypoints move under 1e-6 relative heatmap noise.
    # Well-conditioned keypoints (most) must agree to 1e-2 px; the others to
    # 1e-2 px plus ten times that measured sensitivity.
    sensitivity = ref[f"sensitivity_{tag}"]
    error = np.abs(keypoints - ref[f"keypoints_{tag}"]).max(-1)
    stable = sensitivity < 1e-3
    assert stable.mean() >= 0.7, stable.mean()
    assert error[stable].max() <= 1e-2, error[stable].max()
    assert (error <= 1e-2 + 10 * sensitivity).all(), (error - 10 * sensitivity).max()
    np.testing.assert_allclose(scores, ref[f"scores_{tag}"], rtol=0, atol=1e-4 * np.abs(ref[f"scores_{tag}"]).max())


def test_trainable_parameters_match_mmpose(converted):
    model, ref = converted
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == int(ref["num_parameters"])


def test_save_and_reload_preset(converted, tmp_path):
    from keraspose import TopdownEstimator

    model, ref = converted
    if model.neck is None:
        pytest.skip("the simple model (ViT backbone and FeatureMapProcessor neck) covers the round trip")
    model.save_to_preset(tmp_path / "vitpose")
    again = TopdownEstimator.from_preset(str(tmp_path / "vitpose"))
    x = model.preprocess(ref["crops_bgr"][:1, ..., ::-1])
    # Direct calls: predict_on_batch would compile the model once more on JAX (8 s).
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x, training=False)), keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=0, atol=1e-6,
    )
    assert isinstance(again.backbone, ViTBackbone)
    assert isinstance(again.neck, FeatureMapProcessor)


def test_unsupported_vit_settings_are_clear_errors():
    cfg = json.loads(str(np.load(FIXTURES / "vitpose_classic.npz")["model_json"]))
    cfg["backbone"]["with_cls_token"] = True
    with pytest.raises(ConversionError, match="with_cls_token=False"):
        build_from_mmpose_config(cfg)
    cfg["backbone"].update(with_cls_token=False, arch="small")
    with pytest.raises(ConversionError, match="arch 'small'"):
        build_from_mmpose_config(cfg)


def _catalogue_counts():
    return json.loads((FIXTURES / "vitpose_param_counts.json").read_text())["counts"]


@pytest.mark.parametrize("name", [
    # One real-size build in the default run (ViT-S simple: 3 s on JAX); the rest are long.
    "vitpose_s_simple_coco", pytest.param("vitpose_s_coco", marks=pytest.mark.long),
    pytest.param("vitpose_b_coco", marks=pytest.mark.long), pytest.param("vitpose_b_simple_coco", marks=pytest.mark.long),
    pytest.param("vitpose_l_coco", marks=pytest.mark.long), pytest.param("vitpose_l_simple_coco", marks=pytest.mark.long),
    pytest.param("vitpose_h_coco", marks=pytest.mark.long), pytest.param("vitpose_h_simple_coco", marks=pytest.mark.long),
])
@pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="the count is the same on every backend; a real-size build costs 12 s of JAX compilation"
)
def test_catalogue_parameter_counts_match_mmpose(name):
    from keraspose import TopdownEstimator
    from keraspose.presets import get_catalogue_entry

    size, head = name.split("_")[1], "simple" if "simple" in name else "classic"
    expected = _catalogue_counts()[f"{dict(s='small', b='base', l='large', h='huge')[size]}_{head}"]
    assert get_catalogue_entry(name)["num_parameters"] == expected
    model = TopdownEstimator.from_preset(name, load_weights=False)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected


# Eager JAX compiles each small optimizer op: 30 s for this test, so on JAX it runs with -m long.
@(pytest.mark.long if keras.backend.backend() == "jax" else (lambda test: test))
def test_layer_decay_adamw_matches_mmpose():
    """Two steps of LayerDecayAdamW against MMPose's LayerDecayOptimWrapperConstructor + AdamW (same weights, grads)."""
    from keraspose.training import LayerDecayAdamW

    ref = json.loads((FIXTURES / "vitpose_layer_decay.json").read_text())
    fixture = np.load(FIXTURES / "vitpose_classic.npz")
    model = build_from_mmpose_config(json.loads(str(fixture["model_json"])))
    load_mmpose_weights(model, _state_dict(model, fixture))
    mapping = checkpoint_mapping(model)
    params = ref["parameters"]
    variables = [mapping[name][0] for name in params]
    assert {id(v) for v in variables} == {id(v) for v in model.trainable_weights}  # every parameter compared

    def keras_layout(value, kind):
        return value.transpose(2, 3, 1, 0) if kind == "conv" else value.T if kind == "linear" else value

    optimizer = LayerDecayAdamW(
        num_layers=2, layer_decay_rate=ref["layer_decay_rate"], learning_rate=ref["learning_rate"],
        # Keras adds epsilon to Adam's uncorrected sqrt(v) (the paper's "epsilon hat"), PyTorch to the
        # bias-corrected one: at 1e-8 both, the fixture's smallest gradients differ by 7e-4 relative.
        # A negligible epsilon on our side matches PyTorch's 1e-8 (itself negligible against these gradients).
        weight_decay=ref["weight_decay"], epsilon=1e-12,
    )
    for name, variable in zip(params, variables):
        assert optimizer.lr_scale(variable) == pytest.approx(params[name]["lr_scale"]), name
        assert optimizer._use_weight_decay(variable) == (params[name]["weight_decay"] > 0), name
    before = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    shapes = {name: tuple(_expected_shape(mapping[name][0], mapping[name][1])) for name in params}
    for seed in ref["gradient_seeds"]:
        grads = synthetic_state_dict(shapes, seed)
        optimizer.apply([keras_layout(grads[name], mapping[name][1]) for name in params], variables)
    for name, variable, old in zip(params, variables, before):
        delta = keras.ops.convert_to_numpy(variable).astype(np.float64) - old
        expected = params[name]
        assert np.linalg.norm(delta) == pytest.approx(expected["update_norm"], rel=1e-4), name
        assert abs(delta.sum() - expected["update_sum"]) <= 1e-4 * np.abs(delta).sum() + 1e-9, name


# The default-run export format of each backend (ONNX from torch, SavedModel
# from TensorFlow/JAX); on JAX the export compiles for tens of seconds.
_EXPORT_FORMAT = "onnx" if keras.config.backend() == "torch" else "tf_saved_model"


@pytest.mark.long if keras.config.backend() == "jax" else pytest.mark.usefixtures()
def test_export_gives_mmpose_heatmaps(converted, tmp_path):
    """ViTPose exports (issue 12's formats): uint8 crops in, MMPose's heatmaps out, at batch 1 and 3.

    Keras' own LayerNorm did not trace for the ONNX exporter with a dynamic
    batch; keraspose.layers.LayerNorm does.
    """
    if _EXPORT_FORMAT == "onnx":
        pytest.importorskip("onnxruntime")
    from keraspose.runtime import load_exported

    model, ref = converted
    model.export(tmp_path / "vitpose", format=_EXPORT_FORMAT, include_decoding=False)
    runtime = load_exported(tmp_path / "vitpose")
    crops = np.ascontiguousarray(ref["crops_bgr"][..., ::-1])
    expected = np.transpose(ref["heatmaps"], (0, 2, 3, 1))
    for batch in (1, 3):
        got = runtime(crops[:batch])["heatmaps"]
        assert np.abs(got - expected[:batch]).max() <= 1e-4 * np.abs(expected).max()
