"""The variants table (svae_tf/model/variants.py): rows say what a variant is; the steps read them.

A toy variant is added by one row plus its loss function and trains without any edit to
the model: a beta-VAE (no discriminator, the ELBO's terms) and a joint-discriminator
variant whose encoder/decoder loss is eq. (14) with the decoder's term only.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from svae_tf.model import symmetric_vae as model_lib
from svae_tf.model import objectives, presets, variants


def _images(batch_size=8, seed=0):
    return np.random.default_rng(seed).random((batch_size, 8, 8, 1), dtype=np.float32)


def _model(variant, **kwargs):
    keras.utils.set_random_seed(1234)
    return model_lib.SymmetricVAE(presets.tiny(image_shape=(8, 8, 1)), variant, **kwargs)


def beta_vae_loss(t, **_):
    beta = 4.0
    per_example = -(t["log_px_given_z"] + beta * (t["log_pz"] - t["log_qz"]))
    return per_example, {"kl_term": t["log_qz"] - t["log_pz"]}


def decoder_side_loss(t, **_):
    return t["f_p"], {}  # minimise E_p f: only the decoder pairs move


@pytest.fixture
def toy_rows():
    rows = [variants.Variant("toy_beta_vae", encoder=True, discriminator=None,
                             generator_loss=beta_vae_loss, metrics=("kl_term",)),
            variants.Variant("toy_decoder_side", encoder=True, discriminator="joint",
                             discriminator_loss=objectives.discriminator_loss,
                             generator_loss=decoder_side_loss)]
    for row in rows:
        variants.register(row)
    yield rows
    for row in rows:
        variants.unregister(row.name)


def test_builtin_rows_match_the_networks_each_variant_builds():
    for name in model_lib.VARIANTS:
        row, model = variants.get(name), _model(name)
        assert (model.encoder is not None) == row.encoder
        assert (model.discriminator is not None) == (row.discriminator is not None)
        if row.discriminator:
            assert len(model.discriminator.inputs) == (2 if row.discriminator == "joint" else 1)


def test_a_toy_variant_is_one_row_and_trains(toy_rows):
    beta = _model("toy_beta_vae")
    assert beta.discriminator is None and beta.encoder is not None
    beta.compile(g_optimizer=keras.optimizers.Adam(1e-3))
    logs = beta.fit(_images(), batch_size=8, epochs=1, verbose=0).history
    assert set(logs) == {"g_loss", "kl_term"}
    assert np.isfinite(logs["kl_term"][0]) and logs["kl_term"][0] != 0.0
    assert "elbo" in beta.evaluate(_images(), batch_size=8, verbose=0, return_dict=True)

    side = _model("toy_decoder_side")
    side.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    before = [v.numpy() for v in side.encoder.trainable_variables + side.flow.trainable_variables]
    side.fit(_images(), batch_size=8, epochs=1, verbose=0)
    after = [v.numpy() for v in side.encoder.trainable_variables + side.flow.trainable_variables]
    # Its loss reads f_p only: the encoder gets no gradient (z_q enters f_q alone).
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_the_step_computes_the_loss_of_the_row(toy_rows):
    """The toy beta-VAE's g_loss is -(log p(x|z) + 4 (log p(z) - log q(z|x))) of the ELBO's
    terms at the same noise, not the VAE's -(log p(x|z) + log p(z) - log q(z|x))."""
    model = _model("toy_beta_vae", seed=3)
    model.compile(g_optimizer=keras.optimizers.SGD(0.0))
    with model.streams.drawing_from(3):
        terms = model._generator_terms(tf.constant(_images()))
    with model.streams.drawing_from(3):
        model.generator_step(tf.constant(_images()))
    expected = -(terms["log_px_given_z"] + 4.0 * (terms["log_pz"] - terms["log_qz"]))
    np.testing.assert_allclose(model.get_metrics_result()["g_loss"], np.mean(expected), rtol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(discriminator="both"), "discriminator must be"),
    (dict(discriminator="joint"), "needs a discriminator_loss"),
    (dict(discriminator="joint", encoder=False, discriminator_loss=objectives.discriminator_loss),
     "needs an encoder"),
    (dict(reconstruction=True), "reconstruction terms need"),
])
def test_inconsistent_rows_are_refused(kwargs, match):
    row = dict(name="bad", encoder=True, discriminator=None, generator_loss=decoder_side_loss)
    with pytest.raises(ValueError, match=match):
        variants.Variant(**{**row, **kwargs})


def test_names_are_unique_and_unknown_names_are_named():
    with pytest.raises(ValueError, match="already registered"):
        variants.register(variants.get("svae"))
    with pytest.raises(ValueError, match="Unknown variant 'svea'.*'svae'"):
        model_lib.SymmetricVAE(presets.tiny(), "svea")
    with pytest.raises(ValueError, match="built in"):
        variants.unregister("vae")


def test_svae_r_lx_step_loss_adds_lambda_times_the_bound():
    """svae_r_lx's g_loss is -(E_q f - E_p f) - lam ELBO - lam_z log q(z_p|x_p) of the same
    forward pass (its tracked metrics): lambda weighs all of L_x, its KL too, not log p(x|z) alone."""
    lam, lam_z = 0.3, 0.1
    model = _model("svae_r_lx", lam=lam, lam_z=lam_z, discriminator_dropout=0.0, seed=5)
    model.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(_images(), return_dict=True)
    assert set(variants.get("svae_r_lx").metrics) <= set(logs)
    expected = -logs["symmetric_kl_bound"] - lam * logs["elbo"] - lam_z * logs["log_qz_given_x"]
    np.testing.assert_allclose(logs["g_loss"], expected, rtol=1e-5)
    # eq. (29)'s combination (lambda on log p(x|z) alone) is not it: the KL term is in the loss.
    eq29 = -logs["symmetric_kl_bound"] - lam * logs["log_px_given_z"] - lam_z * logs["log_qz_given_x"]
    assert abs(logs["g_loss"] - eq29) > 1e-3 * abs(eq29)
