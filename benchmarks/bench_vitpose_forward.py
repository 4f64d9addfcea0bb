"""ViTPose 256x192 forward pass (default ViTPose-B classic): keraspose against MMPose, in one run.

    KERAS_BACKEND=torch python benchmarks/bench_vitpose_forward.py --threads 2
    KERAS_BACKEND=tensorflow python benchmarks/bench_vitpose_forward.py --threads 2

MMPose's own model (the catalogue entry's MMPose model dict; mmpretrain's
VisionTransformer, seeded random weights) is timed in the MMPose venv
(mmpretrain 1.2.0 installed there); its weights are saved and converted with
``keraspose.convert.from_mmpose``, so both sides run the same weights on the
same input, at the same thread count, without gradients. Also checks that
both give the same heatmaps. Prints one line per batch size with the time
ratio keraspose / MMPose.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import machine_description, run_reference, time_calls  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--preset", default="vitpose_b_coco", help="a ViTPose catalogue entry")
    parser.add_argument("--mmpose-python", default=None)
    args = parser.parse_args()

    import keras

    from keraspose import backend
    from keraspose.convert import from_mmpose
    from keraspose.presets import get_catalogue_entry

    backend.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    config = {"model": get_catalogue_entry(args.preset)["mmpose_model"]}
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp, "config.json")
        cfg_path.write_text(json.dumps(config))
        x_nchw = np.random.default_rng(0).standard_normal((max(batches), 3, 256, 192)).astype(np.float32)
        np.save(Path(tmp, "x.npy"), x_nchw)
        ckpt = Path(tmp, "model.pth")
        ref = run_reference("_mmpose_vitpose_forward.py",
                            [cfg_path, ckpt, Path(tmp, "x.npy"), args.threads, args.repeats, args.batches],
                            python=args.mmpose_python, threads=args.threads)
        model = from_mmpose(config, ckpt)

    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    out = np.transpose(keras.ops.convert_to_numpy(model.predict_on_batch(x_nhwc[:1])), (0, 3, 1, 2))
    ref_heatmaps = np.asarray(ref["heatmaps_b1"], np.float32)
    err = float(np.abs(out - ref_heatmaps).max() / np.abs(ref_heatmaps).max())
    print(f"# {args.preset} forward, {args.threads} threads, backend {keras.config.backend()}, "
          f"keras {keras.__version__}; MMPose torch {ref['torch']}; machine: {machine_description()}")
    print(f"# heatmap parity vs MMPose (max abs err / max |ref|): {err:.2e}")
    for b in batches:
        x = x_nhwc[:b]
        with backend.inference_mode():
            t = time_calls(lambda: model.predict_on_batch(x), args.repeats)
        r = ref["times"][str(b)]
        print(f"batch {b}: keraspose {t['median'] * 1e3:8.1f} ms  MMPose {r['median'] * 1e3:8.1f} ms  "
              f"ratio {t['median'] / r['median']:.3f}  (min-based {t['min'] / r['min']:.3f})")


if __name__ == "__main__":
    main()
