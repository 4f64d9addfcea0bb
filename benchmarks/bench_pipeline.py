"""Images per second of the whole detect-then-estimate pipeline on coco_mini, keraspose vs the original runtimes.

    python benchmarks/bench_pipeline.py --backend torch --ncnn-path /path/to/ncnn-site
    python benchmarks/bench_pipeline.py --backend tensorflow --ncnn-path ...
    python benchmarks/bench_pipeline.py --backend jax --ncnn-path ...

keraspose: ``PoseInferencer.from_preset()`` (the bundled RTMDet-nano person
detector + PP-TinyPose 256x192) on the 80 coco_mini photos, decoded
beforehand, ``--images-per-call`` images per ``predict`` call (the CLI uses 8;
all the crops of a call go through the pose network together), flip test off.

Reference: the same two trained models in their original runtimes, glued
with MMPose 1.3.2's own code (``_reference_pipeline.py``, run in the MMPose
venv): onnxruntime RTMDet-nano + MMDetection's test pipeline in numpy,
MMPose's demo filtering (score > 0.3, its NMS at 0.3), MMPose's
GetBBoxCenterScale/TopdownAffine, ncnn PP-TinyPose (one crop per call),
MMPose's MSRAHeatmap decoding. MMPose cannot build PP-TinyPose itself (it
is a PaddleDetection model shipped as ncnn), so this is the nearest
reference that runs the same networks; it is a deployment runtime, not
MMPose's PyTorch.

Both sides use ``--threads`` threads; the reference always runs with
``OMP_WAIT_POLICY=PASSIVE`` (ncnn uses OpenMP; spinning waits on a shared
machine slowed it 10x). Passes over the 80 images alternate
between the sides (the reference is a server process waiting on stdin), so
a load change on a shared machine hits both. Prints images/s of each side
(best pass of ``--repeats``), the ratio keraspose / reference (> 1:
keraspose faster), and checks that both found the same people.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _reference import REPO, SHARED, machine_description, mmpose_python  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["torch", "tensorflow", "jax"],
                        help="Keras backend (default: KERAS_BACKEND)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images-per-call", default="1,8")
    parser.add_argument("--ncnn-path", default=os.environ.get("NCNN_PATH"),
                        help="folder holding the ncnn Python package, if not in the MMPose venv")
    parser.add_argument("--mmpose-python", help="the MMPose venv's python (default: found as in _reference.py)")
    parser.add_argument("--no-reference", action="store_true", help="time keraspose only")
    parser.add_argument("--omp-passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE for torch's OpenMP (see bench_detector.py)")
    args = parser.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.omp_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read once, when the OpenMP runtime starts

    import cv2
    import keras
    import numpy as np

    import keraspose
    from keraspose import backend
    import rtmdet_reference as ref

    backend.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    paths = [p for _, p in ref.coco_mini_images(SHARED / "data/coco_mini")]
    rgb = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    pipeline = keraspose.PoseInferencer.from_preset()

    server = None
    if not args.no_reference:
        command = [mmpose_python(args.mmpose_python), str(REPO / "benchmarks/_reference_pipeline.py"),
                   "--shared", str(SHARED), "--tests", str(REPO / "tests"), "--threads", str(args.threads)]
        if args.ncnn_path:
            command += ["--ncnn-path", args.ncnn_path]
        # ncnn runs on OpenMP: with its default spinning waits and other work on the cores
        # it was 10x slower (0.8 vs 8.6 img/s here); passive waits are its best setting on a
        # shared machine, whatever keraspose's backend.
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="PASSIVE",
                   PYTHONWARNINGS="ignore")
        env.pop("KERAS_BACKEND", None)
        server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        hello = json.loads(server.stdout.readline() or "{}")
        if not hello.get("ready"):
            sys.exit("the reference pipeline did not start (is ncnn installed? see --ncnn-path)")

    def ask(message):
        server.stdin.write(message + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    sizes = [int(v) for v in args.images_per_call.split(",")]
    results = {}

    def ours(per_call):
        def run():
            out = []
            for start in range(0, len(rgb), per_call):
                out += pipeline.predict(rgb[start:start + per_call], flip_test=False)
            results[per_call] = out
        return run

    for size in sizes:  # warm-up: every batch shape the passes will see
        ours(size)()
    if server:
        ask("run")
    best = {size: float("inf") for size in sizes}
    best_ref = float("inf")
    for _ in range(args.repeats):
        for size in sizes:
            t0 = time.perf_counter()
            ours(size)()
            best[size] = min(best[size], time.perf_counter() - t0)
        if server:
            best_ref = min(best_ref, ask("run")["seconds"])

    n = len(rgb)
    people = sum(len(r) for r in results[sizes[0]])
    print(f"# detect + estimate on coco_mini ({n} images decoded beforehand, {people} people found), "
          f"rtmdet_nano_person + tinypose_coco_256x192, flip off, {args.threads} threads "
          f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}); keraspose backend "
          f"{keras.config.backend()}, keras {keras.__version__}; machine: {machine_description()}")
    if server:
        reference = ask("results")
        ask_versions = f"onnxruntime {hello['onnxruntime']}, ncnn {hello['ncnn']}, MMPose {hello['mmpose']}"
        server.stdin.write("quit\n")
        server.stdin.flush()
        server.wait(timeout=60)
        # Same people on both sides: counts per image, and keypoints of boxes that match.
        diff_images, worst = 0, 0.0
        for ours_result, theirs in zip(results[sizes[0]], reference["people"]):
            if len(ours_result) != len(theirs):
                diff_images += 1
                continue
            for (box, keypoints, scores), box_ours, kp_ours in zip(theirs, ours_result.bboxes,
                                                                    ours_result.keypoints):
                if np.abs(np.array(box) - box_ours).max() < 0.5:
                    confident = np.array(scores) > 0.3
                    if confident.any():
                        worst = max(worst, float(np.abs(np.array(keypoints) - kp_ours)[confident].max()))
        rate_ref = n / best_ref
        print(f"reference ({ask_versions}; OMP_WAIT_POLICY=PASSIVE): {rate_ref:6.2f} img/s "
              f"({best_ref:.1f} s per pass, best of {args.repeats})")
        print(f"agreement: {n - diff_images}/{n} images with the same number of people; confident keypoints "
              f"of matching boxes within {worst:.2f} px")
    for size in sizes:
        rate = n / best[size]
        ratio = f", ratio {rate / rate_ref:.2f}" if server else ""
        print(f"keraspose {size} image{'s' * (size != 1)}/call: {rate:6.2f} img/s "
              f"({best[size]:.1f} s per pass{ratio})")


if __name__ == "__main__":
    main()
