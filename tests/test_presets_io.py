"""Preset directory format: atomic writes, save/load round trips and clear errors.

Uses a tiny registered Keras model (``TinyPoseNet``, below) as a stand-in for
the estimator: it has nested layers in lists, a BatchNormalization (non
trainable variables), an unnamed ``add_weight`` (auto-named variable),
``build_for_preset`` / ``dummy_inputs`` hooks and a ``num_keypoints``.
Runs on whatever ``KERAS_BACKEND`` is set, in a few seconds.
"""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from keraspose.presets import (
    CONFIG_FILE,
    METADATA_FILE,
    README_FILE,
    WEIGHTS_FILE,
    load_preset,
    load_preset_metadata,
    save_preset,
    variable_keys,
)
from keraspose.utils.atomic import atomic_directory, atomic_write


@keras.saving.register_keras_serializable(package="keraspose_tests")
class TinyBlock(keras.layers.Layer):
    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)
        self.norm = keras.layers.BatchNormalization()

    def build(self, input_shape):
        # Unnamed on purpose: Keras names it "variable_<counter>", which must
        # not leak into the weight keys.
        self.scale = self.add_weight(shape=(self.units,), initializer="ones")
        self.dense.build(input_shape)
        self.norm.build(tuple(input_shape[:-1]) + (self.units,))

    def call(self, x, training=None):
        return self.norm(self.dense(x), training=training) * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keraspose_tests")
class TinyPoseNet(keras.Model):
    """Stand-in for TopdownEstimator: features -> keypoint scores."""

    def __init__(self, units=4, num_keypoints=3, in_features=5, flip_test=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.num_keypoints = num_keypoints
        self.in_features = in_features
        self.flip_test = flip_test
        self.blocks = [TinyBlock(units), [TinyBlock(units)]]
        self.head = keras.layers.Dense(num_keypoints, name="head_layer")

    def call(self, x, training=None):
        x = self.blocks[0](x, training=training)
        x = self.blocks[1][0](x, training=training)
        return self.head(x)

    def build_for_preset(self):
        if not self.built:
            self(self.dummy_inputs())

    def dummy_inputs(self, batch_size=2):
        return np.linspace(-1, 1, batch_size * self.in_features, dtype="float32").reshape(batch_size, -1)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "num_keypoints": self.num_keypoints,
            "in_features": self.in_features,
            "flip_test": self.flip_test,
        }


@keras.saving.register_keras_serializable(package="keraspose_tests")
class OtherNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.proj = keras.layers.Dense(2)

    def call(self, x):
        return self.proj(x)


def make_model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = TinyPoseNet(**kwargs)
    model.build_for_preset()
    # Non-default BN statistics, so that a lost non-trainable variable shows.
    for v in model.non_trainable_variables:
        v.assign(np.random.default_rng(seed).uniform(0.5, 2.0, v.shape).astype("float32"))
    return model


def weights_of(model):
    return {k: keras.ops.convert_to_numpy(v) for k, v in variable_keys(model).items()}


def outputs_of(model):
    return keras.ops.convert_to_numpy(model(model.dummy_inputs(), training=False))


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------
def test_atomic_write_replaces_or_leaves_untouched(tmp_path):
    target = tmp_path / "a.json"
    with atomic_write(target, "w") as f:
        f.write('{"v": 1}')
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write('{"v": 2, "trunc')
            raise RuntimeError("boom")
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]  # the temporary file is gone


def test_atomic_directory_interrupted_leaves_nothing(tmp_path):
    target = tmp_path / "preset"
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_directory(target) as tmp:
                (open(os.path.join(tmp, "half.bin"), "wb")).write(b"\0" * 10)
                raise exc
    assert os.listdir(tmp_path) == []


def test_atomic_directory_overwrite(tmp_path):
    target = tmp_path / "preset"
    with atomic_directory(target) as tmp:
        open(os.path.join(tmp, "old.txt"), "w").close()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with atomic_directory(target):
            pass
    with atomic_directory(target, overwrite=True) as tmp:
        open(os.path.join(tmp, "new.txt"), "w").close()
    assert os.listdir(target) == ["new.txt"]
    assert os.listdir(tmp_path) == ["preset"]  # no backup or temp left


# ---------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------
def test_weight_keys_are_stable_across_builds_and_free_of_layer_names():
    first, second = make_model(), make_model()
    assert first.name != second.name  # Keras did add a counter...
    keys = list(variable_keys(first))
    assert keys == list(variable_keys(second))  # ...but the keys do not change
    assert "blocks/0/dense/kernel" in keys and "blocks/1/0/norm/moving_variance" in keys
    assert "head/kernel" in keys
    assert "blocks/0/vars/0" in keys  # the auto-named variable is keyed by index
    assert not any(first.name in k or "variable" in k or "head_layer" in k for k in keys)
    assert len(keys) == len(first.weights)


# ---------------------------------------------------------------------------
# round trip
# ---------------------------------------------------------------------------
def test_round_trip_identical_weights_and_outputs(tmp_path):
    model = make_model()
    path = save_preset(model, tmp_path / "p", metadata={"license": "apache-2.0", "metrics": {"coco/AP": 0.5},
                                                        "source_checkpoint": "https://x/ckpt.pth",
                                                        "source_checkpoint_sha256": "ab" * 32})
    assert sorted(os.listdir(path)) == sorted([CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE, README_FILE])
    loaded = load_preset(path, expected_class=TinyPoseNet)
    assert isinstance(loaded, TinyPoseNet)
    a, b = weights_of(model), weights_of(loaded)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(outputs_of(model), outputs_of(loaded))

    meta = load_preset_metadata(path)
    assert meta["backend"] == keras.config.backend()
    assert meta["keras_version"] == keras.__version__
    assert meta["class_name"] == "keraspose_tests>TinyPoseNet"
    assert meta["num_keypoints"] == 3 and meta["license"] == "apache-2.0"
    assert meta["source_checkpoint_sha256"] == "ab" * 32
    card = open(os.path.join(path, README_FILE)).read()
    front = card.split("---")[1]
    assert "library_name: keraspose" in front and "pose-estimation" in front and "keypoint-detection" in front
    assert '"keras"' in front and "apache-2.0" in front
    assert "| coco/AP | 0.5 |" in card and "from_preset(" in card


def test_float16_weights_are_kept_as_stored(tmp_path):
    from safetensors.numpy import load_file

    keras.utils.set_random_seed(1)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float16")  # every sublayer, not only the model, in float16
    try:
        model = TinyPoseNet()
        model.build_for_preset()
    finally:
        keras.config.set_dtype_policy(previous)
    path = save_preset(model, tmp_path / "p16")
    stored = load_file(os.path.join(path, WEIGHTS_FILE))
    assert {str(a.dtype) for a in stored.values()} == {"float16"}
    loaded = load_preset(path)
    for k, v in variable_keys(loaded).items():
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), stored[k])


def test_config_overrides_and_build_only(tmp_path):
    path = save_preset(make_model(), tmp_path / "p")
    loaded = load_preset(path, flip_test=False)
    assert loaded.flip_test is False
    fresh = load_preset(path, load_weights=False)
    assert fresh.built and len(fresh.weights) == len(loaded.weights)
    with pytest.raises(ValueError, match="no_such_option"):
        load_preset(path, no_such_option=1)


def test_interrupted_save_leaves_nothing(tmp_path, monkeypatch):
    import safetensors.numpy

    def broken_save_file(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C hit in the middle of writing weights

    monkeypatch.setattr(safetensors.numpy, "save_file", broken_save_file)
    with pytest.raises(KeyboardInterrupt):
        save_preset(make_model(), tmp_path / "p")
    assert os.listdir(tmp_path) == []


def test_save_refuses_to_overwrite_without_flag(tmp_path):
    path = save_preset(make_model(0), tmp_path / "p")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_preset(make_model(1), path)
    save_preset(make_model(1), path, overwrite=True)
    np.testing.assert_array_equal(outputs_of(load_preset(path)), outputs_of(make_model(1)))


# ---------------------------------------------------------------------------
# clear errors
# ---------------------------------------------------------------------------
def test_truncated_safetensors(tmp_path):
    path = save_preset(make_model(), tmp_path / "p")
    weights = os.path.join(path, WEIGHTS_FILE)
    data = open(weights, "rb").read()
    for cut in (len(data) // 2, 5):
        with open(weights, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(ValueError, match=r"model\.safetensors.*(truncated or corrupt)") as info:
            load_preset(path)
        assert "save_preset" in str(info.value)  # says how to fix it


def test_missing_files(tmp_path):
    path = save_preset(make_model(), tmp_path / "p")
    os.remove(os.path.join(path, WEIGHTS_FILE))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_preset(path)
    load_preset(path, load_weights=False)  # building alone needs no weights
    os.remove(os.path.join(path, CONFIG_FILE))
    with pytest.raises(FileNotFoundError, match=r"config\.json.*save_preset"):
        load_preset(path)
    with pytest.raises(FileNotFoundError, match="preset directory not found"):
        load_preset(tmp_path / "nope")


def test_malformed_json(tmp_path):
    path = save_preset(make_model(), tmp_path / "p")
    with open(os.path.join(path, CONFIG_FILE), "w") as f:
        f.write('{"class_name": "TinyPoseNet", ')
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        load_preset(path)


def test_wrong_class(tmp_path):
    other = OtherNet()
    other(np.zeros((1, 3), "float32"))
    path = save_preset(other, tmp_path / "other")
    with pytest.raises(ValueError, match=r"OtherNet.*not a.*TinyPoseNet") as info:
        load_preset(path, expected_class=TinyPoseNet)
    assert "config.json" in str(info.value)
    with pytest.raises(ValueError, match="not a"):
        load_preset(path, expected_class="keraspose_tests>TinyPoseNet")


def test_keypoint_count_mismatch(tmp_path):
    path = save_preset(make_model(num_keypoints=3), tmp_path / "p")
    assert load_preset(path, expected_num_keypoints=3).num_keypoints == 3
    with pytest.raises(ValueError, match="predicts 3 keypoints, not the 17"):
        load_preset(path, expected_num_keypoints=17)


def test_weights_from_another_architecture(tmp_path):
    small = save_preset(make_model(units=4), tmp_path / "small")
    big = save_preset(make_model(units=6), tmp_path / "big")
    # config of one, weights of the other: every shape differs
    shutil.copyfile(os.path.join(big, WEIGHTS_FILE), os.path.join(small, WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"(?s)shape mismatches .*blocks/0/dense/kernel: file \[5, 6\] vs model \[5, 4\]"):
        load_preset(small)
    # an architecture change through an override: missing/unexpected keys listed
    with pytest.raises(ValueError, match="shape mismatches"):
        load_preset(big, units=4)


def test_missing_and_unexpected_keys(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = save_preset(make_model(), tmp_path / "p")
    weights = os.path.join(path, WEIGHTS_FILE)
    tensors = load_file(weights)
    tensors["extra/kernel"] = tensors.pop("head/kernel")
    save_file(tensors, weights)
    with pytest.raises(ValueError) as info:
        load_preset(path)
    message = str(info.value)
    assert "missing from the file (1):\n    head/kernel" in message
    assert "in the file but not in the model (1):\n    extra/kernel" in message


def test_unregistered_class_is_refused(tmp_path):
    class Unregistered(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.proj = keras.layers.Dense(2)

        def call(self, x):
            return self.proj(x)

    model = Unregistered()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="register_keras_serializable"):
        save_preset(model, tmp_path / "u")
    assert not (tmp_path / "u").exists()
