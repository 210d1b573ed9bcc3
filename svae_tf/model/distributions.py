"""TFP distributions of the model: prior p(z), encoder q(z|x), decoder p(x|z).

Distributions are built from tensors inside the model's computations (never as
`tfp.layers`, which are tf-keras layers that a Keras 3 model does not track).

Images enter the model as float32 in [0, 1] (uint8 / 255). Each likelihood head
scores the *discrete* data where the data are discrete, so that the negative
ELBO (eq. 1) is an upper bound on the NLL in nats per image and
`nats / (D ln 2)` is bits per dimension:

- "bernoulli": binarized images (MNIST); the target is a binarization of the grey
  levels (dynamic in training; statically binarized data pass through unchanged).
- "discretized_logistic": 8-bit images; a logistic per sub-pixel quantized to the
  256 levels (edge bins absorb the tails, as in PixelCNN++ with one mixture
  component). Its log-probability is computed in log space from the logits of the
  bin edges (`discretized_logistic_log_prob`), never as a difference of CDFs, so a
  bin's mass stays finite when it is far below float32's resolution of the CDF.
- "gaussian": a Gaussian on uniformly dequantized 8-bit pixels, y = (255 x + u) / 256,
  u ~ U[0, 1); log P(x) >= E_u log p(y) - D log 256, and that offset is included.
  Variance learned per pixel, or fixed (`gaussian_fixed`, GAUSSIAN_FIXED_SCALE).

The location of the continuous heads is sigmoid(raw output) in [0, 1], so the
decoder mean stays differentiable everywhere (the discriminator sees it).
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from svae_tf.model import config

tfd = tfp.distributions

LIKELIHOODS = ("bernoulli", "discretized_logistic", "gaussian", "gaussian_fixed")
_MIN_LOG_SCALE = -7.0  # floor on log-scales of the decoder, as in PixelCNN++.
GAUSSIAN_FIXED_SCALE = 0.1  # on the [0, 1] pixel scale


def prior(z_dim, dtype=tf.float32):
    """p(z) = N(0, I), event shape [z_dim]."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros([z_dim], dtype))


def posterior(mean_and_log_variance, bijector=None):
    """q(z|x): N(mu, diag(sigma^2)) from the encoder's [B, 2 z_dim] output, then a flow.

    Returns a distribution with batch shape [B] and event shape [z_dim] whose
    `log_prob` works at any z (the flow is inverted when z was not produced by it).
    """
    mu, log_variance = tf.split(mean_and_log_variance, 2, axis=-1)  # [B, z_dim] each
    base = tfd.MultivariateNormalDiag(loc=mu, scale_diag=tf.exp(0.5 * log_variance))
    if bijector is None:
        return base
    return tfd.TransformedDistribution(base, bijector)


def reparameterized_sample(q, noise):
    """z = T(mu + sigma * eps) for standard-normal `noise` eps: the model's one
    reparameterised sampler (training, the likelihood bounds, export).

    `q` is a diagonal Gaussian (`MultivariateNormalDiag`, `Independent` or `Sample` of a
    `Normal`) or one pushed through a bijector T (`posterior` with a flow,
    `MultivariateNormalTriL`). `noise` broadcasts against q's batch + event shape, e.g.
    [B, z_dim]. Taking the noise as an input keeps draws reproducible and identical
    across replica counts (see `model.SymmetricVAE._normal`). The bijector caches the
    pair (z0, z), so `q.log_prob(z)` afterwards does not invert T.
    """
    bijector = getattr(q, "bijector", None)  # TFP builds a private subclass; duck-type.
    base = q if bijector is None else q.distribution
    if not _is_diagonal_normal(base):
        raise TypeError(
            f"Posterior {type(q).__name__} is not a (transformed) diagonal Gaussian; "
            "reparameterised sampling needs z = T(mu + sigma * eps)."
        )
    z0 = base.mean() + base.stddev() * noise
    return z0 if bijector is None else bijector.forward(z0)


def _is_diagonal_normal(q):
    if isinstance(q, tfd.MultivariateNormalDiag):
        return True
    return isinstance(q, (tfd.Independent, tfd.Sample)) and isinstance(q.distribution, tfd.Normal)


def log_weight_terms(q, noise, log_px_given_z):
    """The terms of the log weight log w = log p(x|z) + log p(z) - log q(z|x) at the
    reparameterised z = T(mu + sigma * noise) ~ q(z|x).

    The ELBO (1) is the mean of log w over z ~ q(z|x), the IWAE bound its log-mean-exp;
    `objectives.log_weight` adds the terms up. `log_px_given_z` maps z to log p(x|z);
    p(z) is the `prior`. Returns {"log_px_given_z", "log_pz", "log_qz"}, each shaped
    like z without its last axis: the terms the `vae` variant's loss reads.
    """
    z = reparameterized_sample(q, noise)
    return dict(log_px_given_z=log_px_given_z(z), log_pz=prior(z.shape[-1], z.dtype).log_prob(z),
                log_qz=q.log_prob(z))


def param_channels(likelihood, channels):
    """Number of decoder output channels the head needs for `channels` image channels."""
    _check(likelihood)
    return channels if likelihood in ("bernoulli", "gaussian_fixed") else 2 * channels


def likelihood_distribution(likelihood, params):
    """p(x|z) as a distribution over [H, W, C] given decoder outputs `params` [B, H, W, P].

    For the 8-bit heads the distribution is over the *integer* pixel values 0..255
    ("discretized_logistic") or over dequantized values in [0, 1] ("gaussian*");
    use `log_likelihood` to score images given in [0, 1]. The discretized logistic's
    `log_prob` is `discretized_logistic_log_prob`; `log_likelihood` calls that with the
    log-scale itself, so it stays finite even where the scale, held by this
    distribution, overflows float32 (log-scale above ~83).
    """
    _check(likelihood)
    params = tf.cast(params, tf.float32)
    if likelihood == "bernoulli":
        return tfd.Independent(tfd.Bernoulli(logits=params, dtype=tf.float32), 3)
    loc, log_scale = _loc_and_log_scale(likelihood, params)
    if likelihood.startswith("gaussian"):
        return tfd.Independent(tfd.Normal(loc, tf.exp(log_scale)), 3)
    # discretized_logistic, on the 0..255 scale. QuantizedDistribution puts the
    # mass of (k - 1, k] on k; shift by -0.5 so level k owns (k - 0.5, k + 0.5].
    logistic = tfd.Logistic(loc=255.0 * loc - 0.5, scale=255.0 * tf.exp(log_scale))
    return tfd.Independent(_StableQuantizedLogistic(logistic, low=0.0, high=255.0), 3)


def likelihood_target(likelihood, images, uniform_noise):
    """What p(x|z) scores for images in [0, 1], given U[0, 1) noise of the same shape.

    Bernoulli: binarize, 1[u < x] (binary images are left unchanged). Discretized
    logistic: the integer levels round(255 x). Gaussian: the dequantized
    (255 x + u) / 256.
    """
    _check(likelihood)
    images = tf.cast(images, tf.float32)
    if likelihood == "bernoulli":
        return tf.cast(uniform_noise < images, tf.float32)
    if likelihood == "discretized_logistic":
        return tf.round(255.0 * images)
    return (255.0 * images + uniform_noise) / 256.0


def log_likelihood(likelihood, params, target):
    """log P(x|z) [B] in nats of the discrete image, for `target` from `likelihood_target`."""
    if likelihood == "discretized_logistic":
        loc, log_scale = _loc_and_log_scale(likelihood, tf.cast(params, tf.float32))
        log_prob = discretized_logistic_log_prob(
            tf.cast(target, tf.float32), 255.0 * loc, math.log(255.0) + log_scale
        )
        return tf.reduce_sum(log_prob, axis=[1, 2, 3])
    log_prob = likelihood_distribution(likelihood, params).log_prob(target)
    if likelihood.startswith("gaussian"):
        num_dims = tf.cast(tf.reduce_prod(tf.shape(target)[1:]), tf.float32)
        log_prob -= num_dims * math.log(256.0)
    return log_prob


def discretized_logistic_log_prob(levels, mean, log_scale, low=0.0, high=255.0):
    """log P(level) of a logistic(mean, exp(log_scale)) quantized to the integers low..high.

    Level k (floored) owns the interval (k - 1/2, k + 1/2]; the edge levels absorb the
    tails: P(low) = F(low + 1/2), P(high) = 1 - F(high - 1/2), with F the logistic CDF.
    Levels outside [low, high] have probability 0. Elementwise; all arguments broadcast.

    With u = (k + 1/2 - mean) / s and l = (k - 1/2 - mean) / s, so that u - l = 1 / s:

        F(u) - F(l) = sigmoid(u) sigmoid(-l) (1 - exp(-1 / s)),

    hence log P(k) = log_sigmoid(u) + log_sigmoid(-l) + log(1 - exp(-1 / s)): three terms
    that are each accurate in float32 for any u, l and s. A difference of CDFs (or of
    log-CDFs, as TFP's `QuantizedDistribution` takes) cancels to 0, and its log to -inf,
    once the bin's mass is below float32's resolution of the CDF (6e-8 near F = 1/2,
    reached by a bin of a logistic wider than ~4e6 levels).
    """
    levels = tf.floor(levels)
    mean = tf.convert_to_tensor(mean, levels.dtype)
    log_scale = tf.convert_to_tensor(log_scale, levels.dtype)
    inv_scale = tf.exp(-log_scale)
    upper = (levels + 0.5 - mean) * inv_scale
    lower = (levels - 0.5 - mean) * inv_scale
    log_cdf_upper = -tf.math.softplus(-upper)  # log F(k + 1/2)
    log_sf_lower = -tf.math.softplus(lower)  # log (1 - F(k - 1/2))
    log_prob = log_cdf_upper + log_sf_lower + _log1mexp(inv_scale, -log_scale)  # log(1/s) = -log s
    log_prob = tf.where(levels <= low, log_cdf_upper, tf.where(levels >= high, log_sf_lower, log_prob))
    outside = (levels < low) | (levels > high)
    return tf.where(outside, tf.constant(-math.inf, levels.dtype), log_prob)


def _log1mexp(x, log_x):
    """log(1 - exp(-x)) for x = exp(log_x) > 0, accurate for tiny and large x.

    log(-expm1(-x)) for x <= log 2, log1p(-exp(-x)) above (Maechler, 2012); below 1e-4,
    log x - x / 2 (error < x^2 / 24), which stays finite when x itself underflows.
    Both branches of each `tf.where` are finite, so gradients are too.
    """
    small = x < 1e-4
    safe_x = tf.where(small, tf.ones_like(x), x)
    exact = tf.where(
        safe_x <= math.log(2.0), tf.math.log(-tf.math.expm1(-safe_x)), tf.math.log1p(-tf.exp(-safe_x))
    )
    return tf.where(small, log_x - 0.5 * x, exact)


class _StableQuantizedLogistic(tfd.QuantizedDistribution):
    """`QuantizedDistribution` of a `Logistic` whose (log-)probability is
    `discretized_logistic_log_prob` (sampling, CDF and the rest are TFP's)."""

    def _log_prob(self, y):
        logistic = self.distribution
        # The base logistic is shifted by -1/2 so that level k owns (k - 1/2, k + 1/2].
        return discretized_logistic_log_prob(
            y, logistic.loc + 0.5, tf.math.log(logistic.scale), low=self.low, high=self.high
        )

    def _prob(self, y):
        return tf.exp(self._log_prob(y))


def likelihood_mean(likelihood, params):
    """A differentiable image in [0, 1] from p(x|z): what the discriminator and users see.

    The Bernoulli mean sigma(logits); the location of the other heads.
    """
    _check(likelihood)
    params = tf.cast(params, tf.float32)
    if likelihood == "bernoulli":
        return tf.sigmoid(params)
    return _loc_and_log_scale(likelihood, params)[0]


LATENT_X = config.LATENT_X  # one home: svae_tf/model/config.py


def draw_noise(likelihood):
    """The noise a draw from p(x|z) is a function of (`likelihood_draw`): "uniform" U[0, 1)
    (Bernoulli, discretized logistic) or "normal" N(0, 1) (Gaussian heads), one per sub-pixel."""
    _check(likelihood)
    return "normal" if likelihood.startswith("gaussian") else "uniform"


def likelihood_draw(likelihood, params, noise):
    """x ~ p(x|z) [B, H, W, C] on the image scale, a function of `noise` (`draw_noise`, the
    params' shape [B, H, W, C] of the image): its value is exactly the draw; its gradient w.r.t. the
    params is straight-through where the draw is discrete.

    - "bernoulli": b = 1[u < p], p = sigmoid(logits), in {0, 1}; the value b, the gradient
      that of p (b + (p - stop_gradient(p)): the straight-through estimator, Bengio et al. 2013).
    - "discretized_logistic": y = loc + s log(u / (1 - u)), a reparameterised logistic on the
      [0, 1] scale, quantized to the 256 levels: x = clip(round(255 y), 0, 255) / 255 (the
      edge levels absorb the tails, as `discretized_logistic_log_prob`); the gradient that of y
      (pathwise through loc and s, straight through the rounding and clipping).
    - "gaussian", "gaussian_fixed": y = loc + s eps, reparameterised (exact pathwise gradient),
      on the dequantized scale of the head (not clipped to [0, 1]).
    `stop_gradient` of it is a draw with no gradient.
    """
    _check(likelihood)
    params = tf.cast(params, tf.float32)
    if likelihood == "bernoulli":
        p = tf.sigmoid(params)
        return tf.cast(noise < p, tf.float32) + (p - tf.stop_gradient(p))  # exactly b in value
    loc, log_scale = _loc_and_log_scale(likelihood, params)
    if likelihood.startswith("gaussian"):
        return loc + tf.exp(log_scale) * noise
    u = tf.clip_by_value(noise, 1e-6, 1.0 - 1e-6)  # logit(0) = -inf: the edge level anyway
    y = loc + tf.exp(log_scale) * (tf.math.log(u) - tf.math.log1p(-u))
    x = tf.clip_by_value(tf.round(255.0 * y), 0.0, 255.0) / 255.0
    return x + (y - tf.stop_gradient(y))  # exactly x in value


def draw_log_likelihood(likelihood, params, draws):
    """log p(x|z) [B] of `draws` from `likelihood_draw` (values: {0, 1}, levels / 255, or y)."""
    _check(likelihood)
    if likelihood == "discretized_logistic":
        return log_likelihood(likelihood, params, tf.round(255.0 * draws))
    return log_likelihood(likelihood, params, draws)


def latent_term(latent_x, likelihood, params, noise, z, log_q):
    """Eq. (29)'s latent term E_{p(x, z)} log q(z|x) per example [B], at z ~ p(z) and x given
    by `latent_x` (one of LATENT_X), with the decoder's gradient it names.

    Args:
      latent_x: "mean": x = E[x|z] (`likelihood_mean`, differentiable: a deterministic
        function of z, so the term has no upper bound). The others draw x ~ p(x|z) from
        `noise` (`likelihood_draw`; None for "mean"), so that the value is the term at a draw,
        whose gradient w.r.t. the encoder is the same for all three, and w.r.t. the decoder:
        "draw": none (the encoder alone learns from the decoder's draws, as in wake-sleep's
        sleep phase); "straight_through": through `likelihood_draw`'s straight-through
        gradient (biased for discrete draws); "score_function": REINFORCE,
        (g(x) - b) grad log p(x|z) with g(x) = log q(z|x) and the baseline b = g(E[x|z]),
        a function of z only, so the estimator is unbiased for grad E_{p(x|z)} g(x).
      likelihood: the decoder's head; params [B, H, W, P] its outputs at z.
      z: [B, z_dim] the z the decoder was given.
      log_q: (images [N, H, W, C], z [N, z_dim]) -> log q(z|x) [N], the encoder's density.
    """
    if latent_x not in LATENT_X:
        raise ValueError(f"latent_x must be one of {LATENT_X}, got {latent_x!r}.")
    if latent_x == "mean":
        return log_q(likelihood_mean(likelihood, params), z)
    x = likelihood_draw(likelihood, params, noise)
    if latent_x == "straight_through":
        return log_q(x, z)
    x = tf.stop_gradient(x)
    if latent_x == "draw":
        return log_q(x, z)
    mean = tf.stop_gradient(likelihood_mean(likelihood, params))  # the baseline's x
    g, baseline = tf.split(log_q(tf.concat([x, mean], 0), tf.concat([z, z], 0)), 2, axis=0)
    log_px = draw_log_likelihood(likelihood, params, x)  # the decoder's gradient enters here
    advantage = tf.stop_gradient(g - baseline)
    return g + advantage * (log_px - tf.stop_gradient(log_px))  # value g; gradient REINFORCE


def _loc_and_log_scale(likelihood, params):
    """Location in [0, 1] and floored log-scale ([B, H, W, C] each) of a continuous head."""
    if likelihood == "gaussian_fixed":
        return tf.sigmoid(params), tf.fill(tf.shape(params), math.log(GAUSSIAN_FIXED_SCALE))
    raw_loc, log_scale = tf.split(params, 2, axis=-1)
    return tf.sigmoid(raw_loc), tf.maximum(log_scale, _MIN_LOG_SCALE)


def _check(likelihood):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"Unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}.")
