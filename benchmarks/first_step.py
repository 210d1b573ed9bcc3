"""Time from a command's start to its first work (issue #31 item 3), each command in a fresh process.

    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.first_step \
        --output=benchmarks/results/speed/first_step

What a user waits for before anything happens, for the main job and the programs after it:

* `imports`: `python -c "import tensorflow, keras, tensorflow_probability, tensorflow_datasets"`,
  the floor under every command below;
* `train_cold`, `train`: `python -m trainers.mnist --flagfile=trainers/configs/mnist_svae_r.flags` for
  --train_steps steps, with `--log_every_steps=1`: the first optimizer step ends when the
  trainer's TensorBoard writer records step 1 (the event's own wall time, so nothing is
  added to the trainer for this); `to_first_step_s` is that time minus the launch, and
  `step_s` the median gap between the later steps' events. `train_cold` starts with an
  empty data cache (`svae_tf.data.snapshots`: a user's first run decodes the training
  images and saves them), `train` finds them there (every later run);
* `stream_cold`, `stream` and `trace`, where the train command's first step goes (this program
  with `--child`): `stream` times the first batch of the MNIST training stream
  (`data.training_stream`: the shuffle buffer fills with the whole training set first;
  `stream_cold` decodes and saves it, `stream` loads it), `trace` tracing the flagfile's train step (`tf.function(model.train_step)`), then
  its first call (graph optimisation and the first run), then a second call;
* `evaluate`: `python -m trainers.evaluate` on that run with small settings (--num_samples,
  --iw_samples, --num_nll_images, --num_rmse_images below), start to exit;
* `export_saved_model`, `export_tflite` (float32): start to exit.

Each row is the median of --rounds rounds; the rounds alternate the commands. The
classifier for IS/FID must already be cached (a first `trainers.evaluate` trains it; each
round copies it into a fresh cache directory, $SVAE_TF_CACHE_DIR of every command); the FID
reference statistics are computed in each round, as a new user's first evaluation does.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import report
from svae_tf import cli
from svae_tf.utils import files

FLAGFILE = "trainers/configs/mnist_svae_r.flags"
MARK = "FIRST_STEP_JSON "


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_integer("rounds", 2, "Rounds (each runs every command once); medians are reported.", **f)
    flags.DEFINE_integer("train_steps", 5, "Steps of the train command (the later ones give the step time).", **f)
    flags.DEFINE_integer("num_samples", 1000, "trainers.evaluate --num_samples.", **f)
    flags.DEFINE_integer("iw_samples", 10, "trainers.evaluate --iw_samples.", **f)
    flags.DEFINE_integer("num_images", 100, "trainers.evaluate --num_nll_images and --num_rmse_images.", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)
    flags.DEFINE_enum("child", None, list(CHILDREN), "(internal) time one part, print its JSON.", **f)


def child_stream():
    """{seconds}: the MNIST training stream built and its first batch read, after the imports
    (building it reads, or first decodes and saves, the split's snapshot)."""
    from svae_tf.data import pipelines as data

    start = time.perf_counter()
    next(iter(data.training_stream("mnist", batch_size=100, seed=0)))
    return {"first_batch_s": round(time.perf_counter() - start, 3)}


def child_trace():
    """{seconds}: trace, first call and second call of the flagfile's train step."""
    import numpy as np
    import tensorflow as tf
    from benchmarks.step_work import CONFIGS
    from svae_tf.model import symmetric_vae as model_lib, presets

    preset, variant, kwargs, _ = CONFIGS["flagfile"]
    model = model_lib.SymmetricVAE(presets.get_preset(preset), variant, seed=0, **kwargs)
    model.compile()
    images = tf.constant(np.random.default_rng(0).random((100, 28, 28, 1), dtype=np.float32))
    step, out = tf.function(model.train_step), {}
    start = time.perf_counter()
    step.get_concrete_function(images)
    out["trace_s"] = round(time.perf_counter() - start, 3)
    for name in ("first_call_s", "second_call_s"):
        start = time.perf_counter()
        float(step(images)["g_loss"])
        out[name] = round(time.perf_counter() - start, 3)
    return out


CHILDREN = {"stream": child_stream, "trace": child_trace}


def commands(work, f):
    """{name: argv} of one round in directory `work` (the train run is at WORK/run)."""
    py, run = sys.executable, os.path.join(work, "run")
    return {
        "imports": [py, "-c", "import tensorflow, keras, tensorflow_probability, tensorflow_datasets"],
        "stream_cold": [py, "-m", "benchmarks.first_step", "--child=stream"],
        **{name: [py, "-m", "benchmarks.first_step", f"--child={name}"] for name in CHILDREN},
        **{name: [py, "-m", "trainers.mnist", f"--flagfile={FLAGFILE}", f"--model_dir={os.path.join(work, d)}",
                  "--epochs=1", f"--steps_per_epoch={f.train_steps}", "--log_every_steps=1", "--eval_batches=1",
                  f"--checkpoint_every_steps={f.train_steps}"] for name, d in TRAIN_RUNS.items()},
        "evaluate": [py, "-m", "trainers.evaluate", f"--model_dir={run}", f"--num_samples={f.num_samples}",
                     f"--iw_samples={f.iw_samples}", f"--num_nll_images={f.num_images}",
                     f"--num_rmse_images={f.num_images}", f"--num_reference={f.num_samples}",
                     f"--cache_dir={os.path.join(work, 'cache')}", f"--json={os.path.join(work, 'eval.json')}"],
        "export_saved_model": [py, "-m", "export.saved_model", f"--model_dir={run}",
                               f"--export_dir={os.path.join(work, 'saved_model')}"],
        "export_tflite": [py, "-m", "export.tflite", f"--model_dir={run}", "--quantization=float32",
                          f"--output_dir={os.path.join(work, 'tflite')}"],
    }


TRAIN_RUNS = {"train_cold": "run_cold", "train": "run"}  # train command: its run directory
COLD = "_cold"  # a command run after emptying the data cache


def _is_child(name):
    return name.removesuffix(COLD) in CHILDREN


def step_times(log_dir):
    """Wall times (s since the epoch) of the train writer's events per step, sorted by step."""
    import tensorflow as tf

    first = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.summary.value and event.step >= 1:
                first[event.step] = min(first.get(event.step, event.wall_time), event.wall_time)
    return [first[s] for s in sorted(first)]


def run_round(f):
    """{command: {total_s, and for train to_first_step_s, step_s}} of one round."""
    work = tempfile.mkdtemp(prefix="first_step_")
    out = {}
    try:
        # The classifier is copied from the user's cache (trained once per machine); the FID
        # reference statistics and the decoded datasets start afresh.
        cache = os.path.join(work, "cache")
        shared_classifier = os.path.join(files.cache_dir(), "mnist_classifier.keras")
        os.makedirs(cache)
        for suffix in ("", ".json"):
            if os.path.exists(shared_classifier + suffix):
                shutil.copy(shared_classifier + suffix, cache)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **{files.CACHE_DIR_ENV: cache})
        for name, argv in commands(work, f).items():
            if name.endswith(COLD):
                from svae_tf.data import snapshots

                shutil.rmtree(os.path.join(cache, snapshots.SUBDIR), ignore_errors=True)
            launched = time.time()
            proc = subprocess.run(argv, cwd=report.REPO, capture_output=True, text=True, env=env)
            ended = time.time()
            if proc.returncode:
                raise RuntimeError(f"{name}: {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            out[name] = {"total_s": round(ended - launched, 2)}
            if _is_child(name):
                out[name].update(json.loads(proc.stdout.strip().splitlines()[-1].removeprefix(MARK)))
            if name in TRAIN_RUNS:
                times = step_times(os.path.join(work, TRAIN_RUNS[name], "logs", "train"))
                out[name]["to_first_step_s"] = round(times[0] - launched, 2)
                gaps = [b - a for a, b in zip(times, times[1:])]
                out[name]["step_s"] = round(statistics.median(gaps), 3) if gaps else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def summarise(rounds):
    """{command: {key: median over rounds}} and the rounds themselves."""
    out = {}
    for name in rounds[0]:
        keys = rounds[0][name]
        out[name] = {k: (None if any(r[name][k] is None for r in rounds)
                         else round(statistics.median(r[name][k] for r in rounds), 3)) for k in keys}
    return out


def markdown(result):
    s = result["commands"]
    lines = ["# Time to first step: the main job and the programs after it", "",
             f"Each command in a fresh process, {result['rounds']} alternating rounds, medians "
             "(`benchmarks/first_step.py`). `train` is the MNIST flagfile "
             f"(`{FLAGFILE}`) for {result['train_steps']} steps; its first step ends when the trainer's "
             "TensorBoard writer records step 1. `evaluate` runs with "
             f"--num_samples={result['num_samples']}, --iw_samples={result['iw_samples']} and "
             f"{result['num_images']} test images, computing the FID reference statistics. "
             "`_cold`: run with an empty data cache (`svae_tf/data/snapshots.py`), as a user's first "
             "run; the others read the decoded images from it.", "",
             "| command | start to first step (s) | start to exit (s) | one step after (s) |",
             "|---|---:|---:|---:|"]
    for name, row in s.items():
        if not _is_child(name):
            lines.append(f"| {name} | {row.get('to_first_step_s', '-')} | {row['total_s']} | "
                         f"{row.get('step_s') or '-'} |")
    lines += ["", "Where the train command's first step goes, each part in its own process after the imports:", "",
              "| part | seconds |", "|---|---:|"]
    for name in s:
        if not _is_child(name):
            continue
        for key, value in s[name].items():
            if key != "total_s":
                lines.append(f"| {name}: {key.removesuffix('_s').replace('_', ' ')} | {value} |")
    return "\n".join(lines) + "\n"


def main(f):
    """The benchmark on the flags `f` (`svae_tf.cli.run`)."""
    if f.child:
        print(MARK + json.dumps(CHILDREN[f.child]()), flush=True)
        return
    started = report.start()
    rounds = []
    for i in range(f.rounds):
        rounds.append(run_round(f))
        print(f"round {i + 1}: {json.dumps(rounds[-1])}", flush=True)
    result = {"rounds": f.rounds, "train_steps": f.train_steps, "num_samples": f.num_samples,
              "iw_samples": f.iw_samples, "num_images": f.num_images,
              "commands": summarise(rounds), "by_round": rounds}
    report.publish(f.output, result, markdown(result), started=started)


if __name__ == "__main__":
    cli.run(main, define_flags)
