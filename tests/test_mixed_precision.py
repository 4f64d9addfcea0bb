"""Keras mixed precision (mixed_bfloat16, mixed_float16) for inference and training, every backend.

Under a mixed policy keraspose's layers compute in half precision through
Keras' own ``Layer.__call__`` (the float32 fast path steps aside), BatchNorm
keeps float32 weights and statistics (folded into the kernel in float32,
then cast; statistics updated in float32), the loss is float32, decoding
gets float32 outputs, and a preset loads in the global policy whatever it
was saved under.

The references are the same models in float32. Measured on the people of
three coco_mini images: TinyPose 128x96 under mixed_bfloat16 decodes the
keypoints it is confident of (float32 score >= 0.3) within 0.5 heatmap px
of float32 on torch, 1.41 on TensorFlow and JAX (one argmax step to a
diagonal neighbour: bfloat16 keeps 8 bits of mantissa, and near-equal
peaks swap), mean 0.015-0.06 px, scores within 0.051; in image pixels the
largest move is 5.6 px on torch and traced TensorFlow (a heatmap pixel is
~10 image px there). The tiny HRNet's heatmaps differ by at most 2.4% of
their peak. A training step under each policy gives a finite loss within
0.1% of float32's (measured) and updates the float32 BatchNorm statistics.

Cost: torch 15 s; TensorFlow 26 s in the default run (the tiny HRNet
heatmap check, 10 s more, with ``-m long``); JAX compiles every model once
per policy (3.5 min for this file), so there all of it runs with ``-m long``
(measured passing, same figures).
"""

import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keraspose  # noqa: E402
from coco_mini import coco_mini_people, coco_mini_training_samples  # noqa: E402
from keraspose.convert import from_mmpose  # noqa: E402
from keraspose.metainfo import load_metainfo  # noqa: E402
from keraspose.models.topdown_estimator import load_image  # noqa: E402
from keraspose.training import TopdownPyDataset, train_pipeline  # noqa: E402


def long_on(*backends):
    """``long`` (deselected by default) on ``backends``, where the check costs
    too much of the CI suite's time, and a default test elsewhere."""
    return pytest.mark.long if keras.config.backend() in backends else pytest.mark.slow


MAX_HEATMAP_PX = 2.0
MEAN_HEATMAP_PX = 0.2


class dtype_policy:
    """Run a block under a global dtype policy, restoring the previous one."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = keras.mixed_precision.dtype_policy()
        keras.mixed_precision.set_dtype_policy(self.name)

    def __exit__(self, *exc):
        keras.mixed_precision.set_dtype_policy(self.previous)


def _cheap(model):
    # TensorFlow traces a new graph per model and policy (~10 s each on the
    # 2-core box), for a few forward passes: eager runs the same kernels.
    # (Traced, the same checks measured the same figures.)
    if keras.config.backend() == "tensorflow":
        model.run_eagerly = True
    return model


def _tiny_hrnet(reference_dir):
    models = reference_dir / "models"
    return _cheap(from_mmpose(str(models / "tiny_hrnet_coco_config.json"), str(models / "tiny_hrnet_coco.pth")))


@long_on("jax")  # JAX: 70 s of XLA compiling (two models, two policies)
def test_tinypose_predict_under_mixed_bfloat16(data_dir):
    paths, boxes, _ = coco_mini_people(data_dir / "coco_mini")

    def predict():
        model = _cheap(keraspose.TopdownEstimator.from_preset("tinypose_coco_128x96", flip_test=False))
        crops = np.concatenate([model.crop_people(load_image(str(p)), b)[0] for p, b in zip(paths[:3], boxes[:3])])
        keypoints, scores = model.head.decode(model.predict_outputs(model.preprocess(crops)))
        return model, np.asarray(keypoints), np.asarray(scores)

    _, keypoints, scores = predict()
    with dtype_policy("mixed_bfloat16"):
        model, half_keypoints, half_scores = predict()
    assert model.backbone.compute_dtype == "bfloat16" and model.head.compute_dtype == "bfloat16"
    assert half_keypoints.dtype == np.float32 and half_scores.dtype == np.float32
    confident = scores >= 0.3
    assert confident.sum() >= 20
    # In heatmap pixels (the codec's resolution): crop pixels / stride.
    stride = model.input_size[0] / model.head.codec.heatmap_size[0]
    distance = np.linalg.norm(half_keypoints - keypoints, axis=-1)[confident] / stride
    print("tinypose bf16: heatmap px max", distance.max(), "mean", distance.mean(),
          "max score diff", np.abs(half_scores - scores).max())
    assert distance.max() <= MAX_HEATMAP_PX and distance.mean() <= MEAN_HEATMAP_PX
    assert np.abs(half_scores - scores).max() <= 0.1


@long_on("jax", "tensorflow")  # 47 s on JAX, 10 s on TensorFlow
def test_tiny_hrnet_heatmaps_under_mixed_bfloat16(reference_dir):
    crops = np.random.default_rng(0).normal(size=(2, 256, 192, 3)).astype("float32")
    heatmaps = _tiny_hrnet(reference_dir).predict_outputs(crops, flip_test=True)
    with dtype_policy("mixed_bfloat16"):
        half = _tiny_hrnet(reference_dir).predict_outputs(crops, flip_test=True)
    assert half.dtype == np.float32
    err = np.abs(half - heatmaps).max() / np.abs(heatmaps).max()
    print("tiny hrnet bf16 heatmaps: max err / peak", err)
    assert err <= 0.08


@pytest.fixture(scope="module")
def training_batch(reference_dir, data_dir):
    model = _tiny_hrnet(reference_dir)
    samples = coco_mini_training_samples(str(data_dir / "coco_mini"))[:2]
    data = TopdownPyDataset(samples, train_pipeline(model.head.codec, load_metainfo("coco"), seed=0),
                            model.preprocess, batch_size=2, seed=0)
    x, y = data[0]
    model.compile(optimizer=keras.optimizers.SGD(1e-3), run_eagerly=model.run_eagerly)
    return x, y, float(model.train_on_batch(x, y, return_dict=True)["loss"])


@long_on("jax")  # JAX: 40-60 s each (conversion and compiling)
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_training_step_under_mixed_policy(policy, reference_dir, training_batch):
    x, y, float32_loss = training_batch
    with dtype_policy(policy):
        model = _tiny_hrnet(reference_dir)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), run_eagerly=model.run_eagerly)
        statistics = [v for v in model.weights if "moving_mean" in v.path]
        before = [np.asarray(keras.ops.convert_to_numpy(v)) for v in statistics]
        loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
    # mixed_float16: compile wraps the optimizer in a dynamically scaled one.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    print(policy, "loss", loss, "float32", float32_loss)
    assert math.isfinite(loss) and loss == pytest.approx(float32_loss, rel=0.01)
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in statistics)
    after = [np.asarray(keras.ops.convert_to_numpy(v)) for v in statistics]
    assert all(np.isfinite(a).all() for a in after)
    assert sum(not np.array_equal(a, b) for a, b in zip(after, before)) == len(statistics)
