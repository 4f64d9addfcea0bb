"""Deterministic synthetic RTMPose weights, keyed by MMPose state-dict name.

As for RTMDet (tests/rtmdet_weights.py), storing random RTMPose-t/-s weights
would take 13-22 MB per model. Both sides generate them instead, from this
one plain-numpy function: tools/make_rtmpose_fixture.py writes them into
MMPose's own model (reference venv), tests/test_rtmpose.py into ours. Only the
BatchNorm statistics (calibrated on the fixture's crops, then perturbed),
inputs and outputs are stored.

The backbone (CSPNeXt, MMDetection keys) takes the RTMDet recipe. The head's
tensors are scaled so that every stage passes a signal on: linear weights
N(0, 1/fan_in), ScaleNorm gains and the residual scale near 1, the GAU's
per-dimension scale/offset around 1 and 0.
"""

import zlib

import numpy as np

from rtmdet_weights import synthetic_weight as _cspnext_weight


def synthetic_weight(key, shape, seed):
    """float32 array of ``shape`` for the MMPose state-dict entry ``key``."""
    if not key.startswith("head."):
        return _cspnext_weight(key, shape, seed)
    rs = np.random.RandomState((zlib.crc32(key.encode()) + 7919 * seed) % (2**31))
    shape = tuple(int(s) for s in shape)
    if key.endswith(".g") or key.endswith("res_scale.scale"):
        return rs.uniform(0.8, 1.2, shape).astype(np.float32)
    if key.endswith("gau.gamma"):
        return rs.uniform(0.5, 1.5, shape).astype(np.float32)
    if key.endswith("gau.beta"):
        return rs.uniform(-0.5, 0.5, shape).astype(np.float32)
    if len(shape) == 4:  # the final conv
        fan_in = shape[1] * shape[2] * shape[3]
        return (rs.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if len(shape) == 2:  # Linear (out, in)
        return (rs.standard_normal(shape) * np.sqrt(1.0 / shape[1])).astype(np.float32)
    return rs.uniform(-0.2, 0.2, shape).astype(np.float32)  # conv bias


def synthetic_state_dict(shapes, seed):
    """``{key: array}`` for ``{key: shape}``."""
    return {key: synthetic_weight(key, shape, seed) for key, shape in shapes.items()}
