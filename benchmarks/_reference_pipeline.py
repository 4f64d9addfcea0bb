"""Reference side of bench_pipeline.py (run in the MMPose venv): the same two models in their original runtimes.

Per image, as MMPose's ``demo/topdown_demo_with_mmdet.py`` does with these
models: RTMDet-nano through onnxruntime with MMDetection's test pipeline in
numpy (``tests/rtmdet_reference.py``), MMPose's demo filtering (person,
score > bbox_thr, ``mmpose.evaluation.functional.nms`` at nms_thr), then per
person MMPose 1.3.2's own ``GetBBoxCenterScale`` + ``TopdownAffine``, RGB
ImageNet normalisation, PP-TinyPose through ncnn (its original runtime; ncnn
runs one crop at a time) and MMPose's ``MSRAHeatmap.decode``, mapped back to
image pixels as MMPose's ``TopdownPoseEstimator`` does.

A server: it loads everything, then for each line ``run`` on stdin times one
pass over the images and prints ``{"seconds": ...}``; ``results`` prints the
last pass's people per image; ``quit`` ends. bench_pipeline.py alternates
its own passes with these, so load changes on a shared machine hit both.

ncnn is not in the MMPose venv; install it beside it (``pip install --target
DIR --no-deps ncnn``) and pass ``--ncnn-path DIR``.
"""

import argparse
import json
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", required=True)
    parser.add_argument("--tests", required=True)
    parser.add_argument("--ncnn-path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="256x192")
    parser.add_argument("--bbox-thr", type=float, default=0.3)
    parser.add_argument("--nms-thr", type=float, default=0.3)
    args = parser.parse_args()
    if args.ncnn_path:
        sys.path.insert(0, args.ncnn_path)
    sys.path.insert(0, args.tests)

    import cv2
    import ncnn
    import numpy as np
    from mmpose.codecs import MSRAHeatmap
    from mmpose.datasets.transforms import GetBBoxCenterScale, TopdownAffine
    from mmpose.evaluation.functional import nms

    import rtmdet_reference as ref

    cv2.setNumThreads(args.threads)
    session = ref.onnx_session(os.path.join(args.shared, "weights/rtmdet_nano_person/rtmdet-nano.onnx"),
                               threads=args.threads)
    net = ncnn.Net()
    net.opt.num_threads = args.threads
    weights = os.path.join(args.shared, f"weights/pp_tinypose/tinypose_{args.size}")
    if net.load_param(weights + ".param") or net.load_model(weights + ".bin"):
        sys.exit(f"ncnn cannot load {weights}.param/.bin")
    h, w = (int(v) for v in args.size.split("x"))
    center_scale = GetBBoxCenterScale(padding=1.25)
    affine = TopdownAffine(input_size=(w, h))
    codec = MSRAHeatmap(input_size=(w, h), heatmap_size=(w // 4, h // 4), sigma=2)
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)

    paths = [str(p) for _, p in ref.coco_mini_images(os.path.join(args.shared, "data/coco_mini"))]
    images = [cv2.imread(p) for p in paths]

    def estimate(bgr):
        boxes, scores, _ = ref.detect(session, bgr)
        dets = np.concatenate([boxes, scores[:, None]], axis=1)
        dets = dets[dets[:, 4] > args.bbox_thr]  # one class: every box is a person
        dets = dets[nms(dets, args.nms_thr), :4]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        people = []
        for box in dets:
            data = affine(center_scale({"img": rgb, "bbox": box[None].astype(np.float32)}))
            # ncnn.Mat wraps the array without copying it: keep it alive until extract() has run.
            x = np.ascontiguousarray(((data["img"].astype(np.float32) - mean) / std).transpose(2, 0, 1))
            mat = ncnn.Mat(x)
            extractor = net.create_extractor()
            extractor.input("image", mat)
            _, out = extractor.extract("save_infer_model/scale_0.tmp_1")
            heatmaps = np.array(out)  # a copy, made while the extractor still owns the blob
            del extractor, mat, x
            keypoints, keypoint_scores = codec.decode(heatmaps)
            scale = data["input_scale"].reshape(1, 1, 2)
            keypoints = keypoints / np.array([w, h]) * scale + data["input_center"].reshape(1, 1, 2) - 0.5 * scale
            people.append((box.tolist(), keypoints[0].tolist(), keypoint_scores[0].tolist()))
        return people

    last = []
    print(json.dumps({"ready": True, "images": len(images), "ncnn": ncnn.__version__,
                      "onnxruntime": __import__("onnxruntime").__version__,
                      "mmpose": __import__("mmpose").__version__}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            t0 = time.perf_counter()
            last = [estimate(im) for im in images]
            print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
        elif command == "results":
            print(json.dumps({"paths": paths, "people": last}), flush=True)
        elif command == "quit":
            break


if __name__ == "__main__":
    main()
