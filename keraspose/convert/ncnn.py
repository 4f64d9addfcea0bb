"""PP-TinyPose from its ncnn export (``.param`` graph + ``.bin`` weights).

PP-TinyPose is PaddleDetection's "wider naive" Lite-HRNet, i.e. a
:class:`~keraspose.models.litehrnet.LiteHRNetBackbone` with
:func:`~keraspose.models.litehrnet.tinypose_extra`, followed by a 1x1 conv to
the 17 heatmaps. Its ncnn export has every BatchNorm folded into its conv, so
the backbone is built with ``norm=False``.

The ncnn graph is the ground truth. Rather than trusting layer order, the
converter *walks* it: starting at the input blob, it follows the backbone's own
structure (stem, transitions, shuffle units, fuses, head) and, at each step,
takes the ncnn layer that reads the expected blob and has the expected type
and parameters (kernel, stride, padding, groups, channels, ReLU; Slice,
Concat, the Reshape-Permute-Reshape channel shuffle, Add, nearest and
aligned-corners bilinear Interp). Any step with no matching layer is an error
naming the blob and the layers that do read it; any ncnn layer left unused at
the end is an error naming it. So a conversion that succeeds has mapped every
layer of the graph onto the Keras model, with the same wiring.

File formats: ``.param`` is ``7767517``, ``<layers> <blobs>``, then one line
per layer: ``Type Name n_in n_out inputs... outputs... k=v...``. ``.bin``
holds, per convolution in ``.param`` order, a 4-byte tag (``0x01306B47``:
float16 values follow, padded to 4 bytes; ``0``: float32), the weights
``(out, in/groups, kh, kw)``, then the float32 bias.

Example:
>>> from keraspose.convert.ncnn import load_tinypose  # doctest: +SKIP
>>> tp = load_tinypose("tinypose_256x192.param", "tinypose_256x192.bin")  # doctest: +SKIP
>>> tp["input_size"], tp["final_kernel"].shape  # doctest: +SKIP
((192, 256), (1, 1, 40, 17))
"""

import os
import struct

import keras
import numpy as np

from keraspose import backend
from keraspose.convert.mmpose import ConversionError
from keraspose.layers import ConvBN
from keraspose.models.litehrnet import LiteHRNetBackbone, tinypose_extra

_FP16_TAG = 0x01306B47
_FP32_TAG = 0
_CONV_TYPES = ("Convolution", "ConvolutionDepthWise")


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def parse_param(path):
    """The layers of an ncnn ``.param`` file: dicts with type, name, inputs, outputs, params."""
    path = os.fspath(path)
    with open(path) as f:
        lines = [ln.split() for ln in f if ln.strip()]
    if not lines or lines[0] != ["7767517"]:
        raise ConversionError(f"{path}: not an ncnn .param file (missing magic 7767517)")
    layers = []
    for fields in lines[2:]:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        params = {}
        for kv in fields[4 + n_in + n_out :]:
            k, v = kv.split("=", 1)
            params[int(k)] = v
        layers.append({
            "type": kind, "name": name, "params": params,
            "inputs": fields[4 : 4 + n_in], "outputs": fields[4 + n_in : 4 + n_in + n_out],
        })
    if int(lines[1][0]) != len(layers):
        raise ConversionError(f"{path}: header says {lines[1][0]} layers, found {len(layers)}")
    return layers


def _p(layer, key, default=0):
    return int(layer["params"].get(key, default))


def read_weights(bin_path, layers):
    """``{conv layer name: (weights (out, in/g, k, k) float32, bias float32 or None)}``.

    Every byte of the file must be consumed: a ``.bin`` that does not belong
    to the ``.param`` fails here rather than loading shifted weights.
    """
    bin_path = os.fspath(bin_path)
    with open(bin_path, "rb") as f:
        data = f.read()
    offset, weights = 0, {}
    for layer in layers:
        if layer["type"] not in _CONV_TYPES:
            continue
        name, out, k, count = layer["name"], _p(layer, 0), _p(layer, 1, 1), _p(layer, 6)
        if offset + 4 > len(data):
            raise ConversionError(f"{bin_path}: the file ends before the weights of {name} (truncated?)")
        (tag,) = struct.unpack_from("<I", data, offset)
        offset += 4
        # Check the size before reading, so a truncated file names itself.
        need = ((count * 2 + 3) // 4 * 4 if tag == _FP16_TAG else count * 4) + (out * 4 if _p(layer, 5) else 0)
        if offset + need > len(data):
            raise ConversionError(f"{bin_path}: the file ends inside the weights of {name} (truncated?)")
        if tag == _FP16_TAG:
            values = np.frombuffer(data, np.float16, count, offset).astype(np.float32)
            offset += (count * 2 + 3) // 4 * 4
        elif tag == _FP32_TAG:
            values = np.frombuffer(data, np.float32, count, offset).copy()
            offset += count * 4
        else:
            raise ConversionError(f"{bin_path}: unsupported weight storage tag {tag:#x} at layer {name}")
        bias = None
        if _p(layer, 5):
            bias = np.frombuffer(data, np.float32, out, offset).copy()
            offset += out * 4
        weights[name] = (values.reshape(out, -1, k, k), bias)
    if offset != len(data):
        raise ConversionError(f"{bin_path}: {len(data) - offset} bytes left after the last layer; wrong .param?")
    return weights


# --------------------------------------------------------------------------
# Walking the graph along the backbone's structure
# --------------------------------------------------------------------------


class _Walker:
    """Takes ncnn layers one by one, each identified by the blob it reads and its parameters."""

    def __init__(self, layers, path):
        self.layers, self.path = layers, path
        self.used = [False] * len(layers)
        self.read = set()  # raw blob names some taken layer read
        self.alias = {}  # output of a fan-out Split -> its input
        for layer in layers:
            if layer["type"] == "Split":
                for out in layer["outputs"]:
                    self.alias[out] = layer["inputs"][0]
        self.assignments = []  # (ConvBN, ncnn conv layer)

    def canon(self, blob):
        while blob in self.alias:
            blob = self.alias[blob]
        return blob

    def take(self, types, inputs, check, what):
        """The first unused layer of ``types`` reading ``inputs`` (in order) that passes ``check``."""
        want = [self.canon(b) for b in inputs]
        readers = []
        for idx, layer in enumerate(self.layers):
            if self.used[idx] or layer["type"] == "Split":
                continue
            got = [self.canon(b) for b in layer["inputs"]]
            if set(got) & set(want):
                readers.append(layer)
            if layer["type"] in types and got == want and check(layer):
                self.used[idx] = True
                self.read.update(layer["inputs"])
                return layer
        found = ", ".join(f"{r['type']} {r['name']} {r['params']}" for r in readers) or "none"
        raise ConversionError(
            f"{self.path}: expected {what} reading {inputs}, but no unused ncnn layer matches; "
            f"unused layers reading it: {found}"
        )

    # -- one step per Keras-side operation ---------------------------------
    def conv(self, layer, blob):
        if not isinstance(layer, ConvBN) or layer.norm or not layer.use_bias:
            raise ConversionError(f"{layer.name}: folded ncnn weights need ConvBN(norm=False, use_bias=True)")
        act = {None: 0, "relu": 1}.get(layer.activation_name)
        if act is None:
            raise ConversionError(f"{layer.name}: activation {layer.activation_name!r} has no ncnn counterpart here")
        depthwise = layer.groups > 1

        def check(n):
            return (
                n["type"] == ("ConvolutionDepthWise" if depthwise else "Convolution")
                and _p(n, 0) == layer.filters and _p(n, 1, 1) == layer.kernel_size
                and _p(n, 11, _p(n, 1, 1)) == layer.kernel_size and _p(n, 2, 1) == layer.dilation
                and _p(n, 3, 1) == layer.strides and _p(n, 4) == layer.padding
                and _p(n, 7, 1) == layer.groups and _p(n, 5) == 1 and _p(n, 9) == act
            )

        what = (f"a {layer.kernel_size}x{layer.kernel_size} {'depthwise ' if depthwise else ''}conv "
                f"to {layer.filters} channels, stride {layer.strides}{', ReLU' if act else ''} (for {layer.name})")
        node = self.take(_CONV_TYPES, [blob], check, what)
        self.assignments.append((layer, node))
        return node["outputs"][0]

    def convs(self, layers, blob):
        for layer in layers:
            blob = self.conv(layer, blob)
        return blob

    def halves(self, blob):
        node = self.take(("Slice",), [blob], lambda n: n["params"].get(-23300) == "2,-233,-233"
                         and _p(n, 1) == 0, "an even 2-way channel Slice")
        return node["outputs"]

    def concat_shuffle(self, a, b):
        cat = self.take(("Concat",), [a, b], lambda n: _p(n, 0) == 0, "a channel Concat")["outputs"][0]
        # ncnn's channel shuffle: Reshape to (groups, C/groups, HW), swap, Reshape back.
        r1 = self.take(("Reshape",), [cat], lambda n: _p(n, 2) == 2, "the Reshape of a 2-group channel shuffle")
        perm = self.take(("Permute",), r1["outputs"], lambda n: _p(n, 0) == 2, "the Permute of a channel shuffle")
        return self.take(("Reshape",), perm["outputs"], lambda n: True, "the last Reshape of a channel shuffle")["outputs"][0]

    def add(self, a, b):
        node = self.take(("BinaryOp",), [a, b], lambda n: _p(n, 0) == 0, "an Add")
        return node["outputs"][0]

    def add_any_order(self, a, b):
        try:
            return self.add(a, b)
        except ConversionError:
            return self.add(b, a)

    def relu(self, blob):
        return self.take(("ReLU",), [blob], lambda n: float(n["params"].get(0, 0)) == 0, "a ReLU")["outputs"][0]

    def upsample_nearest(self, blob, factor):
        node = self.take(("Interp",), [blob], lambda n: _p(n, 0) == 1 and float(n["params"].get(1, 1)) == factor
                         and float(n["params"].get(2, 1)) == factor, f"a nearest Interp x{factor}")
        return node["outputs"][0]

    def upsample_bilinear(self, blob, size):
        node = self.take(("Interp",), [blob], lambda n: _p(n, 0) == 2 and _p(n, 6) == 1
                         and (_p(n, 3), _p(n, 4)) == tuple(size), f"an aligned-corners bilinear Interp to {size}")
        return node["outputs"][0]

    # -- the backbone --------------------------------------------------------
    def backbone(self, net, blob, size):
        """``size``: (H, W) of the stem output (1/4 of the input)."""
        stem = net.stem
        a, b = self.halves(self.conv(stem.conv1, blob))
        ys = [self.concat_shuffle(self.convs(stem.branch1, a),
                                  self.convs([stem.expand_conv, stem.depthwise_conv, stem.linear_conv], b))]
        for transition, modules in zip(net.transitions, net.stages):
            xs = [ys[i] if path is None else self.convs(path, ys[i] if i < len(ys) else ys[-1])
                  for i, path in enumerate(transition)]
            for module in modules:
                xs = self.module(module, xs)
            ys = xs
        if net.head is not None:
            sizes = [(size[0] >> i, size[1] >> i) for i in range(len(ys))]
            out, last = [], None
            for x, project, hw in zip(ys[::-1], net.head.projects, sizes[::-1]):
                if last is not None:
                    x = self.add_any_order(x, self.upsample_bilinear(last, hw))
                last = self.convs(project, x)
                out.append(last)
            ys = out[::-1]
        return ys[0]

    def module(self, module, xs):
        if module.module_type != "NAIVE":
            raise ConversionError(f"{module.name}: only NAIVE modules occur in PP-TinyPose's ncnn graph")
        out = []
        for units, x in zip(module.blocks, xs):
            for unit in units:
                a, b = self.halves(x)
                x = self.concat_shuffle(a, self.convs(unit.branch2, b))
            out.append(x)
        xs = out
        if not module.fuse:
            return xs

        def path(i, j, blob):
            blob = self.convs(module.fuse[i][j], blob)
            return self.upsample_nearest(blob, 2 ** (j - i)) if j > i else blob

        fused, sum0 = [], None
        for i in range(len(module.fuse)):
            z = xs[0] if i == 0 else path(i, 0, sum0)
            y = self.add(z, z)  # branch 0 counted twice (see LiteHRModule.call)
            for j in range(1, len(xs)):
                y = self.add_any_order(y, xs[j] if j == i else path(i, j, xs[j]))
            if i == 0:
                sum0 = y
            fused.append(self.relu(y))
        return fused

    def finish(self, output_blob):
        """Every layer used, every fan-out branch read, and ``output_blob`` the graph's output."""
        for idx, layer in enumerate(self.layers):
            if layer["type"] == "Input":
                continue
            if layer["type"] == "Split":
                unread = [o for o in layer["outputs"] if o not in self.read]
                if unread:
                    raise ConversionError(f"{self.path}: outputs {unread} of ncnn layer {layer['name']} were never read")
            elif not self.used[idx]:
                raise ConversionError(
                    f"{self.path}: ncnn layer {layer['type']} {layer['name']} (reading {layer['inputs']}) "
                    "has no counterpart in the Keras model"
                )
        readers = [l["name"] for l in self.layers if output_blob in l["inputs"]]
        if readers:
            raise ConversionError(f"{self.path}: {output_blob} should be the graph's output but {readers} read it")


def _graph_input(layers, path):
    inputs = [l for l in layers if l["type"] == "Input"]
    if len(inputs) != 1:
        raise ConversionError(f"{path}: expected one Input layer, found {len(inputs)}")
    return inputs[0]["outputs"][0]


def tinypose_input_size(layers, path="<param>"):
    """Network input ``(width, height)``: 4x the size the head's last bilinear Interp produces."""
    sizes = [(_p(l, 4), _p(l, 3)) for l in layers if l["type"] == "Interp" and _p(l, 0) == 2]
    if not sizes:
        raise ConversionError(f"{path}: no bilinear Interp to read the input size from")
    w, h = sizes[-1]
    return (4 * w, 4 * h)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_ncnn_weights(backbone, final_layer, param_path, bin_path):
    """Load PP-TinyPose's ncnn weights into a built ``backbone`` and ``final_layer``.

    Args:
        backbone: a built :class:`LiteHRNetBackbone` with ``norm=False``
            (e.g. ``LiteHRNetBackbone(tinypose_extra(), norm=False)``, called
            once on an input of the model's size).
        final_layer: the built 1x1 heatmap conv (a :class:`ConvBN` with
            ``norm=False`` and a bias, such as ``HeatmapHead.final_layer``).

    Returns:
        ``[(keras layer path, ncnn layer name)]`` for every convolution loaded.

    Raises:
        ConversionError: naming the ncnn layer or blob where the graph and
            the Keras model differ, or a layer of the graph left unused.
    """
    param_path = os.fspath(param_path)
    layers = parse_param(param_path)
    weights = read_weights(bin_path, layers)
    w, h = tinypose_input_size(layers, param_path)
    walker = _Walker(layers, param_path)
    feat = walker.backbone(backbone, _graph_input(layers, param_path), (h // 4, w // 4))
    out = walker.conv(final_layer, feat)
    walker.finish(out)
    loaded = []
    for layer, node in walker.assignments:
        if not layer.built:
            raise ConversionError(f"{layer.name}: build the model (call it once) before loading weights")
        values, bias = weights[node["name"]]
        kernel = values.transpose(2, 3, 1, 0)  # (out, in/g, kh, kw) -> Keras (kh, kw, in/g, out)
        if tuple(layer.kernel.shape) != kernel.shape:
            raise ConversionError(
                f"ncnn layer {node['name']}: weights {kernel.shape} do not fit {layer.name} {tuple(layer.kernel.shape)}"
            )
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
        loaded.append((layer.path, node["name"]))
    return loaded


def load_tinypose(param_path, bin_path, data_format=None):
    """PP-TinyPose's backbone with its weights, and its heatmap conv as arrays.

    Returns:
        dict with ``backbone`` (a built :class:`LiteHRNetBackbone`, weights
        loaded, named ``"backbone"``), ``final_kernel`` (``(1, 1, 40, K)``
        float32, Keras layout), ``final_bias`` (``(K,)``), ``input_size``
        ``(width, height)`` and ``num_keypoints`` K.

    Example:
    >>> tp = load_tinypose("tinypose_128x96.param", "tinypose_128x96.bin")  # doctest: +SKIP
    >>> feats = tp["backbone"](crops)  # doctest: +SKIP
    """
    param_path = os.fspath(param_path)
    layers = parse_param(param_path)
    w, h = tinypose_input_size(layers, param_path)
    backbone = LiteHRNetBackbone(tinypose_extra(), norm=False, data_format=data_format, name="backbone")
    df = backbone.data_format
    # The heatmap conv is the graph's last convolution (the walk checks it is its output).
    num_keypoints = _p([l for l in layers if l["type"] == "Convolution"][-1], 0)
    final = ConvBN(num_keypoints, 1, norm=False, use_bias=True, data_format=data_format, name="final_layer")
    with backend.inference_mode():
        x = np.zeros((1, 3, h, w) if df == "channels_first" else (1, h, w, 3), "float32")
        final(backbone(x)[0])
    load_ncnn_weights(backbone, final, param_path, bin_path)
    return {
        "backbone": backbone,
        "final_kernel": keras.ops.convert_to_numpy(final.kernel),
        "final_bias": keras.ops.convert_to_numpy(final.bias),
        "input_size": (w, h),
        "num_keypoints": num_keypoints,
    }


def convert_tinypose(param_path, bin_path, input_size=None, flip_test=True, data_format=None):
    """A :class:`~keraspose.TopdownEstimator` with PP-TinyPose's weights, from its ncnn files.

    Backbone from :func:`load_tinypose`; a ``HeatmapHead`` whose
    ``final_layer`` gets the heatmap conv; ``MSRAHeatmap`` (sigma 2) decoding;
    RGB ImageNet normalisation, as PP-TinyPose was trained.

    Example:
    >>> model = convert_tinypose("tinypose_256x192.param", "tinypose_256x192.bin")  # doctest: +SKIP
    """
    from keraspose.codecs import MSRAHeatmap
    from keraspose.models.heads import HeatmapHead
    from keraspose.models.topdown_estimator import TopdownEstimator

    tp = load_tinypose(param_path, bin_path, data_format=data_format)
    w, h = input_size or tp["input_size"]
    codec = MSRAHeatmap(input_size=(w, h), heatmap_size=(w // 4, h // 4), sigma=2.0)
    head = HeatmapHead(tp["num_keypoints"], codec=codec, data_format=data_format, name="head")
    model = TopdownEstimator(
        tp["backbone"], head, metainfo="coco", input_size=(w, h),
        mean=(0.485 * 255, 0.456 * 255, 0.406 * 255), std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
        channel_order="rgb", flip_test=flip_test, shift_heatmap=True,
    )
    model.build()
    head.final_layer.kernel.assign(tp["final_kernel"])
    head.final_layer.bias.assign(tp["final_bias"])
    return model
