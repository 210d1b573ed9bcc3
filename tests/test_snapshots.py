"""svae_tf.data.snapshots: prepared TFDS examples kept on disk between runs (real CIFAR-10 test
split, 1,000 images; each test has its own cache directory)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from svae_tf.data import pipelines, snapshots


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("SVAE_TF_CACHE_DIR", os.fspath(path))
    return path / snapshots.SUBDIR


def _images(data_dir, **kwargs):
    ds = pipelines.load_images("cifar10", "test", batch_size=250, data_dir=data_dir, with_labels=True, **kwargs)
    images, labels = zip(*ds.as_numpy_iterator())
    return np.concatenate(images), np.concatenate(labels)


def _refuse_to_decode(monkeypatch):
    def decode(*args):
        raise AssertionError("decoded although a snapshot exists")

    monkeypatch.setattr(pipelines, "_decoded_examples", decode)


def test_a_whole_split_is_saved_once_then_loaded_with_the_same_examples(data_dir, cache_dir, monkeypatch):
    decoded = _images(data_dir, cache=False)
    assert not cache_dir.exists()  # cache=False: nothing on disk
    first = _images(data_dir)  # decodes and saves
    assert len(os.listdir(cache_dir)) == 1 and os.listdir(cache_dir)[0].startswith("cifar10-")
    _refuse_to_decode(monkeypatch)
    again = _images(data_dir)  # loads
    for a, b, c in zip(decoded, first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert decoded[0].shape == (1000, 32, 32, 3) and len(set(decoded[1])) == 10
    head = _images(data_dir, take=16)  # a `take` reads the snapshot's first examples
    np.testing.assert_array_equal(head[0], decoded[0][:16])


def test_other_settings_make_their_own_snapshot_and_a_take_makes_none(data_dir, cache_dir):
    _images(data_dir, take=16)
    assert not cache_dir.exists()  # part of a split: decoded as before, not saved
    _images(data_dir)
    _images(data_dir, image_size=16)
    _images(data_dir, binarize="static")
    assert len(os.listdir(cache_dir)) == 3


def test_changed_files_change_the_key(tmp_path):
    (tmp_path / "a.tfrecord").write_bytes(b"12")
    before = snapshots.directory_signature(tmp_path)
    (tmp_path / "a.tfrecord").write_bytes(b"123")
    after = snapshots.directory_signature(tmp_path)
    assert before != after
    assert snapshots.path_for("d", {"files": before}) != snapshots.path_for("d", {"files": after})


def test_a_failed_save_leaves_no_snapshot(tmp_path):
    path = tmp_path / "datasets" / "bad-0"

    def build():  # fails at its third element, as bad data would
        return tf.data.Dataset.from_tensor_slices([1.0, 2.0, np.nan]).map(
            lambda v: tf.debugging.check_numerics(v, "example 2 holds NaN"))

    with pytest.raises(tf.errors.InvalidArgumentError, match="example 2 holds NaN"):
        snapshots.load_or_build(os.fspath(path), build, tf.TensorSpec([], tf.float32))
    assert os.listdir(tmp_path / "datasets") == []  # neither the snapshot nor a temporary one


def test_of_two_runs_saving_one_snapshot_the_first_rename_wins(tmp_path):
    path = os.fspath(tmp_path / "datasets" / "d-0")

    spec = tf.TensorSpec([], tf.int64)

    def build_while_another_run_finishes_first():
        snapshots.load_or_build(path, lambda: tf.data.Dataset.range(3), spec)  # lands first
        return tf.data.Dataset.range(5)

    ds = snapshots.load_or_build(path, build_while_another_run_finishes_first, spec)
    assert list(ds.as_numpy_iterator()) == [0, 1, 2]  # the other run's, whole
    assert os.listdir(tmp_path / "datasets") == ["d-0"]
