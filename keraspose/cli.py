"""The ``keraspose`` command: predict poses, convert MMPose/MMDetection checkpoints, manage presets.

Run ``keraspose --help`` (or ``python -m keraspose --help``) for the
subcommands, and ``keraspose SUBCOMMAND --help`` for each one's options and
examples. The Keras backend is chosen with the ``KERAS_BACKEND`` environment
variable, as for the library.

Every user error (a missing file, an unknown preset, a malformed boxes file)
is reported as one ``keraspose: error: ...`` line on stderr with exit code 2;
``--debug`` shows the full traceback instead.

Example:
>>> from keraspose.cli import main
>>> main(["predict", "examples/images", "--out", "poses"])  # doctest: +SKIP
000000129648.jpg: 12 people, 122/204 keypoints >= 0.3 -> poses/000000129648_pose.jpg, poses/000000129648_pose.json
...
0
"""

import argparse
import json
import math
import os
import sys
import time
import traceback

__all__ = ["main", "build_parser", "read_bboxes", "find_images", "CLIError"]

DEFAULT_PRESET = "tinypose_coco_256x192"
DEFAULT_DETECTOR = "rtmdet_nano_person"
DEFAULT_OUT = "keraspose_output"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
COCO_PERSON_CATEGORY = 1


class CLIError(Exception):
    """A user error: reported as one line on stderr, exit code 2."""


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------
def find_images(inputs):
    """Image paths from files and folders (folders: their images, sorted, not recursive).

    A file named explicitly is taken whatever its extension (decoding tells
    whether it is an image); a folder contributes files with an image
    extension (``.jpg .jpeg .png .bmp .webp .tif .tiff``, any case).

    >>> find_images(["examples/images"])[:1]  # doctest: +SKIP
    ['examples/images/000000129648.jpg']
    """
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, name))
            )
            if not found:
                raise CLIError(f"no images found in folder {item} (looked for {' '.join(IMAGE_EXTENSIONS)})")
            paths += found
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise CLIError(f"input not found: {item} (pass image files or folders of images)")
    return paths


def _box_list(value, where):
    if not isinstance(value, list):
        raise CLIError(f"{where}: expected a list of [x1, y1, x2, y2] boxes, got {type(value).__name__}")
    boxes = []
    for i, box in enumerate(value):
        if isinstance(box, dict) and "bbox" in box:  # {"bbox": [...], "score": s} entries are fine too
            box = box["bbox"]
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
            raise CLIError(f"{where}[{i}]: expected [x1, y1, x2, y2] (4 numbers), got {json.dumps(box)}")
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 <= x1 or y2 <= y1:
            raise CLIError(
                f"{where}[{i}] = {json.dumps(box)} has x2 <= x1 or y2 <= y1; boxes are corners [x1, y1, x2, y2] "
                "(for COCO-style [x, y, width, height] use the COCO results format, see --help)"
            )
        boxes.append([x1, y1, x2, y2])
    return boxes


def read_bboxes(path, box_threshold=0.0):
    """Read a boxes file into ``{key: [[x1, y1, x2, y2], ...]}``.

    Two formats are accepted:

    * a mapping from image file name (or the path as given on the command
      line) to a list of corner boxes ``[x1, y1, x2, y2]`` in pixels::

          {"street.jpg": [[12, 30, 200, 410], [220, 41, 380, 400]], "empty.jpg": []}

    * COCO detection results: a list of ``{"image_id": 42 | "file_name":
      "x.jpg", "bbox": [x, y, width, height], "score": 0.9, "category_id": 1}``
      (what MMDetection and the COCO API write). ``image_id`` matches files
      whose name is that number (COCO's ``000000000042.jpg``); entries whose
      ``category_id`` is not 1 (person) or whose score is below
      ``box_threshold`` are dropped.

    Keys of COCO results are returned as ``"id:42"`` or the file name.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CLIError(f"boxes file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CLIError(f"boxes file {path} is not valid JSON: {err}") from None
    if isinstance(data, dict):
        return {str(key): _box_list(value, f"{path}: {key!r}") for key, value in data.items()}
    if isinstance(data, list):
        boxes = {}
        for i, entry in enumerate(data):
            where = f"{path}: entry {i}"
            if not isinstance(entry, dict) or "bbox" not in entry:
                raise CLIError(f"{where}: expected {{'image_id' or 'file_name', 'bbox': [x, y, w, h], 'score'}}")
            if "file_name" in entry:
                key = os.path.basename(str(entry["file_name"]))
            elif "image_id" in entry:
                key = f"id:{entry['image_id']}"
            else:
                raise CLIError(f"{where}: has neither 'image_id' nor 'file_name'")
            boxes.setdefault(key, [])  # an image listed with only dropped entries has no people
            if entry.get("category_id", COCO_PERSON_CATEGORY) != COCO_PERSON_CATEGORY:
                continue
            if float(entry.get("score", 1.0)) < box_threshold:
                continue
            xywh = entry["bbox"]
            if not isinstance(xywh, list) or len(xywh) != 4:
                raise CLIError(f"{where}: 'bbox' must be [x, y, width, height], got {json.dumps(xywh)}")
            x, y, w, h = xywh
            boxes[key] += _box_list([[x, y, x + w, y + h]], where)
        return boxes
    raise CLIError(
        f"boxes file {path}: expected a JSON object {{image file name: [[x1, y1, x2, y2], ...]}} "
        "or a COCO detection-results list"
    )


def _boxes_for(image_path, boxes):
    """The boxes of one image (None when the boxes file does not list it)."""
    name = os.path.basename(image_path)
    stem = os.path.splitext(name)[0]
    for key in (image_path, os.path.normpath(image_path), name):
        if key in boxes:
            return boxes[key]
    if stem.isdigit():  # COCO results refer to images by numeric id
        return boxes.get(f"id:{int(stem)}")
    return None


def _unique_stem(path, used):
    stem = os.path.splitext(os.path.basename(path))[0]
    candidate, n = stem, 1
    while candidate in used:  # a/x.jpg and b/x.jpg must not overwrite each other's output
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------
def _load_model(preset):
    from keraspose.models.topdown_estimator import TopdownEstimator

    try:
        return TopdownEstimator.from_preset(preset)
    except (OSError, ValueError) as err:  # FileNotFoundError, PresetUnavailableError, PresetTaskError, bad config
        raise CLIError(f"cannot load preset {preset!r}: {err}") from err


def _load_detector(preset):
    from keraspose.models.rtmdet import RTMDetector

    try:
        return RTMDetector.from_preset(preset)
    except (OSError, ValueError) as err:
        raise CLIError(f"cannot load detector preset {preset!r}: {err}") from err


def _check_tasks(pose_preset, detector_preset):
    """A catalogue name of the wrong task fails before either model is loaded."""
    from keraspose.inference import check_catalogue_task
    from keraspose.models.rtmdet import RTMDetector
    from keraspose.models.topdown_estimator import TopdownEstimator

    checks = ((TopdownEstimator, pose_preset, "preset"), (RTMDetector, detector_preset, "detector preset"))
    for cls, handle, what in checks:
        try:
            check_catalogue_task(cls, handle)
        except ValueError as err:
            raise CLIError(f"cannot load {what} {handle!r}: {err}") from err


def _load_pipeline(pose_preset, detector_preset, bbox_threshold, nms_threshold):
    from keraspose.inference import PoseInferencer

    _check_tasks(pose_preset, detector_preset)
    model = _load_model(pose_preset)
    detector = _load_detector(detector_preset)
    return PoseInferencer(model, detector, bbox_threshold=bbox_threshold, nms_threshold=nms_threshold)


def _is_video(path):
    from keraspose.inference import VIDEO_EXTENSIONS

    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _pose_record(result, rgb, path, preset, metainfo, detector=None):
    import numpy as np

    h, w = rgb.shape[:2]
    record = {
        "image": path,
        "width": w,
        "height": h,
        "preset": preset,
        **({"detector": detector} if detector else {}),
        "keypoint_names": list(metainfo.keypoint_names),
        "skeleton_links": [list(link) for link in metainfo.skeleton_links],
        "instances": [],
    }
    for i in range(len(result)):
        instance = {"bbox": [float(v) for v in result.bboxes[i]]}
        if result.bbox_scores is not None:
            instance["bbox_score"] = float(result.bbox_scores[i])
        instance.update(
            keypoints=result.keypoints[i].astype(float).tolist(),
            keypoint_scores=result.keypoint_scores[i].astype(float).tolist(),
            score=float(np.mean(result.keypoint_scores[i])),
        )
        record["instances"].append(instance)
    return record


# Images per detector + pose-network round when the people are detected.
_DETECT_CHUNK = 8
# Video frames per round.
_VIDEO_CHUNK = 8


def cmd_predict(args):
    from keraspose.models.topdown_estimator import _check_bboxes, load_image
    from keraspose.utils.atomic import atomic_write
    from keraspose.visualization import save_visualization

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    videos = [item for item in args.inputs if os.path.isfile(item) and _is_video(item)]
    images = find_images([item for item in args.inputs if item not in videos]) if len(videos) < len(args.inputs) else []
    if videos and (args.bboxes or args.whole_image):
        raise CLIError(
            f"{'--bboxes' if args.bboxes else '--whole-image'} applies to images; the people in a video "
            f"({videos[0]}) are always found by the detector"
        )
    detect = not args.bboxes and not args.whole_image
    for flag, value in (("--bbox-thr", args.bbox_thr), ("--nms-thr", args.nms_thr)):
        if not 0 <= value <= 1:
            raise CLIError(f"{flag} must be between 0 and 1, got {value}")
    boxes = read_bboxes(args.bboxes, args.box_threshold) if args.bboxes else None
    if detect:
        pipeline = _load_pipeline(args.preset, args.detector, args.bbox_thr, args.nms_thr)
        model = pipeline.estimator
    else:
        model = _load_model(args.preset)
    metainfo = model.metainfo
    flip_test = False if args.no_flip else None
    os.makedirs(args.out, exist_ok=True)
    used_stems = set()
    start = time.perf_counter()
    total_people = 0

    def finish(path, rgb, result, note=""):
        result.image_path = path
        stem = _unique_stem(path, used_stems)
        picture = os.path.join(args.out, f"{stem}_pose.jpg")
        record = os.path.join(args.out, f"{stem}_pose.json")
        save_visualization(picture, rgb, result, metainfo=metainfo, score_threshold=args.score_threshold)
        payload = _pose_record(result, rgb, path, args.preset, metainfo, args.detector if detect else None)
        with atomic_write(record, "w") as f:
            json.dump(payload, f, indent=1)
            f.write("\n")
        people = len(result)
        shown = int((result.keypoint_scores >= args.score_threshold).sum())
        print(
            f"{os.path.basename(path)}: {people} {'person' if people == 1 else 'people'}, "
            f"{shown}/{result.keypoint_scores.size} keypoints >= {args.score_threshold:g} -> {picture}, {record}{note}",
            flush=True,
        )
        return people

    def load(path):
        try:
            return load_image(path, name=path)
        except ValueError as err:
            raise CLIError(str(err)) from err

    if detect:
        for first in range(0, len(images), _DETECT_CHUNK):
            paths = images[first : first + _DETECT_CHUNK]
            rgbs = [load(path) for path in paths]
            results = pipeline.predict(rgbs, batch_size=args.batch_size, flip_test=flip_test)
            for path, rgb, result in zip(paths, rgbs, results):
                total_people += finish(path, rgb, result)
    else:
        for path in images:
            rgb = load(path)
            note = ""
            image_boxes = _boxes_for(path, boxes) if boxes is not None else None
            if boxes is not None and image_boxes is None:
                note = f" (not in {os.path.basename(args.bboxes)}: whole image used as one person)"
            try:
                checked = _check_bboxes(image_boxes, rgb.shape, f"{args.bboxes}: {os.path.basename(path)}")
            except ValueError as err:
                raise CLIError(str(err)) from err
            result = model.predict(rgb, bboxes=checked, batch_size=args.batch_size, flip_test=flip_test)
            total_people += finish(path, rgb, result, note)
    for path in videos:
        stem = _unique_stem(path, used_stems)
        out_video = os.path.join(args.out, f"{stem}_pose.mp4")
        out_jsonl = os.path.join(args.out, f"{stem}_pose.jsonl")
        summary = pipeline.predict_video(path, out_video, out_jsonl, batch_size=_VIDEO_CHUNK,
                                         pose_batch_size=args.batch_size, flip_test=flip_test,
                                         score_threshold=args.score_threshold)
        total_people += summary["people"]
        print(f"{os.path.basename(path)}: {summary['frames']} frames ({summary['width']}x{summary['height']}, "
              f"{summary['fps']:g} fps), {summary['people']} people in all -> {out_video}, {out_jsonl}", flush=True)
    elapsed = time.perf_counter() - start
    counts = [f"{len(images)} image{'s' * (len(images) != 1)}"] if images or not videos else []
    if videos:
        counts.append(f"{len(videos)} video{'s' * (len(videos) != 1)}")
    print(f"done: {', '.join(counts)}, {total_people} people, {elapsed:.1f}s; results in {args.out}")
    return 0


def cmd_evaluate(args):
    from keraspose.datasets import CocoStyleDataset
    from keraspose.evaluation import evaluate_topdown, evaluate_with_detector, write_json_atomic

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.detector and args.bbox_file:
        raise CLIError("--detector and --bbox-file both give the person boxes; pass one of them")
    if args.nms_thr is not None and not args.detector:
        raise CLIError("--nms-thr filters the boxes of --detector; pass --detector PRESET too")
    for path, flag in ((args.ann_file, "--ann-file"), (args.bbox_file, "--bbox-file")):
        if path and not os.path.isfile(path):
            raise CLIError(f"{flag} {path}: no such file")
    if not os.path.isdir(args.image_root):
        raise CLIError(f"--image-root {args.image_root}: no such folder")
    if args.detector:
        _check_tasks(args.preset, args.detector)
    model = _load_model(args.preset)
    detector = _load_detector(args.detector) if args.detector else None
    prefix = os.path.join(args.out, "keypoints") if args.out else None
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    flip_test = False if args.no_flip else None
    start = time.perf_counter()
    if detector is not None:
        print(f"evaluating {args.preset} on the people {args.detector} finds in the images of {args.ann_file}",
              flush=True)
        stats = evaluate_with_detector(
            model, detector, args.ann_file, args.image_root, bbox_score_thr=args.bbox_score_thr,
            box_nms_thr=args.nms_thr, batch_size=args.batch_size, flip_test=flip_test, progress=not args.quiet,
            outfile_prefix=prefix,
        )
        people, n_people = "detected people", None
    else:
        # The data is read and checked before the first image is predicted, so
        # a wrong path or keypoint count fails now, not after minutes.
        dataset = CocoStyleDataset(
            args.ann_file, args.image_root, metainfo=model.metainfo, bbox_file=args.bbox_file, test_mode=True,
            bbox_score_thr=args.bbox_score_thr if args.bbox_file else None,
        )
        boxes = f"detections from {args.bbox_file}" if args.bbox_file else "ground-truth boxes"
        print(f"evaluating {args.preset} on {len(dataset)} people ({boxes}) of {args.ann_file}", flush=True)
        stats = evaluate_topdown(model, dataset, batch_size=args.batch_size, flip_test=flip_test,
                                 progress=not args.quiet, outfile_prefix=prefix)
        people, n_people = f"{len(dataset)} people", len(dataset)
    elapsed = time.perf_counter() - start
    width = max(len(k) for k in stats)
    for name, value in stats.items():
        print(f"{name:<{width}}  {value:.4f}")
    print(f"{people} in {elapsed:.1f}s")
    if args.out:
        record = {"preset": args.preset, "ann_file": args.ann_file, "bbox_file": args.bbox_file,
                  "detector": args.detector, "bbox_score_thr": args.bbox_score_thr, "box_nms_thr": args.nms_thr,
                  "flip_test": not args.no_flip and model.flip_test, "people": n_people, "stats": stats}
        write_json_atomic(record, os.path.join(args.out, "stats.json"), indent=1)
        print(f"results in {prefix}.keypoints.json, stats in {os.path.join(args.out, 'stats.json')}")
    return 0


def _catalogue_source_entry(name, converter):
    """The catalogue entry whose embedded ``<converter>_model`` a config *name* stands for, or None.

    ``keraspose convert mmpose td-hm_hrnet-w32_8xb64-210e_coco-256x192 CKPT``
    (the config name the offline error message suggests) or the preset name
    then needs no JSON file: the catalogue ships the model dict.
    """
    from keraspose.presets import catalogue_converter, get_catalogue_entry, list_presets

    for preset in list_presets():
        entry = get_catalogue_entry(preset)
        if catalogue_converter(entry) != converter or not isinstance(entry.get(f"{converter}_model"), dict):
            continue
        if name in (entry["name"], entry.get(f"{converter}_config")):
            return entry
    return None


def _convert_inputs(args, converter, what):
    """``(catalogue entry or None)`` after checking the config/checkpoint/out arguments of ``convert``."""
    entry = None
    if not os.path.isfile(args.config):
        entry = _catalogue_source_entry(args.config, converter)
        if entry is None:
            raise CLIError(
                f"{what} not found: {args.config} (pass the config as a JSON file, or the config name of a "
                f"catalogue preset, see `keraspose presets`)"
            )
    if not os.path.isfile(args.checkpoint):
        raise CLIError(f"checkpoint not found: {args.checkpoint}")
    if os.path.exists(args.out) and os.listdir(args.out) and not args.overwrite:
        raise CLIError(f"{args.out} already exists and is not empty; pass --overwrite to replace it")
    return entry


def cmd_convert_mmpose(args):
    from keraspose.convert import from_mmpose

    entry = _convert_inputs(args, "mmpose", "MMPose config")
    config = entry["mmpose_model"] if entry else args.config
    metainfo = args.metainfo or (entry.get("dataset") if entry else None)
    try:
        model = from_mmpose(config, args.checkpoint, metainfo=metainfo)
    except (ValueError, KeyError) as err:  # ConversionError is a ValueError
        raise CLIError(f"cannot convert {args.checkpoint} with {args.config}: {err}") from err
    metadata = {
        "name": args.name or os.path.basename(os.path.normpath(args.out)),
        "source_checkpoint": os.path.basename(args.checkpoint),
        "mmpose_config": os.path.basename(args.config),
    }
    if args.license or (entry and entry.get("license")):
        metadata["license"] = args.license or entry["license"]
    model.save_to_preset(args.out, metadata=metadata, overwrite=args.overwrite)
    params = sum(int(math.prod(v.shape)) for v in model.weights)
    w, h = model.input_size
    print(f"converted {args.checkpoint} -> {args.out} ({params:,} parameters, {model.metainfo.num_keypoints} "
          f"{model.metainfo.dataset_name} keypoints, input {h}x{w})")
    print(f"use it with:  keraspose predict IMAGES --preset {args.out}")
    return 0


def cmd_convert_mmdet(args):
    from keraspose.convert.mmdet import from_mmdet

    entry = _convert_inputs(args, "mmdet", "MMDetection config")
    config = args.config
    if entry:
        config = {"model": entry["mmdet_model"], "test_pipeline": entry.get("mmdet_test_pipeline"),
                  "classes": entry.get("class_names")}
    class_names = [c.strip() for c in args.classes.split(",")] if args.classes else None
    input_size = None
    if args.input_size:
        try:
            w, h = (int(v) for v in args.input_size.lower().split("x")[::-1])
        except ValueError:
            raise CLIError(f"--input-size {args.input_size!r}: expected HEIGHTxWIDTH, e.g. 640x640") from None
        input_size = (w, h)
    elif entry and entry.get("input_size"):
        input_size = tuple(entry["input_size"])
    try:
        model = from_mmdet(config, args.checkpoint, class_names=class_names, input_size=input_size)
    except (ValueError, KeyError) as err:  # ConversionError is a ValueError
        raise CLIError(f"cannot convert {args.checkpoint} with {args.config}: {err}") from err
    metadata = {
        "name": args.name or os.path.basename(os.path.normpath(args.out)),
        "source_checkpoint": os.path.basename(args.checkpoint),
        "mmdet_config": os.path.basename(args.config),
    }
    if args.license or (entry and entry.get("license")):
        metadata["license"] = args.license or entry["license"]
    model.save_to_preset(args.out, metadata=metadata, overwrite=args.overwrite)
    params = sum(int(math.prod(v.shape)) for v in model.trainable_weights)
    w, h = model.input_size
    names = list(model.class_names)
    print(f"converted {args.checkpoint} -> {args.out} ({params:,} parameters, {len(names)} "
          f"class{'es' * (len(names) != 1)}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}, input {h}x{w})")
    print(f"use it with:  keraspose.RTMDetector.from_preset({args.out!r})")
    return 0


def cmd_upload(args):
    from keraspose.presets import upload_preset

    handle = args.handle if args.handle.startswith("hf://") else f"hf://{args.handle}"
    if not os.path.isdir(args.preset_dir):
        raise CLIError(f"preset directory not found: {args.preset_dir}")
    url = upload_preset(handle, args.preset_dir, private=args.private, commit_message=args.message)
    print(f"uploaded {args.preset_dir} to {handle}: {url}")
    print(f"load it with:  keraspose predict IMAGES --preset {handle}")
    return 0


def _format_params(n):
    if n is None:
        return "-"
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}K"


def _format_size(input_size):
    # MMPose names models by height x width ("256x192"); input_size is (w, h).
    return f"{input_size[1]}x{input_size[0]}" if input_size else "-"


def _availability(entry):
    if entry.get("bundled"):
        return "bundled"
    # resolve_preset tries the Hub first, then converts the official checkpoint.
    sources = [name for name, key in (("hub", "hub_handle"), ("convert", "checkpoint_url")) if entry.get(key)]
    return ", ".join(sources) or "-"


def _num_parameters(entry):
    """The catalogue's parameter count, else the bundled preset's metadata (no download either way)."""
    if entry.get("num_parameters"):
        return entry["num_parameters"]
    if entry.get("bundled"):
        from keraspose.presets import load_preset_metadata
        from keraspose.presets.hub import BUNDLED_DIR

        try:
            return load_preset_metadata(os.path.join(BUNDLED_DIR, entry["bundled"])).get("num_parameters")
        except (OSError, ValueError):
            return None
    return None


def _outputs(entry_or_metadata, task):
    """What a preset predicts, in a few words: "17 keypoints" or "1 class (person)"."""
    if task == "detector":
        names = entry_or_metadata.get("class_names") or []
        if not names:
            return "-"
        shown = f" ({', '.join(names)})" if len(names) <= 3 else ""
        return f"{len(names)} class{'es' * (len(names) != 1)}{shown}"
    k = entry_or_metadata.get("num_keypoints")
    return f"{k} keypoints" if k else "-"


def cmd_presets(args):
    from keraspose.presets import catalogue_task, get_catalogue_entry, list_presets

    rows = []
    for name in list_presets():
        entry = get_catalogue_entry(name)
        task = catalogue_task(entry)
        ap = entry.get("reported_ap")
        rows.append((
            name,
            task,
            f"{ap:.3f}" if isinstance(ap, (int, float)) else "-",
            _format_params(_num_parameters(entry)),
            _format_size(entry.get("input_size")),
            _outputs(entry, task),
            _availability(entry),
        ))
    header = ("NAME", "TASK", "AP*", "PARAMS", "INPUT", "PREDICTS", "SOURCE")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("\nTASK: pose = a top-down pose model (keraspose.TopdownEstimator, --preset); detector = a person/object")
    print("  detector (keraspose.RTMDetector) that finds the boxes a pose model needs.")
    print("* AP as reported for each preset: COCO keypoint AP for pose models, box AP for detectors; the data")
    print("  and person boxes it was measured with differ between presets (see `keraspose info NAME`),")
    print("  so compare with care.")
    print("SOURCE: bundled = ships with keraspose (works offline); hub = downloaded from the Hugging Face Hub")
    print("  on first use; convert = the official checkpoint (MMPose, MMDetection) is downloaded and converted")
    print("  on first use.")
    return 0


def _print_fields(fields):
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        print(f"{key.ljust(width)}  {value}")


def _load_pose_or_detector(preset):
    """A pose model, or a detector when ``preset`` is a detector preset (the task is checked before loading)."""
    from keraspose.models.topdown_estimator import TopdownEstimator
    from keraspose.presets import PresetTaskError

    try:
        return TopdownEstimator.from_preset(preset)
    except PresetTaskError:
        return _load_detector(preset)
    except (OSError, ValueError) as err:
        raise CLIError(f"cannot load preset {preset!r}: {err}") from err


def cmd_export(args):
    from keraspose.export import EXPORT_PRECISIONS, calibration_crops, check_format_and_backend
    from keraspose.models.rtmdet import RTMDetector

    # The format/backend/precision checks first: no model is loaded for a refused pair.
    check_format_and_backend(args.format)
    if args.precision not in EXPORT_PRECISIONS[args.format]:
        can = [f for f, p in EXPORT_PRECISIONS.items() if args.precision in p]
        raise CLIError(f"--precision {args.precision} is not available for --format {args.format} (only float32); "
                       f"formats that can: {', '.join(can)}")
    static_int8 = args.format == "onnx" and args.precision == "int8"
    if static_int8 and not (args.calibration_ann_file and args.calibration_image_root):
        raise CLIError("--precision int8 for ONNX is calibrated on people of a COCO-format dataset: pass "
                       "--calibration-ann-file JSON --calibration-image-root DIR (LiteRT int8 needs none)")
    if not static_int8 and (args.calibration_ann_file or args.calibration_image_root):
        raise CLIError("--calibration-ann-file/--calibration-image-root are for --format onnx --precision int8 only")
    if static_int8:
        if not os.path.isfile(args.calibration_ann_file):
            raise CLIError(f"--calibration-ann-file {args.calibration_ann_file}: no such file")
        if not os.path.isdir(args.calibration_image_root):
            raise CLIError(f"--calibration-image-root {args.calibration_image_root}: no such folder")
    model = _load_pose_or_detector(args.preset)
    calibration = None
    if static_int8 and not isinstance(model, RTMDetector):
        from keraspose.datasets import CocoStyleDataset

        dataset = CocoStyleDataset(args.calibration_ann_file, args.calibration_image_root, metainfo=model.metainfo,
                                   test_mode=True)
        calibration = calibration_crops(model, dataset, count=args.calibration_count)
    try:
        if isinstance(model, RTMDetector):
            pose_only = [flag for flag, on in (("--no-preprocessing", args.no_preprocessing),
                                               ("--no-decoding", args.no_decoding),
                                               ("--flip-test", args.flip_test),
                                               (f"--precision {args.precision}", args.precision != "float32")) if on]
            if pose_only:
                raise CLIError(f"{', '.join(pose_only)}: pose-model options; {args.preset!r} is a detector preset")
            path = model.export(args.out, format=args.format, batch_size=args.batch_size, overwrite=args.overwrite)
        else:
            path = model.export(
                args.out, format=args.format, include_preprocessing=not args.no_preprocessing,
                include_decoding=not args.no_decoding, flip_test=args.flip_test, batch_size=args.batch_size,
                overwrite=args.overwrite, precision=args.precision, calibration=calibration,
            )
    except NotImplementedError as err:  # a decoding or merge without a graph form
        raise CLIError(f"cannot export {args.preset!r}: {err}") from err
    print(f"wrote {path} and {os.path.join(args.out, 'keraspose_export.json')}")
    return 0


def cmd_info(args):
    from keraspose.presets import (
        catalogue_task,
        get_catalogue_entry,
        load_preset_config,
        load_preset_metadata,
        normalize_task,
        parse_handle,
        task_of_class,
    )

    try:
        parsed = parse_handle(args.preset)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from err
    if parsed.kind == "catalogue":
        # A catalogue name: describe it from the catalogue, without downloading anything.
        try:
            entry = get_catalogue_entry(parsed.value)
        except ValueError as err:
            raise CLIError(str(err)) from err
        task = catalogue_task(entry)
        detector = task == "detector"
        _print_fields([
            ("preset", entry["name"]),
            ("task", task),
            ("description", entry.get("description")),
            ("class", entry.get("class")),
            ("input (HxW)", _format_size(entry.get("input_size"))),
            ("classes" if detector else "keypoints",
             ", ".join(entry.get("class_names") or []) if detector
             else f"{entry.get('num_keypoints', '-')} ({entry.get('dataset', '?')})"),
            ("parameters", f"{_num_parameters(entry):,}" if _num_parameters(entry) else None),
            ("reported AP", entry.get("reported_ap")),
            ("metrics", entry.get("reported_metrics")),
            ("metrics source", entry.get("metrics_source")),
            ("license", entry.get("license")),
            ("source", _availability(entry)),
            ("hub handle", entry.get("hub_handle")),
            ("mmpose config", entry.get("mmpose_config")),
            ("mmdet config", entry.get("mmdet_config")),
            ("checkpoint", entry.get("checkpoint_url")),
        ])
        return 0
    if parsed.kind == "hf":
        from keraspose.presets import resolve_preset

        preset_dir = resolve_preset(args.preset)
    else:
        preset_dir = parsed.value
    config = load_preset_config(preset_dir)
    metadata = load_preset_metadata(preset_dir)
    inner = config.get("config", {})

    def class_of(key):
        sub = inner.get(key)
        return sub.get("class_name") if isinstance(sub, dict) else None

    class_name = metadata.get("class_name") or config.get("registered_name") or config.get("class_name")
    task = normalize_task(metadata.get("task")) or task_of_class(class_name or "")
    input_size = inner.get("input_size") or metadata.get("input_size")
    if task == "detector":
        names = inner.get("class_names") or metadata.get("class_names") or []
        what = [
            ("classes", f"{len(names)}: {', '.join(map(str, names[:20]))}{' ...' if len(names) > 20 else ''}"),
            ("score threshold", inner.get("score_threshold")),
            ("NMS IoU", inner.get("iou_threshold")),
            ("max boxes", inner.get("max_per_image")),
        ]
    else:
        metainfo = (inner.get("metainfo") or {}).get("config", {}) if isinstance(inner.get("metainfo"), dict) else {}
        what = [
            ("keypoints", f"{metadata.get('num_keypoints', len(metainfo.get('keypoint_names', [])))} "
                          f"({metainfo.get('dataset_name', '?')})"),
            ("flip test", inner.get("flip_test")),
        ]
    _print_fields([
        ("preset", metadata.get("name") or args.preset),
        ("task", task),
        ("directory", preset_dir),
        ("description", metadata.get("description")),
        ("class", class_name),
        ("backbone", class_of("backbone")),
        ("neck", class_of("neck")),
        ("head", class_of("head")),
        ("input (HxW)", _format_size(input_size)),
        *what,
        ("parameters", f"{metadata['num_parameters']:,}" if metadata.get("num_parameters") else None),
        ("metrics", metadata.get("metrics")),
        ("license", metadata.get("license")),
        ("source checkpoint", metadata.get("source_checkpoint")),
        ("mmpose config", metadata.get("mmpose_config")),
        ("mmdet config", metadata.get("mmdet_config")),
        ("saved with", " ".join(f"{k}={metadata[k]}" for k in ("keraspose_version", "keras_version", "backend")
                                if metadata.get(k))),
        ("weights sha256", (metadata.get("weights") or {}).get("sha256")),
    ])
    return 0


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------
_MAIN_EPILOG = """\
examples:
  keraspose predict examples/images --out poses    # finds the people, then their poses
  keraspose predict clip.mp4                       # an annotated video + one JSON line per frame
  keraspose predict photo.jpg --bboxes boxes.json  # your own person boxes
  keraspose presets                                # models you can use with --preset
  keraspose info tinypose_coco_256x192
  keraspose evaluate tinypose_coco_256x192 --ann-file val.json --image-root val2017
  keraspose evaluate tinypose_coco_256x192 --ann-file val.json --image-root val2017 --detector rtmdet_nano_person
  keraspose convert mmpose config.json model.pth --out my_preset
  keraspose convert mmdet rtmdet.json rtmdet.pth --out my_detector
  keraspose upload hf://me/my_preset my_preset

The Keras backend comes from KERAS_BACKEND (torch, tensorflow or jax), e.g.
  KERAS_BACKEND=tensorflow keraspose predict photo.jpg
"""

_PREDICT_EPILOG = f"""\
examples:
  keraspose predict photo.jpg
  keraspose predict examples/images --out poses --bbox-thr 0.5
  keraspose predict clip.mp4 --out poses --no-flip
  keraspose predict examples/images --bboxes examples/images/boxes.json --out poses
  keraspose predict crops/ --whole-image --preset hrnet_w32_coco

how the people are found:
  by default the detector (--detector, the bundled RTMDet-nano person
  detector) finds them; detections scoring above --bbox-thr are kept, then
  NMS at IoU --nms-thr, as MMPose's demo does. An image where nobody is found
  gets a picture without skeletons and an empty "instances" list.
  --bboxes FILE gives the boxes instead; --whole-image treats each image as
  one person (for photos already cropped around one person).

output (in --out, default {DEFAULT_OUT}/), per image:
  <stem>_pose.jpg   the image with keypoints, skeleton and boxes drawn
  <stem>_pose.json  {{"image", "width", "height", "preset", "detector",
                     "keypoint_names", "skeleton_links", "instances":
                     [{{"bbox": [x1, y1, x2, y2], "bbox_score", "keypoints":
                     [[x, y], ...], "keypoint_scores": [...], "score"}}]}}
                    (pixels of the original image)
per video (.mp4 .avi .mov .mkv, read with OpenCV):
  <stem>_pose.mp4    the frames with skeletons drawn, same size and frame rate
  <stem>_pose.jsonl  one line per frame: {{"frame", "time", "instances": [...]}}

boxes file (--bboxes):
  1. {{"photo.jpg": [[x1, y1, x2, y2], ...], ...}}   corners in pixels, keyed
     by file name (or path as typed); [] means no people in that image.
  2. COCO detection results: [{{"image_id": 42, "bbox": [x, y, w, h],
     "score": 0.98, "category_id": 1}}, ...]; "file_name" may replace
     "image_id" (which matches 000000000042.jpg). Non-person categories and
     scores below --box-threshold are dropped.
Images the boxes file does not list are treated as one person filling the
whole image.
"""

_EVALUATE_EPILOG = """\
examples:
  keraspose evaluate hrnet_w32_coco \\
      --ann-file coco/annotations/person_keypoints_val2017.json --image-root coco/val2017
  keraspose evaluate my_preset --ann-file val.json --image-root images \\
      --bbox-file COCO_val2017_detections_AP_H_56_person.json --out eval/
  keraspose evaluate tinypose_coco_256x192 --ann-file val.json --image-root images \\
      --detector rtmdet_nano_person

--detector runs the detector on every image of --ann-file and uses each
person box it returns (MMPose's "detected boxes" protocol: no extra score
threshold or NMS unless --bbox-score-thr / --nms-thr ask for them).

Scoring is MMPose's CocoMetric: ground-truth boxes (or --bbox-file/--detector detections),
person score = box score x mean keypoint score above 0.2, OKS-NMS at 0.9,
COCO keypoint AP/AR with the model's keypoint sigmas. The annotation file must
describe the model's keypoint set.
"""

_CONVERT_EPILOG = """\
CONFIG_JSON is the model part of an MMPose 1.x config (the model=dict(...)),
dumped to JSON with MMPose, e.g.
  python -c "from mmengine import Config; import json; \\
    json.dump(Config.fromfile('td-hm_hrnet-w32_8xb64-210e_coco-256x192.py').model, open('cfg.json', 'w'))"
(.py configs are code and are never executed by keraspose.) For a catalogue
preset's official checkpoint, its config name (or the preset name) is enough:
the catalogue ships the config.

example:
  keraspose convert mmpose cfg.json td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth --out hrnet_w32
  keraspose predict photo.jpg --preset hrnet_w32
"""

_CONVERT_MMDET_EPILOG = """\
CONFIG_JSON is the MMDetection 3.x config dumped to JSON with MMEngine: the
model=dict(...) alone, or {"model": ..., "test_pipeline": [...], "classes": [...]}
(the test pipeline gives the input size and pad value, classes the class names), e.g.
  python -c "from mmengine import Config; import json; c = Config.fromfile('rtmdet_m_640-8xb32_coco-person.py'); \\
    json.dump({'model': c.model.to_dict(), 'test_pipeline': c.test_pipeline, 'classes': ['person']}, \\
    open('cfg.json', 'w'))"
(.py configs are code and are never executed by keraspose.) Supported: RTMDet
(CSPNeXt + CSPNeXtPAFPN + RTMDetSepBNHead). For a catalogue preset's official
checkpoint, its config name (or the preset name) is enough: the catalogue
ships the config.

example:
  keraspose convert mmdet cfg.json my_rtmdet.pth --out my_detector
  keraspose convert mmdet rtmdet_m_640-8xb32_coco-person \\
      rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.pth --out rtmdet_m_person
  keraspose info rtmdet_m_person
"""

_UPLOAD_EPILOG = """\
The preset is validated (files complete, weights checksum, loads, finite
forward pass) before anything is sent. Log in first with `hf auth login` or
set HF_TOKEN to a token with write access.

example:
  keraspose upload hf://me/hrnet_w32_coco hrnet_w32 --private
  keraspose predict photo.jpg --preset hf://me/hrnet_w32_coco
"""

_PRESET_HELP = "a catalogue name (see `keraspose presets`), a preset directory, or hf://owner/repo[@revision]"


def build_parser():
    """The argparse parser of the ``keraspose`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a --debug given before the subcommand is not reset by the subparser's default.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    parser = argparse.ArgumentParser(
        prog="keraspose", parents=[common], formatter_class=formatter, epilog=_MAIN_EPILOG,
        description="Top-down human pose estimation with MMPose's models on Keras 3 (torch, TensorFlow, JAX).",
    )
    from keraspose.version import __version__

    parser.add_argument("--version", action="version", version=f"keraspose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("predict", parents=[common], formatter_class=formatter, epilog=_PREDICT_EPILOG,
                       help="find people and their poses in images and videos; write pictures and JSON",
                       description="Find the people in images (or video frames), estimate each one's pose, and "
                                   "write per image a picture with the skeletons drawn and a JSON file with the "
                                   "keypoints (per video: an annotated mp4 and a JSON line per frame).")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders of images and/or videos (.mp4 .avi .mov .mkv)")
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"pose model: {_PRESET_HELP} (default: {DEFAULT_PRESET})")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--bboxes", metavar="BOXES_JSON",
                       help="JSON file of person boxes (format below) instead of the detector")
    boxes.add_argument("--whole-image", action="store_true",
                       help="no detector: each image is one person filling it (for crops of a single person)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help=f"person detector: {_PRESET_HELP} (default: {DEFAULT_DETECTOR})")
    p.add_argument("--bbox-thr", type=float, default=0.3, metavar="S",
                   help="keep detections scoring above S (default: 0.3, as MMPose's demo)")
    p.add_argument("--nms-thr", type=float, default=0.3, metavar="IOU",
                   help="drop a detection overlapping a better one by IoU above IOU (default: 0.3, as MMPose's demo)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--score-threshold", type=float, default=0.3, metavar="S",
                   help="draw (and count) keypoints scoring at least S (default: 0.3); the JSON has all of them")
    p.add_argument("--box-threshold", type=float, default=0.0, metavar="S",
                   help="COCO results in --bboxes: drop boxes scoring below S (default: 0, keep all)")
    p.add_argument("--no-flip", action="store_true",
                   help="skip test-time flip averaging (about 2x faster, slightly less accurate)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="people per network call (default: 32)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", parents=[common], formatter_class=formatter, epilog=_EVALUATE_EPILOG,
                       help="COCO keypoint AP of a preset on a COCO-format dataset",
                       description="Run a preset on every person of a COCO-format keypoint dataset and report "
                                   "COCO keypoint AP/AR as MMPose's CocoMetric computes it.")
    p.add_argument("preset", metavar="PRESET", help=_PRESET_HELP)
    p.add_argument("--ann-file", required=True, metavar="JSON", help="COCO keypoint annotations (ground truth)")
    p.add_argument("--image-root", required=True, metavar="DIR", help="folder the annotations' file_name are in")
    p.add_argument("--bbox-file", metavar="JSON",
                   help="COCO detection results to use as person boxes instead of the annotated ones")
    p.add_argument("--detector", metavar="PRESET",
                   help="find the people with this detector preset (e.g. rtmdet_nano_person) on every image "
                        "of --ann-file instead of using the annotated boxes")
    p.add_argument("--bbox-score-thr", type=float, default=None, metavar="S",
                   help="with --bbox-file or --detector: drop detections scoring below S (default: keep all)")
    p.add_argument("--nms-thr", type=float, default=None, metavar="IOU",
                   help="with --detector: MMPose's box NMS at IOU (default: none, as MMPose's test configs)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="people per network call (default: 32)")
    p.add_argument("--no-flip", action="store_true", help="skip test-time flip averaging")
    p.add_argument("--out", metavar="DIR", help="write DIR/keypoints.keypoints.json (COCO results) and DIR/stats.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("convert", parents=[common], formatter_class=formatter,
                       help="convert a model from another framework into a preset",
                       description="Convert a model from another framework into a keraspose preset directory.")
    conv = p.add_subparsers(dest="source", metavar="SOURCE")
    conv.required = True
    m = conv.add_parser("mmpose", parents=[common], formatter_class=formatter, epilog=_CONVERT_EPILOG,
                        help="an MMPose 1.x top-down model (config JSON + .pth checkpoint)",
                        description="Convert an MMPose 1.x TopdownPoseEstimator (config JSON + .pth "
                                    "checkpoint) into a keraspose preset directory.")
    m.add_argument("config", metavar="CONFIG_JSON",
                   help="the MMPose model config as JSON, or a catalogue preset's config name")
    m.add_argument("checkpoint", metavar="CHECKPOINT", help="the MMPose .pth checkpoint (read with weights_only=True)")
    m.add_argument("--out", required=True, metavar="DIR", help="preset directory to create")
    m.add_argument("--metainfo", default=None,
                   help="keypoint set: coco, mpii or a metainfo JSON file (default: coco for 17 keypoints)")
    m.add_argument("--name", help="preset name recorded in its metadata (default: the --out folder name)")
    m.add_argument("--license", help="license of the weights, recorded in the model card (e.g. apache-2.0)")
    m.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    m.set_defaults(func=cmd_convert_mmpose)
    d = conv.add_parser("mmdet", parents=[common], formatter_class=formatter, epilog=_CONVERT_MMDET_EPILOG,
                        help="an MMDetection 3.x RTMDet detector (config JSON + .pth checkpoint)",
                        description="Convert an MMDetection 3.x RTMDet detector (config JSON + .pth "
                                    "checkpoint) into a keraspose preset directory.")
    d.add_argument("config", metavar="CONFIG_JSON",
                   help="the MMDetection config as JSON, or a catalogue preset's config name")
    d.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="the MMDetection .pth checkpoint (read with weights_only=True)")
    d.add_argument("--out", required=True, metavar="DIR", help="preset directory to create")
    d.add_argument("--classes", metavar="NAMES",
                   help="comma-separated class names (default: the config's classes, else COCO's 80)")
    d.add_argument("--input-size", metavar="HxW",
                   help="network input, e.g. 640x640 (default: the config's test pipeline, else 640x640)")
    d.add_argument("--name", help="preset name recorded in its metadata (default: the --out folder name)")
    d.add_argument("--license", help="license of the weights, recorded in the model card (e.g. apache-2.0)")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    d.set_defaults(func=cmd_convert_mmdet)

    p = sub.add_parser("upload", parents=[common], formatter_class=formatter, epilog=_UPLOAD_EPILOG,
                       help="upload a preset directory to the Hugging Face Hub",
                       description="Validate a preset directory and upload it to a Hugging Face Hub model repo.")
    p.add_argument("handle", metavar="HF_HANDLE", help="hf://owner/repo (or owner/repo)")
    p.add_argument("preset_dir", metavar="PRESET_DIR", help="directory written by `keraspose convert` / save_to_preset")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--message", help="commit message")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("presets", parents=[common], formatter_class=formatter,
                       help="list the catalogue of ready-made models",
                       description="List the catalogue presets (pose models and detectors) with their task, "
                                   "reported AP, size and input.",
                       epilog="example:\n  keraspose presets\n  keraspose info hrnet_w32_coco\n")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("export", parents=[common], formatter_class=formatter,
                       help="export a pose model or detector for deployment (ONNX, SavedModel, LiteRT, OpenVINO)",
                       description="Export a pose preset as uint8 RGB crops -> keypoints (crop pixels) and scores, "
                                   "with normalisation and decoding inside and a dynamic batch, plus "
                                   "keraspose_export.json (input size, mean/std, keypoints, skeleton, flip pairs). "
                                   "A detector preset exports as letterboxed uint8 RGB images -> boxes and scores "
                                   "of every prior (NMS runs outside: keraspose.runtime.ExportedDetector). "
                                   "--out appears complete or not at all.",
                       epilog="examples:\n  keraspose export tinypose_coco_256x192 --format onnx --out tinypose_onnx\n"
                              "  keraspose export rtmdet_nano_person --format onnx --out rtmdet_onnx\n"
                              "  KERAS_BACKEND=tensorflow keraspose export tinypose_coco_128x96 --format litert "
                              "--out tinypose_litert\n"
                              "  KERAS_BACKEND=tensorflow keraspose export tinypose_coco_128x96 --format litert "
                              "--precision int8 --out tinypose_litert_int8\n")
    p.add_argument("preset", metavar="PRESET", help=_PRESET_HELP)
    p.add_argument("--format", required=True, choices=["onnx", "tf_saved_model", "litert", "openvino"],
                   help="export format (each needs a given backend; see README 'Export')")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist or be empty)")
    p.add_argument("--no-preprocessing", action="store_true", help="take normalised float32 crops instead of uint8")
    p.add_argument("--no-decoding", action="store_true", help="output the head's raw outputs (heatmaps / SimCC)")
    p.add_argument("--flip-test", action="store_true", help="include the test-time flip (two network passes)")
    p.add_argument("--batch-size", type=int, default=None, help="fixed batch size (default: dynamic)")
    p.add_argument("--precision", choices=["float32", "float16", "int8"], default="float32",
                   help="litert and onnx: float16 (half the size) or int8 (LiteRT: dynamic range; ONNX: static, "
                        "needs --calibration-*); accuracy cost in README 'Export' (default: float32)")
    p.add_argument("--calibration-ann-file", metavar="JSON",
                   help="ONNX int8: COCO keypoint annotations whose people calibrate the quantisation")
    p.add_argument("--calibration-image-root", metavar="DIR", help="ONNX int8: folder of those annotations' images")
    p.add_argument("--calibration-count", type=int, default=64, metavar="N",
                   help="ONNX int8: people to calibrate on (default: 64)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", parents=[common], formatter_class=formatter,
                       help="describe a preset (catalogue name, directory or hf://)",
                       description="Describe a preset: task, architecture, input size, keypoints or classes, "
                                   "metrics, source. "
                                   "Catalogue names are described without downloading anything.",
                       epilog="examples:\n  keraspose info tinypose_coco_256x192\n  keraspose info my_preset/\n")
    p.add_argument("preset", metavar="PRESET", help=_PRESET_HELP)
    p.set_defaults(func=cmd_info)
    return parser


# Exceptions that mean "the user asked for something that cannot be done"
# (a bad path, file or value), as opposed to a bug in keraspose.
_USER_ERRORS = (CLIError, OSError, ValueError)


def main(argv=None):
    """Run the ``keraspose`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Example:
    >>> main(["presets"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    debug = getattr(args, "debug", False)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("keraspose: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as err:
        if debug:
            traceback.print_exc()
        message = str(err) or type(err).__name__
        print(f"keraspose: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: still no traceback unless asked, but say how to get one
        if debug:
            traceback.print_exc()
        print(f"keraspose: internal error: {type(err).__name__}: {err} (run again with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
