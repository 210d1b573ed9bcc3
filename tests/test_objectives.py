"""Tests for svae_tf.model.objectives: the theory of Sec. 3 on a Gaussian toy, and the reductions of Sec. 4.

Equation numbers refer to the paper (../shared/paper/svae.txt).
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from svae_tf.model import objectives

# ----------------------------------------------------------------------------------------
# Theory (eqs. 10, 11, 14, 15) on a toy with known joints: x and z are 1-D, and
# q(x, z), p(x, z) are 2-D Gaussians with different means and covariances.
MU_Q = np.array([0.0, 0.5])
COV_Q = np.array([[1.0, 0.6], [0.6, 1.0]])
MU_P = np.array([0.5, -0.3])
COV_P = np.array([[1.5, -0.3], [-0.3, 0.7]])


def _gaussian_log_pdf(xz, mu, cov):
    d = xz - mu
    precision = np.linalg.inv(cov)
    return (
        -0.5 * np.einsum("ni,ij,nj->n", d, precision, d)
        - 0.5 * np.log(np.linalg.det(cov))
        - 0.5 * len(mu) * np.log(2.0 * np.pi)
    )


def _gaussian_kl(mu0, cov0, mu1, cov1):
    """KL(N(mu0, cov0) || N(mu1, cov1)) in closed form."""
    precision1 = np.linalg.inv(cov1)
    d = mu1 - mu0
    return 0.5 * (
        np.trace(precision1 @ cov0)
        + d @ precision1 @ d
        - len(mu0)
        + np.log(np.linalg.det(cov1) / np.linalg.det(cov0))
    )


def _quadratic_features(xz):
    """[x, z, x^2, z^2, xz, 1]: log p - log q of two Gaussians is linear in these."""
    x, z = xz[:, 0], xz[:, 1]
    return np.stack([x, z, x * x, z * z, x * z, np.ones_like(x)], axis=1)


def _fit_discriminator(samples_q, samples_p):
    """Maximise g(psi) of eq. (10) (minimise `discriminator_loss`) over f = w . phi(x, z).

    The problem is convex (logistic regression), so full-batch L-BFGS converges to the
    maximiser of the sample version of (10).
    """
    phi_q = tf.constant(_quadratic_features(samples_q))
    phi_p = tf.constant(_quadratic_features(samples_p))

    def value_and_gradient(w):
        return tfp.math.value_and_gradient(
            lambda w: tf.reduce_mean(
                objectives.discriminator_loss(tf.linalg.matvec(phi_q, w), tf.linalg.matvec(phi_p, w))
            ),
            w,
        )

    result = tfp.optimizer.lbfgs_minimize(
        value_and_gradient, tf.zeros([6], tf.float64), tolerance=1e-10, max_iterations=500
    )
    assert bool(result.converged)
    return result.position.numpy()


def test_optimal_discriminator_is_log_ratio_and_bound_is_minus_symmetric_kl():
    rng = np.random.default_rng(0)
    n_train, n_test = 5000, 50000
    w = _fit_discriminator(
        rng.multivariate_normal(MU_Q, COV_Q, n_train), rng.multivariate_normal(MU_P, COV_P, n_train)
    )

    # Eq. (11): f* = log p(x, z) - log q(x, z), at fresh points from both joints.
    test_q = rng.multivariate_normal(MU_Q, COV_Q, n_test)
    test_p = rng.multivariate_normal(MU_P, COV_P, n_test)
    points = np.concatenate([test_q, test_p])
    f_true = _gaussian_log_pdf(points, MU_P, COV_P) - _gaussian_log_pdf(points, MU_Q, COV_Q)
    f_hat = _quadratic_features(points) @ w
    error = np.abs(f_hat - f_true)
    # Tolerances: the model class contains f*, so the only error is the estimation error
    # of 6 coefficients from 2 x 5000 samples. Over 20 seeds the median error was
    # <= 0.075 and the RMSE <= 0.18 (dominated by the far tails, where x^2 terms
    # amplify coefficient errors); the bounds below are about twice that. f* itself
    # spans several nats (std ~ 1.7 here), so a wrong sign or scale would fail.
    assert np.std(f_true) > 1.0
    assert np.median(error) < 0.15, np.median(error)
    assert np.sqrt(np.mean(error**2)) < 0.35
    np.testing.assert_allclose(np.corrcoef(f_hat, f_true)[0, 1], 1.0, atol=0.01)

    # Eq. (14)-(15): E_q f - E_p f with the optimal f is -KL_s(q || p) <= 0.
    kl_s = _gaussian_kl(MU_Q, COV_Q, MU_P, COV_P) + _gaussian_kl(MU_P, COV_P, MU_Q, COV_Q)
    bound = np.mean(
        objectives.symmetric_kl_bound(_quadratic_features(test_q) @ w, _quadratic_features(test_p) @ w)
    )
    # Tolerance 0.3 nats (~10% of KL_s = 2.87): over 20 seeds the error of this
    # estimate was <= 0.14 (discriminator estimation error plus Monte Carlo error of
    # 50000 test points, ~0.01).
    assert bound < 0.0
    np.testing.assert_allclose(bound, -kl_s, atol=0.3)


def test_discriminator_loss_is_minimised_by_the_true_log_ratio():
    """The population version of (10) is maximised by f* (checked against perturbations)."""
    rng = np.random.default_rng(1)
    q = rng.multivariate_normal(MU_Q, COV_Q, 200000)
    p = rng.multivariate_normal(MU_P, COV_P, 200000)

    def log_ratio(xz):
        return _gaussian_log_pdf(xz, MU_P, COV_P) - _gaussian_log_pdf(xz, MU_Q, COV_Q)

    def loss(fq, fp):
        return float(np.mean(objectives.discriminator_loss(fq, fp)))

    best = loss(log_ratio(q), log_ratio(p))
    for shift, scale in [(0.3, 1.0), (-0.3, 1.0), (0.0, 1.2), (0.0, 0.8)]:
        assert best < loss(scale * log_ratio(q) + shift, scale * log_ratio(p) + shift)


def test_optimal_discriminator_in_eq14_is_sample_estimate_of_minus_symmetric_kl():
    rng = np.random.default_rng(2)
    n = 100000
    q = rng.multivariate_normal(MU_Q, COV_Q, n)
    p = rng.multivariate_normal(MU_P, COV_P, n)

    def f_star(xz):
        return _gaussian_log_pdf(xz, MU_P, COV_P) - _gaussian_log_pdf(xz, MU_Q, COV_Q)

    per_example = np.asarray(objectives.symmetric_kl_bound(f_star(q), f_star(p)))
    kl_s = _gaussian_kl(MU_Q, COV_Q, MU_P, COV_P) + _gaussian_kl(MU_P, COV_P, MU_Q, COV_Q)
    # Pure Monte Carlo error: 5 standard errors of the mean.
    standard_error = np.std(per_example) / np.sqrt(n)
    assert abs(np.mean(per_example) + kl_s) < 5 * standard_error
    # And each expectation alone is minus a KL (eq. 12-13 with the constants removed).
    np.testing.assert_allclose(
        np.mean(f_star(q)), -_gaussian_kl(MU_Q, COV_Q, MU_P, COV_P), atol=5 * standard_error
    )


# ----------------------------------------------------------------------------------------
# Reductions (Sec. 4) at values worked out by hand. With f = ln 3, sigma(f) = 3/4, so
# softplus(ln 3) = -log(1/4) = ln 4 and softplus(-ln 3) = -log(3/4) = ln(4/3). The four
# examples: a discriminator at chance (f = 0 on both joints), one right on both (low on
# q(x, z), high on p(x, z): f* of eq. (11) is log p - log q), one wrong on both, and one
# wrong on q and at chance on p (so that swapping f_q and f_p changes the answer).
LN2, LN3, LN4, LN4_3 = np.log(2.0), np.log(3.0), np.log(4.0), np.log(4.0 / 3.0)
F_Q = tf.constant([0.0, -LN3, LN3, LN3], tf.float64)
F_P = tf.constant([0.0, LN3, -LN3, 0.0], tf.float64)

KNOWN_VALUES = [
    # eq. (10), negated: chance costs 2 ln 2; right on both ln(4/3) twice; wrong on both ln 4 twice.
    ("discriminator_loss", lambda: objectives.discriminator_loss(F_Q, F_P),
     [2 * LN2, 2 * LN4_3, 2 * LN4, LN4 + LN2]),
    # eq. (19), negated: the encoder/decoder pay most when the discriminator is right.
    ("ali_generator_loss", lambda: objectives.ali_generator_loss(F_Q, F_P),
     [2 * LN2, 2 * LN4, 2 * LN4_3, LN4_3 + LN2]),
    # eq. (14) and its negation.
    ("symmetric_kl_bound", lambda: objectives.symmetric_kl_bound(F_Q, F_P), [0.0, -2 * LN3, 2 * LN3, LN3]),
    ("svae_generator_loss", lambda: objectives.svae_generator_loss(F_Q, F_P), [0.0, 2 * LN3, -2 * LN3, -LN3]),
    # eq. (24), negated: the decoder's E_p log sigma(-f).
    ("gan_generator_loss", lambda: objectives.gan_generator_loss(F_P), [LN2, LN4, LN4_3, LN2]),
    # eq. (25): the critic maximises E_q f - E_p f (f high on data); the decoder minimises -E_p f.
    ("ipm_critic_loss", lambda: objectives.ipm_critic_loss(F_Q, F_P), [0.0, 2 * LN3, -2 * LN3, -LN3]),
    ("ipm_generator_loss", lambda: objectives.ipm_generator_loss(F_P), [0.0, -LN3, LN3, 0.0]),
]


@pytest.mark.parametrize("name, loss, expected", KNOWN_VALUES, ids=[k[0] for k in KNOWN_VALUES])
def test_losses_at_hand_computed_values(name, loss, expected):
    value = loss()
    assert value.shape == [4], name  # per example, not reduced
    np.testing.assert_allclose(value, expected, rtol=0, atol=1e-12)


def test_ali_generator_loss_is_the_discriminator_loss_with_the_joints_swapped():
    """Non-saturating ALI (19): the encoder/decoder fit the discriminator with the labels swapped."""
    np.testing.assert_allclose(objectives.ali_generator_loss(F_Q, F_P),
                               objectives.discriminator_loss(F_P, F_Q), rtol=0, atol=1e-12)


def test_gan_generator_is_the_decoder_part_of_ali_and_does_not_saturate():
    """Eq. (24): only ALI's E_p term depends on the decoder alone, so the gradients in f_p agree;
    that gradient is sigma(f_p): 1/2 at chance, 3/4 when the discriminator spots the fakes."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(F_P)
        gan = objectives.gan_generator_loss(F_P)
        ali = objectives.ali_generator_loss(F_Q, F_P)
    np.testing.assert_allclose(tape.gradient(gan, F_P), [0.5, 0.75, 0.25, 0.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(ali, F_P), tape.gradient(gan, F_P), rtol=0, atol=1e-12)


def test_svae_r_generator_loss_at_hand_computed_values():
    """Eq. (29), negated: -(f_q + lam log p(x|z)) + (f_p - lam log q(z|x))."""
    f_q, f_p = tf.constant([1.0, 0.0], tf.float64), tf.constant([-2.0, 0.0], tf.float64)
    log_px, log_qz = tf.constant([-100.0, -10.0], tf.float64), tf.constant([5.0, 2.0], tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([log_px, log_qz])
        loss = objectives.svae_r_generator_loss(f_q, f_p, log_px, log_qz, lam=0.3)
    # -(1 - 30) + (-2 - 1.5) = 25.5;  -(0 - 3) + (0 - 0.6) = 2.4
    np.testing.assert_allclose(loss, [25.5, 2.4], rtol=0, atol=1e-12)
    # Both lambda terms are rewards: raising either log-density lowers the loss by lambda.
    np.testing.assert_allclose(tape.gradient(loss, log_px), [-0.3, -0.3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_qz), [-0.3, -0.3], rtol=0, atol=1e-12)
    # lambda = 0: (29) -> (14).
    np.testing.assert_allclose(objectives.svae_r_generator_loss(f_q, f_p, log_px, log_qz, lam=0.0),
                               [-3.0, 0.0], rtol=0, atol=1e-12)
    # lam_z weights the latent term alone: 0 drops it, log p(x|z) keeps lambda.
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([log_px, log_qz])
        loss = objectives.svae_r_generator_loss(f_q, f_p, log_px, log_qz, lam=0.3, lam_z=0.0)
    np.testing.assert_allclose(loss, [27.0, 3.0], rtol=0, atol=1e-12)  # 25.5 + 1.5;  2.4 + 0.6
    np.testing.assert_allclose(tape.gradient(loss, log_px), [-0.3, -0.3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_qz), [0.0, 0.0], rtol=0, atol=1e-12)


def test_svae_r_elbo_generator_loss_at_hand_computed_values():
    """Eq. (28) with L_x exact, negated: -ELBO - lam log p(x|z) + (f_p - lam log q(z_p|x_p))."""
    f_p = tf.constant([-2.0, 0.0], tf.float64)
    log_px, log_pz = tf.constant([-100.0, -10.0], tf.float64), tf.constant([-90.0, -95.0], tf.float64)
    log_qz, log_qz_p = tf.constant([-60.0, -50.0], tf.float64), tf.constant([5.0, 2.0], tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([f_p, log_px, log_pz, log_qz, log_qz_p])
        loss = objectives.svae_r_elbo_generator_loss(f_p, log_px, log_pz, log_qz, log_qz_p, lam=0.3)
    # -ELBO = 100 + 90 - 60 = 130;  130 + 0.3 * 100 + (-2 - 0.3 * 5) = 156.5
    # -ELBO = 10 + 95 - 50 = 55;    55 + 0.3 * 10 + (0 - 0.3 * 2) = 57.4
    np.testing.assert_allclose(loss, [156.5, 57.4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_px), [-1.3, -1.3], rtol=0, atol=1e-12)  # (lam + 1), eq. 26
    np.testing.assert_allclose(tape.gradient(loss, log_pz), [-1.0, -1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_qz), [1.0, 1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_qz_p), [-0.3, -0.3], rtol=0, atol=1e-12)
    # Only the decoder side of eq. (14) is left to f: the loss rises with f_p one for one.
    np.testing.assert_allclose(tape.gradient(loss, f_p), [1.0, 1.0], rtol=0, atol=1e-12)
    loss = objectives.svae_r_elbo_generator_loss(f_p, log_px, log_pz, log_qz, log_qz_p, lam=0.3, lam_z=0.1)
    np.testing.assert_allclose(loss, [156.5 + 0.2 * 5, 57.4 + 0.2 * 2], rtol=0, atol=1e-12)


def test_svae_r_lx_generator_loss_at_hand_computed_values():
    """Eq. (29) with lam L_x in place of lam log p(x|z), negated: eq. (29)'s loss + lam KL."""
    f_q, f_p = tf.constant([1.0, 0.0], tf.float64), tf.constant([-2.0, 0.0], tf.float64)
    log_px, log_pz = tf.constant([-100.0, -10.0], tf.float64), tf.constant([-90.0, -95.0], tf.float64)
    log_qz, log_qz_p = tf.constant([-60.0, -50.0], tf.float64), tf.constant([5.0, 2.0], tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([f_q, f_p, log_px, log_pz, log_qz, log_qz_p])
        loss = objectives.svae_r_lx_generator_loss(f_q, f_p, log_px, log_pz, log_qz, log_qz_p, lam=0.3)
    # -(1 - (-2)) + 0.3 * (100 + 90 - 60) - 0.3 * 5 = -3 + 39 - 1.5 = 34.5
    # -(0 - 0) + 0.3 * (10 + 95 - 50) - 0.3 * 2 = 16.5 - 0.6 = 15.9
    np.testing.assert_allclose(loss, [34.5, 15.9], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, f_q), [-1.0, -1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, f_p), [1.0, 1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_px), [-0.3, -0.3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_pz), [-0.3, -0.3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, log_qz), [0.3, 0.3], rtol=0, atol=1e-12)  # the KL
    np.testing.assert_allclose(tape.gradient(loss, log_qz_p), [-0.3, -0.3], rtol=0, atol=1e-12)
    # It is eq. (29)'s loss plus lam KL(q(z|x) || p(z)), one-sample: lam (log q(z|x) - log p(z)).
    eq29 = objectives.svae_r_generator_loss(f_q, f_p, log_px, log_qz_p, lam=0.3, lam_z=0.0)
    loss = objectives.svae_r_lx_generator_loss(f_q, f_p, log_px, log_pz, log_qz, log_qz_p, lam=0.3, lam_z=0.0)
    np.testing.assert_allclose(loss, eq29 + 0.3 * (log_qz - log_pz), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (4, 8, 8, 1), (2, 4, 4, 3)])
def test_gradient_penalty_values(shape):
    rng = np.random.default_rng(0)
    g = rng.standard_normal(shape)
    expected = (np.sqrt(np.sum(g.reshape(shape[0], -1) ** 2, axis=1)) - 1.0) ** 2
    penalty = objectives.gradient_penalty(tf.constant(g))
    assert penalty.shape == [shape[0]]
    np.testing.assert_allclose(penalty, expected, rtol=1e-6)
    # Unit-norm gradients are not penalised.
    unit = g / np.linalg.norm(g.reshape(shape[0], -1), axis=1).reshape((-1,) + (1,) * (len(shape) - 1))
    np.testing.assert_allclose(objectives.gradient_penalty(tf.constant(unit)), 0.0, atol=1e-10)


def test_gradient_penalty_is_differentiable_at_zero_gradient():
    """The epsilon inside the sqrt keeps d penalty / d gradients finite at 0 (keras-io #415)."""
    zeros = tf.zeros([4, 3, 3, 1])
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        penalty = objectives.gradient_penalty(zeros)
    grad = tape.gradient(penalty, zeros)
    np.testing.assert_allclose(penalty, 1.0, atol=1e-5)  # (sqrt(eps) - 1)^2
    assert np.all(np.isfinite(grad.numpy()))
    # Without the epsilon the same computation gives NaN: the test would catch its removal.
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        no_eps = objectives.gradient_penalty(zeros, epsilon=0.0)
    assert not np.all(np.isfinite(tape.gradient(no_eps, zeros).numpy()))


@pytest.mark.parametrize("slope,noise_std", [(1.0, 1.0), (2.0, 0.5), (0.3, 1.5)])
def test_negative_elbo_is_exact_nll_with_the_true_posterior(slope, noise_std):
    """Linear-Gaussian toy: p(z) = N(0, 1), p(x|z) = N(a z, s^2). With q(z|x) = p(z|x),
    log p(x|z) + log p(z) - log q(z|x) = log p(x) for *every* z, so the one-sample
    negative ELBO (1) is exactly -log p(x)."""
    tfd = tfp.distributions

    def normal(loc, scale):  # float64 throughout
        return tfd.Normal(np.asarray(loc, np.float64), np.asarray(scale, np.float64))

    rng = np.random.default_rng(0)
    x = rng.standard_normal(16) * np.sqrt(slope**2 + noise_std**2)
    post_var = 1.0 / (1.0 + slope**2 / noise_std**2)
    post_mean = post_var * slope * x / noise_std**2
    z = post_mean + np.sqrt(post_var) * rng.standard_normal(16)
    log_px_given_z = normal(slope * z, noise_std).log_prob(x)
    log_pz = normal(0.0, 1.0).log_prob(z)
    log_qz = normal(post_mean, np.sqrt(post_var)).log_prob(z)
    neg_elbo = objectives.negative_elbo(log_px_given_z, log_pz, log_qz)
    log_px = normal(0.0, np.sqrt(slope**2 + noise_std**2)).log_prob(x)
    np.testing.assert_allclose(neg_elbo, -log_px, rtol=1e-10, atol=1e-10)
    # With another q the gap is KL(q || p(z|x)) >= 0, in expectation over z ~ q (here q = prior).
    z_prior = rng.standard_normal((20000, 16))
    neg_elbo_prior = objectives.negative_elbo(
        normal(slope * z_prior, noise_std).log_prob(x),
        normal(0.0, 1.0).log_prob(z_prior),
        normal(0.0, 1.0).log_prob(z_prior),
    ).numpy()
    gap = tfd.kl_divergence(normal(0.0, 1.0), normal(post_mean, np.sqrt(post_var))).numpy()
    standard_error = np.std(neg_elbo_prior, axis=0) / np.sqrt(len(z_prior))
    assert np.all(np.abs(np.mean(neg_elbo_prior, axis=0) + log_px.numpy() - gap) < 5 * standard_error + 1e-9)
