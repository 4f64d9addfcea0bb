"""Deterministic synthetic RTMDet weights, keyed by MMDetection state-dict name.

The RTMDet parity fixtures would need tens of MB of random weights. Instead,
both sides generate them: tools/make_rtmdet_fixture.py writes them into
MMDetection's own RTMDet (reference venv) and tests/test_rtmdet.py into
ours, from this one plain-numpy function, so only inputs and outputs are
stored. A weight depends only on its key, shape and the fixture's seed
(``np.random.RandomState``, whose streams numpy keeps stable across versions).

Values are chosen so the network says something: He-scaled conv kernels,
BatchNorm statistics away from the identity (running_var in [0.5, 2]),
box distances of a few strides, and a class-logit bias (``cls_bias``, chosen
per model by the tools script) that lets some dozens of candidates pass the
0.05 score threshold, so top-k and NMS have work to do.
"""

import re
import zlib

import numpy as np

# With share_conv, MMDetection assigns level 0's conv module to every level:
# the state dict lists one tensor under each level's name.
_SHARED_CONV = re.compile(r"^(bbox_head\.(?:cls|reg)_convs)\.\d+(\.\d+\.conv\.weight)$")


def canonical_key(key, share_conv):
    """The key whose value a (possibly shared) tensor takes."""
    return _SHARED_CONV.sub(r"\1.0\2", key) if share_conv else key


def synthetic_weight(key, shape, seed, cls_bias=0.0, reg_bias=0.0):
    """float32 array of ``shape`` for the MMDetection state-dict entry ``key``."""
    rs = np.random.RandomState((zlib.crc32(key.encode()) + 7919 * seed) % (2**31))
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if key.endswith("running_var"):
        return rs.uniform(0.5, 2.0, shape).astype(np.float32)
    if key.endswith("running_mean"):
        return rs.uniform(-0.3, 0.3, shape).astype(np.float32)
    if len(shape) == 4:  # conv kernel (out, in/groups, kh, kw)
        fan_in = shape[1] * shape[2] * shape[3]
        std = np.sqrt(2.0 / fan_in)
        if ".rtm_reg." in key or ".rtm_cls." in key:
            std *= 0.3  # keep logits and distances in a useful range
        return (rs.standard_normal(shape) * std).astype(np.float32)
    if ".rtm_cls." in key and key.endswith(".bias"):
        return (cls_bias + rs.uniform(-0.1, 0.1, shape)).astype(np.float32)
    if ".rtm_reg." in key and key.endswith(".bias"):
        return (reg_bias + rs.uniform(-0.2, 0.2, shape)).astype(np.float32)
    if key.endswith(".weight"):  # BatchNorm gamma
        return rs.uniform(0.6, 1.4, shape).astype(np.float32)
    return rs.uniform(-0.2, 0.2, shape).astype(np.float32)  # BN beta, conv biases


def synthetic_state_dict(shapes, seed, share_conv, cls_bias=0.0, reg_bias=0.0):
    """``{key: array}`` for ``{key: shape}``; shared convs get their level-0 value."""
    return {
        key: synthetic_weight(canonical_key(key, share_conv), shape, seed, cls_bias, reg_bias)
        for key, shape in shapes.items()
    }
