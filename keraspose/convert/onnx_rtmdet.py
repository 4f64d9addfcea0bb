"""RTMDet from an ONNX export with BatchNorm folded (MMDetection's ``RTMDet``).

PyTorch's ONNX exporter names every node after the module that produced it,
so a convolution node such as
``/model/backbone/stage1/stage1.1/blocks/blocks.0/conv1/depthwise_conv/conv/Conv``
says which MMDetection module it is: ``backbone.stage1.1.blocks.0.conv1.
depthwise_conv.conv`` (a container's child ``blocks.0`` appears under its
container ``blocks``; the head's modules appear without ``bbox_head``). The
converter reads every ``Conv`` of the graph with the ``onnx`` package, turns
its node name into that module path and loads it into the keraspose layer
that :meth:`RTMDetector.checkpoint_keys` lists under the same path. The
mapping is checked both ways: an ONNX convolution no layer claims, a layer no
convolution fills, a kernel of another shape, or a stride, padding, group
count or activation (the exporter writes SiLU as ``Sigmoid`` + ``Mul``) that
differs is an error naming it. The graph's per-level stride multipliers are
checked against the model's strides too.

The export has every BatchNorm folded into its convolution, so the model is
built with ``norm=False`` (a conv with a bias). ONNX stores conv weights as
``(out, in/groups, kh, kw)``; Keras wants ``(kh, kw, in/groups, out)``.

Only this converter needs ``onnx`` (``pip install onnx``); a converted
preset loads without it.

Example:
>>> from keraspose.convert.onnx_rtmdet import convert_rtmdet_onnx  # doctest: +SKIP
>>> detector = convert_rtmdet_onnx("rtmdet-nano.onnx")  # doctest: +SKIP
>>> result = detector.predict("people.jpg")  # doctest: +SKIP
"""

import os
import re

import numpy as np

from keraspose.convert.checkpoints import ConversionError

# Top-level modules of MMDetection's head that the exporter names without ``bbox_head``.
_HEAD_MODULES = ("cls_convs", "reg_convs", "rtm_cls", "rtm_reg", "rtm_obj")


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError(
            "converting an ONNX model needs the `onnx` package: `pip install onnx` "
            "(or `pip install keraspose[convert]`). Loading a converted preset does not."
        ) from None
    return onnx, numpy_helper


def onnx_module_path(node_name):
    """The MMDetection module path of an exported Conv node, e.g.

    >>> onnx_module_path("/model/backbone/stage1/stage1.1/blocks/blocks.0/conv1/depthwise_conv/conv/Conv")
    'backbone.stage1.1.blocks.0.conv1.depthwise_conv.conv'
    >>> onnx_module_path("/model/cls_convs.1.0/pointwise_conv/conv/Conv")
    'bbox_head.cls_convs.1.0.pointwise_conv.conv'
    >>> onnx_module_path("/model/rtm_reg.2/Conv")
    'bbox_head.rtm_reg.2'
    """
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 3 or parts[0] != "model" or not parts[-1].startswith("Conv"):
        raise ConversionError(
            f"ONNX node {node_name!r}: not named after an MMDetection module (expected "
            "'/model/<module path>/Conv', as torch.onnx.export names nodes)"
        )
    path = []
    for part in parts[1:-1]:
        # A container's child is scoped as ``<container>.<index>`` under ``<container>``.
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    if path[0].split(".")[0] in _HEAD_MODULES:
        path.insert(0, "bbox_head")
    return ".".join(path)


def read_onnx_convs(onnx_path):
    """Every convolution of the graph: ``{module path: dict}``, and the stride constants.

    Each dict holds ``node`` (the ONNX node name), ``weight`` (float32
    ``(out, in/groups, kh, kw)``), ``bias`` (float32 or None), ``strides``,
    ``pads``, ``dilations``, ``group`` and ``activation`` (``"silu"`` when the
    output feeds only a ``Sigmoid`` and the ``Mul`` of the two, else None).

    Returns:
        ``(convs, level_scales)``: ``level_scales`` are the scalars the
        graph multiplies the three box-regression outputs by (the strides).
    """
    onnx, numpy_helper = _import_onnx()
    path = os.fspath(onnx_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(path)
    except Exception as e:
        raise ConversionError(f"{path}: cannot be read as an ONNX model ({type(e).__name__}: {e})") from None
    graph = model.graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # opset-11 exports may hold constants as Constant nodes
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    tensors[node.output[0]] = numpy_helper.to_array(attr.t)
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def activation(out):
        users = consumers.get(out, [])
        sig = [n for n in users if n.op_type == "Sigmoid"]
        if len(users) == 2 and len(sig) == 1:
            mul = [n for n in users if n.op_type == "Mul"]
            if mul and set(mul[0].input) == {out, sig[0].output[0]}:
                return "silu"
        return None

    convs = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.input[1] not in tensors or (len(node.input) > 2 and node.input[2] not in tensors):
            raise ConversionError(f"{path}: Conv {node.name} has weights computed in the graph, not stored")
        weight = tensors[node.input[1]].astype(np.float32)
        bias = tensors[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else None
        key = onnx_module_path(node.name)
        if key in convs:
            raise ConversionError(f"{path}: two Conv nodes map to module {key}: {convs[key]['node']} and {node.name}")
        kh, kw = weight.shape[2:]
        convs[key] = {
            "node": node.name, "weight": weight, "bias": bias,
            "kernel": tuple(attrs.get("kernel_shape", (kh, kw))),
            "strides": tuple(attrs.get("strides", (1, 1))),
            "pads": tuple(attrs.get("pads", (0, 0, 0, 0))),
            "dilations": tuple(attrs.get("dilations", (1, 1))),
            "group": int(attrs.get("group", 1)),
            "activation": activation(node.output[0]),
        }
    # The box branch: rtm_reg.<i> output * stride (a scalar constant).
    level_scales = {}
    for node in graph.node:
        if node.op_type == "Mul":
            m = re.fullmatch(r"/model/rtm_reg\.(\d+)/Conv_output_0", node.input[0])
            if m and node.input[1] in tensors:
                level_scales[int(m.group(1))] = float(tensors[node.input[1]])
    return convs, [level_scales[i] for i in sorted(level_scales)]


def _activation_of(layer):
    name = layer.activation_name
    return {"swish": "silu"}.get(name, name)


def load_onnx_rtmdet_weights(model, onnx_path):
    """Load the folded weights of an RTMDet ONNX export into a built ``model``.

    Args:
        model: a built :class:`~keraspose.RTMDetector` whose convolutions are
            ``ConvBN(norm=False, use_bias=True)`` (built with ``norm=False``).
        onnx_path: the ``.onnx`` file.

    Returns:
        ``[(keras layer path, ONNX node name)]`` for every convolution loaded.

    Raises:
        ConversionError: naming the ONNX node or Keras layer that does not match.
    """
    path = os.fspath(onnx_path)
    convs, level_scales = read_onnx_convs(path)
    entries = list(model.checkpoint_keys())
    claimed, loaded, problems = set(), [], []
    for layer, conv_key, _bn_key in entries:
        src = convs.get(conv_key)
        if src is None:
            problems.append(f"layer {layer.path} ({conv_key}): no ONNX Conv for this module")
            continue
        claimed.add(conv_key)
        where = f"ONNX Conv {src['node']} -> {layer.path}"
        if layer.norm or not layer.use_bias:
            problems.append(f"{where}: folded weights need ConvBN(norm=False, use_bias=True); build with norm=False")
            continue
        if not layer.built:
            raise ConversionError(f"{layer.path}: build the model (call it once) before loading weights")
        k, s, p, d = layer.kernel_size, layer.strides, layer.padding, layer.dilation
        want = {"kernel": (k, k), "strides": (s, s), "pads": (p, p, p, p), "dilations": (d, d),
                "group": layer.groups, "activation": _activation_of(layer)}
        diffs = [f"{name} {src[name]} vs {value}" for name, value in want.items() if src[name] != value]
        if diffs:
            problems.append(f"{where}: ONNX vs Keras differ in {', '.join(diffs)}")
            continue
        kernel = src["weight"].transpose(2, 3, 1, 0)  # (out, in/g, kh, kw) -> (kh, kw, in/g, out)
        if tuple(layer.kernel.shape) != kernel.shape:
            problems.append(f"{where}: kernel {kernel.shape} vs {tuple(layer.kernel.shape)}")
            continue
        bias = src["bias"] if src["bias"] is not None else np.zeros(kernel.shape[-1], np.float32)
        if tuple(layer.bias.shape) != bias.shape:
            problems.append(f"{where}: bias {bias.shape} vs {tuple(layer.bias.shape)}")
            continue
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
        loaded.append((layer.path, src["node"]))
    for key in sorted(set(convs) - claimed):
        problems.append(f"ONNX Conv {convs[key]['node']} (module {key}): no layer of the model takes it")
    strides = [int(s) for s in getattr(model, "strides", ())]
    if strides and level_scales and [float(s) for s in strides] != level_scales:
        problems.append(f"the graph scales the box outputs by {level_scales}, the model's strides are {strides}")
    if problems:
        raise ConversionError(
            f"{path} does not match the model ({len(problems)} problems):\n  " + "\n  ".join(problems)
        )
    return loaded


def convert_rtmdet_onnx(onnx_path, data_format=None):
    """The RTMDet-nano person detector of an ONNX export, as a :class:`~keraspose.RTMDetector`.

    The architecture is MMDetection's ``rtmdet_nano_320-8xb32_coco-person``
    (``RTMDetector.build_person("nano")``: 320x320, BGR, MMDetection's mean/std
    and test_cfg) built with ``norm=False``; every one of the graph's
    convolutions must fit it (see :func:`load_onnx_rtmdet_weights`).
    """
    from keraspose.models.rtmdet import RTMDetector

    model = RTMDetector.build_person("nano", norm=False, data_format=data_format)
    load_onnx_rtmdet_weights(model, onnx_path)
    return model
