"""What the command-line programs share: absl flags and one exit-status convention.

Every program (`trainers.mnist|cifar|imagenet`, `trainers.evaluate`, `trainers.classifier`,
`export.*`, `benchmarks.*`) parses its flags with absl and exits with status 0 on success
and 1 on failure, the reason on stderr: a bad flag (absl's `FATAL Flags error`), an
`app.UsageError`, a missing or bad input (one line `error: ...`), or a failed check
(`benchmarks.step_fingerprint --compare`, `benchmarks.input_pipeline`'s target).

absl flags are process-global, and these modules are also imported by tests and by
other programs whose flags have the same names (--seed, --batch_size, --data_dir...).
So a program defines its flags in a function `define(flag_values)`: `run` calls it on
absl's FLAGS when the program runs, and `parse` parses a command line into a FlagValues
of its own, for callers in a process that has other flags. Both give the program a
namespace holding its flags' values only. No TensorFlow import.
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
