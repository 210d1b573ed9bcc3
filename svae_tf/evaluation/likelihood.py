"""Model-level negative log-likelihood: the ELBO (1) and the importance-weighted bound.

For an image x and K samples z_k ~ q(z|x) (i.i.d.), with log weights

    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),

two lower bounds on log p(x) are estimated per image, in nats:

* the ELBO of eq. (1), E_q[log w], estimated by the mean (1/K) sum_k log w_k;
* the importance-weighted bound (IWAE, Burda et al. 2016),
  L_K = log (1/K) sum_k w_k (`metrics.importance_weighted_bound`), which is
  >= the same-sample ELBO estimate (Jensen), non-decreasing in K in
  expectation, and tends to log p(x) as K grows. -L_K is the NLL estimate
  reported for MNIST (nats) and, divided by D ln 2, in bits per dimension.

log p(x|z) is the likelihood of the *discrete* image (`distributions.log_likelihood`):
Bernoulli on binary pixels, discretized logistic on 8-bit levels, or a
dequantized Gaussian with its -D log 256 offset.

Memory: the K samples are processed in chunks of `chunk_size` samples with a
streaming log-sum-exp, so K = 5000 costs the memory of one chunk (chunk_size x
batch decoder passes), never of all K. The noise of sample k of a batch is
drawn from its own stateless seed fold_in(seed, k); the result therefore does
not depend on `chunk_size` (up to float round-off).

The core, `streaming_bounds`, knows nothing of the model: it takes a function
from standard-normal noise [k, B, D] to log weights [k, B]. `model_log_weights_fn`
builds that function for a `SymmetricVAE`; `toy` models (e.g. a linear Gaussian
model with exact log p(x)) can be passed through the same core.
"""

import math

import numpy as np
import tensorflow as tf

from svae_tf.model import distributions, networks, objectives
from svae_tf.evaluation import metrics

DEFAULT_MAX_CHUNK_ELEMENTS = 1024  # decoder passes per chunk: chunk_size * batch size


# ------------------------------------------------------------------ sampling
def sample_noise(seed, start, count, batch_size, event_size, dtype=tf.float32):
    """Standard-normal noise [count, B, D] for samples start .. start + count - 1.

    Sample k is drawn with the stateless seed fold_in(seed, k), so the noise of a
    sample does not depend on how the K samples are chunked.
    """
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    indices = tf.cast(start, tf.int64) + tf.range(count, dtype=tf.int64)

    def draw(k):
        return tf.random.stateless_normal(
            tf.stack([batch_size, event_size]),
            seed=tf.random.experimental.stateless_fold_in(seed, k),
            dtype=dtype,
        )

    return tf.map_fn(
        draw, indices, fn_output_signature=tf.TensorSpec([None, None], dtype)
    )


# ---------------------------------------------------------------- the core
def streaming_bounds(log_weights_fn, num_samples, chunk_size, batch_size, event_size, seed,
                     dtype=tf.float32):
    """Per-example IWAE bound L_K and ELBO estimate, streaming over chunks of K.

    Args:
      log_weights_fn: maps standard-normal noise [k, B, D] (of `dtype`) to log
        weights log p(x, z) - log q(z|x) [k, B], z being the reparameterised sample
        of that noise (`distributions.log_weight_terms`).
      num_samples: K >= 1 (a Python int).
      chunk_size: samples per chunk (a Python int >= 1); memory is O(chunk_size * B).
      batch_size: B (int or scalar tensor).
      event_size: D, the latent dimension (a Python int).
      seed: stateless seed, int tensor of shape [2].
      dtype: dtype of the noise (the log weights are accumulated in float64).

    Returns:
      (iwae [B], elbo [B]) in nats, float64: log (1/K) sum_k w_k and (1/K) sum_k log w_k.
    """
    num_samples, chunk_size = int(num_samples), int(chunk_size)
    if num_samples < 1 or chunk_size < 1:
        raise ValueError(f"need num_samples >= 1 and chunk_size >= 1, got {num_samples}, {chunk_size}")
    chunk_size = min(chunk_size, num_samples)
    num_full, rest = divmod(num_samples, chunk_size)

    def chunk(start, count):
        noise = sample_noise(seed, start, count, batch_size, event_size, dtype)
        log_w = tf.cast(log_weights_fn(noise), tf.float64)  # [count, B]
        return tf.reduce_logsumexp(log_w, axis=0), tf.reduce_sum(log_w, axis=0)

    def accumulate(lse, total, start, count):
        chunk_lse, chunk_sum = chunk(start, count)
        # log(exp(lse) + exp(chunk_lse)); reduce_logsumexp handles the initial -inf.
        return tf.reduce_logsumexp(tf.stack([lse, chunk_lse]), axis=0), total + chunk_sum

    lse = tf.fill(tf.reshape(batch_size, [1]), tf.constant(-np.inf, tf.float64))
    total = tf.zeros_like(lse)
    _, lse, total = tf.while_loop(
        lambda i, *_: i < num_full,
        lambda i, lse, total: (i + 1, *accumulate(lse, total, i * chunk_size, chunk_size)),
        (tf.constant(0, tf.int64), lse, total),
        maximum_iterations=num_full,
    )
    if rest:
        lse, total = accumulate(lse, total, num_full * chunk_size, rest)
    iwae = lse - math.log(num_samples)
    return iwae, total / num_samples


# --------------------------------------------------------------- the model
def model_log_weights_fn(model, encoder_images, target):
    """log w for a `SymmetricVAE`: a function noise [k, B, z_dim] -> [k, B].

    Args:
      model: a SymmetricVAE with an encoder (not gan / wgan_gp).
      encoder_images: [B, H, W, C] in [0, 1], the input of q(z|x).
      target: [B, H, W, C], what p(x|z) scores (from `distributions.likelihood_target`;
        a binary image is its own Bernoulli target).

    The encoder runs once per image; q(z|x) is the model's posterior (Gaussian head
    and flow, as in `SymmetricVAE.posterior`), rebuilt for the k x B flattened
    samples because the flow's Keras conditioners take rank-2 inputs. Networks
    run in inference mode (batch-norm moving statistics).
    """
    if model.encoder is None:
        raise ValueError(f"variant {model.variant!r} has no encoder: its likelihood has no bound here.")
    preset = model.preset
    z_dim = preset.z_dim
    encoder_out = tf.cast(model.encoder(encoder_images, training=False), tf.float32)  # [B, 2 z_dim]
    bijector = model.flow.bijector()
    target = tf.cast(target, tf.float32)

    def log_weights(noise):
        k, b = tf.shape(noise)[0], tf.shape(noise)[1]
        flat_out = tf.reshape(tf.tile(encoder_out[None], [k, 1, 1]), [-1, 2 * z_dim])
        q = distributions.posterior(flat_out, bijector)  # batch [k B]
        flat_target = tf.reshape(
            tf.tile(target[None], [k, 1, 1, 1, 1]), tf.concat([[-1], tf.shape(target)[1:]], 0)
        )

        def log_px_given_z(z):
            params = model.decode(z, training=False)  # [k B, H, W, P]
            return distributions.log_likelihood(preset.likelihood, params, flat_target)

        t = distributions.log_weight_terms(q, tf.reshape(noise, [-1, z_dim]), log_px_given_z)
        return tf.reshape(objectives.log_weight(t["log_px_given_z"], t["log_pz"], t["log_qz"]), [k, b])

    return log_weights


def likelihood_targets(model, images, seed):
    """Targets of p(x|z) for images in [0, 1]: `distributions.likelihood_target` with
    U[0, 1) noise from the stateless `seed` (dynamic binarization of grey levels,
    dequantization noise; binary images and integer levels are unaffected)."""
    noise = tf.random.stateless_uniform(tf.shape(images), seed=seed, dtype=tf.float32)
    return distributions.likelihood_target(model.preset.likelihood, images, noise)


class LikelihoodEvaluator:
    """Batched, chunked IWAE / ELBO of a SymmetricVAE with a `tf.function` core.

    Args:
      model: a SymmetricVAE with an encoder.
      num_samples: K importance samples per image.
      max_chunk_elements: a chunk holds at most this many decoder passes
        (chunk_size = max(1, max_chunk_elements // B)); bounds memory.
      chunk_size: fixes the chunk size instead (ignores max_chunk_elements).
    """

    def __init__(self, model, num_samples, max_chunk_elements=DEFAULT_MAX_CHUNK_ELEMENTS,
                 chunk_size=None):
        if model.encoder is None:
            raise ValueError(f"variant {model.variant!r} has no encoder q(z|x): no likelihood bound.")
        if num_samples < 1:
            raise ValueError(f"num_samples (K) must be >= 1, got {num_samples}")
        self.model = model
        self.num_samples = int(num_samples)
        self.max_chunk_elements = int(max_chunk_elements)
        self.fixed_chunk_size = chunk_size
        self._functions = {}

    def chunk_size(self, batch_size):
        if self.fixed_chunk_size:
            return min(int(self.fixed_chunk_size), self.num_samples)
        return max(1, min(self.num_samples, self.max_chunk_elements // max(1, batch_size)))

    def _function(self, chunk_size):
        if chunk_size not in self._functions:
            model, num_samples = self.model, self.num_samples

            @tf.function(reduce_retracing=True)
            def bounds(encoder_images, target, seed):
                fn = model_log_weights_fn(model, encoder_images, target)
                return streaming_bounds(
                    fn, num_samples, chunk_size, tf.shape(target)[0], model.preset.z_dim, seed
                )

            self._functions[chunk_size] = bounds
        return self._functions[chunk_size]

    def bounds(self, encoder_images, target, seed):
        """(iwae [B], elbo [B]) in nats (float64 tensors) for one batch.

        `target` is what p(x|z) scores (see `likelihood_targets`); `seed` a [2] int seed.
        """
        encoder_images = tf.convert_to_tensor(encoder_images, tf.float32)
        target = tf.convert_to_tensor(target, tf.float32)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        return self._function(self.chunk_size(int(target.shape[0])))(encoder_images, target, seed)

    def evaluate(self, batches, seed=0):
        """Per-image bounds over an iterable of batches.

        Args:
          batches: yields `images` [B, H, W, C] in [0, 1] (encoder input and target
            source alike), or pairs `(encoder_images, target_images)`.
          seed: an int; batch i uses the seeds fold_in((seed, 0), i) for its samples
            and for its likelihood target noise.

        Returns:
          dict of float64 numpy arrays [N]: "iwae" and "elbo" in nats (lower bounds
          on log p(x); NLL = -iwae).
        """
        iwae, elbo = [], []
        base = tf.constant([seed, 0], tf.int64)
        for i, batch in enumerate(batches):
            if isinstance(batch, (tuple, list)):
                encoder_images, target_images = batch
            else:
                encoder_images = target_images = batch
            batch_seed = tf.random.experimental.stateless_fold_in(base, i)
            target_seed = tf.random.experimental.stateless_fold_in(batch_seed, -1)
            target = likelihood_targets(self.model, tf.cast(target_images, tf.float32), target_seed)
            b_iwae, b_elbo = self.bounds(encoder_images, target, batch_seed)
            iwae.append(b_iwae.numpy())
            elbo.append(b_elbo.numpy())
        if not iwae:
            raise ValueError("no batches to evaluate")
        return {"iwae": np.concatenate(iwae), "elbo": np.concatenate(elbo)}


def summarize(bounds, num_dims):
    """Dataset-level numbers from `LikelihoodEvaluator.evaluate` output.

    Returns floats: nll_nats = -mean(iwae), nll_bits_per_dim, elbo (mean ELBO, nats,
    a lower bound on log p(x)), neg_elbo_bits_per_dim, and the standard error of
    nll_nats over images.
    """
    iwae, elbo = np.asarray(bounds["iwae"]), np.asarray(bounds["elbo"])
    nll = -float(np.mean(iwae))
    stderr = float(np.std(iwae, ddof=1) / math.sqrt(iwae.size)) if iwae.size > 1 else float("nan")
    return {
        "nll_nats": nll,
        "nll_nats_stderr": stderr,
        "nll_bits_per_dim": float(metrics.nats_to_bits_per_dim(nll, num_dims)),
        "elbo": float(np.mean(elbo)),
        "neg_elbo_bits_per_dim": float(metrics.nats_to_bits_per_dim(-float(np.mean(elbo)), num_dims)),
        "num_images": int(iwae.size),
    }


def log_weights(model, encoder_images, target, num_samples, seed):
    """All K log weights [K, B] at once (no chunking): for tests and small K."""
    fn = model_log_weights_fn(model, tf.convert_to_tensor(encoder_images, tf.float32), target)
    noise = sample_noise(tf.cast(seed, tf.int64), 0, num_samples, tf.shape(target)[0], model.preset.z_dim)
    return fn(noise)


# --------------------------------------------------------- reconstruction
def reconstruct(model, images, batch_stats=False, seed=0):
    """x -> T(mu(x)) -> E[p(x|z)]: decoder mean at the encoder's posterior "mean".

    The encoder's Gaussian mean mu(x) is pushed through the flow T (z = T(mu), the
    reparameterised sample at zero noise) and decoded to the decoder mean in [0, 1]
    (Bernoulli probabilities for MNIST, the location of the 8-bit heads). The networks
    run in inference mode (batch norm's moving statistics, what sampling, evaluation
    and export use), or with `batch_stats` in training mode: batch norm normalises with
    the statistics of this batch as the train step forms it (nothing is updated: no
    optimizer runs, and the moving averages are restored). For a row with
    `reconstruction` (sVAE-r) that is the decoder on [z_p; z], with as many z_p ~ p(z)
    (from `seed`) as images, as in `SymmetricVAE.decode_joints`.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    noise = tf.zeros([tf.shape(images)[0], model.preset.z_dim], tf.float32)
    if not batch_stats:
        _, z = model.encode(images, noise=noise, training=False)
        return model.decode_mean(z, training=False)
    with networks.moving_statistics_kept(model.encoder, model.decoder):  # no update survives
        _, z = model.encode(images, noise=noise, training=True)
        if not model.spec.reconstruction:
            return model.decode_mean(z, training=True)
        z_p = tf.random.stateless_normal(tf.shape(z), seed=(seed, 0))
        _, params = model.decode_joints(z_p, z, training=True)
        return distributions.likelihood_mean(model.preset.likelihood, params)


def reconstruction_rmses(model, batches, seed=0):
    """{"inference", "batch_stats"}: the RMSE (0-255 scale, `metrics.streamed_rmse_255`) of
    `reconstruct` over `batches` in inference mode and with the batch statistics of a
    training step. Equal when inference mode is the network a training step computes."""
    return {mode: metrics.streamed_rmse_255(lambda x: reconstruct(model, x, batch_stats, seed), batches)
            for mode, batch_stats in (("inference", False), ("batch_stats", True))}
