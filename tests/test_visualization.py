"""visualize / save_visualization: colours, thresholds, sizes, file writing."""

import os

import cv2
import numpy as np
import pytest

from keraspose.metainfo import DatasetMetainfo, load_metainfo
from keraspose.models.topdown_estimator import PoseResult
from keraspose.visualization import default_sizes, save_visualization, visualize

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _toy_metainfo():
    # Three keypoints in a row with distinct, pure colours so every drawn
    # pixel can be attributed to exactly one keypoint or link.
    return DatasetMetainfo(
        "toy", ["a", "b", "c"], skeleton_links=[[0, 1], [1, 2]],
        keypoint_colors=[RED, GREEN, BLUE], skeleton_link_colors=[(255, 255, 0), (0, 255, 255)],
    )


def _result(keypoints, scores, bboxes=None):
    keypoints = np.asarray(keypoints, np.float32)[None]
    scores = np.asarray(scores, np.float32)[None]
    bboxes = np.zeros((1, 4), np.float32) if bboxes is None else np.asarray(bboxes, np.float32)[None]
    return PoseResult(keypoints, scores, bboxes)


def test_keypoints_and_links_in_metainfo_rgb_colours():
    image = np.zeros((60, 100, 3), np.uint8)
    result = _result([[20, 30], [50, 30], [80, 30]], [0.9, 0.8, 0.7])
    canvas = visualize(image, result, _toy_metainfo(), radius=4, thickness=3, draw_bbox=False)
    assert canvas.dtype == np.uint8 and canvas.shape == image.shape
    assert canvas[30, 20].tolist() == list(RED)
    assert canvas[30, 50].tolist() == list(GREEN)
    assert canvas[30, 80].tolist() == list(BLUE)
    assert canvas[30, 35].tolist() == [255, 255, 0]  # midway on link a-b
    assert canvas[30, 65].tolist() == [0, 255, 255]  # midway on link b-c
    assert not image.any(), "the input image must not be drawn on"
    # Nothing far from the skeleton.
    assert not canvas[:20].any() and not canvas[41:].any()


def test_keypoints_under_threshold_and_their_links_are_not_drawn():
    image = np.zeros((60, 100, 3), np.uint8)
    result = _result([[20, 30], [50, 30], [80, 30]], [0.9, 0.9, 0.29])
    canvas = visualize(image, result, _toy_metainfo(), score_threshold=0.3, radius=4, thickness=3, draw_bbox=False)
    assert canvas[30, 20].tolist() == list(RED)
    assert canvas[30, 35].tolist() == [255, 255, 0]
    assert canvas[:, 56:].max() == 0, "keypoint c (score 0.29) and link b-c must not be drawn"
    # Lowering the threshold draws it.
    canvas = visualize(image, result, _toy_metainfo(), score_threshold=0.2, radius=4, thickness=3, draw_bbox=False)
    assert canvas[30, 80].tolist() == list(BLUE)


def test_nan_keypoints_are_skipped():
    result = _result([[20, 30], [np.nan, np.nan], [80, 30]], [0.9, 0.9, 0.9])
    canvas = visualize(np.zeros((60, 100, 3), np.uint8), result, _toy_metainfo(), radius=4, thickness=3,
                       draw_bbox=False)
    assert canvas[30, 20].tolist() == list(RED) and canvas[30, 80].tolist() == list(BLUE)
    assert canvas[30, 35].tolist() == [0, 0, 0] and canvas[30, 65].tolist() == [0, 0, 0]


def test_coco_colours_and_threshold_on_a_full_skeleton():
    coco = load_metainfo("coco")
    # 17 keypoints on a circle: every link is a chord, which stays >= 4 px
    # away from the other keypoints, so each keypoint's centre pixel is its own.
    angles = np.linspace(0, 2 * np.pi, 17, endpoint=False)
    keypoints = np.stack([80 + 60 * np.cos(angles), 80 + 60 * np.sin(angles)], axis=1).round()
    scores = np.where(np.arange(17) % 4 == 3, 0.1, 0.9)  # 3, 7, 11, 15 below the threshold
    canvas = visualize(np.zeros((160, 160, 3), np.uint8), _result(keypoints, scores), coco,
                       score_threshold=0.3, radius=3, thickness=1, draw_bbox=False)
    for k, (x, y) in enumerate(keypoints.astype(int)):
        if scores[k] >= 0.3:
            assert canvas[y, x].tolist() == coco.keypoint_colors[k], coco.keypoint_names[k]
        else:
            assert canvas[y - 1 : y + 2, x - 1 : x + 2].max() == 0, coco.keypoint_names[k]
    # metainfo=None means COCO for a 17-keypoint result.
    default = visualize(np.zeros((160, 160, 3), np.uint8), _result(keypoints, scores), None,
                        radius=3, thickness=1, draw_bbox=False)
    np.testing.assert_array_equal(default, canvas)


def test_bbox_drawn_in_green_only_when_asked():
    result = _result([[50, 30], [50, 30], [50, 30]], [0.0, 0.0, 0.0], bboxes=[10, 10, 90, 50])
    image = np.zeros((60, 100, 3), np.uint8)
    canvas = visualize(image, result, _toy_metainfo(), thickness=3)
    assert canvas[30, 10].tolist() == list(GREEN) and canvas[10, 50].tolist() == list(GREEN)
    assert canvas[30, 50].tolist() == [0, 0, 0]  # inside the box, keypoints under threshold
    assert not visualize(image, result, _toy_metainfo(), draw_bbox=False).any()


def test_accepts_the_json_dict_form():
    result = _result([[20, 30], [50, 30], [80, 30]], [0.9, 0.9, 0.9])
    as_dict = result.to_dict()
    image = np.zeros((60, 100, 3), np.uint8)
    np.testing.assert_array_equal(
        visualize(image, as_dict, _toy_metainfo()), visualize(image, result, _toy_metainfo())
    )


def test_empty_result_draws_nothing():
    empty = PoseResult(np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32), np.zeros((0, 4)))
    assert not visualize(np.zeros((20, 20, 3), np.uint8), empty).any()


def test_keypoint_count_must_match_metainfo():
    with pytest.raises(ValueError, match="3 keypoints but metainfo 'coco'"):
        visualize(np.zeros((20, 20, 3), np.uint8), _result([[1, 1]] * 3, [1] * 3), "coco")


def test_sizes_scale_with_the_image():
    small_r, small_t = default_sizes((120, 160))
    big_r, big_t = default_sizes((2160, 3840))
    assert small_r >= 2 and small_t >= 1
    assert big_r > small_r * 5 and big_t > small_t * 5
    result = _result([[50, 50], [50, 50], [50, 50]], [1, 1, 1])
    canvas = visualize(np.zeros((2000, 2000, 3), np.uint8), result, _toy_metainfo(), draw_bbox=False)
    r, _ = default_sizes((2000, 2000))
    assert canvas[50, 50 + r - 1].any() and not canvas[50, 50 + r + 2].any()


def test_save_writes_bgr_file_atomically(tmp_path):
    result = _result([[20, 30], [50, 30], [80, 30]], [0.9, 0.9, 0.9])
    path = tmp_path / "pose.png"
    assert save_visualization(path, np.zeros((60, 100, 3), np.uint8), result, _toy_metainfo(), radius=4) == str(path)
    written = cv2.imread(str(path))  # BGR
    assert written[30, 20].tolist() == [0, 0, 255]  # red keypoint a, in BGR
    assert written[30, 80].tolist() == [255, 0, 0]  # blue keypoint c, in BGR
    assert os.listdir(tmp_path) == ["pose.png"], "no temporary file may be left behind"
    jpg = tmp_path / "pose.jpg"
    save_visualization(jpg, np.zeros((60, 100, 3), np.uint8), result, _toy_metainfo(), radius=4)
    assert cv2.imread(str(jpg)) is not None


def test_save_rejects_unknown_extension(tmp_path):
    result = _result([[20, 30], [50, 30], [80, 30]], [0.9, 0.9, 0.9])
    with pytest.raises(ValueError, match="image format"):
        save_visualization(tmp_path / "pose.txt", np.zeros((60, 100, 3), np.uint8), result, _toy_metainfo())
    assert os.listdir(tmp_path) == []
