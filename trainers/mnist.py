"""Train a symmetric VAE (or a baseline) on MNIST (real data from TFDS `mnist`).

    python -m trainers.mnist --flagfile=trainers/configs/mnist_svae_r.flags [--model_dir=DIR ...]

The flags are `trainers.command`'s, the training `trainers.train_lib.train`; this module only picks the mnist defaults.
"""

from trainers import command

if __name__ == "__main__":
    command.run_trainer("mnist")
