"""Tests of benchmarks/reproduce_mnist.py: its report's columns and verdicts, its budget arithmetic."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import report, reproduce_mnist


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_report_puts_neg_elbo_beside_the_papers_nll_and_iwae_apart():
    args = reproduce_mnist.parse_args(["--iw_samples=50"])
    evaluation = {"elbo": -95.125, "nll_nats": 90.5, "nll_nats_stderr": 0.3, "rmse": 20.0,
                  "inception_score": 8.0, "inception_score_std": 0.1, "fid": 12.0, "iw_samples": 50,
                  "evaluated_at": {"commit": "e" * 40, "dirty": False}}
    ledger = {"epochs": 3, "steps": 1800, "seconds": 600.0, "invocations": [
        {"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True},
        {"commit": "b" * 40, "dirty": True}]}
    text = reproduce_mnist.render({"svae_r": evaluation, "vae": dict(evaluation, evaluated_at=None)},
                                  {"svae_r": ledger, "vae": {"invocations": [{"seconds": 1.0}]}}, {}, args)
    lines = text.splitlines()
    header = _cells(next(line for line in lines if line.startswith("| model | -ELBO")))
    row = dict(zip(header, _cells(next(line for line in lines if line.startswith("| sVAE-r |")))))
    columns = list(row)
    assert columns.index("paper NLL (nats, bound (1))") == columns.index("-ELBO (nats)") + 1
    assert row["-ELBO (nats)"] == "95.12" and row["paper NLL (nats, bound (1))"] == "81.14"
    assert row["-IWAE, K = 50 (nats)"] == "90.50"
    assert row["trained at"] == "aaaaaaa, bbbbbbb+dirty" and row["evaluated at"] == "eeeeeee"
    vae = dict(zip(header, _cells(next(line for line in lines if line.startswith("| VAE |")))))
    assert vae["trained at"] == vae["evaluated at"] == "not recorded"
    assert vae["paper NLL (nats, bound (1))"] == "—"
    rows = reproduce_mnist.table_rows({"svae_r": evaluation}, {"svae_r": ledger})
    assert rows["svae_r"]["neg_elbo_nats"] == 95.125 and rows["svae_r"]["neg_iwae_nats"] == 90.5


def test_reproduce_mnist_claims_are_computed_from_the_numbers():
    args = reproduce_mnist.parse_args([])

    def row(nll, rmse, is_mean, fid):
        return {"nll_nats": nll, "nll_nats_stderr": 0.1, "rmse": rmse,
                "inception_score": is_mean, "inception_score_std": 0.05, "fid": fid}

    rows = {"vae": row(90.0, 40.0, 7.0, 30.0), "ali": row(140.0, 80.0, 8.0, 20.0),
            "svae": row(95.0, 70.0, 8.5, 15.0), "svae_r": row(92.0, 45.0, 8.8, 12.0)}
    verdicts = {c: v for c, v, _ in reproduce_mnist.claims(rows, args)}
    assert verdicts == {
        "sVAE-r reconstructs far better than ALI (RMSE)": "holds",
        "sVAE samples better than the VAE (IS and FID)": "holds",
        "sVAE-r samples better than the VAE (IS and FID)": "holds",
        "sVAE-r's NLL is close to the VAE's": "holds",
        "sVAE-r beats sVAE on NLL and IS (Table 1)": "holds",
    }
    rows["svae_r"] = row(120.0, 78.0, 7.01, 30.1)  # within noise of the VAE's samples
    verdicts = {c: v for c, v, _ in reproduce_mnist.claims(rows, args)}
    assert verdicts["sVAE-r reconstructs far better than ALI (RMSE)"].startswith("weakly")
    assert verdicts["sVAE-r samples better than the VAE (IS and FID)"].startswith("not distinguishable")
    assert verdicts["sVAE-r's NLL is close to the VAE's"] == "does not hold"
    assert verdicts["sVAE-r beats sVAE on NLL and IS (Table 1)"] == "does not hold (reversed)"
    del rows["ali"]
    assert dict((c, v) for c, v, _ in reproduce_mnist.claims(rows, args))[
        "sVAE-r reconstructs far better than ALI (RMSE)"] == "not measured"


def test_reproduce_mnist_step_cost_separates_start_up_from_steps():
    runs_ = [{"steps_after": 20, "seconds": 12.0}, {"steps_before": 20, "steps_after": 80, "seconds": 16.0}]
    overhead, per_step = reproduce_mnist.step_cost(runs_)
    assert overhead == pytest.approx(10.0) and per_step == pytest.approx(0.1)
    assert reproduce_mnist.step_cost(runs_[:1]) == pytest.approx((0.0, 0.6))


@pytest.mark.slow
def test_tiny_reproduction_writes_its_report(tmp_path, data_dir):
    """Two variants, one epoch of 5 steps each, a tiny classifier: the report and its provenance."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFDS_DATA_DIR=data_dir)
    clf = tmp_path / "clf.keras"
    subprocess.run([sys.executable, "-m", "trainers.classifier", f"--output={clf}", "--take=64", "--epochs=1",
                    "--steps_per_epoch=2", "--batch_size=32", "--test_take=100", "--verbose=0"],
                   cwd=report.REPO, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "benchmarks.reproduce_mnist", "--variants=vae,svae_r",
                    "--minutes_per_variant=0.1", "--steps_per_epoch=5", "--iw_samples=4", "--num_samples=100",
                    "--num_nll_images=20", f"--classifier={clf}", f"--work_dir={tmp_path / 'work'}",
                    f"--results={tmp_path / 'mnist.md'}"], cwd=report.REPO, env=env, check=True,
                   capture_output=True)
    assert report.check_report(tmp_path / "mnist.json") == []
    saved = json.loads((tmp_path / "mnist.json").read_text())
    commit = saved["provenance"]["commit"][:7]
    assert saved["rows"]["svae_r"]["trained_at"].startswith(commit)
    assert saved["rows"]["vae"]["evaluated_at"].startswith(commit)
    assert saved["rows"]["vae"]["steps"] == 5
    assert saved["provenance"]["command"].endswith(f"--results={tmp_path / 'mnist.md'}")
