"""The work of one train step, counted from its traced graph: FLOPs, ops and network calls.

    python -m benchmarks.step_work --at=/work/ref-f61799b \
        --output=benchmarks/results/speed/step_work

A wall-clock timing on a shared machine measures the load as much as the step; what the
step *does* does not depend on the load. For each configuration (a preset, a variant and
SymmetricVAE arguments, batch `--batch`), this builds the model as
`benchmarks.step_timing.time_config` does, traces the compiled train function `model.fit`
runs (`step_timing.train_function`), and counts, over the traced graph and the functions
it calls:

* FLOPs of one step: `flops_matmul_conv`, 2 x multiply-adds of every MatMul, BatchMatMul,
  Conv2D and Conv2D backprop op from its shapes (forward and backward), split by the
  network whose name scope holds the op (`flops_by_network`); and `flops_profiler`, what
  `tf.compat.v1.profiler` counts over all ops with registered FLOP statistics;
* ops by type (`ops_by_type`, `ops_total`), and host ops (py_func, Send/Recv, prints):
  a host round trip inside the step would show there;
* the calls of each network while tracing, with their batch sizes and training flag
  (`network_calls`): encoder, decoder, discriminator, and the flow's conditioner MLPs;
* retracing: the train function is called `--calls` times and its tf.functions' tracing
  counts are read (1 each: no retracing).

With `--at=DIR`, the same counts are made in DIR, another checkout (e.g. a `git worktree`
of an older commit), in a subprocess whose working directory is DIR, so its `svae_tf` is
the one traced; configurations its model cannot build are listed as skipped. Older
checkouts without the `mnist_a1` preset take `mnist` for it when their `mnist` was
Appendix A.1 (the networks' parameter counts are recorded to check that they match).

One configuration is not a library setting: `a1_svae_r_disc_decodes_z_p`, the A.1 step with
a discriminator update that decodes z_p alone (a subclass defined here), counted to give the
saving of that change; it changes what the step computes (batch norm's statistics of the
decoder batch), so it is only counted, never trained here.

OUTPUT.json holds `gflop_per_step.<config>.<checkout>` (checkout `current` or an --at
commit), every count under `checkouts.<checkout>.counts.<config>`, and `comparisons.<config>_vs_
<other config>_at_<checkout>` (FLOP ratio and difference by network, rows through each network,
op types whose count changed). No timing is made: the numbers are the same on an idle or a
loaded machine.
"""

import contextlib
import json
import os
import subprocess
import sys

from absl import flags

# Each configuration: (preset, variant, SymmetricVAE arguments, what it is).
CONFIGS = {
    "a1_svae_r": ("mnist_a1", "svae_r", {}, "Appendix A.1 sVAE-r, eq. (29) (issue #31's A.1 step)"),
    "a1_svae_r_shared": ("mnist_a1", "svae_r", {"shared_samples": True},
                         "A.1 sVAE-r with shared_samples"),
    "mnist_svae_r": ("mnist", "svae_r", {}, "default MNIST preset, sVAE-r"),
    "flagfile": ("mnist", "svae_r_lx", {"latent_x": "draw", "shared_samples": True},
                 "trainers/configs/mnist_svae_r.flags: svae_r_lx, latent_x=draw, shared_samples"),
    # Not a library setting: what the A.1 step would cost if the discriminator update decoded
    # z_p alone (`_DiscriminatorDecodesZp`). It changes the numbers (batch norm's statistics
    # of the decoder batch), so it is counted here and not trained.
    "a1_svae_r_disc_decodes_z_p": ("mnist_a1", "svae_r", {"_sketch": "disc_decodes_z_p"},
                                   "sketch, not a library setting: a1_svae_r with the "
                                   "discriminator update decoding z_p alone (B rows, not [z_p; z_q])"),
}
DEFAULT_CONFIGS = ("a1_svae_r", "a1_svae_r_shared", "mnist_svae_r", "flagfile", "a1_svae_r_disc_decodes_z_p")
# Comparisons made within one checkout, and against an older one besides each config with itself.
WITHIN = [("a1_svae_r_shared", "a1_svae_r"), ("a1_svae_r_disc_decodes_z_p", "a1_svae_r")]
AGAINST_OLDER = [("a1_svae_r_disc_decodes_z_p", "a1_svae_r")]
MATMUL_CONV = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D",
               "Conv2DBackpropInput", "Conv2DBackpropFilter")
HOST_OPS = ("PyFunc", "EagerPyFunc", "PyFuncStateless", "_Send", "_Recv", "_HostSend", "_HostRecv",
            "Send", "Recv", "PrintV2", "Print")
NETWORKS = ("encoder", "decoder", "discriminator", "flow")
FLOW_SCOPES = ("real_nvp", "masked_autoregressive", "inverse_autoregressive", "chain_of_")
MARK = "STEP_WORK_JSON "


def _matmul_conv_flops(op):
    """2 x multiply-adds of a MatMul / BatchMatMul / Conv2D(-backprop) op, from its shapes."""
    def dims(t):
        return t.shape.as_list()

    if op.type == "MatMul":
        a = dims(op.inputs[0])
        k = a[0] if op.get_attr("transpose_a") else a[1]
        m, n = dims(op.outputs[0])
        return 2 * m * n * k
    if op.type.startswith("BatchMatMul"):
        a = dims(op.inputs[0])
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        out = dims(op.outputs[0])
        total = 2 * k
        for d in out:
            total *= d
        return total
    if op.type == "Conv2D":  # out [B, H, W, Co], filter [kh, kw, Ci, Co]
        kh, kw, ci, _ = dims(op.inputs[1])
        b, h, w, co = dims(op.outputs[0])
        return 2 * b * h * w * co * kh * kw * ci
    if op.type == "Conv2DBackpropInput":  # input_sizes, filter, out_backprop -> [B, H, W, Ci]
        kh, kw, ci, co = dims(op.inputs[1])
        b, h, w, _ = dims(op.inputs[2])
        return 2 * b * h * w * co * kh * kw * ci
    if op.type == "Conv2DBackpropFilter":  # input, filter_sizes, out_backprop -> filter
        b, h, w, co = dims(op.inputs[2])
        kh, kw, ci, _ = op.outputs[0].shape.as_list()
        return 2 * b * h * w * co * kh * kw * ci
    return 0


def _network_of(op_name, names):
    """The network whose name scope holds op `op_name` (forward or gradient), or "other"."""
    parts = op_name.split("/")
    for part in parts:
        base = part.rsplit("_", 1)[0] if part.rsplit("_", 1)[-1].isdigit() else part
        if base in names:
            return names[base]
        if any(scope in part for scope in FLOW_SCOPES):  # TFP bijector scopes of the flow
            return "flow"
    return "other"


def _graphs(graph):
    """`graph` and every function graph it calls (its library, recursively), each once."""
    seen, out, todo = set(), [], [graph]
    while todo:
        g = todo.pop()
        if id(g) in seen:
            continue
        seen.add(id(g))
        out.append(g)
        for f in getattr(g, "_functions", {}).values():
            inner = getattr(f, "graph", None) or getattr(f, "cached_graph", None)
            if inner is not None:
                todo.append(inner)
    return out


def _profiler_flops(graph):
    import tensorflow as tf

    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


@contextlib.contextmanager
def _spy(model):
    """Records (network, batch size, training) of every call of the model's networks."""
    from keras.src.layers.layer import Layer

    tracked = {}
    for name in ("encoder", "decoder", "discriminator"):
        net = getattr(model, name, None)
        if net is not None:
            tracked[id(net)] = name
    flow = getattr(model, "flow", None)
    if flow is not None:
        for layer in flow._flatten_layers(include_self=False, recursive=False):
            tracked[id(layer)] = "flow"
    calls = []
    original = Layer.__call__

    def spy(self, *args, **kwargs):
        name = tracked.get(id(self))
        if name is not None:
            first = args[0] if args else next(iter(kwargs.values()))
            while isinstance(first, (list, tuple)):
                first = first[0]
            calls.append((name, first.shape[0], kwargs.get("training")))
        return original(self, *args, **kwargs)

    Layer.__call__ = spy
    try:
        yield calls
    finally:
        Layer.__call__ = original


def _tf_functions(fn):
    """The tf.functions reachable from the train function's closures (outer first)."""
    found, todo, seen = [], [fn], set()
    while todo:
        f = todo.pop(0)
        if id(f) in seen:
            continue
        seen.add(id(f))
        if type(f).__name__ == "Function" and hasattr(f, "experimental_get_tracing_count"):
            found.append(f)
            f = f.python_function
        for cell in getattr(f, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if callable(value) and (type(value).__name__ == "Function" or hasattr(value, "__closure__")):
                todo.append(value)
        if hasattr(f, "__wrapped__"):
            todo.append(f.__wrapped__)
    return found


def _sketch_class(model_lib, sketch):
    """A SymmetricVAE subclass for a step the library does not offer (counting only)."""
    assert sketch == "disc_decodes_z_p", sketch
    import tensorflow as tf
    from svae_tf.model import distributions

    class _DiscriminatorDecodesZp(model_lib.SymmetricVAE):
        """The discriminator update's samples as `_joints` draws them (same noise order),
        but the decoder (training mode) runs on z_p alone: x_p is all the update reads."""

        def discriminator_step(self, images, samples=None):
            if samples is None:
                z_p = self.streams.normal(tf.shape(images)[0], (self.preset.z_dim,))
                q, z_q = self._encode(images, training=True)
                params_p, _ = self.decode_joints(z_p, None, training=True)
                x_p = distributions.likelihood_mean(self.preset.likelihood, params_p)
                samples = model_lib.JointSamples(z_q=z_q, q=q, x_p=x_p, z_p=z_p, params_q=None,
                                                 params_p=params_p)
            return super().discriminator_step(images, samples)

    return _DiscriminatorDecodesZp


class Unsupported(Exception):
    """The checkout cannot build a configuration."""


def _resolve_preset(name):
    from svae_tf.model import presets

    if name == "tiny":  # tests
        return presets.tiny(image_shape=(8, 8, 1)), name
    if name == "mnist" and not getattr(presets.get_preset("mnist"), "decoder_dense_batch_norm", False):
        raise ValueError("this checkout's mnist preset is Appendix A.1 (counted as mnist_a1)")
    if name in presets.PRESETS:
        return presets.get_preset(name), name
    if name == "mnist_a1" and "mnist" in presets.PRESETS:
        return presets.get_preset("mnist"), "mnist"  # before mnist_a1 existed, mnist was A.1
    raise ValueError(f"no preset {name!r}")


def count_config(preset_name, variant, kwargs, batch, calls=3):
    """The counts of one configuration (see the module docstring)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from svae_tf.model import symmetric_vae as model_lib

    keras.backend.clear_session()
    kwargs = dict(kwargs)
    sketch = kwargs.pop("_sketch", None)
    try:
        preset, used = _resolve_preset(preset_name)
        model_class = model_lib.SymmetricVAE
        if sketch:
            if not hasattr(model_lib.SymmetricVAE, "decode_joints"):
                raise ValueError(f"sketch {sketch!r} needs SymmetricVAE.decode_joints")
            model_class = _sketch_class(model_lib, sketch)
        model = model_class(preset, variant=variant, seed=0, **kwargs)
    except (TypeError, ValueError) as e:  # a preset, variant or argument this checkout lacks
        raise Unsupported(f"{type(e).__name__}: {e}") from e
    model.compile(jit_compile=False)
    images = np.random.default_rng(0).random((batch, *preset.image_shape), dtype=np.float32)
    iterator = iter(tf.data.Dataset.from_tensors(images).repeat())
    model.make_train_function()  # = benchmarks.step_timing.train_function
    train_function = model.train_function
    functions = _tf_functions(train_function)
    outer = functions[0]
    with _spy(model) as network_calls:
        concrete = outer.get_concrete_function(iterator)
    graphs = _graphs(concrete.graph)
    names = {n: n for n in NETWORKS}
    for n in ("encoder", "decoder", "discriminator"):
        net = getattr(model, n, None)
        if net is not None:
            names[net.name] = n
    ops_by_type, flops_by_network, flops_by_type = {}, {}, {}
    for g in graphs:
        for op in g.get_operations():
            ops_by_type[op.type] = ops_by_type.get(op.type, 0) + 1
            if op.type in MATMUL_CONV:
                f = _matmul_conv_flops(op)
                net = _network_of(op.name, names)
                flops_by_network[net] = flops_by_network.get(net, 0) + f
                flops_by_type[op.type] = flops_by_type.get(op.type, 0) + f
    flops_profiler = sum(_profiler_flops(g) for g in graphs)
    for _ in range(calls):  # the train function as model.fit calls it
        logs = train_function(iterator)
    _ = {k: float(v) for k, v in logs.items()}
    summary = {}  # network: ["N x batch (mode)"], in call order of first appearance
    for name in dict.fromkeys(n for n, _, _ in network_calls):
        kinds = [(s, t) for n, s, t in network_calls if n == name]
        summary[name] = [f"{kinds.count(k)} x {k[0]}{' (inference)' if k[1] is False else ''}"
                         for k in dict.fromkeys(kinds)]
    params = {n: int(sum(np.prod(v.shape) for v in getattr(model, n).weights))
              for n in ("encoder", "decoder", "discriminator", "flow") if getattr(model, n, None) is not None}
    return {
        "preset": used,
        "variant": variant,
        "kwargs": kwargs,
        "sketch": sketch,
        "batch": batch,
        "flops_matmul_conv": int(sum(flops_by_network.values())),
        "flops_by_network": dict(sorted(flops_by_network.items())),
        "flops_by_op_type": dict(sorted(flops_by_type.items())),
        "flops_profiler": flops_profiler,
        "ops_total": int(sum(ops_by_type.values())),
        "ops_by_type": dict(sorted(ops_by_type.items())),
        "host_ops": {t: ops_by_type[t] for t in HOST_OPS if t in ops_by_type},
        "function_graphs": len(graphs),
        "network_calls": {n: summary[n] for n in NETWORKS if n in summary},
        "network_call_list": [[n, s, t] for n, s, t in network_calls],
        "network_rows": {n: int(sum(s for m, s, _ in network_calls if m == n)) for n in NETWORKS
                         if n in summary},
        "tracing_counts": [int(f.experimental_get_tracing_count()) for f in functions],
        "train_function_calls": calls,
        "parameters": params,
    }


def count_all(configs, batch, calls=3, preset=None):
    """{config: counts, or {"skipped": reason}} for the checkout on sys.path (`preset`:
    this preset in place of each configuration's, e.g. "tiny")."""
    out = {}
    for name in configs:
        default, variant, kwargs, _ = CONFIGS[name]
        preset_name = preset or default
        try:
            out[name] = count_config(preset_name, variant, kwargs, batch, calls)
        except Unsupported as e:
            out[name] = {"skipped": str(e)}
        print(name, "done", file=sys.stderr, flush=True)
    return out


def _git(directory, *args):
    return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def count_at(directory, configs, batch, calls=3, preset=None):
    """`count_all` run in another checkout `directory` (a subprocess with it as cwd)."""
    this_file = os.path.abspath(__file__)
    code = ("import importlib.util, json, sys; sys.path.insert(0, '.'); "
            f"spec = importlib.util.spec_from_file_location('step_work_probe', {this_file!r}); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            f"print(m.MARK + json.dumps(m.count_all({list(configs)!r}, {batch}, {calls}, {preset!r})))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"counting in {directory} failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith(MARK)][-1]
    return json.loads(line[len(MARK):])


def _calls_text(r):
    return "; ".join(f"{n} {', '.join(sizes)}" for n, sizes in r["network_calls"].items())


def markdown(result):
    labels = list(result["checkouts"])
    lines = [
        f"# Work of one train step, batch {result['batch']} (`benchmarks/step_work.py`)",
        "",
        "Counted from the traced train function `model.fit` runs (no timing: independent of "
        "the machine's load). GFLOP: 2 x multiply-adds of every MatMul / Conv2D op, forward "
        "and backward, from the graph's shapes; the profiler column is "
        "`tf.compat.v1.profiler`'s float_operation over all ops. Network calls: the batch "
        "size of each call while tracing, `(inference)` for training=False.",
        "",
    ]
    for label in labels:
        c = result["checkouts"][label]
        lines.append(f"- **{label}**: commit {c['commit'][:7]} ({c['date']})")
    lines += ["", "| configuration | checkout | GFLOP/step (matmul+conv) | GFLOP/step (profiler) | "
              "ops | network calls (batch sizes) | tracings |", "|---|---|---:|---:|---:|---|---|"]
    for name in result["configs"]:
        for label in labels:
            r = result["checkouts"][label]["counts"].get(name)
            if r is None or "skipped" in r:
                continue
            lines.append(f"| {name} | {label} | {r['flops_matmul_conv'] / 1e9:.3f} | "
                         f"{r['flops_profiler'] / 1e9:.3f} | {r['ops_total']} | {_calls_text(r)} | "
                         f"{r['tracing_counts']} |")
    lines += ["", "GFLOP per step by network (forward + backward):", "",
              "| configuration | checkout | " + " | ".join(NETWORKS) + " | other |",
              "|---|---|" + "---:|" * (len(NETWORKS) + 1)]
    for name in result["configs"]:
        for label in labels:
            r = result["checkouts"][label]["counts"].get(name)
            if r is None or "skipped" in r:
                continue
            f = r["flops_by_network"]
            lines.append(f"| {name} | {label} | " + " | ".join(
                f"{f.get(n, 0) / 1e9:.3f}" for n in (*NETWORKS, "other")) + " |")
    if result.get("comparisons"):
        lines += ["", "## Differences", "", "| configuration | against | GFLOP/step ratio | GFLOP "
                  "difference, by network | rows through each network, difference | ops difference | "
                  "op types whose count changed most (new - old) |", "|---|---|---:|---|---|---:|---|"]
        for comp in result["comparisons"].values():
            changed = ", ".join(f"{t} {d:+d}" for t, d in list(comp["ops_changed"].items())[:10])
            by_net = ", ".join(f"{n} {d / 1e9:+.3f}" for n, d in comp["flops_difference_by_network"].items())
            rows = ", ".join(f"{n} {d:+d}" for n, d in comp["network_rows_difference"].items())
            lines.append(f"| {comp['config']} ({comp['new']}) | {comp['old_config']} ({comp['old']}) | "
                         f"{comp['flops_ratio']:.3f} | {comp['flops_difference'] / 1e9:+.3f} ({by_net}) | "
                         f"{rows or '-'} | {comp['ops_difference']:+d} | {changed} |")
    skipped = [(label, name, r["skipped"]) for label in labels
               for name, r in result["checkouts"][label]["counts"].items() if "skipped" in r]
    if skipped:
        lines += ["", "Skipped (the checkout cannot build them): " + "; ".join(
            f"{name} at {label} ({why})" for label, name, why in skipped) + "."]
    lines += ["", "Configurations: " + "; ".join(
        f"`{n}` = {CONFIGS[n][3]}" for n in result["configs"]) + "."]
    return "\n".join(lines) + "\n"


def compare(new, old, new_label, old_label, pairs):
    """Per (new config, old config): the FLOP ratio and the op types whose counts differ."""
    out = []
    for name, old_name in pairs:
        a, b = new.get(name), old.get(old_name)
        if not a or not b or "skipped" in a or "skipped" in b:
            continue
        types = sorted(set(a["ops_by_type"]) | set(b["ops_by_type"]))
        changed = {t: a["ops_by_type"].get(t, 0) - b["ops_by_type"].get(t, 0) for t in types}
        changed = {t: d for t, d in sorted(changed.items(), key=lambda kv: -abs(kv[1])) if d}
        out.append({"key": f"{name}_vs_{old_name}_at_{old_label}", "config": name,
                    "old_config": old_name, "new": new_label, "old": old_label,
                    "flops_ratio": round(a["flops_matmul_conv"] / b["flops_matmul_conv"], 4),
                    "flops_difference": a["flops_matmul_conv"] - b["flops_matmul_conv"],
                    "flops_difference_by_network": {
                        n: a["flops_by_network"].get(n, 0) - b["flops_by_network"].get(n, 0)
                        for n in (*NETWORKS, "other")
                        if a["flops_by_network"].get(n, 0) != b["flops_by_network"].get(n, 0)},
                    "network_rows_difference": {
                        n: a["network_rows"].get(n, 0) - b["network_rows"].get(n, 0)
                        for n in NETWORKS if a["network_rows"].get(n, 0) != b["network_rows"].get(n, 0)},
                    "ops_difference": a["ops_total"] - b["ops_total"], "ops_changed": changed})
    return out


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    from svae_tf.utils import logs as tf_logs  # only here: an older checkout imports this module without it

    f = dict(flag_values=flag_values)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.DEFINE_list("configs", list(DEFAULT_CONFIGS), "Configurations: " + ", ".join(CONFIGS) + ".", **f)
    flags.DEFINE_integer("batch", 100, "Global batch size.", **f)
    flags.DEFINE_string("preset", None, "A preset in place of every configuration's (tests: tiny).", **f)
    flags.DEFINE_integer("calls", 3, "Calls of the train function after tracing (retracing check).", **f)
    flags.DEFINE_multi_string("at", None, "Another checkout (directory) to count in as well.", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)


def main(f):
    """The counts on the flags `f` (`svae_tf.cli.run`)."""
    from benchmarks import report  # only here: an older checkout imports this module without it

    started = report.start()
    configs = list(f.configs)
    checkouts = {}
    here = report.REPO
    checkouts["current"] = {"commit": _git(here, "rev-parse", "HEAD"),
                                  "date": _git(here, "log", "-1", "--format=%cs"),
                                  "counts": count_all(configs, f.batch, f.calls, f.preset)}
    for directory in f.at or ():
        label = _git(directory, "rev-parse", "--short", "HEAD")
        checkouts[label] = {"commit": _git(directory, "rev-parse", "HEAD"),
                            "date": _git(directory, "log", "-1", "--format=%cs"),
                            "counts": count_at(directory, configs, f.batch, f.calls, f.preset)}
    current = checkouts["current"]["counts"]
    comparisons = compare(current, current, "current", "current", WITHIN)
    for label, c in checkouts.items():
        if label != "current":
            comparisons += compare(current, c["counts"], "current", label,
                                   [(n, n) for n in configs] + AGAINST_OLDER)
    gflop = {name: {label: round(c["counts"][name]["flops_matmul_conv"] / 1e9, 3)
                    for label, c in checkouts.items() if "flops_matmul_conv" in c["counts"].get(name, {})}
             for name in configs}
    result = {"batch": f.batch, "preset_override": f.preset, "configs": configs,
              "gflop_per_step": gflop, "checkouts": checkouts,
              "comparisons": {c.pop("key"): c for c in comparisons}}
    report.publish(f.output, result, markdown(result), started=started)


if __name__ == "__main__":
    from svae_tf import cli
    from svae_tf.utils import logs as tf_logs

    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported
    cli.run(main, define_flags)
