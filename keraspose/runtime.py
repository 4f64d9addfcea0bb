"""Run an exported keraspose pose model without Keras (onnxruntime, TensorFlow, LiteRT, OpenVINO).

:func:`load_exported` reads a directory written by
:meth:`keraspose.TopdownEstimator.export` (the model file and
``keraspose_export.json``) and returns an :class:`ExportedPoseModel`: a
callable from a batch of crops to ``{output name: numpy array}`` in the
format's own runtime. Only that runtime is imported, never Keras.

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
            f"{path} not found: pass a directory written by TopdownEstimator.export / `keraspose export`"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class ExportedPoseModel:
    """An exported model in its runtime: ``model(crops) -> {name: array}``.

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
        runner = {
            "onnx": _OnnxRunner,
            "tf_saved_model": _SavedModelRunner,
            "litert": _LiteRTRunner,
            "openvino": _OpenVinoRunner,
        }.get(self.format)
        if runner is None:
            raise ValueError(f"{self.directory}: unknown export format {self.format!r} in {METADATA_FILE}")
        self._runner = runner(model_path, self.output_names, num_threads)

    @property
    def input_size(self):
        """``(width, height)`` of the crops the model takes."""
        return tuple(self.metadata["input"]["input_size"])

    def __call__(self, crops):
        spec = self.metadata["input"]
        crops = np.asarray(crops)
        w, h = spec["input_size"]
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (h, w, 3):
            raise ValueError(f"crops: expected (B, {h}, {w}, 3) {spec['dtype']} RGB crops, got shape {crops.shape}")
        if crops.dtype != np.dtype(spec["dtype"]):
            raise ValueError(f"crops: expected dtype {spec['dtype']}, got {crops.dtype}")
        return self._runner(np.ascontiguousarray(crops))


def load_exported(directory, num_threads=None):
    """:class:`ExportedPoseModel` of an export directory."""
    return ExportedPoseModel(directory, num_threads=num_threads)


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
        return _match_by_shape(values, self.names, len(crops))


def _match_by_shape(values, names, batch):
    if len(values) == 1:
        return {names[0]: np.asarray(values[0])}
    if names == ["keypoints", "scores"]:
        kp = [v for v in values if v.ndim == 3 and v.shape[-1] == 2]
        sc = [v for v in values if v.ndim == 2]
        if len(kp) == 1 and len(sc) == 1:
            return {"keypoints": np.asarray(kp[0]), "scores": np.asarray(sc[0])}
    return {n: np.asarray(v) for n, v in zip(names, values)}


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
        return _match_by_shape(values, self.names, len(crops))


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

    def predict(self, images, bboxes=None, batch_size=32):
        """Images (paths or RGB uint8 arrays) and per-image ``(N, 4)`` xyxy boxes -> ``PoseResult`` s.

        Arguments and results as :meth:`keraspose.TopdownEstimator.predict`.
        """
        from keraspose.models.topdown_estimator import PoseResult, _check_bboxes, image_and_box_lists, load_image
        from keraspose.transforms.functional import crop_people, crop_to_image

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
