"""Tests for svae_tf.data.pipelines on the real TFDS data in ../shared/tfds (tiny `take`s)."""

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from svae_tf.data import pipelines as data, datasets



def _all(ds) -> np.ndarray:
    return np.concatenate(list(ds.as_numpy_iterator()))


def test_image_shape():
    assert data.image_shape("mnist") == (28, 28, 1)
    assert data.image_shape("cifar10") == (32, 32, 3)
    assert data.image_shape("imagenet64") == (64, 64, 3)
    assert data.image_shape("cifar10", image_size=16) == (16, 16, 3)
    assert data.image_shape("folder:/x", image_size=8) == (8, 8, 3)
    with pytest.raises(ValueError, match="image_size"):
        data.image_shape("folder:/x")
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.image_shape("svhn")


def test_num_examples(data_dir):
    assert data.num_examples("mnist", "train", data_dir) == 60000
    assert data.num_examples("mnist", "test", data_dir) == 10000
    assert data.num_examples("cifar10", "train", data_dir) == 2000
    assert data.num_examples("cifar10", "test[:10%]", data_dir) == 100


def test_mnist_shape_dtype_range(data_dir):
    ds = data.load_images("mnist", "train", batch_size=32, data_dir=data_dir, take=70)
    assert ds.element_spec == tf.TensorSpec([None, 28, 28, 1], tf.float32)
    batches = list(ds.as_numpy_iterator())
    assert [b.shape[0] for b in batches] == [32, 32, 6]
    x = np.concatenate(batches)
    assert x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x * 255.0, np.round(x * 255.0), atol=1e-4)  # uint8 / 255
    assert ((x > 0) & (x < 1)).mean() > 0.01  # grey levels, not binarized


def test_labels(data_dir):
    ds = data.load_images("mnist", "test", batch_size=16, data_dir=data_dir, take=40, with_labels=True)
    images_spec, labels_spec = ds.element_spec
    assert images_spec.shape.as_list() == [None, 28, 28, 1]
    assert labels_spec.dtype == tf.int64
    labels = np.concatenate([y for _, y in ds.as_numpy_iterator()])
    assert labels.shape == (40,)
    assert labels.min() >= 0 and labels.max() <= 9 and len(set(labels)) > 3


def test_static_binarization(data_dir):
    def load(batch_size, take=120, **kw):
        return _all(data.load_images("mnist", "test", batch_size=batch_size, data_dir=data_dir,
                                     take=take, binarize="static", **kw))

    a = load(64)
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, load(64))  # same run to run
    np.testing.assert_array_equal(a, load(7, cache=False))  # independent of batch size
    np.testing.assert_array_equal(a[:50], load(50, take=50))  # independent of take
    shuffled = load(32, shuffle=True, seed=3)  # shuffling permutes, does not redraw
    np.testing.assert_array_equal(np.sort(a.reshape(len(a), -1).sum(1)), np.sort(shuffled.reshape(len(a), -1).sum(1)))
    grey = _all(data.load_images("mnist", "test", batch_size=64, data_dir=data_dir, take=120))
    assert abs(a.mean() - grey.mean()) < 0.01
    assert ((a == 1) <= (grey > 0)).all()  # black pixels stay black


def test_cifar10_shape_and_resize(data_dir):
    ds = data.load_images("cifar10", "test", batch_size=4, data_dir=data_dir, take=4, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [4, 32, 32, 3]
    x = next(iter(ds)).numpy()
    assert 0.0 <= x.min() and x.max() <= 1.0
    small = next(iter(data.load_images("cifar10", "test", batch_size=4, data_dir=data_dir, take=4, image_size=16)))
    assert small.shape == (4, 16, 16, 3)
    np.testing.assert_allclose(small.numpy().mean(), x.mean(), atol=0.01)


def test_repeat_drop_remainder_and_options(data_dir):
    ds = data.load_images("mnist", "train", batch_size=4, data_dir=data_dir, take=10, repeat=True,
                          shuffle=True, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [4, 28, 28, 1]
    assert len(list(ds.take(6))) == 6  # more than one epoch of 10 examples
    assert ds.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_shuffle_reproducible(data_dir):
    def load(seed):
        return _all(data.load_images("mnist", "train", batch_size=16, data_dir=data_dir, take=64,
                                     shuffle=True, seed=seed))

    a, b, c = load(1), load(1), load(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    plain = _all(data.load_images("mnist", "train", batch_size=16, data_dir=data_dir, take=64))
    assert not np.array_equal(a, plain)
    np.testing.assert_allclose(np.sort(a.reshape(64, -1).sum(1)), np.sort(plain.reshape(64, -1).sum(1)), rtol=1e-6)


def test_missing_dataset(tmp_path, monkeypatch):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_images("mnist", "train", batch_size=8, data_dir=os.fspath(tmp_path))
    assert os.fspath(tmp_path) in str(info.value)
    assert "TFDS_DATA_DIR" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)

    with pytest.raises(data.DatasetNotFoundError, match="manual_dir") as info:
        data.num_examples("imagenet64", "train", data_dir=os.fspath(tmp_path))
    assert os.fspath(tmp_path) in str(info.value)

    monkeypatch.setenv("TFDS_DATA_DIR", os.fspath(tmp_path / "env"))
    with pytest.raises(data.DatasetNotFoundError, match=r"\$TFDS_DATA_DIR") as info:
        data.num_examples("cifar10", "train")
    assert os.fspath(tmp_path / "env") in str(info.value)


def _write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(folder / "a_red_wide.png")  # W=40, H=20
    Image.new("L", (16, 16), 128).save(folder / "b_grey.png")
    Image.new("RGBA", (8, 8), (0, 0, 255, 255)).save(folder / "c_blue_rgba.png")
    (folder / "sub").mkdir(exist_ok=True)
    Image.new("RGB", (24, 24), (0, 255, 0)).save(folder / "sub" / "d_green.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")


def test_folder(tmp_path):
    _write_images(tmp_path / "imgs")
    name = f"folder:{tmp_path / 'imgs'}"
    assert data.num_examples(name, "train") == 4
    ds = data.load_images(name, "train", batch_size=3, image_size=8, with_labels=True)
    assert ds.element_spec[0].shape.as_list() == [None, 8, 8, 3]
    pairs = list(ds.as_numpy_iterator())
    x = np.concatenate([p[0] for p in pairs])
    labels = np.concatenate([p[1] for p in pairs])
    assert x.shape == (4, 8, 8, 3) and x.dtype == np.float32
    assert (labels == -1).all()
    # Sorted path order: red (cropped+resized), grey (as RGB), blue (alpha dropped), green JPEG.
    np.testing.assert_allclose(x[0], np.broadcast_to([1.0, 0.0, 0.0], (8, 8, 3)))
    np.testing.assert_allclose(x[1], 128 / 255.0)
    np.testing.assert_allclose(x[2], np.broadcast_to([0.0, 0.0, 1.0], (8, 8, 3)))
    np.testing.assert_allclose(x[3], np.broadcast_to([0.0, 1.0, 0.0], (8, 8, 3)), atol=0.02)
    static = _all(data.load_images(name, "train", batch_size=4, image_size=8, binarize="static"))
    assert set(np.unique(static)) <= {0.0, 1.0}


def test_folder_errors(tmp_path):
    _write_images(tmp_path / "imgs")
    with pytest.raises(ValueError, match="image_size"):
        data.load_images(f"folder:{tmp_path / 'imgs'}", "train", batch_size=2)
    with pytest.raises(ValueError, match="split"):
        data.load_images(f"folder:{tmp_path / 'imgs'}", "test", batch_size=2, image_size=8)
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(data.DatasetNotFoundError) as info:
            data.load_images(f"folder:{folder}", "train", batch_size=2, image_size=8)
        assert os.fspath(folder) in str(info.value)


def test_batch_norm_batches_are_the_first_full_training_batches(data_dir):
    first = np.concatenate(list(data.load_images("mnist", "train", batch_size=300, data_dir=data_dir, take=300)))
    batches = list(data.batch_norm_batches("mnist", 3, batch_size=100, data_dir=data_dir))
    assert [len(b) for b in batches] == [100, 100, 100]
    np.testing.assert_array_equal(np.concatenate(batches), first)
    # A run's --take bounds them; a partial batch is dropped.
    limited = list(data.batch_norm_batches("mnist", 3, batch_size=100, data_dir=data_dir, limit=250))
    assert [len(b) for b in limited] == [100, 100]


@pytest.mark.parametrize("name, sizes", [("mnist", (50000, 10000)), ("cifar10", (1800, 200))])
def test_validation_split_is_the_end_of_train_disjoint_from_the_rest(data_dir, name, sizes):
    """"validation" is the last 10,000 of MNIST's 60,000 training images (the last 200 of the
    CIFAR-10 subset's 2,000), "train_without_validation" the rest: right sizes, no image in
    both, together exactly the training set in order."""
    def read(split):
        batches = data.load_images(name, split, batch_size=5000, data_dir=data_dir, cache=False)
        return np.concatenate([b.numpy() for b in batches])

    counts = tuple(data.num_examples(name, s, data_dir) for s in (data.TRAIN_WITHOUT_VALIDATION, data.VALIDATION))
    assert counts == sizes and data.num_examples(name, "train", data_dir) == sum(sizes)
    train, part, validation = read("train"), read(data.TRAIN_WITHOUT_VALIDATION), read(data.VALIDATION)
    assert (len(part), len(validation)) == sizes
    np.testing.assert_array_equal(np.concatenate([part, validation]), train)
    # Disjoint as images, not only as indices (no duplicate of a validation image in the rest).
    flat = lambda x: {row.tobytes() for row in (x * 255).round().astype(np.uint8).reshape(len(x), -1)}
    assert not flat(part) & flat(validation)
    assert data.validation_splits(name) == datasets.get(name).validation_split
    with pytest.raises(ValueError, match="no validation split"):
        data.validation_splits("imagenet64")
