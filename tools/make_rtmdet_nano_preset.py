"""Build the bundled RTMDet-nano person detector preset from its ONNX export, with measured accuracy.

    KERAS_BACKEND=torch python tools/make_rtmdet_nano_preset.py [--shared ../shared]

Converts ``shared/weights/rtmdet_nano_person/rtmdet-nano.onnx`` with
``keraspose.convert.onnx_rtmdet``, runs it and the ONNX graph itself
(onnxruntime, the independent pipeline of ``tests/rtmdet_reference.py``) on
the 80 images of ``shared/data/coco_mini``, prints the raw-output and box
differences, scores both with pycocotools (person boxes) and writes
``keraspose/presets/bundled/rtmdet_nano_person/`` (float32: the ONNX holds
float32, and 4 MB is small enough) with a model card, and the catalogue
entry ``keraspose/presets/catalogue/rtmdet_nano_person.json``.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import rtmdet_reference as ref  # noqa: E402

NAME = "rtmdet_nano_person"
SOURCE = (
    "MMDetection's RTMDet-nano person detector (rtmdet_nano_320-8xb32_coco-person, the detector of "
    "MMPose's top-down demo; MMDetection and its weights are Apache-2.0), as the ONNX export "
    "rtmpose/models/rtmdet-nano.onnx of the public GitHub project zhouweigogogo/RTMPose-NCNN "
    "(that repository has no license file)"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = parser.parse_args()
    shared = Path(args.shared)

    import cv2

    from keraspose.convert.onnx_rtmdet import convert_rtmdet_onnx

    onnx_path = shared / "weights/rtmdet_nano_person/rtmdet-nano.onnx"
    ann = shared / "data/coco_mini/annotations/person_keypoints_train2017.json"
    model = convert_rtmdet_onnx(onnx_path)
    session = ref.onnx_session(onnx_path)

    ours, theirs, raw_err, box_err, count_diff = {}, {}, 0.0, 0.0, 0
    for image_id, path in ref.coco_mini_images(shared / "data/coco_mini"):
        bgr = cv2.imread(str(path))
        boxes, scores, raw = ref.detect(session, bgr)
        theirs[image_id] = (boxes, scores)
        x, factors = model.preprocess([bgr[..., ::-1]])
        out = model.predict_raw(x)
        for c, b, r in zip(out["cls_scores"], out["bbox_preds"], raw):
            raw_err = max(raw_err, float(np.abs(np.concatenate([c, b], -1) - r).max() / np.abs(r).max()))
        result = model.postprocess(out, factors)[0]
        ours[image_id] = (result.boxes, result.scores)
        if len(result.boxes) == len(boxes):
            box_err = max(box_err, float(np.abs(result.boxes - boxes).max()) if len(boxes) else 0.0)
        else:
            count_diff += 1
    ap_ours, ap_onnx = ref.coco_bbox_ap(ann, ours), ref.coco_bbox_ap(ann, theirs)
    print(f"raw outputs: max |ours - onnx| / max |onnx| = {raw_err:.2e}")
    print(f"boxes: max difference {box_err:.4f} px; images with another box count: {count_diff}")
    print(f"bbox AP ours {ap_ours['AP']:.4f} (AP50 {ap_ours['AP .5']:.4f}); "
          f"onnxruntime {ap_onnx['AP']:.4f} (AP50 {ap_onnx['AP .5']:.4f})")

    metrics = {
        "coco_mini/bbox AP (person)": round(ap_ours["AP"], 4),
        "coco_mini/bbox AP .5 (person)": round(ap_ours["AP .5"], 4),
        "coco_mini/bbox AP .75 (person)": round(ap_ours["AP .75"], 4),
    }
    metrics_source = (
        "keraspose RTMDetector.predict on the 80 COCO train2017 images of coco_mini (172 person "
        "annotations), pycocotools bbox AP for the person class; the ONNX graph under onnxruntime with "
        f"MMDetection's preprocessing and test_cfg scores {ap_onnx['AP']:.4f} (AP50 {ap_onnx['AP .5']:.4f})"
    )
    metadata = {
        "name": NAME,
        "description": (
            "RTMDet-nano (CSPNeXt backbone, CSPNeXtPAFPN neck, RTMDet head with separated BN; "
            "BatchNorm folded into the convolutions), a one-class person detector at 320x320, "
            f"converted from its ONNX export. {SOURCE}."
        ),
        "task": "object-detection",
        "license": "apache-2.0",
        "datasets": ["coco"],
        "tags": ["object-detection", "person-detection", "keras", "rtmdet", "cspnext"],
        "class_names": list(model.class_names),
        "metrics": metrics,
        "metrics_source": metrics_source,
        "source_checkpoint": f"{SOURCE}: rtmdet-nano.onnx (opset 11, BatchNorm folded)",
        "source_checkpoint_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "mmdetection_config": "rtmdet_nano_320-8xb32_coco-person (MMPose demo/mmdetection_cfg)",
    }
    out = REPO / "keraspose/presets/bundled" / NAME
    model.save_to_preset(out, metadata=metadata, model_card=model_card(metadata, model), overwrite=True)
    for f in out.iterdir():  # package data: readable by everyone (the atomic writer makes 0600 files)
        f.chmod(0o644)
    print(f"wrote {out}")

    saved = json.loads((out / "metadata.json").read_text())
    entry = {
        "name": NAME,
        "description": "RTMDet-nano person detector 320x320 (MMDetection, via an ONNX export); real trained "
                       "weights bundled with the package (Apache-2.0 upstream).",
        "class": "keraspose>RTMDetector",
        "bundled": NAME,
        "converter": "bundled",
        "task": "detector",
        "license": "apache-2.0",
        "input_size": [320, 320],
        "num_classes": 1,
        "class_names": ["person"],
        "dataset": "coco",
        "reported_ap": metrics["coco_mini/bbox AP (person)"],
        "reported_metric": "person bbox AP (not keypoint AP)",
        "reported_metrics": metrics,
        "metrics_source": "measured by keraspose on coco_mini (80 images), pycocotools bbox AP; equals the "
                          "ONNX graph's AP under onnxruntime",
        "source": "MMDetection RTMDet-nano person via the ONNX export of zhouweigogogo/RTMPose-NCNN",
        "num_parameters": saved["num_parameters"],
    }
    catalogue = REPO / "keraspose/presets/catalogue" / f"{NAME}.json"
    catalogue.write_text(json.dumps(entry, indent=1) + "\n")
    print(f"wrote {catalogue}")


def model_card(metadata, model):
    """The README.md of the preset: the keypoint-model card template does not fit a detector."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in metadata["metrics"].items())
    return f"""---
license: apache-2.0
library_name: keraspose
pipeline_tag: object-detection
tags:
- object-detection
- person-detection
- keras
- keraspose
- rtmdet
- cspnext
datasets:
- coco
---

# {metadata['name']}

{metadata['description']}

A `keraspose>RTMDetector` for [keraspose](https://github.com/keraspose/keraspose), a Keras 3
re-implementation of MMPose that runs on PyTorch, TensorFlow and JAX. It finds the people that a
top-down pose model (e.g. `tinypose_coco_256x192`) then takes.

## Accuracy

| Metric | Value |
| --- | --- |
{rows}

Source: {metadata['metrics_source']}.
coco_mini is a small debugging subset: these figures check the conversion, they are not COCO val AP
(MMDetection does not publish one for this person model).

## Usage

```python
import keraspose

detector = keraspose.RTMDetector.from_preset("{metadata['name']}")
result = detector.predict("people.jpg")  # RGB array or path
print(result.boxes, result.scores)       # (N, 4) x1, y1, x2, y2 in image pixels; (N,)
```

Preprocessing (inside `predict`): keep-ratio bilinear resize of the long side to 320, pad
bottom/right to 320x320 with 114, BGR, mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395).
Post-processing: MMDetection's test_cfg (score > {model.score_threshold}, {model.nms_pre} best per
level, NMS IoU {model.iou_threshold}, at most {model.max_per_image} boxes). MMPose's top-down demo
additionally keeps boxes with score > 0.3 and applies NMS at IoU 0.3.

## Provenance and license

- Model: MMDetection 3.x `RTMDet` with config `rtmdet_nano_320-8xb32_coco-person` (the person
  detector of MMPose's demos). MMDetection and its released weights are Apache-2.0.
- File converted: `rtmdet-nano.onnx` (ONNX opset 11, exported with PyTorch 2.1.2, BatchNorm folded
  into the convolutions, 123 convolutions named after their MMDetection modules) from the public
  GitHub project zhouweigogogo/RTMPose-NCNN, `rtmpose/models/`. **That repository has no license
  file**; the weights are MMDetection's, whose license is Apache-2.0.
- sha256 of the ONNX file: `{metadata['source_checkpoint_sha256']}`
- Conversion: `tools/make_rtmdet_nano_preset.py` (`keraspose.convert.onnx_rtmdet`): every ONNX
  convolution is mapped by its MMDetection module path onto the layer that lists that path in
  `RTMDetector.checkpoint_keys()`, both ways checked; kernels (out, in/groups, kh, kw) -> (kh, kw,
  in/groups, out); stored as float32, as in the ONNX file.
- Parameters: `{int(sum(np.prod(w.shape) for w in model.weights))}` (MMDetection's model with BatchNorm:
  994,423).
"""


if __name__ == "__main__":
    main()
