"""Tests of benchmarks/mode_collapse.py: its run specs, its statistic, and a two-step run."""

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import mode_collapse


def test_parse_run_fills_defaults_and_converts_types():
    variant, settings = mode_collapse.parse_run("ali,beta1=0.5,n_disc=2")
    assert variant == "ali"
    assert settings == dict(preset="mnist", beta1=0.5, g_learning_rate=1e-4, d_learning_rate=1e-4,
                            lr_decay_steps=0, lr_decay_start=0, n_disc=2, discriminator_dropout=None, lam=0.3, lam_z=None, latent_x="mean", r1_weight=0.0, instance_noise=0.0,
                            instance_noise_steps=10000, ema_decay=0.0, shared_samples=False, batch_norm_batches=0,
                            decoder_dense_batch_norm=None, disc_x_pooling=None)
    _, settings = mode_collapse.parse_run("gan,preset=mnist_a1,decoder_dense_batch_norm=true,shared_samples=True")
    assert (settings["preset"], settings["decoder_dense_batch_norm"], settings["shared_samples"]) == (
        "mnist_a1", True, True)


def test_learning_rates_decay_per_step_for_both_optimizers():
    """Half-way through the decay after 9 steps: the discriminator's schedule counts its
    n_disc = 2 updates per step. Without lr_decay_steps the rates are constant."""
    import keras

    _, settings = mode_collapse.parse_run("svae,g_learning_rate=2e-4,n_disc=2,lr_decay_steps=10,lr_decay_start=4")
    rates = []
    for optimizer, updates in zip(mode_collapse.make_optimizers(settings), (9, 18)):
        optimizer.build([keras.Variable(np.zeros(1, np.float32))])
        optimizer.iterations.assign(updates)
        rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    assert rates == pytest.approx([1e-4, 5e-5], rel=1e-6)
    g_optimizer, _ = mode_collapse.make_optimizers(mode_collapse.parse_run("svae")[1])
    assert float(keras.ops.convert_to_numpy(g_optimizer.learning_rate)) == pytest.approx(1e-4)


@pytest.mark.parametrize("spec, named", [("vea", "vea"), ("ali,lr=1", "lr=1"), ("svae,beta1", "beta1"),
                                         ("gan,preset=cifar10", "preset"),
                                         ("gan,decoder_dense_batch_norm=maybe", "maybe")])
def test_parse_run_names_the_bad_entry(spec, named):
    with pytest.raises(ValueError, match=named):
        mode_collapse.parse_run(spec)


def test_spread_is_zero_for_one_repeated_image_and_positive_otherwise():
    rng = np.random.default_rng(0)
    image = rng.random((1, 4, 4, 1))
    assert mode_collapse.spread(np.repeat(image, 8, axis=0)) < 1e-12
    assert mode_collapse.spread(rng.random((8, 4, 4, 1))) > 0.1


def test_two_step_run_writes_the_table_and_json(tmp_path, data_dir):
    out = tmp_path / "probe.json"  # --output=NAME writes NAME.json and NAME.md
    subprocess.run(
        [sys.executable, "-m", "benchmarks.mode_collapse", "--run=gan", "--run=ali,n_disc=2,batch_norm_batches=2", "--run=vae", "--run=gan", "--steps=2",
         "--every=1", "--probe_steps=2", "--quality_samples=0", f"--data_dir={data_dir}",
         f"--output={tmp_path / 'probe'}"],
        check=True, capture_output=True,
    )
    report = json.loads(out.read_text())
    assert [r["run"] for r in report["runs"]] == ["gan", "ali,n_disc=2,batch_norm_batches=2", "vae", "gan"]
    # Every run trains on the same data order: the repeated run repeats the first one.
    first, again = report["runs"][0], report["runs"][3]
    for point, repeat in zip(first["trajectory"], again["trajectory"], strict=True):
        assert repeat == pytest.approx(point, rel=1e-5)
    assert again["frozen_d_loss"] == pytest.approx(first["frozen_d_loss"], rel=1e-5)
    assert [p["step"] for p in report["runs"][1]["trajectory"]] == [1, 2]
    assert report["runs"][0]["zq_spread"] is None and report["runs"][1]["zq_spread"] > 0
    assert report["runs"][0]["rmse"] is None
    rmse = report["runs"][1]["rmse"]  # decoder in inference mode and with batch statistics
    assert set(rmse) == {"inference", "batch_stats"} and all(0 < v < 255 for v in rmse.values())
    # Recomputed statistics (batch_norm_batches=2) move the inference-mode RMSE, not the
    # batch-statistics one; "before -> after" in the table.
    before = report["runs"][1]["rmse_before_recompute"]
    assert before["batch_stats"] == pytest.approx(rmse["batch_stats"], rel=1e-5)
    assert before["inference"] != pytest.approx(rmse["inference"], rel=1e-4)
    assert report["runs"][2]["rmse_before_recompute"] is None
    vae = report["runs"][2]  # no discriminator: no d_loss, no frozen-G probe; an ELBO
    assert vae["frozen_d_loss"] is None and vae["trajectory"][-1]["d_loss"] is None
    assert report["runs"][0]["neg_elbo"] is None and 0 < vae["neg_elbo"] < 784 * 5
    assert 0 < report["real_sample_spread"] < 0.5
    text = (tmp_path / "probe.md").read_text()
    assert "| ali,n_disc=2,batch_norm_batches=2 |" in text
    assert f"{before['inference']:.1f} / {before['batch_stats']:.1f} -> {rmse['inference']:.1f} /" in text
    from PIL import Image

    grid = Image.open(tmp_path / report["runs"][1]["samples_png"])  # 64 samples, 8 x 8 of 28 x 28
    assert report["runs"][1]["samples_png"] == "probe_samples/1.png" and grid.size == (224, 224)
    assert "[1](probe_samples/1.png)" in (tmp_path / "probe.md").read_text()
    from benchmarks import report as report_lib

    assert report_lib.check_report(tmp_path / "probe.json") == []  # provenance of benchmarks.report


def test_validation_split_run_names_its_splits(tmp_path, data_dir):
    """--eval_split=validation: trained on train_without_validation, held-out numbers from
    validation; the JSON and the table say so. A latent_x run spec reaches the model."""
    subprocess.run(
        [sys.executable, "-m", "benchmarks.mode_collapse", "--run=svae_r,latent_x=draw", "--steps=1", "--every=1",
         "--probe_steps=1", "--quality_samples=0", "--eval_split=validation", f"--data_dir={data_dir}",
         f"--output={tmp_path / 'v'}"],
        check=True, capture_output=True,
    )
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["settings"]["eval_split"] == "validation"
    assert report["settings"]["train_split"] == "train_without_validation"
    assert report["settings"]["splits"] == "train[:50000] / train[50000:]"
    assert report["runs"][0]["settings"]["latent_x"] == "draw"
    assert "Trained on split `train_without_validation`" in (tmp_path / "v.md").read_text()
    assert "real validation images" in (tmp_path / "v.md").read_text()
    with pytest.raises(ValueError, match="latent_x=sample"):
        mode_collapse.parse_run("svae_r,latent_x=sample")
