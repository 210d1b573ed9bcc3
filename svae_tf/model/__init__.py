"""Layer 3 -- the model library. Importing this package imports no TensorFlow; within it,
each module imports only the ones listed before it:

- `objectives`: the losses as pure functions of tensors, by equation.
- `presets`: the architectures as data (`Preset`, `get_preset`, `PRESETS`).
- `variants` (TensorFlow-free): the variants table; `register(Variant(...))` adds a row.
- `config` (TensorFlow-free): `ModelConfig`, `TrainConfig`, `ArchitectureOverrides` --
  every hyper-parameter, declared once.
- `distributions`, `flows`, `noise`, `ema`: TFP heads and bijectors, the noise streams, the
  weights' moving average.
- `networks`: the encoder, decoder and discriminator of a preset.
- `symmetric_vae`: `SymmetricVAE`, the Keras model and its alternating train step.
"""
