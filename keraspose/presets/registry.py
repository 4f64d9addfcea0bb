"""What kind of model a preset holds, which converter makes it, and ``from_preset`` for every model class.

Three small things every keraspose model class shares:

* **Tasks.** A preset holds a *pose model* (``TopdownEstimator``) or a
  *detector* (``RTMDetector``). A model class says which with its
  ``preset_task`` attribute (``"pose"`` or ``"detector"``); a catalogue entry
  with its ``"task"`` field; a saved preset in ``metadata.json``. Loading a
  preset of the other kind fails at once, before anything is downloaded, with
  an error that says what the preset is and how to use it.
* **Converters.** A catalogue entry names the converter that turns its
  official checkpoint into a keraspose model (``"converter": "mmpose"`` or
  ``"mmdet"``; ``"bundled"`` presets ship with the package and need none).
  The converter modules live in :mod:`keraspose.convert` and are imported
  only when a conversion (or an offline architecture build) is asked for, so
  importing a model class never imports a converter (and the converters,
  which import the model classes, cause no import cycle).
* **from_preset / save_to_preset.** :class:`PresetMixin` gives a model class
  both, with the task check and ``load_weights=False`` building a catalogue
  model's architecture offline through its converter.

A converter module (see :data:`CONVERTERS`) provides two functions:

* ``build_catalogue_entry(entry)``: the built model the entry describes,
  fresh weights, no file or network access;
* ``convert_catalogue_entry(entry, checkpoint_path)``: the same model with
  the checkpoint's weights.

Example:
>>> from keraspose.presets import get_catalogue_entry
>>> catalogue_converter(get_catalogue_entry("hrnet_w32_coco"))
'mmpose'
>>> catalogue_task(get_catalogue_entry("rtmdet_m_person"))
'detector'
>>> sorted(CONVERTERS)
['mmdet', 'mmpose']
"""

import importlib
import json
import os

from keraspose.presets.hub import BUNDLED_DIR, get_catalogue_entry, parse_handle, resolve_preset
from keraspose.presets.preset_io import (
    TASK_OF_CLASS_NAME,
    normalize_task,
    _config_class_name,
    _resolve_class,
    load_preset,
    load_preset_config,
    load_preset_metadata,
    save_preset,
)

__all__ = [
    "CONVERTERS",
    "TASKS",
    "PresetMixin",
    "PresetTaskError",
    "build_from_catalogue",
    "catalogue_converter",
    "catalogue_task",
    "check_preset_task",
    "get_converter",
    "load_model_preset",
    "normalize_task",
    "register_converter",
    "task_of_class",
]

# Converter name -> the module that implements it; imported at use time.
CONVERTERS = {
    "mmpose": "keraspose.convert.mmpose",
    "mmdet": "keraspose.convert.mmdet",
}
BUNDLED = "bundled"
# Hugging Face transformers checkpoints (config.json with a "model_type"),
# converted on the fly when loaded; imported only then.
TRANSFORMERS_CONVERTER = "keraspose.convert.hf_transformers"

# What a preset of each task is called, and where such a model goes.
TASKS = {
    "pose": {"noun": "pose model", "use": "the pose model of keraspose.PoseInferencer"},
    "detector": {"noun": "detector", "use": "the detector of keraspose.PoseInferencer"},
}


class PresetTaskError(ValueError):
    """A preset of one kind (a detector) was loaded as another (a pose model)."""


# ---------------------------------------------------------------------------
# Converters
# ---------------------------------------------------------------------------
def register_converter(name, module):
    """Make ``"converter": name`` in catalogue entries use ``module`` (a module name, imported at use time).

    Example:
    >>> register_converter("mine", "my_package.my_converter")
    >>> CONVERTERS.pop("mine")
    'my_package.my_converter'
    """
    if not isinstance(name, str) or not name or name == BUNDLED:
        raise ValueError(f"a converter name must be a non-empty string other than {BUNDLED!r}, got {name!r}")
    CONVERTERS[name] = module


def get_converter(name):
    """The converter module registered as ``name``, imported now.

    Example:
    >>> get_converter("mmpose").__name__
    'keraspose.convert.mmpose'
    """
    if name not in CONVERTERS:
        raise ValueError(
            f"unknown converter {name!r}; known: {', '.join(sorted(CONVERTERS))} "
            f"(or {BUNDLED!r} for presets shipped with keraspose). Register another with "
            "keraspose.presets.register_converter(name, 'package.module')."
        )
    module = importlib.import_module(CONVERTERS[name])
    for function in ("build_catalogue_entry", "convert_catalogue_entry"):
        if not callable(getattr(module, function, None)):
            raise TypeError(f"converter module {module.__name__} ({name!r}) lacks {function}()")
    return module


def catalogue_converter(entry):
    """The converter name of a catalogue entry: its ``"converter"``, else inferred; ``None`` if it has none.

    Entries written before the field existed are MMPose conversions when they
    name an MMPose config, and bundled presets otherwise.
    """
    if entry.get("converter"):
        return entry["converter"]
    if entry.get("mmpose_model") or entry.get("mmpose_config"):
        return "mmpose"
    if entry.get("bundled"):
        return BUNDLED
    return None


def source_model_config(entry):
    """The source toolbox's model config of an entry.

    Its ``<converter>_model`` (a dict), else its ``<converter>_config`` (a name).
    """
    name = catalogue_converter(entry)
    return entry.get(f"{name}_model") or entry.get(f"{name}_config")


def convert_catalogue_checkpoint(entry, checkpoint):
    """The model of a catalogue entry with the weights of its downloaded official checkpoint."""
    name = catalogue_converter(entry)
    if name in (None, BUNDLED):
        raise ValueError(f"catalogue preset {entry.get('name')!r} names no converter for its checkpoint")
    return get_converter(name).convert_catalogue_entry(entry, checkpoint)


def _with_overrides(model, overrides):
    if not overrides:
        return model
    config = {**model.get_config(), **overrides}
    try:
        rebuilt = type(model).from_config(config)
    except Exception as err:
        raise ValueError(
            f"could not rebuild {type(model).__name__} with the config overrides {sorted(overrides)}: "
            f"{type(err).__name__}: {err}"
        ) from err
    if hasattr(rebuilt, "build_for_preset"):
        rebuilt.build_for_preset()
    return rebuilt


def build_from_catalogue(entry, load_weights=False, **overrides):
    """The model a catalogue entry describes, built; ``None`` if that needs a download.

    With ``load_weights=False`` nothing is downloaded: the entry's converter
    builds the architecture from the source config embedded in the entry (a
    bundled preset is built from its shipped config.json). Returns ``None``
    when the entry carries no such config (then only the preset itself,
    from the Hub, can say what the model is). With ``load_weights=True`` the
    preset is resolved (bundled, cache, Hub, or the converted checkpoint) and
    loaded.

    Example:
    >>> model = build_from_catalogue(get_catalogue_entry("hrnet_w32_coco"))  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    28536113
    """
    if isinstance(entry, str):
        entry = get_catalogue_entry(entry)
    if load_weights:
        return load_preset(resolve_preset(entry["name"]), **overrides)
    name = catalogue_converter(entry)
    if entry.get("bundled"):
        bundled = os.path.join(BUNDLED_DIR, entry["bundled"])
        if os.path.isfile(os.path.join(bundled, "config.json")):
            return load_preset(bundled, load_weights=False, **overrides)
    if name in (None, BUNDLED) or not isinstance(entry.get(f"{name}_model"), dict):
        return None
    return _with_overrides(get_converter(name).build_catalogue_entry(entry), overrides)


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------
def task_of_class(cls_or_name):
    """``"pose"``, ``"detector"`` or ``None`` for a model class or its registered name.

    Example:
    >>> task_of_class("keraspose>RTMDetector")
    'detector'
    """
    cls = cls_or_name
    if isinstance(cls_or_name, str):
        cls = _resolve_class(cls_or_name)
    task = getattr(cls, "preset_task", None) if cls is not None else None
    if task is None and cls_or_name is not None:
        name = cls_or_name if isinstance(cls_or_name, str) else getattr(cls_or_name, "__name__", "")
        task = TASK_OF_CLASS_NAME.get(name.split(">")[-1])
    return task


def catalogue_task(entry):
    """The task of a catalogue entry: its ``"task"``, else its class's, else ``"pose"``.

    Aliases such as ``"object-detection"`` are accepted (:func:`normalize_task`).
    """
    if entry.get("task"):
        return normalize_task(entry["task"])
    return task_of_class(entry.get("class") or "") or ("detector" if entry.get("converter") == "mmdet" else "pose")


def _short(class_name):
    return str(class_name or "?").split(">")[-1]


def check_preset_task(cls, handle, task, class_name):
    """Raise :class:`PresetTaskError` if a preset of ``task`` cannot be loaded by ``cls``.

    Example:
    >>> import keras
    >>> class PoseNet(keras.Model):
    ...     preset_task = "pose"
    >>> try:
    ...     check_preset_task(PoseNet, "rtmdet_m_person", "detector", "keraspose>RTMDetector")
    ... except PresetTaskError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    'rtmdet_m_person' is a detector (RTMDetector) preset; load it with keraspose.RTMDetector.from_preset ...
    """
    wanted = task_of_class(cls)
    if task is None or wanted is None or task == wanted or task not in TASKS:
        return
    info = TASKS[task]
    raise PresetTaskError(
        f"{str(handle)!r} is a {info['noun']} ({_short(class_name)}) preset; load it with "
        f"keraspose.{_short(class_name)}.from_preset or use it as {info['use']}, not with "
        f"{cls.__name__}.from_preset (a {TASKS.get(wanted, {}).get('noun', wanted)} class)."
    )


# ---------------------------------------------------------------------------
# from_preset / save_to_preset
# ---------------------------------------------------------------------------
def _is_transformers_checkpoint(preset_dir):
    """A directory whose config.json is a transformers model config (``model_type``), not a Keras object."""
    path = os.path.join(preset_dir, "config.json")
    if not os.path.isfile(path):
        return False
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False  # load_preset_config reports it
    return isinstance(config, dict) and "model_type" in config and not (
        config.get("class_name") or config.get("registered_name")
    )


def load_model_preset(cls, handle, load_weights=True, **overrides):
    """``cls.from_preset``: a catalogue name, ``hf://owner/repo[@revision]`` or a directory -> a ``cls``.

    A Hugging Face transformers checkpoint (``config.json`` with a
    ``model_type``, e.g. ``hf://usyd-community/vitpose-base-simple``) is
    converted on the fly (:mod:`keraspose.convert.hf_transformers`);
    ``overrides`` then are its options (``dataset_index``, ``metainfo``).

    A catalogue preset of another task is refused before anything is
    downloaded; ``load_weights=False`` on a catalogue name builds the
    architecture offline (see :func:`build_from_catalogue`).
    """
    parsed = parse_handle(handle)
    if parsed.kind == "catalogue":
        entry = get_catalogue_entry(parsed.value)
        check_preset_task(cls, handle, catalogue_task(entry), entry.get("class"))
        if not load_weights:
            model = build_from_catalogue(entry, load_weights=False, **overrides)
            if model is not None:
                if not isinstance(model, cls):
                    raise ValueError(
                        f"catalogue preset {parsed.value!r} is a {type(model).__name__}, not a {cls.__name__}"
                    )
                return model
    preset_dir = resolve_preset(handle)
    if _is_transformers_checkpoint(preset_dir):
        model = importlib.import_module(TRANSFORMERS_CONVERTER).load_transformers_preset(
            preset_dir, load_weights=load_weights, **overrides
        )
        if not isinstance(model, cls):
            raise PresetTaskError(
                f"{str(handle)!r} is a Hugging Face transformers checkpoint that converts to a "
                f"{type(model).__name__}, not a {cls.__name__}; load it with keraspose.{type(model).__name__}.from_preset"
            )
        return model
    class_name = _config_class_name(load_preset_config(preset_dir))
    task = normalize_task(load_preset_metadata(preset_dir).get("task")) or task_of_class(class_name)
    check_preset_task(cls, handle, task, class_name)
    return load_preset(preset_dir, expected_class=cls, load_weights=load_weights, **overrides)


class PresetMixin:
    """``from_preset`` and ``save_to_preset`` for a registered ``keras.Model`` subclass.

    Set ``preset_task`` (``"pose"`` or ``"detector"``) on the class; it goes
    into each saved preset's metadata and model card, and ``from_preset``
    refuses presets of the other task.

    Example:
    >>> import keras
    >>> @keras.saving.register_keras_serializable(package="doc")
    ... class Net(keras.Model, PresetMixin):
    ...     preset_task = "pose"
    >>> Net.from_preset("rtmdet_m_person")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keraspose.presets.registry.PresetTaskError: 'rtmdet_m_person' is a detector (RTMDetector) preset; ...
    """

    preset_task = None

    @classmethod
    def from_preset(cls, handle, load_weights=True, **overrides):
        """Load a preset: a catalogue name, ``hf://owner/repo[@revision]`` or a directory.

        ``overrides`` replace entries of the saved config; ``load_weights=False``
        builds the architecture only (offline for catalogue models).
        """
        return load_model_preset(cls, handle, load_weights=load_weights, **overrides)

    def save_to_preset(self, preset_dir, metadata=None, model_card=None, overwrite=False):
        """Write this model as a preset directory (atomically: temp dir, then rename)."""
        return save_preset(self, preset_dir, metadata=metadata, model_card=model_card, overwrite=overwrite)
