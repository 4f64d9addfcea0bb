"""PP-TinyPose: the ncnn converter and the bundled presets against the real model.

References (../shared/reference/tinypose): the original ncnn runtime's
heatmaps for golden crops, and the pycocotools AP of its predictions on the
86 people of coco_mini (0.544 at 256x192, 0.422 at 128x96, no flip test).
"""

import json

import keras
import numpy as np
import pytest

from coco_mini import coco_keypoint_ap, coco_mini_people
from keraspose import TopdownEstimator
from keraspose.convert import ConversionError
from keraspose.convert.ncnn import convert_tinypose

SIZES = ["256x192", "128x96"]


def _heatmaps(model, input_nchw):
    out = model.predict_on_batch(input_nchw.transpose(0, 2, 3, 1))
    return keras.ops.convert_to_numpy(out).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("size", SIZES)
def test_converted_heatmaps_match_ncnn(size, weights_dir, reference_dir):
    model = convert_tinypose(
        weights_dir / f"pp_tinypose/tinypose_{size}.param", weights_dir / f"pp_tinypose/tinypose_{size}.bin"
    )
    ref = np.load(reference_dir / f"tinypose/tinypose_{size}_crops.npz")
    assert np.abs(_heatmaps(model, ref["input_nchw"]) - ref["heatmaps"]).max() < 1e-3


@pytest.mark.parametrize("size", SIZES)
def test_bundled_preset_matches_ncnn(size, reference_dir):
    model = TopdownEstimator.from_preset(f"tinypose_coco_{size}")
    ref = np.load(reference_dir / f"tinypose/tinypose_{size}_crops.npz")
    assert np.abs(_heatmaps(model, ref["input_nchw"]) - ref["heatmaps"]).max() < 1e-3
    # The whole predict path (crop, normalise, network, decode) gives the runtime's keypoints.
    for i, image_file in enumerate(ref["image_file"]):
        result = model.predict(
            reference_dir.parent / "data/coco_mini/train2017" / str(image_file),
            bboxes=ref["bbox_xyxy"][i : i + 1], flip_test=False,
        )
        np.testing.assert_allclose(result.keypoints[0], ref["keypoints"][i], atol=1e-2)
        np.testing.assert_allclose(result.keypoint_scores[0], ref["scores"][i], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("size", SIZES)
def test_coco_mini_ap(size, data_dir, reference_dir):
    stats = json.loads((reference_dir / f"tinypose/tinypose_{size}_coco_stats.json").read_text())
    model = TopdownEstimator.from_preset(f"tinypose_coco_{size}", flip_test=False)
    images, boxes, ids = coco_mini_people(data_dir / "coco_mini")
    results = model.predict(images, bboxes=boxes, batch_size=16)
    assert sum(len(r) for r in results) == stats["instances"] == 86
    ap = coco_keypoint_ap(data_dir / "coco_mini/annotations/person_keypoints_train2017.json", results, ids)
    assert abs(ap["AP"] - stats["AP"]) < 0.005, (ap["AP"], stats["AP"])


def test_truncated_bin_is_named(tmp_path, weights_dir):
    bad = tmp_path / "tinypose_128x96.bin"
    bad.write_bytes((weights_dir / "pp_tinypose/tinypose_128x96.bin").read_bytes()[:100_000])
    with pytest.raises(ConversionError, match="tinypose_128x96.bin.*ends"):
        convert_tinypose(weights_dir / "pp_tinypose/tinypose_128x96.param", bad)


def test_not_a_param_file(tmp_path, weights_dir):
    bad = tmp_path / "model.param"
    bad.write_text("hello\n")
    with pytest.raises(ConversionError, match="model.param"):
        convert_tinypose(bad, weights_dir / "pp_tinypose/tinypose_128x96.bin")

