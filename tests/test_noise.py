"""`svae_tf.model.noise.Streams`: which source a draw comes from (the model-level behaviour,
seeded calls that never advance the training stream, is in test_model.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from svae_tf.model import noise


def _streams():
    return noise.Streams(*(keras.random.SeedGenerator(s) for s in (0, 1, 2)))


def _state(generator):
    return generator.state.numpy().copy()


def test_int_seed_draws_are_stateless_and_numbered():
    """The i-th draw under an int seed is the stateless draw (seed, i); no stream moves."""
    streams = _streams()
    before = [_state(g) for g in (streams.training, streams.evaluation, streams.inference)]
    with streams.drawing_from(7):
        first, second = streams.normal(3, (2,)), streams.uniform(3, (2,))
    np.testing.assert_array_equal(first, tf.random.stateless_normal((3, 2), seed=(7, 0)))
    np.testing.assert_array_equal(second, tf.random.stateless_uniform((3, 2), seed=(7, 1)))
    with streams.drawing_from(7):  # numbering starts again in a new block
        np.testing.assert_array_equal(streams.normal(3, (2,)), first)
    after = [_state(g) for g in (streams.training, streams.evaluation, streams.inference)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_public_calls_never_draw_from_the_training_stream():
    streams = _streams()
    training = _state(streams.training)
    with streams.for_call(None):
        streams.normal(2, (4,))
    np.testing.assert_array_equal(_state(streams.training), training)
    assert not np.array_equal(_state(streams.inference), _state(keras.random.SeedGenerator(2)))
    # Inside evaluation (`drawing_from(evaluation)`), a call keeps the evaluation stream.
    inference = _state(streams.inference)
    with streams.drawing_from(streams.evaluation), streams.for_call(None):
        streams.normal(2, (4,))
    np.testing.assert_array_equal(_state(streams.inference), inference)
    np.testing.assert_array_equal(_state(streams.training), training)


def test_source_is_restored_after_an_error_and_seed_type_is_checked():
    streams = _streams()
    with pytest.raises(RuntimeError):
        with streams.drawing_from(3):
            raise RuntimeError
    training = _state(streams.training)
    streams.normal(1, (1,))
    assert not np.array_equal(_state(streams.training), training)  # the training stream again
    with pytest.raises(TypeError, match="seed must be an int"):
        streams.for_call(1.5)
