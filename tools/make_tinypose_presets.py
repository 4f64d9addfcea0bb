"""Build the bundled PP-TinyPose presets from the ncnn files, with measured accuracy.

    python tools/make_tinypose_presets.py [--shared ../shared]

For each size: convert ``shared/weights/pp_tinypose/tinypose_<size>.{param,bin}``
with ``keraspose.convert.ncnn``, measure COCO keypoint AP (pycocotools) on the
86 people of ``shared/data/coco_mini`` with their ground-truth boxes, with and
without flip test, and write ``keraspose/presets/bundled/tinypose_coco_<size>/``
(kernels stored as float16, their source precision) with a model card.
"""

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from coco_mini import coco_mini_people, coco_keypoint_ap  # noqa: E402

SOURCE = (
    "PP-TinyPose (PaddleDetection, Apache-2.0), ncnn export from the public GitHub project "
    "FeiGeChuanShu/ncnn_Android_PP-TinyPose (app/src/main/assets)"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = parser.parse_args()
    shared = Path(args.shared)

    from keraspose.convert.ncnn import convert_tinypose

    ann = shared / "data/coco_mini/annotations/person_keypoints_train2017.json"
    images, boxes, image_ids = coco_mini_people(shared / "data/coco_mini")
    for size in ("256x192", "128x96"):
        param = shared / f"weights/pp_tinypose/tinypose_{size}.param"
        weights = shared / f"weights/pp_tinypose/tinypose_{size}.bin"
        model = convert_tinypose(param, weights, flip_test=True)
        ap = {}
        for flip in (False, True):
            results = model.predict(images, bboxes=boxes, flip_test=flip)
            ap[flip] = coco_keypoint_ap(ann, results, image_ids)
            print(f"{size} flip={'on' if flip else 'off'}: AP {ap[flip]['AP']:.4f}")
        name = f"tinypose_coco_{size}"
        metadata = {
            "name": name,
            "description": (
                f"PP-TinyPose {size} (a 'wider naive' Lite-HRNet) for the 17 COCO body keypoints, "
                f"converted from its ncnn export. {SOURCE}."
            ),
            "license": "apache-2.0",
            "datasets": ["coco"],
            "tags": ["pose-estimation", "keypoint-detection", "keras", "pp-tinypose", "lite-hrnet"],
            "metrics": {
                "coco_mini/AP (gt boxes, no flip)": round(ap[False]["AP"], 4),
                "coco_mini/AP (gt boxes, flip test)": round(ap[True]["AP"], 4),
                "coco_mini/AP .5 (gt boxes, no flip)": round(ap[False]["AP .5"], 4),
            },
            "metrics_source": (
                "keraspose predict on the 86 annotated people of coco_mini (80 COCO train2017 images) "
                "with ground-truth boxes, pycocotools keypoint AP; the original ncnn runtime scores "
                f"{'0.544' if size == '256x192' else '0.422'} without flip on the same people"
            ),
            "source_checkpoint": f"{SOURCE}: tinypose_{size}.param/.bin",
            "source_checkpoint_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        }
        out = REPO / "keraspose/presets/bundled" / name
        model.save_to_preset(out, metadata=metadata, overwrite=True)
        _store_float16(out / "model.safetensors")
        print(f"wrote {out}")


def _store_float16(path):
    """Store tensors that are exactly float16 (the kernels) as float16: half the size, no loss."""
    import numpy as np
    import safetensors.numpy

    tensors = safetensors.numpy.load_file(str(path))
    def exact_half(v):
        # ncnn stores kernels as float16 but biases as float32: halve only what is lossless.
        return v.dtype == np.float32 and np.array_equal(v.astype(np.float16).astype(np.float32), v)

    tensors = {k: (v.astype(np.float16) if exact_half(v) else v) for k, v in tensors.items()}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        pass
    safetensors.numpy.save_file(tensors, tmp.name)
    Path(tmp.name).chmod(0o644)
    Path(tmp.name).replace(path)
    meta_path = path.parent / "metadata.json"
    meta = json.loads(meta_path.read_text())
    for key in list(meta):
        if "sha256" in key and "weights" in key:
            meta[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
