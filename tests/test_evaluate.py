"""Tests of trainers.evaluate on tiny checkpoints and a tiny classifier (real MNIST, small takes)."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from svae_tf import classifiers, data, likelihood, runs
from trainers import classifier as classifier_trainer
from trainers import evaluate

# A small MNIST architecture that the run's config.json can carry (JSON-able overrides).
TINY_MNIST = dict(z_dim=4, flow_depth=1, flow_hidden=[8], encoder_dense=[16],
                  decoder_dense=[16, 196], decoder_start=[7, 7, 4])



def _make_run(model_dir, variant, data_dir, train_steps):
    cfg = runs.ModelConfig(preset="mnist", preset_overrides=TINY_MNIST, variant=variant)
    model = runs.build_model(cfg)
    model.compile()
    if train_steps:
        ds = data.load_images("mnist", "train", batch_size=16, data_dir=data_dir, take=32, repeat=True)
        model.fit(ds, epochs=1, steps_per_epoch=train_steps, verbose=0, shuffle=False)
    runs.save_config(model_dir, cfg)
    runs.checkpoint_manager(runs.make_checkpoint(model), model_dir).save()
    return model_dir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("evaluate")
    _make_run(os.fspath(root / "svae_r"), "svae_r", data_dir, train_steps=2)
    _make_run(os.fspath(root / "gan"), "gan", data_dir, train_steps=0)
    # A tiny classifier trained for a few steps.
    keras.utils.set_random_seed(0)
    clf = classifiers.build_mnist_classifier()
    clf.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labelled = data.load_images("mnist", "train", batch_size=32, data_dir=data_dir, take=64, with_labels=True)
    clf.fit(labelled, epochs=1, verbose=0, shuffle=False)
    classifier_trainer.save(clf, os.fspath(root / "clf.keras"))
    return root


def _args(workdir, data_dir, model, *extra):
    return [f"--model_dir={workdir / model}", f"--data_dir={data_dir}",
            f"--json={workdir / (model + '.json')}", f"--classifier={workdir / 'clf.keras'}",
            f"--cache_dir={workdir / 'cache'}", "--iw_samples=4", "--num_nll_images=20",
            "--nll_batch_size=10", "--num_rmse_images=30", "--num_samples=40",
            "--num_reference=50", "--splits=2", "--batch_size=20", *extra]


def test_evaluate_writes_all_keys(workdir, data_dir, capsys):
    results = evaluate.run(_args(workdir, data_dir, "svae_r"))
    with open(workdir / "svae_r.json") as f:
        saved = json.load(f)
    assert saved == json.loads(json.dumps(results))
    for key in evaluate.REQUIRED_KEYS:
        assert saved[key] is not None and (not isinstance(saved[key], float) or math.isfinite(saved[key])), key
    assert saved["num_samples"] == 40 and saved["iw_samples"] == 4 and saved["splits"] == 2
    assert saved["nll_bits_per_dim"] == pytest.approx(saved["nll_nats"] / (784 * math.log(2)))
    assert saved["nll_nats"] <= -saved["elbo"] + 1e-6 and saved["nll_nats"] > 0
    assert 0 <= saved["rmse"] <= 255 and 1.0 <= saved["inception_score"] <= 10.0 and saved["fid"] >= 0
    assert saved["binarization"]["kind"] == "static"
    assert saved["binarization"]["seed"] == data.STATIC_BINARIZATION_SEED
    assert saved["classifier"]["name"] == "mnist_cnn" and "rmse" in saved["conventions"]
    assert saved["train_steps"] == 2 and saved["num_images"] == 20
    assert not [p for p in os.listdir(workdir) if ".tmp" in p]  # written atomically
    out = capsys.readouterr().out
    assert evaluate.TABLE_HEADER.splitlines()[0] in out and "| svae_r | svae_r | 2 |" in out
    # The FID reference statistics were cached.
    cached = [p for p in os.listdir(workdir / "cache") if p.startswith("fid_reference_mnist")]
    assert len(cached) == 1
    extractor = classifiers.MnistClassifier.load(os.fspath(workdir / "clf.keras"))
    stats = evaluate.reference_statistics(extractor, "mnist", "test", data_dir, 20, 50,
                                          os.fspath(workdir / "cache"))
    assert stats["inception_score"] == pytest.approx(results["real_inception_score"])
    assert os.listdir(workdir / "cache") == cached
    # The encoder may see the grey-level image instead of the binary one.
    again = evaluate.run(_args(workdir, data_dir, "svae_r", "--encoder_input=grey", "--no_quality"))
    assert again["rmse"] == pytest.approx(results["rmse"]) and again["fid"] is None
    assert again["binarization"]["encoder_input"] == "grey" and again["nll_nats"] != results["nll_nats"]


def test_decoder_only_variant_reports_null_nll_and_rmse(workdir, data_dir):
    results = evaluate.run(_args(workdir, data_dir, "gan"))
    for key in ("nll_nats", "nll_bits_per_dim", "elbo", "rmse"):
        assert results[key] is None
    assert results["inception_score"] >= 1.0 and results["fid"] >= 0.0
    assert "n/a" in evaluate.markdown_row(results)


def test_clear_errors(workdir, data_dir, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate.run([f"--model_dir={tmp_path / 'missing'}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        evaluate.run([f"--model_dir={tmp_path / 'empty'}"])
    runs.save_config(os.fspath(tmp_path / "untrained"), runs.ModelConfig(preset_overrides=TINY_MNIST))
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        evaluate.run([f"--model_dir={tmp_path / 'untrained'}"])
    with pytest.raises(FileNotFoundError, match="trainers.classifier"):
        evaluate.run(_args(workdir, data_dir, "svae_r", f"--classifier={tmp_path / 'none.keras'}"))
    assert evaluate.main([f"--model_dir={tmp_path / 'missing'}"]) == 2
    assert "error" in capsys.readouterr().err


def test_rmse_of_a_perfect_reconstruction_is_zero():
    batches = [np.random.default_rng(i).uniform(size=(5, 6, 6, 1)) for i in range(3)]
    assert evaluate.reconstruction_rmse(lambda x: x, batches) == 0.0
    # A constant error of 0.1 on every pixel is 25.5 on the 0-255 scale.
    assert evaluate.reconstruction_rmse(lambda x: x + 0.1, batches) == pytest.approx(25.5)
    # Global mean over all pixels, not a mean of per-batch RMSEs.
    uneven = [np.zeros((1, 2, 2, 1)), np.zeros((3, 2, 2, 1))]
    errors = iter([1.0 / 255, 0.0])
    value = evaluate.reconstruction_rmse(lambda x: x + next(errors), uneven)
    assert value == pytest.approx(math.sqrt(1 / 4))


def test_model_reconstruction_uses_the_posterior_mean(workdir):
    model = runs.load_model(os.fspath(workdir / "svae_r"))
    x = tf.random.stateless_uniform([3, 28, 28, 1], seed=(0, 3))
    recon = likelihood.reconstruct(model, x)
    _, z = model.encode(x, noise=tf.zeros([3, 4]))
    np.testing.assert_allclose(recon, model.decode_mean(z), atol=1e-6)
    np.testing.assert_allclose(recon, likelihood.reconstruct(model, x), atol=0)  # deterministic
