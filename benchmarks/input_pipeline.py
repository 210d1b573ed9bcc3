"""Does the MNIST input pipeline keep up with the train step? (issue #3: >= 5x)

    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.input_pipeline --json=benchmarks/results/input_pipeline.json

Measures, on the real MNIST training split at batch 100 (the trainer's configuration):

* pipeline rate: batches/s delivered by exactly the stream the trainer fits on
  (`trainers.train_lib.training_stream`: cache, seeded shuffle each pass, repeat,
  batch, float conversion, prefetch), over `--pipeline_batches` batches after the
  first one (which waits for the shuffle buffer: reported separately). The measured
  span crosses pass boundaries, where the shuffle buffer is refilled.
* resume skip rate: batches/s of `training_stream(start=N)` skipping N batches, the
  cost of getting back to the data position of a resumed run;
* train rate: steps/s of `model.fit` on the sVAE-r MNIST preset (paper networks, 4
  coupling layers, two Adam optimizers), batch 100, fed from one in-memory batch so
  that the data pipeline is not involved, after `--warmup_steps` steps (tracing);

and prints a table with both rates and their ratio. Both compete for the same CPU
cores in a real run; they are measured one after the other.
"""

import json
import os
import platform
import sys
import time

from absl import app, flags

from svae_tf import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

from svae_tf import runs  # noqa: E402
from trainers import train_lib  # noqa: E402  (its flags include --tf_log_level)
from benchmarks import machine  # noqa: E402

_JSON = flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
_BATCH = flags.DEFINE_integer("benchmark_batch_size", 100, "Batch size (the MNIST trainer's).")
_PIPELINE_BATCHES = flags.DEFINE_integer("pipeline_batches", 1800, "Batches timed for the pipeline rate (600 = one pass at batch 100).")
_SKIP = flags.DEFINE_integer("skip_batches", 6000, "Batches skipped for the resume skip rate.")
_WARMUP = flags.DEFINE_integer("warmup_steps", 10, "Train steps before timing (tracing, first calls).")
_STEPS = flags.DEFINE_integer("train_steps", 50, "Train steps timed.")
_BENCH_DATA_DIR = flags.DEFINE_string("benchmark_data_dir", None, "TFDS data directory (default $TFDS_DATA_DIR).")


def measure_pipeline(batch_size, batches, data_dir):
    stream = train_lib.training_stream("mnist", batch_size=batch_size, seed=0, data_dir=data_dir)
    iterator = iter(stream)
    start = time.perf_counter()
    first = next(iterator)
    first_batch_s = time.perf_counter() - start
    assert tuple(first.shape) == (batch_size, 28, 28, 1), first.shape
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    elapsed = time.perf_counter() - start
    return {"first_batch_s": first_batch_s, "batches": batches, "seconds": elapsed,
            "batches_per_s": batches / elapsed}


def measure_skip(batch_size, skip, data_dir):
    start = time.perf_counter()
    next(iter(train_lib.training_stream("mnist", batch_size=batch_size, seed=0, start=skip,
                                        data_dir=data_dir)))
    elapsed = time.perf_counter() - start
    return {"batches": skip, "seconds": elapsed, "batches_per_s": skip / elapsed}


def measure_train_step(batch_size, warmup, steps, data_dir):
    import keras
    import tensorflow as tf
    from svae_tf import runs

    keras.utils.set_random_seed(0)
    model = runs.build_model(runs.ModelConfig(preset="mnist", variant="svae_r", lam=0.3))
    model.compile(jit_compile=False)
    batch = next(iter(train_lib.training_stream("mnist", batch_size=batch_size, seed=0, data_dir=data_dir)))
    data = tf.data.Dataset.from_tensors(batch).repeat()

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 == warmup:
                self.start = time.perf_counter()
            if batch + 1 == warmup + steps:
                self.stop = time.perf_counter()

    clock = Clock()
    model.fit(data, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[clock], shuffle=False)
    elapsed = clock.stop - clock.start
    return {"warmup_steps": warmup, "steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed}


def main(argv):
    del argv
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # TFDS logs every dataset it builds at INFO
    import tensorflow as tf

    data_dir = _BENCH_DATA_DIR.value
    batch_size = _BATCH.value
    load_before = os.getloadavg()
    pipeline = measure_pipeline(batch_size, _PIPELINE_BATCHES.value, data_dir)
    skip = measure_skip(batch_size, _SKIP.value, data_dir)
    train = measure_train_step(batch_size, _WARMUP.value, _STEPS.value, data_dir)
    ratio = pipeline["batches_per_s"] / train["steps_per_s"]
    result = {
        "benchmark": "input_pipeline",
        "dataset": "mnist (real, TFDS mnist/3.0.1, train split, 60000 images)",
        "batch_size": batch_size,
        "pipeline": pipeline,
        "resume_skip": skip,
        "train_step": train,
        "ratio_pipeline_over_train": ratio,
        "target_ratio": 5.0,
        "meets_target": ratio >= 5.0,
        "machine": {
            "nproc": os.cpu_count(),
            "cpu_model": machine.cpu_model(),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": os.getloadavg(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
        },
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    rows = [
        ("input pipeline (batches/s)", f"{pipeline['batches_per_s']:.1f}",
         f"{pipeline['batches']} batches after the first ({pipeline['first_batch_s']:.1f} s to fill the shuffle buffer)"),
        ("train step (steps/s)", f"{train['steps_per_s']:.2f}",
         f"sVAE-r MNIST preset, {train['steps']} steps after {train['warmup_steps']} warm-up"),
        ("ratio pipeline / train", f"{ratio:.1f}x", "target >= 5x: " + ("met" if ratio >= 5 else "NOT met")),
        ("resume skip (batches/s)", f"{skip['batches_per_s']:.0f}",
         f"first batch after skipping {skip['batches']} (10 passes) took {skip['seconds']:.1f} s, buffer fill included"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"MNIST input pipeline vs train step, batch {batch_size} "
          f"({os.cpu_count()} CPUs, {machine.cpu_model()}, load {load_before[0]:.1f})")
    print(f"| {'what':<{width}} | {'rate':>8} | notes")
    print(f"|{'-' * (width + 2)}|{'-' * 10}|------")
    for name, value, note in rows:
        print(f"| {name:<{width}} | {value:>8} | {note}")
    if _JSON.value:
        runs.atomic_write(_JSON.value, json.dumps(result, indent=2))
        print(f"wrote {_JSON.value}")
    if ratio < 5:
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
