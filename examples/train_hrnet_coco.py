"""MMPose's HRNet-W32 COCO recipe (td-hm_hrnet-w32_8xb64-210e_coco-256x192) in keraspose.

On a COCO 2017 download laid out as MMPose expects::

    coco/annotations/person_keypoints_train2017.json
    coco/annotations/person_keypoints_val2017.json
    coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json   (optional)
    coco/train2017/  coco/val2017/

run::

    python examples/train_hrnet_coco.py --coco-root coco --out runs/hrnet_w32

The recipe, as in MMPose's config:

* model: HRNet-W32 + a 1x1 heatmap head, MSRA heatmaps (sigma 2) for a
  192x256 input and 48x64 heatmaps, KeypointMSELoss with target weights;
* data: GetBBoxCenterScale (padding 1.25), RandomFlip, RandomHalfBody,
  RandomBBoxTransform (shift 0.16, scale 0.75-1.25, rotation up to 80
  degrees, p 0.6), TopdownAffine, GenerateTarget;
* optimiser: Adam, lr 5e-4, linear warm-up from 5e-7 over 500 iterations,
  x0.1 at epochs 170 and 200, 210 epochs (``keraspose.training.hrnet_recipe``);
  MMPose's 5e-4 is for 8 GPUs x 64 = 512 people per step; scale it with your
  batch size (``--lr``) as MMPose's auto-scale-lr would;
* evaluation: COCO AP on val2017 every 10 epochs with the detected person
  boxes when the detection file is there (else the annotated boxes), flip
  test, OKS-NMS; the best model by AP kept as a preset.

Training resumes where it stopped when the same command is run again
(``BackupAndRestore``), replaying each epoch's own shuffling and
augmentation.

MMPose starts from ImageNet-pretrained HRNet weights, which cannot be
downloaded offline; this script starts from scratch unless ``--init`` names
a preset to start from. From scratch, 210 epochs give a lower AP than the
model zoo's 0.749.

A short run on the project's small sample (``--demo``) checks the whole loop
in a few minutes. With ``--width 8 --no-augment`` a small HRNet from scratch
overfits the 86 coco_mini people within a few hundred steps (the training
``acc_pose`` climbs; ``history.csv`` has the curve)::

    python examples/train_hrnet_coco.py --demo --width 8 --input-size 96x128 --no-augment \
        --epochs 50 --batch-size 16 --lr 1e-3 --warmup-steps 50 --eval-every 50 --workers 0 --out runs/overfit

Several devices, the same flags on every backend (``--batch-size`` is the
global batch, split over the devices; BatchNorm is synchronised, as MMPose's
SyncBN)::

    KERAS_BACKEND=jax python examples/train_hrnet_coco.py --coco-root coco --devices 8
    KERAS_BACKEND=tensorflow python examples/train_hrnet_coco.py --coco-root coco --devices 8
    KERAS_BACKEND=torch torchrun --nproc_per_node 8 examples/train_hrnet_coco.py --coco-root coco --devices 8

(TensorFlow on several hosts: set ``TF_CONFIG`` on each and the script uses
``MultiWorkerMirroredStrategy``.) ``--mixed-precision bfloat16`` (or
``float16``, with dynamic loss scaling) trains under Keras' mixed precision.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import keras

import keraspose
from keraspose.codecs import MSRAHeatmap
from keraspose.models.heads import HeatmapHead
from keraspose.models.hrnet import HRNetBackbone, hrnet_extra
from keraspose.training import (
    CocoEvaluation, TopdownPyDataset, distributed, hrnet_recipe, train_pipeline, val_pipeline,
)

SHARED = Path(os.environ.get("KERASPOSE_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def build_hrnet(width, input_size=(192, 256)):
    """HRNet-W``width`` + heatmap head for the 17 COCO keypoints, freshly initialised."""
    heatmap_size = (input_size[0] // 4, input_size[1] // 4)
    codec = MSRAHeatmap(input_size=input_size, heatmap_size=heatmap_size, sigma=2)
    model = keraspose.TopdownEstimator(
        backbone=HRNetBackbone(extra=hrnet_extra(width)),
        head=HeatmapHead(out_channels=17, codec=codec),  # 1x1 final conv, no deconvolution
        metainfo="coco",
        input_size=input_size,
        flip_test=True,
        shift_heatmap=True,
        name=f"hrnet_w{width}_coco",
    )
    model.build()
    return model


def data_paths(args):
    if args.demo:
        root = SHARED / "data" / "coco_mini"
        ann = root / "annotations" / "person_keypoints_train2017.json"
        if not ann.exists():
            sys.exit(f"demo data not found at {root}; set KERASPOSE_SHARED")
        # One split only: the demo trains and validates on the same people.
        return ann, root / "train2017", ann, root / "train2017", None
    if not args.coco_root:
        sys.exit("give --coco-root (or --demo for a short run on the sample data)")
    root = Path(args.coco_root)
    det = root / "person_detection_results" / "COCO_val2017_detections_AP_H_56_person.json"
    return (
        root / "annotations" / "person_keypoints_train2017.json", root / "train2017",
        root / "annotations" / "person_keypoints_val2017.json", root / "val2017",
        det if det.exists() else None,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco-root", help="COCO 2017 folder (annotations/, train2017/, val2017/)")
    parser.add_argument("--demo", action="store_true", help="a short run on the coco_mini sample photos")
    parser.add_argument("--width", type=int, default=32, help="HRNet width (32: HRNet-W32; 8: a small one)")
    parser.add_argument("--input-size", default="192x256", help="network input WxH (default: 192x256)")
    parser.add_argument("--init", help="start from this preset's weights instead of from scratch")
    parser.add_argument("--epochs", type=int, default=210)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=500)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="data-loading worker processes (0: main process)")
    parser.add_argument("--no-augment", action="store_true",
                        help="train on the plain validation crops (no flips, half-body, shifts, rotations): "
                             "for overfitting checks, not for real training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=1,
                        help="data-parallel devices (torch: start with torchrun --nproc_per_node N)")
    parser.add_argument("--mixed-precision", choices=("off", "bfloat16", "float16"), default="off",
                        help="Keras mixed precision (float16 adds dynamic loss scaling)")
    parser.add_argument("--out", default="runs/hrnet_coco")
    args = parser.parse_args(argv)
    if args.mixed_precision != "off":
        keras.mixed_precision.set_dtype_policy(f"mixed_{args.mixed_precision}")
    with distributed.data_parallel(args.devices) as replicas:
        train_model(args, parser, replicas)


def train_model(args, parser, replicas):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_ann, train_images, val_ann, val_images, bbox_file = data_paths(args)
    keras.utils.set_random_seed(args.seed)
    try:
        input_size = tuple(int(v) for v in args.input_size.lower().split("x"))
        assert len(input_size) == 2 and min(input_size) > 0 and all(v % 32 == 0 for v in input_size)
    except (ValueError, AssertionError):
        parser.error(f"--input-size must be WxH with multiples of 32 (e.g. 192x256), got {args.input_size!r}")
    if args.init:
        model = keraspose.TopdownEstimator.from_preset(args.init)
    else:
        model = build_hrnet(args.width, input_size)
    train = keraspose.CocoStyleDataset(train_ann, train_images)
    val = keraspose.CocoStyleDataset(val_ann, val_images, bbox_file=bbox_file, test_mode=True)
    if args.no_augment:
        pipeline = val_pipeline(model.head.codec)
    else:
        pipeline = train_pipeline(model.head.codec, model.metainfo, seed=args.seed)
    data = TopdownPyDataset(
        train, pipeline, model.preprocess, seed=args.seed,
        workers=max(args.workers, 1), use_multiprocessing=args.workers > 0,
        **distributed.dataset_options(args.batch_size),
    )
    optimizer, _ = hrnet_recipe(steps_per_epoch=len(data), epochs=args.epochs, base_lr=args.lr)
    optimizer.learning_rate.warmup_steps = args.warmup_steps
    # (Under mixed_float16 compile wraps the optimizer in a LossScaleOptimizer.)
    model.compile(optimizer=optimizer)
    # torch under torchrun: every process starts from rank 0's weights and
    # averages its gradients with the others (nothing to do elsewhere).
    distributed.synchronize_weights(model)
    distributed.average_gradients(model.optimizer)
    main_process = distributed.is_main_process()
    if main_process:
        print(f"{model.name}: {model.count_params():,} weights; {len(train)} training people in {len(data)} "
              f"batches of {args.batch_size} over {replicas} device(s); {len(val)} validation boxes; "
              f"backend {keras.config.backend()}, dtype policy {keras.mixed_precision.dtype_policy().name}")

    start = time.perf_counter()
    # torch under torchrun: every process trains; only rank 0 evaluates and writes.
    callbacks = [keras.callbacks.BackupAndRestore(str(out / ("backup" if main_process else "backup_other_rank")))]
    if main_process:
        callbacks += [
            CocoEvaluation(val, every_n_epochs=args.eval_every, save_best=out / "best_preset"),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        ]
    history = model.fit(data, epochs=args.epochs, verbose=2 if main_process else 0, callbacks=callbacks).history
    if not main_process:
        return
    model.save_to_preset(out / "final_preset", overwrite=True)
    summary = {
        "width": args.width, "backend": keras.config.backend(), "epochs": args.epochs, "devices": replicas,
        "dtype_policy": keras.mixed_precision.dtype_policy().name,
        "steps_per_epoch": len(data), "seconds": round(time.perf_counter() - start, 1),
        "loss": history.get("loss"), "acc_pose": history.get("acc_pose"),
        "coco/AP": history.get("coco/AP"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"done: loss {history['loss'][0]:.5f} -> {history['loss'][-1]:.5f}, "
          f"acc_pose {history['acc_pose'][0]:.3f} -> {history['acc_pose'][-1]:.3f}; presets in {out}")


if __name__ == "__main__":
    main()
