"""Train-step throughput of a preset/variant, with and without XLA.

    python -m benchmarks.train_throughput --preset=mnist --variant=svae_r --batch=100 \
        --steps=30 --json=benchmarks/results/train_throughput_mnist_svae_r.json

Times `steps` train steps after `warmup` steps (tracing/compilation excluded), as the
median of `repeats` timed runs, through the same compiled `train_function` that
`model.fit` uses, on in-memory batches (the input pipeline is measured separately by
benchmarks/input_pipeline.py). Prints a table and writes JSON with `img_per_s` (the
best configuration), `img_per_s_by_config`, `batch`, `preset`, `variant`.
"""

import json
import os
import statistics
import sys
import time

from absl import app, flags

from svae_tf import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from svae_tf import model as model_lib  # noqa: E402
from svae_tf import presets, runs  # noqa: E402
from benchmarks import machine  # noqa: E402

flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP)
flags.DEFINE_string("preset", "mnist", "Preset name.")
flags.DEFINE_enum("variant", "svae_r", model_lib.VARIANTS, "Model variant.")
flags.DEFINE_integer("batch", 100, "Global batch size.")
flags.DEFINE_integer("steps", 30, "Timed train steps per repeat.")
flags.DEFINE_integer("warmup", 5, "Untimed steps before timing (tracing, XLA compile).")
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
flags.DEFINE_list("configs", ["graph", "xla"], "Configurations: graph (tf.function), xla.")
flags.DEFINE_string("json", None, "Write the results here as JSON.")


def time_config(preset, variant, batch, steps, warmup, repeats, jit_compile):
    """Images per second of `model.fit`'s train function, median over repeats."""
    keras.backend.clear_session()
    model = model_lib.SymmetricVAE(preset, variant=variant, seed=0)
    model.compile(jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = rng.random((batch, *preset.image_shape), dtype=np.float32)
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


def main(argv):
    del argv
    f = flags.FLAGS
    preset = presets.get_preset(f.preset)
    by_config = {}
    for config in f.configs:
        if config not in ("graph", "xla"):
            raise app.UsageError(f"--configs: unknown configuration {config!r} (graph, xla).")
        rate, finite = time_config(
            preset, f.variant, f.batch, f.steps, f.warmup, f.repeats, config == "xla"
        )
        if not finite:
            raise RuntimeError(f"non-finite losses in configuration {config}")
        by_config[config] = round(rate, 1)
    best = max(by_config, key=by_config.get)
    result = {
        "preset": f.preset,
        "variant": f.variant,
        "batch": f.batch,
        "steps": f.steps,
        "warmup": f.warmup,
        "repeats": f.repeats,
        "img_per_s": by_config[best],
        "best_config": best,
        "img_per_s_by_config": by_config,
        "machine": {"cpus": os.cpu_count(), "cpu": machine.cpu_model(), "tensorflow": tf.__version__},
    }
    print("| preset | variant | batch | config | img/s |\n|---|---|---|---|---|")
    for config, rate in by_config.items():
        mark = " (best)" if config == best else ""
        print(f"| {f.preset} | {f.variant} | {f.batch} | {config}{mark} | {rate} |")
    if f.json:
        runs.atomic_write(f.json, json.dumps(result, indent=2))


if __name__ == "__main__":
    app.run(main)
