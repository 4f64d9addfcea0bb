"""Fine-tune a keraspose preset on your own keypoint dataset.

Your data: COCO-format keypoint annotation files (``images``,
``annotations`` with ``keypoints`` as x, y, v triplets and ``bbox``) and a
metainfo JSON describing the keypoint set (names, left/right mirror pairs,
OKS sigmas, skeleton; see ``keraspose.metainfo``)::

    python examples/finetune_custom_keypoints.py \\
        --train-ann my/train.json --train-images my/images \\
        --val-ann my/val.json --val-images my/images \\
        --metainfo my/keypoints.json --epochs 30 --out runs/mine

Without data arguments it runs a self-contained demo on the coco_mini photos
shipped with the project's shared data: it writes an 11-keypoint "upper
body" dataset (COCO's face and arm keypoints) with its own metainfo, splits
the 80 images 64/16 into train/val, and fine-tunes PP-TinyPose on it. With
``--keypoints coco`` the demo keeps COCO's 17 keypoints instead (the same
head, so the "before" AP is the preset's own).

What it shows, step by step:

1. ``TopdownEstimator.from_preset(preset, metainfo=...)``: the preset's
   trained backbone, with a fresh final layer for the new keypoint count;
2. ``CocoStyleDataset`` + ``TopdownPyDataset`` + ``train_pipeline``: MMPose's
   top-down augmentation feeding ``model.fit``;
3. ``CocoEvaluation``: COCO AP on the validation set every N epochs, the best
   model saved as a preset; ``BackupAndRestore``: rerun the same command
   after an interruption and training resumes where it stopped;
4. ``save_to_preset``: the result loads with ``from_preset`` and uploads
   with ``keraspose upload``.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import keras

import keraspose
from keraspose.training import CocoEvaluation, TopdownPyDataset, train_pipeline

SHARED = Path(os.environ.get("KERASPOSE_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def write_demo_dataset(out_dir, keypoints):
    """coco_mini as a custom dataset: a 64/16 image split, optionally only the first 11 keypoints."""
    root = SHARED / "data" / "coco_mini"
    ann_file = root / "annotations" / "person_keypoints_train2017.json"
    if not ann_file.exists():
        sys.exit(f"demo data not found at {root}; set KERASPOSE_SHARED or pass --train-ann/--val-ann/...")
    coco = json.loads(ann_file.read_text())
    meta = keraspose.load_metainfo("coco").to_dict()
    keep = list(range(17)) if keypoints == "coco" else list(range(11))  # nose..right_wrist
    metainfo = {
        "dataset_name": "coco" if keypoints == "coco" else "upper_body",
        "keypoint_names": [meta["keypoint_names"][i] for i in keep],
        "flip_indices": [meta["flip_indices"][i] for i in keep],
        "sigmas": [meta["sigmas"][i] for i in keep],
        "skeleton_links": [link for link in meta["skeleton_links"] if max(link) < len(keep)],
        "upper_body_ids": [i for i in meta["upper_body_ids"] if i in keep],
        "lower_body_ids": [i for i in meta["lower_body_ids"] if i in keep],
    }
    images = sorted(coco["images"], key=lambda img: img["id"])
    split = {"train": images[:64], "val": images[64:]}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, imgs in split.items():
        ids = {img["id"] for img in imgs}
        anns = []
        for ann in coco["annotations"]:
            if ann["image_id"] not in ids:
                continue
            triplets = [ann["keypoints"][3 * i : 3 * i + 3] for i in keep]
            ann = dict(ann, keypoints=[v for t in triplets for v in t])
            ann["num_keypoints"] = sum(1 for t in triplets if t[2] > 0)
            anns.append(ann)
        categories = [dict(coco["categories"][0], keypoints=metainfo["keypoint_names"], skeleton=[])]
        paths[name] = out_dir / f"{name}.json"
        paths[name].write_text(json.dumps({"images": imgs, "annotations": anns, "categories": categories}))
    metainfo_path = out_dir / "keypoints.json"
    metainfo_path.write_text(json.dumps(metainfo, indent=1))
    images_dir = root / "train2017"
    return paths["train"], images_dir, paths["val"], images_dir, metainfo_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tinypose_coco_256x192")
    parser.add_argument("--train-ann"), parser.add_argument("--train-images")
    parser.add_argument("--val-ann"), parser.add_argument("--val-images")
    parser.add_argument("--metainfo", help="metainfo JSON of your keypoint set (default: the preset's)")
    parser.add_argument("--keypoints", choices=["upper_body", "coco"], default="upper_body",
                        help="demo mode only: which keypoint set to build from coco_mini")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default: 5e-4, MMPose's)")
    parser.add_argument("--eval-every", type=int, default=1, help="COCO AP on the val set every N epochs")
    parser.add_argument("--workers", type=int, default=0, help="data-loading worker processes (0: in the main one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/finetune")
    args = parser.parse_args(argv)
    out = Path(args.out)

    custom = [args.train_ann, args.train_images, args.val_ann, args.val_images]
    if any(custom) and not all(custom):
        parser.error("give all of --train-ann, --train-images, --val-ann and --val-images (or none, for the demo)")
    if all(custom):
        train_ann, train_images, val_ann, val_images, metainfo = *custom, args.metainfo
    else:
        train_ann, train_images, val_ann, val_images, metainfo = write_demo_dataset(out / "data", args.keypoints)
        print(f"demo dataset ({args.keypoints}) written to {out / 'data'}")

    keras.utils.set_random_seed(args.seed)  # the fresh final layer's initial weights
    model = keraspose.TopdownEstimator.from_preset(args.preset, metainfo=metainfo)
    # Datasets are read and checked now: a wrong path or keypoint count fails
    # before any training.
    train = keraspose.CocoStyleDataset(train_ann, train_images, metainfo=model.metainfo)
    val = keraspose.CocoStyleDataset(val_ann, val_images, metainfo=model.metainfo, test_mode=True)
    data = TopdownPyDataset(
        train, train_pipeline(model.head.codec, model.metainfo, seed=args.seed), model.preprocess,
        batch_size=args.batch_size, seed=args.seed,
        workers=max(args.workers, 1), use_multiprocessing=args.workers > 0,
    )
    print(f"{args.preset} -> {model.metainfo.num_keypoints} keypoints ({model.metainfo.dataset_name}); "
          f"{len(train)} training people, {len(val)} validation people; backend {keras.config.backend()}")

    before = keraspose.evaluate_topdown(model, val)
    print(f"before fine-tuning: val AP {before['coco/AP']:.4f}")

    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    start = time.perf_counter()
    history = model.fit(
        data, epochs=args.epochs, verbose=2,
        callbacks=[
            CocoEvaluation(val, every_n_epochs=args.eval_every, save_best=out / "best_preset"),
            keras.callbacks.BackupAndRestore(str(out / "backup")),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        ],
    ).history
    after = keraspose.evaluate_topdown(model, val)
    model.save_to_preset(out / "final_preset", overwrite=True)
    summary = {
        "preset": args.preset, "backend": keras.config.backend(), "epochs": args.epochs,
        "seconds": round(time.perf_counter() - start, 1), "loss": history.get("loss"),
        "acc_pose": history.get("acc_pose"), "val_ap_before": before["coco/AP"], "val_ap_after": after["coco/AP"],
        "val_stats_after": after,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"after fine-tuning: val AP {after['coco/AP']:.4f} (before {before['coco/AP']:.4f}); "
          f"loss {history['loss'][0]:.5f} -> {history['loss'][-1]:.5f}")
    print(f"best preset: {out / 'best_preset'}; final preset: {out / 'final_preset'}; summary: {out / 'summary.json'}")
    print(f"share it: keraspose upload hf://YOU/my_pose {out / 'best_preset'}")


if __name__ == "__main__":
    main()
