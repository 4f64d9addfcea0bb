"""COCO keypoint AP on coco_mini (ground-truth boxes) of an exported pose model vs keraspose itself.

Issue 12's acceptance: the exported TinyPose 256x192 in onnxruntime scores the
AP of keraspose's own predict within 0.002. Both runs use the same crops
(``TopdownEstimator.crop_people``) and the same scoring (``evaluate_topdown``);
only the network + decoding differ (the export's runtime vs Keras).

    KERAS_BACKEND=torch python3 tools/measure_export_ap.py [--preset tinypose_coco_256x192] [--format onnx]
        [--precision float32|float16|int8] [--flip-test]
    KERAS_BACKEND=tensorflow python3 tools/measure_export_ap.py --format litert --precision int8

The export is written by ``TopdownEstimator.export(format=, precision=)``
(LiteRT from TensorFlow, ONNX from torch or TensorFlow). ONNX int8 is
calibrated on the people of MMPose's test_coco.json, not on coco_mini.
"""

import argparse
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

import keraspose
from keraspose.export import calibration_crops
from keraspose.runtime import load_exported
from keraspose.transforms.functional import crop_to_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


class ExportedCrops:
    """What evaluate_topdown needs of a model, with the network and decoding in the export's runtime."""

    def __init__(self, model, runtime):
        self.metainfo, self.input_size, self.runtime, self._model = model.metainfo, model.input_size, runtime, model

    def crop_people(self, image, boxes):
        return self._model.crop_people(image, boxes)

    def predict_crops(self, crops, centers, scales, batch_size=32, flip_test=None):
        out = [self.runtime(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size)]
        keypoints = np.concatenate([o["keypoints"] for o in out])
        scores = np.concatenate([o["scores"] for o in out])
        return crop_to_image(keypoints, centers, scales, self.input_size), scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tinypose_coco_256x192")
    parser.add_argument("--format", default="onnx", choices=["onnx", "tf_saved_model", "litert", "openvino"])
    parser.add_argument("--flip-test", action="store_true")
    parser.add_argument("--precision", choices=["float32", "float16", "int8"], default="float32",
                        help="the export's precision (litert, onnx); ONNX int8 is calibrated on the people of "
                             "MMPose's test_coco.json, not on coco_mini")
    args = parser.parse_args()
    root = SHARED / "data/coco_mini"
    data = keraspose.CocoStyleDataset(root / "annotations/person_keypoints_train2017.json", root / "train2017",
                                      test_mode=True)
    model = keraspose.TopdownEstimator.from_preset(args.preset, flip_test=args.flip_test)
    ours = keraspose.evaluate_topdown(model, data, flip_test=args.flip_test)
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export"
        calibration = None
        if args.format == "onnx" and args.precision == "int8":
            coco = SHARED / "data/mmpose_tests/coco"
            calib_set = keraspose.CocoStyleDataset(coco / "test_coco.json", coco, test_mode=True)
            calibration = calibration_crops(model, calib_set, count=64)
        model_file = model.export(export, format=args.format, flip_test=args.flip_test, precision=args.precision,
                                  calibration=calibration)
        size = os.path.getsize(model_file) if os.path.isfile(model_file) else None
        exported = keraspose.evaluate_topdown(ExportedCrops(model, load_exported(export)), data,
                                              flip_test=args.flip_test)
    weights = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    print(f"{args.preset} format={args.format} precision={args.precision} flip_test={args.flip_test} "
          f"people={len(data)} backend={keras.config.backend()}")
    if size is not None:
        print(f"  file {size} bytes = {size / weights:.3f}x the float32 weights ({weights} bytes)")
    for key in ("coco/AP", "coco/AP .5", "coco/AR"):
        print(f"  {key}: keraspose {ours[key]:.4f}  exported ({args.format}, {args.precision}) {exported[key]:.4f}  "
              f"diff {exported[key] - ours[key]:+.4f}")


if __name__ == "__main__":
    main()
