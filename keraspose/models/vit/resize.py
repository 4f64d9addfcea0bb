"""Resizing as fixed interpolation matrices, identical to PyTorch's on every backend.

``F.interpolate`` (bilinear or bicubic, ``align_corners=False``) is a linear
map along each axis, so ``out = M_h @ x @ M_w^T`` with matrices that depend
only on the sizes. Building them in numpy gives PyTorch's exact numbers on
TensorFlow and JAX too (their resize kernels differ: Keras' bicubic uses
a=-0.5, PyTorch a=-0.75) and exports as two matmuls.

Example:
>>> import numpy as np
>>> interpolation_matrix(2, 4, "bilinear").round(3).tolist()[0]
[1.0, 0.0]
>>> interpolation_matrix(3, 3, "bicubic").round(6).tolist()[1]
[0.0, 1.0, 0.0]
"""

import numpy as np


def _cubic_weights(t, a=-0.75):
    """PyTorch's cubic-convolution weights of the 4 taps at offsets -1, 0, 1, 2."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def interpolation_matrix(in_size, out_size, mode="bilinear", scale=None):
    """``(out_size, in_size)`` float32 matrix of PyTorch's 1-D ``interpolate(align_corners=False)``.

    Args:
        in_size, out_size: lengths along the axis.
        mode: ``"bilinear"`` or ``"bicubic"`` (PyTorch's a=-0.75, edges clamped).
        scale: PyTorch's source step (``1 / scale_factor`` when a scale factor
            is given); default ``in_size / out_size``.
    """
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation_matrix: mode must be 'bilinear' or 'bicubic', got {mode!r}")
    step = in_size / out_size if scale is None else scale
    matrix = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        src = (i + 0.5) * step - 0.5
        if mode == "bilinear":
            src = max(src, 0.0)  # PyTorch clamps linear modes' source index at 0
            i0 = min(int(np.floor(src)), in_size - 1)
            i1 = min(i0 + 1, in_size - 1)
            frac = src - i0
            matrix[i, i0] += 1.0 - frac
            matrix[i, i1] += frac
        else:
            base = int(np.floor(src))
            weights = _cubic_weights(src - base)
            for offset, w in zip((-1, 0, 1, 2), weights):
                matrix[i, min(max(base + offset, 0), in_size - 1)] += w
    return matrix.astype(np.float32)
