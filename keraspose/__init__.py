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
    if configured and importlib.util.find_spec(configured) is not None:
        return
    for name in ("torch", "tensorflow", "jax"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


_default_backend()

from keraspose.version import __version__  # noqa: E402
from keraspose.codecs import MSRAHeatmap, SimCCLabel, UDPHeatmap  # noqa: E402
from keraspose.datasets import CocoStyleDataset, MpiiDataset  # noqa: E402
from keraspose.evaluation import CocoMetric, evaluate_coco_results, evaluate_topdown, evaluate_with_detector  # noqa: E402
from keraspose.layers import ConvBN  # noqa: E402
from keraspose.metainfo import DatasetMetainfo, load_metainfo  # noqa: E402
from keraspose.models.cspnext import CSPNeXtBackbone  # noqa: E402
from keraspose.models.heads import HeatmapHead  # noqa: E402
from keraspose.models.hrnet import HRNetBackbone, hrnet_extra  # noqa: E402
from keraspose.models.litehrnet import LiteHRNetBackbone, litehrnet_extra, tinypose_extra  # noqa: E402
from keraspose.models.resnet import ResNetBackbone  # noqa: E402
from keraspose.models.rtmdet import DetectionResult, RTMDetector  # noqa: E402
from keraspose.models.rtmpose import RTMCCHead  # noqa: E402
from keraspose.models.topdown_estimator import PoseResult, TopdownEstimator, load_image  # noqa: E402
from keraspose.models.vit import FeatureMapProcessor, ViTBackbone, vit_arch  # noqa: E402
from keraspose.inference import PoseInferencer  # noqa: E402
from keraspose.presets import list_presets, upload_preset  # noqa: E402
from keraspose.training import CocoEvaluation, TopdownPyDataset  # noqa: E402
from keraspose.visualization import save_visualization, visualize  # noqa: E402

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
_LAZY = {"from_mmpose": "keraspose.convert.mmpose", "from_mmdet": "keraspose.convert.mmdet"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keraspose' has no attribute {name!r}")

