"""keraspose: MMPose's pose-estimation models as Keras 3 models."""

from keraspose.version import __version__
