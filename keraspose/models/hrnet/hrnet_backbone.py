"""HRNet backbone (Sun et al., "Deep High-Resolution Representation Learning").

Configured exactly like MMPose's ``HRNet``: a stem of two stride-2 3x3 convs,
``layer1`` (stage 1, one branch), then stages 2-4, each a sequence of
high-resolution modules (HRModule) with one more, half-resolution, branch than
the stage before. Every MMPose HRNet config can be written as the ``extra``
dict it uses::

    extra = {
        "stage1": {"num_modules": 1, "num_branches": 1, "block": "BOTTLENECK",
                   "num_blocks": [4], "num_channels": [64]},
        "stage2": {"num_modules": 1, "num_branches": 2, "block": "BASIC",
                   "num_blocks": [4, 4], "num_channels": [32, 64]},
        ...
    }

:func:`hrnet_extra` gives the standard W32/W48 widths.
"""

import keras

from keraspose.layers.base import BaseLayer
from keraspose import backend
from keraspose.layers import ConvBN
from keraspose.models.blocks import BLOCKS, make_res_layer


def hrnet_extra(width=32):
    """The ``extra`` stage spec of HRNet-W``width`` (W32, W48, ...) as in MMPose."""

    def stage(modules, branches, block, channels):
        return {
            "num_modules": modules, "num_branches": branches, "block": block,
            "num_blocks": [4] * branches, "num_channels": channels,
        }

    w = width
    return {
        "stage1": stage(1, 1, "BOTTLENECK", [64]),
        "stage2": stage(1, 2, "BASIC", [w, 2 * w]),
        "stage3": stage(4, 3, "BASIC", [w, 2 * w, 4 * w]),
        "stage4": stage(3, 4, "BASIC", [w, 2 * w, 4 * w, 8 * w]),
    }


@keras.saving.register_keras_serializable(package="keraspose")
class HRModule(BaseLayer):
    """Parallel branches of residual blocks, then every branch fused into every output.

    Output ``i`` is ``relu(sum_j f_ij(x_j))`` where ``f_ii`` is the identity,
    ``f_ij`` for a lower-resolution ``j`` is a 1x1 conv + BN + nearest
    upsampling, and for a higher-resolution ``j`` a chain of stride-2 3x3
    convs. With ``multiscale_output=False`` only the highest resolution is
    produced (MMPose's last module of the last stage).
    """

    def __init__(
        self, in_channels, block, num_blocks, num_channels,
        multiscale_output=True, data_format=None, **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        self.in_channels = list(in_channels)
        self.block = block
        self.num_blocks = list(num_blocks)
        self.num_channels = list(num_channels)
        self.multiscale_output = multiscale_output
        n = len(self.num_channels)
        if not (len(self.in_channels) == len(self.num_blocks) == n):
            raise ValueError(
                f"HRModule: in_channels {self.in_channels}, num_blocks {self.num_blocks} and "
                f"num_channels {self.num_channels} must have one entry per branch"
            )
        block_cls = BLOCKS[block]
        out_channels = [c * block_cls.expansion for c in self.num_channels]
        self.out_channels = out_channels
        self.branches = [
            make_res_layer(
                block_cls, self.num_blocks[i], self.in_channels[i], out_channels[i], 1,
                data_format, name=f"branch{i}",
            )
            for i in range(n)
        ]
        # fuse[i][j]: the path from branch j to output i (None for i == j).
        self.fuse = []
        num_outputs = n if multiscale_output else 1
        for i in range(num_outputs if n > 1 else 0):
            row = []
            for j in range(n):
                if j == i:
                    row.append(None)
                elif j > i:
                    row.append([ConvBN(out_channels[i], 1, data_format=data_format, name=f"fuse{i}_from{j}")])
                else:
                    chain = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        chain.append(
                            ConvBN(
                                out_channels[i] if last else out_channels[j], 3, 2,
                                activation=None if last else "relu",
                                data_format=data_format, name=f"fuse{i}_from{j}_{k}",
                            )
                        )
                    row.append(chain)
            self.fuse.append(row)

    def call(self, xs, training=None):
        xs = list(xs)
        for i, blocks in enumerate(self.branches):
            for blk in blocks:
                xs[i] = blk(xs[i], training=training)
        if len(xs) == 1:
            return xs
        outputs = []
        for i, row in enumerate(self.fuse):
            y = None
            for j, path in enumerate(row):
                if path is None:
                    continue
                z = xs[j]
                for layer in path:
                    z = layer(z, training=training)
                if j > i:
                    z = backend.upsample_nearest(z, 2 ** (j - i), self.data_format)
                # The first sum is a new tensor (xs[i] feeds other outputs
                # too); later ones may accumulate into it.
                y = xs[i] + z if y is None else backend.add_(y, z)
            outputs.append(backend.relu_(y))
        return outputs

    def checkpoint_keys(self, prefix):
        keys = []
        for i, blocks in enumerate(self.branches):
            for b, blk in enumerate(blocks):
                keys += blk.checkpoint_keys(f"{prefix}.branches.{i}.{b}")
        for i, row in enumerate(self.fuse):
            for j, path in enumerate(row):
                if path is None:
                    continue
                if j > i:  # Sequential(conv, bn, upsample)
                    keys.append((path[0], f"{prefix}.fuse_layers.{i}.{j}.0", f"{prefix}.fuse_layers.{i}.{j}.1"))
                else:  # Sequential of Sequential(conv, bn[, relu])
                    for k, layer in enumerate(path):
                        p = f"{prefix}.fuse_layers.{i}.{j}.{k}"
                        keys.append((layer, f"{p}.0", f"{p}.1"))
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, block=self.block, num_blocks=self.num_blocks,
            num_channels=self.num_channels, multiscale_output=self.multiscale_output,
        )
        return config


@keras.saving.register_keras_serializable(package="keraspose")
class HRNetBackbone(BaseLayer):
    """HRNet, configured like MMPose's ``HRNet(extra=...)``.

    Input: images in ``data_format`` layout (channels-first on torch unless set).
    Output: a list of feature maps, highest resolution first (only that one
    unless ``extra["stage4"]["multiscale_output"]`` is true), at 1/4 of the
    input resolution.

    Example:
    >>> import numpy as np
    >>> from keraspose.models.hrnet import HRNetBackbone, hrnet_extra
    >>> net = HRNetBackbone(hrnet_extra(32), data_format="channels_last")
    >>> [tuple(f.shape) for f in net(np.zeros((1, 256, 192, 3), "float32"))]
    [(1, 64, 48, 32)]
    """

    def __init__(self, extra, in_channels=3, stem_channels=64, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.extra = extra
        self.in_channels = in_channels
        self.stem_channels = stem_channels
        df = data_format
        for s in ("stage1", "stage2", "stage3", "stage4"):
            if s not in extra:
                raise ValueError(f"HRNetBackbone: extra has no '{s}' entry (got keys {sorted(extra)})")
            for field in ("num_modules", "num_branches", "block", "num_blocks", "num_channels"):
                if field not in extra[s]:
                    raise ValueError(f"HRNetBackbone: extra['{s}'] is missing '{field}'")
            if extra[s]["block"] not in BLOCKS:
                raise ValueError(f"HRNetBackbone: extra['{s}']['block'] must be one of {sorted(BLOCKS)}")

        self.conv1 = ConvBN(stem_channels, 3, 2, activation="relu", data_format=df, name="conv1")
        self.conv2 = ConvBN(stem_channels, 3, 2, activation="relu", data_format=df, name="conv2")

        s1 = extra["stage1"]
        block1 = BLOCKS[s1["block"]]
        stage1_out = s1["num_channels"][0] * block1.expansion
        self.layer1 = make_res_layer(block1, s1["num_blocks"][0], stem_channels, stage1_out, 1, df, "layer1")

        prev_channels = [stage1_out]
        self.transitions, self.stages = [], []
        for idx in (2, 3, 4):
            cfg = extra[f"stage{idx}"]
            channels = [c * BLOCKS[cfg["block"]].expansion for c in cfg["num_channels"]]
            self.transitions.append(self._make_transition(prev_channels, channels, idx - 1))
            modules = []
            in_ch = channels
            for m in range(cfg["num_modules"]):
                last = m == cfg["num_modules"] - 1
                multiscale = True
                if idx == 4 and last:
                    multiscale = cfg.get("multiscale_output", False)
                module = HRModule(
                    in_ch, cfg["block"], cfg["num_blocks"], cfg["num_channels"],
                    multiscale_output=multiscale, data_format=df, name=f"stage{idx}_{m}",
                )
                in_ch = module.out_channels
                modules.append(module)
            self.stages.append(modules)
            prev_channels = channels
        self.out_channels = prev_channels if extra["stage4"].get("multiscale_output", False) else prev_channels[:1]

    def _make_transition(self, prev, cur, index):
        """transition[i]: None, a 3x3 conv changing width, or a chain of stride-2 convs."""
        layers = []
        for i, c in enumerate(cur):
            if i < len(prev):
                if c != prev[i]:
                    layers.append([ConvBN(c, 3, activation="relu", data_format=self._data_format_arg, name=f"transition{index}_{i}")])
                else:
                    layers.append(None)
            else:
                chain = []
                for j in range(i + 1 - len(prev)):
                    out = c if j == i - len(prev) else prev[-1]
                    chain.append(
                        ConvBN(out, 3, 2, activation="relu", data_format=self._data_format_arg, name=f"transition{index}_{i}_{j}")
                    )
                layers.append(chain)
        return layers

    def call(self, x, training=None):
        x = self.conv1(x, training=training)
        x = self.conv2(x, training=training)
        for blk in self.layer1:
            x = blk(x, training=training)
        ys = [x]
        for transition, modules in zip(self.transitions, self.stages):
            xs = []
            for i, path in enumerate(transition):
                if path is None:
                    xs.append(ys[i])
                    continue
                # As in MMPose, every transition (a new branch or a width
                # change) starts from the lowest-resolution previous output.
                z = ys[-1]
                for layer in path:
                    z = layer(z, training=training)
                xs.append(z)
            for module in modules:
                xs = module(xs, training=training)
            ys = xs
        return ys

    def checkpoint_keys(self, prefix="backbone"):
        """(ConvBN layer, conv key, bn key) for every conv, in MMPose's names."""
        keys = [
            (self.conv1, f"{prefix}.conv1", f"{prefix}.bn1"),
            (self.conv2, f"{prefix}.conv2", f"{prefix}.bn2"),
        ]
        for b, blk in enumerate(self.layer1):
            keys += blk.checkpoint_keys(f"{prefix}.layer1.{b}")
        for t, (transition, modules) in enumerate(zip(self.transitions, self.stages), start=1):
            for i, path in enumerate(transition):
                if path is None:
                    continue
                if len(path) == 1 and path[0].strides == 1:  # Sequential(conv, bn, relu)
                    keys.append((path[0], f"{prefix}.transition{t}.{i}.0", f"{prefix}.transition{t}.{i}.1"))
                else:  # Sequential of Sequential(conv, bn, relu)
                    for j, layer in enumerate(path):
                        p = f"{prefix}.transition{t}.{i}.{j}"
                        keys.append((layer, f"{p}.0", f"{p}.1"))
            for m, module in enumerate(modules):
                keys += module.checkpoint_keys(f"{prefix}.stage{t + 1}.{m}")
        return keys

    def get_config(self):
        config = super().get_config()
        config.update(
            extra=self.extra, in_channels=self.in_channels,
            stem_channels=self.stem_channels,
        )
        return config
