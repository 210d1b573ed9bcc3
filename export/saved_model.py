"""Export a training run as a SavedModel in TF Serving's layout: BASE/<version>/.

    python -m export.saved_model --model_dir=runs/mnist --export_dir=/srv/models/svae \
        [--version=N] [--model_name=svae]

Rebuilds the model from `model_dir/config.json`, restores its newest checkpoint
(`svae_tf.runs.load_model`) and writes, with Keras 3's `keras.export.ExportArchive`:

  BASE/<version>/saved_model.pb, variables/       the signatures below
  BASE/<version>/assets.extra/tf_serving_warmup_requests
                                                   one PredictionLog per signature
  BASE/<version>/assets.extra/export_info.json     run, checkpoint, config, signatures

Signatures (B is dynamic, including 0; H, W, C and z_dim come from the run's preset):

| signature           | inputs                                 | outputs                            |
|---------------------|----------------------------------------|------------------------------------|
| `reconstruct`       | images uint8 [B,H,W,C]                 | images f32 [B,H,W,C], z_mean [B,z] |
| `encode`            | images uint8 [B,H,W,C], seed int64 [B] | z_mean f32 [B,z], z_sample [B,z]   |
| `decode`            | z f32 [B,z]                            | images f32 [B,H,W,C]               |
| `sample`            | seed int64 [B]                         | images f32 [B,H,W,C], z f32 [B,z]  |
| `reconstruct_float` | images f32 [B,H,W,C] in [0, 1]         | as `reconstruct`                   |
| `encode_float`      | images f32 [B,H,W,C] in [0, 1], seed   | as `encode`                        |
| `serving_default`   | = `reconstruct`                        |                                    |

Decoder-only variants (gan, wgan_gp) have no encoder: only `sample` (= serving_default)
and `decode`. Output images are decoder means in [0, 1]. z_mean is T(mu), the flow
applied to the Gaussian mean; z_sample = T(mu + sigma * eps) and `sample` decodes
z = eps, with eps_i = stateless_normal(seed=[seed_i, SEED_SALT]) (see export.functions).
`reconstruct` is deterministic: it decodes z_mean.

Bad input (tests/test_export.py checks each): a wrong shape or rank of any input, a
NaN/Inf or out-of-range pixel of a float variant, a NaN/Inf latent, or a seed count
different from the image count fail with InvalidArgumentError whose message names the
signature and the input (e.g. "encode: input `seed` must hold one seed per image").
A wrong dtype fails before execution: INVALID_ARGUMENT "Type mismatch ... _arg_<sig>_<input>"
when fed as TF Serving does; with `tf.saved_model.load`, a tf.Tensor of the wrong dtype
raises InvalidArgumentError and a wrong shape raises TypeError when binding -- but a
*numpy* array is cast by TensorFlow silently (float pixels 0.5 -> uint8 0), which
`serving_client.LocalServer.run` refuses. A batch of zero returns outputs with a zero
batch dimension. Nothing crashes the process.

Atomicity: everything is written to a temporary directory beside BASE
(`<parent>/.<BASE name>.tmp-*`) and renamed to BASE/<version> as the last step, so a
version directory is either complete or absent (a watcher such as TF Serving never sees
a half-written version); on any failure the temporary directory is removed. The rename
is atomic on a local (POSIX) filesystem; for object stores (gs://, s3://) export locally
and copy. With no checkpoint in model_dir, nothing is written.
"""

import datetime
import json
import os
import shutil
import sys
import tempfile

from absl import flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from export import functions  # noqa: E402
from svae_tf import runs  # noqa: E402

WARMUP_FILE = "tf_serving_warmup_requests"
INFO_FILE = "export_info.json"


def signature_names(model):
    """Exported signature names, the serving default first (then 'serving_default')."""
    if model.encoder is None:
        return ["sample", "decode"]
    return ["reconstruct", "encode", "decode", "sample", "reconstruct_float", "encode_float"]


def _specs(model):
    h, w, c = model.preset.image_shape
    z_dim = model.preset.z_dim
    return dict(
        images_uint8=tf.TensorSpec([None, h, w, c], tf.uint8, name="images"),
        images_float=tf.TensorSpec([None, h, w, c], tf.float32, name="images"),
        seed=tf.TensorSpec([None], tf.int64, name="seed"),
        z=tf.TensorSpec([None, z_dim], tf.float32, name="z"),
    )


def endpoints(model):
    """{name: (python function, input signature)} of every exported signature.

    Input names are the functions' argument names; outputs are dicts (named outputs).
    """
    preset, z_dim = model.preset, model.preset.z_dim
    s = _specs(model)
    image_tail = list(preset.image_shape)

    def reconstruct_from(images):
        def compute():
            z = functions.z_mean(model, images)
            return {"images": functions.decode_images(model, z), "z_mean": z}

        return functions.if_nonempty(
            tf.shape(images)[0], compute, {"images": image_tail, "z_mean": [z_dim]})

    def encode_from(images, seed, endpoint):
        seed = functions.check_seeds(seed, tf.shape(images)[0], endpoint)

        def compute():
            noise = functions.noise_from_seeds(seed, z_dim)
            z_mean, z_sample = functions.z_mean_and_sample(model, images, noise)
            return {"z_mean": z_mean, "z_sample": z_sample}

        return functions.if_nonempty(
            tf.shape(images)[0], compute, {"z_mean": [z_dim], "z_sample": [z_dim]})

    def reconstruct(images):
        return reconstruct_from(functions.uint8_to_float(images, preset, "reconstruct"))

    def encode(images, seed):
        return encode_from(functions.uint8_to_float(images, preset, "encode"), seed, "encode")

    def reconstruct_float(images):
        return reconstruct_from(
            functions.check_float_images(images, preset, "reconstruct_float"))

    def encode_float(images, seed):
        images = functions.check_float_images(images, preset, "encode_float")
        return encode_from(images, seed, "encode_float")

    def decode(z):
        z = functions.check_latents(z, z_dim, "decode")
        return functions.if_nonempty(
            tf.shape(z)[0], lambda: {"images": functions.decode_images(model, z)},
            {"images": image_tail})

    def sample(seed):
        seed = functions.check_seeds(seed, None, "sample")

        def compute():
            z = functions.noise_from_seeds(seed, z_dim)
            return {"images": functions.decode_images(model, z), "z": z}

        return functions.if_nonempty(tf.shape(seed)[0], compute,
                                     {"images": image_tail, "z": [z_dim]})

    table = dict(
        reconstruct=(reconstruct, [s["images_uint8"]]),
        encode=(encode, [s["images_uint8"], s["seed"]]),
        decode=(decode, [s["z"]]),
        sample=(sample, [s["seed"]]),
        reconstruct_float=(reconstruct_float, [s["images_float"]]),
        encode_float=(encode_float, [s["images_float"], s["seed"]]),
    )
    return {name: table[name] for name in signature_names(model)}


def build_archive(model):
    """A `keras.export.ExportArchive` with every signature of `model`.

    The first endpoint is also registered by Keras as `serving_default`.
    """
    archive = keras.export.ExportArchive()
    for layer in (model.encoder, model.flow, model.decoder):
        if layer is not None:
            archive.track(layer)
    for name, (fn, input_signature) in endpoints(model).items():
        archive.add_endpoint(name, fn, input_signature=input_signature)
    return archive


def warmup_inputs(model, batch_size=1):
    """{signature: {input: array}}: small valid requests (zeros images, seeds 0..B-1)."""
    h, w, c = model.preset.image_shape
    images = np.zeros([batch_size, h, w, c], np.uint8)
    seed = np.arange(batch_size, dtype=np.int64)
    table = dict(
        reconstruct={"images": images},
        encode={"images": images, "seed": seed},
        decode={"z": np.zeros([batch_size, model.preset.z_dim], np.float32)},
        sample={"seed": seed},
        reconstruct_float={"images": images.astype(np.float32)},
        encode_float={"images": images.astype(np.float32), "seed": seed},
    )
    names = signature_names(model) + ["serving_default"]
    default = signature_names(model)[0]
    return {name: table[default if name == "serving_default" else name] for name in names}


def write_warmup(path, model, model_name):
    """TFRecord of PredictionLog(predict_log=PredictLog(request=...)), one per signature."""
    from tensorflow_serving.apis import prediction_log_pb2

    from export import serving_client

    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in warmup_inputs(model).items():
            request = serving_client.grpc_request(signature, inputs, model_name=model_name)
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def read_warmup(path):
    """The PredictionLog records of a warmup file."""
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


def existing_versions(export_dir):
    """Sorted integer version numbers under export_dir (what TF Serving would load)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(d) for d in os.listdir(export_dir)
                  if d.isdigit() and os.path.isdir(os.path.join(export_dir, d)))


def next_version(export_dir):
    """1 + the highest existing version (1 for a new export_dir)."""
    versions = existing_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def _temp_dir(export_dir):
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(export_dir)}.tmp-", dir=parent)
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the server may run as another user
    return tmp


def _publish(tmp, export_dir, version, auto_version):
    """Rename tmp to export_dir/<version> (the next free one when auto_version)."""
    os.makedirs(export_dir, exist_ok=True)
    while True:
        target = os.path.join(export_dir, str(version))
        if not os.path.exists(target):
            try:
                os.rename(tmp, target)
                return target
            except OSError:  # created concurrently (ENOTEMPTY / EEXIST)
                if not os.path.exists(target):
                    raise
        if not auto_version:
            raise FileExistsError(f"Version directory {target!r} already exists.")
        version += 1


def export_saved_model(model_dir, export_dir, version=None, model_name="svae", model=None):
    """Export the run in `model_dir` to `export_dir/<version>`; returns that path.

    Args:
      model_dir: a training run (config.json + checkpoints/).
      export_dir: the TF Serving base path BASE.
      version: positive integer; default: next_version(export_dir).
      model_name: the model name written in the warmup requests' ModelSpec.
      model: an already loaded model (skips loading model_dir; for tests and benchmarks).

    Raises:
      FileNotFoundError: model_dir has no config.json or no checkpoint (nothing written).
      FileExistsError: `version` was given and already exists (nothing written).
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    if model is None:
        model = runs.load_model(model_dir)  # raises before anything is written
    auto_version = version is None
    if auto_version:
        version = next_version(export_dir)
    elif int(version) < 1:
        raise ValueError(f"version must be a positive integer, got {version}.")
    else:
        version = int(version)
        if os.path.exists(os.path.join(export_dir, str(version))):
            raise FileExistsError(
                f"Version {version} already exists in {export_dir!r}; TF Serving would not "
                "reload it. Omit --version to export as the next version."
            )
    archive = build_archive(model)
    tmp = _temp_dir(export_dir)
    try:
        archive.write_out(tmp, verbose=False)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        write_warmup(os.path.join(extra, WARMUP_FILE), model, model_name)
        _write_info(os.path.join(extra, INFO_FILE), model, model_dir)
        return _publish(tmp, export_dir, version, auto_version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_info(path, model, model_dir):
    config = None
    checkpoint = None
    if model_dir is not None:
        config = json.loads(runs.load_config(model_dir).to_json())
        checkpoint = runs.latest_checkpoint(model_dir)
    info = dict(
        model_dir=None if model_dir is None else os.path.abspath(model_dir),
        checkpoint=checkpoint,
        config=config,
        variant=model.variant,
        image_shape=list(model.preset.image_shape),
        z_dim=model.preset.z_dim,
        likelihood=model.preset.likelihood,
        signatures=signature_names(model) + ["serving_default"],
        serving_default=signature_names(model)[0],
        seed_salt=functions.SEED_SALT,
        exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        tensorflow=tf.__version__,
        keras=keras.__version__,
    )
    with open(path, "w") as f:
        json.dump(info, f, indent=2)


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/).", **f)
    flags.DEFINE_string("export_dir", None, "TF Serving base path; versions go in subdirs.", **f)
    flags.DEFINE_integer("version", None, "Version number (default: next free integer).", **f)
    flags.DEFINE_string("model_name", "svae", "Model name in the warmup requests' ModelSpec.", **f)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.mark_flags_as_required(["model_dir", "export_dir"], **f)


def main(f):
    """The export on the flags `f` (`svae_tf.cli.run`: a missing or bad input exits with status 1,
    its message on stderr, nothing written; logs at WARNING: TF's INFO chatter)."""
    path = export_saved_model(f.model_dir, f.export_dir, f.version, f.model_name)
    with open(os.path.join(path, "assets.extra", INFO_FILE)) as info:
        signatures = json.load(info)["signatures"]
    print(f"Exported {path}\nSignatures: {', '.join(signatures)}")


if __name__ == "__main__":
    cli.run(main, define_flags, errors=(FileNotFoundError, FileExistsError, ValueError, runs.CheckpointError))
