"""PoseInferencer: find the people in a photo, then estimate each one's pose.

A top-down pose model needs a box per person. ``PoseInferencer`` gets them
from a person detector (``RTMDetector``) and filters the detections the way
MMPose 1.3.2's ``Pose2DInferencer`` and ``demo/topdown_demo_with_mmdet.py``
do:

1. keep the detections of the person class(es) scoring **strictly above**
   ``bbox_threshold`` (0.3);
2. greedy NMS at IoU ``nms_threshold`` (0.3) with MMPose's own ``nms``:
   pixel-inclusive areas (``x2 - x1 + 1``, the ``offset=1`` of
   :func:`keraspose.ops.nms`), a box dropped when its IoU with a kept box is
   ``> nms_threshold``, candidates visited in the order
   ``np.argsort(scores)[::-1]`` (so equal scores break ties as MMPose's do).

Then every crop of every image goes through the pose model in one batched
call. Two deliberate differences from MMPose: an image where nobody is found
gives an empty result (MMPose falls back to the whole image as one person,
which draws a skeleton on an empty street), and a detection lying entirely
outside the image (possible in the padding of a non-square photo) is
dropped, as it holds no pixel of the photo.

Example:
>>> import keraspose
>>> pipeline = keraspose.PoseInferencer.from_preset()  # bundled: RTMDet-nano + PP-TinyPose, offline
>>> result = pipeline.predict("examples/images/000000442450.jpg")  # doctest: +SKIP
>>> len(result), result.keypoints.shape[1:], result.bbox_scores.shape  # doctest: +SKIP
(2, (17, 2), (2,))
>>> empty = pipeline.predict(np.zeros((240, 320, 3), "uint8"))
>>> len(empty), empty.bboxes.shape
(0, (0, 4))
"""

import contextlib
import json
import os
import sys
import tempfile

import cv2
import numpy as np

from keraspose.ops import nms
from keraspose.utils.atomic import atomic_write
from keraspose.utils.images import image_and_box_lists, is_single_image, load_image

# Keras is imported only for Keras models: the pipeline also runs exported
# models (keraspose.runtime) on a machine without Keras.

__all__ = ["PoseInferencer", "check_catalogue_task", "filter_person_detections", "VIDEO_EXTENSIONS"]

#: File extensions ``keraspose predict`` treats as videos.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")

DEFAULT_POSE_PRESET = "tinypose_coco_256x192"
DEFAULT_DETECTOR_PRESET = "rtmdet_nano_person"


def filter_person_detections(boxes, scores, labels, person_labels=(0,), bbox_threshold=0.3, nms_threshold=0.3):
    """MMPose's demo filtering of one image's detections; returns the kept indices.

    Detections whose label is in ``person_labels`` and whose score is
    ``> bbox_threshold``, then MMPose's NMS (pixel-inclusive IoU
    ``> nms_threshold`` suppressed, visiting ``np.argsort(scores)[::-1]``).
    The indices are into the given arrays, in the order MMPose keeps them
    (best score first). ``nms_threshold=None`` skips the NMS.

    Example:
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 5, 5]], "float32")
    >>> scores = np.array([0.9, 0.8, 0.7, 0.3], "float32")
    >>> filter_person_detections(boxes, scores, np.zeros(4, "int64")).tolist()  # the 0.3 one is not > 0.3
    [0, 2]
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels: expected one of each")
    # Compared in float32, as MMPose compares its float32 scores with a Python
    # float: a score of float32(0.3) is not above a threshold of 0.3.
    above = scores > np.float32(bbox_threshold)
    candidates = np.flatnonzero(np.isin(labels, np.asarray(person_labels)) & above)
    if nms_threshold is None or not len(candidates):
        return candidates
    # MMPose visits boxes in np.argsort(scores)[::-1] order; presenting them
    # in that order to our (stable) nms reproduces it, ties included.
    order = candidates[np.argsort(scores[candidates])[::-1]]
    return order[nms(boxes[order], scores[order], float(nms_threshold), offset=1.0)]


def check_catalogue_task(model_class, handle):
    """``PresetTaskError`` now if ``handle`` names a catalogue preset of another task (no loading)."""
    from keraspose.presets import catalogue_task, check_preset_task, get_catalogue_entry
    from keraspose.presets.hub import parse_handle

    if not isinstance(handle, str) or parse_handle(handle).kind != "catalogue":
        return
    entry = get_catalogue_entry(handle)
    check_preset_task(model_class, handle, catalogue_task(entry), entry.get("class"))


def _inside_image(boxes, image_shape):
    """Boxes overlapping the image: a detection in the padding holds no pixel of the photo."""
    h, w = image_shape[:2]
    return (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < w) & (boxes[:, 1] < h)


def _as_estimator(estimator):
    """A TopdownEstimator or an exported pose model, from itself, a preset handle or an export directory."""
    from keraspose.runtime import ExportedPoseEstimator, is_export_directory

    if isinstance(estimator, ExportedPoseEstimator):
        return estimator
    if is_export_directory(estimator):
        return ExportedPoseEstimator(estimator)
    from keraspose.models.topdown_estimator import TopdownEstimator

    if isinstance(estimator, (str, os.PathLike)):
        estimator = TopdownEstimator.from_preset(estimator)
    if not isinstance(estimator, TopdownEstimator):
        raise TypeError(
            f"estimator: expected a keraspose.TopdownEstimator or keraspose.runtime.ExportedPoseEstimator, "
            f"got {type(estimator).__name__}"
        )
    return estimator


def _as_detector(detector):
    """An RTMDetector or an exported detector, from itself, a preset handle or an export directory."""
    from keraspose.runtime import ExportedDetector, is_export_directory

    if isinstance(detector, ExportedDetector):
        return detector
    if is_export_directory(detector):
        return ExportedDetector(detector)
    from keraspose.models.rtmdet import RTMDetector

    if isinstance(detector, (str, os.PathLike)):
        detector = RTMDetector.from_preset(detector)
    if not isinstance(detector, RTMDetector):
        raise TypeError(
            f"detector: expected a keraspose.RTMDetector or keraspose.runtime.ExportedDetector, "
            f"got {type(detector).__name__}"
        )
    return detector


class PoseInferencer:
    """Detect people, then estimate their poses: a person detector + a top-down pose model.

    Args:
        estimator: a :class:`~keraspose.TopdownEstimator`, a pose preset
            handle, or an exported pose model (an export directory or a
            :class:`keraspose.runtime.ExportedPoseEstimator`).
        detector: a :class:`~keraspose.RTMDetector`, a detector preset
            handle, or an exported detector (an export directory or a
            :class:`keraspose.runtime.ExportedDetector`). With both exported,
            no Keras is imported (:func:`keraspose.runtime.ExportedPoseInferencer`).
        bbox_threshold: keep detections scoring strictly above it (MMPose's ``bbox_thr``).
        nms_threshold: IoU of MMPose's box NMS (``nms_thr``); ``None`` turns it off.
        person_labels: detector class indices that are people; default: the
            classes the detector names ``"person"``.
        detector_batch_size: images per detector call.

    Example:
    >>> pipeline = PoseInferencer.from_preset(bbox_threshold=0.5)
    >>> results = pipeline.predict(["examples/images/000000129648.jpg"])  # doctest: +SKIP
    >>> results[0].bboxes.shape[1], results[0].keypoints.shape[1:]  # doctest: +SKIP
    (4, (17, 2))
    """

    def __init__(self, estimator, detector, bbox_threshold=0.3, nms_threshold=0.3, person_labels=None,
                 detector_batch_size=8):
        self.estimator = _as_estimator(estimator)
        self.detector = detector = _as_detector(detector)
        self.bbox_threshold = float(bbox_threshold)
        self.nms_threshold = None if nms_threshold is None else float(nms_threshold)
        if person_labels is None:
            person_labels = [i for i, name in enumerate(detector.class_names) if name == "person"]
            if not person_labels:
                raise ValueError(
                    f"the detector has no 'person' class (classes: {list(detector.class_names)[:10]}...); "
                    "pass person_labels=[index, ...] to say which classes are people"
                )
        self.person_labels = tuple(int(i) for i in np.atleast_1d(person_labels))
        if int(detector_batch_size) < 1:
            raise ValueError(f"detector_batch_size must be >= 1, got {detector_batch_size}")
        self.detector_batch_size = int(detector_batch_size)

    @classmethod
    def from_preset(cls, pose=DEFAULT_POSE_PRESET, detector=DEFAULT_DETECTOR_PRESET, **kwargs):
        """A pipeline from two presets (catalogue names, directories or ``hf://`` handles).

        The defaults are the bundled PP-TinyPose 256x192 and RTMDet-nano person
        detector, which load offline. A detector preset given as ``pose`` (or
        the reverse) is refused with a :class:`~keraspose.presets.PresetTaskError`.
        ``kwargs`` go to the constructor (``bbox_threshold``, ``nms_threshold``, ...).

        Example:
        >>> pipeline = PoseInferencer.from_preset("tinypose_coco_256x192", "rtmdet_nano_person")
        >>> pipeline.bbox_threshold, pipeline.nms_threshold
        (0.3, 0.3)
        """
        from keraspose.models.rtmdet import RTMDetector
        from keraspose.models.topdown_estimator import TopdownEstimator

        # A catalogue name of the wrong task fails before either model is loaded.
        for model_class, handle in ((TopdownEstimator, pose), (RTMDetector, detector)):
            check_catalogue_task(model_class, handle)
        return cls(_as_estimator(pose), _as_detector(detector), **kwargs)

    @property
    def metainfo(self):
        return self.estimator.metainfo

    # -- detection --------------------------------------------------------
    def detect(self, images):
        """Person boxes per image: a list of ``(boxes (N, 4) xyxy, scores (N,))``, filtered as MMPose's demo.

        ``images`` are RGB uint8 arrays or paths (a list).
        """
        found = []
        for start in range(0, len(images), self.detector_batch_size):
            batch = images[start : start + self.detector_batch_size]
            for image, det in zip(batch, self.detector.predict(list(batch), batch_size=len(batch))):
                keep = filter_person_detections(
                    det.boxes, det.scores, det.labels, self.person_labels, self.bbox_threshold, self.nms_threshold
                )
                boxes, scores = det.boxes[keep], det.scores[keep]
                inside = _inside_image(boxes, image.shape)
                found.append((boxes[inside].reshape(-1, 4), scores[inside]))
        return found

    # -- inference --------------------------------------------------------
    def predict(self, images, bboxes=None, batch_size=32, flip_test=None):
        """Images -> people with keypoints.

        Args:
            images: a path or RGB uint8 ``(H, W, 3)`` array, or a list of them.
            bboxes: optional person boxes instead of detections: per image an
                ``(N, 4)`` xyxy array (``[]`` for nobody) or ``None`` to detect
                in that image. Images with given boxes skip the detector.
            batch_size: people per pose-network call (all crops of all images
                are batched together).
            flip_test: override the pose model's test-time flip.

        Returns:
            one :class:`~keraspose.PoseResult` per image (a single one for a
            single image), with ``bbox_scores`` (detection scores; 1 for
            given boxes). No person found: an empty result.
        """
        single = is_single_image(images)
        image_list, box_list = image_and_box_lists(images, bboxes, single, none_means="None to detect")
        rgb = [load_image(image, "image" if single else f"images[{i}]") for i, image in enumerate(image_list)]
        to_detect = [i for i, boxes in enumerate(box_list) if boxes is None]
        detected = dict(zip(to_detect, self.detect([rgb[i] for i in to_detect])))
        person_boxes, person_scores = [], []
        for i, boxes in enumerate(box_list):
            found_boxes, found_scores = detected[i] if boxes is None else (boxes, None)
            person_boxes.append(found_boxes)  # given boxes are checked by the estimator
            person_scores.append(found_scores)
        results = self.estimator.predict(rgb, bboxes=person_boxes, batch_size=batch_size, flip_test=flip_test)
        for result, image, scores in zip(results, image_list, person_scores):
            result.bbox_scores = np.ones(len(result), np.float32) if scores is None else scores.astype(np.float32)
            result.image_path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        return results[0] if single else results

    def __call__(self, images, **kwargs):
        return self.predict(images, **kwargs)

    # -- video ------------------------------------------------------------
    def predict_video(self, path, out_video, out_jsonl=None, batch_size=8, pose_batch_size=32, flip_test=None,
                      score_threshold=0.3, progress=True):
        """Every frame of a video through the pipeline: an annotated mp4 and one JSON line per frame.

        OpenCV reads ``path`` (any format its FFmpeg reads); frames go through
        :meth:`predict` ``batch_size`` at a time. ``out_video`` gets the
        frames with skeletons drawn (mp4, the input's frame rate and size);
        ``out_jsonl`` (optional) gets per frame ``{"frame", "time",
        "instances": [{"bbox", "bbox_score", "keypoints", "keypoint_scores"}]}``.
        Both are written under temporary names and renamed at the end, so an
        error or Ctrl-C leaves no half-written file.

        Returns:
            ``{"frames", "fps", "width", "height", "people", "video", "jsonl"}``.

        Example:
        >>> pipeline = PoseInferencer.from_preset()  # doctest: +SKIP
        >>> pipeline.predict_video("clip.mp4", "clip_pose.mp4", "clip_pose.jsonl")["frames"]  # doctest: +SKIP
        120
        """
        from keraspose.visualization import visualize

        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video file not found: {path}")
        capture = cv2.VideoCapture(path)
        try:
            if not capture.isOpened():
                raise ValueError(
                    f"cannot open {path} as a video (corrupt, truncated, or a format OpenCV's FFmpeg cannot read); "
                    "pass an .mp4/.avi/.mov/.mkv file that a video player opens"
                )
            fps = capture.get(cv2.CAP_PROP_FPS)
            fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 25.0
            expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            ok, first = capture.read()
            if not ok or first is None:
                raise ValueError(f"{path}: no frame could be decoded (corrupt or empty video)")
            height, width = first.shape[:2]
            bar = _progress_bar(expected if expected > 0 else None, progress)
            with contextlib.ExitStack() as stack:
                video_tmp = stack.enter_context(_temporary_output(out_video))
                jsonl = stack.enter_context(atomic_write(out_jsonl, "w")) if out_jsonl is not None else None
                writer = cv2.VideoWriter(video_tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write an mp4 video to {out_video}")
                try:
                    frames, people = 0, 0
                    chunks = _chunks(_read_frames(capture, first, path), int(batch_size))
                    for chunk in chunks:
                        rgb_frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in chunk]
                        results = self.predict(rgb_frames, batch_size=pose_batch_size, flip_test=flip_test)
                        for rgb, result in zip(rgb_frames, results):
                            canvas = visualize(rgb, result, metainfo=self.metainfo, score_threshold=score_threshold)
                            writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
                            if jsonl is not None:
                                record = {"frame": frames, "time": round(frames / fps, 6), **_instances(result)}
                                jsonl.write(json.dumps(record) + "\n")
                            frames += 1
                            people += len(result)
                        if bar is not None:
                            bar.update(frames)
                finally:
                    writer.release()
        finally:
            capture.release()
        if bar is not None and expected <= 0:
            bar.update(frames, finalize=True)
        return {"frames": frames, "fps": fps, "width": width, "height": height, "people": people,
                "video": os.fspath(out_video), "jsonl": None if out_jsonl is None else os.fspath(out_jsonl)}


def _read_frames(capture, first, path):
    """The BGR frames of an opened capture, ``first`` (already read) included."""
    height, width = first.shape[:2]
    yield first
    index = 1
    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            return
        if frame.shape[:2] != (height, width):
            raise ValueError(
                f"{path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, the first was {width}x{height}"
            )
        yield frame
        index += 1


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _instances(result):
    scores = result.bbox_scores if result.bbox_scores is not None else np.ones(len(result), np.float32)
    return {
        "instances": [
            {
                "bbox": [round(float(v), 3) for v in result.bboxes[i]],
                "bbox_score": round(float(scores[i]), 5),
                "keypoints": np.round(result.keypoints[i].astype(float), 3).tolist(),
                "keypoint_scores": np.round(result.keypoint_scores[i].astype(float), 5).tolist(),
            }
            for i in range(len(result))
        ]
    }


@contextlib.contextmanager
def _temporary_output(path):
    """A temporary path next to ``path`` with the same extension (OpenCV picks the container from it),
    renamed to ``path`` when the block succeeds and removed when it fails."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output folder {directory} does not exist (writing {path})")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        yield tmp
        if not os.path.getsize(tmp):
            raise OSError(f"OpenCV wrote nothing to {path}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _progress_bar(total, enabled):
    if not enabled:
        return None
    import keras

    # A live bar on a terminal; one line at the end when the output is a file or a pipe.
    return keras.utils.Progbar(total, unit_name="frame", verbose=1 if sys.stdout.isatty() else 2)
