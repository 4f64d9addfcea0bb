"""keraspose: MMPose's pose-estimation models as Keras 3 models.

Runs on the torch, TensorFlow and JAX backends. Choose one with the
``KERAS_BACKEND`` environment variable (or ``~/.keras/keras.json``) before
importing; if neither names an installed backend, keraspose picks torch when
installed (the fastest backend for these networks on CPU), else TensorFlow.

Example:
>>> import keraspose
>>> pipeline = keraspose.PoseInferencer.from_preset()  # doctest: +SKIP
>>> result = pipeline.predict("photo.jpg")  # doctest: +SKIP
>>> result.keypoints.shape  # one row per person found  # doctest: +SKIP
(3, 17, 2)
"""

import importlib.util
import json
import os
import sys


def _default_backend():
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    # Keras writes keras.json (backend "tensorflow") on its first import, so
    # the file is honoured only when the backend it names is installed.
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(keras_home, "keras.json")) as f:
            configured = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        configured = None
    try:
        if configured and importlib.util.find_spec(configured) is not None:
            return
    except (ImportError, ValueError):
        pass
    for name in ("torch", "tensorflow", "jax"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # an import hook refusing the package: as if absent
            found = False
        if found:
            os.environ["KERAS_BACKEND"] = name
            return


_default_backend()

from keraspose.version import __version__  # noqa: E402

# Every public name loads on first use (PEP 562), so `import keraspose` -- and
# the runtime-only path, keraspose.runtime, which runs exported models -- does
# not import Keras or a backend. The first Keras name used imports all the
# model modules (_import_all), as `import keraspose` used to: their layers
# are then registered for deserialisation (presets, .keras files).
_EXPORTS = {
    "keraspose.codecs": ("MSRAHeatmap", "SimCCLabel", "UDPHeatmap"),
    "keraspose.datasets": ("CocoStyleDataset", "MpiiDataset"),
    "keraspose.evaluation": ("CocoMetric", "evaluate_coco_results", "evaluate_topdown", "evaluate_with_detector"),
    "keraspose.layers": ("ConvBN",),
    "keraspose.metainfo": ("DatasetMetainfo", "load_metainfo"),
    "keraspose.models.cspnext": ("CSPNeXtBackbone",),
    "keraspose.models.heads": ("HeatmapHead",),
    "keraspose.models.hrnet": ("HRNetBackbone", "hrnet_extra"),
    "keraspose.models.litehrnet": ("LiteHRNetBackbone", "litehrnet_extra", "tinypose_extra"),
    "keraspose.models.resnet": ("ResNetBackbone",),
    "keraspose.models.rtmdet": ("RTMDetector",),
    "keraspose.models.rtmpose": ("RTMCCHead",),
    "keraspose.models.topdown_estimator": ("TopdownEstimator",),
    "keraspose.models.vit": ("FeatureMapProcessor", "ViTBackbone", "vit_arch"),
    "keraspose.inference": ("PoseInferencer",),
    "keraspose.presets": ("list_presets", "upload_preset"),
    "keraspose.training": ("CocoEvaluation", "TopdownPyDataset"),
    "keraspose.visualization": ("save_visualization", "visualize"),
}
# Keras-free: loading these imports no backend.
_KERAS_FREE = {
    "DetectionResult": "keraspose.results",
    "PoseResult": "keraspose.results",
    "load_image": "keraspose.utils.images",
}

__all__ = [
    "__version__",
    "CocoEvaluation",
    "CocoMetric",
    "CocoStyleDataset",
    "CSPNeXtBackbone",
    "ConvBN",
    "DatasetMetainfo",
    "DetectionResult",
    "FeatureMapProcessor",
    "HRNetBackbone",
    "HeatmapHead",
    "LiteHRNetBackbone",
    "MSRAHeatmap",
    "MpiiDataset",
    "PoseInferencer",
    "PoseResult",
    "RTMCCHead",
    "RTMDetector",
    "ResNetBackbone",
    "SimCCLabel",
    "TopdownEstimator",
    "TopdownPyDataset",
    "UDPHeatmap",
    "ViTBackbone",
    "evaluate_coco_results",
    "evaluate_topdown",
    "evaluate_with_detector",
    "from_mmdet",
    "from_mmpose",
    "hrnet_extra",
    "litehrnet_extra",
    "load_image",
    "list_presets",
    "load_metainfo",
    "save_visualization",
    "tinypose_extra",
    "upload_preset",
    "visualize",
    "vit_arch",
]

# Converters (keraspose.convert) import torch to read checkpoints and import
# the model classes; they load on first use, so `import keraspose` (and any
# model module) stays free of them.
_CONVERTERS = {"from_mmpose": "keraspose.convert.mmpose", "from_mmdet": "keraspose.convert.mmdet"}
_LAZY = {**{name: module for module, names in _EXPORTS.items() for name in names}, **_KERAS_FREE, **_CONVERTERS}


def _import_all():
    """Import every model module (registers their Keras classes); what `import keraspose` did before it was lazy."""
    import importlib

    for module in _EXPORTS:
        importlib.import_module(module)
    importlib.import_module("keraspose.transforms.pipeline")


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keraspose' has no attribute {name!r}")
    import importlib

    if name not in _KERAS_FREE:
        _import_all()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
