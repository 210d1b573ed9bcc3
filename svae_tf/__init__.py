"""svae-tf: the symmetric VAE family (sVAE, sVAE-r, and ALI, GAN, WGAN-GP as special cases)
in TensorFlow, Keras 3 and TFP.

The folder tree is the layering (docs/architecture.md; checked by tests/test_layers.py): a
module imports only from its own layer or the layers below it.

| layer | package / module | what it is |
|---|---|---|
| 1 | `svae_tf.utils` | atomic file writes, TensorFlow's log level, image grids |
| 2 | `svae_tf.data` | the dataset registry and the tf.data pipelines |
| 3 | `svae_tf.model` | losses, presets, the variants table, the configs, networks, `SymmetricVAE` |
| 4 | `svae_tf.evaluation`, `svae_tf.runs` | evaluation; a run directory (config.json, checkpoints) |
| 5 | `svae_tf.cli` | flags derived from the configs, `cli.run` |

The public API, importable from here without importing TensorFlow until first use:

- `ModelConfig`, `TrainConfig`, `ArchitectureOverrides` (`svae_tf.model.config`): every
  hyper-parameter, declared once.
- `SymmetricVAE` (`svae_tf.model.symmetric_vae`): the Keras model and its train step.
- `build_model(config)`, `load_model(model_dir)` (`svae_tf.runs`).

Training runs through `trainers.train_lib.train(ModelConfig, TrainConfig)`.
"""

import importlib

_EXPORTS = {
    "ModelConfig": "svae_tf.model.config",
    "TrainConfig": "svae_tf.model.config",
    "ArchitectureOverrides": "svae_tf.model.config",
    "SymmetricVAE": "svae_tf.model.symmetric_vae",
    "build_model": "svae_tf.runs",
    "load_model": "svae_tf.runs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):  # PEP 562: `import svae_tf` stays free of TensorFlow
    if name not in _EXPORTS:
        raise AttributeError(f"module 'svae_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
