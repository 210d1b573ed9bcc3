"""Train the MNIST classifier used for the Inception score and FID of MNIST samples.

    python -m trainers.classifier [--output=PATH | --cache_dir=DIR] [--data_dir=DIR]
                                  [--epochs=10] [--batch_size=100] [--force]

Trains `svae_tf.evaluation.classifiers.build_mnist_classifier` on the real MNIST training set
(grey levels in [0, 1], no augmentation; Adam with a cosine-decayed learning rate),
then reports its test accuracy and the Inception score of the real MNIST test set
under it (10 contiguous splits; `ChunyuanLI/MNIST_Inception_Score` reports
9.88 +- 0.06 for its classifier). The model is saved to PATH (`.keras`, written to a
temporary file and renamed) with a sidecar PATH.json holding these numbers and the
classifier's provenance: the command that trains it again, its settings, the Keras and
TensorFlow versions, and the sha256 of the saved file. The sidecar is written before the
model is renamed into place, so an interrupted run leaves neither at PATH.

It is trained once and reused: if PATH exists, it is loaded and only evaluated
(pass --force to retrain). Default PATH: $SVAE_TF_CACHE_DIR or ~/.cache/svae_tf,
file `mnist_classifier.keras`; `--cache_dir` changes the directory.
"""

import datetime
import json
import math
import os
import sys
import time

from absl import app, flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from svae_tf.evaluation import classifiers, metrics
from svae_tf.data import pipelines as data
from svae_tf.utils import files  # noqa: E402

NUM_TRAIN = 60000


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("output", None, "Where to save the .keras model (default: in --cache_dir).", **f)
    flags.DEFINE_string("cache_dir", None, "Directory of the default --output.", **f)
    flags.DEFINE_string("data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR).", **f)
    flags.DEFINE_integer("epochs", 10, "Training epochs.", **f)
    flags.DEFINE_integer("batch_size", 100, "Training batch size.", **f)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam's initial learning rate (cosine-decayed).", **f)
    flags.DEFINE_integer("steps_per_epoch", None, "Default: one pass over the (taken) training set.", **f)
    flags.DEFINE_integer("take", None, "Use only the first N training images.", **f)
    flags.DEFINE_integer("test_take", None, "Evaluate on the first N test images.", **f)
    flags.DEFINE_integer("splits", 10, "Inception-score splits.", **f)
    flags.DEFINE_integer("seed", 0, "Seed of the weights and the data order.", **f)
    flags.DEFINE_boolean("force", False, "Retrain even if --output exists.", **f)
    flags.DEFINE_integer("verbose", 2, "Keras fit verbosity.", **f)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)


def parse_args(argv):
    """The flags of a command line (without the program name), as a namespace whose
    `output` is the model's path (`output_path`)."""
    args = cli.parse(define_flags, argv)
    args.output = output_path(args)
    return args


def output_path(args):
    """--output, or the default path in --cache_dir; app.UsageError unless it ends in .keras."""
    path = os.path.expanduser(args.output or classifiers.default_mnist_classifier_path(args.cache_dir))
    if not path.endswith(".keras"):
        raise app.UsageError(f"--output must end with .keras, got {path!r}")
    return path


def evaluate(model, data_dir=None, take=None, splits=10, batch_size=500):
    """Test accuracy and the real test set's Inception score (mean, std) under `model`."""
    extractor = classifiers.MnistClassifier(model)
    ds = data.load_images("mnist", "test", batch_size=batch_size, data_dir=data_dir,
                          with_labels=True, take=take)
    logits, labels = [], []
    for images, batch_labels in ds:
        logits.append(np.asarray(extractor(images)[0], np.float64))
        labels.append(batch_labels.numpy())
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    is_mean, is_std = metrics.inception_score(logits, min(splits, logits.shape[0]))
    return {"test_accuracy": accuracy, "real_test_inception_score": is_mean,
            "real_test_inception_score_std": is_std, "num_test": int(labels.size),
            "splits": min(splits, logits.shape[0])}


def train(args):
    keras.utils.set_random_seed(args.seed)
    num_train = min(NUM_TRAIN, args.take) if args.take else NUM_TRAIN
    steps_per_epoch = args.steps_per_epoch or math.ceil(num_train / args.batch_size)
    ds = data.load_images("mnist", "train", batch_size=args.batch_size, data_dir=args.data_dir,
                          shuffle=True, seed=args.seed, repeat=True, with_labels=True,
                          take=args.take)
    model = classifiers.build_mnist_classifier(seed=args.seed)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=max(1, args.epochs * steps_per_epoch), alpha=0.01
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    start = time.time()
    model.fit(ds, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=args.verbose,
              shuffle=False)  # the dataset is shuffled already
    return model, {"train_seconds": time.time() - start, "epochs": args.epochs,
                   "steps_per_epoch": steps_per_epoch, "batch_size": args.batch_size,
                   "learning_rate": args.learning_rate, "num_train": num_train, "seed": args.seed}


def _save_inference(model, path):
    """The network (without optimizer state) as `.keras` at `path`, not atomically."""
    inference = classifiers.build_mnist_classifier()  # same network, no optimizer state
    inference.set_weights(model.get_weights())
    inference.save(path)


def save(model, path):
    """Save the network (without optimizer state) as `.keras`, atomically: a temporary
    name in the same directory, then a rename."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with files.atomic_path(path, suffix=".keras") as tmp:  # Keras wants the extension
        _save_inference(model, tmp)


def command(args):
    """The command line that trains this classifier again (its training settings)."""
    parts = ["python -m trainers.classifier", f"--output={args.output}", f"--epochs={args.epochs}",
             f"--batch_size={args.batch_size}", f"--learning_rate={args.learning_rate}", f"--seed={args.seed}"]
    for name in ("steps_per_epoch", "take", "test_take"):
        if getattr(args, name) is not None:
            parts.append(f"--{name}={getattr(args, name)}")
    if args.splits != 10:
        parts.append(f"--splits={args.splits}")
    return " ".join(parts)


def provenance(args, path, trained_by):
    """What the sidecar says about how the file at `path` came to be."""
    return {"command": command(args), "trained_by": trained_by, "sha256": classifiers.file_sha256(path),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "keras_version": keras.__version__, "tensorflow_version": tf.__version__}


def run(args, trained_by="python -m trainers.classifier"):
    """Train (or reuse) the classifier at `args.output` and evaluate it; returns the report
    also written to OUTPUT.json (`classifiers.provenance_path`). `args`: the flags
    (`parse_args`); `trained_by`: who asked for the training, recorded in the sidecar.

    A new classifier is saved under a temporary name, evaluated, its sidecar written, and
    only then renamed to `args.output`: an interruption at any point before leaves no
    file at `args.output` (and a reader never finds a half-written one)."""
    sidecar = classifiers.provenance_path(args.output)
    if os.path.exists(args.output) and not args.force:
        print(f"Reusing the classifier at {args.output} (pass --force to retrain).")
        model = keras.saving.load_model(args.output, compile=False)
        report = classifiers.read_provenance(args.output) or {}
        report.update(evaluate(model, args.data_dir, args.test_take, args.splits))
        report.update(path=args.output, sha256=classifiers.file_sha256(args.output))
        files.write_json(sidecar, report)
    else:
        model, report = train(args)
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with files.atomic_path(args.output, suffix=".keras") as tmp:  # renamed when the block ends
            _save_inference(model, tmp)
            report.update(evaluate(model, args.data_dir, args.test_take, args.splits))
            report.update(provenance(args, tmp, trained_by), path=args.output)
            files.write_json(sidecar, report)
    print(
        f"MNIST classifier {args.output}: test accuracy {report['test_accuracy']:.4f}, "
        f"real test-set Inception score {report['real_test_inception_score']:.3f} "
        f"+- {report['real_test_inception_score_std']:.3f} ({report['splits']} splits, "
        f"{report['num_test']} images)"
        + (f", trained in {report['train_seconds']:.0f} s" if "train_seconds" in report else "")
    )
    return report


def main(args):
    """`run` on the command line's flags (`svae_tf.cli.run`)."""
    args.output = output_path(args)
    run(args)


if __name__ == "__main__":
    cli.run(main, define_flags, errors=(FileNotFoundError,))
