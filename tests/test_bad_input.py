"""Bad input stops the programs with a message naming the file, tensor or flag.

* flags the chosen variant does not use (`--lam` with vae, ...): a warning naming each
  flag the user set (also from a flagfile), recorded in flags.json under "unused_flags"
  and kept out of config.json, flags.txt and the top level of flags.json;
* a damaged newest checkpoint: the trainer resumes from the previous one and says so;
  `trainers.evaluate` and `export.saved_model` stop with an error naming the file;
* a folder dataset holding a file that is not an image, or a truncated image: an error
  naming the file (in the pipeline, and from the trainer before any step);
* NaN/Inf in the data: an error naming the dataset, split and example, before training.
  The real datasets are uint8 and cannot hold NaN, so the tests feed float images
  through `data._tfds_examples` (in process, and patched into a trainer subprocess);
* checkpoints that can no longer be written mid-run: a clear error, earlier checkpoints
  intact and resumable: the checkpoint TensorFlow writes second is blocked for real by a
  file where its temporary directory (`ckpt-4_temp/`) goes, and a write-protected
  checkpoints directory (chmod 555, or chattr +i as root, who ignores permission bits)
  stops the run the same way;
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import trainer_testlib as tl

pytestmark = pytest.mark.skipif(
    not os.path.isdir(os.path.join(tl.TFDS_DATA_DIR, "mnist")),
    reason=f"real TFDS data not found in {tl.TFDS_DATA_DIR}",
)

# A VAE (the cheapest variant) on 64 real MNIST images: 2 epochs of 2 steps, a
# checkpoint at each epoch end (ckpt-2, ckpt-4).
VAE_RUN = [*tl.SMALL, "--variant=vae", "--flow=none", "--num_grid_images=4"]
DATA_FILE = "ckpt-4.data-00000-of-00001"
# Flags a VAE does not use, given to the first run only (one of them from a flagfile).
UNUSED = {"lam": 0.5, "lam_z": 0.0, "latent_x": "draw", "n_disc": 2, "gradient_penalty_weight": 5.0}
UNUSED_FROM_FLAGFILE = {"discriminator_dropout": 0.2}
# The one deliberate skip (conftest.DELIBERATE_SKIPS): root on a file system without chattr +i.
NO_IMMUTABLE_ATTRIBUTE = "the file system has no immutable attribute (chattr +i)"


def _python_m(*args, timeout=420):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=tl.REPO, env=tl.env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """(model_dir, output) of a finished VAE run, started with flags a VAE does not use;
    copy it before damaging anything."""
    work = tmp_path_factory.mktemp("bad_input")
    model_dir = work / "vae"
    flagfile = work / "extra.flags"
    flagfile.write_text("".join(f"--{k}={v}\n" for k, v in UNUSED_FROM_FLAGFILE.items()))
    proc = tl.check_ok(tl.run("mnist", *VAE_RUN, *(f"--{k}={v}" for k, v in UNUSED.items()),
                              f"--flagfile={flagfile}", f"--model_dir={model_dir}"))
    assert tl.checkpoint_numbers(model_dir) == [2, 4]
    return model_dir, proc.stdout + proc.stderr


def _damaged_copy(vae_run, tmp_path):
    """A copy of the run whose newest checkpoint's data file is cut to half its size."""
    model_dir = tmp_path / "vae"
    shutil.copytree(vae_run[0], model_dir)
    data = model_dir / "checkpoints" / DATA_FILE
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2)
    return model_dir


# ----------------------------------------------------------------- flags that do not apply
def test_flags_the_variant_does_not_use_are_reported_and_recorded_as_unused(vae_run):
    import json

    from svae_tf import runs

    model_dir, output = vae_run
    unused = {**UNUSED, **UNUSED_FROM_FLAGFILE}
    warnings = [line for line in output.splitlines() if "does not apply" in line]
    assert len(warnings) == len(unused), output[-3000:]
    for name, value in unused.items():
        assert any(f"WARNING: --{name}={value} does not apply" in line and "only, not --variant=vae" in line
                   for line in warnings), (name, warnings)
    assert not any("--d_learning_rate" in line for line in warnings)  # not set: no warning

    flags_json = json.loads((model_dir / "flags.json").read_text())
    assert flags_json["unused_flags"] == unused
    for name in [*unused, "d_learning_rate", "tpu"]:  # not as if they took effect
        assert name not in flags_json
        assert f"--{name}=" not in (model_dir / "flags.txt").read_text()
    assert flags_json["variant"] == "vae" and flags_json["g_learning_rate"] == 1e-4
    config = runs.load_config(str(model_dir))
    assert (config.lam, config.lam_z, config.latent_x, config.n_disc, config.gradient_penalty_weight,
            config.discriminator_dropout) == (runs.ModelConfig().lam, None, "mean", 1, 10.0, None)


# ----------------------------------------------------------------- damaged checkpoints
def test_restore_newest_skips_damaged_checkpoints(tmp_path):
    import tensorflow as tf

    from svae_tf import runs

    variable = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=variable)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=5)
    for step in (1, 2, 3):
        variable.assign(float(step))
        manager.save(checkpoint_number=step)
    (tmp_path / "ckpt-3.index").write_bytes(b"not an index")  # newest: damaged index
    data = tmp_path / "ckpt-2.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-3])  # next: truncated data

    variable.assign(-1.0)
    path, skipped = runs.restore_newest(checkpoint, str(tmp_path))
    assert path == str(tmp_path / "ckpt-1") and float(variable.numpy()) == 1.0
    assert [err.path for err in skipped] == [str(tmp_path / "ckpt-3"), str(tmp_path / "ckpt-2")]
    assert "ckpt-3.index" in str(skipped[0]) and "ckpt-2.data-00000-of-00001" in str(skipped[1])

    (tmp_path / "checkpoint").write_text("garbage {{{")  # an unreadable state file: files on disk
    assert runs.restore_newest(checkpoint, str(tmp_path))[0] == str(tmp_path / "ckpt-1")

    (tmp_path / "ckpt-1.data-00000-of-00001").unlink()
    with pytest.raises(runs.CheckpointError, match="can be read.*ckpt-1.data-00000-of-00001 \\(missing\\)"):
        runs.restore_newest(checkpoint, str(tmp_path))
    assert runs.restore_newest(checkpoint, str(tmp_path / "empty")) == (None, [])


def test_trainer_resumes_from_the_previous_checkpoint(vae_run, tmp_path):
    model_dir = _damaged_copy(vae_run, tmp_path)
    proc = tl.check_ok(tl.run("mnist", *VAE_RUN, f"--model_dir={model_dir}"))
    output = proc.stdout + proc.stderr
    line = next(line for line in output.splitlines() if "WARNING: Checkpoint" in line)
    assert DATA_FILE in line and f"Resuming from {model_dir}/checkpoints/ckpt-2 instead" in line
    assert tl.resumed(output)[1:4] == (1, 0, 2)  # one epoch done, data position 2
    # Epoch 2 redone from ckpt-2 ends with the weights of the uninterrupted run.
    assert tl.finished(output) == tl.finished(vae_run[1])

    from svae_tf import runs

    runs.load_model(str(model_dir))  # ckpt-4 was written again


def test_evaluate_and_export_name_the_damaged_file(vae_run, tmp_path):
    model_dir = _damaged_copy(vae_run, tmp_path)
    evaluate = _python_m("trainers.evaluate", f"--model_dir={model_dir}", "--dataset=mnist",
                         "--iw_samples=2", "--num_nll_images=16", "--no_quality")
    export = _python_m("export.saved_model", f"--model_dir={model_dir}",
                       f"--export_dir={tmp_path / 'serving'}")
    for proc in (evaluate, export):
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert DATA_FILE in proc.stderr and "ckpt-2" in proc.stderr, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "serving").exists() or not any((tmp_path / "serving").iterdir())
    assert not (model_dir / "eval.json").exists()


# ----------------------------------------------------------------- bad files in a folder
def _image_folder(folder, n=8, size=(40, 36)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("bad", ["text.png", "truncated.png", "truncated.jpg", "empty.jpg"])
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_folder_names_the_file_that_cannot_be_decoded(tmp_path, bad, position):
    import tensorflow as tf

    from svae_tf.data import pipelines as data

    folder = _image_folder(tmp_path / "images", n=4)
    good = (folder / "0.png").read_bytes()
    Image.open(folder / "1.png").convert("RGB").save(tmp_path / "full.jpg", quality=90)
    contents = {"text.png": b"not an image", "truncated.png": good[: len(good) // 2],
                "truncated.jpg": (tmp_path / "full.jpg").read_bytes()[:400], "empty.jpg": b""}[bad]
    name = {"first": "0_", "middle": "2_", "last": "9_"}[position] + bad  # sorted path order
    (folder / name).write_bytes(contents)

    ds = data.load_images(f"folder:{folder}", "train", batch_size=2, image_size=16)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        list(ds)
    err = data.data_error(info.value)
    assert isinstance(err, data.DataError)
    assert f"image file {folder / name} cannot be read or decoded" in str(err)
    assert data.data_error(ValueError("something else")) is None


def test_trainer_stops_on_a_bad_image_file_before_training(tmp_path):
    folder = _image_folder(tmp_path / "images")
    (folder / "6_broken.png").write_bytes(b"GIF89a but not really")
    model_dir = tmp_path / "run"
    proc = tl.run("cifar", f"--dataset=folder:{folder}", "--image_size=32", "--variant=vae",
                  "--batch_size=4", "--epochs=1", "--steps_per_epoch=2", "--num_grid_images=4",
                  "--z_dim=8", f"--model_dir={model_dir}", "--verbose=2")
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"image file {folder / '6_broken.png'} cannot be read" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "Saved checkpoint" not in proc.stdout and tl.checkpoint_numbers(model_dir) == []


# ----------------------------------------------------------------- NaN / Inf in the data
_FLOAT_MNIST = """
import tensorflow as tf
from svae_tf.data import pipelines as data

_original = data._tfds_examples


def float_examples(name, split, data_dir, with_labels):
    # The real examples as float32, example {index} of the training split set to {value}.
    ds, count = _original(name, split, data_dir, with_labels)

    def to_float(i, example):
        image, label = example
        image = tf.cast(image, tf.float32)
        if split == "train":
            image = tf.where(tf.equal(i, {index}), tf.fill(tf.shape(image), float("{value}")), image)
        return image, label

    return ds.enumerate().map(to_float), count


data._tfds_examples = float_examples
"""


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_pipeline_names_the_example_holding_nan_or_inf(data_dir, value, tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("SVAE_TF_CACHE_DIR", str(tmp_path))  # no snapshot of the real data to read instead

    namespace = {}
    exec(_FLOAT_MNIST.format(index=37, value=value), namespace)
    from svae_tf.data import pipelines as data

    try:
        ds = data.load_images("mnist", "train", batch_size=16, data_dir=data_dir, take=64,
                              shuffle=True, repeat=True)
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            next(iter(ds))  # the shuffle buffer reads the whole (taken) split first
        assert str(data.data_error(info.value)) == (
            "dataset mnist, split train: example 37 (0-based) holds NaN or Inf values.")
        # Float data without NaN/Inf passes.
        assert np.isfinite(next(iter(data.load_images("mnist", "test", batch_size=8, data_dir=data_dir,
                                                      take=8)))).all()
    finally:
        data._tfds_examples = namespace["_original"]


def test_trainer_stops_on_nan_in_the_data_before_training(tmp_path):
    model_dir = tmp_path / "run"
    code = (_FLOAT_MNIST.format(index=50, value="nan")
            + "import sys\nfrom trainers import command\n"
            + f"sys.argv = ['trainers.mnist', *{[*VAE_RUN, f'--model_dir={model_dir}']!r}]\n"
            + "command.run_trainer('mnist')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tl.REPO, capture_output=True, text=True, timeout=420,
                          env={**tl.env(), "SVAE_TF_CACHE_DIR": str(tmp_path / "cache")})  # no snapshot to read
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: Bad input data: dataset mnist, split train: example 50 (0-based) holds NaN or Inf "
        "values. Training stopped before any step used it; checkpoints written so far are kept."
    ], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert tl.checkpoint_numbers(model_dir) == []


# ----------------------------------------------------------------- unwritable model_dir
def _check_write_failure(proc, model_dir, vae_run):
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert f"Cannot write checkpoint {model_dir}/checkpoints/ckpt-4 at step 4" in errors[0]
    assert f"The last good checkpoint is {model_dir}/checkpoints/ckpt-2 (kept)" in errors[0]
    assert "Traceback" not in proc.stderr
    assert tl.checkpoint_numbers(model_dir) == [2]


def test_unwritable_checkpoint_stops_and_keeps_earlier_checkpoints(vae_run, tmp_path):
    model_dir = tmp_path / "vae"
    (model_dir / "checkpoints").mkdir(parents=True)
    blocker = model_dir / "checkpoints" / "ckpt-4_temp"
    blocker.write_text("TensorFlow cannot create its temporary directory for ckpt-4 here")
    proc = tl.run("mnist", *VAE_RUN, f"--model_dir={model_dir}")
    _check_write_failure(proc, model_dir, vae_run)

    # ckpt-2 is intact: once the path is writable again, the run resumes from it and ends
    # with the weights of the uninterrupted run.
    blocker.unlink()
    proc = tl.check_ok(tl.run("mnist", *VAE_RUN, f"--model_dir={model_dir}"))
    assert tl.resumed(proc.stdout)[0] == f"{model_dir}/checkpoints/ckpt-2"
    assert tl.finished(proc.stdout) == tl.finished(vae_run[1])


def _write_protect(directory):
    """Make `directory` refuse new files, for root too: the immutable attribute (chattr +i)
    as root, who ignores permission bits; chmod 555 otherwise. Returns the undo."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return lambda: directory.chmod(0o755)
    proc = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"{NO_IMMUTABLE_ATTRIBUTE}: {proc.stderr.strip()}")
    return lambda: subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_read_only_checkpoints_directory_stops_and_keeps_earlier_checkpoints(vae_run, tmp_path):
    model_dir = tmp_path / "vae"
    tl.check_ok(tl.run("mnist", *VAE_RUN, "--epochs=1", f"--model_dir={model_dir}"))
    undo = _write_protect(model_dir / "checkpoints")
    try:
        proc = tl.run("mnist", *VAE_RUN, f"--model_dir={model_dir}")
    finally:
        undo()
    _check_write_failure(proc, model_dir, vae_run)
