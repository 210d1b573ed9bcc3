"""The symmetric VAE family as one Keras 3 model with an alternating train step.

Variants (Sec. 3-5 of the paper) are chosen by name; what each one is (its networks,
losses and metrics) is its row in `svae_tf/model/variants.py`, which the steps below read.

One `train_step` runs `n_disc` discriminator updates, then one encoder/decoder
update, with two optimizers. Gradients of each are taken over its own variables
only. Every hand-written loss is a per-example vector reduced with
`tf.nn.compute_average_loss` (sum / global batch size), because the optimizer
sums gradients over replicas. The training noise comes from one checkpointable
`keras.random.SeedGenerator`, drawn for the *global* batch and sliced per replica,
so a run gives the same numbers on one device or several (`svae_tf/model/noise.py`).

The discriminator sees grey-level real images x ~ q(x) and decoder means
x ~ p(x|z) on the other side (same kind of pixels on both joints); the
binarized/quantized target is used for the likelihood only.
"""

import dataclasses
from typing import NamedTuple, Optional

import keras
import tensorflow as tf

from svae_tf.model import config as config_lib
from svae_tf.model import distributions, ema, flows, networks, noise, objectives, presets, variants

VARIANTS = variants.BUILT_IN
JOINT_VARIANTS = tuple(v for v in VARIANTS if variants.get(v).discriminator == "joint")
DECODER_ONLY_VARIANTS = tuple(v for v in VARIANTS if not variants.get(v).encoder)
# Noise of `recompute_batch_norm_statistics` from an int seed: batch b's i-th draw is
# (seed, b * _DRAWS_PER_BATCH + i), so every batch gets its own noise in one traced function.
_DRAWS_PER_BATCH = 2**20

class JointSamples(NamedTuple):
    """Samples of both joints in one step: (x, z_q) ~ q(x, z), (x_p, z_p) ~ p(x, z)."""

    z_q: Optional[tf.Tensor]  # [B, z_dim] ~ q(z|x); None without an encoder
    q: Optional[object]  # q(z|x) of the batch (a TFP distribution); None without an encoder
    x_p: tf.Tensor  # [B, H, W, C], decoder means at z_p
    z_p: tf.Tensor  # [B, z_dim] ~ p(z)
    params_q: Optional[tf.Tensor]  # [B, H, W, P], decoder at z_q (rows with `reconstruction`)
    params_p: Optional[tf.Tensor] = None  # [B, H, W, P], decoder at z_p (x_p's parameters)


@keras.saving.register_keras_serializable(package="svae_tf")
class SymmetricVAE(keras.Model):
    """Encoder q(z|x) (+ flow), decoder p(x|z) and discriminator f, trained as `variant`.

    Args:
      preset: a `presets.Preset` (or its config dict).
      variant: a name in `variants` (VARIANTS, or a row added with `variants.register`).
      **kwargs: the hyper-parameters of `svae_tf.model.config.ModelHparams` (lam, lam_z, n_disc,
        gradient_penalty_weight, discriminator_dropout, seed, r1_weight, ema_decay,
        shared_samples: their meaning, defaults and
        bounds are declared there, once), then Keras' `Model` arguments. A value out of
        its bounds raises ValueError naming it. Initial weights and dropout come from
        Keras' global RNG (`keras.utils.set_random_seed`); `seed` starts the noise.
    """

    def __init__(self, preset, variant="svae_r", **kwargs):
        names = config_lib.ModelHparams.names()
        hp = config_lib.ModelHparams(variant=variant, **{k: kwargs.pop(k) for k in names if k in kwargs})
        super().__init__(**kwargs)
        self.hparams = hp
        self.spec = variants.get(variant)
        if isinstance(preset, dict):
            preset = presets.Preset.from_config(preset)
        self.preset = preset
        self.variant = variant
        self.lam = float(hp.lam)
        self.lam_z = None if hp.lam_z is None else float(hp.lam_z)
        self._lam_z_value = self.lam if self.lam_z is None else self.lam_z  # eq. (29)'s weight
        self.latent_x = hp.latent_x
        self.n_disc = int(hp.n_disc)
        self.gradient_penalty_weight = float(hp.gradient_penalty_weight)
        self.r1_weight = float(hp.r1_weight)
        self.ema_decay = float(hp.ema_decay)
        self.shared_samples = bool(hp.shared_samples)
        seed = hp.seed
        # Training, evaluation (test_step) and the public inference methods each have a
        # stream (`noise.Streams`); attributes of the model, so checkpoints hold them.
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise")
        self.eval_seed_generator = keras.random.SeedGenerator(seed + 1, name="eval_noise")
        self.inference_seed_generator = keras.random.SeedGenerator(seed + 2, name="inference_noise")
        self.streams = noise.Streams(self.seed_generator, self.eval_seed_generator,
                                     self.inference_seed_generator)

        self.decoder = networks.build_decoder(preset)
        self.encoder = self.flow = None
        if self.spec.encoder:
            self.encoder = networks.build_encoder(preset)
            self.flow = flows.Flow(
                preset.flow, preset.z_dim, preset.flow_depth, preset.flow_hidden, name="flow"
            )
        self.discriminator = None
        if self.spec.discriminator:
            self.discriminator = networks.build_discriminator(
                preset, joint=self._joint, dropout=hp.discriminator_dropout
            )
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in self._metric_names()
        }
        self.ema_weights = [self._average_of(v) for v in self.generator_variables] if hp.ema_decay else []
        self.built = True  # every sub-network is built above

    def _average_of(self, variable):
        """A non-trainable copy of `variable` for `ema_weights` (one value on every replica)."""
        average = self.add_weight(shape=variable.shape, dtype=variable.dtype, initializer="zeros",
                                  trainable=False, aggregation="only_first_replica",
                                  name="ema_" + variable.path.replace("/", "_"))
        average.assign(variable)
        return average

    def use_ema_weights(self):
        """Put the weights' moving average in place of the encoder/flow/decoder weights
        (for inference: the trained weights are gone from this instance)."""
        for average, variable in zip(self.ema_weights, self.generator_variables):
            variable.assign(average)

    def ema_scope(self):
        """A context: the moving average in place inside it, the trained weights after;
        a no-op without `ema_decay`."""
        return ema.swapped(self.ema_weights, self.generator_variables)

    # ----------------------------------------------------------------- saving
    def get_config(self):
        """What `__init__` needs: `model.save("m.keras")` / `keras.saving.load_model` work."""
        out = super().get_config()
        out.update(preset=self.preset.to_config(), **dataclasses.asdict(self.hparams))
        return out

    @classmethod
    def from_config(cls, config):
        return cls(**config_lib.without_removed(config))

    def get_compile_config(self):
        # The two optimizers are not a Keras compile config: a loaded model is not
        # compiled; call compile() again to train it (checkpoints resume training).
        return None

    # ---------------------------------------------------------------- metrics
    @property
    def _joint(self):
        return self.spec.discriminator == "joint"

    def _metric_names(self):
        """Training metrics (the row's, its discriminator's and penalties'), then the ELBO."""
        names = ["g_loss"]
        if self.spec.discriminator:
            names += ["d_loss", "d_acc_q", "d_acc_p"]
        names += list(self.spec.metrics)
        if self.spec.critic:
            names.append("gradient_penalty")
        if self.r1_weight and self.spec.discriminator:
            names.append("r1_penalty")
        if self.spec.encoder and "elbo" not in names:
            names.append("elbo")  # held out (test_step); in training only if the loss gives it
        return names

    @property
    def _train_metric_names(self):
        # The ELBO costs an extra pass; train_step reports it only where the loss gives it.
        return [n for n in self._trackers if n != "elbo" or "elbo" in self.spec.metrics]

    @property
    def _test_metric_names(self):
        return [n for n in ("elbo", "d_acc_q", "d_acc_p") if n in self._trackers]

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _results(self, names):
        return {name: self._trackers[name].result() for name in names}

    def _track(self, **values):
        for name, value in values.items():
            self._trackers[name].update_state(value)

    # --------------------------------------------------------------- compile
    def compile(self, g_optimizer=None, d_optimizer=None, jit_compile=False, optimizer=None,
                rank1_metrics=False, **kwargs):
        """Two Adam optimizers (learning rate 1e-4 as in the paper) unless given.

        `optimizer` (Keras' usual name) is the encoder/decoder optimizer, `g_optimizer`;
        giving both raises TypeError. Call inside `strategy.scope()` when training under a
        tf.distribute strategy (keras #20164): the optimizers' variables must be mirrored
        like the model's. `jit_compile` is explicit (Keras' "auto" would pick XLA on some
        devices only). Keras losses and metrics do not apply (the losses are the
        variant's): passing `loss` or `metrics` raises TypeError.

        `rank1_metrics`: `train_step` and `test_step` return each metric with shape [1]
        instead of a scalar (same values). Needed under MultiWorkerMirroredStrategy, where
        Keras reduces the step outputs with `strategy.reduce("MEAN", v, axis=0)`, which
        fails on scalars (tensorflow/tensorflow#72388); on shape [1] it is the mean over
        the replicas, a scalar again.
        """
        if optimizer is not None:
            if g_optimizer is not None:
                raise TypeError("compile() got both `optimizer` and `g_optimizer`; `optimizer` is "
                                "the encoder/decoder optimizer (g_optimizer), the discriminator's "
                                "is `d_optimizer`.")
            g_optimizer = keras.optimizers.get(optimizer)
        for name in ("loss", "metrics", "loss_weights", "weighted_metrics"):
            if kwargs.get(name) is not None:
                raise TypeError(f"compile(): SymmetricVAE's losses and metrics are its variant's; "
                                f"`{name}` does not apply. Give g_optimizer / d_optimizer only.")
        if isinstance(d_optimizer, str):
            d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(1e-4, name="g_adam")
        self.d_optimizer = None
        if self.discriminator is not None:
            self.d_optimizer = d_optimizer or keras.optimizers.Adam(1e-4, name="d_adam")
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator_variables)
        self.rank1_metrics = bool(rank1_metrics)
        super().compile(optimizer=self.g_optimizer, jit_compile=jit_compile, **kwargs)

    @property
    def generator_variables(self):
        """Trainable variables of the encoder, its flow and the decoder."""
        return self.decoder.trainable_variables + self.encoder_variables

    @property
    def encoder_variables(self):
        """Trainable variables of the encoder and its flow (none without an encoder)."""
        layers = [self.encoder, self.flow]
        return [v for layer in layers if layer is not None for v in layer.trainable_variables]

    # ------------------------------------------------------------ the model
    def posterior(self, images, training=False):
        """q(z|x) for images [B, H, W, C] in [0, 1]: batch [B], event [z_dim]."""
        out = tf.cast(self.encoder(images, training=training), tf.float32)
        return distributions.posterior(out, self.flow.bijector())

    def _encode(self, images, noise=None, training=False):
        """(q(z|x), z ~ q(z|x) [B, z_dim]) by reparameterisation; the noise ~ N(0, I) comes
        from the active stream when not given."""
        q = self.posterior(images, training)
        if noise is None:
            noise = self.streams.normal(tf.shape(images)[0], (self.preset.z_dim,))
        return q, distributions.reparameterized_sample(q, noise)

    def encode(self, images, noise=None, training=False, seed=None):
        """(q(z|x), z ~ q(z|x) [B, z_dim]); noise ~ N(0, I) given, or drawn from `seed`
        (int: reproducible) or the inference stream (never the training stream)."""
        with self.streams.for_call(seed):
            return self._encode(images, noise, training)

    def decode(self, z, training=False):
        """Likelihood parameters [B, H, W, P] of p(x|z)."""
        return self.decoder(z, training=training)

    def decode_joints(self, z_p, z_q=None, training=False):
        """(params at z_p [B, H, W, P], params at z_q or None) as the train step decodes
        them: with `z_q`, one decoder call on [z_p; z_q], so that in training mode batch
        norm normalises both halves with the statistics of their mixture (sVAE-r's
        decoder batch, which its moving averages hold)."""
        if z_q is None:
            return self.decode(z_p, training), None
        params = self.decode(tf.concat([z_p, z_q], axis=0), training)  # [2B, H, W, P]
        return tuple(tf.split(params, 2, axis=0))

    def decode_mean(self, z, training=False):
        return distributions.likelihood_mean(self.preset.likelihood, self.decode(z, training))

    def log_likelihood(self, params, images):
        """log p(x|z) [B] of images in [0, 1] (binarized / quantized as the head needs)."""
        likelihood = self.preset.likelihood
        noise = self.streams.uniform(tf.shape(images)[0], self.preset.image_shape)
        target = distributions.likelihood_target(likelihood, images, noise)
        return distributions.log_likelihood(likelihood, params, target)

    def _elbo_terms(self, images, training=False, decoder_training=None):
        """{log_px_given_z, log_pz, log_qz} [B] at one z ~ q(z|x) (`distributions.log_weight_terms`);
        the decoder in `training` mode too unless `decoder_training` says otherwise."""
        q = self.posterior(images, training)
        noise = self.streams.normal(tf.shape(images)[0], (self.preset.z_dim,))
        decoder_training = training if decoder_training is None else decoder_training
        return distributions.log_weight_terms(
            q, noise, lambda z: self.log_likelihood(self.decode(z, decoder_training), images))

    def _elbo(self, images, training=False):
        t = self._elbo_terms(images, training)
        return objectives.log_weight(t["log_px_given_z"], t["log_pz"], t["log_qz"])

    def elbo(self, images, training=False, seed=None):
        """One-sample estimate of the ELBO (1) per image [B], in nats (noise as `encode`)."""
        with self.streams.for_call(seed):
            return self._elbo(images, training)

    def elbo_terms(self, images, training=False, seed=None, decoder_training=None):
        """{log_px_given_z, log_pz, log_qz} [B]: the ELBO's terms at one z ~ q(z|x) per image
        (their sum with log_qz negated is `elbo`; noise as `encode`). `decoder_training`: the
        decoder's mode when it differs from the encoder's (`svae_tf.evaluation.refit`: False)."""
        with self.streams.for_call(seed):
            return self._elbo_terms(images, training, decoder_training)

    def call(self, images, training=False, seed=None):
        """Reconstruction x -> z -> x (decoder mean), for Keras-style use (noise as `encode`)."""
        _, z = self.encode(images, training=training, seed=seed)
        return self.decode_mean(z, training)

    def sample(self, num_samples, noise=None, seed=None):
        """Images [N, H, W, C] in [0, 1]: decoder means at z ~ p(z) (`noise` [N, z_dim],
        else drawn from `seed` or the inference stream)."""
        if noise is None:
            with self.streams.for_call(seed):
                noise = self.streams.normal(num_samples, (self.preset.z_dim,))
        return self.decode_mean(noise)

    def recompute_batch_norm_statistics(self, batches, seed=0):
        """Replace batch norm's moving statistics (encoder, decoder) by the mean of the batch
        statistics the train step's forward passes normalise with, over `batches` (images
        [B, H, W, C] in [0, 1]), for the weights in place (call inside `ema_scope()` for the
        average): the encoder on x, the decoder on the row's batch ([z_p; z_q] for sVAE-r,
        z_p with a discriminator, z_q for the VAE). Noise from the int `seed`; no weight
        changes. Returns the number of batches."""
        def forward(images, index):  # batch `index` draws (seed, index * stride + i), i = 0, 1, ...
            with self.streams.drawing_from(seed, first_draw=index * _DRAWS_PER_BATCH):
                images = tf.cast(images, tf.float32)
                if self.spec.discriminator:
                    self._joints(images, training=True)
                else:
                    self._elbo_terms(images, training=True)

        return networks.recompute_moving_statistics([self.encoder, self.decoder], forward, batches)

    def predict(self, x, *args, seed=None, **kwargs):
        """Keras `predict` (reconstructions); `seed` makes its noise reproducible."""
        if seed is None:
            return super().predict(x, *args, **kwargs)
        self.predict_function = None  # traced anew with the seeded stream, then dropped
        try:
            with self.streams.drawing_from(keras.random.SeedGenerator(seed, name="predict_noise")):
                return super().predict(x, *args, **kwargs)
        finally:
            self.predict_function = None

    # ----------------------------------------------------------- train step
    def _joints(self, images, training):
        """`JointSamples` of both joints: encoder pair (x, z_q), decoder pair (x_p, z_p).

        With the row's `reconstruction` (sVAE-r) also `params_q` [B, H, W, P], the decoder
        at z_q, from the *same* decoder call as x_p: the decoder runs once per step on
        [z_p; z_q], so batch norm normalises both halves with one set of batch statistics,
        the one its moving averages then hold (inference mode = what was trained). Both
        the discriminator and the encoder/decoder step decode that concatenation, so
        every training-mode decoder pass sees the same mixture.
        """
        batch_size = tf.shape(images)[0]
        z_p = self.streams.normal(batch_size, (self.preset.z_dim,))  # [B, z_dim] ~ p(z)
        q = z_q = None
        if self.encoder is not None:
            q, z_q = self._encode(images, training=training)  # z_q ~ q(z|x)
        params_p, params_q = self.decode_joints(z_p, z_q if self.spec.reconstruction else None, training)
        x_p = distributions.likelihood_mean(self.preset.likelihood, params_p)
        return JointSamples(z_q=z_q, q=q, x_p=x_p, z_p=z_p, params_q=params_q, params_p=params_p)

    def _discriminate(self, images, z_q, x_p, z_p, training=True):
        """Logits (f_q [B], f_p [B]) on both joints, in one call on the 2B pairs
        (the discriminator has no batch normalisation, so this changes nothing but speed)."""
        x = tf.concat([images, x_p], axis=0)  # [2B, H, W, C]
        inputs = [x, tf.concat([z_q, z_p], axis=0)] if self._joint else x
        f_q, f_p = tf.split(self.discriminator(inputs, training=training), 2, axis=0)
        return f_q, f_p

    def _discriminator_loss(self, images, z_q, x_p, z_p):
        """(per-example loss [B], {metric: [B]}): the row's loss plus its penalties."""
        f_q, f_p = self._discriminate(images, z_q, x_p, z_p)
        tracked = self._accuracies(f_q, f_p)
        if self.spec.critic:
            tracked["gradient_penalty"] = self._gradient_penalty(images, x_p)
        per_example = self.spec.discriminator_loss(f_q, f_p)
        if self.spec.critic:
            per_example += self.gradient_penalty_weight * tracked["gradient_penalty"]
        if self.r1_weight:
            tracked["r1_penalty"] = self._r1_penalty(images, z_q)
            per_example += 0.5 * self.r1_weight * tracked["r1_penalty"]
        return per_example, tracked

    def discriminator_step(self, images, samples=None):
        """One update of the discriminator on a batch [B, H, W, C] in [0, 1] and the
        `JointSamples` of both joints (drawn here if None); updates its metrics (`d_loss`,
        accuracies, penalties). Used by `train_step`, `n_disc` times."""
        # Samples are inputs to this step: no gradient flows to encoder/decoder.
        s = self._joints(images, training=True) if samples is None else samples
        z_q = None if s.z_q is None else tf.stop_gradient(s.z_q)
        x_p = tf.stop_gradient(s.x_p)
        with tf.GradientTape() as tape:
            per_example, tracked = self._discriminator_loss(images, z_q, x_p, s.z_p)
            loss = tf.nn.compute_average_loss(per_example)
            scaled_loss = self.d_optimizer.scale_loss(loss)  # identity unless LossScaleOptimizer
        variables = self.discriminator.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        self._track(d_loss=per_example, **tracked)

    def _r1_penalty(self, images, z_q):
        """||grad f||^2 [B] at the data pairs (x, z_q), over x and z (Mescheder et al. 2018)."""
        inputs = [images, z_q] if self._joint else [images]
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            f = self.discriminator(inputs if len(inputs) > 1 else inputs[0], training=True)
        return tf.add_n([objectives.squared_norm(g) for g in tape.gradient(f, inputs)])

    def _accuracies(self, f_q, f_p):
        """Per-pair correctness [B] of the discriminator on each joint. Its logit estimates
        log p - log q (eq. 11), negative on the data joint; the IPM critic (25) is high on data."""
        sign = -1.0 if self.spec.critic else 1.0
        return dict(d_acc_q=tf.cast(sign * f_q < 0, tf.float32),
                    d_acc_p=tf.cast(sign * f_p > 0, tf.float32))

    def _gradient_penalty(self, images, x_p):
        """Per-example penalty at x_hat = u x_q + (1 - u) x_p, u ~ U[0, 1] (not normal)."""
        u = self.streams.uniform(tf.shape(images)[0], (1, 1, 1))
        x_hat = u * images + (1.0 - u) * x_p
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            f_hat = self.discriminator(x_hat, training=True)
        return objectives.gradient_penalty(tape.gradient(f_hat, x_hat))

    def _generator_terms(self, images, s=None):
        """{name: [B]}, what the row's encoder/decoder loss reads (see `variants`), at the
        `JointSamples` s of this step (None for rows without a discriminator)."""
        if not self.spec.discriminator:  # the ELBO's terms at z_q ~ q(z|x)
            return self._elbo_terms(images, training=True)
        f_q, f_p = self._discriminate(images, s.z_q, s.x_p, s.z_p)
        terms = dict(f_q=f_q, f_p=f_p)
        if self.spec.reconstruction:
            terms["log_px_given_z"] = self.log_likelihood(s.params_q, images)
            # log q(z_p|x_p): the encoder in inference mode, so that its batch norm only
            # ever normalises real images with batch statistics (enc(x) above), and x_p
            # with the moving averages it is used with.
            log_qz_given_x = self._latent_term(s)
            # At weight 0 the term is only a metric: no backward pass through the
            # encoder and decoder for a zero gradient.
            terms["log_qz_given_x"] = (tf.stop_gradient(log_qz_given_x) if self._lam_z_value == 0
                                       else log_qz_given_x)
        if self.spec.elbo_terms:  # q's flow cached z_q's pre-image: no inversion
            terms["log_pz"] = distributions.prior(self.preset.z_dim).log_prob(s.z_q)
            terms["log_qz"] = s.q.log_prob(s.z_q)
        return terms

    def _latent_term(self, s):
        """log q(z_p|x) [B] at the x `latent_x` names (its noise from the active stream)."""
        if self.latent_x == "mean":  # x_p itself: no draw, today's graph
            return self.posterior(s.x_p, training=False).log_prob(s.z_p)
        likelihood = self.preset.likelihood
        sampler = getattr(self.streams, distributions.draw_noise(likelihood))
        noise = sampler(tf.shape(s.z_p)[0], self.preset.image_shape)
        return distributions.latent_term(
            self.latent_x, likelihood, s.params_p, noise, s.z_p,
            lambda x, z: self.posterior(x, training=False).log_prob(z))

    def generator_step(self, images, update_discriminator=False):
        """One update of the encoder, its flow and the decoder on a batch [B, H, W, C] in
        [0, 1], with the row's loss; updates `g_loss` and the row's metrics. With
        `update_discriminator`, first one `discriminator_step` on this step's samples."""
        variables = self.generator_variables
        with tf.GradientTape() as tape:
            s = self._joints(images, training=True) if self.spec.discriminator else None
            if update_discriminator:  # on the same samples, before f is read below
                with tape.stop_recording():
                    self.discriminator_step(images, s)
            terms = self._generator_terms(images, s)
            per_example, tracked = self.spec.generator_loss(terms, lam=self.lam, lam_z=self.lam_z)
            loss = tf.nn.compute_average_loss(per_example)
            scaled_loss = self.g_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        if self.ema_weights:  # t = updates before this one
            ema.update(self.ema_weights, variables, self.ema_decay, self.g_optimizer.iterations - 1)
        self._track(g_loss=per_example, **tracked)

    def train_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        images = tf.cast(images, tf.float32)  # [B, H, W, C] in [0, 1]
        shared = self.shared_samples and self.discriminator is not None
        if self.discriminator is not None:
            for _ in range(self.n_disc - shared):
                self.discriminator_step(images)
        self.generator_step(images, update_discriminator=shared)
        return self._step_outputs(self._results(self._train_metric_names))

    def test_step(self, data):
        """Held-out ELBO (1) in nats per image, and the discriminator's accuracy.

        Noise comes from `eval_seed_generator` (chosen while tracing), so evaluation
        leaves the training noise stream untouched.
        """
        with self.streams.drawing_from(self.eval_seed_generator):
            return self._step_outputs(self._evaluate_batch(data))

    def _step_outputs(self, results):
        """The metrics `results` as the steps return them: scalars, or shape [1] under
        `compile(rank1_metrics=True)`."""
        if not getattr(self, "rank1_metrics", False):  # False until compile() sets it
            return results
        return {name: tf.reshape(value, [1]) for name, value in results.items()}

    def _evaluate_batch(self, data):
        images = tf.cast(data[0] if isinstance(data, (tuple, list)) else data, tf.float32)
        if self.encoder is not None:
            self._track(elbo=self._elbo(images, training=False))
        if self.discriminator is not None:
            s = self._joints(images, training=False)
            f_q, f_p = self._discriminate(images, s.z_q, s.x_p, s.z_p, training=False)
            self._track(**self._accuracies(f_q, f_p))
        return self._results(self._test_metric_names)
