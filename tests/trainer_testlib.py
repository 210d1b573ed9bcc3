"""Helpers of the trainer tests: run `python -m trainers.<name>` in a subprocess, read outputs.

Trainers run as subprocesses (as users run them): absl flags are process-global, and
`--logical_cpus` / `--strategy=multi_worker` must configure TensorFlow before it starts.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository beside `shared/`.
DEFAULT_TFDS = Path(__file__).resolve().parents[2] / "shared" / "tfds"
TFDS_DATA_DIR = os.environ.get("TFDS_DATA_DIR") or str(DEFAULT_TFDS)

# A tiny but real run: 64 real examples, batch 16, 2 steps per epoch.
SMALL = [
    "--take=64",
    "--batch_size=16",
    "--steps_per_epoch=2",
    "--epochs=2",
    "--eval_batches=1",
    "--num_grid_images=16",
    "--log_every_steps=1",
    "--verbose=2",
]

_FINISHED = re.compile(r"Finished: epoch (\d+), data position (\d+), optimizer step (\d+), .* weights sha256 ([0-9a-f]{64})")
_RESUMED = re.compile(r"Resuming from (\S+): (\d+) epochs and (\d+) batches done, data position (\d+), optimizer step (\d+)")


def env(**extra):
    out = dict(os.environ)
    out.update(TF_CPP_MIN_LOG_LEVEL="2", TFDS_DATA_DIR=TFDS_DATA_DIR, PYTHONUNBUFFERED="1")
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), out.get("PYTHONPATH")) if p)
    out.pop("TF_CONFIG", None)
    out.update(extra)
    return out


# Text of TensorFlow C++ messages seen on this CPU-only machine before the programs set the
# log level themselves (tests/test_quiet_output.py, tests/test_chain.py).
NOISE = ("cuInit", "remapper", "oneDNN", "did not fully read the dataset", "absl::InitializeLog",
         "cudart_stub", "cpu_feature_guard", "Creating a tf.data.Dataset reading")  # the last: TFDS at INFO


def user_env(**extra):
    """`env` without TF_CPP_MIN_LOG_LEVEL: what a user's shell gives the programs."""
    out = env(**extra)
    out.pop("TF_CPP_MIN_LOG_LEVEL")
    return out


def assert_quiet(proc):
    """A program run with `user_env` printed none of TensorFlow's C++ notices."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}\n{output[-6000:]}"
    found = [text for text in NOISE if text in output]
    assert not found, f"TensorFlow log lines {found} in:\n{output[-6000:]}"


def command(trainer, *args):
    return [sys.executable, "-m", f"trainers.{trainer}", *map(str, args)]


def run(trainer, *args, timeout=420, extra_env=None):
    """Run a trainer to completion; returns the CompletedProcess (text output)."""
    return subprocess.run(
        command(trainer, *args), cwd=REPO, env=env(**(extra_env or {})),
        capture_output=True, text=True, timeout=timeout,
    )


def check_ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}"
    return proc


def finished(output):
    """(epoch, data_position, optimizer_step, weights_sha256) of the 'Finished' line."""
    match = _FINISHED.search(output)
    assert match, f"no 'Finished' line in:\n{output[-3000:]}"
    epoch, position, step, digest = match.groups()
    return int(epoch), int(position), int(step), digest


def resumed(output):
    """(checkpoint, epochs_done, batches_done, data_position, optimizer_step) or None."""
    match = _RESUMED.search(output)
    if not match:
        return None
    path, epochs, batches, position, step = match.groups()
    return path, int(epochs), int(batches), int(position), int(step)


def event_tags(log_dir):
    """{tag: [steps]} of the TensorBoard event files under `log_dir`."""
    import tensorflow as tf

    tags = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def checkpoint_numbers(model_dir):
    """Numbers N of the checkpoints ckpt-N listed in model_dir/checkpoints/checkpoint."""
    state = Path(model_dir) / "checkpoints" / "checkpoint"
    if not state.exists():
        return []
    return sorted({int(n) for n in re.findall(r'"ckpt-(\d+)"', state.read_text())})


def event_scalars(log_dir):
    """{tag: [(step, value)]} of the scalar summaries in the event files under `log_dir`
    (TF2 writes scalars as float tensors; images and text are left out)."""
    import tensorflow as tf

    scalars = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    if array.dtype.kind != "f" or array.size != 1:
                        continue
                    number = float(array.reshape(()))
                elif value.HasField("simple_value"):
                    number = float(value.simple_value)
                else:
                    continue
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def assert_trained(model_dir, variant, steps):
    """A run of `variant` that trained `steps` steps with --log_every_steps=1: its config, one
    checkpoint at `steps`, the variant's training scalars at every step and per epoch, a
    held-out ELBO, all finite."""
    config = json.loads((model_dir / "config.json").read_text())
    assert config["variant"] == variant
    assert checkpoint_numbers(model_dir) == [steps]
    assert list((model_dir / "checkpoints").glob(f"ckpt-{steps}.index"))

    train = event_scalars(model_dir / "logs" / "train")
    names = {"g_loss"} | ({"log_px_given_z", "elbo"} if variant == "vae" else {"d_loss", "d_acc_q", "d_acc_p"})
    if variant == "svae_r":
        names |= {"log_px_given_z", "log_qz_given_x", "symmetric_kl_bound"}
    for name in names:
        assert [s for s, _ in train.get(name, [])] == list(range(1, steps + 1)), (name, sorted(train))
        assert f"epoch/{name}" in train, (name, sorted(train))
    validation = event_scalars(model_dir / "logs" / "validation")
    assert "elbo" in validation, sorted(validation)
    for tag, values in {**train, **{f"validation/{t}": v for t, v in validation.items()}}.items():
        assert all(math.isfinite(v) for _, v in values), (tag, values)
