"""The one writer of benchmark results: NAME.json and NAME.md together, both with provenance.

Every benchmark in this package writes its results through `write_report`, so that each
file under `benchmarks/results/` says which code measured it, how, where and when.
Nothing there is written by hand: `tests/test_report.py` checks every file against
`check_report`.

Use it in two calls, the first at the very start of the benchmark (it reads the clock,
the load average, the command line and the git state before any work is done):

    from benchmarks import report

    def main(argv):
        started = report.start()              # first thing in main
        ...                                   # measure
        report.write_report(
            "benchmarks/results/my_benchmark",  # or ".../my_benchmark.json" / ".md": both are written
            {"img_per_s": 985.3, ...},          # the results: JSON-able, no key "provenance"
            "# My benchmark\\n\\n| ... |\\n",    # the Markdown body (title, tables, notes)
            started=started,
            extra_versions=("ai-edge-litert",),  # optional: more distributions whose version matters
            files={"my_benchmark_plot.png": png_bytes},  # optional: figures / data beside the pair
        )

`write_report` returns the JSON it wrote (the results plus a "provenance" key) and writes

* NAME.json: the results with one more top-level key, "provenance" (`PROVENANCE_KEYS`):
  - commit: `git rev-parse HEAD` of this repository when `start()` ran (None outside git);
  - dirty: whether the tree differed from that commit (`git_state`: changed tracked
    files, or new files that are not ignored, outside benchmarks/results/), and
    dirty_files, the paths that did;
  - command: the command line, e.g. "python -m benchmarks.train_throughput --steps=30";
  - environment: the variables of `ENVIRONMENT` that were set (data directory, threads);
  - date: start time, ISO 8601 UTC; and date_end;
  - machine: cpu (model name), cores (`os.cpu_count()`), platform, load_avg_start,
    load_avg_end (1, 5 and 15-minute load averages: the machine is often shared);
  - versions: python, tensorflow, keras, tfp, and each of `extra_versions`;
  - wall_time_s: seconds from `start()` to `write_report`;
  - checksums: sha256 of the Markdown file and of the JSON itself (without this entry),
    so a test can tell that neither was edited after it was written; and under "files"
    the sha256 of each file of `files`; "files" lists their paths.
* NAME.md: the body, then a "## Provenance" section with the same facts.
* each of `files` (optional: figures, sample arrays), at its path relative to NAME's
  directory, e.g. `mnist_curves.png` or `mnist_samples/vae.npz` beside `mnist.json`. They
  are written before the JSON; `check_report` checks they still match their checksums,
  and `check_results_dir` accepts a file in benchmarks/results/ that is not a .json/.md
  pair only when a report lists it. Markdown can show them (`![curves](mnist_curves.png)`).

All files are written atomically (`svae_tf.utils.files.atomic_write`: a temporary name, then a
rename): the listed files first, then the JSON, then the Markdown. A path given as NAME, NAME.json or NAME.md means the same pair.

Neither importing this module nor writing a report imports TensorFlow (drivers such as
reproduce_mnist start before they need it).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time

from svae_tf.utils.files import atomic_write  # no TensorFlow import

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")

PROVENANCE_KEYS = ("commit", "dirty", "command", "date", "machine", "versions", "wall_time_s")
MACHINE_KEYS = ("cpu", "cores", "load_avg_start", "load_avg_end")
VERSION_KEYS = ("python", "tensorflow", "keras", "tfp")
# Distributions behind each version key, first installed one wins.
_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"),
    "keras": ("keras",),
    "tfp": ("tensorflow-probability", "tfp-nightly"),
}
# Environment variables that change what a benchmark measures; recorded when set.
ENVIRONMENT = ("TFDS_DATA_DIR", "SVAE_TF_CACHE_DIR", "CUDA_VISIBLE_DEVICES", "TF_ENABLE_ONEDNN_OPTS",
               "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
PROVENANCE_HEADING = "## Provenance"


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    """[1, 5, 15]-minute load averages, or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def git_state(repo=REPO):
    """(commit, dirty, dirty_files) of the git checkout at `repo`; (None, None, []) outside git.

    Dirty means a tracked file differs from the commit or an untracked, not ignored file
    exists (a new module changes what runs), except under benchmarks/results/, where
    the reports themselves are written.
    """
    def git(*args):
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                              timeout=60, check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=all")
    except (OSError, subprocess.SubprocessError):
        return None, None, []
    files = [line[3:] for line in status.splitlines()
             if line.strip() and not line[3:].startswith("benchmarks/results/")]
    return commit, bool(files), files


def command_line(argv=None):
    """The command that started this process, as it would be typed.

    `python -m pkg.mod args` when run as a module (sys.argv[0] is then the file's path),
    else `python script args`.
    """
    argv = list(sys.argv if argv is None else argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and argv and os.path.abspath(argv[0]) == os.path.abspath(
            getattr(main, "__file__", "") or ""):
        head = ["python", "-m", spec.name[:-len(".__main__")] if spec.name.endswith(".__main__") else spec.name]
    else:
        head = ["python", *argv[:1]]
    return shlex.join(head + argv[1:])


def versions(extra=()):
    """{python, tensorflow, keras, tfp, *extra}: installed versions (None if not installed)."""
    out = {"python": platform.python_version()}
    for key, names in {**_DISTRIBUTIONS, **{name: (name,) for name in extra}}.items():
        out[key] = None
        for name in names:
            try:
                out[key] = importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Started:
    """What `start()` captured: the state of the code and the machine before the work."""

    def __init__(self, argv=None, repo=REPO):
        self._clock = time.monotonic()
        self.date = _utc_now()
        self.load_avg_start = load_average()
        self.command = command_line(argv)
        self.commit, self.dirty, self.dirty_files = git_state(repo)
        self.environment = {k: os.environ[k] for k in ENVIRONMENT if k in os.environ}

    def provenance(self, extra_versions=()):
        """The provenance block, closed now (end load average, wall time)."""
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "dirty_files": self.dirty_files,
            "command": self.command,
            "environment": self.environment,
            "date": self.date,
            "date_end": _utc_now(),
            "machine": {
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "platform": platform.platform(),
                "load_avg_start": self.load_avg_start,
                "load_avg_end": load_average(),
            },
            "versions": versions(extra_versions),
            "wall_time_s": round(time.monotonic() - self._clock, 3),
        }


def start(argv=None, repo=REPO):
    """Call first in a benchmark's main: returns the `Started` that `write_report` needs."""
    return Started(argv, repo)


def paths(name_or_path):
    """(NAME.json, NAME.md) for NAME, NAME.json or NAME.md; a bare name (no directory) is
    placed in benchmarks/results/."""
    base = os.fspath(name_or_path)
    root, ext = os.path.splitext(base)
    if ext in (".json", ".md"):
        base = root
    if not os.path.dirname(base):
        base = os.path.join(RESULTS_DIR, base)
    return base + ".json", base + ".md"


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value):
    return json.dumps(value, sort_keys=True, allow_nan=True, separators=(",", ":"))


def json_checksum(report):
    """sha256 of a report's canonical JSON without provenance.checksums.json_sha256."""
    payload = copy.deepcopy(report)
    payload.get("provenance", {}).get("checksums", {}).pop("json_sha256", None)
    return _sha256(_canonical(payload))


def _load_text(load):
    if not load:
        return "n/a"
    return " / ".join(f"{x:.2f}" for x in load)


def provenance_markdown(prov, json_name):
    """The "## Provenance" section of NAME.md."""
    if prov["commit"] is None:
        commit = "not a git checkout"
    else:
        commit = f"`{prov['commit']}`" + (
            " with uncommitted changes to " + ", ".join(f"`{p}`" for p in prov["dirty_files"])
            if prov["dirty"] else " (clean tree)")
    m, v = prov["machine"], prov["versions"]
    version_text = ", ".join(f"{k} {v[k]}" for k in v)
    env = ", ".join(f"`{k}={val}`" for k, val in prov["environment"].items()) or "none set"
    rows = [
        ("command", f"`{prov['command']}`"),
        ("environment", env),
        ("commit", commit),
        ("date", f"{prov['date']} to {prov['date_end']}"),
        ("machine", f"{m['cpu']}, {m['cores']} cores, {m['platform']}"),
        ("load average (1/5/15 min)", f"{_load_text(m['load_avg_start'])} at start, "
                                      f"{_load_text(m['load_avg_end'])} at end"),
        ("versions", version_text),
        ("wall time", f"{prov['wall_time_s']:.1f} s"),
    ]
    lines = [PROVENANCE_HEADING, "",
             f"Written by `benchmarks/report.py` with `{json_name}` (the same numbers, and this "
             "provenance under its `provenance` key); not edited by hand.", "",
             "| | |", "|---|---|"]
    if prov.get("files"):
        rows.append(("files", ", ".join(f"`{path}`" for path in prov["files"])
                     + " (sha256 of each in the JSON, `provenance.checksums.files`)"))
    lines += [f"| {k} | {val.replace('|', '/')} |" for k, val in rows]
    return "\n".join(lines) + "\n"


def _check_file_name(path):
    """A `files` key: a relative POSIX path below NAME's directory, not a .json/.md at its top."""
    norm = os.path.normpath(path).replace(os.sep, "/") if isinstance(path, str) else None
    if norm is None or os.path.isabs(path) or norm != path or norm.startswith("../") or norm in (".", ".."):
        raise ValueError(f"files: {path!r} must be a normalized path relative to the report's directory")
    if "/" not in norm and norm.endswith((".json", ".md")):
        raise ValueError(f"files: {path!r} would look like a results pair; put it in a subdirectory "
                         "or give it another extension")
    return norm


def publish(output, results, markdown_body, *, started, **kwargs):
    """Print the Markdown; with `output` (a name or path), also `write_report` it and say where."""
    print(markdown_body)
    if output:
        write_report(output, results, markdown_body, started=started, **kwargs)
        print(f"wrote {paths(output)}")


def write_report(name_or_path, results, markdown_body, *, started, extra_versions=(), files=None):
    """Write NAME.json (results + provenance) and NAME.md (body + provenance); see the module doc.

    Args:
      name_or_path: NAME, NAME.json or NAME.md (a bare NAME goes to benchmarks/results/).
      results: JSON-able dict of the measured numbers; must not have a "provenance" key.
      markdown_body: the Markdown report without provenance (a "# Title" first).
      started: what `start()` returned at the start of the benchmark.
      extra_versions: distribution names whose versions are recorded too.
      files: optional {path relative to NAME's directory: bytes}, written beside the pair
        (subdirectories created) with their sha256 in provenance.checksums.files.

    Returns:
      The dict written to NAME.json.
    """
    if not isinstance(started, Started):
        raise TypeError("write_report needs started=report.start(), called when the benchmark began")
    if "provenance" in results:
        raise ValueError("results must not have a 'provenance' key: write_report adds it")
    files = {_check_file_name(path): content for path, content in (files or {}).items()}
    json_path, md_path = paths(name_or_path)
    directory = os.path.dirname(os.path.abspath(json_path))
    prov = started.provenance(extra_versions)
    if files:
        prov["files"] = sorted(files)
    body = markdown_body.rstrip("\n") + "\n\n"
    markdown = body + provenance_markdown(prov, os.path.basename(json_path))
    prov["checksums"] = {"markdown_sha256": _sha256(markdown)}
    if files:
        prov["checksums"]["files"] = {path: hashlib.sha256(files[path]).hexdigest() for path in sorted(files)}
    report = json.loads(json.dumps({**results, "provenance": prov}, allow_nan=True))  # JSON types only
    report["provenance"]["checksums"]["json_sha256"] = json_checksum(report)
    os.makedirs(directory, exist_ok=True)
    for path in sorted(files):
        target = os.path.join(directory, *path.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        atomic_write(target, bytes(files[path]))
    atomic_write(json_path, json.dumps(report, indent=2, allow_nan=True) + "\n")
    atomic_write(md_path, markdown)
    return report


def check_report(json_path):
    """Problems (a list of strings; empty if none) of one NAME.json / NAME.md pair.

    Checks that both files exist, that the JSON has every key of `PROVENANCE_KEYS`,
    `MACHINE_KEYS` and `VERSION_KEYS`, that the commit is a full git hash, and that the
    checksums match both files, and any files it lists, as they are now (so none was
    edited after writing).
    """
    json_path = os.fspath(json_path)
    md_path = os.path.splitext(json_path)[0] + ".md"
    name = os.path.basename(json_path)
    problems = []
    for path in (json_path, md_path):
        if not os.path.exists(path):
            problems.append(f"{os.path.basename(path)} is missing (results come as a .json/.md pair)")
    if problems:
        return problems
    try:
        with open(json_path) as f:
            report = json.load(f)
    except ValueError as err:
        return [f"{name}: not JSON ({err})"]
    prov = report.get("provenance") if isinstance(report, dict) else None
    if not isinstance(prov, dict):
        return [f"{name}: no provenance block (not written by benchmarks/report.py)"]
    problems += [f"{name}: provenance lacks {k!r}" for k in PROVENANCE_KEYS if k not in prov]
    problems += [f"{name}: provenance.machine lacks {k!r}" for k in MACHINE_KEYS
                 if k not in (prov.get("machine") or {})]
    problems += [f"{name}: provenance.versions lacks {k!r}" for k in VERSION_KEYS
                 if k not in (prov.get("versions") or {})]
    commit = prov.get("commit")
    if not (isinstance(commit, str) and len(commit) == 40 and all(c in "0123456789abcdef" for c in commit)):
        problems.append(f"{name}: provenance.commit {commit!r} is not a git commit hash")
    if not isinstance(prov.get("dirty"), bool):
        problems.append(f"{name}: provenance.dirty {prov.get('dirty')!r} is not true/false")
    sums = prov.get("checksums") or {}
    with open(md_path, encoding="utf-8") as f:
        markdown = f.read()
    if sums.get("markdown_sha256") != _sha256(markdown):
        problems.append(f"{os.path.basename(md_path)} differs from what benchmarks/report.py wrote "
                        "(edited by hand?)")
    if PROVENANCE_HEADING not in markdown:
        problems.append(f"{os.path.basename(md_path)} has no '{PROVENANCE_HEADING}' section")
    if sums.get("json_sha256") != json_checksum(report):
        problems.append(f"{name} differs from what benchmarks/report.py wrote (edited by hand?)")
    directory = os.path.dirname(os.path.abspath(json_path))
    for path, digest in (sums.get("files") or {}).items():
        target = os.path.join(directory, *path.split("/"))
        if not os.path.isfile(target):
            problems.append(f"{name}: its file {path} is missing")
            continue
        with open(target, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != digest:
                problems.append(f"{path} differs from what benchmarks/report.py wrote for {name}")
    return problems


def report_files(json_path):
    """The paths (relative to its directory) of the files a report lists; [] if none or unreadable."""
    try:
        with open(json_path) as f:
            sums = json.load(f)["provenance"]["checksums"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return list((sums.get("files") or {}) if isinstance(sums, dict) else [])


INDEX_NAME = "README.md"  # the generated index at the top of benchmarks/results (benchmarks/results_index.py)


def find_reports(directory=RESULTS_DIR):
    """NAME (path relative to `directory`, POSIX, without extension) of every results pair
    at any depth, and the set of files the reports list (relative paths), as
    (sorted names, claimed). A .json/.md file listed by a report is one of its files, not a pair;
    the index (README.md at the top) is not a pair either."""
    all_files = []
    for root, dirs, filenames in os.walk(directory):
        dirs.sort()
        rel = os.path.relpath(root, directory).replace(os.sep, "/")
        all_files += [f if rel == "." else f"{rel}/{f}" for f in sorted(filenames)]
    claimed = set()
    for path in all_files:
        if path.endswith(".json"):
            base = os.path.dirname(path)
            claimed.update(f"{base}/{f}" if base else f
                           for f in report_files(os.path.join(directory, *path.split("/"))))
    names = sorted({os.path.splitext(f)[0] for f in all_files
                    if f.endswith((".md", ".json")) and f not in claimed and f != INDEX_NAME})
    return names, claimed, all_files


def check_results_dir(directory=RESULTS_DIR):
    """Problems of every results pair in `directory` and its subdirectories (each .md and each
    .json), and of every other file there that no report lists. The top-level README.md is
    the index written by benchmarks/results_index.py."""
    if not os.path.isdir(directory):
        return []
    names, claimed, all_files = find_reports(directory)
    problems = []
    for name in names:
        problems += [f"{os.path.dirname(name) + '/' if '/' in name else ''}{p}"
                     for p in check_report(os.path.join(directory, *name.split("/")) + ".json")]
    others = [f for f in all_files if f not in claimed and f != INDEX_NAME and not f.endswith((".md", ".json"))]
    problems += [f"{f}: only .json/.md results pairs, and the files a report lists, belong in {directory}"
                 for f in others]
    return problems
