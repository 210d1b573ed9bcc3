"""Tests of trainers.evaluate on tiny checkpoints and a tiny classifier (real MNIST, small takes)."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app

from svae_tf.evaluation import classifiers, likelihood, metrics, refit
from svae_tf.data import pipelines as data
from svae_tf import runs
from trainers import classifier as classifier_trainer
from trainers import evaluate

REPO = Path(__file__).resolve().parents[1]
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
    return evaluate.parse_args([
        f"--model_dir={workdir / model}", f"--data_dir={data_dir}",
        f"--json={workdir / (model + '.json')}", f"--classifier={workdir / 'clf.keras'}",
        f"--cache_dir={workdir / 'cache'}", "--iw_samples=4", "--num_nll_images=20",
        "--nll_batch_size=10", "--num_rmse_images=30", "--num_samples=40",
        "--num_reference=50", "--splits=2", "--batch_size=20", *extra])


def _rmse_of(model, data_dir, n, batch_size=None):
    """0-255 RMSE of x -> T(mu(x)) -> decoder mean over the first n grey-level test images:
    inference mode, or batch norm by the statistics of sVAE-r's training batches (z_p and the
    z of `batch_size` images)."""
    x = np.concatenate(list(data.load_images("mnist", "test", batch_size=n, take=n, data_dir=data_dir)))
    step = batch_size or n
    recon = []
    for i in range(0, n, step):
        chunk = x[i:i + step]
        _, z = model.encode(chunk, noise=tf.zeros([len(chunk), model.preset.z_dim]), training=bool(batch_size))
        if batch_size:  # sVAE-r's decoder batch in training: [z_p; z_q], z_p ~ p(z)
            z_p = tf.random.stateless_normal(z.shape, seed=(0, 0))
            params = model.decoder(tf.concat([z_p, z], axis=0), training=True)[len(chunk):]
            recon.append(tf.sigmoid(params).numpy())  # Bernoulli means
        else:
            recon.append(model.decode_mean(z).numpy())
    return float(np.sqrt(np.mean((255.0 * (x - np.concatenate(recon))) ** 2)))


def _quality_of(model, workdir, data_dir):
    """IS (2 splits) and FID of the 40 samples `_args` asks for, against the first 50 test images."""
    extractor = classifiers.MnistClassifier.load(os.fspath(workdir / "clf.keras"))
    samples = np.concatenate([np.asarray(b) for b in evaluate.generated_batches(model, 40, 20, seed=0)])
    assert samples.shape == (40, 28, 28, 1)
    logits, features = (np.asarray(a, np.float64) for a in extractor(samples))
    real = np.concatenate(list(data.load_images("mnist", "test", batch_size=50, take=50, data_dir=data_dir)))
    _, real_features = extractor(real)
    is_mean, is_std = metrics.inception_score(logits, 2)
    fid = metrics.frechet_distance_from_features(features, np.asarray(real_features, np.float64))
    return {"inception_score": is_mean, "inception_score_std": is_std, "fid": fid, "num_samples": 40}


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
    # RMSE, IS and FID are those of the run's model on the images the flags name.
    model = runs.load_model(os.fspath(workdir / "svae_r"))
    assert saved["rmse"] == pytest.approx(_rmse_of(model, data_dir, 30), rel=1e-5)
    for key, value in _quality_of(model, workdir, data_dir).items():
        assert saved[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    # (last: training mode updates this model's moving averages)
    assert saved["rmse_batch_stats"] == pytest.approx(_rmse_of(model, data_dir, 30, batch_size=20), rel=1e-5)
    assert saved["rmse_batch_stats"] != pytest.approx(saved["rmse"], rel=1e-6)  # batch norm's two modes differ
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


def test_batch_norm_statistics_recomputed_before_scoring(workdir, data_dir, tmp_path):
    """--batch_norm_batches=2 recomputes the moving statistics from two training batches of
    the train step's forward passes (model.recompute_batch_norm_statistics) before every
    score, says so in the JSON, and leaves the checkpoint alone."""
    base = evaluate.run(_args(workdir, data_dir, "svae_r", "--no_quality", f"--json={tmp_path / 'a.json'}"))
    recomputed = evaluate.run(_args(workdir, data_dir, "svae_r", "--no_quality", "--batch_norm_batches=2",
                                    f"--json={tmp_path / 'b.json'}"))
    assert recomputed["batch_norm_batches"] == 2 and "batch_norm_batches" not in base
    model = runs.load_model(os.fspath(workdir / "svae_r"))
    batches = data.load_images("mnist", "train", batch_size=20, data_dir=data_dir,
                               drop_remainder=True, take=40)
    model.recompute_batch_norm_statistics(batches, seed=0)
    assert recomputed["rmse"] == pytest.approx(_rmse_of(model, data_dir, 30), rel=1e-5)
    assert recomputed["rmse"] != pytest.approx(base["rmse"], rel=1e-6)
    again = evaluate.run(_args(workdir, data_dir, "svae_r", "--no_quality", f"--json={tmp_path / 'c.json'}"))
    assert again["rmse"] == pytest.approx(base["rmse"], rel=1e-6)  # the checkpoint was not changed


def test_batch_norm_population_benchmark_reports_both_statistics(workdir, data_dir, tmp_path):
    """benchmarks.batch_norm_population: the inference-mode RMSE with the checkpoint's moving
    averages and after recomputing them, each equal to a direct computation."""
    import subprocess
    import sys

    from benchmarks import report

    subprocess.run([sys.executable, "-m", "benchmarks.batch_norm_population", f"--model_dir={workdir / 'svae_r'}",
                    "--batches=2", "--batch_size=10", "--num_images=20", f"--data_dir={data_dir}",
                    f"--output={tmp_path / 'bn'}"], check=True, capture_output=True, cwd=REPO,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert report.check_report(tmp_path / "bn.json") == []
    (row,) = json.loads((tmp_path / "bn.json").read_text())["runs"]
    model = runs.load_model(os.fspath(workdir / "svae_r"))
    assert row["moving_averages"]["inference"] == pytest.approx(_rmse_of(model, data_dir, 20), rel=1e-5)
    test = data.load_images("mnist", "test", batch_size=10, data_dir=data_dir, take=20)
    neg_elbo = -np.mean(np.concatenate([model.elbo(b, seed=i).numpy() for i, b in enumerate(test)]))
    terms = row["moving_averages"]["elbo_terms"]
    assert terms["neg_elbo"] == pytest.approx(neg_elbo, rel=1e-5)
    assert terms["neg_elbo"] == pytest.approx(terms["log_qz"] - terms["log_px_given_z"] - terms["log_pz"])
    batches = data.load_images("mnist", "train", batch_size=10, data_dir=data_dir,
                               drop_remainder=True, take=20)
    assert model.recompute_batch_norm_statistics(batches, seed=0) == row["batches"] == 2
    assert row["recomputed"]["inference"] == pytest.approx(_rmse_of(model, data_dir, 20), rel=1e-5)
    assert row["recomputed"]["inference"] != pytest.approx(row["moving_averages"]["inference"], rel=1e-6)


def test_encoder_refit_is_scored_after_everything_else(workdir, data_dir, tmp_path):
    """--refit_encoder_steps refits the encoder (svae_tf.evaluation.refit on the training split in
    order, noise seed --seed) after the other numbers, which stay those of the checkpoint,
    and scores NLL, ELBO and RMSE again under "refit"; samples, IS and FID are the decoder's."""
    base = evaluate.run(_args(workdir, data_dir, "svae_r", f"--json={tmp_path / 'a.json'}"))
    out = evaluate.run(_args(workdir, data_dir, "svae_r", "--refit_encoder_steps=3",
                             "--refit_learning_rate=0.01", f"--json={tmp_path / 'b.json'}"))
    for key in ("nll_nats", "elbo", "rmse", "inception_score", "fid"):
        assert out[key] == pytest.approx(base[key], rel=1e-6), key
    got = out["refit"]
    assert (got["steps"], got["learning_rate"], got["batch_size"]) == (3, 0.01, 20)
    assert got["nll_nats"] != pytest.approx(base["nll_nats"], rel=1e-6)
    assert got["nll_nats"] <= -got["elbo"] + 1e-6
    model = runs.load_model(os.fspath(workdir / "svae_r"))
    batches = data.load_images("mnist", "train", batch_size=20, data_dir=data_dir, drop_remainder=True)
    population = data.batch_norm_batches("mnist", refit.BATCH_NORM_BATCHES, batch_size=20, data_dir=data_dir)
    refit.refit_encoder(model, batches, 3, 0.01, batch_norm_batches=population, seed=0)
    assert got["rmse"] == pytest.approx(_rmse_of(model, data_dir, 30), rel=1e-5)
    again = evaluate.run(_args(workdir, data_dir, "svae_r", "--no_quality", f"--json={tmp_path / 'c.json'}"))
    assert again["rmse"] == pytest.approx(base["rmse"], rel=1e-6)  # the checkpoint was not changed


def test_decoder_only_variant_reports_null_nll_and_rmse(workdir, data_dir):
    results = evaluate.run(_args(workdir, data_dir, "gan"))
    for key in ("nll_nats", "nll_bits_per_dim", "elbo", "rmse", "rmse_batch_stats"):
        assert results[key] is None
    model = runs.load_model(os.fspath(workdir / "gan"))
    for key, value in _quality_of(model, workdir, data_dir).items():
        assert results[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert "n/a" in evaluate.markdown_row(results)


# Flags of trainers.classifier for a tiny classifier (a few steps on a few hundred images).
TINY_CLASSIFIER = ["--take=256", "--epochs=1", "--steps_per_epoch=4", "--batch_size=64", "--test_take=100",
                   "--splits=2", "--verbose=0"]


def _default_classifier_args(workdir, data_dir, tmp_path, *extra, classifier=None):
    """`_args` with the default classifier (no --classifier) under a cache dir of the test's own."""
    args = _args(workdir, data_dir, "svae_r", f"--json={tmp_path / 'eval.json'}", *extra)
    args.classifier, args.cache_dir = classifier, os.fspath(tmp_path / "cache")
    return args


def test_the_default_mnist_classifier_is_trained_on_first_use_then_reused(workdir, data_dir, tmp_path, capsys,
                                                                         monkeypatch):
    """Without a classifier at the default path, evaluation trains it there (trainers.classifier.run),
    says so with its test accuracy, records its provenance and goes on; the next evaluation
    (here through $SVAE_TF_CACHE_DIR) reuses the file without training."""
    path = tmp_path / "cache" / classifiers.MNIST_CLASSIFIER_FILE
    first = evaluate.run(_default_classifier_args(workdir, data_dir, tmp_path), classifier_flags=TINY_CLASSIFIER)
    out = capsys.readouterr().out
    assert f"No MNIST classifier for the Inception score and FID at {path}: training it once" in out
    assert "test accuracy" in out and "Continuing the evaluation" in out and "| svae_r | svae_r |" in out
    with open(classifiers.provenance_path(os.fspath(path))) as f:
        provenance = json.load(f)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert provenance["sha256"] == sha and 0.0 <= provenance["test_accuracy"] <= 1.0
    assert provenance["trained_by"] == "python -m trainers.evaluate (first use)"
    assert provenance["command"].startswith(f"python -m trainers.classifier --output={path} --epochs=1")
    assert provenance["num_test"] == 100 and provenance["steps_per_epoch"] == 4
    info = first["classifier"]
    assert info["path"] == os.fspath(path) and info["sha256"] == sha
    assert info["provenance"]["test_accuracy"] == provenance["test_accuracy"]
    assert info["provenance"]["sha256_matches"] and info["provenance"]["command"] == provenance["command"]
    assert not [p for p in os.listdir(path.parent) if ".tmp" in p]

    # Second evaluation: the same file, no training (it would raise), the same numbers.
    mtime = path.stat().st_mtime_ns
    def no_training(*args, **kwargs):
        raise AssertionError("the classifier was trained again")

    monkeypatch.setattr(classifier_trainer, "train", no_training)
    monkeypatch.setenv(classifiers.CACHE_DIR_ENV, os.fspath(tmp_path / "cache"))
    args = _default_classifier_args(workdir, data_dir, tmp_path)
    args.cache_dir = None
    second = evaluate.run(args, classifier_flags=TINY_CLASSIFIER)
    assert path.stat().st_mtime_ns == mtime and "training it once" not in capsys.readouterr().out
    for key in ("nll_nats", "elbo", "rmse", "inception_score", "fid", "real_inception_score"):
        assert second[key] == first[key], key  # training in-process did not change the evaluation
    assert second["classifier"] == info


def test_an_interrupted_first_use_training_leaves_no_classifier(workdir, data_dir, tmp_path, monkeypatch):
    """Training that stops (here: KeyboardInterrupt in the test-set evaluation, after the
    model was saved under its temporary name) leaves nothing at the default path, so the
    next evaluation trains again instead of loading half a classifier."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(classifier_trainer, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(_default_classifier_args(workdir, data_dir, tmp_path), classifier_flags=TINY_CLASSIFIER)
    assert os.listdir(tmp_path / "cache") == []
    assert not (tmp_path / "eval.json").exists()


def test_an_explicit_missing_classifier_is_an_error_not_trained(workdir, data_dir, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained to the user's path")

    monkeypatch.setattr(classifier_trainer, "train", no_training)
    missing = tmp_path / "mine" / "clf.keras"
    for named in (os.fspath(missing), "~/" + os.path.relpath(missing, os.path.expanduser("~"))):
        args = _default_classifier_args(workdir, data_dir, tmp_path, classifier=named)
        with pytest.raises(FileNotFoundError) as err:
            evaluate.run(args, classifier_flags=TINY_CLASSIFIER)
        assert os.fspath(missing) in str(err.value)
    assert not missing.parent.exists() and not (tmp_path / "cache").exists()


def test_no_classifier_is_trained_when_none_is_needed(workdir, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(classifier_trainer, "train", lambda *a, **k: pytest.fail("trained"))
    args = _default_classifier_args(workdir, data_dir, tmp_path, "--no_quality")
    assert evaluate.ensure_default_classifier("mnist", args, os.fspath(tmp_path / "cache")) is None
    args = _default_classifier_args(workdir, data_dir, tmp_path, classifier="inception_v3")
    assert evaluate.ensure_default_classifier("mnist", args, os.fspath(tmp_path / "cache")) is None
    args = _default_classifier_args(workdir, data_dir, tmp_path)
    assert evaluate.ensure_default_classifier("cifar10", args, os.fspath(tmp_path / "cache")) is None


def test_clear_errors(workdir, data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate.run(evaluate.parse_args([f"--model_dir={tmp_path / 'missing'}"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        evaluate.run(evaluate.parse_args([f"--model_dir={tmp_path / 'empty'}"]))
    runs.save_config(os.fspath(tmp_path / "untrained"), runs.ModelConfig(preset_overrides=TINY_MNIST))
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        evaluate.run(evaluate.parse_args([f"--model_dir={tmp_path / 'untrained'}"]))
    with pytest.raises(FileNotFoundError, match="trainers.classifier") as err:
        evaluate.run(_args(workdir, data_dir, "svae_r", f"--classifier={tmp_path / 'none.keras'}"))
    assert os.fspath(tmp_path / "none.keras") in str(err.value) and not (tmp_path / "none.keras").exists()
    for bad, named in ((["--iw_samples=4"], "model_dir"), (["--model_dir=x", "--iw_samples=many"], "iw_samples"),
                       (["--model_dir=x", "extra"], "Unexpected arguments: extra")):
        with pytest.raises(app.UsageError, match=named):
            evaluate.parse_args(bad)


def test_the_program_exits_with_status_1_and_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainers.evaluate", f"--model_dir={tmp_path / 'missing'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--model_dir" in errors[0] and "Traceback" not in proc.stderr, proc.stderr


def test_rmse_of_a_perfect_reconstruction_is_zero():
    batches = [np.random.default_rng(i).uniform(size=(5, 6, 6, 1)) for i in range(3)]
    assert metrics.streamed_rmse_255(lambda x: x, batches) == 0.0
    # A constant error of 0.1 on every pixel is 25.5 on the 0-255 scale.
    assert metrics.streamed_rmse_255(lambda x: x + 0.1, batches) == pytest.approx(25.5)
    # Global mean over all pixels, not a mean of per-batch RMSEs.
    uneven = [np.zeros((1, 2, 2, 1)), np.zeros((3, 2, 2, 1))]
    errors = iter([1.0 / 255, 0.0])
    value = metrics.streamed_rmse_255(lambda x: x + next(errors), uneven)
    assert value == pytest.approx(math.sqrt(1 / 4))


def test_rmse_is_and_fid_of_four_images_computed_by_hand():
    """Four 2x2 images through the functions trainers.evaluate uses, against numbers by hand."""
    images = np.broadcast_to(np.array([0.1, 0.3, 0.5, 0.7])[:, None, None, None], (4, 2, 2, 1)).copy()
    # The reconstruction is off by 0.2 (51 levels) on every pixel of image 0 and exact elsewhere:
    # sqrt(4 * 51^2 / 16) = 25.5 (a mean of the two batch RMSEs would be 18.03, of the
    # four image RMSEs 12.75).
    wrong = {0.1: 0.2}
    recon = lambda x: x + np.vectorize(lambda v: wrong.get(round(float(v), 6), 0.0))(x)  # noqa: E731
    assert metrics.streamed_rmse_255(recon, [images[:2], images[2:]]) == pytest.approx(25.5, rel=1e-12)

    # A classifier that is sure image 0 is class 0 and image 2 class 1, and undecided on 1 and 3:
    # p(y) = (1/2, 1/2), KL(p(y|x) || p(y)) = ln 2, 0, ln 2, 0, so IS = exp(ln 2 / 2) = sqrt(2).
    # Its 1-d feature of image i is i; the real images' features are 0, 0, 2, 2. Means 1.5 and 1,
    # unbiased variances 5/3 and 4/3: FID = 0.5^2 + 5/3 + 4/3 - 2 sqrt(20/9) = 3.25 - 4 sqrt(5) / 3.
    logits = np.array([[0.0, -1e3], [0.0, 0.0], [-1e3, 0.0], [0.0, 0.0]])

    def extractor(batch):
        index = np.round((np.asarray(batch)[:, 0, 0, 0] - 0.1) / 0.2).astype(int)
        return logits[index], index[:, None].astype(np.float64)

    quality = classifiers.sample_quality(extractor, [images[:2], images[2:]], np.array([[0.0], [0.0], [2.0], [2.0]]),
                                         num_splits=1)
    assert quality["inception_score"] == pytest.approx(math.sqrt(2.0), rel=1e-12)
    assert quality["inception_score_std"] == 0.0
    assert quality["fid"] == pytest.approx(3.25 - 4.0 * math.sqrt(5.0) / 3.0, rel=1e-9)
    assert quality["num_samples"] == 4


def test_model_reconstruction_uses_the_posterior_mean(workdir):
    model = runs.load_model(os.fspath(workdir / "svae_r"))
    x = tf.random.stateless_uniform([3, 28, 28, 1], seed=(0, 3))
    recon = likelihood.reconstruct(model, x)
    _, z = model.encode(x, noise=tf.zeros([3, 4]))
    np.testing.assert_allclose(recon, model.decode_mean(z), atol=1e-6)
    np.testing.assert_allclose(recon, likelihood.reconstruct(model, x), atol=0)  # deterministic
