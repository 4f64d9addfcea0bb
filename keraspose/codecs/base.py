"""Base class of keypoint codecs.

A codec converts between keypoint coordinates in *input space* (pixels of the
network's input crop) and the training target / network output of one kind
of head: heatmaps, normalised coordinates, SimCC vectors, ...

* ``encode(keypoints (N, K, 2), keypoints_visible (N, K)) -> dict`` builds the
  training target(s) plus ``keypoint_weights``;
* ``decode(output) -> (keypoints (N, K, 2), scores (N, K))`` turns one
  sample's network output back into input-space keypoints;
* ``batch_decode(outputs)`` does the same for a batch, vectorised where the
  codec allows it.

Codecs are plain numpy objects, but they are registered with Keras so that a
model can keep its codec in its config and survive ``model.save()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class KeypointCodec:
    """Abstract codec. Subclasses implement ``encode``/``decode`` and list
    their constructor arguments in ``get_config``."""

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        raise NotImplementedError

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def batch_decode(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode a batch (first axis) of single-instance outputs.

        The default loops over :meth:`decode`; heatmap codecs override it with
        a vectorised implementation.
        """
        results = [self.decode(sample) for sample in batch]
        keypoints = np.concatenate([r[0] for r in results], axis=0)
        scores = np.concatenate([r[1] for r in results], axis=0)
        return keypoints, scores

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "KeypointCodec":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @staticmethod
    def _prepare(keypoints, keypoints_visible):
        """Validate encode() inputs; visibility defaults to all visible."""
        keypoints = np.asarray(keypoints, dtype=np.float32)
        if keypoints.ndim != 3 or keypoints.shape[-1] < 2:
            raise ValueError(f"keypoints must be (N, K, 2), got shape {keypoints.shape}")
        if keypoints_visible is None:
            keypoints_visible = np.ones(keypoints.shape[:2], dtype=np.float32)
        keypoints_visible = np.asarray(keypoints_visible)
        if keypoints_visible.shape != keypoints.shape[:2]:
            raise ValueError(
                f"keypoints_visible must be {keypoints.shape[:2]}, got {keypoints_visible.shape}"
            )
        return keypoints[..., :2], keypoints_visible


def _pair(value, name):
    """(w, h) tuple of ints from a 2-sequence."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (width, height) pair, got {value!r}") from None
    return (int(a), int(b))
