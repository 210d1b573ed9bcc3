"""Tests for svae_tf.evaluation.refit: the encoder refitted to a fixed decoder on the ELBO (1)."""

import keras
import numpy as np
import pytest

from svae_tf.model import symmetric_vae as model_lib
from svae_tf.model import networks, presets
from svae_tf.evaluation import refit

BATCH = 8


def _images(seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (BATCH, 8, 8, 1)) / 255.0).astype("float32")


def _model(variant="svae_r"):
    keras.utils.set_random_seed(1234)
    return model_lib.SymmetricVAE(presets.tiny(), variant)


def _values(variables):
    return [np.array(v.numpy()) for v in variables]


def _mean_negative_elbo(model, images):
    """Over 20 fixed noise draws, so that the comparison is not one sample's luck."""
    return -np.mean([model.elbo(images, seed=s).numpy().mean() for s in range(20)])


def test_refit_tightens_the_bound_and_leaves_the_decoder_alone():
    model = _model()
    batches = [_images(i % 2) for i in range(40)]
    decoder = _values(model.decoder.variables)  # weights and batch-norm statistics
    encoder = _values(model.encoder_variables)
    before = _mean_negative_elbo(model, batches[0])
    out = refit.refit_encoder(model, batches, steps=40, learning_rate=1e-2)
    assert out["steps"] == 40 and out["learning_rate"] == 1e-2 and np.isfinite(out["final_loss"])
    for a, b in zip(decoder, _values(model.decoder.variables)):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(encoder, _values(model.encoder_variables)))
    assert _mean_negative_elbo(model, batches[0]) < before - 1.0


def test_refit_is_reproducible_and_recomputes_the_encoders_population_statistics():
    batches = [_images(i) for i in range(5)]
    runs = []
    for population in (None, batches[:2], batches[:2]):
        model = _model()
        refit.refit_encoder(model, batches, steps=5, learning_rate=1e-2, batch_norm_batches=population, seed=3)
        runs.append(_values(model.encoder_variables) + _values(networks.moving_statistics(model.encoder)))
    for a, b in zip(runs[1], runs[2]):
        np.testing.assert_array_equal(a, b)
    stats = len(networks.moving_statistics(_model().encoder))
    assert stats and all(not np.allclose(a, b) for a, b in zip(runs[0][-stats:], runs[1][-stats:]))
    # Population statistics: the mean of the encoder's batch statistics over the batches.
    model = _model()
    refit.refit_encoder(model, batches, steps=5, learning_rate=1e-2, batch_norm_batches=batches[:2], seed=3)
    first_bn = networks.batch_norm_layers(model.encoder)[0]
    inputs = keras.Model(model.encoder.inputs, first_bn.input)
    features = [np.asarray(inputs(x, training=True)) for x in batches[:2]]
    means = [h.reshape(-1, h.shape[-1]).mean(axis=0) for h in features]
    np.testing.assert_allclose(first_bn.moving_mean, np.mean(means, axis=0), rtol=1e-5, atol=1e-6)


def test_refit_errors():
    with pytest.raises(ValueError, match="no encoder"):
        refit.refit_encoder(_model("gan"), [_images(0)], steps=1)
    with pytest.raises(ValueError, match="ran out after 2 of 3"):
        refit.refit_encoder(_model(), [_images(0)] * 2, steps=3)
