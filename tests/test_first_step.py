"""benchmarks/first_step.py: start-to-first-step times read from the trainer's own TensorBoard events.

The real commands take minutes; here `commands` is replaced by tiny scripts (one writes the
events a trainer writes), so what is tested is the timing and the reading of the events.
"""

import sys

import pytest

from benchmarks import first_step
from svae_tf import cli

TRAIN = """import os, sys, time
import tensorflow as tf
time.sleep(0.3)
writer = tf.summary.create_file_writer(os.path.join(sys.argv[1], "run", "logs", "train"))
with writer.as_default():
    for step in (1, 2, 3, 4):
        tf.summary.scalar("loss", 1.0 / step, step=step)
        writer.flush()
        time.sleep(0.2)
"""


# The program's flags, as `python -m benchmarks.first_step` parses them (`svae_tf.cli`).
ARGS = cli.parse(first_step.define_flags, ["--train_steps=4", "--num_samples=10", "--iw_samples=2", "--num_images=5"])


def test_a_round_times_every_command_and_the_first_step(monkeypatch, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)

    data_cache = "os.path.join(os.environ['SVAE_TF_CACHE_DIR'], 'datasets')"
    child = f"print('noise'); print({first_step.MARK!r} + '{{\"first_batch_s\": 1.5}}')"

    def fake_commands(work, f):
        return {"imports": [sys.executable, "-c", f"import os; os.makedirs({data_cache})"],  # a run caches data
                "stream_cold": [sys.executable, "-c", f"import os; assert not os.path.exists({data_cache}); os.makedirs({data_cache}); {child}"],
                "train": [sys.executable, str(script), work],
                "stream": [sys.executable, "-c", f"import os; assert os.path.exists({data_cache}); {child}"]}

    monkeypatch.setattr(first_step, "commands", fake_commands)
    rounds = [first_step.run_round(ARGS), first_step.run_round(ARGS)]
    train = rounds[0]["train"]
    assert 0.3 < train["to_first_step_s"] < train["total_s"]
    assert train["step_s"] == pytest.approx(0.2, abs=0.1)
    summary = first_step.summarise(rounds)
    assert set(summary) == {"imports", "train", "stream", "stream_cold"}
    assert set(summary["train"]) == {"total_s", "to_first_step_s", "step_s"}
    assert summary["stream"]["first_batch_s"] == 1.5
    text = first_step.markdown({"commands": summary, "rounds": 2, "train_steps": 4,
                                "num_samples": 10, "iw_samples": 2, "num_images": 5})
    assert "| train |" in text and "| stream: first batch | 1.5 |" in text
    assert "| stream_cold: first batch | 1.5 |" in text and "| stream_cold |" not in text


def test_a_failing_command_names_itself(monkeypatch):
    monkeypatch.setattr(first_step, "commands", lambda work, f: {"evaluate": [sys.executable, "-c", "raise SystemExit(3)"]})
    with pytest.raises(RuntimeError, match="evaluate: .* failed \\(3\\)"):
        first_step.run_round(ARGS)


def test_the_real_commands_are_the_users():
    argv = first_step.commands("/w", ARGS)
    assert argv["train"][1:4] == ["-m", "trainers.mnist", f"--flagfile={first_step.FLAGFILE}"]
    assert "--log_every_steps=1" in argv["train"] and "--model_dir=/w/run" in argv["evaluate"]
    assert "--model_dir=/w/run" in argv["train"] and "--model_dir=/w/run_cold" in argv["train_cold"]
    assert list(argv).index("train_cold") < list(argv).index("train")  # the cold run first
    assert argv["export_tflite"][1:3] == ["-m", "export.tflite"]
    assert argv["trace"][1:] == ["-m", "benchmarks.first_step", "--child=trace"]
