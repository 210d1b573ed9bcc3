"""The `data_dir` fixture of conftest.py: missing data skip a test, but fail it under CI=true.

Runs pytest in a subprocess on a one-test file beside a copy of tests/conftest.py, with
TFDS_DATA_DIR pointing at directories with and without the datasets.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "suite"
    root.mkdir()
    shutil.copy(CONFTEST, root / "conftest.py")
    (root / "test_needs_data.py").write_text("def test_reads_data(data_dir):\n    assert data_dir\n")
    return root


def _pytest(root, data_dir, ci):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env["TFDS_DATA_DIR"] = os.fspath(data_dir)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--rootdir", os.fspath(root), os.fspath(root / "test_needs_data.py")],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


def test_missing_data_fail_under_ci(project, tmp_path):
    empty = tmp_path / "no_tfds"
    empty.mkdir()
    proc = _pytest(project, empty, ci=True)
    assert proc.returncode != 0, proc.stdout
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout, proc.stdout
    assert f"not found in {empty}" in proc.stdout and "CI=true" in proc.stdout, proc.stdout


def test_missing_data_skip_outside_ci(project, tmp_path):
    proc = _pytest(project, tmp_path / "nowhere", ci=False)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout and f"not found in {tmp_path / 'nowhere'}" in proc.stdout, proc.stdout


def test_present_data_run_under_ci(project, tmp_path):
    tfds_dir = tmp_path / "tfds"
    for name in ("mnist", "cifar10"):
        (tfds_dir / name).mkdir(parents=True)
    proc = _pytest(project, tfds_dir, ci=True)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout
