"""People per second of the exported TinyPose (onnxruntime, LiteRT) against keraspose's own predict, in one run.

    python benchmarks/bench_export.py --threads 1
    python benchmarks/bench_export.py --threads 2 --presets tinypose_coco_256x192 --crops 32

Issue 12's speed acceptance. The same uint8 person crops (the first
``--crops`` people of ../shared/data/coco_mini, cropped once by
``TopdownEstimator.crop_people``) go through, each in its own process at the
same thread count:

* keraspose: ``TopdownEstimator.predict_crops`` (normalisation, network,
  decoding, back to image pixels; flip test off) on torch, TensorFlow and JAX;
* the export (normalisation, network and decoding inside) in its runtime,
  plus the numpy map back to image pixels: ONNX (written from torch) in
  onnxruntime; LiteRT float32 / float16 / int8 (written from TensorFlow) in
  ai-edge-litert (XNNPACK). These processes import neither Keras nor a
  backend: ``keraspose/runtime.py`` is loaded on its own.

Each timing is the median of ``--repeats`` passes over all crops in batches
of ``--batches`` after one warm-up pass. Threads: ``--threads`` sets
torch/TensorFlow intra-op threads, onnxruntime's and LiteRT's ``num_threads``
and OMP/MKL/OpenBLAS; JAX gets ``--xla_cpu_multi_thread_eigen=false`` at one
thread; and every engine's process is pinned to ``--threads`` cores
(``--no-pin`` turns that off: unpinned, JAX used 1.45 CPU s per wall s at one
thread in one run, a second thread beside the computation). The table shows
the CPU seconds each process used per wall second (about the cores it really
ran on). The keypoints of every engine are compared with keraspose's on the
first backend (image pixels, keypoints it scores > 0.3: max and mean
distance). Ratios: export people/s / keraspose people/s on each backend
(above 1: the export is faster). Needs the export
extras (onnx, onnxruntime, tf2onnx, ai-edge-litert) on the path.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _reference import SHARED, machine_description  # noqa: E402

BACKENDS = ("torch", "tensorflow", "jax")
LITERT_PRECISIONS = ("float32", "float16", "int8")


def _thread_env(threads, backend=None):
    env = dict(os.environ)
    n = str(threads)
    env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, TF_NUM_INTRAOP_THREADS=n,
               TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    if backend:
        env["KERAS_BACKEND"] = backend
    if backend == "jax" and threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    return env


def _time_passes(run_batch, crops, batch, repeats):
    """Median seconds of one pass over all crops in batches of ``batch`` (after one warm-up pass),
    the passes' outputs and the process's CPU seconds per wall second over the timed passes
    (about the threads it really used)."""

    def one_pass():
        return [run_batch(slice(i, i + batch)) for i in range(0, len(crops), batch)]

    outputs = one_pass()
    times = []
    cpu0 = time.process_time()
    for _ in range(repeats):
        t0 = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), outputs, (time.process_time() - cpu0) / sum(times)


# -- workers (one process each) ---------------------------------------------------


def worker_crops(args):
    """Crop the first --crops coco_mini people once, for every engine."""
    sys.path.insert(0, str(REPO / "tests"))
    import keraspose
    from coco_mini import coco_mini_people

    images, boxes, _ = coco_mini_people(SHARED / "data/coco_mini")
    model = keraspose.TopdownEstimator.from_preset(args.preset, load_weights=False)
    crops, centers, scales = [], [], []
    for image, image_boxes in zip(images, boxes):
        c, ctr, scl = model.crop_people(keraspose.load_image(str(image)), image_boxes)
        crops.append(c)
        centers.append(ctr)
        scales.append(scl)
    n = args.crops
    crops, centers, scales = (np.concatenate(a)[:n] for a in (crops, centers, scales))
    np.savez(args.out, crops=crops, centers=centers, scales=scales)


def worker_keras(args):
    """keraspose's predict_crops on this process's backend; then write the exports this backend writes."""
    import keras

    import keraspose
    from keraspose import backend

    backend.set_num_threads(args.threads)
    data = np.load(args.crops_file)
    crops, centers, scales = data["crops"], data["centers"], data["scales"]
    model = keraspose.TopdownEstimator.from_preset(args.preset, flip_test=False)
    result = {"engine": f"keraspose {keras.config.backend()}", "times": {}, "cpu_per_wall": {}}
    for batch in args.batches:
        seconds, outputs, cpu = _time_passes(
            lambda s: model.predict_crops(crops[s], centers[s], scales[s], batch_size=batch, flip_test=False),
            crops, batch, args.repeats)
        result["times"][str(batch)] = seconds
        result["cpu_per_wall"][str(batch)] = cpu
    result["keypoints"] = np.concatenate([kp for kp, _ in outputs]).tolist()
    result["scores"] = np.concatenate([sc for _, sc in outputs]).tolist()
    # The exports, after the timing (so the conversions do not warm anything up).
    if args.export_dir:
        if keras.config.backend() == "torch":
            model.export(os.path.join(args.export_dir, "onnx_float32"), format="onnx")
        if keras.config.backend() == "tensorflow":
            for precision in LITERT_PRECISIONS:
                model.export(os.path.join(args.export_dir, f"litert_{precision}"), format="litert",
                             precision=precision)
    print(json.dumps(result))


def worker_runtime(args):
    """An export in its own runtime; keraspose/runtime.py is loaded alone (no Keras, no backend)."""
    spec = importlib.util.spec_from_file_location("keraspose_runtime", REPO / "keraspose/runtime.py")
    runtime = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runtime)
    assert "keras" not in sys.modules and "torch" not in sys.modules
    data = np.load(args.crops_file)
    crops, centers, scales = data["crops"], data["centers"], data["scales"]
    model = runtime.load_exported(args.export, num_threads=args.threads)
    input_size = np.asarray(model.input_size, np.float32)
    meta = model.metadata

    def run(s):
        out = model(crops[s])
        # crop_to_image (the metadata's formula), as predict_crops does it.
        keypoints = out["keypoints"] / input_size * scales[s][:, None] + centers[s][:, None] - 0.5 * scales[s][:, None]
        return keypoints, out["scores"]

    result = {"engine": f"{meta['format']} {meta.get('precision', 'float32')}", "times": {},
              "file_bytes": os.path.getsize(os.path.join(args.export, meta["model_file"])), "cpu_per_wall": {}}
    for batch in args.batches:
        seconds, outputs, cpu = _time_passes(run, crops, batch, args.repeats)
        result["times"][str(batch)] = seconds
        result["cpu_per_wall"][str(batch)] = cpu
    result["keypoints"] = np.concatenate([kp for kp, _ in outputs]).tolist()
    result["scores"] = np.concatenate([sc for _, sc in outputs]).tolist()
    print(json.dumps(result))


# -- the run ----------------------------------------------------------------------


def _spawn(role, args, extra, backend=None):
    cmd = [sys.executable, __file__, "--worker", role, "--preset", args.preset_now, "--threads", str(args.threads),
           "--batches", ",".join(map(str, args.batches)), "--repeats", str(args.repeats), *extra]
    if not getattr(args, "no_pin", False):
        cmd.append("--pin")
    out = subprocess.run(cmd, capture_output=True, text=True, env=_thread_env(args.threads, backend))
    if out.returncode != 0:
        sys.exit(f"{role} worker ({backend or 'runtime'}) failed:\n{out.stderr[-4000:]}")
    lines = [line for line in out.stdout.strip().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def _versions():
    import importlib.metadata

    versions = {}
    for name in ("keras", "torch", "tensorflow", "tensorflow-cpu", "jax", "onnxruntime", "ai-edge-litert"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="tinypose_coco_128x96,tinypose_coco_256x192")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--litert-precisions", default=",".join(LITERT_PRECISIONS))
    parser.add_argument("--crops", type=int, default=32, help="people (coco_mini crops) per pass (default 32)")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin each engine's process to --threads cores (JAX's asynchronous dispatch "
                             "otherwise overlaps Python with the computation on a second core)")
    # internal: one engine in this process
    parser.add_argument("--worker", choices=["crops", "keras", "runtime"], help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--crops-file", help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--pin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batches = [int(b) for b in str(args.batches).split(",")]
    if args.worker and args.pin and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[: args.threads])
    if args.worker:
        return {"crops": worker_crops, "keras": worker_keras, "runtime": worker_runtime}[args.worker](args)

    backends = [b for b in args.backends.split(",") if b]
    precisions = [p for p in args.litert_precisions.split(",") if p]
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    print(f"# exported TinyPose vs keraspose predict_crops: {args.crops} coco_mini crops, batches {args.batches}, "
          f"{args.threads} thread(s) everywhere{'' if args.no_pin else f', each process pinned to {args.threads} core(s)'}, "
          f"median of {args.repeats} passes after 1 warm-up")
    print(f"# machine: {machine_description()}; load average at start {load}")
    print(f"# versions: {_versions()}")
    all_results = {}
    for preset in args.presets.split(","):
        args.preset_now = preset
        with tempfile.TemporaryDirectory() as tmp:
            crops_file = os.path.join(tmp, "crops.npz")
            _spawn("crops", args, ["--out", crops_file, "--crops", str(args.crops)], backend=backends[0])
            export_dir = os.path.join(tmp, "exports")
            os.makedirs(export_dir)
            results = []
            for backend in backends:
                print(f"  {preset}: keraspose on {backend} (and its exports)...", file=sys.stderr, flush=True)
                results.append(_spawn("keras", args, ["--crops-file", crops_file, "--export-dir", export_dir],
                                      backend=backend))
            exports = (["onnx_float32"] if "torch" in backends else []) + (
                [f"litert_{p}" for p in precisions] if "tensorflow" in backends else [])
            for name in exports:
                print(f"  {preset}: {name} in its runtime...", file=sys.stderr, flush=True)
                results.append(_spawn("runtime", args, ["--crops-file", crops_file, "--export",
                                                        os.path.join(export_dir, name)]))
        all_results[preset] = results
        _print_table(preset, results, args)
    if load is not None:
        print(f"# load average at end {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({p: [{k: v for k, v in r.items() if k not in ("keypoints", "scores")} for r in rs]
                       for p, rs in all_results.items()}, f, indent=2)


def _print_table(preset, results, args):
    n = args.crops
    keras_rows = [r for r in results if r["engine"].startswith("keraspose")]
    reference = np.asarray(keras_rows[0]["keypoints"]) if keras_rows else None
    confident = np.asarray(keras_rows[0]["scores"]) > 0.3 if keras_rows else None
    print(f"\n## {preset}: people per second ({n} crops)")
    head = ("| engine | file | keypoints vs " + (keras_rows[0]["engine"] if keras_rows else "-")
            + ", score > 0.3: max / mean diff (image px) | ")
    head += " | ".join(f"batch {b}" for b in args.batches) + " | CPU s per wall s"
    head += " | " + " | ".join(f"b{b} / {r['engine'].split()[1]}" for b in args.batches for r in keras_rows) + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        rate = {b: n / r["times"][str(b)] for b in args.batches}
        if reference is not None:
            diff = np.linalg.norm(np.asarray(r["keypoints"]) - reference, axis=-1)[confident]
            diff = f"{diff.max():.3g} / {diff.mean():.3g}"
        else:
            diff = "-"
        size = f"{r['file_bytes'] / 1e6:.2f} MB" if "file_bytes" in r else ""
        cells = [f"{rate[b]:.1f}" for b in args.batches]
        cells.append(" / ".join(f"{r['cpu_per_wall'][str(b)]:.2f}" for b in args.batches))
        ratios = [f"{rate[b] / (n / k['times'][str(b)]):.2f}" for b in args.batches for k in keras_rows]
        print(f"| {r['engine']} | {size} | {diff} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
