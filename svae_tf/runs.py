"""A run directory: the model's config and its checkpoints.

Layout of `model_dir`:
  model_dir/config.json          what `build_model` needs to rebuild the model
  model_dir/checkpoints/ckpt-N*  `tf.train.CheckpointManager` checkpoints

Trainers, evaluation and export all rebuild the model from `config.json` with
`build_model` and restore the newest checkpoint (`latest_checkpoint`): `load_model`
does both for inference, the trainer restores a `make_checkpoint` with its
optimizers and counters to resume; nothing else is needed to reload a run. Files are written to a temporary name and renamed into place, so
a crash never leaves a half-written config; TensorFlow's checkpoint writer and
the manager's state file are atomic in the same way.
"""

import dataclasses
import json
import os

import tensorflow as tf

from svae_tf import model as model_lib
from svae_tf import presets

CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the model's variables and its training objective."""

    preset: str = "mnist"
    preset_overrides: dict = dataclasses.field(default_factory=dict)  # e.g. {"z_dim": 32}
    variant: str = "svae_r"
    lam: float = 0.3
    n_disc: int = 1
    gradient_penalty_weight: float = 10.0
    discriminator_dropout: float | None = None
    seed: int = 0

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))


def build_model(config):
    """A `SymmetricVAE` for `config` (a ModelConfig), not compiled."""
    preset = presets.get_preset(config.preset, **config.preset_overrides)
    kwargs = dataclasses.asdict(config)
    del kwargs["preset"], kwargs["preset_overrides"]
    return model_lib.SymmetricVAE(preset, **kwargs)


def atomic_write(path, content):
    """Write `content` (str or bytes) to `path` through a temporary file and a rename;
    on failure the temporary file is removed and `path` is untouched."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with tf.io.gfile.GFile(tmp, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise


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
    seeds) and, when compiled, both optimizers; `extra` adds trainer state."""
    objects = dict(model=model, seeds=seed_states(model), **extra)
    for name in ("g_optimizer", "d_optimizer"):
        optimizer = getattr(model, name, None)
        if optimizer is not None:
            objects[name] = optimizer
    return tf.train.Checkpoint(**objects)


def checkpoint_manager(checkpoint, model_dir, max_to_keep=3):
    return tf.train.CheckpointManager(
        checkpoint, os.path.join(model_dir, CHECKPOINT_SUBDIR), max_to_keep=max_to_keep
    )


def latest_checkpoint(model_dir):
    """Path prefix of the newest checkpoint in model_dir, or raise FileNotFoundError."""
    path = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_SUBDIR))
    if path is None:
        raise FileNotFoundError(
            f"No checkpoint in {os.path.join(model_dir, CHECKPOINT_SUBDIR)!r}: train first "
            "(python -m trainers.mnist --model_dir=...) or point --model_dir at a run."
        )
    return path


def load_model(model_dir):
    """Rebuild the model of a run from its config and restore its newest checkpoint
    (model variables only; optimizer slots are not needed for inference)."""
    model = build_model(load_config(model_dir))
    path = latest_checkpoint(model_dir)
    checkpoint = tf.train.Checkpoint(model=model, seeds=seed_states(model))
    checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    return model
