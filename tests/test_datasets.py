"""The dataset registry (svae_tf.data.datasets): the built-in entries hold exactly the values the
project used before the registry, everything that depends on a dataset reads its entry, and
a dataset registered by a plugin trains and evaluates end to end."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import trainer_testlib as tl
from svae_tf.evaluation import classifiers
from svae_tf.data import pipelines as data, datasets
from svae_tf.model import presets
from svae_tf.model.config import TrainConfig
from trainers import command, train_lib

# The values of each built-in dataset before the registry (data.DATASETS, _NATIVE_SHAPES,
# _SPLIT_ALIASES, VALIDATION_SPLITS, train_lib's cache rule, classifiers.classifier_kind and
# command.TRAINERS), as literals.
BEFORE = {
    "mnist": dict(tfds_names=("mnist",), shape=(28, 28, 1), split_aliases={},
                  validation_split=("train[:50000]", "train[50000:]"), cache=True, classifier="mnist_cnn",
                  trainer=("mnist", dict(dataset="mnist", preset="mnist", batch_size=100, epochs=50))),
    "cifar10": dict(tfds_names=("cifar10",), shape=(32, 32, 3), split_aliases={},
                    validation_split=("train[:-200]", "train[-200:]"), cache=True, classifier="inception_v3",
                    trainer=("cifar", dict(dataset="cifar10", preset="cifar10", batch_size=64, epochs=100))),
    "imagenet64": dict(tfds_names=("imagenet_resized/64x64", "downsampled_imagenet/64x64"), shape=(64, 64, 3),
                       split_aliases={"test": "validation"}, validation_split=None, cache=False,
                       classifier="inception_v3",
                       trainer=("imagenet", dict(dataset="imagenet64", preset="imagenet64", batch_size=64,
                                                 epochs=12))),
}
def _how_to_provide(name, data_dir):
    """data._how_to_provide(name, data_dir) before the registry."""
    if name == "imagenet64":
        return (
            "TFDS cannot download ImageNet 64x64 itself any more. Download the files by hand (image-net.org, "
            "'Downsampled ImageNet 64x64'; needs an ImageNet account) and prepare either TFDS builder offline:\n"
            "  * imagenet_resized/64x64: put Imagenet64_train_part1_npz.zip, Imagenet64_train_part2_npz.zip\n"
            f"    and Imagenet64_val_npz.zip in the manual_dir ({data_dir}/downloads/manual by default), then run\n"
            f"      tfds build imagenet_resized/64x64 --data_dir={data_dir} [--manual_dir=MANUAL_DIR]\n"
            "  * downsampled_imagenet/64x64: put train_64x64.tar and valid_64x64.tar in the manual_dir, then run\n"
            f"      tfds build downsampled_imagenet/64x64 --data_dir={data_dir} [--manual_dir=MANUAL_DIR]\n"
            "and point svae-tf at the data directory with TFDS_DATA_DIR=DIR or --data_dir=DIR."
        )
    return (f"Prepare it in TFDS format (on a machine with internet: `tfds build {name} --data_dir=DIR`, "
            "then copy DIR here) and point svae-tf at it with TFDS_DATA_DIR=DIR or --data_dir=DIR "
            "(load_images(..., data_dir=DIR)).")


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_the_built_in_datasets_are_the_values_of_before(name, tmp_path):
    spec, before = datasets.get(name), BEFORE[name]
    for field in ("tfds_names", "shape", "split_aliases", "validation_split", "cache", "classifier"):
        assert getattr(spec, field) == before[field], field
    assert data.image_shape(name) == before["shape"]
    assert classifiers.classifier_kind(name) == before["classifier"]
    assert classifiers.classifier_kind(name, "inception_v3") == "inception_v3"  # an explicit one wins
    trainer, defaults = before["trainer"]
    assert command.trainer_defaults(trainer) == defaults
    assert spec.missing_help("/d") == _how_to_provide(name, "/d")
    assert not spec.single_split and not spec.folders
    if before["validation_split"]:
        assert data.validation_splits(name) == before["validation_split"]
    else:
        with pytest.raises(ValueError, match=r"no validation split.*\['cifar10', 'mnist'\]"):
            data.validation_splits(name)
    with pytest.raises(data.DatasetNotFoundError) as info:  # the message data.py builds from the entry
        data.num_examples(name, "train", data_dir=os.fspath(tmp_path))
    assert str(info.value).endswith("\n" + _how_to_provide(name, os.fspath(tmp_path)))
    assert f"(TFDS: {', '.join(before['tfds_names'])})" in str(info.value)


def test_split_names_map_to_the_tfds_splits_of_before():
    split = data._tfds_split
    assert split(datasets.get("imagenet64"), "test[:10%]") == "validation[:10%]"
    assert split(datasets.get("imagenet64"), "train") == "train"
    assert split(datasets.get("mnist"), data.VALIDATION) == "train[50000:]"
    assert split(datasets.get("mnist"), data.TRAIN_WITHOUT_VALIDATION) == "train[:50000]"
    assert split(datasets.get("cifar10"), "test") == "test"


def test_a_folder_name_is_a_spec_of_its_own():
    spec = datasets.get("folder:/data/faces")
    assert spec.folders == {"train": "/data/faces"} and spec.single_split
    assert (spec.tfds_names, spec.shape, spec.cache, spec.classifier) == ((), None, True, "inception_v3")
    assert data.image_shape("folder:/x", image_size=8) == (8, 8, 3)
    assert classifiers.classifier_kind("folder:/x") == "inception_v3"
    with pytest.raises(ValueError, match="give a directory after 'folder:'"):
        datasets.get("folder:")
    assert "folder:/data/faces" not in datasets.names()


def test_an_unknown_name_names_the_registered_datasets():
    with pytest.raises(ValueError, match=r"Unknown dataset 'svhn': expected one of "
                                         r"\['cifar10', 'imagenet64', 'mnist'\] or 'folder:/path/to/images'"):
        datasets.get("svhn")
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        data.image_shape("svhn")
    with pytest.raises(ValueError, match=r"Unknown trainer 'svhn'; expected one of \('mnist', 'cifar', 'imagenet'\)"):
        command.trainer_defaults("svhn")
    spec = datasets.DatasetSpec("svhn", tfds_names=("svhn_cropped",), shape=(32, 32, 3), preset="cifar10")
    datasets.register(spec)
    try:
        assert datasets.get("svhn") is spec and datasets.names()[-1] == "svhn"
        with pytest.raises(ValueError, match=r"\['cifar10', 'imagenet64', 'mnist', 'svhn'\]"):
            datasets.get("svnh")
        with pytest.raises(ValueError, match="already registered"):
            datasets.register(spec)
        assert command.trainer_defaults("svhn") == dict(dataset="svhn", preset="cifar10", batch_size=64, epochs=10)
    finally:
        datasets.unregister("svhn")
    assert "svhn" not in datasets.names()
    with pytest.raises(ValueError, match="built in"):
        datasets.unregister("mnist")


def test_a_spec_is_checked_when_it_is_made():
    with pytest.raises(ValueError, match="either tfds_names or folders"):
        datasets.DatasetSpec("both", tfds_names=("a",), folders={"train": "/a"})
    with pytest.raises(ValueError, match="classifier must be one of"):
        datasets.DatasetSpec("x", tfds_names=("a",), classifier="resnet")
    with pytest.raises(ValueError, match="not one"):
        datasets.DatasetSpec("x", folders={"train": "/a"}, shape=(28, 32, 1))
    with pytest.raises(ValueError, match="folders, not registered"):
        datasets.register(datasets.DatasetSpec("folder:/a", folders={"train": "/a"}))


def _write_digits(root, counts, seed=0):
    """`counts` {split: n} random grey 28x28 PNGs under root/<split>/; the test split's first
    image is written as RGB (decoded to grey by the spec's one channel)."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            image = Image.fromarray(pixels, "L")
            (image.convert("RGB") if (split, i) == ("test", 0) else image).save(root / split / f"{i:03d}.png")


def _tiny_digits(root, **changes):
    fields = dict(folders={"train": os.fspath(root / "train"), "test": os.fspath(root / "test")},
                  shape=(28, 28, 1), preset="mnist", batch_size=16, epochs=1, classifier="mnist_cnn", cache=False,
                  how_to_provide="Write the tiny digits to {data_dir} first.")
    return datasets.DatasetSpec("tiny_digits", **{**fields, **changes})


def test_a_registered_folder_dataset_reads_its_splits_and_sets_the_run(tmp_path):
    _write_digits(tmp_path / "digits", {"train": 40, "test": 24})
    datasets.register(_tiny_digits(tmp_path / "digits"))
    try:
        assert (data.num_examples("tiny_digits", "train"), data.num_examples("tiny_digits", "test")) == (40, 24)
        test = np.concatenate(list(data.load_images("tiny_digits", "test", batch_size=10)))
        assert test.shape == (24, 28, 28, 1)
        first = np.asarray(Image.open(tmp_path / "digits" / "test" / "000.png").convert("L"), np.float32)
        np.testing.assert_allclose(test[0, ..., 0], first / 255.0, atol=1 / 255.0)  # RGB file, grey image
        with pytest.raises(ValueError, match=r"holds the splits \['test', 'train'\]; got split='validation'"):
            data.num_examples("tiny_digits", "validation")
        run = train_lib._resolve_data(TrainConfig(dataset="tiny_digits", batch_size=16),
                                      presets.get_preset("mnist"), "mnist", 0)
        assert (run.cache, run.single_split, run.eval_split, run.eval_count, run.steps_per_epoch) == (
            False, False, "test", 24, 2)
        with pytest.raises(train_lib.ConfigError, match=r"--holdout=validation: 'tiny_digits': a folder dataset "
                                                        r"holds the splits \['test', 'train'\]"):
            train_lib._resolve_data(TrainConfig(dataset="tiny_digits", holdout="validation"),
                                    presets.get_preset("mnist"), "mnist", 0)
    finally:
        datasets.unregister("tiny_digits")
    folders = {"train": os.fspath(tmp_path / "digits" / "train"), "validation": os.fspath(tmp_path / "digits" / "test")}
    datasets.register(_tiny_digits(tmp_path / "digits", folders=folders))
    try:  # a validation folder: the run trains on all of "train"
        run = train_lib._resolve_data(TrainConfig(dataset="tiny_digits", batch_size=8, holdout="validation"),
                                      presets.get_preset("mnist"), "mnist", 0)
        assert (run.train_split, run.eval_split, run.eval_count, run.steps_per_epoch) == (
            data.TRAIN_WITHOUT_VALIDATION, "validation", 24, 5)
    finally:
        datasets.unregister("tiny_digits")
    datasets.register(_tiny_digits(tmp_path / "missing"))
    try:
        with pytest.raises(data.DatasetNotFoundError, match="Write the tiny digits to .*missing/train first"):
            data.num_examples("tiny_digits", "train")
    finally:
        datasets.unregister("tiny_digits")


PLUGIN = '''
"""Registers tiny_digits: grey 28x28 PNGs in a train and a test folder (the mnist preset)."""
from svae_tf.data import datasets

datasets.register(datasets.DatasetSpec(
    "tiny_digits", folders={{"train": {train!r}, "test": {test!r}}}, shape=(28, 28, 1),
    preset="mnist", batch_size=16, epochs=1, classifier="mnist_cnn"))
'''

# The evaluation, in a process that imported the plugin, with the MNIST CNN (untrained, seeded)
# at the default path of its cache dir: the dataset's classifier is the default one.
EVALUATE = '''
import sys
import tiny_digits  # registers the dataset
from svae_tf.evaluation import classifiers
from trainers import classifier, evaluate

args = evaluate.parse_args(sys.argv[1:])
classifier.save(classifiers.build_mnist_classifier(seed=0), classifiers.default_mnist_classifier_path(args.cache_dir))
evaluate.run(args)
'''


def test_a_registered_dataset_trains_and_evaluates_end_to_end(tmp_path):
    """A plugin's `register` is the whole change: its trainer (three lines) trains on it with
    the entry's defaults, and evaluation reads its test folder and scores it with its classifier."""
    _write_digits(tmp_path / "digits", {"train": 64, "test": 24})
    (tmp_path / "tiny_digits.py").write_text(PLUGIN.format(train=os.fspath(tmp_path / "digits" / "train"),
                                                          test=os.fspath(tmp_path / "digits" / "test")))
    (tmp_path / "tiny_trainer.py").write_text("import tiny_digits  # registers tiny_digits\n"
                                              "from trainers import command\n"
                                              "command.run_trainer('tiny_digits')\n")
    (tmp_path / "tiny_evaluate.py").write_text(EVALUATE)
    env = tl.env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(tl.REPO)]))
    model_dir = tmp_path / "run"
    proc = tl.check_ok(subprocess.run(
        [sys.executable, str(tmp_path / "tiny_trainer.py"), "--steps_per_epoch=2", "--eval_batches=1",
         "--num_grid_images=16", "--z_dim=8", "--verbose=2", f"--model_dir={model_dir}"],
        cwd=tl.REPO, env=env, capture_output=True, text=True, timeout=420))
    assert tl.finished(proc.stdout)[:3] == (1, 2, 2)  # epochs=1 is the entry's default
    recorded = json.loads((model_dir / "flags.json").read_text())
    assert (recorded["dataset"], recorded["preset"], recorded["batch_size"]) == ("tiny_digits", "mnist", 16)

    out = tmp_path / "eval.json"
    tl.check_ok(subprocess.run(
        [sys.executable, str(tmp_path / "tiny_evaluate.py"), f"--model_dir={model_dir}", f"--json={out}",
         f"--cache_dir={tmp_path / 'cache'}", "--iw_samples=4", "--num_nll_images=16", "--nll_batch_size=8",
         "--num_samples=32", "--splits=2", "--batch_size=8"],
        cwd=tl.REPO, env=env, capture_output=True, text=True, timeout=420))
    results = json.loads(out.read_text())
    assert results["dataset"] == "tiny_digits"  # the run's, from flags.json: no --dataset given
    assert results["classifier"]["name"] == "mnist_cnn"
    assert results["num_reference"] == 24 and results["num_rmse_images"] == 24  # its test folder
    for key in ("nll_nats", "elbo", "rmse", "inception_score", "fid"):
        assert isinstance(results[key], float) and math.isfinite(results[key]), key


def test_evaluation_defaults_to_the_dataset_the_run_trained_on(tmp_path):
    from trainers import evaluate

    class Config:
        preset = "imagenet64"

    def default(flags_json, image_shape=(64, 64, 3)):
        if flags_json is not None:
            (tmp_path / train_lib.FLAGS_JSON).write_text(json.dumps(flags_json))
        return evaluate.default_dataset(os.fspath(tmp_path), Config, image_shape)

    assert default(None) == "imagenet64"  # no flags.json: the preset's name, as before
    assert default({"dataset": "cifar10"}, (32, 32, 3)) == "cifar10"
    assert default({"dataset": "cifar10", "image_size": 64}) == "imagenet64"  # resized: as before
    assert default({"dataset": "folder:/x", "image_size": 64}) == "imagenet64"  # one split: as before
    with pytest.raises(ValueError, match="Unknown dataset 'tiny_digits'"):  # its plugin is not imported
        default({"dataset": "tiny_digits"})
