"""The trainers' command line: flags derived from the configs, parsed once into them.

    python -m trainers.mnist --flagfile=trainers/configs/mnist_svae_r.flags [--model_dir=DIR ...]

One flag per field of `svae_tf.model.config.ModelConfig`, `ArchitectureOverrides` and
`TrainConfig` (name, default, bounds and help are the field's), with each thin trainer's
defaults (`trainer_defaults`: its dataset's `svae_tf.data.datasets.DatasetSpec`). Flags are checked when they are parsed, before TensorFlow is
imported: a bad flag stops the program with a message naming it. `main` turns them into
the configs (`configs_from_flags`), warns about the ones the variant does not read, and
calls `trainers.train_lib.train`, which reads no flags. Exit status 0 on success, 1 on
failure with the reason on stderr.

A variant added with `svae_tf.model.variants.register` in a module imported before the flags
are parsed (a script of your own that then calls `run_trainer`) is a valid `--variant`;
a dataset added so with `svae_tf.data.datasets.register` is a valid `--dataset`, and
`run_trainer(<its trainer name>)` trains on it with its defaults.

The one program that does not follow `svae_tf.cli`'s convention (`cli.run` on a namespace of
values): `main` reads absl's parsed FLAGS, as which flags the user gave (`.present`) is part
of what a run reports and records (tests/test_cli_convention.py lists it as the exception).
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags, logging

from svae_tf import cli
from svae_tf.model import config as config_lib  # no TensorFlow import
from svae_tf.data import datasets  # no TensorFlow import
from svae_tf.utils import logs as tf_logs
from trainers import train_lib
from trainers.run_state import ConfigError, NonFiniteError, RunError

CONFIGS = (config_lib.ModelConfig, config_lib.ArchitectureOverrides, config_lib.TrainConfig)


def trainer_defaults(trainer):
    """{flag: default} of the thin trainer `trainer` ("mnist", "cifar", "imagenet", or a
    registered dataset's): its dataset, preset, batch size and epochs
    (`svae_tf.data.datasets.for_trainer`); ValueError naming the trainers otherwise."""
    spec = datasets.for_trainer(trainer)
    return dict(dataset=spec.name, preset=spec.preset, batch_size=spec.batch_size, epochs=spec.epochs)


def define_flags(flag_values=flags.FLAGS, trainer="mnist", module_name=None):
    """The training flags of `trainer` ("mnist", "cifar", "imagenet", ...) on `flag_values`,
    as flags of `module_name` (the program's, for --helpshort; default: this module)."""
    module_name = module_name or __name__
    defaults = trainer_defaults(trainer)
    for cls in CONFIGS:
        cli.define_config_flags(cls, flag_values, defaults=defaults, module_name=module_name)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP,
                      flag_values=flag_values, module_name=module_name)
    flags.register_validator("model_dir", check_model_dir, flag_values=flag_values)


def _probe_writable(directory):
    """True if a file can be created in `directory` (os.access lies for root)."""
    try:
        fd, path = tempfile.mkstemp(prefix=".svae_write_probe_", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.remove(path)
    return True


def check_model_dir(model_dir):
    """Raise flags.ValidationError unless `model_dir` can hold a run.

    An existing directory must be writable. A new one is created with its missing parents
    (as TensorFlow and Keras create theirs), so its nearest existing ancestor must be a
    writable directory. Remote paths (gs://...) are not checked here.
    """
    if model_dir is None or "://" in model_dir:
        return True
    path = os.path.abspath(os.path.expanduser(model_dir))
    if os.path.exists(path) and not os.path.isdir(path):
        raise flags.ValidationError(f"{model_dir!r} exists and is not a directory")
    if os.path.isdir(path):
        if not _probe_writable(path):
            raise flags.ValidationError(f"directory {model_dir!r} is not writable")
        return True
    ancestor = os.path.dirname(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise flags.ValidationError(f"cannot create {model_dir!r}: {ancestor!r} is not a directory")
    if not _probe_writable(ancestor):
        raise flags.ValidationError(f"cannot create {model_dir!r}: {ancestor!r} is not writable")
    return True


def unused_flags(flag_values, variant):
    """{name: why} of the training flags that `variant` (and the strategy) does not read."""
    strategy = flag_values["strategy"].value
    return {**config_lib.unused_fields(config_lib.ModelConfig, variant),
            **config_lib.unused_fields(config_lib.ArchitectureOverrides, variant),
            **config_lib.TrainConfig(strategy=strategy).unused(variant)}


def configs_from_flags(flag_values, trainer):
    """(ModelConfig, TrainConfig, {name: value} of the flags given that the variant does not
    read) of the parsed flags; ConfigError for a combination the flags cannot check alone."""
    variant = flag_values["variant"].value
    overrides = cli.config_from_flags(config_lib.ArchitectureOverrides, flag_values)
    try:
        preset_overrides = overrides.resolve(flag_values["preset"].value, variant)
    except ValueError as err:
        raise ConfigError(f"--{err}") from err
    model = cli.config_from_flags(config_lib.ModelConfig, flag_values, preset_overrides=preset_overrides)
    train = cli.config_from_flags(config_lib.TrainConfig, flag_values)
    if train.model_dir is None:
        train = train.replace(model_dir=train_lib.default_model_dir(trainer, variant))
    ignored = {name: flag_values[name].value for name in unused_flags(flag_values, variant)
               if flag_values[name].present}
    return model, train, ignored


def main(argv, trainer):
    """absl main of the trainer `trainer` ("mnist", "cifar", "imagenet", ...)."""
    cli.no_arguments(argv)
    if not flags.FLAGS["verbosity"].present:  # TFDS and TF log much at INFO
        logging.set_verbosity(logging.WARNING)
    tf_logs.configure(flags.FLAGS[tf_logs.FLAG].value)  # before TensorFlow is imported
    try:
        model, train, ignored = configs_from_flags(flags.FLAGS, trainer)
        unused = unused_flags(flags.FLAGS, model.variant)
        for name, value in ignored.items():
            print(f"[svae-tf] WARNING: --{name}={value} does not apply and is ignored: {unused[name]}. "
                  "flags.json lists it under unused_flags.", flush=True)
        train_lib.train(model, train, ignored=ignored)
    except ConfigError as err:  # like absl's flag errors, without the whole --help
        print(f"FATAL Flags error: {err}\nPass --helpshort or --helpfull to see help on flags.",
              file=sys.stderr, flush=True)
        sys.exit(1)
    except (NonFiniteError, RunError, FileNotFoundError) as err:  # FileNotFoundError: missing data
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


def run_trainer(trainer):
    """Entry point of `python -m trainers.<trainer>`."""
    define_flags(flags.FLAGS, trainer, module_name=sys.argv[0])  # absl's name of the main module
    app.run(lambda argv: main(argv, trainer))
