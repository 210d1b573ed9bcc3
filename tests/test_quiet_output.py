"""The programs print their own output and Keras' progress, not TensorFlow's C++ logs.

By default (no --tf_log_level, no $TF_CPP_MIN_LOG_LEVEL) a trainer, `trainers.evaluate`,
`export.saved_model` and `export.tflite` show none of TensorFlow's C++ notices (checked on
the README's chain, tests/test_chain.py, which runs them as a user does); `--tf_log_level`
brings them back (here). The tf.data warning about a partly read cache is
fixed at its cause (the held-out dataset holds exactly the batches Keras reads), so it
does not appear even when warnings are shown. Library, export and benchmark modules do
not touch the log level when imported.
"""

import ast
import os
import subprocess
import sys

import pytest

import trainer_testlib as tl
from svae_tf.utils import logs

pytestmark = pytest.mark.skipif(
    not os.path.isdir(os.path.join(tl.TFDS_DATA_DIR, "mnist")),
    reason=f"real TFDS data not found in {tl.TFDS_DATA_DIR}",
)

def _run(*args, timeout=420):
    proc = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=tl.REPO, env=tl.user_env(),
                          capture_output=True, text=True, timeout=timeout)
    return proc, proc.stdout + proc.stderr


def test_log_filter_and_level_parsing(monkeypatch):
    captured = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796155595.680889   14366 port.cc:153] oneDNN custom operations are on.\n"
        "W0000 00:00:1796155224.144143   10621 cache_dataset_ops.cc:912] The calling iterator\n"
        "E0517 12:03:44.123456   10621 cuda_platform.cc:52] failed call to cuInit\n"
        "a line of the program\n"
    )
    assert logs.filter_log_lines(captured, 0) == captured
    assert logs.filter_log_lines(captured, 2).splitlines() == captured.splitlines()[3:]
    assert logs.filter_log_lines(captured, 3) == "a line of the program\n"

    assert logs.level_from_argv(["prog", "--model_dir=x", "--tf_log_level=info"]) == "info"
    assert logs.level_from_argv(["prog", "--tf_log_level", "error"]) == "error"
    assert logs.level_from_argv(["prog", "--tf_log_level=loud"]) is None  # the parser rejects it
    assert logs.level_from_argv(["prog"]) is None

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert logs.min_log_level(None) == 3
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    assert logs.min_log_level(None) == 1  # a user's environment is respected
    assert logs.min_log_level("info") == 0  # and the flag wins over it
    with pytest.raises(ValueError, match="--tf_log_level"):
        logs.min_log_level("loud")


def test_tf_log_level_shows_tensorflow_logs_and_no_partial_cache_warning(tmp_path):
    # Warnings shown: TensorFlow's C++ lines come back, but the held-out dataset (1 batch
    # of 16 out of 64 images) no longer leaves a partly read cache behind, over 2 epochs.
    proc, output = _run("trainers.mnist", f"--model_dir={tmp_path / 'run'}", *tl.SMALL,
                        "--steps_per_epoch=1", "--tf_log_level=warning")
    assert proc.returncode == 0, output[-6000:]
    assert any(logs._LOG_LINE.match(line) for line in output.splitlines()), output[-3000:]
    assert "did not fully read the dataset" not in output


def _import_time_environ_uses(path):
    """Lines of `path` that use os.environ in code run at import (not in functions,
    classes or the `if __name__ == "__main__":` blocks)."""
    tree = ast.parse(path.read_text())
    lines = []

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return
        if (isinstance(node, ast.Attribute) and node.attr in ("environ", "putenv")
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return lines


def test_modules_do_not_set_the_log_level_when_imported():
    packages = ("svae_tf", "export", "benchmarks", "trainers")
    found = {str(path.relative_to(tl.REPO)): lines
             for package in packages for path in sorted((tl.REPO / package).rglob("*.py"))
             if (lines := _import_time_environ_uses(path))}
    assert not found, f"os.environ used at import time: {found}"

    # And at run time, all in one process: importing them defines no clashing flags either.
    modules = ["svae_tf.data.pipelines", "svae_tf.runs", "svae_tf.utils.logs", "svae_tf.cli", "svae_tf.utils.files",
               "export.saved_model", "export.tflite", "export.tflite_sample", "export.serving_client",
               "trainers.evaluate", "trainers.classifier", "trainers.train_lib", "trainers.command",
               "benchmarks.input_pipeline", "benchmarks.reproduce_mnist", "benchmarks.train_throughput",
               "benchmarks.sampling_latency", "benchmarks.mode_collapse", "benchmarks.step_fingerprint",
               "benchmarks.batch_norm_population", "benchmarks.step_work"]
    code = ("import importlib, os\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(repr(os.environ.get('TF_CPP_MIN_LOG_LEVEL')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tl.REPO, env=tl.user_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "None"
