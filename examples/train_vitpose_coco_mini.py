"""ViTPose's recipe in keraspose (layer-wise learning-rate decay), run on the project's coco_mini sample.

    python examples/train_vitpose_coco_mini.py --size small --epochs 2 --out runs/vitpose_s
    python examples/train_vitpose_coco_mini.py --init hf://usyd-community/vitpose-base-simple --size base

MMPose's td-hm_ViTPose-*_8xb64-210e_coco-256x192 recipe, in a few lines:

* model: ViTPose-{S,B,L,H} (``TopdownEstimator.from_preset("vitpose_s_coco",
  load_weights=False)``: plain ViT + classic heatmap head, UDP heatmaps) or,
  with ``--init``, a trained preset to fine-tune (a catalogue name, or a
  Hugging Face transformers ViTPose such as ``hf://usyd-community/vitpose-base-simple``,
  converted on the fly);
* optimiser (``keraspose.training.vitpose_recipe``): AdamW 5e-4, weight decay
  0.1 except on norms, biases and the position embedding, layer-wise
  learning-rate decay ``rate ** (L + 1 - layer_id)`` (0.8 S, 0.75 B, 0.8 L,
  0.85 H), gradients clipped to norm 1, 500-step warm-up, x0.1 at epochs 170
  and 200. MMPose's 5e-4 is for 512 people per step: scale it with your batch;
* data: MMPose's top-down augmentation with the UDP warp (``train_pipeline``).

From scratch on a few coco_mini people this only shows the recipe runs (ViT
needs MAE pre-training and all of COCO to learn poses).
"""

import argparse
import json
import os
from pathlib import Path

import keras
import numpy as np

import keraspose
from keraspose.training import TopdownPyDataset, train_pipeline, vitpose_recipe

SHARED = Path(os.environ.get("KERASPOSE_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def coco_mini_samples(root):
    coco = json.loads((root / "annotations/person_keypoints_train2017.json").read_text())
    files = {i["id"]: i["file_name"] for i in coco["images"]}
    samples = []
    for a in coco["annotations"]:
        if a["num_keypoints"] > 0 and not a["iscrowd"]:
            x, y, w, h = a["bbox"]
            k = np.array(a["keypoints"], np.float32).reshape(1, 17, 3)
            samples.append(dict(img_path=str(root / "train2017" / files[a["image_id"]]),
                                bbox=np.array([[x, y, x + w, y + h]], np.float32), bbox_score=np.ones(1, np.float32),
                                keypoints=k[..., :2], keypoints_visible=np.minimum(1, k[..., 2])))
    return samples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=["small", "base", "large", "huge"])
    parser.add_argument("--init", help="a preset to fine-tune instead of training from scratch")
    parser.add_argument("--people", type=int, default=16, help="coco_mini people to train on")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4 * 8 / 512, help="MMPose's 5e-4 scaled to the batch size")
    parser.add_argument("--out", default="runs/vitpose")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    model = keraspose.TopdownEstimator.from_preset(
        args.init or f"vitpose_{args.size[0]}_coco", load_weights=bool(args.init)
    )
    samples = coco_mini_samples(SHARED / "data" / "coco_mini")[: args.people]
    steps = -(-len(samples) // args.batch_size)
    optimizer, _ = vitpose_recipe(steps, size=args.size, base_lr=args.lr)
    model.compile(optimizer=optimizer)
    pipeline = train_pipeline(model.head.codec, model.metainfo, seed=0)
    data = TopdownPyDataset(samples, pipeline, model.preprocess, batch_size=args.batch_size, seed=0)
    history = {k: [float(v) for v in vs] for k, vs in model.fit(data, epochs=args.epochs, verbose=2).history.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    model.save_to_preset(out / "preset")
    print("loss:", [f"{v:.3e}" for v in history["loss"]])


if __name__ == "__main__":
    main()
