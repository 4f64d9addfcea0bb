"""The bundled RTMDet-nano person detector against its original ONNX graph (onnxruntime).

The reference side (``tests/rtmdet_reference.py``) is written from
``shared/weights/README.md``, not from keraspose's detector: its own
letterbox, normalisation and numpy post-processing around onnxruntime.

Float32 noise: onnxruntime with and without its graph optimisations differs
from itself by up to ~1.8e-2 on the box distances (values up to ~160 px)
and ~1.7e-3 on the logits, so raw outputs are compared relative to each
output's largest magnitude (1e-3; we measure ~6e-4 at worst) rather than
absolutely.
"""

import sys

import cv2
import numpy as np
import pytest

import keraspose
from keraspose.convert.mmpose import ConversionError
from keraspose.convert.onnx_rtmdet import convert_rtmdet_onnx, load_onnx_rtmdet_weights, read_onnx_convs

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import rtmdet_reference as ref  # noqa: E402

ONNX_AP = 0.338  # shared/weights/README.md: MMDetection's preprocessing, pycocotools person boxes
QUICK_IMAGES = 4  # raw-output and box parity on the first coco_mini images (ids 790 ... 54718)


@pytest.fixture(scope="module")
def onnx_path(weights_dir):
    return weights_dir / "rtmdet_nano_person/rtmdet-nano.onnx"


@pytest.fixture(scope="module")
def session(onnx_path):
    return ref.onnx_session(onnx_path, threads=2)


@pytest.fixture(scope="module")
def detector():
    return keraspose.RTMDetector.from_preset("rtmdet_nano_person")


@pytest.fixture(scope="module")
def images(data_dir):
    return [(image_id, cv2.imread(str(path))) for image_id, path in ref.coco_mini_images(data_dir / "coco_mini")]


def _ours_raw(detector, bgr):
    x, factors = detector.preprocess([np.ascontiguousarray(bgr[..., ::-1])])
    out = detector.predict_raw(x)
    return out, factors, [np.concatenate([c, b], -1) for c, b in zip(out["cls_scores"], out["bbox_preds"])]


def test_raw_outputs_match_onnxruntime(detector, session, images):
    worst = 0.0
    for _, bgr in images[:QUICK_IMAGES]:
        ref_raw = ref.run_onnx(session, ref.onnx_input(ref.letterbox(bgr)[0]))
        _, _, ours = _ours_raw(detector, bgr)
        assert [o.shape for o in ours] == [r.shape for r in ref_raw] == [(1, 40, 40, 5), (1, 20, 20, 5), (1, 10, 10, 5)]
        for o, r in zip(ours, ref_raw):
            for channels in (slice(0, 1), slice(1, 5)):  # logits; distances (pixels)
                err = np.abs(o[..., channels] - r[..., channels]).max() / np.abs(r[..., channels]).max()
                worst = max(worst, err)
    assert worst < 1e-3, worst


def test_boxes_match_onnx_pipeline(detector, session, images):
    for image_id, bgr in images[:QUICK_IMAGES]:
        boxes, scores, _ = ref.detect(session, bgr)
        result = detector.predict(np.ascontiguousarray(bgr[..., ::-1]))
        assert len(result.boxes) == len(boxes) > 0, image_id
        np.testing.assert_allclose(result.boxes, boxes, atol=0.5, err_msg=str(image_id))
        np.testing.assert_allclose(result.scores, scores, atol=1e-4, err_msg=str(image_id))
        assert (result.labels == 0).all() and result.class_names == ("person",)


def _match(ours, theirs):
    """Per reference box, the L-inf distance to the closest of our boxes (NMS may reorder near-ties)."""
    if not len(theirs):
        return np.zeros(0)
    return np.abs(theirs[:, None, :] - ours[None, :, :]).max(-1).min(1)


@pytest.mark.slow
def test_coco_mini_bbox_ap_equals_onnx(detector, session, images, data_dir):
    ann = data_dir / "coco_mini/annotations/person_keypoints_train2017.json"
    ours, theirs, far, total = {}, {}, 0, 0
    results = detector.predict([np.ascontiguousarray(bgr[..., ::-1]) for _, bgr in images], batch_size=8)
    for (image_id, bgr), result in zip(images, results):
        boxes, scores, _ = ref.detect(session, bgr)
        theirs[image_id] = (boxes, scores)
        ours[image_id] = (result.boxes, result.scores)
        assert len(result.boxes) == len(boxes), image_id
        far += int((_match(result.boxes, boxes) > 0.5).sum())
        total += len(boxes)
    # One NMS decision (IoU within float noise of 0.6) may keep a neighbouring prior instead:
    # 1 box of 5210 on torch and TF.
    assert total > 5000 and far <= total // 1000, (far, total)
    ap_ours = ref.coco_bbox_ap(ann, ours)
    ap_onnx = ref.coco_bbox_ap(ann, theirs)
    assert ap_onnx["AP"] == pytest.approx(ONNX_AP, abs=0.005)
    assert ap_onnx["AP .5"] == pytest.approx(0.522, abs=0.005)
    assert ap_ours["AP"] == pytest.approx(ap_onnx["AP"], abs=0.005)
    assert ap_ours["AP"] == pytest.approx(ONNX_AP, abs=0.005)
    assert ap_ours["AP .5"] == pytest.approx(ap_onnx["AP .5"], abs=0.005)


# ---------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------
def test_onnx_convs_name_every_mmdetection_module(onnx_path):
    convs, scales = read_onnx_convs(onnx_path)
    assert len(convs) == 123 and scales == [8.0, 16.0, 32.0]
    assert sum(c["weight"].size + c["bias"].size for c in convs.values()) == 985_927
    assert convs["backbone.stem.0.conv"]["weight"].shape == (8, 3, 3, 3)
    assert convs["bbox_head.cls_convs.2.1.depthwise_conv.conv"]["group"] == 64
    assert convs["bbox_head.rtm_reg.1"]["activation"] is None
    assert sum(c["activation"] == "silu" for c in convs.values()) == 113


@pytest.fixture(scope="module")
def converted(onnx_path):
    return convert_rtmdet_onnx(onnx_path)


def _path_in_model(variable):
    # A variable's path starts with its model's name, which Keras numbers per
    # process (rtm_detector, rtm_detector_16, ...): compare what follows it.
    return variable.path.split("/", 1)[1]


def test_conversion_equals_bundled_preset(converted, detector):
    theirs = {_path_in_model(w): w for w in detector.weights}
    assert len(converted.weights) == len(theirs) == 246
    for w in converted.weights:
        path = _path_in_model(w)
        np.testing.assert_array_equal(np.asarray(w.numpy()), np.asarray(theirs[path].numpy()), err_msg=path)


def _edited_onnx(onnx_path, tmp_path, edit):
    import onnx

    model = onnx.load(str(onnx_path))
    edit(model.graph)
    out = tmp_path / "edited.onnx"
    onnx.save(model, str(out))
    return out


def test_unmapped_onnx_conv_and_unfilled_layer_are_named(converted, onnx_path, tmp_path):
    def rename(graph):
        node = next(n for n in graph.node if n.name == "/model/neck/out_convs.1/pointwise_conv/conv/Conv")
        node.name = "/model/neck/out_convs_extra.1/pointwise_conv/conv/Conv"

    path = _edited_onnx(onnx_path, tmp_path, rename)
    with pytest.raises(ConversionError) as err:
        load_onnx_rtmdet_weights(converted, path)
    msg = str(err.value)
    assert "(neck.out_convs.1.pointwise_conv.conv): no ONNX Conv" in msg  # the layer nobody fills
    assert "/model/neck/out_convs_extra.1/pointwise_conv/conv/Conv" in msg  # the node nobody takes


def test_wrong_architecture_is_named(onnx_path):
    two_classes = keraspose.RTMDetector.from_size("nano", num_classes=2, norm=False, input_size=(320, 320))
    with pytest.raises(ConversionError, match=r"rtm_cls\.0/Conv -> .*rtm_cls_0: kernel \(1, 1, 64, 1\) vs \(1, 1, 64, 2\)"):
        load_onnx_rtmdet_weights(two_classes, onnx_path)
    with_bn = keraspose.RTMDetector.build_person("nano")
    with pytest.raises(ConversionError, match="norm=False"):
        load_onnx_rtmdet_weights(with_bn, onnx_path)


def test_missing_onnx_package_says_how_to_install(onnx_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match="pip install onnx"):
        read_onnx_convs(onnx_path)


def test_not_an_onnx_file_is_named(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ConversionError, match="model.onnx"):
        read_onnx_convs(bad)
