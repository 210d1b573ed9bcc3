"""How fast one train step runs: the timing shared by train_throughput and input_pipeline.

No flags are defined here, so any benchmark can import it (absl flags are global).
"""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from svae_tf import model as model_lib


def time_config(preset, variant, batch, steps, warmup, repeats, jit_compile, images=None):
    """(images per second of `model.fit`'s train function, median over repeats; all losses finite).

    `images`: the batch fed at every step ([batch, H, W, C] in [0, 1]); default uniform
    noise (the step's cost does not depend on the pixel values).
    """
    keras.backend.clear_session()
    model = model_lib.SymmetricVAE(preset, variant=variant, seed=0)
    model.compile(jit_compile=jit_compile)
    if images is None:
        images = np.random.default_rng(0).random((batch, *preset.image_shape), dtype=np.float32)
    dataset = tf.data.Dataset.from_tensors(images).repeat()
    iterator = iter(dataset)
    model.make_train_function()
    train_function = model.train_function
    for _ in range(warmup):
        logs = train_function(iterator)
    _ = {k: float(v) for k, v in logs.items()}  # wait for the device
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            logs = train_function(iterator)
        _ = {k: float(v) for k, v in logs.items()}
        rates.append(batch * steps / (time.perf_counter() - start))
    finite = all(np.isfinite(float(v)) for v in logs.values())
    return statistics.median(rates), finite
