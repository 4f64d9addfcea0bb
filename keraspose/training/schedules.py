"""Learning-rate schedules of MMPose's recipes."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keraspose")
class WarmupMultiStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``base_lr * warmup_ratio`` over ``warmup_steps``
    iterations, then ``base_lr`` multiplied by ``gamma`` at each milestone
    (given in steps), like MMPose's LinearLR + MultiStepLR."""

    def __init__(self, base_lr, milestones, gamma=0.1, warmup_steps=500, warmup_ratio=0.001):
        self.base_lr = float(base_lr)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = float(warmup_ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        decay = ops.ones(())
        for m in self.milestones:
            decay = decay * ops.where(step >= m, self.gamma, 1.0)
        if self.warmup_steps > 0:
            frac = ops.minimum(step / self.warmup_steps, 1.0)
            warm = self.warmup_ratio + (1.0 - self.warmup_ratio) * frac
        else:
            warm = 1.0
        return self.base_lr * warm * decay

    def get_config(self):
        return dict(
            base_lr=self.base_lr, milestones=self.milestones, gamma=self.gamma,
            warmup_steps=self.warmup_steps, warmup_ratio=self.warmup_ratio,
        )


@keras.saving.register_keras_serializable(package="keraspose")
class WarmupCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """RTMPose's schedule: linear warm-up from ``base_lr * warmup_ratio`` over
    ``warmup_steps``, ``base_lr`` until ``cosine_start`` (a step), then cosine
    annealing to ``base_lr * min_ratio`` at ``total_steps`` (MMPose's LinearLR
    + CosineAnnealingLR with ``convert_to_iter_based=True``).

    Example:
    >>> schedule = WarmupCosineSchedule(4e-3, total_steps=420, cosine_start=210, warmup_steps=10)
    >>> [round(float(schedule(s)), 6) for s in (0, 10, 210, 420)]
    [0.0, 0.004, 0.004, 0.0002]
    """

    def __init__(self, base_lr, total_steps, cosine_start=None, warmup_steps=1000, warmup_ratio=1e-5, min_ratio=0.05):
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.cosine_start = int(self.total_steps // 2 if cosine_start is None else cosine_start)
        self.warmup_steps = int(warmup_steps)
        self.warmup_ratio = float(warmup_ratio)
        self.min_ratio = float(min_ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.warmup_steps > 1:
            # MMEngine's LinearLR reaches the full rate at step end - 1.
            frac = ops.minimum(step / (self.warmup_steps - 1), 1.0)
            warm = self.warmup_ratio + (1.0 - self.warmup_ratio) * frac
        else:
            warm = 1.0
        span = max(self.total_steps - self.cosine_start, 1)
        t = ops.clip((step - self.cosine_start) / span, 0.0, 1.0)
        cosine = self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + ops.cos(3.141592653589793 * t))
        return self.base_lr * warm * cosine

    def get_config(self):
        return dict(
            base_lr=self.base_lr, total_steps=self.total_steps, cosine_start=self.cosine_start,
            warmup_steps=self.warmup_steps, warmup_ratio=self.warmup_ratio, min_ratio=self.min_ratio,
        )


def rtmpose_recipe(steps_per_epoch, epochs=420, base_lr=4e-3, warmup_steps=1000):
    """MMPose's RTMPose recipe: AdamW (no weight decay), 1000-iteration linear
    warm-up, constant, then cosine to 5% over the second half of ``epochs``.

    MMPose's 4e-3 is for 1024 people per step (auto-scale-lr); scale it with
    your batch size. The second augmentation stage (the last 30 epochs with
    milder box jitter) is a second ``fit`` with another pipeline; see
    ``examples/train_rtmpose_coco_mini.py``. Returns ``(optimizer, epochs)``.

    >>> optimizer, epochs = rtmpose_recipe(steps_per_epoch=100)
    >>> model.compile(optimizer=optimizer); model.fit(data, epochs=epochs)  # doctest: +SKIP
    """
    total = steps_per_epoch * epochs
    schedule = WarmupCosineSchedule(base_lr, total, cosine_start=steps_per_epoch * (epochs // 2),
                                    warmup_steps=warmup_steps)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.0), epochs


def hrnet_recipe(steps_per_epoch, epochs=210, base_lr=5e-4):
    """MMPose's HRNet recipe: Adam 5e-4, 500-iteration linear warm-up, x0.1 at epochs 170 and 200.

    Returns ``(optimizer, epochs)``:

    >>> optimizer, epochs = hrnet_recipe(steps_per_epoch=100)
    >>> model.compile(optimizer=optimizer); model.fit(data, epochs=epochs)  # doctest: +SKIP
    """
    schedule = WarmupMultiStepSchedule(
        base_lr, milestones=[170 * steps_per_epoch, 200 * steps_per_epoch], warmup_steps=500
    )
    return keras.optimizers.Adam(learning_rate=schedule), epochs


#: ViTPose's layer-wise learning-rate decay rate and block count per backbone size (MMPose's configs).
VITPOSE_LAYER_DECAY = {"small": (0.8, 12), "base": (0.75, 12), "large": (0.8, 24), "huge": (0.85, 32)}


def vitpose_recipe(steps_per_epoch, size="base", epochs=210, base_lr=5e-4):
    """MMPose's ViTPose recipe: AdamW 5e-4 (weight decay 0.1) with layer-wise learning-rate decay,
    gradients clipped to norm 1, 500-iteration linear warm-up, x0.1 at epochs 170 and 200.

    ``size``: ``"small"``, ``"base"``, ``"large"`` or ``"huge"`` (decay 0.8, 0.75, 0.8, 0.85 over 12, 12,
    24, 32 blocks). MMPose's 5e-4 is for 512 people per step (auto-scale-lr); scale it with your batch
    size. Returns ``(optimizer, epochs)``:

    >>> optimizer, epochs = vitpose_recipe(steps_per_epoch=100, size="base")
    >>> optimizer.layer_decay_rate, optimizer.num_layers, epochs
    (0.75, 12, 210)
    """
    from keraspose.training.layer_decay import LayerDecayAdamW

    if size not in VITPOSE_LAYER_DECAY:
        raise ValueError(f"vitpose_recipe: size must be one of {sorted(VITPOSE_LAYER_DECAY)}, got {size!r}")
    rate, num_layers = VITPOSE_LAYER_DECAY[size]
    schedule = WarmupMultiStepSchedule(
        base_lr, milestones=[170 * steps_per_epoch, 200 * steps_per_epoch], warmup_steps=500
    )
    optimizer = LayerDecayAdamW(
        num_layers=num_layers, layer_decay_rate=rate, learning_rate=schedule, weight_decay=0.1,
        beta_1=0.9, beta_2=0.999, global_clipnorm=1.0,
    )
    return optimizer, epochs
