"""Layer 4 -- evaluation of a trained model.

- `metrics`: Inception score, Frechet distance, RMSE as pure functions.
- `likelihood`: the ELBO (1) and the importance-weighted bound.
- `classifiers`: the classifiers behind IS / FID and `sample_quality`.
- `refit`: q(z|x) refitted to a fixed decoder.
"""
