"""Golden person-box filtering from MMPose 1.3.2 for tests/test_inference.py.

    PYTHONPATH=$PWD python3 tools/make_pipeline_filter_fixture.py

Two stages, each in its own environment:

1. (this Python, with keraspose) detections to filter: the bundled
   ``rtmdet_nano_person`` detector on every coco_mini image, with its score
   threshold lowered to 0.01 so that many boxes reach the filter, plus
   synthetic sets that probe the edges: scores exactly at the threshold
   (as float32), equal scores (ties, more than 16 boxes so numpy's argsort
   is not an insertion sort), several labels, IoUs either side of the NMS
   threshold, an empty set.
2. (the MMPose reference venv, run as a subprocess) MMPose's own code filters
   them: ``process_one_image`` of ``demo/topdown_demo_with_mmdet.py`` (with
   ``inference_detector`` replaced by a function that returns the stored
   detections, and ``inference_topdown`` by one that records the boxes it is
   given) and ``Pose2DInferencer.preprocess_single`` (with a stand-in
   detector returning the same detections). The two must agree except on
   an empty result, where the inferencer substitutes the whole image.

Writes tests/fixtures/pipeline_filter_mmpose.npz: per case ``c``:
``c/boxes``, ``c/scores``, ``c/labels`` (the detections) and for each
setting ``s`` (``bbox_thr``, ``nms_thr``, ``det_cat_id``) ``c/s/kept_boxes``
and ``c/s/kept_scores`` in MMPose's order, plus ``c/s/inferencer_whole_image``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("KERASPOSE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
REFERENCE_PYTHON = os.environ.get("MMPOSE_REF_PYTHON", "/work/main/.mmpose-ref/bin/python")
OUT = os.path.join(ROOT, "tests", "fixtures", "pipeline_filter_mmpose.npz")

# (bbox_thr, nms_thr, det_cat_id): MMPose's defaults first.
SETTINGS = [(0.3, 0.3, 0), (0.1, 0.5, 0), (0.5, 0.1, 0), (0.05, 0.7, 1)]


def setting_key(setting):
    return "thr{}_nms{}_cat{}".format(*setting)


# ---------------------------------------------------------------------------
# Stage 1: detections (keraspose)
# ---------------------------------------------------------------------------
def synthetic_cases(seed=0):
    rng = np.random.default_rng(seed)
    cases = {}
    # Crowds of overlapping boxes, scores on a coarse grid: many exact ties,
    # scores of exactly float32(0.3), 0.1, 0.5, labels 0-2.
    for n in (5, 40, 100):
        centers = rng.uniform(50, 400, size=(max(1, n // 5), 2))
        pick = rng.integers(0, len(centers), size=n)
        wh = rng.uniform(20, 120, size=(n, 2))
        xy = centers[pick] + rng.normal(0, 8, size=(n, 2))
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        scores = np.round(rng.uniform(0.0, 1.0, size=n) * 20) / 20
        labels = rng.integers(0, 3, size=n)
        cases[f"synthetic_crowd_{n}"] = (boxes, scores, labels)
    # IoU just below / at / above 0.3 with the pixel-inclusive (+1) areas,
    # where the plain areas would give another answer.
    boxes = np.array([
        [0, 0, 9, 9], [0, 5.25, 9, 14.25],      # IoU 0.31 with +1 areas (suppressed), 0.26 without
        [30, 0, 39, 9], [30, 5.5, 39, 14.5],    # 0.29 / 0.24: kept either way
        [60, 0, 69, 9], [60, 4.5, 69, 13.5],    # 0.38 / 0.33: suppressed either way
        [100, 100, 101, 101], [120, 100, 121, 101],
    ], np.float64)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.31])  # 0.3 as float32: not > 0.3
    cases["synthetic_iou_edge"] = (boxes, scores, np.zeros(len(boxes), np.int64))
    # Identical boxes with identical scores.
    boxes = np.tile([[10.0, 10, 50, 80]], (20, 1)) + np.arange(20)[:, None] * 0.25
    cases["synthetic_ties_20"] = (boxes, np.full(20, 0.55), np.zeros(20, np.int64))
    cases["synthetic_empty"] = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    return {
        k: (b.astype(np.float32), s.astype(np.float32), l.astype(np.int64)) for k, (b, s, l) in cases.items()
    }


def detector_cases():
    import keraspose

    detector = keraspose.RTMDetector.from_preset("rtmdet_nano_person", score_threshold=0.01)
    folder = os.path.join(SHARED, "data", "coco_mini", "train2017")
    names = sorted(os.listdir(folder))
    cases = {}
    for name, det in zip(names, detector.predict([os.path.join(folder, n) for n in names])):
        cases[f"coco_mini_{os.path.splitext(name)[0]}"] = (det.boxes, det.scores, det.labels)
    return cases


def stage_detections(path):
    cases = {**synthetic_cases(), **detector_cases()}
    arrays = {}
    for name, (boxes, scores, labels) in cases.items():
        arrays[f"{name}/boxes"] = boxes
        arrays[f"{name}/scores"] = scores
        arrays[f"{name}/labels"] = labels
    np.savez(path, **arrays)
    return sorted(cases)


# ---------------------------------------------------------------------------
# Stage 2: MMPose's filtering (reference venv)
# ---------------------------------------------------------------------------
def stage_mmpose(detections_path, out_path):
    import importlib.util
    import types

    sys.path.insert(0, os.path.join(SHARED, "tools"))
    import mmdet_ops_shim  # noqa: F401  (before mmdet)

    if importlib.util.find_spec("tqdm") is None:  # mmdet imports it; the venv lacks it
        sys.modules["tqdm"] = types.ModuleType("tqdm")
        sys.modules["tqdm"].tqdm = lambda iterable=None, *args, **kwargs: iterable
    if importlib.util.find_spec("torchvision") is None:
        # mmpose.apis imports torchvision for its heatmap visualiser only
        # (ToPILImage); the venv lacks it and nothing here draws.
        vision = types.ModuleType("torchvision")
        vision.transforms = types.ModuleType("torchvision.transforms")
        vision.transforms.ToPILImage = None
        sys.modules.update({"torchvision": vision, "torchvision.transforms": vision.transforms})
    import mmpose
    import torch
    from mmengine.structures import InstanceData
    from mmdet.structures import DetDataSample
    from mmpose.apis.inferencers.pose2d_inferencer import Pose2DInferencer

    demo_path = os.path.join(os.path.dirname(mmpose.__file__), ".mim", "demo", "topdown_demo_with_mmdet.py")
    spec = importlib.util.spec_from_file_location("topdown_demo_with_mmdet", demo_path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    data = np.load(detections_path)
    names = sorted({key.split("/")[0] for key in data.files})
    image = np.zeros((480, 640, 3), np.uint8)

    def sample_of(name):
        instances = InstanceData()
        instances.bboxes = torch.from_numpy(data[f"{name}/boxes"])
        instances.scores = torch.from_numpy(data[f"{name}/scores"])
        instances.labels = torch.from_numpy(data[f"{name}/labels"])
        sample = DetDataSample()
        sample.pred_instances = instances
        return sample

    class Captured(Exception):
        pass

    out = {"mmpose_version": np.array(mmpose.__version__), "numpy_version": np.array(np.__version__)}
    for name in names:
        for setting in SETTINGS:
            bbox_thr, nms_thr, cat_id = setting
            # The demo's process_one_image, around MMDetection/MMPose calls we stand in for.
            captured = {}

            def fake_topdown(model, img, bboxes):
                captured["bboxes"] = np.array(bboxes)
                raise Captured

            demo.inference_detector = lambda detector, img: sample_of(name)
            demo.inference_topdown = fake_topdown
            args = types.SimpleNamespace(det_cat_id=cat_id, bbox_thr=bbox_thr, nms_thr=nms_thr)
            try:
                demo.process_one_image(args, image, detector=None, pose_estimator=None)
            except Captured:
                pass
            demo_boxes = captured["bboxes"].reshape(-1, 4)

            # Pose2DInferencer.preprocess_single with a stand-in detector and an identity pipeline.
            fake_self = types.SimpleNamespace(
                model=types.SimpleNamespace(dataset_meta={}),
                cfg=types.SimpleNamespace(data_mode="topdown"),
                detector=lambda inputs, return_datasamples=True: {"predictions": [sample_of(name)]},
                det_cat_ids=(cat_id,),
                pipeline=lambda inst: inst,
            )
            infos = Pose2DInferencer.preprocess_single(fake_self, image, 0, bbox_thr=bbox_thr, nms_thr=nms_thr)
            inf_boxes = np.concatenate([info["bbox"] for info in infos]).astype(np.float32)
            inf_scores = np.concatenate([info["bbox_score"] for info in infos]).astype(np.float32)
            whole_image = len(demo_boxes) == 0
            if whole_image:
                assert np.array_equal(inf_boxes, [[0, 0, 640, 480]]), (name, setting, inf_boxes)
                inf_boxes, inf_scores = inf_boxes[:0], inf_scores[:0]
            else:
                assert np.array_equal(inf_boxes, demo_boxes), (name, setting)
            key = f"{name}/{setting_key(setting)}"
            out[f"{key}/kept_boxes"] = inf_boxes.reshape(-1, 4)
            out[f"{key}/kept_scores"] = inf_scores
            out[f"{key}/inferencer_whole_image"] = np.array(whole_image)
    for key in data.files:
        out[key] = data[key]
    out["settings"] = np.array(SETTINGS, np.float64)
    np.savez_compressed(out_path, **out)
    kept = sum(len(out[k]) for k in out if k.endswith("/kept_boxes"))
    print(f"{len(names)} detection sets x {len(SETTINGS)} settings, {kept} boxes kept -> {out_path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmpose-stage", nargs=2, metavar=("DETECTIONS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mmpose_stage:
        stage_mmpose(*args.mmpose_stage)
        return
    with tempfile.TemporaryDirectory() as tmp:
        detections = os.path.join(tmp, "detections.npz")
        names = stage_detections(detections)
        print(f"{len(names)} detection sets; filtering with MMPose ({REFERENCE_PYTHON})", flush=True)
        subprocess.run([REFERENCE_PYTHON, os.path.abspath(__file__), "--mmpose-stage", detections, OUT], check=True)
    print(json.dumps({"settings": [setting_key(s) for s in SETTINGS]}))


if __name__ == "__main__":
    main()
