"""The ``keraspose`` command, run in-process through ``main([...])``.

The model is the tiny random-weight HRNet reference checkpoint, converted
into a preset by ``keraspose convert mmpose`` itself: a real pipeline, and
fast. Images are the example photos shipped in ``examples/images``. The
tests of the default detect-then-estimate mode (at the end) use the real
bundled detector and pose model, checked against COCO's annotated boxes.
"""

import json
import os
import runpy
import shutil
import sys

import cv2
import numpy as np
import pytest

from keraspose.cli import main, read_bboxes
from keraspose.models.topdown_estimator import TopdownEstimator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples", "images")
TWO_PEOPLE = "000000442450.jpg"
ONE_PERSON = "000000234748.jpg"


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def preset(reference_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("preset") / "tiny_hrnet")
    code = main(["convert", "mmpose", str(reference_dir / "models" / "tiny_hrnet_coco_config.json"),
                 str(reference_dir / "models" / "tiny_hrnet_coco.pth"), "--out", out, "--license", "apache-2.0"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def model(preset):
    return TopdownEstimator.from_preset(preset)


@pytest.fixture
def cached_model(preset, model, monkeypatch):
    """Skip re-loading the preset in each predict run (the first run, ``predicted``, loads it for real)."""
    import keraspose.cli

    real = keraspose.cli._load_model
    monkeypatch.setattr(keraspose.cli, "_load_model", lambda handle: model if handle == preset else real(handle))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for name in (TWO_PEOPLE, ONE_PERSON):
        shutil.copy(os.path.join(EXAMPLES, name), folder / name)
    return folder


@pytest.fixture(scope="module")
def boxes():
    with open(os.path.join(EXAMPLES, "boxes.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def predicted(preset, images, tmp_path_factory):
    """One predict run over a folder with the example boxes; shared by several tests."""
    out = tmp_path_factory.mktemp("out")
    argv = ["predict", str(images), "--preset", preset, "--bboxes", os.path.join(EXAMPLES, "boxes.json"),
            "--out", str(out), "--score-threshold", "0"]
    return main(argv), out


def test_convert_writes_a_loadable_preset(preset, model):
    assert sorted(os.listdir(preset)) == ["README.md", "config.json", "metadata.json", "model.safetensors"]
    assert model.metainfo.num_keypoints == 17


def test_predict_writes_picture_and_json_per_image(predicted, capsys):
    code, out = predicted
    assert code == 0
    assert sorted(os.listdir(out)) == sorted(
        f"{os.path.splitext(n)[0]}_pose.{ext}" for n in (TWO_PEOPLE, ONE_PERSON) for ext in ("jpg", "json")
    )


def test_predict_json_equals_model_predict(predicted, model, images, boxes):
    _, out = predicted
    for name in (TWO_PEOPLE, ONE_PERSON):
        with open(out / f"{os.path.splitext(name)[0]}_pose.json") as f:
            record = json.load(f)
        expected = model.predict(str(images / name), bboxes=np.asarray(boxes[name], np.float32))
        assert record["keypoint_names"] == model.metainfo.keypoint_names
        assert len(record["instances"]) == len(boxes[name]) == len(expected)
        # Same numbers up to float32 noise (TensorFlow's oneDNN kernels are not
        # bit-reproducible between two model instances).
        np.testing.assert_allclose(np.array([i["keypoints"] for i in record["instances"]], np.float32),
                                   expected.keypoints, rtol=0, atol=1e-3)
        np.testing.assert_allclose(np.array([i["keypoint_scores"] for i in record["instances"]], np.float32),
                                   expected.keypoint_scores, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose([i["bbox"] for i in record["instances"]], boxes[name], atol=1e-4)
        image = cv2.imread(str(images / name))
        assert (record["height"], record["width"]) == image.shape[:2]


def test_predict_picture_is_drawn_where_the_keypoints_are(predicted, images, model):
    from keraspose.visualization import visualize

    _, out = predicted
    for name in (TWO_PEOPLE, ONE_PERSON):
        source = cv2.imread(str(images / name))
        picture = cv2.imread(str(out / f"{os.path.splitext(name)[0]}_pose.jpg")).astype(int)
        assert picture.shape == source.shape
        with open(out / f"{os.path.splitext(name)[0]}_pose.json") as f:
            record = json.load(f)
        # The picture is the JSON's result drawn on the photo (up to JPEG error);
        # test_visualization checks the drawing itself, colour by colour.
        drawn = visualize(source[:, :, ::-1], record, model.metainfo, score_threshold=0)[:, :, ::-1].astype(int)
        assert np.abs(picture - drawn).mean() < 3
        # And the drawing is there: keypoint pixels differ clearly from the photo.
        keypoints = np.array([i["keypoints"] for i in record["instances"]]).reshape(-1, 2).round().astype(int)
        inside = [(x, y) for x, y in keypoints if 0 <= x < source.shape[1] and 0 <= y < source.shape[0]]
        assert len(inside) >= len(keypoints) // 2
        diff = np.mean([np.abs(picture[y, x] - source[y, x].astype(int)).max() for x, y in inside])
        assert diff > 40, "the keypoints should stand out from the photo"
        # Away from the people the picture is the photo.
        assert np.abs(picture[:10, -10:] - source[:10, -10:].astype(int)).mean() < 6


def test_predict_prints_one_line_per_image(cached_model, preset, images, tmp_path, capsys):
    code, out, err = _run(capsys, "predict", str(images / ONE_PERSON), str(images / TWO_PEOPLE), "--preset", preset,
                          "--out", str(tmp_path), "--no-flip", "--batch-size", "1", "--whole-image")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"{ONE_PERSON}: 1 person") and lines[1].startswith(f"{TWO_PEOPLE}: 1 person")
    assert lines[-1].startswith("done: 2 images")


def test_predict_whole_image_uses_the_whole_image(cached_model, preset, model, images, tmp_path, capsys):
    code, _, _ = _run(capsys, "predict", str(images / ONE_PERSON), "--preset", preset, "--out", str(tmp_path),
                      "--no-flip", "--whole-image")
    assert code == 0
    with open(tmp_path / f"{os.path.splitext(ONE_PERSON)[0]}_pose.json") as f:
        record = json.load(f)
    assert [i["bbox"] for i in record["instances"]] == [[0, 0, record["width"], record["height"]]]
    expected = model.predict(str(images / ONE_PERSON), flip_test=False)
    np.testing.assert_allclose(np.array(record["instances"][0]["keypoints"], np.float32), expected.keypoints[0],
                               rtol=0, atol=1e-3)


def test_predict_reads_coco_detection_results(cached_model, preset, images, boxes, tmp_path, capsys):
    x1, y1, x2, y2 = boxes[TWO_PEOPLE][1]
    detections = [
        {"image_id": 442450, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.9},
        {"image_id": 442450, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.1},  # under --box-threshold
        {"image_id": 442450, "category_id": 18, "bbox": [0, 0, 50, 50], "score": 0.9},  # a dog, not a person
        {"file_name": ONE_PERSON, "bbox": [10, 10, 100, 200], "score": 0.8},
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(detections))
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, "predict", str(images), "--preset", preset, "--bboxes", str(path),
                           "--box-threshold", "0.5", "--out", str(out), "--no-flip")
    assert code == 0, stdout
    with open(out / "000000442450_pose.json") as f:
        np.testing.assert_allclose([i["bbox"] for i in json.load(f)["instances"]], [[x1, y1, x2, y2]], atol=1e-3)
    with open(out / "000000234748_pose.json") as f:
        assert [i["bbox"] for i in json.load(f)["instances"]] == [[10, 10, 110, 210]]


def test_read_bboxes_mapping_and_empty_list(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"a.jpg": [[1, 2, 3, 4]], "b.jpg": []}))
    assert read_bboxes(path) == {"a.jpg": [[1.0, 2.0, 3.0, 4.0]], "b.jpg": []}


def test_same_stem_in_two_folders_does_not_overwrite(cached_model, preset, images, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(images / ONE_PERSON, other / ONE_PERSON)
    out = tmp_path / "out"
    code, _, _ = _run(capsys, "predict", str(images / ONE_PERSON), str(other / ONE_PERSON), "--preset", preset,
                      "--out", str(out), "--no-flip", "--whole-image")
    assert code == 0
    assert {"000000234748_pose.json", "000000234748_2_pose.json"} <= set(os.listdir(out))


# ---------------------------------------------------------------------------
# Errors: one line on stderr naming the culprit, exit code 2, no traceback
# ---------------------------------------------------------------------------
def _assert_clean_error(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("keraspose: error: ")
    for needle in needles:
        assert needle in err


def test_error_missing_input(preset, tmp_path, capsys):
    missing = str(tmp_path / "nope.jpg")
    code, _, err = _run(capsys, "predict", missing, "--preset", preset)
    _assert_clean_error(code, err, missing)
    assert len(err.strip().splitlines()) == 1


def test_error_folder_without_images(preset, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = _run(capsys, "predict", str(tmp_path), "--preset", preset)
    _assert_clean_error(code, err, "no images found", str(tmp_path))


def test_error_undecodable_image(cached_model, preset, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    code, _, err = _run(capsys, "predict", str(bad), "--preset", preset, "--out", str(tmp_path / "o"), "--whole-image")
    _assert_clean_error(code, err, str(bad))


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "not valid JSON"),
        ('{"x.jpg": [[1, 2, 3]]}', "x1, y1, x2, y2"),
        ('{"x.jpg": [[10, 10, 5, 5]]}', "x2 <= x1"),
        ('"boxes"', "expected a JSON object"),
        ('[{"bbox": [1, 2, 3, 4]}]', "neither 'image_id' nor 'file_name'"),
    ],
)
def test_error_bad_boxes_json(preset, images, tmp_path, capsys, content, needle):
    path = tmp_path / "boxes.json"
    path.write_text(content)
    code, _, err = _run(capsys, "predict", str(images), "--preset", preset, "--bboxes", str(path))
    _assert_clean_error(code, err, str(path), needle)


def test_error_box_outside_image(cached_model, preset, images, tmp_path, capsys):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({ONE_PERSON: [[5000, 5000, 6000, 6000]]}))
    code, _, err = _run(capsys, "predict", str(images / ONE_PERSON), "--preset", preset, "--bboxes", str(path),
                        "--out", str(tmp_path / "o"))
    _assert_clean_error(code, err, ONE_PERSON, "outside")


def test_error_missing_boxes_file(preset, images, tmp_path, capsys):
    code, _, err = _run(capsys, "predict", str(images), "--preset", preset, "--bboxes", str(tmp_path / "no.json"))
    _assert_clean_error(code, err, "no.json")


def test_error_bad_preset(images, tmp_path, capsys):
    missing = str(tmp_path / "no_such_preset")
    code, _, err = _run(capsys, "predict", str(images), "--preset", missing)
    _assert_clean_error(code, err, missing)
    not_a_preset = tmp_path / "empty_dir"
    not_a_preset.mkdir()
    code, _, err = _run(capsys, "predict", str(images), "--preset", str(not_a_preset))
    _assert_clean_error(code, err, "config.json")


def test_error_convert_missing_checkpoint(reference_dir, tmp_path, capsys):
    code, _, err = _run(capsys, "convert", "mmpose", str(reference_dir / "models" / "tiny_hrnet_coco_config.json"),
                        str(tmp_path / "missing.pth"), "--out", str(tmp_path / "p"))
    _assert_clean_error(code, err, "missing.pth")


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, _, err = _run(capsys, "--debug", "predict", str(tmp_path / "nope.jpg"))
    assert code == 2 and "Traceback" in err and "nope.jpg" in err


# ---------------------------------------------------------------------------
# Other subcommands, help, python -m
# ---------------------------------------------------------------------------
def test_presets_lists_the_catalogue(capsys):
    from keraspose.presets import list_presets

    code, out, _ = _run(capsys, "presets")
    assert code == 0
    assert out.splitlines()[0].split()[:4] == ["NAME", "TASK", "AP*", "PARAMS"]
    for name in list_presets():
        assert name in out
    assert "0.749" in out and "256x192" in out  # hrnet_w32_coco's AP and input


def test_info_on_catalogue_name_and_directory(preset, capsys):
    code, out, _ = _run(capsys, "info", "hrnet_w32_coco")
    assert code == 0 and "hrnet_w32_coco" in out and "256x192" in out and "0.749" in out
    code, out, _ = _run(capsys, "info", preset)
    assert code == 0
    assert "HRNetBackbone" in out and "256x192" in out and "17 (coco)" in out and "apache-2.0" in out
    code, _, err = _run(capsys, "info", "hrnet_w33_coco")
    _assert_clean_error(code, err, "hrnet_w33_coco", "hrnet_w32_coco")  # suggests the close name


def test_upload_refuses_offline_and_invalid(preset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = _run(capsys, "upload", "me/tiny", preset)
    _assert_clean_error(code, err, "hf://me/tiny")
    code, _, err = _run(capsys, "upload", "hf://me/tiny", str(tmp_path / "nothing"))
    _assert_clean_error(code, err, "nothing")


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["convert", "mmpose", "--help"],
                                  ["convert", "mmdet", "--help"],
                                  ["upload", "--help"], ["presets", "--help"], ["info", "--help"]])
def test_help_has_examples(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "keraspose" in out


def test_predict_help_documents_the_boxes_format(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    assert "[x1, y1, x2, y2]" in out and "image_id" in out and "_pose.json" in out


def test_no_command_prints_help(capsys):
    code, out, _ = _run(capsys)
    assert code == 2 and "predict" in out


def test_python_dash_m(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["keraspose", "presets"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("keraspose", run_name="__main__", alter_sys=True)
    assert exc.value.code == 0
    assert "hrnet_w32_coco" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Without boxes: the bundled detector finds the people (real bundled models)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline():
    from keraspose.inference import PoseInferencer

    return PoseInferencer.from_preset()


@pytest.fixture
def cached_pipeline(pipeline, monkeypatch):
    """The bundled pipeline, loaded once for the module, for the default presets and thresholds."""
    import keraspose.cli

    real = keraspose.cli._load_pipeline

    def load(pose, detector, bbox_thr, nms_thr):
        if (pose, detector, bbox_thr, nms_thr) == ("tinypose_coco_256x192", "rtmdet_nano_person", 0.3, 0.3):
            return pipeline
        return real(pose, detector, bbox_thr, nms_thr)

    monkeypatch.setattr(keraspose.cli, "_load_pipeline", load)


def _box_iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


@pytest.mark.slow
def test_predict_finds_the_people_by_default(cached_pipeline, images, boxes, tmp_path, capsys):
    code, out, err = _run(capsys, "predict", str(images), "--out", str(tmp_path), "--no-flip")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"{ONE_PERSON}: 1 person") and lines[1].startswith(f"{TWO_PEOPLE}: 2 people")
    for name in (ONE_PERSON, TWO_PEOPLE):
        with open(tmp_path / f"{os.path.splitext(name)[0]}_pose.json") as f:
            record = json.load(f)
        assert record["detector"] == "rtmdet_nano_person" and record["preset"] == "tinypose_coco_256x192"
        found = [inst["bbox"] for inst in record["instances"]]
        # boxes.json holds COCO's annotated boxes of these photos: each person is found.
        assert len(found) == len(boxes[name])
        for truth in boxes[name]:
            assert max(_box_iou(truth, box) for box in found) > 0.7, (name, truth, found)
        assert all(0.3 < inst["bbox_score"] <= 1 and len(inst["keypoints"]) == 17 for inst in record["instances"])
        assert os.path.getsize(tmp_path / f"{os.path.splitext(name)[0]}_pose.jpg") > 10_000


def test_predict_no_person_writes_an_empty_result_and_the_picture(cached_pipeline, data_dir, tmp_path, capsys):
    photo = data_dir / "coco_mini" / "train2017" / "000000054718.jpg"  # no person (MMPose keeps no box either)
    code, out, err = _run(capsys, "predict", str(photo), "--out", str(tmp_path), "--no-flip")
    assert code == 0, err
    assert out.startswith("000000054718.jpg: 0 people")
    with open(tmp_path / "000000054718_pose.json") as f:
        assert json.load(f)["instances"] == []
    picture = cv2.imread(str(tmp_path / "000000054718_pose.jpg"))
    assert picture.shape == cv2.imread(str(photo)).shape
    assert np.abs(picture.astype(int) - cv2.imread(str(photo)).astype(int)).mean() < 6  # nothing drawn


@pytest.mark.slow
def test_predict_video_writes_mp4_and_jsonl(cached_pipeline, tmp_path, capsys):
    from test_inference import VIDEO_FRAMES, make_clip, read_frames

    clip = make_clip(tmp_path / "walk.mp4")
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "predict", str(clip), "--out", str(out), "--no-flip")
    assert code == 0, err
    assert sorted(os.listdir(out)) == ["walk_pose.jsonl", "walk_pose.mp4"]
    assert len(read_frames(out / "walk_pose.mp4")) == len(VIDEO_FRAMES)
    lines = (out / "walk_pose.jsonl").read_text().splitlines()
    assert len(lines) == len(VIDEO_FRAMES)
    people = [len(json.loads(line)["instances"]) for line in lines]
    assert people == [{TWO_PEOPLE: 2, ONE_PERSON: 1}[f"{name}.jpg"] for name in VIDEO_FRAMES]
    assert f"walk.mp4: {len(VIDEO_FRAMES)} frames (320x212, 5 fps)" in stdout
    assert stdout.strip().splitlines()[-1].startswith("done: 1 video,")


def test_predict_corrupt_video_is_named_and_nothing_written(cached_pipeline, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "predict", str(bad), "--out", str(out))
    _assert_clean_error(code, err, str(bad), "cannot open")
    assert os.listdir(out) == []
    code, _, err = _run(capsys, "predict", str(tmp_path / "missing.mp4"), "--out", str(out))
    _assert_clean_error(code, err, "missing.mp4")
    code, _, err = _run(capsys, "predict", str(bad), "--bboxes", os.path.join(EXAMPLES, "boxes.json"), "--out", str(out))
    _assert_clean_error(code, err, "--bboxes applies to images", str(bad))


def test_predict_preset_of_the_wrong_task(images, tmp_path, capsys):
    code, _, err = _run(capsys, "predict", str(images), "--preset", "rtmdet_nano_person", "--out", str(tmp_path))
    _assert_clean_error(code, err, "'rtmdet_nano_person' is a detector", "keraspose.RTMDetector")
    code, _, err = _run(capsys, "predict", str(images), "--detector", "tinypose_coco_256x192", "--out", str(tmp_path))
    _assert_clean_error(code, err, "detector preset 'tinypose_coco_256x192'", "is a pose model")
    assert os.listdir(tmp_path) == []


def test_predict_boxes_and_whole_image_exclude_each_other(images, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(images), "--whole-image", "--bboxes", os.path.join(EXAMPLES, "boxes.json")])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_predict_bad_thresholds(images, capsys):
    code, _, err = _run(capsys, "predict", str(images), "--bbox-thr", "3")
    _assert_clean_error(code, err, "--bbox-thr must be between 0 and 1")


def test_evaluate_detector_and_bbox_file_exclude_each_other(data_dir, tmp_path, capsys):
    root = data_dir / "coco_mini"
    ann = str(root / "annotations/person_keypoints_train2017.json")
    code, _, err = _run(capsys, "evaluate", "tinypose_coco_256x192", "--ann-file", ann, "--image-root",
                        str(root / "train2017"), "--detector", "rtmdet_nano_person", "--bbox-file", ann)
    _assert_clean_error(code, err, "--detector and --bbox-file")
    code, _, err = _run(capsys, "evaluate", "tinypose_coco_256x192", "--ann-file", ann, "--image-root",
                        str(root / "train2017"), "--detector", "tinypose_coco_256x192")
    _assert_clean_error(code, err, "'tinypose_coco_256x192' is a pose model")


@pytest.mark.slow
def test_evaluate_with_detector_writes_detections_and_stats(cached_pipeline, data_dir, tmp_path, capsys, monkeypatch):
    import keraspose.cli

    monkeypatch.setattr(keraspose.cli, "_load_detector", lambda handle: keraspose.cli._load_pipeline(
        "tinypose_coco_256x192", handle, 0.3, 0.3).detector)
    root = data_dir / "coco_mini"
    coco = json.loads((root / "annotations/person_keypoints_train2017.json").read_text())
    keep = {442450, 234748}  # two photos: three annotated people
    subset = {**coco, "images": [i for i in coco["images"] if i["id"] in keep],
              "annotations": [a for a in coco["annotations"] if a["image_id"] in keep]}
    ann = tmp_path / "two.json"
    ann.write_text(json.dumps(subset))
    out = tmp_path / "eval"
    code, stdout, err = _run(capsys, "evaluate", "tinypose_coco_256x192", "--ann-file", str(ann), "--image-root",
                             str(root / "train2017"), "--detector", "rtmdet_nano_person", "--no-flip", "--quiet",
                             "--bbox-score-thr", "0.1", "--out", str(out))
    assert code == 0, err
    detections = json.loads((out / "keypoints.bbox.json").read_text())
    assert {d["image_id"] for d in detections} == keep and len(detections) > 3  # every box >= 0.1, not only > 0.3
    assert min(d["score"] for d in detections) >= 0.1
    stats = json.loads((out / "stats.json").read_text())
    assert stats["detector"] == "rtmdet_nano_person" and stats["flip_test"] is False
    # Three clearly visible people, found and posed: most of COCO's AP .5.
    assert stats["stats"]["coco/AP .5"] > 0.6, stats
    assert "on the people rtmdet_nano_person finds" in stdout
