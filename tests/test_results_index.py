"""benchmarks/results_index.py: the generated index of benchmarks/results/ and its status table."""

import json
import os

from benchmarks import report, results_index


def test_index_is_up_to_date_and_consistent():
    """benchmarks/results/README.md is what the script writes now; STATUS matches the folders."""
    assert results_index.problems() == []
    with open(results_index.INDEX, encoding="utf-8") as f:
        assert f.read() == results_index.render(), "run python -m benchmarks.results_index"


def test_index_lists_every_report_with_its_provenance():
    rows = results_index.reports()
    names, _, _ = report.find_reports()
    assert [r["name"] for r in rows] != [] and sorted(r["name"] for r in rows) == names
    text = results_index.render()
    for r in rows:
        with open(os.path.join(report.RESULTS_DIR, *r["name"].split("/")) + ".json") as f:
            commit = json.load(f)["provenance"]["commit"]
        line = next(line for line in text.splitlines() if f"]({r['name']}.md)" in line)
        assert commit[:7] in line and r["date"] in line and r["status"] in line


def _report(directory, name):
    started = report.start()
    report.write_report(os.fspath(directory / name), {"x": 1.0}, f"# {name}\n", started=started)


def test_problems_name_a_misplaced_or_unexplained_status(tmp_path, monkeypatch):
    _report(tmp_path / "speed", "a")
    _report(tmp_path / "archive", "old")
    monkeypatch.setattr(results_index, "STATUS", {"archive/old": ("superseded", "by speed/a")})
    assert results_index.problems(os.fspath(tmp_path)) == []
    text = results_index.render(os.fspath(tmp_path))
    assert "[old](archive/old.md)" in text and "superseded: by speed/a" in text
    monkeypatch.setattr(results_index, "STATUS", {"speed/a": ("superseded", "")})
    found = results_index.problems(os.fspath(tmp_path))
    assert any("speed/a: status superseded but folder speed" in p for p in found)   # not archived
    assert any("archive/old: status current but folder archive" in p for p in found)  # archived, no status
    assert any("does not say by what" in p for p in found)
    monkeypatch.setattr(results_index, "STATUS", {"speed/gone": ("current", "")})
    assert any("speed/gone, which is not a report" in p for p in results_index.problems(os.fspath(tmp_path)))
    _report(tmp_path, "top")  # a report outside the study folders
    assert any("top: folder (top level)" in p for p in results_index.problems(os.fspath(tmp_path)))
