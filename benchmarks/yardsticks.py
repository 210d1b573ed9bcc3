"""svae-tf's train step against the plain yardsticks, timed side by side in one run (issue #31).

    python -m benchmarks.yardsticks --torch_python=/path/to/torchvenv/bin/python \
        --output=benchmarks/results/speed/yardsticks

`../shared/yardsticks/` holds the same Appendix A.1 sVAE-r step written plainly in PyTorch
(eager) and in Keras 3 (`tf.function`). This program runs them and svae-tf's configurations
(`--configs`, from `benchmarks.step_work.CONFIGS` plus a precision) in fresh processes,
alternating: round 1 runs every implementation once, then round 2, ... so a drift in the
machine's speed touches all of them alike. Each process times `--steps` steps at batch 100
after 5 warm-up steps on one in-memory batch (what the yardsticks do; svae-tf through
`benchmarks.step_timing.time_config`, the compiled function `model.fit` runs). The report
gives each implementation's median img/s over the rounds and its ratio to the PyTorch and
the plain Keras yardstick. PyTorch is not a dependency of svae-tf: `--torch_python` is a
Python with torch installed (`bash ../shared/yardsticks/setup_torch_venv.sh DIR`).

`--checkout=DIR` adds an older checkout's A.1 sVAE-r step (a git worktree, e.g. of f61799b,
whose `benchmarks/train_throughput.py` takes `--preset --variant --configs --json`; its
`mnist` preset is Appendix A.1), timed in the same rounds: the regression against it.

A configuration name may end in `@mixed_bfloat16` (Keras dtype policy, what
`--mixed_precision=mixed_bfloat16` trains with) and in `+VAR=VALUE` environment settings of
its process, e.g. `a1_svae_r+TF_NUM_INTEROP_THREADS=1`. Timings are only comparable within one
run; the report records the load.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

from benchmarks import report
from svae_tf import cli

YARDSTICKS = os.path.join(os.path.dirname(report.REPO), "shared", "yardsticks")
MARK = "YARDSTICK_JSON "
PRECISIONS = ("float32", "mixed_bfloat16")
DEFAULT_CONFIGS = ("a1_svae_r", "a1_svae_r_shared", "flagfile", "a1_svae_r@mixed_bfloat16",
                   "flagfile@mixed_bfloat16")


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("torch_python", None, "A Python with torch (the PyTorch yardstick); "
                        "without it that yardstick is not run and no ratio to it is given.", **f)
    flags.DEFINE_list("configs", list(DEFAULT_CONFIGS), "svae-tf configurations: a name of "
                      "benchmarks.step_work.CONFIGS, optionally @PRECISION (" + ", ".join(PRECISIONS) + ").", **f)
    flags.DEFINE_integer("steps", 30, "Timed steps per process.", **f)
    flags.DEFINE_integer("rounds", 3, "Rounds; each runs every implementation once. Median reported.", **f)
    flags.DEFINE_integer("batch", 100, "Batch size.", **f)
    flags.DEFINE_multi_string("checkout", [], "A worktree of an older commit (f61799b's train_throughput "
                              "interface) whose A.1 sVAE-r step is timed in the same rounds.", **f)
    flags.DEFINE_string("yardsticks_dir", YARDSTICKS, "Where torch_svae_mnist.py and tf_svae_mnist.py are.", **f)
    flags.DEFINE_string("child", None, "(internal) time one svae-tf configuration, print its rate.", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)


def parse_config(name):
    """(step_work config name, precision, {env var: value}) of `name`
    (CONFIG[@PRECISION][+VAR=VALUE...]); ValueError naming --configs if unknown."""
    from benchmarks.step_work import CONFIGS  # TensorFlow-free
    name, *assignments = name.split("+")
    env = {}
    for a in assignments:
        var, eq, value = a.partition("=")
        if not eq or not var.isupper():
            raise ValueError(f"--configs: {a!r} in {name!r} is not VAR=VALUE (an environment variable).")
        env[var] = value
    config, _, precision = name.partition("@")
    precision = precision or "float32"
    if config not in CONFIGS or CONFIGS[config][2].get("_sketch"):
        raise ValueError(f"--configs: {config!r} is not a library configuration of "
                         f"benchmarks.step_work.CONFIGS ({', '.join(CONFIGS)}).")
    if precision not in PRECISIONS:
        raise ValueError(f"--configs: precision {precision!r} of {name!r} is not one of {PRECISIONS}.")
    return config, precision, env


def time_child(name, steps, batch):
    """img/s of svae-tf configuration `name` in this process (5 warm-up steps, one timed run)."""
    import keras
    from benchmarks.step_timing import time_config
    from benchmarks.step_work import CONFIGS
    from svae_tf.model import presets

    config, precision, _ = parse_config(name)
    preset, variant, kwargs, _ = CONFIGS[config]
    if precision != "float32":
        keras.mixed_precision.set_dtype_policy(precision)
    rate, finite = time_config(presets.get_preset(preset), variant, batch, steps, 5, 1, False, **kwargs)
    if not finite:
        raise RuntimeError(f"non-finite losses: {name}")
    return rate


def commands(f):
    """{implementation: argv or (argv, directory to run it in)}, the yardsticks first."""
    out = {}
    if f.torch_python:
        out["pytorch_eager"] = [f.torch_python, os.path.join(f.yardsticks_dir, "torch_svae_mnist.py"),
                                "--batch", str(f.batch), "--steps", str(f.steps)]
    out["keras_plain"] = [sys.executable, os.path.join(f.yardsticks_dir, "tf_svae_mnist.py"), "--xla", "0",
                          "--batch", str(f.batch), "--steps", str(f.steps)]
    for directory in f.checkout:
        out[f"svae_tf@{checkout_commit(directory)[:7]}:a1_svae_r"] = (
            checkout_command(f.steps, f.batch), directory)
    for name in f.configs:
        out[f"svae_tf:{name}"] = ([sys.executable, "-m", "benchmarks.yardsticks", f"--child={name}",
                                   f"--steps={f.steps}", f"--batch={f.batch}"], report.REPO, parse_config(name)[2])
    return out


def checkout_command(steps, batch):
    """argv timing `directory`'s A.1 sVAE-r step (f61799b's interface); its JSON at the last
    argument's `--json=` path."""
    out = os.path.join(tempfile.mkdtemp(prefix="yardstick_"), "rate.json")
    return [sys.executable, "-m", "benchmarks.train_throughput", "--preset=mnist", "--variant=svae_r",
            "--configs=graph", "--repeats=1", "--warmup=5", f"--steps={steps}", f"--batch={batch}",
            f"--json={out}"]


def checkout_commit(directory):
    return subprocess.run(["git", "-C", directory, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def run_once(argv, cwd=report.REPO, env=None):
    """The JSON line one process prints (the yardsticks' line or this program's MARK line):
    `img_per_s`, and the yardsticks' versions and threads."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=cwd, **(env or {}))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    if argv[-1].startswith("--json="):
        with open(argv[-1].removeprefix("--json=")) as f:
            return json.load(f)
    for line in reversed(proc.stdout.splitlines()):
        line = line.removeprefix(MARK)
        if line.startswith("{") and "img_per_s" in line:
            return json.loads(line)
    raise RuntimeError(f"{' '.join(argv)} printed no img_per_s:\n{proc.stdout[-2000:]}")


def key(name):
    """The JSON key of implementation `name` (letters, digits, _ and -, so that a document can
    cite it as a dot path): "svae_tf:a1_svae_r@mixed_bfloat16" -> "svae_tf_a1_svae_r_mixed_bfloat16"."""
    return re.sub(r"[^\w\-]+", "_", name)


def summarise(rates):
    """{key(implementation): {name, img_per_s (median), rounds, vs_pytorch_eager, vs_keras_plain}}."""
    out = {key(name): {"name": name, "img_per_s": round(statistics.median(r), 1),
                       "rounds": [round(x, 1) for x in r]} for name, r in rates.items()}
    for name, row in out.items():
        for base in ("pytorch_eager", "keras_plain"):
            if base in out:
                row[f"vs_{base}"] = round(row["img_per_s"] / out[base]["img_per_s"], 3)
    return out


def markdown(result):
    from benchmarks.step_work import CONFIGS
    lines = [f"# svae-tf's train step against the plain yardsticks, batch {result['batch']}", "",
             f"Each implementation in a fresh process, {result['steps']} timed steps after 5 warm-up "
             f"steps on one in-memory batch, {result['rounds']} alternating rounds, median img/s "
             "(`benchmarks/yardsticks.py`; yardsticks: `../shared/yardsticks/`). Comparable only "
             "within this run.", "",
             "| implementation | img/s (median) | per round | vs PyTorch eager | vs plain Keras |",
             "|---|---:|---|---:|---:|"]
    for row in result["implementations"].values():
        lines.append(f"| {row['name']} | {row['img_per_s']} | {', '.join(map(str, row['rounds']))} | "
                     f"{row.get('vs_pytorch_eager', '-')} | {row.get('vs_keras_plain', '-')} |")
    lines += ["", "svae-tf configurations (`benchmarks.step_work.CONFIGS`):", ""]
    for name in result["configs"]:
        config, precision, env = parse_config(name)
        env = "".join(f", {k}={v}" for k, v in env.items())
        lines.append(f"- `{name}`: {CONFIGS[config][3]}; precision {precision}{env}")
    return "\n".join(lines) + "\n"


def main(f):
    """The benchmark on the flags `f` (`svae_tf.cli.run`; with --child, one configuration's rate)."""
    if f.child:
        print(MARK + json.dumps({"img_per_s": time_child(f.child, f.steps, f.batch)}), flush=True)
        return
    started = report.start()
    for name in f.configs:
        try:
            parse_config(name)
        except ValueError as e:
            raise app.UsageError(str(e))
    argvs = commands(f)
    rates, printed = {name: [] for name in argvs}, {}
    for i in range(f.rounds):
        for name, cmd in argvs.items():
            printed[name] = run_once(*cmd) if isinstance(cmd, tuple) else run_once(cmd)
            rates[name].append(float(printed[name]["img_per_s"]))
            print(f"round {i + 1}: {name} {rates[name][-1]:.1f} img/s", flush=True)
    result = {"batch": f.batch, "steps": f.steps, "rounds": f.rounds, "configs": list(f.configs),
              "torch_python": f.torch_python,
              "checkouts": {d: checkout_commit(d) for d in f.checkout}, "implementations": summarise(rates),
              "yardstick_lines": {k: v for k, v in printed.items() if not k.startswith("svae_tf")}}
    report.publish(f.output, result, markdown(result), started=started, extra_versions=())


if __name__ == "__main__":
    cli.run(main, define_flags)
