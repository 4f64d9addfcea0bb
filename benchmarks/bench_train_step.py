"""One HRNet-W32 256x192 training step on CPU: keraspose against MMPose, in one run.

    KERAS_BACKEND=torch python benchmarks/bench_train_step.py --threads 2
    KERAS_BACKEND=tensorflow python benchmarks/bench_train_step.py --threads 2
    KERAS_BACKEND=jax python benchmarks/bench_train_step.py --threads 2

A step is forward + KeypointMSELoss(use_target_weight=True) + acc_pose +
backward + Adam(5e-4) update, at batch ``--batch`` (default 8), BatchNorm in
training mode. keraspose: ``model.train_on_batch(x, y)`` after
``model.compile(optimizer=keras.optimizers.Adam(5e-4))`` (what ``model.fit``
runs per batch). MMPose (in its venv): ``model.loss`` -> ``parse_losses`` ->
``OptimWrapper.update_params``, i.e. its ``train_step`` without the data
preprocessor. Both sides start from the same (MMPose-initialised, seeded
random) weights, converted with ``keraspose.convert.from_mmpose``, and get
the same normalised random input and random targets; the first step's loss
is compared as a check that both compute the same thing. Same thread count.

Prints median seconds per step (lower is better) and the ratio
keraspose / MMPose (below 1.0: keraspose faster), then a JSON line.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import SHARED, machine_description, run_reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--model", default="hrnet_w32_coco_256x192", help="a *_keys.json in shared/reference/models")
    parser.add_argument("--xla", choices=["auto", "off", "on"], default="auto",
                        help="TensorFlow/JAX jit_compile; auto is Keras' default (off on TensorFlow's CPU, on on JAX)")
    parser.add_argument("--mmpose-python", default=None)
    args = parser.parse_args()
    args.warmup = max(1, args.warmup)

    import keras

    from keraspose import backend
    from keraspose.convert import from_mmpose

    backend.set_num_threads(args.threads)
    keys_json = SHARED / "reference/models" / f"{args.model}_keys.json"
    config = {"model": json.load(open(keys_json))["model"]}
    head = config["model"]["head"]
    w, h = head["decoder"]["input_size"]
    hw, hh = head["decoder"]["heatmap_size"]
    k = head["out_channels"]

    rng = np.random.default_rng(0)
    b = args.batch
    x_nchw = rng.standard_normal((b, 3, h, w)).astype(np.float32)
    heatmaps = rng.random((b, k, hh, hw)).astype(np.float32)
    weights = (rng.random((b, k)) < 0.8).astype(np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp, "config.json")
        cfg_path.write_text(json.dumps(config))
        np.savez(Path(tmp, "data.npz"), x=x_nchw, heatmaps=heatmaps, keypoint_weights=weights)
        ckpt = Path(tmp, "model.pth")
        ref = run_reference(
            "_mmpose_train_step.py",
            [cfg_path, ckpt, Path(tmp, "data.npz"), args.threads, args.repeats, args.warmup, args.lr],
            python=args.mmpose_python, threads=args.threads,
        )
        model = from_mmpose(config, ckpt)

    model.compile(optimizer=keras.optimizers.Adam(args.lr), jit_compile="auto" if args.xla == "auto" else args.xla == "on")
    args.xla = "on" if model.jit_compile else "off"  # what "auto" resolved to
    # Backend tensors, as model.fit's data adapter hands them to the train
    # step: no numpy -> tensor conversion inside the timed steps.
    to_tensor = keras.ops.convert_to_tensor
    x = to_tensor(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)))
    y = {"heatmaps": to_tensor(np.ascontiguousarray(heatmaps.transpose(0, 2, 3, 1))),
         "keypoint_weights": to_tensor(weights)}
    first = model.train_on_batch(x, y, return_dict=True)
    first_loss = float(first["loss"])
    loss_err = abs(first_loss - ref["first_loss"]) / abs(ref["first_loss"])
    for _ in range(args.warmup - 1):
        model.train_on_batch(x, y)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    t = {"median": sorted(times)[len(times) // 2], "min": min(times)}

    kb = keras.config.backend()
    xla = f", XLA {args.xla}" if kb != "torch" else ""
    print(f"# {args.model} training step (forward, loss, backward, Adam {args.lr:g}), batch {b}, "
          f"{args.threads} threads, backend {kb}{xla}, keras {keras.__version__}; MMPose torch {ref['torch']}; "
          f"median of {args.repeats} after {args.warmup} warm-up; machine: {machine_description()}")
    print(f"# first-step loss: keraspose {first_loss:.6e}, MMPose {ref['first_loss']:.6e} (rel. diff {loss_err:.1e}); "
          f"acc_pose keraspose {float(first.get('acc_pose', float('nan'))):.4f}, MMPose {ref['first_acc']:.4f}")
    ratio = t["median"] / ref["median"]
    print("# seconds per step (lower is better); ratio = keraspose / MMPose (< 1.0: keraspose faster)")
    print(f"batch {b}: keraspose {t['median']:7.3f} s  MMPose {ref['median']:7.3f} s  ratio {ratio:.3f}  "
          f"(min-based {t['min'] / ref['min']:.3f})")
    print(json.dumps({
        "model": args.model, "backend": kb, "xla": args.xla if kb != "torch" else None, "batch": b,
        "threads": args.threads, "repeats": args.repeats, "keraspose_s": t["median"], "mmpose_s": ref["median"],
        "ratio": ratio, "keraspose_min_s": t["min"], "mmpose_min_s": ref["min"],
        "first_loss_keraspose": first_loss, "first_loss_mmpose": ref["first_loss"],
        "keraspose_times": times, "mmpose_times": ref["times"],
    }))


if __name__ == "__main__":
    main()
