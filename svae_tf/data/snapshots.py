"""Prepared examples kept on disk between runs (snapshots read back with tf.data).

Reading MNIST's 60,000 training images from TFDS decodes 60,000 PNGs before a run's first
step, in every run (`benchmarks/results/speed/first_step.md`, "stream: first batch").
`load_or_build` stores a split's prepared examples (decoded, checked, resized, binarized:
what `pipelines.load_images` caches in memory) the first time a run reads the whole split,
and later runs read them back: the same elements in the same order, so
training is unchanged.

A snapshot lives in `<cache dir>/datasets/<name>-<key>` (`svae_tf.utils.files.cache_dir`:
$SVAE_TF_CACHE_DIR, else ~/.cache/svae_tf). The key hashes everything the examples depend
on (`key_fields`: the dataset, its TFDS builder, version and files with their sizes and
modification times, the split, the preparation's arguments and `FORMAT`), so changed data or
settings never read an old snapshot. It is written to a temporary directory beside it and
renamed into place: a killed run leaves no partial snapshot, and of two runs writing the
same one at once, the first rename wins and the other reads it. Delete the directory to
free the space; nothing else refers to it.
"""

import hashlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

from svae_tf.utils import files

FORMAT = 1  # bump when the prepared examples change for the same key fields
SUBDIR = "datasets"


def directory_signature(directory):
    """[(file name, size in bytes, modification time in ns)] of the files in `directory`,
    sorted: what a snapshot of data read from there is keyed by."""
    signature = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_file():
            stat = entry.stat()
            signature.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return signature


def path_for(name, key_fields, cache_dir=None):
    """The snapshot directory of the examples `key_fields` (a JSON-serializable dict)
    describes; `name` only makes it readable."""
    text = json.dumps({"format": FORMAT, **key_fields}, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:20]
    return os.path.join(cache_dir or files.cache_dir(), SUBDIR, f"{name}-{key}")


def load_or_build(path, build, element_spec):
    """The dataset saved at `path` (elements of `element_spec`, a nest of `tf.TensorSpec`); if
    there is none yet, `build()` (a finite dataset of those elements) is saved there first,
    through a temporary directory and a rename. An error while building (bad data) leaves
    nothing behind and reaches the caller."""
    if not os.path.isdir(path):
        _save(build(), path)
    components = tf.nest.flatten(element_spec)
    features = {str(i): tf.io.FixedLenFeature([], tf.string) for i in range(len(components))}

    def parse(record):  # one batch of elements
        parsed = tf.io.parse_single_example(record, features)
        tensors = []
        for i, spec in enumerate(components):
            tensor = tf.io.parse_tensor(parsed[str(i)], spec.dtype)
            tensor.set_shape([None, *spec.shape])
            tensors.append(tensor)
        return tf.nest.pack_sequence_as(element_spec, tensors)

    return tf.data.TFRecordDataset(os.path.join(path, _FILE)).map(parse).unbatch()


# `tf.data.Dataset.save` would do, but in TensorFlow 2.21 it never returns when its input
# raises (a failed check): the examples are written as serialized batches instead.
_FILE = "examples.tfrecord"
_BATCH = 1024


def _save(ds, path):
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".tmp-", dir=parent)
    try:
        with tf.io.TFRecordWriter(os.path.join(tmp, _FILE)) as writer:
            for batch in ds.batch(_BATCH):  # one full pass; the input's errors surface here
                features = {str(i): tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[tf.io.serialize_tensor(t).numpy()])) for i, t in enumerate(tf.nest.flatten(batch))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
        try:
            os.rename(tmp, path)
        except OSError:
            if not os.path.isdir(path):  # not another run's snapshot, renamed first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
