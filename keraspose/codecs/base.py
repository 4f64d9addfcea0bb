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

Network outputs and training targets are *named* arrays: a codec lists the
names of the outputs it decodes (``output_names``: ``("heatmaps",)``,
``("simcc_x", "simcc_y")``, ``("coordinates",)``) and of the targets its
``encode`` makes for the loss (``target_names``), and ``decode`` /
``batch_decode`` accept a ``{name: array}`` dict as well as the bare array of
a one-output codec. A codec also declares what the data side must do for it:

* ``use_udp``: crops (training and inference) use UDP's pixel-centre-aligned
  warp (:func:`~keraspose.transforms.get_udp_warp_matrix`);
* ``flip_shift``: the default of the flip test's one-pixel shift of flipped
  heatmaps (``True`` for MSRA heatmaps, ``False`` where the encoding is
  already unbiased).

Codecs are plain numpy objects, but they are registered with Keras so that a
model can keep its codec in its config and survive ``model.save()``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class KeypointCodec:
    """Abstract codec. Subclasses implement ``encode``/``decode`` and list
    their constructor arguments in ``get_config``."""

    #: names of the network outputs ``decode`` reads, in order.
    output_names: tuple = ("heatmaps",)
    #: names of the ``encode`` outputs that are training targets (besides ``keypoint_weights``).
    target_names: tuple = ("heatmaps",)
    #: crops must use UDP's warp.
    use_udp: bool = False
    #: default of the flip test's heatmap shift.
    flip_shift: bool = False

    def named_outputs(self, outputs, *more) -> dict:
        """``{name: array}`` from a dict, one array (one-output codecs) or positional arrays."""
        if isinstance(outputs, dict):
            missing = [n for n in self.output_names if n not in outputs]
            if missing:
                raise ValueError(
                    f"{type(self).__name__}.decode: the outputs lack {missing}; "
                    f"got {sorted(outputs)}, expected {list(self.output_names)}"
                )
            return {n: np.asarray(outputs[n]) for n in self.output_names}
        arrays = (outputs,) + more
        if len(arrays) != len(self.output_names):
            raise ValueError(
                f"{type(self).__name__}.decode expects {len(self.output_names)} output(s) "
                f"{list(self.output_names)} (or a dict of them), got {len(arrays)}"
            )
        return {n: np.asarray(a) for n, a in zip(self.output_names, arrays)}

    def batch_targets(self, encoded_samples) -> dict:
        """Collate the ``encode`` results of single-instance samples into batched targets.

        Returns ``{name: (B, ...)}`` for every ``target_names`` entry plus
        ``keypoint_weights (B, K)``, in the layout the head's outputs have.
        The default concatenates the instance axis; heatmap codecs stack and
        move the channel axis last (the networks' channels-last output).
        """
        batch = {n: np.concatenate([np.asarray(e[n], np.float32) for e in encoded_samples]) for n in self.target_names}
        batch["keypoint_weights"] = np.stack(
            [np.asarray(e["keypoint_weights"], np.float32).reshape(-1) for e in encoded_samples]
        )
        return batch

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        raise NotImplementedError

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def decode_graph(self, outputs):
        """``batch_decode`` written in ``keras.ops``, for an exported graph.

        ``outputs`` are the network's outputs at the model boundary (backend
        tensors: heatmaps channels-last ``(B, h, w, K)``, SimCC a dict);
        returns keypoints ``(B, K, 2)`` in input-crop pixels and scores
        ``(B, K)``, equal to :meth:`batch_decode`'s. Codecs whose decoding
        has no graph form raise ``NotImplementedError`` saying which part.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no graph form of its decoding; export with "
            "include_decoding=False and decode the raw outputs with the codec"
        )

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


def first_argmax_graph(x):
    """Index of the first maximum along the last axis, and the maximum, in ``keras.ops``.

    numpy's ``argmax`` rule (first of equal maxima) built from ``max`` and a
    ``min`` over matching positions: Keras' TensorFlow ``argmax`` goes
    through a ``Bitcast`` (its -0.0 handling) that ONNX has no op for.
    """
    ops = keras.ops
    n = int(x.shape[-1])
    vals = ops.max(x, axis=-1)
    # A constant, not ops.arange: jax2onnx's arange takes no (start, None) form.
    positions = ops.convert_to_tensor(np.arange(n, dtype=np.int32))
    hits = ops.where(x == ops.expand_dims(vals, -1), positions, n)
    return ops.min(hits, axis=-1), vals


def _pair(value, name):
    """(w, h) tuple of ints from a 2-sequence."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (width, height) pair, got {value!r}") from None
    return (int(a), int(b))
