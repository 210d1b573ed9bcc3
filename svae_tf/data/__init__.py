"""Layer 2 -- the data: which datasets exist, and their images as `tf.data`.

- `datasets` (TensorFlow-free): `DatasetSpec`, `register`, `get`, `names` -- one entry per
  dataset (builders or folders, shape, splits, validation split, defaults, classifier).
- `pipelines`: `load_images`, `training_stream`, `batch_norm_batches`, `validation_splits`,
  `DataError`.
- `snapshots`: a split's prepared examples kept on disk between runs (`load_or_build`), read
  by `pipelines` in place of decoding again.
"""
