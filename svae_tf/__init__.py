"""svae-tf: the symmetric VAE family (sVAE, sVAE-r, and ALI, GAN, WGAN-GP as special cases)
in TensorFlow, Keras 3 and TFP.

The public API, by module (importing this package imports no TensorFlow; the layers are in
docs/architecture.md):

- `svae_tf.config`: `ModelConfig`, `TrainConfig`, `ArchitectureOverrides` -- every
  hyper-parameter, declared once.
- `svae_tf.variants`: the variants table; `register(Variant(...))` adds a row.
- `svae_tf.presets`: the architectures (`get_preset`, `PRESETS`).
- `svae_tf.model`: `SymmetricVAE`, the Keras model and its alternating train step.
- `svae_tf.objectives`: the losses as pure functions, by equation.
- `svae_tf.runs`: `build_model(config)`, `load_model(model_dir)`, checkpoints.
- `svae_tf.data`: the tf.data pipelines (TFDS, folders, the validation split).
- `svae_tf.likelihood`, `svae_tf.metrics`, `svae_tf.classifiers`, `svae_tf.refit`: evaluation.

Training runs through `trainers.train_lib.train(ModelConfig, TrainConfig)`.
"""
