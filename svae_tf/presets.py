"""Network architectures of the paper's experiments, as data (Appendix A).

A preset says *what* the encoder q(z|x), decoder p(x|z) and discriminator f(x, z)
are; `networks.py` turns it into Keras layers. Change a preset with
`dataclasses.replace(MNIST, z_dim=32)`; never by subclassing.

Conv layers of the encoder and decoder are followed by batch normalisation
(synchronised across replicas) and ReLU; discriminator convs by LeakyReLU and
optional dropout, and no batch normalisation.
"""

import dataclasses
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
    # f(x, z): x branch convs + global average pooling; z branch dense; joint dense; 1 logit.
    disc_x_convs: tuple = ()
    disc_z_dense: tuple = ()
    disc_joint_dense: tuple = ()
    leaky_slope: float = 0.2

    @property
    def num_dims(self):
        h, w, c = self.image_shape
        return h * w * c


# Appendix A.1, exactly as issue #2 fixes it (so its speed compares with other implementations).
MNIST = Preset(
    name="mnist",
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

# Appendix A.2 (our reading of the figure; z has 100 features).
CIFAR10 = Preset(
    name="cifar10",
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
IMAGENET64 = Preset(
    name="imagenet64",
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

PRESETS = {p.name: p for p in (MNIST, CIFAR10, IMAGENET64)}


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
