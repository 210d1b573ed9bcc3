"""Train a symmetric VAE (or a baseline) on CIFAR-10 (TFDS `cifar10`).

    python -m trainers.cifar --flagfile=trainers/configs/cifar_svae_r.flags [--model_dir=DIR ...]

All the work is in `trainers.train_lib`; this module only picks the cifar defaults.
"""

from absl import flags

from trainers import train_lib

flags.adopt_module_key_flags(train_lib)  # --helpshort lists the training flags

if __name__ == "__main__":
    train_lib.run_trainer("cifar")
