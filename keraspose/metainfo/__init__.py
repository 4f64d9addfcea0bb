"""Dataset metainfo: what a keypoint set *is*, independent of any model.

A top-down pose model only outputs ``K`` heatmaps; everything that gives those
channels meaning lives here: the keypoint names in channel order, which
channel is the mirror image of which (needed by flip augmentation and by
test-time flip), the per-keypoint loss weights, the OKS sigmas used by COCO
evaluation, the skeleton and the colours used for drawing, and which
keypoints belong to the upper or lower body (used by half-body augmentation).

Two input formats are understood:

* our compact format (what ``coco.json`` / ``mpii.json`` contain)::

    {"dataset_name": "mine",
     "keypoint_names": ["a", "b", "c"],
     "flip_indices": [0, 2, 1],            # optional, default: identity
     "joint_weights": [1, 1, 1],           # optional, default: ones
     "sigmas": [0.1, 0.1, 0.1],            # optional, default: 0.05 each
     "skeleton_links": [[0, 1], [0, 2]],   # ids (or names)
     "skeleton_link_colors": [...], "keypoint_colors": [...],
     "upper_body_ids": [0], "lower_body_ids": [1, 2]}

* MMPose's ``dataset_info`` format, with ``keypoint_info`` / ``skeleton_info``
  dictionaries keyed by id, whose entries carry ``name``, ``id``, ``color``,
  ``type`` ('upper'/'lower') and ``swap`` (the mirror keypoint's name), and
  ``link`` (a pair of names) for the skeleton.

Both are validated: an inconsistent dict raises ``ValueError`` whose message
names the offending field.

Example:
    >>> from keraspose.metainfo import load_metainfo
    >>> coco = load_metainfo("coco")
    >>> coco.num_keypoints, coco.keypoint_names[1], coco.flip_indices[1]
    (17, 'left_eye', 2)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import numpy as np

__all__ = ["DatasetMetainfo", "load_metainfo", "BUILTIN_METAINFO"]

_HERE = Path(__file__).resolve().parent

#: Names of the keypoint sets shipped with the package (``<name>.json`` here).
BUILTIN_METAINFO = ("coco", "mpii")

# MMPose's fall-back colours when a keypoint / link has none.
_DEFAULT_KEYPOINT_COLOR = [255, 128, 0]
_DEFAULT_LINK_COLOR = [96, 96, 255]


def _err(field: str, message: str) -> ValueError:
    return ValueError(f"invalid metainfo field '{field}': {message}")


@keras.saving.register_keras_serializable(package="keraspose")
class DatasetMetainfo:
    """Immutable-ish description of a keypoint set.

    Args:
        dataset_name: free-form name, e.g. ``"coco"``.
        keypoint_names: names in channel (id) order; their count is ``K``.
        flip_indices: ``flip_indices[k]`` is the id of keypoint ``k``'s mirror
            image (``k`` itself for keypoints on the symmetry axis).
            Default: identity.
        joint_weights: ``K`` per-keypoint loss weights. Default: ones.
        sigmas: ``K`` OKS sigmas. Default: 0.05 each (only meaningful for
            COCO-style evaluation, which needs real values).
        skeleton_links: pairs of keypoint ids (or names) to draw as limbs.
        skeleton_link_colors: one RGB triple per link.
        keypoint_colors: one RGB triple per keypoint.
        upper_body_ids, lower_body_ids: keypoint ids of each half of the body.

    ``flip_pairs`` is derived from ``flip_indices`` exactly as MMPose derives
    it: for every keypoint ``k`` that has a distinct mirror, the pair
    ``[flip_indices[k], k]``, in id order (so each symmetric pair appears
    twice, once in each order).

    Example:
        >>> m = DatasetMetainfo("toy", ["left", "right", "mid"], flip_indices=[1, 0, 2])
        >>> m.flip_pairs
        [[1, 0], [0, 1]]
        >>> DatasetMetainfo.from_config(m.get_config()) == m
        True
    """

    def __init__(
        self,
        dataset_name: str,
        keypoint_names: Sequence[str],
        flip_indices: Sequence[int] | None = None,
        joint_weights: Sequence[float] | None = None,
        sigmas: Sequence[float] | None = None,
        skeleton_links: Sequence[Sequence[int | str]] | None = None,
        skeleton_link_colors: Sequence[Sequence[int]] | None = None,
        keypoint_colors: Sequence[Sequence[int]] | None = None,
        upper_body_ids: Sequence[int] | None = None,
        lower_body_ids: Sequence[int] | None = None,
    ):
        if not isinstance(dataset_name, str) or not dataset_name:
            raise _err("dataset_name", f"expected a non-empty string, got {dataset_name!r}")
        if isinstance(keypoint_names, str) or not isinstance(keypoint_names, Sequence):
            raise _err("keypoint_names", "expected a list of strings")
        names = [str(n) for n in keypoint_names]
        if not names:
            raise _err("keypoint_names", "must contain at least one keypoint")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _err("keypoint_names", f"duplicate names {dupes}")
        k = len(names)
        name2id = {n: i for i, n in enumerate(names)}

        def as_id(value, field):
            # Links and id lists may use names for readability; resolve them.
            if isinstance(value, str):
                if value not in name2id:
                    raise _err(field, f"unknown keypoint name {value!r}")
                return name2id[value]
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise _err(field, f"expected a keypoint id or name, got {value!r}")
            if not 0 <= int(value) < k:
                raise _err(field, f"keypoint id {int(value)} out of range [0, {k})")
            return int(value)

        def float_list(values, field, default):
            if values is None:
                return [float(default)] * k
            out = [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
            if len(out) != k:
                raise _err(field, f"expected {k} values (one per keypoint), got {len(out)}")
            return out

        def colors(values, count, field, default):
            if values is None:
                return [list(default) for _ in range(count)]
            arr = np.asarray(values).reshape(-1, 3) if len(values) == 0 else np.asarray(values)
            if arr.shape != (count, 3):
                raise _err(field, f"expected shape ({count}, 3), got {arr.shape}")
            if np.any(arr < 0) or np.any(arr > 255):
                raise _err(field, "colour components must lie in [0, 255]")
            return [[int(c) for c in row] for row in arr]

        if flip_indices is None:
            flip = list(range(k))
        else:
            flip = [as_id(i, "flip_indices") for i in flip_indices]
            if len(flip) != k:
                raise _err("flip_indices", f"expected {k} entries, got {len(flip)}")
            # A mirror map must be an involution: flipping twice is a no-op.
            for i, j in enumerate(flip):
                if flip[j] != i:
                    raise _err(
                        "flip_indices",
                        f"not symmetric: keypoint {i} maps to {j} but {j} maps to {flip[j]}",
                    )

        links = []
        for link in skeleton_links or []:
            if isinstance(link, str) or len(link) != 2:
                raise _err("skeleton_links", f"expected pairs, got {link!r}")
            links.append([as_id(link[0], "skeleton_links"), as_id(link[1], "skeleton_links")])

        self.dataset_name = dataset_name
        self.keypoint_names = names
        self.flip_indices = flip
        self.joint_weights = float_list(joint_weights, "joint_weights", 1.0)
        self.sigmas = float_list(sigmas, "sigmas", 0.05)
        self.skeleton_links = links
        self.skeleton_link_colors = colors(
            skeleton_link_colors, len(links), "skeleton_link_colors", _DEFAULT_LINK_COLOR
        )
        self.keypoint_colors = colors(keypoint_colors, k, "keypoint_colors", _DEFAULT_KEYPOINT_COLOR)
        self.upper_body_ids = [as_id(i, "upper_body_ids") for i in (upper_body_ids or [])]
        self.lower_body_ids = [as_id(i, "lower_body_ids") for i in (lower_body_ids or [])]
        both = set(self.upper_body_ids) & set(self.lower_body_ids)
        if both:
            raise _err("lower_body_ids", f"ids {sorted(both)} are also in upper_body_ids")

    # ------------------------------------------------------------------ derived
    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_pairs(self) -> list[list[int]]:
        return [[j, i] for i, j in enumerate(self.flip_indices) if j != i]

    @property
    def keypoint_id2name(self) -> dict[int, str]:
        return dict(enumerate(self.keypoint_names))

    @property
    def keypoint_name2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.keypoint_names)}

    @property
    def num_skeleton_links(self) -> int:
        return len(self.skeleton_links)

    # ------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """The compact format (JSON-serialisable, accepted by :meth:`from_dict`)."""
        return {
            "dataset_name": self.dataset_name,
            "keypoint_names": list(self.keypoint_names),
            "flip_indices": list(self.flip_indices),
            "upper_body_ids": list(self.upper_body_ids),
            "lower_body_ids": list(self.lower_body_ids),
            "keypoint_colors": [list(c) for c in self.keypoint_colors],
            "skeleton_links": [list(link) for link in self.skeleton_links],
            "skeleton_link_colors": [list(c) for c in self.skeleton_link_colors],
            "joint_weights": list(self.joint_weights),
            "sigmas": list(self.sigmas),
        }

    def get_config(self) -> dict[str, Any]:
        return self.to_dict()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DatasetMetainfo":
        return cls(**config)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DatasetMetainfo":
        """Build from our compact dict or from MMPose's ``dataset_info`` dict."""
        if not isinstance(d, Mapping):
            raise ValueError(f"metainfo must be a dict, got {type(d).__name__}")
        if "keypoint_info" in d:
            return cls._from_mmpose(d)
        if "keypoint_names" not in d:
            raise _err("keypoint_names", "missing (and no MMPose 'keypoint_info' either)")
        allowed = {
            "dataset_name", "keypoint_names", "flip_indices", "joint_weights", "sigmas",
            "skeleton_links", "skeleton_link_colors", "keypoint_colors",
            "upper_body_ids", "lower_body_ids",
        }
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise _err(unknown[0], f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        kwargs = dict(d)
        kwargs.setdefault("dataset_name", "custom")
        return cls(**kwargs)

    @classmethod
    def _from_mmpose(cls, d: Mapping[str, Any]) -> "DatasetMetainfo":
        kinfo = d["keypoint_info"]
        if not isinstance(kinfo, Mapping) or not kinfo:
            raise _err("keypoint_info", "expected a non-empty dict keyed by keypoint id")
        # Keys are ints in MMPose's python configs and strings once through JSON.
        try:
            by_id = {int(key): value for key, value in kinfo.items()}
        except (TypeError, ValueError):
            raise _err("keypoint_info", "keys must be keypoint ids (integers)") from None
        k = len(by_id)
        if sorted(by_id) != list(range(k)):
            raise _err("keypoint_info", f"ids must be 0..{k - 1} without gaps, got {sorted(by_id)}")
        entries = [by_id[i] for i in range(k)]
        for i, e in enumerate(entries):
            if "name" not in e:
                raise _err("keypoint_info", f"keypoint {i} has no 'name'")
            if "id" in e and int(e["id"]) != i:
                raise _err("keypoint_info", f"keypoint under key {i} declares id {e['id']}")
        names = [e["name"] for e in entries]
        name2id = {n: i for i, n in enumerate(names)}
        flip = []
        for i, e in enumerate(entries):
            swap = e.get("swap", "") or ""
            if swap == "" or swap == e["name"]:
                flip.append(i)
            elif swap not in name2id:
                raise _err(
                    "keypoint_info",
                    f"keypoint {e['name']!r} swaps with {swap!r}, which is not a keypoint",
                )
            else:
                flip.append(name2id[swap])
        sinfo = d.get("skeleton_info", {}) or {}
        if not isinstance(sinfo, Mapping):
            raise _err("skeleton_info", "expected a dict keyed by link id")
        link_entries = [sinfo[key] for key in sorted(sinfo, key=int)]
        for e in link_entries:
            if "link" not in e:
                raise _err("skeleton_info", f"entry {e!r} has no 'link'")
            for name in e["link"]:
                if name not in name2id:
                    raise _err("skeleton_info", f"link {tuple(e['link'])} names unknown keypoint {name!r}")
        return cls(
            dataset_name=d.get("dataset_name", "custom"),
            keypoint_names=names,
            flip_indices=flip,
            joint_weights=d.get("joint_weights"),
            sigmas=d.get("sigmas"),
            skeleton_links=[list(e["link"]) for e in link_entries],
            skeleton_link_colors=[e.get("color", _DEFAULT_LINK_COLOR) for e in link_entries],
            keypoint_colors=[e.get("color", _DEFAULT_KEYPOINT_COLOR) for e in entries],
            upper_body_ids=[i for i, e in enumerate(entries) if e.get("type") == "upper"],
            lower_body_ids=[i for i, e in enumerate(entries) if e.get("type") == "lower"],
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "DatasetMetainfo":
        """Read a JSON file in either supported format."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the compact format to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetMetainfo):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"DatasetMetainfo({self.dataset_name!r}, num_keypoints={self.num_keypoints})"


def load_metainfo(spec: "str | os.PathLike | Mapping[str, Any] | DatasetMetainfo") -> DatasetMetainfo:
    """Resolve ``spec`` into a :class:`DatasetMetainfo`.

    ``spec`` may be a built-in name (``"coco"``, ``"mpii"``), a path to a JSON
    file, a dict (either format) or an existing ``DatasetMetainfo``.

    >>> load_metainfo("mpii").keypoint_names[:2]
    ['right_ankle', 'right_knee']
    """
    if isinstance(spec, DatasetMetainfo):
        return spec
    if isinstance(spec, Mapping):
        return DatasetMetainfo.from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        key = str(spec)
        if key.lower() in BUILTIN_METAINFO:
            return DatasetMetainfo.from_json(_HERE / f"{key.lower()}.json")
        if os.path.isfile(key):
            return DatasetMetainfo.from_json(key)
        raise ValueError(
            f"unknown metainfo {key!r}: not a built-in ({', '.join(BUILTIN_METAINFO)}) "
            "and not an existing JSON file"
        )
    raise ValueError(f"cannot build metainfo from {type(spec).__name__}")
