"""Exponential moving average (Polyak averaging) of the encoder/decoder weights.

    a_t = d_t a_{t-1} + (1 - d_t) w_t,   d_t = min(decay, (1 + t) / (10 + t))

after each encoder/decoder update t (the warm-up of `tf.train.ExponentialMovingAverage`
with `num_updates`, so early averages are not dominated by the initial weights). GANs'
samples are usually better from the averaged weights than from the last iterate
(Yazici et al. 2019). The averages only read the trained weights, so the objective, and
with it the discriminator's estimate of log p(x,z) - log q(x,z) (eq. 11), is unchanged;
the decoder being sampled is the averaged one.

Batch norm's moving statistics are not averaged: inference with the averaged weights
uses the statistics collected with the trained ones.
"""

import contextlib

import tensorflow as tf


def decay_at(decay, step):
    """d_t for update number `step` (0-based, a scalar tensor or int)."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(tf.cast(decay, tf.float32), (1.0 + step) / (10.0 + step))


def update(averages, variables, decay, step):
    """a <- d_t a + (1 - d_t) w for each pair (`averages`, `variables`: equal-length lists)."""
    d = decay_at(decay, step)
    for average, variable in zip(averages, variables):
        average.assign(d * average + (1.0 - d) * tf.cast(variable, average.dtype))


def swap(averages, variables):
    """Exchange the values of each pair in place (twice restores them)."""
    for average, variable in zip(averages, variables):
        value = tf.identity(variable)
        variable.assign(average)
        average.assign(value)


@contextlib.contextmanager
def swapped(averages, variables):
    """The averages in `variables` inside the block, the trained weights again after it."""
    swap(averages, variables)
    try:
        yield
    finally:
        swap(averages, variables)
