"""Train a symmetric VAE (or a baseline) on ImageNet 64x64.

The data is TFDS `imagenet_resized/64x64` or `downsampled_imagenet/64x64` (prepared by
hand, see BUILD.md), or any folder of images with --dataset=folder:/dir --image_size=64.

    python -m trainers.imagenet --flagfile=trainers/configs/imagenet_svae_r.flags [--model_dir=DIR ...]

The flags are `trainers.command`'s, the training `trainers.train_lib.train`; this module only picks the imagenet defaults.
"""

from trainers import command

if __name__ == "__main__":
    command.run_trainer("imagenet")
