"""What the command-line programs share: absl flags and one exit-status convention.

Every program (`trainers.mnist|cifar|imagenet`, `trainers.evaluate`, `trainers.classifier`,
`export.*`, `benchmarks.*`) parses its flags with absl and exits with status 0 on success
and 1 on failure, the reason on stderr: a bad flag (absl's `FATAL Flags error`), an
`app.UsageError`, a missing or bad input (one line `error: ...`), or a failed check
(`benchmarks.step_fingerprint --compare`, `benchmarks.input_pipeline`'s target).

absl flags are process-global, and these modules are also imported by tests and by
other programs whose flags have the same names (--seed, --batch_size, --data_dir...).
So the programs follow one convention (issue #29; the thin trainers aside, see below):

    def define_flags(flag_values=flags.FLAGS):   # every DEFINE_* with flag_values=flag_values
        ...

    def main(args):                              # args: a namespace of its own flags' values
        ...                                      # returns the exit status (None: 0)

    if __name__ == "__main__":
        cli.run(main, define_flags[, errors=(...)])

`run` defines the flags on absl's FLAGS when the program runs; `parse(define_flags, argv)`
parses a command line into a FlagValues of its own, for callers in a process that has
other flags (tests, `benchmarks.reproduce_mnist` calling `trainers.evaluate`). Both give
the program a namespace holding its flags' values only, so no function but `define_flags`
reads `flags.FLAGS` (tests/test_cli_convention.py checks every program). A program whose
TensorFlow logs follow --tf_log_level also calls `logs.configure(logs.level_from_argv(
sys.argv))` in an `if __name__ == "__main__":` block before it imports TensorFlow.
The one exception is `trainers.command` (the thin trainers): its `main` needs absl's parsed
FlagValues itself, which flags were given (`.present`) being part of what a run records.
No TensorFlow import.
"""

import sys
import types

from absl import app, flags, logging


def values(define, flag_values=flags.FLAGS):
    """A namespace of the values in `flag_values` of the flags that `define` defines."""
    defined = flags.FlagValues()
    define(defined)
    return types.SimpleNamespace(**{name: flag_values[name].value for name in defined})


def no_arguments(argv):
    """app.UsageError if `argv` (absl's: the program, then what the flags left) has more."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")


def parse(define, argv):
    """The namespace of `define`'s flags parsed from `argv` (flags only, no program name)
    in a FlagValues of their own; a bad flag or an argument raises app.UsageError."""
    flag_values = flags.FlagValues()
    define(flag_values)
    try:
        rest = flag_values(["program", *argv])
    except flags.Error as err:
        raise app.UsageError(str(err)) from err
    no_arguments(rest)
    return values(define, flag_values)


def run(main, define, errors=()):
    """Run a program: define its flags on absl's FLAGS, parse the command line (a bad flag
    exits with status 1), then `main(namespace of its flags)`, whose return value is the
    exit status (None: 0). An exception in `errors` ends it with `error: <message>` on
    stderr and status 1."""
    define(flags.FLAGS)

    def absl_main(argv):
        no_arguments(argv)
        if not flags.FLAGS["verbosity"].present:  # TFDS and TF log much at INFO
            logging.set_verbosity(logging.WARNING)
        try:
            return main(values(define))
        except errors as err:
            sys.exit(f"error: {err}")

    app.run(absl_main)


# ------------------------------------------------------------ flags derived from configs
def define_config_flags(cls, flag_values=flags.FLAGS, *, defaults=None, module_name=None):
    """One flag per hyper-parameter of the dataclass `cls` (`svae_tf.model.config.hparam` fields):
    the field's name, type, default (or `defaults[name]`), bounds, choices and help.
    Choices registered at run time (the variants) are checked when the flags are parsed."""
    from svae_tf.model import config

    defaults = defaults or {}
    for field in config.flag_fields(cls):
        md, name = field.metadata, field.name
        default = defaults.get(name, field.default)
        common = dict(flag_values=flag_values, module_name=module_name)
        bounds = dict(lower_bound=md["lower"], upper_bound=md["upper"])
        if md["kind"] == "enum" and not callable(md["choices"]):
            flags.DEFINE_enum(name, default, list(md["choices"]), md["help"], **common)
        elif md["kind"] in ("enum", "str"):
            flags.DEFINE_string(name, default, md["help"], **common)
        elif md["kind"] == "bool":
            flags.DEFINE_boolean(name, default, md["help"], **common)
        elif md["kind"] == "int":
            flags.DEFINE_integer(name, default, md["help"], **bounds, **common)
        else:
            flags.DEFINE_float(name, default, md["help"], **bounds, **common)
        if md["positive"] or (md["kind"] == "enum" and callable(md["choices"])):
            flags.register_validator(name, _checked(field), flag_values=flag_values)


def _checked(field):
    """A flag validator: `config.check_field` (what absl's bounds cannot say)."""
    from svae_tf.model import config

    def check(value):
        try:
            config.check_field(field, value)
        except ValueError as err:
            raise flags.ValidationError(str(err)) from None
        return True

    return check


def config_from_flags(cls, flag_values=flags.FLAGS, **fixed):
    """An instance of `cls` from the values of its flags in `flag_values`; `fixed` sets
    fields that are not flags (or overrides them)."""
    from svae_tf.model import config

    values = {f.name: flag_values[f.name].value for f in config.flag_fields(cls)}
    return cls(**{**values, **fixed})
