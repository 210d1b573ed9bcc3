"""TF Serving clients for an exported svae-tf SavedModel: REST and gRPC, plus a local runner.

Serve the export directory BASE (written by `python -m export.saved_model`) with

    docker run -p 8501:8501 -p 8500:8500 -v "$PWD/BASE:/models/svae" \
        -e MODEL_NAME=svae tensorflow/serving

(REST on 8501, gRPC on 8500; TF Serving loads the highest integer version under BASE and
picks up new versions as they appear). Then, from Python:

    from export import serving_client as sc
    images = np.zeros([2, 28, 28, 1], np.uint8)                  # uint8 pixels 0..255
    body = sc.rest_body("reconstruct", {"images": images})       # {"signature_name", "instances"}
    reply = sc.post_rest(sc.rest_url("localhost", 8501, "svae"), body)
    reply["predictions"][0]["images"]                            # [28, 28, 1] floats in [0, 1]

    request = sc.grpc_request("sample", {"seed": np.arange(4)}, model_name="svae")
    response = sc.predict_grpc(request, "localhost:8500")
    tf.make_ndarray(response.outputs["images"])                  # [4, 28, 28, 1]

or with curl:

    curl -d '{"signature_name": "sample", "instances": [{"seed": 1}, {"seed": 2}]}' \
        http://localhost:8501/v1/models/svae:predict

TF Serving cannot run in this workspace (no Docker engine), so `LocalServer` executes
the same REST bodies and gRPC requests against the exported SavedModel with TensorFlow's
own loader (`tf.saved_model.load(path).signatures[name]`), parsing JSON into each
input's signature dtype and shaping the reply the way TF Serving's REST API does
(row format "instances" -> "predictions", columnar "inputs" -> "outputs"; errors as
{"error": message}).

    python -m export.serving_client --export_dir=BASE --signature=sample
"""

import json
import os
import sys
import urllib.request

from absl import flags

from svae_tf import cli
from svae_tf.utils import logs as tf_logs

if __name__ == "__main__":  # the program: TensorFlow's C++ logs follow --tf_log_level
    tf_logs.configure(tf_logs.level_from_argv(sys.argv))  # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# ------------------------------------------------------------------------------- REST


def rest_url(host="localhost", port=8501, model_name="svae", version=None):
    """The predict URL of TF Serving's REST API (a given version, or the newest)."""
    version_part = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{port}/v1/models/{model_name}{version_part}:predict"


def rest_body(signature_name, inputs, row_format=True):
    """A JSON-serialisable TF Serving predict body.

    Args:
      signature_name: "encode", "decode", "sample", "reconstruct", ...
      inputs: {input name: array}; every array has the batch as its first dimension.
      row_format: True -> {"instances": [{name: example_value, ...}, ...]} (one dict per
        example); False -> columnar {"inputs": {name: batch_value}}.
    """
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    body = {"signature_name": signature_name}
    if row_format:
        sizes = {a.shape[0] for a in arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"Row format needs the same batch size for every input: {sizes}")
        (size,) = sizes
        body["instances"] = [
            {name: a[i].tolist() for name, a in arrays.items()} for i in range(size)
        ]
    else:
        body["inputs"] = {name: a.tolist() for name, a in arrays.items()}
    return body


def post_rest(url, body, timeout=30.0):
    """POST a predict body to a running TF Serving; returns the decoded JSON reply."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


# ------------------------------------------------------------------------------- gRPC


def grpc_request(signature_name, inputs, model_name="svae", version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for `inputs` {name: array}.

    Arrays keep their numpy dtype in the TensorProto: send uint8 pixels, int64 seeds and
    float32 latents (TF Serving does not convert dtypes in gRPC requests).
    """
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def predict_grpc(request, target="localhost:8500", timeout=30.0):
    """Send a PredictRequest to a running TF Serving (gRPC port) and return the response."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(request, timeout)


# ------------------------------------------------------------------- local execution


class LocalServer:
    """Run TF Serving requests against an exported version with `tf.saved_model.load`.

    `path` is a version directory (BASE/<n>) or the base directory BASE (then the highest
    version is used, as TF Serving does by default).
    """

    def __init__(self, path):
        self.path = resolve_version(path)
        self.loaded = tf.saved_model.load(self.path)
        self.signatures = self.loaded.signatures

    def signature(self, name):
        if name not in self.signatures:
            raise KeyError(
                f"No signature {name!r} in {self.path}; available: {sorted(self.signatures)}"
            )
        return self.signatures[name]

    def input_specs(self, name):
        """{input name: TensorSpec} of a signature."""
        return dict(self.signature(name).structured_input_signature[1])

    def run(self, signature_name, inputs):
        """Call a signature with {name: array}; returns {output name: np.ndarray}."""
        specs = self.input_specs(signature_name)
        tensors = {}
        for name, value in inputs.items():
            if name not in specs:
                raise ValueError(f"input '{name}' is not in signature {signature_name!r} "
                                 f"(inputs: {sorted(specs)})")
            tensors[name] = _to_tensor(value, specs[name], name)
        outputs = self.signature(signature_name)(**tensors)
        return {name: value.numpy() for name, value in outputs.items()}

    def rest(self, body):
        """Execute a REST predict body; returns the JSON reply TF Serving would send."""
        try:
            body = json.loads(json.dumps(body))  # exactly what goes over the wire
            name = body.get("signature_name", "serving_default")
            specs = self.input_specs(name)
            if ("instances" in body) == ("inputs" in body):
                raise ValueError("A predict body needs exactly one of 'instances' or 'inputs'.")
            if "instances" in body:
                instances = body["instances"]
                if instances and not isinstance(instances[0], dict):
                    if len(specs) != 1:
                        raise ValueError(f"Signature {name!r} has inputs {sorted(specs)}: "
                                         "send one object per instance.")
                    instances = [{next(iter(specs)): value} for value in instances]
                columns = {key: [inst[key] for inst in instances] for key in specs
                           if all(key in inst for inst in instances)}
            else:
                columns = body["inputs"]
                if not isinstance(columns, dict):
                    columns = {next(iter(specs)): columns}
            missing = sorted(set(specs) - set(columns))
            if missing:
                raise ValueError(f"Missing input(s) {missing} for signature {name!r}.")
            inputs = {key: _json_to_array(columns[key], specs[key], key) for key in specs}
            outputs = self.run(name, inputs)
        except (tf.errors.OpError, ValueError, TypeError, KeyError) as e:
            return {"error": _error_message(e)}
        if "instances" in body:
            keys = sorted(outputs)
            size = len(next(iter(outputs.values())))
            if len(keys) == 1:
                return {"predictions": outputs[keys[0]].tolist()}
            return {"predictions": [{k: outputs[k][i].tolist() for k in keys}
                                    for i in range(size)]}
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values())).tolist()}
        return {"outputs": {k: v.tolist() for k, v in outputs.items()}}

    def grpc(self, request):
        """Execute a PredictRequest; returns a PredictResponse (raises TF errors as-is)."""
        from tensorflow_serving.apis import predict_pb2

        name = request.model_spec.signature_name or "serving_default"
        specs = self.input_specs(name)
        inputs = {}
        for key, proto in request.inputs.items():
            if key not in specs:
                raise tf.errors.InvalidArgumentError(
                    None, None, f"input '{key}' is not in signature {name!r} ({sorted(specs)})")
            inputs[key] = tf.make_ndarray(proto)
            if tf.as_dtype(inputs[key].dtype) != specs[key].dtype:
                raise tf.errors.InvalidArgumentError(
                    None, None, f"input '{key}' of signature {name!r} must be "
                    f"{specs[key].dtype.name}, got {tf.as_dtype(inputs[key].dtype).name}")
        outputs = self.run(name, inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.model_spec.signature_name = name
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response


class SessionServer:
    """Run requests the way TF Serving's C++ runtime does, as closely as TF allows here.

    TF Serving loads the SavedModel's MetaGraph into a Session and feeds the request's
    tensors to the signature's input tensors: no Python binding checks shapes or dtypes
    against the signature. This class does the same with a TF1 Session and a callable
    (`CallableOptions` feeds, the C++ `RunCallable` path), so that bad-input behaviour
    and warmup replay are tested where the Python loader would have refused the input
    before execution. (`Session._make_callable_from_options` is a private TF API; this
    is a test and diagnostics tool, not a serving path.)
    """

    def __init__(self, path):
        self.path = resolve_version(path)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.load(
                self.session, [tf.saved_model.SERVING], self.path
            )
        self.signature_defs = self.meta_graph.signature_def

    def run(self, signature_name, inputs):
        """{input: array} -> {output: np.ndarray}; errors are TF OpErrors, as in Serving."""
        from tensorflow.core.protobuf import config_pb2

        if signature_name not in self.signature_defs:
            raise tf.errors.InvalidArgumentError(
                None, None, f"Serving signature name: \"{signature_name}\" not found in "
                f"signature def (available: {sorted(self.signature_defs)})")
        sig = self.signature_defs[signature_name]
        if set(inputs) != set(sig.inputs):
            raise tf.errors.InvalidArgumentError(
                None, None, f"input size does not match signature {signature_name!r}: "
                f"sent {sorted(inputs)}, expected {sorted(sig.inputs)}")
        feeds, fetches = sorted(inputs), sorted(sig.outputs)
        options = config_pb2.CallableOptions(
            feed=[sig.inputs[k].name for k in feeds],
            fetch=[sig.outputs[k].name for k in fetches],
        )
        callable_ = self.session._make_callable_from_options(options)
        values = callable_(*[np.asarray(inputs[k]) for k in feeds])
        return dict(zip(fetches, values))

    def predict(self, request):
        """Execute a PredictRequest (e.g. a warmup record); returns a PredictResponse."""
        from tensorflow_serving.apis import predict_pb2

        name = request.model_spec.signature_name or "serving_default"
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = self.run(name, inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def close(self):
        self.session.close()


def resolve_version(path):
    """`path` itself if it holds a saved_model.pb, else its highest integer subdirectory."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
    if not versions:
        raise FileNotFoundError(f"No SavedModel version under {path!r}.")
    return os.path.join(path, str(max(versions)))


def _to_tensor(value, spec, name):
    """A tensor of the signature's dtype; refuses kind changes (float pixels -> uint8).

    The loaded signature itself would cast a numpy array silently (0.5 -> 0 for uint8),
    which turns float [0, 1] images sent to a uint8 signature into black images.
    """
    if isinstance(value, tf.Tensor):
        value = value.numpy()
    array = np.asarray(value)
    target = spec.dtype.as_numpy_dtype
    if not np.can_cast(array.dtype, target, casting="same_kind") or (
        np.issubdtype(target, np.integer) and np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"input '{name}' must be {spec.dtype.name}, got {array.dtype}")
    if np.issubdtype(target, np.integer) and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise ValueError(f"input '{name}': values out of range for {spec.dtype.name}")
    return tf.constant(array.astype(target))


def _json_to_array(value, spec, name):
    """Parse a JSON value into the signature's dtype, refusing lossy conversions."""
    array = np.asarray(value)
    if array.dtype == object:
        raise ValueError(f"input '{name}': ragged or non-numeric JSON value")
    dtype = spec.dtype.as_numpy_dtype
    if np.issubdtype(dtype, np.integer):
        if array.size and (not np.all(np.isfinite(array.astype(np.float64)))
                           or np.any(array != np.round(array))):
            raise ValueError(f"input '{name}': expected integers ({spec.dtype.name})")
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError(f"input '{name}': values out of range for {spec.dtype.name}")
    return array.astype(dtype)


def _error_message(error):
    message = getattr(error, "message", None) or str(error)
    return message.strip()


# -------------------------------------------------------------------------- demo CLI


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("export_dir", None, "Export base dir (BASE) or a version dir.", **f)
    flags.DEFINE_string("signature", "serving_default", "Signature to call.", **f)
    flags.DEFINE_string("model_name", "svae", "Model name in the URL / ModelSpec.", **f)
    flags.DEFINE_integer("batch", 2, "Examples in the request.", **f)
    flags.DEFINE_enum(tf_logs.FLAG, None, list(tf_logs.LEVELS), tf_logs.FLAG_HELP, **f)
    flags.mark_flag_as_required("export_dir", **f)


def main(args):
    """The demo on the flags `args` (`svae_tf.cli.run`, which logs at WARNING: TF's INFO chatter)."""
    server = LocalServer(args.export_dir)
    specs = server.input_specs(args.signature)
    rng = np.random.default_rng(0)
    inputs = {}
    for name, spec in specs.items():
        shape = [args.batch, *spec.shape[1:]]
        if spec.dtype == tf.uint8:
            inputs[name] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif spec.dtype == tf.int64:
            inputs[name] = np.arange(args.batch, dtype=np.int64)
        elif name == "images":
            inputs[name] = rng.random(shape, dtype=np.float32)
        else:
            inputs[name] = rng.standard_normal(shape).astype(np.float32)
    body = rest_body(args.signature, inputs)
    print(f"REST: POST {rest_url(model_name=args.model_name)}  "
          f"({len(json.dumps(body))} bytes of JSON)")
    reply = server.rest(body)
    if "error" in reply:  # the exit-status convention: 1 on any failure
        sys.exit(f"error: the REST request failed: {reply['error']}")
    else:
        first = reply["predictions"][0]
        shapes = {k: np.shape(v) for k, v in first.items()} if isinstance(first, dict) \
            else np.shape(first)
        print(f"  {len(reply['predictions'])} predictions, per-example shapes {shapes}")
    request = grpc_request(args.signature, inputs, model_name=args.model_name)
    response = server.grpc(request)
    print("gRPC: PredictRequest ->",
          {k: list(tf.make_ndarray(v).shape) for k, v in response.outputs.items()})


if __name__ == "__main__":
    cli.run(main, define_flags)
