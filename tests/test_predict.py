"""Whole top-down inference against MMPose 1.3.2, and its handling of bad input.

Reference: ``tiny_hrnet_coco_predict.json`` holds MMPose's keypoints and
scores for six COCO people (ground-truth boxes), with and without flip test;
``e2e_one_crop.npz`` the warped crop of the first of them.
"""

import json
from collections import defaultdict

import cv2
import numpy as np
import pytest

from keraspose.convert import from_mmpose


@pytest.fixture(scope="module")
def model(reference_dir):
    d = reference_dir / "models"
    return from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")


@pytest.fixture(scope="module")
def predict_reference(reference_dir):
    return json.loads((reference_dir / "models" / "tiny_hrnet_coco_predict.json").read_text())


@pytest.fixture(scope="module")
def coco_dir(data_dir):
    return data_dir / "mmpose_tests" / "coco"


@pytest.mark.parametrize("mode", ["flip", "noflip"])
def test_predict_matches_mmpose(mode, model, predict_reference, coco_dir):
    instances = predict_reference["instances"][mode]
    by_image = defaultdict(list)
    for inst in instances:
        by_image[inst["image_file"]].append(inst)
    images = sorted(by_image)
    results = model.predict(
        [coco_dir / f for f in images],
        bboxes=[np.array([i["bbox_xyxy"] for i in by_image[f]]) for f in images],
        flip_test=(mode == "flip"),
        batch_size=4,  # people of different images share batches
    )
    assert len(results) == len(images)
    for f, result in zip(images, results):
        ref_kpts = np.array([i["keypoints"] for i in by_image[f]])
        ref_scores = np.array([i["keypoint_scores"] for i in by_image[f]])
        assert result.keypoints.shape == ref_kpts.shape
        # Issue acceptance: keypoints within 1e-2 px, scores within 1e-4 relative.
        np.testing.assert_allclose(result.keypoints, ref_kpts, rtol=0, atol=1e-2)
        np.testing.assert_allclose(result.keypoint_scores, ref_scores, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result.bboxes, [i["bbox_xyxy"] for i in by_image[f]], rtol=0, atol=1e-4)


def test_crop_matches_mmpose(model, reference_dir, coco_dir):
    ref = np.load(reference_dir / "models" / "e2e_one_crop.npz")
    rgb = cv2.cvtColor(cv2.imread(str(coco_dir / str(ref["image_file"]))), cv2.COLOR_BGR2RGB)
    crops, centers, scales = model.crop_people(rgb, ref["bbox_xyxy"][None])
    np.testing.assert_allclose(centers[0], ref["center"], atol=1e-4)
    np.testing.assert_allclose(scales[0], ref["scale"], atol=1e-4)
    diff = np.abs(crops[0][..., ::-1].astype(int) - ref["crop_bgr"].astype(int))
    assert diff.max() <= 1


def test_single_image_and_array_input(model, predict_reference, coco_dir):
    inst = predict_reference["instances"]["noflip"][0]
    rgb = cv2.cvtColor(cv2.imread(str(coco_dir / inst["image_file"])), cv2.COLOR_BGR2RGB)
    result = model.predict(rgb, bboxes=np.array([inst["bbox_xyxy"]]), flip_test=False)
    np.testing.assert_allclose(result.keypoints[0], inst["keypoints"], atol=1e-2)


def test_no_boxes_means_whole_image(model, coco_dir):
    image = coco_dir / "000000000785.jpg"
    h, w = cv2.imread(str(image)).shape[:2]
    whole = model.predict(image, flip_test=False)
    boxed = model.predict(image, bboxes=[[0, 0, w, h]], flip_test=False)
    assert whole.keypoints.shape == (1, 17, 2)
    np.testing.assert_array_equal(whole.keypoints, boxed.keypoints)


def test_empty_box_array_gives_empty_result(model, coco_dir):
    results = model.predict([coco_dir / "000000000785.jpg"], bboxes=[np.zeros((0, 4))])
    assert results[0].keypoints.shape == (0, 17, 2)
    assert results[0].keypoint_scores.shape == (0, 17)


def test_missing_image_is_named(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_photo.jpg"):
        model.predict([tmp_path / "no_such_photo.jpg"])


def test_non_image_file_is_named(model, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a picture")
    with pytest.raises(ValueError, match="notes.jpg"):
        model.predict(bad)


@pytest.mark.parametrize(
    "box, message",
    [
        ([10, 10, 10, 50], "zero or negative area"),
        ([50, 10, 40, 60], "zero or negative area"),
        ([5000, 5000, 5100, 5100], "outside"),
        ([np.nan, 0, 10, 10], "NaN"),
    ],
)
def test_bad_boxes_are_named(box, message, model, coco_dir):
    with pytest.raises(ValueError, match=message):
        model.predict([coco_dir / "000000000785.jpg"], bboxes=[np.array([box], float)])


def test_box_count_per_image_must_match(model, coco_dir):
    with pytest.raises(ValueError, match="one \\(N, 4\\) array"):
        model.predict([coco_dir / "000000000785.jpg"] * 2, bboxes=[[[0, 0, 10, 10]]])


def test_wrong_box_shape(model, coco_dir):
    with pytest.raises(ValueError, match="shape"):
        model.predict(coco_dir / "000000000785.jpg", bboxes=np.zeros((2, 3)))
