"""Training: loss, the acc_pose metric (against MMPose), the data pipeline, fit."""

import json

import keras
import numpy as np
import pytest
import torch

from keraspose.convert import from_mmpose
from keraspose.losses import KeypointMSELoss, PoseAccuracy
from keraspose.metainfo import load_metainfo
from keraspose.training import TopdownPyDataset, WarmupMultiStepSchedule, hrnet_recipe, train_pipeline


# For tests of the training loop's logic (callbacks, resuming, seeding), not
# of the compiled step: on TensorFlow, tracing the tiny HRNet's training step
# costs more than the few steps run eagerly (test_backup_and_restore 38 s ->
# 12 s); on JAX eager is the slower one (39 s vs ~16 s with the compilation
# cache), on torch it changes nothing.
EAGER_ON_TENSORFLOW = {"run_eagerly": keras.config.backend() == "tensorflow"}


def test_pose_accuracy_matches_mmpose(reference_dir):
    """MMPose's pose_pck_accuracy on real heatmaps (keypoint_functional.npz)."""
    ref = np.load(reference_dir / "metrics" / "keypoint_functional.npz")
    out = ref["heatmap_output"].transpose(0, 2, 3, 1)  # NCHW -> NHWC
    tgt = ref["heatmap_target"].transpose(0, 2, 3, 1)
    metric = PoseAccuracy(thr=0.05)
    metric.update_state(tgt, out, ref["mask"].astype("float32"))
    np.testing.assert_allclose(float(metric.result()), float(ref["pose_pck/avg"]), atol=1e-6)


def test_keypoint_mse_loss_equals_torch_formula():
    """MMPose: F.mse_loss(reduction='none') * target_weight[..., None, None], then mean."""
    rng = np.random.default_rng(0)
    pred = rng.random((2, 8, 6, 5), dtype=np.float32)
    target = rng.random((2, 8, 6, 5), dtype=np.float32)
    weights = np.array([[1, 0, 1, 1, 0], [0.5, 1, 1, 0, 1]], np.float32)
    expected = (
        torch.nn.functional.mse_loss(
            torch.from_numpy(pred).permute(0, 3, 1, 2), torch.from_numpy(target).permute(0, 3, 1, 2), reduction="none"
        )
        * torch.from_numpy(weights)[:, :, None, None]
    ).mean()
    got = KeypointMSELoss(use_target_weight=True).compute(target, pred, weights)
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)


def test_hrnet_recipe_learning_rates():
    """MMPose's HRNet schedule: 5e-4 * 0.001 at step 0, 5e-4 after 500 steps, x0.1 at epochs 170, 200."""
    _, epochs = hrnet_recipe(steps_per_epoch=10)
    assert epochs == 210
    sched = WarmupMultiStepSchedule(5e-4, [1700, 2000], warmup_steps=500)
    for step, lr in [(0, 5e-7), (250, 5e-4 * (0.001 + 0.999 * 0.5)), (500, 5e-4), (1699, 5e-4), (1700, 5e-5), (2000, 5e-6)]:
        np.testing.assert_allclose(float(sched(step)), lr, rtol=1e-5)


def test_rtmpose_schedule_matches_mmengine():
    """RTMPose's LinearLR(1e-5, end=30 iters) + CosineAnnealingLR(epochs 5-10, eta_min 5%, iter-based),
    10 steps per epoch; the learning rates MMEngine 0.10's schedulers gave at these steps."""
    from keraspose.training import WarmupCosineSchedule

    mmengine = {0: 4e-08, 15: 0.0020689848, 29: 0.004, 30: 0.004, 49: 0.004, 50: 0.004, 51: 0.0039962508,
                75: 0.0021, 99: 0.0002037492}
    schedule = WarmupCosineSchedule(4e-3, total_steps=100, cosine_start=50, warmup_steps=30)
    for step, lr in mmengine.items():
        np.testing.assert_allclose(float(schedule(step)), lr, rtol=1e-5, err_msg=str(step))


@pytest.fixture(scope="module")
def coco_mini_samples(data_dir):
    root = data_dir / "coco_mini"
    coco = json.loads((root / "annotations/person_keypoints_train2017.json").read_text())
    files = {i["id"]: i["file_name"] for i in coco["images"]}
    samples = []
    for a in coco["annotations"]:
        if a["num_keypoints"] > 0 and not a["iscrowd"]:
            x, y, w, h = a["bbox"]
            k = np.array(a["keypoints"], np.float32).reshape(1, 17, 3)
            samples.append(
                dict(
                    img_path=str(root / "train2017" / files[a["image_id"]]),
                    bbox=np.array([[x, y, x + w, y + h]], np.float32),
                    bbox_score=np.ones(1, np.float32),
                    keypoints=k[..., :2],
                    keypoints_visible=np.minimum(1, k[..., 2]),
                )
            )
    assert len(samples) == 86  # coco_mini's README: 86 people with keypoints
    return samples


@pytest.fixture(scope="module")
def tiny_model(reference_dir):
    d = reference_dir / "models"
    return from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")


def _dataset(samples, model, seed, **kwargs):
    pipeline = train_pipeline(model.head.codec, load_metainfo("coco"), seed=seed)
    return TopdownPyDataset(samples, pipeline, model.preprocess, batch_size=4, seed=seed, **kwargs)


def test_pipeline_is_reproducible(coco_mini_samples, tiny_model):
    a = _dataset(coco_mini_samples, tiny_model, seed=3)
    b = _dataset(coco_mini_samples, tiny_model, seed=3)
    c = _dataset(coco_mini_samples, tiny_model, seed=4)
    xa, ya = a[1]
    xb, yb = b[1]
    xc, _ = c[1]
    assert xa.shape == (4, 256, 192, 3) and ya["heatmaps"].shape == (4, 64, 48, 17)
    assert ya["keypoint_weights"].shape == (4, 17)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya["heatmaps"], yb["heatmaps"])
    assert not np.array_equal(xa, xc)
    # A new epoch draws a new order and new augmentations.
    a.on_epoch_end()
    assert not np.array_equal(a[1][0], xa)


def test_missing_image_mid_epoch(coco_mini_samples, tiny_model, tmp_path):
    samples = list(coco_mini_samples[:8])
    samples[5] = dict(samples[5], img_path=str(tmp_path / "gone.jpg"))
    data = _dataset(samples, tiny_model, seed=0, shuffle=False)
    data[0]  # the first batch does not touch the missing file
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        data[1]
    skipping = _dataset(samples, tiny_model, seed=0, shuffle=False, on_missing_image="skip")
    with pytest.warns(UserWarning, match="gone.jpg"):
        x, y = skipping[1]
    assert x.shape[0] == 4 and np.isfinite(x).all()


def test_fit_reduces_loss(coco_mini_samples, reference_dir):
    d = reference_dir / "models"
    model = from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
    data = _dataset(coco_mini_samples[:24], model, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(data, epochs=3, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0], history
    assert "acc_pose" in history
    # Training updated the BatchNorm statistics as well as the weights.
    fresh = from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
    assert not np.allclose(
        keras.ops.convert_to_numpy(model.backbone.conv1.moving_mean),
        keras.ops.convert_to_numpy(fresh.backbone.conv1.moving_mean),
    )


def test_compile_rejects_a_loss(tiny_model):
    with pytest.raises(ValueError, match="head's loss"):
        tiny_model.compile(optimizer="adam", loss="mse")


def test_worker_threads_build_the_same_batches(coco_mini_samples, tiny_model):
    """Batches built concurrently in threads (Keras' workers > 1) equal the sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    data = _dataset(coco_mini_samples[:24], tiny_model, seed=7)
    sequential = [data[i] for i in range(len(data))]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(data.__getitem__, range(len(data))))
    for (xs, ys), (xt, yt) in zip(sequential, threaded):
        np.testing.assert_array_equal(xs, xt)
        np.testing.assert_array_equal(ys["heatmaps"], yt["heatmaps"])


def test_fit_is_reproducible_from_the_seed(coco_mini_samples, reference_dir):
    """Two fits from the same weights and seed end with the same weights
    (Keras' own unseeded batch shuffling must not apply to this dataset)."""
    d = reference_dir / "models"

    def train():
        model = from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **EAGER_ON_TENSORFLOW)
        model.fit(_dataset(coco_mini_samples[:16], model, seed=2), epochs=1, verbose=0)
        return [keras.ops.convert_to_numpy(w) for w in model.weights]

    for a, b in zip(train(), train()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_train_pipeline_with_photometric_distortion(coco_mini_samples, tiny_model):
    """The optional photometric step changes pixels but not the targets, and stays seeded."""
    plain = TopdownPyDataset(coco_mini_samples[:8], train_pipeline(tiny_model.head.codec, load_metainfo("coco"), seed=1),
                             tiny_model.preprocess, batch_size=4, seed=1)
    pipeline = train_pipeline(tiny_model.head.codec, load_metainfo("coco"), seed=1, photometric=True)
    photo = TopdownPyDataset(coco_mini_samples[:8], pipeline, tiny_model.preprocess, batch_size=4, seed=1)
    (xp, yp), (xq, yq) = plain[0], photo[0]
    np.testing.assert_array_equal(yp["heatmaps"], yq["heatmaps"])
    assert not np.array_equal(xp, xq)
    np.testing.assert_array_equal(photo[0][0], xq)


def test_shards_together_are_one_process_batches(coco_mini_samples, tiny_model):
    # Data parallelism with one process per replica (torchrun): the shards of
    # a global batch are that batch's samples, augmented alike; a short last
    # global batch is padded from the start so every shard makes the same steps.
    samples = coco_mini_samples[:6]
    whole = _dataset(samples, tiny_model, seed=3)  # batches of 4
    shards = [
        TopdownPyDataset(samples, train_pipeline(tiny_model.head.codec, load_metainfo("coco"), seed=3),
                         tiny_model.preprocess, batch_size=2, seed=3, num_shards=2, shard_index=i)
        for i in (0, 1)
    ]
    assert len(whole) == len(shards[0]) == len(shards[1]) == 2
    x, y = whole[0]
    np.testing.assert_array_equal(np.concatenate([shards[0][0][0], shards[1][0][0]]), x)
    np.testing.assert_array_equal(np.concatenate([shards[0][0][1]["heatmaps"], shards[1][0][1]["heatmaps"]]),
                                  y["heatmaps"])
    last = whole[1][0]  # the 2 remaining samples
    np.testing.assert_array_equal(shards[0][1][0], last)
    np.testing.assert_array_equal(shards[1][1][0], x[:2])  # padded with the epoch's first samples
    with pytest.raises(ValueError, match="shard_index=2"):
        TopdownPyDataset(samples, shards[0].pipeline, tiny_model.preprocess, num_shards=2, shard_index=2)
