"""Reusable Keras layers of keraspose's networks."""

from keraspose.layers.base import BaseLayer
from keraspose.layers.conv_bn import ConvBN
from keraspose.layers.layer_norm import LayerNorm

__all__ = ["BaseLayer", "ConvBN", "LayerNorm"]
