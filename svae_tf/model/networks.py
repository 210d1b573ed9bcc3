"""Build the encoder, decoder and discriminator networks of a `presets.Preset`.

All are Keras 3 functional models with Xavier (Glorot-uniform) initialisation,
the paper's choice (Sec. 6) and Keras' default.
"""

import contextlib

import keras
import tensorflow as tf

from svae_tf.model import distributions


def _conv_bn_relu(x, spec, transpose=False):
    conv = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    x = conv(spec.filters, spec.kernel, strides=spec.stride, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(synchronized=True)(x)
    return keras.layers.ReLU()(x)


def batch_norm_layers(*networks):
    """The BatchNormalization layers in `networks` (Keras layers or models, nested)."""
    found = []
    for network in networks:
        if isinstance(network, keras.layers.BatchNormalization):
            found.append(network)
        elif network is not None:
            found += batch_norm_layers(*getattr(network, "layers", ()))
    return found


def moving_statistics(*networks):
    """Batch norm's moving means and variances in `networks` (Keras layers or models)."""
    return [v for layer in batch_norm_layers(*networks) for v in (layer.moving_mean, layer.moving_variance)]


def recompute_moving_statistics(networks, forward, batches):
    """Batch norm's moving statistics in `networks` := the mean, over `batches`, of the batch
    statistics that `forward(batch, index)` (training-mode calls of the networks; `index` the
    batch's number, a scalar int64 tensor) normalises with: population statistics for the
    weights as they are, in place of the moving averages training left. Returns the number
    of batches.

    One traced function per batch shape (as the train step runs): inside it batch norm runs
    with momentum 0, so its moving statistics hold that batch's, which are folded into a
    running mean with Keras' own update m <- m (n - 1) / n + batch / n. Momentum is
    restored after."""
    layers = batch_norm_layers(*networks)
    unbuilt = [layer.name for layer in layers if not layer.built]
    if unbuilt:
        raise ValueError(f"recompute_moving_statistics: build the networks first (unbuilt: {unbuilt}).")
    count = tf.Variable(0, dtype=tf.int64, trainable=False)
    # (moving statistic, its running mean over the batches so far)
    means = [(v, tf.Variable(tf.zeros_like(v), trainable=False))
             for layer in layers for v in (layer.moving_mean, layer.moving_variance)]

    @tf.function(reduce_retracing=True)
    def step(batch):
        forward(batch, count.read_value())
        n = tf.cast(count.assign_add(1), tf.float64)
        keep = (n - 1.0) / n  # Keras computes momentum and 1 - momentum in float64 too
        for value, mean in means:
            mean.assign(mean * tf.cast(keep, mean.dtype) + value * tf.cast(1.0 - keep, mean.dtype))

    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        for batch in batches:
            step(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if int(count.numpy()):
        for value, mean in means:
            value.assign(mean)
    return int(count.numpy())


@contextlib.contextmanager
def moving_statistics_kept(*networks):
    """Inside, `networks` may run in training mode (batch norm normalises by each batch);
    on exit batch norm's moving statistics get back the values they had on entry."""
    variables = moving_statistics(*networks)
    saved = [tf.identity(v) for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def build_encoder(preset):
    """q(z|x) network: images [B, H, W, C] -> [B, 2 z_dim] = (mu, log sigma^2)."""
    images = keras.Input(preset.image_shape, name="images")
    h = images
    for spec in preset.encoder_convs:
        h = _conv_bn_relu(h, spec)  # [B, H / s, W / s, filters]
    h = keras.layers.Flatten()(h)
    for units in preset.encoder_dense:
        h = keras.layers.Dense(units, activation="relu")(h)
    out = keras.layers.Dense(2 * preset.z_dim, name="mean_and_log_variance")(h)
    return keras.Model(images, out, name="encoder")


def build_decoder(preset):
    """p(x|z) network: z [B, z_dim] -> likelihood parameters [B, H, W, P]."""
    z = keras.Input((preset.z_dim,), name="z")
    h = z
    for units in preset.decoder_dense:
        if preset.decoder_dense_batch_norm:
            h = keras.layers.Dense(units, use_bias=False)(h)
            h = keras.layers.BatchNormalization(synchronized=True)(h)
            h = keras.layers.ReLU()(h)
        else:
            h = keras.layers.Dense(units, activation="relu")(h)
    h = keras.layers.Reshape(preset.decoder_start)(h)
    for spec in preset.decoder_deconvs:
        h = _conv_bn_relu(h, spec, transpose=True)
    channels = distributions.param_channels(preset.likelihood, preset.image_shape[-1])
    out = keras.layers.Conv2D(
        channels, preset.decoder_out_kernel, padding="same", dtype="float32", name="params"
    )(h)
    return keras.Model(z, out, name="decoder")


def build_discriminator(preset, joint=True, dropout=None):
    """f(x, z) (joint=True) or f(x) (decoder-only GAN/IPM reductions) -> one logit [B].

    x branch: convs with LeakyReLU (+ dropout), then global average pooling or flatten
    (`preset.disc_x_pooling`); z branch: an MLP; the two are concatenated and an MLP gives the logit. `dropout` overrides the
    preset's dropout rates (0 makes the network deterministic, e.g. for tests).
    """
    def rate(r):
        return r if dropout is None else dropout

    images = keras.Input(preset.image_shape, name="images")
    h = images
    for spec in preset.disc_x_convs:
        h = keras.layers.Conv2D(spec.filters, spec.kernel, strides=spec.stride, padding="same")(h)
        h = keras.layers.LeakyReLU(preset.leaky_slope)(h)
        if rate(spec.dropout):
            h = keras.layers.Dropout(rate(spec.dropout))(h)
    if preset.disc_x_pooling == "flatten":
        h = keras.layers.Flatten()(h)  # [B, h * w * filters]
    elif preset.disc_x_pooling == "average":
        h = keras.layers.GlobalAveragePooling2D()(h)  # [B, filters]
    else:
        raise ValueError(f"Unknown disc_x_pooling {preset.disc_x_pooling!r}; "
                         "expected 'average' or 'flatten'.")
    inputs = [images]
    if joint:
        z = keras.Input((preset.z_dim,), name="z")
        g = z
        for spec in preset.disc_z_dense:
            g = keras.layers.Dense(spec.units)(g)
            g = keras.layers.LeakyReLU(preset.leaky_slope)(g)
        h = keras.layers.Concatenate()([h, g])
        inputs.append(z)
    for spec in preset.disc_joint_dense:
        h = keras.layers.Dense(spec.units)(h)
        h = keras.layers.LeakyReLU(preset.leaky_slope)(h)
        if rate(spec.dropout):
            h = keras.layers.Dropout(rate(spec.dropout))(h)
    logit = keras.layers.Dense(1, dtype="float32")(h)
    logit = keras.layers.Reshape((), dtype="float32")(logit)  # [B], float32 under mixed precision
    return keras.Model(inputs, logit, name="discriminator" if joint else "discriminator_x")
