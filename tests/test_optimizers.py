"""`svae_tf.optimizers`: the linear learning-rate decay."""

import keras
import numpy as np
import pytest

from svae_tf import optimizers


def _rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


@pytest.mark.parametrize("start, done, expected", [
    (0, 0, 2e-4), (0, 5, 1e-4), (0, 10, 0.0), (0, 15, 0.0),  # from the first update
    (4, 3, 2e-4), (4, 4, 2e-4), (4, 9, 1e-4), (4, 14, 0.0),  # after 4 constant updates
])
def test_learning_rate_holds_then_falls_linearly_to_zero_and_stays(start, done, expected):
    optimizer = optimizers.adam(2e-4, beta_1=0.5, decay_steps=10, decay_start=start)
    optimizer.build([keras.Variable(np.zeros(2, np.float32))])
    optimizer.iterations.assign(done)  # as a restored checkpoint sets it
    assert _rate(optimizer) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert float(keras.ops.convert_to_numpy(optimizer.beta_1)) == 0.5


def test_no_decay_is_a_constant_float_and_updates_use_the_schedule():
    assert optimizers.learning_rate(3e-4) == 3e-4
    variable = keras.Variable(np.ones(1, np.float32))
    optimizer = optimizers.adam(0.1, decay_steps=2)
    for _ in range(3):  # Adam's first step moves by the learning rate: 0.1, 0.05, then 0
        optimizer.apply_gradients([(np.ones(1, np.float32), variable)])
    np.testing.assert_allclose(variable.numpy(), [1 - 0.1 - 0.05], rtol=1e-5)


def test_schedule_round_trips_through_its_config():
    schedule = optimizers.LinearDecay(1e-3, 7, start=3)
    copy = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert copy.get_config() == {"initial": 1e-3, "steps": 7, "start": 3}
    assert float(copy(5)) == pytest.approx(1e-3 * (1 - 2 / 7))


@pytest.mark.parametrize("steps, start", [(-1, 0), (3, -1)])
def test_bad_arguments_are_refused(steps, start):
    with pytest.raises(ValueError, match="decay_steps must be >= 0|start >= 0"):
        optimizers.learning_rate(1e-4, steps, start)
