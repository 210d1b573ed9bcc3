"""The Keras callbacks of a training run; `train_lib` builds them and gives the same
objects to both of its `fit` calls, in this order (the guard raises before the counter,
the summaries or a save see a non-finite value):

* `NonFiniteGuard`: stops at the first non-finite loss or metric (NaN policy);
* `StepCounter`: advances the `RunState` (epoch, step in epoch, data position);
* `BatchNormPopulation`: at epoch ends, batch norm's moving statistics := population
  statistics for the weights sampling uses (so the grids and the checkpoint have them);
* `Summaries`: TensorBoard scalars and images, PNG grids of samples and reconstructions;
* `Checkpointer`: saves every N steps and at epoch ends, never non-finite weights.

Each reads the model from `self.model` (set by `fit`) and the run's position from the
shared `RunState`.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from svae_tf import runs
from svae_tf.utils.images import encode_png, image_grid
from trainers.run_state import NonFiniteError, RunError


def describe_last_good(state, model_dir):
    """The sentence naming the newest checkpoint of the run in `model_dir`, if any."""
    if state.last_saved:
        return f"The last good checkpoint is {state.last_saved} (kept)."
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, runs.CHECKPOINT_SUBDIR))
    if latest:
        return f"The last good checkpoint is {latest} (kept)."
    return "No checkpoint was written by this run."


def write_failed(state, model_dir, what, path, err):
    """RunError for an output that cannot be written (e.g. model_dir became read-only)."""
    return RunError(
        f"Cannot write {what} {path} at step {state.data_position} ({runs.error_summary(err)}). "
        "Training stopped. " + describe_last_good(state, model_dir)
        + f" Make {model_dir} writable (or free space) and run the same command again to "
        "resume from it."
    )


def pairs_grid(inputs, reconstructions):
    """Inputs beside their reconstructions: columns alternate input, reconstruction."""
    n = len(inputs)
    pairs = np.stack([inputs, reconstructions], axis=1).reshape((2 * n,) + inputs.shape[1:])
    per_row = max(1, int(math.ceil(math.sqrt(n))))
    return image_grid(pairs, columns=2 * per_row)


def all_finite(variables):
    """True if every floating-point value of `variables` is finite."""
    for v in variables:
        value = v.value if hasattr(v, "value") else v
        if value.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(value))):
            return False
    return True


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops at the first non-finite loss/metric, before anything else sees it."""

    def __init__(self, state, model_dir):
        super().__init__()
        self.state, self.model_dir = state, model_dir

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not np.all(np.isfinite(v))}
        if bad:
            state = self.state
            raise NonFiniteError(
                f"Non-finite loss at step {state.data_position + 1} (epoch {state.epoch + 1}, "
                f"batch {state.step_in_epoch + 1}): "
                + ", ".join(f"{k}={float(np.asarray(v)):g}" for k, v in sorted(bad.items()))
                + ". Training stopped; no checkpoint was written after it. "
                + describe_last_good(state, self.model_dir)
                + " Lower --g_learning_rate/--d_learning_rate or check the data."
            )


class StepCounter(keras.callbacks.Callback):
    """Counts the steps of the run into its `RunState`."""

    def __init__(self, state):
        super().__init__()
        self.state = state

    def on_train_batch_end(self, batch, logs=None):
        self.state.step_in_epoch += 1
        self.state.data_position += 1

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch = epoch + 1
        self.state.step_in_epoch = 0


class Summaries(keras.callbacks.Callback):
    """TensorBoard scalars every `log_every` steps (means over the interval), held-out
    metrics at epoch ends, in `log_dir`/train and `log_dir`/validation. With
    `write_images` (the chief), also image summaries and PNG grids in `model_dir` at
    epoch ends: samples at `grid_noise["z"]`, and `grid_inputs` beside their
    reconstructions at `grid_noise["eps"]`."""

    def __init__(self, state, *, log_dir, log_every, model_dir, write_images, grid_inputs, grid_noise):
        super().__init__()
        self.state, self.log_every, self.model_dir = state, log_every, model_dir
        self.write_images, self.grid_inputs, self.grid_noise = write_images, grid_inputs, grid_noise
        self.train_writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.val_writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
        self._last = (0, {})  # (steps into the epoch, running means) at the last write

    def on_epoch_begin(self, epoch, logs=None):
        self._last = (0, {})

    def on_train_batch_end(self, batch, logs=None):
        if self.state.data_position % self.log_every or not logs:
            return
        t = batch + 1  # steps of this fit-epoch so far; logs are running means over them
        t0, means0 = self._last
        with self.train_writer.as_default(step=self.state.data_position):
            for name, value in logs.items():
                value = float(np.asarray(value))
                # Keras metrics are running means since the epoch began: recover the
                # mean over the last interval (equal batch sizes).
                interval = (value * t - means0.get(name, 0.0) * t0) / max(t - t0, 1)
                tf.summary.scalar(name, interval)
        self._last = (t, {k: float(np.asarray(v)) for k, v in logs.items()})

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = self.state.data_position
        with self.train_writer.as_default(step=step):
            for name, value in logs.items():
                if not name.startswith("val_"):
                    tf.summary.scalar(f"epoch/{name}", float(np.asarray(value)))
        with self.val_writer.as_default(step=step):
            for name, value in logs.items():
                if name.startswith("val_"):
                    tf.summary.scalar(name[4:], float(np.asarray(value)))
                    if not np.isfinite(value):
                        logging.warning("Held-out %s is %s at epoch %d.", name, value, epoch + 1)
        if self.write_images:
            self._images(epoch, step)
        self.flush()

    def _images(self, epoch, step):
        model = self.model
        samples = model.decode_mean(self.grid_noise["z"]).numpy()
        grids = {"samples": image_grid(samples)}
        if model.encoder is not None:
            _, z = model.encode(self.grid_inputs, noise=self.grid_noise["eps"])
            recon = model.decode_mean(z).numpy()
            grids["reconstructions"] = pairs_grid(self.grid_inputs.numpy(), recon)
        with self.train_writer.as_default(step=step):
            for name, grid in grids.items():
                tf.summary.image(name, grid[None], step=step)
        for name, grid in grids.items():
            path = os.path.join(self.model_dir, f"{name}_epoch_{epoch + 1:03d}.png")
            try:
                runs.atomic_write(path, encode_png(grid))
            except (tf.errors.OpError, OSError) as err:
                raise write_failed(self.state, self.model_dir, "the image grid", path, err) from None

    def flush(self):
        self.train_writer.flush()
        self.val_writer.flush()

    def close(self):
        self.train_writer.close()
        self.val_writer.close()


class BatchNormPopulation(keras.callbacks.Callback):
    """At every epoch end: batch norm's moving statistics := the mean of the batch
    statistics the train step's forward passes normalise with over `batches` (a
    tf.data.Dataset of training images), for the weights sampling, evaluation and export
    use: the moving average under EMA (`SymmetricVAE.recompute_batch_norm_statistics`
    in `ema_scope()`). Training itself normalises by each batch and is unchanged; the
    epoch's validation, which Keras runs before this, still sees the moving averages."""

    def __init__(self, batches, seed):
        super().__init__()
        self.batches, self.seed = batches, seed

    def on_epoch_end(self, epoch, logs=None):
        with self.model.ema_scope():
            self.model.recompute_batch_norm_statistics(self.batches, seed=self.seed)


class Checkpointer(keras.callbacks.Callback):
    """Saves through `manager` every `every` steps (0: only at epoch ends) and at epoch
    ends, never non-finite weights. On the chief, each save is recorded in the state as
    the last good checkpoint and reported with `say(message)`; `summaries` are flushed
    after it."""

    def __init__(self, state, manager, *, every, model_dir, summaries, is_chief, say):
        super().__init__()
        self.state, self.manager, self.every, self.model_dir = state, manager, every, model_dir
        self.summaries, self.is_chief, self.say = summaries, is_chief, say

    def on_train_batch_end(self, batch, logs=None):
        # The last batch of an epoch is saved by on_epoch_end, after validation and
        # the grids, so that a checkpoint never skips an epoch's outputs.
        if batch + 1 == self.params.get("steps"):
            return
        if self.every and self.state.data_position % self.every == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def _variables(self):
        """The model's and both optimizers' variables: what a checkpoint holds."""
        model = self.model
        out = list(model.weights)
        for opt in (model.g_optimizer, model.d_optimizer):
            if opt is not None:
                out += list(opt.variables)
        return out

    def save(self):
        state = self.state
        if state.data_position == state.last_saved_position:
            return
        if not all_finite(self._variables()):
            raise NonFiniteError(
                f"Non-finite weights at step {state.data_position} (epoch "
                f"{state.epoch + 1}); not saving them. Training stopped. "
                + describe_last_good(state, self.model_dir)
            )
        state.sync_to_variables()
        try:
            # TensorFlow writes the files under a temporary name, then the manager's
            # state file: a failed save leaves the earlier checkpoints as they were.
            path = self.manager.save(checkpoint_number=state.data_position)
        except (tf.errors.OpError, OSError) as err:
            prefix = os.path.join(self.manager.directory, f"ckpt-{state.data_position}")
            raise write_failed(state, self.model_dir, "checkpoint", prefix, err) from None
        state.last_saved_position = state.data_position
        if self.is_chief:
            state.last_saved = path
            self.say(
                f"Saved checkpoint {path} (step {state.data_position}, epoch {state.epoch}, "
                f"optimizer step {int(self.model.g_optimizer.iterations.numpy())})."
            )
        self.summaries.flush()
