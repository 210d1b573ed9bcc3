"""Network architectures of the paper's experiments, as data (Appendix A).

A preset says *what* the encoder q(z|x), decoder p(x|z) and discriminator f(x, z)
are; `networks.py` turns it into Keras layers. Change a preset with
`dataclasses.replace(MNIST, z_dim=32)`; never by subclassing.

Conv layers of the encoder and decoder are followed by batch normalisation
(synchronised across replicas) and ReLU; discriminator convs by LeakyReLU and
optional dropout, and no batch normalisation.
"""

import dataclasses
import json
from typing import NamedTuple


class Conv(NamedTuple):
    filters: int
    kernel: int
    stride: int = 1
    dropout: float = 0.0  # discriminator only


class Dense(NamedTuple):
    units: int
    dropout: float = 0.0  # discriminator only


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    image_shape: tuple  # (H, W, C)
    z_dim: int
    likelihood: str  # see distributions.LIKELIHOODS
    # q(z|x): convs, flatten, dense layers, then Dense(2 z_dim) -> (mu, log sigma^2).
    encoder_convs: tuple
    encoder_dense: tuple
    # Normalizing flow after the Gaussian head (flows.FLOW_KINDS).
    flow: str = "none"
    flow_depth: int = 0
    flow_hidden: tuple = (256, 256)
    # p(x|z): dense layers, reshape to decoder_start, transposed convs, final conv.
    decoder_dense: tuple = ()
    decoder_start: tuple = ()  # (h, w, c)
    decoder_deconvs: tuple = ()
    decoder_out_kernel: int = 3
    # Batch norm (then ReLU) after each of the decoder's dense layers (A.1-A.3 have none).
    decoder_dense_batch_norm: bool = False
    # f(x, z): x branch convs, then "average" (global average pooling, as in A.1-A.3) or
    # "flatten" (keeps where features are); z branch dense; joint dense; 1 logit.
    disc_x_convs: tuple = ()
    disc_x_pooling: str = "average"
    disc_z_dense: tuple = ()
    disc_joint_dense: tuple = ()
    leaky_slope: float = 0.2

    @property
    def num_dims(self):
        h, w, c = self.image_shape
        return h * w * c

    def to_config(self):
        """A JSON-compatible dict of every field (layer specs as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_config(cls, config):
        """The preset of `to_config` (lists become tuples, layer specs Conv/Dense again)."""
        return cls(**{name: _from_json(name, value) for name, value in config.items()})


# Appendix A.1 exactly: the paper's MNIST networks (speed comparisons with other
# implementations use it). GAN, ALI and sVAE collapse with it within 600 steps
# (benchmarks/results/screens/collapse/mode_collapse.md).
MNIST_A1 = Preset(
    name="mnist_a1",
    image_shape=(28, 28, 1),
    z_dim=64,
    likelihood="bernoulli",
    encoder_convs=(Conv(32, 3, 2), Conv(64, 3, 2)),
    encoder_dense=(512,),
    flow="coupling",
    flow_depth=4,
    flow_hidden=(256, 256),
    decoder_dense=(512, 7 * 7 * 64),
    decoder_start=(7, 7, 64),
    decoder_deconvs=(Conv(64, 3, 2), Conv(32, 3, 2)),
    decoder_out_kernel=3,
    disc_x_convs=(Conv(32, 3, 2, dropout=0.2), Conv(64, 3, 2)),
    disc_z_dense=(Dense(512),),
    disc_joint_dense=(Dense(512, dropout=0.2),),
)

# The default MNIST recipe: A.1 with two deviations. Together they keep GAN, ALI, sVAE,
# sVAE-r and WGAN-GP from collapsing; neither alone does (benchmarks/results/screens/collapse/mode_collapse.md,
# 600 steps: the runs "gan,...,decoder_dense_batch_norm=false" and "gan,...,disc_x_pooling=
# average" against "gan,..." and "gan,...,preset=mnist_a1"):
# - batch norm on the decoder's two dense layers (`decoder_dense_batch_norm`);
# - the discriminator's x branch flattens its 7x7x64 features instead of averaging them
#   away (`disc_x_pooling="flatten"`), so f(x, z) sees where strokes are.
MNIST = dataclasses.replace(
    MNIST_A1, name="mnist", decoder_dense_batch_norm=True, disc_x_pooling="flatten"
)

# Appendix A.2 (our reading of the figure; z has 100 features).
CIFAR10_A2 = Preset(
    name="cifar10_a2",
    image_shape=(32, 32, 3),
    z_dim=100,
    likelihood="discretized_logistic",
    encoder_convs=(
        Conv(16, 3), Conv(16, 3),
        Conv(32, 3, 2), Conv(32, 3), Conv(32, 3),
        Conv(64, 3, 2), Conv(64, 3), Conv(64, 3), Conv(64, 3),
    ),
    encoder_dense=(512,),
    decoder_dense=(512, 4 * 4 * 64),
    decoder_start=(4, 4, 64),
    decoder_deconvs=(
        Conv(64, 3, 2), Conv(64, 3), Conv(64, 3),
        Conv(32, 3, 2), Conv(32, 3), Conv(32, 3),
        Conv(16, 3, 2), Conv(64, 3), Conv(64, 3),
    ),
    disc_x_convs=(Conv(16, 5, 2, 0.2), Conv(32, 5, 2, 0.2), Conv(64, 5, 2, 0.2)),
    disc_z_dense=(Dense(512),),
    disc_joint_dense=(Dense(512, dropout=0.2),),
)

# Appendix A.3 (z has 2048 features).
IMAGENET64_A3 = Preset(
    name="imagenet64_a3",
    image_shape=(64, 64, 3),
    z_dim=2048,
    likelihood="discretized_logistic",
    encoder_convs=(
        Conv(32, 3), Conv(32, 3),
        Conv(64, 3, 2), Conv(64, 3), Conv(64, 3),
        Conv(128, 3, 2), Conv(128, 3), Conv(128, 3),
        Conv(256, 3, 2), Conv(256, 3), Conv(256, 3), Conv(256, 3),
    ),
    encoder_dense=(1024,),
    decoder_dense=(1024, 4 * 4 * 256),
    decoder_start=(4, 4, 256),
    decoder_deconvs=(
        Conv(256, 3, 2), Conv(256, 3), Conv(256, 3),
        Conv(128, 3, 2), Conv(128, 3), Conv(128, 3),
        Conv(64, 3, 2), Conv(64, 3), Conv(64, 3),
        Conv(32, 3, 2), Conv(64, 3), Conv(64, 3),
    ),
    disc_x_convs=(
        Conv(32, 5, 2, 0.2), Conv(64, 5, 2, 0.2), Conv(128, 5, 2, 0.2), Conv(256, 5, 2, 0.2)
    ),
    disc_z_dense=(Dense(1024),),
    disc_joint_dense=(Dense(1024, dropout=0.2),),
)

# The default CIFAR-10 and ImageNet 64 recipes: the same two deviations as `MNIST`
# (their decoders and discriminators have the same shape as A.1's).
CIFAR10 = dataclasses.replace(
    CIFAR10_A2, name="cifar10", decoder_dense_batch_norm=True, disc_x_pooling="flatten"
)
IMAGENET64 = dataclasses.replace(
    IMAGENET64_A3, name="imagenet64", decoder_dense_batch_norm=True, disc_x_pooling="flatten"
)

PRESETS = {p.name: p for p in (MNIST, MNIST_A1, CIFAR10, CIFAR10_A2, IMAGENET64, IMAGENET64_A3)}
DISC_X_POOLINGS = ("average", "flatten")


def get_preset(name, **overrides):
    """The preset `name` with fields replaced by `overrides` (e.g. z_dim=32, flow="iaf").

    Overrides may come from JSON (a run's config.json): lists become tuples, and the
    items of layer fields become `Conv`/`Dense` again.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}.")
    base = PRESETS[name]
    fields = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Unknown preset fields {unknown}; expected some of {sorted(fields)}.")
    return dataclasses.replace(base, **{k: _like(getattr(base, k), v) for k, v in overrides.items()})


_LAYER_SPECS = {"encoder_convs": Conv, "decoder_deconvs": Conv, "disc_x_convs": Conv,
                "disc_z_dense": Dense, "disc_joint_dense": Dense}


def _from_json(name, value):
    """A field's value decoded from JSON: lists -> tuples, layer specs -> Conv/Dense."""
    if not isinstance(value, (list, tuple)):
        return value
    spec = _LAYER_SPECS.get(name)
    return tuple(spec(*v) if spec and isinstance(v, (list, tuple)) else
                 (tuple(v) if isinstance(v, list) else v) for v in value)


def _like(default, value):
    """`value` (possibly decoded from JSON) in the type of the field's `default`."""
    if isinstance(default, tuple) and isinstance(value, (list, tuple)):
        spec = next((type(d) for d in default if isinstance(d, (Conv, Dense))), None)
        return tuple(spec(*v) if spec and isinstance(v, (list, tuple)) else v for v in value)
    return value


def tiny(image_shape=(8, 8, 1), likelihood="bernoulli", flow="coupling", z_dim=4):
    """A small preset for tests: the same structure at a fraction of the cost."""
    h, w, _ = image_shape
    return Preset(
        name="tiny",
        image_shape=image_shape,
        z_dim=z_dim,
        likelihood=likelihood,
        encoder_convs=(Conv(4, 3, 2),),
        encoder_dense=(16,),
        flow=flow,
        flow_depth=2 if flow != "none" else 0,
        flow_hidden=(8,),
        decoder_dense=(16, (h // 2) * (w // 2) * 4),
        decoder_start=(h // 2, w // 2, 4),
        decoder_deconvs=(Conv(4, 3, 2),),
        disc_x_convs=(Conv(4, 3, 2, 0.2),),
        disc_z_dense=(Dense(8),),
        disc_joint_dense=(Dense(8, dropout=0.2),),
    )
