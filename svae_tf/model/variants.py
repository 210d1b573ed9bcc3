"""What each variant *is*: its networks, its two losses and its metrics, one row each.

`SymmetricVAE`'s train and test steps read the row of their variant and nothing else,
so a variant (or a variation of one) is added with `register(Variant(...))` and its loss
functions; the equations themselves stay in `objectives.py` (pure functions of tensors).

| variant   | encoder | discriminator | discriminator loss    | encoder/decoder loss         |
|-----------|---------|---------------|-----------------------|------------------------------|
| `vae`     | yes     | none          |                       | negative ELBO, eq. (1)       |
| `svae`    | yes     | f(x, z)       | logistic, eq. (10)    | -(E_q f - E_p f), eq. (14)   |
| `svae_r`  | yes     | f(x, z)       | logistic, eq. (10)    | eq. (14) + lambda terms (29) |
| `svae_r_elbo` | yes | f(x, z)       | logistic, eq. (10)    | eq. (28), E_q side exact     |
| `svae_r_lx` | yes   | f(x, z)       | logistic, eq. (10)    | eq. (29), lambda on all of L_x |
| `ali`     | yes     | f(x, z)       | logistic, eq. (18)    | non-saturating ALI, eq. (19) |
| `gan`     | no      | f(x)          | logistic, eq. (22)    | non-saturating GAN, eq. (24) |
| `wgan_gp` | no      | f(x), critic  | IPM (25) + grad. pen. | IPM, eq. (25)                |

The encoder/decoder loss is a function `loss(terms, lam=..., lam_z=...) -> (per_example [B],
{metric: [B]})` of the terms the step computes for the row:

- no discriminator: the ELBO terms at z_q ~ q(z|x): `log_px_given_z`, `log_pz`, `log_qz`;
- a discriminator: the logits `f_q`, `f_p` on the encoder and decoder joints (for a
  decoder-only row, f(x) at real x and at x_p); with `reconstruction`, also
  `log_px_given_z` = log p(x|z_q) at encoder pairs and `log_qz_given_x` = log q(z_p|x_p)
  at decoder pairs (eq. 29); with `elbo_terms`, also `log_pz` = log p(z_q) and `log_qz` =
  log q(z_q|x) at encoder pairs (with `log_px_given_z`, the ELBO's terms).

The metrics it returns are the row's `metrics`, tracked during training.
"""

import dataclasses
import importlib
from typing import Callable, Optional


class _Objectives:
    """`svae_tf.model.objectives`, imported on first use: it imports TensorFlow, and the table
    (with the command line built on it, `svae_tf.model.config`) loads without TensorFlow."""

    def __getattr__(self, name):
        return getattr(importlib.import_module("svae_tf.model.objectives"), name)


objectives = _Objectives()


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the table.

    Attributes:
      name: the `variant=` string.
      encoder: whether the model has q(z|x) (and its flow).
      discriminator: "joint" (f(x, z)), "x" (f(x)) or None.
      generator_loss: (terms, lam=, lam_z=) -> (per-example loss [B], {metric: [B]}).
      metrics: names of the metrics `generator_loss` returns, in display order.
      discriminator_loss: (f_q [B], f_p [B]) -> [B]; None without a discriminator.
      critic: the discriminator is an IPM critic (high on data, eq. 25): it gets the
        WGAN-GP gradient penalty, and its accuracy is read with the opposite sign.
      reconstruction: the step also computes sVAE-r's likelihood terms (eq. 29); the
        decoder then runs once on [z_p; z_q] so batch norm sees one batch.
      uses_lam: `lam` (lambda of eq. 29) changes the loss.
      elbo_terms: the step also computes log p(z) and log q(z|x) at the encoder pairs
        (needs `reconstruction`, which gives log p(x|z) there).
    """

    name: str
    encoder: bool
    discriminator: Optional[str]
    generator_loss: Callable
    metrics: tuple = ()
    discriminator_loss: Optional[Callable] = None
    critic: bool = False
    reconstruction: bool = False
    uses_lam: bool = False
    elbo_terms: bool = False

    def __post_init__(self):
        if self.discriminator not in (None, "joint", "x"):
            raise ValueError(f"Variant {self.name!r}: discriminator must be 'joint', 'x' or None, "
                             f"got {self.discriminator!r}.")
        if (self.discriminator is None) != (self.discriminator_loss is None):
            raise ValueError(f"Variant {self.name!r}: a discriminator needs a discriminator_loss "
                             "and only a discriminator has one.")
        if self.discriminator == "joint" and not self.encoder:
            raise ValueError(f"Variant {self.name!r}: a joint discriminator f(x, z) needs an encoder.")
        if self.reconstruction and not (self.encoder and self.discriminator):
            raise ValueError(f"Variant {self.name!r}: reconstruction terms need an encoder and a "
                             "discriminator (eq. 29).")
        if self.elbo_terms and not self.reconstruction:
            raise ValueError(f"Variant {self.name!r}: elbo_terms needs reconstruction (log p(x|z)).")


# ------------------------------------------------------------- encoder/decoder losses
def vae_loss(t, **_):
    """Negative ELBO (1); tracks log p(x|z) and the ELBO."""
    per_example = objectives.negative_elbo(t["log_px_given_z"], t["log_pz"], t["log_qz"])
    return per_example, {"log_px_given_z": t["log_px_given_z"], "elbo": -per_example}


def svae_loss(t, **_):
    """-(E_q f - E_p f), eq. (14); tracks the bound itself (~ -KL_s, eq. 15)."""
    bound = objectives.symmetric_kl_bound(t["f_q"], t["f_p"])
    return objectives.svae_generator_loss(t["f_q"], t["f_p"]), {"symmetric_kl_bound": bound}


def svae_r_loss(t, lam, lam_z=None, **_):
    """Negative of eq. (29): eq. (14) plus lambda (E_q log p(x|z) + E_p log q(z|x))."""
    per_example = objectives.svae_r_generator_loss(
        t["f_q"], t["f_p"], t["log_px_given_z"], t["log_qz_given_x"], lam, lam_z)
    return per_example, {"symmetric_kl_bound": objectives.symmetric_kl_bound(t["f_q"], t["f_p"]),
                         "log_px_given_z": t["log_px_given_z"],
                         "log_qz_given_x": t["log_qz_given_x"]}


def svae_r_elbo_loss(t, lam, lam_z=None, **_):
    """sVAE-r with the encoder side exact (`objectives.svae_r_elbo_generator_loss`);
    tracks the ELBO at the encoder pairs and the sVAE-r terms."""
    per_example = objectives.svae_r_elbo_generator_loss(
        t["f_p"], t["log_px_given_z"], t["log_pz"], t["log_qz"], t["log_qz_given_x"], lam, lam_z)
    elbo = objectives.log_weight(t["log_px_given_z"], t["log_pz"], t["log_qz"])
    return per_example, {"elbo": elbo, "log_px_given_z": t["log_px_given_z"],
                         "log_qz_given_x": t["log_qz_given_x"]}


def svae_r_lx_loss(t, lam, lam_z=None, **_):
    """sVAE-r with lambda on the whole bound L_x (`objectives.svae_r_lx_generator_loss`);
    tracks the ELBO at the encoder pairs and the sVAE-r terms."""
    per_example = objectives.svae_r_lx_generator_loss(
        t["f_q"], t["f_p"], t["log_px_given_z"], t["log_pz"], t["log_qz"], t["log_qz_given_x"], lam, lam_z)
    elbo = objectives.log_weight(t["log_px_given_z"], t["log_pz"], t["log_qz"])
    return per_example, {"symmetric_kl_bound": objectives.symmetric_kl_bound(t["f_q"], t["f_p"]),
                         "elbo": elbo, "log_px_given_z": t["log_px_given_z"],
                         "log_qz_given_x": t["log_qz_given_x"]}


def ali_loss(t, **_):
    """Non-saturating ALI, eq. (19)."""
    return objectives.ali_generator_loss(t["f_q"], t["f_p"]), {}


def gan_loss(t, **_):
    """Non-saturating GAN decoder loss, eq. (24)."""
    return objectives.gan_generator_loss(t["f_p"]), {}


def logistic_discriminator_loss(f_q, f_p):
    """The logistic discriminator loss, eq. (10) (`objectives.discriminator_loss`)."""
    return objectives.discriminator_loss(f_q, f_p)


def ipm_critic_loss(f_q, f_p):
    """The IPM critic loss, eq. (25) (`objectives.ipm_critic_loss`)."""
    return objectives.ipm_critic_loss(f_q, f_p)


def ipm_loss(t, **_):
    """IPM decoder loss, eq. (25)."""
    return objectives.ipm_generator_loss(t["f_p"]), {}


# ----------------------------------------------------------------------- the table
_TABLE = {}


def register(variant):
    """Adds a row (a `Variant`); its name must be new. Returns it."""
    if variant.name in _TABLE:
        raise ValueError(f"Variant {variant.name!r} is already registered.")
    _TABLE[variant.name] = variant
    return variant


def unregister(name):
    """Removes a row added with `register` (tests); the built-in rows stay."""
    if name in BUILT_IN:
        raise ValueError(f"Variant {name!r} is built in.")
    _TABLE.pop(name, None)


def get(name):
    """The row of `name`; ValueError naming the registered ones otherwise."""
    if name not in _TABLE:
        raise ValueError(f"Unknown variant {name!r}; expected one of {tuple(_TABLE)}.")
    return _TABLE[name]


def names():
    """Registered variant names, built-in ones first."""
    return tuple(_TABLE)


_LOGISTIC = logistic_discriminator_loss
for _row in (
    Variant("vae", encoder=True, discriminator=None, generator_loss=vae_loss,
            metrics=("log_px_given_z", "elbo")),
    Variant("svae", encoder=True, discriminator="joint", discriminator_loss=_LOGISTIC,
            generator_loss=svae_loss, metrics=("symmetric_kl_bound",)),
    Variant("svae_r", encoder=True, discriminator="joint", discriminator_loss=_LOGISTIC,
            generator_loss=svae_r_loss, reconstruction=True, uses_lam=True,
            metrics=("symmetric_kl_bound", "log_px_given_z", "log_qz_given_x")),
    Variant("svae_r_elbo", encoder=True, discriminator="joint", discriminator_loss=_LOGISTIC,
            generator_loss=svae_r_elbo_loss, reconstruction=True, elbo_terms=True, uses_lam=True,
            metrics=("elbo", "log_px_given_z", "log_qz_given_x")),
    Variant("svae_r_lx", encoder=True, discriminator="joint", discriminator_loss=_LOGISTIC,
            generator_loss=svae_r_lx_loss, reconstruction=True, elbo_terms=True, uses_lam=True,
            metrics=("symmetric_kl_bound", "elbo", "log_px_given_z", "log_qz_given_x")),
    Variant("ali", encoder=True, discriminator="joint", discriminator_loss=_LOGISTIC,
            generator_loss=ali_loss),
    Variant("gan", encoder=False, discriminator="x", discriminator_loss=_LOGISTIC,
            generator_loss=gan_loss),
    Variant("wgan_gp", encoder=False, discriminator="x", discriminator_loss=ipm_critic_loss,
            generator_loss=ipm_loss, critic=True),
):
    register(_row)
BUILT_IN = names()
