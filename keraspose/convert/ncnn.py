"""Convert PP-TinyPose's ncnn export (``.param`` graph + ``.bin`` weights) to a TopdownEstimator.

The ``.param`` text lists layers in execution order: ``Type Name n_in n_out
inputs... outputs... k=v...``. Every layer is mapped onto a node of
:class:`~keraspose.models.tinypose.TinyPoseBackbone` (the last convolution,
producing the heatmaps, becomes the HeatmapHead's ``final_layer``); an
unknown layer type or an unexpected parameter pattern is an error naming the
layer. The ``.bin`` holds each convolution's weights (a 4-byte tag
``0x01306B47`` then float16 values, padded to 4 bytes) and bias (float32),
in layer order; every byte must be consumed.
"""

import os
import struct

import numpy as np

from keraspose.codecs import MSRAHeatmap
from keraspose.convert.mmpose import ConversionError
from keraspose.models.heads import HeatmapHead
from keraspose.models.tinypose import TinyPoseBackbone
from keraspose.models.topdown_estimator import TopdownEstimator

_FP16_TAG = 0x01306B47
_FP32_TAG = 0


def parse_param(path):
    """The layers of an ncnn ``.param`` file as dicts (type, name, inputs, outputs, params)."""
    path = os.fspath(path)
    with open(path) as f:
        lines = [ln.split() for ln in f if ln.strip()]
    if not lines or lines[0] != ["7767517"]:
        raise ConversionError(f"{path}: not an ncnn .param file (missing magic 7767517)")
    layers = []
    for fields in lines[2:]:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        ins = fields[4 : 4 + n_in]
        outs = fields[4 + n_in : 4 + n_in + n_out]
        params = {}
        for kv in fields[4 + n_in + n_out :]:
            k, v = kv.split("=", 1)
            params[int(k)] = v
        layers.append({"type": kind, "name": name, "inputs": ins, "outputs": outs, "params": params})
    return layers


def _int(params, key, default):
    return int(params.get(key, default))


def _to_nodes(layers, path):
    """ncnn layers -> TinyPoseBackbone nodes (channel shuffles recognised)."""
    nodes, input_name, i = [], None, 0
    while i < len(layers):
        layer = layers[i]
        kind, p, name = layer["type"], layer["params"], layer["name"]
        base = {"name": name, "inputs": layer["inputs"], "outputs": layer["outputs"]}
        if kind == "Input":
            input_name = layer["outputs"][0]
        elif kind in ("Convolution", "ConvolutionDepthWise"):
            k = _int(p, 1, 1)
            if _int(p, 11, k) != k or _int(p, 2, 1) != 1:
                raise ConversionError(f"{path}: layer {name}: only square, undilated kernels are supported")
            activation = _int(p, 9, 0)
            if activation not in (0, 1):
                raise ConversionError(f"{path}: layer {name}: activation type {activation} is not supported")
            nodes.append(dict(
                base, op="conv", filters=_int(p, 0, 0), kernel_size=k, strides=_int(p, 3, 1),
                padding=_int(p, 4, 0), groups=_int(p, 7, 1) if kind == "ConvolutionDepthWise" else 1,
                relu=activation == 1, bias=_int(p, 5, 0) == 1, weight_count=_int(p, 6, 0),
            ))
        elif kind == "Split":
            nodes.append(dict(base, op="split"))
        elif kind == "Slice":
            if p.get(-23300) not in (None, "2,-233,-233") or _int(p, 1, 0) != 0:
                raise ConversionError(f"{path}: layer {name}: only an even 2-way channel Slice is supported")
            nodes.append(dict(base, op="slice"))
        elif kind == "Concat":
            if _int(p, 0, 0) != 0:
                raise ConversionError(f"{path}: layer {name}: only channel Concat is supported")
            nodes.append(dict(base, op="concat"))
        elif kind == "Reshape":
            # Channel shuffle = Reshape(C -> g x C/g) + Permute(swap) + Reshape(back).
            nxt = layers[i + 1 : i + 3]
            if not (len(nxt) == 2 and nxt[0]["type"] == "Permute" and _int(nxt[0]["params"], 0, 0) == 2
                    and nxt[1]["type"] == "Reshape"):
                raise ConversionError(f"{path}: layer {name}: Reshape outside a channel-shuffle pattern")
            nodes.append({
                "name": name, "op": "shuffle", "groups": _int(p, 2, 1),
                "inputs": layer["inputs"], "outputs": nxt[1]["outputs"],
            })
            i += 3
            continue
        elif kind == "Interp":
            mode = _int(p, 0, 0)
            if mode in (0, 1) and 1 in p:
                factor = float(p[1])
                if factor != float(p.get(2, factor)) or factor != int(factor):
                    raise ConversionError(f"{path}: layer {name}: only equal integer nearest scales are supported")
                nodes.append(dict(base, op="upsample", mode="nearest", factor=int(factor)))
            elif mode == 2 and _int(p, 6, 0) == 1 and 3 in p:
                nodes.append(dict(base, op="upsample", mode="bilinear", size=[_int(p, 3, 0), _int(p, 4, 0)]))
            else:
                raise ConversionError(f"{path}: layer {name}: Interp parameters {p} are not supported")
        elif kind == "BinaryOp":
            if _int(p, 0, 0) != 0 or len(layer["inputs"]) != 2:
                raise ConversionError(f"{path}: layer {name}: only two-input BinaryOp add is supported")
            nodes.append(dict(base, op="add"))
        elif kind == "ReLU":
            if float(p.get(0, 0)) != 0:
                raise ConversionError(f"{path}: layer {name}: leaky ReLU is not supported")
            nodes.append(dict(base, op="relu"))
        else:
            raise ConversionError(f"{path}: layer {name}: ncnn layer type {kind!r} is not supported")
        i += 1
    if input_name is None:
        raise ConversionError(f"{path}: the graph has no Input layer")
    return nodes, input_name


def read_weights(bin_path, conv_nodes):
    """``{conv name: (kernel (out, in/g, k, k) float32, bias or None)}`` from an ncnn ``.bin``."""
    bin_path = os.fspath(bin_path)
    with open(bin_path, "rb") as f:
        data = f.read()
    offset, weights = 0, {}
    for node in conv_nodes:
        count = node["weight_count"]
        if offset + 4 > len(data):
            raise ConversionError(f"{bin_path}: file ends before the weights of {node['name']} (truncated?)")
        (tag,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if tag == _FP16_TAG:
            size = count * 2
            values = np.frombuffer(data, np.float16, count, offset).astype(np.float32)
            offset += (size + 3) // 4 * 4
        elif tag == _FP32_TAG:
            values = np.frombuffer(data, np.float32, count, offset).copy()
            offset += count * 4
        else:
            raise ConversionError(f"{bin_path}: unsupported weight storage tag {tag:#x} at {node['name']}")
        bias = None
        if node["bias"]:
            bias = np.frombuffer(data, np.float32, node["filters"], offset).copy()
            offset += node["filters"] * 4
        weights[node["name"]] = (values, bias)
        if offset > len(data):
            raise ConversionError(f"{bin_path}: file ends inside the weights of {node['name']} (truncated?)")
    if offset != len(data):
        raise ConversionError(f"{bin_path}: {len(data) - offset} bytes left after the last layer; wrong .param?")
    return weights


def convert_tinypose(param_path, bin_path, input_size=None, flip_test=True):
    """A TopdownEstimator with PP-TinyPose's weights, from its ncnn files.

    ``input_size`` (width, height) defaults to 4x the heatmap size the graph
    produces (PP-TinyPose's heatmaps are at 1/4 resolution).

    Example:
    >>> model = convert_tinypose("tinypose_256x192.param", "tinypose_256x192.bin")  # doctest: +SKIP
    """
    layers = parse_param(param_path)
    nodes, input_name = _to_nodes(layers, os.fspath(param_path))
    final = nodes[-1]
    if final["op"] != "conv" or final["relu"] or final["kernel_size"] != 1:
        raise ConversionError(f"{param_path}: the last layer should be the 1x1 heatmap convolution")
    conv_nodes = [n for n in nodes if n["op"] == "conv"]
    weights = read_weights(bin_path, conv_nodes)
    num_keypoints = final["filters"]
    if input_size is None:
        last_bilinear = [n for n in nodes if n["op"] == "upsample" and n["mode"] == "bilinear"]
        if not last_bilinear:
            raise ConversionError("cannot infer the input size; pass input_size=(width, height)")
        h, w = last_bilinear[-1]["size"]
        input_size = (4 * w, 4 * h)
    backbone_nodes = [dict(n) for n in nodes[:-1]]
    for n in backbone_nodes:
        n.pop("weight_count", None)
        n.pop("bias", None)
    backbone = TinyPoseBackbone(backbone_nodes, input_name, final["inputs"][0], name="backbone")
    w, h = input_size
    codec = MSRAHeatmap(input_size=(w, h), heatmap_size=(w // 4, h // 4), sigma=2.0)
    head = HeatmapHead(num_keypoints, codec=codec, name="head")
    model = TopdownEstimator(
        backbone, head, metainfo="coco", input_size=(w, h),
        mean=(0.485 * 255, 0.456 * 255, 0.406 * 255), std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
        channel_order="rgb", flip_test=flip_test, shift_heatmap=True,
    )
    model.build()
    targets = [(backbone.conv_layer(n["name"]), n) for n in conv_nodes[:-1]] + [(head.final_layer, final)]
    for layer, node in targets:
        values, bias = weights[node["name"]]
        want = tuple(layer.kernel.shape)  # (k, k, in/g, out)
        if values.size != int(np.prod(want)):
            raise ConversionError(
                f"{node['name']}: {values.size} weights in the .bin, the layer needs {want}"
            )
        k = node["kernel_size"]
        kernel = values.reshape(node["filters"], -1, k, k).transpose(2, 3, 1, 0)
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
    return model
