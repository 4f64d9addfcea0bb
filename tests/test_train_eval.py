"""Evaluation during and after training: evaluate_topdown, the CocoEvaluation
callback (save-best-by-AP), resuming with BackupAndRestore, `keraspose evaluate`,
and CocoStyleDataset samples feeding TopdownPyDataset.

The model with real accuracy is the bundled PP-TinyPose 128x96 preset; its
AP on coco_mini is checked against the reference computed from the original
ncnn runtime's predictions (``reference/tinypose``).
"""

import json

import keras
import numpy as np
import pytest

from keraspose.cli import main
from keraspose.convert import from_mmpose
from keraspose.datasets import CocoStyleDataset
from keraspose.evaluation import evaluate_topdown
from keraspose.models.topdown_estimator import TopdownEstimator, load_image
from keraspose.training import CocoEvaluation, TopdownPyDataset, train_pipeline, val_pipeline


# For tests of the training loop's logic (callbacks, resuming, seeding), not
# of the compiled step: on TensorFlow, tracing the tiny HRNet's training step
# costs more than the few steps run eagerly (test_backup_and_restore 38 s ->
# 12 s); on JAX eager is the slower one (39 s vs ~16 s with the compilation
# cache), on torch it changes nothing.
EAGER_ON_TENSORFLOW = {"run_eagerly": keras.config.backend() == "tensorflow"}


@pytest.fixture(scope="module")
def coco_mini(data_dir):
    root = data_dir / "coco_mini"
    return CocoStyleDataset(root / "annotations/person_keypoints_train2017.json", root / "train2017", test_mode=True)


@pytest.fixture(scope="module")
def test_coco(data_dir):
    root = data_dir / "mmpose_tests/coco"
    return CocoStyleDataset(root / "test_coco.json", root, test_mode=True)


@pytest.fixture(scope="module")
def tinypose():
    return TopdownEstimator.from_preset("tinypose_coco_128x96", flip_test=False)


def test_evaluate_topdown_reproduces_the_reference_ap(coco_mini, tinypose, reference_dir):
    """Scored like the reference (mean keypoint score, no NMS), our whole
    inference + evaluation reproduces the AP of the ncnn runtime's results."""
    ref = json.loads((reference_dir / "tinypose/tinypose_128x96_coco_stats.json").read_text())
    stats = evaluate_topdown(tinypose, coco_mini, score_mode="keypoint", nms_mode="none")
    assert len(stats) == 10
    assert abs(stats["coco/AP"] - ref["AP"]) < 0.005, (stats["coco/AP"], ref["AP"])
    # MMPose's default scoring (box x confident-keypoint mean, OKS-NMS) on
    # ground-truth boxes changes the ranking only a little.
    default = evaluate_topdown(tinypose, coco_mini)
    assert abs(default["coco/AP"] - stats["coco/AP"]) < 0.02


def test_evaluate_topdown_writes_results_and_checks_keypoints(coco_mini, tinypose, data_dir, tmp_path):
    mpii = CocoStyleDataset.__new__(CocoStyleDataset)  # only len/num_keypoints are consulted first
    mpii.data_list, mpii.ann_file, mpii.test_mode = [{}], "test_mpii.json", True
    from keraspose.metainfo import load_metainfo

    mpii.metainfo = load_metainfo("mpii")
    with pytest.raises(ValueError, match="16 .*17|17 .*16"):
        evaluate_topdown(tinypose, mpii)

    small = CocoStyleDataset(
        data_dir / "mmpose_tests/coco/test_coco.json", data_dir / "mmpose_tests/coco", test_mode=True
    )
    prefix = tmp_path / "run"
    stats = evaluate_topdown(tinypose, small, outfile_prefix=str(prefix))
    results = json.loads((tmp_path / "run.keypoints.json").read_text())
    assert 0 < len(results) <= len(small)
    assert all(len(r["keypoints"]) == 17 * 3 for r in results)
    # The written results, rescored by plain pycocotools with MMPose's
    # semantics, give the same AP as the metric did.
    from keraspose.evaluation import evaluate_coco_results

    again = evaluate_coco_results(small.ann_file, results, mmpose_semantics=True)
    assert again["AP"] == pytest.approx(stats["coco/AP"], abs=1e-9)


def test_training_crops_equal_inference_crops(coco_mini, tinypose):
    """The validation pipeline on a CocoStyleDataset sample crops exactly what
    predict() crops for the same box: training and inference see the same input."""
    pipeline = val_pipeline(tinypose.head.codec)
    for index in (0, 7, 40):
        sample = coco_mini[index]
        results = pipeline(dict(sample))
        rgb = load_image(sample["img_path"])
        crops, centers, scales = tinypose.crop_people(rgb, sample["bbox"])
        np.testing.assert_array_equal(results["img"][..., ::-1], crops[0])
        np.testing.assert_allclose(results["bbox_scale"][0], scales[0], rtol=1e-6)


def test_coco_style_dataset_feeds_fit(data_dir, reference_dir):
    """CocoStyleDataset (training mode) -> TopdownPyDataset -> fit, on the coco_mini photos."""
    root = data_dir / "coco_mini"
    train = CocoStyleDataset(root / "annotations/person_keypoints_train2017.json", root / "train2017")
    d = reference_dir / "models"
    model = from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
    data = TopdownPyDataset(train, train_pipeline(model.head.codec, train.metainfo, seed=1), model.preprocess,
                            batch_size=8, seed=1)
    x, y = data[0]
    assert x.shape == (8, 256, 192, 3) and y["heatmaps"].shape == (8, 64, 48, 17)
    # Only labelled keypoints are trained on: each weight is 0 where the
    # annotation has no keypoint (the weights may drop more: out of crop),
    # with left and right swapped for the people RandomFlip mirrored.
    visible = np.stack([train[i]["keypoints_visible"][0] for i in data._order[:8]])
    mirrored = visible[:, train.metainfo.flip_indices]
    w = y["keypoint_weights"]
    assert all(np.all(w[i] <= visible[i]) or np.all(w[i] <= mirrored[i]) for i in range(8))
    assert y["keypoint_weights"].sum() > 0
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(data, epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history["loss"][0])


def _small_train_data(model, data_dir, n=16, seed=0):
    root = data_dir / "coco_mini"
    train = CocoStyleDataset(root / "annotations/person_keypoints_train2017.json", root / "train2017")
    samples = [train[i] for i in range(n)]
    return TopdownPyDataset(samples, train_pipeline(model.head.codec, train.metainfo, seed=seed), model.preprocess,
                            batch_size=8, seed=seed)


def test_coco_evaluation_callback_saves_the_best_preset(data_dir, test_coco, tmp_path):
    model = TopdownEstimator.from_preset("tinypose_coco_128x96", flip_test=False)
    data = _small_train_data(model, data_dir, n=8)
    best_dir = tmp_path / "best"
    callback = CocoEvaluation(test_coco, every_n_epochs=1, save_best=best_dir, verbose=0)
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "ckpt.weights.h5"), monitor="coco/AP", mode="max", save_best_only=True, save_weights_only=True
    )
    # The callback is under test, not the compiled step: tracing TinyPose's
    # training step (many small layers) took 70 s on TensorFlow (graph, XLA
    # off) and ~100 s on JAX (XLA) on the 2-core box; eager steps take 5 s.
    model.compile(optimizer=keras.optimizers.Adam(1e-5), run_eagerly=True)
    history = model.fit(data, epochs=2, verbose=0, callbacks=[callback, checkpoint]).history
    # The stats are in the epoch logs, so History and ModelCheckpoint see them.
    assert len(history["coco/AP"]) == 2 and len(history["coco/AR .5"]) == 2
    assert (tmp_path / "ckpt.weights.h5").exists()
    assert [e for e, _ in callback.history] == [0, 1]
    assert callback.best == max(history["coco/AP"])
    # The saved best model scores what the callback recorded for it.
    best = TopdownEstimator.from_preset(str(best_dir), flip_test=False)
    assert evaluate_topdown(best, test_coco)["coco/AP"] == pytest.approx(callback.best, abs=1e-6)
    record = json.loads((tmp_path / "best.best.json").read_text())
    assert record["best"] == pytest.approx(callback.best) and record["epoch"] == callback.best_epoch
    # A resumed run starts from the recorded best instead of -inf.
    assert CocoEvaluation(test_coco, save_best=best_dir).best == pytest.approx(callback.best)


def test_evaluation_every_n_epochs(data_dir, test_coco, reference_dir):
    d = reference_dir / "models"
    model = from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
    data = _small_train_data(model, data_dir, n=8)
    callback = CocoEvaluation(test_coco, every_n_epochs=2, verbose=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-5), **EAGER_ON_TENSORFLOW)
    model.fit(data, epochs=3, verbose=0, callbacks=[callback])
    assert [e for e, _ in callback.history] == [1]
    with pytest.raises(ValueError, match="every_n_epochs"):
        CocoEvaluation(test_coco, every_n_epochs=0)
    # Validation data of another keypoint set fails before any training step.
    mpii = CocoStyleDataset.__new__(CocoStyleDataset)
    mpii.data_list, mpii.ann_file, mpii.test_mode = [{}], "test_mpii.json", True
    from keraspose.metainfo import load_metainfo

    mpii.metainfo = load_metainfo("mpii")
    steps = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: steps.append(batch))
    with pytest.raises(ValueError, match="16 keypoints but the model predicts 17"):
        model.fit(data, epochs=1, verbose=0, callbacks=[CocoEvaluation(mpii, verbose=0), counter])
    assert steps == []


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_backup_and_restore_resumes_the_same_run(data_dir, reference_dir, tmp_path):
    """Interrupted after epoch 1 and resumed with BackupAndRestore, training
    ends with the weights of the uninterrupted run: the resumed epochs replay
    their own order and augmentation (SyncDatasetEpoch) and the optimizer state."""
    d = reference_dir / "models"

    def fresh():
        model = from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **EAGER_ON_TENSORFLOW)
        return model, _small_train_data(model, data_dir, n=8, seed=5)

    straight, data = fresh()
    straight.fit(data, epochs=3, verbose=0)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    resumed, data = fresh()
    with pytest.raises(KeyboardInterrupt):
        resumed.fit(data, epochs=3, verbose=0, callbacks=[backup, _Interrupt(at_epoch=2)])
    resumed, data = fresh()  # a new process would start from scratch like this
    resumed.fit(data, epochs=3, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])

    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-5, err_msg=a.path
        )


def test_cli_evaluate(data_dir, tinypose, tmp_path, capsys, monkeypatch):
    import keraspose.cli

    monkeypatch.setattr(keraspose.cli, "_load_model", lambda handle: tinypose)
    root = data_dir / "mmpose_tests/coco"
    out = tmp_path / "eval"
    code = main(["evaluate", "tinypose_coco_128x96", "--ann-file", str(root / "test_coco.json"),
                 "--image-root", str(root), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "coco/AP " in printed and "12/12" in printed  # the stats and the progress bar
    record = json.loads((out / "stats.json").read_text())
    assert record["people"] == 12
    expected = evaluate_topdown(tinypose, CocoStyleDataset(root / "test_coco.json", root, test_mode=True))
    assert record["stats"] == pytest.approx(dict(expected), abs=1e-12)
    assert (out / "keypoints.keypoints.json").exists()

    # Detections as boxes: the detection file's people are evaluated.
    code = main(["evaluate", "tinypose_coco_128x96", "--ann-file", str(root / "test_coco.json"),
                 "--image-root", str(root), "--bbox-file", str(root / "test_coco_det_AP_H_56.json"),
                 "--bbox-score-thr", "0.3", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "on 33 people (detections" in printed


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--ann-file", "missing.json", "--image-root", "."], "--ann-file missing.json: no such file"),
        (["--ann-file", "{coco}/test_coco.json", "--image-root", "nowhere"], "--image-root nowhere: no such folder"),
        (["--ann-file", "{mpii}/test_mpii.json", "--image-root", "{mpii}"], "must hold a COCO-format json object"),
        (["--ann-file", "{crowd}/test_crowdpose.json", "--image-root", "{crowd}"], "14 keypoints"),
    ],
)
def test_cli_evaluate_errors(argv, needle, data_dir, tinypose, capsys, monkeypatch):
    import keraspose.cli

    monkeypatch.setattr(keraspose.cli, "_load_model", lambda handle: tinypose)
    dirs = {name: data_dir / "mmpose_tests" / name for name in ("coco", "mpii", "crowdpose")}
    argv = [a.format(coco=dirs["coco"], mpii=dirs["mpii"], crowd=dirs["crowdpose"]) for a in argv]
    code = main(["evaluate", "tinypose_coco_128x96", *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err


def _upper_body_metainfo():
    """A custom 11-keypoint set (COCO's face and arms), as a user would describe it."""
    from keraspose.metainfo import load_metainfo

    coco = load_metainfo("coco").to_dict()
    keep = list(range(11))
    return {
        "dataset_name": "upper_body",
        "keypoint_names": [coco["keypoint_names"][i] for i in keep],
        "flip_indices": [coco["flip_indices"][i] for i in keep],
        "sigmas": [coco["sigmas"][i] for i in keep],
        "skeleton_links": [link for link in coco["skeleton_links"] if max(link) < 11],
        "upper_body_ids": keep,
        "lower_body_ids": [],
    }


def test_from_preset_with_another_keypoint_set(tinypose):
    """Fine-tuning on a custom keypoint set starts from the preset's trained
    layers; only the head's final layer is new, sized for the new set."""
    custom = TopdownEstimator.from_preset("tinypose_coco_128x96", flip_test=False, metainfo=_upper_body_metainfo())
    assert custom.metainfo.num_keypoints == 11 and custom.head.out_channels == 11
    changed = 0
    for old, new in zip(tinypose.weights, custom.weights):
        if tuple(old.shape) == tuple(new.shape):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(old), keras.ops.convert_to_numpy(new))
        else:
            changed += 1
            assert new.shape[-1] == 11 or new.shape[0] == 11
    assert changed == 2  # the final conv's kernel and bias
    x = tinypose.preprocess(load_image(str(_first_image()))[None, :128, :96])
    assert tuple(custom(x).shape) == (1, 32, 24, 11)
    # The same keypoint count under another description keeps every weight.
    same = TopdownEstimator.from_preset("tinypose_coco_128x96", flip_test=False, metainfo="coco")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(same(x)), keras.ops.convert_to_numpy(tinypose(x)), atol=1e-6)


def _first_image():
    from conftest import DATA

    return sorted((DATA / "coco_mini/train2017").glob("*.jpg"))[0]


def test_catalogue_architecture_builds_offline(monkeypatch):
    """from_preset(name, load_weights=False) needs no download: training from scratch works offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = TopdownEstimator.from_preset("hrnet_w32_coco", load_weights=False, flip_test=False, metainfo="mpii")
    # MMPose's HRNet-W32 count (28,536,113) with a 16-keypoint final 1x1 conv
    # instead of 17: 32 inputs + 1 bias fewer.
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 28_536_113 - 33
    assert model.flip_test is False
    assert model.head.out_channels == 16 and model.metainfo.dataset_name == "mpii"


def test_evaluation_chain_matches_mmpose_with_detections(data_dir, reference_dir, tmp_path):
    """The whole MMPose test loop (detections >= 0.3 as boxes, validation crops,
    flip test, decoding, box x keypoint rescoring, OKS-NMS, results file) on
    the tiny reference HRNet: the same people survive with the same keypoints
    and scores as in MMPose 1.3.2's own results file
    (tests/fixtures, made by tools/make_topdown_eval_fixture.py)."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures"
    expected = json.loads((fixtures / "tiny_hrnet_test_coco_det.keypoints.json").read_text())
    expected_stats = json.loads((fixtures / "tiny_hrnet_test_coco_det.stats.json").read_text())
    d = reference_dir / "models"
    model = from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
    root = data_dir / "mmpose_tests/coco"
    dets = CocoStyleDataset(root / "test_coco.json", root, bbox_file=root / "test_coco_det_AP_H_56.json",
                            bbox_score_thr=0.3, test_mode=True)
    assert len(dets) == expected_stats["people"] == 33
    stats = evaluate_topdown(model, dets, outfile_prefix=str(tmp_path / "ours"))
    assert stats == pytest.approx(expected_stats["stats"], abs=1e-6)
    ours = json.loads((tmp_path / "ours.keypoints.json").read_text())
    assert len(ours) == len(expected)

    def key(r):
        return (r["image_id"], -r["score"])

    for mine, ref in zip(sorted(ours, key=key), sorted(expected, key=key)):
        assert mine["image_id"] == ref["image_id"]
        assert mine["score"] == pytest.approx(ref["score"], rel=1e-4)
        a, b = np.reshape(mine["keypoints"], (-1, 3)), np.reshape(ref["keypoints"], (-1, 3))
        np.testing.assert_allclose(a[:, :2], b[:, :2], atol=1e-2)  # image pixels
        # Scores are heatmap maxima (tens, for random weights): float32
        # rounding relative to the largest of them.
        np.testing.assert_allclose(a[:, 2], b[:, 2], rtol=1e-4, atol=1e-5 * np.abs(b[:, 2]).max())
