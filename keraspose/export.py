"""Deployment export of a top-down pose estimator or a detector (ONNX, SavedModel, LiteRT, OpenVINO).

:meth:`keraspose.TopdownEstimator.export` writes a directory holding the
model file and ``keraspose_export.json``, its metadata (input size, mean/std,
channel order, keypoint names, skeleton, flip pairs, decode settings,
outputs), so that any runtime can use the model without keraspose.

The exported graph is :class:`PoseExportModel`: uint8 RGB crops of the
model's input size ``(B, H, W, 3)``, any batch size, in; inside, the
estimator's normalisation, the network (and, with ``flip_test``, the network
on the mirrored crops and the head's flip merge) and the head's decoding,
all in ``keras.ops``; out ``keypoints`` ``(B, K, 2)`` in crop pixels and
``scores`` ``(B, K)``, or the raw head outputs without decoding.
:func:`crop_to_image` maps crop keypoints back to the image.

:meth:`keraspose.RTMDetector.export` writes :class:`DetectorExportModel`:
letterboxed uint8 RGB images in, per-prior ``boxes`` and ``scores`` out; the
score threshold, NMS and the scale back to the image run in numpy after it
(:mod:`keraspose.ops.detection`, which ``RTMDetector.predict`` uses too).

The graph is traced under :func:`keraspose.backend.export_tracing`, so the
layers' inference caches (folded BatchNorm kernels) step aside and the file
holds each weight once. Keras 3's own exporters write the files.

Which backend can write which format: :data:`SUPPORTED_BACKENDS` (measured;
README "Export"); other pairs raise an error naming the backend to use.
``precision="float16"|"int8"`` (:data:`EXPORT_PRECISIONS`): LiteRT through
TensorFlow's TFLiteConverter (float16 weights; int8 dynamic range), ONNX
through :func:`quantize_onnx_export`; the accuracy each costs is in README
"Export".
"""

import json
import os
import shutil

import keras
import numpy as np

from keraspose import backend
from keraspose.transforms.functional import crop_to_image
from keraspose.utils.atomic import atomic_directory, atomic_write

__all__ = ["DetectorExportModel", "EXPORT_FORMATS", "EXPORT_PRECISIONS", "METADATA_FILE", "PoseExportModel",
           "calibration_crops", "crop_to_image", "detector_metadata", "export_detector", "export_estimator",
           "export_metadata", "quantize_onnx_export"]

#: the model file (or directory) each format writes inside the export directory.
EXPORT_FORMATS = {
    "onnx": "model.onnx",
    "tf_saved_model": "saved_model",
    "litert": "model.tflite",
    "openvino": "model.xml",
}

#: the backends each format is written correctly from, first the recommended one
#: (measured by trying every pair on TinyPose, Keras 3.15; README "Export").
SUPPORTED_BACKENDS = {
    "onnx": ("torch", "tensorflow"),
    "tf_saved_model": ("tensorflow", "jax"),
    "litert": ("tensorflow",),
    "openvino": ("tensorflow", "torch"),
}

#: why a pair is refused (what trying it gave).
_REFUSED_BECAUSE = {
    ("onnx", "jax"): "Keras exports ONNX from JAX through jax2onnx, which fails on the dynamic batch "
                     "(InconclusiveDimensionOperation)",
    ("tf_saved_model", "torch"): "Keras' SavedModel export from torch fails (torch.export dynamic-shape mismatch)",
    ("litert", "torch"): "LiteRT from torch needs litert-torch and returned wrong values at batch > 1 without an error",
    ("litert", "jax"): "Keras has no LiteRT export from JAX",
    ("openvino", "jax"): "OpenVINO cannot convert the JAX graph (OpConversionFailure)",
}

#: the precisions each format can be written in (``precision=`` of the export).
#: ``litert``: TensorFlow's TFLiteConverter, float16 weights (computed in
#: float32 on CPU) or int8 dynamic-range (int8 weights, activations quantised
#: on the fly); ``onnx``: :func:`quantize_onnx_export` of the float32 export
#: (float16 graph, or int8 static QDQ calibrated on ``calibration`` crops).
EXPORT_PRECISIONS = {
    "onnx": ("float32", "float16", "int8"),
    "tf_saved_model": ("float32",),
    "litert": ("float32", "float16", "int8"),
    "openvino": ("float32",),
}

#: what each precision means in the file, written to the metadata as ``quantization``.
_QUANTIZATION = {
    ("litert", "float16"): "TFLiteConverter float16: weights stored in float16, dequantised to float32 to run on CPU",
    ("litert", "int8"): "TFLiteConverter dynamic range: int8 weights (tensors of >= 1024 values), activations "
                        "quantised on the fly; uint8 input and float32 outputs kept",
    ("onnx", "float16"): "onnxruntime convert_float_to_float16, uint8 input and float32 outputs kept",
    ("onnx", "int8"): "onnxruntime static QDQ: int8 per-channel weights, uint8 activations, convs/matmuls only",
}

METADATA_FILE = "keraspose_export.json"
# tools/export_parity.py --try-all turns the check off to measure the pairs it refuses.
_CHECK_BACKENDS = True
METADATA_VERSION = 1


def check_precision(format, precision="float32", calibration=None):
    """A clear error for a precision the format cannot be written in, or a missing/useless calibration set."""
    allowed = EXPORT_PRECISIONS.get(format, ("float32",))
    if precision not in ("float32", "float16", "int8"):
        raise ValueError(f"precision: 'float32', 'float16' or 'int8', got {precision!r}")
    if precision not in allowed:
        can = [f for f, p in EXPORT_PRECISIONS.items() if precision in p]
        raise ValueError(f"precision={precision!r} is not available for format={format!r} (only float32); "
                         f"formats that can: {', '.join(can)}")
    if format == "onnx" and precision == "int8" and calibration is None:
        raise ValueError("precision='int8' for ONNX is static quantisation: pass calibration=uint8 crops "
                         "(keraspose.export.calibration_crops(model, dataset)); LiteRT int8 needs none")
    if calibration is not None and not (format == "onnx" and precision == "int8"):
        raise ValueError(f"calibration: only ONNX int8 (static) uses calibration crops, not format={format!r} "
                         f"precision={precision!r} (LiteRT int8 is dynamic range); drop calibration")


def _litert_converter_settings(precision):
    """Keras' LiteRT exporter passes these to TensorFlow's TFLiteConverter."""
    if precision == "float32":
        return {}
    import tensorflow as tf

    settings = {"optimizations": [tf.lite.Optimize.DEFAULT]}  # no representative dataset: dynamic range
    if precision == "float16":
        settings["target_spec"] = {"supported_types": [tf.float16]}
    return settings


def _drop_litert_tensor_names(path):
    """Drop the names of a LiteRT file's inner tensors (the input/output tensors and the signature keep theirs).

    TensorFlow's converter names each tensor after every op fused into it
    (``pose_export_model_1/Relu_114;.../add_262;.../Conv2D_133;...``): 0.1 MB
    for TinyPose, which put the float32 file at 1.06x its weights; without
    them 1.04x, the same outputs and signature runner.
    """
    try:
        from tensorflow.lite.tools import flatbuffer_utils
    except ImportError:  # an older TensorFlow: the names stay
        return
    model = flatbuffer_utils.read_model(path)
    for subgraph in model.subgraphs:
        keep = {int(i) for i in subgraph.inputs} | {int(i) for i in subgraph.outputs}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in keep:
                tensor.name = None
    flatbuffer_utils.write_model(model, path)


def check_format_and_backend(format, backend_name=None):
    """A clear error for an unknown format or one the current backend cannot write correctly."""
    backend_name = backend_name or keras.config.backend()
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format: unknown export format {format!r}; choose one of {sorted(EXPORT_FORMATS)}")
    if not _CHECK_BACKENDS:
        return
    allowed = SUPPORTED_BACKENDS[format]
    if backend_name not in allowed:
        why = _REFUSED_BECAUSE.get((format, backend_name))
        raise ValueError(
            f"format={format!r} cannot be exported correctly from the {backend_name} backend"
            + (f" ({why})" if why else "")
            + f"; export it from the {allowed[0]} backend: KERAS_BACKEND={allowed[0]} "
            f"(backends that can: {', '.join(allowed)})"
        )


@keras.saving.register_keras_serializable(package="keraspose")
class PoseExportModel(keras.Model):
    """The inference graph an export holds: uint8 RGB crops -> keypoints and scores.

    Args:
        estimator: a built :class:`~keraspose.TopdownEstimator`.
        include_preprocessing: take uint8 RGB crops and normalise them inside
            (cast, channel order, mean/std); else take normalised float32 crops.
        include_decoding: decode inside: ``(keypoints, scores)``; else the
            head's raw outputs: ``(heatmaps,)`` channels-last ``(B, h, w, K)``,
            or ``(simcc_x, simcc_y)``. :meth:`output_names` names them.
        flip_test: also run the mirrored crops and merge them the head's way.

    Example:
    >>> import keraspose, numpy as np
    >>> model = keraspose.TopdownEstimator.from_preset("tinypose_coco_128x96")  # doctest: +SKIP
    >>> graph = PoseExportModel(model)  # doctest: +SKIP
    >>> out = graph(np.zeros((2, 128, 96, 3), "uint8"))  # doctest: +SKIP
    >>> tuple(out[0].shape), tuple(out[1].shape)  # keypoints, scores  # doctest: +SKIP
    ((2, 17, 2), (2, 17))
    """

    def __init__(self, estimator, include_preprocessing=True, include_decoding=True, flip_test=False, **kwargs):
        super().__init__(**kwargs)
        self.estimator = estimator
        self.include_preprocessing = bool(include_preprocessing)
        self.include_decoding = bool(include_decoding)
        self.flip_test = bool(flip_test)
        head = estimator.head
        if self.include_decoding:
            head.decode_graph  # noqa: B018 -- every PoseHead has it; the codec may still refuse at trace time
        self._flip_indices = list(estimator.metainfo.flip_indices)

    def input_spec_for(self, batch_size=None):
        w, h = self.estimator.input_size
        dtype = "uint8" if self.include_preprocessing else "float32"
        return keras.InputSpec(shape=(batch_size, h, w, 3), dtype=dtype, name="images")

    def normalise(self, images):
        ops = keras.ops
        x = ops.cast(images, "float32")
        if self.estimator.channel_order == "bgr":
            x = ops.flip(x, axis=-1)
        # Backend tensors, not numpy: ``tensor - ndarray`` can fall back to
        # numpy's operator, which reads the traced input as a constant.
        mean = ops.convert_to_tensor(np.asarray(self.estimator.mean, np.float32))
        std = ops.convert_to_tensor(np.asarray(self.estimator.std, np.float32))
        return ops.divide(ops.subtract(x, mean), std)

    def call(self, images):
        estimator, head = self.estimator, self.estimator.head
        x = self.normalise(images) if self.include_preprocessing else keras.ops.cast(images, "float32")
        outputs = estimator.call(x, training=False)
        if self.flip_test:
            flipped = estimator.call(keras.ops.flip(x, axis=2), training=False)
            outputs = head.merge_flip_graph(
                outputs, flipped, self._flip_indices, flip_mode=estimator.flip_mode,
                shift_heatmap=estimator.shift_heatmap,
            )
        # A tuple in output_names() order: every exporter takes one (torch's
        # tracer, behind the OpenVINO export, refuses a dict).
        if not self.include_decoding:
            return tuple(outputs[n] for n in head.output_names) if isinstance(outputs, dict) else (outputs,)
        keypoints, scores = head.decode_graph(outputs)
        return keypoints, scores

    def output_names(self):
        if self.include_decoding:
            return ["keypoints", "scores"]
        return list(self.estimator.head.output_names)

    def get_config(self):
        config = super().get_config()
        config.update(
            estimator=keras.saving.serialize_keras_object(self.estimator),
            include_preprocessing=self.include_preprocessing,
            include_decoding=self.include_decoding,
            flip_test=self.flip_test,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["estimator"] = keras.saving.deserialize_keras_object(config["estimator"])
        return cls(**config)


def export_metadata(estimator, format, model_file, include_preprocessing, include_decoding, flip_test, batch_size,
                    output_names):
    """The ``keraspose_export.json`` content: what a runtime needs besides the model file."""
    metainfo = estimator.metainfo
    head = estimator.head
    codec = getattr(head, "codec", None)
    w, h = estimator.input_size
    return {
        "keraspose_export_version": METADATA_VERSION,
        "task": "pose",
        "format": format,
        "model_file": model_file,
        "exported_from_backend": keras.config.backend(),
        "input": {
            "name": "images",
            "shape": [batch_size, h, w, 3],
            "dtype": "uint8" if include_preprocessing else "float32",
            "layout": "NHWC",
            "channel_order": "rgb",
            "input_size": [w, h],
            "preprocessing_included": bool(include_preprocessing),
        },
        "preprocessing": {
            "mean": list(estimator.mean),
            "std": list(estimator.std),
            "network_channel_order": estimator.channel_order,
            "formula": "(float(crop) - mean) / std, channel order as network_channel_order",
        },
        "crop": {
            "bbox_padding": estimator.bbox_padding,
            "aspect_ratio": w / h,
            "use_udp": estimator.use_udp,
            "crop_to_image": "image_xy = keypoint_xy / input_size * scale + center - 0.5 * scale",
        },
        "decoding": {
            "included": bool(include_decoding),
            "head": type(head).__name__,
            "codec": type(codec).__name__ if codec is not None else None,
            "codec_config": codec.get_config() if codec is not None else None,
            "flip_test": bool(flip_test),
            "flip_mode": estimator.flip_mode,
            "shift_heatmap": estimator.shift_heatmap,
        },
        "outputs": [
            {"name": "keypoints", "shape": [batch_size, metainfo.num_keypoints, 2], "units": "crop pixels"},
            {"name": "scores", "shape": [batch_size, metainfo.num_keypoints]},
        ] if include_decoding else [{"name": name, "layout": _raw_layout(name)} for name in output_names],
        "keypoint_names": list(metainfo.keypoint_names),
        "flip_indices": [int(i) for i in metainfo.flip_indices],
        "flip_pairs": [[int(a), int(b)] for a, b in metainfo.flip_pairs],
        "skeleton": [[int(a), int(b)] for a, b in metainfo.skeleton_links],
        "dataset_name": metainfo.dataset_name,
    }


def _raw_layout(name):
    return {"heatmaps": "(B, h, w, K)", "simcc_x": "(B, K, Wx)", "simcc_y": "(B, K, Wy)"}.get(name, "")


def export_estimator(estimator, path, format="onnx", include_preprocessing=True, include_decoding=True,
                     flip_test=False, batch_size=None, overwrite=False, verbose=False, precision="float32",
                     calibration=None):
    """Write ``path/<model file>`` and ``path/keraspose_export.json``; see
    :meth:`keraspose.TopdownEstimator.export`. Returns the model file's path.

    The directory appears complete or not at all (built under a temporary
    name, then renamed).
    """
    check_format_and_backend(format)
    check_precision(format, precision, calibration)
    _check_batch_size(batch_size)
    if not estimator.built:
        estimator.build()
    graph = PoseExportModel(estimator, include_preprocessing, include_decoding, flip_test)
    spec = graph.input_spec_for(batch_size)
    with backend.export_tracing():
        # One eager call builds the wrapper (and fails early, before any file,
        # for a decoding without a graph form).
        w, h = estimator.input_size
        graph(np.zeros((1, h, w, 3), spec.dtype))
        return _write_export(
            graph, path, format, spec, overwrite, verbose,
            lambda model_file: export_metadata(estimator, format, model_file, include_preprocessing, include_decoding,
                                               flip_test, batch_size, graph.output_names()),
            precision=precision, calibration=calibration,
        )


@keras.saving.register_keras_serializable(package="keraspose")
class DetectorExportModel(keras.Model):
    """The inference graph of an exported detector: letterboxed uint8 RGB images -> per-prior boxes and scores.

    In: ``(B, H, W, 3)`` uint8 RGB images of the detector's input size,
    already resized and padded as :func:`keraspose.utils.images.letterbox`
    does. Inside: the channel order, mean/std normalisation, the network and
    the decoding of every prior (:mod:`keraspose.ops.detection`, in
    ``keras.ops``). Out: ``boxes`` ``(B, N, 4)`` xyxy in input pixels
    (clipped to the input) and ``scores`` ``(B, N, num_classes)`` (sigmoid),
    ``N`` the priors of all levels. Score threshold, ``nms_pre``, NMS and the
    scale back to the image stay outside
    (:func:`keraspose.ops.detection.postprocess_detections`): NMS has no
    graph form that every exporter here writes and every runtime runs alike.

    Example:
    >>> detector = keraspose.RTMDetector.build_person("nano")  # doctest: +SKIP
    >>> boxes, scores = DetectorExportModel(detector)(np.zeros((2, 320, 320, 3), "uint8"))  # doctest: +SKIP
    >>> tuple(boxes.shape), tuple(scores.shape)  # doctest: +SKIP
    ((2, 2100, 4), (2, 2100, 1))
    """

    def __init__(self, detector, **kwargs):
        super().__init__(**kwargs)
        self.detector = detector
        from keraspose.ops.detection import prior_points

        self._points = prior_points(detector.level_sizes, detector.strides)

    def input_spec_for(self, batch_size=None):
        w, h = self.detector.input_size
        return keras.InputSpec(shape=(batch_size, h, w, 3), dtype="uint8", name="images")

    def call(self, images):
        ops, detector = keras.ops, self.detector
        x = ops.cast(images, "float32")
        if detector.channel_order == "bgr":
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(np.asarray(detector.mean, np.float32))
        std = ops.convert_to_tensor(np.asarray(detector.std, np.float32))
        raw = detector.call(ops.divide(ops.subtract(x, mean), std), training=False)
        return self.decode(raw["cls_scores"], raw["bbox_preds"])

    def decode(self, cls_scores, bbox_preds):
        """Per-level logits ``(B, h, w, C)`` and distances ``(B, h, w, 4)`` -> ``boxes (B, N, 4)``, ``scores (B, N, C)``:
        :func:`keraspose.ops.detection.decode_priors` in ``keras.ops``."""
        ops, detector = keras.ops, self.detector
        logits, dists = [], []
        for cls_score, bbox_pred, (h, w) in zip(cls_scores, bbox_preds, detector.level_sizes):
            logits.append(ops.reshape(ops.cast(cls_score, "float32"), (-1, h * w, detector.num_classes)))
            dists.append(ops.reshape(ops.cast(bbox_pred, "float32"), (-1, h * w, 4)))
        scores = ops.sigmoid(ops.concatenate(logits, axis=1))
        dist = ops.concatenate(dists, axis=1)
        points = ops.convert_to_tensor(self._points)
        px, py = points[None, :, 0], points[None, :, 1]
        in_w, in_h = (float(v) for v in detector.input_size)
        boxes = ops.stack([
            ops.clip(ops.subtract(px, dist[..., 0]), 0.0, in_w),
            ops.clip(ops.subtract(py, dist[..., 1]), 0.0, in_h),
            ops.clip(ops.add(px, dist[..., 2]), 0.0, in_w),
            ops.clip(ops.add(py, dist[..., 3]), 0.0, in_h),
        ], axis=-1)
        return boxes, scores

    def output_names(self):
        return ["boxes", "scores"]

    def get_config(self):
        config = super().get_config()
        config.update(detector=keras.saving.serialize_keras_object(self.detector))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["detector"] = keras.saving.deserialize_keras_object(config["detector"])
        return cls(**config)


def detector_metadata(detector, format, model_file, batch_size):
    """The ``keraspose_export.json`` of an exported detector (``"task": "detection"``)."""
    w, h = detector.input_size
    num_priors = sum(lh * lw for lh, lw in detector.level_sizes)
    return {
        "keraspose_export_version": METADATA_VERSION,
        "task": "detection",
        "format": format,
        "model_file": model_file,
        "exported_from_backend": keras.config.backend(),
        "input": {
            "name": "images",
            "shape": [batch_size, h, w, 3],
            "dtype": "uint8",
            "layout": "NHWC",
            "channel_order": "rgb",
            "input_size": [w, h],
            "preprocessing_included": True,
        },
        "preprocessing": {
            "resize": "letterbox: MMCV imrescale to input_size (s = min(long / max(h, w), short / min(h, w)), "
                      "new size int(w * s + 0.5) x int(h * s + 0.5), bilinear), pad bottom/right with pad_value; "
                      "scale_factor = (new_w / w, new_h / h)",
            "pad_value": detector.pad_value,
            "mean": list(detector.mean),
            "std": list(detector.std),
            "network_channel_order": detector.channel_order,
            "formula": "(float(image) - mean) / std, channel order as network_channel_order (inside the graph)",
        },
        "decoding": {
            "included": True,
            "strides": [int(s) for s in detector.strides],
            "level_sizes": [[int(lh), int(lw)] for lh, lw in detector.level_sizes],
            "priors": "levels finest first, prior index y * w + x at (x * stride, y * stride); "
                      "box (px - l, py - t, px + r, py + b) clipped to the input; scores sigmoid",
        },
        "postprocessing": {
            "in_graph": False,
            "why": "NMS has no graph form that every exporter writes and every runtime runs alike",
            "score_threshold": detector.score_threshold,
            "nms_pre": detector.nms_pre,
            "iou_threshold": detector.iou_threshold,
            "max_per_image": detector.max_per_image,
            "min_bbox_size": detector.min_bbox_size,
            "steps": "per level: scores > score_threshold, best nms_pre (stable order); boxes / scale_factor; "
                     "drop boxes not wider and taller than min_bbox_size; NMS per class (IoU > iou_threshold "
                     "suppressed); best max_per_image (keraspose.ops.detection.postprocess_detections)",
        },
        "outputs": [
            {"name": "boxes", "shape": [batch_size, num_priors, 4], "units": "input pixels, xyxy"},
            {"name": "scores", "shape": [batch_size, num_priors, detector.num_classes]},
        ],
        "class_names": list(detector.class_names),
    }


def export_detector(detector, path, format="onnx", batch_size=None, overwrite=False, verbose=False):
    """Write an exported detector (:class:`DetectorExportModel`) and its metadata; see
    :meth:`keraspose.RTMDetector.export`. Returns the model file's path."""
    check_format_and_backend(format)
    _check_batch_size(batch_size)
    if not detector.built:
        detector.build()
    graph = DetectorExportModel(detector)
    spec = graph.input_spec_for(batch_size)
    with backend.export_tracing():
        w, h = detector.input_size
        graph(np.zeros((1, h, w, 3), "uint8"))
        return _write_export(graph, path, format, spec, overwrite, verbose,
                             lambda model_file: detector_metadata(detector, format, model_file, batch_size))


def _check_batch_size(batch_size):
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size: expected None (dynamic) or a positive int, got {batch_size!r}")


def _write_export(graph, path, format, spec, overwrite, verbose, metadata, precision="float32", calibration=None):
    """The export directory, atomically: the model file (at ``precision``) and ``metadata(model_file)`` as the json."""
    model_file = EXPORT_FORMATS[format]
    with atomic_directory(path, overwrite=overwrite) as tmp:
        target = os.path.join(tmp, model_file)
        if format == "tf_saved_model":
            _write_saved_model(graph, target, spec)
        elif format == "litert":
            graph.export(target, format=format, input_signature=[spec], verbose=verbose,
                         **_litert_converter_settings(precision))
            _drop_litert_tensor_names(target)
        elif format == "onnx" and precision != "float32":
            float32 = os.path.join(tmp, "float32." + model_file)
            graph.export(float32, format=format, input_signature=[spec], verbose=verbose)
            _name_onnx_io(float32, graph.output_names())
            if precision == "int8":
                calibration = _check_calibration(calibration, spec)
            _quantize_onnx_file(float32, target, precision, calibration, spec.dtype)
            os.remove(float32)
        else:
            graph.export(target, format=format, input_signature=[spec], verbose=verbose)
        if format == "onnx" and precision == "float32":
            _name_onnx_io(target, graph.output_names())
        meta = metadata(model_file)
        _set_precision(meta, precision)
        with atomic_write(os.path.join(tmp, METADATA_FILE)) as f:
            json.dump(meta, f, indent=2)
    return os.path.join(os.path.abspath(path), model_file)


def _write_saved_model(graph, target, spec):
    """``model.export(format="tf_saved_model")`` with each weight stored once (see
    :func:`keraspose.backend.saved_model_tracks_variables`)."""
    archive = keras.export.ExportArchive()
    if backend.saved_model_tracks_variables():
        archive.track(graph)
    archive.add_endpoint("serve", graph.call, input_signature=[spec])
    archive.write_out(target, verbose=False)


def _name_onnx_io(path, output_names):
    """Name the ONNX graph's input ``images`` and its outputs as the metadata lists them.

    Exporters name outputs their own way (tf2onnx: the dict keys; torch:
    ``output_0``...); identity nodes give the names the runtime reads.
    """
    try:
        import onnx
    except ImportError:  # the outputs keep the exporter's names, in order
        return
    model = onnx.load(path)
    graph = model.graph
    outputs = list(graph.output)
    if len(outputs) != len(output_names):
        return
    if sorted(o.name for o in outputs) == sorted(output_names):
        return  # already named (tf2onnx keeps the dict keys)
    for out, name in zip(outputs, output_names):
        old = out.name
        if old == name:
            continue
        graph.node.append(onnx.helper.make_node("Identity", [old], [name], name=f"keraspose_output_{name}"))
        out.name = name
    tmp = path + ".named"
    onnx.save(model, tmp)
    shutil.move(tmp, path)


def calibration_crops(estimator, dataset, count=64):
    """uint8 RGB crops of the first ``count`` people of a top-down dataset, cropped as ``predict`` crops.

    For :func:`quantize_onnx_export`'s int8 calibration (e.g. a
    ``CocoStyleDataset`` of the training or validation set).
    """
    from keraspose.utils.images import load_image

    crops = []
    for index in range(min(int(count), len(dataset))):
        sample = dataset[index]
        image = load_image(sample["img_path"], f"dataset[{index}]['img_path']")
        crop, _, _ = estimator.crop_people(image, np.asarray(sample["bbox"], np.float32).reshape(1, 4))
        crops.append(crop[0])
    if not crops:
        raise ValueError("calibration_crops: the dataset has no samples")
    return np.stack(crops)


def quantize_onnx_export(source, path, precision="float16", calibration=None, overwrite=False):
    """A float16 or int8 copy of an ONNX export directory (metadata included); returns the model file's path.

    * ``"float16"``: weights and activations in float16, the uint8 input and
      float32 outputs kept (onnxruntime's ``convert_float_to_float16``).
    * ``"int8"``: onnxruntime's post-training static quantisation (QDQ, int8
      weights per channel, uint8 activations) calibrated on ``calibration``:
      uint8 RGB crops ``(N, H, W, 3)`` as the export takes them, e.g.
      :func:`calibration_crops` of a ``CocoStyleDataset``.

    Needs onnx and onnxruntime (``pip install 'keraspose[export]'``). The
    accuracy each costs is measured by ``tools/measure_export_ap.py``
    (README "Export").

    Example:
    >>> quantize_onnx_export("tinypose_onnx", "tinypose_onnx_fp16", "float16")  # doctest: +SKIP
    '.../tinypose_onnx_fp16/model.onnx'
    """
    with open(os.path.join(source, METADATA_FILE)) as f:
        meta = json.load(f)
    if meta.get("format") != "onnx":
        raise ValueError(f"{source}: quantize_onnx_export takes an ONNX export, this one is {meta.get('format')!r}")
    if meta.get("precision", "float32") != "float32":
        raise ValueError(f"{source}: already {meta['precision']}; quantize a float32 export")
    if precision not in ("float16", "int8"):
        raise ValueError(f"precision: 'float16' or 'int8', got {precision!r}")
    if precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 needs calibration crops: calibration=calibration_crops(model, dataset)")
        calibration = np.asarray(calibration)
        expected = tuple(meta["input"]["shape"][1:])
        if calibration.shape[1:] != expected:
            raise ValueError(f"calibration: crops of shape (N, {', '.join(map(str, expected))}) expected, "
                             f"got {calibration.shape}")
    source_file = os.path.join(source, meta["model_file"])
    with atomic_directory(path, overwrite=overwrite) as tmp:
        target = os.path.join(tmp, meta["model_file"])
        _quantize_onnx_file(source_file, target, precision, calibration, meta["input"]["dtype"])
        _set_precision(meta, precision)
        with atomic_write(os.path.join(tmp, METADATA_FILE)) as f:
            json.dump(meta, f, indent=2)
    return os.path.join(os.path.abspath(path), meta["model_file"])


def _set_precision(meta, precision):
    meta["precision"] = precision
    meta["quantization"] = _QUANTIZATION.get((meta["format"], precision))


def _check_calibration(calibration, spec):
    calibration = np.asarray(calibration)
    expected = tuple(spec.shape[1:])
    if calibration.ndim != 4 or len(calibration) == 0 or calibration.shape[1:] != expected:
        raise ValueError(f"calibration: crops of shape (N, {', '.join(map(str, expected))}) expected "
                         f"(keraspose.export.calibration_crops), got {calibration.shape}")
    return calibration


def _quantize_onnx_file(source_file, target, precision, calibration, input_dtype):
    """Write ``target``: the ONNX file ``source_file`` in float16, or int8 calibrated on ``calibration``."""
    import onnx

    if precision == "float16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(source_file), keep_io_types=True), target)
        return
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    dtype = np.uint8 if input_dtype == "uint8" else np.float32
    input_name = onnx.load(source_file, load_external_data=False).graph.input[0].name

    class _Crops(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{input_name: calibration[i : i + 1].astype(dtype)} for i in range(len(calibration))])

        def get_next(self):
            return next(self._batches, None)

    # Only the convolutions and matrix products: quantising the
    # normalisation and the decoding arithmetic too (onnxruntime's
    # default) cost coco_mini AP 0.55 -> 0.21 for TinyPose.
    quantize_static(source_file, target, _Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "ConvTranspose", "MatMul", "Gemm"],
                    calibrate_method=CalibrationMethod.Percentile)
