"""Evaluation parity with MMPose 1.3.2: functional metrics, OKS-NMS, CocoMetric, pycocotools AP.

Every expected number comes from the reference files in ``shared/reference``
or, where hard-coded, from running MMPose 1.3.2 itself (noted at the value).
"""

import json

import numpy as np
import pytest

from keraspose.datasets import CocoStyleDataset
from keraspose.evaluation import (
    COCO_SIGMAS,
    CocoMetric,
    compute_oks,
    evaluate_coco_results,
    keypoint_auc,
    keypoint_epe,
    keypoint_nme,
    keypoint_pck_accuracy,
    oks_nms,
    pose_pck_accuracy,
)

STAT_NAMES = ["AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]


@pytest.fixture(scope="module")
def functional_ref(reference_dir):
    return dict(np.load(reference_dir / "metrics/keypoint_functional.npz"))


@pytest.fixture(scope="module")
def coco_metric_ref(reference_dir):
    return json.loads((reference_dir / "metrics/coco_metric.json").read_text())


@pytest.fixture(scope="module")
def coco_sigmas(reference_dir):
    return np.array(json.loads((reference_dir / "transforms/coco_metainfo.json").read_text())["sigmas"])


# ---------------------------------------------------------------- functional


def test_pck_matches_mmpose_including_edge_cases(functional_ref):
    r = functional_ref
    # Instance 1 has a zero normalisation factor. MMPose's keypoint_pck_accuracy
    # drops such an instance but also overwrites the caller's factor with 1e6
    # (the npz stores the array after that), so MMPose's *later* calls (thr 0.1
    # and 0.2) saw 1e6 and counted instance 1 with ~0 distances. We never
    # modify inputs; to reproduce MMPose's three calls we pass what each saw.
    assert np.all(r["norm_factor"][1] == 1e6)
    zero_factor = r["norm_factor"].copy()
    zero_factor[1] = 0.0
    seen_by_mmpose = {0.05: zero_factor, 0.1: r["norm_factor"], 0.2: r["norm_factor"]}
    for thr, norm in seen_by_mmpose.items():
        norm_before = norm.copy()
        acc, avg, cnt = keypoint_pck_accuracy(r["pred"], r["gt"], r["mask"], thr, norm)
        np.testing.assert_allclose(acc, r[f"pck_thr{thr}/acc"], rtol=0, atol=1e-12)
        assert avg == pytest.approx(float(r[f"pck_thr{thr}/avg"]), abs=1e-12)
        assert cnt == int(r[f"pck_thr{thr}/cnt"])
        np.testing.assert_array_equal(norm, norm_before)  # caller's array untouched


def test_pck_fully_masked_instance_is_ignored(functional_ref):
    r = functional_ref
    assert not r["mask"][0].any()  # instance 0: every keypoint masked
    pred = r["pred"].copy()
    pred[0] += 1000.0  # a wild prediction on a masked instance changes nothing
    acc, _, _ = keypoint_pck_accuracy(pred, r["gt"], r["mask"], 0.2, r["norm_factor"])
    np.testing.assert_allclose(acc, r["pck_thr0.2/acc"], atol=1e-12)


def test_auc_epe_nme_match_mmpose(functional_ref):
    r = functional_ref
    assert keypoint_auc(r["pred"], r["gt"], r["mask"], 30.0) == pytest.approx(float(r["auc_norm30"]), abs=1e-12)
    assert keypoint_epe(r["pred"], r["gt"], r["mask"]) == pytest.approx(float(r["epe"]), abs=1e-9)
    assert keypoint_nme(r["pred"], r["gt"], r["mask"], r["nme_norm_factor"]) == pytest.approx(float(r["nme"]), abs=1e-9)


def test_pose_pck_accuracy_matches_mmpose(functional_ref):
    r = functional_ref
    acc, avg, cnt = pose_pck_accuracy(r["heatmap_output"], r["heatmap_target"], r["mask"], thr=0.05)
    np.testing.assert_allclose(acc, r["pose_pck/acc"], atol=1e-12)
    assert avg == pytest.approx(float(r["pose_pck/avg"]), abs=1e-12)
    assert cnt == int(r["pose_pck/cnt"])
    # The Keras (channels-last) layout gives the same numbers.
    acc_last, avg_last, _ = pose_pck_accuracy(
        np.moveaxis(r["heatmap_output"], 1, -1),
        np.moveaxis(r["heatmap_target"], 1, -1),
        r["mask"],
        thr=0.05,
        data_format="channels_last",
    )
    np.testing.assert_allclose(acc_last, r["pose_pck/acc"], atol=1e-12)
    assert avg_last == pytest.approx(float(r["pose_pck/avg"]), abs=1e-12)


def test_pose_pck_of_target_against_itself_is_perfect(functional_ref):
    r = functional_ref
    acc, avg, cnt = pose_pck_accuracy(r["heatmap_target"], r["heatmap_target"], r["mask"])
    valid = r["mask"].any(axis=0)
    assert cnt == valid.sum() and avg == 1.0
    np.testing.assert_array_equal(acc[valid], 1.0)


def _nms_instances(coco_metric_ref):
    """People of image 197388 at 15 px noise and at 0 px: pairs overlap, so NMS has work."""
    levels = coco_metric_ref["levels"]
    preds = [p for lvl in (levels[3], levels[0]) for p in lvl["predictions"] if p["image_id"] == 197388]
    out = []
    for p in preds:
        k = np.concatenate([np.array(p["keypoints"]), np.array(p["keypoint_scores"])[:, None]], 1)
        area = float(np.prod(k[:, :2].max(0) - k[:, :2].min(0)))
        out.append(dict(keypoints=k, score=p["bbox_score"] * np.mean(p["keypoint_scores"]), area=area))
    return out


def test_oks_nms_and_oks_match_mmpose(coco_metric_ref, coco_sigmas):
    db = _nms_instances(coco_metric_ref)
    # Expected values: mmpose.evaluation.functional.nms.oks_nms / oks_iou
    # (MMPose 1.3.2) on exactly these instances.
    assert oks_nms(db, 0.9, coco_sigmas).tolist() == [8, 6, 1, 4, 5, 2, 9, 3, 7, 0]
    assert oks_nms(db, 0.5, coco_sigmas).tolist() == [8, 6, 4, 5, 2]
    assert oks_nms(db, 0.3, coco_sigmas).tolist() == [8, 6, 4, 2, 0]
    assert oks_nms(db, 0.5, coco_sigmas, vis_thr=0.3).tolist() == [8, 6, 4, 5, 2]
    others = np.stack([d["keypoints"] for d in db[1:]])
    areas = np.array([d["area"] for d in db[1:]])
    mmpose_oks = [0.2981235980987549, 0.0546543188393116, 0.0034229971934109926, 0.0005812064046040177,
                  0.836402416229248, 0.274811714887619, 0.0351162813603878, 0.04106258228421211,
                  0.018746478483080864]  # fmt: skip
    np.testing.assert_allclose(compute_oks(db[0]["keypoints"], others, db[0]["area"], areas, coco_sigmas), mmpose_oks, rtol=1e-6)
    mmpose_oks_vis = [0.37458857893943787, 2.2132624053483596e-06, 2.521861097193323e-05, 4.632211947352971e-09,
                      0.910723090171814, 0.26668521761894226, 7.144098344724625e-05, 0.001291607622988522,
                      5.043492024014995e-08]  # fmt: skip
    oks_vis = compute_oks(db[0]["keypoints"].reshape(-1), others.reshape(len(others), -1), db[0]["area"], areas, coco_sigmas, vis_thr=0.5)
    np.testing.assert_allclose(oks_vis, mmpose_oks_vis, rtol=1e-5, atol=1e-12)
    # The default sigmas are COCO's.
    np.testing.assert_allclose(COCO_SIGMAS, coco_sigmas)
    assert oks_nms([], 0.9).tolist() == []


# ---------------------------------------------------------------- CocoMetric


def _fill(metric, predictions, with_ids=True):
    for p in predictions:
        metric.add(
            p["image_id"],
            np.array(p["keypoints"])[None],
            np.array(p["keypoint_scores"])[None],
            [p["bbox_score"]],
            ids=[p["ann_id"]] if with_ids else None,
        )


def _assert_stats(stats, expected, prefix="coco/"):
    assert list(stats) == [prefix + n for n in STAT_NAMES]
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_coco_metric_matches_mmpose(level, coco_metric_ref, coco_sigmas, data_dir):
    ref = coco_metric_ref["levels"][level]
    metric = CocoMetric(data_dir / "mmpose_tests" / coco_metric_ref["ann_file"], sigmas=coco_sigmas)
    _fill(metric, ref["predictions"])
    _assert_stats(metric.evaluate(), ref["mmpose_stats"])


def test_coco_metric_with_metainfo_and_auto_ids(coco_metric_ref, data_dir):
    ref = coco_metric_ref["levels"][2]
    metric = CocoMetric(data_dir / "mmpose_tests/coco/test_coco.json", metainfo="coco")
    _fill(metric, ref["predictions"], with_ids=False)
    _assert_stats(metric.evaluate(), ref["mmpose_stats"])


def test_coco_metric_from_dataset_samples(coco_metric_ref, data_dir):
    """Samples of CocoStyleDataset carry img_id / id / category_id for add()."""
    ref = coco_metric_ref["levels"][1]
    by_ann = {p["ann_id"]: p for p in ref["predictions"]}
    metric = CocoMetric(data_dir / "mmpose_tests/coco/test_coco.json")
    dataset = CocoStyleDataset(data_dir / "mmpose_tests/coco/test_coco.json", data_dir / "mmpose_tests/coco")
    for sample in dataset:
        p = by_ann[sample["id"]]
        metric.add(sample, np.array(p["keypoints"])[None], np.array(p["keypoint_scores"])[None], [p["bbox_score"]])
    # MMPose's run also predicted the two people without labelled keypoints
    # (num_keypoints 0, so not dataset samples); add them directly so the
    # prediction set is the reference's.
    extra = [p for p in ref["predictions"] if p["ann_id"] not in {s["id"] for s in dataset}]
    assert len(extra) == 2
    _fill(metric, extra)
    _assert_stats(metric.evaluate(), ref["mmpose_stats"])


def test_coco_metric_drops_repeated_predictions(coco_metric_ref, data_dir):
    # MMPose removes a second prediction with the same id (repeated batches).
    ref = coco_metric_ref["levels"][2]
    metric = CocoMetric(data_dir / "mmpose_tests/coco/test_coco.json")
    _fill(metric, ref["predictions"])
    _fill(metric, ref["predictions"])
    assert len(metric) == 28 and len(metric.results()) == 14
    _assert_stats(metric.evaluate(), ref["mmpose_stats"])
    metric.reset()
    assert len(metric) == 0


def test_coco_metric_writes_results_atomically(coco_metric_ref, data_dir, tmp_path):
    ref = coco_metric_ref["levels"][3]
    ann_file = data_dir / "mmpose_tests/coco/test_coco.json"
    metric = CocoMetric(ann_file, outfile_prefix=str(tmp_path / "run1"))
    _fill(metric, ref["predictions"])
    stats = metric.evaluate()
    out = tmp_path / "run1.keypoints.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1.keypoints.json"]  # no temp file left
    written = json.loads(out.read_text())
    assert len(written) == 14 and len(written[0]["keypoints"]) == 17 * 3
    # Scoring the written file with MMPose's rules gives MMPose's numbers.
    again = evaluate_coco_results(ann_file, out, mmpose_semantics=True, prefix="coco")
    _assert_stats(again, ref["mmpose_stats"])
    _assert_stats(stats, ref["mmpose_stats"])
    # format_only: the file, no evaluation.
    only = CocoMetric(ann_file, outfile_prefix=str(tmp_path / "run2"), format_only=True)
    _fill(only, ref["predictions"])
    assert only.evaluate() == {} and (tmp_path / "run2.keypoints.json").is_file()


def test_coco_metric_is_quiet_unless_verbose(coco_metric_ref, data_dir, capsys):
    ref = coco_metric_ref["levels"][0]
    metric = CocoMetric(data_dir / "mmpose_tests/coco/test_coco.json")
    _fill(metric, ref["predictions"])
    metric.evaluate()
    assert capsys.readouterr().out == ""
    metric.verbose = True
    metric.evaluate()
    assert "Average Precision" in capsys.readouterr().out


def test_coco_metric_input_errors(data_dir, tmp_path):
    ann_file = data_dir / "mmpose_tests/coco/test_coco.json"
    metric = CocoMetric(ann_file)
    with pytest.raises(ValueError, match="image_id 12345"):
        metric.add(12345, np.zeros((1, 17, 2)), np.ones((1, 17)))
    with pytest.raises(ValueError, match=r"\(N, 17, 2\)"):
        metric.add(785, np.zeros((1, 16, 2)), np.ones((1, 16)))
    with pytest.raises(ValueError, match="score_mode"):
        CocoMetric(ann_file, score_mode="nope")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        CocoMetric(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="16"):
        CocoMetric(ann_file, metainfo="mpii")  # 16 sigmas for a 17-keypoint file


def test_coco_metric_without_predictions_scores_zero(data_dir):
    stats = CocoMetric(data_dir / "mmpose_tests/coco/test_coco.json").evaluate()
    assert stats["coco/AP"] == 0.0


# ---------------------------------------------------------------- plain pycocotools


@pytest.mark.parametrize("size", ["256x192", "128x96"])
def test_evaluate_coco_results_matches_tinypose_stats(size, reference_dir, data_dir):
    # The tinypose stats were scored with plain pycocotools COCOeval
    # (iouType keypoints, COCO sigmas): the default mode here.
    expected = json.loads((reference_dir / f"tinypose/tinypose_{size}_coco_stats.json").read_text())
    ann_file = data_dir / "coco_mini/annotations/person_keypoints_train2017.json"
    results = reference_dir / f"tinypose/tinypose_{size}_results.json"
    stats = evaluate_coco_results(ann_file, results)
    assert list(stats) == STAT_NAMES
    for name in STAT_NAMES:
        assert stats[name] == pytest.approx(expected[name], abs=1e-6), name
    # On COCO data MMPose's xtcocotools rules give the same numbers.
    mm = evaluate_coco_results(ann_file, json.loads(results.read_text()), mmpose_semantics=True)
    for name in STAT_NAMES:
        assert mm[name] == pytest.approx(expected[name], abs=1e-6), name


def test_mmpose_semantics_follow_xtcocotools_on_edge_cases(coco_metric_ref, data_dir, tmp_path):
    """Annotation id 0, no areas (use_area=False), a stale num_keypoints, a detection with no positive score."""
    gt = json.loads((data_dir / "mmpose_tests/coco/test_coco.json").read_text())
    gt["annotations"][0]["id"] = 0
    for ann in gt["annotations"]:
        ann.pop("area", None)
    gt["annotations"][1]["num_keypoints"] = 0  # xtcocotools counts the labelled keypoints instead
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    results = []
    for p in coco_metric_ref["levels"][2]["predictions"]:
        kpts = np.concatenate([np.array(p["keypoints"]), np.array(p["keypoint_scores"])[:, None]], 1)
        score = p["bbox_score"] * np.mean(p["keypoint_scores"])
        results.append(dict(image_id=p["image_id"], category_id=1, keypoints=kpts.reshape(-1).tolist(), score=score))
    results[3]["keypoints"][2::3] = [0.0] * 17  # xtcocotools skips it
    stats = evaluate_coco_results(tmp_path / "gt.json", results, mmpose_semantics=True, use_area=False)
    # xtcocotools 1.14.3 COCOeval(gt, dt, "keypoints", COCO sigmas, use_area=False)
    # (what MMPose's CocoMetric runs) on the same files.
    xtcocotools_stats = [0.5255950595059505, 0.849009900990099, 0.5283528352835285, 0.1495049504950495,
                         0.6750176803394625, 0.6083333333333333, 0.9166666666666666, 0.6666666666666666,
                         0.2333333333333333, 0.7333333333333333]  # fmt: skip
    np.testing.assert_allclose(list(stats.values()), xtcocotools_stats, rtol=0, atol=1e-6)
    # Plain pycocotools cannot score a file without areas: say so.
    with pytest.raises(ValueError, match=r"gt\.json.*without 'area'.*use_area=False"):
        evaluate_coco_results(tmp_path / "gt.json", results)
