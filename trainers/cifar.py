"""Train a symmetric VAE (or a baseline) on CIFAR-10 (TFDS `cifar10`).

    python -m trainers.cifar --flagfile=trainers/configs/cifar_svae_r.flags [--model_dir=DIR ...]

The flags are `trainers.command`'s, the training `trainers.train_lib.train`; this module only picks the cifar defaults.
"""

from trainers import command

if __name__ == "__main__":
    command.run_trainer("cifar")
