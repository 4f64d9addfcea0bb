"""Numpy building blocks shared by the heatmap codecs.

All decoding helpers work on a *batch* of heatmaps shaped ``(B, K, H, W)`` so
that an estimator can decode every crop of a forward pass with one set of
vectorised numpy calls instead of a Python loop over people and keypoints.
The single-sample ``decode()`` of each codec is just the ``B == 1`` case, so
both paths give identical numbers by construction.

The arithmetic deliberately stays in float32 where MMPose's does, because the
reference values this project is checked against were produced that way.
"""

from __future__ import annotations

import cv2
import numpy as np

# Interleaved channels per cv2 call: OpenCV 4 accepts up to 512 (CV_CN_MAX),
# OpenCV 5 only 128, so use the smaller limit.
_CV_MAX_CHANNELS = 128


def heatmap_argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer location and value of each channel's maximum.

    Args:
        heatmaps: ``(..., H, W)``.

    Returns:
        ``locs`` ``(..., 2)`` float32 as (x, y) and ``vals`` ``(...)``. A
        channel whose maximum is not positive carries no detection: its
        location is set to ``-1`` (MMPose's convention, which later steps rely
        on to skip refinement).
    """
    *lead, h, w = heatmaps.shape
    flat = heatmaps.reshape(*lead, h * w)
    idx = np.argmax(flat, axis=-1)
    vals = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    locs = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    locs[vals <= 0.0] = -1
    return locs, vals


def blur_channels(
    maps: np.ndarray, ksize: int, zero_pad: int = 0, keep_max: bool = False
) -> np.ndarray:
    """Gaussian-blur every ``(H, W)`` map of ``maps`` (shape ``(..., H, W)``).

    Args:
        ksize: odd kernel size; sigma is derived by OpenCV from it.
        zero_pad: pad each map with this many zeros before blurring (and crop
            afterwards), so that the blur sees black outside the map instead
            of OpenCV's reflected border.
        keep_max: rescale each blurred map so that its maximum equals the
            original maximum (DARK's "modulation" keeps the peak height).

    Many maps are processed per OpenCV call; results are identical to
    blurring the maps one by one.
    """
    *lead, h, w = maps.shape
    planes = np.ascontiguousarray(maps.reshape(-1, h, w), dtype=np.float32)
    p = zero_pad
    if p:
        # Zero-padded maps stacked vertically form one tall single-channel
        # image; the kernel radius equals the padding, so no pixel sees into
        # a neighbouring map and one fast cv2 call blurs them all exactly as
        # separate calls would.
        tall = np.pad(planes, ((0, 0), (p, p), (p, p))).reshape(-1, w + 2 * p)
        blurred = cv2.GaussianBlur(tall, (ksize, ksize), 0)
        out = blurred.reshape(-1, h + 2 * p, w + 2 * p)[:, p:-p, p:-p].copy()
    else:
        # OpenCV's reflected border must apply per map: interleave maps as
        # the channels of one image instead.
        out = np.empty_like(planes)
        for start in range(0, planes.shape[0], _CV_MAX_CHANNELS):
            chunk = np.ascontiguousarray(planes[start : start + _CV_MAX_CHANNELS].transpose(1, 2, 0))
            blurred = cv2.GaussianBlur(chunk, (ksize, ksize), 0)
            if blurred.ndim == 2:  # cv2 drops a single channel axis
                blurred = blurred[..., None]
            out[start : start + _CV_MAX_CHANNELS] = blurred.transpose(2, 0, 1)
    if keep_max:
        old_max = planes.max(axis=(1, 2), keepdims=True)
        new_max = out.max(axis=(1, 2), keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out *= old_max / new_max
    return out.reshape(*lead, h, w)


def refine_quarter_offset(locs: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Move each integer maximum a quarter pixel towards its higher neighbour.

    The classic SimpleBaseline post-processing: the true peak of a blurred
    Gaussian lies between the argmax and the larger of its two neighbours.

    Args:
        locs: ``(B, K, 2)`` float32 argmax locations (``-1`` = no detection).
        heatmaps: ``(B, K, H, W)``.

    Returns:
        refined copy of ``locs``.
    """
    b, k, h, w = heatmaps.shape
    xi = locs[..., 0].astype(np.int64)
    yi = locs[..., 1].astype(np.int64)
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")

    def at(yy, xx):
        return heatmaps[bi, ki, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]

    # The neighbour tests are MMPose's (the horizontal one also requires y > 0,
    # the vertical one x > 0); keeping them keeps edge keypoints identical.
    ok_x = (xi > 1) & (xi < w - 1) & (yi > 0) & (yi < h)
    ok_y = (yi > 1) & (yi < h - 1) & (xi > 0) & (xi < w)
    dx = np.where(ok_x, at(yi, xi + 1) - at(yi, xi - 1), 0.0)
    dy = np.where(ok_y, at(yi + 1, xi) - at(yi - 1, xi), 0.0)
    step = np.stack([np.sign(dx), np.sign(dy)], axis=-1).astype(np.float32) * np.float32(0.25)
    return (locs + step).astype(np.float32)


def refine_dark(locs: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """Distribution-aware (DARK) sub-pixel refinement, as in MSRAHeatmap.

    The heatmap is smoothed (zero-padded blur that keeps the peak height) and
    taken to the log, where a Gaussian becomes a quadratic; one Newton step
    ``-H^-1 g`` from the integer maximum then lands on the quadratic's
    vertex. Keypoints within two pixels of the border, and those whose
    Hessian is singular, are left unrefined.

    Args:
        locs: ``(B, K, 2)`` float32; heatmaps: ``(B, K, H, W)``.
    """
    b, k, h, w = heatmaps.shape
    border = (blur_kernel_size - 1) // 2
    hm = blur_channels(heatmaps, blur_kernel_size, zero_pad=border, keep_max=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        hm = np.log(np.maximum(hm, np.float32(1e-10)))

    xi = locs[..., 0].astype(np.int64)
    yi = locs[..., 1].astype(np.int64)
    ok = (xi > 1) & (xi < w - 2) & (yi > 1) & (yi < h - 2)
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
    xc, yc = np.clip(xi, 2, w - 3), np.clip(yi, 2, h - 3)

    def at(dy, dx):
        return hm[bi, ki, yc + dy, xc + dx]

    with np.errstate(invalid="ignore", over="ignore"):
        c = at(0, 0)
        gx = np.float32(0.5) * (at(0, 1) - at(0, -1))
        gy = np.float32(0.5) * (at(1, 0) - at(-1, 0))
        hxx = np.float32(0.25) * (at(0, 2) - 2 * c + at(0, -2))
        hxy = np.float32(0.25) * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
        hyy = np.float32(0.25) * (at(2, 0) - 2 * c + at(-2, 0))
        det = hxx * hyy - hxy * hxy
        ok &= det != 0
        safe = np.where(ok, det, 1).astype(np.float64)
        # Closed-form 2x2 inverse: offset = -H^-1 g.
        off_x = -(hyy * gx - hxy * gy) / safe
        off_y = -(-hxy * gx + hxx * gy) / safe
    out = locs.copy()
    out[..., 0] += np.where(ok, off_x, 0).astype(np.float32)
    out[..., 1] += np.where(ok, off_y, 0).astype(np.float32)
    return out


def refine_dark_udp(locs: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """DARK refinement in UDP's variant (as used by UDPHeatmap).

    Differences from :func:`refine_dark`: the log is taken of the blurred map
    clipped to ``[1e-3, 50]``, derivatives use one-pixel central differences
    on an edge-padded map (so border keypoints are refined too), and a tiny
    ``eps * I`` regularises the Hessian instead of skipping singular ones.

    The neighbour look-up addresses each sample's maps as one flat array,
    like MMPose does, so a keypoint without detection (location ``-1``)
    reads the same (meaningless but finite) values in batch and single mode.
    """
    b, k, h, w = heatmaps.shape
    hm = blur_channels(heatmaps, blur_kernel_size, zero_pad=(blur_kernel_size - 1) // 2, keep_max=True)
    with np.errstate(invalid="ignore"):
        hm = np.log(np.clip(hm, np.float32(1e-3), np.float32(50.0)))
    pw, ph = w + 2, h + 2
    flat = np.pad(hm, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge").reshape(b, -1)
    size = flat.shape[1]
    index = (locs[..., 0] + 1 + (locs[..., 1] + 1) * pw) + (pw * ph) * np.arange(k)
    index = index.astype(np.int64)
    rows = np.arange(b)[:, None]

    def at(offset):
        # Python-style wrap of negative indices within the sample.
        return flat[rows, (index + offset) % size]

    i0 = at(0)
    ix1, ix1_ = at(1), at(-1)
    iy1, iy1_ = at(pw), at(-pw)
    ix1y1, ix1_y1_ = at(pw + 1), at(-pw - 1)
    dx = np.float32(0.5) * (ix1 - ix1_)
    dy = np.float32(0.5) * (iy1 - iy1_)
    dxx = ix1 - 2 * i0 + ix1_
    dyy = iy1 - 2 * i0 + iy1_
    dxy = np.float32(0.5) * (ix1y1 - ix1 - iy1 + i0 + i0 - ix1_ - iy1_ + ix1_y1_)
    eps = np.float64(np.finfo(np.float32).eps)
    a, d = dxx + eps, dyy + eps
    det = (a.astype(np.float64) * d - dxy.astype(np.float64) * dxy)
    with np.errstate(divide="ignore", invalid="ignore"):
        off_x = (d * dx - dxy * dy) / det
        off_y = (-dxy * dx + a * dy) / det
    out = locs.copy()
    out[..., 0] -= off_x.astype(np.float32)
    out[..., 1] -= off_y.astype(np.float32)
    return out
