"""Tests for svae_tf.model.distributions: prior, posterior (+ flow), likelihood heads."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy.special import expit, log_expit

from svae_tf.model import distributions, flows

tfd = tfp.distributions

LIKELIHOODS = distributions.LIKELIHOODS
SHAPE = (3, 4, 4, 2)  # [B, H, W, C]
NUM_DIMS = 4 * 4 * 2


def _images(seed=0, binary=False):
    rng = np.random.default_rng(seed)
    if binary:
        return rng.integers(0, 2, SHAPE).astype("float32")
    return (rng.integers(0, 256, SHAPE) / 255.0).astype("float32")


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _perfect_params(likelihood, images):
    """Decoder outputs that put (nearly) all mass on `images`' targets."""
    if likelihood == "bernoulli":
        return 12.0 * (2.0 * images - 1.0)  # logits +-12
    if likelihood == "discretized_logistic":
        loc = np.clip(images, 1e-6, 1 - 1e-6)
        return np.concatenate([_logit(loc), np.full_like(images, -7.0)], -1)  # min log-scale
    # Gaussians on dequantized y = (255 x + u) / 256: centre of the dequantization bin.
    loc = (255.0 * images + 0.5) / 256.0
    if likelihood == "gaussian_fixed":
        return _logit(loc)
    # Best Gaussian for U[bin]: sigma = bin width / sqrt(12).
    log_scale = np.full_like(images, math.log(1.0 / (256.0 * math.sqrt(12.0))))
    return np.concatenate([_logit(loc), log_scale], -1)


def _target(likelihood, images, seed=1):
    noise = tf.random.stateless_uniform(SHAPE, seed=[seed, 0])
    return distributions.likelihood_target(likelihood, images, noise)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_log_likelihood_of_a_perfect_decoder_is_high(likelihood):
    images = _images(binary=likelihood == "bernoulli")
    params = tf.constant(_perfect_params(likelihood, images), tf.float32)
    assert params.shape[-1] == distributions.param_channels(likelihood, SHAPE[-1])
    target = _target(likelihood, images)
    log_lik = distributions.log_likelihood(likelihood, params, target)
    assert log_lik.shape == [SHAPE[0]]
    per_dim = log_lik.numpy() / NUM_DIMS
    # Nats per dimension. Bernoulli: log sigma(12) ~ -6e-6. Discretized logistic at
    # the minimum scale exp(-7) * 255 = 0.23 levels: ~ -0.24 inside, -0.11 at edges.
    # Gaussian at sigma = width / sqrt(12) of a U[bin]: -0.5 log(2 pi e / 12) = -0.18 on
    # average over the dequantization noise (per image of 32 dims it varies by ~0.1).
    # Gaussian with the fixed sigma = 0.1: -log(0.1 sqrt(2 pi)) - log 256 = -4.16, the
    # best that head can do. Chance is -log 2 (Bernoulli), -log 256 = -5.55 otherwise.
    best = {"bernoulli": -1e-4, "discretized_logistic": -0.3, "gaussian": -0.5, "gaussian_fixed": -4.2}
    assert np.all(per_dim > best[likelihood]), per_dim
    if likelihood == "gaussian_fixed":
        np.testing.assert_allclose(
            per_dim, -math.log(distributions.GAUSSIAN_FIXED_SCALE * math.sqrt(2 * math.pi)) - math.log(256), atol=0.01
        )
    # A decoder predicting other images scores much lower.
    other = _images(seed=5, binary=likelihood == "bernoulli")
    wrong = distributions.log_likelihood(
        likelihood, tf.constant(_perfect_params(likelihood, other), tf.float32), target
    )
    assert np.all(wrong.numpy() < log_lik.numpy() - NUM_DIMS * 0.1)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_shapes_and_mean(likelihood):
    channels = distributions.param_channels(likelihood, SHAPE[-1])
    params = tf.random.stateless_normal(SHAPE[:-1] + (channels,), seed=[0, 1])
    dist = distributions.likelihood_distribution(likelihood, params)
    assert dist.batch_shape == [SHAPE[0]] and dist.event_shape == list(SHAPE[1:])
    mean = distributions.likelihood_mean(likelihood, params)
    assert mean.shape == SHAPE
    assert np.all((mean.numpy() >= 0) & (mean.numpy() <= 1))
    target = _target(likelihood, _images())
    assert distributions.log_likelihood(likelihood, params, target).shape == [SHAPE[0]]


def test_unknown_likelihood_raises():
    with pytest.raises(ValueError, match="likelihood"):
        distributions.param_channels("poisson", 1)
    with pytest.raises(ValueError, match="likelihood"):
        distributions.likelihood_distribution("poisson", tf.zeros([1, 2, 2, 1]))


@pytest.mark.parametrize("loc", [0.0, 1e-3, 0.2, 100.0 / 255.0, 0.51, 0.97, 1.0])
@pytest.mark.parametrize("log_scale", [-7.0, -4.0, -1.0, 1.0, 12.0, 100.0])
def test_discretized_logistic_pmf_sums_to_one(loc, log_scale):
    levels = np.arange(256, dtype="float32").reshape(256, 1, 1, 1)
    raw_loc = _logit(np.clip(loc, 1e-7, 1 - 1e-7))
    params = tf.constant(np.broadcast_to(np.array([raw_loc, log_scale], "float32"), (256, 1, 1, 2)))
    log_probs = distributions.log_likelihood("discretized_logistic", params, tf.constant(levels)).numpy()
    assert log_probs.shape == (256,)
    assert np.all(np.isfinite(log_probs))
    np.testing.assert_allclose(np.sum(np.exp(log_probs.astype(np.float64))), 1.0, atol=1e-4)
    if log_scale < 80.0:  # the distribution object holds the scale, which overflows there
        dist = distributions.likelihood_distribution("discretized_logistic", params)
        np.testing.assert_allclose(dist.log_prob(levels), log_probs, rtol=1e-5, atol=1e-3)
    if log_scale == -7.0:  # a peaked pmf has its mode at the level nearest 255 * loc
        assert np.argmax(log_probs) == int(np.round(255.0 * loc))


def _logistic_pmf_reference(levels, loc, log_scale):
    """log P(level) of the discretized logistic in float64, as a difference of CDFs.

    Level k of 0..255 owns (k - 1/2, k + 1/2] around 255 * sigmoid(raw loc) (here `loc`
    is already in [0, 1]) with scale 255 exp(max(log_scale, -7)); the edge levels take
    the tails. The CDFs are differenced on the side of the bin away from the mode
    (survival functions right of it), where float64 keeps ~1e-16 of the larger value.
    Returns (log P, the ratio P / larger CDF value: the reference's error in log P is
    about 1e-16 / ratio).
    """
    levels, loc, log_scale = (np.asarray(a, np.float64) for a in (levels, loc, log_scale))
    mean, scale = 255.0 * loc, 255.0 * np.exp(np.maximum(log_scale, -7.0))
    upper, lower = (levels + 0.5 - mean) / scale, (levels - 0.5 - mean) / scale
    right = lower > 0
    big = np.where(right, expit(-lower), expit(upper))
    mass = np.where(right, expit(-lower) - expit(-upper), expit(upper) - expit(lower))
    with np.errstate(divide="ignore"):
        log_p = np.where(levels == 0, log_expit(upper),
                         np.where(levels == 255, log_expit(-lower), np.log(mass)))
    ratio = np.where((levels == 0) | (levels == 255), 1.0, mass / np.maximum(big, 1e-300))
    return log_p, ratio


def _tfp_cdf_difference_log_prob(params, target):
    """log P(x|z) [B] from TFP's QuantizedDistribution of a Logistic: the bin mass as a
    difference of (log-)CDFs, the construction `log_likelihood` is compared against."""
    raw_loc, log_scale = tf.split(tf.constant(params, tf.float32), 2, axis=-1)
    logistic = tfd.Logistic(255.0 * tf.sigmoid(raw_loc) - 0.5, 255.0 * tf.exp(tf.maximum(log_scale, -7.0)))
    dist = tfd.Independent(tfd.QuantizedDistribution(logistic, low=0.0, high=255.0), 3)
    return dist.log_prob(tf.constant(target, tf.float32)).numpy()


# Pixels of the CIFAR-10 sVAE-r decoder at its initial weights (real CIFAR-10 training
# batch, seed 0): (raw loc, log-scale, target level). Scales of 255 e^10 .. 255 e^17 levels
# spread the mass so thin that one bin (9e-9 .. 3e-11) is below float32's resolution of
# the CDF near 1/2; the CDF difference is 0 and its log -inf.
WIDE_PIXELS = [(-3.4355164, 11.586066, 182.0), (2.002001, 12.253237, 63.0),
               (-1.9586343, 17.173998, 82.0)]


def test_discretized_logistic_is_finite_where_the_cdf_difference_underflows():
    raw_loc, log_scale, level = (np.array(c, np.float32) for c in zip(*WIDE_PIXELS))
    params = np.stack([raw_loc, log_scale], -1).reshape(-1, 1, 1, 2)
    target = level.reshape(-1, 1, 1, 1)
    assert np.all(np.isneginf(_tfp_cdf_difference_log_prob(params, target)))

    params_t = tf.constant(params)
    with tf.GradientTape() as tape:
        tape.watch(params_t)
        log_p = distributions.log_likelihood("discretized_logistic", params_t, tf.constant(target))
    expected, ratio = _logistic_pmf_reference(level, 1 / (1 + np.exp(-raw_loc.astype(np.float64))), log_scale)
    assert np.all(ratio > 1e-12)
    # -18.5 .. -24.1 nats: about the log-density at the bin times its width.
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=1e-5)
    assert np.all(np.isfinite(tape.gradient(log_p, params_t).numpy()))


def test_discretized_logistic_matches_the_closed_form_and_the_cdf_difference():
    rng = np.random.default_rng(3)
    n = 4096
    raw_loc = rng.normal(0.0, 4.0, n).astype(np.float32)  # locations up to ~1e-7 from the edges
    log_scale = rng.uniform(-9.0, 20.0, n).astype(np.float32)  # below the floor .. far too wide
    level = rng.integers(0, 256, n).astype(np.float32)
    level[:256], level[256:512] = 0.0, 255.0  # the edge bins
    params = np.stack([raw_loc, log_scale], -1).reshape(n, 1, 1, 2)
    target = level.reshape(n, 1, 1, 1)
    params_t = tf.constant(params)
    with tf.GradientTape() as tape:
        tape.watch(params_t)
        log_p = distributions.log_likelihood("discretized_logistic", params_t, tf.constant(target))
    assert np.all(np.isfinite(tape.gradient(log_p, params_t).numpy()))
    log_p = log_p.numpy().astype(np.float64)
    assert np.all(np.isfinite(log_p)) and np.all(log_p <= 0.0)

    # The closed form (float64 CDF differences) where float64 resolves the bin.
    loc = tf.sigmoid(raw_loc).numpy()  # the float32 location the head uses
    expected, ratio = _logistic_pmf_reference(level, loc, log_scale)
    exact = ratio > 1e-11
    assert exact.mean() > 0.8  # the rest: bins thinner than float64 resolves
    np.testing.assert_allclose(log_p[exact], expected[exact], rtol=1e-4, atol=1e-4)

    # TFP's CDF difference, wherever it was finite: the same probabilities.
    old = _tfp_cdf_difference_log_prob(params, target).astype(np.float64)
    finite = np.isfinite(old)
    assert 0.5 < finite.mean() < 1.0  # the wide scales underflow there
    np.testing.assert_allclose(np.exp(log_p[finite]), np.exp(old[finite]), rtol=0, atol=1e-6)
    resolved = finite & (np.exp(old) > 1e-3)  # masses float32 CDF differences resolve
    np.testing.assert_allclose(log_p[resolved], old[resolved], rtol=0, atol=1e-3)


def test_discretized_logistic_target_is_integer_levels():
    images = _images()
    target = distributions.likelihood_target("discretized_logistic", images, tf.zeros(SHAPE))
    np.testing.assert_array_equal(target, np.round(images * 255.0))
    assert target.numpy().min() >= 0 and target.numpy().max() <= 255


def test_bernoulli_target_binarization():
    binary = _images(binary=True)
    for seed in range(3):
        noise = tf.random.stateless_uniform(SHAPE, seed=[seed, 7])
        np.testing.assert_array_equal(distributions.likelihood_target("bernoulli", binary, noise), binary)
    # Edge cases of U[0, 1): u = 0 keeps 0 at 0; u -> 1 keeps 1 at 1.
    np.testing.assert_array_equal(distributions.likelihood_target("bernoulli", binary, tf.zeros(SHAPE)), binary)
    almost_one = tf.fill(SHAPE, np.float32(1.0 - 2**-24))
    np.testing.assert_array_equal(distributions.likelihood_target("bernoulli", binary, almost_one), binary)
    # Grey levels are binarized with P(1) = x (dynamic binarization).
    grey = np.full((20000, 1, 1, 1), 0.3, "float32")
    noise = tf.random.stateless_uniform(grey.shape, seed=[0, 0])
    target = distributions.likelihood_target("bernoulli", grey, noise).numpy()
    assert set(np.unique(target)) <= {0.0, 1.0}
    np.testing.assert_allclose(target.mean(), 0.3, atol=0.02)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_fixed"])
def test_gaussian_dequantization_and_offset(likelihood):
    images = _images()
    noise = tf.random.stateless_uniform(SHAPE, seed=[2, 3])
    target = distributions.likelihood_target(likelihood, images, noise).numpy()
    np.testing.assert_allclose(target, (255.0 * images + noise.numpy()) / 256.0, rtol=1e-6)
    assert target.min() >= 0.0 and target.max() < 1.0
    # The bin of level k is [k / 256, (k + 1) / 256).
    np.testing.assert_array_equal(np.floor(target * 256.0), np.round(images * 255.0))

    channels = distributions.param_channels(likelihood, SHAPE[-1])
    params = tf.random.stateless_normal(SHAPE[:-1] + (channels,), seed=[0, 1])
    if likelihood == "gaussian":
        raw_loc, log_scale = np.split(params.numpy(), 2, -1)
        scale = np.exp(np.maximum(log_scale, -7.0))
    else:
        raw_loc, scale = params.numpy(), distributions.GAUSSIAN_FIXED_SCALE
    loc = 1.0 / (1.0 + np.exp(-raw_loc))
    density = -0.5 * ((target - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
    expected = density.reshape(SHAPE[0], -1).sum(-1) - NUM_DIMS * np.log(256.0)  # -D log 256
    np.testing.assert_allclose(
        distributions.log_likelihood(likelihood, params, tf.constant(target)), expected, rtol=1e-5
    )


def test_prior():
    p = distributions.prior(5)
    assert p.event_shape == [5]
    np.testing.assert_allclose(p.log_prob(tf.zeros([5])), -2.5 * np.log(2 * np.pi), rtol=1e-6)


@pytest.mark.parametrize("kind", ["none", "coupling", "maf", "iaf"])
def test_reparameterized_sample_and_log_prob(kind):
    z_dim, batch_size = 3, 5
    keras.utils.set_random_seed(0)
    bijector = flows.Flow(kind, z_dim, 2, (8,)).bijector()
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((batch_size, z_dim))
    log_var = rng.uniform(-2, 1, (batch_size, z_dim))
    params = tf.constant(np.concatenate([mu, log_var], -1), tf.float32)
    noise = tf.constant(rng.standard_normal((batch_size, z_dim)), tf.float32)
    q = distributions.posterior(params, bijector)
    assert q.batch_shape == [batch_size] and q.event_shape == [z_dim]
    z = distributions.reparameterized_sample(q, noise)

    z0 = mu + np.exp(0.5 * log_var) * noise.numpy()
    base_log_prob = np.sum(-0.5 * noise.numpy() ** 2 - 0.5 * log_var - 0.5 * np.log(2 * np.pi), -1)
    if kind == "none":
        np.testing.assert_allclose(z, z0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(q.log_prob(z), base_log_prob, rtol=1e-5)
    else:
        np.testing.assert_allclose(z, bijector.forward(tf.constant(z0, tf.float32)), atol=1e-5)
        expected = base_log_prob - bijector.forward_log_det_jacobian(
            tf.constant(z0, tf.float32), event_ndims=1
        ).numpy()
        np.testing.assert_allclose(q.log_prob(z), expected, atol=1e-4)  # cached (z0, z)
        np.testing.assert_allclose(q.log_prob(tf.constant(z.numpy())), expected, atol=1e-4)  # inverted

    # Reparameterization: gradients reach the encoder output.
    with tf.GradientTape() as tape:
        tape.watch(params)
        z = distributions.reparameterized_sample(distributions.posterior(params, bijector), noise)
    grad = tape.gradient(z, params)
    assert np.all(np.abs(grad.numpy()[:, :z_dim]) > 0)


# ------------------------------------------------ eq. (29)'s latent term at x ~ p(x|z)
_W = np.array([[1.5], [-2.0], [0.7]], np.float32)  # a toy "encoder": 3 pixels -> 1


def _toy_log_q(w):
    """A toy log q(z|x) [N] of x [N, 1, 3, 1] and z [N, 1], nonlinear in x, with weights w."""
    def log_q(x, z):
        h = tf.reshape(x, [-1, 3]) @ w  # [N, 1]
        return -tf.reduce_sum(tf.square(h - z) + tf.sin(3.0 * h), axis=-1)
    return log_q


def _g(x, z=0.25):  # _toy_log_q(_W) in numpy, x [..., 3]
    h = x @ _W[:, 0]
    return -((h - z) ** 2 + np.sin(3.0 * h))


def _bernoulli_case(n, seed=0, p=(0.3, 0.6, 0.85)):
    """Logits [n, 1, 3, 1] (one parameter vector, repeated), noise and z [n, 1]."""
    theta = _logit(np.array(p, np.float64)).astype(np.float32)
    params = tf.constant(np.tile(theta.reshape(1, 1, 3, 1), (n, 1, 1, 1)))
    noise = tf.random.stateless_uniform((n, 1, 3, 1), seed=(seed, 1))
    return np.array(p), params, noise, tf.fill((n, 1), 0.25)


def _term_and_grads(latent_x, likelihood, params, noise, z, w=_W):
    w = tf.Variable(w)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(params)
        term = distributions.latent_term(latent_x, likelihood, params, noise, z, _toy_log_q(w))
        total = tf.reduce_sum(term)
    return term.numpy(), tape.gradient(total, params), tape.gradient(total, w)


def test_latent_term_values_at_a_known_bernoulli_draw():
    """u < p pixel by pixel: p = (0.5, 0.5, 0.9), u = (0.2, 0.7, 0.5) draw x = (1, 0, 1), and every
    estimator's value is g(x); "mean" is g(p)."""
    params = tf.constant(_logit(np.array([0.5, 0.5, 0.9])).reshape(1, 1, 3, 1), tf.float32)
    noise = tf.constant([0.2, 0.7, 0.5], shape=(1, 1, 3, 1))
    x = distributions.likelihood_draw("bernoulli", params, noise)
    np.testing.assert_array_equal(x.numpy().ravel(), [1.0, 0.0, 1.0])
    for latent_x in ("draw", "straight_through", "score_function"):
        value, _, _ = _term_and_grads(latent_x, "bernoulli", params, noise, tf.fill((1, 1), 0.25))
        np.testing.assert_allclose(value, [_g(np.array([1.0, 0.0, 1.0]))], rtol=1e-6, err_msg=latent_x)
    value, _, _ = _term_and_grads("mean", "bernoulli", params, None, tf.fill((1, 1), 0.25))
    np.testing.assert_allclose(value, [_g(np.array([0.5, 0.5, 0.9]))], rtol=1e-6)
    with pytest.raises(ValueError, match="latent_x"):
        distributions.latent_term("sample", "bernoulli", params, noise, tf.zeros((1, 1)), _toy_log_q(_W))


def test_bernoulli_draws_have_the_decoder_means_frequencies():
    p, params, noise, _ = _bernoulli_case(20000, seed=3)
    x = distributions.likelihood_draw("bernoulli", params, noise).numpy().reshape(-1, 3)
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_allclose(x.mean(0), p, atol=5 * np.sqrt(0.25 / len(x)))


def _exact_bernoulli_gradient(p):
    """d/d logits of E_{x ~ Bern(p)} g(x), by enumerating the 8 images of 3 pixels."""
    theta = tf.Variable(_logit(p))
    images = np.array(list(np.ndindex(2, 2, 2)), np.float64)  # [8, 3]
    with tf.GradientTape() as tape:
        q = tf.sigmoid(theta)
        prob = tf.reduce_prod(images * q + (1 - images) * (1 - q), axis=1)  # [8]
        expectation = tf.reduce_sum(prob * _g(images))
    return tape.gradient(expectation, theta).numpy()


def test_score_function_gradient_is_unbiased_and_is_reinforce_with_the_mean_baseline():
    """Per draw, the decoder gradient is (g(x) - g(p)) (x - p) w.r.t. the logits (REINFORCE,
    baseline the term at the mean); its average over 40,000 draws is the exact gradient of
    E_{x ~ Bern(p)} g(x) (enumeration) within 5 standard errors."""
    n = 40000
    p, params, noise, z = _bernoulli_case(n)
    _, grad, _ = _term_and_grads("score_function", "bernoulli", params, noise, z)
    per_draw = grad.numpy().reshape(n, 3)  # each row only reaches its own draw's term
    x = distributions.likelihood_draw("bernoulli", params, noise).numpy().reshape(n, 3)
    definition = (_g(x) - _g(p))[:, None] * (x - p)
    np.testing.assert_allclose(per_draw, definition, rtol=1e-4, atol=1e-5)
    exact = _exact_bernoulli_gradient(p)
    error = per_draw.mean(0) - exact
    assert np.all(np.abs(error) < 5 * per_draw.std(0) / np.sqrt(n)), (per_draw.mean(0), exact)
    # Straight-through is biased on this toy: its average misses the exact gradient.
    _, st, _ = _term_and_grads("straight_through", "bernoulli", params, noise, z)
    assert np.max(np.abs(st.numpy().reshape(n, 3).mean(0) - exact)) > 0.1


def test_straight_through_gradient_is_dg_dx_at_the_draw_times_dp_dlogit():
    p, params, noise, z = _bernoulli_case(6, seed=2)
    _, grad, _ = _term_and_grads("straight_through", "bernoulli", params, noise, z)
    x = tf.stop_gradient(distributions.likelihood_draw("bernoulli", params, noise))
    with tf.GradientTape() as tape:
        tape.watch(x)
        g = tf.reduce_sum(_toy_log_q(tf.constant(_W))(x, z))
    expected = tape.gradient(g, x).numpy() * (p * (1 - p)).reshape(1, 1, 3, 1)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.abs(expected).max() > 0.1


def test_draw_gives_no_decoder_gradient_and_every_draw_the_same_encoder_gradient():
    """"draw": no gradient to the decoder's params through the term; the encoder's (w) is
    non-zero and the same for the three estimators at the same draws (only the decoder's
    gradient differs); "mean" reaches the decoder through x = p: dg/dx(p) p (1 - p)."""
    p, params, noise, z = _bernoulli_case(6, seed=4)
    values, encoder = {}, {}
    for latent_x in ("draw", "straight_through", "score_function"):
        values[latent_x], decoder, encoder[latent_x] = _term_and_grads(latent_x, "bernoulli", params, noise, z)
        if latent_x == "draw":
            assert decoder is None
        else:
            assert np.abs(decoder.numpy()).max() > 1e-3
    assert np.abs(encoder["draw"].numpy()).max() > 1e-2
    for latent_x in ("straight_through", "score_function"):
        np.testing.assert_allclose(values[latent_x], values["draw"], rtol=1e-6)
        np.testing.assert_allclose(encoder[latent_x].numpy(), encoder["draw"].numpy(), rtol=1e-5)
    _, decoder, _ = _term_and_grads("mean", "bernoulli", params, None, z)
    mean = tf.constant(np.tile(p.reshape(1, 1, 3, 1), (6, 1, 1, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(mean)
        g = tf.reduce_sum(_toy_log_q(tf.constant(_W))(mean, z))
    np.testing.assert_allclose(decoder.numpy(), tape.gradient(g, mean).numpy() * p.reshape(1, 1, 3, 1)
                               * (1 - p.reshape(1, 1, 3, 1)), rtol=1e-5)


def _logistic_params(n, loc, scale_levels):
    """Params [n, 1, 1, 2] of a one-sub-pixel discretized logistic: location `loc` in [0, 1],
    scale `scale_levels` levels."""
    raw = [_logit(loc), math.log(scale_levels / 255.0)]
    return tf.constant(np.tile(np.array(raw, np.float32).reshape(1, 1, 1, 2), (n, 1, 1, 1)))


@pytest.mark.parametrize("loc, scale", [(0.3, 3.0), (0.004, 2.0)])  # the second piles up at level 0
def test_discretized_logistic_draws_follow_its_pmf(loc, scale):
    """Reparameterised draws y = loc + s logit(u), rounded to levels and clipped: their
    frequencies are `discretized_logistic_log_prob`'s pmf (edge bins included) within 5 s.e."""
    n = 200000
    params = _logistic_params(n, loc, scale)
    noise = tf.random.stateless_uniform((n, 1, 1, 1), seed=(5, 6))
    x = distributions.likelihood_draw("discretized_logistic", params, noise).numpy().ravel()
    levels = np.round(x * 255.0)
    np.testing.assert_allclose(levels, x * 255.0, atol=1e-3)  # on the grid of the 256 levels
    k = np.arange(256, dtype=np.float32)
    pmf = np.exp(distributions.discretized_logistic_log_prob(k, 255.0 * loc, math.log(scale)).numpy())
    freq = np.bincount(levels.astype(int), minlength=256) / n
    np.testing.assert_array_less(np.abs(freq - pmf), 5 * np.sqrt(pmf * (1 - pmf) / n) + 2e-5)
    # u = 1/2 draws the level of the location itself.
    half = distributions.likelihood_draw("discretized_logistic", params[:1], tf.fill((1, 1, 1, 1), 0.5))
    assert round(float(half.numpy().ravel()[0]) * 255.0, 3) == np.round(255.0 * loc)


def test_discretized_logistic_straight_through_and_score_function_gradients():
    """Straight-through: the pathwise gradient of y = loc + s logit(u) (through the rounding):
    dg/dx (dloc/draw, s logit(u)). Score function: unbiased for d/dparams of E g(x) computed by
    summing over the 256 levels, within 5 standard errors."""
    n = 60000
    loc, scale = 0.45, 4.0
    params = _logistic_params(n, loc, scale)
    noise = tf.random.stateless_uniform((n, 1, 1, 1), seed=(7, 8))

    def g(x):  # a toy log q, of one sub-pixel
        return -10.0 * tf.square(x - 0.5) + tf.sin(20.0 * x)

    def log_q(x, z):
        return g(tf.reshape(x, [-1]))

    def grads(latent_x, params, noise):
        with tf.GradientTape() as tape:
            tape.watch(params)
            total = tf.reduce_sum(distributions.latent_term(latent_x, "discretized_logistic", params,
                                                            noise, tf.zeros((len(params), 1)), log_q))
        return tape.gradient(total, params).numpy().reshape(-1, 2)

    few = grads("straight_through", params[:5], noise[:5])
    x = tf.constant(distributions.likelihood_draw("discretized_logistic", params[:5], noise[:5]).numpy())
    with tf.GradientTape() as tape:
        tape.watch(x)
        gx = tf.reduce_sum(g(x))
    dg = tape.gradient(gx, x).numpy().ravel()
    u = noise[:5].numpy().ravel()
    expected = np.stack([dg * loc * (1 - loc), dg * (scale / 255.0) * (np.log(u) - np.log1p(-u))], axis=1)
    np.testing.assert_allclose(few, expected, rtol=1e-4, atol=1e-6)

    theta = tf.Variable(_logistic_params(1, loc, scale)[0, 0, 0])
    k = tf.range(256, dtype=tf.float32)
    with tf.GradientTape() as tape:
        pmf = tf.exp(distributions.discretized_logistic_log_prob(
            k, 255.0 * tf.sigmoid(theta[0]), math.log(255.0) + theta[1]))
        expectation = tf.reduce_sum(pmf * g(k / 255.0))
    exact = tape.gradient(expectation, theta).numpy()
    per_draw = grads("score_function", params, noise)
    assert np.all(np.abs(per_draw.mean(0) - exact) < 5 * per_draw.std(0) / np.sqrt(n)), (per_draw.mean(0), exact)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_fixed"])
def test_gaussian_draw_is_reparameterised(likelihood):
    params = tf.constant(np.random.default_rng(0).normal(size=(2, 2, 2, 2 if likelihood == "gaussian" else 1)),
                         tf.float32)
    noise = tf.random.stateless_normal(params.shape[:3] + (1,), seed=(1, 2))
    assert distributions.draw_noise(likelihood) == "normal" and distributions.draw_noise("bernoulli") == "uniform"
    loc, log_scale = distributions._loc_and_log_scale(likelihood, params)
    np.testing.assert_allclose(distributions.likelihood_draw(likelihood, params, noise).numpy(),
                               (loc + tf.exp(log_scale) * noise).numpy(), rtol=1e-6)
