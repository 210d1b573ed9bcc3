"""Convert a training run's decoder sampler and encoder to LiteRT (.tflite), builtin ops only.

    python -m export.tflite --model_dir=runs/mnist --output_dir=litert \
        [--quantization=float32,float16,int8]

writes, for each quantization q:

  sampler_<q>.tflite   noise float32 [N, z_dim] -> images float32 [N, H, W, C] in [0, 1]
  encoder_<q>.tflite   images float32 [N, H, W, C] in [0, 1] -> z_mean float32 [N, z_dim]
                       (not for decoder-only variants gan / wgan_gp)
  litert_info.json     shapes, ops, sizes, the run it came from

N is dynamic (resize the input tensor, or use `export.tflite_sample.LiteModel`).
The sampler takes the latent noise as an input: a random draw cannot be in the model,
`RandomStandardNormal` is not a TFLite builtin (tensorflow #33341). The decoder mean is
the network + sigmoid; the encoder's z_mean is T(mu), the flow applied to the Gaussian
mean (see export.functions) -- for the affine coupling flow these are dense/elementwise
ops; MAF's forward pass is a sequential loop (tf.while_loop) that converts to the builtin
WHILE op and runs; IAF's forward pass is one conditioner pass per layer.

Quantization: "float32" (none), "float16" (float16 weights, float32 compute) and "int8"
(dynamic-range: int8 weights; dense and conv layers quantize their activations on the
fly, transposed convs dequantize their weights once -- see `converter_for`; inputs and
outputs stay float32). Conversion uses `supported_ops = [TFLITE_BUILTINS]` only -- no
SELECT_TF_OPS / Flex (which Keras 3's own LiteRT export enables by default) -- so the
models run on the plain `ai_edge_litert.interpreter.Interpreter`.

The graphs are written first as a SavedModel by `keras.export.ExportArchive` (the same
functions as the serving signatures `decode` and `encode_float`'s z_mean, without their
input checks), then converted with `TFLiteConverter.from_saved_model` per signature,
which freezes the variables and keeps input/output names. All models are converted in
memory before anything is written; each file is written to a temporary name in
output_dir and renamed into place.
"""

import json
import os
import sys
import tempfile

from absl import flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from export import functions  # noqa: E402
from svae_tf import runs  # noqa: E402

QUANTIZATIONS = ("float32", "float16", "int8")
INFO_FILE = "litert_info.json"


def _archive(model):
    """ExportArchive with endpoints `sampler` (noise -> images), `encoder` (images -> z_mean)."""
    archive = keras.export.ExportArchive()
    h, w, c = model.preset.image_shape
    archive.track(model.decoder)
    archive.add_endpoint(
        "sampler",
        lambda noise: {"images": functions.decode_images(model, noise)},
        input_signature=[tf.TensorSpec([None, model.preset.z_dim], tf.float32, name="noise")],
    )
    if model.encoder is not None:
        archive.track(model.encoder)
        archive.track(model.flow)
        archive.add_endpoint(
            "encoder",
            lambda images: {"z_mean": functions.z_mean(model, images)},
            input_signature=[tf.TensorSpec([None, h, w, c], tf.float32, name="images")],
        )
    return archive


def converter_for(saved_model_dir, signature, quantization):
    """A TFLiteConverter restricted to builtin ops, set up for `quantization`."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}; expected {QUANTIZATIONS}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range
        # The MLIR dynamic-range quantizer (the default) makes TRANSPOSE_CONV hybrid
        # (int8 weights, float activations), and LiteRT's hybrid transposed-conv kernel
        # is ~30x slower than float: 25-38 ms vs 0.75 ms per MNIST sample, measured on
        # this CPU. The previous quantizer keeps int8 weights for transposed convs but
        # dequantizes them once (DEQUANTIZE -> float TRANSPOSE_CONV); dense and conv
        # layers stay hybrid int8 in both. Same size, same error, fast.
        converter.experimental_new_dynamic_range_quantizer = False
    return converter


def convert(model, quantizations=QUANTIZATIONS):
    """{file name: flatbuffer bytes} for the sampler (and encoder) in each quantization."""
    models = {}
    with tempfile.TemporaryDirectory(prefix="svae-litert-") as tmp:
        saved = os.path.join(tmp, "saved_model")
        _archive(model).write_out(saved, verbose=False)
        signatures = ["sampler"] + (["encoder"] if model.encoder is not None else [])
        for signature in signatures:
            for quantization in quantizations:
                converter = converter_for(saved, signature, quantization)
                models[f"{signature}_{quantization}.tflite"] = converter.convert()
    return models


def flex_ops(model_content):
    """Names of non-builtin (Flex / custom) operators in a .tflite flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    tflite_model = schema.ModelT.InitFromPackedBuf(bytearray(model_content), 0)
    custom = set()
    for code in tflite_model.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom.add((code.customCode or b"").decode() or "CUSTOM")
    return sorted(custom)


def hybrid_transpose_convs(model_content):
    """Number of TRANSPOSE_CONV ops with int8 weights (the slow hybrid kernel)."""
    from ai_edge_litert import schema_py_generated as schema

    tflite_model = schema.ModelT.InitFromPackedBuf(bytearray(model_content), 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in tflite_model.operatorCodes]
    count = 0
    for subgraph in tflite_model.subgraphs:
        for op in subgraph.operators:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.TRANSPOSE_CONV:
                weights = subgraph.tensors[op.inputs[1]]
                count += weights.type == schema.TensorType.INT8
    return count


def export_tflite(model_dir, output_dir, quantizations=QUANTIZATIONS, model=None):
    """Convert and write the LiteRT models of a run; returns {file name: path}.

    Raises FileNotFoundError (nothing written) when model_dir has no config/checkpoint,
    and RuntimeError when a converted model would need non-builtin (Flex) ops.
    """
    quantizations = tuple(quantizations)
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise ValueError(f"Unknown quantization {q!r}; expected some of {QUANTIZATIONS}.")
    if model is None:
        model = runs.load_model(model_dir)
    models = convert(model, quantizations)
    for name, content in models.items():
        flex = flex_ops(content)
        if flex:
            raise RuntimeError(f"{name} needs non-builtin ops {flex}; not written.")
    os.makedirs(output_dir, exist_ok=True)
    paths = {}
    for name, content in models.items():
        paths[name] = os.path.join(output_dir, name)
        runs.atomic_write(paths[name], content)
    info = dict(
        model_dir=None if model_dir is None else os.path.abspath(model_dir),
        checkpoint=None if model_dir is None else runs.latest_checkpoint(model_dir),
        variant=model.variant,
        image_shape=list(model.preset.image_shape),
        z_dim=model.preset.z_dim,
        flow=model.preset.flow,
        files={name: dict(bytes=len(content)) for name, content in models.items()},
        sampler="noise float32 [N, z_dim] -> images float32 [N, H, W, C] in [0, 1]",
        encoder="images float32 [N, H, W, C] in [0, 1] -> z_mean float32 [N, z_dim] = T(mu)",
        supported_ops="TFLITE_BUILTINS",
    )
    runs.atomic_write(os.path.join(output_dir, INFO_FILE),
                        json.dumps(info, indent=2).encode())
    return paths


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/).", **f)
    flags.DEFINE_string("output_dir", None, "Directory for the .tflite files.", **f)
    flags.DEFINE_list("quantization", list(QUANTIZATIONS), "Some of float32,float16,int8.", **f)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.mark_flags_as_required(["model_dir", "output_dir"], **f)


def main(f):
    """The conversion on the flags `f` (`svae_tf.cli.run`: a missing or bad input exits with status 1,
    its message on stderr, nothing written; logs at WARNING: TF's INFO chatter)."""
    paths = export_tflite(f.model_dir, f.output_dir, f.quantization)
    for name, path in paths.items():
        print(f"{path}  ({os.path.getsize(path) / 1024:.0f} KiB)")


if __name__ == "__main__":
    cli.run(main, define_flags, errors=(FileNotFoundError, FileExistsError, ValueError, runs.CheckpointError))
