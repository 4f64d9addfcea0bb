"""keraspose: MMPose's pose-estimation models as Keras 3 models.

Runs on the torch, TensorFlow and JAX backends. Choose one with the
``KERAS_BACKEND`` environment variable before importing; if it is unset and
Keras has no config file, keraspose picks torch when installed (the fastest
backend for these convolutional networks on CPU), else TensorFlow.

Example:
>>> import keraspose
>>> model = keraspose.TopdownEstimator.from_preset("tinypose_coco_256x192")  # doctest: +SKIP
>>> result = model.predict("person.jpg")  # doctest: +SKIP
"""

import importlib.util
import os
import sys


def _default_backend():
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    if os.path.exists(os.path.join(keras_home, "keras.json")):
        return
    for name in ("torch", "tensorflow", "jax"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


_default_backend()

from keraspose.version import __version__  # noqa: E402
from keraspose.codecs import MSRAHeatmap, UDPHeatmap  # noqa: E402
from keraspose.convert import from_mmpose  # noqa: E402
from keraspose.layers import ConvBN  # noqa: E402
from keraspose.metainfo import DatasetMetainfo, load_metainfo  # noqa: E402
from keraspose.models.heads import HeatmapHead  # noqa: E402
from keraspose.models.hrnet import HRNetBackbone, hrnet_extra  # noqa: E402
from keraspose.models.resnet import ResNetBackbone  # noqa: E402
from keraspose.models.topdown_estimator import PoseResult, TopdownEstimator, load_image  # noqa: E402

__all__ = [
    "__version__",
    "ConvBN",
    "DatasetMetainfo",
    "HRNetBackbone",
    "HeatmapHead",
    "MSRAHeatmap",
    "PoseResult",
    "ResNetBackbone",
    "TopdownEstimator",
    "UDPHeatmap",
    "from_mmpose",
    "hrnet_extra",
    "load_image",
    "load_metainfo",
]
