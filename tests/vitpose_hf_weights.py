"""Deterministic synthetic weights for tiny transformers VitPose checkpoints.

A classic-head checkpoint holds two 256-channel 4x4 deconvolutions (4 MB even
at width 64), too much for a fixture. So tools/make_vitpose_hf_fixture.py
fills transformers' ``VitPoseForPoseEstimation`` from this plain-numpy
function and checks that ``save_pretrained`` writes exactly these tensors;
tests/test_vitpose_hf.py writes the same ``model.safetensors`` from it. Scales
keep every stage alive (transformers' own init, std 0.02, would not): linear
and conv weights N(0, 1/fan_in), norm gains near 1, a unit-scale position
embedding (its class-token row too, which every patch token gets added to).
"""

import zlib

import numpy as np


def synthetic_weight(key, shape, seed):
    rs = np.random.RandomState((zlib.crc32(key.encode()) + 7919 * seed) % (2**31))
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if key.endswith("position_embeddings"):
        return rs.standard_normal(shape).astype(np.float32)
    if key.endswith("running_mean"):
        return (0.2 * rs.standard_normal(shape)).astype(np.float32)
    if key.endswith("running_var"):
        return rs.uniform(0.5, 2.0, shape).astype(np.float32)
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        if ".deconv" in key:  # ConvTranspose2d (in, out, kh, kw): each output pixel sees a quarter of the taps
            fan_in = shape[0] * shape[2] * shape[3] / 4
        return (rs.standard_normal(shape) * np.sqrt(1.0 / fan_in)).astype(np.float32)
    if key.endswith("weight") and ("layernorm" in key or "batchnorm" in key):
        return rs.uniform(0.8, 1.2, shape).astype(np.float32)
    return rs.uniform(-0.2, 0.2, shape).astype(np.float32)


def synthetic_state_dict(shapes, seed):
    """``{key: array}`` for ``{key: shape}``."""
    return {key: synthetic_weight(key, shape, seed) for key, shape in shapes.items()}
