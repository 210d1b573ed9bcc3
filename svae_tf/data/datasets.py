"""The datasets svae-tf knows, one `DatasetSpec` each, in a registry (TensorFlow-free).

A spec holds every fact about a dataset that the rest of the project reads: where its
images come from (TFDS builders tried in order, or folders of PNG/JPEG files per split),
the shape of one image, its split aliases and held-out validation split, the preset and
thin-trainer defaults of a run on it, whether a run caches it in memory, which classifier
scores its samples (IS / FID), and what to tell a user whose copy is missing.
`svae_tf.data.pipelines` reads images by the spec, `trainers` take their defaults from it and
`svae_tf.evaluation.classifiers` its classifier, so adding a dataset is one `register(DatasetSpec(...))`
in a module imported before the flags are parsed (see CONTRIBUTING.md, "Add a dataset").

A name `"folder:/some/dir"` needs no registration: `get` returns a spec reading that
directory as its one split, "train" (shape from --image_size, RGB, cached, InceptionV3).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional

FOLDER_PREFIX = "folder:"
FOLDER_CHANNELS = 3  # a "folder:/dir" is decoded to RGB
CLASSIFIERS = ("mnist_cnn", "inception_v3")  # svae_tf.evaluation.classifiers.make_extractor

_GENERIC_HOW_TO_PROVIDE = (
    "Prepare it in TFDS format (on a machine with internet: `tfds build {tfds_name} "
    "--data_dir=DIR`, then copy DIR here) and point svae-tf at it with TFDS_DATA_DIR=DIR "
    "or --data_dir=DIR (load_images(..., data_dir=DIR))."
)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset.

    Attributes:
      name: the project's name (`--dataset`).
      tfds_names: TFDS builders tried in order; the first one prepared in the data
        directory is read. Empty for a dataset read from `folders`.
      folders: {split: directory of PNG/JPEG files (searched recursively, read in sorted
        path order)}, instead of TFDS. Images are decoded to `shape`'s channels,
        center-cropped to a square and resized to its size (or to --image_size).
      shape: (H, W, C) of one image as read; None: the size comes from --image_size
        (required) and C is FOLDER_CHANNELS.
      split_aliases: {split name: TFDS split it means} (imagenet64: test -> validation).
      validation_split: (training part, validation part) as TFDS split strings, the
        splits that "train_without_validation" and "validation" stand for; None: none.
      preset: the default `--preset` of its thin trainer (None: no trainer).
      trainer: the thin trainer's name (`python -m trainers.<trainer>`, `runs/<trainer>_*`);
        None: the dataset's name.
      batch_size, epochs: the thin trainer's defaults.
      cache: a run caches the decoded images in memory unless --cache says otherwise.
      classifier: the classifier behind IS / FID, one of CLASSIFIERS.
      how_to_provide: what to tell a user when the data is missing, a `str.format`
        template of `data_dir` (the directory searched); None: build it with TFDS.
    """

    name: str
    tfds_names: tuple[str, ...] = ()
    folders: Mapping[str, str] = dataclasses.field(default_factory=dict)
    shape: Optional[tuple[int, int, int]] = None
    split_aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    validation_split: Optional[tuple[str, str]] = None
    preset: Optional[str] = None
    trainer: Optional[str] = None
    batch_size: int = 64
    epochs: int = 10
    cache: bool = True
    classifier: str = "inception_v3"
    how_to_provide: Optional[str] = None

    def __post_init__(self):
        if bool(self.tfds_names) == bool(self.folders):
            raise ValueError(f"Dataset {self.name!r}: give either tfds_names or folders.")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"Dataset {self.name!r}: classifier must be one of {CLASSIFIERS}, "
                             f"got {self.classifier!r}.")
        if self.folders and self.validation_split is not None:
            raise ValueError(f"Dataset {self.name!r}: a validation_split is a TFDS split string; "
                             "give a folder dataset a 'validation' folder instead.")
        if self.folders and self.shape is not None and self.shape[0] != self.shape[1]:
            raise ValueError(f"Dataset {self.name!r}: folder images are resized to a square; "
                             f"shape {self.shape} is not one.")

    @property
    def single_split(self) -> bool:
        """True when its only split is "train" (a folder of images): a run then has no
        held-out images and measures its "held-out" ELBO on training images."""
        return tuple(self.folders) == ("train",)

    def missing_help(self, data_dir: str) -> str:
        """What to tell a user whose copy is missing from `data_dir`."""
        if self.how_to_provide is not None:
            return self.how_to_provide.format(data_dir=data_dir)
        if not self.tfds_names:
            return ""
        return _GENERIC_HOW_TO_PROVIDE.format(tfds_name=self.tfds_names[0])


_IMAGENET64_HOW_TO_PROVIDE = (
    "TFDS cannot download ImageNet 64x64 itself any more. Download the files by hand "
    "(image-net.org, 'Downsampled ImageNet 64x64'; needs an ImageNet account) and prepare "
    "either TFDS builder offline:\n"
    "  * imagenet_resized/64x64: put Imagenet64_train_part1_npz.zip, Imagenet64_train_part2_npz.zip\n"
    "    and Imagenet64_val_npz.zip in the manual_dir ({data_dir}/downloads/manual by default), then run\n"
    "      tfds build imagenet_resized/64x64 --data_dir={data_dir} [--manual_dir=MANUAL_DIR]\n"
    "  * downsampled_imagenet/64x64: put train_64x64.tar and valid_64x64.tar in the manual_dir, then run\n"
    "      tfds build downsampled_imagenet/64x64 --data_dir={data_dir} [--manual_dir=MANUAL_DIR]\n"
    "and point svae-tf at the data directory with TFDS_DATA_DIR=DIR or --data_dir=DIR."
)

# The validation splits are held out of the canonical training set, for choosing settings
# (the test split is for final numbers only). MNIST: the last 10,000 of its 60,000 training
# images; the CIFAR-10 subset: the last 200 of its 2,000 (of the full CIFAR-10: its last 200
# too). The paper gives no batch sizes or epoch counts; those below are ours.
BUILT_IN = (
    DatasetSpec("mnist", tfds_names=("mnist",), shape=(28, 28, 1),
                validation_split=("train[:50000]", "train[50000:]"),
                preset="mnist", batch_size=100, epochs=50, classifier="mnist_cnn"),
    DatasetSpec("cifar10", tfds_names=("cifar10",), shape=(32, 32, 3),
                validation_split=("train[:-200]", "train[-200:]"),
                preset="cifar10", trainer="cifar", batch_size=64, epochs=100),
    DatasetSpec("imagenet64", tfds_names=("imagenet_resized/64x64", "downsampled_imagenet/64x64"),
                shape=(64, 64, 3), split_aliases={"test": "validation"},  # it has no "test" split
                preset="imagenet64", trainer="imagenet", batch_size=64, epochs=12,
                cache=False,  # ~15 GiB decoded
                how_to_provide=_IMAGENET64_HOW_TO_PROVIDE),
)

_TABLE: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Adds a dataset; its name must be new and not start with "folder:". Returns it."""
    if spec.name in _TABLE:
        raise ValueError(f"Dataset {spec.name!r} is already registered.")
    if spec.name.startswith(FOLDER_PREFIX):
        raise ValueError(f"Dataset names starting with {FOLDER_PREFIX!r} are folders, not registered.")
    _TABLE[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Removes a dataset added with `register` (tests); the built-in ones stay."""
    if name in {spec.name for spec in BUILT_IN}:
        raise ValueError(f"Dataset {name!r} is built in.")
    _TABLE.pop(name, None)


def names() -> tuple[str, ...]:
    """Registered dataset names, built-in ones first."""
    return tuple(_TABLE)


def get(name: str) -> DatasetSpec:
    """The spec of `name`: a registered dataset or "folder:/dir" (see the module
    docstring); ValueError naming the registered ones otherwise."""
    if name.startswith(FOLDER_PREFIX):
        return _folder_spec(name)
    if name not in _TABLE:
        raise ValueError(f"Unknown dataset {name!r}: expected one of {sorted(_TABLE)} "
                         f"or 'folder:/path/to/images'.")
    return _TABLE[name]


def for_trainer(trainer: str) -> DatasetSpec:
    """The spec whose thin trainer is `trainer` ("mnist", "cifar", "imagenet", ...);
    ValueError naming the trainers otherwise."""
    specs = {spec.trainer or spec.name: spec for spec in _TABLE.values() if spec.preset}
    if trainer not in specs:
        raise ValueError(f"Unknown trainer {trainer!r}; expected one of {tuple(specs)}.")
    return specs[trainer]


def _folder_spec(name: str) -> DatasetSpec:
    path = name[len(FOLDER_PREFIX):]
    if not path:
        raise ValueError(f"{name!r}: give a directory after 'folder:', e.g. 'folder:/data/faces'.")
    return DatasetSpec(name, folders={"train": os.path.expanduser(path)})


for _spec in BUILT_IN:
    register(_spec)
