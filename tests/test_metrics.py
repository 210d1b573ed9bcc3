"""Tests of svae_tf.evaluation.metrics against closed forms and exact toy models."""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special

from svae_tf.evaluation import metrics

tfd = tfp.distributions


# --------------------------------------------------------------------------- Inception score


@pytest.mark.parametrize("num_splits", [1, 3, 10])
@pytest.mark.parametrize("num_classes", [2, 10])
def test_inception_score_is_one_for_identical_predictions(num_classes, num_splits):
    logits = np.random.default_rng(num_classes).normal(scale=3.0, size=num_classes)
    mean, std = metrics.inception_score(np.tile(logits, (30, 1)), num_splits=num_splits)
    assert mean == pytest.approx(1.0, abs=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("num_used", [1, 2, 5, 10])
@pytest.mark.parametrize("num_splits", [1, 2, 5])
def test_inception_score_is_n_for_n_confident_equally_used_classes(num_used, num_splits):
    # Each contiguous split holds every used class 4 times, so p(y) is uniform on them.
    labels = np.tile(np.arange(num_used), 4 * num_splits)
    logits = 50.0 * np.eye(10)[labels]
    mean, std = metrics.inception_score(logits, num_splits=num_splits)
    assert mean == pytest.approx(num_used, abs=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)
    mean_p, std_p = metrics.inception_score_from_probs(np.eye(10)[labels], num_splits=num_splits)
    assert (mean_p, std_p) == pytest.approx((num_used, 0.0), abs=1e-6)


@pytest.mark.parametrize("num_splits", [1, 4, 7])
def test_inception_score_from_logits_equals_from_probs(num_splits):
    logits = np.random.default_rng(1).normal(scale=2.0, size=(50, 10))
    from_logits = metrics.inception_score(tf.constant(logits, tf.float32), num_splits)
    from_probs = metrics.inception_score_from_probs(special.softmax(logits, axis=1), num_splits)
    np.testing.assert_allclose(from_logits, from_probs, rtol=1e-6, atol=1e-7)


def test_inception_score_matches_improved_gan_reference():
    # openai/improved-gan inception_score.py, written out independently; 50 rows in 7 uneven splits.
    probs = special.softmax(np.random.default_rng(2).normal(scale=2.0, size=(50, 10)), axis=1)
    scores = []
    for i in range(7):
        part = probs[i * 50 // 7:(i + 1) * 50 // 7]
        kl = part * (np.log(part) - np.log(np.mean(part, 0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    np.testing.assert_allclose(
        metrics.inception_score_from_probs(probs, 7), (np.mean(scores), np.std(scores)), rtol=1e-10)


def test_inception_score_rejects_bad_splits():
    with pytest.raises(ValueError):
        metrics.inception_score(np.zeros((5, 3)), num_splits=6)


# --------------------------------------------------------------------------- Frechet distance


def _random_spd(rng, dim):
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def _frechet_by_eigh(mu1, sigma1, mu2, sigma2):
    """Independent formula: Tr sqrtm(s1 s2) = Tr sqrt(s1^1/2 s2 s1^1/2), via symmetric eigensolvers."""
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(w)) @ v.T
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ sigma2 @ root1)))
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean


@pytest.mark.parametrize("num_samples, dim", [(200, 8), (3, 5)])  # (3, 5): singular covariance
def test_frechet_distance_is_zero_for_identical_features(num_samples, dim):
    features = np.random.default_rng(dim).normal(size=(num_samples, dim))
    assert metrics.frechet_distance_from_features(features, features) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("diagonal", [[1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
def test_frechet_distance_singular_product_uses_eps_offset(diagonal):
    # sqrtm(s s) warns on a singular product; the eps * I fallback must be silent and finite.
    sigma, dim = np.diag(diagonal), len(diagonal)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = metrics.frechet_distance(np.zeros(dim), sigma, np.ones(dim), sigma, eps=1e-6)
    # Closed form is dim; the offset only enters Tr sqrtm, shifting the result by -2 * dim * eps at most.
    assert dim - 2 * dim * 1e-6 - 1e-12 <= got <= dim


@pytest.mark.parametrize("dim", [1, 3, 16])
def test_frechet_distance_diagonal_closed_form(dim):
    rng = np.random.default_rng(dim)
    m1, m2 = rng.normal(size=dim), rng.normal(size=dim)
    s1, s2 = rng.uniform(0.1, 3.0, size=dim), rng.uniform(0.1, 3.0, size=dim)
    expected = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2))
    got = metrics.frechet_distance(m1, np.diag(s1), m2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_frechet_distance_commuting_covariances():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((m1 - m2) ** 2) + np.sum(a + b - 2.0 * np.sqrt(a * b))
    got = metrics.frechet_distance(m1, (q * a) @ q.T, m2, (q * b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)


def _two_gaussians(seed, dim=10):
    """(mean, covariance) of two random Gaussians in `dim` dimensions."""
    rng = np.random.default_rng(seed)
    m1, m2 = rng.normal(size=dim), rng.normal(size=dim)
    return m1, _random_spd(rng, dim), m2, _random_spd(rng, dim)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_general_covariances_vs_eigh_formula(seed):
    m1, s1, m2, s2 = _two_gaussians(seed)
    got = metrics.frechet_distance(m1, s1, m2, s2)
    assert got == pytest.approx(_frechet_by_eigh(m1, s1, m2, s2), rel=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_eigh_equals_frechet_distance(seed):
    m1, s1, m2, s2 = _two_gaussians(seed)
    expected = metrics.frechet_distance(m1, s1, m2, s2)
    assert metrics.frechet_distance_eigh(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    root = metrics.sqrtm_psd(s2)
    assert root @ root == pytest.approx(s2, abs=1e-10)
    assert metrics.frechet_distance_eigh(m1, s1, m2, sqrt_sigma2=root) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_eigh_singular_covariance_needs_no_offset():
    # 5 samples in 8 dimensions: a rank-4 covariance, for which frechet_distance adds eps * I.
    rng = np.random.default_rng(5)
    features = rng.normal(size=(5, 8))
    mu, sigma = metrics.gaussian_statistics(features)
    ref_mu, ref_sigma = rng.normal(size=8), _random_spd(rng, 8)
    got = metrics.frechet_distance_eigh(mu, sigma, ref_mu, ref_sigma)
    assert got == pytest.approx(metrics.frechet_distance_eigh(ref_mu, ref_sigma, mu, sigma), rel=1e-7)  # symmetric
    assert got == pytest.approx(metrics.frechet_distance(mu, sigma, ref_mu, ref_sigma), abs=1e-2)
    assert metrics.frechet_distance_eigh(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_from_large_samples_approaches_closed_form():
    rng = np.random.default_rng(4)
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    s1, s2 = _random_spd(rng, 4), _random_spd(rng, 4)
    exact = _frechet_by_eigh(m1, s1, m2, s2)  # ~2.5
    a = rng.multivariate_normal(m1, s1, size=100_000)
    b = rng.multivariate_normal(m2, s2, size=100_000)
    # Sampling error of the plug-in estimate is ~0.01 here; tolerance 0.05 (2% of the value).
    assert metrics.frechet_distance_from_features(a, b) == pytest.approx(exact, abs=0.05)


def test_gaussian_statistics_conventions():
    features = np.random.default_rng(5).normal(size=(20, 3)).astype(np.float32)
    mu, sigma = metrics.gaussian_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64 and mu.shape == (3,) and sigma.shape == (3, 3)
    centred = features.astype(np.float64) - features.astype(np.float64).mean(0)
    np.testing.assert_allclose(sigma, centred.T @ centred / 19, rtol=1e-12)


# --------------------------------------------------------------------------- IWAE bound

# Linear Gaussian model: p(z) = N(0, 1), p(x|z) = N(A z + B, S^2), so p(x) = N(B, A^2 + S^2) and
# p(z|x) = N(A (x - B) / (S^2 + A^2), S^2 / (S^2 + A^2)).
A, B, S = 2.0, 0.5, 0.5
NUM_X, NUM_SEEDS, MAX_K = 64, 20, 1000


def _toy_data():
    x = np.random.default_rng(6).normal(B, math.sqrt(A**2 + S**2), size=NUM_X)
    log_px = tfd.Normal(np.float64(B), math.sqrt(A**2 + S**2)).log_prob(x).numpy()
    post_mean = A * (x - B) / (S**2 + A**2)
    post_std = np.full_like(x, math.sqrt(S**2 / (S**2 + A**2)))
    return x, log_px, post_mean, post_std


def _log_weights(x, q_mean, q_std, num_samples, seed):
    """[num_samples, NUM_X] float64 log p(x, z) - log q(z|x), z ~ q(z|x)."""
    q = tfd.Normal(q_mean, q_std)
    z = q.sample(num_samples, seed=(seed, 0))
    log_joint = tfd.Normal(np.float64(0.0), np.float64(1.0)).log_prob(z) + tfd.Normal(
        A * z + B, np.float64(S)).log_prob(x)
    return log_joint - q.log_prob(z)


def _imperfect_q(post_mean, post_std):
    """Shifted by half a posterior std and 1.5x too wide (keeps the weights' variance finite)."""
    return post_mean + 0.5 * post_std, 1.5 * post_std


def _closed_form_elbo(x, m, s):
    """E_q[log p(x|z)] - KL(q || p(z)) for q = N(m, s^2): eq. (1) per example."""
    expected_loglik = -0.5 * np.log(2 * np.pi * S**2) - ((x - A * m - B) ** 2 + A**2 * s**2) / (2 * S**2)
    return expected_loglik - 0.5 * (s**2 + m**2 - 1.0 - np.log(s**2))


@pytest.fixture(scope="module")
def bound_by_k():
    """Mean over data and seeds of the K-sample bound; every K reuses the same MAX_K samples."""
    x, log_px, post_mean, post_std = _toy_data()
    q_mean, q_std = _imperfect_q(post_mean, post_std)
    ks = (1, 10, 100, 1000)
    per_seed = []
    for seed in range(NUM_SEEDS):
        log_w = _log_weights(x, q_mean, q_std, MAX_K, seed)
        per_seed.append([float(tf.reduce_mean(metrics.importance_weighted_bound(
            tf.reshape(log_w, [k, MAX_K // k, NUM_X]), axis=0))) for k in ks])
    means = np.mean(per_seed, axis=0)
    return dict(zip(ks, means)), np.mean(_closed_form_elbo(x, q_mean, q_std)), np.mean(log_px)


def test_iwae_single_sample_is_the_elbo_sample():
    log_w = tf.random.stateless_normal([1, 7], seed=(7, 0), dtype=tf.float64)
    bound = metrics.importance_weighted_bound(log_w)
    assert bound.dtype == tf.float64 and bound.shape == (7,)
    np.testing.assert_array_equal(bound.numpy(), log_w.numpy()[0])


def test_iwae_bound_dominates_mean_log_weight_per_draw():
    # Jensen: log mean_k w_k >= mean_k log w_k for every draw, i.e. >= the K-sample ELBO estimate.
    log_w = tf.random.stateless_normal([50, 9], seed=(8, 0), dtype=tf.float64) * 3.0
    bound = metrics.importance_weighted_bound(log_w)
    assert np.all(bound.numpy() >= tf.reduce_mean(log_w, axis=0).numpy() - 1e-12)


def test_iwae_k1_equals_elbo_in_expectation(bound_by_k):
    means, elbo, _ = bound_by_k
    # 1.28M single-sample draws; standard error ~0.001 nats, tolerance 0.005.
    assert means[1] == pytest.approx(elbo, abs=0.005)


def test_iwae_bound_increases_with_k_and_reaches_log_px(bound_by_k):
    means, elbo, log_px = bound_by_k
    assert log_px - elbo > 0.3  # q is deliberately imperfect: KL(q || p(z|x)) ~ 0.34 nats.
    assert means[1] < means[10] < means[100] < means[1000]
    assert all(means[k] >= elbo for k in (10, 100, 1000))
    # At K=1000 the bias is ~5e-4 nats and the standard error ~5e-4; tolerance 0.005 nats.
    assert means[1000] == pytest.approx(log_px, abs=0.005)


@pytest.mark.parametrize("k", [1, 10, 100, 1000])
def test_iwae_with_exact_posterior_is_log_px(k):
    x, log_px, post_mean, post_std = _toy_data()
    bound = metrics.importance_weighted_bound(_log_weights(x, post_mean, post_std, k, seed=k))
    np.testing.assert_allclose(bound.numpy(), log_px, rtol=0, atol=1e-5)


def test_iwae_in_tf_function_with_unknown_k():
    fn = tf.function(metrics.importance_weighted_bound,
                     input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    log_w = tf.math.log(tf.constant([[1.0, 2.0, 4.0], [3.0, 2.0, 0.5]]))
    np.testing.assert_allclose(fn(log_w).numpy(), np.log([2.0, 2.0, 2.25]), rtol=1e-6)


# --------------------------------------------------------------------------- RMSE, bits/dim


def test_rmse_255_perfect_reconstruction_is_zero():
    images = np.random.default_rng(9).uniform(size=(4, 8, 8, 3))
    assert metrics.rmse_255(images, images) == 0.0


@pytest.mark.parametrize("offset", [1.0 / 255.0, 0.1, 0.5])
def test_rmse_255_constant_offset(offset):
    images = np.random.default_rng(10).uniform(0.0, 1.0 - offset, size=(4, 8, 8, 3))
    assert metrics.rmse_255(images, images + offset) == pytest.approx(255.0 * offset, rel=1e-10)
    assert metrics.rmse_255(tf.constant(images + offset), images) == pytest.approx(255.0 * offset, rel=1e-10)


def test_nats_to_bits_per_dim_known_values():
    assert metrics.nats_to_bits_per_dim(3072 * math.log(2.0) * 3.0, 3072) == pytest.approx(3.0)
    # 81 nats on 28x28 MNIST is 81 / (784 ln 2) = 0.14905 bits/dim.
    assert metrics.nats_to_bits_per_dim(81.0, 784) == pytest.approx(0.149053, abs=1e-6)
    out = metrics.nats_to_bits_per_dim(tf.constant([784 * math.log(2.0)], tf.float64), 784)
    np.testing.assert_allclose(out.numpy(), [1.0])
