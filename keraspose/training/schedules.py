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
