"""Top-down training augmentation, samples per second: keraspose against MMPose, in one run.

    python benchmarks/bench_data_pipeline.py                 # 1 thread = one data worker
    python benchmarks/bench_data_pipeline.py --passes 10 --threads 1

The full training pipeline (LoadImage, GetBBoxCenterScale, RandomFlip,
RandomHalfBody, RandomBBoxTransform, TopdownAffine 192x256, GenerateTarget
with MSRAHeatmap 48x64 sigma 2) on the 86 annotated people of the real
coco_mini photos (JPEG decoding included), in one process, i.e. what one
data-loader worker does. The same number of passes over all samples runs on
both sides, after the same number of warm-up passes (which also warm the
page cache), with OpenCV and OpenMP limited to ``--threads`` on both sides.

Rows (higher samples/s is better; ratio = keraspose / MMPose samples/s, so a
ratio above 1.0 means keraspose is faster):

* ``per sample``: keraspose ``train_pipeline(...)(dataset[i])`` against
  MMPose's ``CocoDataset[i]`` (its data info + the same transforms +
  PackPoseInputs, as its DataLoader workers run it);
* ``per sample, no pack``: MMPose without PackPoseInputs on
  ``get_data_info(i)`` (keraspose has no packing step; same keraspose time);
* ``batches``: ``TopdownPyDataset[b]`` (pipeline, BGR->RGB, stacking,
  normalisation) against MMPose's ``pseudo_collate`` of the packed samples
  + ``PoseDataPreprocessor`` (stacking, BGR->RGB, normalisation).

The random draws differ between the two sides (different generators), so
individual samples get different augmentations; over several passes the mix
of flips, half-body crops and rotations is the same in distribution. Works
on every Keras backend (the pipeline is numpy/OpenCV only).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import SHARED, machine_description, run_reference  # noqa: E402


def _summary(times, samples_per_pass):
    rates = sorted(samples_per_pass / t for t in times)
    return {"median": rates[len(rates) // 2], "best": rates[-1], "seconds": times}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="OpenCV/OpenMP threads on both sides (1 = a worker)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes over all 86 samples")
    parser.add_argument("--warmup-passes", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(SHARED / "data/coco_mini"))
    parser.add_argument("--mmpose-python", default=None)
    args = parser.parse_args()

    # Before numpy/OpenCV start their thread pools.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import cv2
    import keras

    from keraspose import backend
    from keraspose.codecs import MSRAHeatmap
    from keraspose.convert.mmpose import build_from_mmpose_config
    from keraspose.datasets import CocoStyleDataset
    from keraspose.training import TopdownPyDataset, train_pipeline

    cv2.setNumThreads(args.threads)
    backend.set_num_threads(args.threads)
    data = Path(args.data)
    ann = "annotations/person_keypoints_train2017.json"

    ref = run_reference(
        "_mmpose_data_pipeline.py",
        [data, ann, "train2017/", args.threads, args.passes, args.warmup_passes, args.batch_size, args.seed],
        python=args.mmpose_python, threads=args.threads,
    )

    dataset = CocoStyleDataset(data / ann, data / "train2017", "coco")
    n = len(dataset)
    if n != ref["samples"]:
        sys.exit(f"sample counts differ: keraspose {n}, MMPose {ref['samples']}")
    codec = MSRAHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2)
    pipeline = train_pipeline(codec, dataset.metainfo, seed=args.seed)
    # Normalisation is TopdownEstimator.preprocess, which depends only on
    # mean/std/channel order (MMPose's data_preprocessor); a tiny HRNet with
    # the standard COCO normalisation supplies it without building W32.
    tiny = build_from_mmpose_config(SHARED / "reference/models/tiny_hrnet_coco_config.json")
    batches = TopdownPyDataset(dataset, pipeline, tiny.preprocess, batch_size=args.batch_size, seed=args.seed)

    def per_sample():
        for i in range(n):
            out = pipeline(dataset[i])
            assert out is not None

    def per_batch():
        for b in range(len(batches)):
            batches[b]
        batches.on_epoch_end()

    def timed(fn):
        for _ in range(args.warmup_passes):
            fn()
        times = []
        for _ in range(args.passes):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times

    ours = {"sample": timed(per_sample), "batch": timed(per_batch)}
    x, y = batches[0]
    s = pipeline(dataset[0])

    print(f"# top-down training pipeline on coco_mini ({n} people), {args.passes} passes after "
          f"{args.warmup_passes} warm-up, {args.threads} thread(s) (OpenCV + OpenMP), batch {args.batch_size}; "
          f"keraspose on keras {keras.__version__} ({keras.config.backend()}), OpenCV {cv2.__version__}; "
          f"MMPose {ref['mmpose']}, OpenCV {ref['opencv']}; machine: {machine_description()}")
    print(f"# keraspose sample: img {list(s['img'].shape)} heatmaps {list(s['heatmaps'].shape)}; batch x "
          f"{list(x.shape)} heatmaps {list(y['heatmaps'].shape)}; MMPose packed: {ref['shapes']}")
    print("# samples/s, median of passes (higher is better); ratio = keraspose / MMPose (> 1.0: keraspose faster)")
    rows = [
        ("per sample (MMPose with PackPoseInputs)", "sample", "sample_packed"),
        ("per sample (MMPose without PackPoseInputs)", "sample", "sample_nopack"),
        (f"batches of {args.batch_size} (+ stack, normalise)", "batch", "batch"),
    ]
    report = {"threads": args.threads, "passes": args.passes, "samples": n, "backend": keras.config.backend(),
              "rows": {}}
    print(f"{'row':48s} {'keraspose':>12s} {'MMPose':>12s} {'ratio':>7s}")
    for label, mine, theirs in rows:
        k = _summary(ours[mine], n)
        m = _summary(ref["times"][theirs], n)
        ratio = k["median"] / m["median"]
        print(f"{label:48s} {k['median']:8.1f} s/s {m['median']:8.1f} s/s {ratio:7.3f}  "
              f"(best-pass ratio {k['best'] / m['best']:.3f})")
        report["rows"][theirs] = {"keraspose_sps": k["median"], "mmpose_sps": m["median"], "ratio": ratio,
                                  "keraspose_s": k["seconds"], "mmpose_s": m["seconds"]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
