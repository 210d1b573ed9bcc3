"""Evaluation metrics as pure functions (TF-GAN `eval/` style).

Equation numbers refer to Pu et al., "Symmetric Variational Autoencoder and
Connections to Adversarial Learning" (`../shared/paper/svae.txt`). Section 6
evaluates reconstruction by the negative log-likelihood estimated with the
variational bound of eq. (1) (reported in nats for MNIST, bits per dimension for
CIFAR-10), by the RMSE of reconstructions, and generation by the Inception score [22].

Conventions:
- Metrics that summarise a whole evaluation set (Inception score, Frechet
  distance, RMSE) take numpy arrays or eager tensors and return Python floats,
  computed in float64 with numpy/scipy. They never run a classifier: callers
  pass the classifier's logits / features (e.g. the MNIST classifier of
  `ChunyuanLI/MNIST_Inception_Score`, or Inception-v3 pool features for FID).
- `importance_weighted_bound` is a TensorFlow function on per-sample log weights
  so that it can run inside `tf.function` evaluation steps.
- Implementations of IS / FID differ by image resizing, number of splits and
  statistics (openai/improved-gan #29, mseitzer/pytorch-fid #11); the conventions
  used here are stated in each docstring.
"""

import math
import warnings

import numpy as np
import tensorflow as tf
from scipy import linalg, special

_PROB_EPSILON = 1e-16  # Floor inside log() for probabilities given directly.


def _split_scores(log_probs, num_splits):
    """exp(E_x KL(p(y|x) || p(y))) on contiguous chunks of rows of [N, C] log-probs."""
    n = log_probs.shape[0]
    if log_probs.ndim != 2:
        raise ValueError(f"expected a [N, num_classes] array, got shape {log_probs.shape}")
    if not 1 <= num_splits <= n:
        raise ValueError(f"num_splits must be in [1, N={n}], got {num_splits}")
    scores = []
    for i in range(num_splits):
        part = log_probs[i * n // num_splits:(i + 1) * n // num_splits]
        log_marginal = special.logsumexp(part, axis=0) - np.log(part.shape[0])
        kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(logits, num_splits: int = 10) -> tuple[float, float]:
    """Inception score [22] (Salimans et al., 2016) from classifier logits.

    IS = exp(E_x KL(p(y|x) || p(y))), with p(y) the mean of p(y|x) over the split.
    As in openai/improved-gan, the N rows are cut into `num_splits` contiguous
    chunks (chunk i is rows [i*N//S, (i+1)*N//S)); the score is computed on each
    chunk and the mean and (population, ddof=0) standard deviation over chunks
    are returned. Computed in float64 from log-softmax for numerical stability.

    Args:
      logits: [N, num_classes] classifier logits (numpy array or tensor).
      num_splits: number of contiguous chunks, 1 <= num_splits <= N.

    Returns:
      (mean, std) of the per-split scores. The score lies in [1, num_classes].
    """
    return _split_scores(special.log_softmax(np.asarray(logits, np.float64), axis=1), num_splits)


def inception_score_from_probs(probs, num_splits: int = 10) -> tuple[float, float]:
    """Inception score from class probabilities p(y|x), [N, num_classes].

    Same convention as `inception_score`. Probabilities are floored at 1e-16
    before taking logs, so exact zeros contribute nothing.
    """
    probs = np.asarray(probs, np.float64)
    return _split_scores(np.log(np.maximum(probs, _PROB_EPSILON)), num_splits)


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased (ddof=1) covariance [D, D] of features [N, D], in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"expected [N >= 2, D] features, got shape {features.shape}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False, ddof=1))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID, Heusel et al., 2017).

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)).

    Follows mseitzer/pytorch-fid: the matrix square root is `scipy.linalg.sqrtm`
    in float64; if the product is singular (scipy warns or returns non-finite
    values), `eps * I` is added to both covariances; imaginary parts from
    round-off are dropped (a ValueError is raised if they are not tiny).

    Returns:
      The squared Frechet distance as a Python float (>= 0 up to round-off).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", linalg.LinAlgWarning)
            covmean = linalg.sqrtm(sigma1 @ sigma2)
        singular = not np.isfinite(covmean).all()
    except linalg.LinAlgWarning:
        singular = True
    if singular:
        offset = eps * np.eye(sigma1.shape[0])
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary component {np.abs(covmean.imag).max()}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def sqrtm_psd(sigma) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix, by `np.linalg.eigh`
    (eigenvalues below 0 from round-off are set to 0)."""
    w, v = np.linalg.eigh(np.asarray(sigma, np.float64))
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def frechet_distance_eigh(mu1, sigma1, mu2, sigma2=None, *, sqrt_sigma2=None) -> float:
    """The Frechet distance of `frechet_distance`, computed with symmetric eigensolvers.

    Tr sqrtm(sigma1 sigma2) = sum_i sqrt(lambda_i(R sigma1 R)), R = sigma2^(1/2) (`sqrtm_psd`),
    exact for symmetric PSD covariances, singular ones included, so no eps offset is needed.
    Several times faster than scipy's `sqrtm` for D = 1024 or 2048, and `sqrt_sigma2`
    (R, computed once) makes repeated distances to one reference cheaper still. It agrees
    with `frechet_distance` to round-off where that needs no offset, and to O(sqrt(eps))
    per null direction where it does (tested); use it where the cost matters
    (learning curves), `frechet_distance` (pytorch-fid conventions) for reported FIDs.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    if sqrt_sigma2 is None:
        if sigma2 is None:
            raise ValueError("give sigma2 or sqrt_sigma2")
        sqrt_sigma2 = sqrtm_psd(sigma2)
    root = np.atleast_2d(np.asarray(sqrt_sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != root.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: {mu1.shape}, {sigma1.shape}, {mu2.shape}, {root.shape}")
    inner = root @ sigma1 @ root
    tr_covmean = np.sum(np.sqrt(np.maximum(np.linalg.eigvalsh((inner + inner.T) / 2.0), 0.0)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(root @ root) - 2.0 * tr_covmean)


def frechet_distance_from_features(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted (`gaussian_statistics`) to two feature sets [N, D]."""
    return frechet_distance(*gaussian_statistics(features_a), *gaussian_statistics(features_b))


def importance_weighted_bound(log_weights, axis=0):
    """Importance-weighted lower bound on log p(x) (IWAE; Burda et al., 2016).

    L_K(x) = log (1/K) sum_k w_k,  w_k = p(x, z_k) / q(z_k|x),  z_k ~ q(z|x) i.i.d.

    L_1 is the per-example ELBO of eq. (1); E[L_K] is non-decreasing in K and
    tends to log p(x) as K grows. Computed as logsumexp_k(log w_k) - log K in the
    dtype of `log_weights` (float64 inputs stay float64).

    Args:
      log_weights: tensor of log p(x, z_k) - log q(z_k|x), e.g. [K, B].
      axis: the sample axis (K).

    Returns:
      The bound in nats, with `axis` reduced (e.g. [B]).
    """
    log_weights = tf.convert_to_tensor(log_weights, dtype_hint=tf.float32)
    num_samples = tf.cast(tf.shape(log_weights)[axis], log_weights.dtype)
    return tf.reduce_logsumexp(log_weights, axis=axis) - tf.math.log(num_samples)


def rmse_255(images, reconstructions) -> float:
    """Root-mean-squared reconstruction error on the 0-255 pixel scale (Table 2 of the paper).

    Inputs are in [0, 1]; returns sqrt(mean((255 * (x - x_hat))**2)) over all
    pixels, channels and images (one global mean, not a mean of per-image RMSEs).
    """
    images = np.asarray(images, np.float64)
    reconstructions = np.asarray(reconstructions, np.float64)
    if images.shape != reconstructions.shape:
        raise ValueError(f"shape mismatch: {images.shape} vs {reconstructions.shape}")
    return float(np.sqrt(np.mean(np.square(255.0 * (images - reconstructions)))))


def nats_to_bits_per_dim(nats_per_image, num_dims):
    """Converts a per-image NLL in nats to bits per dimension: nats / (num_dims * ln 2).

    Works on Python floats, numpy arrays and floating tensors. For CIFAR-10,
    num_dims = 32 * 32 * 3 = 3072.
    """
    return nats_per_image / (num_dims * math.log(2.0))


def streamed_rmse_255(reconstruct_fn, batches) -> float:
    """`rmse_255` over all pixels of all batches, one batch in memory at a time (exact: one
    global mean, whatever the batch sizes).

    Args:
      reconstruct_fn: images [B, H, W, C] in [0, 1] -> reconstructions, same shape.
      batches: iterable of images in [0, 1].
    """
    squared, count = 0.0, 0
    for images in batches:
        recon = reconstruct_fn(images)
        n = int(np.prod(images.shape))
        squared += rmse_255(images, recon) ** 2 * n
        count += n
    if not count:
        raise ValueError("no images to reconstruct")
    return math.sqrt(squared / count)
