"""Tests of svae_tf.evaluation.classifiers (MNIST CNN, InceptionV3 extractor, shared IS/FID) and
trainers.classifier."""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app

from svae_tf.evaluation import classifiers, metrics
from trainers import classifier as classifier_trainer


def test_classifier_flags_name_a_keras_file(tmp_path):
    args = classifier_trainer.parse_args([f"--cache_dir={tmp_path}", "--epochs=3", "--force"])
    assert args.output == os.fspath(tmp_path / classifiers.MNIST_CLASSIFIER_FILE)
    assert (args.epochs, args.force, args.batch_size) == (3, True, 100)
    with pytest.raises(app.UsageError, match="must end with .keras"):
        classifier_trainer.parse_args(["--output=clf.h5"])


def test_mnist_classifier_outputs_and_keras_round_trip(tmp_path):
    model = classifiers.build_mnist_classifier()
    extractor = classifiers.MnistClassifier(model)
    x = tf.random.stateless_uniform([3, 28, 28, 1], seed=(0, 1))
    logits, features = extractor(x)
    assert logits.shape == (3, 10) and features.shape == (3, 1024)
    assert np.all(np.asarray(features) >= 0)  # after ReLU
    path = os.fspath(tmp_path / "c.keras")
    classifier_trainer.save(model, path)  # no custom objects needed to load it back
    loaded = classifiers.MnistClassifier.load(path)
    np.testing.assert_allclose(loaded(x)[0], logits, rtol=1e-5, atol=1e-5)
    assert loaded.info()["path"] == path


def test_missing_mnist_classifier_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m trainers.classifier") as err:
        classifiers.MnistClassifier.load(os.fspath(tmp_path / "nope.keras"))
    assert os.fspath(tmp_path / "nope.keras") in str(err.value)
    with pytest.raises(FileNotFoundError, match="trainers.classifier"):
        classifiers.make_extractor("mnist", cache_dir=os.fspath(tmp_path))


def test_inception_v3_without_weights_on_tiny_images():
    extractor = classifiers.InceptionV3Extractor(weights=None)
    rgb = tf.random.stateless_uniform([2, 32, 32, 3], seed=(1, 2))
    grey = tf.random.stateless_uniform([2, 28, 28, 1], seed=(1, 3))
    for images in (rgb, grey):
        logits, features = extractor(images)
        assert logits.shape == (2, 1000) and features.shape == (2, 2048)
        assert np.all(np.isfinite(logits)) and np.all(np.isfinite(features))
    pre = classifiers.InceptionV3Extractor.preprocess(grey)
    assert pre.shape == (2, 299, 299, 3)
    assert -1.0 <= float(tf.reduce_min(pre)) and float(tf.reduce_max(pre)) <= 1.0
    assert extractor.info()["name"] == "inception_v3"


def test_inception_v3_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="inception_v3_weights"):
        classifiers.InceptionV3Extractor(weights=os.fspath(tmp_path / "missing.h5"))


class _StubExtractor:
    """Deterministic (logits, features) of images: a fixed random projection."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.w_logits = rng.normal(size=(16, 10))
        self.w_features = rng.normal(size=(16, 6))

    def __call__(self, images):
        x = np.asarray(images, np.float64).reshape(len(images), -1)[:, :16]
        return 3 * x @ self.w_logits, x @ self.w_features


def test_sample_quality_is_the_metrics_on_the_extractor_outputs():
    stub = _StubExtractor()
    images = np.random.default_rng(1).uniform(size=(60, 4, 4, 1))
    batches = [images[i:i + 25] for i in range(0, 60, 25)]
    logits, features = classifiers.activations(stub, batches)
    assert logits.shape == (60, 10) and features.shape == (60, 6)
    same = classifiers.sample_quality(stub, batches, features, num_splits=3)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert (same["inception_score"], same["inception_score_std"]) == pytest.approx(
        metrics.inception_score(logits, 3))
    assert same["num_samples"] == 60
    other = np.random.default_rng(2).normal(size=(80, 6))
    by_features = classifiers.sample_quality(stub, batches, other, num_splits=3)
    by_stats = classifiers.sample_quality(stub, batches, metrics.gaussian_statistics(other), num_splits=3)
    assert by_features["fid"] == pytest.approx(by_stats["fid"]) and by_features["fid"] > 0.1


def test_classifier_trainer_runs_a_few_steps_and_reuses(tmp_path, data_dir, capsys):
    out = os.fspath(tmp_path / "clf" / "mnist_classifier.keras")
    args = [f"--output={out}", f"--data_dir={data_dir}", "--take=64", "--epochs=1",
            "--steps_per_epoch=2", "--batch_size=32", "--test_take=40", "--splits=2", "--verbose=0"]
    report = classifier_trainer.run(classifier_trainer.parse_args(args))
    assert os.path.exists(out) and os.path.exists(out + ".json")
    with open(out + ".json") as f:
        saved = json.load(f)
    for key in ("test_accuracy", "real_test_inception_score", "real_test_inception_score_std",
                "train_seconds", "epochs", "num_test"):
        assert key in saved
    assert saved["num_test"] == 40 and saved["test_accuracy"] == report["test_accuracy"]
    # Provenance: the command that trains it again, and the checksum of the very file.
    assert saved["sha256"] == hashlib.sha256(open(out, "rb").read()).hexdigest()
    assert saved["command"].startswith("python -m trainers.classifier ") and "--take=64" in saved["command"]
    assert saved["trained_by"] == "python -m trainers.classifier" and saved["keras_version"]
    info = classifiers.MnistClassifier.load(out).info()
    assert info["sha256"] == saved["sha256"] and info["provenance"]["sha256_matches"]
    assert info["provenance"]["test_accuracy"] == saved["test_accuracy"]
    assert not [p for p in os.listdir(tmp_path / "clf") if ".tmp" in p]
    mtime = os.path.getmtime(out)
    classifier_trainer.run(classifier_trainer.parse_args(args))  # trained once, reused
    assert os.path.getmtime(out) == mtime
    assert "Reusing" in capsys.readouterr().out
    with open(out + ".json") as f:
        assert json.load(f)["command"] == saved["command"]  # the re-evaluation keeps the provenance


def test_an_interrupted_classifier_training_leaves_nothing_at_the_path(tmp_path, data_dir, monkeypatch):
    """The model is saved under a temporary name, evaluated, its sidecar written, then
    renamed: an interruption after the save (here, in the test-set evaluation) leaves no
    classifier, no sidecar and no temporary file."""
    out = tmp_path / "mnist_classifier.keras"
    saved = []
    real_save = classifier_trainer._save_inference

    def save_then_note(model, path):
        real_save(model, path)
        saved.append(path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(classifier_trainer, "_save_inference", save_then_note)
    monkeypatch.setattr(classifier_trainer, "evaluate", interrupted)
    args = classifier_trainer.parse_args([f"--output={out}", f"--data_dir={data_dir}", "--take=64", "--epochs=1",
                                          "--steps_per_epoch=1", "--batch_size=32", "--verbose=0"])
    with pytest.raises(KeyboardInterrupt):
        classifier_trainer.run(args)
    assert len(saved) == 1 and saved[0] != os.fspath(out)  # it had been written, elsewhere
    assert os.listdir(tmp_path) == []


def test_classifier_evaluation_on_a_labelled_batch_with_a_known_answer(data_dir, monkeypatch):
    """trainers.classifier.evaluate under a classifier whose answers are known: it names the
    true digit of every test image but the first 10, for which it says (digit + 1) mod 10.
    On the first 40 test images, in batches of 16 (the last one short), the accuracy is
    30/40, and since it is sure of every answer, the Inception score of each split is
    exp(entropy of the digits it names there)."""
    from svae_tf.data import pipelines as data

    images, labels = next(iter(data.load_images("mnist", "test", batch_size=40, take=40, data_dir=data_dir,
                                                with_labels=True)))
    labels = labels.numpy()
    answers = np.where(np.arange(40) < 10, (labels + 1) % 10, labels)
    answer_of = {np.asarray(image).tobytes(): a for image, a in zip(images.numpy(), answers)}

    class KnownAnswers:
        def __init__(self, model):
            del model

        def __call__(self, batch):
            named = [answer_of[np.asarray(image).tobytes()] for image in np.asarray(batch)]
            return 50.0 * np.eye(10)[named], np.zeros((len(named), 4))

    monkeypatch.setattr(classifier_trainer.classifiers, "MnistClassifier", KnownAnswers)
    report = classifier_trainer.evaluate(None, data_dir, take=40, splits=2, batch_size=16)
    assert report["test_accuracy"] == 0.75 and report["num_test"] == 40

    def split_score(named):
        p = np.bincount(named, minlength=10) / len(named)
        return np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))

    scores = [split_score(answers[:20]), split_score(answers[20:])]
    assert report["real_test_inception_score"] == pytest.approx(np.mean(scores), rel=1e-9)
    assert report["real_test_inception_score_std"] == pytest.approx(np.std(scores), rel=1e-6)


@pytest.mark.slow
def test_full_classifier_reaches_99_percent_and_real_inception_score_near_9_9(tmp_path, data_dir):
    """The classifier the project evaluates MNIST with (minutes of CPU)."""
    out = os.fspath(tmp_path / "mnist_classifier.keras")
    report = classifier_trainer.run(classifier_trainer.parse_args([f"--output={out}", f"--data_dir={data_dir}",
                                                                   "--verbose=2"]))
    assert report["test_accuracy"] >= 0.99
    assert 9.7 <= report["real_test_inception_score"] <= 10.0
