"""What every checkpoint converter shares: reading a PyTorch state dict safely, mapping it onto ConvBN layers.

A model lists its convolutions with ``checkpoint_keys()``: ``(ConvBN layer,
conv key prefix, BatchNorm key prefix or None)`` in the source toolbox's
state-dict names. :func:`conv_bn_mapping` turns that list into
``{checkpoint key: (variable, kind)}``; :func:`check_and_load` checks the
mapping against a checkpoint both ways and copies the tensors.

Example:
>>> from keraspose.layers import ConvBN
>>> layer = ConvBN(4, 3, name="c")
>>> layer.build((None, 8, 8, 2))
>>> sorted(conv_bn_mapping([(layer, "stem.conv", "stem.bn")]))[:3]
['stem.bn.bias', 'stem.bn.num_batches_tracked', 'stem.bn.running_mean']
"""

import os

import numpy as np

__all__ = ["ConversionError", "read_state_dict", "conv_bn_mapping", "check_and_load"]

# BatchNorm buffers/parameters -> ConvBN variable names.
BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


class ConversionError(ValueError):
    """A checkpoint or config that cannot be mapped onto a keraspose model."""


def read_state_dict(checkpoint, skip_prefixes=("data_preprocessor.",)):
    """The ``state_dict`` of a ``.pth`` checkpoint as ``{key: numpy array}``, read with ``weights_only=True``.

    Accepts ``{"state_dict": ...}`` (OpenMMLab's layout), ``{"model": ...}``
    or a bare state dict; a ``module.`` prefix (DataParallel) is removed.
    No code inside the file is executed.
    """
    import torch

    path = os.fspath(checkpoint)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, not a checkpoint, pickled code...
        raise ConversionError(
            f"{path}: cannot read as a PyTorch checkpoint with weights_only=True ({type(err).__name__}: {err}). "
            "Is the file complete (compare its size and sha256 with the download page)?"
        ) from None
    state = None
    if isinstance(data, dict):
        state = data.get("state_dict", data.get("model", data))
    if not isinstance(state, dict) or not state:
        raise ConversionError(f"{path}: no state_dict found in the checkpoint")
    out = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith(tuple(skip_prefixes)):
            continue
        if not hasattr(value, "shape"):
            raise ConversionError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return out


def conv_bn_mapping(entries):
    """``{checkpoint key: (variable or None, kind)}`` for ``(ConvBN, conv key, bn key)`` entries.

    ``kind`` is ``"conv"`` (PyTorch OIHW -> Keras HWIO), ``"vector"`` or
    ``"counter"`` (``num_batches_tracked``, which has no Keras counterpart).
    """
    mapping = {}
    for layer, conv_key, bn_key in entries:
        mapping[f"{conv_key}.weight"] = (layer.kernel, "conv")
        if getattr(layer, "bias", None) is not None:
            mapping[f"{conv_key}.bias"] = (layer.bias, "vector")
        if layer.norm:
            if bn_key is None:
                raise ConversionError(f"{layer.name}: has a BatchNorm but no checkpoint key for it")
            for field, attr in BN_FIELDS.items():
                mapping[f"{bn_key}.{field}"] = (getattr(layer, attr), "vector")
            mapping[f"{bn_key}.num_batches_tracked"] = (None, "counter")
    return mapping


def _expected_shape(variable, kind):
    shape = tuple(int(d) for d in variable.shape)
    if kind == "conv":  # Keras (kh, kw, in, out) <- PyTorch (out, in, kh, kw)
        return (shape[3], shape[2], shape[0], shape[1])
    return shape


def _to_keras(value, kind):
    value = np.asarray(value, np.float32)
    return value.transpose(2, 3, 1, 0) if kind == "conv" else value


def check_and_load(model, mapping, state_dict, source="checkpoint"):
    """Check ``mapping`` against ``state_dict`` both ways, then copy every tensor into ``model``.

    Raises :class:`ConversionError` naming the first problem of each kind (and
    how many there are): a checkpoint key nothing claims, a key the model
    needs that the checkpoint lacks, a shape that differs (both shapes), a
    model variable no key fills, or one variable listed under several keys
    (a shared kernel) with different values.
    """
    missing = sorted(k for k in mapping if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in mapping)
    mismatched = []
    for key, (variable, kind) in mapping.items():
        if key in state_dict and variable is not None:
            want, got = _expected_shape(variable, kind), tuple(state_dict[key].shape)
            if got != want:
                mismatched.append((key, got, want))
    filled = {id(variable) for variable, _ in mapping.values() if variable is not None}
    unfilled = [v.path for v in model.weights if id(v) not in filled]
    problems = []
    if mismatched:
        key, got, want = mismatched[0]
        problems.append(
            f"{len(mismatched)} shapes differ, the first {key}: {source} {list(got)} vs model {list(want)}"
            + (f" (others: {[m[0] for m in mismatched[1:6]]})" if len(mismatched) > 1 else "")
        )
    if missing:
        problems.append(f"{len(missing)} keys the model needs are not in the {source}, the first {missing[0]!r}"
                        + (f" (others: {missing[1:6]})" if len(missing) > 1 else ""))
    if unexpected:
        problems.append(f"{len(unexpected)} {source} keys have no place in the model, the first {unexpected[0]!r}"
                        + (f" (others: {unexpected[1:6]})" if len(unexpected) > 1 else ""))
    if unfilled:
        problems.append(f"{len(unfilled)} model variables are not filled by any {source} key, the first {unfilled[0]}")
    if problems:
        raise ConversionError(
            f"the {source} does not match the model built from the config (is it the config this checkpoint "
            "was trained with?):\n  " + "\n  ".join(problems)
        )
    assigned = {}
    for key, (variable, kind) in mapping.items():
        if variable is None:
            continue
        value = _to_keras(state_dict[key], kind)
        first = assigned.get(id(variable))
        if first is not None:
            # One variable under several names: a kernel shared across levels.
            if not np.array_equal(value, first[1]):
                raise ConversionError(
                    f"{key} and {first[0]} are one shared tensor in the model but differ in the {source}"
                )
            continue
        variable.assign(value)
        assigned[id(variable)] = (key, value)
    return model
