"""Objectives of the symmetric VAE and its special cases, as pure functions of tensors.

Equation numbers refer to Pu et al., "Symmetric Variational Autoencoder and
Connections to Adversarial Learning" (`../shared/paper/svae.txt`).

Conventions (TF-GAN style):
- Every function returns a *per-example* loss of shape [B] that an optimizer
  *minimises*. Reduction is left to the caller, which divides the sum by the
  global batch size (`tf.nn.compute_average_loss`) so that losses are correct
  under `tf.distribute` strategies, where gradients are summed over replicas.
- `f_q` are discriminator logits on pairs from the encoder joint
  q(x, z) = q(x) q(z|x), `f_p` on pairs from the decoder joint
  p(x, z) = p(z) p(x|z). The optimal discriminator of eq. (10) is
  f*(x, z) = log p(x, z) - log q(x, z) (eq. 11): positive on the decoder joint.
- Pairs are matched row by row: f_q[i] and f_p[i] are drawn independently.
"""

import tensorflow as tf


def discriminator_loss(f_q, f_p):
    """-g(psi) of eq. (10): logistic regression of p(x,z) (label 1) against q(x,z) (label 0).

    g(psi) = E_q log(1 - sigma(f)) + E_p log sigma(f); the maximiser is eq. (11).
    ALI's inner maximisation (18) and the GAN discriminator (22) are this same loss
    (for (22) with f = f(x) only).

    Args:
      f_q: [B] logits on encoder-joint pairs.
      f_p: [B] logits on decoder-joint pairs.
    Returns:
      [B] per-example loss, softplus(f_q) + softplus(-f_p).
    """
    # -log(1 - sigma(f)) = softplus(f);  -log sigma(f) = softplus(-f)
    return tf.nn.softplus(f_q) + tf.nn.softplus(-f_p)


def symmetric_kl_bound(f_q, f_p):
    """l(theta, phi; psi) of eq. (14): E_q f - E_p f, per example.

    With the optimal discriminator this equals -KL_s(q(x,z) || p(x,z)) <= 0 (eq. 15);
    the encoder and decoder maximise it.
    """
    return f_q - f_p


def svae_generator_loss(f_q, f_p):
    """Encoder/decoder loss of sVAE: the negative of eq. (14)."""
    return -symmetric_kl_bound(f_q, f_p)


def svae_r_generator_loss(f_q, f_p, log_px_given_z, log_qz_given_x, lam=0.3, lam_z=None):
    """Encoder/decoder loss of sVAE-r: the negative of eq. (29).

    l'(theta, phi; psi) = E_q[f + lam log p(x|z)] - E_p[f - lam_z log q(z|x)],

    with lam_z = lam in the paper.

    Args:
      f_q, f_p: [B] discriminator logits on encoder- and decoder-joint pairs.
      log_px_given_z: [B] log p(x|z) at encoder pairs (x ~ q(x), z ~ q(z|x)).
      log_qz_given_x: [B] log q(z|x) at decoder pairs (z ~ p(z), x ~ p(x|z)).
      lam: lambda >= 0 of eqs. (26)-(29); the paper uses 0.3.
      lam_z: the weight of the latent term E_p log q(z|x) alone; None: `lam`.
    """
    lam_z = lam if lam_z is None else lam_z
    return -(f_q + lam * log_px_given_z) + (f_p - lam_z * log_qz_given_x)


def svae_r_elbo_generator_loss(f_p, log_px_given_z, log_pz, log_qz, log_qz_given_x, lam=0.3,
                               lam_z=None):
    """Encoder/decoder loss of sVAE-r with its encoder side exact: the negative of

        L_x + lam E_q log p(x|z) - E_p[f - lam log q(z|x)],

    eq. (28) with L_x = E_q(x)[ELBO(x)] (eq. 26 at lam = 0, the bound (1)) in place of
    its estimate E_q f of eq. (29): at the optimal f (eq. 11), E_q f = E_q(x)[ELBO(x)] +
    H(q(x)), and H(q(x)) does not depend on the encoder or decoder. Only the decoder
    side, -KL(p(x,z) || q(x,z)) + const = -E_p f, needs the discriminator (it holds q(x)).

    Args:
      f_p: [B] discriminator logits on decoder-joint pairs (z ~ p(z), x ~ p(x|z)).
      log_px_given_z, log_pz, log_qz: [B] the ELBO's terms at encoder pairs
        (x ~ q(x), z ~ q(z|x)): log p(x|z), log p(z), log q(z|x).
      log_qz_given_x: [B] log q(z|x) at decoder pairs.
      lam: lambda >= 0 of eqs. (26)-(29).
      lam_z: the weight of E_p log q(z|x) alone; None: `lam`.
    """
    lam_z = lam if lam_z is None else lam_z
    return (negative_elbo(log_px_given_z, log_pz, log_qz) - lam * log_px_given_z
            + (f_p - lam_z * log_qz_given_x))


def svae_r_lx_generator_loss(f_q, f_p, log_px_given_z, log_pz, log_qz, log_qz_given_x, lam=0.3,
                             lam_z=None):
    """Encoder/decoder loss of sVAE-r with lambda on the whole bound L_x: the negative of

        E_q f - E_p f + lam L_x + lam_z E_p log q(z|x),   L_x = E_q[log p(x|z) + log p(z) - log q(z|x)],

    eq. (29) with lam E_q log p(x|z) replaced by lam L_x (the bound (1); eq. 26 at lam = 0),
    i.e. eq. (29) plus -lam E_q(x) KL(q(z|x) || p(z)). E_q f estimates L_x + H(q(x)) only
    at the optimal f (eq. 11); this adds the KL's known form, so that its gradient reaches
    the encoder exactly and not only through f.

    Args: f_q, [B] logits on encoder-joint pairs, then those of `svae_r_elbo_generator_loss`.
    """
    lam_z = lam if lam_z is None else lam_z
    return (svae_generator_loss(f_q, f_p) + lam * negative_elbo(log_px_given_z, log_pz, log_qz)
            - lam_z * log_qz_given_x)


def ali_generator_loss(f_q, f_p):
    """Encoder/decoder loss of ALI: the negative of eq. (19).

    l'(theta, phi; psi) = E_q log sigma(f) + E_p log sigma(-f): eq. (14) with
    +-f replaced by log sigma(+-f), the non-saturating form of ALI's minimax (18).
    """
    return tf.nn.softplus(-f_q) + tf.nn.softplus(f_p)


def gan_generator_loss(f_p):
    """Decoder loss of the original GAN, the decoder-only reduction: the negative of eq. (24).

    l'(theta; psi) = E_p log sigma(-f(x)) with f = f(x) trained by eq. (22) (which is
    `discriminator_loss` on x alone). This is the non-saturating GAN generator loss.
    """
    return tf.nn.softplus(f_p)


def ipm_critic_loss(f_q, f_p):
    """Critic loss of the IPM objective (25): -(E_q f(x) - E_p f(x)).

    The critic f(x) is high on data; WGAN constrains it to be 1-Lipschitz, here with
    `gradient_penalty`.
    """
    return f_p - f_q


def ipm_generator_loss(f_p):
    """Decoder loss of the IPM objective (25): the decoder minimises E_q f - E_p f,
    whose only theta-dependent part is -E_p f(x)."""
    return -f_p


def gradient_penalty(gradients, epsilon=1e-12):
    """WGAN-GP penalty (Gulrajani et al. 2017): (||grad_x f(x_hat)||_2 - 1)^2 per example.

    `gradients` [B, ...] are taken at x_hat = u x_q + (1 - u) x_p with u ~ U[0, 1]
    per example. The epsilon inside the square root keeps the gradient of the norm
    finite at zero (keras-io #415).
    """
    return tf.square(tf.sqrt(squared_norm(gradients) + epsilon) - 1.0)


def squared_norm(gradients):
    """||g||_2^2 per example [B] of `gradients` [B, ...] (R1 penalty: at data pairs)."""
    return tf.reduce_sum(tf.square(gradients), axis=tf.range(1, tf.rank(gradients)))


def log_weight(log_px_given_z, log_pz, log_qz_given_x):
    """log w = log p(x|z) + log p(z) - log q(z|x) at z ~ q(z|x): the ELBO (1) is its mean
    over z, the importance-weighted bound its log-mean-exp (`svae_tf.evaluation.likelihood`)."""
    return log_px_given_z + log_pz - log_qz_given_x


def negative_elbo(log_px_given_z, log_pz, log_qz_given_x):
    """Negative of the variational lower bound (1), one Monte Carlo sample per example.

    L_x = E_q[log p(x|z) + log p(z) - log q(z|x)]; with a flow in q(z|x) the KL term
    has no closed form, so it is estimated from the same sample.
    """
    return -log_weight(log_px_given_z, log_pz, log_qz_given_x)
