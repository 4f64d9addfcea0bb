"""Run exported keraspose models without Keras (onnxruntime, TensorFlow, LiteRT, OpenVINO).

:func:`load_exported` reads a directory written by
:meth:`keraspose.TopdownEstimator.export` or :meth:`keraspose.RTMDetector.export`
(the model file and ``keraspose_export.json``) and returns an
:class:`ExportedModel`: a callable from a batch of images to
``{output name: numpy array}`` in the format's own runtime. Only that runtime
is imported, never Keras or a Keras backend (an ONNX or LiteRT deployment
needs only numpy, OpenCV and onnxruntime / ai-edge-litert):

* :class:`ExportedPoseEstimator`: ``predict(images, bboxes)`` as
  ``TopdownEstimator.predict``;
* :class:`ExportedDetector`: ``predict(images)`` as ``RTMDetector.predict``
  (letterbox and post-processing in numpy, shared with ``RTMDetector``);
* :class:`ExportedPoseInferencer`: the detector + pose pipeline,
  ``keraspose.PoseInferencer`` on the two exports.

Example:
>>> from keraspose.runtime import load_exported
>>> model = load_exported("tinypose_onnx")  # doctest: +SKIP
>>> out = model(crops)  # uint8 RGB (B, H, W, 3)  # doctest: +SKIP
>>> out["keypoints"].shape, out["scores"].shape  # doctest: +SKIP
((5, 17, 2), (5, 17))
"""

import json
import os

import numpy as np

METADATA_FILE = "keraspose_export.json"


def read_metadata(directory):
    """The ``keraspose_export.json`` of an export directory, or a clear error."""
    path = os.path.join(os.fspath(directory), METADATA_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: pass a directory written by TopdownEstimator.export, RTMDetector.export "
            "or `keraspose export`"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_export_directory(path):
    """Whether ``path`` is a directory holding ``keraspose_export.json``."""
    return isinstance(path, (str, os.PathLike)) and os.path.isfile(os.path.join(os.fspath(path), METADATA_FILE))


def _check_task(directory, metadata, task, use):
    found = metadata.get("task", "pose")  # exports before the field existed are pose models
    if found != task:
        raise ValueError(f"{directory}: this export is a {found} model ({METADATA_FILE}: task={found!r}); {use}")


class ExportedModel:
    """An exported model in its runtime: ``model(images) -> {name: array}``.

    Args:
        directory: the export directory.
        num_threads: intra-op threads of the runtime (``None``: its default).
    """

    def __init__(self, directory, num_threads=None):
        self.directory = os.fspath(directory)
        self.metadata = read_metadata(directory)
        self.format = self.metadata["format"]
        self.output_names = [o["name"] for o in self.metadata["outputs"]]
        model_path = os.path.join(self.directory, self.metadata["model_file"])
        self.output_shapes = [o.get("shape") for o in self.metadata["outputs"]]
        runner = {
            "onnx": _OnnxRunner,
            "tf_saved_model": _SavedModelRunner,
            "litert": _LiteRTRunner,
            "openvino": _OpenVinoRunner,
        }.get(self.format)
        if runner is None:
            raise ValueError(f"{self.directory}: unknown export format {self.format!r} in {METADATA_FILE}")
        self._runner = runner(model_path, self.output_names, num_threads)
        self._runner.shapes = self.output_shapes

    @property
    def input_size(self):
        """``(width, height)`` of the images (crops) the model takes."""
        return tuple(self.metadata["input"]["input_size"])

    def __call__(self, images):
        spec = self.metadata["input"]
        images = np.asarray(images)
        what = "crops" if self.metadata.get("task", "pose") == "pose" else "images"
        w, h = spec["input_size"]
        if images.ndim != 4 or tuple(images.shape[1:]) != (h, w, 3):
            raise ValueError(f"{what}: expected (B, {h}, {w}, 3) {spec['dtype']} RGB {what}, got shape {images.shape}")
        if images.dtype != np.dtype(spec["dtype"]):
            raise ValueError(f"{what}: expected dtype {spec['dtype']}, got {images.dtype}")
        return self._runner(np.ascontiguousarray(images))


#: the former name (pose exports came first).
ExportedPoseModel = ExportedModel


def load_exported(directory, num_threads=None):
    """:class:`ExportedModel` of an export directory (pose model or detector)."""
    return ExportedModel(directory, num_threads=num_threads)


def _by_name(values, names, runtime_names):
    """Runtime outputs -> ``{name: array}``, by name when the runtime kept them, else in order."""
    if sorted(runtime_names) == sorted(names):
        return {n: np.asarray(v) for n, v in zip(runtime_names, values)}
    if len(values) != len(names):
        raise RuntimeError(f"the model has {len(values)} outputs, the metadata lists {names}")
    return {n: np.asarray(v) for n, v in zip(names, values)}


class _OnnxRunner:
    def __init__(self, path, names, num_threads):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError("running an ONNX export needs onnxruntime: pip install 'keraspose[export]'") from err
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.runtime_names = [o.name for o in self.session.get_outputs()]
        self.names = names

    def __call__(self, crops):
        values = self.session.run(None, {self.input_name: crops})
        return _by_name(values, self.names, self.runtime_names)


class _SavedModelRunner:
    def __init__(self, path, names, num_threads):
        import tensorflow as tf

        self.tf = tf
        self.module = tf.saved_model.load(path)
        self.names = names

    def __call__(self, crops):
        out = self.module.serve(self.tf.constant(crops))
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        values = out if isinstance(out, (list, tuple)) else [out]
        return _by_name([np.asarray(v) for v in values], self.names, [])


def _litert_interpreter(path, num_threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        except ImportError as err:
            raise ImportError(
                "running a LiteRT export needs ai-edge-litert (pip install 'keraspose[export]') or TensorFlow"
            ) from err
    return Interpreter(model_path=path, num_threads=num_threads)


class _LiteRTRunner:
    def __init__(self, path, names, num_threads):
        self.interpreter = _litert_interpreter(path, num_threads)
        self.names = names
        self._batch = None

    def __call__(self, crops):
        it = self.interpreter
        inp = it.get_input_details()[0]
        if self._batch != len(crops):
            # A dynamic batch is resized per call (signature (-1, H, W, 3)).
            it.resize_tensor_input(inp["index"], list(crops.shape))
            it.allocate_tensors()
            self._batch = len(crops)
            inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], crops)
        it.invoke()
        details = it.get_output_details()
        values = [it.get_tensor(d["index"]) for d in details]
        # LiteRT names outputs StatefulPartitionedCall:0...; match them by shape then.
        return _match_by_shape(values, self.names, self.shapes)


def _match_by_shape(values, names, shapes=None):
    """Outputs without names -> ``{name: array}``: each to the one output of the
    metadata its shape (batch aside) fits, else in order."""
    values = [np.asarray(v) for v in values]
    if len(values) == 1:
        return {names[0]: values[0]}
    if shapes and len(shapes) == len(names) == len(values):
        def fits(value, shape):
            return value.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape[1:], value.shape[1:]))

        matches = [[n for n, shape in zip(names, shapes) if shape is not None and fits(v, shape)] for v in values]
        if all(len(m) == 1 for m in matches) and len({m[0] for m in matches}) == len(names):
            return {m[0]: v for m, v in zip(matches, values)}
    return dict(zip(names, values))


class _OpenVinoRunner:
    def __init__(self, path, names, num_threads):
        try:
            import openvino as ov
        except ImportError as err:
            raise ImportError("running an OpenVINO export needs openvino: pip install openvino") from err
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.compiled = core.compile_model(core.read_model(path), "CPU", config)
        self.names = names

    def __call__(self, crops):
        result = self.compiled(crops)
        values, runtime_names = [], []
        for port in self.compiled.outputs:
            values.append(np.asarray(result[port]))
            runtime_names.append(next(iter(port.get_names()), "") if port.get_names() else "")
        if sorted(runtime_names) == sorted(self.names):
            return dict(zip(runtime_names, values))
        return _match_by_shape(values, self.names, self.shapes)


class ExportedPoseEstimator:
    """``predict(images, bboxes=...)`` on an exported pose model, like ``TopdownEstimator.predict``.

    The crops, and the mapping of keypoints back to the image, are keraspose's
    own (``keraspose.transforms.functional.crop_people`` / ``crop_to_image``,
    which ``TopdownEstimator`` uses too); the network, the flip test (if
    exported) and the decoding run in the export's runtime, with no Keras
    model built. The export must include preprocessing and decoding.

    Args:
        directory: an export directory (``TopdownEstimator.export``).
        num_threads: the runtime's intra-op threads.

    Example:
    >>> from keraspose.runtime import OnnxPoseEstimator
    >>> model = OnnxPoseEstimator("tinypose_onnx")  # doctest: +SKIP
    >>> model.predict("person.jpg", bboxes=[[10, 20, 110, 220]]).keypoints.shape  # doctest: +SKIP
    (1, 17, 2)
    """

    def __init__(self, directory, num_threads=None):
        self.model = load_exported(directory, num_threads=num_threads)
        meta = self.model.metadata
        _check_task(directory, meta, "pose", "run it with keraspose.runtime.ExportedDetector")
        if not meta["input"]["preprocessing_included"] or not meta["decoding"]["included"]:
            raise ValueError(
                f"{directory}: predict needs an export with preprocessing and decoding inside "
                "(exported with include_preprocessing=False or include_decoding=False)"
            )
        self.metadata = meta
        self.input_size = tuple(meta["input"]["input_size"])
        self.bbox_padding = float(meta["crop"]["bbox_padding"])
        self.use_udp = bool(meta["crop"]["use_udp"])
        self.num_keypoints = len(meta["keypoint_names"])
        self.flip_test = bool(meta["decoding"]["flip_test"])

    @property
    def metainfo(self):
        """The keypoint set's name (``keraspose.visualize`` takes it)."""
        return self.metadata.get("dataset_name")

    def predict(self, images, bboxes=None, batch_size=32, flip_test=None):
        """Images (paths or RGB uint8 arrays) and per-image ``(N, 4)`` xyxy boxes -> ``PoseResult`` s.

        Arguments and results as :meth:`keraspose.TopdownEstimator.predict`;
        the flip test is the export's (``flip_test`` may only confirm it).
        """
        from keraspose.results import PoseResult
        from keraspose.transforms.functional import crop_people, crop_to_image
        from keraspose.utils.images import check_bboxes as _check_bboxes
        from keraspose.utils.images import image_and_box_lists, load_image

        if flip_test is not None and bool(flip_test) != self.flip_test:
            raise ValueError(
                f"flip_test={flip_test}: this export was written with flip_test={self.flip_test} (the flip test is "
                "part of the exported graph); export again with TopdownEstimator.export(..., flip_test=...)"
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

        single = isinstance(images, (str, os.PathLike)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8
        )
        image_list, box_list = image_and_box_lists(images, bboxes, single)
        results = []
        k = self.num_keypoints
        for idx, (image, boxes) in enumerate(zip(image_list, box_list)):
            name = "image" if single else f"images[{idx}]"
            rgb = load_image(image, name)
            boxes = _check_bboxes(boxes, rgb.shape, "bboxes" if single else f"bboxes[{idx}]")
            keypoints, scores = np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
            if len(boxes):
                crops, centers, scales = crop_people(rgb, boxes, self.input_size, self.bbox_padding, self.use_udp)
                kps, scs = [], []
                for start in range(0, len(crops), batch_size):
                    out = self.model(crops[start : start + batch_size])
                    kps.append(out["keypoints"])
                    scs.append(out["scores"])
                keypoints = crop_to_image(np.concatenate(kps), centers, scales, self.input_size).astype(np.float32)
                scores = np.concatenate(scs).astype(np.float32)
            results.append(PoseResult(
                keypoints=keypoints, keypoint_scores=scores, bboxes=boxes,
                image_path=os.fspath(image) if isinstance(image, (str, os.PathLike)) else None,
            ))
        return results[0] if single else results


#: the ONNX case by name (any format works: the runtime follows the export's metadata).
OnnxPoseEstimator = ExportedPoseEstimator


class ExportedDetector:
    """``predict(images)`` on an exported detector, like ``RTMDetector.predict``.

    The letterbox (:func:`keraspose.utils.images.letterbox`) and the
    post-processing (:func:`keraspose.ops.detection.postprocess_detections`:
    score threshold, ``nms_pre``, NMS per class, ``max_per_image``, scale back
    to the image) are keraspose's own numpy code, the ones ``RTMDetector``
    runs; the network and the decoding of the priors run in the export's
    runtime. No Keras is imported.

    Args:
        directory: an export directory (``RTMDetector.export``).
        num_threads: the runtime's intra-op threads.

    Example:
    >>> from keraspose.runtime import ExportedDetector
    >>> detector = ExportedDetector("rtmdet_onnx")  # doctest: +SKIP
    >>> detector.predict("street.jpg").boxes.shape  # doctest: +SKIP
    (7, 4)
    """

    def __init__(self, directory, num_threads=None):
        self.model = load_exported(directory, num_threads=num_threads)
        meta = self.model.metadata
        _check_task(directory, meta, "detection", "run it with keraspose.runtime.ExportedPoseEstimator")
        self.metadata = meta
        self.input_size = tuple(meta["input"]["input_size"])
        self.pad_value = meta["preprocessing"]["pad_value"]
        self.level_sizes = [tuple(size) for size in meta["decoding"]["level_sizes"]]
        self.class_names = tuple(meta["class_names"])
        post = meta["postprocessing"]
        self.score_threshold = float(post["score_threshold"])
        self.nms_pre = int(post["nms_pre"])
        self.iou_threshold = float(post["iou_threshold"])
        self.max_per_image = int(post["max_per_image"])
        self.min_bbox_size = float(post["min_bbox_size"])

    def preprocess(self, images):
        """RGB uint8 images -> letterboxed ``(B, H, W, 3)`` uint8 RGB batch and scale factors ``(B, 2)``."""
        from keraspose.utils.images import letterbox

        w, h = self.input_size
        if not len(images):
            return np.zeros((0, h, w, 3), np.uint8), np.zeros((0, 2), np.float64)
        padded, factors = zip(*(letterbox(image, self.input_size, self.pad_value) for image in images))
        return np.stack(padded), np.asarray(factors, np.float64)

    def postprocess(self, boxes, scores, scale_factors=None):
        """The export's outputs ``boxes (B, N, 4)``, ``scores (B, N, C)`` -> one ``DetectionResult`` per image."""
        from keraspose.ops.detection import detection_results

        return detection_results(boxes, scores, self, scale_factors)

    def predict(self, images, batch_size=8):
        """Detect objects: images (paths or RGB uint8 arrays) -> ``DetectionResult`` per image.

        Arguments and results as :meth:`keraspose.RTMDetector.predict`.
        """
        from keraspose.utils.images import is_single_image, load_images

        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rgb = load_images(images)  # every image checked before any is run
        single = is_single_image(images)
        image_list = [images] if single else list(images)
        results = []
        for start in range(0, len(rgb), int(batch_size)):
            batch, factors = self.preprocess(rgb[start : start + int(batch_size)])
            out = self.model(batch)
            results += self.postprocess(out["boxes"], out["scores"], factors)
        for result, image in zip(results, image_list):
            result.image_path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        return results[0] if single else results


def ExportedPoseInferencer(pose, detector, num_threads=None, **kwargs):
    """The detect-then-pose pipeline on two export directories: a ``keraspose.PoseInferencer``
    whose pose model is an :class:`ExportedPoseEstimator` and detector an :class:`ExportedDetector`.

    ``predict(images)`` gives the ``PoseResult`` s of ``PoseInferencer.predict``
    (MMPose's detection filtering included), with no Keras imported. ``kwargs``
    go to ``PoseInferencer`` (``bbox_threshold``, ``nms_threshold``, ...).

    Example:
    >>> from keraspose.runtime import ExportedPoseInferencer
    >>> pipeline = ExportedPoseInferencer("tinypose_onnx", "rtmdet_onnx")  # doctest: +SKIP
    >>> pipeline.predict("street.jpg").keypoints.shape  # doctest: +SKIP
    (3, 17, 2)
    """
    from keraspose.inference import PoseInferencer

    return PoseInferencer(
        ExportedPoseEstimator(pose, num_threads=num_threads), ExportedDetector(detector, num_threads=num_threads),
        **kwargs,
    )
