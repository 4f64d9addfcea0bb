"""BaseLayer: the parent of every keraspose layer.

Two things every keraspose layer shares live here, once:

* **The layout.** ``data_format=None`` (the backend's preferred layout,
  :func:`keraspose.backend.resolve_data_format`), ``"channels_first"`` or
  ``"channels_last"``: the resolved value is ``self.data_format``; the
  argument as given is what ``get_config`` saves, so a saved model picks the
  preferred layout of whichever backend loads it.
* **A fast inference path.** Keras' ``Layer.__call__`` does real work on
  every call (argument binding, input conversion, autocasting, masks,
  call-context and name-scope bookkeeping): about 100 us per call on the
  torch backend. A HRNet-W32 forward pass makes over 400 such calls, which
  measured 45 ms of a 170 ms batch-1 inference on 2 CPU threads: more than
  MMPose's whole margin over us. None of that work is needed for a *built*
  layer running float32 inference on real tensors, so ``BaseLayer.__call__``
  goes straight to ``call`` then. In every other case (first call/build,
  training, symbolic tensors, numpy inputs, mixed precision) it is a plain
  Keras layer. Eager torch benefits most; TensorFlow and JAX trace ``call``
  once, so for them it changes nothing.

"Training" is decided as Keras decides it: the ``training=`` argument, or,
when the caller left it out, the surrounding call's (Keras' call context).
So a block whose parent forgets to pass ``training=`` still trains (updates
its BatchNorm statistics) inside ``fit``; the fast path never runs then.
"""

import keras
from keras.src.backend.common import global_state

from keraspose import backend


def _is_backend_tensor(x):
    if isinstance(x, (list, tuple)):
        return bool(x) and all(_is_backend_tensor(v) for v in x)
    return keras.ops.is_tensor(x) and not isinstance(x, keras.KerasTensor)


def _surrounding_call_is_training():
    """Whether an enclosing Keras layer call runs in training mode."""
    context = global_state.get_global_attribute("current_call_ctx")
    return bool(context is not None and getattr(context, "training", None))


class BaseLayer(keras.layers.Layer):
    """A Keras layer with keraspose's layout handling and fast inference path.

    Args:
        data_format: ``None`` (the backend's preferred layout),
            ``"channels_first"`` or ``"channels_last"``.

    Example:
    >>> import numpy as np
    >>> class Double(BaseLayer):
    ...     def call(self, x):
    ...         return x * 2
    >>> layer = Double(data_format="channels_last")
    >>> layer.data_format, layer.get_config()["data_format"]
    ('channels_last', 'channels_last')
    >>> float(layer(np.ones((1,), "float32"))[0])
    2.0
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._data_format_arg = data_format
        self.data_format = backend.resolve_data_format(data_format)

    def __call__(self, *args, **kwargs):
        training = kwargs.get("training")
        if training is None:
            training = _surrounding_call_is_training()
        if (
            self.built
            and not training
            and args
            and self.compute_dtype == "float32"
            and _is_backend_tensor(args[0])
        ):
            return self.call(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self._data_format_arg
        return config
