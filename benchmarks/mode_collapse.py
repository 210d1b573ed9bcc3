"""Does the decoder lose its dependence on z? A probe of the adversarial variants on MNIST
(or the CIFAR-10 subset, `--dataset=cifar10`).

    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.mode_collapse --steps=600 \
        --output=benchmarks/results/mode_collapse

Each run trains one variant of an MNIST preset (default `presets.MNIST`), with settings
changed by `--run` specs ("ali,beta1=0.5,d_learning_rate=4e-4", "gan,preset=mnist_a1",
"gan,disc_x_pooling=average"; keys in `SETTINGS`), on real MNIST for `--steps` steps of
batch 100, through the train function `model.fit` uses (`benchmarks.step_timing`). Every
`--every` steps it records:

- `sample_spread`: std over 64 fixed z ~ p(z) of the decoder mean (the sampling path:
  inference mode, and the weights' moving average under `ema_decay`), averaged over
  pixels. The same statistic over 64 real test images is printed as the reference; a
  collapsed decoder (every z -> one image) is near 0.
- `d_loss`, `g_loss`: training losses averaged over the interval (chance: 2 ln 2 = 1.386;
  `vae`, the baseline without a discriminator, has no d_loss and no frozen-G probe).

At the end it records `zq_spread` (std of z ~ q(z|x) over 256 test images, averaged over
the 64 dimensions; the prior's is 1) and `frozen_d_loss`: the discriminator alone trained
for `--probe_steps` more steps with the encoder and decoder frozen, its loss over the last
quarter of them. A low value there means the discriminator *can* separate the joints, so
a collapse is the dynamics' and not a discriminator that cannot learn. Then the IS and
FID of `--quality_samples` samples under the project's MNIST classifier (trained once by
`python -m trainers.classifier`), and the test-set reconstruction RMSE with the decoder in
inference mode and with batch statistics (equal when batch norm's moving averages hold
what the decoder was trained with; with the run key `batch_norm_batches`, measured after
batch norm's statistics are recomputed, and `rmse_before_recompute` before, shown as
"before -> after"), and `neg_elbo`: -ELBO (1) in nats, one z per image,
of the 256 test images (grey levels binarized at random: a screen, not Table 1's NLL).

With `--eval_split=validation` the runs train on the training set without its validation
part (`data.VALIDATION_SPLITS`: MNIST train[:50000], the CIFAR-10 subset all but its last 200)
and every held-out number above (the reference spread, z_q spread, RMSE, -ELBO, and FID's
reference statistics) comes from the validation split instead of the test set; the report
names both splits.
"""

import itertools
import math
import os
import sys
import time

from absl import app, flags

from svae_tf import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import report, step_timing  # noqa: E402
from svae_tf import data, images, likelihood, optimizers, presets  # noqa: E402
from svae_tf import model as model_lib  # noqa: E402
from svae_tf.distributions import LATENT_X  # noqa: E402

DEFAULT_RUNS = [
    "gan", "ali", "svae", "svae_r",
    "ali,beta1=0.5", "ali,d_learning_rate=4e-4", "ali,n_disc=2", "ali,discriminator_dropout=0",
]


def _bool(value):
    return {"true": True, "false": False}[value.lower()]


SETTINGS = {  # run-spec key -> (type, default)
    "preset": (str, None),  # default: --dataset's (mnist, cifar10)
    "beta1": (float, 0.9),
    "g_learning_rate": (float, 1e-4),
    "d_learning_rate": (float, 1e-4),
    # Both learning rates fall linearly to 0 over lr_decay_steps steps after lr_decay_start
    # (svae_tf.optimizers); 0: constant.
    "lr_decay_steps": (int, 0),
    "lr_decay_start": (int, 0),
    "n_disc": (int, 1),
    "discriminator_dropout": (float, None),
    "lam": (float, 0.3),
    "lam_z": (float, None),
    "latent_x": (lambda v: {x: x for x in LATENT_X}[v], "mean"),  # SymmetricVAE latent_x (LATENT_X)
    "r1_weight": (float, 0.0),
    "instance_noise": (float, 0.0),
    "instance_noise_steps": (int, 10000),
    "ema_decay": (float, 0.0),
    "shared_samples": (_bool, False),
    # After training, before the end measurements: batch norm's population statistics
    # over this many training batches (SymmetricVAE.recompute_batch_norm_statistics); 0: off.
    "batch_norm_batches": (int, 0),
    # Preset fields (ablations of the default recipe).
    "decoder_dense_batch_norm": (_bool, None),
    "disc_x_pooling": (str, None),
}
PRESET_SETTINGS = ("decoder_dense_batch_norm", "disc_x_pooling")
MODEL_SETTINGS = ("n_disc", "discriminator_dropout", "lam", "lam_z", "latent_x", "r1_weight", "instance_noise",
                  "instance_noise_steps", "ema_decay", "shared_samples")  # SymmetricVAE arguments



def define_flags():
    """The program's flags, defined when it runs (not on import: absl flags are process-global,
    and the trainers' --dataset, --batch_size, --seed, --data_dir would clash in tests)."""
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP)
    flags.DEFINE_multi_string("run", DEFAULT_RUNS, "A run spec, repeatable: variant[,key=value...] with keys "
                              + ", ".join(SETTINGS) + ".")
    flags.DEFINE_integer("steps", 600, "Train steps per run (batch 100).")
    flags.DEFINE_integer("every", 100, "Record the probe every N steps.")
    flags.DEFINE_integer("probe_steps", 100, "Discriminator-only steps with a frozen encoder/decoder at the end.")
    flags.DEFINE_integer("seed", 0, "Seed of weights, noise and data order.")
    flags.DEFINE_enum("dataset", "mnist", ["mnist", "cifar10"], "Real data to train on; run specs' presets must fit it.")
    flags.DEFINE_integer("batch_size", 100, "Batch size.")
    flags.DEFINE_enum("eval_split", "test", ["test", "validation"], "Split of the held-out numbers: test (training "
                      "on all of train), or validation (training on train without it; data.VALIDATION_SPLITS).")
    flags.DEFINE_integer("quality_samples", 1000, "Samples scored for IS/FID at the end (0: none; needs the "
                         "MNIST classifier of `python -m trainers.classifier`).")
    flags.DEFINE_string("data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR).")
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report), e.g. "
                        "benchmarks/results/mode_collapse.")


FLAGS = flags.FLAGS


def parse_run(spec):
    """'ali,beta1=0.5' -> ('ali', {'beta1': 0.5, ...defaults}). Raises ValueError naming the entry."""
    variant, *pairs = spec.split(",")
    if variant not in model_lib.VARIANTS:
        raise ValueError(f"--run={spec!r}: variant must be one of {list(model_lib.VARIANTS)}.")
    settings = {key: default for key, (_, default) in SETTINGS.items()}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in SETTINGS:
            raise ValueError(f"--run={spec!r}: {pair!r} is not key=value with key in {list(SETTINGS)}.")
        try:
            settings[key] = SETTINGS[key][0](value)
        except (KeyError, ValueError) as err:
            raise ValueError(f"--run={spec!r}: bad value in {pair!r}.") from err
    dataset = FLAGS.dataset if "dataset" in FLAGS and FLAGS.is_parsed() else "mnist"
    settings["preset"] = settings["preset"] or dataset
    fits = [n for n, p in presets.PRESETS.items() if p.image_shape == presets.PRESETS[dataset].image_shape]
    if settings["preset"] not in fits:
        raise ValueError(f"--run={spec!r}: preset must be one of {fits} (--dataset={dataset}).")
    return variant, settings


def spread(batch):
    """Mean over pixels of the std over the batch: [N, H, W, C] -> float."""
    return float(np.std(np.asarray(batch), axis=0).mean())


def make_optimizers(settings):
    """(encoder/decoder Adam, discriminator Adam) of a run's settings; the discriminator's
    decay counts its n_disc updates per step."""
    def adam(key, updates_per_step=1):
        return optimizers.adam(settings[key], beta_1=settings["beta1"],
                               decay_steps=settings["lr_decay_steps"] * updates_per_step,
                               decay_start=settings["lr_decay_start"] * updates_per_step)

    return adam("g_learning_rate"), adam("d_learning_rate", settings["n_disc"])


def run(spec, train_batches, test_images):
    """One run: train `spec` on a fresh `train_batches()` dataset (every run sees the same
    data order), probe it; returns (PNG grid of its samples, result dict)."""
    variant, settings = parse_run(spec)
    keras.utils.set_random_seed(FLAGS.seed)
    preset = presets.get_preset(settings["preset"], **{k: settings[k] for k in PRESET_SETTINGS
                                                       if settings[k] is not None})
    model = model_lib.SymmetricVAE(preset, variant=variant, seed=FLAGS.seed,
                                   **{key: settings[key] for key in MODEL_SETTINGS})
    fixed_z = tf.random.stateless_normal((64, preset.z_dim), seed=(FLAGS.seed, 1))

    g_optimizer, d_optimizer = make_optimizers(settings)
    model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    train_fn = step_timing.train_function(model)
    iterator = iter(train_batches())
    trajectory, start, done = [], time.perf_counter(), 0
    for end in sorted({*range(FLAGS.every, FLAGS.steps + 1, FLAGS.every), FLAGS.steps}):  # probes
        logs = step_timing.run_steps(train_fn, iterator, end - done)
        done = end
        with model.ema_scope():  # the weights sampling uses (the moving average, if any)
            point = {"step": end, "sample_spread": spread(model.sample(len(fixed_z), noise=fixed_z))}
        point.update({k: logs.get(k) for k in ("d_loss", "g_loss")})  # no d_loss: vae
        trajectory.append(point)
        model.reset_metrics()
        print(f"  {spec} step {end}: " + ", ".join(f"{k} {v:.4f}" for k, v in point.items()
                                                   if k != "step" and v is not None), flush=True)
    seconds = time.perf_counter() - start
    zq_spread = rmse = neg_elbo = rmse_before = None
    with model.ema_scope():
        if settings["batch_norm_batches"]:
            if model.encoder is not None:
                rmse_before = likelihood.reconstruction_rmses(model, [test_images])
            batches = itertools.islice(iterator, settings["batch_norm_batches"])
            model.recompute_batch_norm_statistics(batches, seed=FLAGS.seed)
        if model.encoder is not None:
            _, z_q = model.encode(test_images)  # [256, z_dim]
            zq_spread = float(np.std(z_q.numpy(), axis=0).mean())
            rmse = likelihood.reconstruction_rmses(model, [test_images])
            neg_elbo = -float(tf.reduce_mean(model.elbo(test_images, seed=FLAGS.seed)))
        quality = sample_quality(model)
    with model.ema_scope():
        grid = images.encode_png(images.image_grid(model.sample(len(fixed_z), noise=fixed_z).numpy(), columns=8))
    return grid, dict(run=spec, variant=variant, settings=settings, trajectory=trajectory, seconds=seconds,
                zq_spread=zq_spread, frozen_d_loss=frozen_discriminator_loss(model, iterator), rmse=rmse,
                neg_elbo=neg_elbo, rmse_before_recompute=rmse_before, **quality)


def frozen_discriminator_loss(model, iterator):
    """The discriminator's loss over the last quarter of `--probe_steps` updates of it
    alone (the encoder and decoder frozen); None without a discriminator."""
    if model.discriminator is None:
        return None
    d_step = tf.function(model.discriminator_step)
    model.reset_metrics()
    tail = max(1, FLAGS.probe_steps // 4)
    for step in range(FLAGS.probe_steps):
        if step == FLAGS.probe_steps - tail:
            model.reset_metrics()
        d_step(next(iterator))
    return float(model.get_metrics_result()["d_loss"])


def sample_quality(model):
    """IS and FID of `--quality_samples` samples under the project's MNIST classifier
    (reference: the MNIST test set), or {} when it is off or not trained."""
    if not FLAGS.quality_samples or FLAGS.dataset != "mnist":
        return {}
    from svae_tf import classifiers

    try:
        extractor = classifiers.MnistClassifier.load()
    except FileNotFoundError as err:
        print(f"  no IS/FID: {err}")
        return {}
    test = data.load_images("mnist", FLAGS.eval_split, batch_size=500, data_dir=FLAGS.data_dir)
    _, reference = classifiers.activations(extractor, test)
    z = tf.random.stateless_normal((FLAGS.quality_samples, model.preset.z_dim), seed=(FLAGS.seed, 7))
    batches = (model.sample(500, noise=z[i:i + 500]) for i in range(0, FLAGS.quality_samples, 500))
    scores = classifiers.sample_quality(extractor, batches, reference)
    return dict(inception_score=scores["inception_score"], fid=scores["fid"])


def markdown(results, reference):
    lines = [
        f"# Mode-collapse probe: {FLAGS.dataset}, adversarial variants",
        "",
        f"Real {FLAGS.dataset} (TFDS), batch {FLAGS.batch_size}, "
        f"seed {FLAGS.seed}, {FLAGS.steps} steps per run. Trained on split `{train_split()}`; z_q spread, RMSE, "
        f"-ELBO and FID's reference from split `{FLAGS.eval_split}` ({eval_split_rows()}). "
        f"`sample_spread` of 64 real {FLAGS.eval_split} images: "
        f"**{reference:.4f}**. Chance discriminator loss: 2 ln 2 = {2 * math.log(2):.3f}.",
        "",
        "| run | " + " | ".join(f"spread @{p['step']}" for p in results[0]["trajectory"])
        + " | d_loss (last) | z_q spread | frozen-G d_loss | IS | FID | RMSE inference / batch stats"
        " | -ELBO | s |",
        "|---|" + "---:|" * (len(results[0]["trajectory"]) + 8),
    ]

    def fmt(value, spec):
        return "—" if value is None else format(value, spec)

    for r in results:
        rmse = r.get("rmse")
        rmse = "—" if rmse is None else f"{rmse['inference']:.1f} / {rmse['batch_stats']:.1f}"
        if r.get("rmse_before_recompute"):
            before = r["rmse_before_recompute"]
            rmse = f"{before['inference']:.1f} / {before['batch_stats']:.1f} -> {rmse}"
        lines.append(
            f"| {r['run']} | " + " | ".join(f"{p['sample_spread']:.4f}" for p in r["trajectory"])
            + f" | {fmt(r['trajectory'][-1]['d_loss'], '.3f')} | {fmt(r['zq_spread'], '.3f')}"
            + f" | {fmt(r['frozen_d_loss'], '.3f')} | {fmt(r.get('inception_score'), '.2f')}"
            + f" | {fmt(r.get('fid'), '.1f')} | {rmse} | {fmt(r.get('neg_elbo'), '.1f')} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def train_split():
    """The training split of the runs: all of train, or train without validation."""
    return "train" if FLAGS.eval_split == "test" else data.TRAIN_WITHOUT_VALIDATION


def eval_split_rows():
    """The TFDS split strings of the training and held-out splits, e.g. 'train[:50000] / train[50000:]'."""
    if FLAGS.eval_split == "test":
        return "train / test"
    return " / ".join(data.validation_splits(FLAGS.dataset))


def main(argv):
    del argv
    started = report.start()
    for spec in FLAGS.run:
        parse_run(spec)  # fail before any training
    def train_batches():
        return data.load_images(FLAGS.dataset, train_split(), batch_size=FLAGS.batch_size, data_dir=FLAGS.data_dir,
                                shuffle=True, seed=FLAGS.seed, repeat=True, drop_remainder=True)

    test_images = next(iter(data.load_images(FLAGS.dataset, FLAGS.eval_split, batch_size=256,
                                             data_dir=FLAGS.data_dir)))
    reference = spread(test_images[:64])
    print(f"trained on {train_split()}, held-out numbers from {FLAGS.eval_split} ({eval_split_rows()}); "
          f"sample_spread of 64 real {FLAGS.eval_split} images: {reference:.4f}")
    outputs = [run(spec, train_batches, test_images) for spec in FLAGS.run]  # (PNG grid, result) each
    grids, results = [grid for grid, _ in outputs], [result for _, result in outputs]
    table = markdown(results, reference)
    print(table)
    if FLAGS.output:
        settings = {name: FLAGS[name].value for name in ("dataset", "batch_size", "steps", "every", "probe_steps",
                                                         "seed", "quality_samples", "eval_split")}
        settings.update(train_split=train_split(), splits=eval_split_rows())
        samples = f"{os.path.basename(report.paths(FLAGS.output)[0])[:-len('.json')]}_samples"
        files = {}
        for index, (result, grid) in enumerate(zip(results, grids)):  # the 64 probe samples of each run
            result["samples_png"] = f"{samples}/{index}.png"
            files[result["samples_png"]] = grid
        table += "\nSamples at the end (the 64 fixed z of `sample_spread`), one grid per run: " + ", ".join(
            f"[{index}]({name})" for index, name in enumerate(files)) + ".\n"
        report.write_report(FLAGS.output, dict(settings=settings, real_sample_spread=reference, runs=results),
                            table, started=started, files=files)
        print(f"wrote {report.paths(FLAGS.output)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
