"""The one training program: `train(model_config, train_config)`.

    from svae_tf.model.config import ModelConfig, TrainConfig
    from trainers import train_lib
    train_lib.train(ModelConfig(variant="svae", preset="mnist"),
                    TrainConfig(dataset="mnist", epochs=1, model_dir="runs/try"))

It reads no flags: the command line (`python -m trainers.mnist|cifar|imagenet`, whose flags
are derived from the configs in `trainers.command`) parses into the two configs and calls it,
and so do the screens (`benchmarks.mode_collapse`). What it does:

* the distribution strategy (`default`, `mirrored`, `multi_worker`, `tpu`) and mixed
  precision; the model and both optimizers are built and compiled in `strategy.scope()`;
* `model.fit` (Keras progress bar) on a deterministic, seeded `tf.data` stream, with the
  held-out ELBO as `validation_data`;
* the callbacks (`trainers.callbacks`): non-finite guard, TensorBoard scalars and images,
  PNG grids, checkpoints; they advance a `trainers.run_state.RunState`.

`train` reads as the program's steps: resolve and check the data (`_resolve_data`), the
strategy, record the run (`_record_run`), build the model (`_build_model`), restore the
newest checkpoint (`_restore`), then fit with resume (`_fit`).

Outputs in `model_dir` (user documentation: README.md "Training", BUILD.md "Distributed"):
`config.json` (`runs.save_config`), `flags.txt` / `flags.json` (the settings used, as
flags; the ones the variant does not read are left out, `svae_tf.model.config.unused_fields`),
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

Settings that do not fit the data or the run already in `model_dir` raise `ConfigError`
naming the setting. Other failures stop the run with one line naming the file or tensor
(`RunError`, exit status 1): bad input data (an undecodable folder image, NaN/Inf in float examples; checked
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
import tempfile
import time

from absl import logging

from svae_tf.model import config as config_lib  # no TensorFlow import
from trainers.run_state import COUNTERS, ConfigError, NonFiniteError, RunError, RunState  # noqa: F401

RUNS_DIR = "runs"  # default parent of model_dir (created on demand)
FLAGS_TXT = "flags.txt"
FLAGS_JSON = "flags.json"
LOG_SUBDIR = "logs"
# Settings that define the training stream; a resumed run must not change them.
_STREAM_FIELDS = ("dataset", "batch_size", "seed", "take", "image_size")


def weights_checksum(variables):
    """sha256 of the values of `variables` (in order): equal weights, equal checksum."""
    digest = hashlib.sha256()
    for v in variables:
        digest.update(v.path.encode() if hasattr(v, "path") else b"")
        digest.update(v.numpy().tobytes())
    return digest.hexdigest()


def _say(message, *, newline=False):
    """User-facing progress messages (stdout; absl INFO logging is off by default).
    `newline`: called during `fit`, where Keras' progress bar (verbose=1) leaves the
    cursor at the end of its line; start a new one."""
    print(f"{chr(10) if newline else ''}[svae-tf] {message}", flush=True)


@contextlib.contextmanager
def _stop_on_bad_data():
    """Turns the input pipeline's data checks (an undecodable image file, NaN/Inf in
    the data; raised inside tf.data, so from `model.fit` too) into a RunError."""
    import tensorflow as tf
    from svae_tf.data import pipelines as data

    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        bad = data.data_error(err)
        if bad is None:
            raise
        raise RunError(f"Bad input data: {bad} Training stopped before any step used it; "
                       "checkpoints written so far are kept.") from None


# ----------------------------------------------------------------------------- strategy
def _configure_devices(logical_cpus):
    """Split the CPU into `logical_cpus` devices (0: leave it), before TensorFlow starts."""
    import tensorflow as tf

    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus
        )


def _make_strategy(name, tpu=""):
    """(strategy, is_chief, task description) for the strategy `name` (`TrainConfig.strategy`)."""
    import tensorflow as tf

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
            raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable (see BUILD.md).")
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
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    except ValueError as err:
        raise ConfigError(
            f"--strategy=tpu: no TPU found ({err}); pass --tpu=local on a TPU VM, "
            "or --tpu=NAME / grpc://ADDRESS."
        ) from err
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
    return strategy, True, f"TPU with {strategy.num_replicas_in_sync} cores"


# ----------------------------------------------------------------------------- the program
def _check_resume_compatible(model_dir, config, values):
    """A model_dir with a run in it must be resumed with the same model and data stream
    (`values`: this run's resolved settings, by flag name)."""
    import tensorflow as tf
    from svae_tf import runs

    if not tf.io.gfile.exists(os.path.join(model_dir, runs.CONFIG_FILE)):
        return
    old = runs.load_config(model_dir)
    if old != config:
        a, b = dataclasses.asdict(old), dataclasses.asdict(config)
        diff = ", ".join(f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k])
        raise ConfigError(
            f"--model_dir={model_dir} holds a run with another model config ({diff}). "
            "Resume it with the same flags, or use a new --model_dir."
        )
    path = os.path.join(model_dir, FLAGS_JSON)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            old_flags = json.load(f)
        for name in _STREAM_FIELDS:
            if name in old_flags and old_flags[name] != values[name]:
                raise ConfigError(
                    f"--{name}={values[name]} differs from the run in --model_dir={model_dir} "
                    f"(--{name}={old_flags[name]}), which would change its data stream on resume. "
                    "Use the run's value or a new --model_dir."
                )


@dataclasses.dataclass(frozen=True)
class _RunData:
    """The data of a run, resolved from its TrainConfig by `_resolve_data`."""

    dataset: str
    train_split: str  # "train", or data.TRAIN_WITHOUT_VALIDATION with holdout "validation"
    data_dir: str | None
    seed: int  # of the data order
    take: int | None
    image_size: int | None  # resize to this square size (folders); None: native size
    batch_size: int  # global
    eval_split: str  # the holdout ("test" or "validation"); "train" for a folder, which has one split
    eval_count: int  # held-out examples (after --take)
    steps_per_epoch: int
    eval_steps: int  # held-out batches each epoch; 0: no validation
    cache: bool
    nan_from_step: int | None  # (testing) TrainConfig.debug_inject_nan_at_step
    single_split: bool  # the dataset has one split (a folder): "held-out" batches are training images

    def stream(self, start):
        """The training stream from batch `start` on (`data.training_stream`), its images
        NaN from step `nan_from_step` on when that is set."""
        from svae_tf.data import pipelines as data

        ds = data.training_stream(
            self.dataset, split=self.train_split, batch_size=self.batch_size, seed=self.seed, start=start,
            data_dir=self.data_dir, take=self.take, image_size=self.image_size, cache=self.cache)
        return ds if self.nan_from_step is None else _nan_from_step(ds, start, self.nan_from_step)


def _nan_from_step(ds, start, step):
    """(testing: --debug_inject_nan_at_step) The batches of the stream `ds`, which starts at
    batch `start`, with the images of optimizer steps >= `step` replaced by NaN."""
    import tensorflow as tf

    def poison(i, images):  # batch i (0-based) is trained on at step i + 1
        return tf.where(i + 1 >= step, images * float("nan"), images)

    return ds.enumerate(start=start).map(poison).prefetch(tf.data.AUTOTUNE)


def _resolve_data(tc, arch, preset_name, seed):
    """The `_RunData` of the TrainConfig `tc`, checked before any heavy work: its images
    must have the shape of the architecture `arch` (ConfigError), its training split must
    hold a batch (ConfigError); data.DatasetNotFoundError if it is missing."""
    from svae_tf.data import pipelines as data, datasets

    dataset = tc.dataset
    try:
        spec = datasets.get(dataset)
        image_size = arch.image_shape[0] if tc.image_size is None and spec.shape is None else tc.image_size
        shape = data.image_shape(dataset, image_size=image_size)
    except ValueError as err:
        raise ConfigError(f"--dataset={dataset}: {err}") from err
    if tuple(shape) != tuple(arch.image_shape):
        raise ConfigError(
            f"--dataset={dataset} gives images of shape {shape}, but the {preset_name} architecture "
            f"needs {arch.image_shape}" + (" (set --image_size)" if image_size else "")
        )
    if spec.single_split and tc.holdout != "test":
        raise ConfigError(f"--holdout={tc.holdout}: a folder dataset has one split (--dataset={dataset}).")
    train_split = data.TRAIN_WITHOUT_VALIDATION if tc.holdout == "validation" else "train"
    try:
        train_count = data.num_examples(dataset, train_split, tc.data_dir)  # DatasetNotFoundError
        eval_count = train_count if spec.single_split else data.num_examples(dataset, tc.holdout, tc.data_dir)
    except ValueError as err:  # no validation split for this dataset
        raise ConfigError(f"--holdout={tc.holdout}: {err}") from err
    if tc.take:
        train_count, eval_count = min(train_count, tc.take), min(eval_count, tc.take)
    if train_count < tc.batch_size:
        raise ConfigError(
            f"--batch_size={tc.batch_size} is larger than the {train_count} training examples"
            + (f" (--take={tc.take})" if tc.take else "")
        )
    eval_steps = eval_count // tc.batch_size
    if tc.eval_batches is not None:
        eval_steps = min(eval_steps, tc.eval_batches)
    return _RunData(
        dataset=dataset, train_split=train_split, data_dir=tc.data_dir, seed=seed, take=tc.take,
        image_size=image_size, batch_size=tc.batch_size, eval_split="train" if spec.single_split else tc.holdout,
        eval_count=eval_count,
        steps_per_epoch=tc.steps_per_epoch or train_count // tc.batch_size, eval_steps=eval_steps,
        cache=tc.cache if tc.cache is not None else spec.cache,
        nan_from_step=tc.debug_inject_nan_at_step, single_split=spec.single_split,
    )


def run_settings(config, tc, inputs):
    """{flag name: value} of the run's settings as it resolved them (config.json's model,
    the preset overrides, the TrainConfig), without those its variant does not read."""
    arch = {f.name: config.preset_overrides.get(f.name)
            for f in config_lib.flag_fields(config_lib.ArchitectureOverrides)}
    values = {**dataclasses.asdict(config), **arch, **dataclasses.asdict(tc)}
    del values["preset_overrides"]
    values.update(dataset=inputs.dataset, image_size=inputs.image_size, batch_size=inputs.batch_size,
                  steps_per_epoch=inputs.steps_per_epoch)
    unused = {**config_lib.unused_fields(config_lib.ModelConfig, config.variant),
              **config_lib.unused_fields(config_lib.ArchitectureOverrides, config.variant),
              **tc.unused(config.variant)}
    return {k: v for k, v in values.items() if k not in unused}


def _record_run(config, tc, inputs, is_chief, ignored):
    """On the chief, check that a run already in `model_dir` is resumed with the same model
    and data stream, then write config.json, flags.json (with `ignored`, the settings given
    that the variant does not read, under "unused_flags") and flags.txt."""
    import tensorflow as tf
    from svae_tf import runs

    if not is_chief:
        return
    values = run_settings(config, tc, inputs)
    _check_resume_compatible(tc.model_dir, config, values)
    tf.io.gfile.makedirs(tc.model_dir)
    runs.save_config(tc.model_dir, config)
    record = dict(values, unused_flags=dict(ignored or {}))
    runs.atomic_write(os.path.join(tc.model_dir, FLAGS_JSON), json.dumps(record, indent=2, sort_keys=True))
    runs.atomic_write(
        os.path.join(tc.model_dir, FLAGS_TXT),
        "".join(f"--{k}={v}\n" for k, v in sorted(values.items()) if v is not None),
    )


def _build_model(config, tc, strategy):
    """The model of `config` with its two Adam optimizers (TrainConfig `tc`), built and
    compiled in `strategy.scope()` under the mixed-precision policy, with Keras seeded by
    the config's seed."""
    import keras
    from svae_tf import runs

    if tc.mixed_precision != "none":
        keras.mixed_precision.set_dtype_policy(tc.mixed_precision)
    keras.utils.set_random_seed(config.seed)

    def adam(lr, name):
        opt = keras.optimizers.Adam(lr, beta_1=tc.beta1, beta_2=tc.beta2, name=name)
        if tc.mixed_precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
        return opt

    with strategy.scope():
        model = runs.build_model(config)
        d_opt = adam(tc.d_learning_rate, "d_adam") if model.discriminator is not None else None
        # Metrics of shape [1] under multi_worker: see SymmetricVAE.compile.
        model.compile(g_optimizer=adam(tc.g_learning_rate, "g_adam"), d_optimizer=d_opt,
                      jit_compile=tc.jit_compile, rank1_metrics=tc.strategy == "multi_worker")
    return model


def _restore(model, write_dir, model_dir, steps_per_epoch, keep):
    """(RunState, checkpoint manager writing to `write_dir`, keeping `keep`). The model, its
    optimizers and the state are restored from the newest readable checkpoint in
    `model_dir`; damaged newer ones are reported and skipped (RunError when none can be read)."""
    import tensorflow as tf
    from svae_tf import runs

    counters = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name) for name in COUNTERS}
    ckpt = runs.make_checkpoint(model, **counters)
    manager = runs.checkpoint_manager(ckpt, write_dir, max_to_keep=keep)
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
    if state.step_in_epoch >= steps_per_epoch:  # steps_per_epoch was lowered
        state.epoch, state.step_in_epoch = state.epoch + 1, 0
    return state, manager


def _validation_data(inputs):
    """The held-out batches of the validation ELBO, or None (eval_batches=0, or fewer
    held-out examples than a batch)."""
    from svae_tf.data import pipelines as data

    if inputs.eval_steps == 0:
        logging.warning("No held-out ELBO: %d held-out examples, batch size %d, %d held-out batches.",
                        inputs.eval_count, inputs.batch_size, inputs.eval_steps)
        return None
    # Exactly the images of the eval_steps batches Keras reads each epoch: the cache is
    # then filled by the first pass and reused, where a partly read cache would be
    # dropped (with a tf.data warning) and decoded again every epoch.
    return data.load_images(inputs.dataset, inputs.eval_split, batch_size=inputs.batch_size,
                            data_dir=inputs.data_dir, drop_remainder=True,
                            take=inputs.eval_steps * inputs.batch_size,
                            image_size=inputs.image_size, cache=inputs.cache)


def _make_callbacks(tc, *, state, manager, inputs, z_dim, write_dir, is_chief):
    """The Keras callbacks of a run (`trainers.callbacks`; the same objects serve both
    `fit` calls) and its `Summaries`, to close at the end."""
    import tensorflow as tf
    from svae_tf.data import pipelines as data
    from trainers import callbacks

    seed, model_dir = inputs.seed, tc.model_dir
    n_grid = min(tc.num_grid_images, inputs.eval_count)
    with _stop_on_bad_data():
        grid_inputs = next(iter(data.load_images(
            inputs.dataset, inputs.eval_split, batch_size=n_grid, data_dir=inputs.data_dir,
            take=n_grid, image_size=inputs.image_size, cache=False)))
    # Fixed noise (stateless, so the model's own noise stream is untouched by the grids).
    grid_noise = {
        "z": tf.random.stateless_normal((tc.num_grid_images, z_dim), seed=(seed, 1)),
        "eps": tf.random.stateless_normal((n_grid, z_dim), seed=(seed, 2)),
    }
    summaries = callbacks.Summaries(
        state, log_dir=os.path.join(write_dir, LOG_SUBDIR), log_every=tc.log_every_steps,
        model_dir=model_dir, write_images=is_chief, grid_inputs=grid_inputs, grid_noise=grid_noise)
    checkpointer = callbacks.Checkpointer(
        state, manager, every=tc.checkpoint_every_steps, model_dir=model_dir,
        summaries=summaries, is_chief=is_chief,
        say=lambda message: _say(message, newline=tc.verbose == 1))
    population = []
    if tc.batch_norm_batches:  # the first batches of the images training reads (take)
        population = [callbacks.BatchNormPopulation(data.batch_norm_batches(
            inputs.dataset, tc.batch_norm_batches, batch_size=inputs.batch_size, data_dir=inputs.data_dir,
            limit=inputs.take, image_size=inputs.image_size), seed=seed)]
    # Order matters: the guard raises before the counter, summaries or a save see a NaN;
    # the grids and the checkpoint see the recomputed statistics.
    return [callbacks.NonFiniteGuard(state, model_dir), callbacks.StepCounter(state), *population,
            summaries, checkpointer], summaries


def _fit(model, state, inputs, model_dir, epochs, **fit_kwargs):
    """Train from `state` to `epochs` on the stream from the state's data position: the
    rest of an interrupted epoch in a first `fit`, the remaining epochs in a second."""
    with _stop_on_bad_data():
        if state.epoch >= epochs:
            _say(f"Nothing to do: the run in {model_dir} has finished {state.epoch} epochs "
                 f"(--epochs={epochs}).")
            return
        if state.step_in_epoch > 0:  # finish the interrupted epoch
            model.fit(inputs.stream(state.data_position), initial_epoch=state.epoch,
                      epochs=state.epoch + 1, steps_per_epoch=inputs.steps_per_epoch - state.step_in_epoch,
                      **fit_kwargs)
        if state.epoch < epochs:
            model.fit(inputs.stream(state.data_position), initial_epoch=state.epoch,
                      epochs=epochs, steps_per_epoch=inputs.steps_per_epoch, **fit_kwargs)


def _finished(model, state, model_dir, seconds):
    """Report the end of the run; its summary (the return value of `train`)."""
    checksum = weights_checksum(model.weights)
    step = int(model.g_optimizer.iterations.numpy())
    _say(f"Finished: epoch {state.epoch}, data position {state.data_position}, optimizer step {step}, "
         f"{seconds:.1f} s of training; weights sha256 {checksum}")
    return dict(model_dir=model_dir, epoch=state.epoch, data_position=state.data_position,
                optimizer_step=step, weights_sha256=checksum, checkpoint=state.last_saved, model=model)


def default_model_dir(name, variant):
    """runs/<name>_<variant>: where a run goes when no model_dir is given."""
    return os.path.join(RUNS_DIR, f"{name}_{variant}")


def train(config, tc, *, ignored=None, callbacks=()):
    """Train the model of the ModelConfig `config` as the TrainConfig `tc` says, resuming the
    run in `tc.model_dir` if there is one (default: runs/<dataset>_<variant>). `ignored`:
    {name: value} of settings given that the variant does not read, recorded in flags.json.
    `callbacks`: more Keras callbacks, run after the trainer's own at every step and epoch
    end (screens record their probes so, `benchmarks.mode_collapse`).

    Returns a dict: model_dir, epoch, data_position, optimizer_step, weights_sha256,
    checkpoint (the newest written) and the trained `model`. Raises NonFiniteError when the
    loss or the weights become non-finite, RunError when the run cannot go on, ConfigError for
    settings that do not fit the data or the run already in model_dir."""
    _configure_devices(tc.logical_cpus)  # before TensorFlow initialises its runtime
    config = config.without_unused()
    if tc.model_dir is None:
        tc = tc.replace(model_dir=default_model_dir(tc.dataset.split(":")[0], config.variant))
    arch = config.get_preset()
    inputs = _resolve_data(tc, arch, config.preset, config.seed)
    model_dir = tc.model_dir

    strategy, is_chief, where = _make_strategy(tc.strategy, tc.tpu)
    replicas = strategy.num_replicas_in_sync
    if inputs.batch_size % replicas:
        raise ConfigError(f"--batch_size={inputs.batch_size} is not divisible by the {replicas} replicas.")
    # Non-chief workers write checkpoints and logs to a temporary directory (TF docs).
    write_dir = model_dir if is_chief else tempfile.mkdtemp(prefix="svae_worker_")
    _record_run(config, tc, inputs, is_chief, ignored)
    _say(f"svae-tf: {config.variant} on {inputs.dataset} ({where}), model_dir={model_dir}, "
         f"{inputs.steps_per_epoch} steps/epoch of batch {inputs.batch_size}, {inputs.eval_steps} "
         "held-out batches" + (" (a folder has one split: the 'held-out' ELBO is on its first images)"
                               if inputs.single_split else ""))

    model = _build_model(config, tc, strategy)
    state, manager = _restore(model, write_dir, model_dir, inputs.steps_per_epoch, tc.keep_checkpoints)
    validation = _validation_data(inputs)
    own, summaries = _make_callbacks(tc, state=state, manager=manager, inputs=inputs, z_dim=arch.z_dim,
                                     write_dir=write_dir, is_chief=is_chief)
    start_time = time.time()
    try:
        _fit(model, state, inputs, model_dir, tc.epochs, callbacks=[*own, *callbacks], shuffle=False,
             verbose=tc.verbose if is_chief else 0, validation_data=validation,
             validation_steps=inputs.eval_steps or None)
    finally:
        summaries.close()
        if not is_chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    return _finished(model, state, model_dir, time.time() - start_time)
