"""The benchmarks' one train loop: the compiled step `model.fit` runs, called N times.

`time_config` times it (train_throughput, input_pipeline); mode_collapse and
step_fingerprint train with `run_steps` too. No flags are defined here, so any benchmark
can import it (absl flags are global).
"""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from svae_tf.model import symmetric_vae as model_lib


def repeated_batch(preset, batch, images=None):
    """An iterator yielding one batch forever: `images` ([batch, H, W, C] in [0, 1]), by
    default uniform noise from numpy seed 0 (a step's cost does not depend on the pixels)."""
    if images is None:
        images = np.random.default_rng(0).random((batch, *preset.image_shape), dtype=np.float32)
    return iter(tf.data.Dataset.from_tensors(images).repeat())


def train_function(model):
    """The compiled train function of `model.fit`: one step per call, on an iterator."""
    model.make_train_function()
    return model.train_function


def run_steps(step, iterator, steps):
    """`steps` calls of `step` (a `train_function`); the last call's logs as floats ({} for
    none). Reading them waits for the device, so a timer around this call times the steps."""
    logs = {}
    for _ in range(steps):
        logs = step(iterator)
    return {k: float(v) for k, v in logs.items()}


def time_config(preset, variant, batch, steps, warmup, repeats, jit_compile, images=None, **model_kwargs):
    """(images per second of `model.fit`'s train function, median over repeats; all losses finite).

    `images`: the batch fed at every step (`repeated_batch`); `model_kwargs`: more
    `SymmetricVAE` arguments (lam_z, ...).
    """
    keras.backend.clear_session()
    model = model_lib.SymmetricVAE(preset, variant=variant, seed=0, **model_kwargs)
    model.compile(jit_compile=jit_compile)
    iterator = repeated_batch(preset, batch, images)
    step = train_function(model)
    logs = run_steps(step, iterator, warmup)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        logs = run_steps(step, iterator, steps)
        rates.append(batch * steps / (time.perf_counter() - start))
    finite = all(np.isfinite(v) for v in logs.values())
    return statistics.median(rates), finite
