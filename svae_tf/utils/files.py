"""Atomic file writes: the one writer of configs, reports, JSON, PNGs and saved models.

A file is written to a temporary name beside its destination (`PATH.tmp-<pid>`), then
renamed over it, so a reader never sees a half-written file and a failure leaves the old
one in place. Local paths need only the standard library (so TensorFlow-free programs such
as `export.tflite_sample` use this module); remote paths (`gs://...`) go through
`tf.io.gfile`, imported when one is written. `svae_tf.runs.atomic_write` is this
`atomic_write`.
"""

import contextlib
import json
import os

CACHE_DIR_ENV = "SVAE_TF_CACHE_DIR"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "svae_tf")


def cache_dir():
    """svae-tf's cache (the MNIST classifier, decoded datasets): $SVAE_TF_CACHE_DIR, else
    ~/.cache/svae_tf (expanded)."""
    return os.path.expanduser(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def _is_remote(path):
    return "://" in str(path)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """A temporary path beside `path` to write to; it is renamed to `path` when the block
    ends and removed if the block raises. `suffix` ends the temporary name (e.g. ".keras"
    for writers that insist on an extension)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}{suffix}"
    if _is_remote(path):
        import tensorflow as tf

        exists, remove = tf.io.gfile.exists, tf.io.gfile.remove
        rename = lambda src, dst: tf.io.gfile.rename(src, dst, overwrite=True)  # noqa: E731
    else:
        exists, remove, rename = os.path.exists, os.remove, os.replace
    try:
        yield tmp
        rename(tmp, path)
    except BaseException:
        if exists(tmp):
            remove(tmp)
        raise


def atomic_write(path, content):
    """Write `content` (str or bytes) to `path` through a temporary file and a rename;
    on failure the temporary file is removed and `path` is untouched."""
    binary = isinstance(content, bytes)
    with atomic_path(path) as tmp:
        if _is_remote(tmp):
            import tensorflow as tf

            with tf.io.gfile.GFile(tmp, "wb" if binary else "w") as f:
                f.write(content)
        else:
            with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
                f.write(content)


def write_json(path, value):
    """`atomic_write` of `value` as JSON (indent 2, sorted keys; NaN and Infinity allowed)."""
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True))
