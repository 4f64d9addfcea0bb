"""The one place where keraspose does something backend-specific.

Everything else in keraspose is written with ``keras.ops``. The functions here
exist because the generic Keras path costs real time on the hot path of a
convolutional pose network, or because it cannot express PyTorch's semantics:

* **Layout.** Keras stores images channels-last. On the torch backend a
  channels-last ``keras.ops.conv`` transposes the input, the output and the
  kernel on every call (measured 2.3x slower than ``F.conv2d`` for a 64-channel
  3x3 conv at 64x48 on 2 CPU threads). keraspose layers therefore run
  channels-first on torch and channels-last elsewhere (TensorFlow's CPU
  kernels want NHWC); see :func:`preferred_data_format`.
* **Symmetric padding.** MMPose's convolutions and max-pooling pad ``k // 2``
  on every side. Keras' ``"same"`` pads asymmetrically for stride 2 on even
  inputs, which shifts every feature map by one pixel. The functions below take
  an explicit integer padding and apply it natively where the backend can.
* **Memory format.** On torch, kernels are kept in ``channels_last`` memory
  format so oneDNN convolutions need no reorders (see
  :func:`to_native_conv_kernel`).
* **Kernel layout caching.** :func:`to_native_conv_kernel` converts a Keras
  kernel ``(kh, kw, in, out)`` once into the backend's own layout, so a layer
  that caches its folded inference kernel does not pay a permute per call.

Backends: ``torch`` calls ``torch.nn.functional`` directly; ``tensorflow``
uses ``tf.nn`` where it supports explicit padding; ``jax`` calls ``jax.lax``
(``conv_general_dilated``, ``conv_transpose``, ``reduce_window``), which takes
PyTorch's padding as explicit ``(low, high)`` pairs, so no padded copy of the
input is made and grouped convolutions are one call (``feature_group_count``);
depthwise convolutions are summed shifted slices instead, which XLA's CPU
backend runs 30-60x faster than its grouped-convolution loop.
Any other backend goes through ``keras.ops`` with an explicit pad.
"""

import contextlib

import keras
from keras import ops

BACKEND = keras.config.backend()

if BACKEND == "torch":
    import torch
    import torch.nn.functional as F
elif BACKEND == "tensorflow":
    import tensorflow as tf
elif BACKEND == "jax":
    import jax
    from jax import lax

_DATA_FORMATS = ("channels_first", "channels_last")


def preferred_data_format():
    """The layout keraspose layers compute in when given ``data_format=None``."""
    return "channels_first" if BACKEND == "torch" else "channels_last"


def resolve_data_format(data_format):
    """``None`` -> the backend's preferred layout; anything else is validated."""
    if data_format is None:
        return preferred_data_format()
    if data_format not in _DATA_FORMATS:
        raise ValueError(
            f"data_format must be one of {_DATA_FORMATS} or None, got {data_format!r}"
        )
    return data_format


def channel_axis(data_format):
    return 1 if data_format == "channels_first" else -1


def to_channels_first(x):
    return ops.transpose(x, (0, 3, 1, 2))


def to_channels_last(x):
    return ops.transpose(x, (0, 2, 3, 1))


# --------------------------------------------------------------------------
# Convolutions
# --------------------------------------------------------------------------


def to_native_conv_kernel(kernel):
    """Keras kernel ``(kh, kw, in, out)`` -> the layout :func:`conv2d_native` takes.

    On torch that is ``(out, in, kh, kw)`` (and, for a transposed-conv kernel
    stored by Keras as ``(kh, kw, out, in)``, torch's ``(in, out, kh, kw)``:
    the same permutation). Elsewhere the Keras layout is already native.
    """
    if BACKEND == "torch":
        # channels_last *memory format* (NCHW shape, NHWC strides) is oneDNN's
        # native layout: with it, torch skips a reorder of every conv's input
        # and output (measured 5-7% of a HRNet-W32 forward on 2 threads). A
        # channels-first view of a Keras NHWC input already has these strides.
        return kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    return kernel


def conv2d_native(
    x, kernel, bias=None, strides=1, padding=0, dilation=1, groups=1,
    data_format="channels_last",
):
    """2-D convolution with PyTorch's symmetric integer ``padding``.

    ``kernel`` must come from :func:`to_native_conv_kernel`. ``groups`` follows
    PyTorch: the kernel's input dimension is ``in_channels // groups``.
    """
    if BACKEND == "torch":
        if data_format == "channels_last":
            x = x.permute(0, 3, 1, 2)
        if _pointwise(x, kernel, strides, padding, groups):
            y = _pointwise_conv(x, kernel, bias)
        else:
            y = F.conv2d(x, kernel, bias, strides, padding, dilation, groups)
        return y.permute(0, 2, 3, 1) if data_format == "channels_last" else y

    if BACKEND == "jax":
        if groups > 1 and groups == x.shape[channel_axis(data_format)]:
            return _add_bias(_depthwise_conv_jax(x, kernel, strides, padding, dilation, data_format), bias, data_format)
        # The kernel's (kh, kw, in // groups, out) is lax's HWIO for
        # feature_group_count=groups: a grouped conv is one call.
        y = lax.conv_general_dilated(
            x, kernel, (strides, strides), [(padding, padding)] * 2,
            rhs_dilation=(dilation, dilation), dimension_numbers=_lax_dimension_numbers(data_format),
            feature_group_count=groups,
        )
        return _add_bias(y, bias, data_format)

    in_channels = x.shape[channel_axis(data_format)]
    depthwise = groups > 1 and groups == in_channels
    if BACKEND == "tensorflow" and not depthwise and groups == 1:
        sp = [padding, padding]
        pads = [[0, 0], sp, sp, [0, 0]] if data_format == "channels_last" else [[0, 0], [0, 0], sp, sp]
        y = tf.nn.conv2d(
            x, kernel, strides, pads, dilations=dilation,
            data_format="NHWC" if data_format == "channels_last" else "NCHW",
        )
    else:
        x = _pad_spatial(x, padding, data_format)
        if depthwise:
            # (kh, kw, 1, C * m) -> (kh, kw, C, m): Keras' depthwise layout.
            kh, kw, _, out = kernel.shape
            dw_kernel = ops.reshape(kernel, (kh, kw, in_channels, out // in_channels))
            y = ops.depthwise_conv(
                x, dw_kernel, strides, "valid", data_format, dilation
            )
        elif groups > 1:
            # Generic grouped convolution: one convolution per group.
            xs = ops.split(x, groups, axis=channel_axis(data_format))
            ks = ops.split(kernel, groups, axis=-1)
            y = ops.concatenate(
                [ops.conv(xi, ki, strides, "valid", data_format, dilation) for xi, ki in zip(xs, ks)],
                axis=channel_axis(data_format),
            )
        else:
            y = ops.conv(x, kernel, strides, "valid", data_format, dilation)
    return _add_bias(y, bias, data_format)


def _depthwise_conv_jax(x, kernel, strides, padding, dilation, data_format):
    """Depthwise conv as ``kh * kw`` shifted, strided slices times per-channel weights, summed.

    XLA's CPU backend runs a ``feature_group_count == channels`` convolution
    through a generic grouped-conv loop: measured 30-60x slower than this
    formulation, which XLA fuses into one elementwise loop (a 3x3 depthwise
    conv on 16x64x48x40: 145 ms -> 2.6 ms forward, 232 -> 92 ms for the
    gradient). Lite-HRNet, PP-TinyPose and RTMDet-nano are mostly depthwise.
    """
    kh, kw, _, out = kernel.shape
    h_axis = 2 if data_format == "channels_first" else 1
    c_axis = channel_axis(data_format)
    channels = x.shape[c_axis]
    if out != channels:  # channel multiplier m: output channel c * m + j reads input channel c
        x = ops.repeat(x, out // channels, axis=c_axis)
    x = _pad_spatial(x, padding, data_format)
    in_h, in_w = x.shape[h_axis], x.shape[h_axis + 1]
    out_h = (in_h - dilation * (kh - 1) - 1) // strides + 1
    out_w = (in_w - dilation * (kw - 1) - 1) // strides + 1
    weights = ops.reshape(kernel, (kh, kw, out, 1, 1)) if data_format == "channels_first" else kernel[:, :, 0]
    y = None
    for i in range(kh):
        for j in range(kw):
            start = [0, 0, 0, 0]
            start[h_axis], start[h_axis + 1] = i * dilation, j * dilation
            limit = list(x.shape)
            limit[h_axis] = start[h_axis] + (out_h - 1) * strides + 1
            limit[h_axis + 1] = start[h_axis + 1] + (out_w - 1) * strides + 1
            step = [1, 1, 1, 1]
            step[h_axis] = step[h_axis + 1] = strides
            tap = lax.slice(x, start, limit, step) * weights[i, j]
            y = tap if y is None else y + tap
    return y


if BACKEND == "jax":
    # One XLA program per shape when called eagerly (instead of a compiled
    # slice, multiply and add per tap); inlined when traced inside a jit.
    _depthwise_conv_jax = jax.jit(_depthwise_conv_jax, static_argnums=(2, 3, 4, 5))


def _add_bias(y, bias, data_format):
    if bias is None:
        return y
    return y + (ops.reshape(bias, (1, -1, 1, 1)) if data_format == "channels_first" else bias)


def _lax_dimension_numbers(data_format):
    """lax's (input, kernel, output) layouts; kernels stay in Keras' HWIO."""
    image = "NCHW" if data_format == "channels_first" else "NHWC"
    return (image, "HWIO", image)


def _pointwise(x, kernel, strides, padding, groups):
    """A 1x1, stride-1, unpadded, ungrouped conv on an NHWC-strided input: one matmul (torch)."""
    return (
        not _EXPORT_TRACING
        and kernel.shape[2] == 1 and kernel.shape[3] == 1 and strides == 1 and padding == 0 and groups == 1
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _pointwise_conv(x, kernel, bias):
    # With NHWC strides a 1x1 conv is (N*H*W, C_in) @ (C_in, C_out): one GEMM,
    # no copy in or out, and the result keeps NHWC strides. torch itself sends
    # such convs to oneDNN (2 threads) or to its im2col fallback (1 thread:
    # ~0.5 ms for a 64->64 conv on 20x20 in RTMDet-nano, 1/3 of that network's time).
    n, c, h, w = x.shape
    x2d = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    w2d = kernel.reshape(kernel.shape[0], c).t()
    y = torch.addmm(bias, x2d, w2d) if bias is not None else x2d @ w2d
    return y.view(n, h, w, -1).permute(0, 3, 1, 2)


def conv2d_transpose_native(
    x, kernel, bias=None, strides=2, padding=0, output_padding=0,
    data_format="channels_last",
):
    """Transposed convolution with PyTorch's ``padding``/``output_padding``.

    ``kernel`` is a Keras transposed kernel ``(kh, kw, out, in)`` passed
    through :func:`to_native_conv_kernel`. Output size:
    ``(H - 1) * stride - 2 * padding + kernel + output_padding``.
    """
    if BACKEND == "torch":
        if data_format == "channels_last":
            x = x.permute(0, 3, 1, 2)
        y = F.conv_transpose2d(x, kernel, bias, strides, padding, output_padding)
        return y.permute(0, 2, 3, 1) if data_format == "channels_last" else y
    if BACKEND == "jax":
        # A transposed conv is a conv of the stride-dilated input; PyTorch's
        # padding p crops p from each side of the "full" result, i.e. pads the
        # dilated input by k - 1 - p (plus output_padding at the end). With
        # transpose_kernel=True lax reads Keras' (kh, kw, out, in) kernel as
        # the forward conv's HWIO and flips it itself.
        k = kernel.shape[0]
        low = k - 1 - padding
        y = lax.conv_transpose(
            x, kernel, (strides, strides), [(low, low + output_padding)] * 2,
            dimension_numbers=_lax_dimension_numbers(data_format), transpose_kernel=True,
        )
        return _add_bias(y, bias, data_format)

    # Generic: a "valid" transposed conv gives (H - 1) * s + k; PyTorch then
    # drops `padding` rows at the start and `padding - output_padding` at the end.
    y = ops.conv_transpose(x, kernel, strides, "valid", data_format=data_format)
    end = padding - output_padding
    if padding or end:
        h_axis = 2 if data_format == "channels_first" else 1
        h, w = y.shape[h_axis], y.shape[h_axis + 1]
        if data_format == "channels_first":
            y = y[:, :, padding : h - end, padding : w - end]
        else:
            y = y[:, padding : h - end, padding : w - end, :]
    return _add_bias(y, bias, data_format)


def _pad_spatial(x, padding, data_format, value=0.0):
    if not padding:
        return x
    p = [padding, padding]
    if data_format == "channels_first":
        widths = [[0, 0], [0, 0], p, p]
    else:
        widths = [[0, 0], p, p, [0, 0]]
    return ops.pad(x, widths, constant_values=value)


# --------------------------------------------------------------------------
# Pooling and resampling
# --------------------------------------------------------------------------


def max_pool2d(x, pool_size, strides, padding=0, data_format="channels_last"):
    """Max pooling with PyTorch's symmetric padding (padded cells never win)."""
    if BACKEND == "torch":
        if data_format == "channels_last":
            x = x.permute(0, 3, 1, 2)
        y = F.max_pool2d(x, pool_size, strides, padding)
        return y.permute(0, 2, 3, 1) if data_format == "channels_last" else y
    if BACKEND == "jax":
        # reduce_window pads with the init value (-inf): no padded copy.
        window, step, pads = [1, 1, 1, 1], [1, 1, 1, 1], [(0, 0)] * 4
        for axis in (2, 3) if data_format == "channels_first" else (1, 2):
            window[axis], step[axis], pads[axis] = pool_size, strides, (padding, padding)
        return lax.reduce_window(x, -float("inf"), lax.max, window, step, pads)
    x = _pad_spatial(x, padding, data_format, value=float("-inf"))
    return ops.max_pool(x, pool_size, strides, "valid", data_format)


def upsample_nearest(x, factor, data_format="channels_last"):
    """Nearest-neighbour upsampling by an integer factor (MMPose's nn.Upsample)."""
    if factor == 1:
        return x
    if BACKEND == "torch":
        if data_format == "channels_last":
            x = x.permute(0, 3, 1, 2)
        y = F.interpolate(x, scale_factor=factor, mode="nearest")
        return y.permute(0, 2, 3, 1) if data_format == "channels_last" else y
    h_axis = 2 if data_format == "channels_first" else 1
    return ops.repeat(ops.repeat(x, factor, axis=h_axis), factor, axis=h_axis + 1)


def global_avg_pool(x, data_format="channels_last"):
    """Mean over H and W, keeping them as size-1 axes (PyTorch's ``AdaptiveAvgPool2d(1)``)."""
    if BACKEND == "torch":
        return x.mean((2, 3) if data_format == "channels_first" else (1, 2), keepdim=True)
    axes = (2, 3) if data_format == "channels_first" else (1, 2)
    return ops.mean(x, axis=axes, keepdims=True)


def hard_sigmoid(x):
    """PyTorch's ``Hardsigmoid``: ``relu6(x + 3) / 6`` (Keras 3's ``hard_sigmoid`` is the same function)."""
    if BACKEND == "torch":
        return F.hardsigmoid(x)
    return ops.hard_sigmoid(x)


def silu_(x):
    """SiLU that may overwrite ``x`` (same rule as :func:`relu_`)."""
    if _may_overwrite():
        return F.silu(x, inplace=True)
    return ops.silu(x)


# --------------------------------------------------------------------------
# Inference helpers
# --------------------------------------------------------------------------


_EXPORT_TRACING = False


@contextlib.contextmanager
def export_tracing():
    """Trace the plain graph of a model for export (ONNX, SavedModel, LiteRT).

    Inside this context the inference shortcuts step aside: no cached
    folded-BatchNorm kernels (a cached tensor would be baked into the file as
    a constant beside the weights it came from: 5.2 MB extra for
    TinyPose-128x96 from torch), no in-place activations and no torch-only
    1x1-conv GEMM path (its ``view`` would fix the batch size). The BatchNorm
    folding is then traced from the variables once, so the file holds each
    weight once.
    """
    global _EXPORT_TRACING
    previous = _EXPORT_TRACING
    _EXPORT_TRACING = True
    try:
        yield
    finally:
        _EXPORT_TRACING = previous


def is_export_tracing():
    """Whether :func:`export_tracing` is active."""
    return _EXPORT_TRACING


def _may_overwrite():
    """In-place torch ops are safe outside autograd, and not while tracing an export."""
    return BACKEND == "torch" and not torch.is_grad_enabled() and not _EXPORT_TRACING


def saved_model_tracks_variables():
    """Whether a SavedModel export must ``track()`` the model's variables.

    JAX must: ``ExportArchive.track`` makes the ``tf.Variable`` copies that
    jax2tf's endpoint reads. On TensorFlow the endpoint's own variables are
    saved anyway, and tracking would save each weight a second time (Keras
    3.15 stores the tracked ``keras.Variable`` lists and the ``tf.Variable``
    objects the endpoint uses as separate checkpoint entries: 2x the weights).
    """
    return BACKEND != "tensorflow"


def cache_key(variables):
    """A key that changes whenever any of ``variables`` is written, or ``None``.

    Used to cache values derived from weights (BatchNorm folded into a
    convolution kernel) across inference calls. Only torch can tell cheaply
    that a variable changed (every in-place write bumps ``Tensor._version``),
    and only outside autograd can a cached tensor be reused safely, so every
    other case returns ``None``: the caller recomputes, which inside a traced
    TensorFlow/JAX function is part of the graph anyway.
    """
    if BACKEND != "torch" or torch.is_grad_enabled() or _EXPORT_TRACING:
        return None
    key = []
    for v in variables:
        value = getattr(v, "_value", None)
        if value is None or value.device.type == "meta":
            return None
        key.append((id(value), value._version))
    return tuple(key)


@contextlib.contextmanager
def inference_mode():
    """No gradient bookkeeping while running a model for prediction."""
    if BACKEND == "torch":
        with torch.inference_mode(False), torch.no_grad():
            yield
    else:
        yield


def set_num_threads(n):
    """Intra-op threads of the backend (benchmarks compare at equal counts).

    JAX cannot change it at run time: XLA's CPU client sizes its thread pool
    to the machine's cores when it starts, so this is a no-op there.
    """
    if BACKEND == "torch":
        torch.set_num_threads(n)
    elif BACKEND == "tensorflow":
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def relu_(x):
    """ReLU that may overwrite ``x``: in place on torch outside autograd.

    Only for a tensor the caller has just produced and nobody else holds (a
    conv output, a residual sum). Saves an allocation and a memory pass per
    activation, as MMPose's ``ReLU(inplace=True)`` does.
    """
    if _may_overwrite():
        return x.relu_()
    return ops.relu(x)


def add_(x, y):
    """``x + y`` that may overwrite ``x`` (same rule as :func:`relu_`)."""
    if _may_overwrite():
        return x.add_(y)
    return x + y


# --------------------------------------------------------------------------
# Data-parallel training (several replicas of the model in lockstep)
# --------------------------------------------------------------------------


def num_replicas():
    """How many replicas train in lockstep with this one (1 without data parallelism).

    TensorFlow: the replicas of the ``tf.distribute`` strategy whose replica
    context we run in (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``).
    torch: the world of an initialised ``torch.distributed`` process group
    (``torchrun``; see :mod:`keraspose.training.distributed`). JAX: always 1,
    since ``keras.distribution.DataParallel`` compiles one SPMD program over
    the global batch, whose sums and means are already the global ones.
    """
    if BACKEND == "tensorflow":
        context = tf.distribute.get_replica_context()
        return 1 if context is None else int(context.num_replicas_in_sync)
    if BACKEND == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
    return 1


def sum_over_replicas(x):
    """The sum of ``x`` over every replica (differentiable); ``x`` itself with one replica."""
    if num_replicas() == 1:
        return x
    if BACKEND == "tensorflow":
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, x)
    return _SumOverProcesses.apply(x)


if BACKEND == "torch":

    class _SumOverProcesses(torch.autograd.Function):
        """All-reduce (sum) that carries the gradient back: the gradient of a
        sum over processes is the sum over processes of the gradients.
        (torch.distributed.nn's all_reduce does this but is deprecated.)"""

        @staticmethod
        def forward(ctx, x):
            import torch.distributed as dist

            y = x.clone()
            dist.all_reduce(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            import torch.distributed as dist

            grad = grad.clone()
            dist.all_reduce(grad)
            return grad


def scale_loss_for_replicas(loss):
    """A replica's loss as its share of the global loss (Keras' convention under ``tf.distribute``).

    A ``tf.distribute`` strategy *sums* the replicas' gradients, so a
    replica's loss must be divided by the replica count for the update to be
    that of the global mean loss (Keras' own losses do this in
    ``keras.losses.Loss``; the trainer multiplies it back for the logs). On
    torch :mod:`keraspose.training.distributed` averages the gradients
    itself, and JAX's SPMD loss is already global: unchanged there.
    """
    if BACKEND == "tensorflow":
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss * ops.cast(1.0 / replicas, loss.dtype)
    return loss


def _synchronized_batch_norm_train(x, gamma, beta, moving_mean, moving_variance, momentum, epsilon, data_format):
    """BatchNorm over the global batch of every replica (MMPose's SyncBN).

    Two all-reduces, in float32: the sums (with the element count), then the
    squared deviations from the global mean. One all-reduce of the sums and
    the sums of squares (``E[x^2] - E[x]^2``) loses digits of the variance
    to cancellation: measured, it doubled the weights' distance from one
    device's training on the tiny HRNet, where this stays at the float noise floor.
    """
    axes = (0, 2, 3) if data_format == "channels_first" else (0, 1, 2)
    shape = (1, -1, 1, 1) if data_format == "channels_first" else (1, 1, 1, -1)
    channels = x.shape[channel_axis(data_format)]
    x32 = ops.cast(x, "float32")
    count = ops.cast(ops.size(x), "float32") / channels
    totals = sum_over_replicas(ops.concatenate([ops.sum(x32, axis=axes), ops.reshape(count, (1,))]))
    count = totals[channels]
    mean = totals[:channels] / count
    centred = x32 - ops.reshape(mean, shape)
    var = sum_over_replicas(ops.sum(ops.square(centred), axis=axes)) / count
    unbiased = var * (count / ops.maximum(count - 1.0, 1.0))
    moving_mean.assign(moving_mean * (1 - momentum) + ops.stop_gradient(mean) * momentum)
    moving_variance.assign(moving_variance * (1 - momentum) + ops.stop_gradient(unbiased) * momentum)
    inv_std = ops.cast(gamma, "float32") * ops.rsqrt(var + epsilon)
    y = centred * ops.reshape(inv_std, shape) + ops.reshape(ops.cast(beta, "float32"), shape)
    return ops.cast(y, x.dtype)


def batch_norm_train(x, gamma, beta, moving_mean, moving_variance, momentum, epsilon, data_format):
    """Training-mode BatchNorm: normalise with the batch statistics and update
    the moving ones (``moving = (1 - momentum) * moving + momentum * batch``,
    unbiased variance, as PyTorch's ``BatchNorm2d``).

    On torch this is one fused ``F.batch_norm`` (forward and backward in one
    kernel each, running statistics updated in place) instead of about ten
    elementwise ops; elsewhere the same arithmetic in ``keras.ops``. Under
    data parallelism (:func:`num_replicas` > 1) the statistics are those of
    the global batch, all-reduced over the replicas, as MMPose's SyncBN.
    """
    if keras.backend.standardize_dtype(x.dtype) != "float32":
        # Mixed precision: the statistics in float32 (as Keras' BatchNormalization).
        y = batch_norm_train(
            ops.cast(x, "float32"), gamma, beta, moving_mean, moving_variance, momentum, epsilon, data_format
        )
        return ops.cast(y, x.dtype)
    if num_replicas() > 1:
        return _synchronized_batch_norm_train(
            x, gamma, beta, moving_mean, moving_variance, momentum, epsilon, data_format
        )
    if BACKEND == "torch":
        y = x.permute(0, 3, 1, 2) if data_format == "channels_last" else x
        y = F.batch_norm(
            y, moving_mean.value, moving_variance.value, gamma.value, beta.value, training=True,
            momentum=momentum, eps=epsilon,
        )
        return y.permute(0, 2, 3, 1) if data_format == "channels_last" else y
    if BACKEND == "tensorflow" and data_format == "channels_last":
        # The fused kernel returns the updated moving statistics itself
        # (exponential_avg_factor = momentum, Bessel-corrected variance).
        y, new_mean, new_var = tf.compat.v1.nn.fused_batch_norm(
            x, gamma.value, beta.value, mean=moving_mean.value, variance=moving_variance.value,
            epsilon=epsilon, data_format="NHWC", is_training=True, exponential_avg_factor=momentum,
        )
        moving_mean.assign(tf.stop_gradient(new_mean))
        moving_variance.assign(tf.stop_gradient(new_var))
        return y
    axes = (0, 2, 3) if data_format == "channels_first" else (0, 1, 2)
    mean, var = ops.moments(x, axes=axes)
    channels = x.shape[channel_axis(data_format)]
    # Elements per channel; dynamic, since the batch size may be unknown.
    n = ops.cast(ops.size(x), var.dtype) / channels
    unbiased = var * (n / ops.maximum(n - 1.0, 1.0))
    moving_mean.assign(moving_mean * (1 - momentum) + ops.stop_gradient(mean) * momentum)
    moving_variance.assign(moving_variance * (1 - momentum) + ops.stop_gradient(unbiased) * momentum)
    inv_std = gamma * ops.rsqrt(var + epsilon)
    shift = beta - mean * inv_std
    if data_format == "channels_first":
        inv_std = ops.reshape(inv_std, (1, -1, 1, 1))
        shift = ops.reshape(shift, (1, -1, 1, 1))
    return x * inv_std + shift


def average_over_replicas_(tensors):
    """Replace each tensor by its mean over the replicas, in place (torch data parallelism).

    One all-reduce of all of them flattened into one buffer (what PyTorch's
    ``DistributedDataParallel`` does bucket by bucket): hundreds of small
    collectives, one per weight, cost far more than one large one. Only torch
    needs this: ``tf.distribute`` sums the replicas' gradients itself, JAX's
    SPMD gradients are already global.
    """
    replicas = num_replicas()
    if BACKEND != "torch" or replicas == 1:
        return tensors
    import torch.distributed as dist

    present = [t for t in tensors if t is not None]
    flat = torch.cat([t.reshape(-1) for t in present])
    dist.all_reduce(flat)
    flat /= replicas
    offset = 0
    for t in present:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return tensors


def broadcast_from_first_replica_(tensors):
    """Overwrite ``tensors`` on every process with the first process's (torch, in place).

    So that replicas initialised apart (random initialisers, a checkpoint
    read on one process only) start equal, as ``DistributedDataParallel``
    does at construction. ``tf.distribute`` and JAX's ``DataParallel`` hold
    one copy of each variable already: nothing to do there.
    """
    if BACKEND != "torch" or num_replicas() == 1:
        return tensors
    import torch.distributed as dist

    for t in tensors:
        dist.broadcast(t, src=0)
    return tensors


@contextlib.contextmanager
def data_parallel_scope(devices=1):
    """Train inside this block with one model replica per device; yields the replica count.

    Each backend's own engine (README, "Training on several devices"):

    * TensorFlow: ``tf.distribute.MirroredStrategy`` over the first
      ``devices`` GPUs (logical CPUs without GPUs), or
      ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes several
      hosts; build and compile the model inside the block.
    * JAX: ``keras.distribution.DataParallel`` over the first ``devices``
      devices, reset when the block ends.
    * torch: one process per device under ``torchrun --nproc_per_node
      devices``; the block joins its process group
      (:func:`keraspose.training.distributed.initialize`).

    With ``devices=1`` (and no ``torchrun``/``TF_CONFIG``) it changes nothing.
    """
    import os

    devices = int(devices)
    if devices < 1:
        raise ValueError(f"devices must be 1 or more, got {devices}")
    if BACKEND == "torch":
        from keraspose.training import distributed

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size != devices:
            raise ValueError(
                f"devices={devices} but this is one of {world_size} torch process(es): on torch start one process "
                f"per device with `torchrun --nproc_per_node {devices} <script> ...` (and the same --devices)"
            )
        yield distributed.initialize()[1]
        return
    if BACKEND == "tensorflow":
        if "TF_CONFIG" in os.environ:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        elif devices == 1:
            strategy = tf.distribute.get_strategy()
        else:
            kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
            available = [d.name for d in tf.config.list_logical_devices(kind)]
            if len(available) < devices:
                raise ValueError(
                    f"devices={devices} but TensorFlow sees {len(available)} {kind} device(s) {available}; "
                    "pass at most that many"
                )
            strategy = tf.distribute.MirroredStrategy(available[:devices])
        with strategy.scope():
            yield strategy.num_replicas_in_sync
        return
    if BACKEND == "jax":
        available = keras.distribution.list_devices()
        if len(available) < devices:
            raise ValueError(
                f"devices={devices} but JAX sees {len(available)} device(s) {available}; pass at most that many "
                "(on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N host devices)"
            )
        if devices == 1:
            yield 1
            return
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=available[:devices]))
        try:
            yield devices
        finally:
            keras.distribution.set_distribution(previous)
        return
    if devices != 1:
        raise ValueError(f"data-parallel training is not supported on the {BACKEND} backend")
    yield 1
