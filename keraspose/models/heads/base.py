"""PoseHead: the contract every top-down head keeps (MMPose's BaseHead).

A head owns everything that depends on what it predicts, so that
:class:`~keraspose.TopdownEstimator`, the training data, ``predict``,
evaluation and the CLI pass its outputs through without knowing its kind:

* **outputs**: ``head(features)`` gives the network outputs the codec names
  (``codec.output_names``): one array for a one-output codec (heatmaps,
  channels-last ``(B, h, w, K)`` at the model's boundary), else a dict
  (``{"simcc_x": (B, K, Wx), "simcc_y": (B, K, Wy)}``);
* **loss and accuracy**: :meth:`compute_loss` and :meth:`accuracy` take those
  outputs and the batch's named targets (``codec.target_names`` plus
  ``keypoint_weights``, as :meth:`KeypointCodec.batch_targets` makes them);
* **flip test**: :meth:`merge_flip` un-flips the outputs of the mirrored
  crops and averages them with the plain ones, the head kind's own way
  (heatmaps: flip + optional one-pixel shift; SimCC: MMPose's
  ``flip_vectors``);
* **decoding**: :meth:`decode` turns the (numpy) outputs into keypoints in
  input-crop pixels and scores, through the codec.

Subclasses set ``codec_kinds`` (the codec output names they can produce) and
implement ``call``, ``compute_loss``, ``accuracy``, ``merge_flip`` and,
where the model-boundary layout differs from the codec's, ``to_codec_layout``.
"""

import keras
import numpy as np

from keraspose.layers.base import BaseLayer


class PoseHead(BaseLayer):
    """Base class of the top-down heads.

    Args:
        codec: the keypoint codec (``MSRAHeatmap``, ``SimCCLabel``, ...).
        loss: the training loss; each head has MMPose's default.
        data_format: layout of the feature maps it reads.
    """

    #: the output names (``codec.output_names``) this head produces.
    output_names = ("heatmaps",)

    def __init__(self, codec=None, loss=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if codec is not None and tuple(getattr(codec, "output_names", ())) != tuple(self.output_names):
            raise ValueError(
                f"{type(self).__name__} predicts {list(self.output_names)} but its codec "
                f"{type(codec).__name__} decodes {list(getattr(codec, 'output_names', ()))}; "
                f"pass a codec made for this head (e.g. {self.suggested_codec})"
            )
        self.codec = codec
        self.loss_fn = loss if loss is not None else self.default_loss()

    suggested_codec = "MSRAHeatmap for a HeatmapHead, SimCCLabel for an RTMCCHead"

    def default_loss(self):
        raise NotImplementedError

    def network_outputs(self, feats, training=None):
        """The outputs at the model's boundary (what ``TopdownEstimator.call`` returns)."""
        return self(feats, training=training)

    # -- test-time settings -------------------------------------------------
    def resolve_test_cfg(self, flip_mode=None, shift_heatmap=None):
        """The flip-test settings this head runs with, ``None`` meaning the codec's default.

        Returns ``(flip_mode, shift_heatmap)``; raises for settings the head
        cannot use.
        """
        return flip_mode, bool(shift_heatmap) if shift_heatmap is not None else False

    # -- training -----------------------------------------------------------
    def target_names(self):
        return tuple(getattr(self.codec, "target_names", self.output_names)) + ("keypoint_weights",)

    def compute_loss(self, outputs, targets):
        raise NotImplementedError

    def accuracy(self, outputs, targets, thr=0.05):
        raise NotImplementedError

    # -- inference ----------------------------------------------------------
    def to_codec_layout(self, outputs):
        """Numpy model outputs -> the codec's layout (the default: unchanged)."""
        return outputs

    def merge_flip(self, outputs, flipped, flip_indices, flip_mode=None, shift_heatmap=False):
        raise NotImplementedError

    def decode(self, outputs):
        """Keypoints ``(B, K, 2)`` in input-crop pixels and scores ``(B, K)`` from codec-layout outputs."""
        if self.codec is None:
            raise ValueError(f"{type(self).__name__}.decode: this head has no codec; pass codec=... when building it")
        return self.codec.batch_decode(outputs)

    # -- the same, as a graph (export) ----------------------------------------
    def merge_flip_graph(self, outputs, flipped, flip_indices, flip_mode=None, shift_heatmap=False):
        """:meth:`merge_flip` in ``keras.ops`` on model-boundary outputs (for an exported graph)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no graph form of its flip-test merge; export with flip_test=False"
        )

    def decode_graph(self, outputs):
        """:meth:`decode` in ``keras.ops`` on model-boundary outputs: keypoints ``(B, K, 2)``
        in input-crop pixels and scores ``(B, K)`` (for an exported graph)."""
        if self.codec is None:
            raise ValueError(f"{type(self).__name__}.decode_graph: this head has no codec; pass codec=... when building it")
        return self.codec.decode_graph(outputs)

    def empty_outputs(self):
        """Codec-layout outputs for zero crops."""
        return None

    def config_for_keypoints(self, config, num_keypoints):
        """This head's config for ``num_keypoints`` keypoints (``with_keypoint_set``)."""
        return {**config, "out_channels": int(num_keypoints)}

    # -- serialisation ------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            codec=keras.saving.serialize_keras_object(self.codec) if self.codec is not None else None,
            loss=keras.saving.serialize_keras_object(self.loss_fn),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("codec", "loss"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def take_static(x, indices, axis):
    """``x`` reordered along ``axis`` by a fixed Python list of ``indices`` (a flip permutation).

    Slices and one concatenation rather than ``keras.ops.take``: torch's ONNX
    exporter has no form for the gather (``aten::ravel``) that ``take`` traces to.
    """
    axis = axis % len(x.shape)
    lead = (slice(None),) * axis
    return keras.ops.concatenate([x[lead + (slice(int(i), int(i) + 1),)] for i in indices], axis=axis)


def concatenate_outputs(chunks):
    """Concatenate per-batch numpy outputs (arrays or dicts of arrays) along the first axis."""
    if isinstance(chunks[0], dict):
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return np.concatenate(chunks)
