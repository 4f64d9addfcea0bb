"""Coordinate codecs: RegressionLabel (DeepPose-style normalised coordinates)
and SimCCLabel (per-axis 1-D classification, as used by RTMPose)."""

from __future__ import annotations

from typing import Any

import cv2
import keras
import numpy as np

from keraspose.codecs.base import KeypointCodec, _pair, first_argmax_graph


@keras.saving.register_keras_serializable(package="keraspose")
class RegressionLabel(KeypointCodec):
    """Keypoints as coordinates normalised by the input size.

    ``encode`` divides by ``(w, h)``; a keypoint gets weight 1 only when it is
    visible and inside ``[0, w-1] x [0, h-1]``. ``decode`` multiplies back; a
    4-wide output ``(x, y, sigma_x, sigma_y)`` (RLE heads) yields scores
    ``1 - mean(sigma)``, a 2-wide one scores of 1.

    Example:
        >>> import numpy as np
        >>> codec = RegressionLabel((192, 256))
        >>> codec.encode(np.array([[[96.0, 64.0]]]))["keypoint_labels"].tolist()
        [[[0.5, 0.25]]]
        >>> codec.decode(np.array([[[0.5, 0.25]]]))[0].tolist()
        [[[96.0, 64.0]]]
    """

    output_names = ("coordinates",)
    target_names = ("keypoint_labels",)

    def __init__(self, input_size):
        self.input_size = _pair(input_size, "input_size")

    def get_config(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size)}

    def encode(self, keypoints, keypoints_visible=None) -> dict:
        keypoints, keypoints_visible = self._prepare(keypoints, keypoints_visible)
        w, h = self.input_size
        inside = ((keypoints >= 0) & (keypoints <= [w - 1, h - 1])).all(axis=-1)
        valid = inside & (keypoints_visible > 0.5)
        return {
            "keypoint_labels": (keypoints / np.array([w, h])).astype(np.float32),
            "keypoint_weights": valid.astype(np.float32),
        }

    def decode(self, encoded):
        """``(N, K, 2)`` or ``(N, K, 4)`` (or ``{"coordinates": ...}``) -> keypoints ``(N, K, 2)``, scores ``(N, K)``."""
        encoded = self.named_outputs(encoded)["coordinates"]
        if encoded.shape[-1] == 2:
            coords = encoded
            scores = np.ones(encoded.shape[:-1], dtype=np.float32)
        elif encoded.shape[-1] == 4:
            coords = encoded[..., :2]
            scores = (1 - encoded[..., 2:4]).mean(axis=-1)
        else:
            raise ValueError(f"last dimension must be 2 or 4 (with sigma), got {encoded.shape[-1]}")
        return coords * np.array(self.input_size), scores

    def batch_decode(self, batch):
        # Instances already form the leading axis; nothing to loop over.
        return self.decode(batch)


def _simcc_argmax(simcc_x, simcc_y):
    """Per-axis argmax; the score is the smaller of the two axis maxima and a
    keypoint without a positive score is placed at -1."""
    x_locs = np.argmax(simcc_x, axis=-1)
    y_locs = np.argmax(simcc_y, axis=-1)
    locs = np.stack([x_locs, y_locs], axis=-1).astype(np.float32)
    vals = np.minimum(np.max(simcc_x, axis=-1), np.max(simcc_y, axis=-1))
    locs[vals <= 0.0] = -1
    return locs, vals


def _softmax(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _refine_simcc_dark(locs, simcc, blur_kernel_size):
    """1-D DARK: blur (zero-padded, peak height kept), log, one Newton step.

    Args:
        locs: ``(N, K)`` float32 argmax positions along the axis.
        simcc: ``(N, K, L)``.
    """
    n, k, length = simcc.shape
    border = (blur_kernel_size - 1) // 2
    rows = np.ascontiguousarray(simcc.reshape(-1, length), dtype=np.float32)
    padded = np.pad(rows, ((0, 0), (border, border)))
    # A (ksize x 1) kernel only mixes along a row, so all rows go in one call.
    blurred = cv2.GaussianBlur(padded, (blur_kernel_size, 1), 0)[:, border:-border]
    with np.errstate(divide="ignore", invalid="ignore"):
        blurred = blurred * (rows.max(axis=1, keepdims=True) / blurred.max(axis=1, keepdims=True))
        logs = np.log(np.clip(blurred, np.float32(1e-3), np.float32(50.0)))
    logs = np.pad(logs, ((0, 0), (2, 2)), mode="edge").reshape(n, k, length + 4)
    px = (locs + 2.5).astype(np.int64)[..., None]

    def at(d):
        return np.take_along_axis(logs, px + d, axis=-1)[..., 0]

    dx = 0.5 * (at(1) - at(-1))
    dxx = 1e-9 + 0.25 * (at(2) - 2 * at(0) + at(-2))
    return (locs - dx / dxx).astype(np.float32)


@keras.saving.register_keras_serializable(package="keraspose")
class SimCCLabel(KeypointCodec):
    """SimCC: each axis of the input, sub-divided ``simcc_split_ratio`` times,
    is a 1-D classification target.

    Args:
        input_size: (w, h); the x and y vectors have ``round(w * ratio)`` and
            ``round(h * ratio)`` bins.
        smoothing_type: ``'gaussian'`` (a Gaussian of ``sigma`` bins per
            axis) or ``'standard'`` (one-hot with label smoothing).
        sigma: float or (sigma_x, sigma_y), in bins.
        simcc_split_ratio: bins per input pixel.
        label_smooth_weight: mass spread uniformly over the other bins
            ('standard' only).
        normalize: divide Gaussian labels by ``sigma * sqrt(2 pi)``.
        use_dark: refine decoded positions with 1-D DARK.
        decode_visibility: ``decode`` then returns ``(keypoints, (scores,
            visibility))`` with visibility from a sharpened softmax.
        decode_beta: the softmax sharpening factor for visibility.

    Example:
        >>> import numpy as np
        >>> codec = SimCCLabel((192, 256), sigma=(4.9, 5.66), normalize=False)
        >>> enc = codec.encode(np.array([[[100.0, 80.0]]]))
        >>> enc["keypoint_x_labels"].shape, enc["keypoint_y_labels"].shape
        ((1, 1, 384), (1, 1, 512))
        >>> codec.decode({"simcc_x": enc["keypoint_x_labels"], "simcc_y": enc["keypoint_y_labels"]})[0].tolist()
        [[[100.0, 80.0]]]

    Scores: the decoded score of a keypoint is the smaller of its two axis
    maxima of the *raw* SimCC logits (MMPose's choice). They are not
    probabilities: they are unbounded (often above 1 for confident points,
    around 0 for invisible ones) and their scale depends on the model, so
    pick thresholds per model on validation data (MMPose's demos use 0.3).
    A keypoint whose score is <= 0 is placed at -1 (not found).
    """

    output_names = ("simcc_x", "simcc_y")
    target_names = ("keypoint_x_labels", "keypoint_y_labels")

    def __init__(
        self,
        input_size,
        smoothing_type="gaussian",
        sigma=6.0,
        simcc_split_ratio=2.0,
        label_smooth_weight=0.0,
        normalize=True,
        use_dark=False,
        decode_visibility=False,
        decode_beta=150.0,
    ):
        if smoothing_type not in ("gaussian", "standard"):
            raise ValueError(f"smoothing_type must be 'gaussian' or 'standard', got {smoothing_type!r}")
        if smoothing_type == "gaussian" and label_smooth_weight > 0:
            raise ValueError("label_smooth_weight is only used with smoothing_type='standard'")
        if not 0.0 <= label_smooth_weight <= 1.0:
            raise ValueError(f"label_smooth_weight must lie in [0, 1], got {label_smooth_weight}")
        self.input_size = _pair(input_size, "input_size")
        self.smoothing_type = smoothing_type
        sig = np.asarray(sigma, dtype=np.float64).reshape(-1)
        self.sigma = np.array([sig[0], sig[0]]) if sig.size == 1 else sig[:2].copy()
        self.simcc_split_ratio = float(simcc_split_ratio)
        self.label_smooth_weight = float(label_smooth_weight)
        self.normalize = bool(normalize)
        self.use_dark = bool(use_dark)
        self.decode_visibility = bool(decode_visibility)
        self.decode_beta = float(decode_beta)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "smoothing_type": self.smoothing_type,
            "sigma": [float(s) for s in self.sigma],
            "simcc_split_ratio": self.simcc_split_ratio,
            "label_smooth_weight": self.label_smooth_weight,
            "normalize": self.normalize,
            "use_dark": self.use_dark,
            "decode_visibility": self.decode_visibility,
            "decode_beta": self.decode_beta,
        }

    @property
    def simcc_size(self) -> tuple[int, int]:
        """(number of x bins, number of y bins)."""
        w, h = self.input_size
        return (int(np.around(w * self.simcc_split_ratio)), int(np.around(h * self.simcc_split_ratio)))

    def encode(self, keypoints, keypoints_visible=None) -> dict:
        keypoints, keypoints_visible = self._prepare(keypoints, keypoints_visible)
        n, k, _ = keypoints.shape
        wx, wy = self.simcc_size
        # Keypoints snap to the nearest bin (numpy's round-half-to-even).
        mu = np.around(keypoints * self.simcc_split_ratio).astype(np.int64)
        weights = keypoints_visible.copy()
        target_x = np.zeros((n, k, wx), dtype=np.float32)
        target_y = np.zeros((n, k, wy), dtype=np.float32)
        gaussian = self.smoothing_type == "gaussian"
        radius = self.sigma * 3
        x = np.arange(0, wx, 1, dtype=np.float32)
        y = np.arange(0, wy, 1, dtype=np.float32)
        for i in range(n):
            for j in range(k):
                if keypoints_visible[i, j] < 0.5:
                    continue
                mx, my = mu[i, j]
                if gaussian:
                    # Dropped only when the whole 3-sigma window misses.
                    left, top = mu[i, j] - radius
                    right, bottom = mu[i, j] + radius + 1
                    if left >= wx or top >= wy or right < 0 or bottom < 0:
                        weights[i, j] = 0
                        continue
                    target_x[i, j] = np.exp(-((x - mx) ** 2) / (2 * self.sigma[0] ** 2))
                    target_y[i, j] = np.exp(-((y - my) ** 2) / (2 * self.sigma[1] ** 2))
                else:
                    if mx >= wx or my >= wy or mx < 0 or my < 0:
                        weights[i, j] = 0
                        continue
                    if self.label_smooth_weight > 0:
                        target_x[i, j] = self.label_smooth_weight / (wx - 1)
                        target_y[i, j] = self.label_smooth_weight / (wy - 1)
                    target_x[i, j, mx] = 1.0 - self.label_smooth_weight
                    target_y[i, j, my] = 1.0 - self.label_smooth_weight
        if gaussian and self.normalize:
            norm = self.sigma * np.sqrt(np.pi * 2)
            target_x /= norm[0]
            target_y /= norm[1]
        return {"keypoint_x_labels": target_x, "keypoint_y_labels": target_y, "keypoint_weights": weights}

    def decode(self, outputs, simcc_y=None):
        """``{"simcc_x": (N, K, Wx), "simcc_y": (N, K, Wy)}`` (or the two
        arrays, with or without N) -> keypoints ``(N, K, 2)`` in input space
        and scores ``(N, K)``."""
        named = self.named_outputs(outputs) if simcc_y is None else self.named_outputs(outputs, simcc_y)
        simcc_x, simcc_y = named["simcc_x"], named["simcc_y"]
        if simcc_x.ndim == 2:
            simcc_x, simcc_y = simcc_x[None], simcc_y[None]
        locs, scores = _simcc_argmax(simcc_x, simcc_y)
        if self.use_dark:
            blur = []
            for s in self.sigma:
                size = int((s * 20 - 7) // 3)  # kernel matched to the label sigma
                blur.append(size - int(size % 2 == 0))
            locs[..., 0] = _refine_simcc_dark(locs[..., 0], simcc_x, blur[0])
            locs[..., 1] = _refine_simcc_dark(locs[..., 1], simcc_y, blur[1])
        keypoints = locs / np.float32(self.simcc_split_ratio)
        if self.decode_visibility:
            sx = _softmax(simcc_x * self.decode_beta * self.sigma[0])
            sy = _softmax(simcc_y * self.decode_beta * self.sigma[1])
            visibility = np.minimum(sx.max(axis=-1), sy.max(axis=-1))
            return keypoints, (scores, visibility)
        return keypoints, scores

    def decode_graph(self, outputs):
        """:meth:`decode` in ``keras.ops`` on ``{"simcc_x": (B, K, Wx), "simcc_y": (B, K, Wy)}``:
        per-axis argmax / split ratio, score = the smaller axis maximum."""
        if self.use_dark or self.decode_visibility:
            raise NotImplementedError(
                "SimCCLabel(use_dark=True or decode_visibility=True) has no exportable graph form in "
                "keraspose yet; export with include_decoding=False and decode with the codec"
            )
        kops = keras.ops
        simcc_x, simcc_y = outputs["simcc_x"], outputs["simcc_y"]
        x_idx, x_max = first_argmax_graph(simcc_x)
        y_idx, y_max = first_argmax_graph(simcc_y)
        vals = kops.minimum(x_max, y_max)
        detected = vals > 0.0
        locs = kops.stack([kops.cast(x_idx, "float32"), kops.cast(y_idx, "float32")], axis=-1)
        locs = kops.where(kops.expand_dims(detected, -1), locs, -1.0)
        return locs / float(self.simcc_split_ratio), vals

    def batch_decode(self, outputs, simcc_y=None):
        # decode() already handles any leading instance/batch axis.
        return self.decode(outputs, simcc_y)


@keras.saving.register_keras_serializable(package="keraspose")
class IntegralRegressionLabel(KeypointCodec):
    """Integral regression (IPR/DSNT): normalised coordinates plus Gaussian heatmaps.

    ``encode`` gives MSRA heatmaps (``heatmaps (K, H, W)``, divided by their
    sum when ``normalize``, as training targets of DSNT-style heatmap losses)
    and :class:`RegressionLabel`'s ``keypoint_labels``/``keypoint_weights``;
    ``decode`` reads the head's normalised coordinates (scores 1).

    Example:
        >>> import numpy as np
        >>> codec = IntegralRegressionLabel((192, 256), (48, 64), sigma=2.0)
        >>> enc = codec.encode(np.array([[[96.0, 64.0]]]))
        >>> enc["keypoint_labels"].tolist(), round(float(enc["heatmaps"].sum()), 4)
        ([[[0.5, 0.25]]], 1.0)
    """

    output_names = ("coordinates",)
    target_names = ("keypoint_labels", "heatmaps")

    def __init__(self, input_size, heatmap_size, sigma, unbiased=False, blur_kernel_size=11, normalize=True):
        from keraspose.codecs.heatmap import MSRAHeatmap

        self.heatmap_codec = MSRAHeatmap(input_size, heatmap_size, sigma, unbiased, blur_kernel_size)
        self.keypoint_codec = RegressionLabel(input_size)
        self.input_size = self.keypoint_codec.input_size
        self.heatmap_size = self.heatmap_codec.heatmap_size
        self.normalize = bool(normalize)

    def get_config(self) -> dict[str, Any]:
        config = self.heatmap_codec.get_config()
        config["normalize"] = self.normalize
        return config

    def encode(self, keypoints, keypoints_visible=None) -> dict:
        heatmaps = self.heatmap_codec.encode(keypoints, keypoints_visible)["heatmaps"]
        encoded = self.keypoint_codec.encode(keypoints, keypoints_visible)
        if self.normalize:
            heatmaps = heatmaps / (heatmaps.sum(axis=(-1, -2)).reshape(-1, 1, 1) + 1e-24)
        encoded["heatmaps"] = heatmaps.astype(np.float32)
        return encoded

    def decode(self, encoded):
        """Normalised coordinates ``(N, K, 2)`` (or ``{"coordinates": ...}``) -> keypoints, scores (1)."""
        return self.keypoint_codec.decode(self.named_outputs(encoded)["coordinates"])

    def batch_decode(self, batch):
        return self.decode(batch)

    def batch_targets(self, encoded_samples):
        batch = {
            "keypoint_labels": np.concatenate([np.asarray(e["keypoint_labels"], np.float32) for e in encoded_samples]),
            # (K, h, w) per sample -> (B, h, w, K), the networks' channels-last layout.
            "heatmaps": np.stack([np.transpose(e["heatmaps"], (1, 2, 0)) for e in encoded_samples]).astype(np.float32),
        }
        batch["keypoint_weights"] = np.stack(
            [np.asarray(e["keypoint_weights"], np.float32).reshape(-1) for e in encoded_samples]
        )
        return batch
