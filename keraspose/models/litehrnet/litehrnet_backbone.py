"""Lite-HRNet (Yu et al., "Lite-HRNet: A Lightweight High-Resolution Network").

Configured exactly like MMPose's ``LiteHRNet(extra=...)``, and by the same
``extra`` dict::

    extra = {
        "stem": {"stem_channels": 32, "out_channels": 32, "expand_ratio": 1},
        "num_stages": 3,
        "stages_spec": {
            "num_modules": [2, 4, 2], "num_branches": [2, 3, 4],
            "num_blocks": [2, 2, 2], "module_type": ["LITE", "LITE", "LITE"],
            "with_fuse": [True, True, True], "reduce_ratios": [8, 8, 8],
            "num_channels": [[40, 80], [40, 80, 160], [40, 80, 160, 320]],
        },
        "with_head": True,
    }

The network, top to bottom:

* **Stem**: a stride-2 3x3 conv, then a ShuffleNet-v2 downsampling unit
  (split the channels in two, one half through depthwise stride-2 + 1x1, the
  other through 1x1 + depthwise stride-2 + 1x1, concatenate, channel
  shuffle): 1/4 resolution.
* **Stages**: each adds one half-resolution branch (a *transition*:
  depthwise 3x3 + 1x1) and runs ``num_modules`` multi-branch modules. A module
  is ``num_blocks`` blocks per branch, then a *fuse* of every branch into every
  output (1x1 conv + nearest upsampling from lower resolutions, chains of
  depthwise stride-2 + 1x1 from higher ones). The blocks are

  - ``"LITE"``: conditional channel weighting. Half of each branch's channels
    is reweighted by *cross-resolution weighting* (all branches pooled to the
    smallest size, 1x1 convs, sigmoid, weights upsampled back), a depthwise
    3x3, and *spatial weighting* (squeeze-excitation), then concatenated with
    the untouched half and channel-shuffled;
  - ``"NAIVE"``: ShuffleNet-v2 units (split, 1x1 + depthwise 3x3 + 1x1 on one
    half, concat, shuffle) on every branch.

* **Head** (``with_head``): MMPose's IterativeHead, from the lowest
  resolution up: bilinear upsampling (aligned corners), add to the next
  branch, depthwise-separable conv.

Output: a list with one feature map, the highest-resolution one (1/4 of the
input; 40 channels for every config here), like MMPose's ``(x[0],)``.

Presets: :func:`litehrnet_extra` (Lite-HRNet-18/30 of MMPose) and
:func:`tinypose_extra` (PaddleDetection's "wider naive" Lite-HRNet of
PP-TinyPose: Lite-HRNet-18's shape with NAIVE modules). ``norm=False`` builds
every BatchNorm-ed conv as a plain conv with bias, the layout of checkpoints
whose BatchNorm is folded (PP-TinyPose's ncnn export, see
:mod:`keraspose.convert.ncnn`).

Two quirks of the reference implementations are reproduced on purpose,
because trained weights depend on them (the PP-TinyPose ncnn graph shows both):
in a fuse, output 0 adds branch 0 *twice*, and every other output reads
branch 0 *after* output 0's sum was accumulated into it (MMPose's ``y = out[0];
y += ...`` adds in place); their own branch-0 path is then counted twice too.
"""


import keras
import numpy as np
from keras import ops

from keraspose import backend
from keraspose.layers import BaseLayer, ConvBN


# MMPose's LiteHRNet init_cfg: Normal(std=0.001) for every conv (BatchNorm: ones/zeros).
_INIT = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.001}}


def litehrnet_extra(depth=18):
    """MMPose's ``extra`` for Lite-HRNet-18 or Lite-HRNet-30 (they differ in module counts)."""
    modules = {18: [2, 4, 2], 30: [3, 8, 3]}
    if depth not in modules:
        raise ValueError(f"litehrnet_extra: depth must be 18 or 30, got {depth!r}")
    return _extra(modules[depth], "LITE", reduce_ratio=8)


def tinypose_extra():
    """PP-TinyPose's backbone: PaddleDetection's ``network_type="wider_naive"`` Lite-HRNet."""
    return _extra([2, 4, 2], "NAIVE", reduce_ratio=1)


def _extra(num_modules, module_type, reduce_ratio):
    return {
        "stem": {"stem_channels": 32, "out_channels": 32, "expand_ratio": 1},
        "num_stages": 3,
        "stages_spec": {
            "num_modules": list(num_modules),
            "num_branches": [2, 3, 4],
            "num_blocks": [2, 2, 2],
            "module_type": [module_type] * 3,
            "with_fuse": [True, True, True],
            "reduce_ratios": [reduce_ratio] * 3,
            "num_channels": [[40, 80], [40, 80, 160], [40, 80, 160, 320]],
        },
        "with_head": True,
    }


def _as_lists(value):
    """Tuples -> lists, recursively: configs stay JSON-identical after a round trip."""
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Tensor helpers (generic keras.ops; layout given by data_format)
# --------------------------------------------------------------------------


def _spatial(x, data_format):
    """Static (H, W) of a feature map: resize matrices are built from them."""
    h_axis = 2 if data_format == "channels_first" else 1
    h, w = x.shape[h_axis], x.shape[h_axis + 1]
    if h is None or w is None:
        raise ValueError("Lite-HRNet needs feature maps with known height and width")
    return int(h), int(w)


def _halves(x, data_format):
    """MMPose's ``x.chunk(2, dim=channels)``."""
    return ops.split(x, 2, axis=backend.channel_axis(data_format))


def concat_shuffle(a, b, data_format):
    """``channel_shuffle(concat([a, b]), groups=2)`` in one step.

    A 2-group shuffle of ``[a, b]`` interleaves their channels
    (``a0, b0, a1, b1, ...``), which is a stack on a new axis after the
    channel axis followed by a reshape: one copy instead of three.
    """
    c = a.shape[backend.channel_axis(data_format)]
    if data_format == "channels_first":
        h, w = _spatial(a, data_format)
        return ops.reshape(ops.stack([a, b], axis=2), (-1, 2 * c, h, w))
    h, w = _spatial(a, data_format)
    return ops.reshape(ops.stack([a, b], axis=-1), (-1, h, w, 2 * c))


def _adaptive_pool_matrix(in_size, out_size):
    """``(out, in)`` averaging matrix of PyTorch's adaptive_avg_pool (uneven windows included)."""
    m = np.zeros((out_size, in_size), np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -(-((i + 1) * in_size) // out_size)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _nearest_indices(in_size, out_size):
    """Source index of every output row of PyTorch's ``interpolate(mode="nearest")``."""
    return np.minimum(np.floor(np.arange(out_size) * (in_size / out_size)), in_size - 1).astype("int32")


def _align_corners_matrix(in_size, out_size):
    """``(out, in)`` bilinear interpolation matrix with ``align_corners=True``."""
    m = np.zeros((out_size, in_size), np.float32)
    if in_size == 1 or out_size == 1:
        m[:, 0] = 1.0
        return m
    src = np.arange(out_size) * ((in_size - 1) / (out_size - 1))
    lo = np.minimum(np.floor(src).astype(int), in_size - 2)
    frac = (src - lo).astype(np.float32)
    m[np.arange(out_size), lo] = 1.0 - frac
    m[np.arange(out_size), lo + 1] += frac
    return m


def _apply_hw_matrices(x, mh, mw, data_format):
    mh, mw = ops.convert_to_tensor(mh, x.dtype), ops.convert_to_tensor(mw, x.dtype)
    if data_format == "channels_first":
        return ops.einsum("oh,bchw,pw->bcop", mh, x, mw)
    return ops.einsum("oh,bhwc,pw->bopc", mh, x, mw)


def adaptive_avg_pool(x, size, data_format):
    """PyTorch's ``adaptive_avg_pool2d(x, size)``: a plain pooling when sizes divide evenly."""
    (h, w), (oh, ow) = _spatial(x, data_format), size
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return ops.average_pool(x, k, k, "valid", data_format)
    return _apply_hw_matrices(x, _adaptive_pool_matrix(h, oh), _adaptive_pool_matrix(w, ow), data_format)


def resize_nearest(x, size, data_format):
    """PyTorch's ``interpolate(x, size, mode="nearest")``."""
    (h, w), (oh, ow) = _spatial(x, data_format), size
    if oh % h == 0 and ow % w == 0 and oh // h == ow // w:
        return backend.upsample_nearest(x, oh // h, data_format)
    h_axis = 2 if data_format == "channels_first" else 1
    x = ops.take(x, _nearest_indices(h, oh), axis=h_axis)
    return ops.take(x, _nearest_indices(w, ow), axis=h_axis + 1)


def resize_bilinear_align_corners(x, size, data_format):
    """PyTorch's ``interpolate(x, size, mode="bilinear", align_corners=True)``.

    Keras' resize has no aligned-corners mode; bilinear interpolation is
    separable, so it is two small interpolation matrices applied to H and W.
    """
    h, w = _spatial(x, data_format)
    return _apply_hw_matrices(x, _align_corners_matrix(h, size[0]), _align_corners_matrix(w, size[1]), data_format)


def _run(layers, x, training):
    for layer in layers:
        x = layer(x, training=training)
    return x


class _LiteLayer(BaseLayer):
    """Shared constructor bits: BatchNorm or folded convs, and the layout."""

    def __init__(self, norm=True, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.norm = bool(norm)

    def build(self, input_shape=None):
        # Sublayers build themselves on the first call. Without this, Keras
        # would first trace the whole network symbolically to build it, which
        # takes ~10x longer than a real forward pass of Lite-HRNet.
        self.built = True

    def conv(self, filters, kernel_size, name, strides=1, groups=1, activation=None):
        """A conv that is followed by BatchNorm in MMPose (a biased conv when folded)."""
        return ConvBN(
            filters, kernel_size, strides, groups=groups, norm=self.norm,
            use_bias=not self.norm, activation=activation,
            data_format=self._data_format_arg, kernel_initializer=_INIT, name=name,
        )

    def dw(self, channels, name, strides=1):
        """Depthwise 3x3 with BatchNorm and no activation (everywhere in Lite-HRNet)."""
        return self.conv(channels, 3, name, strides=strides, groups=channels)

    def get_config(self):
        config = super().get_config()
        config.update(norm=self.norm)
        return config


# --------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keraspose")
class LiteHRNetStem(_LiteLayer):
    """3x3 stride-2 conv, then a ShuffleNet-v2 stride-2 unit: 1/4 resolution.

    Example:
    >>> import numpy as np
    >>> stem = LiteHRNetStem(3, 32, 32, 1, data_format="channels_last")
    >>> tuple(stem(np.zeros((1, 64, 48, 3), "float32")).shape)
    (1, 16, 12, 32)
    """

    def __init__(self, in_channels, stem_channels, out_channels, expand_ratio, norm=True, data_format=None, **kwargs):
        super().__init__(norm, data_format, **kwargs)
        self.in_channels, self.stem_channels = int(in_channels), int(stem_channels)
        self.out_channels, self.expand_ratio = int(out_channels), expand_ratio
        mid = int(round(stem_channels * expand_ratio))
        half = stem_channels // 2
        same = stem_channels == out_channels
        self.conv1 = self.conv(stem_channels, 3, "conv1", strides=2, activation="relu")
        self.branch1 = [
            self.dw(half, "branch1_dw", strides=2),
            self.conv(out_channels - half if same else out_channels - stem_channels, 1, "branch1_pw", activation="relu"),
        ]
        self.expand_conv = self.conv(mid, 1, "expand_conv", activation="relu")
        self.depthwise_conv = self.dw(mid, "depthwise_conv", strides=2)
        self.linear_conv = self.conv(half if same else stem_channels, 1, "linear_conv", activation="relu")

    def call(self, x, training=None):
        x = self.conv1(x, training=training)
        x1, x2 = _halves(x, self.data_format)
        x2 = _run([self.expand_conv, self.depthwise_conv, self.linear_conv], x2, training)
        return concat_shuffle(_run(self.branch1, x1, training), x2, self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, stem_channels=self.stem_channels,
            out_channels=self.out_channels, expand_ratio=self.expand_ratio,
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class ShuffleUnit(_LiteLayer):
    """ShuffleNet-v2 unit, stride 1 (the NAIVE block): half the channels through 1x1, dw 3x3, 1x1."""

    def __init__(self, channels, norm=True, data_format=None, **kwargs):
        super().__init__(norm, data_format, **kwargs)
        self.channels = int(channels)
        half = self.channels // 2
        self.branch2 = [
            self.conv(half, 1, "conv1", activation="relu"),
            self.dw(half, "dw"),
            self.conv(half, 1, "conv2", activation="relu"),
        ]

    def call(self, x, training=None):
        x1, x2 = _halves(x, self.data_format)
        return concat_shuffle(x1, _run(self.branch2, x2, training), self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class ConditionalChannelWeighting(_LiteLayer):
    """The LITE block: cross-resolution weighting, depthwise 3x3 and spatial weighting on half the channels.

    Works on all branches at once (the cross-resolution weights come from
    every branch). Input and output: a list of feature maps, highest
    resolution first.
    """

    def __init__(self, in_channels, reduce_ratio, norm=True, data_format=None, **kwargs):
        super().__init__(norm, data_format, **kwargs)
        self.in_channels = [int(c) for c in in_channels]
        self.reduce_ratio = reduce_ratio
        self.branch_channels = [c // 2 for c in self.in_channels]
        total = sum(self.branch_channels)
        # Cross-resolution weighting (BatchNorm-ed 1x1 convs).
        self.crw_conv1 = self.conv(int(total / reduce_ratio), 1, "crw_conv1", activation="relu")
        self.crw_conv2 = self.conv(total, 1, "crw_conv2", activation="sigmoid")
        self.depthwise_convs = [self.dw(c, f"dw{i}") for i, c in enumerate(self.branch_channels)]
        # Spatial weighting: squeeze-excitation whose convs have a bias and no
        # BatchNorm in MMPose (norm_cfg=None), folded or not.
        self.spatial_weighting = [
            [
                ConvBN(int(c / 4), 1, norm=False, use_bias=True, activation="relu",
                       data_format=data_format, kernel_initializer=_INIT, name=f"sw{i}_conv1"),
                ConvBN(c, 1, norm=False, use_bias=True, activation="sigmoid",
                       data_format=data_format, kernel_initializer=_INIT, name=f"sw{i}_conv2"),
            ]
            for i, c in enumerate(self.branch_channels)
        ]

    def call(self, xs, training=None):
        df, axis = self.data_format, backend.channel_axis(self.data_format)
        halves = [_halves(x, df) for x in xs]
        x1s, x2s = [h[0] for h in halves], [h[1] for h in halves]

        smallest = _spatial(x2s[-1], df)
        pooled = [adaptive_avg_pool(s, smallest, df) for s in x2s[:-1]] + [x2s[-1]]
        w = ops.concatenate(pooled, axis=axis)
        w = self.crw_conv2(self.crw_conv1(w, training=training), training=training)
        splits = np.cumsum(self.branch_channels)[:-1].tolist()
        weights = ops.split(w, splits, axis=axis)
        x2s = [s * resize_nearest(a, _spatial(s, df), df) for s, a in zip(x2s, weights)]

        out = []
        for x1, x2, dw, sw in zip(x1s, x2s, self.depthwise_convs, self.spatial_weighting):
            x2 = dw(x2, training=training)
            squeeze = ops.mean(x2, axis=(2, 3) if df == "channels_first" else (1, 2), keepdims=True)
            x2 = x2 * _run(sw, squeeze, training)
            out.append(concat_shuffle(x1, x2, df))
        return out

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, reduce_ratio=self.reduce_ratio)
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class LiteHRModule(_LiteLayer):
    """Blocks on every branch, then every branch fused into every output.

    Input and output: lists of feature maps, highest resolution first (all
    outputs are produced: MMPose's Lite-HRNet always uses multiscale output).
    """

    def __init__(self, in_channels, num_blocks, module_type="LITE", reduce_ratio=8, with_fuse=True,
                 norm=True, data_format=None, **kwargs):
        super().__init__(norm, data_format, **kwargs)
        self.in_channels = [int(c) for c in in_channels]
        self.num_blocks = int(num_blocks)
        self.module_type = module_type.upper()
        self.reduce_ratio = reduce_ratio
        self.with_fuse = bool(with_fuse)
        df, n = data_format, len(self.in_channels)
        if self.module_type == "LITE":
            self.blocks = [
                ConditionalChannelWeighting(self.in_channels, reduce_ratio, norm, df, name=f"weighting{b}")
                for b in range(self.num_blocks)
            ]
        elif self.module_type == "NAIVE":
            self.blocks = [
                [ShuffleUnit(c, norm, df, name=f"branch{i}_unit{b}") for b in range(self.num_blocks)]
                for i, c in enumerate(self.in_channels)
            ]
        else:
            raise ValueError(f"LiteHRModule: module_type must be 'LITE' or 'NAIVE', got {module_type!r}")

        # fuse[i][j]: the path from branch j to output i (None for i == j).
        self.fuse = []
        for i in range(n if self.with_fuse and n > 1 else 0):
            row = []
            for j in range(n):
                if j == i:
                    row.append(None)
                elif j > i:
                    row.append([self.conv(self.in_channels[i], 1, f"fuse{i}_from{j}")])
                else:
                    chain = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        chain.append(self.dw(self.in_channels[j], f"fuse{i}_from{j}_{k}_dw", strides=2))
                        chain.append(self.conv(
                            self.in_channels[i] if last else self.in_channels[j], 1,
                            f"fuse{i}_from{j}_{k}_pw", activation=None if last else "relu",
                        ))
                    row.append(chain)
            self.fuse.append(row)

    def _fuse_path(self, i, j, x, training):
        y = _run(self.fuse[i][j], x, training)
        if j > i:
            y = backend.upsample_nearest(y, 2 ** (j - i), self.data_format)
        return y

    def call(self, xs, training=None):
        xs = list(xs)
        if self.module_type == "LITE":
            for block in self.blocks:
                xs = block(xs, training=training)
        else:
            xs = [_run(units, x, training) for units, x in zip(self.blocks, xs)]
        if not self.fuse:
            return xs
        out, sum0 = [], None
        for i in range(len(self.fuse)):
            # MMPose: ``y = out[0] if i == 0 else fuse[i][0](out[0])`` then
            # ``y += ...`` for every j, j == 0 included, so branch 0 is counted
            # twice; and for i == 0 the adds go into out[0] in place, so later
            # outputs read branch 0 as output 0's (pre-ReLU) sum.
            z = xs[0] if i == 0 else self._fuse_path(i, 0, sum0, training)
            y = z + z
            for j in range(1, len(xs)):
                y = backend.add_(y, xs[j] if j == i else self._fuse_path(i, j, xs[j], training))
            if i == 0:
                sum0 = y
                out.append(ops.relu(y))  # not in place: sum0 is read again
            else:
                out.append(backend.relu_(y))
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, num_blocks=self.num_blocks, module_type=self.module_type,
            reduce_ratio=self.reduce_ratio, with_fuse=self.with_fuse,
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class IterativeHead(_LiteLayer):
    """From the lowest resolution up: upsample (bilinear, aligned corners), add, depthwise-separable conv.

    Input: a list of feature maps, highest resolution first; output: the
    list of refined maps in the same order.
    """

    def __init__(self, in_channels, norm=True, data_format=None, **kwargs):
        super().__init__(norm, data_format, **kwargs)
        self.in_channels = [int(c) for c in in_channels]
        rev = self.in_channels[::-1]
        self.projects = [
            [self.dw(c, f"project{i}_dw"),
             self.conv(rev[i + 1] if i + 1 < len(rev) else c, 1, f"project{i}_pw", activation="relu")]
            for i, c in enumerate(rev)
        ]

    def call(self, xs, training=None):
        ys, last = [], None
        for x, project in zip(xs[::-1], self.projects):
            if last is not None:
                x = x + resize_bilinear_align_corners(last, _spatial(x, self.data_format), self.data_format)
            last = _run(project, x, training)
            ys.append(last)
        return ys[::-1]

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels)
        return config


# --------------------------------------------------------------------------
# The backbone
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keraspose")
class LiteHRNetBackbone(_LiteLayer):
    """Lite-HRNet, configured like MMPose's ``LiteHRNet(extra=...)``.

    Args:
        extra: the architecture dict (see the module docstring);
            :func:`litehrnet_extra` and :func:`tinypose_extra` give the known ones.
        in_channels: input image channels.
        norm: ``True`` for MMPose's conv + BatchNorm; ``False`` for folded
            checkpoints (every BatchNorm-ed conv becomes a conv with bias).
        data_format: ``None`` for the backend's preferred layout.

    Input: images in ``data_format`` layout. Output: ``[feature map]``, the
    highest-resolution branch at 1/4 of the input resolution.

    Example:
    >>> import numpy as np
    >>> from keraspose.models.litehrnet import LiteHRNetBackbone, litehrnet_extra
    >>> net = LiteHRNetBackbone(litehrnet_extra(18), data_format="channels_last")
    >>> [tuple(f.shape) for f in net(np.zeros((1, 256, 192, 3), "float32"))]
    [(1, 64, 48, 40)]
    """

    def __init__(self, extra, in_channels=3, norm=True, data_format=None, **kwargs):
        super().__init__(norm, data_format, **kwargs)
        # _as_lists builds fresh containers: the caller's dict is never shared.
        self.extra = _as_lists(extra)
        self.in_channels = int(in_channels)
        extra, df = self.extra, data_format
        try:
            stem, spec = extra["stem"], extra["stages_spec"]
            num_stages = extra["num_stages"]
            for key in ("num_modules", "num_branches", "num_blocks", "module_type", "num_channels"):
                if len(spec[key]) != num_stages:
                    raise ValueError(f"stages_spec['{key}'] needs {num_stages} entries, got {spec[key]}")
        except KeyError as e:
            raise ValueError(f"LiteHRNetBackbone: extra is missing {e}") from None

        self.stem = LiteHRNetStem(
            self.in_channels, stem["stem_channels"], stem["out_channels"], stem["expand_ratio"],
            norm, df, name="stem",
        )
        prev = [stem["out_channels"]]
        self.transitions, self.stages = [], []
        for s in range(num_stages):
            channels = spec["num_channels"][s]
            if len(channels) != spec["num_branches"][s]:
                raise ValueError(f"LiteHRNetBackbone: stage {s} has {spec['num_branches'][s]} branches "
                                 f"but num_channels {channels}")
            self.transitions.append(self._make_transition(prev, channels, s))
            self.stages.append([
                LiteHRModule(
                    channels, spec["num_blocks"][s], spec["module_type"][s],
                    spec.get("reduce_ratios", [8] * num_stages)[s],
                    spec.get("with_fuse", [True] * num_stages)[s], norm, df, name=f"stage{s}_{m}",
                )
                for m in range(spec["num_modules"][s])
            ])
            prev = channels
        self.with_head = bool(extra.get("with_head", True))
        self.head = IterativeHead(prev, norm, df, name="head_layer") if self.with_head else None
        self.out_channels = [prev[0]]

    def _make_transition(self, prev, cur, s):
        """transition[i]: None, dw 3x3 + 1x1 changing width, or chains of stride-2 dw + 1x1 (new branches)."""
        layers = []
        for i, c in enumerate(cur):
            if i < len(prev):
                if c == prev[i]:
                    layers.append(None)
                else:
                    layers.append([
                        self.dw(prev[i], f"transition{s}_{i}_dw"),
                        self.conv(c, 1, f"transition{s}_{i}_pw", activation="relu"),
                    ])
            else:
                chain = []
                for j in range(i + 1 - len(prev)):
                    out = c if j == i - len(prev) else prev[-1]
                    chain += [
                        self.dw(prev[-1], f"transition{s}_{i}_{j}_dw", strides=2),
                        self.conv(out, 1, f"transition{s}_{i}_{j}_pw", activation="relu"),
                    ]
                layers.append(chain)
        return layers

    def call(self, x, training=None):
        ys = [self.stem(x, training=training)]
        for transition, modules in zip(self.transitions, self.stages):
            # A new branch starts from the previous stage's lowest resolution.
            xs = [
                ys[i] if path is None else _run(path, ys[i] if i < len(ys) else ys[-1], training)
                for i, path in enumerate(transition)
            ]
            for module in modules:
                xs = module(xs, training=training)
            ys = xs
        if self.head is not None:
            ys = self.head(ys, training=training)
        return [ys[0]]

    def checkpoint_keys(self, prefix="backbone"):
        """(ConvBN layer, conv key, BatchNorm key or None) for every conv, in MMPose's state-dict names."""
        keys = []

        def cm(layer, p):  # an mmcv ConvModule: .conv (+ .bn)
            keys.append((layer, f"{p}.conv", f"{p}.bn" if layer.norm else None))

        def seq(layers, p):  # nn.Sequential(conv, bn, conv, bn[, relu])
            for n, layer in enumerate(layers):
                keys.append((layer, f"{p}.{2 * n}", f"{p}.{2 * n + 1}" if layer.norm else None))

        stem, p = self.stem, f"{prefix}.stem"
        for layer, key in ((stem.conv1, "conv1"), (stem.branch1[0], "branch1.0"), (stem.branch1[1], "branch1.1"),
                           (stem.expand_conv, "expand_conv"), (stem.depthwise_conv, "depthwise_conv"),
                           (stem.linear_conv, "linear_conv")):
            cm(layer, f"{p}.{key}")
        for s, (transition, modules) in enumerate(zip(self.transitions, self.stages)):
            for i, path in enumerate(transition):
                if path is None:
                    continue
                if path[0].strides == 1:  # width change: one Sequential
                    seq(path, f"{prefix}.transition{s}.{i}")
                else:  # new branch: Sequential of Sequentials (dw, pw)
                    for j in range(len(path) // 2):
                        seq(path[2 * j : 2 * j + 2], f"{prefix}.transition{s}.{i}.{j}")
            for m, module in enumerate(modules):
                p = f"{prefix}.stage{s}.{m}"
                for b, block in enumerate(module.blocks):
                    if module.module_type == "LITE":
                        q = f"{p}.layers.{b}"
                        cm(block.crw_conv1, f"{q}.cross_resolution_weighting.conv1")
                        cm(block.crw_conv2, f"{q}.cross_resolution_weighting.conv2")
                        for i, (dw, sw) in enumerate(zip(block.depthwise_convs, block.spatial_weighting)):
                            cm(dw, f"{q}.depthwise_convs.{i}")
                            keys.append((sw[0], f"{q}.spatial_weighting.{i}.conv1.conv", None))
                            keys.append((sw[1], f"{q}.spatial_weighting.{i}.conv2.conv", None))
                    else:  # block = the units of branch b
                        for u, unit in enumerate(block):
                            for n, layer in enumerate(unit.branch2):
                                cm(layer, f"{p}.layers.{b}.{u}.branch2.{n}")
                for i, row in enumerate(module.fuse):
                    for j, path in enumerate(row):
                        if path is None:
                            continue
                        if j > i:
                            seq(path, f"{p}.fuse_layers.{i}.{j}")
                        else:
                            for k in range(len(path) // 2):
                                seq(path[2 * k : 2 * k + 2], f"{p}.fuse_layers.{i}.{j}.{k}")
        if self.head is not None:
            for i, (dw, pw) in enumerate(self.head.projects):
                cm(dw, f"{prefix}.head_layer.projects.{i}.depthwise_conv")
                cm(pw, f"{prefix}.head_layer.projects.{i}.pointwise_conv")
        return keys

    def get_config(self):
        config = super().get_config()
        # Plain containers: Keras wraps a layer's dict attribute in a tracker
        # that refers back to the layer, which from_config would deep-copy.
        config.update(extra=_as_lists(self.extra), in_channels=self.in_channels)
        return config
