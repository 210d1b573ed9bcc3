"""The adversarial variants must not collapse: a short real-MNIST run of the default preset.

With `presets.MNIST_A1` (the paper's A.1 networks exactly) GAN, ALI and sVAE lose the
decoder's dependence on z within 200 steps: the pixel standard deviation over 64 samples
from p(z) falls to about 0.01, against about 0.19 for 64 real test images
(benchmarks/results/screens/collapse/mode_collapse.md; at this test's batch of 50 too: 0.004-0.007). With
the default preset `presets.MNIST` and the flagfiles' Adam 2e-4 / beta1 0.5 it is near 0.145
after 200 steps of batch 50. The test fails if it is below half of the real images' value,
or if a weight is not finite (these runs also stand for the full-size 200-step runs of
these variants in test_model.py, which are marked slow).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from svae_tf.data import pipelines as data
from svae_tf.model import presets
from svae_tf.model import symmetric_vae as model_lib

STEPS = 200
BATCH = 50


def spread(images):
    """Mean over pixels of the std over the batch: [N, H, W, C] -> float."""
    return float(np.std(np.asarray(images), axis=0).mean())


@pytest.mark.parametrize("variant", ["gan", "ali", "svae"])
def test_samples_keep_their_spread_after_200_steps(variant, data_dir):
    train = data.load_images("mnist", "train", batch_size=BATCH, data_dir=data_dir, shuffle=True,
                             seed=0, repeat=True, drop_remainder=True)
    real = next(iter(data.load_images("mnist", "test", batch_size=64, data_dir=data_dir)))
    keras.utils.set_random_seed(0)
    model = model_lib.SymmetricVAE(presets.MNIST, variant=variant, seed=0)
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    model.fit(train, epochs=1, steps_per_epoch=STEPS, verbose=0)
    z = tf.random.stateless_normal((64, presets.MNIST.z_dim), seed=(0, 1))
    healthy = spread(real)
    assert 0.15 < healthy < 0.25, healthy  # real MNIST test images
    assert spread(model.sample(64, noise=z)) > 0.5 * healthy
    for v in model.variables:
        assert np.all(np.isfinite(v.numpy())), v.path
