"""Input pipelines: images from TensorFlow Datasets or a folder, as `tf.data`.

One idea: every dataset the project uses becomes a `tf.data.Dataset` of float32
image batches `[B, H, W, C]` holding the grey levels `uint8 / 255.0` in [0, 1].

Which datasets exist and every fact about one (TFDS names or folders, shape, splits,
what to do when it is missing) is its `DatasetSpec` in `svae_tf.data.datasets`; this module
reads images by the spec.

* TFDS datasets ("mnist", "cifar10", "imagenet64") are read with
  `tfds.load(..., download=False)` from a prepared TFDS data directory; nothing
  is ever downloaded. A missing dataset raises `DatasetNotFoundError`, whose
  message names the directory searched and how to provide the data.
* `"folder:/some/dir"` reads a user's directory of PNG/JPEG files (a registered
  folder dataset, one directory per split). A file that
  cannot be read or decoded (not an image, truncated, empty) stops the
  pipeline with a `DataError` naming the first such file; files are not
  skipped, so the number of examples is always the number of files.

Bad values stop the pipeline too: examples stored as floats are checked for
NaN/Inf before they are cached (`DataError` naming the dataset, split and
example index). TFDS and folder images are uint8 and cannot hold them. The
checks run inside tf.data, so the error surfaces as a
`tf.errors.InvalidArgumentError` from whatever iterates the dataset (e.g.
`model.fit`); `data_error(err)` turns it back into the `DataError`.

Images are *not* binarized by default: the model binarizes the Bernoulli
likelihood target itself, and the discriminator must see grey levels (against
binary real images and grey decoder means it would tell the two joints apart by
their pixel values alone, and teach the encoder and decoder nothing). `binarize="static"` gives the fixed binarization used for MNIST
likelihood evaluation (convention in `load_images`).

The pipeline order is: read -> enumerate -> take -> decode/resize/binarize
(uint8) -> checks -> cache (uint8; a TFDS split also on disk, `snapshots`) -> shuffle -> repeat -> batch -> to float32 ->
prefetch. The result is a plain global-batch dataset; under a
`tf.distribute` strategy Keras splits it (auto-shard policy DATA).
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from svae_tf.data import datasets, snapshots

__all__ = [
    "DataError",
    "DatasetNotFoundError",
    "VALIDATION",
    "TRAIN_WITHOUT_VALIDATION",
    "validation_splits",
    "data_error",
    "STATIC_BINARIZATION_SEED",
    "image_shape",
    "num_examples",
    "load_images",
]

_log = logging.getLogger(__name__)

# The split names "validation" (a part of the training set held out for choosing settings;
# the test split is for final numbers only) and "train_without_validation" (the rest, which
# a run that validates trains on) stand for a dataset's `DatasetSpec.validation_split` in
# `load_images` and `num_examples`; imagenet64's "validation" stays its TFDS split (its test set).
VALIDATION = "validation"
TRAIN_WITHOUT_VALIDATION = "train_without_validation"
_FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg")  # matched case-insensitively

# Fixed seed of the static binarization (see `load_images`).
STATIC_BINARIZATION_SEED = 20170517

_SHUFFLE_BUFFER_BYTES = 256 * 2**20  # shuffle buffer budget (uint8 images)
_CACHE_WARN_BYTES = 4 * 2**30  # warn when an in-memory cache gets this big

_TFDS_MISSING_ERRORS = (
    tfds.core.registered.DatasetNotFoundError,  # name not registered (ValueError)
    AssertionError,  # registered, but no prepared data in data_dir
    FileNotFoundError,
    tf.errors.NotFoundError,
)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where we looked.

    The message says which dataset, which directory was searched and how to
    provide the data. Attributes: `name` (the project name) and `searched`
    (the directories or files looked at).
    """

    def __init__(self, message: str, *, name: str = "", searched: tuple[str, ...] = ()):
        super().__init__(message)
        self.name = name
        self.searched = searched

    def __str__(self) -> str:  # FileNotFoundError would format errno/filename
        return self.args[0]


class DataError(ValueError):
    """Bad data inside a dataset: an image file that cannot be decoded, a
    non-finite value. The message names the dataset, the split and the file
    or example."""


# Prefix of the messages of the pipeline's own checks (tf.debugging.Assert), which
# reach Python inside a tf.errors.InvalidArgumentError.
_DATA_ERROR_PREFIX = "svae-tf data error: "
_DATA_ERROR_RE = re.compile(re.escape(_DATA_ERROR_PREFIX) + r"(.*?)\](?=\s*(?:\[\[|\n|$))", re.S)


def data_error(err: BaseException) -> DataError | None:
    """The `DataError` reported by a check of `load_images`' pipeline, if `err` (e.g. a
    tf.errors.InvalidArgumentError raised by iterating a dataset or by `model.fit`)
    comes from one; else None."""
    match = _DATA_ERROR_RE.search(str(err))
    if not match:
        return None
    return DataError(re.sub(r"""\\(['"\\])""", r"\1", match.group(1)))  # Assert escapes quotes


def _data_check(condition: tf.Tensor, *message) -> tf.Operation:
    """An assertion whose failure message is `message` (strings and string tensors)."""
    text = tf.strings.join([_DATA_ERROR_PREFIX, *message])
    return tf.debugging.Assert(condition, [text])


# ----------------------------------------------------------------------------
# Names, shapes and sizes.


def image_shape(name: str, *, image_size: int | None = None) -> tuple[int, int, int]:
    """Shape `(H, W, C)` of one image that `load_images(name, ...)` yields.

    The dataset's `DatasetSpec.shape`: (28, 28, 1) for mnist, (32, 32, 3) for cifar10,
    (64, 64, 3) for imagenet64. With `image_size` the images are resized to
    `(image_size, image_size, C)`; "folder:/dir" needs `image_size` and has C = 3.
    """
    spec = datasets.get(name)
    if spec.shape is None:
        _check_folder_image_size(name, image_size)
        return (image_size, image_size, datasets.FOLDER_CHANNELS)
    height, width, channels = spec.shape
    if image_size is not None:
        return (image_size, image_size, channels)
    return (height, width, channels)


def validation_splits(name: str) -> tuple[str, str]:
    """(training part, validation) of `name` as TFDS split strings (`DatasetSpec.validation_split`);
    ValueError for a dataset without one."""
    spec = datasets.get(name)
    if spec.validation_split is None:
        having = sorted(n for n in datasets.names() if datasets.get(n).validation_split is not None)
        raise ValueError(f"Dataset {name!r} has no validation split held out of its training set; "
                         f"those that do: {having}.")
    return spec.validation_split


def num_examples(name: str, split: str, data_dir: str | None = None) -> int:
    """Number of examples in `split` (TFDS split strings such as "train[:10%]" work).

    For a folder dataset: the number of image files of the split's folder.
    Raises `DatasetNotFoundError` when the data is missing.
    """
    spec = datasets.get(name)
    if spec.folders:
        return len(_list_folder(spec, split))
    _, builder, split = _find_tfds_builder(spec, split, data_dir)
    return int(builder.info.splits[split].num_examples)


def _tfds_split(spec: datasets.DatasetSpec, split: str) -> str:
    """The TFDS split string that `split` means for `spec` (validation parts, aliases)."""
    if spec.validation_split is not None and split in (TRAIN_WITHOUT_VALIDATION, VALIDATION):
        split = spec.validation_split[split == VALIDATION]
    for alias, target in spec.split_aliases.items():
        split = re.sub(rf"\b{alias}\b", target, split)
    return split


# ----------------------------------------------------------------------------
# Finding TFDS data.


def _resolve_data_dir(data_dir: str | None) -> tuple[str, str]:
    """The TFDS data directory to search and where that choice came from."""
    if data_dir:
        return os.fspath(Path(data_dir).expanduser()), "the data_dir argument"
    if os.environ.get("TFDS_DATA_DIR"):
        return os.fspath(Path(os.environ["TFDS_DATA_DIR"]).expanduser()), "$TFDS_DATA_DIR"
    return os.path.expanduser("~/tensorflow_datasets"), "the TFDS default; neither data_dir nor $TFDS_DATA_DIR was set"


def _not_found(spec: datasets.DatasetSpec, data_dir: str, source: str, detail: str,
               searched: tuple[str, ...]) -> DatasetNotFoundError:
    candidates = ", ".join(spec.tfds_names)
    message = (
        f"Dataset {spec.name!r} (TFDS: {candidates}) not found in data_dir {data_dir!r} "
        f"({source}). {detail}\n{spec.missing_help(data_dir)}"
    )
    return DatasetNotFoundError(message, name=spec.name, searched=searched)


def _find_tfds_builder(spec: datasets.DatasetSpec, split: str, data_dir: str | None):
    """Return `(tfds_name, builder, tfds_split)` for the first prepared TFDS candidate.

    Checks that the files of `split` exist, so a partial copy fails here with
    `DatasetNotFoundError` and not later inside the iterator.
    """
    directory, source = _resolve_data_dir(data_dir)
    split = _tfds_split(spec, split)
    searched = tuple(os.path.join(directory, tfds_name.split("/")[0]) for tfds_name in spec.tfds_names)
    for tfds_name in spec.tfds_names:
        try:
            builder = tfds.builder(tfds_name, data_dir=directory)
            prepared = builder.is_prepared()
        except _TFDS_MISSING_ERRORS:
            continue
        if not prepared:
            continue
        split_info = builder.info.splits[split]  # ValueError for an unknown split
        missing = [fi.filename for fi in split_info.file_instructions if not os.path.exists(fi.filename)]
        if missing:
            raise _not_found(
                spec, directory, source,
                f"{tfds_name} is prepared there but files of split {split!r} are missing: {missing}.",
                tuple(missing),
            )
        return tfds_name, builder, split
    detail = "Searched: " + ", ".join(searched) + "."
    raise _not_found(spec, directory, source, detail, searched)


def _tfds_examples(name: str, split: str, data_dir: str | None, with_labels: bool):
    """`(dataset of (image uint8 [H,W,C], label int64 []), number of examples)`."""
    spec = datasets.get(name)
    tfds_name, builder, split = _find_tfds_builder(spec, split, data_dir)
    directory, source = _resolve_data_dir(data_dir)
    try:
        ds = tfds.load(
            tfds_name,
            split=split,
            data_dir=directory,
            download=False,
            shuffle_files=False,  # fixed order: the example index keys the static binarization
            read_config=tfds.ReadConfig(try_autocache=False),  # we cache decoded uint8 ourselves
        )
    except _TFDS_MISSING_ERRORS as err:
        raise _not_found(spec, directory, source, f"tfds.load failed: {err}", (directory,)) from err
    has_labels = "label" in builder.info.features

    def to_pair(example):
        image = example["image"]  # uint8 [H, W, C]
        if with_labels and has_labels:
            label = tf.cast(example["label"], tf.int64)  # []
        else:
            label = tf.constant(-1, tf.int64)  # no labels for this dataset
        return image, label

    ds = ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return ds, int(builder.info.splits[split].num_examples)


# ----------------------------------------------------------------------------
# Folders of images.


def _check_folder_image_size(name: str, image_size: int | None) -> None:
    if image_size is None:
        raise ValueError(
            f"{name!r}: folder datasets need image_size (e.g. image_size=64); "
            f"images are center-cropped to a square and resized to image_size x image_size."
        )


def _folder_of_split(spec: datasets.DatasetSpec, split: str) -> Path:
    """The directory holding `split` of a folder dataset; ValueError for a split it lacks.
    With a "validation" folder, "train_without_validation" is the "train" folder."""
    split = spec.split_aliases.get(split, split)
    if split == TRAIN_WITHOUT_VALIDATION and VALIDATION in spec.folders:
        split = "train"
    if split not in spec.folders:
        holds = ("a folder holds a single split, 'train'" if spec.single_split
                 else f"a folder dataset holds the splits {sorted(spec.folders)}")
        raise ValueError(f"{spec.name!r}: {holds}; got split={split!r}.")
    return Path(spec.folders[split]).expanduser()


def _list_folder(spec: datasets.DatasetSpec, split: str) -> list[str]:
    """Sorted paths of the PNG/JPEG files under the folder of `split`, recursively."""
    folder = _folder_of_split(spec, split)
    where = os.fspath(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"Image folder {where!r} does not exist or is not a directory. "
            + (spec.missing_help(where) or "Pass 'folder:/path/to/images' naming a directory of PNG/JPEG files."),
            name=spec.name, searched=(where,),
        )
    paths = sorted(
        os.fspath(p) for p in folder.rglob("*")
        if p.suffix.lower() in _FOLDER_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
    if not paths:
        raise DatasetNotFoundError(
            f"Image folder {where!r} contains no images "
            f"({'/'.join(_FOLDER_EXTENSIONS)} files, searched recursively). "
            + (spec.missing_help(where) or "Put PNG/JPEG files there or pass another 'folder:/path'."),
            name=spec.name, searched=(where,),
        )
    return paths


def _folder_examples(spec: datasets.DatasetSpec, split: str):
    """`(dataset of (path string [], label int64 []), paths)`; label is -1. The files
    are read in `load_images`' decode step, so that read errors are caught there."""
    paths = _list_folder(spec, split)
    ds = tf.data.Dataset.from_tensor_slices(paths)
    ds = ds.map(lambda p: (p, tf.constant(-1, tf.int64)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds, paths


def _check_all_decoded(ds: tf.data.Dataset, paths: list[str], count: int, name: str,
                       image_shape: tuple[int, int, int]) -> tf.data.Dataset:
    """Elements `(index, image, label)` of a folder whose decode step may have failed ->
    the same elements, or a DataError naming the first file that failed.

    Failed elements are dropped by `ignore_errors`; the indices that remain must then
    be 0, 1, ..., count - 1, and the first missing one names the bad file. A sentinel
    with index `count` after the last element catches a bad last file.
    """
    table = tf.constant(paths)
    ds = ds.ignore_errors()
    sentinel = tf.data.Dataset.from_tensors(
        (tf.constant(count, tf.int64), tf.zeros(image_shape, tf.uint8), tf.constant(-1, tf.int64))
    )
    ds = ds.concatenate(sentinel).enumerate()  # (position, (index, image, label))

    def check(position, element):
        index, image, label = element
        missing = tf.gather(table, tf.minimum(position, len(paths) - 1))
        ok = _data_check(
            tf.equal(index, position), f"dataset {name}: image file ", missing,
            " cannot be read or decoded as PNG/JPEG (not an image, truncated or empty). "
            "Fix or remove it.",
        )
        with tf.control_dependencies([ok]):
            return tf.identity(index), image, label

    ds = ds.map(check)
    return ds.filter(lambda index, image, label: index < count)


def _decode(path: tf.Tensor, channels: int) -> tf.Tensor:
    """A PNG/JPEG file -> uint8 [h, w, channels] (3: grey becomes RGB; 1: RGB becomes grey;
    alpha is dropped)."""
    contents = tf.io.read_file(path)
    image = tf.io.decode_image(contents, channels=channels, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


# ----------------------------------------------------------------------------
# Per-example transforms (uint8 in, uint8 out).


def _square_resize(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [h, w, C] -> uint8 [size, size, C].

    Crops the largest central square, then resizes with antialiased bilinear
    interpolation (area-like when shrinking). Images already `size x size` are
    returned unchanged.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    square = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)

    def resize():
        resized = tf.image.resize(square, [size, size], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    out = tf.cond(tf.equal(side, size), lambda: square, resize)
    out.set_shape([size, size, image.shape[-1]])
    return out


def _static_binarize(index: tf.Tensor, image: tf.Tensor) -> tf.Tensor:
    """uint8 grey levels -> uint8 in {0, 255}: 255 where u < image / 255.

    u ~ U[0, 1) from `tf.random.stateless_uniform` (Philox) with seed
    `(STATIC_BINARIZATION_SEED, index)`, drawn in the image's shape.
    """
    seed = tf.stack([tf.constant(STATIC_BINARIZATION_SEED, tf.int64), tf.cast(index, tf.int64)])
    u = tf.random.stateless_uniform(tf.shape(image), seed=seed, dtype=tf.float32, alg="philox")
    p = tf.cast(image, tf.float32) / 255.0
    return tf.cast(u < p, tf.uint8) * 255


# ----------------------------------------------------------------------------
# The pipeline.


def load_images(
    name: str,
    split: str,
    *,
    batch_size: int,
    data_dir: str | None = None,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    binarize: str = "none",
    with_labels: bool = False,
    drop_remainder: bool = False,
    cache: bool = True,
    image_size: int | None = None,
    take: int | None = None,
) -> tf.data.Dataset:
    """Batches of images in [0, 1] from a TFDS dataset or a folder.

    Args:
      name: a dataset of `svae_tf.data.datasets` ("mnist", "cifar10", "imagenet64", or
        one registered) or "folder:/some/dir" (PNG/JPEG files found recursively,
        in sorted path order; decoded to RGB, center-cropped to a square and
        resized to `image_size`, which is required; only split "train" exists).
        A registered folder dataset reads the folder of each split the same
        way, decoded to the channels of its shape and resized to its size.
      split: a TFDS split string ("train", "test", "train[:1000]", ...); for a
        folder dataset, the name of one of its folders. Aliases apply (imagenet64:
        "test" means its "validation" split). For a dataset with a validation
        split (mnist, cifar10), "validation" is a part of the training set held
        out for choosing settings and "train_without_validation" the rest
        (`DatasetSpec.validation_split`).
      batch_size: global batch size B.
      data_dir: TFDS data directory; default $TFDS_DATA_DIR, else
        ~/tensorflow_datasets. Nothing is downloaded.
      shuffle: shuffle examples (buffer: the whole split when it fits in
        256 MiB of uint8, else as many as fit), with `seed` and a new order each
        epoch (`reshuffle_each_iteration=True`); the sequence of orders is
        the same run to run.
      seed: shuffle seed.
      repeat: repeat forever (after shuffling, so epochs do not mix).
      binarize: "none" (grey levels uint8 / 255) or "static": pixel = 1 if
        u < p else 0, where p = uint8 / 255 and u ~ U[0, 1) is drawn by
        `tf.random.stateless_uniform(..., seed=(STATIC_BINARIZATION_SEED,
        index), alg="philox")` with `index` the example's position in `split`
        (0-based, before `take`/shuffling). So the binary images are the same
        run to run and do not depend on batch size, shuffling or `take`.
        Used for likelihood evaluation on (dynamically/statically) binarized
        MNIST; grey levels are kept otherwise because the discriminator must
        see them and the model binarizes its likelihood target itself.
      with_labels: also yield int64 labels (-1 where the dataset has none:
        folders and downsampled_imagenet).
      drop_remainder: drop the last partial batch (static batch dimension).
      cache: cache the decoded uint8 examples in memory (after resize and
        static binarization, before shuffling), and for a TFDS dataset on disk
        too (`svae_tf.data.snapshots`: the first read of the whole split saves
        them under ~/.cache/svae_tf/datasets, later runs load them instead of
        decoding; the same examples). Full imagenet64 needs ~15 GiB;
        pass cache=False there. tf.data keeps the cache only once a pass has
        read it to the end: a reader that stops earlier (e.g. Keras'
        `validation_steps`) makes it drop the partial cache with a warning and
        decode again next time, so bound such datasets with `take`.
      image_size: resize to (image_size, image_size) (crop to a central
        square first); None keeps the native size (folders require it).
      take: use only the first `take` examples of the split.

    Returns:
      A `tf.data.Dataset` of float32 images [B, H, W, C] in [0, 1], or of
      `(images, labels)` with labels int64 [B] when `with_labels`.

    Raises:
      DatasetNotFoundError: the data is missing (message names the directory).
      ValueError: bad arguments (unknown name or split, missing image_size...).
      While iterating, tf.errors.InvalidArgumentError for bad data (a folder
      file that cannot be decoded, NaN/Inf in float examples); `data_error`
      turns it into the DataError naming the file or example.
    """
    _check_load_args(name, binarize, batch_size, take, image_size)
    ds, count, shape = _prepared_examples(name, split, data_dir, with_labels, binarize,
                                          image_size, take, snapshot=cache)
    if cache:
        _warn_if_cache_is_large(name, split, count * math.prod(shape))
        ds = ds.cache()
    if shuffle:
        buffer = max(1, min(count, max(1024, _SHUFFLE_BUFFER_BYTES // math.prod(shape))))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)  # uint8 [B,H,W,C], int64 [B]

    def to_float(images, labels):
        images = tf.cast(images, tf.float32) / 255.0  # float32 [B, H, W, C] in [0, 1]
        return (images, labels) if with_labels else images

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True  # order fixed by `seed`, even with parallel map
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def batch_norm_batches(name, num_batches, *, batch_size, data_dir=None, limit=None, image_size=None):
    """The first `num_batches` full batches of the training split, in order (at most the
    first `limit` examples, as a run's --take): what batch norm's population statistics
    are recomputed over (`SymmetricVAE.recompute_batch_norm_statistics`)."""
    take = num_batches * batch_size if limit is None else min(num_batches * batch_size, limit)
    return load_images(name, "train", batch_size=batch_size, data_dir=data_dir, drop_remainder=True,
                       take=take, image_size=image_size, cache=False)


def training_stream(
    name: str,
    *,
    batch_size: int,
    split: str = "train",
    seed: int,
    start: int = 0,
    data_dir: str | None = None,
    take: int | None = None,
    image_size: int | None = None,
    cache: bool = True,
) -> tf.data.Dataset:
    """The training batches of a run, from batch number `start` (0-based) on.

    One infinite, deterministic sequence per (name, batch_size, seed, take,
    image_size): `load_images` of the "train" split shuffles with `seed` and a new,
    seeded order each pass (grey levels in [0, 1]; the model binarizes/quantizes its
    targets itself), and the first `start` batches are skipped, which is how a
    resumed run gets back to its data position.
    """
    ds = load_images(name, split, batch_size=batch_size, data_dir=data_dir,
                     shuffle=True, seed=seed, repeat=True, drop_remainder=True,
                     take=take, image_size=image_size, cache=cache)
    if start:
        ds = ds.skip(start)
    return ds


def _check_load_args(name, binarize, batch_size, take, image_size):
    datasets.get(name)  # ValueError for an unknown name
    if binarize not in ("none", "static"):
        raise ValueError(f"binarize must be 'none' or 'static', got {binarize!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if take is not None and take < 1:
        raise ValueError(f"take must be None or >= 1, got {take}.")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be None or >= 1, got {image_size}.")


def _warn_if_cache_is_large(name, split, cache_bytes):
    if cache_bytes > _CACHE_WARN_BYTES:
        _log.warning(
            "load_images(%r, %r): caching %.1f GiB of images in memory; pass cache=False "
            "if that does not fit.", name, split, cache_bytes / 2**30,
        )


def _prepared_examples(name, split, data_dir, with_labels, binarize, image_size, take, snapshot):
    """(dataset of (uint8 [H, W, C], int64 label), example count, (H, W, C)) of `load_images`:
    decoded, checked, resized and binarized, in the split's order (before caching). With
    `snapshot`, a TFDS split is read from its `snapshots` copy on disk, made first when the
    whole split is read (`take` None) and none exists."""
    spec = datasets.get(name)
    if snapshot and not spec.folders:
        path, count = _snapshot_of(spec, split, data_dir, with_labels, binarize, image_size)
        if take is None or os.path.isdir(path):
            shape = image_shape(name, image_size=image_size)
            spec = (tf.TensorSpec(shape, tf.uint8), tf.TensorSpec([], tf.int64))
            ds = snapshots.load_or_build(path, lambda: _decoded_examples(
                name, split, data_dir, with_labels, binarize, image_size, None)[0], spec)
            if take is not None:
                ds, count = ds.take(take), min(count, take)
            return ds, count, shape
    return _decoded_examples(name, split, data_dir, with_labels, binarize, image_size, take)


def _snapshot_of(spec, split, data_dir, with_labels, binarize, image_size):
    """(`snapshots` path of a TFDS split's prepared examples, the split's example count)."""
    tfds_name, builder, tfds_split = _find_tfds_builder(spec, split, data_dir)
    key = dict(dataset=spec.name, tfds_name=tfds_name, version=str(builder.version),
               data_dir=os.path.realpath(builder.data_dir), split=tfds_split,
               files=snapshots.directory_signature(builder.data_dir), with_labels=with_labels,
               binarize=binarize, binarization_seed=STATIC_BINARIZATION_SEED, image_size=image_size)
    return snapshots.path_for(spec.name, key), int(builder.info.splits[tfds_split].num_examples)


def _decoded_examples(name, split, data_dir, with_labels, binarize, image_size, take):
    """`_prepared_examples` read from the source: TFDS records or image files."""
    spec = datasets.get(name)
    shape = image_shape(name, image_size=image_size)  # ValueError: a folder without image_size
    folder = bool(spec.folders)
    if folder:
        ds, paths = _folder_examples(spec, split)  # (path, label)
        count = len(paths)
    else:
        ds, count = _tfds_examples(name, split, data_dir, with_labels)  # (uint8 [H,W,C], label)

    ds = ds.enumerate()  # (index int64 [], (x, label))
    if take is not None:
        ds = ds.take(take)
        count = min(count, take)

    def prepare(index, example):
        x, label = example
        image = _decode(x, shape[-1]) if folder else x  # uint8 [h, w, C]
        if image.dtype.is_floating:  # uint8 sources cannot hold NaN/Inf
            ok = _data_check(
                tf.reduce_all(tf.math.is_finite(image)), f"dataset {name}, split {split}: example ",
                tf.strings.as_string(index), " (0-based) holds NaN or Inf values.",
            )
            with tf.control_dependencies([ok]):
                image = tf.identity(image)
        if image_size is not None or folder:  # folders: always to the square of `shape`
            image = _square_resize(image, shape[0])  # uint8 [S, S, C]
        if binarize == "static":
            image = _static_binarize(index, image)  # uint8 {0, 255} [H, W, C]
        image.set_shape(shape)
        return index, image, label

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)  # (int64 [], uint8 [H,W,C], int64 [])
    if folder:
        ds = _check_all_decoded(ds, paths, count, name, tuple(shape))
    ds = ds.map(lambda index, image, label: (image, label))  # (uint8 [H,W,C], int64 [])
    return ds, count, tuple(shape)
