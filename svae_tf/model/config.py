"""Every hyper-parameter, declared once: name, type, default, bounds, help, and which
variants it applies to. No TensorFlow import.

Three frozen dataclasses:

* `ModelConfig` -- what defines the model's variables and its objective; a run's
  `config.json`. Its fields other than `preset` and `preset_overrides` are
  `SymmetricVAE`'s keyword arguments (`model_kwargs`) and its `get_config`.
* `ArchitectureOverrides` -- changes to the preset's latent size and flow
  (`--z_dim`, `--flow`, `--flow_depth`), resolved into `ModelConfig.preset_overrides`.
* `TrainConfig` -- how a run trains: data, batch, steps, optimizers, outputs, devices.

The command line is derived from these (`svae_tf.cli.define_flags` / `from_flags`): one
flag per field, with the field's name, default, bounds and help. A field's `applies`
names the rows of the variants table (`svae_tf.model.variants`) that read it; for other
variants the field keeps its default, stays out of `config.json`'s differences and is
reported as unused (`unused_fields`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

from svae_tf.model import presets, variants

# applies= name -> (test on a variants.Variant row, what the rows that pass are).
APPLIES = {
    "lambda": (lambda row: row.uses_lam, "the sVAE-r rows"),
    "discriminator": (lambda row: row.discriminator is not None, "the rows with a discriminator"),
    "critic": (lambda row: row.critic, "the rows with an IPM critic"),
    "encoder": (lambda row: row.encoder, "the rows with an encoder"),
}
FLOW_KINDS = ("none", "coupling", "maf", "iaf")  # svae_tf.model.flows
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# The x of eq. (29)'s latent term and the decoder's gradient through it (distributions.latent_term).
LATENT_X = ("mean", "draw", "straight_through", "score_function")
# The held-out split of a run: "test", or "validation" (datasets.DatasetSpec.validation_split;
# training then reads the training set without it).
HOLDOUTS = ("test", "validation")
PRECISIONS = ("none", "mixed_bfloat16", "mixed_float16")


def hparam(default, help, *, kind=None, lower=None, upper=None, positive=False, choices=None,
           applies=None):
    """A dataclass field with its flag metadata.

    kind: "float", "int", "bool", "str" or "enum" (with `choices`: a tuple, or a callable
    returning one when the choices are registered at run time); default: from `default`.
    lower / upper: inclusive bounds, checked by the config and the flag; positive: > 0.
    applies: a key of APPLIES, or None for every variant.
    """
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(default)]
    if applies is not None and applies not in APPLIES:
        raise ValueError(f"applies={applies!r}: expected one of {tuple(APPLIES)}")
    metadata = dict(help=help, kind=kind, lower=lower, upper=upper, positive=positive, choices=choices,
                    applies=applies)
    return dataclasses.field(default=default, metadata=metadata)


def _choices(field):
    choices = field.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


def check_field(field, value):
    """ValueError naming the field when `value` is out of its bounds or choices."""
    if value is None:
        return
    md = field.metadata
    if md.get("lower") is not None and value < md["lower"]:
        raise ValueError(f"{field.name} must be >= {md['lower']}, got {value}.")
    if md.get("positive") and not value > 0:
        raise ValueError(f"{field.name} must be > 0, got {value}.")
    if md.get("upper") is not None and value > md["upper"]:
        raise ValueError(f"{field.name} must be <= {md['upper']}, got {value}.")
    choices = _choices(field)
    if choices is not None and value not in choices:
        raise ValueError(f"Unknown {field.name} {value!r}; expected one of {choices}.")


class _Checked:
    """Checks every field against its metadata after construction."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if "help" in field.metadata:
                check_field(field, getattr(self, field.name))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# Hyper-parameters that were removed (no flagfile used them and their screens found no
# benefit; docs/experiments.md), with the value that means "off": a config written before
# their removal loads when it holds that value, and stops with a clear error otherwise.
REMOVED = {"instance_noise": 0.0, "instance_noise_steps": None}


def without_removed(values):
    """`values` (a config dict) without the REMOVED keys; ValueError if one was in use."""
    out = dict(values)
    for name, off in REMOVED.items():
        value = out.pop(name, off)
        if off is not None and value != off:
            raise ValueError(f"{name}={value!r}: this setting was removed from svae-tf; the run needs "
                             "an older version (git history) to be rebuilt.")
    return out


def flag_fields(cls):
    """The fields of `cls` that are hyper-parameters (carry help)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def unused_fields(cls, variant):
    """{field name: why} of the fields of `cls` that `variant` (a name) does not read."""
    row = variants.get(variant)
    out = {}
    for field in flag_fields(cls):
        applies = field.metadata.get("applies")
        if applies is not None and not APPLIES[applies][0](row):
            readers = "|".join(n for n in variants.names() if APPLIES[applies][0](variants.get(n)))
            out[field.name] = (f"it is read by {APPLIES[applies][1]} (--variant={readers}) only, "
                               f"not --variant={variant}")
    return out


@dataclasses.dataclass(frozen=True)
class ModelHparams(_Checked):
    """`SymmetricVAE`'s hyper-parameters (its keyword arguments and `get_config`)."""

    variant: str = hparam("svae_r", "Model/objective, a row of svae_tf.model.variants: vae, svae, svae_r (eq. 29), "
                          "svae_r_elbo (sVAE-r with the encoder side exact, eq. 28), svae_r_lx (sVAE-r with "
                          "lambda on the whole bound L_x), ali, gan, wgan_gp, or a row added with "
                          "variants.register.", kind="enum", choices=variants.names)
    lam: float = hparam(0.3, "lambda of sVAE-r, eq. (29) (paper: 0.3).", lower=0.0, applies="lambda")
    lam_z: Optional[float] = hparam(
        None, "Weight of eq. (29)'s latent term E_p log q(z|x) alone; default: --lam (the paper's). "
        "Its x: --latent_x. 0 leaves only lam E_q log p(x|z).", kind="float", lower=0.0, applies="lambda")
    latent_x: str = hparam(
        "mean", "x of eq. (29)'s latent term log q(z_p|x) and the decoder's gradient through it: mean (the "
        "decoder mean x_p), or x ~ p(x|z_p) as eq. (29) writes it: draw (no gradient to the decoder through "
        "the term; the encoder alone learns from it, as in wake-sleep's sleep phase), straight_through, or "
        "score_function (REINFORCE with the term at the mean as baseline, unbiased). The discriminator sees "
        "the decoder mean whichever is chosen.", kind="enum", choices=LATENT_X, applies="lambda")
    n_disc: int = hparam(1, "Discriminator updates per encoder/decoder update.", lower=1,
                         applies="discriminator")
    gradient_penalty_weight: float = hparam(10.0, "WGAN-GP penalty weight.", lower=0.0, applies="critic")
    discriminator_dropout: Optional[float] = hparam(
        None, "Overrides the preset's discriminator dropout rates.", kind="float", lower=0.0, upper=0.99,
        applies="discriminator")
    seed: int = hparam(0, "Seed of the initial weights, the model's noise (its SeedGenerators start "
                       "from it) and the data order.")
    r1_weight: float = hparam(
        0.0, "gamma of the R1 penalty (gamma/2 ||grad_{x,z} f||^2 at data pairs (x, z_q); x alone for "
        "gan) on the discriminator; zero-centred at the data, so f still estimates eq. (11); 0: off.",
        lower=0.0, applies="discriminator")
    ema_decay: float = hparam(
        0.0, "Decay of a moving average of the encoder/flow/decoder weights (svae_tf.model.ema), which "
        "evaluation, export and sampling then use; 0: off.", lower=0.0, upper=0.999999)
    shared_samples: bool = hparam(
        False, "The discriminator's (last) update and the encoder/decoder update of a step read one "
        "draw of both joints, decoded once, the discriminator updated before f is read; faster per "
        "step.", applies="discriminator")

    @classmethod
    def names(cls):
        return tuple(f.name for f in dataclasses.fields(ModelHparams))


@dataclasses.dataclass(frozen=True)
class ModelConfig(ModelHparams):
    """Everything that defines the model's variables and its training objective."""

    preset: str = hparam("mnist", "Network architecture (svae_tf.model.presets): mnist, cifar10, imagenet64 "
                         "(the paper's Appendix A networks with the fixes that keep the adversarial "
                         "variants from collapsing), mnist_a1, cifar10_a2, imagenet64_a3 (Appendix A "
                         "exactly).", kind="enum", choices=tuple(presets.PRESETS))
    preset_overrides: dict = dataclasses.field(default_factory=dict)  # e.g. {"z_dim": 32}

    def model_kwargs(self):
        """`SymmetricVAE`'s keyword arguments (all but the preset)."""
        return {name: getattr(self, name) for name in ModelHparams.names()}

    def get_preset(self):
        return presets.get_preset(self.preset, **self.preset_overrides)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**without_removed(json.loads(text)))  # fields added later take their defaults

    def without_unused(self):
        """This config with the fields its variant does not read at their defaults, so that
        they neither reach config.json nor stop a resume."""
        defaults = {f.name: f.default for f in flag_fields(type(self))}
        return self.replace(**{name: defaults[name] for name in unused_fields(type(self), self.variant)})


@dataclasses.dataclass(frozen=True)
class ArchitectureOverrides(_Checked):
    """Changes to the preset's latent space and flow."""

    z_dim: Optional[int] = hparam(None, "Latent size; default: the preset's (MNIST 64, CIFAR 100, "
                                  "ImageNet 2048).", kind="int", lower=1)
    flow: Optional[str] = hparam(None, "Normalizing flow on q(z|x); default: the preset's (MNIST coupling, "
                                 "others none).", kind="enum", choices=FLOW_KINDS, applies="encoder")
    flow_depth: Optional[int] = hparam(None, "Flow layers; default: the preset's, or 4 when --flow turns a "
                                       "flow on.", kind="int", lower=0, applies="encoder")

    def resolve(self, preset_name, variant):
        """`preset_overrides` of `preset_name` (only what differs from the preset). ValueError
        for a flow of depth 0."""
        preset = presets.get_preset(preset_name)
        overrides = {}
        if self.z_dim is not None and self.z_dim != preset.z_dim:
            overrides["z_dim"] = self.z_dim
        if not variants.get(variant).encoder:
            return overrides
        flow = self.flow if self.flow is not None else preset.flow
        if flow == "none":
            depth = 0
        elif self.flow_depth is not None:
            depth = self.flow_depth
        else:
            depth = preset.flow_depth if preset.flow_depth > 0 else 4
        if flow != "none" and depth == 0:
            raise ValueError(f"flow_depth=0 with flow={flow}: give a depth >= 1 or flow=none.")
        if flow != preset.flow:
            overrides["flow"] = flow
        if depth != preset.flow_depth:
            overrides["flow_depth"] = depth
        return overrides


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Checked):
    """How a run trains. The paper gives Adam 1e-4 and lambda 0.3 but no batch sizes or
    epoch counts; those are ours (and the trainers' own defaults, `trainers.train_lib`)."""

    # Data.
    dataset: str = hparam("mnist", "Dataset: mnist, cifar10, imagenet64, one added with "
                          "svae_tf.data.datasets.register, or folder:/dir/of/images (needs --image_size for folders).")
    data_dir: Optional[str] = hparam(None, "TFDS data directory; default $TFDS_DATA_DIR, else "
                                     "~/tensorflow_datasets. Nothing is downloaded.", kind="str")
    holdout: str = hparam("test", "Held-out split of the per-epoch ELBO and the reconstruction grids: test "
                          "(training reads all of train), or validation (training reads train without the "
                          "validation split: MNIST train[:50000] / train[50000:]; the CIFAR-10 subset's last 200 "
                          "training images). Choose settings on validation; report on test.", kind="enum",
                          choices=HOLDOUTS)
    image_size: Optional[int] = hparam(None, "Resize images to this square size (folders); must match the "
                                       "preset's image size.", kind="int", lower=1)
    take: Optional[int] = hparam(None, "Use only the first N examples of each split (smoke runs, tests).",
                                 kind="int", lower=1)
    eval_batches: Optional[int] = hparam(None, "Held-out batches for the validation ELBO each epoch; "
                                         "default: the whole test split; 0: no validation.", kind="int",
                                         lower=0)
    cache: Optional[bool] = hparam(None, "Cache decoded images in memory; default: yes, except for "
                                   "imagenet64 (~15 GiB).", kind="bool")
    # Optimisation.
    batch_size: int = hparam(100, "Global batch size (split over replicas).", lower=1)
    epochs: int = hparam(50, "Number of epochs (of --steps_per_epoch steps).", lower=1)
    steps_per_epoch: Optional[int] = hparam(None, "Train steps per epoch; default: one pass over the "
                                            "training split (floor(N / batch_size)).", kind="int", lower=1)
    g_learning_rate: float = hparam(1e-4, "Adam learning rate of encoder/flow/decoder (paper: 1e-4).",
                                    positive=True)
    d_learning_rate: float = hparam(1e-4, "Adam learning rate of the discriminator (paper: 1e-4).",
                                    positive=True, applies="discriminator")
    beta1: float = hparam(0.9, "Adam beta_1 of both optimizers.", lower=0.0, upper=0.999999)
    beta2: float = hparam(0.999, "Adam beta_2 of both optimizers.", lower=0.0, upper=0.999999)
    # Outputs.
    model_dir: Optional[str] = hparam(None, "Run directory (config, flags, logs, PNG grids, checkpoints), "
                                      "created with its missing parents. Default: runs/<trainer>_<variant>.", kind="str")
    checkpoint_every_steps: int = hparam(500, "Also save a checkpoint every N steps (0: only at epoch "
                                         "ends).", lower=0)
    batch_norm_batches: int = hparam(
        100, "At every epoch end, before the checkpoint, replace batch norm's moving statistics by "
        "population statistics over the first N training batches, for the weights sampling uses "
        "(EMA's under --ema_decay), so that inference mode equals the trained networks; 0: keep "
        "Keras' moving averages.", lower=0)
    keep_checkpoints: int = hparam(3, "Checkpoints kept in model_dir/checkpoints.", lower=1)
    log_every_steps: int = hparam(50, "Write training scalars to TensorBoard every N steps.", lower=1)
    num_grid_images: int = hparam(64, "Images in the sample and reconstruction grids.", lower=1)
    verbose: int = hparam(1, "Keras fit verbosity: 1 progress bar, 2 one line per epoch, 0 silent.",
                          lower=0, upper=2)
    # Execution.
    strategy: str = hparam("default", "tf.distribute strategy: default (one device), mirrored (all local "
                           "GPUs, else all logical CPUs), multi_worker (from TF_CONFIG), tpu.", kind="enum",
                           choices=STRATEGIES)
    tpu: str = hparam("", "TPU name or grpc address for --strategy=tpu ('' or 'local' on a TPU VM).")
    jit_compile: bool = hparam(False, "Compile the train step with XLA (slower on CPU for these convnets).")
    mixed_precision: str = hparam("none", "Keras dtype policy; mixed_float16 wraps both optimizers in "
                                  "LossScaleOptimizer.", kind="enum", choices=PRECISIONS)
    logical_cpus: int = hparam(0, "(testing) Split the CPU into N logical devices before TensorFlow starts "
                               "(e.g. to test --strategy=mirrored on 2 CPUs).", lower=0)
    debug_inject_nan_at_step: Optional[int] = hparam(
        None, "(testing) Replace the training images by NaN from this global step on, to exercise the "
        "NaN policy.", kind="int", lower=0)

    def unused(self, variant):
        """{field: why} of the fields this run does not read (`unused_fields`, and --tpu
        off TPUs)."""
        out = unused_fields(TrainConfig, variant)
        if self.strategy != "tpu":
            out["tpu"] = f"it is read by --strategy=tpu only (this run: --strategy={self.strategy})"
        return out
