"""Geometry helpers of top-down pose estimation (numpy).

Conventions (those of MMPose, whose outputs this project must reproduce):

* boxes are ``xyxy`` (x1, y1, x2, y2) or ``xywh`` (x, y, width, height);
* a box as *center/scale* is its centre ``(cx, cy)`` and its size
  ``(w, h)`` in pixels ("scale" is a size, not a ratio), usually enlarged by a
  padding factor such as 1.25 so the crop has context around the person;
* sizes such as ``input_size``/``image_size`` are ``(width, height)``;
* rotation angles are in degrees, counter-clockwise positive.

Every function accepts a single item or a batch along the leading axes.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

__all__ = [
    "bbox_xywh2xyxy",
    "bbox_xyxy2xywh",
    "bbox_xyxy2cs",
    "bbox_cs2xyxy",
    "fix_aspect_ratio",
    "flip_bbox",
    "get_warp_matrix",
    "get_udp_warp_matrix",
    "warp_keypoints",
    "warp_affine",
    "flip_keypoints",
    "flip_heatmaps",
    "flip_coordinates",
]

_DIRECTIONS = ("horizontal", "vertical", "diagonal")


def _check_direction(direction: str) -> None:
    if direction not in _DIRECTIONS:
        raise ValueError(f"invalid flip direction {direction!r}; expected one of {_DIRECTIONS}")


# ----------------------------------------------------------------------- boxes
def bbox_xywh2xyxy(bbox: np.ndarray) -> np.ndarray:
    """``(..., 4)`` boxes from (x, y, w, h) to (x1, y1, x2, y2); returns a copy."""
    out = np.array(bbox, copy=True)
    out[..., 2:4] = out[..., 0:2] + out[..., 2:4]
    return out


def bbox_xyxy2xywh(bbox: np.ndarray) -> np.ndarray:
    """``(..., 4)`` boxes from (x1, y1, x2, y2) to (x, y, w, h); returns a copy."""
    out = np.array(bbox, copy=True)
    out[..., 2:4] = out[..., 2:4] - out[..., 0:2]
    return out


def bbox_xyxy2cs(bbox: np.ndarray, padding: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(..., 4)`` xyxy boxes -> ``center (..., 2)`` and ``scale (..., 2)``
    (box size multiplied by ``padding``)."""
    bbox = np.asarray(bbox)
    center = (bbox[..., 2:4] + bbox[..., 0:2]) * 0.5
    scale = (bbox[..., 2:4] - bbox[..., 0:2]) * padding
    return center, scale


def bbox_cs2xyxy(center: np.ndarray, scale: np.ndarray, padding: float = 1.0) -> np.ndarray:
    """Inverse of :func:`bbox_xyxy2cs`: removes ``padding`` from the size."""
    center = np.asarray(center)
    wh = np.asarray(scale) / padding
    top_left = center - 0.5 * wh
    return np.concatenate([top_left, top_left + wh], axis=-1)


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Enlarge ``(..., 2)`` box sizes (w, h) to the given w/h ratio.

    Only ever grows a box (the short side is extended), so the person is
    never cropped; the crop is then resized without distortion.
    """
    scale = np.asarray(scale)
    w, h = scale[..., 0:1], scale[..., 1:2]
    wider = w > h * aspect_ratio
    return np.where(
        wider,
        np.concatenate([w, w / aspect_ratio], axis=-1),
        np.concatenate([h * aspect_ratio, h], axis=-1),
    )


def flip_bbox(
    bbox: np.ndarray,
    image_size: Sequence[int],
    bbox_format: str = "xywh",
    direction: str = "horizontal",
) -> np.ndarray:
    """Mirror boxes in an image of ``image_size`` (w, h).

    ``bbox_format`` is ``'xyxy'``, ``'xywh'`` or ``'center'`` (a point, e.g.
    a box centre). Pixel ``x`` maps to ``w - 1 - x`` (pixel-index mirroring).
    For xyxy the corners are swapped so that x1 <= x2 still holds.
    """
    _check_direction(direction)
    if bbox_format not in ("xyxy", "xywh", "center"):
        raise ValueError(f"invalid bbox_format {bbox_format!r}")
    bbox = np.asarray(bbox)
    out = bbox.copy()
    w, h = image_size
    flip_x = direction in ("horizontal", "diagonal")
    flip_y = direction in ("vertical", "diagonal")
    if bbox_format == "xyxy":
        if flip_x:
            out[..., 0] = w - 1 - bbox[..., 2]
            out[..., 2] = w - 1 - bbox[..., 0]
        if flip_y:
            out[..., 1] = h - 1 - bbox[..., 3]
            out[..., 3] = h - 1 - bbox[..., 1]
    else:
        # xywh keeps the (x, y) corner convention of MMPose: only the
        # reference point is mirrored.
        if flip_x:
            out[..., 0] = w - 1 - bbox[..., 0]
        if flip_y:
            out[..., 1] = h - 1 - bbox[..., 1]
    return out


# ---------------------------------------------------------------- warp matrix
def _rotate(vec: np.ndarray, angle_rad: float) -> np.ndarray:
    sn, cs = np.sin(angle_rad), np.cos(angle_rad)
    return np.array([cs * vec[0] - sn * vec[1], sn * vec[0] + cs * vec[1]])


def _perpendicular_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Third point ``b + rot90(a - b)``: with a and b it fixes an affine map."""
    d = a - b
    return b + np.array([-d[1], d[0]])


def get_warp_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    rot: float,
    output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
    fix_aspect_ratio: bool = True,
) -> np.ndarray:
    """2x3 affine matrix mapping the box (center, scale, rot) onto the
    ``output_size`` (w, h) crop.

    The map sends the box centre (moved by ``shift * scale``) to the crop
    centre and the box width ``scale[0]`` onto the crop width, rotating by
    ``rot`` degrees. With ``fix_aspect_ratio`` the vertical axis uses the same
    zoom (a similarity transform; ``scale`` should already have the crop's
    aspect ratio); otherwise the box height maps onto the crop height.
    ``inv=True`` returns the crop -> image map.

    The matrix is solved from three point correspondences in float32 by
    OpenCV, exactly like MMPose, so warped crops agree to the last grey level.
    """
    if len(center) != 2 or len(scale) != 2 or len(output_size) != 2 or len(shift) != 2:
        raise ValueError("center, scale, output_size and shift must all have 2 elements")
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    src_w, src_h = scale
    dst_w, dst_h = output_size
    rot_rad = np.deg2rad(rot)

    src_center = center + scale * shift
    dst_center = np.array([dst_w * 0.5, dst_h * 0.5])
    # Second point: half a box width to the left of the centre (rotated).
    src = [src_center, src_center + _rotate(np.array([src_w * -0.5, 0.0]), rot_rad)]
    dst = [dst_center, dst_center + np.array([dst_w * -0.5, 0.0])]
    if fix_aspect_ratio:
        src.append(_perpendicular_point(np.float32(src[0]), np.float32(src[1])))
        dst.append(_perpendicular_point(np.float32(dst[0]), np.float32(dst[1])))
    else:
        src.append(src_center + _rotate(np.array([0.0, src_h * -0.5]), rot_rad))
        dst.append(dst_center + np.array([0.0, dst_h * -0.5]))
    src = np.array(src, dtype=np.float32)
    dst = np.array(dst, dtype=np.float32)
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def get_udp_warp_matrix(
    center: Sequence[float], scale: Sequence[float], rot: float, output_size: Sequence[int]
) -> np.ndarray:
    """UDP's 2x3 affine matrix (float32) from image to crop.

    UDP measures sizes between pixel *centres*: the box width maps onto
    ``output_size[0] - 1`` pixel steps, so the first/last crop pixel centres
    land exactly on the box edges and flipping/resizing add no half-pixel bias.
    """
    if len(center) != 2 or len(scale) != 2 or len(output_size) != 2:
        raise ValueError("center, scale and output_size must all have 2 elements")
    cx, cy = float(center[0]), float(center[1])
    sw, sh = float(scale[0]), float(scale[1])
    rot_rad = math.radians(rot)
    cs, sn = math.cos(rot_rad), math.sin(rot_rad)
    zx = (output_size[0] - 1) / sw
    zy = (output_size[1] - 1) / sh
    mat = np.zeros((2, 3), dtype=np.float32)
    # Rotate about the box centre, zoom, then put the centre at (sw/2, sh/2)
    # in zoomed units, i.e. at the middle of the crop.
    mat[0, 0] = cs * zx
    mat[0, 1] = -sn * zx
    mat[0, 2] = zx * (-cx * cs + cy * sn + 0.5 * sw)
    mat[1, 0] = sn * zy
    mat[1, 1] = cs * zy
    mat[1, 2] = zy * (-cx * sn - cy * cs + 0.5 * sh)
    return mat


def warp_keypoints(keypoints: np.ndarray, warp_mat: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to ``(..., 2)`` points (dtype preserved for floats)."""
    keypoints = np.asarray(keypoints)
    mat = np.asarray(warp_mat, dtype=np.float64)
    out = keypoints[..., :2].astype(np.float64) @ mat[:, :2].T + mat[:, 2]
    dtype = keypoints.dtype if np.issubdtype(keypoints.dtype, np.floating) else np.float64
    return out.astype(dtype)


# Fixed-point constants of OpenCV 4's bilinear warp: source coordinates are
# quantised to 1/32 pixel (INTER_BITS = 5), the per-column and per-row parts
# of the affine map are rounded separately to 1/1024 pixel (AB_BITS = 10) and
# the four bilinear weights are integers summing to 2**15.
_INTER_BITS = 5
_AB_BITS = 10
_COEF_BITS = 15


def warp_affine(img: np.ndarray, warp_mat: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear affine warp of a uint8 image, bit-compatible with OpenCV 4.x.

    Equivalent to ``cv2.warpAffine(img, warp_mat, size, flags=INTER_LINEAR)``
    with a black constant border, as computed by OpenCV 4 (which produced the
    reference crops). OpenCV 5 changed its warp kernels and differs by up to
    5 grey levels; reproducing the fixed-point arithmetic here keeps crops
    identical whatever OpenCV is installed. ``img`` is HxW or HxWxC uint8.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"warp_affine expects a uint8 image, got {img.dtype}")
    out_w, out_h = int(size[0]), int(size[1])
    m = np.asarray(warp_mat, dtype=np.float64).reshape(2, 3)
    # Invert the image->crop matrix: every crop pixel looks up its source.
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    det = 1.0 / det if det != 0 else 0.0
    i00, i01 = m[1, 1] * det, -m[0, 1] * det
    i10, i11 = -m[1, 0] * det, m[0, 0] * det
    i02 = -i00 * m[0, 2] - i01 * m[1, 2]
    i12 = -i10 * m[0, 2] - i11 * m[1, 2]

    ab_scale = 1 << _AB_BITS
    round_delta = ab_scale >> (_INTER_BITS + 1)  # half a 1/32 step
    cols = np.arange(out_w)
    rows = np.arange(out_h)
    col_x = np.rint(i00 * cols * ab_scale).astype(np.int64)
    col_y = np.rint(i10 * cols * ab_scale).astype(np.int64)
    row_x = np.rint((i01 * rows + i02) * ab_scale).astype(np.int64) + round_delta
    row_y = np.rint((i11 * rows + i12) * ab_scale).astype(np.int64) + round_delta
    sx = (row_x[:, None] + col_x[None, :]) >> (_AB_BITS - _INTER_BITS)
    sy = (row_y[:, None] + col_y[None, :]) >> (_AB_BITS - _INTER_BITS)
    tab = 1 << _INTER_BITS
    x0, fx = sx >> _INTER_BITS, sx & (tab - 1)
    y0, fy = sy >> _INTER_BITS, sy & (tab - 1)

    src = img if img.ndim == 3 else img[..., None]
    h, w = src.shape[:2]
    # One pixel of black border so that neighbours just outside read 0.
    padded = np.zeros((h + 2, w + 2, src.shape[2]), dtype=np.int32)
    padded[1:-1, 1:-1] = src

    def tap(yy, xx):
        inside = (yy >= -1) & (yy <= h) & (xx >= -1) & (xx <= w)
        vals = padded[np.clip(yy + 1, 0, h + 1), np.clip(xx + 1, 0, w + 1)]
        return np.where(inside[..., None], vals, 0)

    unit = 1 << (_COEF_BITS - 2 * _INTER_BITS)  # weights sum to 2**15
    wx1, wx0 = fx, tab - fx
    wy1, wy0 = fy, tab - fy
    acc = (
        tap(y0, x0) * (wy0 * wx0 * unit)[..., None]
        + tap(y0, x0 + 1) * (wy0 * wx1 * unit)[..., None]
        + tap(y0 + 1, x0) * (wy1 * wx0 * unit)[..., None]
        + tap(y0 + 1, x0 + 1) * (wy1 * wx1 * unit)[..., None]
    )
    out = np.clip((acc + (1 << (_COEF_BITS - 1))) >> _COEF_BITS, 0, 255).astype(np.uint8)
    return out if img.ndim == 3 else out[..., 0]


# ---------------------------------------------------------------------- flips
def flip_keypoints(
    keypoints: np.ndarray,
    keypoints_visible: np.ndarray | None,
    image_size: Sequence[int],
    flip_indices: Sequence[int],
    direction: str = "horizontal",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror ``(..., K, D)`` keypoints in an image of ``image_size`` (w, h).

    Left/right keypoints swap identity (``flip_indices``) for horizontal and
    vertical flips, so that "left wrist" still names the left wrist of the
    mirrored person; the visibilities ``(..., K)`` are permuted alongside. A
    diagonal flip (180-degree rotation) keeps identities.
    """
    _check_direction(direction)
    keypoints = np.asarray(keypoints)
    axis = keypoints.ndim - 2
    if keypoints_visible is not None:
        keypoints_visible = np.asarray(keypoints_visible)
        if keypoints_visible.shape[: axis + 1] != keypoints.shape[:-1]:
            raise ValueError(
                f"keypoints {keypoints.shape} and keypoints_visible {keypoints_visible.shape} mismatch"
            )
    if direction in ("horizontal", "vertical"):
        keypoints = keypoints.take(flip_indices, axis=axis)
        if keypoints_visible is not None:
            keypoints_visible = keypoints_visible.take(flip_indices, axis=axis)
    else:
        keypoints = keypoints.copy()
    w, h = image_size
    if direction in ("horizontal", "diagonal"):
        keypoints[..., 0] = w - 1 - keypoints[..., 0]
    if direction in ("vertical", "diagonal"):
        keypoints[..., 1] = h - 1 - keypoints[..., 1]
    return keypoints, keypoints_visible


def flip_heatmaps(
    heatmaps: np.ndarray,
    flip_indices: Sequence[int] | None = None,
    flip_mode: str = "heatmap",
    shift_heatmap: bool = True,
) -> np.ndarray:
    """Turn the heatmaps predicted on a horizontally flipped crop back into
    heatmaps of the original crop (test-time flip augmentation).

    Args:
        heatmaps: ``(B, C, H, W)`` (channels-first, like MMPose).
        flip_indices: channel permutation that swaps left and right.
        flip_mode: ``'heatmap'`` (one channel per keypoint), ``'udp_combined'``
            (3 channels per keypoint: disc, x offset, y offset; the x offset
            changes sign) or ``'offset'`` (2 channels per keypoint: x offset,
            y offset; the x offset changes sign).
        shift_heatmap: shift the result one pixel to the right. With MSRA's
            pixel convention, mirroring maps pixel ``x`` to ``W - 1 - x``
            while the image flip maps ``x`` to ``W - x`` at heatmap stride,
            so the un-flipped map is one pixel off; the shift compensates
            (keeping column 0 as it was). Not wanted with UDP.

    Returns a new array.
    """
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (B, C, H, W), got shape {hm.shape}")
    b, c, h, w = hm.shape
    groups = {"heatmap": 1, "udp_combined": 3, "offset": 2}
    if flip_mode not in groups:
        raise ValueError(f"invalid flip_mode {flip_mode!r}; expected one of {sorted(groups)}")
    g = groups[flip_mode]
    out = hm.reshape(b, c // g, g, h, w)[..., ::-1]
    if flip_indices is not None:
        if len(flip_indices) != c // g:
            raise ValueError(f"flip_indices has {len(flip_indices)} entries for {c // g} keypoints")
        out = out[:, list(flip_indices)]
    out = np.array(out)  # contiguous copy
    if flip_mode == "udp_combined":
        out[:, :, 1] = -out[:, :, 1]
    elif flip_mode == "offset":
        out[:, :, 0] = -out[:, :, 0]
    out = out.reshape(b, c, h, w)
    if shift_heatmap:
        out[..., 1:] = out[..., :-1].copy()
    return out


def flip_coordinates(
    coords: np.ndarray,
    flip_indices: Sequence[int],
    shift_coords: bool,
    input_size: Sequence[int],
) -> np.ndarray:
    """Un-flip normalised ``(B, K, 2)`` coordinates predicted on a flipped
    crop (regression heads): ``x -> 1 - x``, optionally shifted left by one
    input pixel (``1 / input_size[0]``) for the same reason as
    :func:`flip_heatmaps`, then left/right keypoints swapped. Returns a copy.
    """
    coords = np.array(coords, copy=True)
    if coords.ndim != 3:
        raise ValueError(f"coords must be (B, K, D), got shape {coords.shape}")
    if len(flip_indices) != coords.shape[1]:
        raise ValueError(f"flip_indices has {len(flip_indices)} entries for {coords.shape[1]} keypoints")
    coords[:, :, 0] = 1.0 - coords[:, :, 0]
    if shift_coords:
        coords[:, :, 0] -= 1.0 / input_size[0]
    return coords[:, list(flip_indices)]


def crop_people(image, bboxes, input_size, bbox_padding=1.25, use_udp=False):
    """Affine-warped RGB crops, centers and scales of ``bboxes`` (xyxy) in one image.

    The top-down crop (MMPose's GetBBoxCenterScale + TopdownAffine): each box
    is enlarged by ``bbox_padding``, fixed to the ``input_size`` (width,
    height) aspect ratio and warped (UDP's warp when ``use_udp``). Used by
    ``TopdownEstimator.crop_people`` and ``keraspose.runtime``.
    """
    w, h = input_size
    crops = np.empty((len(bboxes), h, w, 3), np.uint8)
    centers = np.empty((len(bboxes), 2), np.float32)
    scales = np.empty((len(bboxes), 2), np.float32)
    warp_matrix = get_udp_warp_matrix if use_udp else get_warp_matrix
    for i, box in enumerate(bboxes):
        center, scale = bbox_xyxy2cs(np.asarray(box, np.float32)[None], padding=bbox_padding)
        scale = fix_aspect_ratio(scale, aspect_ratio=w / h)
        centers[i], scales[i] = center[0], scale[0]
        warp = warp_matrix(centers[i], scales[i], 0.0, output_size=(w, h))
        crops[i] = cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_LINEAR)
    return crops, centers, scales


def crop_to_image(keypoints, centers, scales, input_size):
    """Map keypoints from crop pixels back to image pixels.

    The inverse of the crop warp (:meth:`TopdownEstimator.crop_people`):
    ``image_xy = keypoint_xy / input_size * scale + center - 0.5 * scale``,
    per crop. Use it on the ``keypoints`` of an exported model
    (:meth:`TopdownEstimator.export`), which are in crop pixels.

    Args:
        keypoints: ``(N, K, 2)`` x, y in crop (network input) pixels.
        centers, scales: ``(N, 2)`` each crop's box center and size in image
            pixels (what ``crop_people`` returns).
        input_size: the network input ``(width, height)``.

    Example:
    >>> import numpy as np
    >>> crop_to_image(np.array([[[48.0, 64.0]]]), np.array([[100.0, 200.0]]), np.array([[60.0, 80.0]]),
    ...               (96, 128)).tolist()
    [[[100.0, 200.0]]]
    """
    input_size = np.asarray(input_size, np.float32)
    return keypoints / input_size * scales[:, None] + centers[:, None] - 0.5 * scales[:, None]
