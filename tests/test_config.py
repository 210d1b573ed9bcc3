"""Hyper-parameters declared once (svae_tf.model.config): the model's constructor, its config,
the trainers' flags and the unused-flag rules all derive from the declaration; the one
training program `train_lib.train` runs in-process from configs exactly as the command
line does; a variant registered by a plugin trains from the command line."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from absl import flags

import trainer_testlib as tl
from svae_tf import cli
from svae_tf.model import config, variants
from trainers import command

real_mnist = pytest.mark.skipif(not os.path.isdir(os.path.join(tl.TFDS_DATA_DIR, "mnist")),
                                reason=f"real TFDS data not found in {tl.TFDS_DATA_DIR}")


def _flags(trainer="mnist", argv=()):
    flag_values = flags.FlagValues()
    command.define_flags(flag_values, trainer)
    flag_values(["prog", *argv])
    return flag_values


def test_every_field_is_a_flag_with_its_default_bounds_and_help():
    flag_values = _flags()
    for cls in command.CONFIGS:
        for field in config.flag_fields(cls):
            flag = flag_values[field.name]
            assert flag.help.endswith(field.metadata["help"]), field.name  # enums prefix <a|b>
            assert flag.default == command.trainer_defaults("mnist").get(field.name, field.default), field.name
    assert _flags("cifar")["batch_size"].value == 64 and _flags("cifar")["preset"].value == "cifar10"
    with pytest.raises(flags.IllegalFlagValueError, match="lam"):
        _flags(argv=["--lam=-0.5"])
    with pytest.raises(flags.IllegalFlagValueError, match="beta1"):
        _flags(argv=["--beta1=1.5"])


def test_configs_from_flags_round_trip_and_unused_fields():
    flag_values = _flags(argv=["--variant=vae", "--lam=0.5", "--z_dim=8", "--flow=none", "--seed=3"])
    model, train, ignored = command.configs_from_flags(flag_values, "mnist")
    assert model.preset_overrides == {"z_dim": 8, "flow": "none", "flow_depth": 0}
    assert (model.seed, model.lam, train.model_dir) == (3, 0.5, os.path.join("runs", "mnist_vae"))
    assert ignored == {"lam": 0.5}  # set, and a VAE does not read it; d_learning_rate not set
    assert model.without_unused().lam == config.ModelConfig().lam
    assert config.ModelConfig.from_json(model.to_json()) == model
    unused = config.unused_fields(config.ModelConfig, "wgan_gp")
    assert "lam" in unused and "gradient_penalty_weight" not in unused and "n_disc" not in unused
    assert set(config.unused_fields(config.ArchitectureOverrides, "gan")) == {"flow", "flow_depth"}
    with pytest.raises(ValueError, match="ema_decay must be <= "):
        config.ModelConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="Unknown preset"):
        config.ModelConfig(preset="mnsit")


def test_the_model_constructor_and_get_config_are_the_declared_hyper_parameters():
    import keras

    from svae_tf.model import symmetric_vae as model_lib
    from svae_tf.model import presets

    names = config.ModelHparams.names()
    changed = dict(variant="svae_r_lx", lam=0.2, lam_z=0.0, latent_x="draw", n_disc=2, gradient_penalty_weight=3.0,
                   discriminator_dropout=0.1, seed=5, r1_weight=0.5, ema_decay=0.5, shared_samples=True)
    assert set(changed) == set(names)  # a new field must be added here too
    model = model_lib.SymmetricVAE(presets.tiny(), **changed)
    assert dataclasses.asdict(model.hparams) == changed
    restored = model_lib.SymmetricVAE.from_config(model.get_config())
    assert dataclasses.asdict(restored.hparams) == changed
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model)).lam == 0.2
    with pytest.raises(ValueError, match="n_disc must be >= 1"):
        model_lib.SymmetricVAE(presets.tiny(), "svae", n_disc=0)


TOY_PLUGIN = '''
from svae_tf.model import variants


def half_elbo_loss(t, **_):
    """Half the negative ELBO: a toy row for the registry test."""
    per_example, tracked = variants.vae_loss(t)
    return 0.5 * per_example, tracked


variants.register(variants.Variant("toy_half_vae", encoder=True, discriminator=None,
                                   generator_loss=half_elbo_loss, metrics=("log_px_given_z", "elbo")))
'''


@real_mnist
def test_a_registered_variant_trains_from_the_command_line(tmp_path):
    (tmp_path / "toy_plugin.py").write_text(TOY_PLUGIN)
    script = tmp_path / "my_trainer.py"
    script.write_text("import toy_plugin  # registers toy_half_vae\n"
                      "from trainers import command\n"
                      "command.run_trainer('mnist')\n")
    model_dir = tmp_path / "new" / "run"  # missing parents are created
    proc = subprocess.run([sys.executable, str(script), *tl.SMALL, "--epochs=1", "--variant=toy_half_vae",
                           f"--model_dir={model_dir}"], cwd=tl.REPO,
                          env=tl.env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(tl.REPO)])),
                          capture_output=True, text=True, timeout=420)
    tl.check_ok(proc)
    assert tl.finished(proc.stdout)[2] == 2  # optimizer steps
    assert json.loads((model_dir / "config.json").read_text())["variant"] == "toy_half_vae"
    assert "toy_half_vae" not in variants.names()  # registered in that process only


@real_mnist
def test_train_in_process_equals_the_command_line(tmp_path):
    """`train_lib.train(configs)` called from Python (as a screen does) and the trainer
    command with the same settings end with bit-identical weights."""
    import keras

    from trainers import train_lib

    args = [*tl.SMALL, "--epochs=1", "--variant=svae_r_lx", "--lam_z=0", "--shared_samples",
            "--z_dim=8", "--verbose=0"]
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    proc = tl.check_ok(tl.run("mnist", *args, f"--model_dir={cli_dir}"))
    model_config, train_config, _ = command.configs_from_flags(
        _flags(argv=[*args, f"--model_dir={api_dir}", f"--data_dir={tl.TFDS_DATA_DIR}"]), "mnist")
    keras.backend.clear_session()  # layer names (in the weights' checksum) as in a new process
    result = train_lib.train(model_config, train_config)
    assert result["weights_sha256"] == tl.finished(proc.stdout)[3]
    assert result["model"].variant == "svae_r_lx" and result["optimizer_step"] == 2
    assert (cli_dir / "config.json").read_text() == (api_dir / "config.json").read_text()


def test_config_from_flags_fixed_fields():
    flag_values = _flags(argv=["--variant=gan"])
    model = cli.config_from_flags(config.ModelConfig, flag_values, preset_overrides={"z_dim": 4})
    assert (model.variant, model.preset_overrides) == ("gan", {"z_dim": 4})
