"""Fingerprints of the weights after N seeded train steps, to show a refactor changes nothing.

    python -m benchmarks.step_fingerprint --output=benchmarks/results/speed/step_fingerprint
    python -m benchmarks.step_fingerprint --compare=benchmarks/results/speed/step_fingerprint.json

For every case (each variant on the default MNIST preset at batch 100, and the tiny
preset with the R1 penalty and two discriminator updates per step), builds the model
with fixed initializer and noise seeds, runs `steps` steps of the compiled train function
`model.fit` uses on fixed uniform images (`benchmarks.step_timing`), and takes the SHA-256
of every weight of the model and of both optimizers, in order. Equal digests mean bit-identical training.
With --compare it also states, per case, whether the digest equals the one in that
earlier report (exit code 1 if any differs), and the report records which commit that
was.

The digests depend on the CPU's kernels (oneDNN picks code paths by instruction set), so a
reference holds only on the machine that made it: the committed reports were made on other
CPUs and will differ elsewhere even for identical code. To check a refactor, make the
reference from the old commit on the same machine first:

    git worktree add ../ref OLD_COMMIT && (cd ../ref && python -m benchmarks.step_fingerprint --output=/tmp/ref)
    python -m benchmarks.step_fingerprint --compare=/tmp/ref.json
"""

import hashlib
import json
import sys

from absl import app, flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import report, step_timing  # noqa: E402
from svae_tf.model import symmetric_vae as model_lib  # noqa: E402
from svae_tf.model import presets  # noqa: E402

VARIANTS = ("vae", "svae", "svae_r", "ali", "gan", "wgan_gp")


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.DEFINE_integer("steps", 20, "Train steps before the weights are hashed.", **f)
    flags.DEFINE_list("cases", None, "Cases to run (default: all).", **f)
    flags.DEFINE_string("compare", None, "An earlier report of this benchmark (JSON) to compare with.", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)


def cases():
    """{name: (preset, batch, variant, model kwargs)}."""
    out = {f"mnist/{v}": (presets.get_preset("mnist"), 100, v, {}) for v in VARIANTS}
    tiny = presets.tiny(image_shape=(8, 8, 1))
    for v in ("svae", "svae_r", "ali", "gan"):
        out[f"tiny_r1_ndisc2/{v}"] = (tiny, 8, v, dict(r1_weight=1.0, n_disc=2))
    # The MNIST sVAE-r recipe of trainers/configs/mnist_svae_r.flags before issue #28 (lam_z=0) and
    # the EMA path.
    out["mnist/svae_r_lx_recipe"] = (presets.get_preset("mnist"), 100, "svae_r_lx",
                                     dict(lam_z=0.0, shared_samples=True))
    out["tiny/svae_r_elbo_ema"] = (tiny, 8, "svae_r_elbo", dict(ema_decay=0.99))
    return out


def fingerprint(preset, batch, variant, kwargs, steps):
    """(sha256 hex of all weights after `steps` steps, the last logs)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    model = model_lib.SymmetricVAE(preset, variant, seed=0, **kwargs)
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    iterator = step_timing.repeated_batch(preset, batch)
    logs = step_timing.run_steps(step_timing.train_function(model), iterator, steps)
    digest = hashlib.sha256()
    optimizers = [o for o in (model.g_optimizer, model.d_optimizer) if o is not None]
    for v in list(model.weights) + [v for o in optimizers for v in o.variables]:
        digest.update(np.ascontiguousarray(v.numpy()).tobytes())
    return digest.hexdigest(), logs


def markdown(result):
    lines = [f"# Weights after {result['steps']} seeded train steps (`benchmarks/step_fingerprint.py`)", ""]
    compared = result.get("compared_with")
    if compared:
        lines += [f"Compared with `{compared['file']}` (commit {compared['commit']}): "
                  f"{'all equal' if compared['all_equal'] else 'DIFFERENT'}.", ""]
    lines += ["| case | sha256 (first 16) | equal to the compared report |", "|---|---|---|"]
    for name, r in result["cases"].items():
        equal = "" if "equal" not in r else ("yes" if r["equal"] else "**no**")
        lines.append(f"| {name} | `{r['sha256'][:16]}` | {equal} |")
    return "\n".join(lines) + "\n"


def main(f):
    """The benchmark on the flags `f` (`svae_tf.cli.run`); the exit status: 1 if --compare found a
    digest that differs."""
    started = report.start()
    result = {"steps": f.steps, "cases": {}}
    chosen = cases()
    unknown = set(f.cases or ()) - set(chosen)
    if unknown:
        raise app.UsageError(f"--cases: unknown {sorted(unknown)}; choose from {sorted(chosen)}")
    for name, (preset, batch, variant, kwargs) in chosen.items():
        if f.cases and name not in f.cases:
            continue
        digest, logs = fingerprint(preset, batch, variant, kwargs, f.steps)
        result["cases"][name] = {"sha256": digest, "batch": batch, "kwargs": kwargs, "logs": logs}
        print(name, digest[:16], flush=True)
    if f.compare:
        with open(f.compare) as fh:
            old = json.load(fh)
        if old["steps"] != f.steps:
            raise app.UsageError(f"--compare: {f.compare} has {old['steps']} steps, --steps={f.steps}")
        for name, r in result["cases"].items():
            r["equal"] = old["cases"].get(name, {}).get("sha256") == r["sha256"]
        result["compared_with"] = {"file": f.compare, "commit": old["provenance"]["commit"],
                                   "all_equal": all(r["equal"] for r in result["cases"].values())}
    text = markdown(result)
    print(text)
    if f.output:
        report.write_report(f.output, result, text, started=started)
    if f.compare and not result["compared_with"]["all_equal"]:
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
