"""keraspose.backend's fast paths against PyTorch and against the plain keras.ops path.

Every backend has its own implementation behind each function of
``keraspose.backend`` (torch.nn.functional, tf.nn, jax.lax, keras.ops); all
of them must compute what PyTorch computes, with PyTorch's symmetric integer
padding. The reference is ``torch.nn.functional`` itself (torch is a test
dependency on every backend) and, for convolutions and pooling, the generic
``keras.ops`` formulation (explicit pad, then a "valid" op).
"""

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from keras import ops

from keraspose import backend

# TensorFlow's CPU convolutions and pooling are channels-last only.
FORMATS = ["channels_last"] + (["channels_first"] if backend.BACKEND in ("torch", "jax") else [])


def _to_layer(x_nchw, data_format):
    """An NCHW numpy array -> the layout under test, as a backend tensor."""
    x = x_nchw if data_format == "channels_first" else x_nchw.transpose(0, 2, 3, 1)
    return ops.convert_to_tensor(np.ascontiguousarray(x))


def _to_nchw(y, data_format):
    y = ops.convert_to_numpy(y)
    return y if data_format == "channels_first" else y.transpose(0, 3, 1, 2)


def _torch(fn, *arrays, **kwargs):
    with torch.no_grad():
        return fn(*(torch.from_numpy(a) for a in arrays), **kwargs).numpy()


def _keras_ops_conv(x_nhwc, kernel, strides, padding, dilation, groups):
    """The generic path: explicit symmetric pad, then one "valid" keras.ops conv per group."""
    p = [padding, padding]
    x = ops.pad(ops.convert_to_tensor(x_nhwc), [[0, 0], p, p, [0, 0]])
    xs = ops.split(x, groups, axis=-1) if groups > 1 else [x]
    ks = ops.split(ops.convert_to_tensor(kernel), groups, axis=-1) if groups > 1 else [kernel]
    outs = [ops.conv(xi, ki, strides, "valid", "channels_last", dilation) for xi, ki in zip(xs, ks)]
    return ops.convert_to_numpy(ops.concatenate(outs, axis=-1))


# (kernel, strides, padding, dilation, groups, in_channels, out_channels)
CONV_CASES = [
    (3, 1, 1, 1, 1, 5, 6),   # MMPose's 3x3 "same"
    (3, 2, 1, 1, 1, 5, 6),   # stride 2 on an even input: Keras' "same" would shift by one pixel
    (1, 1, 0, 1, 1, 8, 4),   # pointwise (a matmul on torch)
    (1, 2, 0, 1, 1, 8, 4),   # strided 1x1 (HRNet's downsample branches)
    (7, 2, 3, 1, 1, 3, 8),   # ResNet's stem
    (5, 1, 2, 1, 6, 6, 6),   # depthwise (Lite-HRNet, RTMDet-nano)
    (3, 2, 1, 1, 6, 6, 12),  # depthwise with a channel multiplier
    (3, 1, 1, 1, 2, 6, 4),   # grouped
    (3, 1, 2, 2, 1, 4, 5),   # dilated
    (3, 1, 2, 2, 6, 6, 6),   # dilated depthwise
    (3, 1, 0, 1, 1, 4, 5),   # unpadded 3x3
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "k{}s{}p{}d{}g{}".format(*c[:5]))
@pytest.mark.parametrize("use_bias", [False, True])
def test_conv2d_native_matches_torch_and_keras_ops(case, data_format, use_bias):
    k, s, p, d, g, cin, cout = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, cin, 10, 8)).astype("float32")
    kernel = rng.standard_normal((k, k, cin // g, cout)).astype("float32")  # Keras layout
    bias = rng.standard_normal(cout).astype("float32") if use_bias else None

    with torch.no_grad():
        expected = F.conv2d(
            torch.from_numpy(x), torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()),
            None if bias is None else torch.from_numpy(bias), s, p, d, g,
        ).numpy()
    native = backend.to_native_conv_kernel(ops.convert_to_tensor(kernel))
    got = backend.conv2d_native(
        _to_layer(x, data_format), native, None if bias is None else ops.convert_to_tensor(bias),
        strides=s, padding=p, dilation=d, groups=g, data_format=data_format,
    )
    np.testing.assert_allclose(_to_nchw(got, data_format), expected, rtol=1e-4, atol=1e-4)

    generic = _keras_ops_conv(x.transpose(0, 2, 3, 1), kernel, s, p, d, g).transpose(0, 3, 1, 2)
    if bias is not None:
        generic = generic + bias[None, :, None, None]
    np.testing.assert_allclose(_to_nchw(got, data_format), generic, rtol=1e-4, atol=1e-4)


def test_conv2d_native_pointwise_on_channels_first_view():
    """A 1x1 conv on a channels-first view of an NHWC array (torch's matmul path on its own input)."""
    if backend.BACKEND == "tensorflow":
        pytest.skip("TensorFlow's CPU convolutions are channels-last only")
    rng = np.random.default_rng(1)
    x_nhwc = rng.standard_normal((2, 6, 5, 8)).astype("float32")
    kernel = rng.standard_normal((1, 1, 8, 3)).astype("float32")
    bias = rng.standard_normal(3).astype("float32")
    x = backend.to_channels_first(ops.convert_to_tensor(x_nhwc))  # NHWC strides on torch
    native = backend.to_native_conv_kernel(ops.convert_to_tensor(kernel))
    got = ops.convert_to_numpy(backend.conv2d_native(x, native, ops.convert_to_tensor(bias), data_format="channels_first"))
    expected = np.einsum("nhwc,co->nohw", x_nhwc, kernel[0, 0]) + bias[None, :, None, None]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# (kernel, strides, padding, output_padding): MMPose's deconvolutions (k 4/3/2) and others.
TRANSPOSE_CASES = [(4, 2, 1, 0), (3, 2, 1, 1), (2, 2, 0, 0), (3, 2, 0, 0), (5, 3, 2, 1), (3, 1, 1, 0)]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: "k{}s{}p{}op{}".format(*c))
def test_conv2d_transpose_native_matches_torch(case, data_format):
    k, s, p, op = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 6, 4)).astype("float32")
    kernel = rng.standard_normal((k, k, 7, 5)).astype("float32")  # Keras' (kh, kw, out, in)
    bias = rng.standard_normal(7).astype("float32")
    expected = _torch(
        lambda xt, wt, bt: F.conv_transpose2d(xt, wt, bt, s, p, op),
        x, np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), bias,
    )
    native = backend.to_native_conv_kernel(ops.convert_to_tensor(kernel))
    got = backend.conv2d_transpose_native(
        _to_layer(x, data_format), native, ops.convert_to_tensor(bias), s, p, op, data_format,
    )
    assert _to_nchw(got, data_format).shape == expected.shape
    np.testing.assert_allclose(_to_nchw(got, data_format), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("pool,strides,padding", [(3, 2, 1), (5, 1, 2), (9, 1, 4), (13, 1, 6), (2, 2, 0)])
def test_max_pool2d_matches_torch_and_keras_ops(pool, strides, padding, data_format):
    rng = np.random.default_rng(3)
    # All negative: a zero-padded border would win and show up as a zero.
    x = -np.abs(rng.standard_normal((2, 3, 11, 8))).astype("float32") - 0.1
    expected = _torch(lambda t: F.max_pool2d(t, pool, strides, padding), x)
    got = backend.max_pool2d(_to_layer(x, data_format), pool, strides, padding, data_format)
    np.testing.assert_array_equal(_to_nchw(got, data_format), expected)

    pad = [padding, padding]
    padded = ops.pad(ops.convert_to_tensor(x.transpose(0, 2, 3, 1)), [[0, 0], pad, pad, [0, 0]], constant_values=-np.inf)
    generic = ops.convert_to_numpy(ops.max_pool(padded, pool, strides, "valid", "channels_last"))
    np.testing.assert_array_equal(generic.transpose(0, 3, 1, 2), expected)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("factor", [1, 2, 4])
def test_upsample_nearest_matches_torch(factor, data_format):
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 4)).astype("float32")
    expected = _torch(lambda t: F.interpolate(t, scale_factor=factor, mode="nearest"), x)
    got = backend.upsample_nearest(_to_layer(x, data_format), factor, data_format)
    np.testing.assert_array_equal(_to_nchw(got, data_format), expected)


@pytest.mark.parametrize("data_format", FORMATS)
def test_global_avg_pool_matches_torch(data_format):
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 4)).astype("float32")
    expected = _torch(lambda t: F.adaptive_avg_pool2d(t, 1), x)
    got = backend.global_avg_pool(_to_layer(x, data_format), data_format)
    np.testing.assert_allclose(_to_nchw(got, data_format), expected, rtol=1e-6, atol=1e-6)


def test_activations_and_add_match_torch():
    x = np.linspace(-5, 5, 41, dtype="float32").reshape(1, 41)
    y = np.linspace(2, -2, 41, dtype="float32").reshape(1, 41)
    t = ops.convert_to_tensor
    with backend.inference_mode():  # the in-place variants are taken on torch here
        np.testing.assert_allclose(ops.convert_to_numpy(backend.hard_sigmoid(t(x))), _torch(F.hardsigmoid, x), atol=1e-6)
        np.testing.assert_allclose(ops.convert_to_numpy(backend.silu_(t(x.copy()))), _torch(F.silu, x), atol=1e-6)
        np.testing.assert_array_equal(ops.convert_to_numpy(backend.relu_(t(x.copy()))), _torch(F.relu, x))
        np.testing.assert_array_equal(ops.convert_to_numpy(backend.add_(t(x.copy()), t(y))), x + y)


@pytest.mark.parametrize("data_format", FORMATS)
def test_batch_norm_train_matches_torch(data_format):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((3, 4, 5, 6)) * 2 + 1).astype("float32")
    gamma, beta = rng.uniform(0.5, 1.5, 4).astype("float32"), rng.standard_normal(4).astype("float32")
    mean0, var0 = rng.standard_normal(4).astype("float32"), rng.uniform(0.5, 2, 4).astype("float32")
    variables = [keras.Variable(v) for v in (gamma, beta)]
    moving = [keras.Variable(v, trainable=False) for v in (mean0, var0)]

    bn = torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.2).train()
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma)), bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(mean0)), bn.running_var.copy_(torch.from_numpy(var0))
        expected = bn(torch.from_numpy(x)).numpy()

    got = backend.batch_norm_train(_to_layer(x, data_format), *variables, *moving, 0.2, 1e-3, data_format)
    np.testing.assert_allclose(_to_nchw(got, data_format), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(moving[0]), bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(moving[1]), bn.running_var.numpy(), rtol=1e-5, atol=1e-6)


def test_conv_bn_compiled_equals_eager():
    """The fast paths also run inside the backend's compiled predict (tf.function / jax.jit)."""
    from keraspose.layers import ConvBN

    rng = np.random.default_rng(7)
    inputs = keras.Input((12, 10, 4))
    x = ConvBN(6, 3, strides=2, activation="relu", data_format="channels_last")(inputs)
    x = ConvBN(6, 3, groups=6, activation="silu", data_format="channels_last")(x)
    x = ConvBN(5, 4, strides=2, padding=1, transpose=True, activation="relu", data_format="channels_last")(x)
    model = keras.Model(inputs, x)
    for v in model.non_trainable_variables:  # non-trivial folded BatchNorm
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    batch = rng.standard_normal((3, 12, 10, 4)).astype("float32")
    eager = ops.convert_to_numpy(model(batch, training=False))
    model.jit_compile = backend.BACKEND != "torch"
    compiled = ops.convert_to_numpy(model.predict_on_batch(batch))
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)
