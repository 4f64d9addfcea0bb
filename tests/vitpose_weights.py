"""Deterministic synthetic ViTPose weights, keyed by MMPose (mmpretrain) state-dict name.

Both tools/make_vitpose_fixture.py (MMPose's model, reference venv) and
tests/test_vitpose.py (ours, through the converter) fill the model from this
plain-numpy function, so the fixture stores only the seed, the BatchNorm
statistics of the classic head, inputs and outputs. The scales keep every
stage alive: linear/conv weights N(0, 1/fan_in), LayerNorm gains near 1, a
position embedding as large as the patch tokens (so a wrong layout or
resize shows).
"""

import zlib

import numpy as np


def synthetic_weight(key, shape, seed):
    """float32 array of ``shape`` for the state-dict entry ``key``."""
    rs = np.random.RandomState((zlib.crc32(key.encode()) + 7919 * seed) % (2**31))
    shape = tuple(int(s) for s in shape)
    if key.endswith("pos_embed"):
        return rs.standard_normal(shape).astype(np.float32)
    is_norm = ".ln" in key or key.split(".")[-2].startswith("ln") or ".deconv_layers." in key and len(shape) == 1
    if key.endswith(".weight") and len(shape) == 1 and is_norm:
        return rs.uniform(0.8, 1.2, shape).astype(np.float32)
    if len(shape) == 4:  # conv (out, in, kh, kw) or deconv (in, out, kh, kw)
        fan_in = shape[1] * shape[2] * shape[3]
        if ".deconv_layers." in key:
            fan_in = shape[0] * shape[2] * shape[3] / 4  # each output pixel sees a quarter of the taps
        return (rs.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if len(shape) == 2:  # Linear (out, in)
        return (rs.standard_normal(shape) * np.sqrt(1.0 / shape[1])).astype(np.float32)
    return rs.uniform(-0.2, 0.2, shape).astype(np.float32)  # biases


def synthetic_state_dict(shapes, seed):
    """``{key: array}`` for ``{key: shape}``."""
    return {key: synthetic_weight(key, shape, seed) for key, shape in shapes.items()}
