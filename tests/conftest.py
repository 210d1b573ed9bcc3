"""Shared fixtures of the test suite."""

import os
from pathlib import Path

import pytest

# Skips that are deliberate (a reason containing one of these); under CI=true any other
# skip fails the run, so that no test silently stops running where CI runs.
DELIBERATE_SKIPS = (
    "the file system has no immutable attribute",  # test_bad_input: root without chattr +i
)
_UNEXPECTED_SKIPS = []

# The datasets the data tests read (TFDS names, as directories of the data dir).
REQUIRED_DATASETS = ("mnist", "cifar10")


def real_data_dir():
    """$TFDS_DATA_DIR, else ../shared/tfds beside the clone (as in CI); absolute."""
    return Path(os.environ.get("TFDS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "tfds").absolute()


def in_ci():
    """True under CI=true (the CI runner sets it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def data_dir():
    """The real TFDS data directory. Missing data skip the test, except under CI=true,
    where they fail it: CI must run the data tests, not report them as skipped."""
    path = real_data_dir()
    missing = [name for name in REQUIRED_DATASETS if not (path / name).is_dir()]
    if missing:
        message = (f"real TFDS data ({', '.join(missing)}) not found in {path}: set TFDS_DATA_DIR "
                   f"or put shared/tfds beside the clone")
        if in_ci():
            pytest.fail(f"{message} (CI=true: data tests fail instead of skipping)", pytrace=False)
        pytest.skip(message)
    return os.fspath(path)


def pytest_configure(config):
    """Under `pytest -n N`, TensorFlow in each worker (and in the programs its tests start, which
    inherit the environment) gets cpu_count // N intra-op threads instead of a pool of every
    core, so that N workers share the cores rather than each scheduling work on all of them.
    An explicit TF_NUM_INTRAOP_THREADS is kept."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "TF_NUM_INTRAOP_THREADS" not in os.environ:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_runtest_logreport(report):
    if report.skipped and not any(reason in str(report.longrepr) for reason in DELIBERATE_SKIPS):
        _UNEXPECTED_SKIPS.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session, exitstatus):
    """Under CI=true, a skip that is not in DELIBERATE_SKIPS fails the run."""
    if in_ci() and _UNEXPECTED_SKIPS and not hasattr(session.config, "workerinput"):
        print("\nFAILED: skipped tests that are not deliberate (conftest.DELIBERATE_SKIPS):\n  "
              + "\n  ".join(_UNEXPECTED_SKIPS))
        session.exitstatus = 1
