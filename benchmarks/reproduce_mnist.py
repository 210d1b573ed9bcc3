"""Reproduce the MNIST comparison of the paper (Table 1) at one budget per variant: equal
wall-clock minutes or equal updates.

    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.reproduce_mnist --minutes_per_variant=30 \\
        --iw_samples=1000 --num_nll_images=1000 --work_dir=runs/reproduce_mnist \\
        --results=benchmarks/results/mnist_table1/mnist

    # Table 1 at equal updates (issue #28): 10,200 encoder/decoder updates of batch 100 each,
    # a learning-curve point every 1,200 updates
    TFDS_DATA_DIR=../shared/tfds python -m benchmarks.reproduce_mnist --steps_per_variant=10200 \\
        --curve_steps=1200 --iw_samples=1000 --num_nll_images=1000 \\
        --work_dir=runs/reproduce_mnist_updates --results=runs/table1_updates/mnist

Trains VAE, GAN, WGAN-GP, ALI, sVAE, sVAE-r (eq. 29) and sVAE-r with lambda on the whole
bound L_x (`svae_r_lx`, the recipe of `trainers/configs/mnist_svae_r.flags`; both sVAE-r rows
get the sVAE-r claims) on real MNIST with the trainer's default
architecture (`--preset=mnist`), the same seed, batch size, optimizer settings and
budget. Training is the trainers' own program, called in this process:
`trainers.train_lib.train(ModelConfig, TrainConfig)` (what `python -m trainers.mnist` runs),
on configs built here from this program's flags (`configs`): the variant, --seed, --lam,
--lam_z, --batch_size, --steps_per_epoch, the learning rates, --beta1, --eval_batches and
any `--setting=FIELD=VALUE` (a field of `svae_tf.model.config.ModelConfig`,
`ArchitectureOverrides` or `TrainConfig`, parsed as that field's kind, e.g.
`--setting=n_disc=2`, `--setting=z_dim=8`). A setting a variant does not read (the
fields' `applies=`, from the variants table) is not applied to it: the discriminator's
learning rate reaches the variants with a discriminator only, lambda sVAE-r only. Then it
evaluates each run with `trainers.evaluate.run`, also in this process, and writes the
report through `benchmarks.report`: RESULTS.md (tables, verdicts, figures) and
RESULTS.json (the numbers), with the command, commit and machine, and beside them
RESULTS_curves.png and RESULTS_samples/VARIANT.{png,npz}. No subprocess is started; each
train() and evaluation starts from a cleared Keras session, so a chunk's weights are
bit-for-bit those of `python -m trainers.mnist` with the same settings (the ledger records
each chunk's `weights_sha256`, the trainer's "Finished: ... weights sha256").

Columns. NLL is -IWAE with K = --iw_samples; -ELBO stands beside the paper's NLL, which
is "estimated via the variational lower bound defined in (1)" (Sec. 6); then RMSE, IS and
FID (`trainers.evaluate`, --num_samples samples), the sample spread, epochs, steps
(encoder/decoder updates), training wall time and the commits each row was trained and
evaluated at (a row may be older than the report: runs and evaluations are reused). GAN
and WGAN-GP have no encoder: their NLL, -ELBO and RMSE are null.

Budget. Training runs in chunks: repeated `train()` calls with a growing `epochs` (a total;
train() resumes from the newest checkpoint in the variant's model_dir). Two budgets:

- `--minutes_per_variant` (default): wall-clock seconds spent in `train()`, measured in
  this process (model building, tracing, held-out ELBO, batch-norm statistics, image grids
  and checkpoints included; interpreter and TensorFlow start-up are not, as they happen
  once per session). The first chunk is one epoch of S steps, which measures the step
  rate; each further chunk asks for as many whole epochs as fit in the remaining budget and
  in `--curve_minutes` (at least one), from the measured cost per step and per train()
  call (`step_cost`). It stops when less than half an epoch fits.
- `--steps_per_variant=N` (replaces the minutes): every variant trains exactly N
  encoder/decoder updates (the generator optimizer's iterations; a multiple of
  --steps_per_epoch), in chunks of `--curve_steps` updates (or, without it, of
  `--curve_minutes` as measured). The seconds are still measured and recorded, so the
  learning curves stand against both updates and minutes of the same runs.

A ledger WORK/V.budget.json records the seconds used, the run's settings (`run_settings`)
and every chunk, so re-running continues where it stopped, in this session or a later
one (raise the budget to train longer); a ledger whose run had other settings stops the
program before any training. Ledgers written when this program ran the trainer as a
subprocess (their `trainer_flags`) are read as the settings those flags gave.
Evaluation is skipped when its JSON already matches the newest checkpoint and the
settings. A later session on a fresh machine (no work_dir) can run some variants only:
`--carry_over` keeps the existing report's rows for the others when they were trained
with the same settings, naming that report's date, commit and classifier.

Learning curves. After each chunk the newest checkpoint is probed in this process
(`Prober`): --probe_samples decoder means at fixed z ~ N(0, I) (seed --seed, the first of
the evaluation's samples), their IS (--probe_splits splits) and FID under the same
classifier (`metrics.frechet_distance_eigh`: seconds where scipy's sqrtm takes a minute),
and their spread (mean over pixels of the std over the samples). The point
(cumulative training minutes, updates, IS, FID, spread) is stored in the ledger, so a
resumed run keeps its curve; the figure plots IS and FID against minutes and against
updates. The last probe's samples are the variant's sample grid (64) and npz (uint8
[N, 28, 28], round(255 x decoder mean)).

The MNIST classifier for IS/FID is trained once (`trainers.classifier.run`, in this
process) if it is not at --classifier (default ~/.cache/svae_tf/mnist_classifier.keras).
"""

import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import os
import time

from absl import app, flags

from svae_tf import cli
from svae_tf.utils import files  # no TensorFlow import
from svae_tf.model import config as config_lib  # no TensorFlow import
from svae_tf.model import variants  # no TensorFlow import
from svae_tf.utils import logs as tf_logs
from benchmarks import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Seven by default: GAN, WGAN-GP, sVAE and sVAE-r (eq. 29) of Table 1, the VAE and ALI baselines, and
# the flagfiles' sVAE-r (svae_r_lx); then other variations.
DEFAULT_VARIANTS = ("vae", "gan", "wgan_gp", "ali", "svae", "svae_r", "svae_r_lx")
# Every registered row of the variants table may run (svae_tf.model.variants), the defaults first.
VARIANTS = DEFAULT_VARIANTS + tuple(v for v in variants.names() if v not in DEFAULT_VARIANTS)
LABELS = {"vae": "VAE", "gan": "GAN", "wgan_gp": "WGAN-GP", "ali": "ALI", "svae": "sVAE", "svae_r": "sVAE-r",
          "svae_r_elbo": "sVAE-r (exact E_q side)", "svae_r_lx": "sVAE-r (lambda L_x)"}  # display names
# The rows whose loss uses lambda: each gets the sVAE-r claims.
SVAE_R_VARIANTS = tuple(v for v in VARIANTS if variants.get(v).uses_lam)


def display_name(variant):
    """The display name of `variant` in tables and figures (its name when it has none)."""
    return LABELS.get(variant, variant)
PRESET = "mnist"  # the trainer's default (trainers.mnist); --setting=preset=... changes it
DATASET = "mnist"

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
PAPER = {"gan": (None, "8.34 ± .03"), "wgan_gp": (None, "8.45 ± .04"),
         "svae": (82.51, "9.15 ± .06"), "svae_r": (81.14, "9.29 ± .06")}
PAPER_OPTIMIZER = "Adam, learning rate 1e-4 (Sec. 6; beta1 not stated, so Adam's default 0.9)"
# Adam for every variant unless the command says otherwise: the setting of mnist_svae.flags and
# mnist_ali.flags, which the mode-collapse screen (benchmarks/mode_collapse.py) supports. The other
# MNIST flagfiles differ: mnist_vae.flags keeps the paper's 1e-4 / 0.9, mnist_svae_r.flags uses 4e-4.
DEFAULT_LEARNING_RATE = 2e-4
DEFAULT_BETA1 = 0.5
MNIST_TEST_IMAGES = 10000
SAMPLE_BATCH = 100  # evaluation and probe draw z batch by batch: equal batches, equal z
GRID_SAMPLES = 64

# The project's own targets (`claims`; issue #12): thresholds the project set for a 30-minute
# CPU budget, not numbers from the paper. The paper's claims are `paper_claims`.
TARGETS = {
    "rmse_ratio": 0.5,  # sVAE-r's RMSE at most half of ALI's
    "elbo_nats": 5.0,  # sVAE-r's -ELBO within this many nats of the VAE's
    "svae_r_is": 8.0,  # sVAE-r's IS at least this
    "svae_is": 7.5,  # sVAE's IS at least this
    "adversarial_is": 7.0,  # ALI's, GAN's and WGAN-GP's IS at least this
    "spread": 0.12,  # every variant's sample spread at the end at least this
    "batch_norm_rmse": 0.05,  # sVAE-r's RMSE in inference mode within this fraction of batch stats'
}


# TrainConfig fields this program sets (the model_dir, data, epochs of each chunk, its log format):
# not --setting fields. RUN_FIELDS: those that do not change what a run trains (not in its settings).
HARNESS_FIELDS = ("variant", "dataset", "data_dir", "model_dir", "epochs", "verbose")
RUN_FIELDS = ("data_dir", "model_dir", "epochs", "verbose")
# Config fields with a flag of their own here.
OWN_FLAGS = ("seed", "lam", "lam_z", "batch_size", "steps_per_epoch", "g_learning_rate", "d_learning_rate",
             "beta1", "eval_batches")

def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("work_dir", os.path.join("runs", "reproduce_mnist"), "One model_dir and ledger per "
                        "variant live here (reused: re-running continues).", **f)
    flags.DEFINE_string("results", os.path.join(REPO, "benchmarks", "results", "mnist_table1", "mnist"),
                        "RESULTS.md, RESULTS.json, RESULTS_curves.png and RESULTS_samples/ are written "
                        "(benchmarks.report; RESULTS may end in .md or .json).", **f)
    flags.DEFINE_string("data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR).", **f)
    flags.DEFINE_string("variants", ",".join(DEFAULT_VARIANTS), "Comma-separated, of " + ", ".join(VARIANTS)
                        + " (svae_r_elbo: sVAE-r with its encoder side exact, eq. 28; svae_r_lx: sVAE-r with "
                        "lambda on the whole bound L_x).", **f)
    flags.DEFINE_float("minutes_per_variant", 30.0, "Wall-clock budget per variant: seconds spent in "
                       "train(), measured in this process. Not used with --steps_per_variant.", **f)
    flags.DEFINE_integer("steps_per_variant", None, "Equal-updates budget: every variant trains exactly this "
                         "many encoder/decoder updates (a multiple of --steps_per_epoch); replaces "
                         "--minutes_per_variant. The seconds are still measured and recorded.", lower_bound=1, **f)
    flags.DEFINE_float("curve_minutes", 5.0, "Longest training chunk (minutes) between two learning-curve points.", **f)
    flags.DEFINE_integer("curve_steps", None, "With --steps_per_variant: a learning-curve point every this many "
                         "updates (a multiple of --steps_per_epoch), the same for every variant; default: "
                         "chunks of --curve_minutes.", lower_bound=1, **f)
    flags.DEFINE_integer("steps_per_epoch", 600, "600 = one pass at batch 100.", **f)
    flags.DEFINE_integer("batch_size", 100, "Batch size of every run.", **f)
    flags.DEFINE_integer("seed", 0, "Seed of every run and of the evaluation's samples.", **f)
    flags.DEFINE_float("g_learning_rate", DEFAULT_LEARNING_RATE, "Adam learning rate of the encoder/decoder.", **f)
    flags.DEFINE_float("d_learning_rate", DEFAULT_LEARNING_RATE,
                       "Adam learning rate of the discriminator; applied to the variants with one only.", **f)
    flags.DEFINE_float("beta1", DEFAULT_BETA1, "Adam beta_1 of both optimizers.", **f)
    flags.DEFINE_float("lam", 0.3, "sVAE-r's lambda (paper: 0.3); applied to the sVAE-r variants only.", **f)
    flags.DEFINE_float("lam_z", None, "Weight of sVAE-r's latent term E_p log q(z|x) alone; default: "
                       "--lam (the paper's). Applied to the sVAE-r variants only.", **f)
    flags.DEFINE_integer("eval_batches", 10,
                         "Held-out ELBO batches per epoch in train() (keeps its overhead small).", **f)
    flags.DEFINE_multi_string("setting", [], "FIELD=VALUE, repeatable: a field of svae_tf.model.config's "
                              "ModelConfig, ArchitectureOverrides or TrainConfig for every variant that reads "
                              "it, parsed as the field's kind, e.g. --setting=n_disc=2, --setting=z_dim=8, "
                              "--setting=shared_samples=true, --setting=take=500. The fields with a flag of "
                              "their own here, and those the program sets (" + ", ".join(HARNESS_FIELDS)
                              + "), are not settings.", **f)
    # Evaluation.
    flags.DEFINE_multi_string("variant_setting", [], "VARIANT:FIELD=VALUE, repeatable: a --setting for one "
                              "variant, after --setting; it may also set the fields with a flag of their own, "
                              "e.g. --variant_setting=svae_r_lx:g_learning_rate=4e-4 (a row trained as its "
                              "flagfile ships it).", **f)
    flags.DEFINE_integer("iw_samples", 1000, "K of the IWAE bound (NLL).", **f)
    flags.DEFINE_integer("num_nll_images", 1000, "Test images for NLL / -ELBO; 0: all 10,000.", **f)
    flags.DEFINE_integer("num_rmse_images", None, "Default: all 10,000 test images.", **f)
    flags.DEFINE_integer("num_samples", 10000, "Samples for the table's IS / FID.", **f)
    flags.DEFINE_integer("num_reference", None, "Test images for the FID statistics (default: all 10,000).", **f)
    flags.DEFINE_integer("splits", 10, "Inception-score splits of the table.", **f)
    flags.DEFINE_integer("refit_encoder_steps", 0, "trainers.evaluate --refit_encoder_steps for every variant "
                         "with an encoder: after the other numbers, its encoder refitted to the fixed "
                         "decoder on the ELBO (svae_tf.evaluation.refit), then NLL, -ELBO and RMSE again (a table of "
                         "their own); 0: no refit.", lower_bound=0, **f)
    flags.DEFINE_float("refit_learning_rate", 2e-4, "trainers.evaluate --refit_learning_rate.", **f)
    flags.DEFINE_integer("probe_samples", 1000, "Samples per learning-curve point; also the npz and the spread.", **f)
    flags.DEFINE_integer("probe_splits", 1, "IS splits of a learning-curve point.", **f)
    flags.DEFINE_string("classifier", None, "Default: ~/.cache/svae_tf/mnist_classifier.keras.", **f)
    flags.DEFINE_string("cache_dir", None, "FID reference statistics cache "
                        "(default $SVAE_TF_CACHE_DIR or ~/.cache/svae_tf).", **f)
    flags.DEFINE_boolean("skip_eval", False, "No trainers.evaluate, no IS/FID in the curves.", **f)
    flags.DEFINE_boolean("carry_over", True, "Keep in the report the rows of the existing RESULTS.json for "
                         "variants not in --variants and not in --work_dir (their ledger, evaluation, curve "
                         "and samples, with the commits they ran at), when they were trained with the "
                         "settings this run would train with.", **f)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)


def parse_args(argv):
    """The flags of a command line (without the program name), as a namespace."""
    return cli.parse(define_flags, argv)


# ------------------------------------------------------------------ helpers
def _say(message):
    print(f"[reproduce_mnist] {message}", flush=True)


def _read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def _logged(log_path, what):
    """Python's stdout (the trainer's and Keras' messages) appended to `log_path` meanwhile."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n$ {what}\n")
        log.flush()
        with contextlib.redirect_stdout(log):
            yield


def _fresh_keras():
    """A cleared Keras session: the next model's variables get the names (and the weights
    checksum) they get in a fresh process, and earlier models' state is freed."""
    import keras

    keras.backend.clear_session()


def _git():
    commit, dirty, _ = report.git_state()
    return {"commit": commit, "dirty": dirty}


def work_paths(args, variant):
    work_dir = os.path.abspath(args.work_dir)
    return {
        "model_dir": os.path.join(work_dir, variant),
        "ledger": os.path.join(work_dir, f"{variant}.budget.json"),
        "train_log": os.path.join(work_dir, "logs", f"{variant}_train.log"),
        "eval_log": os.path.join(work_dir, "logs", f"{variant}_eval.log"),
        "eval_json": os.path.join(work_dir, "evals", f"{variant}.json"),
        "npz": os.path.join(work_dir, "samples", f"{variant}.npz"),
        "png": os.path.join(work_dir, "samples", f"{variant}.png"),
    }


# ------------------------------------------------------------------ configs
_CONFIGS = (config_lib.ModelConfig, config_lib.ArchitectureOverrides, config_lib.TrainConfig)


def _fields():
    """{field name: dataclasses.Field} of the three configs' hyper-parameters."""
    return {f.name: f for cls in _CONFIGS for f in config_lib.flag_fields(cls)}


def parse_value(field, text):
    """`text` as the value of the config field `field` (its kind); "none" gives None to a
    field whose default is None. ValueError when it does not parse."""
    kind = field.metadata["kind"]
    if field.default is None and text.lower() == "none":
        return None
    if kind == "bool":
        try:
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        except KeyError:
            raise ValueError(f"{text!r} is not a boolean (true or false)") from None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def parse_settings(entries, flag="setting"):
    """{field: value} of --setting entries ("n_disc=2"); app.UsageError naming a bad one.
    Under --variant_setting (`flag`) the fields with a flag of their own may be set too."""
    fields, out = _fields(), {}
    for entry in entries:
        name, sep, text = entry.partition("=")
        name = name.strip()
        if not sep or name not in fields:
            raise app.UsageError(f"--{flag}={entry}: expected FIELD=VALUE with FIELD a field of "
                                 "svae_tf.model.config's ModelConfig, ArchitectureOverrides or TrainConfig.")
        if (name in OWN_FLAGS and flag == "setting") or name in HARNESS_FIELDS:
            raise app.UsageError(f"--{flag}={entry}: " + (f"use --{name}" if name in OWN_FLAGS else
                                 f"{name} is set by this program"))
        try:
            out[name] = parse_value(fields[name], text.strip())
        except ValueError as err:
            raise app.UsageError(f"--{flag}={entry}: {err}") from err
    return out


def variant_settings(entries, variant):
    """{field: value} of the --variant_setting entries ("svae_r_lx:g_learning_rate=4e-4") of
    `variant`; app.UsageError for an entry naming no known variant."""
    mine = []
    for entry in entries:
        name, sep, setting = entry.partition(":")
        if not sep or name not in VARIANTS:
            raise app.UsageError(f"--variant_setting={entry}: expected VARIANT:FIELD=VALUE with VARIANT "
                                 f"one of {', '.join(VARIANTS)}.")
        if name == variant:
            mine.append(setting)
    return parse_settings(mine, flag="variant_setting")


def build_configs(variant, values, model_dir=None, data_dir=None):
    """(ModelConfig, TrainConfig) of `variant` on MNIST from {field: value} (the trainer's
    defaults for the rest, `trainers.command.trainer_defaults("mnist")`), without the fields the
    variant does not read. ValueError for a value out of its field's bounds."""
    fields = {cls: {f.name for f in config_lib.flag_fields(cls)} for cls in _CONFIGS}
    model_cls, arch_cls, train_cls = _CONFIGS
    values = dict(values)
    preset = values.pop("preset", PRESET)
    overrides = arch_cls(**{k: v for k, v in values.items() if k in fields[arch_cls]}).resolve(preset, variant)
    model = model_cls(variant=variant, preset=preset, preset_overrides=overrides,
                      **{k: v for k, v in values.items() if k in fields[model_cls] and k != "variant"})
    model.get_preset()  # ValueError for an override the preset does not have
    train = train_cls(**{"batch_size": 100, "epochs": 1, "verbose": 2,
                         **{k: v for k, v in values.items() if k in fields[train_cls]},
                         "dataset": DATASET, "model_dir": model_dir, "data_dir": data_dir})
    return model.without_unused(), train


def configs(variant, args):
    """(ModelConfig, TrainConfig) of `variant`'s run: this program's flags and --setting,
    model_dir WORK/VARIANT; `epochs` is set per chunk."""
    values = {"seed": args.seed, "lam": args.lam, "lam_z": args.lam_z, "batch_size": args.batch_size,
              "steps_per_epoch": args.steps_per_epoch, "g_learning_rate": args.g_learning_rate,
              "d_learning_rate": args.d_learning_rate, "beta1": args.beta1, "eval_batches": args.eval_batches,
              **parse_settings(args.setting), **variant_settings(args.variant_setting, variant)}
    try:
        return build_configs(variant, values, work_paths(args, variant)["model_dir"], args.data_dir)
    except ValueError as err:
        raise app.UsageError(f"{variant}: {err}") from err


def run_settings(model, train):
    """{field: value} that define a variant's run: its ModelConfig and TrainConfig without
    the fields it does not read and those of where and how long (RUN_FIELDS). A ledger
    records it; a run is resumed, reused or carried over only with equal settings."""
    variant = model.variant
    unused = {**config_lib.unused_fields(config_lib.ModelConfig, variant), **train.unused(variant)}
    out = {k: v for k, v in dataclasses.asdict(model).items() if k not in unused}
    out.update({f.name: getattr(train, f.name) for f in config_lib.flag_fields(config_lib.TrainConfig)
                if f.name not in unused and f.name not in RUN_FIELDS})
    return json.loads(json.dumps(out))  # as the ledger's JSON holds it


def settings_from_trainer_flags(trainer_flags):
    """The `run_settings` of a ledger written when this program ran `python -m trainers.mnist`
    with `trainer_flags` (["--variant=vae", "--beta1=0.5", "--shared_samples", ...])."""
    fields, values = _fields(), {}
    for flag in trainer_flags:
        name, sep, text = flag.lstrip("-").partition("=")
        if not sep and name not in fields and name.startswith("no") and name[2:] in fields:
            name, text = name[2:], "false"
        elif not sep:
            text = "true"
        if name in fields:
            values[name] = parse_value(fields[name], text)
    return run_settings(*build_configs(values.pop("variant"), values))


def ledger_settings(ledger):
    """The run settings a ledger records (`settings`, or its older `trainer_flags`), or None."""
    if ledger.get("settings") is not None:
        return ledger["settings"]
    if ledger.get("trainer_flags") is not None:
        return settings_from_trainer_flags(ledger["trainer_flags"])
    return None


def settings_differences(old, new):
    """{field: (old, new)} where two run settings differ; a field one of them lacks counts as
    its default (a field added to the configs later takes its default, as config.json does)."""
    defaults = {name: field.default for name, field in _fields().items()}
    defaults["preset_overrides"] = {}
    out = {}
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, defaults.get(name)), new.get(name, defaults.get(name))
        if a != b:
            out[name] = (a, b)
    return out


def _differences_text(differences):
    return ", ".join(f"{name}: {a!r} there, {b!r} here" for name, (a, b) in differences.items())


# ------------------------------------------------------------------ training
def step_cost(invocations):
    """(seconds of overhead per train() call, seconds per step) from past chunks.

    Fits seconds = overhead + steps * seconds_per_step by least squares once two chunks
    trained different numbers of steps (model building, tracing and the data pipeline are
    the overhead); before that, or if the fit is not sensible, the overhead is 0 and the
    cost per step is total seconds / total steps (conservative: fewer epochs per chunk).
    """
    points, previous = [], 0
    for inv in invocations:
        before = inv.get("steps_before", previous)
        if inv["steps_after"] > before:  # a killed chunk that kept no checkpoint measured nothing
            points.append((inv["steps_after"] - before, inv["seconds"]))
        previous = inv["steps_after"]
    if not points:
        return 0.0, 0.0
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


def budget_seconds(args):
    """The wall-clock budget of a variant, or None under --steps_per_variant."""
    return None if args.steps_per_variant else 60.0 * args.minutes_per_variant


def next_chunk(ledger, steps_done, budget, args):
    """Epochs to train next (0: the budget is used), from the ledger's measured costs.

    budget: seconds (`--minutes_per_variant`); under `--steps_per_variant` the budget is
    that many updates and `budget` is not read."""
    epoch_steps = args.steps_per_epoch
    if args.steps_per_variant:
        left = args.steps_per_variant // epoch_steps - steps_done // epoch_steps
        if left <= 0:
            return 0
        if args.curve_steps:
            return min(left, max(1, args.curve_steps // epoch_steps))
        remaining = None
    else:
        remaining = budget - ledger["seconds"]
        left = None
    if ledger["seconds"] <= 0 or steps_done <= 0:
        return 1 if left or (remaining or 0) > 0 else 0  # the first epoch measures the step rate
    overhead, seconds_per_step = step_cost(ledger["invocations"])
    epoch_seconds = seconds_per_step * epoch_steps
    if epoch_seconds <= 0:  # nothing measured yet (e.g. only killed chunks): one epoch measures it
        return 1 if left or (remaining or 0) > 0 else 0
    window = 60.0 * args.curve_minutes
    if left is not None:
        return min(left, max(1, int(math.floor((window - overhead) / epoch_seconds))))
    if (remaining - overhead) / epoch_seconds < 0.5:
        return 0
    return max(1, int(math.floor((min(remaining, window) - overhead) / epoch_seconds)))


def _check_budget_args(args):
    for name in ("steps_per_variant", "curve_steps"):
        value = getattr(args, name)
        if value and value % args.steps_per_epoch:
            raise app.UsageError(f"--{name}={value} must be a multiple of --steps_per_epoch={args.steps_per_epoch} "
                                 f"(e.g. {math.ceil(value / args.steps_per_epoch) * args.steps_per_epoch}).")


def _preset(args):
    return parse_settings(args.setting).get("preset", PRESET)


def _architecture_text(args):
    settings = parse_settings(args.setting)
    preset = settings.get("preset", PRESET)
    text = (f"the trainer's default preset (`--preset={PRESET}`, `presets.MNIST`)" if preset == PRESET
            else f"the preset `{preset}` (`--setting=preset={preset}`)")
    arch = {k: v for k, v in settings.items() if k in ("z_dim", "flow", "flow_depth")}
    return text + (f" with {', '.join(f'{k}={v}' for k, v in arch.items())}" if arch else "")


def train_variant(variant, args, prober=None):
    """Train `variant` until its budget is used, one `train_lib.train` call per chunk,
    probing after each chunk; returns its ledger."""
    from svae_tf import runs  # lazily: TensorFlow is imported after `main` set its log level
    from trainers import train_lib
    from trainers.run_state import ConfigError, NonFiniteError, RunError

    paths = work_paths(args, variant)
    model_dir = paths["model_dir"]
    model_config, train_config = configs(variant, args)
    settings = run_settings(model_config, train_config)
    ledger = _read_json(paths["ledger"]) or {"seconds": 0.0, "invocations": []}
    ledger.setdefault("curve", [])
    for key in ("steps_per_epoch", "batch_size", "seed"):
        if key in ledger and ledger[key] != getattr(args, key):
            raise SystemExit(f"{model_dir} was trained with --{key}={ledger[key]}; resume with the same value "
                             "or use another --work_dir.")
        ledger[key] = getattr(args, key)
    old = ledger_settings(ledger)
    if old is None and ledger["invocations"]:
        raise SystemExit(f"{paths['ledger']} comes from an older reproduce_mnist that did not record its "
                         "trainer flags (its defaults were Adam 1e-4 / beta1 0.9); use another --work_dir.")
    differences = {} if old is None else settings_differences(old, settings)
    if differences:
        raise SystemExit(f"{model_dir} was trained with other settings ({_differences_text(differences)}); "
                         "resume with the same settings or use another --work_dir.")
    ledger["settings"] = settings
    if ledger.get("running"):  # a session ended during a chunk: charge the time to its last checkpoint
        charge_interrupted(ledger, model_dir)
        files.write_json(paths["ledger"], ledger)
    budget = budget_seconds(args)
    while True:
        epochs_done, steps_done, checkpoint = runs.checkpoint_info(model_dir)
        if prober is not None and checkpoint is not None:
            prober.update(variant, ledger, checkpoint, epochs_done, steps_done)
            files.write_json(paths["ledger"], ledger)
        chunk = next_chunk(ledger, steps_done, budget, args)
        if chunk == 0:
            break
        target = epochs_done + chunk
        left = (f"{args.steps_per_variant - steps_done} of {args.steps_per_variant} updates left"
                if budget is None else f"{(budget - ledger['seconds']) / 60:.1f} of {budget / 60:.1f} budget "
                "minutes left")
        _say(f"{variant}: training to epoch {target} ({chunk} more of {args.steps_per_epoch} steps; {left})")
        at = _git()
        ledger["running"] = {"started": time.time(), "target_epochs": target, "steps_before": steps_done, **at}
        files.write_json(paths["ledger"], ledger)
        _fresh_keras()
        error, result = None, {}
        load_before, cpu_start, start = report.load_average(), time.process_time(), time.perf_counter()
        try:
            with _logged(paths["train_log"], f"train_lib.train({variant}, epochs={target})"):
                result = train_lib.train(model_config, train_config.replace(epochs=target))
        except (ConfigError, NonFiniteError, RunError, FileNotFoundError) as err:
            error = f"{type(err).__name__}: {err}"
        seconds = time.perf_counter() - start
        del ledger["running"]
        ledger["seconds"] += seconds
        epochs_after, steps_after, _ = runs.checkpoint_info(model_dir)
        invocation = {"target_epochs": target, "seconds": seconds, "steps_before": steps_done,
                      "epochs_after": epochs_after, "steps_after": steps_after, **at,
                      # other work on the machine shows as load and as CPU seconds below 2x wall seconds
                      "cpu_seconds": time.process_time() - cpu_start,
                      "load_before": load_before, "load_after": report.load_average()}
        if error:
            invocation["error"] = error
        else:
            invocation.update(optimizer_step=result["optimizer_step"], weights_sha256=result["weights_sha256"],
                              checkpoint=result["checkpoint"])
        ledger["invocations"].append(invocation)
        files.write_json(paths["ledger"], ledger)
        result = None  # the model: freed by the next _fresh_keras
        if error:
            raise SystemExit(f"training {variant} failed: {error} (see {paths['train_log']})")
        if steps_after <= steps_done:
            raise SystemExit(f"training {variant} made no progress; see {paths['train_log']}")
    epochs, steps, checkpoint = runs.checkpoint_info(model_dir)
    if args.steps_per_variant and steps != args.steps_per_variant:
        _say(f"WARNING: {variant} has {steps} updates, not --steps_per_variant={args.steps_per_variant} "
             f"(its run in {model_dir} went further before)")
    ledger.update(epochs=epochs, steps=steps, checkpoint=checkpoint, model_dir=model_dir)
    if budget is None:
        ledger.pop("budget_seconds", None)
        ledger["budget_steps"] = args.steps_per_variant
    else:
        ledger.pop("budget_steps", None)
        ledger["budget_seconds"] = budget
    files.write_json(paths["ledger"], ledger)
    _say(f"{variant}: {epochs} epochs, {steps} steps, {ledger['seconds'] / 60:.1f} min of training")
    return ledger


def charge_interrupted(ledger, model_dir):
    """Book the chunk a killed session left running (`ledger["running"]`) as an invocation:
    the steps its checkpoints kept, and the seconds from its start to the newest
    checkpoint's write (the time after that checkpoint trained nothing that was kept)."""
    from svae_tf import runs

    running = ledger.pop("running")
    epochs, steps, checkpoint = runs.checkpoint_info(model_dir)
    seconds = 0.0
    if checkpoint is not None and steps > running["steps_before"]:
        seconds = max(0.0, os.path.getmtime(checkpoint + ".index") - running["started"])
    ledger["seconds"] += seconds
    ledger["invocations"].append({"target_epochs": running["target_epochs"], "seconds": seconds,
                                  "return_code": None, "interrupted": True,
                                  "steps_before": running["steps_before"], "epochs_after": epochs,
                                  "steps_after": steps, "commit": running.get("commit"),
                                  "dirty": running.get("dirty")})
    _say(f"charged {seconds / 60:.1f} min for the chunk an earlier session left unfinished "
         f"({running['steps_before']} -> {steps} steps)")


# ------------------------------------------------------------ probes, samples
def spread(images):
    """Mean over pixels of the std over the samples: [N, H, W, C] -> float (as
    benchmarks/mode_collapse.py's sample_spread; a collapsed decoder is near 0)."""
    import numpy as np

    return float(np.std(np.asarray(images, np.float64), axis=0).mean())


class Prober:
    """Cheap evaluation of a newest checkpoint, in this process: the learning-curve points
    and the variant's samples (grid PNG and npz in WORK/samples/)."""

    def __init__(self, args, classifier_path):
        self.args = args
        self.extractor = self.reference = None
        if classifier_path is not None:
            from svae_tf.evaluation import classifiers, metrics
            from trainers import evaluate as evaluate_lib

            self.extractor = classifiers.MnistClassifier.load(classifier_path)
            stats = evaluate_lib.reference_statistics(
                self.extractor, "mnist", "test", args.data_dir, SAMPLE_BATCH, args.num_reference,
                _cache_dir(args))
            # FID by metrics.frechet_distance_eigh against the reference's square root,
            # computed once: a curve point then costs seconds, not scipy sqrtm's minute at D = 1024.
            self.reference = (stats["mu"], metrics.sqrtm_psd(stats["sigma"]))
        self.settings = {"num_samples": args.probe_samples, "splits": args.probe_splits, "seed": args.seed,
                         "num_reference": args.num_reference, "quality": self.extractor is not None}

    def samples(self, model_dir):
        """Decoder means [N, 28, 28, 1] at z ~ N(0, I): the first N of trainers.evaluate's samples."""
        import numpy as np
        from svae_tf import runs
        from trainers import evaluate as evaluate_lib

        model = runs.load_model(model_dir)
        batches = evaluate_lib.generated_batches(model, self.args.probe_samples, SAMPLE_BATCH, self.args.seed)
        return np.concatenate([np.asarray(b, np.float32) for b in batches])

    def measure(self, images):
        """{inception_score, inception_score_std, fid, spread} of float images."""
        out = {"inception_score": None, "inception_score_std": None, "fid": None, "spread": spread(images)}
        if self.extractor is not None:
            from svae_tf.evaluation import classifiers, metrics

            batches = [images[i:i + SAMPLE_BATCH] for i in range(0, len(images), SAMPLE_BATCH)]
            logits, features = classifiers.activations(self.extractor, batches)
            is_mean, is_std = metrics.inception_score(logits, self.args.probe_splits)
            mu, sigma = metrics.gaussian_statistics(features)
            ref_mu, ref_root = self.reference
            out.update(inception_score=float(is_mean), inception_score_std=float(is_std),
                       fid=metrics.frechet_distance_eigh(mu, sigma, ref_mu, sqrt_sigma2=ref_root))
        return out

    def update(self, variant, ledger, checkpoint, epochs, steps):
        """A curve point for `checkpoint` unless the curve has one; the samples unless up to date."""
        import numpy as np
        from svae_tf.utils import images as images_lib

        paths = work_paths(self.args, variant)
        have_point = any(p.get("checkpoint") == checkpoint for p in ledger["curve"])
        current = ledger.get("samples") or {}
        have_samples = (current.get("checkpoint") == checkpoint and current.get("settings") == self.settings
                        and os.path.exists(paths["npz"]) and os.path.exists(paths["png"]))
        if have_point and have_samples:
            return
        start = time.time()
        at = _git()
        images = self.samples(ledger.get("model_dir") or paths["model_dir"])
        numbers = self.measure(images)
        seconds = time.time() - start
        if not have_point:
            point = {"minutes": ledger["seconds"] / 60.0, "epochs": epochs, "steps": steps,
                     "checkpoint": checkpoint, **numbers, **self.settings, "seconds": seconds, **at}
            ledger["curve"].append(point)
            ledger["probe_seconds"] = ledger.get("probe_seconds", 0.0) + seconds
            _say(f"{variant}: curve point at {point['minutes']:.1f} min, {steps} steps: IS "
                 f"{_f(numbers['inception_score'])}, FID {_f(numbers['fid'])}, spread {numbers['spread']:.3f}")
        os.makedirs(os.path.dirname(paths["npz"]), exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, samples=images_lib.to_uint8(images[..., 0]))
        files.atomic_write(paths["npz"], buffer.getvalue())
        images_lib.write_png(paths["png"], images_lib.image_grid(images[:GRID_SAMPLES]))
        ledger["samples"] = {"checkpoint": checkpoint, "steps": steps, "settings": self.settings,
                             "num": int(images.shape[0]), "spread": numbers["spread"], **at}


def _cache_dir(args):
    from svae_tf.evaluation import classifiers

    return os.path.expanduser(args.cache_dir) if args.cache_dir else classifiers.default_cache_dir()


# ---------------------------------------------------------------- evaluation
def ensure_classifier(args):
    """(path, report) of the MNIST classifier, trained once in this process
    (`trainers.classifier.run`) when it is not at --classifier."""
    from svae_tf.evaluation import classifiers

    path = os.path.expanduser(args.classifier or classifiers.default_mnist_classifier_path())
    if not os.path.exists(path):
        from trainers import classifier as classifier_lib

        _say(f"training the MNIST classifier once ({path})")
        log = os.path.join(os.path.abspath(args.work_dir), "logs", "classifier.log")
        argv = [f"--output={path}", "--verbose=2"] + ([f"--data_dir={args.data_dir}"] if args.data_dir else [])
        _fresh_keras()
        try:
            with _logged(log, f"trainers.classifier {' '.join(argv)}"):
                classifier_lib.run(classifier_lib.parse_args(argv))
        except Exception as err:  # noqa: BLE001 -- any failure: say where its log is
            raise SystemExit(f"trainers.classifier failed: {err!r}; see {log}") from err
    return path, _read_json(path + ".json", {})


def evaluate_variant(variant, ledger, classifier, args):
    """`trainers.evaluate.run` on the variant's newest checkpoint, in this process, unless its
    JSON already holds that checkpoint's numbers at these settings; returns the results."""
    paths = work_paths(args, variant)
    json_path = paths["eval_json"]
    settings = {"iw_samples": args.iw_samples, "num_samples": args.num_samples, "splits": args.splits,
                "num_images": min(args.num_nll_images or MNIST_TEST_IMAGES, MNIST_TEST_IMAGES),
                "num_rmse_images": args.num_rmse_images or MNIST_TEST_IMAGES,
                "num_reference": args.num_reference or MNIST_TEST_IMAGES,
                "classifier_mtime_ns": os.stat(classifier).st_mtime_ns}
    if args.refit_encoder_steps:  # (absent at 0: evaluations from before the refit stay valid)
        settings.update(refit_encoder_steps=args.refit_encoder_steps, refit_learning_rate=args.refit_learning_rate)
    old = _read_json(json_path)
    if old and old.get("checkpoint") == ledger["checkpoint"] and all(
            old.get("settings", {}).get(k) == v for k, v in settings.items()):
        _say(f"{variant}: evaluation up to date ({json_path})")
        return old
    from trainers import evaluate as evaluate_lib

    argv = [f"--model_dir={ledger['model_dir']}", f"--dataset={DATASET}", f"--json={json_path}",
            f"--iw_samples={args.iw_samples}", f"--num_samples={args.num_samples}", f"--splits={args.splits}",
            f"--classifier={classifier}", f"--seed={args.seed}", f"--batch_size={SAMPLE_BATCH}",
            f"--cache_dir={_cache_dir(args)}", f"--name={display_name(variant)}"]
    for name in ("num_nll_images", "num_rmse_images", "num_reference", "refit_encoder_steps"):
        if getattr(args, name):
            argv.append(f"--{name}={getattr(args, name)}")
    if args.refit_encoder_steps:
        argv.append(f"--refit_learning_rate={args.refit_learning_rate}")
    if args.data_dir:
        argv.append(f"--data_dir={args.data_dir}")
    eval_args = evaluate_lib.parse_args(argv)
    _say(f"{variant}: evaluating (K={args.iw_samples}, {args.num_samples} samples)")
    at = _git()
    _fresh_keras()
    start = time.perf_counter()
    try:
        with _logged(paths["eval_log"], f"trainers.evaluate {' '.join(argv)}"):
            evaluate_lib.run(eval_args)
    except Exception as err:  # noqa: BLE001 -- any failure: say where its log is
        raise SystemExit(f"trainers.evaluate failed for {variant}: {err!r}; see {paths['eval_log']}") from err
    seconds = time.perf_counter() - start
    results = _read_json(json_path)
    results.update(eval_seconds=seconds, evaluated_at=at, settings=settings)
    files.write_json(json_path, results)
    return results


# ------------------------------------------------------------------- report
def _f(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


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


def training_load(ledger):
    """The highest 1-minute load average seen at the start or end of the variant's training
    chunks, or None where the ledger did not record it: above the machine's core count, other
    work shared the CPU and the train minutes overstate the variant's own time."""
    loads = [inv[key][0] for inv in ledger.get("invocations", []) for key in ("load_before", "load_after")
             if inv.get(key)]
    return max(loads) if loads else None


def _load_note(load):
    return "" if load is None else f" (load ≤ {load:.1f})"


def table_rows(rows, ledgers):
    """{variant: the numbers of its row in RESULTS.md}, also written to RESULTS.json.

    rows: {variant: trainers.evaluate's JSON or None}; ledgers: {variant: ledger}."""
    out = {}
    for variant in [v for v in VARIANTS if v in rows or v in ledgers]:
        r, led = rows.get(variant) or {}, ledgers.get(variant, {})
        paper_nll, paper_is = PAPER.get(variant, (None, None))
        refit = r.get("refit") or {}
        out[variant] = {
            "label": display_name(variant),
            "nll_nats": r.get("nll_nats"),
            "nll_nats_stderr": r.get("nll_nats_stderr"),
            "iw_samples": r.get("iw_samples"),
            "neg_elbo_nats": None if r.get("elbo") is None else -r["elbo"],
            "paper_nll_nats": paper_nll,
            "rmse": r.get("rmse"),
            "rmse_batch_stats": r.get("rmse_batch_stats"),
            "inception_score": r.get("inception_score"),
            "inception_score_std": r.get("inception_score_std"),
            "paper_inception_score": paper_is,
            "fid": r.get("fid"),
            "num_samples": r.get("num_samples"),
            "spread": (led.get("samples") or {}).get("spread"),
            "epochs": led.get("epochs"),
            "steps": led.get("steps"),
            "train_minutes": led.get("seconds", 0) / 60,
            "train_load_max": training_load(led),
            "eval_minutes": None if r.get("eval_seconds") is None else r["eval_seconds"] / 60,
            "trained_at": trained_at(led),
            "evaluated_at": evaluated_at(r) if r else "not evaluated",
            # trainers.evaluate --refit_encoder_steps: the encoder refitted to the fixed decoder
            "refit_steps": refit.get("steps"),
            "refit_seconds": refit.get("seconds"),
            "refit_nll_nats": refit.get("nll_nats"),
            "refit_neg_elbo_nats": None if refit.get("elbo") is None else -refit["elbo"],
            "refit_rmse": refit.get("rmse"),
        }
    return out


def _verdict(claim, target, value, margin, measured, noise=None, digits=2):
    """One verdict: met iff margin >= 0 (margin: how far the value is on the good side)."""
    if margin is None:
        return {"claim": claim, "target": target, "value": None, "margin": None, "verdict": "not measured",
                "measured": measured}
    verdict = f"met by {margin:.{digits}f}" if margin >= 0 else f"missed by {-margin:.{digits}f}"
    if noise is not None and abs(margin) <= noise:
        verdict += f" (within the noise, {noise:.{digits}f})"
    return {"claim": claim, "target": target, "value": value, "margin": margin, "verdict": verdict,
            "measured": measured}


def _is_at_least(get, variant, target):
    """The claim that `variant`'s IS is at least `target` (within the noise: the split std)."""
    a, std = get(variant, "inception_score"), get(variant, "inception_score_std")
    return _verdict(f"{display_name(variant)}'s IS is at least {target:g}", f"IS >= {target:g}", a,
                    None if a is None else a - target,
                    f"IS {_f(a)} ± {_f(std)}" if a is not None else "IS missing", std)


def _svae_r_claims(get, variant, targets):
    """The sVAE-r claims on one sVAE-r row (`variant`, named by its label in the table)."""
    r = display_name(variant)
    out = []
    # sVAE-r samples better than the VAE (Sec. 6.1): IS above, FID below; IS at the target.
    a, b = get(variant, "inception_score"), get("vae", "inception_score")
    noise = max(get(variant, "inception_score_std") or 0.0, get("vae", "inception_score_std") or 0.0)
    out.append(_verdict(f"{r}'s IS is above the VAE's", f"IS({r}) > IS(VAE)",
                        None if None in (a, b) else a - b, None if None in (a, b) else a - b,
                        f"IS {r} {_f(a)}, VAE {_f(b)}", noise if None not in (a, b) else None))
    out.append(_is_at_least(get, variant, targets["svae_r_is"]))
    a, b = get(variant, "fid"), get("vae", "fid")
    out.append(_verdict(f"{r}'s FID is below the VAE's", f"FID({r}) < FID(VAE)",
                        None if None in (a, b) else a - b, None if None in (a, b) else b - a,
                        f"FID {r} {_f(a)}, VAE {_f(b)}"))
    # sVAE-r reconstructs where ALI does not (Sec. 6.1, Fig. 5).
    a, b = get(variant, "rmse"), get("ali", "rmse")
    ratio = None if None in (a, b) or not b else a / b
    out.append(_verdict(f"{r}'s RMSE is at most {targets['rmse_ratio']:g} x ALI's",
                        f"RMSE({r}) / RMSE(ALI) <= {targets['rmse_ratio']:g}", ratio,
                        None if ratio is None else targets["rmse_ratio"] * b - a,
                        f"RMSE {r} {_f(a)}, ALI {_f(b)}" + ("" if ratio is None else f" (ratio {ratio:.3f}; "
                        f"margin in RMSE units: {targets['rmse_ratio']:g} x ALI - {r})")))
    # sVAE-r's likelihood bound is close to the VAE's.
    a, b = get(variant, "neg_elbo_nats"), get("vae", "neg_elbo_nats")
    diff = None if None in (a, b) else a - b
    out.append(_verdict(f"{r}'s -ELBO is within {targets['elbo_nats']:g} nats of the VAE's",
                        f"abs(-ELBO({r}) - -ELBO(VAE)) <= {targets['elbo_nats']:g}", diff,
                        None if diff is None else targets["elbo_nats"] - abs(diff),
                        f"-ELBO {r} {_f(a)}, VAE {_f(b)} nats" + ("" if diff is None else f" (difference {diff:+.2f})")))
    # The same with both encoders refitted to their fixed decoders (when evaluated so).
    a, b = get(variant, "refit_neg_elbo_nats"), get("vae", "refit_neg_elbo_nats")
    if None not in (a, b):
        diff = a - b
        steps = get(variant, "refit_steps")
        out.append(_verdict(f"{r}'s -ELBO with its encoder refitted ({steps} steps, the VAE's too) is within "
                            f"{targets['elbo_nats']:g} nats of the VAE's",
                            f"abs(-ELBO({r}, refit) - -ELBO(VAE, refit)) <= {targets['elbo_nats']:g}", diff,
                            targets["elbo_nats"] - abs(diff),
                            f"-ELBO {r} {_f(a)}, VAE {_f(b)} nats after the refit (difference {diff:+.2f})"))
    # Batch norm in inference mode is the trained network (issue item 2).
    a, b = get(variant, "rmse"), get(variant, "rmse_batch_stats")
    rel = None if None in (a, b) or not b else abs(a - b) / b
    out.append(_verdict(f"{r}'s inference-mode RMSE is within {100 * targets['batch_norm_rmse']:g}% of its "
                        "batch-statistics RMSE", f"abs(RMSE - RMSE batch stats) / RMSE batch stats <= "
                        f"{targets['batch_norm_rmse']:g}", rel,
                        None if rel is None else targets["batch_norm_rmse"] - rel,
                        f"RMSE {_f(a)}, batch stats {_f(b)}" + ("" if rel is None else f" (relative {rel:.3f})"),
                        digits=3))
    return out


def claims(table, targets=TARGETS):
    """Verdicts on the project's targets (`TARGETS`) from the table's numbers (`table_rows`): a list of
    {claim, target, value, margin, verdict, measured}. margin >= 0 means met; it is in the
    claim's unit (IS, FID, nats, RMSE on the 0-255 scale, spread). "Within the noise" marks
    an IS margin no larger than the larger split std."""
    def get(variant, key):
        return (table.get(variant) or {}).get(key)

    out = []
    for variant in SVAE_R_VARIANTS:  # svae_r always (not measured without it), the others when run
        if variant == "svae_r" or variant in table:
            out += _svae_r_claims(get, variant, targets)
    # Sample quality of sVAE and of the adversarial baselines.
    for variant, key in (("svae", "svae_is"), ("ali", "adversarial_is"), ("gan", "adversarial_is"),
                         ("wgan_gp", "adversarial_is")):
        out.append(_is_at_least(get, variant, targets[key]))
    # No variant collapses.
    for variant in VARIANTS:
        if variant not in table:
            continue
        a = get(variant, "spread")
        out.append(_verdict(f"{display_name(variant)} does not collapse", f"sample spread >= {targets['spread']:g}", a,
                            None if a is None else a - targets["spread"],
                            "spread missing" if a is None else f"spread {a:.3f}", digits=3))
    return out


PAPER_NF_NLL = 85.1  # Table 1: normalizing flow (k=80), the model sVAE-r's NLL is said to outperform


def paper_claims(table):
    """Verdicts on what the paper claims about MNIST (Table 1 and Sec. 6.1), from the table's
    numbers: the orderings it reports between models, each sVAE-r row taken as sVAE-r. A list
    of {claim, source, measured, verdict} with verdict "holds", "does not hold" or "not measured"."""
    def get(variant, key):
        return (table.get(variant) or {}).get(key)

    def order(claim, source, better, worse, key, higher):
        a, b = get(better, key), get(worse, key)
        name = "IS" if key == "inception_score" else "-ELBO" if key == "neg_elbo_nats" else "RMSE"
        measured = f"{name} {display_name(better)} {_f(a)}, {display_name(worse)} {_f(b)}"
        if None in (a, b):
            return {"claim": claim, "source": source, "measured": measured, "verdict": "not measured"}
        return {"claim": claim, "source": source, "measured": measured,
                "verdict": "holds" if (a > b if higher else a < b) else "does not hold"}

    out = []
    for r in [v for v in SVAE_R_VARIANTS if v in table] or ["svae_r"]:
        label = display_name(r)
        out.append(order(f"{label} reconstructs better than ALI (RMSE below ALI's)",
                         "Sec. 6.1, Fig. 5", r, "ali", "rmse", higher=False))
        a = get(r, "neg_elbo_nats")
        out.append({"claim": f"{label}'s NLL (bound (1)) is below the normalizing flow's {PAPER_NF_NLL} nats",
                    "source": "Sec. 6.1, Table 1", "measured": f"-ELBO {label} {_f(a)}",
                    "verdict": "not measured" if a is None else "holds" if a < PAPER_NF_NLL else "does not hold"})
        out.append(order(f"{label}'s NLL is below sVAE's", "Table 1", r, "svae", "neg_elbo_nats", higher=False))
        out.append(order(f"{label}'s IS is above sVAE's", "Table 1", r, "svae", "inception_score", higher=True))
        for other in ("gan", "wgan_gp"):
            out.append(order(f"{label}'s IS is above {display_name(other)}'s", "Sec. 6.1, Table 1", r, other,
                             "inception_score", higher=True))
    for other in ("gan", "wgan_gp"):
        out.append(order(f"sVAE's IS is above {display_name(other)}'s", "Sec. 6.1, Table 1", "svae", other,
                         "inception_score", higher=True))
    return out


TABLE_HEADER = ("| model | NLL = -IWAE, K = {k} (nats) | -ELBO (nats) | paper NLL (nats, bound (1)) | RMSE "
                "| RMSE, batch stats | IS "
                "| paper IS | FID | spread | epochs | steps | train wall (min; highest 1-min load in a chunk) | trained at | evaluated at |")


def refit_table(table):
    """Markdown lines of the encoder-refit table (rows evaluated with --refit_encoder_steps)."""
    refitted = {v: t for v, t in table.items() if t["refit_steps"]}
    if not refitted:
        return []
    lines = ["Encoders refitted to their fixed decoders (`trainers.evaluate --refit_encoder_steps`, "
             "`svae_tf.evaluation.refit`): Adam on the ELBO (1) of the training split, decoder in inference mode, "
             "then the encoder's batch-norm population statistics; measured after every number above, "
             "the same test images and K. The decoder, hence samples, IS and FID, is unchanged; the "
             "refit's seconds are not part of the training budget.", "",
             "| model | refit steps | refit (s) | NLL | NLL refit | -ELBO | -ELBO refit | RMSE | RMSE refit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in refitted.values():
        lines.append(f"| {t['label']} | {t['refit_steps']} | {_f(t['refit_seconds'], 1)} | {_f(t['nll_nats'])} | "
                     f"{_f(t['refit_nll_nats'])} | {_f(t['neg_elbo_nats'])} | {_f(t['refit_neg_elbo_nats'])} | "
                     f"{_f(t['rmse'])} | {_f(t['refit_rmse'])} |")
    return lines + [""]


def curve_png(curves):
    """PNG bytes: IS and FID against cumulative training minutes (top) and against
    encoder/decoder updates (bottom), one line per variant, from the same curve points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 8.4))
    n = next((p["num_samples"] for v in curves.values() for p in v if p.get("num_samples")), None)
    for row, (x_key, x_label) in enumerate((("minutes", "training wall-clock minutes (cumulative)"),
                                            ("steps", "encoder/decoder updates"))):
        left, right = axes[row]
        for variant in VARIANTS:
            points = curves.get(variant) or []
            for axis, key in ((left, "inception_score"), (right, "fid")):
                xy = [(p[x_key], p[key]) for p in points if p.get(key) is not None and p.get(x_key) is not None]
                if xy:
                    axis.plot(*zip(*xy), marker="o", markersize=3, label=display_name(variant))
        for axis, name in ((left, "Inception score (higher is better)"), (right, "FID (lower is better)")):
            axis.set_xlabel(x_label)
            axis.set_title(f"{name}, {n} samples" if n else name)
            axis.grid(alpha=0.3)
            axis.ticklabel_format(axis="y", useOffset=False)
            axis.set_xlim(left=0)
            if axis.get_legend_handles_labels()[0]:
                axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def artifact_names(results):
    """(curves PNG, samples directory) relative to RESULTS' directory: NAME_curves.png, NAME_samples."""
    base = os.path.basename(report.paths(results)[0])[:-len(".json")]
    return f"{base}_curves.png", f"{base}_samples"


def render(rows, ledgers, classifier_report, args, curves_name="mnist_curves.png", samples_dir="mnist_samples",
           carried=None):
    variants = [v for v in VARIANTS if v in ledgers]
    table = table_rows(rows, ledgers)
    at_budget = "at equal updates" if args.steps_per_variant else "at one CPU budget"
    lines = [f"# MNIST: {', '.join(display_name(v) for v in variants)} {at_budget} (paper Table 1)", "",
             "Measured by `benchmarks/reproduce_mnist.py`, except the paper's columns. The command, "
             "the commit and the machine of this report are under Provenance below; each row names the "
             "commits its training and its evaluation ran at, which can be older than the report "
             "(runs and evaluations are reused when still up to date)."]
    lines += ["", "## Setup", ""]
    lines += [
        "- Data: real MNIST (TFDS `mnist`), 60,000 training images (grey levels; the Bernoulli "
        "likelihood binarizes its target dynamically), 10,000 test images.",
        f"- Architecture: {_architecture_text(args)} for every "
        f"variant; seed {args.seed}; batch {args.batch_size}; epochs of {args.steps_per_epoch} steps. "
        "GAN and WGAN-GP have no encoder (decoder-only), so no NLL, -ELBO or RMSE.",
        "- Training: `trainers.train_lib.train`, the program of `python -m trainers.mnist`, called in "
        "the reproduction's process, one call per chunk (each resumes from the newest checkpoint).",
        (f"- Budget: {args.steps_per_variant} encoder/decoder updates per variant (equal updates), in chunks "
         + (f"of {args.curve_steps} updates" if args.curve_steps else
            f"of whole epochs of at most {args.curve_minutes:g} minutes, from the measured step rate")
         + f"; the wall-clock minutes of the same runs are measured too (time in train(): model building, "
         f"{args.eval_batches} held-out ELBO batches per epoch and image grids included)."
         if args.steps_per_variant else
         f"- Budget: {args.minutes_per_variant:g} wall-clock minutes in train() per variant, measured in "
         f"process (model building, {args.eval_batches} held-out ELBO batches per epoch and image grids "
         f"included), in chunks of whole epochs of at most {args.curve_minutes:g} minutes, from the "
         "measured step rate."),
        f"- Optimizer: Adam, learning rate {args.g_learning_rate:g} for the encoder/flow/decoder and "
        f"{args.d_learning_rate:g} for the discriminator, beta1 {args.beta1:g}, beta2 0.999, for every "
        "variant (this command's `--g_learning_rate`, `--d_learning_rate`, `--beta1`; each MNIST flagfile "
        "states its own, `trainers/configs/mnist_*.flags`, with the screen that supports it). "
        f"The paper used {PAPER_OPTIMIZER}.",
        f"- Variant settings: lambda {args.lam:g} for sVAE-r (paper: 0.3)"
        + ("" if args.lam_z is None else f", weight {args.lam_z:g} on its latent term E_p log q(z|x) "
           "(paper: lambda)") + "; trainer defaults otherwise "
        "(one discriminator update per step, WGAN-GP penalty weight 10). A setting is applied only to the "
        "variants that read it (`svae_tf.model.config`)." + (f" Extra settings (`--setting`): {args.setting}."
                                                       if args.setting else ""),
    ]
    if args.variant_setting:
        lines.append("- Per-variant settings (`--variant_setting`, applied after the above): "
                     + ", ".join(f"`{s}`" for s in args.variant_setting) + ".")
    for variant, note in (carried or {}).items():
        lines.append(
            f"- {display_name(variant)}: row carried over from the report of {note['report_date']} (commit "
            f"{(note['report_commit'] or 'not recorded')[:7]}; `--carry_over`), trained with these settings, "
            f"scored by that report's classifier (test accuracy {_f(note['classifier'].get('test_accuracy'), 4)}).")
    any_row = next((r for r in rows.values() if r and r.get("nll_nats") is not None), {})
    acc = classifier_report.get("test_accuracy")
    real_is = classifier_report.get("real_test_inception_score")
    num_images = any_row.get("num_images", min(args.num_nll_images or MNIST_TEST_IMAGES, MNIST_TEST_IMAGES))
    lines += [
        f"- Likelihood on the first {num_images} statically binarized test images "
        f"(data.load_images(binarize='static'), Philox seed "
        f"{any_row.get('binarization', {}).get('seed', 20170517)}), K = {args.iw_samples} samples of q(z|x) "
        "per image: NLL is -log of the mean of the K weights (the IWAE bound, Burda et al.); -ELBO is "
        "the mean of -log w over them, the bound (1) that the paper reports as NLL.",
        "- RMSE: 0-255 scale, grey-level test image vs decoder mean at z = T(mu(x)), the networks in "
        "inference mode (batch norm's moving statistics, as sampling, evaluation and export use them); "
        f"\"batch stats\": the same in training mode, batch norm by the statistics of each batch of "
        f"{SAMPLE_BATCH} (n/a for rows evaluated before it was measured).",
        f"- IS / FID: {args.num_samples} decoder means at z ~ N(0, I) (seed {args.seed}); the project's MNIST "
        f"CNN (`{args.classifier or 'trainers.classifier'}`; test accuracy {_f(acc, 4)}, real test-set IS {_f(real_is, 3)}), IS over {args.splits} splits, "
        f"FID on its 1024-d penultimate features against {args.num_reference or MNIST_TEST_IMAGES} test images.",
        f"- Spread: mean over pixels of the std over {args.probe_samples} samples from p(z) (at the z of the "
        "first IS/FID samples), at the newest checkpoint; about 0 for a collapsed decoder.",
        "",
        "## Results",
        "",
        TABLE_HEADER.format(k=args.iw_samples),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for variant, t in table.items():
        is_text = ("n/a" if t["inception_score"] is None
                   else f"{t['inception_score']:.2f} ± {t['inception_score_std']:.2f}")
        nll_text = _f(t["nll_nats"]) + ("" if t["nll_nats_stderr"] is None else f" ± {t['nll_nats_stderr']:.2f}")
        lines.append(
            f"| {t['label']} | {nll_text} | {_f(t['neg_elbo_nats'])} | "
            f"{_f(t['paper_nll_nats']) if t['paper_nll_nats'] else '—'} | {_f(t['rmse'])} | "
            f"{_f(t['rmse_batch_stats'])} | {is_text} | "
            f"{t['paper_inception_score'] or '—'} | {_f(t['fid'])} | {_f(t['spread'], 3)} | "
            f"{t['epochs'] if t['epochs'] is not None else 'n/a'} | "
            f"{t['steps'] if t['steps'] is not None else 'n/a'} | {_f(t['train_minutes'], 1)}"
            f"{_load_note(t.get('train_load_max'))} | "
            f"{t['trained_at']} | {t['evaluated_at']} |"
        )
    lines += ["", "NLL ± its standard error over images; IS ± the population std over splits. "
              "n/a: not defined for the variant (no encoder) or not evaluated.", ""]
    lines += refit_table(table)
    lines += [
              "Paper, Table 1 (MNIST; NLL in nats from the bound (1), IS ± std):", "",
              "| model | NLL | IS |", "|---|---:|---:|"]
    lines += [f"| {m} | {n if n is not None else '—'} | {i or '—'} |" for m, n, i in PAPER_TABLE_1]
    lines += ["", "The paper reports neither a VAE nor ALI on MNIST and no FID; ALI here has the same "
              "Bernoulli decoder as the others, so its likelihood bound is computable.", "",
              "## The paper's claims at this budget", "",
              "What the paper reports about MNIST (Table 1, Sec. 6.1) as orderings between models, "
              "checked on the table above (`paper_claims`). The paper's absolute numbers are not "
              "comparable with a 30-minute CPU budget and another IS classifier, so only its orderings "
              "and its comparison with the flow's 85.1 nats are checked.", "",
              "| claim | paper | measured | verdict |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(c[k].replace("|", "/") for k in ("claim", "source", "measured", "verdict")) + " |"
              for c in paper_claims(table)]
    lines += ["", "## The project's targets at this budget", "",
              "Thresholds this project set for a 30-minute CPU budget (`TARGETS`), not claims of the paper.", "",
              "| target | threshold | measured | verdict |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(c[k].replace("|", "/") for k in ("claim", "target", "measured", "verdict")) + " |"
              for c in claims(table)]
    lines += ["", "Computed by `benchmarks/reproduce_mnist.py` (`claims`) from the table above: the margin "
              "is how far the number lies on the target's side (IS, FID, RMSE on the 0-255 scale, nats, "
              "spread). An IS margin no larger than the larger split std is marked as within the noise.", "",
              "## Learning curves", "",
              f"![IS and FID vs training minutes and updates]({curves_name})", "",
              f"After each training chunk the newest checkpoint is scored on {args.probe_samples} samples "
              f"(fixed z, seed {args.seed}; IS over {args.probe_splits} split(s), FID against the same test "
              "statistics, by `metrics.frechet_distance_eigh`, the same distance without scipy's sqrtm), "
              "at the cumulative training wall-clock minutes of the ledger (top) and at the encoder/decoder "
              "updates made (bottom), from the same runs. FID is biased upwards for fewer "
              f"samples, so these ({args.probe_samples}) are not comparable with the table's ({args.num_samples}). "
              "The points are under `curves` in the JSON.", "",
              "## Samples", "",
              f"{GRID_SAMPLES} decoder means at z ~ N(0, I) per variant, at the newest checkpoint. "
              f"`{samples_dir}/VARIANT.npz` holds {args.probe_samples} of them as one array `samples`, uint8 "
              f"[{args.probe_samples}, 28, 28], round(255 x decoder mean), drawn at the z of the evaluation's "
              f"first {args.probe_samples} samples (seed {args.seed}, batches of {SAMPLE_BATCH}), so anyone can "
              "score them with another classifier; this classifier's IS on the evaluation's "
              f"{args.num_samples} samples is `evaluations.VARIANT.inception_score` in the JSON.", ""]
    for variant in variants:
        lines += [f"**{display_name(variant)}**", "", f"![{display_name(variant)} samples]({samples_dir}/{variant}.png)", ""]
    return "\n".join(lines)


def carried_over(args, variants):
    """(ledgers, evaluations, artifacts, notes) of the rows that the existing RESULTS.json
    holds for variants not run now and not in --work_dir (see --carry_over): their samples
    are read from beside that report. A row trained with other settings (`run_settings`) is left out."""
    previous = _read_json(report.paths(args.results)[0], {}) if args.carry_over else {}
    ledgers, evaluations, artifacts, notes = {}, {}, {}, {}
    _, samples_dir = artifact_names(args.results)
    results_dir = os.path.dirname(report.paths(args.results)[0])
    for variant in VARIANTS:
        ledger = previous.get("ledgers", {}).get(variant)
        if variant in variants or ledger is None or os.path.exists(work_paths(args, variant)["ledger"]):
            continue
        old = ledger_settings(ledger)
        differences = None if old is None else settings_differences(old, run_settings(*configs(variant, args)))
        if differences or old is None:
            _say(f"{variant}: the previous report's row was trained with other settings "
                 f"({_differences_text(differences) if differences else 'not recorded'}); left out")
            continue
        ledgers[variant], evaluations[variant] = ledger, previous.get("evaluations", {}).get(variant)
        for ext in ("png", "npz"):
            with open(os.path.join(results_dir, samples_dir, f"{variant}.{ext}"), "rb") as f:
                artifacts[f"{samples_dir}/{variant}.{ext}"] = f.read()
        provenance = previous.get("provenance", {})
        notes[variant] = previous.get("carried_over", {}).get(variant) or {  # the report it was run in
            "report_commit": provenance.get("commit"), "report_date": provenance.get("date"),
            "classifier": previous.get("classifier", {})}
        _say(f"{variant}: row carried over from the report of {notes[variant]['report_date']}")
    return ledgers, evaluations, artifacts, notes


def finished_in_work_dir(args, variants):
    """Variants not in `variants` whose run in --work_dir is finished (its budget used, with
    this run's settings): reported too, without more training (their evaluation is
    reused when it is up to date, as for the variants run now)."""
    from svae_tf import runs  # lazily: imports TensorFlow

    done = []
    for variant in VARIANTS:
        paths = work_paths(args, variant)
        ledger = _read_json(paths["ledger"])
        if variant in variants or not ledger:
            continue
        _, steps_done, checkpoint = runs.checkpoint_info(paths["model_dir"])
        old = ledger_settings(ledger)
        if (old is not None and not settings_differences(old, run_settings(*configs(variant, args)))
                and not ledger.get("running") and checkpoint is not None and checkpoint == ledger.get("checkpoint")
                and next_chunk(ledger, steps_done, budget_seconds(args), args) == 0):
            _say(f"{variant}: finished in {args.work_dir}; reported as it is")
            done.append(variant)
    return done


def main(args):
    """The reproduction with the flags `args` (`parse_args`, or `svae_tf.cli.run`)."""
    started = report.start()
    tf_logs.configure(args.tf_log_level)  # before TensorFlow is imported
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise app.UsageError(f"--variants: unknown {unknown}; choose from {VARIANTS}")
    _check_budget_args(args)
    for variant in variants:  # bad settings stop the program before any training
        configs(variant, args)
    if importlib.util.find_spec("matplotlib") is None:  # fail now, not after hours of training
        raise SystemExit("the learning-curve figure needs matplotlib: pip install -e '.[dev]' (or pip install matplotlib)")
    work_dir = os.path.abspath(args.work_dir)
    for sub in ("logs", "evals", "samples"):
        os.makedirs(os.path.join(work_dir, sub), exist_ok=True)
    classifier, classifier_report = (None, {}) if args.skip_eval else ensure_classifier(args)
    prober = Prober(args, classifier)
    ledgers, rows, sample_files, carried = carried_over(args, variants)
    for variant in variants:
        ledgers[variant] = train_variant(variant, args, prober)
    for variant in [] if args.skip_eval else finished_in_work_dir(args, variants):
        ledgers[variant] = _read_json(work_paths(args, variant)["ledger"])
        variants.append(variant)
    for variant in variants:
        rows[variant] = None if args.skip_eval else evaluate_variant(variant, ledgers[variant], classifier, args)
    curves_name, samples_dir = artifact_names(args.results)
    reported = [v for v in VARIANTS if v in ledgers]
    curves = {v: ledgers[v].get("curve", []) for v in reported}
    artifacts = {curves_name: curve_png(curves), **sample_files}
    for variant in variants:
        paths = work_paths(args, variant)
        for ext in ("png", "npz"):
            with open(paths[ext], "rb") as f:
                artifacts[f"{samples_dir}/{variant}.{ext}"] = f.read()
    text = render(rows, ledgers, classifier_report, args, curves_name, samples_dir, carried)
    table = table_rows(rows, ledgers)
    raw = {"args": vars(args), "preset": _preset(args), "targets": TARGETS, "paper_optimizer": PAPER_OPTIMIZER,
           "budget": {"steps_per_variant": args.steps_per_variant} if args.steps_per_variant
           else {"minutes_per_variant": args.minutes_per_variant},
           "rows": table, "claims": claims(table), "paper_claims": paper_claims(table), "curves": curves,
           "samples": {v: dict(ledgers[v].get("samples") or {}, npz=f"{samples_dir}/{v}.npz",
                               grid=f"{samples_dir}/{v}.png") for v in reported},
           "ledgers": ledgers, "evaluations": rows, "classifier": classifier_report, "carried_over": carried}
    report.write_report(args.results, raw, text, started=started, files=artifacts)
    _say(f"wrote {' and '.join(report.paths(args.results))} and {len(artifacts)} files beside them")
    print(text)


if __name__ == "__main__":
    cli.run(main, define_flags)
