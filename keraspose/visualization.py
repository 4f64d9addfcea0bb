"""Draw pose results: keypoints and skeleton links in the dataset's colours.

The colours come from the dataset metainfo (``keypoint_colors``,
``skeleton_link_colors``) and are **RGB**, drawn into an RGB image. MMPose's
docstrings call them BGR, but MMPose itself draws them into RGB images
(its inferencer and demos read images with ``channel_order='rgb'`` and only
convert to BGR when writing the file), so RGB is what reproduces MMPose's
pictures: COCO's left limbs green, right limbs orange, face and torso blue.

Sizes scale with the image so that drawings stay readable on a 320 px
thumbnail and on a 4K photo alike.

Example:
>>> import numpy as np
>>> from keraspose.models.topdown_estimator import PoseResult
>>> from keraspose.visualization import visualize
>>> keypoints = np.full((1, 17, 2), 50.0, np.float32)
>>> result = PoseResult(keypoints, np.ones((1, 17), np.float32), np.array([[10.0, 10, 90, 90]]))
>>> canvas = visualize(np.zeros((100, 100, 3), np.uint8), result)
>>> canvas.shape, canvas.dtype, canvas[50, 50].tolist()  # right ankle, drawn last: COCO orange
((100, 100, 3), dtype('uint8'), [255, 128, 0])
"""

import os

import cv2
import numpy as np

from keraspose.metainfo import DatasetMetainfo, load_metainfo
from keraspose.models.topdown_estimator import load_image
from keraspose.utils.atomic import atomic_write

__all__ = ["visualize", "save_visualization", "default_sizes"]

# MMPose's default box colour ('green').
BBOX_COLOR = (0, 255, 0)

# cv2 drawing takes integer coordinates; with ``shift`` bits of fraction the
# drawing is placed with 1/16 px accuracy instead of being rounded to a pixel.
_SHIFT = 4
_ONE = 1 << _SHIFT


def default_sizes(image_shape):
    """``(radius, thickness)`` in pixels for an image of ``image_shape`` (H, W, ...).

    MMPose draws radius 3 / thickness 1 whatever the size; that vanishes on
    large photos, so both grow with the longest side (radius 4, thickness 2
    at 640 px).

    >>> default_sizes((480, 640, 3))
    (4, 2)
    >>> default_sizes((100, 80))
    (2, 1)
    """
    longest = max(int(image_shape[0]), int(image_shape[1]))
    return max(2, int(round(longest * 0.006))), max(1, int(round(longest * 0.003)))


def _as_arrays(result):
    """(keypoints (N, K, 2), scores (N, K), bboxes (N, 4) or None) from a result-like object."""
    if isinstance(result, dict):
        if "instances" in result:  # PoseResult.to_dict() / the CLI's JSON
            instances = result["instances"]
            keypoints = [inst["keypoints"] for inst in instances]
            scores = [inst.get("keypoint_scores", [1.0] * len(inst["keypoints"])) for inst in instances]
            bboxes = [inst["bbox"] for inst in instances if "bbox" in inst]
        else:
            keypoints, scores, bboxes = result["keypoints"], result.get("keypoint_scores"), result.get("bboxes")
    else:
        keypoints = getattr(result, "keypoints", None)
        if keypoints is None:
            raise TypeError(
                f"visualize expects a PoseResult (from TopdownEstimator.predict) or a dict with 'keypoints'; "
                f"got {type(result).__name__}"
            )
        scores, bboxes = getattr(result, "keypoint_scores", None), getattr(result, "bboxes", None)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.size == 0:
        keypoints = keypoints.reshape(0, 0, 2)
    if keypoints.ndim == 2:  # one person
        keypoints = keypoints[None]
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (N, K, 2), got {keypoints.shape}")
    if scores is None:
        scores = np.ones(keypoints.shape[:2])
    scores = np.asarray(scores, dtype=np.float64).reshape(keypoints.shape[:2])
    if bboxes is not None:
        bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    return keypoints, scores, bboxes


def _point(xy):
    return int(round(xy[0] * _ONE)), int(round(xy[1] * _ONE))


def visualize(image, result, metainfo=None, score_threshold=0.3, radius=None, thickness=None, draw_bbox=True):
    """Draw ``result`` on a copy of ``image``; returns an RGB uint8 array.

    Args:
        image: RGB uint8 ``(H, W, 3)`` array or an image file path.
        result: a :class:`~keraspose.models.topdown_estimator.PoseResult`, or
            its ``to_dict()`` / the ``keraspose predict`` JSON.
        metainfo: ``DatasetMetainfo`` or built-in name giving the skeleton and
            colours (pass ``model.metainfo``). Default: COCO when there are
            17 keypoints, otherwise plain keypoints without a skeleton.
        score_threshold: keypoints scoring below it are not drawn, nor are
            the links touching them (MMPose's ``kpt_thr``).
        radius, thickness: keypoint radius and line width in pixels; by
            default scaled to the image (:func:`default_sizes`).
        draw_bbox: also draw each person's box.

    Example:
    >>> model = TopdownEstimator.from_preset("tinypose_coco_256x192")  # doctest: +SKIP
    >>> result = model.predict("person.jpg")  # doctest: +SKIP
    >>> picture = visualize("person.jpg", result, model.metainfo)  # doctest: +SKIP
    """
    canvas = load_image(image).copy()
    keypoints, scores, bboxes = _as_arrays(result)
    num_keypoints = keypoints.shape[1]
    if metainfo is None:
        metainfo = "coco" if num_keypoints == 17 else DatasetMetainfo("keypoints", [str(i) for i in range(max(1, num_keypoints))])
    metainfo = load_metainfo(metainfo)
    if len(keypoints) and num_keypoints != metainfo.num_keypoints:
        raise ValueError(
            f"the result has {num_keypoints} keypoints but metainfo '{metainfo.dataset_name}' describes "
            f"{metainfo.num_keypoints}; pass the model's metainfo (model.metainfo)"
        )
    default_radius, default_thickness = default_sizes(canvas.shape)
    radius = default_radius if radius is None else int(radius)
    thickness = default_thickness if thickness is None else int(thickness)

    if draw_bbox and bboxes is not None:
        for x1, y1, x2, y2 in bboxes:
            cv2.rectangle(canvas, _point((x1, y1)), _point((x2, y2)), BBOX_COLOR, thickness, cv2.LINE_AA, _SHIFT)

    for person_keypoints, person_scores in zip(keypoints, scores):
        # NaN keypoints (a failed decode) count as invisible, whatever their score.
        visible = (person_scores >= score_threshold) & np.isfinite(person_keypoints).all(axis=1)
        # Links first, then keypoints on top, as MMPose draws them.
        for (a, b), color in zip(metainfo.skeleton_links, metainfo.skeleton_link_colors):
            if visible[a] and visible[b]:
                cv2.line(canvas, _point(person_keypoints[a]), _point(person_keypoints[b]),
                         tuple(int(c) for c in color), thickness, cv2.LINE_AA, _SHIFT)
        for k in np.flatnonzero(visible):
            cv2.circle(canvas, _point(person_keypoints[k]), radius * _ONE,
                       tuple(int(c) for c in metainfo.keypoint_colors[k]), -1, cv2.LINE_AA, _SHIFT)
    return canvas


_WRITABLE = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def save_visualization(path, image, result, metainfo=None, jpeg_quality=90, **kwargs):
    """Draw ``result`` on ``image`` (see :func:`visualize`) and write it to ``path``.

    The format follows the extension (``.jpg``, ``.png``, ...). The file is
    written atomically (temporary file, then ``os.replace``), so a crash or
    Ctrl-C never leaves a half-written picture under the real name.

    Returns:
        ``path``.

    Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "pose.png")
    >>> result = {"keypoints": np.full((1, 17, 2), 8.0), "keypoint_scores": np.ones((1, 17))}
    >>> save_visualization(path, np.zeros((16, 16, 3), np.uint8), result) == path
    True
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _WRITABLE:
        raise ValueError(f"{path}: cannot tell the image format from {ext or 'no extension'!r}; "
                         f"use one of {', '.join(sorted(_WRITABLE))}")
    canvas = visualize(image, result, metainfo=metainfo, **kwargs)
    params = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        # JPEG's default 4:2:0 chroma subsampling smears thin saturated lines
        # and small dots (green turns olive); full-resolution colour keeps them crisp.
        if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the picture as {ext}")
    with atomic_write(path, "wb") as f:
        f.write(encoded.tobytes())
    return path
