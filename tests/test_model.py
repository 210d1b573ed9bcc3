"""Tests for svae_tf.model.symmetric_vae (SymmetricVAE) and svae_tf.runs (config, checkpoints).

Most tests use `presets.tiny()` (8x8x1 images, batch 8). `test_200_steps_on_mnist`
trains the full default `presets.MNIST` on real MNIST from ../shared/tfds.
"""

import dataclasses
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from svae_tf.model import symmetric_vae as model_lib
from svae_tf.model import objectives, presets
from svae_tf import runs

VARIANTS = model_lib.VARIANTS
BATCH = 8


def _images(batch_size=BATCH, shape=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (batch_size, *shape)) / 255.0).astype("float32")


def _build(variant, flow="coupling", init_seed=1234, likelihood="bernoulli", channels=1, **kwargs):
    """A tiny model; `init_seed` fixes Keras' initializers (and dropout seeds)."""
    keras.utils.set_random_seed(init_seed)
    preset = presets.tiny(image_shape=(8, 8, channels), likelihood=likelihood, flow=flow)
    return model_lib.SymmetricVAE(preset, variant, **kwargs)


def _values(variables):
    return [np.array(v.numpy()) for v in variables]


def _ids(variables):
    return [id(v) for v in variables]


def _discriminator_variables(model):
    return [] if model.discriminator is None else model.discriminator.trainable_variables


class _Recorder:
    """Plain Python object (not tracked by Keras/TF) holding what an optimizer saw."""

    def __init__(self):
        self.steps = []  # one [(grad numpy, variable)] per apply_gradients
        self.losses = []  # the scalar loss of each step, as given to scale_loss


class RecordingAdam(keras.optimizers.Adam):
    """Adam that records gradients and losses (eager train steps only)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorder = _Recorder()

    def apply_gradients(self, grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        self.recorder.steps.append([(None if g is None else g.numpy(), v) for g, v in grads_and_vars])
        return super().apply_gradients(grads_and_vars)

    def scale_loss(self, loss):
        self.recorder.losses.append(float(loss))
        return super().scale_loss(loss)


def _always_zero_gradient(model):
    """ids of variables whose gradient is 0 by construction: the IPM critic's output
    bias cancels in E_q f - E_p f and does not change grad_x f."""
    if model.variant != "wgan_gp":
        return set()
    return {id(model.discriminator.layers[-2].bias)}


def _assert_keras3(variables):
    for v in variables:
        assert isinstance(v, keras.Variable), (v.path, type(v))
        assert not type(v).__module__.startswith("tf_keras"), (v.path, type(v))


# ------------------------------------------------------------------------------ one step
ONE_STEP_CASES = (
    [(v, "coupling", "bernoulli", 1) for v in VARIANTS]
    + [("svae_r", "maf", "bernoulli", 1), ("svae_r", "iaf", "bernoulli", 1)]
    # The 8-bit heads on colour images.
    + [("svae_r", "none", "discretized_logistic", 3), ("vae", "iaf", "gaussian", 3)]
)


@pytest.mark.parametrize("variant,flow,likelihood,channels", ONE_STEP_CASES)
def test_one_step_updates_every_variable(variant, flow, likelihood, channels):
    model = _build(variant, flow, likelihood=likelihood, channels=channels)
    g_opt, d_opt = RecordingAdam(1e-3), RecordingAdam(1e-3)
    model.compile(g_optimizer=g_opt, d_optimizer=d_opt, run_eagerly=True)  # eager: record grads
    generator_vars = model.generator_variables
    discriminator_vars = _discriminator_variables(model)
    assert (model.encoder is None) == (variant in model_lib.DECODER_ONLY_VARIANTS)
    assert (model.discriminator is None) == (variant == "vae")
    non_trainable = [v for v in model.non_trainable_variables]
    before = _values(model.trainable_variables)
    before_non_trainable = _values(non_trainable)

    logs = model.train_on_batch(_images(shape=(8, 8, channels)), return_dict=True)

    # Each optimizer applied gradients to exactly its own variables, all non-zero.
    assert len(g_opt.recorder.steps) == 1
    assert [id(v) for _, v in g_opt.recorder.steps[0]] == _ids(generator_vars)
    steps = g_opt.recorder.steps + d_opt.recorder.steps
    if discriminator_vars:
        assert len(d_opt.recorder.steps) == 1
        assert [id(v) for _, v in d_opt.recorder.steps[0]] == _ids(discriminator_vars)
    else:
        assert not d_opt.recorder.steps
    # One exception, by construction (wgan_gp's critic output bias).
    exempt = _always_zero_gradient(model)
    for step in steps:
        for grad, v in step:
            assert grad is not None and np.all(np.isfinite(grad)), v.path
            if id(v) in exempt:
                assert np.all(grad == 0), v.path
            else:
                assert np.any(grad != 0), f"zero gradient for {v.path}"
    # ... and every trainable variable changed.
    for old, v in zip(before, model.trainable_variables):
        if id(v) not in exempt:
            assert np.any(old != v.numpy()), f"{v.path} did not change"
    # Non-trainable state moved too: BN moving statistics, the noise and dropout seeds;
    # the evaluation and inference noise streams did not (training never draws from them).
    for old, v in zip(before_non_trainable, non_trainable):
        if v is model.eval_seed_generator.state or v is model.inference_seed_generator.state:
            assert np.all(old == v.numpy()), f"training drew from {v.path}"
        else:
            assert np.any(old != v.numpy()), f"{v.path} did not change"
    _assert_keras3(model.variables)
    _assert_keras3(g_opt.variables + d_opt.variables)

    # Losses are sum / global batch size: with one replica, the mean per-example loss.
    assert all(math.isfinite(x) for x in logs.values())
    np.testing.assert_allclose(g_opt.recorder.losses, [logs["g_loss"]], rtol=1e-5)
    if discriminator_vars:
        np.testing.assert_allclose(d_opt.recorder.losses, [logs["d_loss"]], rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variable_partition_and_optimizers(variant):
    model = _build(variant)
    model.compile()
    generator_ids = _ids(model.generator_variables)
    discriminator_ids = _ids(_discriminator_variables(model))
    all_ids = _ids(model.trainable_variables)
    assert len(set(generator_ids)) == len(generator_ids)
    assert not set(generator_ids) & set(discriminator_ids)
    assert sorted(generator_ids + discriminator_ids) == sorted(all_ids)
    # Optimizers are built over their own variables only (Keras 3 keeps the list in
    # `_trainable_variables`).
    assert _ids(model.g_optimizer._trainable_variables) == generator_ids
    if variant == "vae":
        assert model.d_optimizer is None
    else:
        assert _ids(model.d_optimizer._trainable_variables) == discriminator_ids
    assert model.optimizer is model.g_optimizer
    _assert_keras3(model.variables)


def test_two_discriminator_updates_per_step():
    model = _build("svae_r", n_disc=2)
    model.compile(run_eagerly=True)
    model.train_on_batch(_images())
    assert int(model.d_optimizer.iterations) == 2
    assert int(model.g_optimizer.iterations) == 1


def test_jit_compile_step():
    model = _build("svae_r", discriminator_dropout=0.0)
    model.compile(jit_compile=True)
    before = _values(model.trainable_variables)
    logs = model.train_on_batch(_images(), return_dict=True)
    assert all(math.isfinite(x) for x in logs.values()), logs
    assert all(np.any(old != v.numpy()) for old, v in zip(before, model.trainable_variables))


@pytest.mark.parametrize(
    "kwargs,name",
    [(dict(variant="bigan"), "variant"), (dict(lam=-0.1), "lam"), (dict(lam_z=-0.1), "lam_z"),
     (dict(n_disc=0), "n_disc")],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        model_lib.SymmetricVAE(presets.tiny(), **kwargs)


def test_noise_comes_from_the_seed_generator():
    """Same seed (and weights): identical steps, whatever TF's global seed. Other seed: different."""
    images = _images()
    models = [_build("svae_r", seed=s, discriminator_dropout=0.0, init_seed=i) for s, i in [(3, 0), (3, 1), (4, 2)]]
    reference, same, other = models
    for model in (same, other):  # identical weights; keep each model's own noise seed
        for source, target in zip(reference.variables, model.variables):
            if target is not model.seed_generator.state:
                target.assign(source)
    np.testing.assert_array_equal(same.seed_generator.state.numpy(), reference.seed_generator.state.numpy())
    assert np.any(other.seed_generator.state.numpy() != reference.seed_generator.state.numpy())
    results = []
    for global_seed, model in zip((1, 2, 1), models):
        tf.random.set_seed(global_seed)
        model.compile(run_eagerly=True)
        results.append(model.train_on_batch(images, return_dict=True))
    for key in results[0]:
        np.testing.assert_allclose(results[1][key], results[0][key], rtol=1e-6, atol=1e-7)
    assert any(abs(results[2][k] - results[0][k]) > 1e-4 for k in results[0])
    for a, b in zip(reference.variables, same.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    # Each draw advances the generator.
    first, second = reference.streams.normal(4, (2,)), reference.streams.normal(4, (2,))
    assert np.all(first.numpy() != second.numpy())


def test_gradient_penalty_interpolates_uniformly():
    """x_hat = u x_q + (1 - u) x_p with u ~ U[0, 1] per example (not a normal: keras-io #143)."""
    model = _build("wgan_gp", discriminator_dropout=0.0)
    drawn = []
    uniform = model.streams.uniform

    def spy(batch_size, event_shape):
        u = uniform(batch_size, event_shape)
        drawn.append(u)
        return u

    model.streams.uniform = spy
    batch_size = 512
    x_q, x_p = np.ones((batch_size, 8, 8, 1), "float32"), np.zeros((batch_size, 8, 8, 1), "float32")
    penalty = model._gradient_penalty(tf.constant(x_q), tf.constant(x_p))
    (u,) = drawn
    assert u.shape == (batch_size, 1, 1, 1)
    u = u.numpy().ravel()
    assert u.min() >= 0.0 and u.max() <= 1.0
    np.testing.assert_allclose([u.mean(), u.std()], [0.5, 1 / math.sqrt(12)], atol=0.03)
    # The penalty is the objective at the gradient of f at x_hat = u (here).
    x_hat = tf.constant(np.broadcast_to(u.reshape(-1, 1, 1, 1), x_q.shape))
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        f = model.discriminator(x_hat, training=True)
    np.testing.assert_allclose(penalty, objectives.gradient_penalty(tape.gradient(f, x_hat)), rtol=1e-5)


@pytest.mark.parametrize("variant", ["vae", "svae", "gan"])
def test_evaluate_reports_test_metrics(variant):
    model = _build(variant)
    model.compile(run_eagerly=True)
    logs = model.evaluate(_images(16), batch_size=8, verbose=0, return_dict=True)
    expected = {"vae": {"elbo"}, "svae": {"elbo", "d_acc_q", "d_acc_p"}, "gan": {"d_acc_q", "d_acc_p"}}
    assert set(logs) == expected[variant]
    assert all(math.isfinite(x) for x in logs.values())
    if "elbo" in logs:
        assert logs["elbo"] < 0


def test_rank1_metrics_give_the_same_values_with_shape_1():
    """compile(rank1_metrics=True) (for MultiWorkerMirroredStrategy): the steps return
    every metric with shape [1], with the values of the scalar outputs."""
    images = tf.constant(_images())
    outputs = []
    for rank1 in (False, True):
        model = _build("svae_r")
        model.compile(rank1_metrics=rank1)
        outputs.append((model.train_step(images), model.test_step(images)))
    for scalar, rank1 in zip(*outputs):
        assert set(scalar) == set(rank1) and scalar
        for name in scalar:
            assert scalar[name].shape == () and rank1[name].shape == (1,), name
            np.testing.assert_array_equal(rank1[name].numpy(), [scalar[name].numpy()])


# ------------------------------------------------------------------------------ checkpoints
def _assert_same_values(a_vars, b_vars):
    assert len(a_vars) == len(b_vars)
    for a, b in zip(a_vars, b_vars):  # in order: Keras auto-names differ across instances
        assert tuple(a.shape) == tuple(b.shape), (a.path, b.path)
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{a.path} vs {b.path}")


@pytest.mark.parametrize("variant,flow", [("svae_r", "iaf"), ("wgan_gp", "none")])
def test_checkpoint_round_trip(tmp_path, variant, flow):
    images = _images()
    model = _build(variant, flow, seed=5, init_seed=0)
    model.compile(run_eagerly=True)  # eager: single steps are cheaper than tracing
    for _ in range(2):
        model.train_on_batch(images)
    path = runs.make_checkpoint(model).write(os.fspath(tmp_path / "ckpt"))

    restored = _build(variant, flow, seed=6, init_seed=1)  # other weights and noise seed
    restored.compile(run_eagerly=True)
    exempt = _always_zero_gradient(model)
    for a, b in zip(model.variables, restored.variables):
        assert id(a) in exempt or np.any(a.numpy() != b.numpy()), a.path
    runs.make_checkpoint(restored).read(path).assert_consumed()

    # All model variables (flow conditioners, BN moving statistics, noise and dropout
    # seed states) and both optimizers' variables (iterations, Adam slots).
    _assert_same_values(model.variables, restored.variables)
    num_dropouts = sum(isinstance(layer, keras.layers.Dropout) for layer in model.discriminator.layers)
    assert num_dropouts == 2
    assert len(runs.seed_states(model)) == 3 + num_dropouts  # noise, eval and inference noise, dropouts
    for name in ("g_optimizer", "d_optimizer"):
        _assert_same_values(getattr(model, name).variables, getattr(restored, name).variables)
    assert int(restored.g_optimizer.iterations) == 2
    # Training resumes identically (same noise, same dropout masks, same Adam state).
    a = model.train_on_batch(images, return_dict=True)
    b = restored.train_on_batch(images, return_dict=True)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-6, atol=1e-7)


def test_save_config_and_load_model(tmp_path):
    config = runs.ModelConfig(
        preset="mnist",
        preset_overrides={"z_dim": 8, "flow": "maf", "flow_depth": 2, "flow_hidden": [16]},
        variant="svae_r",
        seed=11,
    )
    model_dir = os.fspath(tmp_path / "run")
    runs.save_config(model_dir, config)
    assert runs.load_config(model_dir) == config
    model = runs.build_model(config)
    model.compile(run_eagerly=True)
    model.train_on_batch(_images(4, (28, 28, 1)))
    runs.checkpoint_manager(runs.make_checkpoint(model), model_dir).save()

    loaded = runs.load_model(model_dir)
    assert loaded.preset == presets.get_preset("mnist", **config.preset_overrides)
    assert loaded.flow.kind == "maf" and len(loaded.flow.conditioners) == 2
    _assert_same_values(model.variables, loaded.variables)
    np.testing.assert_array_equal(loaded.seed_generator.state.numpy(), model.seed_generator.state.numpy())
    with pytest.raises(FileNotFoundError, match="config.json"):
        runs.load_model(os.fspath(tmp_path / "nowhere"))


# ------------------------------------------------------------------------------ 200 steps
# presets.MNIST reduced to about a quarter of the width (same structure: 2 convs, dense,
# coupling flow, transposed convs with batch norm on the dense layers, joint discriminator
# with dropout and a flattened x branch), for the
# variants whose full-size run is marked slow.
MNIST_REDUCED = dataclasses.replace(
    presets.MNIST,
    z_dim=32,
    encoder_convs=(presets.Conv(16, 3, 2), presets.Conv(32, 3, 2)),
    encoder_dense=(128,),
    flow_depth=2,
    flow_hidden=(64, 64),
    decoder_dense=(128, 7 * 7 * 32),
    decoder_start=(7, 7, 32),
    decoder_deconvs=(presets.Conv(32, 3, 2), presets.Conv(16, 3, 2)),
    disc_x_convs=(presets.Conv(16, 3, 2, dropout=0.2), presets.Conv(32, 3, 2)),
    disc_z_dense=(presets.Dense(128),),
    disc_joint_dense=(presets.Dense(128, dropout=0.2),),
)
SLOW = pytest.mark.slow

# 200 steps at batch 32 on 2048 real MNIST training images, with the flagfiles' Adam 2e-4 /
# beta1 0.5. The full presets.MNIST (coupling flow of depth 4, z_dim 64) costs ~6-15 CPU-s
# per variant: vae and svae_r run it in the default suite, wgan_gp the reduced preset; the
# others run with -m slow.
MNIST_CASES = [
    ("vae", "full"),
    ("svae_r", "full"),
    ("wgan_gp", "reduced"),
    # svae, ali and gan: tests/test_collapse.py trains them 200 steps at full size and checks
    # their weights are finite (and that they do not collapse).
    *[pytest.param(v, "reduced", marks=SLOW) for v in ("svae", "ali", "gan")],
    *[pytest.param(v, "full", marks=SLOW) for v in ("svae", "ali", "gan", "wgan_gp")],
]


@pytest.mark.parametrize("variant,size", MNIST_CASES)
def test_200_steps_on_mnist(variant, size, data_dir):
    from svae_tf.data import pipelines as data

    train = data.load_images(
        "mnist", "train", batch_size=32, data_dir=data_dir, take=2048, shuffle=True, repeat=True
    )
    test = data.load_images("mnist", "test", batch_size=256, data_dir=data_dir, take=512)
    keras.utils.set_random_seed(0)
    preset = presets.MNIST if size == "full" else MNIST_REDUCED
    model = model_lib.SymmetricVAE(preset, variant, seed=0)
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    before = model.evaluate(test, verbose=0, return_dict=True)
    history = model.fit(train, epochs=1, steps_per_epoch=200, shuffle=False, verbose=0)
    after = model.evaluate(test, verbose=0, return_dict=True)

    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), (name, values)
    assert all(math.isfinite(x) for x in list(before.values()) + list(after.values())), (before, after)
    for v in model.variables:
        assert np.all(np.isfinite(v.numpy())), v.path
    assert int(model.g_optimizer.iterations) == 200
    if variant in ("vae", "svae_r"):
        # Held-out ELBO (nats per image, dynamically binarized test images): from
        # about -570 at initialisation; 200 steps must gain well over 100 nats.
        assert after["elbo"] > before["elbo"] + 100.0, (before, after)


def test_evaluate_does_not_shift_training_noise():
    """test_step draws from its own SeedGenerator: training with and without a
    held-out evaluation in between gives identical weights."""
    images = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    weights = []
    for evaluate in (False, True):
        model = _build("svae_r")
        model.compile()
        model.fit(images, batch_size=8, epochs=1, verbose=0, shuffle=False)
        if evaluate:
            model.evaluate(images, batch_size=8, verbose=0)
        model.fit(images, batch_size=8, epochs=1, verbose=0, shuffle=False)
        weights.append([v.numpy() for v in model.trainable_variables])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_preset_overrides_survive_json():
    """config.json stores preset overrides as JSON; layer specs come back as Conv/Dense."""
    overrides = {"encoder_convs": (presets.Conv(8, 3, 2),), "disc_z_dense": (presets.Dense(16),),
                 "flow_hidden": (32,), "z_dim": 8}
    config = runs.ModelConfig(preset="mnist", preset_overrides=overrides)
    restored = runs.ModelConfig.from_json(config.to_json())
    preset = presets.get_preset(restored.preset, **restored.preset_overrides)
    assert preset == presets.get_preset("mnist", **overrides)
    assert isinstance(preset.encoder_convs[0], presets.Conv)
    with pytest.raises(ValueError, match="z_size"):
        presets.get_preset("mnist", z_size=3)


@pytest.mark.parametrize("variant,f_data,f_generated", [("svae", -1.0, 1.0), ("gan", -1.0, 1.0),
                                                         ("wgan_gp", 1.0, -1.0)])
def test_discriminator_accuracy_sign(variant, f_data, f_generated):
    """sVAE/ALI/GAN logits estimate log p - log q (negative on data, eq. 11); the IPM
    critic of eq. (25) is high on data. A perfect discriminator scores 1 on both joints."""
    accuracies = _build(variant)._accuracies(tf.constant([f_data]), tf.constant([f_generated]))
    assert {k: float(v[0]) for k, v in accuracies.items()} == {"d_acc_q": 1.0, "d_acc_p": 1.0}


@pytest.mark.parametrize("variant,step", [
    (variant, step) for variant in VARIANTS
    for step in ("discriminator_step", "generator_step", "train_step")
    if variant != "vae" or step == "generator_step"  # the VAE has no discriminator step
])
def test_inference_mode_networks_are_the_trained_ones(variant, step):
    """Every training-mode pass of the encoder/decoder in either update normalises with the
    statistics that batch norm's moving averages then hold (momentum 0 here: they hold the
    last batch's). So the inference-mode encoder and decoder (sampling, RMSE, NLL, export)
    compute what was trained. Fails if a network is called twice in training mode on
    different batches within a step (the moving averages then hold only the last batch's).
    "train_step": a whole step with `shared_samples` (both updates on one draw)."""
    model = _build(variant, shared_samples=step == "train_step")
    for network in (model.encoder, model.decoder):
        for layer in [] if network is None else network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.0
    model.compile(g_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
    calls = {"decode": [], "posterior": []}
    originals = {"decode": model.decode, "posterior": model.posterior}

    def spy(name):
        def call(inputs, training=False):
            out = originals[name](inputs, training)
            if training:
                calls[name].append((inputs, out if name == "decode" else out.distribution.loc))
            return out
        return call

    model.decode, model.posterior = spy("decode"), spy("posterior")
    getattr(model, step)(tf.constant(_images()))
    assert calls["decode"] and (calls["posterior"] or model.encoder is None)
    for inputs, trained in calls["decode"]:
        np.testing.assert_allclose(originals["decode"](inputs, False), trained, rtol=1e-4, atol=1e-5)
    for inputs, trained in calls["posterior"]:
        inferred = originals["posterior"](inputs, False).distribution.loc
        np.testing.assert_allclose(inferred, trained, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ Keras conventions
def test_compile_takes_keras_optimizer_name_and_rejects_what_does_not_apply():
    model = _build("svae")
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    assert isinstance(model.g_optimizer, keras.optimizers.SGD)
    assert isinstance(model.d_optimizer, keras.optimizers.Adam)
    with pytest.raises(TypeError, match="g_optimizer"):
        _build("svae").compile(optimizer="adam", g_optimizer=keras.optimizers.Adam())
    with pytest.raises(TypeError, match="loss"):
        _build("vae").compile(loss="mse")


def _one_recorded_step(**kwargs):
    """(logs, {network: [its generator gradients]}) of one eager svae_r step on fixed data."""
    model = _build("svae_r", **kwargs)
    g_opt = RecordingAdam(1e-3)
    model.compile(g_optimizer=g_opt, d_optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    logs = model.train_on_batch(_images(), return_dict=True)
    grads = {id(v): g for g, v in g_opt.recorder.steps[0]}
    return logs, {name: [grads[id(v)] for v in getattr(model, name).trainable_variables]
                  for name in ("encoder", "decoder")}


def test_latent_term_weight_changes_the_encoder_and_decoder_updates():
    """log q(z_p|x_p) (eq. 29's latent term) is tracked at every weight; its gradient
    reaches the encoder and, through x_p, the decoder: lam_z changes both networks' updates
    (unset, it is lambda's: not the weight-0 step, whose term is a metric only)."""
    logs_0, grads_0 = _one_recorded_step(lam_z=0.0)
    for other in (dict(lam_z=1.0), dict(lam=0.3)):
        logs_1, grads_1 = _one_recorded_step(**other)
        np.testing.assert_allclose(logs_0["log_qz_given_x"], logs_1["log_qz_given_x"], rtol=1e-6)
        for network in ("encoder", "decoder"):
            assert any(not np.allclose(a, b) for a, b in zip(grads_0[network], grads_1[network])), (
                network, other)


@pytest.mark.parametrize("latent_x, decoder_gets_the_term", [
    ("draw", False), ("straight_through", True), ("score_function", True)])
def test_latent_x_draws_reach_the_encoder_and_the_decoder_as_named(latent_x, decoder_gets_the_term):
    """With x ~ p(x|z_p) in eq. (29)'s latent term, lam_z changes the encoder's update; the
    decoder's only for straight_through / score_function: under "draw" the decoder's gradient
    is the one without the term (lam_z = 0, the same draws), to float rounding."""
    logs_0, grads_0 = _one_recorded_step(lam_z=0.0, latent_x=latent_x)
    logs_1, grads_1 = _one_recorded_step(lam_z=1.0, latent_x=latent_x)
    assert logs_0["log_qz_given_x"] == pytest.approx(logs_1["log_qz_given_x"], rel=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(grads_0["encoder"], grads_1["encoder"]))
    same = [np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(grads_0["decoder"], grads_1["decoder"])]
    assert (not all(same)) == decoder_gets_the_term, same
    # The term is taken at a draw: not the value at the decoder mean.
    logs_mean, _ = _one_recorded_step(lam_z=0.0)
    assert logs_0["log_qz_given_x"] != pytest.approx(logs_mean["log_qz_given_x"], rel=1e-3)


def _draws_of_one_step(monkeypatch, **kwargs):
    """[(sampler, shape)] of the noise one eager svae_r train step draws."""
    from svae_tf.model import noise

    drawn, draw = [], noise.Streams._draw

    def spy(self, sampler, batch_size, event_shape):
        drawn.append((sampler.__name__, (int(batch_size), *event_shape)))
        return draw(self, sampler, batch_size, event_shape)

    monkeypatch.setattr(noise.Streams, "_draw", spy)
    model = _build("svae_r", **kwargs)
    model.compile(run_eagerly=True)
    model.train_on_batch(_images())
    monkeypatch.undo()
    return drawn


def test_latent_x_mean_is_the_default_and_draws_no_extra_noise(monkeypatch):
    """"mean" (the default) draws nothing for the latent term: a draw option draws the same noise
    plus exactly one U[0, 1) image per example (the Bernoulli draw), after the mean's draws."""
    assert _build("svae_r").latent_x == "mean" and runs.ModelConfig().latent_x == "mean"
    mean = _draws_of_one_step(monkeypatch)
    assert _draws_of_one_step(monkeypatch, latent_x="mean") == mean
    for latent_x in ("draw", "straight_through", "score_function"):
        drawn = _draws_of_one_step(monkeypatch, latent_x=latent_x)
        assert drawn == mean + [("uniform", (BATCH, 8, 8, 1))], latent_x
    with pytest.raises(ValueError, match="latent_x"):
        _build("svae_r", latent_x="sample")


def test_model_config_round_trips_latent_x_and_reads_old_configs():
    config = runs.ModelConfig(variant="svae_r", latent_x="draw")
    assert runs.ModelConfig.from_json(config.to_json()) == config
    assert runs.build_model(config).latent_x == "draw"
    old = json.loads(runs.ModelConfig().to_json())
    del old["latent_x"]  # a config.json written before the option existed
    assert runs.ModelConfig.from_json(json.dumps(old)).latent_x == "mean"


@pytest.mark.parametrize("shared", [False, True])
def test_shared_samples_decode_once_and_update_the_discriminator_first(shared):
    """With `shared_samples` the discriminator's last update and the encoder/decoder update
    read one draw (one decoder call per step, the same x_p and z_p), and the encoder/decoder
    loss reads f after that update; without it each update draws and decodes its own."""
    model = _build("svae", n_disc=2, shared_samples=shared, discriminator_dropout=0.0)
    model.compile(d_optimizer=keras.optimizers.SGD(0.5))
    decoded, discriminated = [], []
    decode, discriminate = model.decode, model._discriminate

    def decode_spy(z, training=False):
        decoded.append(z)
        return decode(z, training)

    def discriminate_spy(images, z_q, x_p, z_p, training=True):
        weights = [np.array(v.numpy()) for v in model.discriminator.trainable_variables]
        discriminated.append((np.array(x_p), np.array(z_p), weights))
        return discriminate(images, z_q, x_p, z_p, training)

    model.decode, model._discriminate = decode_spy, discriminate_spy
    model.train_step(tf.constant(_images()))
    assert int(model.d_optimizer.iterations) == 2 and int(model.g_optimizer.iterations) == 1
    assert len(decoded) == (2 if shared else 3) and len(discriminated) == 3
    (_, _, w_first), (x_last, z_last, w_last), (x_g, z_g, w_g) = discriminated
    assert np.array_equal(z_last, z_g) == shared and np.array_equal(x_last, x_g) == shared
    assert not any(np.allclose(a, b) for a, b in zip(w_first, w_last))  # updated in between
    assert not any(np.allclose(a, b) for a, b in zip(w_last, w_g))  # f read after the update


@pytest.mark.parametrize("variant", ["svae_r", "gan"])
def test_keras_save_and_load_model_round_trip(variant, tmp_path):
    model = _build(variant, lam=0.5, lam_z=0.0, latent_x="score_function", n_disc=2, shared_samples=True)
    model.compile()
    images = _images()
    model.fit(images, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    path = os.fspath(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is model_lib.SymmetricVAE
    assert (loaded.variant, loaded.lam, loaded.lam_z, loaded.latent_x, loaded.n_disc, loaded.shared_samples,
            loaded.preset) == (variant, 0.5, 0.0, "score_function", 2, True, model.preset)
    # Weights and batch-norm statistics; a .keras file does not hold SeedGenerator states
    # (checkpoints do, runs.make_checkpoint), hence the explicit seeds below.
    seeds = {id(v) for v in runs.seed_states(model) + runs.seed_states(loaded)}
    _assert_same_values([v for v in model.variables if id(v) not in seeds],
                        [v for v in loaded.variables if id(v) not in seeds])
    np.testing.assert_array_equal(loaded.sample(4, seed=3), model.sample(4, seed=3))
    if model.encoder is not None:
        np.testing.assert_array_equal(loaded(images, seed=5), model(images, seed=5))


def test_inference_methods_never_advance_the_training_noise():
    """sample/encode/__call__/predict/elbo between two fits leave the second fit bit-identical;
    an int seed makes them reproducible."""
    images = _images()
    weights = []
    for use_inference in (False, True):
        model = _build("svae_r")
        model.compile()
        model.fit(images, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        if use_inference:
            model.sample(4)
            model.encode(images)
            model(images)
            model.elbo(images)
            model.predict(images, batch_size=BATCH, verbose=0)
            model.predict(images, batch_size=BATCH, verbose=0, seed=1)
        model.fit(images, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        weights.append(_values(model.trainable_variables))
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.sample(4, seed=7), model.sample(4, seed=7))
    assert not np.array_equal(model.sample(4, seed=7), model.sample(4, seed=8))
    np.testing.assert_array_equal(model.predict(images, batch_size=4, verbose=0, seed=2),
                                  model.predict(images, batch_size=4, verbose=0, seed=2))
    assert not np.array_equal(model.sample(4), model.sample(4))  # the inference stream moves on


@pytest.mark.parametrize("variant", ["svae", "gan"])
def test_r1_penalty_is_the_squared_input_gradient_norm_at_data_pairs(variant):
    """Central finite differences of f over every input coordinate, x and z (x only for gan)."""
    model = _build(variant, discriminator_dropout=0.0, r1_weight=1.0)
    images = tf.constant(_images(2))
    z = tf.constant(np.random.default_rng(1).standard_normal((2, 4)).astype("float32"))
    penalty = model._r1_penalty(images, z).numpy()
    inputs = [images.numpy().astype("float64"), z.numpy().astype("float64")]
    if variant == "gan":
        inputs = inputs[:1]

    def f(values):
        args = [tf.constant(v, tf.float32) for v in values]
        return model.discriminator(args if len(args) > 1 else args[0]).numpy().astype("float64")

    expected, h = np.zeros(2), 1e-2
    for k, value in enumerate(inputs):
        for index in np.ndindex(value.shape[1:]):
            up, down = [v.copy() for v in inputs], [v.copy() for v in inputs]
            up[k][(slice(None), *index)] += h
            down[k][(slice(None), *index)] -= h
            expected += ((f(up) - f(down)) / (2 * h)) ** 2
    np.testing.assert_allclose(penalty, expected, rtol=2e-2, atol=1e-6)
    assert penalty.min() > 0


def test_a_config_of_a_removed_setting_loads_when_it_was_off_and_names_it_otherwise():
    config = json.loads(runs.ModelConfig(variant="svae").to_json())
    assert runs.ModelConfig.from_json(json.dumps({**config, "instance_noise": 0.0,
                                                   "instance_noise_steps": 10000})).variant == "svae"
    with pytest.raises(ValueError, match="instance_noise=0.1: this setting was removed"):
        runs.ModelConfig.from_json(json.dumps({**config, "instance_noise": 0.1}))
    restored = model_lib.SymmetricVAE.from_config(
        {**_build("svae").get_config(), "instance_noise": 0.0, "instance_noise_steps": 10000})
    assert restored.variant == "svae"


# ------------------------------------------------------------------ weight averaging
def test_ema_weights_average_the_trained_ones_and_are_saved_and_loaded(tmp_path):
    """a_t = d_t a + (1 - d_t) w after each encoder/decoder update, d_t = min(decay, (1+t)/(10+t));
    checkpoints, .keras files and `runs.load_model` (which puts them in place) keep them."""
    model = _build("svae", ema_decay=0.5, seed=5, init_seed=0)
    model.compile(run_eagerly=True)
    assert len(model.ema_weights) == len(model.generator_variables)
    expected = _values(model.generator_variables)
    for t in range(2):
        model.train_on_batch(_images())
        d = min(0.5, (1 + t) / (10 + t))
        expected = [d * a + (1 - d) * w for a, w in zip(expected, _values(model.generator_variables))]
    for average, value in zip(model.ema_weights, expected):
        np.testing.assert_allclose(average.numpy(), value, rtol=1e-5, atol=1e-6)
    trained = _values(model.generator_variables)
    assert not all(np.allclose(a, w) for a, w in zip(expected, trained))
    averages = _values(model.ema_weights)
    with model.ema_scope():
        for variable, value in zip(model.generator_variables, averages):
            np.testing.assert_array_equal(variable.numpy(), value)
    for variable, value in zip(model.generator_variables, trained):  # the trained weights are back
        np.testing.assert_array_equal(variable.numpy(), value)

    # A checkpoint restores the averages (they are not the model's layers' variables).
    restored = _build("svae", ema_decay=0.5, seed=5, init_seed=1)
    restored.compile(run_eagerly=True)
    path = runs.make_checkpoint(model).write(os.fspath(tmp_path / "ckpt"))
    runs.make_checkpoint(restored).read(path).assert_consumed()
    _assert_same_values(model.ema_weights, restored.ema_weights)
    # A .keras file too.
    model.save(os.fspath(tmp_path / "m.keras"))
    _assert_same_values(model.ema_weights, keras.saving.load_model(os.fspath(tmp_path / "m.keras")).ema_weights)
    # runs.load_model (evaluation, export, sampling) uses the averages.
    model_dir = os.fspath(tmp_path / "run")
    runs.save_config(model_dir, runs.ModelConfig(preset="mnist", variant="svae", ema_decay=0.5))
    run_model = runs.build_model(runs.load_config(model_dir))
    run_model.compile(run_eagerly=True)
    run_model.train_on_batch(_images(4, (28, 28, 1)))
    runs.checkpoint_manager(runs.make_checkpoint(run_model), model_dir).save()
    loaded = runs.load_model(model_dir)
    _assert_same_values(loaded.generator_variables, run_model.ema_weights)
    with run_model.ema_scope():
        np.testing.assert_array_equal(loaded.sample(4, seed=3), run_model.sample(4, seed=3))
    with pytest.raises(ValueError, match="ema_decay"):
        _build("svae", ema_decay=1.0)
