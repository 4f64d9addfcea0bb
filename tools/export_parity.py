"""Exported model vs keraspose on the same crops: the acceptance figures of issue 12.

For each model and format: export (dynamic batch), load the file in its own
runtime (keraspose.runtime), run coco_mini person crops at batch 1 and 5 and
compare with keraspose's own path on the same crops (preprocess ->
predict_outputs -> head.decode, i.e. predict_crops without crop_to_image);
raw outputs against the estimator's raw outputs. Prints one line per case.

Detector mode (``--models rtmdet_nano``, the bundled RTMDet-nano person
detector): letterboxed coco_mini images at batch 1 and 5; the per-prior
``boxes``/``scores`` against keraspose's own (``predict_raw`` ->
``decode_priors``), and the final detections (``ExportedDetector.predict``
against ``RTMDetector.predict``, same images): how many, largest box and
score differences.

    KERAS_BACKEND=tensorflow PYTHONPATH=. python3 tools/export_parity.py --models tinypose128 --formats onnx litert
    KERAS_BACKEND=torch PYTHONPATH=. python3 tools/export_parity.py --models rtmdet_nano --formats onnx
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import keras  # noqa: E402

import keraspose  # noqa: E402
from keraspose.runtime import load_exported  # noqa: E402

SHARED = Path(os.environ.get("KERASPOSE_SHARED", REPO.parent / "shared"))


DETECTORS = {"rtmdet_nano": "rtmdet_nano_person"}


def build(name):
    if name in DETECTORS:
        return keraspose.RTMDetector.from_preset(DETECTORS[name])
    if name.startswith("tinypose"):
        size = {"tinypose128": "128x96", "tinypose256": "256x192"}[name]
        return keraspose.TopdownEstimator.from_preset(f"tinypose_coco_{size}")
    if name == "hrnet_tiny":
        from keraspose.convert import from_mmpose

        d = SHARED / "reference" / "models"
        return from_mmpose(d / "tiny_hrnet_coco_config.json", d / "tiny_hrnet_coco.pth")
    if name.startswith("rtmpose_t"):
        from test_rtmpose import _fixture, _state_dict
        from keraspose.convert.mmpose import build_from_mmpose_config, load_mmpose_weights

        ref = _fixture("t")
        model = build_from_mmpose_config(json.loads(str(ref["model_json"])))
        load_mmpose_weights(model, _state_dict(model, ref))
        if name == "rtmpose_t_unit":
            # The seeded weights give SimCC maxima of 50-200; a trained RTMPose's
            # are about 1. Scaling the two classifiers by 1/200 puts the scores
            # at a trained model's scale, where the 1e-4 score target applies.
            for layer in (model.head.cls_x, model.head.cls_y):
                layer.kernel.assign(layer.kernel / 200.0)
        return model
    raise ValueError(name)


def coco_crops(model, n=5):
    from coco_mini import coco_mini_people

    paths, boxes, _ = coco_mini_people(SHARED / "data" / "coco_mini")
    crops = []
    for path, b in zip(paths, boxes):
        c, _, _ = model.crop_people(keraspose.load_image(str(path)), b)
        crops.append(c)
        if sum(len(x) for x in crops) >= n:
            break
    return np.concatenate(crops)[:n]


def reference(model, crops, flip, decoding):
    outputs = model.predict_outputs(model.preprocess(crops), flip_test=flip)
    if decoding:
        kp, sc = model.head.decode(outputs)
        return {"keypoints": kp, "scores": sc}
    if isinstance(outputs, dict):
        return outputs
    return {"heatmaps": np.transpose(outputs, (0, 2, 3, 1))}  # codec layout -> the export's (B, h, w, K)


def weights_bytes(model):
    return sum(int(np.prod(v.shape)) * 4 for v in model.weights)


def file_bytes(path):
    """The whole export on disk (model file, or SavedModel directory, or OpenVINO .xml + .bin)."""
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    total = path.stat().st_size
    if path.suffix == ".xml":
        total += path.with_suffix(".bin").stat().st_size
    return total


def constant_bytes(path):
    """The bytes of the export's stored tensors (what a duplicated weight would grow):
    ONNX initializers and Constant nodes; OpenVINO's .bin; a SavedModel's
    variables; a LiteRT file whole (its graph is a few kB)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        tensors = list(model.graph.initializer) + [
            a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
        return sum(numpy_helper.to_array(t).nbytes for t in tensors)
    if path.suffix == ".xml":
        return path.with_suffix(".bin").stat().st_size
    if path.is_dir():
        return sum(f.stat().st_size for f in (path / "variables").iterdir())
    return path.stat().st_size


def detector_images(n=5):
    from rtmdet_reference import coco_mini_images

    return [str(path) for _, path in coco_mini_images(SHARED / "data" / "coco_mini")[:n]]


def detector_parity(be, name, model, fmt, paths, out):
    """One line: per-prior outputs and final detections of the export against the detector's own."""
    from keraspose.ops.detection import decode_priors
    from keraspose.runtime import ExportedDetector
    from keraspose.utils.images import letterbox, load_image

    images = [load_image(p) for p in paths]
    letterboxed = np.stack([letterbox(image, model.input_size, model.pad_value)[0] for image in images])
    x, _ = model.preprocess(images)
    raw = model.predict_raw(x)
    want_boxes, want_scores = decode_priors(raw["cls_scores"], raw["bbox_preds"], model.strides, model.input_size)
    want_final = model.predict(images, batch_size=len(images))
    runtime = ExportedDetector(out)
    parts = []
    for b in (1, len(images)):
        got = runtime.model(letterboxed[:b])
        box_err = np.abs(got["boxes"] - want_boxes[:b]).max(-1)
        # The priors the post-processing reads: a class scoring above the threshold.
        scored = (want_scores[:b] > model.score_threshold).any(-1)
        raw_part = (f"raw boxes {box_err.max():.1e} (scored priors {box_err[scored].max():.1e}) "
                    f"scores {np.abs(got['scores'] - want_scores[:b]).max():.1e}")
        final = runtime.predict(images[:b], batch_size=b)
        counts = [(len(g), len(w)) for g, w in zip(final, want_final[:b])]
        same = all(g == w for g, w in counts)
        if same:
            box = max((np.abs(g.boxes - w.boxes).max() for g, w in zip(final, want_final[:b]) if len(w)), default=0.0)
            score = max((np.abs(g.scores - w.scores).max() for g, w in zip(final, want_final[:b]) if len(w)),
                        default=0.0)
            labels = all(np.array_equal(g.labels, w.labels) for g, w in zip(final, want_final[:b]))
            final_part = f"final {sum(c for c, _ in counts)} dets boxes {box:.1e} scores {score:.1e} labels {'=' if labels else '!='}"
        else:
            final_part = f"final COUNTS DIFFER {counts}"
        parts.append(f"b{b}: {raw_part}; {final_part}")
    return parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["tinypose128"])
    ap.add_argument("--formats", nargs="+", default=["onnx"])
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--raw", action="store_true", help="no decoding: compare raw outputs")
    ap.add_argument("--try-all", action="store_true", help="also try the format/backend pairs export refuses")
    args = ap.parse_args()
    be = keras.config.backend()
    if args.try_all:
        import keraspose.export

        keraspose.export._CHECK_BACKENDS = False
    for name in args.models:
        model = build(name)
        detector = name in DETECTORS
        if detector:
            paths = detector_images(5)
        else:
            crops = coco_crops(model, 5)
            ref = reference(model, crops, args.flip, not args.raw)
        for fmt in args.formats:
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "export")
                t = time.time()
                try:
                    if detector:
                        path = model.export(out, format=fmt)
                    else:
                        path = model.export(out, format=fmt, flip_test=args.flip, include_decoding=not args.raw)
                except Exception as err:  # noqa: BLE001 -- report and go on
                    print(f"{be:10s} {name:11s} {fmt:15s} EXPORT FAILED: {type(err).__name__}: {str(err)[:300]}")
                    continue
                secs = time.time() - t
                size, stored = file_bytes(path), constant_bytes(path)
                if detector:
                    parts = detector_parity(be, name, model, fmt, paths, out)
                    print(f"{be:10s} {name:11s} {fmt:15s} tensors {stored / weights_bytes(model):.3f}x weights, "
                          f"file {size / 1e6:.2f} MB export {secs:.0f}s | " + " | ".join(parts), flush=True)
                    continue
                runtime = load_exported(out)
                parts = []
                for b in (1, 5):
                    got = runtime(crops[:b])
                    errs = []
                    for key, want in ref.items():
                        want = want[:b]
                        diff = np.abs(got[key].astype(np.float64) - want)
                        if args.raw:
                            errs.append(f"{key} {diff.max() / np.abs(want).max():.1e}rel")
                        else:
                            errs.append(f"{key} {diff.max():.1e}")
                    parts.append(f"b{b}: " + ", ".join(errs))
                print(f"{be:10s} {name:11s} {fmt:15s} flip={int(args.flip)} tensors {stored / weights_bytes(model):.3f}x "
                      f"weights, file {size / 1e6:.2f} MB export {secs:.0f}s | " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
