"""ConvBN: convolution + optional BatchNorm + optional activation, as one layer.

This is MMPose's ``ConvModule`` (conv -> norm -> act) and the building block of
every keraspose network. It is one layer instead of three for speed:

* At inference the BatchNorm is folded into the convolution
  (``w' = w * gamma / sqrt(var + eps)``, ``b' = beta + (b - mean) * ...``),
  so a conv+BN+ReLU costs one convolution and one in-place ReLU. On torch the
  folded kernel is cached in torch's own layout and recomputed only when a
  weight changes (see :func:`keraspose.backend.cache_key`).
* Padding is PyTorch's symmetric integer padding, applied natively by the
  backend (no padded copy of the input on torch).
* One Keras ``Layer.__call__`` instead of three (each costs ~35 us on torch).

In training mode the BatchNorm uses batch statistics and updates its moving
averages with PyTorch's convention (``momentum=0.1`` is the weight of the new
batch; the moving variance is updated with the unbiased batch variance), so a
model converted from MMPose keeps training the way it did there.

The same layer also serves folded checkpoints (``norm=False, use_bias=True``)
such as PP-TinyPose, and, with ``transpose=True``, MMPose's deconvolution
blocks (``ConvTranspose2d`` -> BN -> ReLU).
"""

import keras
from keras import ops

from keraspose.layers.base import BaseLayer
from keraspose import backend


@keras.saving.register_keras_serializable(package="keraspose")
class ConvBN(BaseLayer):
    """Convolution, BatchNorm and activation in one layer.

    Args:
        filters: output channels.
        kernel_size: square kernel size.
        strides: stride.
        padding: symmetric zero padding on every side; ``None`` means
            ``dilation * (kernel_size - 1) // 2`` (MMPose's "same").
        dilation: dilation rate.
        groups: PyTorch-style groups (``groups == in_channels`` is depthwise).
        use_bias: conv bias; ``None`` means "only without BatchNorm", as
            MMPose's ``bias='auto'``.
        norm: add a BatchNorm after the convolution.
        activation: ``None`` or a Keras activation name (``"relu"``, ...).
        transpose: transposed convolution (kernel stored as Keras'
            ``(kh, kw, out, in)``); ``output_padding`` as in PyTorch.
        epsilon, momentum: BatchNorm's, in PyTorch's convention.
        data_format: ``None`` for the backend's preferred layout
            (:func:`keraspose.backend.preferred_data_format`).

    Example:
    >>> import numpy as np
    >>> layer = ConvBN(8, 3, strides=2, activation="relu", data_format="channels_last")
    >>> tuple(layer(np.zeros((1, 32, 24, 3), "float32")).shape)
    (1, 16, 12, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding=None,
        dilation=1,
        groups=1,
        use_bias=None,
        norm=True,
        activation=None,
        transpose=False,
        output_padding=0,
        epsilon=1e-5,
        momentum=0.1,
        data_format=None,
        kernel_initializer="he_normal",
        **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.dilation = int(dilation)
        self.padding = (
            self.dilation * (self.kernel_size - 1) // 2 if padding is None else int(padding)
        )
        self.groups = int(groups)
        self.norm = bool(norm)
        self.use_bias = (not self.norm) if use_bias is None else bool(use_bias)
        self.activation_name = activation
        self.activation = keras.activations.get(activation) if activation else None
        self.transpose = bool(transpose)
        self.output_padding = int(output_padding)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if self.transpose and self.groups != 1:
            raise ValueError("ConvBN(transpose=True) supports groups=1 only")
        # Cache of the inference kernel/bias in the backend's native layout.
        object.__setattr__(self, "_inference_cache", None)

    def build(self, input_shape):
        in_channels = input_shape[backend.channel_axis(self.data_format)]
        if in_channels is None:
            raise ValueError(f"{self.name}: the channel dimension of the input must be known")
        if in_channels % self.groups:
            raise ValueError(
                f"{self.name}: {in_channels} input channels do not split into {self.groups} groups"
            )
        k = self.kernel_size
        if self.transpose:
            kernel_shape = (k, k, self.filters, in_channels)
        else:
            kernel_shape = (k, k, in_channels // self.groups, self.filters)
        self.kernel = self.add_weight(
            name="kernel", shape=kernel_shape, initializer=self.kernel_initializer
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )
        if self.norm:
            self._add_batch_norm_weights()

    def _add_batch_norm_weights(self):
        # BatchNorm stays float32 under mixed precision (autocast=False, as
        # Keras' BatchNormalization): its statistics are updated in place, and
        # a half-precision copy would drop the update and the small variances.
        f = self.filters
        self.gamma = self.add_weight(name="gamma", shape=(f,), initializer="ones", autocast=False)
        self.beta = self.add_weight(name="beta", shape=(f,), initializer="zeros", autocast=False)
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(f,), initializer="zeros", trainable=False, autocast=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(f,), initializer="ones", trainable=False, autocast=False
        )

    # -- the convolution itself -------------------------------------------
    def _conv(self, x, native_kernel, bias):
        if self.transpose:
            return backend.conv2d_transpose_native(
                x, native_kernel, bias, self.strides, self.padding,
                self.output_padding, self.data_format,
            )
        return backend.conv2d_native(
            x, native_kernel, bias, self.strides, self.padding, self.dilation,
            self.groups, self.data_format,
        )

    def _folded_kernel_and_bias(self):
        """Kernel and bias with the BatchNorm (inference statistics) folded in,
        computed in float32 and given in the layer's compute dtype."""
        kernel, bias = self.kernel, self.bias
        if not self.norm:
            return kernel, bias
        dtype = self.compute_dtype
        inv_std = self.gamma * ops.rsqrt(self.moving_variance + self.epsilon)
        # The output-channel axis is last for a conv kernel, third for a
        # transposed one ((kh, kw, out, in)).
        scale = ops.reshape(inv_std, (1, 1, -1, 1)) if self.transpose else inv_std
        kernel = ops.cast(kernel, "float32") * scale
        shift = -self.moving_mean if bias is None else ops.cast(bias, "float32") - self.moving_mean
        return ops.cast(kernel, dtype), ops.cast(self.beta + shift * inv_std, dtype)

    def _inference_weights(self):
        variables = [v for v in (self.kernel, self.bias) if v is not None]
        if self.norm:
            variables += [self.gamma, self.beta, self.moving_mean, self.moving_variance]
        key = backend.cache_key(variables)
        if key is not None:  # a cached kernel is in the compute dtype it was made for
            key = (self.compute_dtype, key)
        cache = self._inference_cache
        if key is not None and cache is not None and cache[0] == key:
            return cache[1], cache[2]
        kernel, bias = self._folded_kernel_and_bias()
        kernel = backend.to_native_conv_kernel(ops.convert_to_tensor(kernel))
        bias = None if bias is None else ops.convert_to_tensor(bias)
        if key is not None:
            object.__setattr__(self, "_inference_cache", (key, kernel, bias))
        return kernel, bias

    def call(self, inputs, training=None):
        if self.norm and training and self.trainable:
            y = self._conv(inputs, backend.to_native_conv_kernel(ops.convert_to_tensor(self.kernel)), self.bias)
            y = self._batch_norm_train(y)
        else:
            kernel, bias = self._inference_weights()
            y = self._conv(inputs, kernel, bias)
        if self.activation_name == "relu":
            return backend.relu_(y)  # y is our own fresh output
        if self.activation_name == "silu":
            return backend.silu_(y)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def _batch_norm_train(self, y):
        return backend.batch_norm_train(
            y, self.gamma, self.beta, self.moving_mean, self.moving_variance,
            self.momentum, self.epsilon, self.data_format,
        )

    def compute_output_shape(self, input_shape):
        if self.data_format == "channels_first":
            n, _, h, w = input_shape
        else:
            n, h, w, _ = input_shape
        k, s, p, d = self.kernel_size, self.strides, self.padding, self.dilation

        def out(size):
            if size is None:
                return None
            if self.transpose:
                return (size - 1) * s - 2 * p + k + self.output_padding
            return (size + 2 * p - d * (k - 1) - 1) // s + 1

        if self.data_format == "channels_first":
            return (n, self.filters, out(h), out(w))
        return (n, out(h), out(w), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            use_bias=self.use_bias,
            norm=self.norm,
            activation=self.activation_name,
            transpose=self.transpose,
            output_padding=self.output_padding,
            epsilon=self.epsilon,
            momentum=self.momentum,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
