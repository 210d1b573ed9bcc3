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
  256 levels (TFP `QuantizedDistribution`, edge bins absorb the tails, as in
  PixelCNN++ with one mixture component).
- "gaussian": a Gaussian on uniformly dequantized 8-bit pixels, y = (255 x + u) / 256,
  u ~ U[0, 1); log P(x) >= E_u log p(y) - D log 256, and that offset is included.
  Variance learned per pixel, or fixed (`gaussian_fixed`, GAUSSIAN_FIXED_SCALE).

The location of the continuous heads is sigmoid(raw output) in [0, 1], so the
decoder mean stays differentiable everywhere (the discriminator sees it).
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

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
    """z = T(mu + sigma * eps) for eps ~ N(0, I) given as `noise` [B, z_dim].

    Taking the noise as an input keeps draws reproducible and identical across
    replica counts (see `model.SymmetricVAE._normal`). The bijector caches the
    pair (z0, z), so `q.log_prob(z)` afterwards does not invert the flow again.
    """
    bijector = getattr(q, "bijector", None)  # TFP builds a private subclass; duck-type.
    base = q if bijector is None else q.distribution
    z0 = base.mean() + base.stddev() * noise
    return z0 if bijector is None else bijector.forward(z0)


def param_channels(likelihood, channels):
    """Number of decoder output channels the head needs for `channels` image channels."""
    _check(likelihood)
    return channels if likelihood in ("bernoulli", "gaussian_fixed") else 2 * channels


def likelihood_distribution(likelihood, params):
    """p(x|z) as a distribution over [H, W, C] given decoder outputs `params` [B, H, W, P].

    For the 8-bit heads the distribution is over the *integer* pixel values 0..255
    ("discretized_logistic") or over dequantized values in [0, 1] ("gaussian*");
    use `log_likelihood` to score images given in [0, 1].
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
    return tfd.Independent(tfd.QuantizedDistribution(logistic, low=0.0, high=255.0), 3)


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
    log_prob = likelihood_distribution(likelihood, params).log_prob(target)
    if likelihood.startswith("gaussian"):
        num_dims = tf.cast(tf.reduce_prod(tf.shape(target)[1:]), tf.float32)
        log_prob -= num_dims * math.log(256.0)
    return log_prob


def likelihood_mean(likelihood, params):
    """A differentiable image in [0, 1] from p(x|z): what the discriminator and users see.

    The Bernoulli mean sigma(logits); the location of the other heads.
    """
    _check(likelihood)
    params = tf.cast(params, tf.float32)
    if likelihood == "bernoulli":
        return tf.sigmoid(params)
    return _loc_and_log_scale(likelihood, params)[0]


def _loc_and_log_scale(likelihood, params):
    """Location in [0, 1] and floored log-scale ([B, H, W, C] each) of a continuous head."""
    if likelihood == "gaussian_fixed":
        return tf.sigmoid(params), tf.fill(tf.shape(params), math.log(GAUSSIAN_FIXED_SCALE))
    raw_loc, log_scale = tf.split(params, 2, axis=-1)
    return tf.sigmoid(raw_loc), tf.maximum(log_scale, _MIN_LOG_SCALE)


def _check(likelihood):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"Unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}.")
