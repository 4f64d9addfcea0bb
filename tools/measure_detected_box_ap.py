"""Keypoint AP of the bundled PP-TinyPose presets on detected and ground-truth boxes; updates their model cards.

    PYTHONPATH=$PWD python3 tools/measure_detected_box_ap.py [--sizes 256x192,128x96] [--shared ../shared]

For each size, on ../shared/data/coco_mini, with and without flip test,
scored by ``CocoMetric`` (MMPose's protocol: box score x mean keypoint score
above 0.2, OKS-NMS 0.9, COCO keypoint AP):

* ground-truth boxes: the 86 annotated people (``evaluate_topdown``);
* detected boxes: every person box the bundled ``rtmdet_nano_person``
  returns on the 80 images (its test_cfg: score > 0.05, NMS 0.6, at most
  100; no further threshold or NMS, as MMPose's ``bbox_file`` test configs),
  i.e. ``keraspose.evaluate_with_detector``;
* detected boxes filtered as the demo / ``PoseInferencer`` does (score > 0.3,
  MMPose's NMS at 0.3): what ``keraspose predict`` returns.

Adds the figures to ``metrics`` in the preset's metadata.json, re-renders
its README.md (the model card), adds the detected-box AP to its catalogue
entry, and prints a Markdown table for README.md.
The weights are not touched.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--sizes", default="256x192")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import keraspose
    from keraspose.evaluation import detect_people, evaluate_topdown
    from keraspose.presets import render_model_card

    root = Path(args.shared) / "data/coco_mini"
    ann, images = root / "annotations/person_keypoints_train2017.json", root / "train2017"
    detector = keraspose.RTMDetector.from_preset("rtmdet_nano_person")
    detections = {
        "all": detect_people(detector, ann, images),
        "demo": detect_people(detector, ann, images, bbox_score_thr=0.3, box_nms_thr=0.3),
    }
    # detect_people keeps score >= thr; the demo keeps score > thr (no score is exactly 0.3 here).
    print({k: len(v) for k, v in detections.items()}, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for kind, dets in detections.items():
            files[kind] = Path(tmp) / f"{kind}.bbox.json"
            files[kind].write_text(json.dumps(dets))
        for size in args.sizes.split(","):
            name = f"tinypose_coco_{size}"
            model = keraspose.TopdownEstimator.from_preset(name)
            ap = {}
            for flip in (False, True):
                for boxes in ("gt", "all", "demo"):
                    dataset = keraspose.CocoStyleDataset(
                        ann, images, test_mode=True, bbox_file=None if boxes == "gt" else files[boxes]
                    )
                    t0 = time.perf_counter()
                    stats = evaluate_topdown(model, dataset, batch_size=args.batch_size, flip_test=flip)
                    ap[boxes, flip] = stats
                    print(f"{name} {boxes:4s} boxes flip={flip!s:5s}: AP {stats['coco/AP']:.4f} "
                          f"AP50 {stats['coco/AP .5']:.4f} ({len(dataset)} people, {time.perf_counter() - t0:.0f}s)",
                          flush=True)
            update_card(REPO / "keraspose/presets/bundled" / name, ap, len(detections["all"]),
                        len(detections["demo"]), render_model_card)
            rows.append((name, ap))
    print("\n| preset | boxes | AP (no flip) | AP (flip test) | AP .5 (flip test) |\n|---|---|---|---|---|")
    labels = {"gt": "ground truth (86 people)", "all": f"rtmdet_nano_person, all {len(detections['all'])}",
              "demo": f"rtmdet_nano_person, > 0.3 + NMS 0.3 ({len(detections['demo'])})"}
    for name, ap in rows:
        for boxes in ("gt", "all", "demo"):
            print(f"| {name} | {labels[boxes]} | {ap[boxes, False]['coco/AP']:.3f} | {ap[boxes, True]['coco/AP']:.3f} "
                  f"| {ap[boxes, True]['coco/AP .5']:.3f} |")


def update_card(preset_dir, ap, n_all, n_demo, render_model_card):
    meta_path = preset_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    metrics = dict(meta.get("metrics") or {})
    for flip, label in ((False, "no flip"), (True, "flip test")):
        metrics[f"coco_mini/AP (rtmdet_nano_person boxes, {label})"] = round(ap["all", flip]["coco/AP"], 4)
        metrics[f"coco_mini/AP (gt boxes, {label}, CocoMetric)"] = round(ap["gt", flip]["coco/AP"], 4)
    metrics["coco_mini/AP (rtmdet_nano_person boxes > 0.3 + NMS 0.3, flip test)"] = round(ap["demo", True]["coco/AP"], 4)
    meta["metrics"] = dict(sorted(metrics.items()))
    source = meta.get("metrics_source", "").split(" Detected boxes:")[0]
    meta["metrics_source"] = (
        f"{source}. Detected boxes: keraspose.evaluate_with_detector on the 80 coco_mini images with the bundled "
        f"rtmdet_nano_person (every person box it returns, {n_all} boxes: MMPose's bbox_file protocol; or only "
        f"those scoring > 0.3 after MMPose's NMS at 0.3, {n_demo} boxes: what keraspose predict uses), scored "
        "with CocoMetric (box score x mean keypoint score > 0.2, OKS-NMS 0.9); the gt-box rows marked CocoMetric "
        "are the same scoring on the annotated boxes (tools/measure_detected_box_ap.py)"
    )
    meta_path.write_text(json.dumps(meta, indent=2))
    (preset_dir / "README.md").write_text(render_model_card(meta))
    # The catalogue entry (keraspose presets / info) lists the detected-box AP too.
    entry_path = REPO / "keraspose/presets/catalogue" / f"{preset_dir.name}.json"
    entry = json.loads(entry_path.read_text())
    reported = {k: v for k, v in entry.get("reported_metrics", {}).items() if "boxes," not in k or "gt boxes" in k}
    for flip, label in ((False, "no flip"), (True, "flip test")):
        reported[f"coco_mini/AP (rtmdet_nano_person boxes, {label})"] = round(ap["all", flip]["coco/AP"], 4)
    entry["reported_metrics"] = reported
    entry["metrics_source"] = entry.get("metrics_source", "").split("; detected boxes")[0] + (
        "; detected boxes: every person box of the bundled rtmdet_nano_person on the 80 images, scored with "
        "CocoMetric as MMPose's bbox_file protocol (keraspose.evaluate_with_detector)"
    )
    entry_path.write_text(json.dumps(entry, indent=1))
    print(f"updated {meta_path}, README.md and {entry_path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
