"""jit_compile on or off: inference and training step of one model, on TensorFlow or JAX, in one run.

    KERAS_BACKEND=jax python benchmarks/bench_jit_compile.py --model hrnet_w32
    KERAS_BACKEND=jax python benchmarks/bench_jit_compile.py --model tinypose --batches 1,16

The reference here is keraspose itself with the other setting: the same
model object (same weights) runs ``predict_on_batch`` (inference, BatchNorm
folded) and ``train_on_batch`` (forward, KeypointMSELoss, backward, Adam)
with ``jit_compile=False`` (eager: on JAX every op is dispatched on its own)
and ``jit_compile=True`` (one XLA program per step). Both compiled
functions are kept and the two settings interleaved round by round, so a
change in machine load hits both. The first call of each setting and shape
is reported separately (it includes tracing and XLA compilation); the table reports medians of the later calls
and the ratio on / off (< 1: jit_compile faster).

Models: ``hrnet_w32`` (MMPose's HRNet-W32 256x192 config, random weights)
and ``tinypose`` (the bundled PP-TinyPose 256x192 preset, whose training
step has the same head loss).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import SHARED, machine_description  # noqa: E402


def build(name):
    from keraspose import TopdownEstimator
    from keraspose.convert import build_from_mmpose_config

    if name == "hrnet_w32":
        keys = json.loads((SHARED / "reference/models/hrnet_w32_coco_256x192_keys.json").read_text())
        return build_from_mmpose_config({"model": keys["model"]})
    if name == "tinypose":
        return TopdownEstimator.from_preset("tinypose_coco_256x192")
    raise SystemExit(f"--model must be hrnet_w32 or tinypose, got {name!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="hrnet_w32")
    parser.add_argument("--batches", default="1,8", help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=8, help="0: no training step")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import keras

    from keraspose import backend

    kb = keras.config.backend()
    if kb not in ("tensorflow", "jax"):
        raise SystemExit("jit_compile applies to the TensorFlow and JAX backends")
    model = build(args.model)
    w, h = model.input_size
    rng = np.random.default_rng(0)
    print(f"# {args.model} {w}x{h}, backend {kb}, keras {keras.__version__}, {args.rounds} rounds interleaved; "
          f"machine: {machine_description()}")

    def set_jit(on):
        model.jit_compile = on
        model.predict_function = None
        model.train_function = None

    results = {}
    for b in [int(v) for v in args.batches.split(",") if v]:
        x = rng.standard_normal((b, h, w, 3)).astype(np.float32)
        first, times, functions = {}, {False: [], True: []}, {}
        for on in (False, True):
            set_jit(on)
            t0 = time.perf_counter()
            with backend.inference_mode():
                model.predict_on_batch(x)
            first[on] = time.perf_counter() - t0
            functions[on] = model.predict_function
        for _ in range(args.rounds):
            for on in (False, True):
                model.predict_function = functions[on]
                t0 = time.perf_counter()
                model.predict_on_batch(x)
                times[on].append(time.perf_counter() - t0)
        results[f"inference b{b}"] = (first, times)

    if args.train_batch:
        b = args.train_batch
        k = model.metainfo.num_keypoints
        x = keras.ops.convert_to_tensor(rng.standard_normal((b, h, w, 3)).astype(np.float32))
        y = {"heatmaps": keras.ops.convert_to_tensor(rng.random((b, h // 4, w // 4, k)).astype(np.float32)),
             "keypoint_weights": keras.ops.convert_to_tensor(np.ones((b, k), np.float32))}
        model.compile(optimizer=keras.optimizers.Adam(1e-5))
        first, times, functions = {}, {False: [], True: []}, {}
        for on in (False, True):
            set_jit(on)
            t0 = time.perf_counter()
            model.train_on_batch(x, y)
            first[on] = time.perf_counter() - t0
            functions[on] = model.train_function
        for _ in range(args.rounds):
            for on in (False, True):
                model.train_function = functions[on]
                t0 = time.perf_counter()
                model.train_on_batch(x, y)
                times[on].append(time.perf_counter() - t0)
        results[f"train step b{b}"] = (first, times)

    print("| row | first call off / on (s) | jit_compile off (ms) | jit_compile on (ms) | on / off |")
    print("|---|---|---|---|---|")
    summary = {}
    for row, (first, times) in results.items():
        med = {on: sorted(t)[len(t) // 2] for on, t in times.items()}
        print(f"| {row} | {first[False]:.1f} / {first[True]:.1f} | {med[False] * 1e3:.1f} | "
              f"{med[True] * 1e3:.1f} | {med[True] / med[False]:.2f} |")
        summary[row] = {"first_off_s": first[False], "first_on_s": first[True], "off_s": times[False], "on_s": times[True]}
    print(json.dumps({"model": args.model, "backend": kb, "rows": summary}))


if __name__ == "__main__":
    main()
