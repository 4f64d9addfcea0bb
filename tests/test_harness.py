"""Every public backbone, neck, head and model class through the same checks (see tests/harness.py).

Tiny configurations throughout; the cross-backend preset load is
tests/test_presets_cross_backend.py's.
"""

import keras
import numpy as np
import pytest

from keraspose import backend
from keraspose.layers import ConvBN

import harness
from harness import SPECS, build, copy_weights, max_rel_err, moving_statistics, run

IDS = [spec.name for spec in SPECS]


def run_model(model, x):
    with backend.inference_mode():
        return harness.flatten_outputs(model(keras.ops.convert_to_tensor(x), training=False))


@pytest.fixture(params=SPECS, ids=IDS)
def spec(request):
    return request.param


def test_every_public_model_class_has_a_spec():
    covered = {spec.cls for spec in SPECS}
    missing = sorted(name for name, cls in harness.public_model_classes().items() if cls not in covered)
    assert not missing, f"add a tiny ModelSpec to tests/harness.py for {missing}"
    # And the enumeration is not vacuous.
    assert {"HRNetBackbone", "HeatmapHead", "TopdownEstimator", "RTMDetector"} <= set(harness.public_model_classes())


def test_config_round_trip(spec):
    original = build(spec)
    config = original.get_config()
    clone = spec.cls.from_config(config)
    x = spec.inputs(2, np.random.default_rng(2))
    if spec.is_model:
        clone.build()
    else:
        run(spec, clone, x)
    assert clone.get_config() == config  # nested layers' build configs included
    copy_weights(original, clone)
    assert max_rel_err(run(spec, clone, x), run(spec, original, x)) == 0.0


def test_channels_first_equals_channels_last(spec):
    if backend.BACKEND == "tensorflow":
        pytest.skip("TensorFlow's CPU convolutions are channels-last only")
    last = build(spec, "channels_last")
    first = spec.make("channels_first")
    if not spec.is_model:
        run(spec, first, spec.inputs(1, np.random.default_rng(0)))
    copy_weights(last, first)
    x = spec.inputs(2, np.random.default_rng(3))
    assert max_rel_err(run(spec, first, x), run(spec, last, x)) < 1e-5
    # Training mode too: batch statistics along the right axes. (Looser: at
    # the coarsest level a channel's statistics come from 8 values, and
    # normalising by them amplifies rounding differences; measured <= 5e-5.)
    assert max_rel_err(run(spec, first, x, training=True), run(spec, last, x, training=True)) < 1e-3


def test_batchnorm_statistics_move_only_in_training(spec):
    instance = build(spec)
    x = spec.inputs(2, np.random.default_rng(4))
    before = moving_statistics(instance)
    inference = run(spec, instance, x)
    if not spec.has_batchnorm:
        # Nothing to update, and nothing (no BatchNorm, no active dropout) that
        # may make training mode differ.
        assert not before, f"{spec.name} has BatchNorm: drop has_batchnorm=False from its spec"
        assert max_rel_err(run(spec, instance, x, training=True), inference) < 1e-6
        return
    assert before, f"{spec.name} has no BatchNorm: set has_batchnorm=False in its spec"
    if spec.is_model:
        keras.ops.convert_to_numpy(keras.tree.flatten(instance.predict_on_batch(x))[0])
    after_inference = moving_statistics(instance)
    for key in before:
        np.testing.assert_array_equal(after_inference[key], before[key], err_msg=f"{key} moved at inference")

    training = run(spec, instance, x, training=True)
    after_training = moving_statistics(instance)
    unchanged = [key for key in before if np.array_equal(after_training[key], before[key])]
    assert not unchanged, f"not updated by a training step: {unchanged}"
    # Batch statistics, not moving ones, in training mode.
    assert max_rel_err(training, inference) > 1e-3


def test_folded_inference_equals_unfolded(spec, monkeypatch):
    instance = build(spec)
    x = spec.inputs(2, np.random.default_rng(5))
    folded = run(spec, instance, x)
    monkeypatch.setattr(ConvBN, "call", harness.unfolded_conv_bn_call)
    unfolded = run(spec, instance, x)
    assert max_rel_err(folded, unfolded) < 1e-4


def test_preset_round_trip(spec, tmp_path):
    df = backend.preferred_data_format()
    instance = build(spec, df)
    model = instance if spec.is_model else spec.as_model(instance, df)
    if not spec.is_model:
        harness.randomise_batchnorm(model, np.random.default_rng(6))
    model.save_to_preset(tmp_path / "preset")
    loaded = type(model).from_preset(tmp_path / "preset")
    assert loaded.get_config() == model.get_config()
    x = np.random.default_rng(7).standard_normal(model.dummy_inputs(2).shape).astype("float32")
    assert max_rel_err(run_model(loaded, x), run_model(model, x)) < 1e-6


def test_variable_batch_sizes(spec):
    """A batch gives its samples' single outputs, eager and (models) compiled.

    Batches of 1 and 2 only: on JAX every new input shape compiles every
    eager op again, and the other checks already use these two sizes.
    """
    instance = build(spec)
    x = spec.inputs(2, np.random.default_rng(8))

    def sample(i):
        return [v[i : i + 1] for v in x] if isinstance(x, list) else x[i : i + 1]

    whole = run(spec, instance, x)
    singles = [run(spec, instance, sample(i)) for i in range(2)]
    per_sample = [np.concatenate([s[k] for s in singles]) for k in range(len(whole))]
    assert max_rel_err(whole, per_sample) < 1e-5
    if spec.is_model:
        # The compiled predict path, traced per batch size on TensorFlow/JAX.
        for batch in (1, 2):
            got = harness.flatten_outputs(instance.predict_on_batch(x[:batch]))
            assert max_rel_err(got, [w[:batch] for w in whole]) < 1e-5
