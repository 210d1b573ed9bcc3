"""The computations behind the exported signatures, shared by SavedModel and LiteRT export.

Conventions (the same for every exported artifact):

- Images are [B, H, W, C]. Clients send uint8 pixels 0..255 (the `*_float` variants take
  float32 in [0, 1]); they are converted to float32 / 255 inside the graph, which is what
  the model was trained on (`svae_tf.data.pipelines`). Output images are float32 in [0, 1]: the
  decoder mean (Bernoulli probabilities for MNIST, the location of the 8-bit heads).
- "z mean" of q(z|x) is T(mu): the flow T applied to the mean mu of the Gaussian head,
  i.e. `model.encode(images, noise=0)`. With a flow this is *not* E_q[z] (the flow is
  non-linear); it is the deterministic code the encoder assigns to x: the image under T
  of the centre of the base Gaussian, i.e. the sample T(mu + sigma * eps) at eps = 0.
- Random draws come from int64 seeds, one per example, through a stateless op:
  eps_i = `tf.random.stateless_normal([z_dim], seed=[seed_i, SEED_SALT])`. The draw of
  example i depends on seed_i only (not on the batch it is sent in), so the same
  request always gives the same answer; `noise_from_seeds` reproduces it in Python.
"""

import tensorflow as tf

from svae_tf.model import distributions

SEED_SALT = 0x5EED  # second word of the stateless seed; fixed so old seeds stay valid


def noise_from_seeds(seeds, z_dim):
    """eps [B, z_dim] ~ N(0, I), row i a function of seeds[i] (int64 [B]) only."""
    seeds = tf.cast(seeds, tf.int64)
    salt = tf.constant(SEED_SALT, tf.int64)
    return tf.map_fn(
        lambda s: tf.random.stateless_normal([z_dim], seed=tf.stack([s, salt])),
        seeds,
        fn_output_signature=tf.TensorSpec([z_dim], tf.float32),
    )


def check_shape(tensor, tail, endpoint, name, what):
    """Assert `tensor` has shape [batch, *tail] at run time; InvalidArgumentError otherwise.

    The signatures declare these shapes already, and TensorFlow's Python loader refuses
    other shapes before running; but a serving runtime feeding tensors to the graph
    directly (TF Serving's C++ session) does not check fed shapes against the declared
    ones, and grappler folds rank tests using the declared rank. So the run-time shape
    is padded with -1 to a fixed length and compared element-wise: the check works for
    any rank without ever comparing vectors of different lengths.
    """
    n = 1 + len(tail)
    shape = tf.shape(tensor)
    padded = tf.concat([shape, tf.fill([n + 1], -1)], axis=0)[: n + 1]  # [n + 1]
    expected = tf.constant([*tail, -1], tf.int32)  # dims 1..n-1, then "no dim n"
    ok = tf.logical_and(padded[0] >= 0, tf.reduce_all(tf.equal(padded[1:], expected)))
    dims = ", ".join(str(d) for d in tail)
    shape_text = f"[batch, {dims}]" if dims else "[batch]"
    message = f"{endpoint}: input `{name}` must be {what} of shape {shape_text}"
    return tf.debugging.Assert(ok, [message, "got shape", shape])


def uint8_to_float(images, preset, endpoint, name="images"):
    """uint8 pixels [B, H, W, C] -> float32 in [0, 1], after checking the shape."""
    check = check_shape(images, preset.image_shape, endpoint, name, "uint8 pixels")
    with tf.control_dependencies([check]):
        return tf.cast(images, tf.float32) / 255.0


def check_float_images(images, preset, endpoint, name="images"):
    """float32 images [B, H, W, C]: check shape, finiteness and range [0, 1]."""
    checks = [check_shape(images, preset.image_shape, endpoint, name, "float32 pixels")]
    with tf.control_dependencies(checks):
        checks.append(tf.debugging.assert_all_finite(
            images, message=f"{endpoint}: input `{name}` has NaN or Inf pixels"))
    with tf.control_dependencies(checks):
        in_range = tf.reduce_all((images >= 0.0) & (images <= 1.0))
        checks.append(tf.debugging.Assert(
            in_range, [f"{endpoint}: input `{name}` must be float32 pixels in [0, 1]"]))
    with tf.control_dependencies(checks):
        return tf.identity(images)


def check_latents(z, z_dim, endpoint, name="z"):
    """Check z [B, z_dim] (shape at run time, and finite values)."""
    checks = [check_shape(z, [z_dim], endpoint, name, "float32 latents")]
    with tf.control_dependencies(checks):
        checks.append(tf.debugging.assert_all_finite(
            z, message=f"{endpoint}: input `{name}` has NaN or Inf values"))
    with tf.control_dependencies(checks):
        return tf.identity(z)


def check_seeds(seeds, batch_size, endpoint, name="seed"):
    """Check seeds [B]: rank 1 and, when `batch_size` is given, one seed per image."""
    checks = [check_shape(seeds, [], endpoint, name, "int64 seeds")]
    if batch_size is not None:
        with tf.control_dependencies(checks):
            checks.append(tf.debugging.Assert(
                tf.equal(tf.shape(seeds)[0], batch_size),
                [f"{endpoint}: input `{name}` must hold one seed per image", "seeds:",
                 tf.shape(seeds)[0], "images:", batch_size]))
    with tf.control_dependencies(checks):
        return tf.identity(seeds)


def if_nonempty(batch_size, compute, output_tails):
    """compute() when batch_size > 0, else zeros [0, *tail] for each output.

    A batch of zero examples is valid and returns outputs with a zero batch dimension;
    the guard keeps kernels from ever seeing an empty batch (oneDNN's CPU kernels fail
    on some of them, e.g. batch normalisation after a conv, with "Incompatible shapes").
    """
    def empty():
        return {k: tf.zeros([0, *tail], tf.float32) for k, tail in output_tails.items()}

    return tf.cond(batch_size > 0, compute, empty)


# ---------------------------------------------------------------- the model's parts


def z_mean(model, images):
    """T(mu) [B, z_dim] for float images in [0, 1] (no random op: LiteRT-convertible)."""
    q = model.posterior(images, training=False)
    zeros = tf.zeros([tf.shape(images)[0], model.preset.z_dim], tf.float32)
    return distributions.reparameterized_sample(q, zeros)


def z_mean_and_sample(model, images, noise):
    """(T(mu), T(mu + sigma * noise)), both [B, z_dim], from one encoder pass."""
    q = model.posterior(images, training=False)
    zeros = tf.zeros_like(noise)
    return (
        distributions.reparameterized_sample(q, zeros),
        distributions.reparameterized_sample(q, noise),
    )


def decode_images(model, z):
    """Decoder mean [B, H, W, C] in [0, 1] at z [B, z_dim] (network + sigmoid only)."""
    return model.decode_mean(z, training=False)
