"""Tests of benchmarks/reproduce_mnist.py: its report's columns, its verdicts, its budget
arithmetic (minutes or updates), the configs it builds, a tiny end-to-end run that resumes,
and its in-process training against the weights of the trainer's command line."""

import ast
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from absl import app

from benchmarks import report, reproduce_mnist


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_report_puts_neg_elbo_beside_the_papers_nll_and_iwae_apart():
    args = reproduce_mnist.parse_args(["--iw_samples=50"])
    evaluation = {"elbo": -95.125, "nll_nats": 90.5, "nll_nats_stderr": 0.3, "rmse": 20.0, "rmse_batch_stats": 19.5,
                  "inception_score": 8.0, "inception_score_std": 0.1, "fid": 12.0, "iw_samples": 50,
                  "evaluated_at": {"commit": "e" * 40, "dirty": False}}
    ledger = {"epochs": 3, "steps": 1800, "seconds": 600.0, "samples": {"spread": 0.2}, "invocations": [
        {"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True},
        {"commit": "b" * 40, "dirty": True}]}
    gan = {"elbo": None, "nll_nats": None, "rmse": None, "inception_score": 7.5, "inception_score_std": 0.2,
           "fid": 20.0}
    text = reproduce_mnist.render({"svae_r": evaluation, "vae": dict(evaluation, evaluated_at=None), "gan": gan},
                                  {"svae_r": ledger, "vae": {"invocations": [{"seconds": 1.0}]}, "gan": ledger},
                                  {}, args)
    lines = text.splitlines()
    header = _cells(next(line for line in lines if line.startswith("| model | NLL")))
    row = dict(zip(header, _cells(next(line for line in lines if line.startswith("| sVAE-r |")))))
    columns = list(row)
    assert columns.index("paper NLL (nats, bound (1))") == columns.index("-ELBO (nats)") + 1
    assert row["-ELBO (nats)"] == "95.12" and row["paper NLL (nats, bound (1))"] == "81.14"
    assert (row["RMSE"], row["RMSE, batch stats"]) == ("20.00", "19.50")
    assert row["NLL = -IWAE, K = 50 (nats)"] == "90.50 ± 0.30" and row["spread"] == "0.200"
    assert row["trained at"] == "aaaaaaa, bbbbbbb+dirty" and row["evaluated at"] == "eeeeeee"
    vae = dict(zip(header, _cells(next(line for line in lines if line.startswith("| VAE |")))))
    assert vae["trained at"] == vae["evaluated at"] == "not recorded"
    assert vae["paper NLL (nats, bound (1))"] == "—"
    gan_row = dict(zip(header, _cells(next(line for line in lines if line.startswith("| GAN |")))))
    assert gan_row["NLL = -IWAE, K = 50 (nats)"] == gan_row["-ELBO (nats)"] == gan_row["RMSE"] == "n/a"
    assert gan_row["paper IS"] == "8.34 ± .03"
    assert "the paper used Adam, learning rate 1e-4" in text.replace("The paper used", "the paper used")
    assert "![IS and FID vs training minutes and updates](mnist_curves.png)" in text
    assert "![GAN samples](mnist_samples/gan.png)" in text
    rows = reproduce_mnist.table_rows({"svae_r": evaluation}, {"svae_r": ledger})
    assert rows["svae_r"]["neg_elbo_nats"] == 95.125 and rows["svae_r"]["nll_nats"] == 90.5


def _table():
    def row(elbo, rmse, is_mean, fid, spread=0.2):
        return {"neg_elbo_nats": elbo, "rmse": rmse, "inception_score": is_mean, "inception_score_std": 0.05,
                "fid": fid, "spread": spread}

    return {"vae": row(90.0, 40.0, 7.0, 30.0), "gan": row(None, None, 7.2, 25.0),
            "wgan_gp": row(None, None, 7.1, 26.0), "ali": row(140.0, 80.0, 7.3, 20.0),
            "svae": row(95.0, 70.0, 7.6, 15.0), "svae_r": dict(row(93.0, 39.0, 8.5, 12.0), rmse_batch_stats=40.0)}


def _verdicts(table):
    return {c["claim"]: c for c in reproduce_mnist.claims(table)}


def test_claims_are_met_or_missed_by_the_numbers_margin():
    verdicts = _verdicts(_table())
    assert all(c["margin"] >= 0 and c["verdict"].startswith("met by") for c in verdicts.values()), verdicts
    assert len(verdicts) == 10 + 6  # 10 claims on the numbers, one no-collapse claim per variant
    assert verdicts["sVAE-r's IS is above the VAE's"]["margin"] == pytest.approx(1.5)
    assert verdicts["sVAE-r's IS is at least 8"]["verdict"] == "met by 0.50"
    assert verdicts["sVAE-r's FID is below the VAE's"]["margin"] == pytest.approx(18.0)
    assert verdicts["sVAE-r's RMSE is at most 0.5 x ALI's"]["margin"] == pytest.approx(1.0)
    assert verdicts["sVAE-r's RMSE is at most 0.5 x ALI's"]["value"] == pytest.approx(39.0 / 80.0)
    assert verdicts["sVAE-r's -ELBO is within 5 nats of the VAE's"]["margin"] == pytest.approx(2.0)
    assert verdicts["sVAE's IS is at least 7.5"]["verdict"] == "met by 0.10"
    batch_norm = verdicts["sVAE-r's inference-mode RMSE is within 5% of its batch-statistics RMSE"]
    assert batch_norm["value"] == pytest.approx(1 / 40) and batch_norm["margin"] == pytest.approx(0.05 - 1 / 40)
    assert verdicts["WGAN-GP's IS is at least 7"]["verdict"] == "met by 0.10"
    assert verdicts["ALI does not collapse"]["margin"] == pytest.approx(0.08)


def test_paper_claims_are_orderings_kept_apart_from_the_targets():
    paper = {c["claim"]: c["verdict"] for c in reproduce_mnist.paper_claims(_table())}
    assert paper["sVAE-r reconstructs better than ALI (RMSE below ALI's)"] == "holds"
    assert paper["sVAE-r's NLL is below sVAE's"] == "holds"                         # 93 < 95
    assert paper["sVAE-r's NLL (bound (1)) is below the normalizing flow's 85.1 nats"] == "does not hold"
    assert paper["sVAE-r's IS is above sVAE's"] == "holds"                          # 8.5 > 7.6
    assert paper["sVAE's IS is above GAN's"] == "holds"                             # 7.6 > 7.2
    table = _table()
    table["gan"]["inception_score"] = 9.0                                           # GAN ahead, as measured
    paper = {c["claim"]: c["verdict"] for c in reproduce_mnist.paper_claims(table)}
    assert paper["sVAE's IS is above GAN's"] == paper["sVAE-r's IS is above GAN's"] == "does not hold"
    del table["svae"]
    paper = {c["claim"]: c["verdict"] for c in reproduce_mnist.paper_claims(table)}
    assert paper["sVAE-r's IS is above sVAE's"] == "not measured"
    # No paper claim is a project target: the targets' thresholds are not in the paper's list.
    assert not {c["claim"] for c in reproduce_mnist.paper_claims(_table())} & set(_verdicts(_table()))


@pytest.mark.parametrize("variant, key, value, claim, verdict", [
    ("vae", "inception_score", 8.6, "sVAE-r's IS is above the VAE's", "missed by 0.10"),
    ("vae", "inception_score", 8.47, "sVAE-r's IS is above the VAE's", "met by 0.03 (within the noise, 0.05)"),
    ("vae", "fid", 11.5, "sVAE-r's FID is below the VAE's", "missed by 0.50"),
    ("svae_r", "rmse", 41.0, "sVAE-r's RMSE is at most 0.5 x ALI's", "missed by 1.00"),
    ("svae_r", "neg_elbo_nats", 95.5, "sVAE-r's -ELBO is within 5 nats of the VAE's", "missed by 0.50"),
    ("svae_r", "neg_elbo_nats", 84.0, "sVAE-r's -ELBO is within 5 nats of the VAE's", "missed by 1.00"),
    ("svae", "inception_score", 7.4, "sVAE's IS is at least 7.5", "missed by 0.10"),
    ("svae", "inception_score", 7.47, "sVAE's IS is at least 7.5", "missed by 0.03 (within the noise, 0.05)"),
    ("gan", "inception_score", 6.5, "GAN's IS is at least 7", "missed by 0.50"),
    ("wgan_gp", "spread", 0.05, "WGAN-GP does not collapse", "missed by 0.070"),
    ("wgan_gp", "spread", 0.119, "WGAN-GP does not collapse", "missed by 0.001"),
    ("ali", "rmse", None, "sVAE-r's RMSE is at most 0.5 x ALI's", "not measured"),
    ("svae_r", "rmse_batch_stats", 36.0, "sVAE-r's inference-mode RMSE is within 5% of its batch-statistics RMSE",
     "missed by 0.033"),
    ("svae_r", "rmse_batch_stats", 42.0, "sVAE-r's inference-mode RMSE is within 5% of its batch-statistics RMSE",
     "missed by 0.021"),
])
def test_each_claim_flips_when_its_number_crosses_the_target(variant, key, value, claim, verdict):
    table = _table()
    assert _verdicts(table)[claim]["verdict"].startswith("met")
    table[variant][key] = value
    changed = _verdicts(table)
    assert changed[claim]["verdict"] == verdict
    others = {c: v["verdict"] for c, v in changed.items() if c != claim}
    assert others == {c: v["verdict"] for c, v in _verdicts(_table()).items() if c != claim}


def test_refitted_encoders_get_a_bound_claim_and_a_table_of_their_own():
    """With both encoders refitted (trainers.evaluate --refit_encoder_steps) sVAE-r's bound is
    compared again, after the refit; the report shows both numbers of each refitted row."""
    table = _table()
    table["svae_r"].update(refit_neg_elbo_nats=96.0, refit_steps=500)
    assert "sVAE-r's -ELBO with its encoder refitted (500 steps, the VAE's too) is within 5 nats of the VAE's" \
        not in _verdicts(table)  # the VAE was not refitted
    table["vae"].update(refit_neg_elbo_nats=89.5, refit_steps=500)
    claim = _verdicts(table)["sVAE-r's -ELBO with its encoder refitted (500 steps, the VAE's too) is within 5 nats "
                             "of the VAE's"]
    assert claim["value"] == pytest.approx(6.5) and claim["verdict"] == "missed by 1.50"
    args = reproduce_mnist.parse_args(["--iw_samples=50"])
    evaluation = {"elbo": -102.25, "nll_nats": 92.2, "rmse": 22.6, "inception_score": 8.1, "inception_score_std": 0.1,
                  "fid": 24.5, "refit": {"steps": 500, "seconds": 35.0, "elbo": -97.91, "nll_nats": 90.46,
                                         "rmse": 21.0}}
    text = reproduce_mnist.render({"svae_r": evaluation, "vae": {"elbo": -95.6}}, {"svae_r": {}, "vae": {}}, {}, args)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| model | refit steps"))
    rows = lines[start + 2:lines.index("", start)]
    assert len(rows) == 1  # the VAE was not refitted here
    row = dict(zip(_cells(lines[start]), _cells(rows[0])))
    assert row == {"model": "sVAE-r", "refit steps": "500", "refit (s)": "35.0", "NLL": "92.20",
                   "NLL refit": "90.46", "-ELBO": "102.25", "-ELBO refit": "97.91", "RMSE": "22.60",
                   "RMSE refit": "21.00"}


def test_every_svae_r_row_gets_the_svae_r_claims():
    """svae_r's claims always (not measured without it); svae_r_lx's and svae_r_elbo's when run."""
    table = _table()
    table["svae_r"]["inception_score"] = 7.9
    assert _verdicts(table)["sVAE-r's IS is at least 8"]["verdict"] == "missed by 0.10"
    assert not any(c.startswith("sVAE-r (") for c in _verdicts(table))
    table["svae_r_lx"] = dict(table["svae_r"], neg_elbo_nats=200.0, inception_score=8.25)
    verdicts = _verdicts(table)
    assert verdicts["sVAE-r (lambda L_x)'s -ELBO is within 5 nats of the VAE's"]["verdict"] == "missed by 105.00"
    assert verdicts["sVAE-r (lambda L_x)'s IS is at least 8"]["verdict"] == "met by 0.25"
    assert verdicts["sVAE-r's -ELBO is within 5 nats of the VAE's"]["verdict"].startswith("met")
    assert "sVAE-r (exact E_q side)'s IS is at least 8" not in verdicts
    del table["svae_r"]
    assert _verdicts(table)["sVAE-r's IS is at least 8"]["verdict"] == "not measured"


def test_claims_of_variants_not_run_are_not_measured():
    table = _table()
    del table["ali"], table["wgan_gp"]
    verdicts = _verdicts(table)
    assert verdicts["sVAE-r's RMSE is at most 0.5 x ALI's"]["verdict"] == "not measured"
    assert verdicts["WGAN-GP's IS is at least 7"]["verdict"] == "not measured"
    assert "ALI does not collapse" not in verdicts


def test_step_cost_separates_start_up_from_steps():
    runs_ = [{"steps_after": 20, "seconds": 12.0}, {"steps_before": 20, "steps_after": 80, "seconds": 16.0}]
    overhead, per_step = reproduce_mnist.step_cost(runs_)
    assert overhead == pytest.approx(10.0) and per_step == pytest.approx(0.1)
    assert reproduce_mnist.step_cost(runs_[:1]) == pytest.approx((0.0, 0.6))


def test_chunks_fit_the_budget_and_the_curve_window():
    args = reproduce_mnist.parse_args(["--steps_per_epoch=100", "--curve_minutes=5"])
    fresh = {"seconds": 0.0, "invocations": []}
    assert reproduce_mnist.next_chunk(fresh, 0, 1800.0, args) == 1  # the first epoch measures the rate
    ledger = {"seconds": 40.0, "invocations": [{"steps_after": 100, "seconds": 40.0}]}  # 0.4 s/step
    assert reproduce_mnist.next_chunk(ledger, 100, 1800.0, args) == 7  # 300 s window / 40 s per epoch
    assert reproduce_mnist.next_chunk(ledger, 100, 100.0, args) == 1  # 60 s left: 1.5 epochs
    assert reproduce_mnist.next_chunk(ledger, 100, 55.0, args) == 0  # 15 s left: under half an epoch


def test_settings_apply_only_to_the_variants_that_read_them():
    """The configs are built directly (no trainer flag lists): a field a variant does not
    read keeps its default and is not part of the variant's run settings."""
    args = reproduce_mnist.parse_args(["--setting=n_disc=2", "--setting=z_dim=8", "--setting=shared_samples=true"])
    built = {v: reproduce_mnist.configs(v, args) for v in reproduce_mnist.VARIANTS}
    settings = {v: reproduce_mnist.run_settings(*built[v]) for v in reproduce_mnist.VARIANTS}
    model, train = built["vae"]
    assert (train.g_learning_rate, train.beta1, train.batch_size, train.steps_per_epoch) == (2e-4, 0.5, 100, 600)
    assert model.preset == "mnist" and model.preset_overrides == {"z_dim": 8} and model.n_disc == 1
    assert not {"d_learning_rate", "lam", "lam_z", "n_disc", "shared_samples"} & set(settings["vae"])
    for variant in ("gan", "wgan_gp", "ali", "svae"):
        assert settings[variant]["d_learning_rate"] == 2e-4 and settings[variant]["n_disc"] == 2
        assert built[variant][0].shared_samples and "lam" not in settings[variant]
    assert settings["svae_r"]["lam"] == 0.3 and settings["svae_r"]["lam_z"] is None
    assert settings["gan"]["preset_overrides"] == {"z_dim": 8}
    assert not {"model_dir", "epochs", "data_dir", "verbose"} & set(settings["svae_r"])
    assert built["svae_r"][1].model_dir == os.path.abspath(os.path.join("runs", "reproduce_mnist", "svae_r"))
    args = reproduce_mnist.parse_args(["--lam_z=0"])
    assert reproduce_mnist.configs("svae_r", args)[0].lam_z == 0.0
    assert "lam_z" not in reproduce_mnist.run_settings(*reproduce_mnist.configs("ali", args))
    for bad, message in (("n_disc", "FIELD=VALUE"), ("nope=1", "FIELD=VALUE"), ("n_disc=two", "n_disc=two"),
                         ("g_learning_rate=1e-3", "use --g_learning_rate"), ("model_dir=x", "set by this program"),
                         ("shared_samples=maybe", "not a boolean")):
        with pytest.raises(app.UsageError, match=message):
            reproduce_mnist.configs("gan", reproduce_mnist.parse_args([f"--setting={bad}"]))
    with pytest.raises(app.UsageError, match="n_disc must be >= 1"):
        reproduce_mnist.configs("gan", reproduce_mnist.parse_args(["--setting=n_disc=0"]))


def test_variant_settings_reach_their_variant_only():
    """--variant_setting trains one row as its flagfile ships it (its own learning rate too)."""
    args = reproduce_mnist.parse_args([
        "--setting=shared_samples=false", "--variant_setting=svae_r_lx:g_learning_rate=4e-4",
        "--variant_setting=svae_r_lx:shared_samples=true", "--variant_setting=svae_r_lx:lam_z=0"])
    lx_model, lx_train = reproduce_mnist.configs("svae_r_lx", args)
    assert (lx_train.g_learning_rate, lx_model.shared_samples, lx_model.lam_z) == (4e-4, True, 0.0)
    model, train = reproduce_mnist.configs("svae_r", args)
    assert (train.g_learning_rate, model.shared_samples, model.lam_z) == (2e-4, False, None)
    for bad, message in (("g_learning_rate=4e-4", "VARIANT:FIELD=VALUE"), ("nope:lam=1", "VARIANT:FIELD=VALUE"),
                         ("svae_r:model_dir=x", "set by this program"), ("svae_r:lam=x", "variant_setting")):
        with pytest.raises(app.UsageError, match=message):
            reproduce_mnist.configs("svae_r", reproduce_mnist.parse_args([f"--variant_setting={bad}"]))


def test_ledgers_of_trainer_subprocess_runs_read_as_their_settings():
    """A ledger of the subprocess era records `trainer_flags`: read as the settings they gave."""
    args = reproduce_mnist.parse_args(["--lam_z=0", "--setting=shared_samples=true"])
    old = ["--variant=svae_r", "--steps_per_epoch=600", "--batch_size=100", "--seed=0", "--g_learning_rate=0.0002",
           "--d_learning_rate=0.0002", "--beta1=0.5", "--lam=0.3", "--lam_z=0.0", "--eval_batches=10",
           "--shared_samples"]
    new = reproduce_mnist.run_settings(*reproduce_mnist.configs("svae_r", args))
    assert reproduce_mnist.settings_differences(reproduce_mnist.settings_from_trainer_flags(old), new) == {}
    differences = reproduce_mnist.settings_differences(
        reproduce_mnist.settings_from_trainer_flags(old[:-1] + ["--noshared_samples"]), new)
    assert differences == {"shared_samples": (False, True)}
    # A field the ledger does not know (added to the configs later) counts as its default.
    assert reproduce_mnist.settings_differences({k: v for k, v in new.items() if k != "ema_decay"}, new) == {}


def test_steps_budget_chunks_end_at_exactly_the_updates():
    args = reproduce_mnist.parse_args(["--steps_per_epoch=100", "--steps_per_variant=1000", "--curve_minutes=5"])
    fresh = {"seconds": 0.0, "invocations": []}
    assert reproduce_mnist.next_chunk(fresh, 0, None, args) == 1  # the first epoch measures the rate
    ledger = {"seconds": 40.0, "invocations": [{"steps_after": 100, "seconds": 40.0}]}  # 0.4 s/step
    assert reproduce_mnist.next_chunk(ledger, 100, None, args) == 7  # the 300-s window
    assert reproduce_mnist.next_chunk(ledger, 700, None, args) == 3  # capped by the updates left
    assert reproduce_mnist.next_chunk(dict(ledger, seconds=1e9), 900, None, args) == 1  # time does not stop it
    assert reproduce_mnist.next_chunk(ledger, 1000, None, args) == 0
    every = reproduce_mnist.parse_args(["--steps_per_epoch=100", "--steps_per_variant=1000", "--curve_steps=300"])
    assert [reproduce_mnist.next_chunk(fresh, s, None, every) for s in (0, 300, 600, 900, 1000)] == [3, 3, 3, 1, 0]
    with pytest.raises(app.UsageError, match="multiple of --steps_per_epoch=600 .e.g. 10200"):
        reproduce_mnist._check_budget_args(reproduce_mnist.parse_args(["--steps_per_variant=10000"]))
    with pytest.raises(app.UsageError, match="--curve_steps=1000"):
        reproduce_mnist._check_budget_args(reproduce_mnist.parse_args(["--steps_per_variant=1200",
                                                                        "--curve_steps=1000"]))


def test_the_module_starts_no_subprocess():
    """Training and evaluation run in this process: the module imports no subprocess (nor
    multiprocessing, nor os.system / os.exec*)."""
    tree = ast.parse(open(reproduce_mnist.__file__).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not {"subprocess", "multiprocessing"} & imported
    calls = {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)}
    assert not [c for c in calls if c in ("os.system", "os.popen") or c.startswith(("os.exec", "os.spawn"))]


def _tiny_classifier(path):
    """An untrained classifier with the layers `MnistClassifier` reads ("features", here 16-d,
    and "logits"), saved where trainers.evaluate can load it: no training, and an FID of 16
    dimensions instead of 1024 (scipy's sqrtm of 1024 x 1024 takes a minute here)."""
    import keras

    images = keras.Input((28, 28, 1))
    features = keras.layers.Dense(16, activation="relu", name="features")(keras.layers.Flatten()(images))
    keras.Model(images, keras.layers.Dense(10, name="logits")(features)).save(path)


def test_tiny_reproduction_writes_its_report_and_resumes(tmp_path, data_dir):
    """vae and gan, one epoch of 3 steps each, a tiny classifier, tiny K: the report, its
    files and verdicts; a second invocation resumes from the ledgers without training."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFDS_DATA_DIR=data_dir)
    clf = tmp_path / "clf.keras"
    _tiny_classifier(os.fspath(clf))
    work, results = tmp_path / "work", tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks.reproduce_mnist", "--variants=vae,gan",
           "--minutes_per_variant=0.02", "--steps_per_epoch=3", "--batch_size=50", "--eval_batches=1",
           "--setting=take=500", "--setting=num_grid_images=4", "--iw_samples=2",
           "--num_nll_images=10", "--num_rmse_images=20", "--num_samples=200", "--splits=2",
           "--num_reference=200", f"--classifier={clf}", f"--cache_dir={tmp_path / 'cache'}",
           f"--work_dir={work}", f"--results={results / 'mnist'}"]
    first = subprocess.run(cmd, cwd=report.REPO, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert report.check_report(results / "mnist.json") == []
    assert report.check_results_dir(os.fspath(results)) == []
    saved = json.loads((results / "mnist.json").read_text())
    markdown = (results / "mnist.md").read_text()

    # Columns: gan has no encoder, vae has all; the commit of this run is recorded.
    commit = saved["provenance"]["commit"][:7]
    vae, gan = saved["rows"]["vae"], saved["rows"]["gan"]
    assert vae["steps"] == gan["steps"] == 3 and vae["trained_at"].startswith(commit)
    assert all(isinstance(vae[k], float) for k in ("nll_nats", "neg_elbo_nats", "rmse", "inception_score", "fid"))
    assert gan["nll_nats"] is gan["neg_elbo_nats"] is gan["rmse"] is None and isinstance(gan["fid"], float)
    # The machine's load during training is recorded per chunk and shown beside the minutes.
    (chunk,) = json.loads((work / "vae.budget.json").read_text())["invocations"]
    assert len(chunk["load_before"]) == len(chunk["load_after"]) == 3 and 0 < chunk["cpu_seconds"]
    assert vae["train_load_max"] == max(chunk["load_before"][0], chunk["load_after"][0])
    assert f"(load ≤ {vae['train_load_max']:.1f})" in markdown
    assert isinstance(saved["evaluations"]["gan"]["inception_score"], float)
    assert saved["evaluations"]["vae"]["num_samples"] == 200 and saved["evaluations"]["vae"]["iw_samples"] == 2
    # Verdicts are the claims of the saved numbers.
    assert saved["claims"] == json.loads(json.dumps(reproduce_mnist.claims(saved["rows"])))
    assert {c["verdict"] for c in saved["claims"] if "sVAE" in c["claim"]} == {"not measured"}
    assert saved["paper_claims"] == json.loads(json.dumps(reproduce_mnist.paper_claims(saved["rows"])))
    assert markdown.index("## The paper's claims") < markdown.index("## The project's targets")
    # Learning curve: one point per variant (one chunk each), in the ledger and the JSON.
    for variant in ("vae", "gan"):
        (point,) = saved["curves"][variant]
        assert point["steps"] == 3 and point["minutes"] > 0 and point["num_samples"] == 1000
        assert isinstance(point["fid"], float) and point["spread"] == saved["rows"][variant]["spread"]
        ledger = json.loads((work / f"{variant}.budget.json").read_text())
        assert ledger["curve"] == saved["curves"][variant]
        assert "does not apply" not in (work / "logs" / f"{variant}_train.log").read_text()
    # Files: the curves PNG, a grid and an npz per variant, shown in the Markdown.
    assert (results / "mnist_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![IS and FID vs training minutes and updates](mnist_curves.png)" in markdown
    from PIL import Image

    for variant in ("vae", "gan"):
        assert Image.open(results / "mnist_samples" / f"{variant}.png").size == (8 * 28, 8 * 28)
        assert f"](mnist_samples/{variant}.png)" in markdown
        with np.load(results / "mnist_samples" / f"{variant}.npz") as f:
            assert f.files == ["samples"]
            assert f["samples"].dtype == np.uint8 and f["samples"].shape == (1000, 28, 28)

    # A second invocation resumes: no trainer run, evaluations reused, the curve kept.
    ledgers = {v: json.loads((work / f"{v}.budget.json").read_text()) for v in ("vae", "gan")}
    second = subprocess.run(cmd, cwd=report.REPO, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "training to epoch" not in second.stdout and second.stdout.count("evaluation up to date") == 2
    for variant, before in ledgers.items():
        after = json.loads((work / f"{variant}.budget.json").read_text())
        assert after["invocations"] == before["invocations"] and after["curve"] == before["curve"]
    again = json.loads((results / "mnist.json").read_text())
    assert again["rows"] == saved["rows"] and again["curves"] == saved["curves"]
    assert report.check_report(results / "mnist.json") == []


def test_resuming_with_other_settings_stops(tmp_path):
    """A ledger records the trainer flags of its run; other settings stop before any training."""
    work = tmp_path / "work"
    work.mkdir()
    args = reproduce_mnist.parse_args([f"--work_dir={work}", "--g_learning_rate=1e-4"])
    old = reproduce_mnist.run_settings(*reproduce_mnist.configs("vae", reproduce_mnist.parse_args([])))
    (work / "vae.budget.json").write_text(json.dumps({"seconds": 60.0, "invocations": [], "settings": old}))
    with pytest.raises(SystemExit, match="g_learning_rate: 0.0002 there, 0.0001 here"):
        reproduce_mnist.train_variant("vae", args)
    # A ledger of the subprocess era (its trainer flags) too.
    flags = ["--variant=vae", "--steps_per_epoch=600", "--batch_size=100", "--seed=0", "--g_learning_rate=0.0002",
             "--beta1=0.5", "--eval_batches=10"]
    (work / "vae.budget.json").write_text(json.dumps({"seconds": 60.0, "invocations": [], "trainer_flags": flags}))
    with pytest.raises(SystemExit, match="g_learning_rate: 0.0002 there, 0.0001 here"):
        reproduce_mnist.train_variant("vae", args)


def test_a_chunk_left_running_by_a_killed_session_is_charged_to_its_last_checkpoint(tmp_path, monkeypatch):
    checkpoint = tmp_path / "ckpt-40"
    (tmp_path / "ckpt-40.index").write_text("")
    os.utime(tmp_path / "ckpt-40.index", (1000.0 + 90.0, 1000.0 + 90.0))  # written 90 s after the start
    from svae_tf import runs

    monkeypatch.setattr(runs, "checkpoint_info", lambda model_dir: runs.CheckpointInfo(2, 40, os.fspath(checkpoint)))
    ledger = {"seconds": 30.0, "invocations": [{"steps_after": 20, "seconds": 30.0}],
              "running": {"started": 1000.0, "target_epochs": 4, "steps_before": 20, "commit": "c" * 40,
                          "dirty": False}}
    reproduce_mnist.charge_interrupted(ledger, os.fspath(tmp_path))
    assert "running" not in ledger and ledger["seconds"] == pytest.approx(120.0)
    assert ledger["invocations"][-1] == {"target_epochs": 4, "seconds": pytest.approx(90.0), "return_code": None,
                                         "interrupted": True, "steps_before": 20, "epochs_after": 2,
                                         "steps_after": 40, "commit": "c" * 40, "dirty": False}
    assert reproduce_mnist.step_cost(ledger["invocations"]) == pytest.approx((0.0, 120.0 / 40))
    args = reproduce_mnist.parse_args(["--steps_per_epoch=10"])
    assert reproduce_mnist.next_chunk(ledger, 40, 150.0, args) == 1  # 30 s left: one 30-s epoch fits
    killed_early = {"seconds": 0.0, "invocations": [{"steps_before": 0, "steps_after": 0, "seconds": 0.0}]}
    assert reproduce_mnist.next_chunk(killed_early, 0, 150.0, args) == 1  # nothing measured: one epoch


def test_rows_of_variants_not_run_are_carried_over_from_the_report_when_their_flags_match(tmp_path):
    """--variants=gan keeps the report's vae row (same flags) with its samples, and leaves
    out svae (trained with another learning rate) and ali (now in --work_dir)."""
    work, results = tmp_path / "work", tmp_path / "results"
    work.mkdir()
    (results / "mnist_samples").mkdir(parents=True)
    args = reproduce_mnist.parse_args([f"--work_dir={work}", f"--results={results / 'mnist'}"])
    settings_of = lambda v: reproduce_mnist.run_settings(*reproduce_mnist.configs(v, args))  # noqa: E731
    ledgers = {"vae": {"trainer_flags": ["--variant=vae", "--steps_per_epoch=600", "--batch_size=100", "--seed=0",
                                         "--g_learning_rate=0.0002", "--beta1=0.5", "--eval_batches=10"],
                       "steps": 600},  # written by the subprocess-era reproduce_mnist: read as its settings
               "svae": {"settings": dict(settings_of("svae"), g_learning_rate=1e-4)},
               "ali": {"settings": settings_of("ali")}}
    (work / "ali.budget.json").write_text("{}")
    previous = {"ledgers": ledgers, "evaluations": {"vae": {"inception_score": 7.1, "inception_score_std": 0.1}},
                "classifier": {"test_accuracy": 0.995}, "provenance": {"commit": "abcdef0123", "date": "D"}}
    (results / "mnist.json").write_text(json.dumps(previous))
    for v in ("vae", "svae", "ali"):
        for ext in ("png", "npz"):
            (results / "mnist_samples" / f"{v}.{ext}").write_bytes(f"{v}.{ext}".encode())

    led, evaluations, artifacts, notes = reproduce_mnist.carried_over(args, ["gan"])
    assert list(led) == ["vae"] and led["vae"]["steps"] == 600 and evaluations["vae"]["inception_score"] == 7.1
    assert artifacts == {"mnist_samples/vae.png": b"vae.png", "mnist_samples/vae.npz": b"vae.npz"}
    assert notes["vae"]["report_commit"] == "abcdef0123"
    text = reproduce_mnist.render(evaluations, led, {}, args, carried=notes)
    assert "- VAE: row carried over from the report of D (commit abcdef0" in text
    assert reproduce_mnist.carried_over(args, ["vae"])[0] == {}  # run now: not carried
    # Carried again from a report that carried it: the note names the report it was run in.
    (results / "mnist.json").write_text(json.dumps(dict(previous, carried_over=notes, provenance={"date": "E"})))
    assert reproduce_mnist.carried_over(args, ["gan"])[3]["vae"]["report_date"] == "D"
    no_carry = reproduce_mnist.parse_args([f"--work_dir={work}", f"--results={results / 'mnist'}", "--nocarry_over"])
    assert reproduce_mnist.carried_over(no_carry, ["gan"])[0] == {}


def test_finished_runs_in_the_work_dir_are_reported_without_training(tmp_path, monkeypatch):
    """--variants=svae_r also reports ali (its budget used, same flags, at its checkpoint),
    but not gan (budget left), svae (other flags) or wgan_gp (newer checkpoint than its ledger)."""
    from svae_tf import runs

    work = tmp_path / "work"
    work.mkdir()
    args = reproduce_mnist.parse_args([f"--work_dir={work}", f"--results={tmp_path / 'mnist'}",
                                       "--minutes_per_variant=10"])
    spent = [{"steps_before": 0, "steps_after": 600, "seconds": 300.0},
             {"steps_before": 600, "steps_after": 1200, "seconds": 300.0}]

    def ledger(variant, seconds, changes=None, checkpoint="ckpt-1200"):
        settings = reproduce_mnist.run_settings(*reproduce_mnist.configs(variant, args))
        return {"settings": dict(settings, **(changes or {})), "seconds": seconds,
                "invocations": spent, "checkpoint": str(work / variant / checkpoint)}

    ledgers = {"ali": ledger("ali", 600.0), "gan": ledger("gan", 300.0),
               "svae": ledger("svae", 600.0, changes={"beta1": 0.9}),
               "wgan_gp": ledger("wgan_gp", 600.0, checkpoint="ckpt-600"), "svae_r": ledger("svae_r", 600.0)}
    for variant, value in ledgers.items():
        (work / f"{variant}.budget.json").write_text(json.dumps(value))
    monkeypatch.setattr(runs, "checkpoint_info", lambda d: (2, 1200, os.path.join(d, "ckpt-1200")))
    assert reproduce_mnist.finished_in_work_dir(args, ["svae_r"]) == ["ali"]


def test_equal_updates_train_in_process_with_the_trainers_weights(tmp_path, data_dir, monkeypatch, capsys):
    """--steps_per_variant=6 in chunks of 3 (--curve_steps): reproduce_mnist trains vae with
    train_lib.train in this process (no trainer subprocess: Popen refuses all but the report's git and uname), exactly
    6 updates, a curve point after each chunk against updates and minutes; its weights are
    bit-for-bit those of `python -m trainers.mnist` with the same settings for 6 steps."""
    real_popen = subprocess.Popen

    def no_python(cmd, *a, **k):  # the report's provenance may run git and uname, nothing else
        assert os.path.basename(str(cmd[0] if isinstance(cmd, (list, tuple)) else cmd).split()[0]) in (
            "git", "uname"), f"reproduce_mnist started {cmd}"
        return real_popen(cmd, *a, **k)

    monkeypatch.setattr(subprocess, "Popen", no_python)
    work, results = tmp_path / "work", tmp_path / "results"
    settings = ["--setting=take=500", "--setting=num_grid_images=4", "--setting=z_dim=8",
                "--setting=batch_norm_batches=2"]
    args = reproduce_mnist.parse_args(
        ["--variants=vae", "--steps_per_variant=6", "--curve_steps=3", "--steps_per_epoch=3", "--batch_size=50",
         "--eval_batches=1", "--skip_eval", "--probe_samples=100", f"--data_dir={data_dir}",
         f"--work_dir={work}", f"--results={results / 'mnist'}", *settings])
    reproduce_mnist.main(args)
    monkeypatch.setattr(subprocess, "Popen", real_popen)
    ledger = json.loads((work / "vae.budget.json").read_text())
    assert ledger["steps"] == 6 and ledger["budget_steps"] == 6 and "budget_seconds" not in ledger
    assert [(i["steps_before"], i["steps_after"], i["optimizer_step"]) for i in ledger["invocations"]] == \
        [(0, 3, 3), (3, 6, 6)]
    assert [(p["steps"], p["minutes"] > 0) for p in ledger["curve"]] == [(3, True), (6, True)]
    assert ledger["curve"][1]["minutes"] == pytest.approx(ledger["seconds"] / 60)
    saved = json.loads((results / "mnist.json").read_text())
    assert saved["budget"] == {"steps_per_variant": 6} and saved["rows"]["vae"]["steps"] == 6
    assert "at equal updates" in (results / "mnist.md").read_text()
    assert "training to epoch" in capsys.readouterr().out

    # The same run by the trainer's command line, in a fresh process.
    trainer = [sys.executable, "-m", "trainers.mnist", "--variant=vae", f"--model_dir={tmp_path / 'trainer'}",
               "--epochs=2", "--steps_per_epoch=3", "--batch_size=50", "--seed=0", "--g_learning_rate=0.0002",
               "--beta1=0.5", "--eval_batches=1", "--take=500", "--num_grid_images=4", "--z_dim=8",
               "--batch_norm_batches=2", "--verbose=2", f"--data_dir={data_dir}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(trainer, cwd=report.REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (checksum,) = re.findall(r"Finished: .*optimizer step 6, .*weights sha256 ([0-9a-f]{64})", out.stdout)
    assert ledger["invocations"][-1]["weights_sha256"] == checksum
