"""Benchmarks of svae-tf (python -m benchmarks.<name>); results in benchmarks/results/."""
