"""ViT backbone as MMPose's ViTPose configs use it (mmpretrain's ``VisionTransformer``).

ViTPose (Xu et al., "ViTPose: Simple Vision Transformer Baselines for Human
Pose Estimation") puts a plain ViT under a heatmap head. MMPose builds it
from mmpretrain with ``with_cls_token=False, out_type='featmap',
patch_cfg=dict(padding=2)``:

* a 16x16 stride-16 patch convolution with 2 pixels of zero padding
  (256x192 crops give a 16x12 grid);
* a learned absolute position embedding over the patches (no class token),
  resized bicubically (PyTorch's, ``align_corners=False``) when the input
  grid differs from the one it was trained at;
* pre-norm transformer blocks: ``x + attn(ln1(x))``, ``x + ffn(ln2(x))``,
  LayerNorm eps 1e-6, fused qkv projection with bias, exact GELU, stochastic
  depth rates ``linspace(0, drop_path_rate, num_layers)``;
* a final LayerNorm, and the patch tokens reshaped into a feature map at
  1/16 of the input resolution.

:data:`VIT_ARCHS` holds the four ViTPose sizes.
"""

import keras
import numpy as np
from keras import ops

from keraspose.layers import ConvBN, LayerNorm
from keraspose.layers.base import BaseLayer
from keraspose.models.vit.resize import interpolation_matrix

#: ViTPose backbones: MMPose's ViTPose-S config passes this custom arch (12
#: heads of 32 channels); B/L/H are mmpretrain's base/large/huge.
VIT_ARCHS = {
    "small": {"embed_dims": 384, "num_layers": 12, "num_heads": 12, "feedforward_channels": 1536},
    "base": {"embed_dims": 768, "num_layers": 12, "num_heads": 12, "feedforward_channels": 3072},
    "large": {"embed_dims": 1024, "num_layers": 24, "num_heads": 16, "feedforward_channels": 4096},
    "huge": {"embed_dims": 1280, "num_layers": 32, "num_heads": 16, "feedforward_channels": 5120},
}

#: ViTPose's stochastic-depth rate for each size (MMPose's configs).
VITPOSE_DROP_PATH = {"small": 0.1, "base": 0.3, "large": 0.5, "huge": 0.55}


def vit_arch(arch):
    """The ``{embed_dims, num_layers, num_heads, feedforward_channels}`` of a ViT size.

    Example:
    >>> vit_arch("b")["embed_dims"]
    768
    """
    short = {"s": "small", "b": "base", "l": "large", "h": "huge"}
    name = short.get(arch, arch)
    if name not in VIT_ARCHS:
        raise ValueError(f"unknown ViT arch {arch!r}; choose one of {sorted(VIT_ARCHS)} (or s/b/l/h)")
    return dict(VIT_ARCHS[name])


@keras.saving.register_keras_serializable(package="keraspose")
class DropPath(BaseLayer):
    """Stochastic depth: zero a whole residual branch per sample while training, rescale the rest."""

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator, dtype=x.dtype))
        return x / keep * mask

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class ViTEncoderLayer(BaseLayer):
    """One pre-norm transformer block: ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``.

    Works on tokens ``(B, N, C)`` whatever the model's image layout.

    Example:
    >>> import numpy as np
    >>> layer = ViTEncoderLayer(embed_dims=8, num_heads=2, feedforward_channels=16)
    >>> tuple(layer(np.zeros((1, 6, 8), "float32")).shape)
    (1, 6, 8)
    """

    def __init__(
        self, embed_dims, num_heads, feedforward_channels, qkv_bias=True, drop_rate=0.0,
        drop_path_rate=0.0, layer_norm_epsilon=1e-6, **kwargs,
    ):
        super().__init__(**kwargs)
        if embed_dims % num_heads:
            raise ValueError(f"ViTEncoderLayer: embed_dims {embed_dims} is not divisible by num_heads {num_heads}")
        self.embed_dims = int(embed_dims)
        self.num_heads = int(num_heads)
        self.feedforward_channels = int(feedforward_channels)
        self.qkv_bias = bool(qkv_bias)
        self.drop_rate = float(drop_rate)
        self.drop_path_rate = float(drop_path_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.head_dims = self.embed_dims // self.num_heads
        self.ln1 = LayerNorm(epsilon=self.layer_norm_epsilon, name="ln1")
        self.qkv = keras.layers.Dense(3 * self.embed_dims, use_bias=self.qkv_bias, name="qkv")
        self.proj = keras.layers.Dense(self.embed_dims, name="proj")
        self.ln2 = LayerNorm(epsilon=self.layer_norm_epsilon, name="ln2")
        self.fc1 = keras.layers.Dense(self.feedforward_channels, name="fc1")
        self.fc2 = keras.layers.Dense(self.embed_dims, name="fc2")
        self.dropout = keras.layers.Dropout(self.drop_rate)
        self.drop_path = DropPath(self.drop_path_rate, name="drop_path")

    def build(self, input_shape):
        c = self.embed_dims
        self.ln1.build((None, None, c))
        self.qkv.build((None, None, c))
        self.proj.build((None, None, c))
        self.ln2.build((None, None, c))
        self.fc1.build((None, None, c))
        self.fc2.build((None, None, self.feedforward_channels))
        self.built = True

    def attention(self, x, training=None):
        batch, tokens = ops.shape(x)[0], ops.shape(x)[1]
        qkv = ops.reshape(self.qkv(x), (batch, tokens, 3, self.num_heads, self.head_dims))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, heads, head_dims)
        y = ops.dot_product_attention(q, k, v, scale=self.head_dims ** -0.5)
        y = self.proj(ops.reshape(y, (batch, tokens, self.embed_dims)))
        return self.dropout(y, training=training)

    def call(self, x, training=None):
        x = x + self.drop_path(self.attention(self.ln1(x), training=training), training=training)
        h = ops.gelu(self.fc1(self.ln2(x)), approximate=False)
        h = self.dropout(self.fc2(self.dropout(h, training=training)), training=training)
        return x + self.drop_path(h, training=training)

    def checkpoint_tensors(self, prefix, names="mmpose"):
        """``(key, variable, kind)`` of every tensor, in MMPose's (mmpretrain's) state-dict names."""
        pairs = [
            ("ln1.weight", self.ln1.gamma, "vector"), ("ln1.bias", self.ln1.beta, "vector"),
            ("attn.qkv.weight", self.qkv.kernel, "linear"),
            ("attn.proj.weight", self.proj.kernel, "linear"), ("attn.proj.bias", self.proj.bias, "vector"),
            ("ln2.weight", self.ln2.gamma, "vector"), ("ln2.bias", self.ln2.beta, "vector"),
            ("ffn.layers.0.0.weight", self.fc1.kernel, "linear"), ("ffn.layers.0.0.bias", self.fc1.bias, "vector"),
            ("ffn.layers.1.weight", self.fc2.kernel, "linear"), ("ffn.layers.1.bias", self.fc2.bias, "vector"),
        ]
        if self.qkv_bias:
            pairs.append(("attn.qkv.bias", self.qkv.bias, "vector"))
        return [(f"{prefix}.{key}", variable, kind) for key, variable, kind in pairs]

    def get_config(self):
        config = super().get_config()
        config.update(
            embed_dims=self.embed_dims, num_heads=self.num_heads, feedforward_channels=self.feedforward_channels,
            qkv_bias=self.qkv_bias, drop_rate=self.drop_rate, drop_path_rate=self.drop_path_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class ViTBackbone(BaseLayer):
    """Plain ViT with a feature-map output, configured like mmpretrain's ``VisionTransformer`` in ViTPose.

    Args:
        arch: ``"small"``, ``"base"``, ``"large"``, ``"huge"`` (or s/b/l/h), or
            ``None`` to give the sizes below.
        embed_dims, num_layers, num_heads, feedforward_channels: the sizes
            (``feedforward_channels`` defaults to ``4 * embed_dims``).
        img_size: ``(height, width)`` the position embedding is laid out for;
            other input sizes resize it bicubically.
        patch_size, patch_padding: the patch convolution (16, 2 in ViTPose).
        qkv_bias, drop_rate, drop_path_rate: as mmpretrain's.
        layer_norm_epsilon: every LayerNorm's eps (1e-6).
        final_norm: LayerNorm after the last block.

    Input: images in ``data_format``. Output: a one-element list with the
    feature map ``(B, C, h, w)`` channels-first or ``(B, h, w, C)``
    channels-last, ``h = (H + 2 * patch_padding - patch_size) // patch_size + 1``.

    Example:
    >>> import numpy as np
    >>> net = ViTBackbone(arch=None, embed_dims=32, num_layers=2, num_heads=2, img_size=(64, 48),
    ...                   data_format="channels_last")
    >>> [tuple(f.shape) for f in net(np.zeros((1, 64, 48, 3), "float32"))]
    [(1, 4, 3, 32)]
    """

    def __init__(
        self, arch="base", embed_dims=None, num_layers=None, num_heads=None, feedforward_channels=None,
        img_size=(256, 192), patch_size=16, patch_padding=2, in_channels=3, qkv_bias=True, drop_rate=0.0,
        drop_path_rate=0.0, layer_norm_epsilon=1e-6, final_norm=True, data_format=None, **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        sizes = vit_arch(arch) if arch is not None else {}
        for key, value in (("embed_dims", embed_dims), ("num_layers", num_layers), ("num_heads", num_heads),
                           ("feedforward_channels", feedforward_channels)):
            if value is not None:
                sizes[key] = int(value)
        for key in ("embed_dims", "num_layers", "num_heads"):
            if key not in sizes:
                raise ValueError(f"ViTBackbone: give arch=... or {key}=... (arch=None needs all sizes)")
        sizes.setdefault("feedforward_channels", 4 * sizes["embed_dims"])
        self.arch = arch
        self.embed_dims = sizes["embed_dims"]
        self.num_layers = sizes["num_layers"]
        self.num_heads = sizes["num_heads"]
        self.feedforward_channels = sizes["feedforward_channels"]
        self.img_size = tuple(int(v) for v in (img_size if isinstance(img_size, (list, tuple)) else (img_size,) * 2))
        self.patch_size = int(patch_size)
        self.patch_padding = int(patch_padding)
        self.in_channels = int(in_channels)
        self.qkv_bias = bool(qkv_bias)
        self.drop_rate = float(drop_rate)
        self.drop_path_rate = float(drop_path_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.final_norm = bool(final_norm)
        self.patch_resolution = self.grid_size(self.img_size)
        self.out_channels = [self.embed_dims]

        self.patch_embed = ConvBN(
            self.embed_dims, self.patch_size, self.patch_size, padding=self.patch_padding, norm=False,
            use_bias=True, kernel_initializer="glorot_uniform", data_format=data_format, name="patch_embed",
        )
        rates = np.linspace(0, self.drop_path_rate, self.num_layers)
        self.layers = [
            ViTEncoderLayer(
                self.embed_dims, self.num_heads, self.feedforward_channels, qkv_bias=self.qkv_bias,
                drop_rate=self.drop_rate, drop_path_rate=float(rates[i]),
                layer_norm_epsilon=self.layer_norm_epsilon, name=f"layers_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.dropout = keras.layers.Dropout(self.drop_rate)
        self.ln1 = (
            LayerNorm(epsilon=self.layer_norm_epsilon, name="ln1") if self.final_norm else None
        )

    def grid_size(self, image_size):
        """The ``(h, w)`` patch grid of an ``(H, W)`` input."""
        return tuple((int(s) + 2 * self.patch_padding - self.patch_size) // self.patch_size + 1 for s in image_size)

    def build(self, input_shape):
        h, w = self.patch_resolution
        self.pos_embed = self.add_weight(
            name="pos_embed", shape=(1, h * w, self.embed_dims),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        spatial = (input_shape[2], input_shape[3]) if self.data_format == "channels_first" else input_shape[1:3]
        channels = input_shape[1] if self.data_format == "channels_first" else input_shape[3]
        shape = (None, channels, *spatial) if self.data_format == "channels_first" else (None, *spatial, channels)
        self.patch_embed.build(shape)
        for layer in self.layers:
            layer.build((None, None, self.embed_dims))
        if self.ln1 is not None:
            self.ln1.build((None, None, self.embed_dims))
        self.built = True

    def position_embedding(self, grid):
        """The position embedding for a ``(h, w)`` patch grid (resized bicubically if it differs)."""
        if tuple(grid) == self.patch_resolution:
            return self.pos_embed
        h0, w0 = self.patch_resolution
        table = ops.reshape(self.pos_embed, (h0, w0, self.embed_dims))
        rows = interpolation_matrix(h0, grid[0], "bicubic")
        cols = interpolation_matrix(w0, grid[1], "bicubic")
        table = ops.einsum("hH,HWc,wW->hwc", rows, table, cols)
        return ops.reshape(table, (1, grid[0] * grid[1], self.embed_dims))

    def call(self, x, training=None):
        x = self.patch_embed(x, training=training)
        spatial = x.shape[2:4] if self.data_format == "channels_first" else x.shape[1:3]
        if any(v is None for v in spatial):
            raise ValueError(
                f"ViTBackbone needs a static input height and width (its position embedding is resized to the "
                f"patch grid), got a feature map of shape {tuple(x.shape)}; give the model a fixed input size"
            )
        if self.data_format == "channels_first":
            grid = tuple(int(v) for v in x.shape[2:4])
            tokens = ops.transpose(ops.reshape(x, (-1, self.embed_dims, grid[0] * grid[1])), (0, 2, 1))
        else:
            grid = tuple(int(v) for v in x.shape[1:3])
            tokens = ops.reshape(x, (-1, grid[0] * grid[1], self.embed_dims))
        tokens = self.dropout(tokens + self.position_embedding(grid), training=training)
        for layer in self.layers:
            tokens = layer(tokens, training=training)
        if self.ln1 is not None:
            tokens = self.ln1(tokens)
        feature = ops.reshape(tokens, (-1, grid[0], grid[1], self.embed_dims))
        if self.data_format == "channels_first":
            feature = ops.transpose(feature, (0, 3, 1, 2))
        return [feature]

    # -- MMPose checkpoints ---------------------------------------------------
    def checkpoint_keys(self, prefix="backbone"):
        """(ConvBN layer, conv key, bn key): the patch convolution, in mmpretrain's names."""
        return [(self.patch_embed, f"{prefix}.patch_embed.projection", None)]

    def checkpoint_tensors(self, prefix="backbone"):
        """``(key, variable, kind)`` of the position embedding, the blocks and the final norm."""
        tensors = [(f"{prefix}.pos_embed", self.pos_embed, "vector")]
        for i, layer in enumerate(self.layers):
            tensors += layer.checkpoint_tensors(f"{prefix}.layers.{i}")
        if self.ln1 is not None:
            tensors += [(f"{prefix}.ln1.weight", self.ln1.gamma, "vector"), (f"{prefix}.ln1.bias", self.ln1.beta, "vector")]
        return tensors

    def get_config(self):
        config = super().get_config()
        config.update(
            arch=self.arch, embed_dims=self.embed_dims, num_layers=self.num_layers, num_heads=self.num_heads,
            feedforward_channels=self.feedforward_channels, img_size=list(self.img_size),
            patch_size=self.patch_size, patch_padding=self.patch_padding, in_channels=self.in_channels,
            qkv_bias=self.qkv_bias, drop_rate=self.drop_rate, drop_path_rate=self.drop_path_rate,
            layer_norm_epsilon=self.layer_norm_epsilon, final_norm=self.final_norm,
        )
        return config
