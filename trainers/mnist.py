"""Train a symmetric VAE (or a baseline) on MNIST (real data from TFDS `mnist`).

    python -m trainers.mnist --flagfile=trainers/configs/mnist_svae_r.flags [--model_dir=DIR ...]

All the work is in `trainers.train_lib`; this module only picks the mnist defaults.
"""

from absl import flags

from trainers import train_lib

flags.adopt_module_key_flags(train_lib)  # --helpshort lists the training flags

if __name__ == "__main__":
    train_lib.run_trainer("mnist")
