"""Images per second of the RTMDet-nano person detector: keraspose vs onnxruntime on the same ONNX model.

    KERAS_BACKEND=torch python benchmarks/bench_detector.py [--threads 2]
    KERAS_BACKEND=tensorflow python benchmarks/bench_detector.py

Both sides run the 80 coco_mini photos, decoded beforehand (decoding is not
timed on either side), at the same thread count:

* **pipeline**: keraspose ``RTMDetector.predict`` on the bundled
  ``rtmdet_nano_person`` preset (resize/pad, normalise, network, numpy
  post-processing and NMS) vs the same steps around onnxruntime
  (``tests/rtmdet_reference.py``: cv2 letterbox, normalise, the ONNX
  graph, numpy post-processing);
* **network**: already-normalised 320x320 inputs through
  ``RTMDetector.predict_raw`` vs ``InferenceSession.run``.

The ONNX graph has a fixed batch of 1, so onnxruntime always runs the images
one by one; keraspose runs batches of ``--batch-sizes`` (default 1 and 8).
The ratio is keraspose's images/s over onnxruntime's (> 1: keraspose faster).
Best of ``--repeats`` passes over the 80 images after a warm-up pass, the two sides
interleaved pass by pass.

``--omp-passive`` sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads: on a
machine whose cores are busy with other work, torch's OpenMP threads spinning
at every operator's barrier made a 2-thread forward 10-100x slower (see
benchmarks/README.md); onnxruntime and TensorFlow use their own thread pools.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _reference import SHARED, machine_description  # noqa: E402
import rtmdet_reference as ref  # noqa: E402


def best_rates(fns, count, repeats):
    """Images per second of each ``fns[name]()``: best of ``repeats`` timed calls after one warm-up.

    The calls are interleaved (every function once per round), so a change of
    load on a shared machine hits both sides alike.
    """
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: count / seconds for name, seconds in best.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="rtmdet_nano_person")
    parser.add_argument("--onnx", default=str(SHARED / "weights/rtmdet_nano_person/rtmdet-nano.onnx"))
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--omp-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE (torch's OpenMP)")
    args = parser.parse_args()
    if args.omp_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read once, when the OpenMP runtime starts

    import cv2
    import keras

    import keraspose
    from keraspose import backend

    backend.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    detector = keraspose.RTMDetector.from_preset(args.preset)
    session = ref.onnx_session(args.onnx, threads=args.threads)

    paths = [p for _, p in ref.coco_mini_images(SHARED / "data/coco_mini")]
    bgr = [cv2.imread(str(p)) for p in paths]
    rgb = [np.ascontiguousarray(im[..., ::-1]) for im in bgr]
    n = len(bgr)
    onnx_inputs = [ref.onnx_input(ref.letterbox(im)[0]) for im in bgr]
    ours_inputs, _ = detector.preprocess(rgb)

    print(f"# RTMDet-nano person detector on coco_mini ({n} images, decoded beforehand), "
          f"{args.threads} threads both sides (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}); keraspose backend {keras.config.backend()}, keras "
          f"{keras.__version__}; onnxruntime {__import__('onnxruntime').__version__} (fixed batch 1: "
          f"image by image); machine: {machine_description()}")

    def ort_pipeline():
        for im in bgr:
            ref.detect(session, im)

    def ort_network():
        for x in onnx_inputs:
            ref.run_onnx(session, x)

    def ours_pipeline(bs):
        return lambda: detector.predict(rgb, batch_size=bs)

    def ours_network(bs):
        def run():
            for start in range(0, n, bs):
                detector.predict_raw(ours_inputs[start:start + bs])
        return run

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    fns = {("onnxruntime", "pipeline"): ort_pipeline, ("onnxruntime", "network"): ort_network}
    for bs in sizes:
        fns[(bs, "pipeline")] = ours_pipeline(bs)
        fns[(bs, "network")] = ours_network(bs)
    rate = best_rates(fns, n, args.repeats)
    ort = {kind: rate[("onnxruntime", kind)] for kind in ("pipeline", "network")}
    print(f"onnxruntime           pipeline {ort['pipeline']:7.1f} img/s   network {ort['network']:7.1f} img/s")
    for bs in sizes:
        pipe, net = rate[(bs, "pipeline")], rate[(bs, "network")]
        print(f"keraspose batch {bs:3d}   pipeline {pipe:7.1f} img/s ({pipe / ort['pipeline']:.2f}x)   "
              f"network {net:7.1f} img/s ({net / ort['network']:.2f}x)")


if __name__ == "__main__":
    main()
