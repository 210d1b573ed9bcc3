"""benchmarks/yardsticks.py: svae-tf's step and the plain yardsticks timed in one run.

The yardsticks are replaced by fake scripts with known rates (the real ones need PyTorch,
which is not a dependency), so the ratios are checked exactly; svae-tf's own step is timed
for real (one step).
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import report
from benchmarks import yardsticks
from svae_tf import cli

FAKE = """import json, os, sys
rounds = os.path.join(os.path.dirname(__file__), "{name}.count")
n = int(open(rounds).read()) if os.path.exists(rounds) else 0
open(rounds, "w").write(str(n + 1))
print("noise line")
print(json.dumps({{"impl": "{name}", "img_per_s": {rates}[n], "argv": sys.argv[1:]}}))
"""


def test_yardsticks_time_everything_in_alternating_rounds(tmp_path):
    (tmp_path / "torch_svae_mnist.py").write_text(FAKE.format(name="torch", rates=[100.0, 300.0, 200.0]))
    (tmp_path / "tf_svae_mnist.py").write_text(FAKE.format(name="tf", rates=[400.0, 400.0, 500.0]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = tmp_path / "y"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.yardsticks", f"--torch_python={sys.executable}", "--rounds=3",
         "--steps=7", "--configs=", f"--yardsticks_dir={tmp_path}", f"--output={out}"],
        cwd=report.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report.check_report(f"{out}.json") == []
    result = json.loads((tmp_path / "y.json").read_text())
    impls = result["implementations"]
    assert list(impls) == ["pytorch_eager", "keras_plain"]
    assert impls["pytorch_eager"] == {"name": "pytorch_eager", "img_per_s": 200.0, "rounds": [100.0, 300.0, 200.0],
                                      "vs_pytorch_eager": 1.0, "vs_keras_plain": 0.5}
    assert impls["keras_plain"]["img_per_s"] == 400.0 and impls["keras_plain"]["vs_pytorch_eager"] == 2.0
    # The yardsticks got the run's step count and batch; plain Keras without XLA.
    assert result["yardstick_lines"]["keras_plain"]["argv"] == ["--xla", "0", "--batch", "100", "--steps", "7"]


def test_svae_tf_configurations_run_in_their_own_process_and_environment():
    args = cli.parse(yardsticks.define_flags, ["--steps=3", "--configs=flagfile@mixed_bfloat16+TF_NUM_INTEROP_THREADS=1"])
    argvs = yardsticks.commands(args)
    argv, cwd, env = argvs["svae_tf:flagfile@mixed_bfloat16+TF_NUM_INTEROP_THREADS=1"]
    assert argv[1:] == ["-m", "benchmarks.yardsticks", "--child=flagfile@mixed_bfloat16+TF_NUM_INTEROP_THREADS=1",
                        "--steps=3", "--batch=100"]
    assert cwd == report.REPO and env == {"TF_NUM_INTEROP_THREADS": "1"}


def test_a_child_times_the_library_step():
    assert yardsticks.time_child("a1_svae_r_shared", steps=1, batch=4) > 0


def test_keys_are_dot_path_safe():
    assert yardsticks.key("svae_tf@f61799b:a1_svae_r") == "svae_tf_f61799b_a1_svae_r"
    assert yardsticks.key("svae_tf:a1_svae_r+TF_NUM_INTEROP_THREADS=1") == "svae_tf_a1_svae_r_TF_NUM_INTEROP_THREADS_1"


def test_configuration_names_are_checked():
    assert yardsticks.parse_config("flagfile@mixed_bfloat16+OMP_NUM_THREADS=1") == (
        "flagfile", "mixed_bfloat16", {"OMP_NUM_THREADS": "1"})
    assert yardsticks.parse_config("a1_svae_r") == ("a1_svae_r", "float32", {})
    for bad in ("a1_svae_r_disc_decodes_z_p", "nope", "a1_svae_r@float8", "a1_svae_r+threads"):
        with pytest.raises(ValueError, match="--configs"):
            yardsticks.parse_config(bad)
