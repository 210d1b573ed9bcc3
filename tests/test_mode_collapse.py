"""Tests of benchmarks/mode_collapse.py: its run specs, its statistic, and a two-step run."""

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import mode_collapse


def test_parse_run_fills_defaults_and_converts_types():
    from svae_tf.model import config

    model, train = mode_collapse.parse_run("ali,beta1=0.5,n_disc=2")
    assert model == config.ModelConfig(variant="ali", preset="mnist", n_disc=2)
    assert train == {"beta1": 0.5}
    model, _ = mode_collapse.parse_run("gan,preset=mnist_a1,decoder_dense_batch_norm=true,shared_samples=True")
    assert (model.preset, model.preset_overrides, model.shared_samples) == (
        "mnist_a1", {"decoder_dense_batch_norm": True}, True)
    model, train = mode_collapse.parse_run("svae_r_lx,lam_z=0,z_dim=8,batch_norm_batches=0", seed=3)
    assert (model.lam_z, model.preset_overrides, model.seed, train) == (0.0, {"z_dim": 8}, 3, {"batch_norm_batches": 0})
    model, _ = mode_collapse.parse_run("svae_r,latent_x=draw")
    assert model.latent_x == "draw"
    with pytest.raises(ValueError, match="latent_x=sample"):
        mode_collapse.parse_run("svae_r,latent_x=sample")


@pytest.mark.parametrize("spec, named", [("vea", "vea"), ("ali,lr=1", "lr=1"), ("svae,beta1", "beta1"),
                                         ("gan,preset=cifar10", "preset"), ("svae,lam=-1", "lam"),
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
    """Four runs on the validation split (--eval_split=validation: trained on
    train_without_validation, held-out numbers from validation; the JSON and the table say so)."""
    out = tmp_path / "probe.json"  # --output=NAME writes NAME.json and NAME.md
    subprocess.run(
        [sys.executable, "-m", "benchmarks.mode_collapse", "--run=gan,batch_norm_batches=1", "--run=ali,n_disc=2,batch_norm_batches=2",
         "--run=vae,batch_norm_batches=1", "--run=gan,batch_norm_batches=1", "--steps=2",
         "--every=1", "--probe_steps=2", "--quality_samples=0", "--take=512", f"--data_dir={data_dir}",
         "--eval_split=validation", f"--output={tmp_path / 'probe'}"],
        check=True, capture_output=True,
    )
    report = json.loads(out.read_text())
    assert report["runs"][0]["train_split"] == "train_without_validation"
    assert (report["settings"]["eval_split"], report["settings"]["train_split"]) == ("validation", "train_without_validation")
    assert report["settings"]["splits"] == "train[:50000] / train[50000:]"
    assert report["runs"][1]["model_config"]["n_disc"] == 2  # a run spec reaches the model
    assert [r["run"] for r in report["runs"]] == ["gan,batch_norm_batches=1", "ali,n_disc=2,batch_norm_batches=2",
                                                  "vae,batch_norm_batches=1", "gan,batch_norm_batches=1"]
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
    vae = report["runs"][2]  # no discriminator: no d_loss, no frozen-G probe; an ELBO
    assert vae["frozen_d_loss"] is None and vae["trajectory"][-1]["d_loss"] is None
    assert report["runs"][0]["neg_elbo"] is None and 0 < vae["neg_elbo"] < 784 * 5
    assert 0 < report["real_sample_spread"] < 0.5
    text = (tmp_path / "probe.md").read_text()
    assert "Trained on split `train_without_validation`" in text and "real validation images" in text
    assert "| ali,n_disc=2,batch_norm_batches=2 |" in text
    assert f"{rmse['inference']:.1f} / {rmse['batch_stats']:.1f}" in text
    from PIL import Image

    grid = Image.open(tmp_path / report["runs"][1]["samples_png"])  # 64 samples, 8 x 8 of 28 x 28
    assert report["runs"][1]["samples_png"] == "probe_samples/1.png" and grid.size == (224, 224)
    assert "[1](probe_samples/1.png)" in (tmp_path / "probe.md").read_text()
    from benchmarks import report as report_lib

    assert report_lib.check_report(tmp_path / "probe.json") == []  # provenance of benchmarks.report


def test_a_screen_run_is_the_trainer_run_of_the_same_settings(tmp_path, data_dir):
    """The screen trains through `train_lib.train`: its first run and the trainer command
    with the same settings end with bit-identical weights."""
    import trainer_testlib as tl

    spec = ("svae_r_lx,lam_z=0,shared_samples=true,z_dim=8,beta1=0.5,g_learning_rate=4e-4,d_learning_rate=4e-4,"
            "batch_norm_batches=1")
    subprocess.run(
        [sys.executable, "-m", "benchmarks.mode_collapse", f"--run={spec}", "--steps=2", "--every=1",
         "--probe_steps=1", "--quality_samples=0", "--batch_size=16", "--take=512", f"--data_dir={data_dir}",
         f"--output={tmp_path / 'probe'}"],
        check=True, capture_output=True, cwd=tl.REPO, env=tl.env(),
    )
    screen = json.loads((tmp_path / "probe.json").read_text())["runs"][0]
    proc = tl.check_ok(tl.run(
        "mnist", "--variant=svae_r_lx", "--lam_z=0", "--shared_samples", "--z_dim=8", "--beta1=0.5",
        "--g_learning_rate=4e-4", "--d_learning_rate=4e-4", "--batch_size=16", "--steps_per_epoch=1",
        "--epochs=2", "--eval_batches=1", "--batch_norm_batches=1", "--take=512", "--verbose=0",
        f"--model_dir={tmp_path / 'run'}"))
    assert screen["weights_sha256"] == tl.finished(proc.stdout)[3]
