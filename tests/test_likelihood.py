"""Tests of svae_tf.evaluation.likelihood: IWAE / ELBO bounds on an exact toy model and a tiny SymmetricVAE."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from svae_tf.model import distributions, networks, objectives, presets
from svae_tf.evaluation import likelihood, metrics
from svae_tf.model.symmetric_vae import SymmetricVAE

tfd = tfp.distributions


# ------------------------------------------------------ linear Gaussian toy model
# p(z) = N(0, I_2), p(x|z) = N(W z + b, s^2 I_3): log p(x) = log N(x; b, W W^T + s^2 I) exactly.
W = np.array([[1.0, -0.5], [0.3, 2.0], [-1.2, 0.7]])
B = np.array([0.2, -0.1, 0.5])
S = 0.6
X = np.array([1.0, -2.0, 0.7])


def _exact_log_px(x):
    cov = W @ W.T + S**2 * np.eye(3)
    return tfd.MultivariateNormalTriL(B, tf.linalg.cholesky(cov)).log_prob(x).numpy()


def _exact_posterior(x):
    precision = np.eye(2) + W.T @ W / S**2
    cov = np.linalg.inv(precision)
    mean = cov @ W.T @ (x - B) / S**2
    return mean, cov


def _toy_log_weights_fn(q, x):
    def log_px_given_z(z):  # z [k, B, 2]
        loc = tf.einsum("ij,kbj->kbi", W, z) + B
        return tfd.MultivariateNormalDiag(loc, S * tf.ones(3, tf.float64)).log_prob(x)

    def fn(noise):  # [k, B, 2]
        t = distributions.log_weight_terms(q, noise, log_px_given_z)
        return objectives.log_weight(t["log_px_given_z"], t["log_pz"], t["log_qz"])

    return fn


def _toy_bounds(q, x, num_samples, chunk_size, batch, seed=(3, 4)):
    fn = _toy_log_weights_fn(q, x)  # eager: cheaper than tracing once per (K, chunk)
    iwae, elbo = likelihood.streaming_bounds(
        fn, num_samples, chunk_size, batch, 2, tf.constant(seed, tf.int64), dtype=tf.float64)
    return iwae.numpy(), elbo.numpy()


def test_exact_posterior_gives_exact_log_px_for_every_k():
    mean, cov = _exact_posterior(X)
    q = tfd.MultivariateNormalTriL(mean, tf.linalg.cholesky(cov))  # a TransformedDistribution
    for k, chunk in [(1, 1), (7, 3), (50, 50)]:
        iwae, elbo = _toy_bounds(q, X, k, chunk, batch=4)
        np.testing.assert_allclose(iwae, _exact_log_px(X), atol=1e-9)
        np.testing.assert_allclose(elbo, _exact_log_px(X), atol=1e-9)


def test_bound_below_exact_log_px_and_tightens_with_k():
    mean, cov = _exact_posterior(X)
    # A poor diagonal proposal: shifted mean, too wide.
    q = tfd.MultivariateNormalDiag(mean + 0.7, 1.5 * np.sqrt(np.diag(cov)))
    log_px = _exact_log_px(X)
    copies = 400  # independent replicates (each "image" gets its own noise)
    means = {}
    for k in (1, 10, 100, 1000):
        iwae, elbo = _toy_bounds(q, X, k, chunk_size=64, batch=copies)
        assert np.all(iwae >= elbo - 1e-12)  # Jensen, same samples
        stderr = iwae.std() / math.sqrt(copies)
        assert iwae.mean() <= log_px + 3 * stderr + 1e-9
        means[k] = iwae.mean()
    assert means[1] < means[10] < means[100] < means[1000]
    assert log_px - means[1000] < 0.05 * (log_px - means[1])


def test_sampler_is_mean_plus_scale_times_noise_and_its_density_is_q():
    mean, cov = _exact_posterior(X)
    scale_tril = np.linalg.cholesky(cov)
    noise = tf.random.stateless_normal([5, 3, 2], seed=(1, 1), dtype=tf.float64)
    for q, scale in ((tfd.MultivariateNormalTriL(mean, scale_tril), scale_tril),
                     (tfd.MultivariateNormalDiag(mean, [0.5, 2.0]), np.diag([0.5, 2.0])),
                     (tfd.Independent(tfd.Normal(mean, [0.5, 2.0]), 1), np.diag([0.5, 2.0]))):
        z = distributions.reparameterized_sample(q, noise)  # [k, B, 2]
        np.testing.assert_allclose(z, mean + np.einsum("ij,kbj->kbi", scale, noise), rtol=1e-12)
        np.testing.assert_allclose(q.log_prob(z), q.log_prob(tf.constant(z.numpy())), rtol=1e-10)
    with pytest.raises(TypeError, match="diagonal Gaussian"):
        distributions.reparameterized_sample(tfd.StudentT(3.0, 0.0, 1.0), noise)


# ------------------------------------------------------------ a tiny SymmetricVAE
@pytest.fixture(scope="module")
def tiny_model():
    return SymmetricVAE(presets.tiny(), variant="svae_r", seed=1)


@pytest.fixture(scope="module")
def images():
    x = tf.random.stateless_uniform([8, 8, 8, 1], seed=(5, 6))
    return tf.cast(x < 0.4, tf.float32)  # binary: its own Bernoulli target


def test_iwae_at_least_elbo_and_nondecreasing_in_k(tiny_model, images):
    x = tf.tile(images[:4], [4, 1, 1, 1])  # 16 images: 4 replicates of 4 digits
    means = []
    for k in (1, 10, 100):
        ev = likelihood.LikelihoodEvaluator(tiny_model, k)
        iwae, elbo = (t.numpy() for t in ev.bounds(x, x, tf.constant([0, 7], tf.int64)))
        assert np.all(iwae >= elbo - 1e-9)
        if k == 1:
            np.testing.assert_allclose(iwae, elbo, atol=1e-9)
        means.append(iwae.mean())
    assert means[0] < means[1] < means[2]
    assert np.all(np.isfinite(means)) and means[2] < 0.0


def test_chunked_equals_unchunked(tiny_model, images):
    seed = tf.constant([2, 9], tf.int64)
    k = 10
    all_at_once = likelihood.log_weights(tiny_model, images, images, k, seed)  # [K, B]
    expected_iwae = metrics.importance_weighted_bound(all_at_once).numpy()
    expected_elbo = tf.reduce_mean(all_at_once, axis=0).numpy()
    for chunk in (3, 10):
        iwae, elbo = likelihood.LikelihoodEvaluator(tiny_model, k, chunk_size=chunk).bounds(images, images, seed)
        np.testing.assert_allclose(iwae, expected_iwae, rtol=1e-5)
        np.testing.assert_allclose(elbo, expected_elbo, rtol=1e-5)


def test_log_q_matches_model_posterior(tiny_model, images):
    noise = tf.random.stateless_normal([1, 8, 4], seed=(1, 2))
    q = tiny_model.posterior(images)
    z = distributions.reparameterized_sample(q, noise[0])
    fn = likelihood.model_log_weights_fn(tiny_model, images, images)
    log_px = distributions.log_likelihood("bernoulli", tiny_model.decode(z), images)
    expected = log_px + distributions.prior(4).log_prob(z) - q.log_prob(z)
    np.testing.assert_allclose(fn(noise)[0], expected, rtol=1e-5, atol=1e-4)


def test_evaluate_and_summarize(tiny_model, images):
    ds = tf.data.Dataset.from_tensor_slices(images).batch(3)  # uneven last batch
    ev = likelihood.LikelihoodEvaluator(tiny_model, 6, max_chunk_elements=8)
    out = ev.evaluate(ds, seed=1)
    assert out["iwae"].shape == (8,) and np.all(out["iwae"] >= out["elbo"] - 1e-9)
    again = ev.evaluate(ds, seed=1)
    np.testing.assert_array_equal(out["iwae"], again["iwae"])  # deterministic given the seed
    summary = likelihood.summarize(out, 64)
    assert summary["nll_nats"] == pytest.approx(-out["iwae"].mean())
    assert summary["nll_bits_per_dim"] == pytest.approx(summary["nll_nats"] / (64 * math.log(2)))
    assert -summary["elbo"] >= summary["nll_nats"]


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def test_eight_bit_head_bits_per_dim_at_a_known_likelihood():
    """A discretized-logistic VAE whose likelihood is known in closed form.

    Every encoder and decoder weight is zero except the decoder's output bias, so q(z|x) is
    N(0, I) = p(z) and p(x|z) does not depend on z: each log weight is log p(x), and the IWAE
    bound and the ELBO both equal it for any K. Sub-pixel level k in 0..255 of channel c has
    the probability of the bin [k - 1/2, k + 1/2] (the end bins open) under a logistic with
    mean 255 mu_c and scale 255 s_c, mu_c = sigmoid(raw loc), s_c = exp(log scale).
    """
    model = SymmetricVAE(presets.tiny((8, 8, 3), likelihood="discretized_logistic", flow="none"),
                         variant="vae")
    u = tf.random.stateless_uniform([2, 8, 8, 3], seed=(0, 1)).numpy()
    u[0, 0, 0], u[1, 0, 0] = 0.0, 1.0  # the two end bins
    x = np.round(255 * u) / 255
    likelihood.reconstruct(model, x)  # builds the networks
    for weight in model.encoder.weights + model.decoder.weights:
        weight.assign(tf.zeros_like(weight))
    raw_loc, log_scale = np.array([0.4, -0.2, 0.0]), np.array([-3.0, -2.5, -4.0])
    model.decoder.get_layer("params").bias.assign(np.concatenate([raw_loc, log_scale]))

    levels, mean, scale = 255 * x, 255 * _sigmoid(raw_loc), 255 * np.exp(log_scale)
    upper = np.where(levels == 255, 1.0, _sigmoid((levels + 0.5 - mean) / scale))
    lower = np.where(levels == 0, 0.0, _sigmoid((levels - 0.5 - mean) / scale))
    log_px = np.log(upper - lower).sum(axis=(1, 2, 3))  # [2], nats
    out = likelihood.LikelihoodEvaluator(model, 4).evaluate([tf.constant(x, tf.float32)])
    np.testing.assert_allclose(out["iwae"], log_px, rtol=1e-5)
    np.testing.assert_allclose(out["elbo"], log_px, rtol=1e-5)
    summary = likelihood.summarize(out, 8 * 8 * 3)
    expected_bits = -log_px.mean() / (8 * 8 * 3 * np.log(2.0))
    assert summary["nll_bits_per_dim"] == pytest.approx(expected_bits, rel=1e-5)
    # The reconstruction is the decoder's location, sigmoid(raw loc) per channel.
    np.testing.assert_allclose(likelihood.reconstruct(model, x), np.broadcast_to(_sigmoid(raw_loc), x.shape),
                               rtol=1e-6)


def test_decoder_only_variant_has_no_bound():
    with pytest.raises(ValueError, match="no encoder"):
        likelihood.LikelihoodEvaluator(SymmetricVAE(presets.tiny(), variant="gan"), 5)


def test_reconstruct_with_batch_statistics_leaves_the_moving_averages_alone(tiny_model, images):
    """Training mode normalises by the batch (another result than inference mode) but the
    moving statistics that sampling and export use come back unchanged."""
    before = [v.numpy().copy() for v in tiny_model.non_trainable_variables]
    inference = likelihood.reconstruct(tiny_model, images).numpy()
    batch = likelihood.reconstruct(tiny_model, images, batch_stats=True).numpy()
    assert not np.allclose(inference, batch, atol=1e-6)
    for old, variable in zip(before, tiny_model.non_trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy(), err_msg=variable.path)
    np.testing.assert_array_equal(inference, likelihood.reconstruct(tiny_model, images).numpy())


def test_moving_statistics_kept_restores_batch_norm_only():
    """Every batch norm of a nested model is found (2 per layer) and restored on exit,
    also when the block raises; trainable weights changed inside stay changed."""
    inner = keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()])
    outer = keras.Sequential([keras.Input((2,)), inner, keras.layers.BatchNormalization()])
    statistics = networks.moving_statistics(outer)
    assert len(statistics) == 4
    before = [v.numpy().copy() for v in statistics]
    x = tf.random.stateless_normal([16, 2], seed=(1, 2)) + 3.0
    with pytest.raises(RuntimeError):
        with networks.moving_statistics_kept(outer):
            outer(x, training=True)
            assert not np.allclose(statistics[0].numpy(), before[0])  # training mode moved them
            inner.layers[0].kernel.assign(tf.zeros([2, 3]))
            raise RuntimeError
    for old, variable in zip(before, statistics):
        np.testing.assert_array_equal(old, variable.numpy())
    np.testing.assert_array_equal(inner.layers[0].kernel.numpy(), np.zeros([2, 3]))


def test_reconstruct_with_batch_statistics_uses_the_training_decoder_batch(tiny_model, images):
    """sVAE-r decodes [z_p; z_q] in one training-mode call: `batch_stats` normalises the
    reconstructions with that mixture's statistics, not with the z_q half alone."""
    noise = tf.zeros([images.shape[0], tiny_model.preset.z_dim])
    with networks.moving_statistics_kept(tiny_model.encoder, tiny_model.decoder):
        _, z = tiny_model.encode(images, noise=noise, training=True)
        z_p = tf.random.stateless_normal(z.shape, seed=(3, 0))
        mixture = tiny_model.decoder(tf.concat([z_p, z], axis=0), training=True)[len(z):]
        alone = tiny_model.decoder(z, training=True)
    out = likelihood.reconstruct(tiny_model, images, batch_stats=True, seed=3).numpy()
    np.testing.assert_allclose(out, tf.sigmoid(mixture), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, tf.sigmoid(alone), atol=1e-4)


def test_recompute_moving_statistics_is_the_mean_of_the_batch_statistics():
    layer = keras.layers.BatchNormalization(momentum=0.9)
    batches = [tf.random.stateless_normal([8, 3], seed=(i, 1)) * (i + 1) + i for i in range(3)]
    with pytest.raises(ValueError, match="build the networks first"):
        networks.recompute_moving_statistics([layer], lambda b, _: layer(b, training=True), batches)
    layer.build((None, 3))
    count = networks.recompute_moving_statistics([layer], lambda b, _: layer(b, training=True), batches)
    assert count == 3 and layer.momentum == 0.9  # restored
    np.testing.assert_allclose(layer.moving_mean, np.mean([np.mean(b, axis=0) for b in batches], axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance, np.mean([np.var(b, axis=0) for b in batches], axis=0),
                               rtol=1e-5)


def test_each_batch_of_a_recompute_draws_its_own_noise(images):
    """The recompute is one traced function called per batch: batch b must still get noise
    of its own (a traced int seed would repeat batch 0's), so two copies of one batch give
    other decoder statistics than the batch alone, and the same encoder statistics (x only)."""
    model = SymmetricVAE(presets.tiny(), variant="svae_r", seed=1)
    model.compile()
    model.fit(images, batch_size=8, epochs=1, verbose=0)

    def statistics(batches):
        model.recompute_batch_norm_statistics(batches, seed=5)
        return ([v.numpy() for v in networks.moving_statistics(model.encoder)],
                [v.numpy() for v in networks.moving_statistics(model.decoder)])

    (enc_one, dec_one), (enc_two, dec_two) = statistics([images]), statistics([images, images])
    assert dec_one and enc_one
    for a, b in zip(enc_one, enc_two):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(dec_one, dec_two))


def test_recomputed_statistics_make_inference_mode_the_training_pass(images):
    """After recomputing from one batch, sVAE-r's networks in inference mode give what the
    train step's forward pass gives on that batch with the same noise (encoder on x,
    decoder on [z_p; z_q])."""
    model = SymmetricVAE(presets.tiny(), variant="svae_r", seed=1)
    model.compile()
    model.fit(images, batch_size=8, epochs=2, verbose=0)  # moving averages lag the weights
    assert model.recompute_batch_norm_statistics([images], seed=5) == 1

    def joints(training):
        with networks.moving_statistics_kept(model.encoder, model.decoder), model.streams.drawing_from(5):
            return model._joints(images, training=training)

    trained, inference = joints(True), joints(False)
    for name in ("z_q", "x_p", "params_q"):
        np.testing.assert_allclose(getattr(inference, name), getattr(trained, name), rtol=1e-3, atol=1e-4,
                                   err_msg=name)
