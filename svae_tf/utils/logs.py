"""TensorFlow's own log output, for the command-line programs.

TensorFlow's C++ runtime writes notices to stderr that a user of svae-tf cannot act on:
at import (oneDNN, "Could not find cuda drivers", CPU instruction sets), and later
(`failed call to cuInit` on a machine without a GPU, Grappler's `remapper failed ...`,
tf.data buffer notices). The programs -- trainers, `trainers.evaluate`,
`trainers.classifier`, `export.*`, `benchmarks.*` -- hide them by default and take
`--tf_log_level=info|warning|error|quiet` to show them again:

| level     | TF_CPP_MIN_LOG_LEVEL | TensorFlow C++ messages shown |
|-----------|----------------------|-------------------------------|
| `info`    | 0                    | all                           |
| `warning` | 1                    | warnings and errors           |
| `error`   | 2                    | errors                        |
| `quiet`   | 3                    | none (fatal ones only)        |

Without the flag, an existing `$TF_CPP_MIN_LOG_LEVEL` is used; otherwise `quiet`.
Errors that matter reach Python as exceptions either way.

TensorFlow reads TF_CPP_MIN_LOG_LEVEL once, when its C++ library loads, so `configure`
must run before TensorFlow is imported. A few messages are printed while the library
loads, before that variable takes effect (absl's "WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR", then oneDNN and CUDA notices).
`configure` therefore imports TensorFlow itself with file descriptor 2 redirected to a
temporary file, and afterwards writes back every captured line except C++ log lines
below the chosen level.

Importing this module has no side effects and does not import TensorFlow; programs call
`configure` when they start. Modules that import TensorFlow at the top call it from an
`if __name__ == "__main__":` block placed before those imports, with the level read from
the command line by `level_from_argv` (flag parsing happens later).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

FLAG = "tf_log_level"
LEVELS = {"info": 0, "warning": 1, "error": 2, "quiet": 3}
DEFAULT = "quiet"
FLAG_HELP = (
    "TensorFlow's C++ log messages: info (all), warning, error, quiet (none). "
    "Default: $TF_CPP_MIN_LOG_LEVEL if set, else quiet."
)

_ENV = "TF_CPP_MIN_LOG_LEVEL"
# A C++ log line: severity letter, MMDD, time, thread id, file:line]  (absl / TSL format).
_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+(\.\d+)?\s+\d+\s+\S+:\d+\]")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl's notice before its logging is initialised; as informative as an INFO line.
_ABSL_PREINIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def level_from_argv(argv) -> str | None:
    """The value of --tf_log_level in a command line (`--tf_log_level=X` or
    `--tf_log_level X`, the last one wins), or None. Values that are not level names
    are ignored here; the program's flag parser rejects them with its own message."""
    value = None
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg.startswith(f"--{FLAG}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{FLAG}" and i + 1 < len(args):
            value = args[i + 1]
    return value if value in LEVELS else None


def min_log_level(level: str | None = None) -> int:
    """TF_CPP_MIN_LOG_LEVEL for `level` (a key of LEVELS); None: the environment's
    value when it is a valid one, else that of `quiet`."""
    if level is not None:
        if level not in LEVELS:
            raise ValueError(f"--{FLAG}={level!r}: expected one of {', '.join(LEVELS)}.")
        return LEVELS[level]
    env = os.environ.get(_ENV, "")
    if env.strip().isdigit():
        return min(int(env), 3)
    return LEVELS[DEFAULT]


def filter_log_lines(text: str, min_level: int) -> str:
    """`text` without the C++ log lines whose severity is below `min_level`."""
    kept = []
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match and _SEVERITY[match.group(1)] < min_level:
            continue
        if line.rstrip("\r\n") == _ABSL_PREINIT and min_level > 0:
            continue
        kept.append(line)
    return "".join(kept)


def _import_tensorflow(min_level: int) -> None:
    """Import TensorFlow with fd 2 captured; write back what `min_level` lets through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            sys.stderr.write(filter_log_lines(text, min_level))
            sys.stderr.flush()


def configure(level: str | None = None) -> int:
    """Set TensorFlow's C++ log level for this process and import TensorFlow under it.

    `level`: a key of LEVELS, or None for $TF_CPP_MIN_LOG_LEVEL if set, else `quiet`.
    Sets TF_CPP_MIN_LOG_LEVEL (inherited by subprocesses). When TensorFlow is already
    imported (e.g. a program's `main` called from a test), its level can no longer
    change and only the variable is set. Returns the numeric level.
    """
    min_level = min_log_level(level)
    os.environ[_ENV] = str(min_level)
    if "tensorflow" not in sys.modules:
        _import_tensorflow(min_level)
    return min_level
