"""RTMDetector: the RTMDet object detector (MMDetection's ``RTMDet``) as a Keras model.

CSPNeXt backbone -> CSPNeXtPAFPN neck -> RTMDetSepBNHead, with MMDetection's
test pipeline and post-processing around it:

* **preprocess** (MMDetection's test pipeline + data preprocessor): resize
  keeping the aspect ratio with MMCV's ``imrescale`` rule (scale
  ``s = min(long / max(h, w), short / min(h, w))`` for the input size's long
  and short sides, new size ``int(w * s + 0.5) x int(h * s + 0.5)``, cv2
  bilinear), pad bottom/right to ``input_size`` with 114, BGR, subtract the
  mean, divide by the std. The scale factors are MMDetection's
  ``(new_w / w, new_h / h)``.
* **network** (``detector(x)``, MMDetection's "tensor" mode): a normalised
  batch ``(B, H, W, 3)`` -> ``{"cls_scores": [...], "bbox_preds": [...]}``,
  one channels-last array per level (strides 8, 16, 32): class logits
  ``(B, h, w, num_classes)`` and distances left/top/right/bottom in input
  pixels ``(B, h, w, 4)`` (already ``exp``-ed if the head does and times the
  stride).
* **postprocess** (numpy, MMDetection's ``test_cfg``): sigmoid; per level
  keep the scores above ``score_threshold`` and of those the ``nms_pre`` best
  (a candidate is one prior and one class); priors at ``(x * stride,
  y * stride)``; boxes ``(px - l, py - t, px + r, py + b)`` clipped to the
  padded input; divided by the scale factors; boxes not wider and taller than
  ``min_bbox_size`` dropped; NMS per class (IoU ``> iou_threshold``
  suppressed, MMCV areas); the ``max_per_image`` best.

Example:
>>> import numpy as np
>>> detector = RTMDetector.build_person("nano")
>>> result = detector.predict(np.zeros((240, 320, 3), "uint8"))
>>> result.boxes.shape[1], result.boxes.dtype
(4, dtype('float32'))
"""

import os

import keras
import numpy as np

from keraspose import backend
from keraspose.models.cspnext import CSPNeXtBackbone
from keraspose.models.rtmdet.cspnext_pafpn import CSPNeXtPAFPN
from keraspose.models.rtmdet.rtmdet_head import RTMDetSepBNHead
from keraspose.ops.detection import decode_priors, detection_results, level_sizes
from keraspose.presets import PresetMixin
from keraspose.results import DetectionResult
from keraspose.utils.images import is_single_image, letterbox, load_images

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)

# MMDetection's RTMDet configs: deepen, widen, use_depthwise, neck CSP blocks,
# exp_on_reg, share_conv. Widths: backbone (256, 512, 1024) * widen, neck
# and head 256 * widen. "nano" is MMPose's rtmdet_nano_320 (person, hand).
RTMDET_SIZES = {
    "nano": (0.33, 0.25, True, 1, False, False),
    "tiny": (0.167, 0.375, False, 1, False, True),
    "s": (0.33, 0.5, False, 1, False, True),
    "m": (0.67, 0.75, False, 2, True, True),
    "l": (1.0, 1.0, False, 3, True, True),
    "x": (1.33, 1.25, False, 4, True, True),
}


def rtmdet_config(size, num_classes=80, norm=True, data_format=None):
    """Keyword arguments of backbone, neck and head of a MMDetection RTMDet size.

    Returns ``{"backbone": {...}, "neck": {...}, "head": {...}}`` for
    :class:`CSPNeXtBackbone`, :class:`CSPNeXtPAFPN` and :class:`RTMDetSepBNHead`.

    Example:
    >>> rtmdet_config("nano", num_classes=1)["neck"]["in_channels"]
    [64, 128, 256]
    """
    if size not in RTMDET_SIZES:
        raise ValueError(f"rtmdet_config: size must be one of {list(RTMDET_SIZES)}, got {size!r}")
    deepen, widen, depthwise, neck_blocks, exp_on_reg, share_conv = RTMDET_SIZES[size]
    common = dict(norm=norm, data_format=data_format)
    width = int(256 * widen)
    return {
        "backbone": dict(deepen_factor=deepen, widen_factor=widen, use_depthwise=depthwise, **common),
        "neck": dict(
            in_channels=[int(c * widen) for c in (256, 512, 1024)], out_channels=width,
            num_csp_blocks=neck_blocks, use_depthwise=depthwise, **common,
        ),
        "head": dict(
            num_classes=num_classes, in_channels=width, feat_channels=width, share_conv=share_conv,
            exp_on_reg=exp_on_reg, use_depthwise=depthwise, **common,
        ),
    }


@keras.saving.register_keras_serializable(package="keraspose")
class RTMDetector(keras.Model, PresetMixin):
    """RTMDet: CSPNeXt backbone, CSPNeXtPAFPN neck, RTMDetSepBNHead, and MMDetection's pre/post-processing.

    Args:
        backbone, neck, head: the three layers (see :func:`rtmdet_config`).
        input_size: network input ``(width, height)``.
        mean, std: normalisation, in ``channel_order``.
        channel_order: ``"bgr"`` (MMDetection's RTMDet) or ``"rgb"``.
        pad_value: pixel value of the padding (before normalisation).
        score_threshold, nms_pre, iou_threshold, max_per_image, min_bbox_size:
            MMDetection's test_cfg (``score_thr``, ``nms_pre``,
            ``nms.iou_threshold``, ``max_per_img``, ``min_bbox_size``).
        class_names: one name per class.

    Build one with :meth:`build_person` / :meth:`from_size`, or load one
    with :meth:`from_preset`.
    """

    preset_task = "detector"

    def __init__(
        self,
        backbone,
        neck,
        head,
        input_size=(640, 640),
        mean=(103.53, 116.28, 123.675),
        std=(57.375, 57.12, 58.395),
        channel_order="bgr",
        pad_value=114,
        score_threshold=0.05,
        nms_pre=1000,
        iou_threshold=0.6,
        max_per_image=100,
        min_bbox_size=0,
        class_names=("person",),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone, self.neck, self.head = backbone, neck, head
        self.input_size = tuple(int(v) for v in input_size)
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise ValueError(f"input_size must be (width, height), each >= 32, got {input_size!r}")
        stride = max(head.strides)
        if any(v % stride for v in self.input_size):
            raise ValueError(f"input_size {self.input_size} must be a multiple of the largest stride {stride}")
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.channel_order = channel_order
        self.pad_value = float(pad_value)
        self.score_threshold = float(score_threshold)
        self.nms_pre = int(nms_pre)
        self.iou_threshold = float(iou_threshold)
        self.max_per_image = int(max_per_image)
        self.min_bbox_size = float(min_bbox_size)
        self.class_names = tuple(str(c) for c in class_names)
        if len(self.class_names) != head.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names but the head predicts {head.num_classes} classes"
            )
        self.data_format = backbone.data_format

    # -- construction -----------------------------------------------------
    @classmethod
    def from_size(cls, size, num_classes=80, class_names=None, norm=True, data_format=None, **kwargs):
        """A randomly initialised RTMDet of a MMDetection size (``"nano"``, ``"tiny"``, ``"s"``, ``"m"``, ``"l"``, ``"x"``).

        ``norm=False`` builds convs with bias instead of BatchNorm, for
        BN-folded weights such as an ONNX export. ``kwargs`` go to the
        constructor (``input_size``, thresholds, ...).
        """
        config = rtmdet_config(size, num_classes=num_classes, norm=norm, data_format=data_format)
        if class_names is None:
            class_names = COCO_CLASSES if num_classes == 80 else tuple(f"class_{i}" for i in range(num_classes))
        model = cls(
            CSPNeXtBackbone(**config["backbone"], name="backbone"),
            CSPNeXtPAFPN(**config["neck"], name="neck"),
            RTMDetSepBNHead(**config["head"], name="bbox_head"),
            class_names=class_names,
            **kwargs,
        )
        model.build()
        return model

    @classmethod
    def build_person(cls, size="nano", **kwargs):
        """MMPose's person detectors: ``rtmdet_nano_320-8xb32_coco-person`` (``size="nano"``,
        320x320) and ``rtmdet_m_640-8xb32_coco-person`` (``"m"``, 640x640); other sizes at 640.

        Test config of those: score 0.05, nms_pre 1000, IoU 0.6, at most 100 boxes.
        """
        side = 320 if size == "nano" else 640
        settings = dict(
            input_size=(side, side), score_threshold=0.05, nms_pre=1000, iou_threshold=0.6, max_per_image=100,
        )
        settings.update(kwargs)
        return cls.from_size(size, num_classes=1, class_names=("person",), **settings)

    # -- the network ------------------------------------------------------
    def call(self, inputs, training=None):
        """Normalised ``(B, H, W, 3)`` -> ``{"cls_scores": [..], "bbox_preds": [..]}`` per level, channels-last."""
        x = inputs
        if self.data_format == "channels_first":
            x = backend.to_channels_first(x)
        feats = self.backbone(x, training=training)
        feats = self.neck(feats, training=training)
        cls_scores, bbox_preds = self.head(feats, training=training)
        if self.data_format == "channels_first":
            cls_scores = [backend.to_channels_last(t) for t in cls_scores]
            bbox_preds = [backend.to_channels_last(t) for t in bbox_preds]
        return {"cls_scores": list(cls_scores), "bbox_preds": list(bbox_preds)}

    def build(self, input_shape=None):
        if self.built:
            return
        w, h = self.input_size
        with backend.inference_mode():
            self.call(keras.ops.zeros((1, h, w, 3)), training=False)
        self.built = True

    def build_for_preset(self):
        self.build()

    def dummy_inputs(self, batch_size=1):
        w, h = self.input_size
        return np.zeros((batch_size, h, w, 3), "float32")

    @property
    def strides(self):
        return list(self.head.strides)

    @property
    def num_classes(self):
        return self.head.num_classes

    def checkpoint_keys(self):
        """``(layer, conv key, bn key or None)`` of every conv, in MMDetection's state-dict names
        (``backbone.stem.0.conv``, ``neck.reduce_layers.0.conv``, ``bbox_head.rtm_cls.0``, ...)."""
        return (
            self.backbone.checkpoint_keys("backbone")
            + self.neck.checkpoint_keys("neck")
            + self.head.checkpoint_keys("bbox_head")
        )

    def fit(self, *args, **kwargs):
        raise NotImplementedError(
            "training RTMDetector is not implemented yet (MMDetection's assigner and losses are not ported); "
            "it is an inference model: use predict(), or train the detector in MMDetection and convert it"
        )

    # -- preprocessing ----------------------------------------------------
    def resize_and_pad(self, image):
        """One RGB uint8 image -> the padded network image (``channel_order``, uint8) and ``(w_scale, h_scale)``.

        :func:`keraspose.utils.images.letterbox` (MMCV's ``imrescale`` rule,
        bottom/right padding with ``pad_value``), then the channel order.
        """
        padded, factors = letterbox(image, self.input_size, self.pad_value)
        if self.channel_order == "bgr":
            padded = padded[..., ::-1]
        return padded, factors

    def preprocess(self, images):
        """Images (paths or RGB uint8 arrays) -> normalised batch ``(B, H, W, 3)`` float32 and scale factors ``(B, 2)``.

        The scale factors are ``(w_scale, h_scale)`` = resized / original size, as MMDetection's.
        """
        return self._preprocess_loaded(load_images(images))

    def _preprocess_loaded(self, rgb_images):
        w, h = self.input_size
        if not rgb_images:
            return np.zeros((0, h, w, 3), np.float32), np.zeros((0, 2), np.float64)
        padded, factors = zip(*(self.resize_and_pad(image) for image in rgb_images))
        x = np.stack(padded).astype(np.float32)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return x, np.asarray(factors, np.float64)

    # -- postprocessing ---------------------------------------------------
    def postprocess(self, raw_outputs, scale_factors):
        """Raw network outputs (numpy, as ``detector(x)`` returns) -> one :class:`DetectionResult` per image.

        ``scale_factors``: ``(B, 2)`` ``(w_scale, h_scale)`` from :meth:`preprocess`
        (``None``: boxes stay in input pixels).
        """
        cls_scores = [np.asarray(keras.ops.convert_to_numpy(t), np.float32) for t in raw_outputs["cls_scores"]]
        bbox_preds = [np.asarray(keras.ops.convert_to_numpy(t), np.float32) for t in raw_outputs["bbox_preds"]]
        if len(cls_scores) != len(self.strides) or len(bbox_preds) != len(self.strides):
            raise ValueError(
                f"postprocess: expected {len(self.strides)} levels of cls_scores and bbox_preds, "
                f"got {len(cls_scores)} and {len(bbox_preds)}"
            )
        boxes, scores = decode_priors(cls_scores, bbox_preds, self.strides, self.input_size)
        return self.postprocess_decoded(boxes, scores, scale_factors)

    @property
    def level_sizes(self):
        """``[(h, w), ...]`` of the output levels, finest first."""
        return level_sizes(self.input_size, self.strides)

    def postprocess_decoded(self, boxes, scores, scale_factors=None):
        """Decoded priors (``boxes (B, N, 4)``, ``scores (B, N, C)``, as an export outputs) -> :class:`DetectionResult` s.

        :func:`keraspose.ops.detection.postprocess_detections` with this
        detector's test config, per image.
        """
        boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
        if scale_factors is not None:
            scale_factors = np.asarray(scale_factors, np.float64).reshape(-1, 2)
            if len(scale_factors) != len(boxes):
                raise ValueError(f"postprocess: {len(scale_factors)} scale factors for a batch of {len(boxes)}")
        return detection_results(boxes, scores, self, scale_factors)

    # -- inference --------------------------------------------------------
    def predict_raw(self, inputs):
        """Normalised batch (numpy NHWC) -> raw outputs as numpy (the dict of :meth:`call`)."""
        if not self.built:
            self.build()
        out = keras.Model.predict_on_batch(self, np.asarray(inputs, np.float32))
        # float32 for decoding whatever the compute dtype (mixed precision).
        return {k: [np.asarray(keras.ops.convert_to_numpy(t), np.float32) for t in v] for k, v in out.items()}

    def predict(self, images, batch_size=8):
        """Detect objects: images (paths or RGB uint8 arrays) -> :class:`DetectionResult` per image.

        A single image gives a single result; a list gives a list.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        single = is_single_image(images)
        image_list = [images] if single else list(images)
        rgb_images = load_images(images)  # every image checked before any is run
        results = []
        for start in range(0, len(rgb_images), int(batch_size)):
            x, factors = self._preprocess_loaded(rgb_images[start : start + int(batch_size)])
            results += self.postprocess(self.predict_raw(x), factors)
        for result, image in zip(results, image_list):
            result.image_path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        return results[0] if single else results

    # -- deployment -------------------------------------------------------
    def export(self, path, format="onnx", batch_size=None, overwrite=False, verbose=False):
        """Export for deployment: a directory with the model file and ``keraspose_export.json``.

        The exported graph takes uint8 RGB images ``(B, H, W, 3)`` of the
        input size, already letterboxed
        (:func:`keraspose.utils.images.letterbox`: resized with MMCV's
        ``imrescale`` rule and padded with ``pad_value``; any batch size unless
        ``batch_size`` fixes it). Inside: the channel order, mean/std, the
        network and the decoding of every prior. Out: ``boxes`` ``(B, N, 4)``
        (input pixels, clipped) and ``scores`` ``(B, N, num_classes)``
        (sigmoid) over the ``N`` priors of all levels. The score threshold,
        ``nms_pre``, NMS per class, ``max_per_image`` and the scale back to
        the image stay outside, in numpy
        (:func:`keraspose.ops.detection.postprocess_detections`;
        ``keraspose.runtime.ExportedDetector`` runs them): NMS has no graph
        form that every one of these exporters writes and runtimes run alike.

        Args:
            path: the output directory (must not exist or be empty unless
                ``overwrite``); it appears complete or not at all.
            format: ``"onnx"``, ``"tf_saved_model"``, ``"litert"`` or
                ``"openvino"``; each from some backends only (a clear error
                names the one to use; README "Export").
            batch_size: ``None`` for a dynamic batch, or a fixed one.

        Returns:
            the path of the model file inside ``path``.

        Example:
        >>> detector = RTMDetector.from_preset("rtmdet_nano_person")  # doctest: +SKIP
        >>> detector.export("rtmdet_onnx", format="onnx")  # doctest: +SKIP
        '.../rtmdet_onnx/model.onnx'
        """
        from keraspose.export import export_detector

        return export_detector(self, path, format=format, batch_size=batch_size, overwrite=overwrite, verbose=verbose)

    # -- serialization ----------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "neck": keras.saving.serialize_keras_object(self.neck),
            "head": keras.saving.serialize_keras_object(self.head),
            "input_size": list(self.input_size),
            "mean": self.mean,
            "std": self.std,
            "channel_order": self.channel_order,
            "pad_value": self.pad_value,
            "score_threshold": self.score_threshold,
            "nms_pre": self.nms_pre,
            "iou_threshold": self.iou_threshold,
            "max_per_image": self.max_per_image,
            "min_bbox_size": self.min_bbox_size,
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_config(cls, config):
        import keraspose

        keraspose._import_all()  # the sub-layers' classes registered (keraspose loads its modules lazily)
        config = dict(config)
        for key in ("backbone", "neck", "head"):
            if isinstance(config.get(key), dict):
                sub = {k: v for k, v in config[key].items() if k != "build_config"}
                config[key] = keras.saving.deserialize_keras_object(sub)
        return cls(**config)

