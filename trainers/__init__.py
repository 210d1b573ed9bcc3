"""Training programs: `python -m trainers.mnist|cifar|imagenet --flagfile=...` (see train_lib)."""
