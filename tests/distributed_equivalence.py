"""Helper for test_distributed.py: one device vs MirroredStrategy over 2 logical CPUs.

Run as a script (logical devices must be configured before TensorFlow initialises):

    python tests/distributed_equivalence.py --variant svae_r --optimizers sgd,adam --steps 3

Prints one JSON line: for each optimizer, the largest absolute difference of every
variable (and the last metrics) after training the same model, from the same initial
weights and seed, on the same global batches, on one device and on `--replicas`
replicas of a MirroredStrategy. Plain SGD makes a wrong loss scale visible (a
hand-written per-replica mean would double every step); Adam checks the optimizer
slots and is almost insensitive to the loss scale.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="svae_r")
    parser.add_argument("--flow", default="coupling")
    parser.add_argument("--optimizers", default="sgd")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=8)  # global batch
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--init_seed", type=int, default=0)  # Keras initializers
    parser.add_argument("--ema_decay", type=float, default=0.0)
    args = parser.parse_args()

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * args.replicas
    )
    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.config.threading.set_intra_op_parallelism_threads(1)

    import keras

    from svae_tf.model import symmetric_vae as model_lib
    from svae_tf.model import presets

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == args.replicas, devices
    preset = presets.tiny(flow=args.flow)

    def build():
        keras.utils.set_random_seed(args.init_seed)
        return model_lib.SymmetricVAE(
            preset, variant=args.variant, discriminator_dropout=0.0, seed=7, ema_decay=args.ema_decay
        )

    def optimizer(kind):
        if kind == "sgd":
            return keras.optimizers.SGD(0.02)
        return keras.optimizers.Adam(1e-3)

    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (args.steps * args.batch_size, *preset.image_shape)) / 255.0
    images = images.astype("float32")

    def dataset():
        return tf.data.Dataset.from_tensor_slices(images).batch(args.batch_size)

    strategy = tf.distribute.MirroredStrategy(devices)
    report = dict(replicas=strategy.num_replicas_in_sync, results={})
    for kind in args.optimizers.split(","):
        single = build()
        single.compile(g_optimizer=optimizer(kind), d_optimizer=optimizer(kind))
        with strategy.scope():  # model *and* optimizers created inside the scope
            mirrored = build()
            mirrored.compile(g_optimizer=optimizer(kind), d_optimizer=optimizer(kind))
        assert len(single.variables) == len(mirrored.variables)
        for source, target in zip(single.variables, mirrored.variables):
            assert tuple(source.shape) == tuple(target.shape), (source.path, target.path)
            target.assign(source.numpy())  # identical initial weights (in order)
        initial = [v.numpy().copy() for v in single.variables]

        logs_single = single.fit(dataset(), epochs=1, steps_per_epoch=args.steps, shuffle=False, verbose=0)
        logs_mirrored = mirrored.fit(dataset(), epochs=1, steps_per_epoch=args.steps, shuffle=False, verbose=0)

        variables = []
        for v0, a, b in zip(initial, single.variables, mirrored.variables):
            a, b = np.asarray(a.numpy(), np.float64), np.asarray(b.numpy(), np.float64)
            variables.append(dict(
                path=single.variables[len(variables)].path,
                max_abs_diff=float(np.max(np.abs(a - b))),
                max_abs=float(np.max(np.abs(a))),
                moved=float(np.max(np.abs(a - v0))),  # how far training moved it
            ))
        optimizer_variables = []
        for name in ("g_optimizer", "d_optimizer"):
            if getattr(single, name, None) is None:
                continue
            for a, b in zip(getattr(single, name).variables, getattr(mirrored, name).variables):
                a, b = np.asarray(a.numpy(), np.float64), np.asarray(b.numpy(), np.float64)
                optimizer_variables.append(dict(
                    path=f"{name}/{a.shape}", max_abs_diff=float(np.max(np.abs(a - b))),
                    max_abs=float(np.max(np.abs(a))),
                ))
        report["results"][kind] = dict(
            variables=variables,
            optimizer_variables=optimizer_variables,
            metrics_single={k: v[-1] for k, v in logs_single.history.items()},
            metrics_mirrored={k: v[-1] for k, v in logs_mirrored.history.items()},
            mirrored_variable_types=sorted({type(v._value).__name__ for v in mirrored.variables}),
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
