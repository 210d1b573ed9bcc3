"""MirroredStrategy over 2 logical CPUs gives the same parameters as one device.

The model draws its noise for the global batch and slices it per replica, divides
every loss by the global batch size and uses synchronized BatchNorm, so a few steps
on the same global batches from the same initial weights and seed must agree up to
float32 round-off. Logical devices must be configured before TensorFlow initialises,
so each case runs `tests/distributed_equivalence.py` in a subprocess.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "distributed_equivalence.py"
# Tolerances: the two runs differ only by the order of float32 reductions (per-replica
# partial sums, all-reduce); observed max |diff| ~1e-7 after 3 steps (SGD 0.02, Adam 1e-3;
# a large SGD step amplifies round-off from step to step). A wrong loss
# scale (per-replica mean) or per-replica noise gives differences of 1e-3 to 0.4.
RTOL, ATOL = 1e-4, 1e-5


def _run(variant, optimizers, ema_decay, steps=3):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, os.fspath(SCRIPT), "--variant", variant, "--optimizers", optimizers,
         "--steps", str(steps), "--ema_decay", str(ema_decay)],
        capture_output=True, text=True, env=env, timeout=600,
        cwd=os.fspath(SCRIPT.parents[1]),
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("variant,optimizers,ema_decay", [("svae_r", "sgd,adam", 0.0), ("vae", "sgd", 0.5)])
def test_mirrored_strategy_matches_one_device(variant, optimizers, ema_decay):
    """(the vae case also keeps a moving average of its weights, `ema_decay`)"""
    report = _run(variant, optimizers, ema_decay)
    assert report["replicas"] == 2
    if ema_decay:
        assert any("ema_" in v["path"] for v in report["results"]["sgd"]["variables"])
    for kind, result in report["results"].items():
        assert result["mirrored_variable_types"] == ["MirroredVariable"], kind
        for v in result["variables"]:
            assert v["max_abs_diff"] <= ATOL + RTOL * v["max_abs"], (kind, v)
            if "seed_generator_state" not in v["path"] and "moving_variance" not in v["path"]:
                # Training moved it far more than the tolerance: the comparison means something.
                assert v["moved"] > 10 * (ATOL + RTOL * v["max_abs"]), (kind, v)
        for v in result["optimizer_variables"]:
            assert v["max_abs_diff"] <= ATOL + RTOL * v["max_abs"], (kind, v)
        for name, value in result["metrics_single"].items():
            assert abs(result["metrics_mirrored"][name] - value) <= ATOL + RTOL * abs(value), name
