"""Convert PP-TinyPose's ncnn files into keraspose weights, one file per input size.

    python tools/convert_tinypose.py --out DIR [--shared ../shared] [--format safetensors|npz]

For each size (256x192, 128x96), ``shared/weights/pp_tinypose/tinypose_<size>.{param,bin}``
is converted with :func:`keraspose.convert.ncnn.convert_tinypose` (a TopdownEstimator
with a LiteHRNetBackbone and a HeatmapHead), checked against the ncnn runtime's
golden heatmaps in ``shared/reference/tinypose/``, and its weights written as
``<out>/tinypose_coco_<size>.safetensors`` (or ``.npz``), keyed by attribute path
(``backbone/stages/0/0/...``, ``head/final_layer/kernel``): the keys of
:func:`keraspose.presets.preset_io.variable_keys`, i.e. of a preset's
``model.safetensors``. The full preset directory (config, metadata, model card)
is ``tools/make_tinypose_presets.py``'s job.
"""

import argparse
import hashlib
import sys
from pathlib import Path

import keras
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = ("256x192", "128x96")
TOLERANCE = 1e-4  # max |heatmap difference| to the ncnn runtime (measured: ~5e-6)


def convert_one(shared, size):
    """(model, max abs heatmap error) for one size."""
    from keraspose import backend
    from keraspose.convert.ncnn import convert_tinypose

    weights = shared / "weights" / "pp_tinypose"
    model = convert_tinypose(weights / f"tinypose_{size}.param", weights / f"tinypose_{size}.bin")
    ref = np.load(shared / "reference" / "tinypose" / f"tinypose_{size}_crops.npz")
    with backend.inference_mode():
        heatmaps = keras.ops.convert_to_numpy(model(ref["input_nchw"].transpose(0, 2, 3, 1)))
    return model, float(np.abs(heatmaps.transpose(0, 3, 1, 2) - ref["heatmaps"]).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(REPO.parent / "shared"), help="the shared/ data folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=("safetensors", "npz"), default="safetensors")
    args = parser.parse_args(argv)
    shared, out = Path(args.shared), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from keraspose.presets.preset_io import variable_keys

    for size in SIZES:
        model, err = convert_one(shared, size)
        print(f"{size}: max |heatmap - ncnn| = {err:.2e}")
        if err > TOLERANCE:
            sys.exit(f"{size}: converted model differs from the ncnn runtime by {err:.2e} > {TOLERANCE}")
        arrays = {k: keras.ops.convert_to_numpy(v).astype("float32") for k, v in variable_keys(model).items()}
        source = shared / "weights" / "pp_tinypose" / f"tinypose_{size}.bin"
        meta = {
            "source": f"PP-TinyPose {size} ncnn export (PaddleDetection, Apache-2.0)",
            "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "input_size": "x".join(str(v) for v in model.input_size),
            "max_abs_heatmap_error": f"{err:.3e}",
        }
        path = out / f"tinypose_coco_{size}.{args.format}"
        if args.format == "safetensors":
            import safetensors.numpy

            safetensors.numpy.save_file(arrays, str(path), metadata=meta)
        else:
            np.savez(path, **arrays)
        print(f"wrote {path} ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()
