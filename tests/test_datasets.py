"""Datasets against MMPose 1.3.2's CocoDataset / MpiiDataset on the shared sample data.

Hard-coded numbers were obtained by running MMPose 1.3.2's ``CocoDataset``
and ``MpiiDataset`` (``/work/.mmpose-ref``) on the same files
(``get_data_info(i)`` for every sample); each is marked where it is used.
"""

import json
import os
import shutil

import numpy as np
import pytest

from keraspose.datasets import CocoStyleDataset, MpiiDataset

SAMPLE_KEYS = {"img_path", "img_id", "id", "bbox", "bbox_score", "keypoints", "keypoints_visible",
               "area", "category_id", "num_keypoints"}  # fmt: skip


@pytest.fixture(scope="module")
def coco_dir(data_dir):
    return data_dir / "mmpose_tests/coco"


def test_coco_samples_match_mmpose(coco_dir):
    ds = CocoStyleDataset(coco_dir / "test_coco.json", coco_dir)
    # MMPose 1.3.2 CocoDataset(test_coco.json): 12 people (of 14 annotations;
    # 1202706 and 508900 have num_keypoints == 0), in this order.
    assert len(ds) == 12
    assert [s["id"] for s in ds] == [442619, 198196, 230195, 460541, 488308, 1717641, 1724673,
                                     437295, 467657, 531914, 533949, 543117]  # fmt: skip
    sample = ds[9]
    assert SAMPLE_KEYS <= set(sample)
    assert sample["img_id"] == 197388 and os.path.isfile(sample["img_path"])
    # MMPose: bbox of 531914 clipped to the image (x2 = width - 1 = 639).
    np.testing.assert_allclose(sample["bbox"], [[540.0399780273438, 48.810001373291016, 639.0, 272.1700134277344]], atol=1e-4)
    assert sample["bbox"].shape == (1, 4) and sample["bbox"].dtype == np.float32
    assert sample["area"] == pytest.approx(8913.984, abs=1e-3) and sample["num_keypoints"] == 15
    assert sample["keypoints"].shape == (1, 17, 2) and sample["keypoints_visible"].shape == (1, 17)
    np.testing.assert_allclose(ds[11]["bbox"], [[0.5, 43.7400016784668, 90.5999984741211, 263.8299865722656]], atol=1e-4)
    # keypoints_visible = min(1, v) of the file's (x, y, v) triplets.
    raw = json.loads((coco_dir / "test_coco.json").read_text())
    ann = next(a for a in raw["annotations"] if a["id"] == 531914)
    xyv = np.array(ann["keypoints"], np.float32).reshape(17, 3)
    np.testing.assert_array_equal(sample["keypoints"][0], xyv[:, :2])
    np.testing.assert_array_equal(sample["keypoints_visible"][0], np.minimum(1, xyv[:, 2]))
    # Samples are copies: editing one does not change the dataset.
    sample["keypoints"][:] = -1
    assert ds[9]["keypoints"].max() > 0


def test_coco_mini_has_86_people(data_dir):
    root = data_dir / "coco_mini"
    ds = CocoStyleDataset(root / "annotations/person_keypoints_train2017.json", root / "train2017", test_mode=True)
    assert len(ds) == 86  # MMPose 1.3.2 CocoDataset: 86 (coco_mini README: 86 with keypoints)
    assert len({s["img_id"] for s in ds}) == 28


def test_detected_boxes_match_mmpose(coco_dir):
    ds = CocoStyleDataset(coco_dir / "test_coco.json", coco_dir, bbox_file=coco_dir / "test_coco_det_AP_H_56.json", test_mode=True)
    # MMPose 1.3.2 CocoDataset(bbox_file=test_coco_det_AP_H_56.json): 118 boxes.
    assert len(ds) == 118
    first, last = ds[0], ds[99]
    assert first["id"] == 0 and first["img_id"] == 785
    np.testing.assert_allclose(first["bbox"], [[277.1183166503906, 45.699668884277344, 502.2095947265625, 379.25994873046875]], atol=1e-4)
    assert first["bbox_score"][0] == pytest.approx(0.9999731779098511, abs=1e-7)
    assert last["id"] == 99 and last["img_id"] == 196141
    np.testing.assert_allclose(last["bbox"], [[614.9354248046875, 95.7440414428711, 626.5316772460938, 113.37602233886719]], atol=1e-4)
    assert last["bbox_score"][0] == pytest.approx(0.2220410257577896, abs=1e-7)
    assert last["keypoints"].shape == (1, 17, 2) and not last["keypoints"].any()
    assert last["keypoints_visible"].all()
    # MMPose with filter_cfg=dict(bbox_score_thr=0.3): 33 boxes, these ids.
    kept = CocoStyleDataset(coco_dir / "test_coco.json", coco_dir, bbox_file=coco_dir / "test_coco_det_AP_H_56.json", test_mode=True, bbox_score_thr=0.3)
    assert [s["id"] for s in kept] == [0, 1, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 59, 60, 61, 62, 63, 64, 65, 66,
                                       85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97]  # fmt: skip


def test_detected_boxes_keep_only_the_person_category(coco_dir, tmp_path):
    dets = json.loads((coco_dir / "test_coco_det_AP_H_56.json").read_text())
    dets[0]["category_id"] = 3  # a car: dropped, as MMPose drops category_id != 1
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    ds = CocoStyleDataset(coco_dir / "test_coco.json", coco_dir, bbox_file=tmp_path / "dets.json", test_mode=True)
    assert len(ds) == 117 and ds[0]["bbox_score"][0] == pytest.approx(dets[1]["score"], abs=1e-7)


def test_mpii_matches_mmpose(data_dir):
    root = data_dir / "mmpose_tests/mpii"
    ds = MpiiDataset(root / "test_mpii.json", root)
    # MMPose 1.3.2 MpiiDataset(test_mpii.json): 5 people, values below.
    assert len(ds) == 5
    s = ds[0]
    assert s["id"] == 0 and s["img_id"] == 5808361 and os.path.isfile(s["img_path"])
    assert s["keypoints"].shape == (1, 16, 2)
    np.testing.assert_allclose(s["bbox_center"], [[965.0, 409.7773132324219]], atol=1e-4)
    np.testing.assert_allclose(s["bbox_scale"], [[943.6976318359375, 943.6976318359375]], atol=1e-4)
    np.testing.assert_allclose(s["bbox"], [[493.15118408203125, -62.071502685546875, 1436.848876953125, 881.6260986328125]], atol=1e-4)
    np.testing.assert_allclose(s["area"], [471999.5625], rtol=1e-6)
    assert [d["img_id"] for d in ds] == [5808361, 52475643, 51423444, 4645041, 60754485]
    np.testing.assert_allclose(ds[2]["bbox"], [[715.07666015625, 128.16519165039062, 1342.92333984375, 756.0118408203125]], atol=1e-4)
    np.testing.assert_array_equal(ds[2]["keypoints_visible"], [[0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])


def _write_custom_set(tmp_path, coco_dir, num_keypoints=3):
    """A 3-keypoint COCO-format file (first 3 COCO keypoints) and its metainfo."""
    raw = json.loads((coco_dir / "test_coco.json").read_text())
    for ann in raw["annotations"]:
        ann["keypoints"] = ann["keypoints"][: 3 * num_keypoints]
        ann["num_keypoints"] = sum(1 for v in ann["keypoints"][2::3] if v > 0)
    (tmp_path / "faces.json").write_text(json.dumps(raw))
    meta = {"dataset_name": "faces", "keypoint_names": ["nose", "left_eye", "right_eye"], "flip_indices": [0, 2, 1],
            "sigmas": [0.026, 0.025, 0.025]}  # fmt: skip
    (tmp_path / "faces_meta.json").write_text(json.dumps(meta))
    return raw


def test_custom_keypoint_set_from_coco_file_and_metainfo(coco_dir, tmp_path):
    raw = _write_custom_set(tmp_path, coco_dir)
    ds = CocoStyleDataset(tmp_path / "faces.json", coco_dir, metainfo=tmp_path / "faces_meta.json")
    expected = sum(1 for a in raw["annotations"] if a["num_keypoints"] > 0 and max(a["keypoints"]) > 0)
    assert len(ds) == expected and ds[0]["keypoints"].shape == (1, 3, 2)
    assert ds.metainfo.keypoint_names == ["nose", "left_eye", "right_eye"]


# ---------------------------------------------------------------- validation


def test_missing_annotation_file(tmp_path, coco_dir):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoStyleDataset(tmp_path / "nope.json", coco_dir)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        MpiiDataset(tmp_path / "nope.json", coco_dir)


def test_malformed_annotation_json(tmp_path, coco_dir):
    bad = tmp_path / "broken.json"
    bad.write_text('{"images": [], "annotations": [')
    with pytest.raises(ValueError, match=r"broken\.json.*not valid json"):
        CocoStyleDataset(bad, coco_dir)
    no_anns = tmp_path / "no_anns.json"
    no_anns.write_text('{"images": []}')
    with pytest.raises(ValueError, match=r"no_anns\.json.*'annotations'"):
        CocoStyleDataset(no_anns, coco_dir)
    raw = json.loads((coco_dir / "test_coco.json").read_text())
    raw["annotations"][3]["keypoints"] = raw["annotations"][3]["keypoints"][:-1]  # not triplets
    (tmp_path / "ragged.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"ragged\.json.*annotation id 1202706"):
        CocoStyleDataset(tmp_path / "ragged.json", coco_dir)


def test_keypoint_count_disagreeing_with_metainfo(coco_dir, data_dir, tmp_path):
    with pytest.raises(ValueError, match=r"test_coco\.json.*17 keypoints.*16"):
        CocoStyleDataset(coco_dir / "test_coco.json", coco_dir, metainfo="mpii")
    mpii = data_dir / "mmpose_tests/mpii"
    with pytest.raises(ValueError, match=r"test_mpii\.json.*16 joints.*17"):
        MpiiDataset(mpii / "test_mpii.json", mpii, metainfo="coco")
    _write_custom_set(tmp_path, coco_dir)
    with pytest.raises(ValueError, match=r"faces\.json.*3 keypoints.*17"):
        CocoStyleDataset(tmp_path / "faces.json", coco_dir)  # forgot the custom metainfo


def test_wrong_format_for_the_dataset_class(coco_dir, data_dir):
    mpii = data_dir / "mmpose_tests/mpii"
    with pytest.raises(ValueError, match=r"test_mpii\.json.*MpiiDataset"):
        CocoStyleDataset(mpii / "test_mpii.json", mpii, metainfo="mpii")
    with pytest.raises(ValueError, match=r"test_coco\.json.*CocoStyleDataset"):
        MpiiDataset(coco_dir / "test_coco.json", coco_dir)


def test_missing_images_are_reported_up_front(coco_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(coco_dir / "000000000785.jpg", images)
    with pytest.raises(FileNotFoundError, match=r"3 image\(s\).*test_coco\.json.*000000040083\.jpg"):
        CocoStyleDataset(coco_dir / "test_coco.json", images)
    # Opting out of the check builds the dataset anyway.
    assert len(CocoStyleDataset(coco_dir / "test_coco.json", images, check_images=False)) == 12
    with pytest.raises(FileNotFoundError, match="not a folder"):
        CocoStyleDataset(coco_dir / "test_coco.json", tmp_path / "nowhere")


def test_bbox_file_errors(coco_dir, tmp_path):
    ann = coco_dir / "test_coco.json"
    det = coco_dir / "test_coco_det_AP_H_56.json"
    with pytest.raises(ValueError, match="test_mode=True"):
        CocoStyleDataset(ann, coco_dir, bbox_file=det)
    with pytest.raises(FileNotFoundError, match="dets_missing.json"):
        CocoStyleDataset(ann, coco_dir, bbox_file=tmp_path / "dets_missing.json", test_mode=True)
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]))
    with pytest.raises(ValueError, match=r"dets\.json.*image_id 1"):
        CocoStyleDataset(ann, coco_dir, bbox_file=tmp_path / "dets.json", test_mode=True)
    (tmp_path / "dets2.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match=r"dets2\.json.*list"):
        CocoStyleDataset(ann, coco_dir, bbox_file=tmp_path / "dets2.json", test_mode=True)
