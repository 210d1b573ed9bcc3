"""Where `SymmetricVAE`'s noise comes from: three checkpointable streams, and a seed per call.

The model owns three `keras.random.SeedGenerator`s (its attributes, so checkpoints hold
their state): the training stream (the train step), the evaluation stream (`test_step`) and
the inference stream (`sample`, `encode`, `elbo`, calling the model, `predict`). A public
call given an int `seed` draws from that seed instead (stateless draws (seed, 0), (seed, 1),
...), so it is reproducible and advances no stream. Neither evaluation nor inference ever
shifts the training noise.

Every draw is made for the *global* batch and sliced for the replica, so example i gets the
same noise on one device or several (MirroredStrategy == one device, tested).
"""

import contextlib

import keras
import tensorflow as tf

# Stateless counterparts of the samplers, for noise drawn from a user's int seed.
_STATELESS = {keras.random.normal: tf.random.stateless_normal,
              keras.random.uniform: tf.random.stateless_uniform}


def replica_slice(draw, batch_size, event_shape):
    """This replica's rows [batch_size, *event_shape] of `draw(shape)` for the global batch
    (the whole draw outside a strategy or with one replica)."""
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return draw((batch_size, *event_shape))
    replica = context.replica_id_in_sync_group
    noise = draw((batch_size * replicas, *event_shape))
    return noise[replica * batch_size : (replica + 1) * batch_size]


class Streams:
    """The active source of a model's noise and its draws.

    Args:
      training, evaluation, inference: the model's three SeedGenerators; `training` is
        active until `drawing_from` or `for_call` chooses another source.
    """

    def __init__(self, training, evaluation, inference):
        self.training, self.evaluation, self.inference = training, evaluation, inference
        self._source, self._draws = training, 0  # draws so far from an int seed
        self._first_draw = 0

    def normal(self, batch_size, event_shape):
        """N(0, I) noise [batch_size, *event_shape] from the active source."""
        return self._draw(keras.random.normal, batch_size, event_shape)

    def uniform(self, batch_size, event_shape):
        """U[0, 1) noise [batch_size, *event_shape] from the active source."""
        return self._draw(keras.random.uniform, batch_size, event_shape)

    def _draw(self, sampler, batch_size, event_shape):
        seed = self._source
        if isinstance(seed, int):  # a user's seed: the i-th draw of the call uses (seed, i)
            seed, self._draws = self._stateless_seed(seed), self._draws + 1
            sampler = _STATELESS[sampler]
        return replica_slice(lambda shape: sampler(shape, seed=seed), batch_size, event_shape)

    def _stateless_seed(self, seed):
        """(seed, i) of the i-th draw from an int seed; i counts from `first_draw` (an int, or a
        scalar int tensor when a traced function is called once per batch)."""
        if isinstance(self._first_draw, int):
            return seed, self._first_draw + self._draws
        return tf.stack([tf.constant(seed, tf.int64), tf.cast(self._first_draw, tf.int64) + self._draws])

    @contextlib.contextmanager
    def drawing_from(self, source, first_draw=0):
        """Draw from `source` (a SeedGenerator or an int seed) inside the block; from an int
        seed, the draws are (seed, first_draw), (seed, first_draw + 1), ..."""
        saved = self._source, self._draws, self._first_draw
        self._source, self._draws, self._first_draw = source, 0, first_draw
        try:
            yield
        finally:
            self._source, self._draws, self._first_draw = saved

    def for_call(self, seed):
        """The source of a public method's noise: `seed` (int, reproducible), else the one an
        enclosing `drawing_from` chose (evaluation, a seeded `predict`), else the inference
        stream; never the training stream."""
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}.")
        if seed is None and self._source is not self.training:
            return contextlib.nullcontext()
        return self.drawing_from(self.inference if seed is None else seed)
