"""People per second of ``TopdownEstimator.predict`` on the coco_mini photos.

    KERAS_BACKEND=torch python benchmarks/bench_predict.py --preset tinypose_coco_256x192
    KERAS_BACKEND=tensorflow python benchmarks/bench_predict.py --preset tinypose_coco_256x192

The whole inference is timed: image decoding, cropping, normalisation, the
network (in batches of ``--batch-sizes``), decoding and the way back to
image pixels, for the 86 annotated people of ../shared/data/coco_mini with
their ground-truth boxes, flip test off (``--flip`` turns it on).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _reference import SHARED, machine_description  # noqa: E402
from coco_mini import coco_mini_people  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tinypose_coco_256x192")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flip", action="store_true")
    args = parser.parse_args()

    import keras

    import keraspose
    from keraspose import backend

    backend.set_num_threads(args.threads)
    model = keraspose.TopdownEstimator.from_preset(args.preset)
    images, boxes, _ = coco_mini_people(SHARED / "data/coco_mini")
    people = sum(len(b) for b in boxes)
    print(f"# predict on coco_mini ({people} people, {len(images)} images), preset {args.preset}, "
          f"flip={'on' if args.flip else 'off'}, {args.threads} threads, backend {keras.config.backend()}, "
          f"keras {keras.__version__}; machine: {machine_description()}")
    for bs in map(int, args.batch_sizes.split(",")):
        model.predict(images[:2], bboxes=boxes[:2], batch_size=bs, flip_test=args.flip)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.predict(images, bboxes=boxes, batch_size=bs, flip_test=args.flip)
            times.append(time.perf_counter() - t0)
        best = min(times)
        print(f"batch {bs:3d}: {people / best:7.1f} people/s  ({best:.2f} s for {people} people, best of {args.repeats})")


if __name__ == "__main__":
    main()
