"""Tiny runs of the benchmarks: each writes its NAME.json / NAME.md pair through benchmarks.report.

The numbers of such runs mean nothing (one step, one call); what is tested is that every
benchmark goes through the one writer and that its report holds what the docs cite.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import report


def _run(module, *args, data_dir=None, ok=(0,)):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if data_dir:
        env["TFDS_DATA_DIR"] = data_dir
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=report.REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in ok, proc.stderr[-3000:]
    return proc


def _report(tmp_path, name):
    assert report.check_report(tmp_path / f"{name}.json") == []
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_train_throughput_writes_its_report(tmp_path):
    _run("benchmarks.train_throughput", "--steps=1", "--warmup=1", "--repeats=1",
         "--configs=graph,graph_shared", "--presets=mnist,mnist_a1", "--lam_z=0", f"--output={tmp_path / 'tt'}")
    result = _report(tmp_path, "tt")
    assert result["lam_z"] == 0.0
    by_preset = result["by_preset"]
    rates = by_preset["mnist"]["img_per_s_by_config"]
    assert set(rates) == {"graph", "graph_shared"} and min(rates.values()) > 0
    assert result["img_per_s"] == max(rates.values())
    assert by_preset["mnist_a1"]["ratio_to_last"] == 1.0
    assert by_preset["mnist"]["ratio_to_last"] == pytest.approx(
        by_preset["mnist"]["img_per_s"] / by_preset["mnist_a1"]["img_per_s"], rel=1e-3)
    assert result["provenance"]["command"].startswith("python -m benchmarks.train_throughput --steps=1")
    text = (tmp_path / "tt.md").read_text()
    assert "| mnist | graph (tf.function)" in text and "| mnist | graph, shared_samples=True" in text
    assert "svae_r, lam_z=0.0, batch 100" in text


@pytest.mark.slow
def test_input_pipeline_writes_its_report(tmp_path, data_dir):
    # --data_dir, not $TFDS_DATA_DIR (an empty directory here), finds the data.
    proc = _run("benchmarks.input_pipeline", "--pipeline_batches=3", "--skip_batches=3",
                "--warmup_steps=1", "--train_steps=1", "--batch_size=50", f"--data_dir={data_dir}",
                f"--output={tmp_path / 'ip'}", data_dir=str(tmp_path), ok=(0, 1))
    result = _report(tmp_path, "ip")
    assert result["batch_size"] == 50
    assert result["meets_target"] == (proc.returncode == 0)
    train = result["train_step"]
    assert train["img_per_s"] == pytest.approx(50 * train["steps_per_s"])
    assert result["ratio_pipeline_over_train"] == pytest.approx(
        result["pipeline"]["batches_per_s"] / train["steps_per_s"])


@pytest.mark.slow
def test_sampling_latency_writes_its_report(tmp_path, data_dir):
    _run("benchmarks.sampling_latency", "--batches=2", "--warmup=1", "--min_time=0", "--min_calls=1",
         "--error_samples=2", f"--output={tmp_path / 'sl'}", data_dir=data_dir)
    result = _report(tmp_path, "sl")
    assert result["provenance"]["versions"]["ai-edge-litert"]
    assert {r["batch"] for r in result["results"]} == {2} and result["target"]["met"] is False
    assert "| backend | batch 2: ms / image | model bytes |" in (tmp_path / "sl.md").read_text()


def test_step_fingerprint_compares_with_an_earlier_report(tmp_path):
    args = ("benchmarks.step_fingerprint", "--steps=2", "--cases=tiny_r1_ndisc2/svae,tiny_r1_ndisc2/gan")
    _run(*args, f"--output={tmp_path / 'a'}")
    first = _report(tmp_path, "a")
    assert len({r["sha256"] for r in first["cases"].values()}) == 2
    first["cases"]["tiny_r1_ndisc2/gan"]["sha256"] = "0" * 64  # one digest differs
    (tmp_path / "a.json").write_text(json.dumps(first))
    proc = _run(*args, f"--compare={tmp_path / 'a.json'}", f"--output={tmp_path / 'b'}", ok=(1,))
    cases = _report(tmp_path, "b")["cases"]
    assert cases["tiny_r1_ndisc2/svae"]["equal"] is True  # the same seeds: bit-identical weights
    assert cases["tiny_r1_ndisc2/gan"]["equal"] is False and "**no**" in proc.stdout


def test_step_work_counts_the_tiny_step(tmp_path):
    _run("benchmarks.step_work", "--preset=tiny", "--batch=8", "--calls=2",
         "--configs=a1_svae_r,a1_svae_r_shared,a1_svae_r_disc_decodes_z_p", f"--output={tmp_path / 'sw'}")
    result = _report(tmp_path, "sw")
    counts = result["checkouts"]["current"]["counts"]
    step, shared, sketch = (counts[n] for n in ("a1_svae_r", "a1_svae_r_shared", "a1_svae_r_disc_decodes_z_p"))
    # The discriminator update and the encoder/decoder update each decode [z_p; z_q].
    assert step["network_calls"]["decoder"] == ["2 x 16"]
    assert step["network_calls"]["discriminator"] == ["2 x 16"]
    assert step["network_calls"]["encoder"] == ["2 x 8", "1 x 8 (inference)"]
    assert shared["network_calls"]["decoder"] == ["1 x 16"]  # one draw, decoded once
    assert sketch["network_calls"]["decoder"] == ["1 x 8", "1 x 16"]
    for r in (step, shared, sketch):
        assert r["tracing_counts"] == [1, 1] and r["host_ops"] == {}  # no retracing, no host ops
        assert r["flops_profiler"] >= r["flops_matmul_conv"] > 0
        assert sum(r["flops_by_network"].values()) == r["flops_matmul_conv"]
    assert shared["flops_matmul_conv"] < sketch["flops_matmul_conv"] < step["flops_matmul_conv"]
    within = result["comparisons"]
    saving = within["a1_svae_r_disc_decodes_z_p_vs_a1_svae_r_at_current"]
    assert saving["network_rows_difference"] == {"decoder": -8}
    assert set(saving["flops_difference_by_network"]) == {"decoder"}
    assert "| a1_svae_r | current |" in (tmp_path / "sw.md").read_text()


def test_step_work_counts_matmul_and_conv_flops():
    import tensorflow as tf

    from benchmarks import step_work

    @tf.function
    def f(a, b, x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = tf.nn.conv2d(x, k, strides=1, padding="SAME")
        return tf.matmul(a, b), tape.gradient(y, [x, k])

    spec = [tf.TensorSpec(s) for s in ([8, 16], [16, 4], [2, 8, 8, 3], [3, 3, 3, 5])]
    graph = f.get_concrete_function(*spec).graph
    flops = {}
    for g in step_work._graphs(graph):
        for op in g.get_operations():
            if op.type in step_work.MATMUL_CONV:
                flops[op.type] = flops.get(op.type, 0) + step_work._matmul_conv_flops(op)
    conv = 2 * 2 * 8 * 8 * 5 * 3 * 3 * 3  # 2 x batch x H x W x out x kh x kw x in
    assert flops == {"MatMul": 2 * 8 * 16 * 4, "Conv2D": conv, "Conv2DBackpropInput": conv,
                     "Conv2DBackpropFilter": conv}
