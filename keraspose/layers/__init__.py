"""Reusable Keras layers of keraspose's networks."""

from keraspose.layers.base import BaseLayer
from keraspose.layers.conv_bn import ConvBN

__all__ = ["BaseLayer", "ConvBN"]
