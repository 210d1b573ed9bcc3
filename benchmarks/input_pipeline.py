"""Does the MNIST input pipeline keep up with the train step? (target: >= 5x)

    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.input_pipeline \
        --output=benchmarks/results/speed/input_pipeline

Measures, on the real MNIST training split at batch 100 (the trainer's configuration;
`--batch_size`; the data from `--data_dir`, default $TFDS_DATA_DIR):

* pipeline rate: batches/s delivered by exactly the stream the trainer fits on
  (`svae_tf.data.pipelines.training_stream`: cache, seeded shuffle each pass, repeat,
  batch, float conversion, prefetch), over `--pipeline_batches` batches after the
  first one (which waits for the shuffle buffer: reported separately). The measured
  span crosses pass boundaries, where the shuffle buffer is refilled.
* resume skip rate: batches/s of `training_stream(start=N)` skipping N batches, the
  cost of getting back to the data position of a resumed run;
* train rate: steps/s of the sVAE-r MNIST preset's train step (paper networks, 4
  coupling layers, two Adam optimizers), batch 100, on the stream's first batch held in
  memory, timed by `benchmarks.step_timing.time_config` after `--warmup_steps` steps:
  the same function as benchmarks/train_throughput.py, so both benchmarks report one
  rate for one step and differ only by the machine's load (each records it);

and prints a table with both rates and their ratio; exit status 1 if the ratio is
below the target. Both compete for the same CPU cores in a real run; they are
measured one after the other. With --output, writes OUTPUT.json and OUTPUT.md
through `benchmarks.report`.
"""

import sys
import time

from absl import flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

from benchmarks import report  # noqa: E402
from svae_tf.data import pipelines as data  # noqa: E402

TARGET_RATIO = 5.0  # pipeline batches/s over train steps/s

def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs, not on import:
    absl flags are process-global, and the trainers' --batch_size and --data_dir would clash)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)
    flags.DEFINE_integer("batch_size", 100, "Batch size (the MNIST trainer's).", **f)
    flags.DEFINE_integer("pipeline_batches", 1800,
                         "Batches timed for the pipeline rate (600 = one pass at batch 100).", **f)
    flags.DEFINE_integer("skip_batches", 6000, "Batches skipped for the resume skip rate.", **f)
    flags.DEFINE_integer("warmup_steps", 10, "Train steps before timing (tracing, first calls).", **f)
    flags.DEFINE_integer("train_steps", 50, "Train steps timed.", **f)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default $TFDS_DATA_DIR).", **f)


def measure_pipeline(batch_size, batches, data_dir):
    stream = data.training_stream("mnist", batch_size=batch_size, seed=0, data_dir=data_dir)
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
    next(iter(data.training_stream("mnist", batch_size=batch_size, seed=0, start=skip,
                                        data_dir=data_dir)))
    elapsed = time.perf_counter() - start
    return {"batches": skip, "seconds": elapsed, "batches_per_s": skip / elapsed}


def measure_train_step(batch_size, warmup, steps, data_dir):
    from svae_tf.model import presets
    from benchmarks import step_timing

    batch = next(iter(data.training_stream("mnist", batch_size=batch_size, seed=0, data_dir=data_dir)))
    img_per_s, finite = step_timing.time_config(presets.MNIST, "svae_r", batch_size, steps, warmup,
                                                repeats=1, jit_compile=False, images=batch)
    if not finite:
        raise RuntimeError("non-finite losses in the timed train steps")
    return {"warmup_steps": warmup, "steps": steps, "seconds": steps * batch_size / img_per_s,
            "steps_per_s": img_per_s / batch_size, "img_per_s": img_per_s}


def markdown(result):
    pipeline, train, skip = result["pipeline"], result["train_step"], result["resume_skip"]
    ratio, batch_size = result["ratio_pipeline_over_train"], result["batch_size"]
    rows = [
        ("input pipeline (batches/s)", f"{pipeline['batches_per_s']:.1f}",
         f"{pipeline['batches']} batches after the first ({pipeline['first_batch_s']:.1f} s to fill the shuffle buffer)"),
        ("train step (steps/s)", f"{train['steps_per_s']:.2f}",
         f"sVAE-r MNIST preset, {train['steps']} steps after {train['warmup_steps']} warm-up "
         f"({train['img_per_s']:.0f} img/s)"),
        ("ratio pipeline / train", f"{ratio:.1f}x",
         f"target >= {result['target_ratio']:g}x: " + ("met" if result["meets_target"] else "NOT met")),
        ("resume skip (batches/s)", f"{skip['batches_per_s']:.0f}",
         f"first batch after skipping {skip['batches']} took {skip['seconds']:.1f} s, buffer fill included"),
    ]
    lines = [f"# Input pipeline vs train step, MNIST, batch {batch_size}", "",
             f"Data: {result['dataset']}. What each row measures: `benchmarks/input_pipeline.py`.", "",
             "| what | rate | notes |", "|---|---:|---|"]
    lines += [f"| {name} | {value} | {note} |" for name, value, note in rows]
    return "\n".join(lines) + "\n"


def main(args):
    """The benchmark on the flags `args` (`svae_tf.cli.run`, which logs at WARNING: TFDS logs every
    dataset it builds at INFO); the exit status: 1 if the ratio is below the target."""
    started = report.start()
    data_dir = args.data_dir
    batch_size = args.batch_size
    pipeline = measure_pipeline(batch_size, args.pipeline_batches, data_dir)
    skip = measure_skip(batch_size, args.skip_batches, data_dir)
    train = measure_train_step(batch_size, args.warmup_steps, args.train_steps, data_dir)
    ratio = pipeline["batches_per_s"] / train["steps_per_s"]
    result = {
        "benchmark": "input_pipeline",
        "dataset": "mnist (real, TFDS mnist/3.0.1, train split, 60000 images)",
        "batch_size": batch_size,
        "pipeline": pipeline,
        "resume_skip": skip,
        "train_step": train,
        "ratio_pipeline_over_train": ratio,
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }
    text = markdown(result)
    print(text)
    if args.output:
        report.write_report(args.output, result, text, started=started)
        print(f"wrote {report.paths(args.output)}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    cli.run(main, define_flags)
