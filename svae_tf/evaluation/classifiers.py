"""Classifiers for the Inception score and FID, and the one scoring function they share.

An *extractor* maps images [B, H, W, C] in [0, 1] to `(logits [B, classes],
features [B, F])`. The Inception score (`metrics.inception_score`) is computed
from the logits and the Frechet distance (`metrics.frechet_distance`) from
Gaussians fitted to the features; `sample_quality` does both for any extractor,
so datasets differ only by the classifier (each dataset's `DatasetSpec.classifier`,
`svae_tf.data.datasets`):

* MNIST: `MnistClassifier`, a small CNN trained on real MNIST by the project
  (`python -m trainers.classifier`), after `ChunyuanLI/MNIST_Inception_Score`
  (conv5x5-32 + BN + ReLU, max-pool, conv5x5-64 + ReLU, max-pool, FC-1024 + BN
  + ReLU, dropout, FC-10). Logits: its 10 outputs; features: the 1024-d
  penultimate activations (after ReLU, before dropout). Grey levels in [0, 1] are
  shifted to [-0.5, 0.5] inside the network, as in that repository.
* CIFAR-10 / ImageNet: `InceptionV3Extractor`, Keras' `keras.applications.InceptionV3`
  with ImageNet weights: images are scaled to [0, 255], resized to 299x299
  (bilinear, no antialiasing), grey images repeated to 3 channels, and passed
  through `keras.applications.inception_v3.preprocess_input` (to [-1, 1]).
  Logits: the 1000 ImageNet pre-softmax outputs (the top Dense layer, built with
  `classifier_activation=None`); features: the 2048-d global-average-pool
  ("pool3", layer `avg_pool`) output.

Conventions (state them next to any number, see openai/improved-gan #29 and
mseitzer/pytorch-fid #11): the Inception score uses `num_splits` contiguous
splits (10 by default) and reports mean and population std over splits; FID
fits mean and unbiased covariance (float64) to all features of both sets.
"""

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from svae_tf.data import datasets
from svae_tf.evaluation import metrics
from svae_tf.utils import files

MNIST_CLASSIFIER_FILE = "mnist_classifier.keras"
CACHE_DIR_ENV = files.CACHE_DIR_ENV

_FEATURES_LAYER = "features"
_LOGITS_LAYER = "logits"


default_cache_dir = files.cache_dir


def default_mnist_classifier_path(cache_dir=None):
    """Where `trainers.classifier` saves and evaluation looks for the MNIST classifier."""
    return os.path.join(os.path.expanduser(cache_dir or default_cache_dir()), MNIST_CLASSIFIER_FILE)


def provenance_path(path):
    """The sidecar beside a saved classifier (PATH.json): how it was trained (command,
    settings), its test accuracy and the sha256 of the file (`trainers.classifier`)."""
    return path + ".json"


def file_sha256(path):
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_provenance(path):
    """The sidecar of the classifier at `path` as a dict, or None if it is absent or unreadable."""
    try:
        with open(provenance_path(path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def classifier_kind(dataset, classifier=None):
    """What `make_extractor` uses: "mnist_cnn" (the default path), "inception_v3", or the
    path of a saved MNIST classifier. None/""/"auto": the dataset's
    (`svae_tf.data.datasets.DatasetSpec.classifier`)."""
    if classifier in (None, "", "auto"):
        return datasets.get(dataset).classifier
    return classifier


# ------------------------------------------------------------ MNIST classifier
def build_mnist_classifier(dropout=0.3, seed=0):
    """The MNIST CNN: images [B, 28, 28, 1] in [0, 1] -> logits [B, 10].

    Layer "features" holds the 1024-d penultimate activations, layer "logits" the
    output. Only built-in Keras layers, so the saved `.keras` file loads without
    custom objects.
    """
    init = keras.initializers.TruncatedNormal(stddev=0.01, seed=seed)
    images = keras.Input((28, 28, 1), name="images")
    h = keras.layers.Rescaling(1.0, offset=-0.5, name="center")(images)  # [-0.5, 0.5]
    h = keras.layers.Conv2D(32, 5, padding="same", use_bias=False, kernel_initializer=init)(h)
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D(2)(h)  # [B, 14, 14, 32]
    h = keras.layers.Conv2D(64, 5, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)  # [B, 7, 7, 64]
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(1024, use_bias=False, kernel_initializer=init)(h)
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    features = keras.layers.ReLU(name=_FEATURES_LAYER)(h)  # [B, 1024]
    h = keras.layers.Dropout(dropout, seed=seed)(features)
    logits = keras.layers.Dense(10, name=_LOGITS_LAYER)(h)
    return keras.Model(images, logits, name="mnist_classifier")


class MnistClassifier:
    """Extractor over a trained MNIST classifier (a Keras model from `build_mnist_classifier`).

    Calling it on images [B, 28, 28, 1] in [0, 1] returns (logits [B, 10], features [B, 1024]).
    """

    name = "mnist_cnn"
    num_classes = 10
    feature_size = 1024

    def __init__(self, model, path=None):
        self.model = model
        self.path = path
        self.sha256 = None if path is None else file_sha256(path)
        self._both = keras.Model(
            model.inputs, [model.get_layer(_LOGITS_LAYER).output, model.get_layer(_FEATURES_LAYER).output]
        )
        self._call = tf.function(lambda x: self._both(x, training=False), reduce_retracing=True)

    @classmethod
    def load(cls, path=None, cache_dir=None):
        """Load the classifier saved by `python -m trainers.classifier` (FileNotFoundError if absent)."""
        path = os.path.expanduser(path or default_mnist_classifier_path(cache_dir))
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No MNIST classifier at {path!r}. Train it once with "
                f"`python -m trainers.classifier --output={path}` (a few CPU minutes), "
                "or pass --classifier=PATH to a saved one."
            )
        return cls(keras.saving.load_model(path, compile=False), path=path)

    def __call__(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape[-1] == 3:  # RGB -> grey (ITU-R 601 luma), for completeness
            images = tf.image.rgb_to_grayscale(images)
        if tuple(images.shape[1:3]) != (28, 28):
            images = tf.image.resize(images, (28, 28), method="bilinear")
        return self._call(images)

    def info(self):
        """Which classifier this is: its file (path, sha256 of the bytes loaded) and, from the
        sidecar PATH.json, how it was trained (`provenance`: command, settings, test accuracy;
        `sha256_matches` says whether the sidecar describes this very file)."""
        provenance = None
        if self.path is not None:
            saved = read_provenance(self.path)
            if saved is not None:
                keys = ("command", "trained_by", "created", "test_accuracy", "num_test", "epochs",
                        "steps_per_epoch", "batch_size", "learning_rate", "num_train", "seed",
                        "keras_version", "tensorflow_version", "sha256")
                provenance = {k: saved[k] for k in keys if k in saved}
                provenance["sha256_matches"] = saved.get("sha256") == self.sha256
                provenance["file"] = provenance_path(self.path)
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "provenance": provenance,
            "logits": "10 class logits of the project's MNIST CNN (trainers.classifier)",
            "features": "1024-d penultimate activations (FC-1024 + BN + ReLU)",
            "input": "grey levels in [0, 1]; other sizes bilinear-resized to 28x28, RGB to luma",
        }


# ------------------------------------------------------------- InceptionV3
INCEPTION_SIZE = 299


class InceptionV3Extractor:
    """Keras InceptionV3: (1000 ImageNet logits, 2048-d pool3 features) of images in [0, 1].

    Args:
      weights: "imagenet" (Keras' default download, cached in ~/.keras/models; put
        `inception_v3_weights_tf_dim_ordering_tf_kernels.h5` there to use it
        offline), a path to a weights file for the full model with its top
        (`.h5` or `.weights.h5`), or None (random weights; for tests).
    """

    name = "inception_v3"
    num_classes = 1000
    feature_size = 2048

    def __init__(self, weights="imagenet"):
        if weights not in (None, "imagenet"):
            weights = os.path.expanduser(weights)
            if not os.path.exists(weights):
                raise FileNotFoundError(
                    f"InceptionV3 weights file {weights!r} does not exist. Pass the path of "
                    "Keras' inception_v3_weights_tf_dim_ordering_tf_kernels.h5 (with the top), "
                    "or 'imagenet' to use Keras' download."
                )
        self.weights = weights
        try:
            base = keras.applications.InceptionV3(
                include_top=True, weights=weights, classifier_activation=None
            )
        except Exception as err:  # noqa: BLE001 - a failed download surfaces as many types
            if weights == "imagenet":
                raise RuntimeError(
                    "Could not get Keras' ImageNet weights for InceptionV3 (no internet?). "
                    "Download inception_v3_weights_tf_dim_ordering_tf_kernels.h5 elsewhere and "
                    "pass its path (--inception_weights=PATH), or place it in ~/.keras/models/."
                ) from err
            raise
        self.model = keras.Model(base.inputs, [base.output, base.get_layer("avg_pool").output])
        self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    @staticmethod
    def preprocess(images):
        """[B, H, W, 1 or 3] in [0, 1] -> [B, 299, 299, 3] in [-1, 1] (bilinear resize)."""
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape[-1] == 1:
            images = tf.repeat(images, 3, axis=-1)
        images = tf.image.resize(255.0 * images, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear")
        return keras.applications.inception_v3.preprocess_input(images)

    def __call__(self, images):
        return self._call(self.preprocess(images))

    def info(self):
        return {
            "name": self.name,
            "weights": self.weights,
            "logits": "1000 ImageNet pre-softmax logits of keras.applications.InceptionV3",
            "features": "2048-d pool3 (avg_pool) features",
            "input": "x255, bilinear resize to 299x299 (no antialias), grey->RGB, inception preprocess_input",
        }


def make_extractor(dataset, classifier=None, inception_weights="imagenet", cache_dir=None):
    """The extractor used for `dataset`: its classifier (the MNIST CNN for "mnist", InceptionV3
    for cifar10 and imagenet64; `classifier_kind`).

    `classifier`: None/"auto" (by dataset), "mnist_cnn" (the default path under
    `cache_dir`), "inception_v3", or the path of a saved MNIST classifier.
    """
    classifier = classifier_kind(dataset, classifier)
    if classifier == "mnist_cnn":
        return MnistClassifier.load(None, cache_dir)
    if classifier == "inception_v3":
        return InceptionV3Extractor(inception_weights)
    return MnistClassifier.load(classifier)  # the path of a saved MNIST classifier


# ----------------------------------------------------------------- scoring
def activations(extractor, batches):
    """Concatenated (logits [N, classes], features [N, F]) as float64 numpy arrays."""
    logits, features = [], []
    for images in batches:
        if isinstance(images, (tuple, list)):
            images = images[0]
        batch_logits, batch_features = extractor(images)
        logits.append(np.asarray(batch_logits, np.float64))
        features.append(np.asarray(batch_features, np.float64))
    if not logits:
        raise ValueError("no images to score")
    return np.concatenate(logits), np.concatenate(features)


def sample_quality(extractor, sample_batches, reference, num_splits=10):
    """Inception score and FID of samples under one extractor (any dataset).

    Args:
      extractor: callable images -> (logits, features).
      sample_batches: iterable of generated images [B, H, W, C] in [0, 1].
      reference: the real images' features [M, F], or their `(mean, covariance)`
        from `metrics.gaussian_statistics`.
      num_splits: Inception-score splits.

    Returns:
      dict: inception_score, inception_score_std, fid, num_samples.
    """
    logits, features = activations(extractor, sample_batches)
    is_mean, is_std = metrics.inception_score(logits, num_splits)
    if isinstance(reference, tuple):
        ref_mu, ref_sigma = reference
    else:
        ref_mu, ref_sigma = metrics.gaussian_statistics(reference)
    fid = metrics.frechet_distance(*metrics.gaussian_statistics(features), ref_mu, ref_sigma)
    return {
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "fid": fid,
        "num_samples": int(logits.shape[0]),
    }
