"""A run directory: the model's config and its checkpoints.

Layout of `model_dir`:
  model_dir/config.json          what `build_model` needs to rebuild the model
  model_dir/checkpoints/ckpt-N*  `tf.train.CheckpointManager` checkpoints

Trainers, evaluation and export all rebuild the model from `config.json` with
`build_model` and restore it with `load_model` / `restore_newest`; nothing else
is needed to reload a run. Files are written to a temporary name and renamed
into place (`atomic_write`, from `svae_tf.utils.files`), so a crash never leaves a
half-written config; TensorFlow's checkpoint writer and the manager's state file
are atomic in the same way. `checkpoint_info` reads the trainer's counters
(epoch, optimizer steps) of the newest checkpoint.

A checkpoint whose files are damaged (truncated, overwritten, missing) raises
`CheckpointError`, whose message names the file and TensorFlow's complaint.
`load_model` (evaluation, export) stops there; the trainer uses
`restore_newest`, which falls back to the newest checkpoint that can be read
and reports the ones it skipped.
"""

import os
import re
from typing import NamedTuple, Optional

import tensorflow as tf

from svae_tf.model import symmetric_vae as model_lib
from svae_tf.model.config import ModelConfig  # noqa: F401 -- runs.ModelConfig: a run's config.json
from svae_tf.utils.files import atomic_write  # noqa: F401 -- runs.atomic_write: the one atomic writer

CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"


def build_model(config):
    """A `SymmetricVAE` for `config` (a ModelConfig), not compiled."""
    return model_lib.SymmetricVAE(config.get_preset(), **config.model_kwargs())


def save_config(model_dir, config):
    tf.io.gfile.makedirs(model_dir)
    atomic_write(os.path.join(model_dir, CONFIG_FILE), config.to_json())


def load_config(model_dir):
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"No {CONFIG_FILE} in model_dir {model_dir!r}: is this the model_dir of a "
            "training run (python -m trainers.mnist --model_dir=...)?"
        )
    with tf.io.gfile.GFile(path) as f:
        return ModelConfig.from_json(f.read())


def seed_states(model):
    """State variables of every `keras.random.SeedGenerator` in the model (its noise,
    dropout), in construction order. Keras 3 does not expose SeedGenerators to
    tf.train.Checkpoint, so checkpoints list them explicitly."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def make_checkpoint(model, **extra):
    """A `tf.train.Checkpoint` of the model (all its networks, the flow, the noise
    seeds, the weights' moving average if any) and, when compiled, both optimizers;
    `extra` adds trainer state. Keras 3 exposes neither SeedGenerators nor a model's own
    list of variables to tf.train.Checkpoint, so the seeds and averages are listed."""
    objects = dict(model=model, seeds=seed_states(model), **extra)
    if model.ema_weights:
        objects["ema"] = list(model.ema_weights)
    for name in ("g_optimizer", "d_optimizer"):
        optimizer = getattr(model, name, None)
        if optimizer is not None:
            objects[name] = optimizer
    return tf.train.Checkpoint(**objects)


def checkpoint_manager(checkpoint, model_dir, max_to_keep=3):
    return tf.train.CheckpointManager(
        checkpoint, os.path.join(model_dir, CHECKPOINT_SUBDIR), max_to_keep=max_to_keep
    )


class CheckpointError(RuntimeError):
    """A checkpoint cannot be restored. `path` is its prefix (e.g. .../ckpt-600);
    the message names the damaged file and the cause."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


def error_summary(err, limit=300):
    """`Type: first line` of an exception, without TensorFlow's `{{function_node ...}}`
    prefix and ` [Op:...]` suffix, at most `limit` characters of message."""
    text = (str(err).strip().splitlines() or [""])[0]
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\](\s*name:.*)?$", "", text)
    return f"{type(err).__name__}: {text[:limit]}" if text else type(err).__name__


def _describe_files(paths):
    out = []
    for path in paths:
        try:
            size = f"{tf.io.gfile.stat(path).length} bytes"
        except tf.errors.NotFoundError:
            size = "missing"
        out.append(f"{path} ({size})")
    return ", ".join(out)


def _damaged_files(prefix):
    """The files of checkpoint `prefix` to blame: its index if that cannot be read,
    else its data shards."""
    index = f"{prefix}.index"
    try:
        tf.train.load_checkpoint(prefix)  # reads and checks the index only
    except Exception:  # noqa: BLE001 -- any failure to read the index blames it
        return [index]
    shards = sorted(tf.io.gfile.glob(f"{prefix}.data-*"))
    return shards or [f"{prefix}.data-00000-of-00001"]


def restore(checkpoint, path, *, expect_partial=False):
    """`checkpoint.restore(path)`, checked; raises CheckpointError naming the file.

    All objects of `checkpoint` that exist must be in the file. `expect_partial`
    allows the file to hold more (e.g. optimizer slots when only the model is
    restored). A failure may leave some variables restored and others not, so
    restore something else before using the objects.
    """
    try:
        status = checkpoint.restore(path)
        if expect_partial:
            status = status.expect_partial()
        status.assert_existing_objects_matched()
    except AssertionError as err:  # readable, but not a checkpoint of these objects
        raise CheckpointError(
            f"Checkpoint {path} does not match the model: {str(err).splitlines()[0][:300]}", path
        ) from err
    except Exception as err:  # noqa: BLE001 -- OpError, IndexError ("Read less bytes..."), ...
        raise CheckpointError(
            f"Checkpoint {path} cannot be read: {_describe_files(_damaged_files(path))} is damaged "
            f"or incomplete ({error_summary(err)}).", path
        ) from err
    return path


def checkpoint_paths(directory):
    """Prefixes of the checkpoints in `directory`, newest first: the manager's
    state file first (its latest, then the rest it lists), then any other
    `ckpt-N` with an index on disk, by decreasing N."""
    paths = []
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # noqa: BLE001 -- an unreadable state file: use the files on disk
        state = None
    if state is not None:
        listed = [state.model_checkpoint_path, *reversed(state.all_model_checkpoint_paths)]
        for path in listed:
            if path and not os.path.isabs(path) and "://" not in path:
                path = os.path.join(directory, path)
            if path and path not in paths:
                paths.append(path)
    numbered = []
    for index in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            numbered.append((int(match.group(1)), index[: -len(".index")]))
    for _, path in sorted(numbered, reverse=True):
        if path not in paths:
            paths.append(path)
    return paths


def restore_newest(checkpoint, directory, *, expect_partial=False):
    """Restore the newest checkpoint in `directory` that can be read.

    Returns `(path, skipped)`: the prefix restored (None when the directory has
    no checkpoint) and the CheckpointErrors of the newer ones that could not be
    read, newest first. Raises CheckpointError when there are checkpoints but
    none can be read.
    """
    skipped = []
    for path in checkpoint_paths(directory):
        try:
            return restore(checkpoint, path, expect_partial=expect_partial), skipped
        except CheckpointError as err:
            skipped.append(err)
    if skipped:
        raise CheckpointError(
            f"No checkpoint in {directory!r} can be read: "
            + " ".join(str(err) for err in skipped), skipped[0].path
        )
    return None, skipped


def latest_checkpoint(model_dir):
    """Path prefix of the newest checkpoint in model_dir, or raise FileNotFoundError."""
    path = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_SUBDIR))
    if path is None:
        raise FileNotFoundError(
            f"No checkpoint in {os.path.join(model_dir, CHECKPOINT_SUBDIR)!r}: train first "
            "(python -m trainers.mnist --model_dir=...) or point --model_dir at a run."
        )
    return path


class CheckpointInfo(NamedTuple):
    """The newest checkpoint of a run and the trainer's counters in it."""

    epoch: Optional[int]  # the trainer's `epoch` counter
    steps: Optional[int]  # encoder/decoder optimizer steps (`g_optimizer.iterations`)
    path: Optional[str]  # its prefix, e.g. .../checkpoints/ckpt-600


def checkpoint_info(model_dir):
    """`CheckpointInfo` of the newest checkpoint in model_dir/checkpoints: (0, 0, None)
    when there is none; a counter the checkpoint does not hold, or that cannot be read,
    is None."""
    path = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_SUBDIR))
    if path is None:
        return CheckpointInfo(0, 0, None)
    try:
        reader = tf.train.load_checkpoint(path)
        names = list(reader.get_variable_to_shape_map())
    except (tf.errors.OpError, ValueError):
        return CheckpointInfo(None, None, path)

    def counter(prefix, contains=""):
        name = next((n for n in names if n.startswith(prefix) and contains in n), None)
        return None if name is None else int(reader.get_tensor(name))

    return CheckpointInfo(counter("epoch/"), counter("g_optimizer/", "iterations"), path)


def load_model(model_dir):
    """Rebuild the model of a run from its config and restore its newest checkpoint
    (model variables only; optimizer slots are not needed for inference).

    Raises FileNotFoundError (no config or checkpoint) or CheckpointError (the
    newest checkpoint cannot be read; there is no silent fallback to an older one
    here, so evaluation and export always describe the run's latest state)."""
    model = build_model(load_config(model_dir))
    path = latest_checkpoint(model_dir)
    checkpoint = make_checkpoint(model)  # not compiled: no optimizer slots
    try:
        restore(checkpoint, path, expect_partial=True)
    except CheckpointError as err:
        older = [p for p in checkpoint_paths(os.path.dirname(path)) if p != path]
        hint = (" Rerunning the trainer on this model_dir resumes from the newest readable "
                f"checkpoint (older ones here: {', '.join(os.path.basename(p) for p in older)})."
                if older else "")
        raise CheckpointError(f"{err}{hint}", path) from err
    if model.ema_weights:  # inference uses the weights' moving average
        model.use_ema_weights()
    return model
