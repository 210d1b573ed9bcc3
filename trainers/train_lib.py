"""The one training program behind `trainers.mnist`, `trainers.cifar` and `trainers.imagenet`.

    python -m trainers.mnist --flagfile=trainers/configs/mnist_svae_r.flags
    python -m trainers.cifar --flagfile=trainers/configs/cifar_svae_r.flags --model_dir=/tmp/run

The thin trainer modules only choose defaults (dataset, preset, batch size, epochs) and
call `main`; everything else is here:

* flags (absl) and their validation, *before* TensorFlow is imported: a bad flag stops
  the program with a message naming the flag, without paying for TensorFlow's import;
* the distribution strategy (`default`, `mirrored`, `multi_worker`, `tpu`) and mixed
  precision; the model and both optimizers are built and compiled in `strategy.scope()`;
* `model.fit` (Keras progress bar) on a deterministic, seeded `tf.data` stream, with the
  held-out ELBO as `validation_data`;
* the callbacks (`trainers.callbacks`): non-finite guard, TensorBoard scalars and images,
  PNG grids, checkpoints; they advance a `trainers.run_state.RunState`.

`run` reads as the program's steps: resolve and check the data (`_resolve_data`), the
strategy, record the run (`_record_run`), build the model (`_build_model`), restore the
newest checkpoint (`_restore`), then fit with resume (`_fit`).

Outputs in `model_dir` (user documentation: README.md "Training", BUILD.md "Distributed"):
`config.json` (`runs.save_config`), `flags.txt` / `flags.json` (the flags used; flags the
variant does not use are left out, see `unused_flags`),
`logs/train`, `logs/validation` (TensorBoard), `samples_epoch_XXX.png`,
`reconstructions_epoch_XXX.png`, `checkpoints/ckpt-<step>` (`runs.checkpoint_manager`).

Resume. A checkpoint holds the model, both optimizers, the noise seeds and three counters:
`epoch` (Keras epoch in progress), `step_in_epoch` (its batches done) and `data_position`
(batches consumed from the training stream since the start of the run). The training
stream is one deterministic sequence, `data.training_stream` (`data.load_images(shuffle=True,
seed=--seed, repeat=True)`), whose sequence of shuffled orders depends on the seed only. On restart it
is rebuilt and its first `data_position` batches are skipped (`Dataset.skip` on the
cached uint8 pipeline; `benchmarks.input_pipeline` measures its rate), so the resumed
run sees exactly the batches, and with the restored seed state the same noise, as the
uninterrupted run: it ends with bit-identical weights on the same machine (tested). The
cost grows with the run's length; for uncached data (imagenet64) it is a re-read of
everything consumed. The interrupted epoch is finished by
a first `fit` of `steps_per_epoch - step_in_epoch` steps, then the remaining epochs run
in a second `fit` with `initial_epoch`. tf.data iterator checkpointing was not used: it
would store the shuffle buffer (and the in-memory cache) in every checkpoint. A newest
checkpoint that cannot be read is skipped with a warning naming its damaged file
(`runs.restore_newest`); when none can be read the run stops.

NaN policy. After every train step the reported losses/metrics are checked; a
non-finite value stops training with an error (exit status 1) naming the step and the
last good checkpoint, which is left untouched. Before every checkpoint write, all model
and optimizer variables are checked with `tf.math.is_finite`; non-finite weights are
never written (the run stops with the same message). Steps are not skipped.

Other failures stop the run with one line naming the file or tensor (`RunError`, exit
status 1): bad input data (an undecodable folder image, NaN/Inf in float examples; checked
by the input pipeline before the data is cached, so before any step uses it) and outputs
that cannot be written (a checkpoint or PNG; the earlier checkpoints stay intact).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

from absl import app, flags, logging

from svae_tf import logs as tf_logs
from svae_tf import presets  # plain data: no TensorFlow import
from trainers.run_state import COUNTERS, NonFiniteError, RunError, RunState  # no TensorFlow import

# Kept equal to svae_tf.model.VARIANTS / svae_tf.flows.FLOW_KINDS (tests check it). They are
# repeated here so that flags are validated before TensorFlow is imported.
VARIANTS = ("vae", "svae", "svae_r", "svae_r_elbo", "svae_r_lx", "ali", "gan", "wgan_gp")
FLOW_KINDS = ("none", "coupling", "maf", "iaf")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRESET_NAMES = tuple(presets.PRESETS)
PRECISIONS = ("none", "mixed_bfloat16", "mixed_float16")
# Variants with a discriminator (all but vae), with an encoder (all but the decoder-only
# gan, wgan_gp) and with lambda; tests check them against svae_tf.model and svae_tf.variants.
DISCRIMINATOR_VARIANTS = ("svae", "svae_r", "svae_r_elbo", "svae_r_lx", "ali", "gan", "wgan_gp")
ENCODER_VARIANTS = ("vae", "svae", "svae_r", "svae_r_elbo", "svae_r_lx", "ali")
LAM_VARIANTS = ("svae_r", "svae_r_elbo", "svae_r_lx")  # whose loss uses lambda (uses_lam)

# Defaults of each thin trainer. The paper gives Adam 1e-4 and lambda 0.3 but no batch
# sizes or epoch counts; those below are ours.
TRAINERS = {
    "mnist": dict(dataset="mnist", preset="mnist", batch_size=100, epochs=50),
    "cifar": dict(dataset="cifar10", preset="cifar10", batch_size=64, epochs=100),
    "imagenet": dict(dataset="imagenet64", preset="imagenet64", batch_size=64, epochs=12),
}

RUNS_DIR = "runs"  # default parent of model_dir (created on demand)
FLAGS_TXT = "flags.txt"
FLAGS_JSON = "flags.json"
LOG_SUBDIR = "logs"
# Flags that define the training stream; a resumed run must not change them.
_STREAM_FLAGS = ("dataset", "batch_size", "seed", "take", "image_size")

FLAGS = flags.FLAGS

# ----------------------------------------------------------------------------- flags
# Model.
flags.DEFINE_enum("variant", "svae_r", VARIANTS, "Model/objective: vae, svae, svae_r, svae_r_elbo (sVAE-r with the encoder side "
                  "exact, eq. 28), svae_r_lx (sVAE-r with lambda on the whole bound L_x), ali, gan, wgan_gp.")
flags.DEFINE_enum("preset", None, PRESET_NAMES, "Network architecture (svae_tf.presets); default: the trainer's "
                  "(mnist, cifar10, imagenet64: the paper's Appendix A networks with the fixes that keep the "
                  "adversarial variants from collapsing; mnist_a1, cifar10_a2, imagenet64_a3: Appendix A exactly).")
flags.DEFINE_float("lam", 0.3, "lambda of sVAE-r, eq. (29) (paper: 0.3).", lower_bound=0.0)
flags.DEFINE_float("lam_z", None, "Weight of eq. (29)'s latent term E_p log q(z|x) alone; default: --lam (the paper's).", lower_bound=0.0)
flags.DEFINE_enum("latent_x", "mean", ["mean", "draw", "straight_through", "score_function"], "x of eq. (29)'s latent term log q(z|x) and the decoder's gradient through it: the decoder mean, or x ~ p(x|z) with no gradient to the decoder (draw), straight-through, or score-function (SymmetricVAE latent_x).")
flags.DEFINE_integer("z_dim", None, "Latent size; default: the preset's (MNIST 64, CIFAR 100, ImageNet 2048).", lower_bound=1)
flags.DEFINE_enum("flow", None, FLOW_KINDS, "Normalizing flow on q(z|x); default: the preset's (MNIST coupling, others none).")
flags.DEFINE_integer("flow_depth", None, "Flow layers; default: the preset's, or 4 when --flow turns a flow on.", lower_bound=0)
flags.DEFINE_integer("n_disc", 1, "Discriminator updates per encoder/decoder update.", lower_bound=1)
flags.DEFINE_float("gradient_penalty_weight", 10.0, "WGAN-GP penalty weight.", lower_bound=0.0)
flags.DEFINE_float("r1_weight", 0.0, "gamma of the R1 penalty (gamma/2 ||grad_{x,z} f||^2 at data pairs) on the discriminator; 0: off.", lower_bound=0.0)
flags.DEFINE_bool("shared_samples", False, "The discriminator's (last) update and the encoder/decoder update of a step read one draw of both joints, decoded once (SymmetricVAE shared_samples); faster per step.")
flags.DEFINE_float("ema_decay", 0.0, "Decay of a moving average of the encoder/decoder weights, which evaluation, export and sampling then use (svae_tf.ema); 0: off.", lower_bound=0.0, upper_bound=0.999999)
flags.DEFINE_float("instance_noise", 0.0, "std of Gaussian noise on the images of both joints where the discriminator sees them, annealed linearly to 0 over --instance_noise_steps discriminator updates; 0: off.", lower_bound=0.0)
flags.DEFINE_integer("instance_noise_steps", 10000, "Discriminator updates over which --instance_noise anneals to 0.", lower_bound=1)
flags.DEFINE_float("discriminator_dropout", None, "Overrides the preset's discriminator dropout rates.", lower_bound=0.0, upper_bound=0.99)
# Optimisation.
flags.DEFINE_integer("batch_size", 100, "Global batch size (split over replicas).", lower_bound=1)
flags.DEFINE_integer("epochs", 50, "Number of epochs (of --steps_per_epoch steps).", lower_bound=1)
flags.DEFINE_integer("steps_per_epoch", None, "Train steps per epoch; default: one pass over the training split (floor(N / batch_size)).", lower_bound=1)
flags.DEFINE_float("g_learning_rate", 1e-4, "Adam learning rate of encoder/flow/decoder (paper: 1e-4).", lower_bound=0.0)
flags.DEFINE_float("d_learning_rate", 1e-4, "Adam learning rate of the discriminator (paper: 1e-4).", lower_bound=0.0)
flags.DEFINE_float("beta1", 0.9, "Adam beta_1 of both optimizers.", lower_bound=0.0, upper_bound=0.999999)
flags.DEFINE_float("beta2", 0.999, "Adam beta_2 of both optimizers.", lower_bound=0.0, upper_bound=0.999999)
flags.DEFINE_integer("seed", 0, "Seed of the initial weights, the model's noise and the data order.")
# Data.
flags.DEFINE_string("dataset", None, "Dataset override: mnist, cifar10, imagenet64 or folder:/dir/of/images (needs --image_size for folders); default: the trainer's.")
flags.DEFINE_string("data_dir", None, "TFDS data directory; default $TFDS_DATA_DIR, else ~/tensorflow_datasets. Nothing is downloaded.")
flags.DEFINE_integer("image_size", None, "Resize images to this square size (folders); must match the preset's image size.", lower_bound=1)
flags.DEFINE_integer("take", None, "Use only the first N examples of each split (smoke runs, tests).", lower_bound=1)
flags.DEFINE_integer("eval_batches", None, "Held-out batches for the validation ELBO each epoch; default: the whole test split; 0: no validation.", lower_bound=0)
flags.DEFINE_boolean("cache", None, "Cache decoded images in memory; default: yes, except for imagenet64 (~15 GiB).")
# Outputs.
flags.DEFINE_string("model_dir", None, "Run directory (config, flags, logs, PNG grids, checkpoints). Its parent must exist, except ./runs, which is created. Default: runs/<trainer>_<variant>.")
flags.DEFINE_integer("checkpoint_every_steps", 500, "Also save a checkpoint every N steps (0: only at epoch ends).", lower_bound=0)
flags.DEFINE_integer("batch_norm_batches", 100, "At every epoch end, before the checkpoint, replace batch norm's moving statistics by population statistics over the first N training batches, for the weights sampling uses (EMA's under --ema_decay), so that inference mode equals the trained networks; 0: keep Keras' moving averages.", lower_bound=0)
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept in model_dir/checkpoints.", lower_bound=1)
flags.DEFINE_integer("log_every_steps", 50, "Write training scalars to TensorBoard every N steps.", lower_bound=1)
flags.DEFINE_integer("num_grid_images", 64, "Images in the sample and reconstruction grids.", lower_bound=1)
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 1 progress bar, 2 one line per epoch, 0 silent.", lower_bound=0, upper_bound=2)
# Execution.
flags.DEFINE_enum("strategy", "default", STRATEGIES, "tf.distribute strategy: default (one device), mirrored (all local GPUs, else all logical CPUs), multi_worker (from TF_CONFIG), tpu.")
flags.DEFINE_string("tpu", "", "TPU name or grpc address for --strategy=tpu ('' or 'local' on a TPU VM).")
flags.DEFINE_boolean("jit_compile", False, "Compile the train step with XLA (slower on CPU for these convnets).")
flags.DEFINE_enum("mixed_precision", "none", PRECISIONS, "Keras dtype policy; mixed_float16 wraps both optimizers in LossScaleOptimizer.")
flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP)
# For tests and debugging.
flags.DEFINE_integer("logical_cpus", 0, "(testing) Split the CPU into N logical devices before TensorFlow starts (e.g. to test --strategy=mirrored on 2 CPUs).", lower_bound=0)
flags.DEFINE_integer("debug_inject_nan_at_step", None, "(testing) Replace the training images by NaN from this global step on, to exercise the NaN policy.", lower_bound=0)


def _positive(value):
    return value is None or value > 0


flags.register_validator("g_learning_rate", _positive, "--g_learning_rate must be > 0")
flags.register_validator("d_learning_rate", _positive, "--d_learning_rate must be > 0")


def _probe_writable(directory):
    """True if a file can be created in `directory` (os.access lies for root)."""
    try:
        fd, path = tempfile.mkstemp(prefix=".svae_write_probe_", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.remove(path)
    return True


def check_model_dir(model_dir):
    """Raise flags.ValidationError unless `model_dir` can hold a run.

    An existing directory must be writable; a new one needs an existing, writable
    parent (so a typo in a path stops the run at once), except `./runs`, which is
    created. Remote paths (gs://...) are not checked here.
    """
    if model_dir is None or "://" in model_dir:
        return True
    path = os.path.abspath(os.path.expanduser(model_dir))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise flags.ValidationError(f"{model_dir!r} exists and is not a directory")
        if not _probe_writable(path):
            raise flags.ValidationError(f"directory {model_dir!r} is not writable")
        return True
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        if os.path.normpath(parent) == os.path.abspath(RUNS_DIR) and _probe_writable(os.getcwd()):
            return True  # ./runs/<name>: ./runs is created
        raise flags.ValidationError(
            f"the parent directory {os.path.dirname(model_dir) or '.'!r} does not exist "
            "(create it first, or check the path)"
        )
    if not _probe_writable(parent):
        raise flags.ValidationError(f"cannot create {model_dir!r}: parent directory is not writable")
    return True


flags.register_validator("model_dir", check_model_dir)


def set_trainer_defaults(trainer):
    """Set the defaults of `trainer` ("mnist", "cifar", "imagenet") on the flags."""
    for name in ("batch_size", "epochs"):
        FLAGS.set_default(name, TRAINERS[trainer][name])


# Flags that only some variants use: name -> (the variants that use it, what it sets).
_VARIANT_FLAGS = {
    "lam": (LAM_VARIANTS, "sVAE-r's lambda, eq. (29)"),
    "lam_z": (LAM_VARIANTS, "the weight of sVAE-r's latent term, eq. (29)"),
    "latent_x": (LAM_VARIANTS, "the x of sVAE-r's latent term, eq. (29)"),
    "gradient_penalty_weight": (("wgan_gp",), "the WGAN-GP gradient penalty"),
    "n_disc": (DISCRIMINATOR_VARIANTS, "the discriminator updates per step"),
    "d_learning_rate": (DISCRIMINATOR_VARIANTS, "the discriminator's learning rate"),
    "discriminator_dropout": (DISCRIMINATOR_VARIANTS, "the discriminator's dropout"),
    "r1_weight": (DISCRIMINATOR_VARIANTS, "the discriminator's R1 penalty"),
    "instance_noise": (DISCRIMINATOR_VARIANTS, "the discriminator's instance noise"),
    "instance_noise_steps": (DISCRIMINATOR_VARIANTS, "the discriminator's instance noise"),
    "shared_samples": (DISCRIMINATOR_VARIANTS, "how the discriminator's update draws its samples"),
    "flow": (ENCODER_VARIANTS, "the encoder's flow"),
    "flow_depth": (ENCODER_VARIANTS, "the encoder's flow"),
}


def unused_flags():
    """{name: why} of the training flags that this run's --variant / --strategy does not
    use, whether set or not. They are left out of config.json, flags.txt and the top level
    of flags.json; the ones the user set are listed in flags.json under "unused_flags"."""
    out = {}
    for name, (variants, what) in _VARIANT_FLAGS.items():
        if FLAGS.variant not in variants:
            out[name] = f"it sets {what}, used by --variant={'|'.join(variants)} only, not --variant={FLAGS.variant}"
    if FLAGS.strategy != "tpu":
        out["tpu"] = f"it is read by --strategy=tpu only (this run: --strategy={FLAGS.strategy})"
    return out


# ----------------------------------------------------------------------------- small helpers
def own_flags():
    """{name: value} of the flags defined in this module (the training program's flags)."""
    names = sorted(f.name for f in FLAGS.get_flags_for_module(__name__))
    return {name: FLAGS[name].value for name in names}


def weights_checksum(variables):
    """sha256 of the values of `variables` (in order): equal weights, equal checksum."""
    digest = hashlib.sha256()
    for v in variables:
        digest.update(v.path.encode() if hasattr(v, "path") else b"")
        digest.update(v.numpy().tobytes())
    return digest.hexdigest()


def _say(message, *, after_progress_bar=False):
    """User-facing progress messages (stdout; absl INFO logging is off by default).
    `after_progress_bar`: called during `fit`, where Keras' progress bar (--verbose=1)
    leaves the cursor at the end of its line; start a new one."""
    newline = "\n" if after_progress_bar and FLAGS.verbose == 1 else ""
    print(f"{newline}[svae-tf] {message}", flush=True)


@contextlib.contextmanager
def _stop_on_bad_data():
    """Turns the input pipeline's data checks (an undecodable image file, NaN/Inf in
    the data; raised inside tf.data, so from `model.fit` too) into a RunError."""
    import tensorflow as tf
    from svae_tf import data

    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        bad = data.data_error(err)
        if bad is None:
            raise
        raise RunError(f"Bad input data: {bad} Training stopped before any step used it; "
                       "checkpoints written so far are kept.") from None


# ----------------------------------------------------------------------------- strategy
def _configure_devices():
    import tensorflow as tf

    if FLAGS.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.logical_cpus
        )


def _make_strategy():
    """(strategy, is_chief, task description) for --strategy."""
    import tensorflow as tf

    name = FLAGS.strategy
    if name == "default":
        return tf.distribute.get_strategy(), True, "single device"
    if name == "mirrored":
        devices = None  # all GPUs when there are any
        if not tf.config.list_physical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return strategy, True, f"mirrored over {strategy.num_replicas_in_sync} devices"
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise app.UsageError("--strategy=multi_worker needs the TF_CONFIG environment variable (see BUILD.md).")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        task_type, task_id = resolver.task_type, resolver.task_id
        cluster = resolver.cluster_spec().as_dict()
        is_chief = task_type == "chief" or (
            task_type == "worker" and task_id == 0 and "chief" not in cluster
        )
        return strategy, is_chief, f"multi-worker {task_type}:{task_id} of {strategy.num_replicas_in_sync} replicas"
    # tpu (not testable on this machine)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=FLAGS.tpu or None)
    except ValueError as err:
        raise app.UsageError(
            f"--strategy=tpu: no TPU found ({err}); pass --tpu=local on a TPU VM, "
            "or --tpu=NAME / grpc://ADDRESS."
        ) from err
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
    return strategy, True, f"TPU with {strategy.num_replicas_in_sync} cores"


# ----------------------------------------------------------------------------- the program
def _model_config(preset_name):
    """The ModelConfig of the flags. Flags the variant does not use (`unused_flags`) keep
    ModelConfig's defaults, so that they neither reach config.json nor stop a resume."""
    from svae_tf import presets, runs

    unused = unused_flags()
    defaults = {f.name: f.default for f in dataclasses.fields(runs.ModelConfig)}

    def used(name):
        return defaults[name] if name in unused else FLAGS[name].value

    preset = presets.get_preset(preset_name)
    overrides = {}
    if FLAGS.z_dim is not None and FLAGS.z_dim != preset.z_dim:
        overrides["z_dim"] = FLAGS.z_dim
    if "flow" not in unused:
        flow = FLAGS.flow if FLAGS.flow is not None else preset.flow
        if flow == "none":
            depth = 0
        elif FLAGS.flow_depth is not None:
            depth = FLAGS.flow_depth
        else:
            depth = preset.flow_depth if preset.flow_depth > 0 else 4
        if flow != "none" and depth == 0:
            raise app.UsageError(f"--flow_depth=0 with --flow={flow}: give a depth >= 1 or --flow=none.")
        if flow != preset.flow:
            overrides["flow"] = flow
        if depth != preset.flow_depth:
            overrides["flow_depth"] = depth
    return runs.ModelConfig(
        preset=preset_name,
        preset_overrides=overrides,
        variant=FLAGS.variant,
        lam=used("lam"),
        lam_z=used("lam_z"),
        latent_x=used("latent_x"),
        n_disc=used("n_disc"),
        gradient_penalty_weight=used("gradient_penalty_weight"),
        discriminator_dropout=used("discriminator_dropout"),
        seed=FLAGS.seed,
        r1_weight=used("r1_weight"),
        ema_decay=FLAGS.ema_decay,
        instance_noise=used("instance_noise"),
        instance_noise_steps=used("instance_noise_steps"),
        shared_samples=used("shared_samples"),
    )


def _check_resume_compatible(model_dir, config, values):
    """A model_dir with a run in it must be resumed with the same model and data stream
    (`values`: this run's resolved flags)."""
    import tensorflow as tf
    from svae_tf import runs

    if not tf.io.gfile.exists(os.path.join(model_dir, runs.CONFIG_FILE)):
        return
    old = runs.load_config(model_dir)
    if old != config:
        a, b = dataclasses.asdict(old), dataclasses.asdict(config)
        diff = ", ".join(f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k])
        raise app.UsageError(
            f"--model_dir={model_dir} holds a run with another model config ({diff}). "
            "Resume it with the same flags, or use a new --model_dir."
        )
    path = os.path.join(model_dir, FLAGS_JSON)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            old_flags = json.load(f)
        for name in _STREAM_FLAGS:
            if name in old_flags and old_flags[name] != values[name]:
                raise app.UsageError(
                    f"--{name}={values[name]} differs from the run in --model_dir={model_dir} "
                    f"(--{name}={old_flags[name]}), which would change its data stream on resume. "
                    "Use the run's value or a new --model_dir."
                )


@dataclasses.dataclass(frozen=True)
class _RunData:
    """The data of a run, resolved from the flags by `_resolve_data`."""

    dataset: str
    image_size: int | None  # resize to this square size (folders); None: native size
    batch_size: int  # global
    eval_split: str  # "test"; "train" for a folder, which has one split
    eval_count: int  # held-out examples (after --take)
    steps_per_epoch: int
    eval_steps: int  # held-out batches each epoch; 0: no validation
    cache: bool

    @property
    def is_folder(self):
        return self.dataset.startswith("folder:")

    def stream(self, start):
        """The training stream from batch `start` on (`data.training_stream`)."""
        from svae_tf import data

        return data.training_stream(
            self.dataset, batch_size=self.batch_size, seed=FLAGS.seed, start=start,
            data_dir=FLAGS.data_dir, take=FLAGS.take, image_size=self.image_size,
            cache=self.cache, nan_from_step=FLAGS.debug_inject_nan_at_step)


def _resolve_data(dataset, arch, preset_name):
    """The `_RunData` of `dataset` and the flags, checked before any heavy work: its
    images must have the shape of the architecture `arch` (app.UsageError), its training
    split must hold a batch (app.UsageError); data.DatasetNotFoundError if it is missing."""
    from svae_tf import data

    is_folder = dataset.startswith("folder:")
    image_size = FLAGS.image_size
    if is_folder and image_size is None:
        image_size = arch.image_shape[0]
    try:
        shape = data.image_shape(dataset, image_size=image_size)
    except ValueError as err:
        raise app.UsageError(f"--dataset={dataset}: {err}") from err
    if tuple(shape) != tuple(arch.image_shape):
        raise app.UsageError(
            f"--dataset={dataset} gives images of shape {shape}, but the {preset_name} architecture "
            f"needs {arch.image_shape}" + (" (set --image_size)" if image_size else "")
        )
    train_count = data.num_examples(dataset, "train", FLAGS.data_dir)  # DatasetNotFoundError
    eval_count = train_count if is_folder else data.num_examples(dataset, "test", FLAGS.data_dir)
    if FLAGS.take:
        train_count, eval_count = min(train_count, FLAGS.take), min(eval_count, FLAGS.take)
    batch_size = FLAGS.batch_size
    if train_count < batch_size:
        raise app.UsageError(
            f"--batch_size={batch_size} is larger than the {train_count} training examples"
            + (f" (--take={FLAGS.take})" if FLAGS.take else "")
        )
    eval_steps = eval_count // batch_size
    if FLAGS.eval_batches is not None:
        eval_steps = min(eval_steps, FLAGS.eval_batches)
    return _RunData(
        dataset=dataset, image_size=image_size, batch_size=batch_size,
        eval_split="train" if is_folder else "test", eval_count=eval_count,
        steps_per_epoch=FLAGS.steps_per_epoch or train_count // batch_size, eval_steps=eval_steps,
        cache=FLAGS.cache if FLAGS.cache is not None else dataset != "imagenet64",
    )


def _record_run(model_dir, config, inputs, is_chief):
    """Warn about the set flags that do not apply (`unused_flags`). On the chief, check
    that a run already in `model_dir` is resumed with the same model and data stream,
    then write config.json, flags.json and flags.txt."""
    import tensorflow as tf
    from svae_tf import runs

    values = own_flags()
    values.update(dataset=inputs.dataset, model_dir=model_dir, image_size=inputs.image_size,
                  batch_size=inputs.batch_size, steps_per_epoch=inputs.steps_per_epoch)
    unused = unused_flags()
    unused_set = {name: values[name] for name in unused if FLAGS[name].present}
    for name, why in unused.items():
        if name in unused_set:
            _say(f"WARNING: --{name}={values[name]} does not apply and is ignored: {why}. "
                 "flags.json lists it under unused_flags.")
    values = {k: v for k, v in values.items() if k not in unused}
    if not is_chief:
        return
    _check_resume_compatible(model_dir, config, values)
    tf.io.gfile.makedirs(model_dir)
    runs.save_config(model_dir, config)
    record = dict(values, unused_flags=unused_set)
    runs.atomic_write(os.path.join(model_dir, FLAGS_JSON), json.dumps(record, indent=2, sort_keys=True))
    runs.atomic_write(
        os.path.join(model_dir, FLAGS_TXT),
        "".join(f"--{k}={v}\n" for k, v in sorted(values.items()) if v is not None),
    )


def _build_model(config, strategy):
    """The model of `config` with its two Adam optimizers, built and compiled in
    `strategy.scope()` under the --mixed_precision policy, with Keras seeded by --seed."""
    import keras
    from svae_tf import runs

    if FLAGS.mixed_precision != "none":
        keras.mixed_precision.set_dtype_policy(FLAGS.mixed_precision)
    keras.utils.set_random_seed(FLAGS.seed)

    def adam(lr, name):
        opt = keras.optimizers.Adam(lr, beta_1=FLAGS.beta1, beta_2=FLAGS.beta2, name=name)
        if FLAGS.mixed_precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
        return opt

    with strategy.scope():
        model = runs.build_model(config)
        d_opt = adam(FLAGS.d_learning_rate, "d_adam") if model.discriminator is not None else None
        # Metrics of shape [1] under multi_worker: see SymmetricVAE.compile.
        model.compile(g_optimizer=adam(FLAGS.g_learning_rate, "g_adam"), d_optimizer=d_opt,
                      jit_compile=FLAGS.jit_compile, rank1_metrics=FLAGS.strategy == "multi_worker")
    return model


def _restore(model, write_dir, model_dir, steps_per_epoch):
    """(RunState, checkpoint manager writing to `write_dir`). The model, its optimizers
    and the state are restored from the newest readable checkpoint in `model_dir`;
    damaged newer ones are reported and skipped (RunError when none can be read)."""
    import tensorflow as tf
    from svae_tf import runs

    counters = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name) for name in COUNTERS}
    ckpt = runs.make_checkpoint(model, **counters)
    manager = runs.checkpoint_manager(ckpt, write_dir, max_to_keep=FLAGS.keep_checkpoints)
    state = RunState(variables=counters)
    try:
        latest, skipped = runs.restore_newest(ckpt, os.path.join(model_dir, runs.CHECKPOINT_SUBDIR))
    except runs.CheckpointError as err:
        raise RunError(f"{err} Move the damaged files away to start afresh, or use another "
                       "--model_dir.") from err
    for err in skipped:
        _say(f"WARNING: {err} Resuming from {latest} instead.")
    if latest:
        state.sync_from_variables()
        state.last_saved, state.last_saved_position = latest, state.data_position
        _say(f"Resuming from {latest}: {state.epoch} epochs and {state.step_in_epoch} batches "
             f"done, data position {state.data_position}, optimizer step "
             f"{int(model.g_optimizer.iterations.numpy())}.")
    if state.step_in_epoch >= steps_per_epoch:  # --steps_per_epoch was lowered
        state.epoch, state.step_in_epoch = state.epoch + 1, 0
    return state, manager


def _validation_data(inputs):
    """The held-out batches of the validation ELBO, or None (--eval_batches=0, or fewer
    held-out examples than a batch)."""
    from svae_tf import data

    if inputs.eval_steps == 0:
        logging.warning("No held-out ELBO: %d held-out examples, batch size %d, --eval_batches=%s.",
                        inputs.eval_count, inputs.batch_size, FLAGS.eval_batches)
        return None
    # Exactly the images of the eval_steps batches Keras reads each epoch: the cache is
    # then filled by the first pass and reused, where a partly read cache would be
    # dropped (with a tf.data warning) and decoded again every epoch.
    return data.load_images(inputs.dataset, inputs.eval_split, batch_size=inputs.batch_size,
                            data_dir=FLAGS.data_dir, drop_remainder=True,
                            take=inputs.eval_steps * inputs.batch_size,
                            image_size=inputs.image_size, cache=inputs.cache)


def _make_callbacks(*, state, manager, inputs, z_dim, write_dir, model_dir, is_chief):
    """The Keras callbacks of a run (`trainers.callbacks`; the same objects serve both
    `fit` calls) and its `Summaries`, to close at the end."""
    import tensorflow as tf
    from svae_tf import data
    from trainers import callbacks

    n_grid = min(FLAGS.num_grid_images, inputs.eval_count)
    with _stop_on_bad_data():
        grid_inputs = next(iter(data.load_images(
            inputs.dataset, inputs.eval_split, batch_size=n_grid, data_dir=FLAGS.data_dir,
            take=n_grid, image_size=inputs.image_size, cache=False)))
    # Fixed noise (stateless, so the model's own noise stream is untouched by the grids).
    grid_noise = {
        "z": tf.random.stateless_normal((FLAGS.num_grid_images, z_dim), seed=(FLAGS.seed, 1)),
        "eps": tf.random.stateless_normal((n_grid, z_dim), seed=(FLAGS.seed, 2)),
    }
    summaries = callbacks.Summaries(
        state, log_dir=os.path.join(write_dir, LOG_SUBDIR), log_every=FLAGS.log_every_steps,
        model_dir=model_dir, write_images=is_chief, grid_inputs=grid_inputs, grid_noise=grid_noise)
    checkpointer = callbacks.Checkpointer(
        state, manager, every=FLAGS.checkpoint_every_steps, model_dir=model_dir,
        summaries=summaries, is_chief=is_chief,
        say=lambda message: _say(message, after_progress_bar=True))
    population = []
    if FLAGS.batch_norm_batches:  # the first batches of the images training reads (--take)
        population = [callbacks.BatchNormPopulation(data.batch_norm_batches(
            inputs.dataset, FLAGS.batch_norm_batches, batch_size=inputs.batch_size, data_dir=FLAGS.data_dir,
            limit=FLAGS.take, image_size=inputs.image_size), seed=FLAGS.seed)]
    # Order matters: the guard raises before the counter, summaries or a save see a NaN;
    # the grids and the checkpoint see the recomputed statistics.
    return [callbacks.NonFiniteGuard(state, model_dir), callbacks.StepCounter(state), *population,
            summaries, checkpointer], summaries


def _fit(model, state, inputs, model_dir, **fit_kwargs):
    """Train from `state` to --epochs on the stream from the state's data position: the
    rest of an interrupted epoch in a first `fit`, the remaining epochs in a second."""
    with _stop_on_bad_data():
        if state.epoch >= FLAGS.epochs:
            _say(f"Nothing to do: the run in {model_dir} has finished {state.epoch} epochs "
                 f"(--epochs={FLAGS.epochs}).")
            return
        if state.step_in_epoch > 0:  # finish the interrupted epoch
            model.fit(inputs.stream(state.data_position), initial_epoch=state.epoch,
                      epochs=state.epoch + 1, steps_per_epoch=inputs.steps_per_epoch - state.step_in_epoch,
                      **fit_kwargs)
        if state.epoch < FLAGS.epochs:
            model.fit(inputs.stream(state.data_position), initial_epoch=state.epoch,
                      epochs=FLAGS.epochs, steps_per_epoch=inputs.steps_per_epoch, **fit_kwargs)


def _finished(model, state, model_dir, seconds):
    """Report the end of the run; its summary (the return value of `run`)."""
    checksum = weights_checksum(model.weights)
    step = int(model.g_optimizer.iterations.numpy())
    _say(f"Finished: epoch {state.epoch}, data position {state.data_position}, optimizer step {step}, "
         f"{seconds:.1f} s of training; weights sha256 {checksum}")
    return dict(model_dir=model_dir, epoch=state.epoch, data_position=state.data_position,
                optimizer_step=step, weights_sha256=checksum, checkpoint=state.last_saved)


def run(dataset, preset_name, trainer="mnist"):
    """Train the preset `preset_name` on `dataset` (the trainer's defaults, which --preset
    and --dataset override) as the flags say. Returns a dict summary of the run.

    Raises NonFiniteError when the loss or the weights become non-finite, RunError when
    the run cannot go on, app.UsageError for flags that do not fit the data or the run
    already in model_dir."""
    _configure_devices()  # before TensorFlow initialises its runtime
    preset_name = FLAGS.preset or preset_name
    config = _model_config(preset_name)
    arch = presets.get_preset(preset_name, **config.preset_overrides)
    inputs = _resolve_data(FLAGS.dataset or dataset, arch, preset_name)
    model_dir = FLAGS.model_dir or os.path.join(RUNS_DIR, f"{trainer}_{FLAGS.variant}")

    strategy, is_chief, where = _make_strategy()
    replicas = strategy.num_replicas_in_sync
    if inputs.batch_size % replicas:
        raise app.UsageError(f"--batch_size={inputs.batch_size} is not divisible by the {replicas} replicas.")
    # Non-chief workers write checkpoints and logs to a temporary directory (TF docs).
    write_dir = model_dir if is_chief else tempfile.mkdtemp(prefix="svae_worker_")
    _record_run(model_dir, config, inputs, is_chief)
    _say(f"svae-tf {trainer}: {FLAGS.variant} on {inputs.dataset} ({where}), model_dir={model_dir}, "
         f"{inputs.steps_per_epoch} steps/epoch of batch {inputs.batch_size}, {inputs.eval_steps} "
         "held-out batches" + (" (a folder has one split: the 'held-out' ELBO is on its first images)"
                               if inputs.is_folder else ""))

    model = _build_model(config, strategy)
    state, manager = _restore(model, write_dir, model_dir, inputs.steps_per_epoch)
    validation = _validation_data(inputs)
    callbacks, summaries = _make_callbacks(state=state, manager=manager, inputs=inputs, z_dim=arch.z_dim,
                                           write_dir=write_dir, model_dir=model_dir, is_chief=is_chief)
    start_time = time.time()
    try:
        _fit(model, state, inputs, model_dir, callbacks=callbacks, shuffle=False,
             verbose=FLAGS.verbose if is_chief else 0, validation_data=validation,
             validation_steps=inputs.eval_steps or None)
    finally:
        summaries.close()
        if not is_chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    return _finished(model, state, model_dir, time.time() - start_time)


def main(argv, trainer):
    """absl main of the trainer `trainer` ("mnist", "cifar", "imagenet")."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:  # TFDS and TF log much at INFO
        logging.set_verbosity(logging.WARNING)
    tf_logs.configure(FLAGS.tf_log_level)  # before TensorFlow is imported
    defaults = TRAINERS[trainer]
    try:
        run(defaults["dataset"], defaults["preset"], trainer)
    except app.UsageError as err:  # like absl's flag errors, without the whole --help
        print(f"FATAL Flags error: {err}\nPass --helpshort or --helpfull to see help on flags.",
              file=sys.stderr, flush=True)
        sys.exit(1)
    except (NonFiniteError, RunError) as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    except FileNotFoundError as err:  # data.DatasetNotFoundError and friends
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


def run_trainer(trainer):
    """Entry point of `python -m trainers.<trainer>`."""
    set_trainer_defaults(trainer)
    app.run(lambda argv: main(argv, trainer))
