"""The layers of RTMPose's head: ScaleNorm and the gated attention unit RTMCCBlock.

Both follow MMPose 1.x (``mmpose.models.utils``): ``ScaleNorm`` (Nguyen &
Salazar, "Transformers without Tears") and ``RTMCCBlock``, the Gated
Attention Unit of Hua et al., "Transformer Quality in Linear Time", over the
K keypoint tokens, in the configuration every RTMPose model uses
(self-attention, no relative position bias, no rotary position encoding).
"""

import math

import keras
from keras import ops

from keraspose.layers.base import BaseLayer

# MMPose's RTMCCHead initialises every Linear with N(0, 0.01).
_LINEAR_INIT = keras.initializers.RandomNormal(stddev=0.01)


@keras.saving.register_keras_serializable(package="keraspose")
class ScaleNorm(BaseLayer):
    """``x / max(||x|| * dim**-0.5, eps) * g`` over the last axis, with one learnt scalar ``g``.

    Example:
    >>> import numpy as np
    >>> norm = ScaleNorm(4)
    >>> [round(float(v), 4) for v in norm(np.array([[3.0, 0.0, 4.0, 0.0]], "float32"))[0]]
    [1.2, 0.0, 1.6, 0.0]
    """

    def __init__(self, dim, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.epsilon = float(epsilon)
        self.scale = self.dim**-0.5

    def build(self, input_shape=None):
        self.g = self.add_weight(name="g", shape=(1,), initializer="ones")
        self.built = True

    def call(self, x):
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)) * self.scale
        return x / ops.maximum(norm, self.epsilon) * self.g

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class RTMCCBlock(BaseLayer):
    """Gated attention unit over tokens ``(B, N, in_token_dims)`` (MMPose's ``RTMCCBlock``, self-attention).

    ``x -> ScaleNorm -> Linear(2e + s) -> act``, split into ``u, v`` (``e =
    in_token_dims * expansion_factor`` each) and a shared ``base`` (``s``);
    ``q, k = base * gamma[i] + beta[i]`` (the per-dimension scale/offset);
    ``A = relu(q k^T / sqrt(s))^2``; out ``= Linear(u * (A v))``, plus the
    input scaled by a learnt vector when the widths agree.

    Args:
        num_token: number of tokens (keypoints); no weight depends on it here.
        in_token_dims, out_token_dims: token widths.
        expansion_factor, s: as above.
        epsilon: ScaleNorm's.
        act_fn: ``"SiLU"`` or ``"ReLU"``.
        use_rel_bias, pos_enc, dropout_rate, drop_path: must keep MMPose's
            RTMPose values (``False``, ``False``, 0, 0).

    Example:
    >>> import numpy as np
    >>> block = RTMCCBlock(17, 32, 32, s=16)
    >>> tuple(block(np.zeros((2, 17, 32), "float32")).shape)
    (2, 17, 32)
    """

    def __init__(self, num_token, in_token_dims, out_token_dims, expansion_factor=2, s=128, epsilon=1e-5,
                 act_fn="SiLU", use_rel_bias=False, pos_enc=False, dropout_rate=0.0, drop_path=0.0, **kwargs):
        super().__init__(**kwargs)
        if use_rel_bias or pos_enc or dropout_rate or drop_path:
            raise ValueError(
                "RTMCCBlock supports RTMPose's configuration only: use_rel_bias=False, pos_enc=False, "
                f"dropout_rate=0, drop_path=0 (got {use_rel_bias}, {pos_enc}, {dropout_rate}, {drop_path})"
            )
        if act_fn not in ("SiLU", "ReLU"):
            raise ValueError(f"RTMCCBlock: act_fn must be 'SiLU' or 'ReLU', got {act_fn!r}")
        self.num_token = int(num_token)
        self.in_token_dims = int(in_token_dims)
        self.out_token_dims = int(out_token_dims)
        self.expansion_factor = expansion_factor
        self.s = int(s)
        self.e = int(self.in_token_dims * expansion_factor)
        self.epsilon = float(epsilon)
        self.act_fn = act_fn
        self.shortcut = self.in_token_dims == self.out_token_dims
        self.ln = ScaleNorm(self.in_token_dims, epsilon=self.epsilon, name="ln")
        self.uv = keras.layers.Dense(2 * self.e + self.s, use_bias=False, kernel_initializer=_LINEAR_INIT, name="uv")
        self.o = keras.layers.Dense(self.out_token_dims, use_bias=False, kernel_initializer=_LINEAR_INIT, name="o")

    def build(self, input_shape=None):
        # torch.rand in MMPose: uniform [0, 1).
        self.gamma = self.add_weight(name="gamma", shape=(2, self.s), initializer="random_uniform")
        self.beta = self.add_weight(name="beta", shape=(2, self.s), initializer="random_uniform")
        if self.shortcut:
            self.res_scale = self.add_weight(name="res_scale", shape=(self.in_token_dims,), initializer="ones")
        self.built = True

    def call(self, x, training=None):
        uv = self.uv(self.ln(x))
        uv = ops.silu(uv) if self.act_fn == "SiLU" else ops.relu(uv)
        u = uv[..., : self.e]
        v = uv[..., self.e : 2 * self.e]
        base = uv[..., 2 * self.e :]
        q = base * self.gamma[0] + self.beta[0]
        k = base * self.gamma[1] + self.beta[1]
        attention = ops.square(ops.relu(ops.matmul(q, ops.transpose(k, (0, 2, 1))) / math.sqrt(self.s)))
        out = self.o(u * ops.matmul(attention, v))
        if self.shortcut:
            out = x * self.res_scale + out
        return out

    def checkpoint_tensors(self, prefix):
        """``(key, variable, kind)`` in MMPose's state-dict names (``kind``: ``linear`` or ``vector``)."""
        tensors = [
            (f"{prefix}.gamma", self.gamma, "vector"),
            (f"{prefix}.beta", self.beta, "vector"),
            (f"{prefix}.o.weight", self.o.kernel, "linear"),
            (f"{prefix}.uv.weight", self.uv.kernel, "linear"),
            (f"{prefix}.ln.g", self.ln.g, "vector"),
        ]
        if self.shortcut:
            tensors.append((f"{prefix}.res_scale.scale", self.res_scale, "vector"))
        return tensors

    def get_config(self):
        config = super().get_config()
        config.update(
            num_token=self.num_token, in_token_dims=self.in_token_dims, out_token_dims=self.out_token_dims,
            expansion_factor=self.expansion_factor, s=self.s, epsilon=self.epsilon, act_fn=self.act_fn,
        )
        return config
