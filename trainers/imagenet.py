"""Train a symmetric VAE (or a baseline) on ImageNet 64x64.

The data is TFDS `imagenet_resized/64x64` or `downsampled_imagenet/64x64` (prepared by
hand, see BUILD.md), or any folder of images with --dataset=folder:/dir --image_size=64.

    python -m trainers.imagenet --flagfile=trainers/configs/imagenet_svae_r.flags [--model_dir=DIR ...]

All the work is in `trainers.train_lib`; this module only picks the imagenet defaults.
"""

from absl import flags

from trainers import train_lib

flags.adopt_module_key_flags(train_lib)  # --helpshort lists the training flags

if __name__ == "__main__":
    train_lib.run_trainer("imagenet")
