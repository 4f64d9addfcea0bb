"""BaseLayer: the parent of every keraspose layer.

Keras' ``Layer.__call__`` does real work on every call (argument binding,
input conversion, autocasting, masks, call-context and name-scope
bookkeeping): about 100 us per call on the torch backend. A HRNet-W32 forward
pass makes over 400 such calls, which measured 45 ms of a 170 ms batch-1
inference on 2 CPU threads: more than MMPose's whole margin over us.

None of that work is needed for a *built* layer running float32 inference on
real tensors, so ``BaseLayer.__call__`` goes straight to ``call`` then. In
every other case (first call/build, training, symbolic tensors, numpy inputs,
mixed precision) it is a plain Keras layer. Eager torch benefits most;
TensorFlow and JAX trace ``call`` once, so for them it changes nothing.
"""

import keras


def _is_backend_tensor(x):
    if isinstance(x, (list, tuple)):
        return bool(x) and all(_is_backend_tensor(v) for v in x)
    return keras.ops.is_tensor(x) and not isinstance(x, keras.KerasTensor)


class BaseLayer(keras.layers.Layer):
    def __call__(self, *args, **kwargs):
        if (
            self.built
            and not kwargs.get("training")
            and args
            and self.compute_dtype == "float32"
            and _is_backend_tensor(args[0])
        ):
            return self.call(*args, **kwargs)
        return super().__call__(*args, **kwargs)
