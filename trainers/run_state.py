"""Where a training run is, and the errors that stop it.

Shared by `trainers.train_lib` (which restores the state and catches the errors in
`main`) and `trainers.callbacks` (which advance the state and raise the errors). No
TensorFlow import, so that `train_lib` stays importable without it.
"""

from __future__ import annotations

import dataclasses

COUNTERS = ("epoch", "step_in_epoch", "data_position")  # checkpointed as tf.Variables


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or weights."""


class ConfigError(ValueError):
    """Settings that do not fit the data, the devices or the run already in model_dir; the
    message names the setting by its flag. The command line reports it as a flags error."""


class RunError(RuntimeError):
    """The run cannot go on (no readable checkpoint, bad data, model_dir not writable);
    the message names the file, tensor or flag. `trainers.command` prints it on one line."""


@dataclasses.dataclass
class RunState:
    """Where training is: Keras epoch, its steps done, batches consumed from the stream.

    The tf.Variables are the checkpointed copy; `sync_to_variables` runs before a save."""

    epoch: int = 0
    step_in_epoch: int = 0
    data_position: int = 0
    variables: dict = None
    last_saved: str | None = None
    last_saved_position: int = -1

    def sync_to_variables(self):
        for name in COUNTERS:
            self.variables[name].assign(getattr(self, name))

    def sync_from_variables(self):
        for name in COUNTERS:
            setattr(self, name, int(self.variables[name].numpy()))
