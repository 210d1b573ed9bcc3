"""Presets as data: the exact Appendix A networks, the defaults' two deviations, JSON round trips."""

import dataclasses

import keras
import pytest

from svae_tf.model import networks, presets

DEVIATIONS = {"decoder_dense_batch_norm": True, "disc_x_pooling": "flatten"}


def test_mnist_a1_is_appendix_a1():
    p = presets.MNIST_A1
    assert (p.z_dim, p.likelihood, p.flow, p.flow_depth) == (64, "bernoulli", "coupling", 4)
    assert p.encoder_convs == (presets.Conv(32, 3, 2), presets.Conv(64, 3, 2))
    assert p.decoder_dense == (512, 7 * 7 * 64) and p.decoder_start == (7, 7, 64)
    assert p.disc_x_convs == (presets.Conv(32, 3, 2, 0.2), presets.Conv(64, 3, 2))
    assert (p.decoder_dense_batch_norm, p.disc_x_pooling) == (False, "average")


@pytest.mark.parametrize("default, exact", [(presets.MNIST, presets.MNIST_A1),
                                            (presets.CIFAR10, presets.CIFAR10_A2),
                                            (presets.IMAGENET64, presets.IMAGENET64_A3)])
def test_defaults_differ_from_appendix_a_in_the_two_fixes_only(default, exact):
    a, b = dataclasses.asdict(default), dataclasses.asdict(exact)
    assert {k for k in a if a[k] != b[k]} == {"name", *DEVIATIONS}
    assert {k: a[k] for k in DEVIATIONS} == DEVIATIONS


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_preset_config_round_trip(name):
    preset = presets.PRESETS[name]
    assert presets.Preset.from_config(preset.to_config()) == preset


def test_networks_follow_the_two_fields():
    def layer_types(model):
        return [type(layer).__name__ for layer in model.layers]

    default, exact = presets.MNIST, presets.MNIST_A1
    # Decoder: Dense -> BatchNormalization -> ReLU for both dense layers, or Dense(relu).
    assert layer_types(networks.build_decoder(default))[1:7] == ["Dense", "BatchNormalization", "ReLU"] * 2
    assert layer_types(networks.build_decoder(exact))[1:3] == ["Dense", "Dense"]
    # Discriminator x branch: 7x7x64 flattened (3136 features) or averaged (64).
    for preset, pooling, features in ((default, "Flatten", 3136), (exact, "GlobalAveragePooling2D", 64)):
        model = networks.build_discriminator(preset, joint=False)
        layer = next(layer for layer in model.layers if type(layer).__name__ == pooling)
        assert layer.output.shape[-1] == features
    with pytest.raises(ValueError, match="disc_x_pooling"):
        networks.build_discriminator(dataclasses.replace(default, disc_x_pooling="max"))
    keras.backend.clear_session()
