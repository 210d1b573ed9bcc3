"""Every figure in README.md and BUILD.md names its source, and results figures match their JSON.

The convention (also in README.md, "Results and the numbers in this README"):

* A *figure* is a number with a unit of measurement (img/s, batches/s, steps/s, ms, s, min,
  h, nats, bits/dim, %, GB/MB, or a ratio such as 2.5x / 30 times), a number right after a
  metric name (RMSE, IS, FID, NLL, ELBO, accuracy, Inception score), or a number in a table
  whose header names such a metric or unit. Text in code spans and code blocks is not
  prose (commands, flag values, example output) and is not checked.
* Each figure is followed, right after it (after a closing `**` if bold), by its source:
  - `[results/FILE.json: key.path]`: a file in benchmarks/results/ and a dot path into it
    (list items by index), optionally scaled (`key * 100`, `key / 60`); for `A ± B` give
    both keys, `[results/FILE.json: mean.key ± std.key]`. The figure must equal the JSON
    value rounded to the figure's decimals.
  - `[paper]`: a number quoted from the paper (Pu et al.), `[ext: owner/repo]`: from another
    project, `[setting]`: not a measurement (a budget, target, tolerance, test threshold).
* A figure without a source fails this test: remove it, or make a benchmark write it.
"""

import json
import os
import re

import pytest

from benchmarks import report

DOCS = ("README.md", "BUILD.md")
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
TAG = re.compile(r"\s*(?:\*\*)?\s*\[(?P<tag>results/[^\]]+|paper|ext: [^\]]+|setting)\]")


def _strip_code(text):
    """Code blocks and code spans blanked out (same length, so offsets stay right)."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    text = re.sub(r"(?ms)^```.*?^```", blank, text)
    return re.sub(r"`[^`\n]*`", blank, text)


def figures(text):
    """[(line number, figure text, tag or None)] of every figure in Markdown `text`."""
    prose = _strip_code(text)
    found = []
    lines = prose.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    table_header = None
    for number, line in enumerate(lines, 1):
        start = offsets[number - 1]
        if line.lstrip().startswith("|"):
            if table_header is None:
                table_header = line
            if re.fullmatch(r"\s*\|[\s|:\-]*\|\s*", line) or line is table_header:
                pass
            elif TABLE_METRIC.search(table_header):
                for cell in re.finditer(r"[^|]+", line):
                    value = CELL_NUMBER.search(cell.group(0))
                    if value:
                        tag = TAG.match(cell.group(0), value.end())
                        found.append((number, value.group(0).strip(), tag and tag.group("tag")))
                continue
        else:
            table_header = None
        for match in FIGURE.finditer(line):
            tag = TAG.match(prose, start + match.end())
            found.append((number, match.group(0).strip(), tag and tag.group("tag")))
    return found


def _value(data, path):
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _decimals(text):
    text = text.replace(",", "")
    mantissa = text.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _numbers(figure):
    return [n.replace("−", "-") for n in re.findall(NUMBER, figure)]


def check_figure(figure, tag, results_dir):
    """None if `figure` agrees with its `tag`, else what is wrong."""
    if tag is None:
        return "no source: follow it with [results/FILE.json: key], [paper], [ext: ...] or [setting]"
    if not tag.startswith("results/"):
        return None
    match = re.fullmatch(r"results/(?P<file>[\w.\-]+\.json):\s*(?P<keys>.+)", tag)
    if not match:
        return f"malformed source [{tag}]"
    path = os.path.join(results_dir, match["file"])
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

| backend | ms / image |
|---|---:|
| keras | 11.7 [results/tt.json: runs.0.ms] |
"""


@pytest.fixture
def results_dir(tmp_path):
    (tmp_path / "tt.json").write_text(json.dumps({
        "img_per_s": 985.3, "accuracy": 0.99394, "seconds": 7300.0,
        "runs": [{"is": 7.8049, "is_std": 0.0871, "ms": 11.74}]}))
    (tmp_path / "ip.json").write_text(json.dumps({"pipeline": {"batches_per_s": 3101.0048}}))
    return tmp_path


def _problems(text, results_dir):
    return [(figure, check_figure(figure, tag, results_dir)) for _, figure, tag in figures(text)
            if check_figure(figure, tag, results_dir)]


def test_checker_accepts_sourced_figures(results_dir):
    found = [figure for _, figure, _ in figures(SAMPLE)]
    assert found == ["985 img/s", "3,101 batches/s", "81.14 nats", "IS 9.88 ± 0.06", "30 minutes",
                     "IS 7.80 ± 0.09", "accuracy 99.4 %", "2 h", "11.7"]
    assert _problems(SAMPLE, results_dir) == []


@pytest.mark.parametrize("old, new, expected", [
    ("**985 img/s** [results/tt.json: img_per_s]", "**985 img/s**", "no source"),    # source dropped
    ("results/tt.json: img_per_s", "results/old.json: img_per_s", "not in benchmarks/results"),
    ("pipeline.batches_per_s", "pipeline.rate", "no key 'pipeline.rate'"),            # key renamed
    ("| 11.7 [", "| 11.9 [", "11.9 but tt.json: runs.0.ms = 11.74"),                 # off by more than rounding
    ("IS 7.80 ± 0.09", "IS 7.80 ± 0.07", "0.07 but"),                                 # the ± part off
    ("accuracy * 100", "accuracy", "99.4 but"),                                       # scale forgotten
    ("81.14 nats [paper]", "81.14 nats", "no source"),                                # paper tag dropped
])
def test_checker_fails_on_each_kind_of_bad_figure(results_dir, old, new, expected):
    assert old in SAMPLE
    problems = _problems(SAMPLE.replace(old, new), results_dir)
    assert len(problems) == 1 and expected in problems[0][1], problems
