"""Heatmap codecs: MSRAHeatmap (SimpleBaseline / HRNet, optionally DARK) and
UDPHeatmap (unbiased data processing).

Both encode each keypoint as a 2-D Gaussian on a ``heatmap_size`` grid and
decode by locating each channel's maximum and refining it to sub-pixel
precision. They differ in how input pixels map to heatmap pixels:

* MSRA: ``heatmap = input / stride`` with ``stride = input_size / heatmap_size``
  (pixel *edges* aligned);
* UDP: ``heatmap = input * (heatmap_size - 1) / (input_size - 1)`` (pixel
  *centres* of the first and last pixel aligned), which removes the half-pixel
  bias that flipping and resizing otherwise introduce.
"""

from __future__ import annotations

from typing import Any

import cv2
import keras
import numpy as np

from keraspose.codecs import _heatmap_ops as ops
from keraspose.codecs.base import KeypointCodec, _pair, first_argmax_graph


class _HeatmapCodec(KeypointCodec):
    """What both heatmap codecs share: named outputs/targets and their batching."""

    output_names = ("heatmaps",)
    target_names = ("heatmaps",)
    flip_mode = "heatmap"  # how the flip test un-flips the heatmaps (flip_heatmaps)

    def decode(self, encoded):
        """Heatmaps ``(C, H, W)`` (or ``{"heatmaps": ...}``) -> keypoints ``(1, K, 2)``, scores ``(1, K)``."""
        if isinstance(encoded, dict):
            encoded = self.named_outputs(encoded)["heatmaps"]
        return self.batch_decode(np.asarray(encoded)[None])

    def batch_targets(self, encoded_samples):
        # (K, h, w) per sample -> (B, h, w, K): the networks' channels-last output.
        batch = {"heatmaps": np.stack([np.transpose(e["heatmaps"], (1, 2, 0)) for e in encoded_samples]).astype(np.float32)}
        batch["keypoint_weights"] = np.stack(
            [np.asarray(e["keypoint_weights"], np.float32).reshape(-1) for e in encoded_samples]
        )
        return batch


def _gaussian_patches(
    heatmap_size, keypoints, keypoints_visible, sigma, subpixel_center: bool
):
    """Paste a truncated (3 sigma) Gaussian around each visible keypoint.

    The window is centred on the keypoint rounded to the nearest heatmap
    pixel. With ``subpixel_center`` the Gaussian's own centre is the exact
    keypoint (UDP); otherwise it is the rounded pixel (MSRA). Keypoints whose
    window lies entirely outside the heatmap get weight 0. Overlapping
    instances are merged with ``max``.
    """
    n, k, _ = keypoints.shape
    w, h = heatmap_size
    heatmaps = np.zeros((k, h, w), dtype=np.float32)
    weights = keypoints_visible.copy()
    radius = sigma * 3
    size = 2 * radius + 1
    grid = np.arange(0, size, 1, dtype=np.float32)
    two_sigma_sq = 2 * sigma**2
    for i in range(n):
        for j in range(k):
            if keypoints_visible[i, j] < 0.5:
                continue  # unlabelled: no target, weight stays as given
            # int() truncates towards zero like MMPose's astype(int64).
            mu = (keypoints[i, j] + 0.5).astype(np.int64)
            left, top = (mu - radius).astype(np.int64)
            right, bottom = (mu + radius + 1).astype(np.int64)
            if left >= w or top >= h or right < 0 or bottom < 0:
                weights[i, j] = 0
                continue
            cx = cy = size // 2
            if subpixel_center:
                cx = cx + (keypoints[i, j, 0] - mu[0])
                cy = cy + (keypoints[i, j, 1] - mu[1])
            g = np.exp(-((grid - cx) ** 2 + (grid[:, None] - cy) ** 2) / two_sigma_sq)
            # Clip the window to the heatmap and the patch accordingly.
            gx1, gy1 = max(0, -left), max(0, -top)
            gx2, gy2 = min(w, right) - left, min(h, bottom) - top
            hx1, hy1 = max(0, left), max(0, top)
            hx2, hy2 = min(w, right), min(h, bottom)
            region = heatmaps[j, hy1:hy2, hx1:hx2]
            np.maximum(region, g[gy1:gy2, gx1:gx2], out=region)
    return heatmaps, weights


def _unbiased_gaussians(heatmap_size, keypoints, keypoints_visible, sigma):
    """DARK encoding: an untruncated Gaussian centred exactly on each keypoint."""
    n, k, _ = keypoints.shape
    w, h = heatmap_size
    heatmaps = np.zeros((k, h, w), dtype=np.float32)
    weights = keypoints_visible.copy()
    radius = sigma * 3
    x = np.arange(0, w, 1, dtype=np.float32)
    y = np.arange(0, h, 1, dtype=np.float32)[:, None]
    for i in range(n):
        for j in range(k):
            if keypoints_visible[i, j] < 0.5:
                continue
            mu = keypoints[i, j]
            left, top = mu - radius
            right, bottom = mu + radius + 1
            if left >= w or top >= h or right < 0 or bottom < 0:
                weights[i, j] = 0
                continue
            g = np.exp(-((x - mu[0]) ** 2 + (y - mu[1]) ** 2) / (2 * sigma**2))
            np.maximum(g, heatmaps[j], out=heatmaps[j])
    return heatmaps, weights


def _offset_maps(heatmap_size, keypoints, keypoints_visible, radius_factor):
    """UDP 'combined' target: per keypoint a binary disc plus x/y offset maps.

    Channel ``3k`` is 1 inside the disc of radius ``radius_factor * max(W, H)``
    around keypoint ``k``; channels ``3k+1``/``3k+2`` hold, at every pixel,
    the offset from that pixel to the keypoint divided by the radius.
    """
    n, k, _ = keypoints.shape
    w, h = heatmap_size
    maps = np.zeros((k, 3, h, w), dtype=np.float32)
    weights = keypoints_visible.copy()
    x = np.arange(0, w, 1)
    y = np.arange(0, h, 1)[:, None]
    radius = radius_factor * max(w, h)
    for i in range(n):
        for j in range(k):
            if keypoints_visible[i, j] < 0.5:
                continue
            ox = (keypoints[i, j, 0] - x) / radius
            oy = (keypoints[i, j, 1] - y) / radius
            maps[j, 0] = np.where(ox**2 + oy**2 <= 1, 1.0, 0.0)
            maps[j, 1] = ox
            maps[j, 2] = oy
    return maps.reshape(k * 3, h, w), weights


def _check_batch(heatmaps, channels=None):
    if isinstance(heatmaps, dict):
        heatmaps = heatmaps["heatmaps"]
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.ndim != 4:
        raise ValueError(f"batch_decode expects (B, K, H, W) heatmaps, got shape {heatmaps.shape}")
    return heatmaps


@keras.saving.register_keras_serializable(package="keraspose")
class MSRAHeatmap(_HeatmapCodec):
    """Gaussian heatmaps of SimpleBaseline/HRNet, optionally with DARK.

    Args:
        input_size: (w, h) of the network input, e.g. ``(192, 256)``.
        heatmap_size: (w, h) of the heatmap, e.g. ``(48, 64)``.
        sigma: Gaussian sigma in heatmap pixels.
        unbiased: use DARK: encode with a Gaussian centred on the exact
            sub-pixel keypoint and decode with blur + log + Newton step
            instead of the quarter-pixel shift.
        blur_kernel_size: DARK's blur kernel (11 suits sigma 2, 17 sigma 3).

    Example:
        >>> import numpy as np
        >>> codec = MSRAHeatmap((192, 256), (48, 64), sigma=2.0)
        >>> enc = codec.encode(np.array([[[100.0, 80.0]]]), np.ones((1, 1)))
        >>> enc["heatmaps"].shape, enc["keypoint_weights"].tolist()
        ((1, 64, 48), [[1.0]])
        >>> kpts, scores = codec.decode(enc["heatmaps"])
        >>> kpts.round(1).tolist(), scores.tolist()
        ([[[100.0, 80.0]]], [[1.0]])
    """

    flip_shift = True  # MMPose's shift_heatmap=True for MSRA models

    def __init__(self, input_size, heatmap_size, sigma, unbiased=False, blur_kernel_size=11):
        self.input_size = _pair(input_size, "input_size")
        self.heatmap_size = _pair(heatmap_size, "heatmap_size")
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        if int(blur_kernel_size) % 2 != 1:
            raise ValueError(f"blur_kernel_size must be odd, got {blur_kernel_size}")
        self.blur_kernel_size = int(blur_kernel_size)
        # Heatmap stride in input pixels, float32 as in the reference.
        self.scale_factor = (np.array(self.input_size) / np.array(self.heatmap_size)).astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "heatmap_size": list(self.heatmap_size),
            "sigma": self.sigma,
            "unbiased": self.unbiased,
            "blur_kernel_size": self.blur_kernel_size,
        }

    def encode(self, keypoints, keypoints_visible=None) -> dict:
        """Keypoints ``(N, K, 2)`` in input space -> ``heatmaps (K, H, W)``
        and ``keypoint_weights (N, K)`` (0 for invisible or off-map points)."""
        keypoints, keypoints_visible = self._prepare(keypoints, keypoints_visible)
        scaled = keypoints / self.scale_factor
        if self.unbiased:
            hm, kw = _unbiased_gaussians(self.heatmap_size, scaled, keypoints_visible, self.sigma)
        else:
            hm, kw = _gaussian_patches(
                self.heatmap_size, scaled, keypoints_visible, self.sigma, subpixel_center=False
            )
        return {"heatmaps": hm, "keypoint_weights": kw}

    def batch_decode(self, batch):
        """Heatmaps ``(B, K, H, W)`` -> keypoints ``(B, K, 2)``, scores ``(B, K)``."""
        heatmaps = _check_batch(batch)
        locs, scores = ops.heatmap_argmax(heatmaps)
        if self.unbiased:
            locs = ops.refine_dark(locs, heatmaps, self.blur_kernel_size)
        else:
            locs = ops.refine_quarter_offset(locs, heatmaps)
        return locs * self.scale_factor, scores


    def decode_graph(self, heatmaps):
        """:meth:`batch_decode` in ``keras.ops`` on channels-last heatmaps ``(B, h, w, K)``:
        argmax and the quarter-pixel refinement (DARK has no graph form here)."""
        if self.unbiased:
            raise NotImplementedError(
                "MSRAHeatmap(unbiased=True): DARK's Gaussian blur + Newton step has no exportable "
                "graph form in keraspose yet; export with include_decoding=False and decode the "
                "heatmaps with the codec's batch_decode"
            )
        return _argmax_quarter_offset_graph(heatmaps, self.scale_factor)


def _argmax_quarter_offset_graph(heatmaps, scale_factor):
    """keras.ops twin of ``heatmap_argmax`` + ``refine_quarter_offset`` (same tests, same edges).

    The neighbour differences are taken over whole maps and read at the
    argmax through a one-hot mask (a sum of one term and zeros: exact), since
    a gather by computed index has no form in some exporters (torch's ONNX
    exporter lacks ``take_along_dim``). The differences are only used where
    MMPose's tests keep the neighbours inside the map, so the edge padding
    never counts.
    """
    kops = keras.ops
    h, w, k = int(heatmaps.shape[1]), int(heatmaps.shape[2]), int(heatmaps.shape[3])
    maps = kops.transpose(heatmaps, (0, 3, 1, 2))  # (B, K, h, w)
    flat = kops.reshape(maps, (-1, k, h * w))
    idx, vals = first_argmax_graph(flat)
    detected = vals > 0.0
    xi = kops.where(detected, idx % w, -1)
    yi = kops.where(detected, idx // w, -1)
    zero_col = kops.zeros_like(maps[..., :1])
    zero_row = kops.zeros_like(maps[..., :1, :])
    # diff_x[y, x] = hm[y, x + 1] - hm[y, x - 1]; diff_y likewise.
    diff_x = kops.concatenate([zero_col, maps[..., :, 2:] - maps[..., :, :-2], zero_col], axis=-1)
    diff_y = kops.concatenate([zero_row, maps[..., 2:, :] - maps[..., :-2, :], zero_row], axis=-2)
    at_peak = kops.cast(kops.expand_dims(idx, -1) == kops.convert_to_tensor(np.arange(h * w, dtype=np.int32)), "float32")
    dx_peak = kops.sum(kops.reshape(diff_x, (-1, k, h * w)) * at_peak, axis=-1)
    dy_peak = kops.sum(kops.reshape(diff_y, (-1, k, h * w)) * at_peak, axis=-1)
    # logical_and, not `&`: LiteRT has no builtin for a bitwise and.
    ok_x = kops.logical_and(kops.logical_and(xi > 1, xi < w - 1), kops.logical_and(yi > 0, yi < h))
    ok_y = kops.logical_and(kops.logical_and(yi > 1, yi < h - 1), kops.logical_and(xi > 0, xi < w))
    zero = kops.zeros_like(vals)
    dx = kops.where(ok_x, dx_peak, zero)
    dy = kops.where(ok_y, dy_peak, zero)
    x = kops.cast(xi, "float32") + kops.sign(dx) * 0.25
    y = kops.cast(yi, "float32") + kops.sign(dy) * 0.25
    keypoints = kops.stack([x * float(scale_factor[0]), y * float(scale_factor[1])], axis=-1)
    return keypoints, vals


@keras.saving.register_keras_serializable(package="keraspose")
class UDPHeatmap(_HeatmapCodec):
    """Heatmaps with Unbiased Data Processing (use with ``TopdownAffine(use_udp=True)``).

    Args:
        input_size, heatmap_size: (w, h) pairs.
        heatmap_type: ``'gaussian'`` (K channels, decoded with UDP's DARK
            variant) or ``'combined'`` (3K channels: a binary disc and x/y
            offset maps per keypoint, decoded as argmax of the blurred disc
            plus the offset read there).
        sigma: Gaussian sigma ('gaussian' only).
        radius_factor: disc radius as a fraction of ``max(W, H)`` ('combined').
        blur_kernel_size: blur kernel of the decoding; for 'combined' the
            kernel is ``2 * blur_kernel_size + 1``.

    Example:
        >>> import numpy as np
        >>> codec = UDPHeatmap((192, 256), (48, 64), sigma=2.0)
        >>> enc = codec.encode(np.array([[[100.0, 80.0]]]))
        >>> kpts, _ = codec.decode(enc["heatmaps"])
        >>> kpts.round(2).tolist()  # see the note on decoding scale below
        [[[100.52, 80.31]]]

    Note:
        Like MMPose (whose outputs are the reference), decoding scales by
        ``input_size / (heatmap_size - 1)`` while encoding uses
        ``(input_size - 1) / (heatmap_size - 1)``, so a round trip is off by
        ``x / (input_size - 1)`` pixels (about half a pixel at the far edge).
    """

    use_udp = True  # crops use UDP's warp, in training and at inference
    flip_shift = False  # UDP's encoding is unbiased: flipped heatmaps need no shift

    def __init__(
        self,
        input_size,
        heatmap_size,
        heatmap_type="gaussian",
        sigma=2.0,
        radius_factor=0.0546875,
        blur_kernel_size=11,
    ):
        if heatmap_type not in ("gaussian", "combined"):
            raise ValueError(f"heatmap_type must be 'gaussian' or 'combined', got {heatmap_type!r}")
        self.input_size = _pair(input_size, "input_size")
        self.heatmap_size = _pair(heatmap_size, "heatmap_size")
        self.heatmap_type = heatmap_type
        self.sigma = float(sigma)
        self.radius_factor = float(radius_factor)
        self.blur_kernel_size = int(blur_kernel_size)
        self.scale_factor = (
            (np.array(self.input_size) - 1) / (np.array(self.heatmap_size) - 1)
        ).astype(np.float32)

    @property
    def flip_mode(self):
        # 'combined' maps hold a disc and x/y offsets: the x offsets change sign.
        return "udp_combined" if self.heatmap_type == "combined" else "heatmap"

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "heatmap_size": list(self.heatmap_size),
            "heatmap_type": self.heatmap_type,
            "sigma": self.sigma,
            "radius_factor": self.radius_factor,
            "blur_kernel_size": self.blur_kernel_size,
        }

    def encode(self, keypoints, keypoints_visible=None) -> dict:
        """Keypoints ``(N, K, 2)`` -> ``heatmaps`` (K or 3K, H, W) and
        ``keypoint_weights (N, K)``."""
        keypoints, keypoints_visible = self._prepare(keypoints, keypoints_visible)
        scaled = keypoints / self.scale_factor
        if self.heatmap_type == "gaussian":
            hm, kw = _gaussian_patches(
                self.heatmap_size, scaled, keypoints_visible, self.sigma, subpixel_center=True
            )
        else:
            hm, kw = _offset_maps(self.heatmap_size, scaled, keypoints_visible, self.radius_factor)
        return {"heatmaps": hm, "keypoint_weights": kw}

    def decode_graph(self, heatmaps):
        raise NotImplementedError(
            f"UDPHeatmap(heatmap_type={self.heatmap_type!r}): UDP's decoding blurs the heatmaps "
            "(DARK-UDP for 'gaussian', a Gaussian blur of the discs for 'combined') and that blur has "
            "no exportable graph form in keraspose yet; export with include_decoding=False and decode "
            "the heatmaps with the codec's batch_decode"
        )

    def batch_decode(self, batch):
        """Heatmaps ``(B, C, H, W)`` -> keypoints ``(B, K, 2)``, scores ``(B, K)``."""
        heatmaps = _check_batch(batch)
        b, c, h, w = heatmaps.shape
        if self.heatmap_type == "gaussian":
            locs, scores = ops.heatmap_argmax(heatmaps)
            locs = ops.refine_dark_udp(locs, heatmaps, self.blur_kernel_size)
        else:
            k = c // 3
            maps = heatmaps.reshape(b, k, 3, h, w)
            ks = 2 * self.blur_kernel_size + 1
            # OpenCV's default (reflected) border here, unlike DARK's zero pad.
            cls_maps = ops.blur_channels(maps[:, :, 0], ks)
            locs, scores = ops.heatmap_argmax(cls_maps)
            radius = self.radius_factor * max(w, h)
            # Read the offsets at the argmax through each sample's flattened
            # offset maps (negative indices of undetected points wrap, as in
            # the single-sample reference).
            index = (locs[..., 0] + locs[..., 1] * w).astype(np.int64) + (w * h) * np.arange(k)
            index %= k * h * w
            rows = np.arange(b)[:, None]
            off_x = maps[:, :, 1].reshape(b, -1)[rows, index] * radius
            off_y = maps[:, :, 2].reshape(b, -1)[rows, index] * radius
            locs = (locs + np.stack([off_x, off_y], axis=-1)).astype(np.float32)
        # UDP maps heatmap pixel centres back onto input pixel centres.
        keypoints = locs / np.array([w - 1, h - 1]) * np.array(self.input_size)
        return keypoints, scores
