"""Adam with an optional linear learning-rate decay, for `SymmetricVAE.compile`.

`adam(..., decay_steps=N, decay_start=S)` keeps the learning rate for the optimizer's
first S updates, lowers it linearly to 0 over the next N and keeps it at 0 after
(`LinearDecay`; with S = 0 the schedule of Gulrajani et al.'s WGAN-GP CIFAR-10 code). The
schedule is a function of `optimizer.iterations`. `benchmarks/mode_collapse.py` screens it
(`lr_decay_steps`, `lr_decay_start`); the trainers keep constant rates. A Keras optimizer
with a schedule has no learning-rate variable, so its checkpoints and those of a
constant-rate optimizer cannot be restored into each other.
"""

import keras


@keras.saving.register_keras_serializable(package="svae_tf")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial` until update `start`, then linearly to 0 at update `start + steps`."""

    def __init__(self, initial, steps, start=0):
        if steps < 1 or start < 0:
            raise ValueError(f"LinearDecay needs steps >= 1 and start >= 0, got steps={steps}, start={start}.")
        self.initial, self.steps, self.start = float(initial), int(steps), int(start)

    def __call__(self, step):
        done = keras.ops.cast(step, "float32") - self.start  # updates into the decay
        return self.initial * (1.0 - keras.ops.clip(done / self.steps, 0.0, 1.0))

    def get_config(self):
        return {"initial": self.initial, "steps": self.steps, "start": self.start}


def learning_rate(value, decay_steps=0, decay_start=0):
    """`value` (a float) or, for `decay_steps` > 0, its `LinearDecay`."""
    if decay_steps < 0:
        raise ValueError(f"decay_steps must be >= 0, got {decay_steps}.")
    return LinearDecay(value, decay_steps, decay_start) if decay_steps else value


def adam(value, *, beta_1=0.9, beta_2=0.999, decay_steps=0, decay_start=0, name=None):
    """Adam at learning rate `value`, decayed linearly to 0 over `decay_steps` updates after
    the first `decay_start` (0 steps: constant)."""
    return keras.optimizers.Adam(learning_rate(value, decay_steps, decay_start),
                                 beta_1=beta_1, beta_2=beta_2, name=name)
