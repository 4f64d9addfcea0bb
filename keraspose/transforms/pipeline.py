"""Data-pipeline transforms for top-down pose estimation.

Each transform is a callable on a *results* dict using MMPose's key names, so
pipelines read like MMPose configs:

=====================  ======================================================
``img``                image, HxWx3 uint8 BGR (OpenCV's order)
``img_shape``          (h, w) of ``img`` (optional; taken from ``img``)
``bbox``               (N, 4) xyxy boxes
``bbox_center``        (N, 2) box centres
``bbox_scale``         (N, 2) box sizes (w, h), padding included
``bbox_rotation``      (N,) degrees, set by :class:`RandomBBoxTransform`
``keypoints``          (N, K, 2) image-space keypoints
``keypoints_visible``  (N, K)
``transformed_keypoints``  (N, K, 2) input-space keypoints (TopdownAffine)
``flip_indices``, ``upper_body_ids``, ``lower_body_ids``  from the metainfo
``input_size``, ``input_center``, ``input_scale``  set by TopdownAffine
``flip``, ``flip_direction``  set by :class:`RandomFlip`
=====================  ======================================================

Random transforms take a ``seed``: two pipelines built with the same seed
produce the same augmentations, which makes training runs reproducible.

Example:
    >>> import numpy as np
    >>> from keraspose.codecs import MSRAHeatmap
    >>> pipeline = Compose([
    ...     GetBBoxCenterScale(padding=1.25),
    ...     TopdownAffine(input_size=(192, 256)),
    ...     GenerateTarget(MSRAHeatmap((192, 256), (48, 64), sigma=2.0)),
    ... ])
    >>> out = pipeline({
    ...     "img": np.zeros((480, 640, 3), np.uint8),
    ...     "bbox": np.array([[100.0, 50.0, 300.0, 450.0]], np.float32),
    ...     "keypoints": np.array([[[200.0, 250.0]]], np.float32),
    ...     "keypoints_visible": np.ones((1, 1), np.float32),
    ... })
    >>> out["img"].shape, out["heatmaps"].shape, out["transformed_keypoints"].tolist()
    ((256, 192, 3), (1, 64, 48), [[[96.0, 128.0]]])
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import keras
import numpy as np

from keraspose.codecs.base import KeypointCodec
from keraspose.transforms import functional as F

__all__ = [
    "Transform",
    "Compose",
    "LoadImage",
    "GetBBoxCenterScale",
    "TopdownAffine",
    "RandomFlip",
    "RandomHalfBody",
    "RandomBBoxTransform",
    "PhotometricDistortion",
    "GenerateTarget",
]

_register = keras.saving.register_keras_serializable(package="keraspose")

# OpenCV 4's bilinear warp is the reference; other major versions differ.
_OPENCV_4 = cv2.__version__.startswith("4.")


class Transform:
    """Base class: ``__call__(results) -> results`` (or ``None`` to drop the
    sample) plus a Keras-style ``get_config``/``from_config``."""

    def __call__(self, results: dict) -> dict | None:
        return self.transform(results)

    def transform(self, results: dict) -> dict | None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _RandomTransform(Transform):
    """A transform drawing from its own ``numpy.random.Generator``."""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # A serialised DatasetMetainfo comes back as a dict.
        if isinstance(config.get("metainfo"), dict):
            config["metainfo"] = keras.saving.deserialize_keras_object(config["metainfo"])
        return cls(**config)


def _metainfo_field(results, metainfo, key, attr):
    if results.get(key) is not None:
        return results[key]
    if metainfo is not None:
        return getattr(metainfo, attr)
    raise KeyError(f"results has no {key!r} and the transform was given no metainfo")


@_register
class Compose(Transform):
    """Apply transforms in order; stops and returns ``None`` as soon as one
    returns ``None`` (a sample the pipeline decided to drop)."""

    def __init__(self, transforms: Sequence[Transform | dict]):
        self.transforms = [
            t if callable(t) else keras.saving.deserialize_keras_object(t) for t in transforms
        ]

    def transform(self, results):
        for t in self.transforms:
            results = t(results)
            if results is None:
                return None
        return results

    def get_config(self):
        return {"transforms": [keras.saving.serialize_keras_object(t) for t in self.transforms]}

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


@_register
class LoadImage(Transform):
    """Read ``results['img_path']`` with OpenCV (BGR uint8) into ``img`` and
    set ``img_shape``/``ori_shape``; an ``img`` already present is kept."""

    def transform(self, results):
        if results.get("img") is None:
            img = cv2.imread(str(results["img_path"]), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"cannot read image {results['img_path']!r}")
            results["img"] = img
        results["img_shape"] = results["img"].shape[:2]
        results.setdefault("ori_shape", results["img"].shape[:2])
        return results


@_register
class GetBBoxCenterScale(Transform):
    """``bbox`` (N, 4) xyxy -> ``bbox_center`` and ``bbox_scale`` (size x padding).

    If centre and scale are already present (e.g. from a detector's output)
    only the padding is applied to the scale.
    """

    def __init__(self, padding: float = 1.25):
        self.padding = float(padding)

    def transform(self, results):
        if "bbox_center" in results and "bbox_scale" in results:
            results["bbox_scale"] = results["bbox_scale"] * self.padding
        else:
            results["bbox_center"], results["bbox_scale"] = F.bbox_xyxy2cs(
                results["bbox"], padding=self.padding
            )
        return results

    def get_config(self):
        return {"padding": self.padding}


@_register
class TopdownAffine(Transform):
    """Crop the box (centre, scale, rotation) out of ``img`` into an
    ``input_size`` (w, h) image with one affine warp.

    The box is first enlarged to the input's aspect ratio (never shrunk), so
    the person is not distorted. Keypoints are mapped with the same matrix
    into ``transformed_keypoints``; ``bbox_scale`` is updated to the enlarged
    size and ``input_center``/``input_scale`` record what was used (decoding
    maps predictions back with them). Bilinear interpolation, black border.

    Args:
        input_size: (w, h) of the network input.
        use_udp: use UDP's pixel-centre-aligned warp (pair with UDPHeatmap).
        warp: ``'exact'`` warps uint8 images with
            :func:`~keraspose.transforms.functional.warp_affine`, which
            reproduces OpenCV 4's fixed-point result (and hence MMPose's
            crops) under any OpenCV version, at ~10 ms per crop;
            ``'opencv'`` calls the installed ``cv2.warpAffine`` (fast, but
            OpenCV 5 differs from OpenCV 4 by a few grey levels); ``'auto'``
            (default) uses OpenCV when it is 4.x and the exact path otherwise.
            Non-uint8 images always use OpenCV.
    """

    def __init__(self, input_size: Sequence[int], use_udp: bool = False, warp: str = "auto"):
        if len(input_size) != 2:
            raise ValueError(f"input_size must be (w, h), got {input_size!r}")
        if warp not in ("auto", "exact", "opencv"):
            raise ValueError(f"warp must be 'auto', 'exact' or 'opencv', got {warp!r}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.use_udp = bool(use_udp)
        self.warp = warp

    def transform(self, results):
        w, h = self.input_size
        results["bbox_scale"] = F.fix_aspect_ratio(results["bbox_scale"], aspect_ratio=w / h)
        if results["bbox_center"].shape[0] != 1:
            raise ValueError(
                "TopdownAffine crops one instance per sample; got bbox_center of shape "
                f"{results['bbox_center'].shape}"
            )
        center = results["bbox_center"][0]
        scale = results["bbox_scale"][0]
        rot = float(results["bbox_rotation"][0]) if "bbox_rotation" in results else 0.0
        if self.use_udp:
            warp_mat = F.get_udp_warp_matrix(center, scale, rot, output_size=(w, h))
        else:
            warp_mat = F.get_warp_matrix(center, scale, rot, output_size=(w, h))

        def warp(img):
            exact = self.warp == "exact" or (self.warp == "auto" and not _OPENCV_4)
            if exact and img.dtype == np.uint8:
                return F.warp_affine(img, warp_mat, (w, h))
            return cv2.warpAffine(img, warp_mat, (w, h), flags=cv2.INTER_LINEAR)

        img = results["img"]
        results["img"] = [warp(i) for i in img] if isinstance(img, list) else warp(img)
        if results.get("keypoints") is not None:
            kpts = results["keypoints"]
            out = np.array(kpts, copy=True)
            out[..., :2] = F.warp_keypoints(kpts[..., :2], warp_mat)
            results["transformed_keypoints"] = out
        results["warp_matrix"] = warp_mat
        results["input_size"] = (w, h)
        results["input_center"] = center
        results["input_scale"] = scale
        return results

    def get_config(self):
        return {"input_size": list(self.input_size), "use_udp": self.use_udp, "warp": self.warp}


@_register
class RandomFlip(_RandomTransform):
    """Randomly mirror the image, boxes and keypoints.

    Args:
        prob: probability of flipping; with several directions either one
            float (split evenly among them) or one probability per direction.
        direction: ``'horizontal'``, ``'vertical'``, ``'diagonal'`` or a list.
        metainfo: a :class:`~keraspose.metainfo.DatasetMetainfo` providing
            ``flip_indices`` when the results dict has none.
        seed: random seed.
    """

    def __init__(self, prob=0.5, direction="horizontal", metainfo=None, seed=None):
        super().__init__(seed)
        directions = [direction] if isinstance(direction, str) else list(direction)
        for d in directions:
            if d not in ("horizontal", "vertical", "diagonal"):
                raise ValueError(f"invalid flip direction {d!r}")
        if isinstance(prob, (list, tuple)):
            probs = [float(p) for p in prob]
            if len(probs) != len(directions):
                raise ValueError("prob must have one entry per direction")
        else:
            probs = [float(prob) / len(directions)] * len(directions)
        if any(p < 0 for p in probs) or sum(probs) > 1 + 1e-9:
            raise ValueError(f"flip probabilities must be >= 0 and sum to <= 1, got {prob!r}")
        self.prob = prob
        self.direction = direction
        self.metainfo = metainfo
        self._choices = directions + [None]
        self._probs = probs + [max(0.0, 1.0 - sum(probs))]

    def transform(self, results):
        flip_dir = self._choices[self.rng.choice(len(self._choices), p=self._probs)]
        results["flip"] = flip_dir is not None
        results["flip_direction"] = flip_dir
        if flip_dir is None:
            return results
        img = results["img"]
        h, w = results.get("img_shape", (img[0] if isinstance(img, list) else img).shape[:2])
        code = {"horizontal": 1, "vertical": 0, "diagonal": -1}[flip_dir]
        results["img"] = [cv2.flip(i, code) for i in img] if isinstance(img, list) else cv2.flip(img, code)
        if results.get("bbox") is not None:
            results["bbox"] = F.flip_bbox(results["bbox"], (w, h), "xyxy", flip_dir)
        if results.get("bbox_center") is not None:
            results["bbox_center"] = F.flip_bbox(results["bbox_center"], (w, h), "center", flip_dir)
        if results.get("keypoints") is not None:
            flip_indices = _metainfo_field(results, self.metainfo, "flip_indices", "flip_indices")
            results["keypoints"], results["keypoints_visible"] = F.flip_keypoints(
                results["keypoints"], results.get("keypoints_visible"), (w, h), flip_indices, flip_dir
            )
        return results

    def get_config(self):
        cfg = {"prob": self.prob, "direction": self.direction, "seed": self.seed}
        if self.metainfo is not None:
            cfg["metainfo"] = keras.saving.serialize_keras_object(self.metainfo)
        return cfg


@_register
class RandomHalfBody(_RandomTransform):
    """With probability ``prob``, replace the box by one around only the upper
    or only the lower body (augmentation for partially visible people).

    Only instances with at least ``min_total_keypoints`` visible keypoints are
    considered. The upper body is chosen with probability
    ``upper_prioritized_prob`` when both halves have enough visible keypoints
    (``min_upper_keypoints`` / ``min_lower_keypoints``); otherwise the half
    that has enough is used. The new box spans the chosen visible keypoints,
    enlarged by ``padding``.
    """

    def __init__(
        self,
        min_total_keypoints: int = 9,
        min_upper_keypoints: int = 2,
        min_lower_keypoints: int = 3,
        padding: float = 1.5,
        prob: float = 0.3,
        upper_prioritized_prob: float = 0.7,
        metainfo=None,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.min_total_keypoints = int(min_total_keypoints)
        self.min_upper_keypoints = int(min_upper_keypoints)
        self.min_lower_keypoints = int(min_lower_keypoints)
        self.padding = float(padding)
        self.prob = float(prob)
        self.upper_prioritized_prob = float(upper_prioritized_prob)
        self.metainfo = metainfo

    def _select(self, visible, upper_ids, lower_ids):
        if visible.sum() < self.min_total_keypoints or self.rng.random() > self.prob:
            return None
        upper = [i for i in upper_ids if visible[i] > 0]
        lower = [i for i in lower_ids if visible[i] > 0]
        prefer_upper = self.rng.random() < self.upper_prioritized_prob
        enough_upper = len(upper) >= self.min_upper_keypoints
        enough_lower = len(lower) >= self.min_lower_keypoints
        if not enough_upper and not enough_lower:
            return None
        if not enough_lower:
            return upper
        if not enough_upper:
            return lower
        return upper if prefer_upper else lower

    def transform(self, results):
        upper_ids = _metainfo_field(results, self.metainfo, "upper_body_ids", "upper_body_ids")
        lower_ids = _metainfo_field(results, self.metainfo, "lower_body_ids", "lower_body_ids")
        visible_all = np.asarray(results["keypoints_visible"])
        if visible_all.ndim == 3:
            visible_all = visible_all[..., 0]
        centers, scales = [], []
        for i, visible in enumerate(visible_all):
            ids = self._select(visible, upper_ids, lower_ids)
            if ids is None:
                centers.append(results["bbox_center"][i])
                scales.append(results["bbox_scale"][i])
                continue
            pts = results["keypoints"][i][ids][:, :2]
            center = pts.mean(axis=0)
            size = (pts.max(axis=0) - pts.min(axis=0)) * self.padding
            centers.append(center)
            scales.append(size.astype(center.dtype))
        results["bbox_center"] = np.stack(centers)
        results["bbox_scale"] = np.stack(scales)
        return results

    def get_config(self):
        cfg = {
            "min_total_keypoints": self.min_total_keypoints,
            "min_upper_keypoints": self.min_upper_keypoints,
            "min_lower_keypoints": self.min_lower_keypoints,
            "padding": self.padding,
            "prob": self.prob,
            "upper_prioritized_prob": self.upper_prioritized_prob,
            "seed": self.seed,
        }
        if self.metainfo is not None:
            cfg["metainfo"] = keras.saving.serialize_keras_object(self.metainfo)
        return cfg


def truncated_normal(rng: np.random.Generator, size, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Standard normal samples restricted to ``[low, high]`` (rejection sampling).

    Same distribution as ``scipy.stats.truncnorm(low, high)``, without SciPy.
    """
    out = rng.standard_normal(size)
    bad = (out < low) | (out > high)
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = (out < low) | (out > high)
    return out.astype(np.float32)


@_register
class RandomBBoxTransform(_RandomTransform):
    """Randomly shift, scale and rotate the boxes (MMPose's defaults).

    Each factor comes from a standard normal truncated to [-1, 1]:

    * shift (prob ``shift_prob``): centre moves by ``t * shift_factor`` times
      the box size, independently in x and y;
    * scale (prob ``scale_prob``): size multiplied by ``mu + t * sigma`` with
      ``mu``/``sigma`` the middle/half-width of ``scale_factor``;
    * rotation (prob ``rotate_prob``): ``t * rotate_factor`` degrees, written
      to ``bbox_rotation`` (0 when not applied) for TopdownAffine.
    """

    def __init__(
        self,
        shift_factor: float = 0.16,
        shift_prob: float = 0.3,
        scale_factor: Sequence[float] = (0.5, 1.5),
        scale_prob: float = 1.0,
        rotate_factor: float = 80.0,
        rotate_prob: float = 0.6,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.shift_factor = float(shift_factor)
        self.shift_prob = float(shift_prob)
        self.scale_factor = (float(scale_factor[0]), float(scale_factor[1]))
        self.scale_prob = float(scale_prob)
        self.rotate_factor = float(rotate_factor)
        self.rotate_prob = float(rotate_prob)

    def sample_params(self, num_bboxes: int):
        """Draw ``(offset (N, 2), scale (N, 1), rotate (N,))``."""
        t = truncated_normal(self.rng, (num_bboxes, 4))
        offset = t[:, :2] * self.shift_factor
        offset = np.where(self.rng.random((num_bboxes, 1)) < self.shift_prob, offset, 0.0)
        lo, hi = self.scale_factor
        scale = t[:, 2:3] * ((hi - lo) * 0.5) + (hi + lo) * 0.5
        scale = np.where(self.rng.random((num_bboxes, 1)) < self.scale_prob, scale, 1.0)
        rotate = t[:, 3] * self.rotate_factor
        rotate = np.where(self.rng.random(num_bboxes) < self.rotate_prob, rotate, 0.0)
        return offset, scale, rotate

    def transform(self, results):
        bbox_scale = results["bbox_scale"]
        offset, scale, rotate = self.sample_params(bbox_scale.shape[0])
        results["bbox_center"] = results["bbox_center"] + offset * bbox_scale
        results["bbox_scale"] = bbox_scale * scale
        results["bbox_rotation"] = rotate
        return results

    def get_config(self):
        return {
            "shift_factor": self.shift_factor,
            "shift_prob": self.shift_prob,
            "scale_factor": list(self.scale_factor),
            "scale_prob": self.scale_prob,
            "rotate_factor": self.rotate_factor,
            "rotate_prob": self.rotate_prob,
            "seed": self.seed,
        }


def _convert(img, alpha=1.0, beta=0.0):
    """``clip(img * alpha + beta, 0, 255)`` back to uint8 (truncating, as MMPose does)."""
    return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


@_register
class PhotometricDistortion(_RandomTransform):
    """MMPose's PhotometricDistortion of a BGR uint8 image: brightness,
    contrast, saturation, hue, channel swap, each drawn at random.

    Reproduces MMPose 1.3.2 step for step, including a quirk of its code: the
    contrast step runs both before and after the HSV step when
    ``contrast_mode`` is 1, and not at all when it is 0 (the docstring there
    says "first or last"). Hue is shifted in OpenCV's 0-179 hue channel with
    uint8 wrap-around, as there. Apply it before ``TopdownAffine`` (to the
    whole image, as MMPose's configs do) or after (to the crop).

    :meth:`draw` returns the random parameters and :meth:`apply` uses them,
    so the arithmetic can be checked separately from the random draws.
    """

    def __init__(self, brightness_delta=32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5),
                 hue_delta=18, seed=None):
        super().__init__(seed)
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = int(hue_delta)

    def draw(self):
        rng = self.rng
        return {
            "contrast_mode": int(rng.integers(2)),
            "brightness_flag": int(rng.integers(2)),
            "contrast_flag": int(rng.integers(2)),
            "hsv_mode": int(rng.integers(4)),
            "swap_flag": int(rng.integers(2)),
            "brightness_beta": float(rng.uniform(-self.brightness_delta, self.brightness_delta)),
            "contrast_alpha": float(rng.uniform(*self.contrast_range)),
            "saturation_alpha": float(rng.uniform(*self.saturation_range)),
            "hue_delta": int(rng.integers(-self.hue_delta, self.hue_delta)),
            "swap_channel_order": rng.permutation(3),
        }

    @staticmethod
    def apply(img, p):
        if p["brightness_flag"]:
            img = _convert(img, beta=p["brightness_beta"])
        if p["contrast_mode"] == 1 and p["contrast_flag"]:
            img = _convert(img, alpha=p["contrast_alpha"])
        if p["hsv_mode"]:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
            if p["hsv_mode"] in (1, 3):
                img[:, :, 1] = _convert(img[:, :, 1], alpha=p["saturation_alpha"])
            if p["hsv_mode"] in (2, 3):
                img[:, :, 0] = img[:, :, 0].astype(int) + p["hue_delta"]  # wraps around in uint8
            img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
        if p["contrast_mode"] == 1 and p["contrast_flag"]:
            img = _convert(img, alpha=p["contrast_alpha"])
        if p["swap_flag"]:
            img = np.ascontiguousarray(img[..., p["swap_channel_order"]])
        return img

    def transform(self, results):
        img = results.get("img")
        if img is None or np.asarray(img).dtype != np.uint8 or np.asarray(img).ndim != 3:
            raise ValueError("PhotometricDistortion needs results['img'] as an (H, W, 3) uint8 BGR image")
        results["img"] = self.apply(np.asarray(img), self.draw())
        return results

    def get_config(self):
        return dict(
            brightness_delta=self.brightness_delta, contrast_range=list(self.contrast_range),
            saturation_range=list(self.saturation_range), hue_delta=self.hue_delta, seed=self.seed,
        )


@_register
class GenerateTarget(Transform):
    """Encode the (transformed) keypoints into training targets with a codec.

    Uses ``transformed_keypoints`` when present (after TopdownAffine), else
    ``keypoints``, and merges the codec's outputs (e.g. ``heatmaps`` and
    ``keypoint_weights``) into the results. A ``(N, K, 2)``
    ``keypoints_visible`` is split into visibility and
    ``keypoints_visible_weights``. With ``use_dataset_keypoint_weights`` the
    weights are multiplied by ``results['dataset_keypoint_weights']`` (the
    metainfo's joint weights).
    """

    def __init__(self, encoder: KeypointCodec | dict, use_dataset_keypoint_weights: bool = False):
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not hasattr(encoder, "encode"):
            raise ValueError(f"encoder must be a codec with encode(), got {type(encoder).__name__}")
        self.encoder = encoder
        self.use_dataset_keypoint_weights = bool(use_dataset_keypoint_weights)

    def transform(self, results):
        if results.get("transformed_keypoints") is not None:
            keypoints = results["transformed_keypoints"]
        elif results.get("keypoints") is not None:
            keypoints = results["keypoints"]
        else:
            raise ValueError("GenerateTarget needs 'transformed_keypoints' or 'keypoints'")
        visible = np.asarray(results["keypoints_visible"])
        if visible.ndim == 3 and visible.shape[2] == 2:
            visible, vis_weights = visible[..., 0], visible[..., 1]
            results["keypoints_visible"] = visible
            results["keypoints_visible_weights"] = vis_weights
        encoded = self.encoder.encode(keypoints, visible)
        if self.use_dataset_keypoint_weights and "keypoint_weights" in encoded:
            encoded["keypoint_weights"] = encoded["keypoint_weights"] * np.asarray(
                results["dataset_keypoint_weights"]
            )
        results.update(encoded)
        return results

    def get_config(self):
        return {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "use_dataset_keypoint_weights": self.use_dataset_keypoint_weights,
        }
