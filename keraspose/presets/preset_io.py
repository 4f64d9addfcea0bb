"""The keraspose preset directory: save a Keras model, load it back on any backend.

A preset is a plain directory (the same layout locally, in a Hugging Face Hub
repo, and in the Hub cache)::

    config.json        keras.saving.serialize_keras_object(model), as JSON
    model.safetensors  every variable, keyed by its attribute path (see below)
    metadata.json      versions, backend, class, source checkpoint, metrics, ...
    README.md          a Hugging Face model card (YAML front matter + text)

Weight keys are the *attribute path* from the top-level model to the
variable, e.g. ``backbone/stages/0/blocks/1/conv1/kernel`` — the same idea as
Keras' own ``.weights.h5`` format. Keras' ``variable.path`` is not usable as a
key: it is built from layer *names*, which carry process-wide counters
(``dense_3``, ``m_1/block_2/...``) and change when the same model is built a
second time in one process. Attribute names do not. Variables with an
auto-generated name (``variable_7``) or a name shared with a sibling are keyed
by their index in the layer instead. The scheme is the same on every backend,
so a preset saved on torch loads on TensorFlow or JAX.

Example:
>>> import keraspose.presets as presets
>>> presets.save_preset(model, "my_preset", metadata={"license": "apache-2.0"})  # doctest: +SKIP
>>> same = presets.load_preset("my_preset", flip_test=False)  # doctest: +SKIP
"""

import collections
import datetime
import hashlib
import json
import os
import re

import keras
import numpy as np

from keraspose.utils.atomic import atomic_directory

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "METADATA_FILE",
    "README_FILE",
    "PRESET_FILES",
    "save_preset",
    "load_preset",
    "load_preset_config",
    "load_preset_metadata",
    "variable_keys",
    "render_model_card",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
README_FILE = "README.md"
PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE, README_FILE)

PRESET_FORMAT = "keraspose-preset"
PRESET_FORMAT_VERSION = 1
KEY_SCHEME = "attribute-path-v1"

_FIX_REDOWNLOAD = (
    "Re-create the preset with keraspose.presets.save_preset(model, DIR) (or model.save_to_preset(DIR)); "
    "if it came from the Hugging Face Hub, download it again with force_download "
    "(or delete its folder under the Hub cache, HF_HOME/hub)."
)

# Names Keras gives a variable created without an explicit name
# (`add_weight(shape=...)`); they carry a global counter, so never use them.
_AUTO_VARIABLE_NAME = re.compile(r"^variable(_\d+)?$")


# ---------------------------------------------------------------------------
# Stable variable keys
# ---------------------------------------------------------------------------
def _is_layer(obj):
    return isinstance(obj, keras.layers.Layer)


def _own_variables(layer):
    # Exactly what Keras' own save_own_variables() stores for a layer: the
    # variables created on it directly, not those of its sublayers (and not
    # RNG seed states or metrics, which are not model weights).
    return list(getattr(layer, "_trainable_variables", [])) + list(getattr(layer, "_non_trainable_variables", []))


def _child_attributes(layer):
    """``(attribute name, value)`` of a layer, public names first, each group sorted."""
    names = set(vars(layer))
    # On the torch backend Keras layers are torch Modules: sublayers assigned
    # as attributes live in `_modules`, not in the instance __dict__.
    modules = vars(layer).get("_modules")
    if isinstance(modules, dict):
        names.update(modules)
    names.discard("_layers")  # handled last, as a catch-all
    public = sorted(n for n in names if not n.startswith("_"))
    private = sorted(n for n in names if n.startswith("_") and not n.startswith("__"))
    for name in public + private:
        try:
            value = getattr(layer, name)
        except Exception:  # a property that cannot be evaluated is not a sublayer
            continue
        yield name, value


def _walk_container(value, prefix, visit, depth=0):
    if depth > 8:
        return
    if _is_layer(value):
        visit(value, prefix)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _walk_container(item, f"{prefix}/{i}", visit, depth + 1)
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            _walk_container(value[key], f"{prefix}/{key}", visit, depth + 1)


def variable_keys(model):
    """An ordered ``{key: variable}`` of every weight of ``model``, with stable keys.

    Keys are attribute paths from ``model`` (its own name is never part of
    them), e.g. ``head/final_layer/kernel``. They depend only on the model's
    structure, not on layer names, build order in the process, or backend.
    A variable reachable through two attributes (a shared layer) is listed
    once, under the first path in sorted order.

    Example:
    >>> import keras
    >>> class Tiny(keras.Model):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.proj = keras.layers.Dense(2)
    ...     def call(self, x):
    ...         return self.proj(x)
    >>> model = Tiny()
    >>> _ = model(keras.ops.zeros((1, 3)))
    >>> list(variable_keys(model))
    ['proj/kernel', 'proj/bias']
    """
    keys = {}
    seen_vars = set()
    seen_layers = set()

    def visit(layer, prefix):
        if id(layer) in seen_layers:
            return
        seen_layers.add(id(layer))
        own = _own_variables(layer)
        counts = collections.Counter(v.name for v in own)
        for index, variable in enumerate(own):
            if id(variable) in seen_vars:
                continue
            name = variable.name
            if counts[name] > 1 or _AUTO_VARIABLE_NAME.match(name) or "/" in name:
                name = f"vars/{index}"
            key = f"{prefix}/{name}" if prefix else name
            if key in keys:  # e.g. an attribute literally called "vars"
                key = f"{prefix}/vars/{index}" if prefix else f"vars/{index}"
            keys[key] = variable
            seen_vars.add(id(variable))
        for attr, value in _child_attributes(layer):
            _walk_container(value, f"{prefix}/{attr}" if prefix else attr, visit)
        # Sublayers Keras tracks but that no attribute we could read points
        # to (e.g. held in a deeper structure): keyed by tracking order.
        for i, sub in enumerate(getattr(layer, "_layers", []) or []):
            _walk_container(sub, f"{prefix}/_layers/{i}" if prefix else f"_layers/{i}", visit)

    visit(model, "")
    # Every weight must have a key, or saving would silently drop it.
    missing = [v.path for v in model.weights if id(v) not in seen_vars]
    if missing:
        raise ValueError(
            f"could not find an attribute path for {len(missing)} variable(s) of {type(model).__name__}: "
            f"{missing[:10]}. Assign sublayers to attributes (self.x = layer) or lists/dicts of attributes."
        )
    return keys


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _keraspose_version():
    try:
        from keraspose.version import __version__
    except Exception:  # pragma: no cover - only in a broken install
        return "unknown"
    return __version__


def _registered_name(cls_or_name):
    if isinstance(cls_or_name, str):
        return cls_or_name
    return keras.saving.get_registered_name(cls_or_name)


def _register_keraspose_classes():
    """Import every keraspose model module, so each class a config names is registered."""
    import keraspose

    keraspose._import_all()


def _resolve_class(name):
    """The class registered under ``name`` (``package>Class``), or None."""
    _register_keraspose_classes()
    obj = keras.saving.get_registered_object(name)
    if obj is None and ">" not in name:
        obj = getattr(keras.models, name, None) or getattr(keras.layers, name, None)
    return obj if isinstance(obj, type) else None


def _config_class_name(config):
    return config.get("registered_name") or config.get("class_name") or "?"


def _num_keypoints_of(model):
    metainfo = getattr(model, "metainfo", None)
    for source in (model, metainfo):
        value = getattr(source, "num_keypoints", None) if source is not None else None
        if isinstance(value, (int, np.integer)):
            return int(value)
    return None


# The task of a class without ``preset_task`` (or of a preset saved before
# presets recorded their task): keraspose's own classes by name.
TASK_OF_CLASS_NAME = {"TopdownEstimator": "pose", "RTMDetector": "detector"}


# Other names for the two tasks (Hugging Face pipeline tags, older entries).
TASK_ALIASES = {
    "pose": "pose", "pose-estimation": "pose", "pose_estimation": "pose", "keypoint-detection": "pose",
    "topdown": "pose", "detector": "detector", "detection": "detector", "object-detection": "detector",
    "object_detection": "detector",
}


def normalize_task(task):
    """``"pose"`` or ``"detector"`` for a task name or alias (``"object-detection"``); other values unchanged.

    Example:
    >>> normalize_task("object-detection"), normalize_task("pose")
    ('detector', 'pose')
    """
    return TASK_ALIASES.get(str(task).strip().lower(), task) if task is not None else None


def _task_of(cls):
    """``"pose"``/``"detector"`` for a model class: its ``preset_task``, else by its name; or None."""
    task = getattr(cls, "preset_task", None)
    return task or TASK_OF_CLASS_NAME.get(getattr(cls, "__name__", ""))


def _class_names_of(model):
    """A detector's class names (``model.class_names``), or None for models that have none."""
    names = getattr(model, "class_names", None)
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def _to_numpy(variable):
    array = keras.ops.convert_to_numpy(variable.value if hasattr(variable, "value") else variable)
    array = np.asarray(array)
    if array.dtype.name == "bfloat16" or str(variable.dtype) == "bfloat16":
        # safetensors.numpy cannot write bfloat16 (numpy has no such dtype);
        # float32 holds every bfloat16 value exactly.
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


def _read_json(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{what} not found: {path}. A keraspose preset directory holds "
            f"{', '.join(PRESET_FILES)}. {_FIX_REDOWNLOAD}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}). {_FIX_REDOWNLOAD}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}). {_FIX_REDOWNLOAD}") from err


def _check_dir(preset_dir):
    preset_dir = os.fspath(preset_dir)
    if not os.path.isdir(preset_dir):
        raise FileNotFoundError(
            f"preset directory not found: {preset_dir}. Pass a directory written by save_preset, "
            "an hf://owner/repo handle, or a name from keraspose.presets.list_presets()."
        )
    return preset_dir


def load_preset_config(preset_dir):
    """The parsed ``config.json`` of a preset (the serialized Keras object)."""
    preset_dir = _check_dir(preset_dir)
    config = _read_json(os.path.join(preset_dir, CONFIG_FILE), "preset config")
    if not isinstance(config, dict) or "config" not in config or not (
        config.get("class_name") or config.get("registered_name")
    ):
        raise ValueError(
            f"{os.path.join(preset_dir, CONFIG_FILE)} is not a serialized Keras object "
            "(expected keys 'class_name' and 'config'). " + _FIX_REDOWNLOAD
        )
    return config


def load_preset_metadata(preset_dir):
    """The parsed ``metadata.json`` of a preset, or ``{}`` if the preset has none."""
    preset_dir = _check_dir(preset_dir)
    path = os.path.join(preset_dir, METADATA_FILE)
    if not os.path.exists(path):
        return {}
    metadata = _read_json(path, "preset metadata")
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(metadata).__name__}. {_FIX_REDOWNLOAD}")
    return metadata


def _sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Model card
# ---------------------------------------------------------------------------
def _yaml_scalar(value):
    # A JSON string is a valid YAML flow scalar: quoting everything this way
    # avoids YAML's surprises ("no" -> False, "1.0" -> float) without a
    # YAML dependency.
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value))


def _yaml_list(key, values):
    if not values:
        return []
    return [f"{key}:"] + [f"- {_yaml_scalar(v)}" for v in values]


_TASK_CARDS = {
    # task: (pipeline_tag, tags, usage lines)
    "pose": (
        "keypoint-detection",
        ["pose-estimation", "keypoint-detection"],
        ['result = model.predict("person.jpg", bboxes=[[x1, y1, x2, y2]])',
         "print(result.keypoints, result.keypoint_scores)"],
    ),
    "detector": (
        "object-detection",
        ["object-detection", "person-detection"],
        ['result = model.predict("street.jpg")',
         "print(result.boxes, result.scores, result.labels)"],
    ),
}


def render_model_card(metadata, handle=None):
    """A Hugging Face model card (README.md text) for a preset's metadata.

    The YAML front matter carries ``license``, ``library_name: keraspose``,
    the ``pipeline_tag`` and ``tags`` of the preset's task (pose models:
    keypoint-detection, pose-estimation; detectors: object-detection),
    ``datasets`` and ``metrics``; the body has an accuracy table, a usage
    snippet and the provenance (source checkpoint and its sha256, versions,
    keypoint count or class names).

    Example:
    >>> card = render_model_card({"name": "demo", "license": "apache-2.0", "metrics": {"coco/AP": 0.75}})
    >>> card.splitlines()[0], "library_name: keraspose" in card, "pipeline_tag: keypoint-detection" in card
    ('---', True, True)
    >>> "pipeline_tag: object-detection" in render_model_card({"task": "detector", "class_names": ["person"]})
    True
    """
    name = metadata.get("name") or "keraspose model"
    license_ = metadata.get("license") or "other"
    datasets = metadata.get("datasets") or ([metadata["dataset"]] if metadata.get("dataset") else [])
    metrics = metadata.get("metrics") or {}
    task = metadata.get("task") if metadata.get("task") in _TASK_CARDS else "pose"
    pipeline_tag, task_tags, usage = _TASK_CARDS[task]
    tags = task_tags + ["keras", "keraspose"]
    for tag in metadata.get("tags") or []:
        if tag not in tags:
            tags.append(tag)
    for source in ("mmpose", "mmdet"):
        if metadata.get(f"{source}_config") and source not in tags:
            tags.append(source)
    metric_ids = sorted({str(k).split("/")[-1].lower() for k in metrics})

    front = ["---", f"license: {_yaml_scalar(license_)}", "library_name: keraspose", f"pipeline_tag: {pipeline_tag}"]
    front += _yaml_list("tags", tags)
    front += _yaml_list("datasets", datasets)
    front += _yaml_list("metrics", metric_ids)
    front.append("---")

    default_class = "RTMDetector" if task == "detector" else "TopdownEstimator"
    class_name = metadata.get("class_name") or default_class
    load_from = handle or metadata.get("hub_handle") or metadata.get("name") or "PRESET_DIR"
    body = [f"# {name}", ""]
    if metadata.get("description"):
        body += [str(metadata["description"]), ""]
    what = "person/object detector" if task == "detector" else "pose model"
    body += [
        f"A `{class_name}` ({what}) for [keraspose](https://github.com/keraspose/keraspose), "
        "a Keras 3 re-implementation of MMPose that runs on PyTorch, TensorFlow and JAX.",
        "",
        "## Accuracy",
        "",
    ]
    if metrics:
        body += ["| Metric | Value |", "| --- | --- |"]
        body += [f"| {k} | {v} |" for k, v in metrics.items()]
        if metadata.get("metrics_source"):
            body += ["", f"Source: {metadata['metrics_source']}"]
    else:
        body += ["Not evaluated."]
    body += [
        "",
        "## Usage",
        "",
        "```python",
        "import keraspose",
        "",
        f'model = keraspose.{class_name.split(">")[-1]}.from_preset("{load_from}")',
        *usage,
        "```",
        "",
    ]
    if task == "detector":
        body += [
            "As the person detector of a top-down pipeline:",
            "",
            "```python",
            f'inferencer = keraspose.PoseInferencer.from_preset(pose="tinypose_coco_256x192", detector="{load_from}")',
            "```",
            "",
        ]
    body += ["## Provenance", ""]
    class_names = metadata.get("class_names")
    rows = [
        ("MMPose config", metadata.get("mmpose_config")),
        ("MMDetection config", metadata.get("mmdet_config")),
        ("Source checkpoint", metadata.get("source_checkpoint")),
        ("Source checkpoint sha256", metadata.get("source_checkpoint_sha256")),
        ("Keypoints", metadata.get("num_keypoints")),
        ("Classes", ", ".join(map(str, class_names)) if class_names else None),
        ("Parameters", metadata.get("num_parameters")),
        ("Input size (w, h)", metadata.get("input_size")),
        ("keraspose version", metadata.get("keraspose_version")),
        ("Keras version", metadata.get("keras_version")),
        ("Saved with backend", metadata.get("backend")),
    ]
    body += [f"- {k}: `{v}`" for k, v in rows if v not in (None, "")]
    body.append("")
    return "\n".join(front + [""] + body)


# ---------------------------------------------------------------------------
# Save
# ---------------------------------------------------------------------------
def _ensure_built(model):
    if hasattr(model, "build_for_preset"):
        model.build_for_preset()
    if not model.built or not model.weights:
        raise ValueError(
            f"{type(model).__name__} has no weights yet: build it first (call it on a batch, or call "
            "model.build(input_shape)), or give it a build_for_preset() method that does."
        )


def save_preset(model, preset_dir, metadata=None, model_card=None, overwrite=False):
    """Write ``model`` as a preset directory, atomically.

    Args:
        model: a built ``keras.Model`` whose class is registered with
            ``@keras.saving.register_keras_serializable`` and implements
            ``get_config``. If it has ``build_for_preset()``, that is called
            first to make sure every variable exists.
        preset_dir: the directory to create.
        metadata: extra fields for ``metadata.json`` and the model card, e.g.
            ``name``, ``description``, ``license``, ``metrics``
            (``{"coco/AP": 0.749}``), ``datasets``, ``source_checkpoint``
            (URL or path), ``source_checkpoint_sha256``, ``mmpose_config``,
            ``hub_handle``. Versions, backend, class name, parameter and
            keypoint counts and the weights' sha256 are filled in.
        model_card: the README.md text; by default one is generated
            (:func:`render_model_card`).
        overwrite: replace an existing non-empty ``preset_dir``.

    Returns:
        ``preset_dir``.

    Nothing is left behind if anything fails (or is interrupted) midway.

    Example:
    >>> save_preset(model, "hrnet_w32_coco", metadata={"license": "apache-2.0"})  # doctest: +SKIP
    'hrnet_w32_coco'
    """
    import safetensors.numpy

    if not isinstance(model, keras.Model):
        raise TypeError(f"save_preset expects a keras.Model, got {type(model).__name__}")
    _ensure_built(model)

    config = keras.saving.serialize_keras_object(model)
    # A preset is architecture + weights. The optimizer of the run that
    # trained it is not part of it: whoever loads it compiles afresh.
    config.pop("compile_config", None)
    registered = _config_class_name(config)
    cls = _resolve_class(registered)
    if cls is None or not isinstance(model, cls):
        raise ValueError(
            f"{type(model).__name__} is not registered as a Keras serializable (config names {registered!r}), "
            "so the preset could not be loaded back. Decorate the class with "
            "@keras.saving.register_keras_serializable(package=...)."
        )
    try:
        config_text = json.dumps(config, indent=2, sort_keys=False)
    except TypeError as err:
        raise ValueError(
            f"get_config() of {type(model).__name__} returned something that is not JSON-serializable: {err}"
        ) from err

    keyed = variable_keys(model)
    tensors = {key: _to_numpy(variable) for key, variable in keyed.items()}

    meta = dict(metadata or {})
    auto = {
        "format": PRESET_FORMAT,
        "format_version": PRESET_FORMAT_VERSION,
        "keraspose_version": _keraspose_version(),
        "keras_version": keras.__version__,
        "backend": keras.config.backend(),
        "class_name": registered,
        "num_parameters": int(sum(int(np.prod(v.shape)) for v in model.weights)),
        "saved_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }
    task = _task_of(type(model))
    if task is not None:
        if normalize_task(meta.get("task")) not in (None, task):
            raise ValueError(f"metadata says task={meta['task']!r} but {type(model).__name__} is a {task!r} model")
        auto["task"] = task
    class_names = _class_names_of(model)
    if class_names is not None:
        auto["class_names"] = class_names
        auto["num_classes"] = len(class_names)
    model_keypoints = _num_keypoints_of(model)
    if meta.get("num_keypoints") is not None and model_keypoints is not None:
        if int(meta["num_keypoints"]) != model_keypoints:
            raise ValueError(
                f"metadata says num_keypoints={meta['num_keypoints']} but the model predicts {model_keypoints}"
            )
    if model_keypoints is not None:
        auto["num_keypoints"] = model_keypoints
    input_size = getattr(model, "input_size", None)
    if input_size is not None and "input_size" not in meta:
        try:
            auto["input_size"] = [int(v) for v in input_size]
        except (TypeError, ValueError):
            pass
    meta.update(auto)

    with atomic_directory(preset_dir, overwrite=overwrite) as tmp:
        weights_path = os.path.join(tmp, WEIGHTS_FILE)
        safetensors.numpy.save_file(
            tensors,
            weights_path,
            metadata={"format": "np", "keraspose_key_scheme": KEY_SCHEME, "class_name": registered},
        )
        meta["weights"] = {
            "file": WEIGHTS_FILE,
            "sha256": _sha256_file(weights_path),
            "num_tensors": len(tensors),
            "key_scheme": KEY_SCHEME,
            "dtypes": sorted({str(a.dtype) for a in tensors.values()}),
        }
        with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
            f.write(config_text + "\n")
        with open(os.path.join(tmp, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
        card = model_card if model_card is not None else render_model_card(meta)
        with open(os.path.join(tmp, README_FILE), "w", encoding="utf-8") as f:
            f.write(card)
    return os.fspath(preset_dir)


# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------
def _check_expected_class(config, expected_class, config_path):
    if expected_class is None:
        return
    found_name = _config_class_name(config)
    expected_name = _registered_name(expected_class)
    expected_cls = expected_class if isinstance(expected_class, type) else _resolve_class(expected_class)
    found_cls = _resolve_class(found_name)
    if expected_cls is not None and found_cls is not None:
        if issubclass(found_cls, expected_cls):
            return
    elif found_name == expected_name or found_name.split(">")[-1] == expected_name.split(">")[-1]:
        return
    short_expected = expected_name.split(">")[-1]
    raise ValueError(
        f"{config_path} describes a {found_name!r}, not a {expected_name!r}. This preset is not a "
        f"{short_expected}; load it with keraspose.presets.load_preset(DIR) (any class) or with "
        f"{found_name.split('>')[-1]}.from_preset(DIR), or pick a {short_expected} preset "
        "(see keraspose.presets.list_presets())."
    )


def _open_weights(path):
    from safetensors import SafetensorError, safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"preset weights not found: {path}. {_FIX_REDOWNLOAD}")
    try:
        with safe_open(path, framework="np") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            file_meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        size = os.path.getsize(path)
        raise ValueError(
            f"{path} is not a readable safetensors file ({size} bytes; {err}): it is truncated or corrupt, "
            f"e.g. an interrupted download or copy. {_FIX_REDOWNLOAD}"
        ) from err
    return shapes, file_meta


def _load_weights(model, path):
    import safetensors.numpy

    shapes, file_meta = _open_weights(path)
    scheme = file_meta.get("keraspose_key_scheme")
    if scheme is not None and scheme != KEY_SCHEME:
        raise ValueError(
            f"{path} uses weight key scheme {scheme!r}, this keraspose reads {KEY_SCHEME!r}: "
            "upgrade keraspose or re-create the preset."
        )
    keyed = variable_keys(model)
    missing = [k for k in keyed if k not in shapes]
    unexpected = [k for k in shapes if k not in keyed]
    mismatched = [
        f"{k}: file {list(shapes[k])} vs model {list(v.shape)}"
        for k, v in keyed.items()
        if k in shapes and tuple(shapes[k]) != tuple(int(d) for d in v.shape)
    ]
    if missing or unexpected or mismatched:

        def _fmt(title, items):
            if not items:
                return ""
            shown = "\n    ".join(items[:20])
            more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
            return f"\n  {title} ({len(items)}):\n    {shown}{more}"

        raise ValueError(
            f"the weights in {path} do not fit the {type(model).__name__} built from config.json"
            + _fmt("missing from the file", missing)
            + _fmt("in the file but not in the model", unexpected)
            + _fmt("shape mismatches", mismatched)
            + "\nThe config and the weights come from different models (or the config was overridden with "
            "a value that changes the architecture). Re-create the preset from the source model."
        )
    try:
        tensors = safetensors.numpy.load_file(path)
    except Exception as err:  # header was fine, data region is not
        raise ValueError(f"{path}: could not read the tensors ({err}); the file is corrupt. {_FIX_REDOWNLOAD}") from err
    for key, variable in keyed.items():
        # assign() casts to the variable's dtype: a float16 preset loads
        # into a float32 model (and vice versa) without a separate step.
        variable.assign(tensors[key])


def _is_dtype_policy(value):
    if isinstance(value, dict):
        return value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy", "DTypePolicyMap")
    return isinstance(value, str) and value in ("float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


def _with_dtype_policy(config, dtype):
    """``config`` with every saved layer dtype policy replaced by ``dtype``
    (``None``: removed, so the layers take the global policy)."""
    if isinstance(config, list):
        return [_with_dtype_policy(v, dtype) for v in config]
    if not isinstance(config, dict):
        return config
    out = {}
    for key, value in config.items():
        if key == "dtype" and _is_dtype_policy(value):
            if dtype is not None:
                out[key] = dtype
            continue
        out[key] = _with_dtype_policy(value, dtype)
    return out


def load_preset(preset_dir, expected_class=None, load_weights=True, *, expected_num_keypoints=None,
                **config_overrides):
    """Build the model stored in a preset directory and load its weights.

    Args:
        preset_dir: a directory written by :func:`save_preset` (use
            ``keraspose.presets.resolve_preset`` first for ``hf://`` handles
            and catalogue names).
        expected_class: a class (or registered name such as
            ``"keraspose>TopdownEstimator"``) the preset must be an instance
            of; anything else is a ``ValueError`` naming both.
        load_weights: ``False`` builds the architecture with fresh weights.
        expected_num_keypoints: if given, the preset must predict this many
            keypoints (checked against metadata.json and the built model).
        **config_overrides: replace top-level config entries before the
            model is built, e.g. ``flip_test=False``. ``dtype`` (a Keras
            dtype policy such as ``"mixed_bfloat16"``) applies to every
            layer; without it the layers take the global policy
            (``keras.mixed_precision.set_dtype_policy``), whatever the
            preset was saved under.

    Returns:
        the built model, weights loaded.

    Raises:
        FileNotFoundError: the directory, config.json or model.safetensors is missing.
        ValueError: malformed JSON, a corrupt or truncated safetensors file,
            weights that do not fit the architecture (listing every missing,
            unexpected and mis-shaped key), a wrong class, a keypoint-count
            mismatch, or a config override the class does not accept.

    Example:
    >>> model = load_preset("hrnet_w32_coco", expected_class="keraspose>TopdownEstimator", flip_test=False)  # doctest: +SKIP
    """
    preset_dir = _check_dir(preset_dir)
    config_path = os.path.join(preset_dir, CONFIG_FILE)
    config = load_preset_config(preset_dir)
    _check_expected_class(config, expected_class, config_path)
    metadata = load_preset_metadata(preset_dir)
    if expected_num_keypoints is not None and metadata.get("num_keypoints") is not None:
        if int(metadata["num_keypoints"]) != int(expected_num_keypoints):
            raise ValueError(
                f"{os.path.join(preset_dir, METADATA_FILE)}: the preset predicts {metadata['num_keypoints']} "
                f"keypoints, not the {expected_num_keypoints} asked for. Pick a preset trained on your "
                "keypoint set (see keraspose.presets.list_presets()), or fine-tune one with a new head."
            )
    weights_path = os.path.join(preset_dir, WEIGHTS_FILE)
    if load_weights:
        _open_weights(weights_path)  # fail on a missing/corrupt file before the (slow) build

    # The compute dtype is the caller's choice, not the preset's: every layer
    # takes dtype= if given, else the global policy (keras.mixed_precision).
    config = _with_dtype_policy(config, config_overrides.pop("dtype", None))
    if config_overrides:
        config = dict(config)
        config["config"] = {**config["config"], **config_overrides}
    _register_keraspose_classes()
    try:
        model = keras.saving.deserialize_keras_object(config)
    except Exception as err:
        hint = ""
        if config_overrides:
            hint = f" (with config overrides {sorted(config_overrides)}: check the class accepts them)"
        raise ValueError(
            f"could not build a {_config_class_name(config)} from {config_path}{hint}: "
            f"{type(err).__name__}: {err}. If the class is not found, import the module that defines it first."
        ) from err
    if expected_class is not None and isinstance(expected_class, type) and not isinstance(model, expected_class):
        raise ValueError(f"{config_path} built a {type(model).__name__}, not a {expected_class.__name__}")

    if hasattr(model, "build_for_preset"):
        model.build_for_preset()
    # (Otherwise deserialize_keras_object has already called
    # build_from_config() with the saved build_config.)

    if expected_num_keypoints is not None:
        found = _num_keypoints_of(model)
        if found is not None and found != int(expected_num_keypoints):
            raise ValueError(
                f"{config_path}: the model predicts {found} keypoints, not the {expected_num_keypoints} asked for."
            )
    if load_weights:
        _load_weights(model, weights_path)
    return model
