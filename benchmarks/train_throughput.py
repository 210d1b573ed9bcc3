"""Train-step throughput of a preset/variant, with and without XLA.

    python -m benchmarks.train_throughput --presets=mnist,mnist_a1 --variant=svae_r --batch=100 \
        --steps=30 --output=benchmarks/results/speed/train_throughput_mnist_svae_r

Times `steps` train steps after `warmup` steps (tracing/compilation excluded), as the
median of `repeats` timed runs, through the same compiled `train_function` that
`model.fit` uses, on one in-memory batch (the input pipeline is measured separately by
benchmarks/input_pipeline.py). The losses are read back once per timed run, not after
every step, so the host does not wait for each step; callbacks and progress bars are
not involved. benchmarks/input_pipeline.py times its train step with this same
function (`benchmarks.step_timing.time_config`), so the two report one rate for one step, up to the machine's
load, which both record.

Prints a table; with --output writes OUTPUT.json (`img_per_s` of the first preset's best
configuration, `by_preset.<name>.img_per_s` and `ratio_to_last`, `batch`, `variant`, ...) and OUTPUT.md
through `benchmarks.report` (with the commit, command, machine and load).
"""

import sys

from absl import app, flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

from svae_tf.model import symmetric_vae as model_lib  # noqa: E402
from svae_tf.model import presets  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks.step_timing import time_config  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs; absl flags are
    process-global)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.DEFINE_list("presets", ["mnist", "mnist_a1"], "Presets timed in this one run; `img_per_s` is the "
                      "first's, `ratio_to_last` is against the last.", **f)
    flags.DEFINE_enum("variant", "svae_r", model_lib.VARIANTS, "Model variant.", **f)
    flags.DEFINE_float("lam_z", None, "SymmetricVAE's lam_z (svae_r, svae_r_elbo; default: lam, eq. 29).", **f)
    flags.DEFINE_integer("batch", 100, "Global batch size.", **f)
    flags.DEFINE_integer("steps", 30, "Timed train steps per repeat.", **f)
    flags.DEFINE_integer("warmup", 5, "Untimed steps before timing (tracing, XLA compile).", **f)
    flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.", **f)
    flags.DEFINE_list("configs", ["graph", "xla"], "Configurations: " + ", ".join(
        f"{k} ({v[0]})" for k, v in CONFIGS.items()) + ".", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)


def markdown(result):
    f = result
    names = ", ".join(f"`presets.{p.upper()}`" for p in f["presets"])
    lam_z = "" if f.get("lam_z") is None else f", lam_z={f['lam_z']}"
    lines = [
        f"# Train-step throughput: {f['variant']}{lam_z}, batch {f['batch']}, presets {', '.join(f['presets'])}",
        "",
        f"The compiled train function `model.fit` uses ({f['variant']}; {names}), "
        f"{f['steps']} steps after {f['warmup']} warm-up steps, median of {f['repeats']} repeats, "
        "one in-memory batch, losses read back once per repeat, all presets in one process "
        "(`benchmarks/train_throughput.py`).",
        "",
        "| preset | config | img/s | vs " + f["presets"][-1] + " (best configs) |",
        "|---|---|---:|---:|",
    ]
    for name, r in f["by_preset"].items():
        for config, rate in r["img_per_s_by_config"].items():
            best = config == r["best_config"]
            ratio = f"{r['ratio_to_last']:.3f}" if best else ""
            lines.append(f"| {name} | {CONFIGS[config][0]}{' (best)' if best else ''} | {rate} | {ratio} |")
    return "\n".join(lines) + "\n"


# Each configuration's (name in the table, jit_compile, more SymmetricVAE arguments).
CONFIGS = {"graph": ("graph (tf.function)", False, {}),
           "xla": ("xla (jit_compile=True)", True, {}),
           "graph_shared": ("graph, shared_samples=True", False, {"shared_samples": True})}


def time_preset(name, f):
    """{img_per_s, best_config, img_per_s_by_config} of one preset."""
    preset = presets.get_preset(name)
    by_config = {}
    for config in f.configs:
        _, jit_compile, kwargs = CONFIGS[config]
        rate, finite = time_config(
            preset, f.variant, f.batch, f.steps, f.warmup, f.repeats, jit_compile,
            **kwargs, **({} if f.lam_z is None else {"lam_z": f.lam_z}))
        if not finite:
            raise RuntimeError(f"non-finite losses: preset {name}, configuration {config}")
        by_config[config] = round(rate, 1)
    best = max(by_config, key=by_config.get)
    return {"img_per_s": by_config[best], "best_config": best, "img_per_s_by_config": by_config}


def main(f):
    """The benchmark on the flags `f` (`svae_tf.cli.run`)."""
    started = report.start()
    for config in f.configs:
        if config not in CONFIGS:
            raise app.UsageError(f"--configs: unknown configuration {config!r} ({', '.join(CONFIGS)}).")
    for name in f.presets:
        presets.get_preset(name)  # a bad name fails before any timing
    by_preset = {name: time_preset(name, f) for name in f.presets}
    last = by_preset[f.presets[-1]]["img_per_s"]
    for r in by_preset.values():
        r["ratio_to_last"] = round(r["img_per_s"] / last, 4)
    first = by_preset[f.presets[0]]
    result = {
        "presets": list(f.presets),
        "variant": f.variant,
        "lam_z": f.lam_z,
        "batch": f.batch,
        "steps": f.steps,
        "warmup": f.warmup,
        "repeats": f.repeats,
        "img_per_s": first["img_per_s"],
        "best_config": first["best_config"],
        "img_per_s_by_config": first["img_per_s_by_config"],
        "by_preset": by_preset,
    }
    report.publish(f.output, result, markdown(result), started=started)


if __name__ == "__main__":
    cli.run(main, define_flags)
