"""Reproduce the MNIST comparison of the paper (Table 1) at a fixed CPU budget.

    python -m benchmarks.reproduce_mnist [--minutes_per_variant=30] [--work_dir=runs/reproduce_mnist]
        [--results=benchmarks/results/mnist.md] [--iw_samples=5000] [--num_samples=10000]

Trains VAE, ALI, sVAE and sVAE-r on real MNIST with the same architecture
(`presets.MNIST`, Appendix A.1), seed, batch size, optimizer settings and
wall-clock budget, by running the public trainer as a subprocess:

    python -m trainers.mnist --variant=V --model_dir=WORK/V --data_dir=... --epochs=E
        --steps_per_epoch=S --batch_size=B --seed=SEED --g_learning_rate=... --d_learning_rate=...
        --beta1=...

then evaluates each run with `python -m trainers.evaluate` and writes the report
through `benchmarks.report`: RESULTS.md (the table, beside the paper's Table 1) and
RESULTS.json (the raw numbers), both with the command, commit and machine.

Columns. The paper's NLL is "estimated via the variational lower bound defined in
(1)" (Sec. 6), so -ELBO stands beside the paper's NLL; the importance-weighted bound
(-IWAE with K = --iw_samples, tighter) is a column of its own. Every row names the
commit(s) its trainer runs and its evaluation ran at (each trainer invocation records
`git_state` in the ledger), since a row may be older than the report.

Budget. `--minutes_per_variant` is wall-clock time spent in trainer processes
(start-up, held-out ELBO and image grids included). The trainer's `--epochs` is a
total and it resumes from its newest checkpoint, so training runs in chunks:
the first chunk is one epoch of S steps, which measures the step rate; each
further chunk asks for as many whole epochs as fit in the remaining budget (at
least one), from the measured cost per step and per trainer start-up
(`step_cost`). It stops when less than half an epoch fits. A
ledger WORK/V.budget.json records the seconds used, so re-running the script
continues where it stopped (raise --minutes_per_variant to train longer);
evaluation is skipped when its JSON already matches the newest checkpoint and
the settings.

The MNIST classifier for IS/FID is trained once (`python -m trainers.classifier`)
if it is not at --classifier (default ~/.cache/svae_tf/mnist_classifier.keras).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

from svae_tf import logs as tf_logs
from benchmarks import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("vae", "ali", "svae", "svae_r")
LABELS = {"vae": "VAE", "ali": "ALI", "svae": "sVAE", "svae_r": "sVAE-r"}

# Table 1 of the paper (MNIST). Its NLL is the variational bound (1) (Sec. 6), i.e. -ELBO.
# The text extraction lists the NLL column as 85.1, 79.2, 81.14, 82.51 for NF, PixelRNN,
# sVAE, sVAE-r; the text says "sVAE-r ... achieves a negative log-likelihood of 81.14
# nats" and that sVAE-r beats sVAE on both tasks, so 81.14 is sVAE-r's and 82.51 sVAE's.
PAPER_TABLE_1 = [
    ("NF (k=80)", 85.1, None),
    ("PixelRNN", 79.2, None),
    ("GAN", None, "8.34 ± .03"),
    ("WGAN-GP", None, "8.45 ± .04"),
    ("sVAE", 82.51, "9.15 ± .06"),
    ("sVAE-r", 81.14, "9.29 ± .06"),
]
PAPER = {"svae": (82.51, "9.15 ± .06"), "svae_r": (81.14, "9.29 ± .06")}
PAPER_LEARNING_RATE = 1e-4
MNIST_TEST_IMAGES = 10000


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.reproduce_mnist", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", default=os.path.join("runs", "reproduce_mnist"),
                   help="one model_dir per variant lives here (reused: re-running continues)")
    p.add_argument("--results", default=os.path.join(REPO, "benchmarks", "results", "mnist.md"),
                   help="RESULTS.md and RESULTS.json are written (benchmarks.report)")
    p.add_argument("--data_dir", default=None, help="TFDS data dir (default $TFDS_DATA_DIR)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--minutes_per_variant", type=float, default=30.0)
    p.add_argument("--steps_per_epoch", type=int, default=600, help="600 = one pass at batch 100")
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--g_learning_rate", type=float, default=PAPER_LEARNING_RATE)
    p.add_argument("--d_learning_rate", type=float, default=PAPER_LEARNING_RATE)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--eval_batches", type=int, default=10,
                   help="held-out ELBO batches per epoch in the trainer (keeps its overhead small)")
    p.add_argument("--trainer_flag", action="append", default=[],
                   help="extra flag passed to every trainer run, e.g. --trainer_flag=--lam=0.3")
    # Evaluation.
    p.add_argument("--iw_samples", type=int, default=5000)
    p.add_argument("--num_nll_images", type=int, default=None, help="default: all 10,000 test images")
    p.add_argument("--num_samples", type=int, default=10000)
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--classifier", default=None, help="default: ~/.cache/svae_tf/mnist_classifier.keras")
    p.add_argument("--skip_eval", action="store_true")
    p.add_argument("--rmse_far_ratio", type=float, default=0.75,
                   help="'far better' RMSE: sVAE-r <= ratio x ALI")
    p.add_argument("--nll_close_nats", type=float, default=5.0, help="'close' NLL: within this many nats")
    p.add_argument(f"--{tf_logs.FLAG}", choices=list(tf_logs.LEVELS), default=None, help=tf_logs.FLAG_HELP)
    return p.parse_args(argv)


# ------------------------------------------------------------------ helpers
def _say(message):
    print(f"[reproduce_mnist] {message}", flush=True)


def _read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def _write_json(path, value):
    from svae_tf import runs  # imports TensorFlow

    runs.atomic_write(path, json.dumps(value, indent=2, sort_keys=True))


def _run(cmd, log_path):
    """Run `cmd` (cwd = repo root), output to `log_path`; returns (return code, seconds)."""
    start = time.time()
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        rc = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # inherits TF_CPP_MIN_LOG_LEVEL
    return rc, time.time() - start


def read_progress(model_dir):
    """(epochs done, optimizer steps, newest checkpoint) of a trainer run; zeros if none."""
    import tensorflow as tf  # lazily: the driver itself needs TF only for this

    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if path is None:
        return 0, 0, None
    reader = tf.train.load_checkpoint(path)
    names = reader.get_variable_to_shape_map()

    def value(prefix, contains=""):
        for name in names:
            if name.startswith(prefix) and contains in name:
                return int(reader.get_tensor(name))
        return 0

    return value("epoch/"), value("g_optimizer/", "iterations"), path


# ------------------------------------------------------------------ training
def step_cost(invocations):
    """(seconds of overhead per trainer run, seconds per step) from past runs.

    Fits seconds = overhead + steps * seconds_per_step by least squares once two runs
    trained different numbers of steps (start-up, data and graph building are the
    overhead); before that, or if the fit is not sensible, the overhead is 0 and the
    cost per step is total seconds / total steps (conservative: fewer epochs per run).
    """
    points, previous = [], 0
    for inv in invocations:
        before = inv.get("steps_before", previous)
        points.append((inv["steps_after"] - before, inv["seconds"]))
        previous = inv["steps_after"]
    steps = sum(p[0] for p in points)
    seconds = sum(p[1] for p in points)
    average = seconds / max(1, steps)
    if len({p[0] for p in points}) >= 2:
        n = len(points)
        mean_x, mean_y = steps / n, seconds / n
        sxx = sum((x - mean_x) ** 2 for x, _ in points)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
        intercept = mean_y - slope * mean_x
        if slope > 0 and intercept >= 0:
            return intercept, slope
    return 0.0, average


def train_variant(variant, args, python=sys.executable):
    """Train `variant` until its budget is used; returns its ledger."""
    work_dir = os.path.abspath(args.work_dir)
    model_dir = os.path.join(work_dir, variant)
    ledger_path = os.path.join(work_dir, f"{variant}.budget.json")
    log_path = os.path.join(work_dir, "logs", f"{variant}_train.log")
    ledger = _read_json(ledger_path) or {"seconds": 0.0, "invocations": []}
    for key in ("steps_per_epoch", "batch_size", "seed"):
        if key in ledger and ledger[key] != getattr(args, key):
            raise SystemExit(f"{model_dir} was trained with --{key}={ledger[key]}; resume with the same value "
                             "or use another --work_dir.")
        ledger[key] = getattr(args, key)
    budget = 60.0 * args.minutes_per_variant
    steps_per_epoch = args.steps_per_epoch
    while True:
        epochs_done, steps_done, _ = read_progress(model_dir)
        remaining = budget - ledger["seconds"]
        if ledger["seconds"] > 0 and steps_done > 0:
            overhead, seconds_per_step = step_cost(ledger["invocations"])
            fit = (remaining - overhead) / (seconds_per_step * steps_per_epoch)
            if fit < 0.5:
                break
            chunk = max(1, int(math.floor(fit)))
        elif remaining > 0:
            chunk = 1  # the first epoch measures the step rate
        else:
            break
        target = epochs_done + chunk
        cmd = [python, "-m", "trainers.mnist", f"--variant={variant}", f"--model_dir={model_dir}",
               f"--epochs={target}", f"--steps_per_epoch={steps_per_epoch}",
               f"--batch_size={args.batch_size}", f"--seed={args.seed}",
               f"--g_learning_rate={args.g_learning_rate}", f"--d_learning_rate={args.d_learning_rate}",
               f"--beta1={args.beta1}", f"--eval_batches={args.eval_batches}", "--verbose=2",
               *args.trainer_flag]
        if args.data_dir:
            cmd.append(f"--data_dir={args.data_dir}")
        _say(f"{variant}: training to epoch {target} ({chunk} more of {steps_per_epoch} steps; "
             f"{remaining / 60:.1f} of {budget / 60:.1f} budget minutes left)")
        commit, dirty, _ = report.git_state()
        rc, seconds = _run(cmd, log_path)
        ledger["seconds"] += seconds
        epochs_after, steps_after, _ = read_progress(model_dir)
        ledger["invocations"].append({"target_epochs": target, "seconds": seconds, "return_code": rc,
                                      "steps_before": steps_done, "epochs_after": epochs_after,
                                      "steps_after": steps_after, "commit": commit, "dirty": dirty})
        _write_json(ledger_path, ledger)
        if rc != 0:
            raise SystemExit(f"trainers.mnist failed for {variant} (exit {rc}); see {log_path}")
        if steps_after <= steps_done:
            raise SystemExit(f"trainers.mnist made no progress for {variant}; see {log_path}")
    epochs, steps, checkpoint = read_progress(model_dir)
    ledger.update(epochs=epochs, steps=steps, checkpoint=checkpoint, model_dir=model_dir,
                  budget_seconds=budget)
    _write_json(ledger_path, ledger)
    _say(f"{variant}: {epochs} epochs, {steps} steps, {ledger['seconds'] / 60:.1f} min of training")
    return ledger


# ---------------------------------------------------------------- evaluation
def ensure_classifier(args, python=sys.executable):
    from svae_tf import classifiers

    path = os.path.expanduser(args.classifier or classifiers.default_mnist_classifier_path())
    if not os.path.exists(path):
        _say(f"training the MNIST classifier once ({path})")
        cmd = [python, "-m", "trainers.classifier", f"--output={path}", "--verbose=2"]
        if args.data_dir:
            cmd.append(f"--data_dir={args.data_dir}")
        rc, _ = _run(cmd, os.path.join(os.path.abspath(args.work_dir), "logs", "classifier.log"))
        if rc != 0:
            raise SystemExit("trainers.classifier failed; see the log in WORK/logs/classifier.log")
    return path, _read_json(path + ".json", {})


def evaluate_variant(variant, ledger, classifier, args, python=sys.executable):
    work_dir = os.path.abspath(args.work_dir)
    json_path = os.path.join(work_dir, "evals", f"{variant}.json")
    settings = {"iw_samples": args.iw_samples, "num_samples": args.num_samples, "splits": args.splits}
    settings["num_images"] = min(args.num_nll_images or MNIST_TEST_IMAGES, MNIST_TEST_IMAGES)
    settings["classifier_mtime_ns"] = os.stat(classifier).st_mtime_ns
    old = _read_json(json_path)
    if old and old.get("checkpoint") == ledger["checkpoint"] and all(old.get(k) == v for k, v in settings.items()):
        _say(f"{variant}: evaluation up to date ({json_path})")
        return old
    cmd = [python, "-m", "trainers.evaluate", f"--model_dir={ledger['model_dir']}", "--dataset=mnist",
           f"--json={json_path}", f"--iw_samples={args.iw_samples}", f"--num_samples={args.num_samples}",
           f"--splits={args.splits}", f"--classifier={classifier}", f"--seed={args.seed}",
           f"--name={LABELS[variant]}"]
    if args.num_nll_images:
        cmd.append(f"--num_nll_images={args.num_nll_images}")
    if args.data_dir:
        cmd.append(f"--data_dir={args.data_dir}")
    _say(f"{variant}: evaluating (K={args.iw_samples}, {args.num_samples} samples)")
    log_path = os.path.join(work_dir, "logs", f"{variant}_eval.log")
    commit, dirty, _ = report.git_state()
    rc, seconds = _run(cmd, log_path)
    if rc != 0:
        raise SystemExit(f"trainers.evaluate failed for {variant} (exit {rc}); see {log_path}")
    results = _read_json(json_path)
    results["eval_seconds"] = seconds
    results["evaluated_at"] = {"commit": commit, "dirty": dirty}
    results["classifier_mtime_ns"] = settings["classifier_mtime_ns"]
    _write_json(json_path, results)
    return results


# ------------------------------------------------------------------- report
def _f(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


FID_TIE = 0.02  # relative FID difference below which two models are called even
IS_TIE = 0.01  # smallest IS difference that counts, whatever the split stds


def _cmp_is(a, b):
    """+1 if a's IS beats b's by more than the larger split std (and IS_TIE), -1 if worse, else 0."""
    diff = a["inception_score"] - b["inception_score"]
    noise = max(a.get("inception_score_std") or 0.0, b.get("inception_score_std") or 0.0, IS_TIE)
    return 0 if abs(diff) <= noise else (1 if diff > 0 else -1)


def _cmp_fid(a, b):
    """+1 if a's FID is lower than b's by more than FID_TIE (relative), -1 if higher, else 0."""
    fa, fb = a["fid"], b["fid"]
    return 0 if abs(fa - fb) <= FID_TIE * max(fa, fb) else (1 if fa < fb else -1)


def _cmp_nll(a, b):
    """+1 if a's NLL is lower than b's by more than 2 standard errors, -1 if higher, else 0."""
    se = math.hypot(a.get("nll_nats_stderr") or 0.0, b.get("nll_nats_stderr") or 0.0)
    diff = b["nll_nats"] - a["nll_nats"]
    return 0 if abs(diff) <= 2 * se else (1 if diff > 0 else -1)


def _verdict(comparisons):
    if all(c > 0 for c in comparisons):
        return "holds"
    if all(c < 0 for c in comparisons):
        return "does not hold (reversed)"
    if all(c == 0 for c in comparisons):
        return "not distinguishable (within noise)"
    if any(c < 0 for c in comparisons):
        return "does not hold" if not any(c > 0 for c in comparisons) else "mixed"
    return "partly (better on one, tied on the other)"


def claims(rows, args):
    """Which of the paper's MNIST claims hold in the measured numbers: [(claim, verdict, detail)].

    Noise rules: an IS difference counts only beyond the larger of the two split stds, an
    FID difference beyond FID_TIE (relative), an NLL difference beyond 2 standard errors.
    """
    def row(variant, *keys):
        r = rows.get(variant) or {}
        return r if all(r.get(k) is not None for k in keys) else None

    out = []
    # 1. sVAE-r reconstructs far better than ALI.
    claim = "sVAE-r reconstructs far better than ALI (RMSE)"
    ali, svr = row("ali", "rmse"), row("svae_r", "rmse")
    if ali is None or svr is None:
        out.append((claim, "not measured", "RMSE of ALI or sVAE-r missing"))
    else:
        a, r = ali["rmse"], svr["rmse"]
        ratio = r / a if a else float("inf")
        verdict = ("holds" if ratio <= args.rmse_far_ratio
                   else "weakly (lower, not far lower)" if r < a else "does not hold")
        out.append((claim, verdict, f"RMSE sVAE-r {r:.2f} vs ALI {a:.2f} (ratio {ratio:.2f}; "
                                    f"'far' means <= {args.rmse_far_ratio:g})"))
    # 2. sVAE / sVAE-r sample better than the VAE.
    for variant in ("svae", "svae_r"):
        claim = f"{LABELS[variant]} samples better than the VAE (IS and FID)"
        vae, m = row("vae", "inception_score", "fid"), row(variant, "inception_score", "fid")
        if vae is None or m is None:
            out.append((claim, "not measured", "IS/FID missing"))
            continue
        out.append((claim, _verdict([_cmp_is(m, vae), _cmp_fid(m, vae)]),
                    f"IS {m['inception_score']:.2f} ± {m['inception_score_std']:.2f} vs VAE "
                    f"{vae['inception_score']:.2f} ± {vae['inception_score_std']:.2f}; FID {m['fid']:.2f} "
                    f"vs VAE {vae['fid']:.2f} (lower is better)"))
    # 3. sVAE-r's NLL close to the VAE's.
    claim = "sVAE-r's NLL is close to the VAE's"
    vae, svr = row("vae", "nll_nats"), row("svae_r", "nll_nats")
    if vae is None or svr is None:
        out.append((claim, "not measured", "NLL missing"))
    else:
        diff = svr["nll_nats"] - vae["nll_nats"]
        verdict = "holds" if abs(diff) <= args.nll_close_nats else "does not hold"
        out.append((claim, verdict, f"NLL sVAE-r {svr['nll_nats']:.2f} vs VAE {vae['nll_nats']:.2f} nats "
                                    f"(difference {diff:+.2f}; 'close' means within {args.nll_close_nats:g})"))
    # 4. sVAE-r beats sVAE on both tasks (Table 1, Sec. 6.3).
    claim = "sVAE-r beats sVAE on NLL and IS (Table 1)"
    sv, svr = row("svae", "nll_nats", "inception_score"), row("svae_r", "nll_nats", "inception_score")
    if sv is None or svr is None:
        out.append((claim, "not measured", "NLL/IS missing"))
    else:
        out.append((claim, _verdict([_cmp_nll(svr, sv), _cmp_is(svr, sv)]),
                    f"NLL {svr['nll_nats']:.2f} vs {sv['nll_nats']:.2f}; IS {svr['inception_score']:.2f} "
                    f"vs {sv['inception_score']:.2f}"))
    return out


def _commits(entries):
    """'abc1234, def5678+dirty' for the distinct (commit, dirty) of entries, in order; or
    'not recorded' (ledgers and evaluations from before commits were recorded)."""
    seen = []
    for entry in entries:
        if entry.get("commit"):
            text = entry["commit"][:7] + ("+dirty" if entry.get("dirty") else "")
            if text not in seen:
                seen.append(text)
    return ", ".join(seen) if seen else "not recorded"


def trained_at(ledger):
    """The commits a variant's trainer invocations ran at (see `_commits`)."""
    return _commits(ledger.get("invocations", []))


def evaluated_at(evaluation):
    """The commit its evaluation ran at (see `_commits`)."""
    return _commits([(evaluation or {}).get("evaluated_at") or {}])


def table_rows(rows, ledgers):
    """{variant: the numbers of its row in RESULTS.md}, also written to RESULTS.json."""
    out = {}
    for variant in [v for v in VARIANTS if v in rows]:
        r, led = rows[variant] or {}, ledgers.get(variant, {})
        paper_nll, paper_is = PAPER.get(variant, (None, None))
        out[variant] = {
            "label": LABELS[variant],
            "neg_elbo_nats": None if r.get("elbo") is None else -r["elbo"],
            "paper_nll_nats": paper_nll,
            "neg_iwae_nats": r.get("nll_nats"),
            "iw_samples": r.get("iw_samples"),
            "rmse": r.get("rmse"),
            "inception_score": r.get("inception_score"),
            "inception_score_std": r.get("inception_score_std"),
            "paper_inception_score": paper_is,
            "fid": r.get("fid"),
            "epochs": led.get("epochs"),
            "steps": led.get("steps"),
            "train_minutes": led.get("seconds", 0) / 60,
            "trained_at": trained_at(led),
            "evaluated_at": evaluated_at(r) if r else "not evaluated",
        }
    return out


TABLE_HEADER = ("| model | -ELBO (nats) | paper NLL (nats, bound (1)) | -IWAE, K = {k} (nats) | RMSE | IS | paper IS "
                "| FID | epochs | steps | train wall (min) | trained at | evaluated at |")


def render(rows, ledgers, classifier_report, args):
    lines = ["# MNIST: VAE, ALI, sVAE and sVAE-r at one CPU budget (paper Table 1)", "",
             "Measured by `benchmarks/reproduce_mnist.py`, except the paper's columns. The command, "
             "the commit and the machine of this report are under Provenance below; each row names the "
             "commits its training and its evaluation ran at, which can be older than the report "
             "(runs and evaluations are reused when still up to date)."]
    lines += ["", "## Setup", ""]
    lines += [
        "- Data: real MNIST (TFDS `mnist`), 60,000 training images (grey levels; the Bernoulli "
        "likelihood binarizes its target dynamically), 10,000 test images.",
        f"- Architecture: `presets.MNIST` (Appendix A.1: conv encoder + 4 affine-coupling flow layers, "
        f"z_dim 64, deconv decoder, joint discriminator) for every variant; seed {args.seed}; "
        f"batch {args.batch_size}; epochs of {args.steps_per_epoch} steps.",
        f"- Budget: {args.minutes_per_variant:g} wall-clock minutes of trainer processes per variant "
        f"(start-up, {args.eval_batches} held-out ELBO batches per epoch and image grids included), "
        "turned into whole epochs from the measured step rate.",
        f"- Optimizer: Adam, encoder/decoder learning rate {args.g_learning_rate:g}, discriminator "
        f"{args.d_learning_rate:g}, beta1 {args.beta1:g}, beta2 0.999 (trainer default); lambda 0.3 for sVAE-r.",
    ]
    changes = [f"{name} {value:g}" for name, value in
               (("encoder/decoder learning rate", args.g_learning_rate), ("discriminator learning rate", args.d_learning_rate))
               if value != PAPER_LEARNING_RATE]
    lines.append("- Change from the paper (Adam, learning rate 1e-4): "
                 + (", ".join(changes) if changes else "none") + (f"; extra trainer flags {args.trainer_flag}" if args.trainer_flag else "") + ".")
    any_row = next((r for r in rows.values() if r), {})
    acc = classifier_report.get("test_accuracy")
    real_is = classifier_report.get("real_test_inception_score")
    lines += [
        f"- Likelihood on {any_row.get('num_images', args.num_nll_images or 10000)} statically binarized "
        f"test images (data.load_images(binarize='static'), Philox seed "
        f"{any_row.get('binarization', {}).get('seed', 20170517)}), K = {args.iw_samples} samples of q(z|x) "
        "per image: -ELBO is the mean over the K samples of -log w, the bound (1) that the paper reports "
        "as NLL; -IWAE is -log of the mean of w, a tighter bound (Burda et al.).",
        "- RMSE: 0-255 scale, grey-level test image vs decoder mean at z = T(mu(x)).",
        f"- IS / FID: {args.num_samples} decoder means at z ~ N(0, I); the project's MNIST CNN "
        f"(test accuracy {_f(acc, 4)}, real test-set IS {_f(real_is, 3)}), IS over {args.splits} splits, "
        "FID on its 1024-d penultimate features against the 10,000 test images.",
        "",
        "## Results",
        "",
        TABLE_HEADER.format(k=args.iw_samples),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for variant, t in table_rows(rows, ledgers).items():
        is_text = ("n/a" if t["inception_score"] is None
                   else f"{t['inception_score']:.2f} ± {t['inception_score_std']:.2f}")
        lines.append(
            f"| {t['label']} | {_f(t['neg_elbo_nats'])} | {_f(t['paper_nll_nats']) if t['paper_nll_nats'] else '—'} | "
            f"{_f(t['neg_iwae_nats'])} | {_f(t['rmse'])} | {is_text} | {t['paper_inception_score'] or '—'} | "
            f"{_f(t['fid'])} | {t['epochs'] if t['epochs'] is not None else 'n/a'} | "
            f"{t['steps'] if t['steps'] is not None else 'n/a'} | {_f(t['train_minutes'], 1)} | "
            f"{t['trained_at']} | {t['evaluated_at']} |"
        )
    lines += ["", "Paper, Table 1 (MNIST; NLL in nats from the bound (1), IS ± std):", "",
              "| model | NLL | IS |", "|---|---:|---:|"]
    lines += [f"| {m} | {n if n is not None else '—'} | {i or '—'} |" for m, n, i in PAPER_TABLE_1]
    lines += ["", "The paper reports neither a VAE nor ALI on MNIST; ALI here has the same Bernoulli "
              "decoder as the others, so its likelihood bound is computable.", "",
              "## Which of the paper's claims hold at this budget", "",
              "| claim | verdict | measured |", "|---|---|---|"]
    lines += [f"| {c} | {v} | {d} |" for c, v, d in claims(rows, args)]
    lines += ["", "Verdicts are computed from the table above by `benchmarks/reproduce_mnist.py`; NLL "
              "there is the -IWAE column. "
              "Differences within noise count as ties: IS within the larger split std (at least "
              f"{IS_TIE}), FID within "
              f"{FID_TIE:.0%} (relative), NLL within 2 standard errors over images.", ""]
    return "\n".join(lines)


def main(argv=None):
    started = report.start()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    tf_logs.configure(args.tf_log_level)  # this driver and, through the environment, its subprocesses
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {VARIANTS}")
    work_dir = os.path.abspath(args.work_dir)
    os.makedirs(os.path.join(work_dir, "logs"), exist_ok=True)
    os.makedirs(os.path.join(work_dir, "evals"), exist_ok=True)
    classifier, classifier_report = (None, {}) if args.skip_eval else ensure_classifier(args)
    ledgers, rows = {}, {}
    for variant in variants:
        ledgers[variant] = train_variant(variant, args)
    for variant in variants:
        rows[variant] = None if args.skip_eval else evaluate_variant(variant, ledgers[variant], classifier, args)
    text = render(rows, ledgers, classifier_report, args)
    raw = {"args": vars(args), "rows": table_rows(rows, ledgers), "ledgers": ledgers, "evaluations": rows,
           "classifier": classifier_report, "claims": claims(rows, args)}
    written = report.write_report(args.results, raw, text, started=started)
    _say(f"wrote {' and '.join(report.paths(args.results))}")
    print(text)
    return written


if __name__ == "__main__":
    main()
