"""Does batch norm in inference mode equal the trained networks? Before and after
recomputing its population statistics (issue #12, item 2).

    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.batch_norm_population \
        --model_dir=runs/reproduce_mnist/svae_r --model_dir=runs/reproduce_mnist/ali \
        --output=benchmarks/results/speed/batch_norm_population

For each training run (`runs.load_model`: its newest checkpoint, the weights' moving
average under EMA) it measures the test-set reconstruction RMSE (0-255 scale, x ->
T(mu(x)) -> decoder mean, `likelihood.reconstruct`) with the networks in inference mode
and with the batch statistics of a training step (`batch_stats=True`; sVAE-r's decoder on
[z_p; z_q]), first with the checkpoint's moving averages, then again after
`SymmetricVAE.recompute_batch_norm_statistics` over the first `--batches` training batches
(`trainers.evaluate --batch_norm_batches`). Inference mode equals the trained networks
when the two RMSEs agree; the relative gap |inference - batch stats| / batch stats is the
issue's criterion (at most 0.05 for sVAE-r after 30 minutes). Beside each pair, the
one-sample ELBO (1) of the same test images in inference mode and its terms (`elbo_terms`:
log p(x|z), log p(z), log q(z|x) at z ~ q(z|x), nats per image, grey levels binarized at
random), which show what the recomputed statistics do to q(z|x). The checkpoint is not changed.
"""

import sys

from absl import app, flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

from benchmarks import report  # noqa: E402
import numpy as np  # noqa: E402

from svae_tf.data import pipelines as data
from svae_tf.evaluation import likelihood
from svae_tf import runs  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.DEFINE_multi_string("model_dir", None, "A training run (repeatable).", **f)
    flags.DEFINE_string("dataset", "mnist", "The runs' dataset (mnist, cifar10, ...).", **f)
    flags.DEFINE_integer("batches", 100, "Training batches the population statistics are the mean over.", **f)
    flags.DEFINE_integer("batch_size", 100, "Batch size (as the training run's).", **f)
    flags.DEFINE_integer("num_images", 2000, "Test images of the RMSE.", **f)
    flags.DEFINE_integer("seed", 0, "Seed of the noise.", **f)
    flags.DEFINE_string("data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR).", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report).", **f)


def rmse_pair(model, test, args):
    """{inference, batch_stats, relative_gap, elbo_terms}: the two RMSEs over the batches
    `test`, and the mean ELBO terms (inference mode; `neg_elbo` their negated sum)."""
    out = likelihood.reconstruction_rmses(model, test, seed=args.seed)
    out["relative_gap"] = abs(out["inference"] - out["batch_stats"]) / out["batch_stats"]
    terms = [model.elbo_terms(batch, seed=args.seed + i) for i, batch in enumerate(test)]
    out["elbo_terms"] = {k: float(np.mean(np.concatenate([t[k].numpy() for t in terms]))) for k in terms[0]}
    t = out["elbo_terms"]
    out["elbo_terms"]["neg_elbo"] = -(t["log_px_given_z"] + t["log_pz"] - t["log_qz"])
    return out


def measure(model_dir, args):
    model, config = runs.load_model(model_dir), runs.load_config(model_dir)
    if model.encoder is None:
        raise app.UsageError(f"--model_dir={model_dir}: {config.variant} has no encoder, so no reconstruction")
    test = data.load_images(args.dataset, "test", batch_size=args.batch_size, data_dir=args.data_dir,
                            take=args.num_images)
    before = rmse_pair(model, test, args)
    train = data.batch_norm_batches(args.dataset, args.batches, batch_size=args.batch_size,
                                    data_dir=args.data_dir)
    count = model.recompute_batch_norm_statistics(train, seed=args.seed)
    result = dict(model_dir=model_dir, variant=config.variant, checkpoint=runs.checkpoint_info(model_dir).path,
                  batches=count, moving_averages=before, recomputed=rmse_pair(model, test, args))
    print(f"{model_dir}: {result}", flush=True)
    return result


def markdown(results, args):
    lines = ["# Batch norm in inference mode against a training step's batch statistics", "",
             f"Test-set RMSE (0-255, x -> T(mu(x)) -> decoder mean) of {args.num_images} test images, batches "
             f"of {args.batch_size}; recomputed: population statistics from the first {args.batches} training "
             "batches of the train step's forward passes. Gap: |inference - batch stats| / batch stats.", "",
             "| run | checkpoint | inference | batch stats | gap | inference, recomputed | batch stats, "
             "recomputed | gap, recomputed |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        a, b = r["moving_averages"], r["recomputed"]
        lines.append(f"| {r['variant']} (`{r['model_dir']}`) | {r['checkpoint'].rsplit('/', 1)[-1]} "
                     f"| {a['inference']:.2f} | {a['batch_stats']:.2f} | {a['relative_gap']:.3f} "
                     f"| {b['inference']:.2f} | {b['batch_stats']:.2f} | {b['relative_gap']:.3f} |")
    lines += ["", "One-sample -ELBO and its terms (inference mode, nats per test image), with the checkpoint's "
              "moving averages -> recomputed:", "",
              "| run | -ELBO | log p(x\\|z) | log p(z) | log q(z\\|x) |", "|---|---:|---:|---:|---:|"]
    for r in results:
        a, b = r["moving_averages"]["elbo_terms"], r["recomputed"]["elbo_terms"]
        lines.append(f"| {r['variant']} (`{r['model_dir']}`) | " + " | ".join(
            f"{a[k]:.2f} -> {b[k]:.2f}" for k in ("neg_elbo", "log_px_given_z", "log_pz", "log_qz")) + " |")
    return "\n".join(lines) + "\n"


def main(args):
    """The benchmark on the flags `args` (`svae_tf.cli.run`)."""
    started = report.start()
    if not args.model_dir:
        raise app.UsageError("give at least one --model_dir")
    results = [measure(d, args) for d in args.model_dir]
    text = markdown(results, args)
    print(text)
    if args.output:
        report.write_report(args.output, dict(settings={k: getattr(args, k) for k in (
            "dataset", "batches", "batch_size", "num_images", "seed")}, runs=results), text, started=started)


if __name__ == "__main__":
    cli.run(main, define_flags)
