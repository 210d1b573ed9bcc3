"""Does the decoder lose its dependence on z? A probe of the adversarial variants on MNIST
(or the CIFAR-10 subset, `--dataset=cifar10`).

    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.mode_collapse --steps=600 \
        --output=benchmarks/results/screens/collapse/mode_collapse

Each run trains one variant of an MNIST preset (default `presets.MNIST`), with settings
changed by `--run` specs ("ali,beta1=0.5,d_learning_rate=4e-4", "gan,preset=mnist_a1",
"gan,disc_x_pooling=average"), on real MNIST for `--steps` steps of batch 100. A run is the
trainers' own program, `trainers.train_lib.train`, on the configs of `svae_tf.model.config`: a
spec's keys are the fields of `ModelConfig` and `TrainConfig` (each with its own default:
what `python -m trainers.mnist` would do) and the fields of the preset (`presets.Preset`,
which become `preset_overrides`), so a screen's run and a user's run of the same settings
are the same code. Its epochs are `--every` steps long (the trainer recomputes batch
norm's population statistics at every epoch end, `batch_norm_batches`; this changes no
training weight). At every epoch end it records:

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
inference mode and with batch statistics (equal when batch norm's statistics hold what
the decoder was trained with), and `neg_elbo`: -ELBO (1) in nats, one z per image,
of the 256 test images (grey levels binarized at random: a screen, not Table 1's NLL).

With `--eval_split=validation` (the runs' `TrainConfig.holdout`) the runs train on the
training set without its validation part (`DatasetSpec.validation_split` in
`svae_tf/data/datasets.py`: MNIST train[:50000], the CIFAR-10 subset all but its last 200)
and every held-out number above (the reference spread, z_q spread, RMSE, -ELBO, and FID's
reference statistics) comes from the validation split instead of the test set; the report
names both splits. Screens choose on validation.
"""

import dataclasses
import math
import os
import sys
import tempfile
import time

from absl import app, flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import report  # noqa: E402
from svae_tf.model import config, presets, variants
from svae_tf.data import pipelines as data
from svae_tf.utils import images
from svae_tf.evaluation import likelihood  # noqa: E402
from trainers import train_lib  # noqa: E402

DEFAULT_RUNS = [
    "gan", "ali", "svae", "svae_r",
    "ali,beta1=0.5", "ali,d_learning_rate=4e-4", "ali,n_disc=2", "ali,discriminator_dropout=0",
]
# The TrainConfig fields a run spec may set (the others are the harness's: data, steps, outputs).
TRAIN_KEYS = ("g_learning_rate", "d_learning_rate", "beta1", "beta2", "batch_norm_batches")
PRESET_KEYS = tuple(f.name for f in dataclasses.fields(presets.Preset) if f.name != "name")


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs, not on import:
    absl flags are process-global, and the trainers' --dataset, --batch_size, --seed, --data_dir
    would clash in tests)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.DEFINE_multi_string("run", DEFAULT_RUNS, "A run spec, repeatable: variant[,key=value...] with keys "
                              "the fields of svae_tf.model.config.ModelConfig, " + ", ".join(TRAIN_KEYS)
                              + " and the fields of svae_tf.model.presets.Preset.", **f)
    flags.DEFINE_integer("steps", 600, "Train steps per run (batch 100).", **f)
    flags.DEFINE_integer("every", 100, "Record the probe every N steps (the runs' epoch length); divides --steps.",
                         **f)
    flags.DEFINE_integer("probe_steps", 100, "Discriminator-only steps with a frozen encoder/decoder at the end.",
                         **f)
    flags.DEFINE_integer("seed", 0, "Seed of weights, noise and data order.", **f)
    flags.DEFINE_enum("dataset", "mnist", ["mnist", "cifar10"],
                      "Real data to train on; run specs' presets must fit it.", **f)
    flags.DEFINE_integer("batch_size", 100, "Batch size.", **f)
    flags.DEFINE_integer("take", None, "Use only the first N examples of each split (TrainConfig.take; tests).", **f)
    flags.DEFINE_enum("eval_split", "test", list(config.HOLDOUTS), "Split of the held-out numbers: test "
                      "(training on all of train), or validation (training on train without it; "
                      "datasets.DatasetSpec.validation_split). The runs' TrainConfig.holdout.", **f)
    flags.DEFINE_integer("quality_samples", 1000, "Samples scored for IS/FID at the end (0: none; needs the "
                         "MNIST classifier of `python -m trainers.classifier`).", **f)
    flags.DEFINE_string("data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR).", **f)
    flags.DEFINE_string("output", None, "Write OUTPUT.json and OUTPUT.md (benchmarks.report), e.g. "
                        "benchmarks/results/screens/collapse/mode_collapse (see benchmarks/results/README.md).",
                        **f)


def _value(text, kind):
    """A run-spec value as the field's kind ("float", "int", "bool", "str", "enum"); preset
    fields (kind None) by their default's type."""
    if kind == "bool" or isinstance(kind, bool):
        return {"true": True, "false": False}[text.lower()]
    if kind == "int" or (isinstance(kind, int) and not isinstance(kind, bool)):
        return int(text)
    if kind == "float" or isinstance(kind, float):
        return float(text)
    return text


def _fields():
    """{spec key: (where, kind)}: where is "model", "train" or "preset"."""
    out = {f.name: ("model", f.metadata["kind"]) for f in config.flag_fields(config.ModelConfig)
           if f.name not in ("variant", "seed")}
    out.update({name: ("train", next(f.metadata["kind"] for f in config.flag_fields(config.TrainConfig)
                                     if f.name == name)) for name in TRAIN_KEYS})
    defaults = presets.get_preset("mnist")
    out.update({name: ("preset", getattr(defaults, name)) for name in PRESET_KEYS})
    return out


def parse_run(spec, dataset="mnist", seed=0):
    """'ali,beta1=0.5' -> (ModelConfig, {TrainConfig field: value}). Raises ValueError
    naming the entry."""
    variant, *pairs = spec.split(",")
    if variant not in variants.names():
        raise ValueError(f"--run={spec!r}: variant must be one of {list(variants.names())}.")
    fields, where = _fields(), {"model": {}, "train": {}, "preset": {}}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--run={spec!r}: {pair!r} is not key=value with key in {list(fields)}.")
        try:
            where[fields[key][0]][key] = _value(value, fields[key][1])
        except (KeyError, ValueError) as err:
            raise ValueError(f"--run={spec!r}: bad value in {pair!r}.") from err
    model = where["model"]
    model.setdefault("preset", dataset)
    fits = [n for n, p in presets.PRESETS.items() if p.image_shape == presets.PRESETS[dataset].image_shape]
    if model["preset"] not in fits:
        raise ValueError(f"--run={spec!r}: preset must be one of {fits} (--dataset={dataset}).")
    try:
        model_config = config.ModelConfig(variant=variant, seed=seed, preset_overrides=where["preset"], **model)
        model_config.get_preset()
        config.TrainConfig(**where["train"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"--run={spec!r}: {err}") from err
    return model_config, where["train"]


def train_config(settings, model_dir, args):
    """The TrainConfig of a run: the spec's `settings`, --steps in epochs of --every steps."""
    if args.steps % args.every:
        raise app.UsageError(f"--every={args.every} must divide --steps={args.steps}.")
    return config.TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, take=args.take, batch_size=args.batch_size,
        epochs=args.steps // args.every,
        steps_per_epoch=args.every, eval_batches=1, holdout=args.eval_split, model_dir=model_dir,
        checkpoint_every_steps=0,
        keep_checkpoints=1, log_every_steps=args.every, num_grid_images=16, verbose=0, **settings)


def spread(batch):
    """Mean over pixels of the std over the batch: [N, H, W, C] -> float."""
    return float(np.std(np.asarray(batch), axis=0).mean())


class Probe(keras.callbacks.Callback):
    """At every epoch end: the sample spread at the fixed z and the epoch's mean losses."""

    def __init__(self, fixed_z, label, every):
        super().__init__()
        self.fixed_z, self.label, self.every, self.trajectory = fixed_z, label, every, []

    def on_epoch_end(self, epoch, logs=None):
        with self.model.ema_scope():  # the weights sampling uses (the moving average, if any)
            point = {"step": (epoch + 1) * self.every,
                     "sample_spread": spread(self.model.sample(len(self.fixed_z), noise=self.fixed_z))}
        point.update({k: None if (logs or {}).get(k) is None else float(logs[k]) for k in ("d_loss", "g_loss")})
        self.trajectory.append(point)
        print(f"  {self.label} step {point['step']}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in point.items() if k != "step" and v is not None), flush=True)


def run(spec, test_images, args):
    """One run: train `spec` with `train_lib.train` (every run sees the same data order),
    probe it; returns (PNG grid of its samples, result dict)."""
    model_config, settings = parse_run(spec, args.dataset, args.seed)
    fixed_z = tf.random.stateless_normal((64, model_config.get_preset().z_dim), seed=(args.seed, 1))
    probe = Probe(fixed_z, spec, args.every)
    with tempfile.TemporaryDirectory(prefix="mode_collapse_") as model_dir:
        start = time.perf_counter()
        tc = train_config(settings, model_dir, args)
        trained = train_lib.train(model_config, tc, callbacks=[probe])
        model = trained["model"]
        seconds = time.perf_counter() - start
    stream = iter(data.training_stream(args.dataset, split=train_split(args), batch_size=args.batch_size,
                                       seed=args.seed, start=args.steps, data_dir=args.data_dir, take=args.take))
    zq_spread = rmse = neg_elbo = None
    with model.ema_scope():
        if model.encoder is not None:
            _, z_q = model.encode(test_images)  # [256, z_dim]
            zq_spread = float(np.std(z_q.numpy(), axis=0).mean())
            rmse = likelihood.reconstruction_rmses(model, [test_images])
            neg_elbo = -float(tf.reduce_mean(model.elbo(test_images, seed=args.seed)))
        quality = sample_quality(model, args)
        grid = images.encode_png(images.image_grid(model.sample(len(fixed_z), noise=fixed_z).numpy(), columns=8))
    return grid, dict(run=spec, variant=model_config.variant, model_config=dataclasses.asdict(model_config),
                      train_settings=settings, train_split=train_split(args), weights_sha256=trained["weights_sha256"],
                      trajectory=probe.trajectory, seconds=seconds, zq_spread=zq_spread,
                      frozen_d_loss=frozen_discriminator_loss(model, stream, args.probe_steps), rmse=rmse,
                      neg_elbo=neg_elbo, **quality)


def frozen_discriminator_loss(model, iterator, probe_steps):
    """The discriminator's loss over the last quarter of `--probe_steps` updates of it
    alone (the encoder and decoder frozen); None without a discriminator."""
    if model.discriminator is None:
        return None
    d_step = tf.function(model.discriminator_step)
    model.reset_metrics()
    tail = max(1, probe_steps // 4)
    for step in range(probe_steps):
        if step == probe_steps - tail:
            model.reset_metrics()
        d_step(next(iterator))
    return float(model.get_metrics_result()["d_loss"])


def sample_quality(model, args):
    """IS and FID of `--quality_samples` samples under the project's MNIST classifier
    (reference: the MNIST test set), or {} when it is off or not trained."""
    if not args.quality_samples or args.dataset != "mnist":
        return {}
    from svae_tf.evaluation import classifiers

    try:
        extractor = classifiers.MnistClassifier.load()
    except FileNotFoundError as err:
        print(f"  no IS/FID: {err}")
        return {}
    test = data.load_images("mnist", args.eval_split, batch_size=500, data_dir=args.data_dir)
    _, reference = classifiers.activations(extractor, test)
    z = tf.random.stateless_normal((args.quality_samples, model.preset.z_dim), seed=(args.seed, 7))
    batches = (model.sample(500, noise=z[i:i + 500]) for i in range(0, args.quality_samples, 500))
    scores = classifiers.sample_quality(extractor, batches, reference)
    return dict(inception_score=scores["inception_score"], fid=scores["fid"])


def markdown(results, reference, args):
    lines = [
        f"# Mode-collapse probe: {args.dataset}, adversarial variants",
        "",
        f"Real {args.dataset} (TFDS), batch {args.batch_size}, "
        f"seed {args.seed}, {args.steps} steps per run. Trained on split `{train_split(args)}`; z_q spread, RMSE, "
        f"-ELBO and FID's reference from split `{args.eval_split}` ({eval_split_rows(args)}). "
        f"`sample_spread` of 64 real {args.eval_split} images: "
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
        lines.append(
            f"| {r['run']} | " + " | ".join(f"{p['sample_spread']:.4f}" for p in r["trajectory"])
            + f" | {fmt(r['trajectory'][-1]['d_loss'], '.3f')} | {fmt(r['zq_spread'], '.3f')}"
            + f" | {fmt(r['frozen_d_loss'], '.3f')} | {fmt(r.get('inception_score'), '.2f')}"
            + f" | {fmt(r.get('fid'), '.1f')} | {rmse} | {fmt(r.get('neg_elbo'), '.1f')} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def train_split(args):
    """The training split of the runs: all of train, or train without validation."""
    return "train" if args.eval_split == "test" else data.TRAIN_WITHOUT_VALIDATION


def eval_split_rows(args):
    """The TFDS split strings of the training and held-out splits, e.g. 'train[:50000] / train[50000:]'."""
    if args.eval_split == "test":
        return "train / test"
    return " / ".join(data.validation_splits(args.dataset))


def main(args):
    """The probe on the flags `args` (`svae_tf.cli.run`)."""
    started = report.start()
    for spec in args.run:
        parse_run(spec, args.dataset, args.seed)  # fail before any training
    train_config(settings={}, model_dir=None, args=args)
    test_images = next(iter(data.load_images(args.dataset, args.eval_split, batch_size=256,
                                             data_dir=args.data_dir)))
    reference = spread(test_images[:64])
    print(f"trained on {train_split(args)}, held-out numbers from {args.eval_split} ({eval_split_rows(args)}); "
          f"sample_spread of 64 real {args.eval_split} images: {reference:.4f}")
    outputs = [run(spec, test_images, args) for spec in args.run]  # (PNG grid, result) each
    grids, results = [grid for grid, _ in outputs], [result for _, result in outputs]
    table = markdown(results, reference, args)
    print(table)
    if args.output:
        settings = {name: getattr(args, name) for name in (
            "dataset", "batch_size", "steps", "every", "probe_steps", "seed", "quality_samples", "eval_split")}
        settings.update(train_split=train_split(args), splits=eval_split_rows(args))
        samples = f"{os.path.basename(report.paths(args.output)[0])[:-len('.json')]}_samples"
        files = {}
        for index, (result, grid) in enumerate(zip(results, grids)):  # the 64 probe samples of each run
            result["samples_png"] = f"{samples}/{index}.png"
            files[result["samples_png"]] = grid
        table += "\nSamples at the end (the 64 fixed z of `sample_spread`), one grid per run: " + ", ".join(
            f"[{index}]({name})" for index, name in enumerate(files)) + ".\n"
        report.write_report(args.output, dict(settings=settings, real_sample_spread=reference, runs=results),
                            table, started=started, files=files)
        print(f"wrote {report.paths(args.output)}")


if __name__ == "__main__":
    cli.run(main, define_flags)
