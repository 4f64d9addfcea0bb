"""Presets: save/load models as directories, fetch them from the Hugging Face Hub or the catalogue.

Example:
>>> import keraspose.presets as presets
>>> presets.list_presets()  # doctest: +SKIP
['hrnet_w32_coco', 'hrnet_w48_coco', 'simplebaseline_res50_coco']
>>> model = presets.load_preset(presets.resolve_preset("hf://owner/repo"))  # doctest: +SKIP
>>> presets.save_preset(model, "my_preset")  # doctest: +SKIP
>>> presets.upload_preset("hf://me/my_preset", "my_preset")  # doctest: +SKIP

Model classes get ``from_preset``/``save_to_preset`` from
:class:`PresetMixin`; catalogue entries name their converter, imported only
when needed (:mod:`keraspose.presets.registry`).
"""

from keraspose.presets.hub import (
    CheckpointDownloadError,
    PresetUnavailableError,
    convert_checkpoint_preset,
    download_checkpoint,
    get_catalogue_entry,
    keraspose_home,
    list_presets,
    parse_handle,
    resolve_preset,
    snapshot_from_hub,
    upload_preset,
    validate_preset,
)
from keraspose.presets.preset_io import (
    CONFIG_FILE,
    METADATA_FILE,
    PRESET_FILES,
    README_FILE,
    WEIGHTS_FILE,
    load_preset,
    load_preset_config,
    load_preset_metadata,
    render_model_card,
    save_preset,
    variable_keys,
)
from keraspose.presets.registry import (
    CONVERTERS,
    TASKS,
    PresetMixin,
    PresetTaskError,
    build_from_catalogue,
    catalogue_converter,
    catalogue_task,
    check_preset_task,
    get_converter,
    load_model_preset,
    normalize_task,
    register_converter,
    task_of_class,
)

__all__ = [
    "CONFIG_FILE",
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
    "METADATA_FILE",
    "PRESET_FILES",
    "README_FILE",
    "WEIGHTS_FILE",
    "CheckpointDownloadError",
    "PresetUnavailableError",
    "convert_checkpoint_preset",
    "download_checkpoint",
    "get_catalogue_entry",
    "keraspose_home",
    "list_presets",
    "load_preset",
    "load_preset_config",
    "load_preset_metadata",
    "parse_handle",
    "render_model_card",
    "resolve_preset",
    "save_preset",
    "snapshot_from_hub",
    "upload_preset",
    "validate_preset",
    "variable_keys",
]
