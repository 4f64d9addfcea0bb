"""BaseLayer: the fast inference path never runs in training; data_format lives in one place."""

import keras
import numpy as np

from keraspose.layers import BaseLayer, ConvBN
from keraspose.models.cspnext import CSPNeXtBlock
from keraspose.models.heads import HeatmapHead


class _Forgetful(BaseLayer):
    """A block that calls its child without passing ``training=`` on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = ConvBN(4, 3, data_format="channels_last", name="conv")

    def call(self, x, training=None):
        return self.conv(x)


def test_child_called_without_training_still_trains():
    layer = _Forgetful()
    x = np.random.RandomState(0).uniform(1, 2, (2, 8, 8, 3)).astype("float32")
    layer(x, training=False)  # build (and take the fast path once)
    before = keras.ops.convert_to_numpy(layer.conv.moving_mean).copy()
    layer(x, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.conv.moving_mean), before)
    # Training: the child must update its BatchNorm statistics although its
    # parent did not pass training=True on.
    layer(x, training=True)
    after = keras.ops.convert_to_numpy(layer.conv.moving_mean)
    assert np.abs(after - before).max() > 1e-3


def test_fit_updates_batch_norm_of_a_forgetful_block():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(_Forgetful(name="block")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.RandomState(1).uniform(1, 2, (4, 8, 8, 3)).astype("float32")
    conv = model.get_layer("block").conv
    before = keras.ops.convert_to_numpy(conv.moving_mean).copy()
    model.fit(x, np.zeros((4, 4), "float32"), epochs=1, batch_size=4, verbose=0)
    assert np.abs(keras.ops.convert_to_numpy(conv.moving_mean) - before).max() > 1e-3


def test_data_format_is_resolved_and_saved_by_base_layer():
    for layer in (
        ConvBN(4, 3, data_format="channels_first"),
        CSPNeXtBlock(8, 8, data_format="channels_first"),
        HeatmapHead(17, data_format="channels_first"),
    ):
        assert layer.data_format == "channels_first"
        config = layer.get_config()
        assert config["data_format"] == "channels_first"
        assert type(layer).from_config(config).data_format == "channels_first"
    default = ConvBN(4, 3)
    assert default.get_config()["data_format"] is None  # the loading backend's preferred layout
    assert default.data_format in ("channels_first", "channels_last")
