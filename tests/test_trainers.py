"""End-to-end tests of `python -m trainers.mnist|cifar|imagenet` on tiny real data.

Each trainer runs as a subprocess, as a user runs it, on 64 real MNIST / CIFAR-10
examples or a folder of PNGs: outputs, resume after SIGKILL, 2 logical CPUs under
MirroredStrategy, the NaN policy and flag validation. The two-process multi-worker
test is in test_multi_worker.py.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import trainer_testlib as tl

pytestmark = pytest.mark.usefixtures("data_dir")  # skips without the data; fails under CI

SVAE_R_SCALARS = {"g_loss", "d_loss", "d_acc_q", "d_acc_p", "symmetric_kl_bound",
                  "log_px_given_z", "log_qz_given_x"}
VALIDATION_TAGS = {"elbo", "d_acc_q", "d_acc_p"}


def _assert_run_outputs(model_dir, epochs, grid_shape=None):
    """config.json, flags, TensorBoard events, PNG grids and a loadable checkpoint."""
    from svae_tf import runs

    config = runs.load_config(model_dir)
    flags_json = json.loads((model_dir / "flags.json").read_text())
    flags_txt = (model_dir / "flags.txt").read_text()
    assert flags_json["variant"] == config.variant
    assert f"--variant={config.variant}\n" in flags_txt
    assert f"--model_dir={model_dir}\n" in flags_txt

    train_tags = tl.event_tags(model_dir / "logs" / "train")
    validation_tags = tl.event_tags(model_dir / "logs" / "validation")
    expected_validation = VALIDATION_TAGS if config.variant != "vae" else {"elbo"}
    scalars = {"svae_r": SVAE_R_SCALARS, "svae_r_lx": SVAE_R_SCALARS, "vae": {"g_loss", "log_px_given_z", "elbo"}}[config.variant]
    expected = {f"epoch/{name}" for name in scalars} | {"samples", "reconstructions"}
    if flags_json["log_every_steps"] == 1:
        expected |= scalars  # interval means, every step
        assert train_tags["g_loss"] == list(range(1, flags_json["epochs"] * flags_json["steps_per_epoch"] + 1))
    assert expected <= set(train_tags), sorted(train_tags)
    assert expected_validation <= set(validation_tags), sorted(validation_tags)
    assert len(validation_tags["elbo"]) == epochs
    assert len(train_tags["samples"]) == epochs

    for epoch in range(1, epochs + 1):
        for name in ("samples", "reconstructions"):
            with Image.open(model_dir / f"{name}_epoch_{epoch:03d}.png") as image:
                image.load()
                if grid_shape and name == "samples":
                    assert image.size == grid_shape
    assert not list(model_dir.glob("*.tmp-*")), "temporary files left behind"

    model = runs.load_model(str(model_dir))
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)
    return config, model


def test_validation_runs_before_tensorflow_is_imported():
    """Flags are defined from svae_tf.model.config and checked at parse time, without importing
    TensorFlow; the --variant choices are the library's registered rows."""
    from svae_tf.model import symmetric_vae as model

    code = (
        "import json, sys; from absl import flags; from trainers import command; "
        "fv = flags.FlagValues(); command.define_flags(fv); fv(['p', '--variant=ali']); "
        "bad = []\n"
        "for arg in ['--variant=svea', '--flow=nope', '--lam=-1', '--g_learning_rate=0']:\n"
        "    fv2 = flags.FlagValues(); command.define_flags(fv2)\n"
        "    try: fv2(['p', arg])\n"
        "    except flags.Error as e: bad.append(str(e))\n"
        "print(json.dumps([fv['variant'].value, bad, 'tensorflow' in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tl.REPO, env=tl.env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    variant, errors, tensorflow_imported = json.loads(proc.stdout)
    assert variant == "ali" and len(errors) == 4, errors
    assert "Unknown variant 'svea'" in errors[0] and all(name in errors[0] for name in model.VARIANTS)
    assert "--lam=-1" in errors[2] and "g_learning_rate must be > 0" in errors[3]
    assert not tensorflow_imported


def _read_only_dir(tmp_path):
    """A directory this process cannot write into (root ignores permission bits)."""
    directory = tmp_path / "read_only"
    directory.mkdir()
    directory.chmod(0o555)
    if os.access(directory, os.W_OK):  # root: use a path in /proc, where nobody can create files
        return "/proc/svae_tf_not_writable"
    return str(directory)


# Runs the mnist trainer as `python -m trainers.mnist` does, and says at exit whether
# TensorFlow had been imported by then.
_REPORT_TF_AT_EXIT = (
    "import atexit, runpy, sys; "
    "atexit.register(lambda: print('tensorflow imported:', 'tensorflow' in sys.modules, file=sys.stderr)); "
    "sys.argv = ['trainers.mnist', *sys.argv[1:]]; "
    "runpy.run_module('trainers.mnist', run_name='__main__', alter_sys=True)"
)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--variant=diffusion"], "--variant"),
        (["--lam=-0.3"], "--lam"),
        (["--r1_weight=-0.1"], "--r1_weight"),
        (["--latent_x=sample"], "--latent_x"),
        (["--ema_decay=1.5"], "--ema_decay"),
        (["--z_dim=0"], "--z_dim"),
        (["--batch_size=0"], "--batch_size"),
        (["--flow=glow"], "--flow"),
        (["--strategy=gpus"], "--strategy"),
        (["--g_learning_rate=0"], "--g_learning_rate"),
        (["--model_dir={read_only}/no/such/parent/run"], "--model_dir"),
        (["--model_dir={read_only}"], "--model_dir"),
        (["--model_dir={tmp}/a_file"], "--model_dir"),
        (["--model_dir={tmp}/a_file/run"], "--model_dir"),
    ],
)
def test_bad_flags_stop_with_a_message_naming_the_flag(tmp_path, args, flag):
    """... and before TensorFlow is imported, which is what makes it quick (no timing here)."""
    (tmp_path / "a_file").write_text("not a directory")
    read_only = _read_only_dir(tmp_path)
    args = [a.format(tmp=tmp_path, read_only=read_only) for a in args]
    proc = subprocess.run([sys.executable, "-c", _REPORT_TF_AT_EXIT, *args], cwd=tl.REPO, env=tl.env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert flag in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "no").exists()
    assert proc.stderr.rstrip().endswith("tensorflow imported: False"), proc.stderr[-2000:]


def test_missing_dataset_names_the_directory(tmp_path):
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    proc = tl.run("cifar", f"--data_dir={empty}", f"--model_dir={tmp_path / 'run'}", timeout=300)
    assert proc.returncode != 0
    assert "Dataset 'cifar10'" in proc.stderr and str(empty) in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cifar_flagfile_as_written_plus_a_training_aid(tmp_path):
    model_dir = tmp_path / "cifar_run"
    proc = tl.check_ok(tl.run(
        "cifar", "--flagfile=trainers/configs/cifar_svae_r.flags", f"--model_dir={model_dir}",
        "--take=64", "--epochs=1", "--steps_per_epoch=2", "--eval_batches=1",
        "--num_grid_images=16", "--verbose=2", "--r1_weight=5", "--ema_decay=0.9",
        "--latent_x=straight_through",  # and x ~ p(x|z) drawn from the discretized logistic
    ))
    assert tl.finished(proc.stdout)[:3] == (1, 2, 2)
    config, model = _assert_run_outputs(model_dir, epochs=1, grid_shape=(4 * 32, 4 * 32))
    assert (config.preset, config.variant, config.lam, config.lam_z) == ("cifar10", "svae_r_lx", 0.3, 0.0)
    assert (config.r1_weight, model.r1_weight) == (5.0, 5.0)  # the saved run trains with it
    assert config.latent_x == model.latent_x == "straight_through"
    assert config.ema_decay == 0.9 and len(model.ema_weights) == len(model.generator_variables)
    for variable, average in zip(model.generator_variables, model.ema_weights):  # loaded: averages in place
        np.testing.assert_array_equal(variable.numpy(), average.numpy())
    # --batch_norm_batches (default 100; here the one batch of --take=64): the checkpoint's
    # moving statistics are the population statistics of the averaged weights, so
    # recomputing them for the loaded model changes nothing.
    from svae_tf.data import pipelines as data
    from svae_tf.model import networks

    saved = [v.numpy() for v in networks.moving_statistics(model.encoder, model.decoder)]
    model.recompute_batch_norm_statistics(
        data.load_images("cifar10", "train", batch_size=64, drop_remainder=True, take=64), seed=0)  # by hand
    for before, v in zip(saved, networks.moving_statistics(model.encoder, model.decoder)):
        np.testing.assert_allclose(v.numpy(), before, rtol=1e-4, atol=1e-6, err_msg=v.path)
    flags_json = json.loads((model_dir / "flags.json").read_text())
    assert flags_json["batch_size"] == 64 and flags_json["g_learning_rate"] == 2e-4
    assert model.sample(1).shape == (1, 32, 32, 3)


def test_mnist_end_to_end_then_sigkill_and_resume(tmp_path):
    """The same command run twice: once uninterrupted (the reference; all outputs are
    checked) and once killed with SIGKILL right after its first checkpoint and restarted.
    The restart continues from the last checkpoint (optimizer step restored, never 0)
    and ends with the reference's weights. The reference runs concurrently."""
    args = [*tl.SMALL, "--steps_per_epoch=5", "--checkpoint_every_steps=1", "--num_grid_images=4"]

    def start(model_dir, log_name):
        log = open(tmp_path / log_name, "w")
        proc = subprocess.Popen(tl.command("mnist", *args, f"--model_dir={model_dir}"), cwd=tl.REPO,
                                env=tl.env(), stdout=log, stderr=subprocess.STDOUT)
        return proc, log

    reference_dir, model_dir = tmp_path / "reference", tmp_path / "killed"
    reference, reference_log = start(reference_dir, "reference.log")
    killed, killed_log = start(model_dir, "killed.log")
    try:
        # 1. Kill the second run as soon as its first checkpoint exists.
        deadline = time.monotonic() + 300
        while not tl.checkpoint_numbers(model_dir):
            assert killed.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        killed_log.close()
        assert killed.returncode == -signal.SIGKILL
        assert "Finished" not in (tmp_path / "killed.log").read_text()
        saved = tl.checkpoint_numbers(model_dir)[-1]  # ckpt-N after N steps
        assert 1 <= saved < 10

        # 2. Restart it with the same command: it continues from ckpt-N.
        resumed = tl.check_ok(tl.run("mnist", *args, f"--model_dir={model_dir}"))
        reference.wait(timeout=420)
    finally:
        for proc, log in ((killed, killed_log), (reference, reference_log)):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    path, epochs_done, batches_done, position, step = tl.resumed(resumed.stdout)
    assert path.endswith(f"ckpt-{saved}")
    assert step == position == saved > 0  # the optimizer step is restored, not restarted
    assert (epochs_done, batches_done) == divmod(saved, 5)
    final = tl.finished(resumed.stdout)
    assert final[:3] == (2, 10, 10)
    _assert_run_outputs(model_dir, epochs=2)

    # 3. The reference: outputs, and the same final weights as the resumed run (same
    # batches thanks to the restored data position, same noise thanks to the seeds).
    output = (tmp_path / "reference.log").read_text()
    assert reference.returncode == 0, output[-5000:]
    assert "Epoch 1/2" in output and "Epoch 2/2" in output  # Keras progress output
    assert tl.finished(output)[:3] == (2, 10, 10)
    config, model = _assert_run_outputs(reference_dir, epochs=2, grid_shape=(2 * 28, 2 * 28))
    assert (config.preset, config.variant, config.lam, config.preset_overrides) == ("mnist", "svae_r", 0.3, {})
    assert model.sample(2).shape == (2, 28, 28, 1)
    assert tl.checkpoint_numbers(reference_dir) == [8, 9, 10]  # every step, 3 kept
    assert final[3] == tl.finished(output)[3], "the resumed run diverged from the uninterrupted one"


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    model_dir = tmp_path / "mirrored"
    proc = tl.check_ok(tl.run(
        "mnist", *tl.SMALL, "--epochs=1", "--num_grid_images=4", "--strategy=mirrored", "--logical_cpus=2", "--flow=none",
        f"--model_dir={model_dir}", "--verbose=2",
    ))
    assert "mirrored over 2 devices" in proc.stdout
    assert tl.finished(proc.stdout)[:3] == (1, 2, 2)
    _assert_run_outputs(model_dir, epochs=1)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    import tensorflow as tf

    from svae_tf import runs

    model_dir = tmp_path / "nan"
    proc = tl.run(
        "mnist", "--take=64", "--batch_size=16", "--steps_per_epoch=3", "--epochs=3",
        "--eval_batches=1", "--num_grid_images=4", "--checkpoint_every_steps=2",
        "--debug_inject_nan_at_step=5", "--flow=none", f"--model_dir={model_dir}", "--verbose=2",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Non-finite loss at step 5" in proc.stderr, proc.stderr[-3000:]
    assert "last good checkpoint is" in proc.stderr and "ckpt-4" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tl.checkpoint_numbers(model_dir) == [2, 3, 4]
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-4")
    model = runs.load_model(str(model_dir))
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_runs(tmp_path, policy):
    model_dir = tmp_path / policy
    tl.check_ok(tl.run("mnist", *tl.SMALL, f"--mixed_precision={policy}", f"--model_dir={model_dir}"))
    _assert_run_outputs(model_dir, epochs=2)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["vae", "svae", "ali", "gan", "wgan_gp"])
def test_other_variants_train(tmp_path, variant):
    model_dir = tmp_path / variant
    tl.check_ok(tl.run("mnist", *tl.SMALL, f"--variant={variant}", "--flow=none", f"--model_dir={model_dir}"))
    from svae_tf import runs

    runs.load_model(str(model_dir))
