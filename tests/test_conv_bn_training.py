"""ConvBN in training mode against torch.nn.BatchNorm2d (the semantics MMPose trains with)."""

import keras
import numpy as np
import pytest
import torch

from keraspose.layers import ConvBN

# TensorFlow's CPU convolutions are channels-last only.
FORMATS = ["channels_last"] + (["channels_first"] if keras.config.backend() in ("torch", "jax") else [])


def _nhwc(y, data_format):
    y = keras.ops.convert_to_numpy(y)
    return y.transpose(0, 2, 3, 1) if data_format == "channels_first" else y


def _layer_input(x, data_format):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if data_format == "channels_first" else x


@pytest.mark.parametrize("data_format", FORMATS)
def test_training_batch_norm_matches_torch(data_format):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 9, 7, 5)).astype("float32") * 3 + 1
    layer = ConvBN(6, kernel_size=3, padding=1, activation=None, momentum=0.1, epsilon=1e-5, data_format=data_format)
    layer.build(_layer_input(x, data_format).shape)
    kernel = rng.standard_normal((3, 3, 5, 6)).astype("float32") * 0.2
    gamma = rng.uniform(0.5, 1.5, 6).astype("float32")
    beta = rng.standard_normal(6).astype("float32")
    mean0 = rng.standard_normal(6).astype("float32")
    var0 = rng.uniform(0.5, 2.0, 6).astype("float32")
    for var, value in zip((layer.kernel, layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance),
                          (kernel, gamma, beta, mean0, var0)):
        var.assign(value)

    conv = torch.nn.Conv2d(5, 6, 3, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(6, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
        bn.weight.copy_(torch.from_numpy(gamma)), bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(mean0)), bn.running_var.copy_(torch.from_numpy(var0))
    bn.train()
    expected = bn(conv(torch.from_numpy(x).permute(0, 3, 1, 2))).permute(0, 2, 3, 1).detach().numpy()

    got = _nhwc(layer(_layer_input(x, data_format), training=True), data_format)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The moving statistics move as PyTorch's running ones (unbiased variance).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
    # And inference afterwards uses them (the folded-weights cache saw the update).
    bn.eval()
    expected_eval = bn(conv(torch.from_numpy(x).permute(0, 3, 1, 2))).permute(0, 2, 3, 1).detach().numpy()
    got_eval = _nhwc(layer(_layer_input(x, data_format), training=False), data_format)
    np.testing.assert_allclose(got_eval, expected_eval, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data_format", FORMATS)
def test_training_batch_norm_gradients_match_torch(data_format):
    """Gradients w.r.t. gamma and beta through the training-mode BatchNorm."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 4)).astype("float32")
    layer = ConvBN(3, kernel_size=1, activation="relu", data_format=data_format)
    layer.build(_layer_input(x, data_format).shape)
    kernel = rng.standard_normal((1, 1, 4, 3)).astype("float32")
    layer.kernel.assign(kernel)
    weights = rng.standard_normal((2, 6, 5, 3)).astype("float32")

    conv = torch.nn.Conv2d(4, 3, 1, bias=False)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
    out = torch.relu(bn(conv(torch.from_numpy(x).permute(0, 3, 1, 2))))
    (out * torch.from_numpy(weights).permute(0, 3, 1, 2)).sum().backward()

    if keras.config.backend() == "torch":
        y = layer(_layer_input(x, data_format), training=True)
        w = torch.from_numpy(_layer_input(weights, data_format))
        (y * w).sum().backward()
        grads = [layer.gamma.value.grad.numpy(), layer.beta.value.grad.numpy()]
    elif keras.config.backend() == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]
        w = _layer_input(weights, data_format)

        def loss(values):
            y, _ = layer.stateless_call(values, non_trainable, _layer_input(x, data_format), training=True)
            return (y * w).sum()

        by_variable = dict(zip((id(v) for v in layer.trainable_variables), jax.grad(loss)(trainable)))
        grads = [np.asarray(by_variable[id(layer.gamma)]), np.asarray(by_variable[id(layer.beta)])]
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            y = layer(_layer_input(x, data_format), training=True)
            loss = tf.reduce_sum(y * _layer_input(weights, data_format))
        grads = [g.numpy() for g in tape.gradient(loss, [layer.gamma.value, layer.beta.value])]
    np.testing.assert_allclose(grads[0], bn.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[1], bn.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
