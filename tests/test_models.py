"""Network parity with MMPose 1.3.2: converted checkpoints, key maps, parameter counts.

References (../shared/reference/models, produced by the real MMPose):
``tiny_*_coco.pth`` random-weight checkpoints with their configs and
``*_io.npz`` input/output pairs; ``*_keys.json`` state-dict layouts of the
official HRNet-W32/W48 and ResNet-50 checkpoints.
"""

import json

import keras
import numpy as np
import pytest
import torch

from keraspose import backend
from keraspose.convert import ConversionError, build_from_mmpose_config, check_checkpoint_shapes, from_mmpose
from keraspose.models.topdown_estimator import TopdownEstimator


def _rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def tiny_models(reference_dir):
    models = {}
    for name in ("tiny_hrnet_coco", "tiny_res_coco"):
        d = reference_dir / "models"
        models[name] = from_mmpose(d / f"{name}_config.json", d / f"{name}.pth")
    return models


@pytest.mark.parametrize("name", ["tiny_hrnet_coco", "tiny_res_coco"])
def test_tensor_mode_matches_mmpose(name, tiny_models, reference_dir):
    io = np.load(reference_dir / "models" / f"{name}_io.npz")
    x = io["inputs_nchw"].transpose(0, 2, 3, 1)  # the estimator takes NHWC crops
    with backend.inference_mode():
        heatmaps = keras.ops.convert_to_numpy(tiny_models[name](x, training=False))
    heatmaps = heatmaps.transpose(0, 3, 1, 2)
    ref = io["heatmaps_nchw"]
    assert heatmaps.shape == ref.shape
    # README tolerance: rtol/atol 1e-4 relative to the array's max magnitude.
    assert _rel_err(heatmaps, ref) < 1e-4


def test_hrnet_backbone_output_matches_mmpose(tiny_models, reference_dir):
    io = np.load(reference_dir / "models" / "tiny_hrnet_coco_io.npz")
    model = tiny_models["tiny_hrnet_coco"]
    x = io["inputs_nchw"]
    if model.data_format == "channels_last":
        x = x.transpose(0, 2, 3, 1)
    with backend.inference_mode():
        feats = model.backbone(keras.ops.convert_to_tensor(x))
    out = keras.ops.convert_to_numpy(feats[0])
    if model.data_format == "channels_last":
        out = out.transpose(0, 3, 1, 2)
    assert _rel_err(out, io["backbone_out0_nchw"]) < 1e-4


def test_predict_on_batch_equals_call(tiny_models, reference_dir):
    """The compiled predict path (tf.function on TF) gives the same heatmaps as eager call."""
    io = np.load(reference_dir / "models" / "tiny_res_coco_io.npz")
    x = io["inputs_nchw"].transpose(0, 2, 3, 1)
    model = tiny_models["tiny_res_coco"]
    out = keras.ops.convert_to_numpy(model.predict_on_batch(x)).transpose(0, 3, 1, 2)
    assert _rel_err(out, io["heatmaps_nchw"]) < 1e-4


@pytest.mark.parametrize(
    "keys_file, num_parameters",
    [
        ("hrnet_w32_coco_256x192_keys.json", 28_536_113),
        ("hrnet_w48_coco_256x192_keys.json", 63_595_745),
        ("res50_coco_256x192_keys.json", 33_999_697),
    ],
)
def test_official_layouts_map_one_to_one(keys_file, num_parameters, reference_dir):
    spec = json.loads((reference_dir / "models" / keys_file).read_text())
    assert spec["num_parameters"] == num_parameters  # the figure is MMPose's
    model = build_from_mmpose_config({"model": spec["model"]})
    shapes = {k: v["shape"] for k, v in spec["state_dict"].items()}
    mapping = check_checkpoint_shapes(model, shapes)  # raises on any missing/extra key or shape
    assert set(mapping) == set(shapes)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == num_parameters
    # Every Keras variable is filled from exactly one checkpoint tensor.
    filled = [id(v) for v, _ in mapping.values() if v is not None]
    assert len(filled) == len(set(filled)) == len(model.weights)


def test_shape_mismatch_names_the_key(tmp_path, reference_dir):
    state = torch.load(reference_dir / "models" / "tiny_hrnet_coco.pth", map_location="cpu", weights_only=True)
    sd = dict(state["state_dict"])
    sd["backbone.conv1.weight"] = torch.zeros(8, 3, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save({"meta": {}, "state_dict": sd}, bad)
    with pytest.raises(ConversionError, match=r"backbone\.conv1\.weight"):
        from_mmpose(reference_dir / "models" / "tiny_hrnet_coco_config.json", bad)


def test_missing_and_unexpected_keys_are_named(tmp_path, reference_dir):
    state = torch.load(reference_dir / "models" / "tiny_res_coco.pth", map_location="cpu", weights_only=True)
    sd = dict(state["state_dict"])
    del sd["head.final_layer.bias"]
    sd["backbone.extra_layer.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save({"meta": {}, "state_dict": sd}, bad)
    with pytest.raises(ConversionError) as err:
        from_mmpose(reference_dir / "models" / "tiny_res_coco_config.json", bad)
    assert "head.final_layer.bias" in str(err.value)
    assert "backbone.extra_layer.weight" in str(err.value)


def test_unreadable_checkpoint(tmp_path, reference_dir):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((reference_dir / "models" / "tiny_res_coco.pth").read_bytes()[:1000])
    with pytest.raises(ConversionError, match="truncated.pth"):
        from_mmpose(reference_dir / "models" / "tiny_res_coco_config.json", truncated)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        from_mmpose(reference_dir / "models" / "tiny_res_coco_config.json", tmp_path / "nowhere.pth")


def test_unsupported_config_is_named(reference_dir):
    cfg = json.loads((reference_dir / "models" / "tiny_res_coco_config.json").read_text())
    cfg["backbone"]["type"] = "SwinTransformer"
    with pytest.raises(ConversionError, match="SwinTransformer"):
        build_from_mmpose_config(cfg)


def test_config_round_trip(tiny_models, reference_dir):
    model = tiny_models["tiny_hrnet_coco"]
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, TopdownEstimator)
    clone.build()
    clone.set_weights(model.get_weights())
    x = np.load(reference_dir / "models" / "tiny_hrnet_coco_io.npz")["inputs_nchw"][:2].transpose(0, 2, 3, 1)
    a = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    b = keras.ops.convert_to_numpy(clone.predict_on_batch(x))
    np.testing.assert_array_equal(a, b)
    # The config names no backend layout, so it loads the same on any backend.
    assert '"channels_first"' not in json.dumps(config)


def test_catalogue_384x288_config_builds():
    """The 384x288 catalogue entry is W32 with a larger codec: same parameters, larger heatmaps."""
    from keraspose.presets import get_catalogue_entry

    entry = get_catalogue_entry("hrnet_w32_coco_384x288")
    model = build_from_mmpose_config(entry["mmpose_model"])
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 28_536_113
    assert model.input_size == (288, 384)
    assert tuple(model.head.codec.heatmap_size) == (72, 96)
    with backend.inference_mode():
        out = model(np.zeros((1, 384, 288, 3), "float32"), training=False)
    assert tuple(out.shape) == (1, 96, 72, 17)


def test_head_loss_comes_from_the_mmpose_config(reference_dir):
    """The converted head trains with the config's KeypointMSELoss settings; an
    unimplemented loss still converts (inference needs none) but says so."""
    config = json.loads((reference_dir / "models" / "tiny_hrnet_coco_config.json").read_text())
    model_cfg = config.get("model", config)
    assert build_from_mmpose_config(config).head.loss_fn.use_target_weight is True
    model_cfg["head"]["loss"] = {"type": "KeypointMSELoss", "use_target_weight": False, "loss_weight": 2.0}
    loss = build_from_mmpose_config(config).head.loss_fn
    assert loss.use_target_weight is False and loss.loss_weight == 2.0
    model_cfg["head"]["loss"] = {"type": "KeypointOHKMMSELoss", "use_target_weight": True}
    with pytest.warns(UserWarning, match="KeypointOHKMMSELoss"):
        build_from_mmpose_config(config)
