"""Tests for svae_tf.model.flows: invertibility, densities, MADE masks, Keras 3 variable tracking."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from svae_tf.model import distributions, flows, symmetric_vae as model_lib, presets

KINDS = ("coupling", "maf", "iaf")
Z_DIMS = (4, 5)  # even and odd (coupling halves of unequal size)
DEPTH = 3  # odd, so both coupling parities and the autoregressive permutations are used
HIDDEN = (16, 16)


def _flow(kind, z_dim, seed=0):
    keras.utils.set_random_seed(seed)
    return flows.Flow(kind, z_dim, DEPTH, HIDDEN, name="flow")


def _fresh(t):
    """A new tensor with the same values: defeats TFP's bijector cache (keyed by tensor)."""
    return tf.constant(np.asarray(t))


@pytest.mark.parametrize("z_dim", Z_DIMS)
@pytest.mark.parametrize("kind", KINDS)
def test_inverse_of_forward_is_identity(kind, z_dim):
    flow = _flow(kind, z_dim)
    z0 = tf.random.stateless_normal([16, z_dim], seed=[1, 2])
    z = flow.bijector().forward(z0)
    assert z.shape == [16, z_dim]
    assert np.max(np.abs(z - z0)) > 1e-2  # the flow is not the identity at initialisation
    # Fresh bijector objects and fresh tensors: inversion is actually computed.
    np.testing.assert_allclose(flow.bijector().inverse(_fresh(z)), z0, atol=2e-5)
    np.testing.assert_allclose(flow.bijector().inverse(tf.identity(z)), z0, atol=2e-5)
    np.testing.assert_allclose(flow.bijector().forward(flow.bijector().inverse(_fresh(z))), z, atol=2e-5)
    # log-det-Jacobians of the two directions are opposite.
    fldj = flow.bijector().forward_log_det_jacobian(z0, event_ndims=1)
    ildj = flow.bijector().inverse_log_det_jacobian(_fresh(z), event_ndims=1)
    np.testing.assert_allclose(fldj, -ildj, atol=1e-4)


@pytest.mark.parametrize("z_dim", Z_DIMS)
@pytest.mark.parametrize("kind", KINDS)
def test_posterior_log_prob_is_change_of_variables(kind, z_dim):
    """log q(z|x) = log N(z0; mu, sigma^2) - log|det dT/dz0|, with the Jacobian from autodiff."""
    flow = _flow(kind, z_dim)
    batch_size = 8
    rng = np.random.default_rng(0)
    params = tf.constant(
        np.concatenate([rng.standard_normal((batch_size, z_dim)), rng.uniform(-1, 0.5, (batch_size, z_dim))], 1),
        tf.float32,
    )
    noise = tf.constant(rng.standard_normal((batch_size, z_dim)), tf.float32)
    q = distributions.posterior(params, flow.bijector())
    z = distributions.reparameterized_sample(q, noise)

    # Independent computation (float64 numpy for the base density and the determinant).
    mu, log_var = np.split(params.numpy().astype(np.float64), 2, axis=-1)
    z0 = mu + np.exp(0.5 * log_var) * noise.numpy()
    base_log_prob = np.sum(-0.5 * (z0 - mu) ** 2 / np.exp(log_var) - 0.5 * log_var - 0.5 * np.log(2 * np.pi), -1)
    z0_t = tf.constant(z0, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z0_t)
        z_again = flow.bijector().forward(z0_t)
    jacobian = tape.batch_jacobian(z_again, z0_t).numpy().astype(np.float64)  # [B, D, D]
    _, log_abs_det = np.linalg.slogdet(jacobian)
    expected = base_log_prob - log_abs_det

    np.testing.assert_allclose(z, z_again, atol=1e-5)
    np.testing.assert_allclose(q.log_prob(z), expected, atol=2e-4, rtol=1e-5)  # cached pair
    np.testing.assert_allclose(q.log_prob(_fresh(z)), expected, atol=2e-4, rtol=1e-5)  # inverted
    fresh_q = distributions.posterior(params, flow.bijector())
    np.testing.assert_allclose(fresh_q.log_prob(_fresh(z)), expected, atol=2e-4, rtol=1e-5)
    assert np.max(np.abs(log_abs_det)) > 1e-3  # a volume-changing flow: the test has teeth


@pytest.mark.parametrize("event_size,hidden", [(4, (16, 16)), (5, (8,)), (7, (32, 16))])
def test_made_conditioner_is_autoregressive(event_size, hidden):
    """d output_i / d input_j == 0 for j >= i, for both shift and log-scale, checked by autodiff."""
    keras.utils.set_random_seed(3)
    conditioner = flows.MadeConditioner(event_size, hidden)
    z = tf.random.stateless_normal([32, event_size], seed=[4, 5])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        shift, log_scale = conditioner(z)
    allowed = np.tril(np.ones((event_size, event_size)), k=-1).astype(bool)  # [i, j]: j < i
    for out in (shift, log_scale):
        jacobian = np.abs(tape.batch_jacobian(out, z).numpy()).sum(0)  # [D_out, D_in]
        assert np.all(jacobian[~allowed] == 0.0), jacobian
        # Every allowed dependence is realised by the masks (some ReLUs may be off
        # at some inputs, not at all 32).
        assert np.all(jacobian[allowed] > 0.0), jacobian
    # Same statement on the masks alone: their product is strictly lower triangular.
    connectivity = np.linalg.multi_dot(flows.made_masks(event_size, hidden))  # [D_in, D_out]
    np.testing.assert_array_equal(connectivity.T > 0, allowed)


@pytest.mark.parametrize("kind", KINDS)
def test_single_maf_layer_jacobian_is_triangular(kind):
    """One autoregressive layer (before any permutation) has a triangular Jacobian."""
    keras.utils.set_random_seed(0)
    flow = flows.Flow(kind, 5, 1, HIDDEN)
    z0 = tf.random.stateless_normal([6, 5], seed=[0, 1])
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z = flow.bijector().forward(z0)
    jacobian = np.abs(tape.batch_jacobian(z, z0).numpy()).sum(0)
    if kind == "coupling":  # first half kept: identity block and zero upper-right block
        np.testing.assert_allclose(jacobian[:2, :2], 6 * np.eye(2), atol=1e-5)
        np.testing.assert_array_equal(jacobian[:2, 2:], 0.0)
    else:
        np.testing.assert_array_equal(np.triu(jacobian, k=1), 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_flow_variables_are_keras3_and_trained(kind):
    flow = _flow(kind, 4)
    assert len(flow.conditioners) == DEPTH
    # Kernel and bias of each of the 3 dense layers of each conditioner.
    assert len(flow.trainable_variables) == DEPTH * 2 * (len(HIDDEN) + 1)
    for v in flow.variables:
        assert isinstance(v, keras.Variable), (v.path, type(v))
        assert not type(v).__module__.startswith("tf_keras"), type(v)
    for layer in flow._flatten_layers(include_self=True):
        assert not type(layer).__module__.startswith("tf_keras"), type(layer)
        assert isinstance(layer, keras.layers.Layer)
    # The bijector depends on every conditioner variable (gradients through log_prob).
    params = tf.zeros([3, 8])
    z = tf.random.stateless_normal([3, 4], seed=[0, 0])
    with tf.GradientTape() as tape:
        log_prob = distributions.posterior(params, flow.bijector()).log_prob(z)
    grads = tape.gradient(log_prob, flow.trainable_variables)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)


@pytest.mark.parametrize("kind", KINDS + ("none",))
def test_flow_variables_are_model_variables(kind):
    model = model_lib.SymmetricVAE(presets.tiny(flow=kind, z_dim=5), "svae_r")
    model_ids = {id(v) for v in model.trainable_variables}
    generator_ids = {id(v) for v in model.generator_variables}
    flow_vars = model.flow.trainable_variables
    assert len(flow_vars) == (0 if kind == "none" else 2 * 2 * 2)  # depth 2, 2 dense layers
    assert all(id(v) in model_ids and id(v) in generator_ids for v in flow_vars)
    assert all(isinstance(v, keras.Variable) for v in model.variables)
    assert not any(type(v).__module__.startswith("tf_keras") for v in model.variables)
    if kind == "none":
        assert model.flow.bijector() is None


def test_unknown_flow_kind_raises():
    with pytest.raises(ValueError, match="flow kind"):
        flows.Flow("planar", 4, 2)
