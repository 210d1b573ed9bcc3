"""Amortised-inference refit: q(z|x) fitted to a fixed decoder by maximising the ELBO (1).

An encoder trained beside its decoder need not be the best q(z|x) for that decoder
(Cremer et al. 2018, "Inference Suboptimality in Variational Autoencoders": the
amortisation gap). sVAE-r's encoder is trained on the symmetric objective (eq. 29), where
the bound (1) enters with weight lambda only, so its bound is looser than a VAE's at an
equally good decoder. `refit_encoder` trains the encoder and its flow alone on the
negative ELBO with the decoder in inference mode (its weights and batch-norm statistics
unchanged): the generative model p(z) p(x|z), its samples, IS and FID stay what training
made them; the bound (1), the IWAE bound and reconstructions then describe that model
with a better q(z|x). `trainers.evaluate --refit_encoder_steps` reports both.
"""

import time

import keras
import tensorflow as tf

from svae_tf.model import networks, objectives

DEFAULT_STEPS = 500
DEFAULT_LEARNING_RATE = 2e-4
BATCH_NORM_BATCHES = 100  # training batches of the encoder's population statistics after a refit


def _negative_elbo(model, images):
    """Mean negative ELBO (1) of images [B, H, W, C] in [0, 1] at one z ~ q(z|x) each (noise
    from the active stream): the encoder in training mode, the decoder in inference mode."""
    t = model.elbo_terms(images, training=True, decoder_training=False)
    return tf.reduce_mean(objectives.negative_elbo(t["log_px_given_z"], t["log_pz"], t["log_qz"]))


def refit_encoder(model, batches, steps=DEFAULT_STEPS, learning_rate=DEFAULT_LEARNING_RATE,
                  batch_norm_batches=None, seed=0):
    """`steps` Adam updates of the encoder and flow of `model` (in place) on the negative
    ELBO (1) of `batches` (an iterable of images [B, H, W, C] in [0, 1], e.g. the training
    split, long enough for `steps`), the decoder fixed; then the encoder's batch-norm
    population statistics over `batch_norm_batches` (an iterable of image batches; None:
    keep Keras' moving averages). Noise from a generator seeded with the int `seed`.

    Returns {"steps", "learning_rate", "seconds", "final_loss"} (the mean negative ELBO of
    the last 50 training batches, nats)."""
    if model.encoder is None:
        raise ValueError(f"variant {model.variant!r} has no encoder to refit.")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    variables = model.encoder_variables
    optimizer = keras.optimizers.Adam(learning_rate, name="refit_adam")
    optimizer.build(variables)

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            loss = _negative_elbo(model, images)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    start, losses, done = time.time(), [], 0
    # A stateful generator: draws in the traced step advance it (an int seed would be
    # traced as constants, the same noise at every step).
    with model.streams.drawing_from(keras.random.SeedGenerator(seed, name="refit_noise")):
        for images in batches:
            if done == steps:
                break
            images = images[0] if isinstance(images, (tuple, list)) else images
            losses.append(step(tf.cast(images, tf.float32)))  # read once, after the loop
            done += 1
        if done < steps:
            raise ValueError(f"batches ran out after {done} of {steps} refit steps.")
        if batch_norm_batches is not None:
            networks.recompute_moving_statistics(
                [model.encoder], lambda x, _: model.posterior(tf.cast(x, tf.float32), training=True),
                batch_norm_batches)
    final_loss = float(tf.reduce_mean(tf.stack(losses[-50:])))
    return {"steps": steps, "learning_rate": learning_rate, "seconds": time.time() - start,
            "final_loss": final_loss}
