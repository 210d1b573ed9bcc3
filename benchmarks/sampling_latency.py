"""Per-image latency of sampling from the MNIST decoder: Keras, SavedModel, LiteRT.

    python -m benchmarks.sampling_latency [--model_dir=RUN] \
        --output=benchmarks/results/speed/sampling_latency

Without --model_dir a fresh MNIST-preset sVAE-r with random weights is built (latency
does not depend on the weights). For batch sizes 1 and 64 it times one sampling call
(latent noise in, images in [0, 1] out) of:

- keras:             `model.sample(n, noise=z)` (eager Keras call: decoder + sigmoid)
- saved_model/decode: the exported SavedModel's `decode` signature (z in)
- saved_model/sample: its `sample` signature (int64 seeds in; draws z in the graph)
- litert/<q>:         the LiteRT sampler, q in float32/float16/int8, on the plain
                      `ai_edge_litert` Interpreter (XNNPACK), `--num_threads` threads

Each is called `--warmup` times, then timed call by call for at least `--min_time`
seconds (and at least `--min_calls` calls); the median call time divided by the batch
size is the per-image latency (p90 also reported). With --output, OUTPUT.json and
OUTPUT.md are written through `benchmarks.report`, which records the commit, the
command, the machine and its load average at the start and end (the machine is shared).

It also reports the LiteRT models' error against the SavedModel on the same inputs
(`--error_samples` latent draws for the sampler, pixels on the [0, 1] scale; as many MNIST
test images for the encoder's z_mean, from $TFDS_DATA_DIR or ../shared/tfds).
"""

import os
import statistics
import tempfile
import sys
import time

from absl import flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from export import saved_model, tflite, tflite_sample  # noqa: E402
from svae_tf import runs  # noqa: E402
from benchmarks import report  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs; absl flags are
    process-global, the trainers' --model_dir would clash in tests)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.DEFINE_string("model_dir", None, "Training run; default: random MNIST-preset weights.", **f)
    flags.DEFINE_list("batches", ["1", "64"], "Batch sizes.", **f)
    flags.DEFINE_integer("num_threads", 1, "LiteRT interpreter threads.", **f)
    flags.DEFINE_integer("warmup", 10, "Untimed calls per configuration.", **f)
    flags.DEFINE_float("min_time", 2.0, "Timed seconds per configuration (at least).", **f)
    flags.DEFINE_integer("min_calls", 20, "Timed calls per configuration (at least).", **f)
    flags.DEFINE_integer("error_samples", 1000, "Inputs for the LiteRT-vs-SavedModel errors.", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)


TARGET_MS = 1.0  # LiteRT float32, batch 1, per image


def time_calls(fn, warmup, min_time, min_calls):
    """Call times in seconds of fn() after warmup calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def samplers(model, workdir, num_threads):
    """{name: f(z, seeds) -> images as numpy} for every backend."""
    path = saved_model.export_saved_model(None, os.path.join(workdir, "svae"), model=model)
    signatures = tf.saved_model.load(path).signatures
    decode, sample = signatures["decode"], signatures["sample"]
    lite = tflite.convert(model, tflite.QUANTIZATIONS)
    fns = {
        "keras": lambda z, s: model.sample(len(z), noise=z).numpy(),
        "saved_model/decode": lambda z, s: decode(z=z)["images"].numpy(),
        "saved_model/sample": lambda z, s: sample(seed=s)["images"].numpy(),
    }
    for q in tflite.QUANTIZATIONS:
        runner = tflite_sample.LiteModel(
            model_content=lite[f"sampler_{q}.tflite"], num_threads=num_threads)
        fns[f"litert/{q}"] = lambda z, s, r=runner: r(z)
    sizes = {f"litert/{q}": len(lite[f"sampler_{q}.tflite"]) for q in tflite.QUANTIZATIONS}
    return fns, sizes, signatures, lite


def _test_images(n, image_shape):
    """n MNIST test images in [0, 1] if the data are here, else uniform noise."""
    try:
        from svae_tf.data import pipelines as data

        data_dir = os.environ.get("TFDS_DATA_DIR") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tfds")
        batch = next(iter(data.load_images("mnist", "test", batch_size=n, take=n,
                                           data_dir=data_dir)))
        if tuple(batch.shape[1:]) == tuple(image_shape):
            return batch.numpy(), "MNIST test images"
    except Exception:  # noqa: BLE001 - any data problem: fall back to noise
        pass
    return np.random.default_rng(1).random([n, *image_shape], dtype=np.float32), "uniform noise"


def litert_errors(model, signatures, lite, n):
    """Max / mean |LiteRT - SavedModel| of the sampler (images, [0, 1] scale) on n draws
    z ~ N(0, I), and of the encoder's z_mean on n test images."""
    rng = np.random.default_rng(123)
    z = rng.standard_normal([n, model.preset.z_dim]).astype(np.float32)
    ref = signatures["decode"](z=z)["images"].numpy()
    errors = {}
    for q in tflite.QUANTIZATIONS:
        diff = np.abs(tflite_sample.LiteModel(model_content=lite[f"sampler_{q}.tflite"])(z) - ref)
        errors[f"sampler/{q}"] = dict(max_abs=float(diff.max()), mean_abs=float(diff.mean()),
                                      inputs=f"{n} draws z ~ N(0, I)", scale="pixels in [0, 1]")
    if model.encoder is not None:
        images, source = _test_images(n, model.preset.image_shape)
        ref = signatures["encode_float"](images=images, seed=np.arange(n))["z_mean"].numpy()
        for q in tflite.QUANTIZATIONS:
            lite_model = tflite_sample.LiteModel(model_content=lite[f"encoder_{q}.tflite"])
            diff = np.abs(lite_model(images) - ref)
            errors[f"encoder/{q}"] = dict(
                max_abs=float(diff.max()), mean_abs=float(diff.mean()), inputs=source,
                scale=f"z_mean (max abs value {float(np.abs(ref).max()):.3g})")
    return errors


def markdown(result):
    lines = [
        "# Sampling latency, MNIST decoder",
        "",
        f"Model: {result['model']}. LiteRT: {result['litert_threads']} thread(s), "
        "XNNPACK, builtin ops only.",
        "",
        "Per-image latency = median call time / batch size (p90 in parentheses).",
        "",
        "| backend | " + " | ".join(f"batch {b}: ms / image" for b in result["batches"])
        + " | model bytes |",
        "|---|" + "---|" * (len(result["batches"]) + 1),
    ]
    by = {(r["backend"], r["batch"]): r for r in result["results"]}
    for backend in result["backends"]:
        cells = []
        for batch in result["batches"]:
            r = by.get((backend, batch))
            cells.append(f"{r['ms_per_image']:.4f} ({r['p90_ms_per_image']:.4f})" if r else "-")
        size = result["model_bytes"].get(backend, "")
        lines.append(f"| {backend} | {' | '.join(cells)} | {size} |")
    lines += [
        "",
        "LiteRT vs SavedModel (`decode` / `encode_float` z_mean), same inputs:",
        "",
        "| model | max abs diff | mean abs diff | inputs | scale |",
        "|---|---|---|---|---|",
    ]
    for name, e in result["litert_errors"].items():
        lines.append(f"| {name} | {e['max_abs']:.2e} | {e['mean_abs']:.2e} | {e['inputs']} "
                     f"| {e['scale']} |")
    t = result["target"]
    verdict = ("not measured (batch 1 not timed)" if t["measured_ms_per_image"] is None else
               f"{'met' if t['met'] else 'NOT met'} ({t['measured_ms_per_image']:.4f} ms)")
    lines += ["", f"Target: LiteRT float32, batch 1, under {t['ms_per_image']} ms per image: {verdict}.", ""]
    return "\n".join(lines)


def main(args):
    """The benchmark on the flags `args` (`svae_tf.cli.run`, which logs at WARNING: TF's INFO chatter)."""
    started = report.start()
    if args.model_dir:
        model = runs.load_model(args.model_dir)
        description = f"run {args.model_dir}"
    else:
        model = runs.build_model(runs.ModelConfig(preset="mnist", variant="svae_r"))
        description = "MNIST preset (z_dim 64), sVAE-r, random weights"
    z_dim = model.preset.z_dim
    batches = [int(b) for b in args.batches]
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="svae-latency-") as workdir:
        fns, sizes, signatures, lite = samplers(model, workdir, args.num_threads)
        errors = litert_errors(model, signatures, lite, args.error_samples)
        for batch in batches:
            z = rng.standard_normal([batch, z_dim]).astype(np.float32)
            seeds = np.arange(batch, dtype=np.int64)
            reference = fns["saved_model/decode"](z, seeds)
            for name, fn in fns.items():
                out = fn(z, seeds)
                assert out.shape == (batch, *model.preset.image_shape), (name, out.shape)
                if name != "saved_model/sample":
                    max_diff = float(np.abs(out - reference).max())
                else:
                    max_diff = None  # different z (drawn from seeds)
                times = time_calls(lambda: fn(z, seeds), args.warmup, args.min_time,
                                   args.min_calls)
                median = statistics.median(times)
                p90 = float(np.percentile(times, 90))
                results.append(dict(
                    backend=name, batch=batch, calls=len(times),
                    ms_per_call=1e3 * median, ms_per_image=1e3 * median / batch,
                    p90_ms_per_image=1e3 * p90 / batch,
                    max_abs_diff_vs_saved_model=max_diff,
                ))
                print(f"{name:20s} batch {batch:3d}: {1e3 * median / batch:8.4f} ms/image "
                      f"({len(times)} calls, max |diff| {max_diff})", flush=True)
    measured = next(r["ms_per_image"] for r in results
                    if r["backend"] == "litert/float32" and r["batch"] == 1) \
        if 1 in batches else None
    result = dict(
        model=description,
        litert_threads=args.num_threads,
        batches=batches,
        backends=list(fns),
        model_bytes=sizes,
        results=results,
        litert_errors=errors,
        target=dict(ms_per_image=TARGET_MS, measured_ms_per_image=measured,
                    met=measured is not None and measured < TARGET_MS),
    )
    text = markdown(result)
    print(text)
    if args.output:
        report.write_report(args.output, result, text, started=started,
                            extra_versions=("ai-edge-litert",))
        print(f"wrote {report.paths(args.output)}")


if __name__ == "__main__":
    cli.run(main, define_flags)
