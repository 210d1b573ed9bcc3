"""Under CI=true a skip that conftest.DELIBERATE_SKIPS does not list fails the run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import conftest


@pytest.mark.parametrize("reason, ci, status", [("no reason we chose", "true", 1),
                                                (conftest.DELIBERATE_SKIPS[0], "true", 0),
                                                ("no reason we chose", "", 0)])
def test_skips_fail_under_ci_unless_deliberate(tmp_path, reason, ci, status):
    shutil.copy(Path(conftest.__file__), tmp_path / "conftest.py")
    (tmp_path / "test_one.py").write_text(
        f"import pytest\n\ndef test_a():\n    pytest.skip({reason!r})\n\ndef test_b():\n    pass\n")
    env = {**os.environ, "CI": ci}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == status, proc.stdout[-2000:]
    assert ("skipped tests that are not deliberate" in proc.stdout) == bool(status)
