"""Every figure in README.md, BUILD.md and docs/*.md names its source, and results figures match
their JSON; README's "What is where" lists every module.

The convention (README.md points here in its last paragraph):

* A *figure* is a number with a unit of measurement (img/s, batches/s, steps/s, ms, s, min,
  h, nats, bits/dim, %, GB/MB, or a ratio such as 2.5x / 30 times), a number right after a
  metric name (RMSE, IS, FID, NLL, ELBO, accuracy, Inception score), or a number in a table
  whose header names such a metric or unit. Text in code spans and code blocks is not
  prose (commands, flag values, example output) and is not checked.
* Each figure is followed, right after it (after a closing `**` if bold), by its source:
  - `[results/DIR/FILE.json: key.path]`: a file under benchmarks/results/ and a dot path into it
    (list items by index), optionally scaled (`key * 100`, `key / 60`); for `A ± B` give
    both keys, `[results/FILE.json: mean.key ± std.key]`. The figure must equal the JSON
    value rounded to the figure's decimals.
  - `[paper]`: a number quoted from the paper (Pu et al.), `[ext: owner/repo]`: from another
    project, `[setting]`: not a measurement (a budget, target, tolerance, test threshold).
* A table can name its sources once instead of in every cell: an HTML comment right above
  it (invisible when rendered) maps its rows and columns to keys,

      <!-- figures: results/mnist_table1/mnist.json
      row VAE: rows.vae
      row sVAE-r: results/mnist_table1/mnist_refit.json rows.svae_r_lx
      column IS: inception_score ± inception_score_std
      column paper IS: [paper]
      column trained at: -
      -->

  and cell (row, column) is then checked against FILE's `ROW_KEY.COLUMN_KEY` (the row's own
  file if it names one); a column mapped to `[paper]` / `[setting]` takes that source, one
  mapped to `-` holds no figures. Rows are matched by their first cell, columns by their
  header (Markdown emphasis and code quotes ignored). Every number in such a table but in
  its first column needs a source, and every row and column the comment names must exist.
* A figure without a source fails this test: remove it, or make a benchmark write it.
"""

import glob
import json
import os
import re

import pytest

from benchmarks import report

DOCS = ("README.md", "BUILD.md") + tuple(
    sorted(os.path.relpath(p, report.REPO) for p in glob.glob(os.path.join(report.REPO, "docs", "*.md"))))
NUMBER = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?"
UNIT = r"(?:img/s|images/s|batches/s|steps/s|ms|s|seconds?|min|minutes?|h|hours?|nats|bits/dim|%|GB|MB|GiB|MiB)"
RATIO = r"(?:x|×|times)"
METRIC = r"(?:RMSE|IS|FID|NLL|-ELBO|ELBO|accuracy|Inception score)"
PM = rf"(?:\s*(?:±|\+-)\s*{NUMBER})?"
_START = r"(?<![\w.\-/])"
FIGURE = re.compile(
    rf"{_START}(?P<a>{NUMBER}{PM}\s?(?:{UNIT}|{RATIO}))(?![\w/])"
    rf"|\b{METRIC}\s*(?:of\s+|=\s*|:\s*)?(?P<b>{NUMBER}{PM}(?:\s?(?:{UNIT}|{RATIO})(?![\w/]))?)(?![\w.])"
)
TABLE_METRIC = re.compile(rf"\b{METRIC}\b|img/s|\bms\b|nats|[Ll]atency")
CELL_NUMBER = re.compile(rf"{_START}{NUMBER}{PM}(?![\w])")
TAGGED = re.compile(rf"{_START}{NUMBER}{PM}(?:\s?(?:{UNIT}|{RATIO})(?![\w/]))?(?=\s*(?:\*\*)?\s*\[results/)")
TAG = re.compile(r"\s*(?:\*\*)?\s*\[(?P<tag>results/[^\]]+|paper|ext: [^\]]+|setting)\]")


def _strip_code(text):
    """Code blocks and code spans blanked out (same length, so offsets stay right)."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    text = re.sub(r"(?ms)^```.*?^```", blank, text)
    text = re.sub(r"(?s)<!--.*?-->", blank, text)
    return re.sub(r"`[^`\n]*`", blank, text)


TABLE_MAP = re.compile(r"(?s)<!--\s*figures:\s*(?P<file>\S+)\s*\n(?P<body>.*?)-->")


def _cells(prose_line, line):
    """[(start, end)] of the cells of a table line, split where the prose line has a `|`
    (pipes inside code spans are blanked there), without the outer pipes."""
    bars = [i for i, c in enumerate(prose_line) if c == "|"]
    return [(a + 1, b) for a, b in zip(bars, bars[1:])]


def _label(text):
    return re.sub(r"[*`]", "", text).strip()


def table_maps(text):
    """{line number of the table's header: map} for each `<!-- figures: ... -->` comment:
    map = {"file", "rows": {label: (file or None, key)}, "columns": {header: key}, "line"}."""
    maps = {}
    for match in TABLE_MAP.finditer(text):
        end_line = text.count("\n", 0, match.end()) + 1
        rows, columns = {}, {}
        for entry in match["body"].strip().splitlines():
            kind, _, rest = entry.strip().partition(" ")
            name, _, key = rest.rpartition(":")
            if kind == "row":
                parts = key.split()
                rows[_label(name)] = (parts[0], parts[1]) if len(parts) == 2 else (None, key.strip())
            elif kind == "column":
                columns[_label(name)] = key.strip()
            else:
                raise ValueError(f"line {end_line}: {entry!r} is neither 'row NAME: KEY' nor 'column NAME: KEY'")
        maps[end_line + 1] = {"file": match["file"], "rows": rows, "columns": columns, "line": end_line}
    return maps


def _mapped_cell(table_map, row, column, number):
    """The tag of a cell of a mapped table, or None."""
    if row not in table_map["rows"] or column not in table_map["columns"]:
        return None
    key = table_map["columns"][column]
    if key in ("[paper]", "[setting]"):
        return key[1:-1]
    if key == "-":
        return None
    file, prefix = table_map["rows"][row]
    keys = " ± ".join(f"{prefix}.{part.strip()}" if prefix else part.strip() for part in key.split("±"))
    return f"{file or table_map['file']}: {keys}"


def figures(text):
    """[(line number, figure text, tag or None)] of every figure in Markdown `text`."""
    prose = _strip_code(text)
    maps = table_maps(text)
    found = []
    lines = prose.split("\n")
    raw_lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    table_header = None
    table_map, seen_rows, seen_columns, headers = None, set(), set(), []
    for number, line in enumerate(lines, 1):
        start = offsets[number - 1]
        if line.lstrip().startswith("|"):
            cells = _cells(line, raw_lines[number - 1])
            if table_header is None:
                table_header = line
                table_map = maps.pop(number, None)
                headers = [_label(raw_lines[number - 1][a:b]) for a, b in cells]
                seen_rows, seen_columns = set(), set(headers)
            if re.fullmatch(r"\s*\|[\s|:\-]*\|\s*", line) or line is table_header:
                pass
            elif table_map is not None:
                row = _label(raw_lines[number - 1][cells[0][0]:cells[0][1]]) if cells else ""
                seen_rows.add(row)
                for i, (a, b) in enumerate(cells[1:], 1):
                    column = headers[i] if i < len(headers) else ""
                    if table_map["columns"].get(column) == "-":  # declared to hold no figures
                        continue
                    for k, value in enumerate(CELL_NUMBER.finditer(line[a:b])):
                        tag = TAG.match(line[a:b], value.end())
                        found.append((number, value.group(0).strip(), tag.group("tag") if tag else
                                      _mapped_cell(table_map, row, column, value.group(0)) if k == 0 else None))
                continue
            elif TABLE_METRIC.search(table_header):
                for cell in re.finditer(r"[^|]+", line):
                    value = CELL_NUMBER.search(cell.group(0))
                    if value:
                        tag = TAG.match(cell.group(0), value.end())
                        found.append((number, value.group(0).strip(), tag and tag.group("tag")))
                continue
        else:
            if table_map is not None:
                found += _unmatched(table_map, seen_rows, seen_columns)
            table_header, table_map = None, None
        spans = []
        for match in FIGURE.finditer(line):
            tag = TAG.match(prose, start + match.end())
            found.append((number, match.group(0).strip(), tag and tag.group("tag")))
            spans.append(match.span())
        for match in TAGGED.finditer(line):  # a sourced number is checked even when it is no figure
            if not any(a <= match.start() < b for a, b in spans):
                tag = TAG.match(prose, start + match.end())
                found.append((number, match.group(0).strip(), tag.group("tag")))
    if table_map is not None:
        found += _unmatched(table_map, seen_rows, seen_columns)
    for header_line, table_map in maps.items():  # a comment with no table under it
        found.append((table_map["line"], "<!-- figures -->", "unmatched: no table right below the comment"))
    return found


def _unmatched(table_map, rows, columns):
    """Entries of a table map that name a row or column the table does not have."""
    out = [(table_map["line"], f"row {r}", f"unmatched: row {r!r} is not in the table")
           for r in table_map["rows"] if r not in rows]
    out += [(table_map["line"], f"column {c}", f"unmatched: column {c!r} is not in the table")
            for c in table_map["columns"] if c not in columns]
    return out


def _value(data, path):
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _decimals(text):
    """Decimal places of the figure's last digit (negative for tens...; 1.4e-05: 6)."""
    text = text.replace(",", "")
    mantissa, _, exponent = text.lower().partition("e")
    places = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return places - int(exponent or 0)


def _numbers(figure):
    return [n.replace("−", "-") for n in re.findall(NUMBER, figure)]


def check_figure(figure, tag, results_dir):
    """None if `figure` agrees with its `tag`, else what is wrong."""
    if tag is None:
        return "no source: follow it with [results/FILE.json: key], [paper], [ext: ...] or [setting]"
    if tag.startswith("unmatched:"):
        return tag[len("unmatched: "):]
    if not tag.startswith("results/"):
        return None
    match = re.fullmatch(r"results/(?P<file>[\w.\-]+(?:/[\w.\-]+)*\.json):\s*(?P<keys>.+)", tag)
    if not match:
        return f"malformed source [{tag}]"
    path = os.path.join(results_dir, *match["file"].split("/"))
    if not os.path.exists(path):
        return f"{match['file']} is not in benchmarks/results/"
    with open(path) as f:
        data = json.load(f)
    keys = [k.strip() for k in match["keys"].split("±")]
    numbers = _numbers(figure)
    if len(keys) != len(numbers[:2]) or (len(numbers) > 1 and "±" not in figure and "+-" not in figure):
        return f"{len(numbers)} number(s) in the figure but {len(keys)} key(s) in [{tag}]"
    for key, text in zip(keys, numbers):
        scaled = re.fullmatch(r"(?P<key>[\w./\-]+)(?:\s*(?P<op>[*/])\s*(?P<k>[\d.e+-]+))?", key)
        if not scaled:
            return f"malformed key {key!r}"
        try:
            value = _value(data, scaled["key"])
        except (KeyError, IndexError, ValueError, TypeError):
            return f"{match['file']} has no key {scaled['key']!r}"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"{match['file']}: {scaled['key']} is {value!r}, not a number"
        if scaled["op"] == "*":
            value *= float(scaled["k"])
        elif scaled["op"] == "/":
            value /= float(scaled["k"])
        shown = float(text.replace(",", ""))
        if abs(value - shown) > 0.5 * 10 ** -_decimals(text) * (1 + 1e-9) + 1e-12:
            return f"{text} but {match['file']}: {key} = {value!r}"
    return None


@pytest.mark.parametrize("doc", DOCS)
def test_every_figure_has_a_source_that_agrees(doc):
    with open(os.path.join(report.REPO, doc), encoding="utf-8") as f:
        text = f.read()
    problems = []
    for line, figure, tag in figures(text):
        problem = check_figure(figure, tag, report.RESULTS_DIR)
        if problem:
            problems.append(f"{doc}:{line}: {figure!r}: {problem}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------ the checker itself
SAMPLE = """\
The step runs at **985 img/s** [results/tt.json: img_per_s], the pipeline at 3,101 batches/s
[results/ip.json: pipeline.batches_per_s]. Loss 0.3 and Adam 1e-4 are not figures; `--steps=30 s` is code.
The paper's sVAE-r reaches 81.14 nats [paper]; a reference classifier IS 9.88 ± 0.06 [ext: ChunyuanLI/MNIST_Inception_Score].
The budget is 30 minutes [setting]. Here IS 7.80 ± 0.09 [results/tt.json: runs.0.is ± runs.0.is_std].
A 28x28 image; accuracy 99.4 % [results/tt.json: accuracy * 100]; 2 h [results/tt.json: seconds / 3600].
A tiny RMSE 1.4e-05 [results/tt.json: small]; by 7300 [results/tt.json: seconds] over.

| backend | ms / image |
|---|---:|
| keras | 11.7 [results/tt.json: runs.0.ms] |
"""


@pytest.fixture
def results_dir(tmp_path):
    (tmp_path / "tt.json").write_text(json.dumps({
        "img_per_s": 985.3, "accuracy": 0.99394, "seconds": 7300.0, "small": 1.4e-05,
        "runs": [{"is": 7.8049, "is_std": 0.0871, "ms": 11.74}]}))
    (tmp_path / "ip.json").write_text(json.dumps({"pipeline": {"batches_per_s": 3101.0048}}))
    return tmp_path


def _problems(text, results_dir):
    return [(figure, check_figure(figure, tag, results_dir)) for _, figure, tag in figures(text)
            if check_figure(figure, tag, results_dir)]


def test_checker_accepts_sourced_figures(results_dir):
    found = [figure for _, figure, _ in figures(SAMPLE)]
    assert found == ["985 img/s", "3,101 batches/s", "81.14 nats", "IS 9.88 ± 0.06", "30 minutes",
                     "IS 7.80 ± 0.09", "accuracy 99.4 %", "2 h", "RMSE 1.4e-05", "7300", "11.7"]
    assert _problems(SAMPLE, results_dir) == []


@pytest.mark.parametrize("old, new, expected", [
    ("**985 img/s** [results/tt.json: img_per_s]", "**985 img/s**", "no source"),    # source dropped
    ("results/tt.json: img_per_s", "results/old.json: img_per_s", "not in benchmarks/results"),
    ("pipeline.batches_per_s", "pipeline.rate", "no key 'pipeline.rate'"),            # key renamed
    ("| 11.7 [", "| 11.9 [", "11.9 but tt.json: runs.0.ms = 11.74"),                 # off by more than rounding
    ("IS 7.80 ± 0.09", "IS 7.80 ± 0.07", "0.07 but"),                                 # the ± part off
    ("accuracy * 100", "accuracy", "99.4 but"),                                       # scale forgotten
    ("RMSE 1.4e-05", "RMSE 3.3e-04", "3.3e-04 but"),                                 # exponent ignored
    ("by 7300 [", "by 7400 [", "7400 but"),                     # a sourced number that is no figure
    ("81.14 nats [paper]", "81.14 nats", "no source"),                                # paper tag dropped
])
def test_checker_fails_on_each_kind_of_bad_figure(results_dir, old, new, expected):
    assert old in SAMPLE
    problems = _problems(SAMPLE.replace(old, new), results_dir)
    assert len(problems) == 1 and expected in problems[0][1], problems


MAPPED = """\
Source: `tt.json`.

<!-- figures: results/sub/tt.json
row **VAE**: runs.0
row `sVAE-r`: results/ip.json pipeline
column IS: is ± is_std
column ms: ms
column paper IS: [paper]
column commit: -
-->
| model | IS | ms | paper IS | commit | note |
|---|---:|---:|---:|---|---|
| **VAE** | 7.80 ± 0.09 | 11.7 | 9.29 | 1a2b3c4 | |
| `sVAE-r` | — | 3101.0 | — | 5d6e7f8 | ms 11.7 [results/sub/tt.json: runs.0.ms] |

After the table, IS 7.80 [results/sub/tt.json: runs.0.is].
"""


@pytest.fixture
def mapped_results(results_dir):
    (results_dir / "sub").mkdir()
    (results_dir / "sub" / "tt.json").write_text((results_dir / "tt.json").read_text())
    (results_dir / "ip.json").write_text(json.dumps({"pipeline": {"ms": 3101.0048}}))
    return results_dir


def test_mapped_table_is_checked_cell_by_cell(mapped_results):
    found = figures(MAPPED)
    assert [(f, t) for _, f, t in found] == [
        ("7.80 ± 0.09", "results/sub/tt.json: runs.0.is ± runs.0.is_std"),
        ("11.7", "results/sub/tt.json: runs.0.ms"), ("9.29", "paper"),
        ("3101.0", "results/ip.json: pipeline.ms"), ("11.7", "results/sub/tt.json: runs.0.ms"),
        ("IS 7.80", "results/sub/tt.json: runs.0.is")]
    assert _problems(MAPPED, mapped_results) == []


@pytest.mark.parametrize("old, new, expected", [
    ("| 11.7 |", "| 11.9 |", "11.9 but sub/tt.json"),                       # a cell off
    ("column ms: ms", "column ms: millis", "no key 'runs.0.millis'"),     # key renamed
    ("row **VAE**: runs.0", "row VAE: runs.1", "no key 'runs.1.is'"),     # wrong row index
    ("| **VAE** |", "| **AE** |", "row 'VAE' is not in the table"),      # row renamed, map stale
    ("column paper IS: [paper]\n", "", "no source"),                     # paper column unmapped
    ("| IS | ms |", "| IS | time |", "column 'ms' is not in the table"),  # header renamed
    ("results/sub/tt.json\n", "results/tt2.json\n", "not in benchmarks/results"),
    ("-->\n| model", "-->\n\n| model", "no table right below"),          # comment detached
    ("| ms 11.7 [", "| ms 11.7, 12 [", "no source"),                        # a second number untagged
])
def test_mapped_table_fails_on_each_kind_of_bad_figure(mapped_results, old, new, expected):
    assert old in MAPPED
    problems = _problems(MAPPED.replace(old, new), mapped_results)
    assert problems and any(expected in p[1] for p in problems), problems


# ------------------------------------------------------------ README's module list
PACKAGES = ("svae_tf", "trainers", "export", "benchmarks")
MODULE = re.compile(r"\b(?P<path>(?:svae_tf|trainers|export|benchmarks|tests)/[\w/]+\.py)\b")


def modules(repo):
    """Every module of PACKAGES (path relative to `repo`), __init__.py excepted."""
    return sorted(os.path.relpath(p, repo).replace(os.sep, "/")
                  for package in PACKAGES for p in glob.glob(os.path.join(repo, package, "*.py"))
                  if not p.endswith("__init__.py"))


def what_is_where(text):
    """The module paths named in README's "What is where" section."""
    match = re.search(r"(?ms)^## What is where\n(.*?)(?=^## )", text + "\n## ")
    assert match, 'README has no "## What is where" section'
    return sorted(set(m["path"] for m in MODULE.finditer(match.group(1))))


def module_problems(text, repo):
    """Modules README names that do not exist, and modules "What is where" misses."""
    named = sorted(set(m["path"] for m in MODULE.finditer(text)))
    out = [f"README names {p}, which does not exist" for p in named
           if not os.path.exists(os.path.join(repo, p))]
    listed = what_is_where(text)
    out += [f'"What is where" misses {p}' for p in modules(repo) if p not in listed]
    return out


def test_readme_names_every_module_and_no_other():
    with open(os.path.join(report.REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert module_problems(text, report.REPO) == []


def test_module_check_fails_on_a_missing_or_a_stale_module(tmp_path):
    for path in ("svae_tf/a.py", "svae_tf/b.py", "trainers/t.py", "svae_tf/__init__.py"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("")
    good = "## What is where\n\n`svae_tf/a.py`, `svae_tf/b.py`, `trainers/t.py`\n\n## Next\n"
    assert module_problems(good, tmp_path) == []
    assert module_problems(good.replace("`svae_tf/b.py`, ", ""), tmp_path) == ['"What is where" misses svae_tf/b.py']
    stale = good + "See `svae_tf/old.py`.\n"
    assert module_problems(stale, tmp_path) == ["README names svae_tf/old.py, which does not exist"]
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "new.py").write_text("")   # a module added without a README line
    assert module_problems(good, tmp_path) == ['"What is where" misses export/new.py']


# ------------------------------------------------------------ links between the docs and results
LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?:#[^)\s]*)?\)")
# Pages other work is writing; a link to them may point nowhere yet.
PENDING = {"docs/architecture.md"}


def link_problems(doc, text, repo):
    """Relative links in `doc` (a path relative to `repo`) whose target does not exist."""
    out = []
    for match in LINK.finditer(_strip_code(text)):
        target = match["target"]
        if re.match(r"[a-z]+:", target):  # http:, mailto:
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(doc), target)).replace(os.sep, "/")
        if not os.path.exists(os.path.join(repo, path)) and path not in PENDING:
            out.append(f"{doc}: link to {target} ({path}) points nowhere")
    return out


@pytest.mark.parametrize("doc", DOCS + ("benchmarks/results/README.md",))
def test_every_link_points_at_a_file(doc):
    with open(os.path.join(report.REPO, doc), encoding="utf-8") as f:
        assert link_problems(doc, f.read(), report.REPO) == []


def test_link_check_fails_on_a_moved_file(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks" / "results" / "speed").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "speed" / "a.md").write_text("")
    text = "[a](../benchmarks/results/speed/a.md) [b](https://x.org/y) [c](architecture.md)"
    assert link_problems("docs/p.md", text, tmp_path) == []
    moved = text.replace("speed/a.md", "a.md")  # a results file moved, the link not updated
    assert link_problems("docs/p.md", moved, tmp_path) == [
        "docs/p.md: link to ../benchmarks/results/a.md (benchmarks/results/a.md) points nowhere"]
