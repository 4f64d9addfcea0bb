"""LayerNorm over the last axis, written in plain ``keras.ops`` so every exporter can trace it."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keraspose")
class LayerNorm(keras.layers.LayerNormalization):
    """``keras.layers.LayerNormalization`` over the last axis, as mean/variance arithmetic.

    Same variables (``gamma``, ``beta``) and config as Keras' layer; only the
    computation differs: Keras' torch implementation reads the input's
    static shape to pick ``F.layer_norm``'s normalised shape, which the
    TorchScript ONNX exporter cannot trace with a dynamic batch (ViTPose
    failed to export). Population variance, as PyTorch's ``LayerNorm``.

    Example:
    >>> import numpy as np
    >>> norm = LayerNorm(epsilon=1e-6)
    >>> y = keras.ops.convert_to_numpy(norm(np.array([[1.0, 2.0, 3.0]], "float32")))
    >>> [round(float(v), 4) for v in y[0]]
    [-1.2247, 0.0, 1.2247]
    """

    def call(self, inputs):
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        if [a % len(inputs.shape) for a in axes] != [len(inputs.shape) - 1] or self.rms_scaling:
            return super().call(inputs)  # not ViT's case
        x = ops.cast(inputs, "float32") if self.compute_dtype != "float32" else inputs
        mean = ops.mean(x, axis=-1, keepdims=True)
        centred = x - mean
        variance = ops.mean(ops.square(centred), axis=-1, keepdims=True)
        y = centred * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            y = y * ops.cast(self.gamma, y.dtype)
        if self.center:
            y = y + ops.cast(self.beta, y.dtype)
        return ops.cast(y, self.compute_dtype)
