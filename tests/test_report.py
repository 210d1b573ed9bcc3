"""Tests of benchmarks/report.py (the one writer of results) and of benchmarks/results/ itself."""

import json
import os
import subprocess
import time

import pytest

from benchmarks import report


def _write(tmp_path, name="bench", results=None, body="# Bench\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", **kw):
    started = kw.pop("started", None) or report.start()
    return report.write_report(os.fspath(tmp_path / name), results or {"img_per_s": 985.3},
                               body, started=started, **kw)


def test_results_directory_holds_only_written_reports():
    """Every .md under benchmarks/results has its .json, both with provenance, neither edited."""
    assert report.check_results_dir() == []


def test_write_report_writes_both_files_with_provenance(tmp_path):
    written = _write(tmp_path, extra_versions=("pytest",))
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved == written and saved["img_per_s"] == 985.3
    prov = saved["provenance"]
    for key in report.PROVENANCE_KEYS:
        assert key in prov, key
    assert set(report.MACHINE_KEYS) <= set(prov["machine"]) and prov["machine"]["cores"] == os.cpu_count()
    assert set(report.VERSION_KEYS) <= set(prov["versions"]) and prov["versions"]["pytest"] == pytest.__version__
    head = subprocess.run(["git", "-C", report.REPO, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert prov["commit"] == head
    markdown = (tmp_path / "bench.md").read_text()
    assert markdown.startswith("# Bench\n") and "| 1 | 2 |" in markdown
    assert report.PROVENANCE_HEADING in markdown and head in markdown and prov["command"] in markdown
    assert report.check_report(tmp_path / "bench.json") == []
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # atomic writes


def test_start_captures_the_state_before_the_work(tmp_path, monkeypatch):
    loads = iter([(5.0, 4.0, 3.0), (1.0, 2.0, 3.0)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(loads))
    started = report.start()
    time.sleep(0.2)
    prov = _write(tmp_path, started=started)["provenance"]
    assert prov["machine"]["load_avg_start"] == [5.0, 4.0, 3.0]
    assert prov["machine"]["load_avg_end"] == [1.0, 2.0, 3.0]
    assert prov["wall_time_s"] >= 0.2 and prov["date"] <= prov["date_end"]


def test_dirty_tree_is_recorded(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", "-C", os.fspath(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    clean = report.start(repo=os.fspath(repo))
    assert clean.dirty is False and len(clean.commit) == 40
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "benchmarks" / "results" / "new.json").write_text("{}")  # reports do not count
    assert report.start(repo=os.fspath(repo)).dirty is False
    (repo / "a.py").write_text("x = 2\n")
    (repo / "new_module.py").write_text("y = 1\n")
    dirty = report.start(repo=os.fspath(repo))
    assert dirty.commit == clean.commit and dirty.dirty is True
    assert dirty.dirty_files == ["a.py", "new_module.py"]
    assert report.start(repo=os.fspath(tmp_path)).commit is None  # not a checkout


def test_hand_edits_are_detected(tmp_path):
    _write(tmp_path)
    md, js = tmp_path / "bench.md", tmp_path / "bench.json"
    original = md.read_text()
    md.write_text(original + "\n## Addendum\n\nA number measured another day: 12.3 ms.\n")
    assert any("bench.md differs" in p for p in report.check_report(js))
    md.write_text(original)
    data = json.loads(js.read_text())
    data["img_per_s"] = 1000.0
    js.write_text(json.dumps(data))
    assert any("bench.json differs" in p for p in report.check_report(js))
    del data["provenance"]
    js.write_text(json.dumps(data))
    assert any("no provenance" in p for p in report.check_report(js))


def test_results_directory_check_names_each_problem(tmp_path):
    _write(tmp_path, "good")
    (tmp_path / "handwritten.md").write_text("# Numbers typed in\n")
    (tmp_path / "old.json").write_text(json.dumps({"img_per_s": 1.0}))
    (tmp_path / "notes.txt").write_text("x")
    problems = report.check_results_dir(os.fspath(tmp_path))
    assert any("handwritten.json is missing" in p for p in problems)
    assert any("old.md is missing" in p for p in problems)
    assert any("notes.txt" in p for p in problems)
    assert not any(p.startswith("good") for p in problems)


def test_results_directory_check_walks_study_folders(tmp_path):
    _write(tmp_path / "screens" / "q", "good", files={"good_samples/0.png": b"png"})
    (tmp_path / "README.md").write_text("# Results index\n")  # the generated index: not a pair
    assert report.check_results_dir(os.fspath(tmp_path)) == []
    assert report.find_reports(os.fspath(tmp_path))[0] == ["screens/q/good"]
    (tmp_path / "screens" / "q" / "good_samples" / "stray.png").write_bytes(b"x")
    (tmp_path / "screens" / "README.md").write_text("# not the index\n")
    md = tmp_path / "screens" / "q" / "good.md"
    md.write_text(md.read_text() + "edited\n")
    problems = report.check_results_dir(os.fspath(tmp_path))
    assert any("screens/q/good_samples/stray.png" in p for p in problems)
    assert any(p.startswith("screens/README.json is missing") for p in problems)
    assert any("screens/q/good.md differs" in p for p in problems), problems


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="provenance"):
        _write(tmp_path, results={"provenance": 1})
    with pytest.raises(TypeError, match="report.start"):
        report.write_report(os.fspath(tmp_path / "x"), {}, "# x", started=None)


def test_paths_and_command_line():
    assert report.paths("/a/b.md") == report.paths("/a/b.json") == report.paths("/a/b") == ("/a/b.json", "/a/b.md")
    assert report.paths("name")[0] == os.path.join(report.RESULTS_DIR, "name.json")
    assert report.command_line(["/x/run.py", "--a=1 2", "--b"]) == "python /x/run.py '--a=1 2' --b"


def test_files_beside_a_report_are_written_checked_and_claimed(tmp_path):
    files = {"bench_plot.png": b"\x89PNG fake", "bench_samples/a.npz": b"npz bytes"}
    saved = _write(tmp_path, files=files)
    assert (tmp_path / "bench_plot.png").read_bytes() == files["bench_plot.png"]
    assert (tmp_path / "bench_samples" / "a.npz").read_bytes() == files["bench_samples/a.npz"]
    assert sorted(saved["provenance"]["checksums"]["files"]) == sorted(files)
    assert "`bench_samples/a.npz`" in (tmp_path / "bench.md").read_text()
    assert report.check_report(tmp_path / "bench.json") == []
    assert report.check_results_dir(os.fspath(tmp_path)) == []
    (tmp_path / "bench_samples" / "stray.png").write_bytes(b"x")  # listed by no report
    assert [p for p in report.check_results_dir(os.fspath(tmp_path)) if "stray.png" in p]
    (tmp_path / "bench_samples" / "stray.png").unlink()
    (tmp_path / "bench_samples" / "a.npz").write_bytes(b"edited")
    assert any("bench_samples/a.npz differs" in p for p in report.check_report(tmp_path / "bench.json"))
    (tmp_path / "bench_plot.png").unlink()
    assert any("bench_plot.png is missing" in p for p in report.check_report(tmp_path / "bench.json"))
    for bad in ("../up.png", "/abs.png", "top.json"):
        with pytest.raises(ValueError, match="files"):
            _write(tmp_path, "other", files={bad: b""})
