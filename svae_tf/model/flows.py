"""Normalizing flows on z for the encoder q(z|x): TFP bijectors, Keras 3 conditioners.

The paper's MNIST encoder (Appendix A.1) follows the Gaussian head with a
normalizing flow. Three kinds are offered, all as `tfp.bijectors`:

- "coupling": affine coupling layers (RealNVP, Dinh et al. 2017), alternating halves;
- "maf": masked autoregressive flow (Papamakarios et al. 2017), fast density;
- "iaf": inverse autoregressive flow (Kingma et al. 2016), fast sampling.

Every variant supports both `forward` (sampling z = T(z0)) and `inverse`
(log q(z|x) at an arbitrary z, needed by sVAE-r's E_p log q(z|x) term in eq. 29).

Trap: TFP's `tfb.AutoregressiveNetwork` is a tf-keras (Keras 2) layer; inside a
Keras 3 model its variables are neither trained nor checkpointed. The conditioners
here are Keras 3 layers, owned (and therefore tracked) by the model.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

FLOW_KINDS = ("none", "coupling", "maf", "iaf")


class CouplingConditioner(keras.layers.Layer):
    """MLP mapping the kept half z_a to (shift, log_scale) of the other half.

    MNIST preset: 32 -> 256 -> 256 -> 64 (= shift 32 + log-scale 32). The log-scale
    is bounded by tanh so that a single layer cannot blow up the Jacobian.
    """

    def __init__(self, num_inputs, num_outputs, hidden_units=(256, 256), **kwargs):
        super().__init__(**kwargs)
        self.num_inputs = num_inputs
        # A Sequential, not a list: Keras 3 hides list-held layers from tf.train.Checkpoint.
        self.mlp = keras.Sequential(
            [keras.Input((num_inputs,))]
            + [keras.layers.Dense(u, activation="relu", dtype=self.dtype_policy)
               for u in hidden_units]
            + [keras.layers.Dense(2 * num_outputs, dtype=self.dtype_policy)]
        )

    def call(self, z_a):
        shift, raw_log_scale = tf.split(self.mlp(z_a), 2, axis=-1)  # [B, d_b] each
        return shift, tf.tanh(raw_log_scale)


class MaskedDense(keras.layers.Dense):
    """Dense layer whose kernel is multiplied by a fixed 0/1 autoregressive mask."""

    def __init__(self, units, mask, **kwargs):
        super().__init__(units, **kwargs)
        self.mask = np.asarray(mask, dtype="float32")  # [in, units]

    def call(self, inputs):
        out = tf.matmul(inputs, self.kernel * self.mask) + self.bias
        return self.activation(out)


def made_masks(event_size, hidden_units):
    """Masks of MADE (Germain et al. 2015) for inputs ordered 1..D.

    Hidden unit k has degree m(k) in [1, D-1] (assigned cyclically); a hidden unit
    sees inputs with degree <= m(k); an output of degree d sees hidden units with
    m(k) < d. Returns the list of masks for hidden layers and the output layer.
    """
    degrees = [np.arange(1, event_size + 1)]
    for units in hidden_units:
        degrees.append(np.arange(units) % max(event_size - 1, 1) + 1)
    masks = [
        (d_out[None, :] >= d_in[:, None]).astype("float32")
        for d_in, d_out in zip(degrees[:-1], degrees[1:])
    ]
    out_degrees = np.arange(1, event_size + 1)
    masks.append((out_degrees[None, :] > degrees[-1][:, None]).astype("float32"))
    return masks


class MadeConditioner(keras.layers.Layer):
    """MADE network returning (shift, log_scale) for `tfb.MaskedAutoregressiveFlow`.

    A Keras 3 replacement for `tfb.AutoregressiveNetwork(params=2)`: output i
    depends only on inputs < i. The log-scale is tanh-bounded as in the coupling
    conditioner.
    """

    def __init__(self, event_size, hidden_units=(256, 256), **kwargs):
        super().__init__(**kwargs)
        self.event_size = event_size
        *hidden_masks, out_mask = made_masks(event_size, hidden_units)
        self.mlp = keras.Sequential(
            [keras.Input((event_size,))]
            + [MaskedDense(u, m, activation="relu", dtype=self.dtype_policy)
               for u, m in zip(hidden_units, hidden_masks)]
            # Shift and log-scale share the output mask.
            + [MaskedDense(2 * event_size, np.concatenate([out_mask, out_mask], axis=1),
                           dtype=self.dtype_policy)]
        )

    def call(self, z):
        shift, raw_log_scale = tf.split(self.mlp(z), 2, axis=-1)  # [B, D] each
        return shift, tf.tanh(raw_log_scale)


class Flow(keras.layers.Layer):
    """The flow's conditioners (Keras 3 layers) and the bijector T they define.

    The flow runs in float32 whatever the global dtype policy (z and log-densities
    are float32; TFP bijectors do not mix dtypes).

    z = T(z0) with z0 ~ N(mu(x), sigma(x)^2). Coupling layers alternate which half
    is kept (num_masked > 0 keeps the first half, < 0 the last); autoregressive
    layers reverse the order of z between layers. Conditioners are held as named
    attributes (`conditioner_0`, ...), which Keras 3 exposes to tf.train.Checkpoint.
    """

    def __init__(self, kind, z_dim, depth, hidden_units=(256, 256), **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if kind not in FLOW_KINDS:
            raise ValueError(f"Unknown flow kind {kind!r}; expected one of {FLOW_KINDS}.")
        self.kind = kind
        self.z_dim = z_dim
        self.depth = 0 if kind == "none" else int(depth)
        for i in range(self.depth):
            if kind == "coupling":
                layer = CouplingConditioner(
                    z_dim // 2, z_dim - z_dim // 2, hidden_units, name=f"coupling_{i}",
                    dtype=self.dtype_policy,
                )
            else:
                layer = MadeConditioner(
                    z_dim, hidden_units, name=f"{kind}_{i}", dtype=self.dtype_policy
                )
            setattr(self, f"conditioner_{i}", layer)
        self.built = True

    @property
    def conditioners(self):
        return [getattr(self, f"conditioner_{i}") for i in range(self.depth)]

    def bijector(self):
        """The `tfb.Bijector` T (None when there is no flow)."""
        if not self.depth:
            return None
        bijectors = []
        for i, conditioner in enumerate(self.conditioners):
            if self.kind == "coupling":
                half = conditioner.num_inputs
                bijectors.append(
                    tfb.RealNVP(
                        num_masked=half if i % 2 == 0 else -half,
                        shift_and_log_scale_fn=lambda z_a, _units, c=conditioner: c(z_a),
                    )
                )
            else:
                maf = tfb.MaskedAutoregressiveFlow(
                    shift_and_log_scale_fn=lambda z, c=conditioner: c(z)
                )
                bijectors.append(tfb.Invert(maf) if self.kind == "iaf" else maf)
                if i + 1 < self.depth:
                    reverse = list(range(self.z_dim - 1, -1, -1))
                    bijectors.append(tfb.Permute(permutation=reverse))
        # tfb.Chain applies its list last-to-first.
        return tfb.Chain(list(reversed(bijectors)))
