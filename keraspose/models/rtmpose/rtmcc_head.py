"""RTMCCHead: RTMPose's SimCC head (Jiang et al., "RTMPose: Real-Time Multi-Person Pose Estimation based on MMPose").

From the backbone's last (stride-32) feature map: a large-kernel conv to K
channels, each channel flattened into one token per keypoint, ScaleNorm and
a linear layer to ``hidden_dims``, the gated attention unit
(:class:`~keraspose.models.rtmpose.RTMCCBlock`), then two linear
classifiers: ``cls_x`` over the ``W * simcc_split_ratio`` horizontal bins and
``cls_y`` over the ``H * simcc_split_ratio`` vertical ones. The codec
(:class:`~keraspose.codecs.SimCCLabel`) decodes each axis by its argmax.

Scores: a keypoint's score is ``min(max(simcc_x), max(simcc_y))`` of the raw
logits, as in MMPose. It is *not* a probability: it is unbounded (confident
keypoints often score above 1), roughly 0 or negative for keypoints the
model does not see, and its scale differs between models. Threshold it per
model (MMPose's demos draw keypoints scoring above 0.3); to rank or filter
people, the mean keypoint score works as it does for heatmap models.
"""

import keras
import numpy as np
from keras import ops

from keraspose.layers import ConvBN
from keraspose.losses import KLDiscretLoss, simcc_pose_accuracy
from keraspose.models.heads.base import PoseHead, take_static
from keraspose.models.rtmpose.rtmcc_block import _LINEAR_INIT, RTMCCBlock, ScaleNorm

_DEFAULT_GAU = dict(hidden_dims=256, s=128, expansion_factor=2, dropout_rate=0.0, drop_path=0.0,
                    act_fn="SiLU", use_rel_bias=False, pos_enc=False)


@keras.saving.register_keras_serializable(package="keraspose")
class RTMCCHead(PoseHead):
    """RTMPose's head: feature map -> SimCC vectors ``{"simcc_x": (B, K, Wx), "simcc_y": (B, K, Wy)}``.

    Args:
        out_channels: number of keypoints K.
        input_size: network input ``(w, h)``.
        in_featuremap_size: the feature map's ``(w, h)`` (``input_size // 32``).
        simcc_split_ratio: bins per input pixel.
        final_layer_kernel_size: the first conv's kernel (RTMPose: 7).
        gau_cfg: MMPose's ``gau_cfg`` dict (``hidden_dims``, ``s``,
            ``expansion_factor``, ``act_fn``, ...).
        codec: a :class:`~keraspose.codecs.SimCCLabel` with the same input
            size and split ratio.
        loss: default ``KLDiscretLoss(use_target_weight=True)``; RTMPose's
            configs use ``beta=10, label_softmax=True``.

    Flip test (MMPose's ``flip_vectors``): the x vectors of the mirrored crop
    are reversed and both axes' left/right keypoints swapped, then averaged
    with the plain ones.

    Example:
    >>> import numpy as np
    >>> head = RTMCCHead(17, (192, 256), (6, 8), data_format="channels_last",
    ...                  gau_cfg=dict(hidden_dims=32, s=16))
    >>> out = head([np.zeros((1, 8, 6, 24), "float32")])
    >>> tuple(out["simcc_x"].shape), tuple(out["simcc_y"].shape)
    ((1, 17, 384), (1, 17, 512))
    """

    output_names = ("simcc_x", "simcc_y")
    suggested_codec = "SimCCLabel"

    def __init__(self, out_channels, input_size, in_featuremap_size, simcc_split_ratio=2.0,
                 final_layer_kernel_size=1, gau_cfg=None, codec=None, loss=None, data_format=None, **kwargs):
        super().__init__(codec=codec, loss=loss, data_format=data_format, **kwargs)
        self.out_channels = int(out_channels)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_featuremap_size = (int(in_featuremap_size[0]), int(in_featuremap_size[1]))
        self.simcc_split_ratio = float(simcc_split_ratio)
        self.final_layer_kernel_size = int(final_layer_kernel_size)
        self.gau_cfg = {**_DEFAULT_GAU, **(gau_cfg or {})}
        if codec is not None:
            if tuple(codec.input_size) != self.input_size:
                raise ValueError(
                    f"RTMCCHead: input_size {self.input_size} differs from its codec "
                    f"{type(codec).__name__}'s input_size {tuple(codec.input_size)}"
                )
            if float(codec.simcc_split_ratio) != self.simcc_split_ratio:
                raise ValueError(
                    f"RTMCCHead: simcc_split_ratio {self.simcc_split_ratio} differs from its codec's "
                    f"{codec.simcc_split_ratio}"
                )
        self.flatten_dims = self.in_featuremap_size[0] * self.in_featuremap_size[1]
        hidden = int(self.gau_cfg["hidden_dims"])
        self.final_layer = ConvBN(
            self.out_channels, self.final_layer_kernel_size, norm=False, use_bias=True,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            data_format=data_format, name="final_layer",
        )
        self.mlp_norm = ScaleNorm(self.flatten_dims, name="mlp_norm")
        self.mlp = keras.layers.Dense(hidden, use_bias=False, kernel_initializer=_LINEAR_INIT, name="mlp")
        self.gau = RTMCCBlock(
            self.out_channels, hidden, hidden, s=self.gau_cfg["s"],
            expansion_factor=self.gau_cfg["expansion_factor"], act_fn=self.gau_cfg["act_fn"],
            use_rel_bias=self.gau_cfg["use_rel_bias"], pos_enc=self.gau_cfg["pos_enc"],
            dropout_rate=self.gau_cfg["dropout_rate"], drop_path=self.gau_cfg["drop_path"], name="gau",
        )
        # MMPose sizes the classifiers with int(), not round().
        self.simcc_size = (int(self.input_size[0] * self.simcc_split_ratio),
                           int(self.input_size[1] * self.simcc_split_ratio))
        self.cls_x = keras.layers.Dense(self.simcc_size[0], use_bias=False, kernel_initializer=_LINEAR_INIT, name="cls_x")
        self.cls_y = keras.layers.Dense(self.simcc_size[1], use_bias=False, kernel_initializer=_LINEAR_INIT, name="cls_y")

    def build(self, input_shape=None):
        # Sublayers build on the first real call.
        self.built = True

    def call(self, feats, training=None):
        x = feats[-1] if isinstance(feats, (list, tuple)) else feats
        x = self.final_layer(x, training=training)
        if self.data_format == "channels_last":
            x = ops.transpose(x, (0, 3, 1, 2))
        # One token per keypoint: its map flattened row by row, as torch.flatten(x, 2).
        x = ops.reshape(x, (-1, self.out_channels, self.flatten_dims))
        x = self.mlp(self.mlp_norm(x))
        x = self.gau(x, training=training)
        return {"simcc_x": self.cls_x(x), "simcc_y": self.cls_y(x)}

    # -- the contract -----------------------------------------------------------
    def default_loss(self):
        return KLDiscretLoss(use_target_weight=True)

    def resolve_test_cfg(self, flip_mode=None, shift_heatmap=None):
        if flip_mode not in (None, "simcc") or shift_heatmap:
            raise ValueError(
                f"RTMCCHead flips SimCC vectors (MMPose's flip_vectors); flip_mode={flip_mode!r} and "
                f"shift_heatmap={shift_heatmap!r} are heatmap settings: leave them unset"
            )
        return None, False

    def _targets(self, outputs, targets):
        dtype = outputs["simcc_x"].dtype
        tx = ops.convert_to_tensor(targets["keypoint_x_labels"], dtype=dtype)
        ty = ops.convert_to_tensor(targets["keypoint_y_labels"], dtype=dtype)
        weights = targets.get("keypoint_weights")
        if weights is None:
            weights = ops.ones(ops.shape(tx)[:2])
        return tx, ty, ops.convert_to_tensor(weights, dtype=dtype)

    def compute_loss(self, outputs, targets):
        """KLDiscretLoss of the SimCC outputs against ``keypoint_x_labels``/``keypoint_y_labels``."""
        tx, ty, weights = self._targets(outputs, targets)
        return self.loss_fn.compute(outputs["simcc_x"], outputs["simcc_y"], tx, ty, weights)

    def accuracy(self, outputs, targets, thr=0.05):
        """MMPose's ``acc_pose`` of one batch (``simcc_pck_accuracy``)."""
        tx, ty, weights = self._targets(outputs, targets)
        return simcc_pose_accuracy(outputs["simcc_x"], outputs["simcc_y"], tx, ty, weights,
                                   self.simcc_split_ratio, thr)

    def merge_flip(self, outputs, flipped, flip_indices, flip_mode=None, shift_heatmap=False):
        """Average with the mirrored crops' vectors, un-flipped as MMPose's ``flip_vectors``."""
        flip_indices = np.asarray(flip_indices)
        fx = flipped["simcc_x"][:, flip_indices, ::-1]
        fy = flipped["simcc_y"][:, flip_indices]
        return {"simcc_x": (outputs["simcc_x"] + fx) * 0.5, "simcc_y": (outputs["simcc_y"] + fy) * 0.5}

    def merge_flip_graph(self, outputs, flipped, flip_indices, flip_mode=None, shift_heatmap=False):
        """:meth:`merge_flip` in ``keras.ops`` (for an exported graph)."""
        fx = ops.flip(take_static(flipped["simcc_x"], flip_indices, axis=1), axis=-1)
        fy = take_static(flipped["simcc_y"], flip_indices, axis=1)
        return {"simcc_x": (outputs["simcc_x"] + fx) * 0.5, "simcc_y": (outputs["simcc_y"] + fy) * 0.5}

    def empty_outputs(self):
        k = self.out_channels
        return {"simcc_x": np.zeros((0, k, self.simcc_size[0]), np.float32),
                "simcc_y": np.zeros((0, k, self.simcc_size[1]), np.float32)}

    # -- checkpoints --------------------------------------------------------------
    def checkpoint_keys(self, prefix="head"):
        """The conv layer in MMPose's names (the rest: :meth:`checkpoint_tensors`)."""
        return [(self.final_layer, f"{prefix}.final_layer", None)]

    def checkpoint_tensors(self, prefix="head"):
        """``(key, variable, kind)`` of the non-conv tensors in MMPose's state-dict names."""
        return [
            (f"{prefix}.mlp.0.g", self.mlp_norm.g, "vector"),
            (f"{prefix}.mlp.1.weight", self.mlp.kernel, "linear"),
            *self.gau.checkpoint_tensors(f"{prefix}.gau"),
            (f"{prefix}.cls_x.weight", self.cls_x.kernel, "linear"),
            (f"{prefix}.cls_y.weight", self.cls_y.kernel, "linear"),
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            out_channels=self.out_channels, input_size=list(self.input_size),
            in_featuremap_size=list(self.in_featuremap_size), simcc_split_ratio=self.simcc_split_ratio,
            final_layer_kernel_size=self.final_layer_kernel_size, gau_cfg=dict(self.gau_cfg),
        )
        return config
