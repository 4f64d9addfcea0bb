"""HRNet-W32 256x192 forward pass: keraspose against MMPose, in one run.

    KERAS_BACKEND=torch python benchmarks/bench_hrnet_forward.py --threads 2
    KERAS_BACKEND=tensorflow python benchmarks/bench_hrnet_forward.py --threads 2 --xla both
    KERAS_BACKEND=jax python benchmarks/bench_hrnet_forward.py --threads 2 --xla both

MMPose's own model (built from the official W32 config, seeded random
weights) is timed in the MMPose venv; its weights are saved and converted
with ``keraspose.convert.from_mmpose``, so both sides run the same weights on
the same normalised input, at the same thread count, without gradients.
Also checks that both produce the same heatmaps. Prints one line per batch
size with the time ratio keraspose / MMPose (target <= 1.0).
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import SHARED, machine_description, run_reference, time_calls  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--model", default="hrnet_w32_coco_256x192", help="a *_keys.json in shared/reference/models")
    parser.add_argument("--xla", choices=["auto", "off", "on", "both"], default="auto",
                        help="jit_compile on TensorFlow/JAX; auto is Keras' default (off on TensorFlow's CPU, on on JAX)")
    parser.add_argument("--mmpose-python", default=None)
    args = parser.parse_args()

    import keras

    from keraspose import backend
    from keraspose.convert import from_mmpose

    backend.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    keys_json = SHARED / "reference/models" / f"{args.model}_keys.json"
    config = {"model": json.load(open(keys_json))["model"]}

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp, "config.json")
        cfg_path.write_text(json.dumps(config))
        rng = np.random.default_rng(0)
        x_nchw = rng.standard_normal((max(batches), 3, 256, 192)).astype(np.float32)
        np.save(Path(tmp, "x.npy"), x_nchw)
        ckpt = Path(tmp, "model.pth")
        ref = run_reference(
            "_mmpose_hrnet_forward.py",
            [cfg_path, ckpt, Path(tmp, "x.npy"), args.threads, args.repeats, args.batches],
            python=args.mmpose_python, threads=args.threads,
        )
        model = from_mmpose(config, ckpt)

    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    out = keras.ops.convert_to_numpy(model.predict_on_batch(x_nhwc[:1])).transpose(0, 3, 1, 2)
    ref_hm = np.asarray(ref["heatmaps_b1"], np.float32)
    err = float(np.abs(out - ref_hm).max() / np.abs(ref_hm).max())

    compiled = keras.config.backend() in ("tensorflow", "jax")
    modes = [False]
    if compiled:
        modes = {"auto": [model.jit_compile], "off": [False], "on": [True], "both": [False, True]}[args.xla]
    print(f"# {args.model} forward, {args.threads} threads, backend {keras.config.backend()}, "
          f"keras {keras.__version__}; MMPose torch {ref['torch']}; machine: {machine_description()}")
    print(f"# heatmap parity vs MMPose (max abs err / max |ref|): {err:.2e}")
    for xla in modes:
        model.jit_compile = xla
        model.predict_function = None
        for b in batches:
            x = x_nhwc[:b]
            with backend.inference_mode():
                t = time_calls(lambda: model.predict_on_batch(x), args.repeats)
            r = ref["times"][str(b)]
            tag = f" xla={'on' if xla else 'off'}" if compiled else ""
            print(
                f"batch {b}{tag}: keraspose {t['median'] * 1e3:8.1f} ms  MMPose {r['median'] * 1e3:8.1f} ms  "
                f"ratio {t['median'] / r['median']:.3f}  (min-based {t['min'] / r['min']:.3f})"
            )


if __name__ == "__main__":
    main()
