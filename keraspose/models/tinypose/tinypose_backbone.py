"""PP-TinyPose backbone, rebuilt from its ncnn graph.

PP-TinyPose (PaddleDetection, Apache-2.0) is a "wider naive" Lite-HRNet:
shuffle blocks (channel split, 1x1 conv, depthwise 3x3, 1x1 conv, concat,
channel shuffle) in parallel branches, fused across resolutions by
upsampling and addition. The only copy of its trained weights available
offline is an ncnn export with BatchNorm folded into every convolution, and
that export's graph is the exact architecture. So this backbone is that
graph, as data: a list of nodes (``conv``, ``slice``, ``concat``,
``shuffle``, ``upsample``, ``add``, ``relu``, ``split``) executed in order,
with every convolution a keraspose :class:`ConvBN` (``norm=False``,
``use_bias=True``). It runs on every backend, saves and loads like any other
keraspose layer, and :mod:`keraspose.convert.ncnn` fills its weights.
"""

import keras
import numpy as np
from keras import ops

from keraspose import backend
from keraspose.layers import BaseLayer, ConvBN


def _align_corners_matrix(in_size, out_size):
    """``(out, in)`` matrix of bilinear interpolation with align_corners=True."""
    m = np.zeros((out_size, in_size), np.float32)
    if out_size == 1 or in_size == 1:
        m[:, 0] = 1.0
        return m
    pos = np.arange(out_size) * (in_size - 1) / (out_size - 1)
    lo = np.minimum(np.floor(pos).astype(int), in_size - 2)
    frac = (pos - lo).astype(np.float32)
    m[np.arange(out_size), lo] = 1.0 - frac
    m[np.arange(out_size), lo + 1] += frac
    return m


@keras.saving.register_keras_serializable(package="keraspose")
class TinyPoseBackbone(BaseLayer):
    """A PP-TinyPose network given as its node list (see :mod:`keraspose.convert.ncnn`).

    Args:
        nodes: list of dicts ``{"op", "name", "inputs", "outputs", ...}``;
            ``conv`` nodes carry ``filters, kernel_size, strides, padding,
            groups, relu``; ``upsample`` nodes ``mode`` (``nearest`` with an
            integer ``factor``, or ``bilinear`` to ``size`` (h, w) with
            aligned corners); ``shuffle`` nodes ``groups``.
        input_name, output_name: the graph's input and output tensors.

    Output: a list with one feature map (the input of the heatmap conv).
    """

    def __init__(self, nodes, input_name, output_name, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.nodes = [dict(n) for n in nodes]
        self.input_name, self.output_name = input_name, output_name
        self._data_format_arg = data_format
        self.data_format = backend.resolve_data_format(data_format)
        self.channel_axis = backend.channel_axis(self.data_format)
        self.convs = []
        self._conv_index = {}
        for node in self.nodes:
            if node["op"] == "conv":
                self._conv_index[node["name"]] = len(self.convs)
                self.convs.append(
                    ConvBN(
                        node["filters"], node["kernel_size"], node["strides"], padding=node["padding"],
                        groups=node["groups"], norm=False, use_bias=True,
                        activation="relu" if node["relu"] else None,
                        data_format=data_format, name=node["name"],
                    )
                )

    def conv_layer(self, name):
        return self.convs[self._conv_index[name]]

    def _shuffle(self, x, groups):
        if self.data_format == "channels_first":
            b, c, h, w = ops.shape(x)
            x = ops.reshape(x, (b, groups, c // groups, h, w))
            return ops.reshape(ops.transpose(x, (0, 2, 1, 3, 4)), (b, c, h, w))
        b, h, w, c = ops.shape(x)
        x = ops.reshape(x, (b, h, w, groups, c // groups))
        return ops.reshape(ops.transpose(x, (0, 1, 2, 4, 3)), (b, h, w, c))

    def _bilinear(self, x, size):
        h_axis = 2 if self.data_format == "channels_first" else 1
        in_h, in_w = x.shape[h_axis], x.shape[h_axis + 1]
        mh = ops.convert_to_tensor(_align_corners_matrix(in_h, size[0]))
        mw = ops.convert_to_tensor(_align_corners_matrix(in_w, size[1]))
        if self.data_format == "channels_first":
            return ops.einsum("oh,bchw,pw->bcop", mh, x, mw)
        return ops.einsum("oh,bhwc,pw->bopc", mh, x, mw)

    def call(self, x, training=None):
        env = {self.input_name: x}
        for node in self.nodes:
            op, ins, outs = node["op"], node["inputs"], node["outputs"]
            if op == "conv":
                env[outs[0]] = self.conv_layer(node["name"])(env[ins[0]], training=training)
            elif op == "split":
                for o in outs:
                    env[o] = env[ins[0]]
            elif op == "slice":
                parts = ops.split(env[ins[0]], len(outs), axis=self.channel_axis)
                env.update(zip(outs, parts))
            elif op == "concat":
                env[outs[0]] = ops.concatenate([env[i] for i in ins], axis=self.channel_axis)
            elif op == "shuffle":
                env[outs[0]] = self._shuffle(env[ins[0]], node["groups"])
            elif op == "upsample":
                if node["mode"] == "nearest":
                    env[outs[0]] = backend.upsample_nearest(env[ins[0]], node["factor"], self.data_format)
                else:
                    env[outs[0]] = self._bilinear(env[ins[0]], node["size"])
            elif op == "add":
                env[outs[0]] = env[ins[0]] + env[ins[1]]
            elif op == "relu":
                env[outs[0]] = ops.relu(env[ins[0]])
            else:
                raise ValueError(f"{self.name}: unknown node op {op!r} in node {node['name']}")
        return [env[self.output_name]]

    def get_config(self):
        config = super().get_config()
        config.update(
            nodes=self.nodes, input_name=self.input_name, output_name=self.output_name,
            data_format=self._data_format_arg,
        )
        return config
