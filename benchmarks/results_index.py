"""Write benchmarks/results/README.md: the index of every results report.

    python -m benchmarks.results_index            # rewrite the index
    python -m benchmarks.results_index --check    # exit 1 if the index is out of date

Each report (a NAME.json / NAME.md pair written by `benchmarks/report.py`, at any depth under
benchmarks/results/) is listed with its title, date and commit, read from the JSON's
provenance block, and its status: current, or superseded (by what). The status and a short
note come from `STATUS` below, the one place they are kept; the results files themselves are
never edited. A report under `archive/` must be marked superseded, and a superseded report
must be under `archive/` (`problems`).

Neither importing this module nor running it imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import sys

from benchmarks import report

INDEX = os.path.join(report.RESULTS_DIR, report.INDEX_NAME)

# The folders, in the order the index lists them, and what each holds.
FOLDERS = {
    "mnist_table1": "Table 1 (MNIST) reproductions at 30 CPU-minutes per variant "
                    "(`benchmarks/reproduce_mnist.py`), with their learning curves and sample grids, "
                    "and 30-minute ablations of the shipped sVAE-r. Read with `docs/reproduction.md`.",
    "screens/collapse": "Why the default presets differ from Appendix A: mode collapse at 600 steps.",
    "screens/latent_term": "sVAE-r's objective: eq. (29)'s latent term, the exact E_q side, lambda on the "
                           "whole bound, lambda for the encoder alone.",
    "screens/lambda": "sVAE-r's lambda.",
    "screens/lr_batch": "Learning rate, its decay, batch size.",
    "screens/batch_norm": "Batch norm's population statistics recomputed at epoch ends.",
    "screens/aids": "Training aids: instance noise, weight EMA, discriminator strength, R1, dropout.",
    "screens/cifar10": "Probes on the 2,000-image CIFAR-10 subset.",
    "speed": "Throughput, input pipeline, sampling latency, the batch-norm population fix on the "
             "Table 1 checkpoints, and step fingerprints (weights after seeded steps, compared "
             "across refactors).",
    "archive": "Superseded reports, kept because the docs or git history point at them.",
}

# Status of each report (path relative to benchmarks/results, without extension). A report
# not listed is current, with no note. "superseded" needs a note naming what replaces it.
STATUS = {
    "archive/yardsticks_first_run": (
        "superseded", "by `speed/yardsticks` (keys a document can cite); an earlier run the same day at "
        "e139324 that put today's A.1 step level with f61799b's: read the two runs together"),
    "archive/mnist_shared_samples": (
        "superseded", "by `mnist_table1/mnist_refit`: the same two checkpoints evaluated again with the "
        "encoder refit; its as-trained numbers, curves and samples are the same"),
    "mnist_table1/mnist": (
        "current", "the Table 1 rows of VAE, GAN, WGAN-GP, ALI and sVAE; its sVAE-r rows (Adam 2e-4) are "
        "superseded as the shipped recipe by `mnist_refit`; rows carried over from earlier reports "
        "(`carried_over` in the JSON)"),
    "mnist_table1/mnist_eq29": (
        "current", "the rows of eq. (29) exactly (`svae_r`) and `svae_r_elbo`; its ALI row (10,800 steps, "
        "before the epoch-end batch-norm recompute) is superseded by `mnist`'s"),
    "mnist_table1/mnist_refit": (
        "current", "the earlier sVAE-r recipe (`--lam_z=0`, shipped until issue #28) and its VAE, Adam 4e-4, "
        "with the encoder refit"),
    "mnist_table1/mnist_refit_seed1": ("current", "the earlier sVAE-r recipe, second seed"),
    "mnist_table1/mnist_updates_lx_draw": (
        "current", "the shipped MNIST sVAE-r (`mnist_svae_r.flags`: the recipe with eq. (29)'s latent term at "
        "a drawn x) at 10,200 updates; wall-clock minutes taken on a shared machine (load in the report)"),
    "mnist_table1/mnist_updates": (
        "current", "Table 1 at equal updates (issue #28), under way: so far the earlier sVAE-r recipe "
        "(`--lam_z=0`) at 10,200 updates; wall-clock minutes taken on a shared machine (load in the report)"),
    "mnist_table1/mnist_lr4e-4": ("current", "ablation: Adam 4e-4 without `--shared_samples`"),
    "mnist_table1/mnist_shared_samples_r1": ("current", "ablation: the shipped sVAE-r with R1 0.1"),
    "mnist_table1/mnist_svae_r_batch50": ("current", "ablation: batch 50 (Adam 2e-4)"),
    "mnist_table1/mnist_svae_r_batch100": ("current", "ablation: batch 100 beside it (Adam 2e-4)"),
    "mnist_table1/mnist_svae_r_ema": ("current", "ablation: eq. (29) with `--lam_z=0` and EMA, 60 minutes"),
    "screens/latent_term/mode_collapse_encoder_lam": (
        "current", "measured at 6b4557d with `encoder_lam`, which commit 2e1f046 removed from the code again"),
    "speed/train_throughput_mnist_svae_r_lx_shared": ("current", "the shipped sVAE-r step"),
    "speed/step_fingerprint": ("current", "the reference of the fingerprints up to 2026-12-06, made on "
                               "another CPU: a reference holds only on the machine that made it"),
    "speed/step_fingerprint_a3fef46": ("current", "a3fef46's weights, made on the 2026-12-07 machine: the "
                                       "reference of the #29 restructure"),
    "speed/step_fingerprint_structure": ("current", "the #29 restructure against `step_fingerprint_a3fef46`, "
                                         "same machine: all 12 cases equal"),
    "screens/cifar10/cifar10_validation_latent_x": (
        "current", "issue #28 item 6: the CIFAR-10 flagfile's recipe against eq. (29) at a drawn x and the MNIST "
        "candidate, on the validation slice (a shared machine; steps count, not seconds)"),
    "speed/step_fingerprint_layout": ("current", "svae_tf in layered subpackages (fb260cd) against "
                                      "`step_fingerprint_a3fef46`, same machine: all 12 cases equal"),
    "speed/step_work": ("current", "issue #31's regression counted: FLOPs and network calls at f61799b and now"),
    "speed/yardsticks": ("current", "issue #31: the step against plain PyTorch and plain Keras and against f61799b's "
                         "step, in one run (a noisy machine: see the rounds and `archive/yardsticks_first_run`)"),
    "speed/first_step": ("current", "issue #31 item 3: start to first step of the main job, where it goes, and the "
                         "programs after it"),
}


def _runs_text(data):
    """For a screen (benchmarks/mode_collapse.py): its steps, batch and runs, as text."""
    runs = data.get("runs")
    if not (isinstance(runs, list) and runs and all(isinstance(r, dict) and "run" in r for r in runs)):
        return ""
    settings = data.get("settings") or {}
    head = f"; {settings.get('steps')} steps, batch {settings.get('batch_size')}" if settings else ""
    return head + "; runs " + ", ".join(f"`{r['run']}`" for r in runs)


def reports(directory=report.RESULTS_DIR):
    """[{name, title, date, commit, dirty, status, note}] of every report, in folder order."""
    names, _, _ = report.find_reports(directory)
    order = {folder: i for i, folder in enumerate(FOLDERS)}
    rows = []
    for name in names:
        with open(os.path.join(directory, *name.split("/")) + ".json") as f:
            data = json.load(f)
        prov = data["provenance"]
        with open(os.path.join(directory, *name.split("/")) + ".md", encoding="utf-8") as f:
            title = f.readline().lstrip("#").strip()
        title += _runs_text(data)
        status, note = STATUS.get(name, ("current", ""))
        rows.append({"name": name, "folder": os.path.dirname(name), "title": title,
                     "date": prov["date"][:10], "commit": prov["commit"], "dirty": prov["dirty"],
                     "dirty_files": prov.get("dirty_files") or [], "status": status, "note": note})
    rows.sort(key=lambda r: (order.get(r["folder"], len(order)), r["folder"], r["name"]))
    return rows


def problems(directory=report.RESULTS_DIR):
    """Inconsistencies between STATUS, FOLDERS and the files: a list of strings."""
    rows = reports(directory)
    names = {r["name"] for r in rows}
    out = [f"STATUS names {name}, which is not a report" for name in STATUS if name not in names]
    for r in rows:
        if r["folder"] not in FOLDERS:
            out.append(f"{r['name']}: folder {r['folder'] or '(top level)'} is not one of FOLDERS")
        if r["status"] not in ("current", "superseded"):
            out.append(f"{r['name']}: status {r['status']!r} is neither current nor superseded")
        if (r["status"] == "superseded") != (r["folder"] == "archive"):
            out.append(f"{r['name']}: status {r['status']} but folder {r['folder']} "
                       "(superseded reports, and only they, go under archive/)")
        if r["status"] == "superseded" and not r["note"]:
            out.append(f"{r['name']}: superseded, but the note does not say by what")
    return out


def render(directory=report.RESULTS_DIR):
    """The index's Markdown."""
    rows = reports(directory)
    lines = ["# Results index", "",
             "Generated by `python -m benchmarks.results_index` from the reports' provenance blocks "
             "(date, commit) and the status table in `benchmarks/results_index.py`; do not edit by hand. "
             "Every report is a `.json` / `.md` pair written by `benchmarks/report.py` (never edited "
             "after it was written; `tests/test_report.py` checks the checksums). A commit marked "
             "+dirty was measured from a tree with uncommitted changes; the report's Provenance section "
             "names the files. Dates are UTC.", "",
             f"{len(rows)} reports; {sum(r['status'] == 'current' for r in rows)} current, "
             f"{sum(r['status'] == 'superseded' for r in rows)} superseded.", ""]
    for folder in [f for f in FOLDERS if any(r["folder"] == f for r in rows)]:
        lines += [f"## {folder}/", "", FOLDERS[folder], "",
                  "| report | what | date | commit | status |", "|---|---|---|---|---|"]
        for r in (r for r in rows if r["folder"] == folder):
            leaf = r["name"].split("/")[-1]
            commit = f"`{r['commit'][:7]}`" + ("+dirty" if r["dirty"] else "")
            status = r["status"] + (f": {r['note']}" if r["note"] else "")
            lines.append(f"| [{leaf}]({r['name']}.md) | {r['title'].replace('|', '/')} | {r['date']} | "
                         f"{commit} | {status.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    found = problems()
    if found:
        print("\n".join(found), file=sys.stderr)
        return 1
    text = render()
    if "--check" in argv:
        try:
            with open(INDEX, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print(f"{INDEX} is out of date: run python -m benchmarks.results_index", file=sys.stderr)
            return 1
        return 0
    from svae_tf.utils.files import atomic_write  # no TensorFlow import
    atomic_write(INDEX, text)
    print(f"wrote {INDEX} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
