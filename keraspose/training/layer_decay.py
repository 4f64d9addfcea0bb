"""Layer-wise learning-rate decay for ViT backbones, as ViTPose trains (MMPose's ``LayerDecayOptimWrapperConstructor``).

A ViT fine-tuned from MAE weights learns faster near the head than near the
input. With ``L`` transformer blocks each parameter gets a layer id: 0 for
the patch embedding and the position embedding, ``i + 1`` for block ``i``,
``L + 1`` for everything else (the final norm, the neck, the head), and its
learning rate is ``lr * rate ** (L + 1 - id)``. 1-D tensors (norms, biases)
and the position embedding get no weight decay; AdamW's decoupled decay uses
each parameter's own scaled learning rate, as PyTorch's per-group AdamW does.

:class:`LayerDecayAdamW` is a ``keras.optimizers.AdamW`` that does exactly
that, on every backend: it groups the variables by learning-rate scale and
runs the AdamW update of each group with its own learning rate.

Example:
>>> import keras
>>> optimizer = LayerDecayAdamW(num_layers=12, layer_decay_rate=0.75, learning_rate=5e-4, weight_decay=0.1)
>>> vit_layer_id("topdown_estimator/backbone/layers_3/qkv/kernel", 12)
4
>>> round(optimizer.lr_scale("topdown_estimator/head/final_layer/kernel"), 4)
1.0
>>> round(optimizer.lr_scale("topdown_estimator/backbone/pos_embed"), 6) == round(0.75 ** 13, 6)
True
"""

import re

import keras
from keras import ops

_BLOCK = re.compile(r"(?:^|/)backbone/layers_(\d+)/")


def vit_layer_id(path, num_layers):
    """The ViTPose layer id of a Keras variable path (see the module docstring)."""
    if re.search(r"(?:^|/)backbone/(pos_embed|cls_token|mask_token)$", path) or "backbone/patch_embed/" in path:
        return 0
    block = _BLOCK.search(path)
    if block:
        return int(block.group(1)) + 1
    return num_layers + 1


def vit_uses_weight_decay(variable):
    """ViTPose's rule: no weight decay on 1-D tensors (norms, biases) or the position embedding."""
    path = variable.path
    return len(variable.shape) > 1 and not path.endswith("bias") and "pos_embed" not in path


@keras.saving.register_keras_serializable(package="keraspose")
class LayerDecayAdamW(keras.optimizers.AdamW):
    """AdamW with ViTPose's layer-wise learning-rate decay and weight-decay exclusions.

    Args:
        num_layers: the ViT's number of blocks ``L``.
        layer_decay_rate: ``rate`` (ViTPose: 0.8 S, 0.75 B, 0.8 L, 0.85 H).
        **kwargs: ``keras.optimizers.AdamW``'s (``learning_rate``,
            ``weight_decay``, ``beta_1``, ``clipnorm``...).
    """

    def __init__(self, num_layers, layer_decay_rate=0.75, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.layer_decay_rate = float(layer_decay_rate)

    def lr_scale(self, variable_or_path):
        path = variable_or_path if isinstance(variable_or_path, str) else variable_or_path.path
        return self.layer_decay_rate ** (self.num_layers + 1 - vit_layer_id(path, self.num_layers))

    def _use_weight_decay(self, variable):
        return vit_uses_weight_decay(variable) and super()._use_weight_decay(variable)

    def _apply_weight_decay(self, variables):
        # Decoupled decay with each variable's own (scaled) learning rate.
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = ops.cast(self.learning_rate, variable.dtype) * self.lr_scale(variable)
                wd = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * wd * lr)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        groups = {}
        for grad, variable in zip(grads, trainable_variables):
            groups.setdefault(self.lr_scale(variable), []).append((grad, variable))
        for scale, pairs in groups.items():
            super()._backend_update_step(
                [g for g, _ in pairs], [v for _, v in pairs], learning_rate * scale
            )

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, layer_decay_rate=self.layer_decay_rate)
        return config
