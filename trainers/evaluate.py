"""Evaluate a trained run: NLL (IWAE / ELBO), reconstruction RMSE, Inception score and FID.

    python -m trainers.evaluate --model_dir=DIR [--dataset=mnist] [--json=PATH]
        [--iw_samples=5000] [--num_samples=10000] [--splits=10] [--batch_size=100]
        [--classifier=PATH|mnist_cnn|inception_v3] [--inception_weights=PATH]

Loads the newest checkpoint of DIR (`runs.load_model`) and computes, on the test
split of the dataset (MNIST: 10,000 images; without --dataset, the run's, `default_dataset`):

* nll_nats: -mean_x L_K(x), the importance-weighted bound with K = --iw_samples
  samples of q(z|x) (`svae_tf.evaluation.likelihood`); nll_bits_per_dim = nll_nats / (D ln 2).
  MNIST (Bernoulli decoder) scores the *statically binarized* test set of
  `data.load_images(..., binarize="static")`: pixel = 1 iff u < grey/255 with
  u ~ U[0,1) from Philox seed (data.STATIC_BINARIZATION_SEED = 20170517, image
  index); the encoder sees the same binary image unless --encoder_input=grey.
  8-bit data score the integer levels (discretized logistic) or dequantized
  pixels (Gaussian heads, -D log 256 included).
* elbo: mean over images of (1/K) sum_k log w_k, the ELBO (1) in nats (a lower
  bound on log p(x), so negative; -elbo >= nll_nats).
* rmse: reconstruction x -> z = T(mu(x)) -> decoder mean, on the grey-level test
  images, sqrt(mean((255 (x - x_hat))^2)) over all pixels of all images
  (`metrics.rmse_255`; one global mean). rmse_batch_stats: the same with batch norm
  normalising by each batch's statistics (--batch_size images), as in training; close
  to rmse when the moving statistics that inference uses match training's.
* inception_score (+ _std) and fid of --num_samples decoder means at z ~ N(0, I),
  under the dataset's classifier (`DatasetSpec.classifier`, `svae_tf.evaluation.classifiers`: the
  project's MNIST CNN for mnist, else Keras InceptionV3 at 299x299), 10 contiguous
  splits, FID against the whole test split's features. The MNIST CNN is trained on first use: if it is not at
  its default path (--cache_dir, $SVAE_TF_CACHE_DIR or ~/.cache/svae_tf), this program
  trains it there with `trainers.classifier.run` (its defaults: the command
  `python -m trainers.classifier`, a few CPU minutes), says so, and goes on; later
  evaluations reuse it. An explicit --classifier=PATH that does not exist is an error.

* refit (with --refit_encoder_steps=N): the encoder and its flow refitted to the fixed
  decoder on the ELBO (1) of the training split, N Adam steps (`svae_tf.evaluation.refit`; the
  amortisation gap of Cremer et al. 2018), after every number above; then nll_nats,
  elbo, rmse and rmse_batch_stats again, under "refit" with the refit's settings and
  seconds. Samples, IS and FID are the decoder's and do not change.

Decoder-only variants (gan, wgan_gp) have no encoder: nll, elbo and rmse are null.
The JSON is written atomically (temporary file + rename) and a Markdown table row
is printed.
"""

import hashlib
import io
import json
import math
import os
import sys
import time

from absl import flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from svae_tf.evaluation import classifiers, likelihood, metrics, refit
from svae_tf.data import pipelines as data, datasets
from svae_tf.utils import files
from svae_tf import runs  # noqa: E402
from trainers import classifier as classifier_trainer  # noqa: E402
from trainers import train_lib  # noqa: E402

REQUIRED_KEYS = (
    "nll_nats", "nll_bits_per_dim", "elbo", "rmse", "rmse_batch_stats", "inception_score",
    "inception_score_std", "fid", "num_samples",
)

CONVENTIONS = {
    "nll": "-mean over test images of the IWAE bound log (1/K) sum_k p(x,z_k)/q(z_k|x), "
           "z_k ~ q(z|x) (flow included); nats per image; bits/dim = nats / (D ln 2)",
    "elbo": "mean over test images of (1/K) sum_k log w_k, eq. (1), nats (a lower bound on log p(x))",
    "rmse": "0-255 scale, sqrt of the mean over all pixels/channels/images of (255 (x - x_hat))^2; "
            "x = grey-level test image, x_hat = decoder mean at z = T(mu(x)) (encoder mean through the flow)",
    "rmse_batch_stats": "rmse with the encoder and decoder in training mode, batch norm by the statistics "
                        "of each batch as the train step forms it (--batch_size images; sVAE-r's decoder "
                        "on [z_p; z_q]); moving averages left unchanged",
    "batch_norm_batches": "present when --batch_norm_batches > 0: every number here was measured after "
                          "batch norm's moving statistics were recomputed from that many training batches",
    "inception_score": "exp(E KL(p(y|x) || p(y))) from classifier logits, contiguous splits, "
                       "mean and population std over splits",
    "fid": "Frechet distance between Gaussians (mean, unbiased covariance, float64) fitted to the "
           "classifier features of the samples and of the whole test split",
    "samples": "decoder means E[p(x|z)] at z ~ N(0, I) (stateless seed)",
    "refit": "present with --refit_encoder_steps > 0: nll_nats, elbo, rmse, rmse_batch_stats after the "
             "encoder and flow were refitted to the fixed decoder on the training split's ELBO (1) "
             "(svae_tf.evaluation.refit), measured after every top-level number",
}


# ------------------------------------------------------------------ flags
def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("model_dir", None, "The training run to evaluate (required).", **f)
    flags.mark_flag_as_required("model_dir", flag_values=flag_values)
    flags.DEFINE_string("dataset", None, "A dataset of svae_tf.data.datasets (default: the one the run trained "
                        "on, from its flags.json; for a folder or resized run, or one without flags.json, "
                        "the dataset named like its preset).", **f)
    flags.DEFINE_string("data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR).", **f)
    flags.DEFINE_string("split", "test", "The split scored.", **f)
    flags.DEFINE_string("json", None, "Write the results here (default MODEL_DIR/eval.json).", **f)
    flags.DEFINE_integer("iw_samples", 5000, "K of the IWAE bound.", **f)
    flags.DEFINE_integer("num_nll_images", None, "Bound the NLL on the first N test images only (default: all).", **f)
    flags.DEFINE_integer("nll_batch_size", 50, "Images per batch of the NLL bound.", **f)
    flags.DEFINE_integer("max_chunk_elements", likelihood.DEFAULT_MAX_CHUNK_ELEMENTS,
                         "Decoder passes per chunk of the K samples (memory bound).", **f)
    flags.DEFINE_enum("encoder_input", "binary", ["binary", "grey"],
                      "Bernoulli models: what q(z|x) sees when bounding log p(binary x).", **f)
    flags.DEFINE_integer("num_rmse_images", None, "Test images for the RMSE (default: all).", **f)
    flags.DEFINE_integer("num_samples", 10000, "Generated images for IS / FID.", **f)
    flags.DEFINE_integer("num_reference", None, "Real test images for the FID statistics (default: all).", **f)
    flags.DEFINE_integer("splits", 10, "Inception-score splits.", **f)
    flags.DEFINE_integer("batch_size", 100, "Batch for samples, RMSE, classifier.", **f)
    flags.DEFINE_string("classifier", None,
                        "mnist_cnn (default for mnist: the one at --cache_dir, trained there on first use) | "
                        "inception_v3 | PATH of a saved MNIST classifier (an error if it does not exist).", **f)
    flags.DEFINE_string("inception_weights", "imagenet",
                        "'imagenet' (Keras download / ~/.keras/models cache) or a weights file path.", **f)
    flags.DEFINE_string("cache_dir", None, "Classifier and FID-reference cache "
                        "(default $SVAE_TF_CACHE_DIR or ~/.cache/svae_tf).", **f)
    flags.DEFINE_boolean("no_quality", False, "Skip the Inception score and FID.", **f)
    flags.DEFINE_integer("batch_norm_batches", 0, "Before scoring, replace batch norm's moving statistics by the "
                         "mean batch statistics of the train step's forward passes over the first N "
                         "training batches of --batch_size (SymmetricVAE.recompute_batch_norm_statistics); "
                         "0 keeps the checkpoint's statistics (a trainer run with its default "
                         "--batch_norm_batches=100 already holds population statistics).", lower_bound=0, **f)
    flags.DEFINE_integer("refit_encoder_steps", 0, "After the other numbers, refit the encoder and its flow to "
                         "the fixed decoder with this many Adam steps on the training split's ELBO (1) "
                         "(batches of --batch_size; svae_tf.evaluation.refit) and measure NLL, ELBO and RMSE again, "
                         "under \"refit\" in the JSON; 0: no refit. The checkpoint is not changed.",
                         lower_bound=0, **f)
    flags.DEFINE_float("refit_learning_rate", refit.DEFAULT_LEARNING_RATE, "Adam learning rate of the refit.",
                       lower_bound=0.0, **f)
    flags.DEFINE_integer("seed", 0, "Seed of the samples and of the likelihood noise.", **f)
    flags.DEFINE_string("name", None, "Row label in the Markdown table (default: model_dir).", **f)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)


def parse_args(argv):
    """The flags of a command line (without the program name), as a namespace."""
    return cli.parse(define_flags, argv)


# --------------------------------------------------------------- the run
def load_run(model_dir):
    """(model, config, `runs.CheckpointInfo` of the checkpoint restored) of a run;
    FileNotFoundError with a clear message."""
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(
            f"--model_dir {model_dir!r} does not exist; give the model_dir of a training run "
            "(python -m trainers.mnist --model_dir=...)."
        )
    config = runs.load_config(model_dir)
    model = runs.load_model(model_dir)
    return model, config, runs.checkpoint_info(model_dir)


def default_dataset(model_dir, config, image_shape):
    """The dataset a run is evaluated on without --dataset: the one it trained on (its
    flags.json), if that has a test split and images of the model's `image_shape` as
    stored; else (a folder, a resized dataset, no flags.json) the dataset named like the
    run's preset. ValueError if the run's dataset is not registered in this process."""
    try:
        with open(os.path.join(model_dir, train_lib.FLAGS_JSON)) as f:
            trained_on = json.load(f).get("dataset")
    except FileNotFoundError:
        trained_on = None
    spec = datasets.get(trained_on) if trained_on else None
    if spec is not None and not spec.single_split and spec.shape == tuple(image_shape):
        return trained_on
    return config.preset


def recompute_batch_norm(model, dataset, args):
    """Population batch-norm statistics from the first `--batch_norm_batches` training
    batches (the weights as loaded: the moving average under EMA); returns the count."""
    batches = data.batch_norm_batches(dataset, args.batch_norm_batches, batch_size=args.batch_size,
                                      data_dir=args.data_dir)
    return model.recompute_batch_norm_statistics(batches, seed=args.seed)


def ensure_default_classifier(dataset, args, cache_dir, train_flags=()):
    """Train the MNIST classifier at its default path in `cache_dir` if evaluation will use
    it and it is not there (`trainers.classifier.run` with its defaults, in this process);
    returns its report (test accuracy, provenance), or None when nothing was trained.

    Only the default path is trained to: an explicit --classifier=PATH is the user's, and
    `classifiers.make_extractor` reports it missing. `train_flags`: more flags of
    `trainers.classifier` (tests train a tiny one); they are recorded in its sidecar."""
    if args.no_quality or classifiers.classifier_kind(dataset, args.classifier) != "mnist_cnn":
        return None
    path = classifiers.default_mnist_classifier_path(cache_dir)
    if os.path.exists(path):
        return None
    argv = [f"--output={path}", f"--verbose={1 if sys.stdout.isatty() else 2}", *train_flags]
    if args.data_dir:
        argv.append(f"--data_dir={args.data_dir}")
    clf_args = classifier_trainer.parse_args(argv)
    steps = clf_args.steps_per_epoch or math.ceil(
        min(classifier_trainer.NUM_TRAIN, clf_args.take or classifier_trainer.NUM_TRAIN) / clf_args.batch_size)
    print(f"No MNIST classifier for the Inception score and FID at {path}: training it once "
          f"(`python -m trainers.classifier`: {clf_args.epochs} epochs of {steps} steps, a few CPU minutes "
          "at the defaults); later evaluations reuse it.", flush=True)
    report = classifier_trainer.run(clf_args, trained_by="python -m trainers.evaluate (first use)")
    print(f"Cached the MNIST classifier at {path} (test accuracy {report['test_accuracy']:.4f}, "
          f"sha256 {report['sha256'][:12]}...; provenance in {classifiers.provenance_path(path)}). "
          "Continuing the evaluation.", flush=True)
    return report


# ------------------------------------------------------------ the metrics
def nll(model, dataset, args):
    """NLL / ELBO of the test split (dict of floats and settings)."""
    bernoulli = model.preset.likelihood == "bernoulli"
    binarize = "static" if bernoulli else "none"
    kwargs = dict(batch_size=args.nll_batch_size, data_dir=args.data_dir, take=args.num_nll_images)
    targets = data.load_images(dataset, args.split, binarize=binarize, **kwargs)
    if bernoulli and args.encoder_input == "grey":
        batches = tf.data.Dataset.zip(data.load_images(dataset, args.split, **kwargs), targets)
    else:
        batches = targets
    evaluator = likelihood.LikelihoodEvaluator(model, args.iw_samples,
                                               max_chunk_elements=args.max_chunk_elements)
    bounds = evaluator.evaluate(batches, seed=args.seed)
    out = likelihood.summarize(bounds, model.preset.num_dims)
    out["binarization"] = (
        {"kind": "static", "rule": "pixel = 1 iff u < grey/255, u ~ U[0,1) by "
         "tf.random.stateless_uniform(seed=(STATIC_BINARIZATION_SEED, index), alg='philox')",
         "seed": data.STATIC_BINARIZATION_SEED, "encoder_input": args.encoder_input}
        if bernoulli else {"kind": "none", "target": model.preset.likelihood}
    )
    return out


def likelihood_and_rmse(model, dataset, args):
    """{nll_nats, elbo, ..., rmse, rmse_batch_stats} of the test split, and {"nll", "rmse"} seconds."""
    start = time.time()
    out = nll(model, dataset, args)
    seconds = {"nll": time.time() - start}
    start = time.time()
    rmse_images = data.load_images(dataset, args.split, batch_size=args.batch_size,
                                   data_dir=args.data_dir, take=args.num_rmse_images)
    rmse = likelihood.reconstruction_rmses(model, rmse_images)
    out["rmse"], out["rmse_batch_stats"] = rmse["inference"], rmse["batch_stats"]
    seconds["rmse"] = time.time() - start
    return out, seconds


def refit_and_score(model, dataset, args):
    """The encoder refitted to the fixed decoder (`svae_tf.evaluation.refit`, on the training split in
    order, repeated), then `likelihood_and_rmse` again: the "refit" entry of the JSON."""
    batches = data.load_images(dataset, "train", batch_size=args.batch_size, data_dir=args.data_dir,
                               drop_remainder=True).repeat()
    population = data.batch_norm_batches(dataset, refit.BATCH_NORM_BATCHES, batch_size=args.batch_size,
                                         data_dir=args.data_dir)
    out = refit.refit_encoder(model, batches, args.refit_encoder_steps, args.refit_learning_rate,
                              batch_norm_batches=population, seed=args.seed)
    out["batch_size"] = args.batch_size
    scores, seconds = likelihood_and_rmse(model, dataset, args)
    out.update(scores, score_seconds=seconds)
    return out


def generated_batches(model, num_samples, batch_size, seed):
    """Decoder means at z ~ N(0, I), drawn with stateless seeds (seed, 1) folded with the batch."""
    base = tf.constant([seed, 1], tf.int64)
    for i, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        z = tf.random.stateless_normal(
            [n, model.preset.z_dim], seed=tf.random.experimental.stateless_fold_in(base, i)
        )
        yield model.sample(n, noise=z)


def _cache_key(extractor, dataset, split, num_reference):
    info = {k: v for k, v in extractor.info().items() if k != "provenance"}  # the file, not its report
    ident = json.dumps(info, sort_keys=True)
    for path in (getattr(extractor, "path", None), getattr(extractor, "weights", None)):
        if path and os.path.exists(str(path)):
            stat = os.stat(path)
            ident += f"|{stat.st_size}|{stat.st_mtime_ns}"
    ident += f"|{dataset}|{split}|{num_reference}"
    return hashlib.sha1(ident.encode()).hexdigest()[:16]


def reference_statistics(extractor, dataset, split, data_dir, batch_size, num_reference=None,
                         cache_dir=None):
    """Mean and covariance of the real images' features, and their Inception score.

    Cached (npz) in `cache_dir` keyed by the classifier (path, size, mtime), dataset,
    split and count; not cached for random-weight extractors.
    """
    cacheable = cache_dir is not None and getattr(extractor, "weights", "file") is not None
    path = None
    if cacheable:
        path = os.path.join(cache_dir, f"fid_reference_{dataset}_{_cache_key(extractor, dataset, split, num_reference)}.npz")
        if os.path.exists(path):
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
    images = data.load_images(dataset, split, batch_size=batch_size, data_dir=data_dir, take=num_reference)
    logits, features = classifiers.activations(extractor, images)
    mu, sigma = metrics.gaussian_statistics(features)
    is_mean, is_std = metrics.inception_score(logits, min(10, logits.shape[0]))
    stats = {"mu": mu, "sigma": sigma, "inception_score": np.float64(is_mean),
             "inception_score_std": np.float64(is_std), "num": np.int64(logits.shape[0])}
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **stats)
        files.atomic_write(path, buffer.getvalue())
    return stats


# ---------------------------------------------------------------- output
TABLE_HEADER = (
    "| run | variant | steps | NLL (nats) | NLL (bits/dim) | -ELBO (nats) | RMSE | IS | FID | samples | K |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _fmt(value, digits=2):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown_row(results):
    """One row of TABLE_HEADER for a results dict."""
    elbo = results.get("elbo")
    is_text = "n/a"
    if results.get("inception_score") is not None:
        is_text = f"{results['inception_score']:.2f} ± {results['inception_score_std']:.2f}"
    return (
        f"| {results.get('name', results['model_dir'])} | {results['variant']} | "
        f"{results.get('train_steps') if results.get('train_steps') is not None else 'n/a'} | "
        f"{_fmt(results.get('nll_nats'))} | {_fmt(results.get('nll_bits_per_dim'), 3)} | "
        f"{_fmt(None if elbo is None else -elbo)} | {_fmt(results.get('rmse'))} | {is_text} | "
        f"{_fmt(results.get('fid'))} | {results.get('num_samples') or 'n/a'} | "
        f"{results['iw_samples'] if results.get('nll_nats') is not None else 'n/a'} |"
    )


def write_json(path, results):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    files.write_json(path, results)


# ------------------------------------------------------------------ main
def run(args, classifier_flags=()):
    """Evaluate and write the JSON; returns the results dict. Raises on missing inputs.

    `args`: the flags (`parse_args`). `classifier_flags`: flags of `trainers.classifier`
    for the MNIST classifier if it is trained on first use (`ensure_default_classifier`)."""
    model, config, checkpoint = load_run(args.model_dir)
    dataset = args.dataset or default_dataset(args.model_dir, config, model.preset.image_shape)
    if tuple(data.image_shape(dataset)) != tuple(model.preset.image_shape):
        raise ValueError(f"dataset {dataset!r} has images {data.image_shape(dataset)}, the model "
                         f"{tuple(model.preset.image_shape)}")
    cache_dir = os.path.expanduser(args.cache_dir) if args.cache_dir else classifiers.default_cache_dir()
    ensure_default_classifier(dataset, args, cache_dir, classifier_flags)
    extractor = None
    if not args.no_quality:  # fail fast on a missing classifier, before the long NLL
        extractor = classifiers.make_extractor(dataset, args.classifier, args.inception_weights, cache_dir)

    results = {
        "name": args.name or os.path.basename(os.path.normpath(args.model_dir)),
        "model_dir": os.path.abspath(args.model_dir), "checkpoint": checkpoint.path,
        "train_steps": checkpoint.steps, "variant": config.variant,
        "config": json.loads(config.to_json()), "dataset": dataset, "split": args.split,
        "iw_samples": args.iw_samples, "splits": args.splits, "seed": args.seed,
        "num_dims": model.preset.num_dims, "likelihood": model.preset.likelihood,
        "conventions": CONVENTIONS, "seconds": {},
    }
    for key in REQUIRED_KEYS:
        results.setdefault(key, None)
    if args.batch_norm_batches:
        results["batch_norm_batches"] = recompute_batch_norm(model, dataset, args)

    if model.encoder is not None:
        scores, seconds = likelihood_and_rmse(model, dataset, args)
        results.update(scores)
        results["seconds"].update(seconds)
        results["num_rmse_images"] = data.num_examples(dataset, args.split, args.data_dir) \
            if args.num_rmse_images is None else args.num_rmse_images
    else:
        results.update(nll_note="decoder-only variant: no q(z|x), so no NLL bound, ELBO or reconstruction")

    if extractor is not None:
        start = time.time()
        reference = reference_statistics(extractor, dataset, args.split, args.data_dir, args.batch_size,
                                         args.num_reference, cache_dir)
        quality = classifiers.sample_quality(
            extractor, generated_batches(model, args.num_samples, args.batch_size, args.seed),
            (reference["mu"], reference["sigma"]), args.splits,
        )
        results.update(quality)
        results.update(classifier=extractor.info(),
                       real_inception_score=float(reference["inception_score"]),
                       real_inception_score_std=float(reference["inception_score_std"]),
                       num_reference=int(reference["num"]))
        results["seconds"]["quality"] = time.time() - start

    if args.refit_encoder_steps and model.encoder is not None:  # last: it changes the encoder
        results["refit"] = refit_and_score(model, dataset, args)

    path = args.json or os.path.join(args.model_dir, "eval.json")
    results["json"] = os.path.abspath(path)
    write_json(path, results)
    print(TABLE_HEADER)
    print(markdown_row(results))
    if "refit" in results:
        print(markdown_row({**results, **results["refit"], "name": f"{results['name']} (encoder refit)"}))
    return results


def main(args):
    """`run`, with the input pipeline's data errors as one line (`svae_tf.cli.run`)."""
    try:
        run(args)
    except tf.errors.InvalidArgumentError as err:  # the input pipeline's data checks
        bad = data.data_error(err)
        if bad is None:
            raise
        raise ValueError(bad) from err


if __name__ == "__main__":
    cli.run(main, define_flags, errors=(FileNotFoundError, ValueError, RuntimeError))
