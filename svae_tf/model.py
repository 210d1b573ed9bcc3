"""The symmetric VAE family as one Keras 3 model with an alternating train step.

Variants (Sec. 3-5 of the paper), chosen by name:

| variant   | discriminator | encoder/decoder objective                      |
|-----------|---------------|------------------------------------------------|
| `vae`     | none          | negative ELBO, eq. (1)                          |
| `svae`    | f(x, z), (10) | -(E_q f - E_p f), eq. (14)                      |
| `svae_r`  | f(x, z), (10) | eq. (14) + lambda-weighted likelihoods, eq. (29)|
| `ali`     | f(x, z), (18) | non-saturating ALI, eq. (19)                    |
| `gan`     | f(x),    (22) | non-saturating GAN, eq. (24); decoder only      |
| `wgan_gp` | f(x),    (25) | IPM critic with gradient penalty; decoder only  |

One `train_step` runs `n_disc` discriminator updates, then one encoder/decoder
update, with two optimizers. Gradients of each are taken over its own variables
only. Every hand-written loss is a per-example vector reduced with
`tf.nn.compute_average_loss` (sum / global batch size), because the optimizer
sums gradients over replicas. All noise comes from one checkpointable
`keras.random.SeedGenerator`, drawn for the *global* batch and sliced per replica,
so a run gives the same numbers on one device or several.

The discriminator sees grey-level real images x ~ q(x) and decoder means
x ~ p(x|z) on the other side (same kind of pixels on both joints); the
binarized/quantized target is used for the likelihood only.
"""

import keras
import tensorflow as tf

from svae_tf import distributions, flows, networks, objectives

VARIANTS = ("vae", "svae", "svae_r", "ali", "gan", "wgan_gp")
JOINT_VARIANTS = ("svae", "svae_r", "ali")
DECODER_ONLY_VARIANTS = ("gan", "wgan_gp")


class SymmetricVAE(keras.Model):
    """Encoder q(z|x) (+ flow), decoder p(x|z) and discriminator f, trained as `variant`.

    Args:
      preset: a `presets.Preset`.
      variant: one of VARIANTS.
      lam: lambda of sVAE-r, eq. (29); >= 0.
      n_disc: discriminator updates per encoder/decoder update.
      gradient_penalty_weight: weight of the WGAN-GP penalty.
      discriminator_dropout: overrides the preset's dropout rates (None keeps them).
      seed: seed of the model's noise (initial state of its SeedGenerators). Initial
        weights and dropout come from Keras' global RNG: `keras.utils.set_random_seed`.
    """

    def __init__(
        self,
        preset,
        variant="svae_r",
        lam=0.3,
        n_disc=1,
        gradient_penalty_weight=10.0,
        discriminator_dropout=None,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"Unknown variant {variant!r}; expected one of {VARIANTS}.")
        if lam < 0:
            raise ValueError(f"lam (lambda of eq. 29) must be >= 0, got {lam}.")
        if n_disc < 1:
            raise ValueError(f"n_disc must be >= 1, got {n_disc}.")
        self.preset = preset
        self.variant = variant
        self.lam = float(lam)
        self.n_disc = int(n_disc)
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise")
        # Evaluation has its own stream, so that evaluating never shifts training noise.
        self.eval_seed_generator = keras.random.SeedGenerator(seed + 1, name="eval_noise")
        self._active_seed_generator = self.seed_generator

        self.decoder = networks.build_decoder(preset)
        self.encoder = self.flow = None
        if variant not in DECODER_ONLY_VARIANTS:
            self.encoder = networks.build_encoder(preset)
            self.flow = flows.Flow(
                preset.flow, preset.z_dim, preset.flow_depth, preset.flow_hidden, name="flow"
            )
        self.discriminator = None
        if variant != "vae":
            self.discriminator = networks.build_discriminator(
                preset, joint=variant in JOINT_VARIANTS, dropout=discriminator_dropout
            )
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in self._metric_names()
        }
        self.built = True  # every sub-network is built above

    # ---------------------------------------------------------------- metrics
    def _metric_names(self):
        names = ["g_loss"]
        if self.discriminator is not None:
            names += ["d_loss", "d_acc_q", "d_acc_p"]
        if self.variant in ("svae", "svae_r"):
            names.append("symmetric_kl_bound")  # eq. (14): E_q f - E_p f ~ -KL_s
        if self.variant in ("vae", "svae_r"):
            names.append("log_px_given_z")
        if self.variant == "svae_r":
            names.append("log_qz_given_x")
        if self.variant == "wgan_gp":
            names.append("gradient_penalty")
        if self.encoder is not None:
            names.append("elbo")
        return names

    @property
    def _train_metric_names(self):
        # The ELBO costs an extra pass; train_step reports it only where it is free.
        return [n for n in self._trackers if n != "elbo" or self.variant == "vae"]

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
    def compile(self, g_optimizer=None, d_optimizer=None, jit_compile=False, **kwargs):
        """Two Adam optimizers (learning rate 1e-4 as in the paper) unless given.

        Call inside `strategy.scope()` when training under a tf.distribute strategy
        (keras #20164): the optimizers' variables must be mirrored like the model's.
        `jit_compile` is explicit (Keras' "auto" would pick XLA on some devices only).
        """
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(1e-4, name="g_adam")
        self.d_optimizer = None
        if self.discriminator is not None:
            self.d_optimizer = d_optimizer or keras.optimizers.Adam(1e-4, name="d_adam")
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator_variables)
        super().compile(optimizer=self.g_optimizer, jit_compile=jit_compile, **kwargs)

    @property
    def generator_variables(self):
        """Trainable variables of the encoder, its flow and the decoder."""
        layers = [self.decoder, self.encoder, self.flow]
        return [v for layer in layers if layer is not None for v in layer.trainable_variables]

    # ------------------------------------------------------------ the model
    def _normal(self, batch_size, event_shape):
        return self._noise(keras.random.normal, batch_size, event_shape)

    def _uniform(self, batch_size, event_shape):
        return self._noise(keras.random.uniform, batch_size, event_shape)

    def _noise(self, sampler, batch_size, event_shape):
        """Noise [batch_size, *event_shape] for this replica: a slice of the global draw.

        Drawing for the global batch and slicing makes the noise of example i the same
        whatever the number of replicas (MirroredStrategy == one device, tested).
        """
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if replicas == 1:
            return sampler((batch_size, *event_shape), seed=self._active_seed_generator)
        replica = context.replica_id_in_sync_group
        noise = sampler((batch_size * replicas, *event_shape), seed=self._active_seed_generator)
        return noise[replica * batch_size : (replica + 1) * batch_size]

    def posterior(self, images, training=False):
        """q(z|x) for images [B, H, W, C] in [0, 1]: batch [B], event [z_dim]."""
        out = tf.cast(self.encoder(images, training=training), tf.float32)
        return distributions.posterior(out, self.flow.bijector())

    def encode(self, images, noise=None, training=False):
        """z ~ q(z|x) [B, z_dim] by reparameterisation (noise ~ N(0, I), drawn if None)."""
        q = self.posterior(images, training)
        if noise is None:
            noise = self._normal(tf.shape(images)[0], (self.preset.z_dim,))
        return q, distributions.reparameterized_sample(q, noise)

    def decode(self, z, training=False):
        """Likelihood parameters [B, H, W, P] of p(x|z)."""
        return self.decoder(z, training=training)

    def decode_mean(self, z, training=False):
        return distributions.likelihood_mean(self.preset.likelihood, self.decode(z, training))

    def log_likelihood(self, params, images):
        """log p(x|z) [B] of images in [0, 1] (binarized / quantized as the head needs)."""
        likelihood = self.preset.likelihood
        noise = self._uniform(tf.shape(images)[0], self.preset.image_shape)
        target = distributions.likelihood_target(likelihood, images, noise)
        return distributions.log_likelihood(likelihood, params, target)

    def elbo(self, images, training=False):
        """One-sample estimate of the ELBO (1) per image [B], in nats."""
        q, z = self.encode(images, training=training)
        log_px = self.log_likelihood(self.decode(z, training), images)
        log_pz = distributions.prior(self.preset.z_dim).log_prob(z)
        return -objectives.negative_elbo(log_px, log_pz, q.log_prob(z))

    def call(self, images, training=False):
        """Reconstruction x -> z -> x (decoder mean), for Keras-style use."""
        _, z = self.encode(images, training=training)
        return self.decode_mean(z, training)

    # ----------------------------------------------------------- train step
    def _joints(self, images, training):
        """Samples of both joints: encoder pair (x, z_q) and decoder pair (x_p, z_p)."""
        batch_size = tf.shape(images)[0]
        z_p = self._normal(batch_size, (self.preset.z_dim,))  # [B, z_dim] ~ p(z)
        params_p = self.decode(z_p, training)  # [B, H, W, P]
        x_p = distributions.likelihood_mean(self.preset.likelihood, params_p)
        z_q = None
        if self.encoder is not None:
            _, z_q = self.encode(images, training=training)  # z_q ~ q(z|x)
        return dict(z_q=z_q, x_p=x_p, z_p=z_p)

    def _discriminate(self, images, z_q, x_p, z_p, training=True):
        """Logits (f_q [B], f_p [B]) on both joints, in one call on the 2B pairs
        (the discriminator has no batch normalisation, so this changes nothing but speed)."""
        x = tf.concat([images, x_p], axis=0)  # [2B, H, W, C]
        inputs = [x, tf.concat([z_q, z_p], axis=0)] if self.variant in JOINT_VARIANTS else x
        f_q, f_p = tf.split(self.discriminator(inputs, training=training), 2, axis=0)
        return f_q, f_p

    def _discriminator_step(self, images):
        # Samples are inputs to this step: no gradient flows to encoder/decoder.
        s = self._joints(images, training=True)
        z_q = None if s["z_q"] is None else tf.stop_gradient(s["z_q"])
        x_p, z_p = tf.stop_gradient(s["x_p"]), s["z_p"]
        with tf.GradientTape() as tape:
            f_q, f_p = self._discriminate(images, z_q, x_p, z_p)
            if self.variant == "wgan_gp":
                penalty = self._gradient_penalty(images, x_p)
                per_example = objectives.ipm_critic_loss(f_q, f_p)
                per_example += self.gradient_penalty_weight * penalty
            else:
                per_example = objectives.discriminator_loss(f_q, f_p)
            loss = tf.nn.compute_average_loss(per_example)
            scaled_loss = self.d_optimizer.scale_loss(loss)  # identity unless LossScaleOptimizer
        variables = self.discriminator.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        self._track(d_loss=per_example, **self._accuracies(f_q, f_p))
        if self.variant == "wgan_gp":
            self._track(gradient_penalty=penalty)

    def _accuracies(self, f_q, f_p):
        """Per-pair correctness [B] of the discriminator on each joint. Its logit estimates
        log p - log q (eq. 11), negative on the data joint; the IPM critic (25) is high on data."""
        sign = -1.0 if self.variant == "wgan_gp" else 1.0
        return dict(d_acc_q=tf.cast(sign * f_q < 0, tf.float32),
                    d_acc_p=tf.cast(sign * f_p > 0, tf.float32))

    def _gradient_penalty(self, images, x_p):
        """Per-example penalty at x_hat = u x_q + (1 - u) x_p, u ~ U[0, 1] (not normal)."""
        u = self._uniform(tf.shape(images)[0], (1, 1, 1))
        x_hat = u * images + (1.0 - u) * x_p
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            f_hat = self.discriminator(x_hat, training=True)
        return objectives.gradient_penalty(tape.gradient(f_hat, x_hat))

    def _generator_step(self, images):
        variables = self.generator_variables
        with tf.GradientTape() as tape:
            tracked = {}
            if self.variant == "vae":
                q, z_q = self.encode(images, training=True)
                log_px = self.log_likelihood(self.decode(z_q, True), images)
                log_pz = distributions.prior(self.preset.z_dim).log_prob(z_q)
                per_example = objectives.negative_elbo(log_px, log_pz, q.log_prob(z_q))
                tracked.update(log_px_given_z=log_px, elbo=-per_example)
            else:
                s = self._joints(images, training=True)
                z_q, x_p, z_p = s["z_q"], s["x_p"], s["z_p"]
                f_q, f_p = self._discriminate(images, z_q, x_p, z_p)
                if self.variant == "svae":
                    per_example = objectives.svae_generator_loss(f_q, f_p)
                elif self.variant == "svae_r":
                    # Second training-mode passes of the decoder (on z_q) and the encoder (on
                    # x_p): batch norm's moving averages blend two sets of batch statistics,
                    # so the inference-mode networks differ from the trained ones (README,
                    # known limitations). Tried and worse: one decoder call on [z_p; z_q]
                    # diverged (held-out ELBO -3.8e4 after 200 steps); an inference-mode
                    # reconstruction pass decoupled it from the adversarial pass, whose
                    # samples then collapsed (IS 1.00 after 11 CPU-minutes, against 3.60).
                    log_px = self.log_likelihood(self.decode(z_q, True), images)
                    log_qz = self.posterior(x_p, training=True).log_prob(z_p)
                    per_example = objectives.svae_r_generator_loss(
                        f_q, f_p, log_px, log_qz, self.lam
                    )
                    tracked.update(log_px_given_z=log_px, log_qz_given_x=log_qz)
                elif self.variant == "ali":
                    per_example = objectives.ali_generator_loss(f_q, f_p)
                elif self.variant == "gan":
                    per_example = objectives.gan_generator_loss(f_p)
                else:  # wgan_gp
                    per_example = objectives.ipm_generator_loss(f_p)
                if self.variant in ("svae", "svae_r"):
                    tracked["symmetric_kl_bound"] = objectives.symmetric_kl_bound(f_q, f_p)
            loss = tf.nn.compute_average_loss(per_example)
            scaled_loss = self.g_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        self._track(g_loss=per_example, **tracked)

    def train_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        images = tf.cast(images, tf.float32)  # [B, H, W, C] in [0, 1]
        if self.discriminator is not None:
            for _ in range(self.n_disc):
                self._discriminator_step(images)
        self._generator_step(images)
        return self._results(self._train_metric_names)

    def test_step(self, data):
        """Held-out ELBO (1) in nats per image, and the discriminator's accuracy.

        Noise comes from `eval_seed_generator` (chosen while tracing), so evaluation
        leaves the training noise stream untouched.
        """
        self._active_seed_generator = self.eval_seed_generator
        try:
            return self._evaluate_batch(data)
        finally:
            self._active_seed_generator = self.seed_generator

    def _evaluate_batch(self, data):
        images = tf.cast(data[0] if isinstance(data, (tuple, list)) else data, tf.float32)
        if self.encoder is not None:
            self._track(elbo=self.elbo(images, training=False))
        if self.discriminator is not None:
            s = self._joints(images, training=False)
            f_q, f_p = self._discriminate(images, s["z_q"], s["x_p"], s["z_p"], training=False)
            self._track(**self._accuracies(f_q, f_p))
        return self._results(self._test_metric_names)

    def sample(self, num_samples, noise=None):
        """Images [N, H, W, C] in [0, 1]: decoder means at z ~ p(z)."""
        if noise is None:
            noise = self._normal(num_samples, (self.preset.z_dim,))
        return self.decode_mean(noise)
