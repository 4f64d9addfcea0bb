"""TopdownEstimator: the top-down pose estimator (MMPose's TopdownPoseEstimator).

A top-down estimator looks at one person at a time: each person box is
enlarged (padding 1.25), fixed to the network's aspect ratio, cropped out of
the image with an affine warp, normalised, and sent through
backbone -> (neck) -> head. The head's outputs are decoded by its codec into
keypoints in crop pixels, which are mapped back into the image.

The estimator does not know what its head predicts: the head
(:class:`~keraspose.models.heads.base.PoseHead`) owns its outputs, loss,
accuracy, flip-test merge and decoding, and the codec says how crops are
warped (UDP or not) and what the flip test's default shift is.

Two ways to call it:

* ``estimator(x)``: ``x`` is a batch of already-normalised crops,
  channels-last ``(B, H, W, 3)``; returns the head's raw outputs (MMPose's
  "tensor" mode): heatmaps ``(B, h, w, K)`` for a heatmap head,
  ``{"simcc_x", "simcc_y"}`` for RTMPose. This is what training uses.
* ``estimator.predict(images, bboxes=None)``: the whole inference, from
  images (file paths or RGB uint8 arrays) and person boxes to keypoints in
  image pixels, batched across every person of every image.
"""

import os

import keras
import numpy as np

from keraspose import backend
from keraspose.losses import PoseAccuracy
from keraspose.metainfo import DatasetMetainfo, load_metainfo
from keraspose.presets import PresetMixin
from keraspose.models.heads.base import concatenate_outputs
from keraspose.results import PoseResult
from keraspose.transforms.functional import crop_people, crop_to_image  # noqa: F401 -- crop_to_image: public here too
from keraspose.utils.images import check_bboxes as _check_bboxes
from keraspose.utils.images import image_and_box_lists, load_image  # noqa: F401 -- public here too


@keras.saving.register_keras_serializable(package="keraspose")
class TopdownEstimator(keras.Model, PresetMixin):
    """Top-down pose estimator: backbone, optional neck, codec-aware head.

    Args:
        backbone: a keraspose backbone layer (e.g. ``HRNetBackbone``).
        head: a codec-aware head (e.g. ``HeatmapHead`` with ``MSRAHeatmap``).
        neck: optional layer between them.
        metainfo: ``DatasetMetainfo`` or a built-in name (``"coco"``).
        input_size: network input ``(width, height)``, as in MMPose.
        mean, std: per-channel normalisation in ``channel_order``.
        channel_order: the channel order the network was trained on
            (``"rgb"`` for MMPose configs with ``bgr_to_rgb=True``).
        flip_test, flip_mode, shift_heatmap: test-time flip (MMPose's
            test_cfg); ``None`` takes the head's and codec's default
            (MSRA heatmaps: ``"heatmap"`` with the shift; UDP: no shift;
            SimCC heads: no flip_mode).
        bbox_padding: box enlargement before cropping (GetBBoxCenterScale).

    Example:
    >>> import keraspose
    >>> model = keraspose.TopdownEstimator.from_preset("tinypose_coco_256x192")  # doctest: +SKIP
    >>> results = model.predict(["person.jpg"])  # doctest: +SKIP
    >>> results[0].keypoints.shape  # doctest: +SKIP
    (1, 17, 2)
    """

    preset_task = "pose"

    def __init__(
        self,
        backbone,
        head,
        neck=None,
        metainfo="coco",
        input_size=(192, 256),
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        channel_order="rgb",
        flip_test=True,
        flip_mode=None,
        shift_heatmap=None,
        bbox_padding=1.25,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.metainfo = metainfo if isinstance(metainfo, DatasetMetainfo) else load_metainfo(metainfo)
        self.input_size = tuple(int(v) for v in input_size)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.channel_order = channel_order
        self.flip_test = bool(flip_test)
        self.flip_mode, self.shift_heatmap = head.resolve_test_cfg(flip_mode, shift_heatmap)
        self.bbox_padding = float(bbox_padding)
        if getattr(head, "out_channels", None) not in (None, self.metainfo.num_keypoints):
            raise ValueError(
                f"the head predicts {head.out_channels} keypoints but the metainfo "
                f"'{self.metainfo.dataset_name}' has {self.metainfo.num_keypoints}"
            )
        codec = getattr(head, "codec", None)
        if codec is not None and tuple(codec.input_size) != self.input_size:
            raise ValueError(
                f"input_size {self.input_size} differs from the input_size {tuple(codec.input_size)} of "
                f"the head's codec {type(codec).__name__}; build both for the same (width, height)"
            )
        self.data_format = backbone.data_format
        self.pose_accuracy = PoseAccuracy(name="acc_pose")

    # -- the network ------------------------------------------------------
    def call(self, inputs, training=None):
        """Normalised crops ``(B, H, W, 3)`` -> the head's outputs (heatmaps ``(B, h, w, K)``, ...)."""
        x = inputs
        if self.data_format == "channels_first":
            x = backend.to_channels_first(x)
        feats = self.backbone(x, training=training)
        if self.neck is not None:
            feats = self.neck(feats, training=training)
        return self.head.network_outputs(feats, training=training)

    def build(self, input_shape=None):
        # Running a forward pass creates every variable with its real shape.
        if self.built:
            return
        w, h = self.input_size
        with backend.inference_mode():
            # self.call, not self(...): __call__ would come back here to build.
            self.call(keras.ops.zeros((1, h, w, 3)), training=False)
        self.built = True

    def build_for_preset(self):
        self.build()

    def dummy_inputs(self, batch_size=1):
        w, h = self.input_size
        return np.zeros((batch_size, h, w, 3), "float32")

    # -- training ---------------------------------------------------------
    def compile(self, optimizer="adam", **kwargs):
        """Like ``keras.Model.compile``; the loss is the head's (no ``loss=`` needed)."""
        if kwargs.get("loss") is not None:
            raise ValueError(
                "TopdownEstimator trains with its head's loss; pass it when building the head "
                "(HeatmapHead(..., loss=KeypointMSELoss(...))) instead of compile(loss=...)"
            )
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, **kwargs):
        """``keras.Model.fit``. With a ``TopdownPyDataset`` training is reproducible from
        its seed: the dataset shuffles itself per epoch (Keras' unseeded batch
        shuffling is turned off), and a resumed run (``initial_epoch``,
        ``BackupAndRestore``) replays the epochs' own order and augmentations."""
        from keraspose.training import SyncDatasetEpoch, TopdownPyDataset

        callbacks = list(callbacks or [])
        if isinstance(x, TopdownPyDataset):
            kwargs["shuffle"] = False
            if not any(isinstance(c, SyncDatasetEpoch) and c.dataset is x for c in callbacks):
                callbacks.insert(0, SyncDatasetEpoch(x))
        return super().fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks, **kwargs
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Route the loss through the head. ``y`` holds the head codec's named targets
        (``{"heatmaps", "keypoint_weights"}`` for a heatmap head), as
        ``keraspose.training.TopdownPyDataset`` yields them."""
        names = self.head.target_names()
        if not isinstance(y, dict) or any(n not in y for n in names if n != "keypoint_weights"):
            got = sorted(y) if isinstance(y, dict) else type(y).__name__
            raise ValueError(
                f"TopdownEstimator expects targets y = a dict with {list(names)} (the "
                f"{type(self.head).__name__}'s codec's targets), as keraspose.training.TopdownPyDataset "
                f"yields; got {got}"
            )
        # The loss in float32 whatever the compute dtype (mixed precision), as Keras' losses.
        y_pred = keras.tree.map_structure(lambda t: keras.ops.cast(t, "float32"), y_pred)
        loss = self.head.compute_loss(y_pred, y)
        self.pose_accuracy.add_batch_accuracy(self.head.accuracy(y_pred, y, self.pose_accuracy.thr))
        for extra in self.losses:  # regularisers, if any layer adds them
            loss = loss + extra
        # Under tf.distribute each replica's gradients are summed: a replica
        # contributes its loss over the replica count (Keras' convention).
        return backend.scale_loss_for_replicas(loss)

    # -- preprocessing ----------------------------------------------------
    def preprocess(self, crops_rgb):
        """RGB uint8 crops ``(B, H, W, 3)`` -> normalised float32 network input."""
        x = np.asarray(crops_rgb, dtype=np.float32)
        if self.channel_order == "bgr":
            x = x[..., ::-1]
        return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    @property
    def use_udp(self):
        """Whether crops use UDP's warp (the head's codec says so)."""
        return bool(getattr(getattr(self.head, "codec", None), "use_udp", False))

    def crop_people(self, image, bboxes):
        """Affine-warped RGB crops, centers and scales for the boxes of one image.

        The warp is UDP's when the head's codec asks for it (``codec.use_udp``).
        """
        return crop_people(image, bboxes, self.input_size, self.bbox_padding, self.use_udp)

    # -- inference --------------------------------------------------------
    def predict_outputs(self, inputs, batch_size=32, flip_test=None):
        """Normalised crops (numpy NHWC) -> the head's outputs in its codec's layout
        (numpy; heatmaps ``(B, K, h, w)``, SimCC ``{"simcc_x", "simcc_y"}``), flip test merged."""
        flip_test = self.flip_test if flip_test is None else flip_test
        outputs = []
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            out = self._forward(batch)
            if flip_test:
                flipped = self._forward(np.ascontiguousarray(batch[:, :, ::-1]))
                out = self.head.merge_flip(
                    out, flipped, self.metainfo.flip_indices, flip_mode=self.flip_mode,
                    shift_heatmap=self.shift_heatmap,
                )
            outputs.append(out)
        if not outputs:
            return self.head.empty_outputs()
        return concatenate_outputs(outputs)

    def predict_heatmaps(self, inputs, batch_size=32, flip_test=None):
        """:meth:`predict_outputs` under its old name (heatmap heads: ``(B, K, h, w)``)."""
        return self.predict_outputs(inputs, batch_size=batch_size, flip_test=flip_test)

    def _forward(self, batch):
        if not self.built:
            self.build()
        out = keras.Model.predict_on_batch(self, batch)
        # float32 for decoding whatever the compute dtype (mixed precision).
        if isinstance(out, dict):
            out = {k: np.asarray(keras.ops.convert_to_numpy(v), np.float32) for k, v in out.items()}
        else:
            out = np.asarray(keras.ops.convert_to_numpy(out), np.float32)
        return self.head.to_codec_layout(out)

    def predict_crops(self, crops_rgb, centers, scales, batch_size=32, flip_test=None):
        """Keypoints ``(N, K, 2)`` in image pixels and scores ``(N, K)`` of RGB uint8 crops.

        The one inference path behind :meth:`predict`, ``evaluate_topdown``
        and the CLI: preprocess, network (with the flip test), the head's
        decoding, crop -> image coordinates.
        """
        k = self.metainfo.num_keypoints
        if len(crops_rgb) == 0:
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        outputs = self.predict_outputs(self.preprocess(crops_rgb), batch_size=batch_size, flip_test=flip_test)
        keypoints, scores = self.head.decode(outputs)
        keypoints = crop_to_image(keypoints, np.asarray(centers), np.asarray(scales), self.input_size)
        return keypoints.astype(np.float32), np.asarray(scores, np.float32)

    def predict(self, images, bboxes=None, batch_size=32, flip_test=None):
        """Whole top-down inference: images and person boxes -> keypoints in image pixels.

        Args:
            images: a path or RGB uint8 ``(H, W, 3)`` array, or a list of them.
            bboxes: per image an ``(N, 4)`` xyxy array of person boxes;
                ``None`` (for all, or for one image) means the whole image is
                one person. An empty ``(0, 4)`` array gives an empty result.
            batch_size: people per network call, across images.
            flip_test: override the model's test-time flip setting.

        Returns:
            a list with one :class:`PoseResult` per image (a single result if
            ``images`` was a single image).
        """
        single = isinstance(images, (str, os.PathLike)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8
        )
        image_list, box_list = image_and_box_lists(images, bboxes, single)
        crops, centers, scales, owners, kept_boxes, paths = [], [], [], [], [], []
        for idx, (image, boxes) in enumerate(zip(image_list, box_list)):
            name = f"images[{idx}]" if not single else "image"
            rgb = load_image(image, name)
            paths.append(os.fspath(image) if isinstance(image, (str, os.PathLike)) else None)
            boxes = _check_bboxes(boxes, rgb.shape, f"bboxes[{idx}]" if not single else "bboxes")
            kept_boxes.append(boxes)
            if len(boxes):
                c, ctr, scl = self.crop_people(rgb, boxes)
                crops.append(c)
                centers.append(ctr)
                scales.append(scl)
                owners += [idx] * len(boxes)
        if crops:
            keypoints, scores = self.predict_crops(
                np.concatenate(crops), np.concatenate(centers), np.concatenate(scales),
                batch_size=batch_size, flip_test=flip_test,
            )
        else:
            k = self.metainfo.num_keypoints
            keypoints, scores = np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        owners = np.asarray(owners, dtype=np.int64)
        results = [
            PoseResult(
                keypoints=keypoints[owners == i].astype(np.float32),
                keypoint_scores=scores[owners == i].astype(np.float32),
                bboxes=kept_boxes[i],
                image_path=paths[i],
            )
            for i in range(len(image_list))
        ]
        return results[0] if single else results

    # -- deployment ---------------------------------------------------------
    def export(self, path, format="onnx", include_preprocessing=True, include_decoding=True, flip_test=False,
               batch_size=None, overwrite=False, verbose=False, precision="float32", calibration=None):
        """Export for deployment: a directory with the model file and ``keraspose_export.json``.

        The exported graph takes uint8 RGB crops ``(B, H, W, 3)`` of the
        model's input size (from :meth:`crop_people`; any batch size unless
        ``batch_size`` fixes it) and returns ``keypoints`` ``(B, K, 2)`` in
        crop pixels and ``scores`` ``(B, K)``: the normalisation, the network
        (with the flip test if asked) and the head's decoding are inside.
        :func:`crop_to_image` maps the keypoints back to the image.

        Args:
            path: the output directory (created; it must not exist or be
                empty unless ``overwrite``). It appears complete or not at all.
            format: ``"onnx"``, ``"tf_saved_model"``, ``"litert"`` or
                ``"openvino"``; each can be written from some backends only
                (a clear error names the one to use; README "Export").
            include_preprocessing: uint8 RGB in (else normalised float32 crops).
            include_decoding: keypoints and scores out (else the head's raw
                outputs: heatmaps ``(B, h, w, K)`` or ``simcc_x``/``simcc_y``).
            flip_test: run the mirrored crops too and merge (the head's merge).
            batch_size: ``None`` for a dynamic batch, or a fixed one.
            precision: ``"float32"``, or for ``litert`` and ``onnx``
                ``"float16"`` (half the size) or ``"int8"`` (LiteRT: dynamic
                range, int8 weights; ONNX: static, calibrated on
                ``calibration``). The uint8 input, float32 outputs and dynamic
                batch stay; the accuracy each costs is in README "Export".
            calibration: ONNX int8 only: uint8 RGB crops ``(N, H, W, 3)``,
                e.g. :func:`keraspose.export.calibration_crops` of a dataset.

        Returns:
            the path of the model file inside ``path``.

        Example:
        >>> model = TopdownEstimator.from_preset("tinypose_coco_128x96")  # doctest: +SKIP
        >>> model.export("tinypose_onnx", format="onnx")  # doctest: +SKIP
        '.../tinypose_onnx/model.onnx'
        >>> model.export("tinypose_int8", format="litert", precision="int8")  # TensorFlow  # doctest: +SKIP
        '.../tinypose_int8/model.tflite'
        """
        from keraspose.export import export_estimator

        return export_estimator(
            self, path, format=format, include_preprocessing=include_preprocessing,
            include_decoding=include_decoding, flip_test=flip_test, batch_size=batch_size,
            overwrite=overwrite, verbose=verbose, precision=precision, calibration=calibration,
        )

    # -- presets ----------------------------------------------------------
    @classmethod
    def from_preset(cls, handle, load_weights=True, **overrides):
        """Load a preset: a catalogue name, ``hf://owner/repo[@revision]`` or a directory.

        ``overrides`` replace entries of the saved config (``flip_test=False``);
        ``load_weights=False`` builds the architecture only (offline for
        catalogue models); ``metainfo=`` adapts the model to another keypoint
        set (:meth:`with_keypoint_set`). A detector preset is refused with a
        pointer to ``keraspose.RTMDetector``.

        Example:
        >>> model = TopdownEstimator.from_preset("tinypose_coco_256x192", flip_test=False)  # doctest: +SKIP
        """
        metainfo = overrides.pop("metainfo", None)
        model = super().from_preset(handle, load_weights=load_weights, **overrides)
        if metainfo is not None:
            # Another keypoint set (or another description of the same one):
            # the trained layers carry over, a new final layer if K differs.
            model = model.with_keypoint_set(metainfo)
        return model

    def with_keypoint_set(self, metainfo):
        """A copy of this model for another keypoint set, ready for fine-tuning.

        The backbone, neck and every head layer but the last keep their
        (trained) weights; the head's final convolution is rebuilt with one
        output channel per keypoint of ``metainfo`` and freshly initialised
        (with the same keypoint count every weight carries over: only the
        metainfo, e.g. names, flip pairs or sigmas, changes).
        ``from_preset(handle, metainfo=...)`` calls this.

        Example:
        >>> model = TopdownEstimator.from_preset("tinypose_coco_256x192")  # doctest: +SKIP
        >>> hands = model.with_keypoint_set("my_keypoints.json")  # doctest: +SKIP
        """
        metainfo = metainfo if isinstance(metainfo, DatasetMetainfo) else load_metainfo(metainfo)
        if not self.built:
            self.build()
        config = self.get_config()
        head = dict(config["head"])
        head["config"] = self.head.config_for_keypoints(head["config"], metainfo.num_keypoints)
        config["head"] = head
        config["metainfo"] = metainfo
        config["name"] = f"{self.name}_{metainfo.dataset_name}"
        new = type(self).from_config(config)
        new.build()
        old_weights, new_weights = self.weights, new.weights
        if len(old_weights) != len(new_weights):
            raise RuntimeError("with_keypoint_set: the rebuilt model has a different set of weights")
        fresh = []
        for old, var in zip(old_weights, new_weights):
            if tuple(old.shape) == tuple(var.shape):
                var.assign(old)
            else:
                fresh.append(var.path)
        # Only the last head layer may change shape (its output channels).
        head_paths = {v.path for v in new.head.weights}
        if any(path not in head_paths for path in fresh):
            raise RuntimeError(f"with_keypoint_set: unexpected shape change outside the head: {fresh}")
        return new

    # -- serialization ----------------------------------------------------
    def get_config(self):
        config = {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "neck": keras.saving.serialize_keras_object(self.neck) if self.neck is not None else None,
            "head": keras.saving.serialize_keras_object(self.head),
            "metainfo": keras.saving.serialize_keras_object(self.metainfo),
            "input_size": list(self.input_size),
            "mean": self.mean,
            "std": self.std,
            "channel_order": self.channel_order,
            "flip_test": self.flip_test,
            "flip_mode": self.flip_mode,
            "shift_heatmap": self.shift_heatmap,
            "bbox_padding": self.bbox_padding,
        }
        return config

    @classmethod
    def from_config(cls, config):
        import keraspose

        keraspose._import_all()  # the sub-layers' classes registered (keraspose loads its modules lazily)
        config = dict(config)
        for key in ("backbone", "neck", "head", "metainfo"):
            if isinstance(config.get(key), dict):
                # Our layers build on their first call; a nested build_config
                # would make Keras call the generic Layer.build() on them.
                sub = {k: v for k, v in config[key].items() if k != "build_config"}
                config[key] = keras.saving.deserialize_keras_object(sub)
        return cls(**config)
