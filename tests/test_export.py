"""Tests of export/: SavedModel for TF Serving, LiteRT conversion, clients, bad inputs.

One tiny sVAE-r (MNIST shapes, z_dim 8, a 2-layer affine coupling flow, small dense
layers) is trained for one epoch on 64 real MNIST images (the `data_dir` fixture: skipped
without the data, failed under CI), saved as a run directory, and exported once per test
session (shared by the xdist workers).

TF Serving itself cannot run here. Requests are executed two ways: through TensorFlow's
Python loader (`tf.saved_model.load(path).signatures[name]`, `serving_client.LocalServer`)
and through a TF1 session fed via the C++ callable path (`serving_client.SessionServer`),
which, like TF Serving, does not check fed tensors against the declared shapes.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from export import functions, saved_model, serving_client, tflite, tflite_sample
from svae_tf import runs

Z_DIM = 8
OVERRIDES = dict(
    z_dim=Z_DIM,
    encoder_dense=[32],
    flow="coupling",
    flow_depth=2,
    flow_hidden=[16],
    decoder_dense=[32, 7 * 7 * 64],
)
ALL_SIGNATURES = ["decode", "encode", "encode_float", "reconstruct", "reconstruct_float",
                  "sample", "serving_default"]
# Bounds on the LiteRT models' max abs difference from the SavedModel (same inputs). The
# float16 bounds come from the errors measured on this fixture over six builds (random
# initialisations): sampler 5.8e-6 to 9.0e-6 (pixels in [0, 1]), encoder 4.5e-5 to 1.25e-4
# (z_mean, max |z_mean| 0.10-0.18). They allow about 5x (sampler) and 4x (encoder) the
# largest, and stay below the int8 models' errors on the same inputs (sampler 8.6e-5 to
# 1.2e-4, encoder 1.2e-3 to 1.9e-3), so a float16 model that is really int8 fails.
FLOAT32_TOL = 1e-4
FLOAT16_IMAGE_TOL = 5e-5  # pixels on the [0, 1] scale
FLOAT16_Z_TOL = 5e-4  # z_mean, relative to max(1, max |z_mean|)
INT8_IMAGE_TOL = 2e-2  # pixels on the [0, 1] scale
INT8_Z_TOL = 5e-2  # z_mean, relative to max(1, max |z_mean|)


def _mnist_uint8(n, data_dir):
    """The first n real MNIST training images, uint8 [n, 28, 28, 1]."""
    from svae_tf.data import pipelines as data

    batch = next(iter(data.load_images("mnist", "train", batch_size=n, take=n, data_dir=data_dir)))
    return np.round(batch.numpy() * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(data_dir):
    return _mnist_uint8(64, data_dir)


def _shared(tmp_path_factory, name, build):
    """Build an artifact directory once per test session, even across xdist workers.

    The first worker to get the lock runs build(path); the others reuse its result
    (the artifacts are read-only for the tests), which halves this module's cost under
    `pytest -n 2`.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of one session
    path, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                if path.exists():
                    shutil.rmtree(path)
                path.mkdir()
                done.write_text(json.dumps(build(path)))
            return json.loads(done.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _train_tiny_run(model_dir, data_dir):
    # With a moving average of the weights: export (runs.load_model) serves the average.
    config = runs.ModelConfig(preset="mnist", preset_overrides=OVERRIDES, variant="svae_r", ema_decay=0.9)
    model = runs.build_model(config)
    model.compile()
    x = _mnist_uint8(64, data_dir).astype(np.float32) / 255.0
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    runs.save_config(str(model_dir), config)
    runs.checkpoint_manager(runs.make_checkpoint(model), str(model_dir)).save()
    return str(model_dir)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    return _shared(tmp_path_factory, "export-test-run", lambda path: _train_tiny_run(path, data_dir))


@pytest.fixture(scope="module")
def model(run_dir):
    return runs.load_model(run_dir)


@pytest.fixture(scope="module")
def export_path(run_dir, tmp_path_factory):
    return _shared(tmp_path_factory, "export-test-serving",
                   lambda path: saved_model.export_saved_model(run_dir, str(path / "svae")))


@pytest.fixture(scope="module")
def local(export_path):
    return serving_client.LocalServer(export_path)


@pytest.fixture(scope="module")
def session(export_path):
    server = serving_client.SessionServer(export_path)
    yield server
    server.close()


@pytest.fixture(scope="module")
def lite_models(run_dir, tmp_path_factory):
    return _shared(tmp_path_factory, "export-test-litert",
                   lambda path: tflite.export_tflite(run_dir, str(path)))


def _valid_inputs(images, n=4):
    x = images[:n]
    seed = np.arange(10, 10 + n, dtype=np.int64)
    z = np.random.default_rng(1).standard_normal([n, Z_DIM]).astype(np.float32)
    return {
        "reconstruct": {"images": x},
        "serving_default": {"images": x},
        "encode": {"images": x, "seed": seed},
        "reconstruct_float": {"images": x.astype(np.float32) / 255},
        "encode_float": {"images": x.astype(np.float32) / 255, "seed": seed},
        "decode": {"z": z},
        "sample": {"seed": seed},
    }


# ------------------------------------------------------------------ SavedModel layout


def test_export_layout_and_signatures(export_path):
    assert os.path.basename(export_path) == "1"
    for name in ("saved_model.pb", "variables",
                 "assets.extra/tf_serving_warmup_requests", "assets.extra/export_info.json"):
        assert os.path.exists(os.path.join(export_path, name)), name
    loaded = tf.saved_model.load(export_path)
    assert sorted(loaded.signatures) == ALL_SIGNATURES
    specs = {k: v.structured_input_signature[1] for k, v in loaded.signatures.items()}
    assert specs["reconstruct"]["images"].dtype == tf.uint8
    assert specs["reconstruct"]["images"].shape.as_list() == [None, 28, 28, 1]
    assert specs["encode"]["seed"].dtype == tf.int64
    assert specs["encode"]["seed"].shape.as_list() == [None]
    assert specs["decode"]["z"].shape.as_list() == [None, Z_DIM]
    assert specs["reconstruct_float"]["images"].dtype == tf.float32
    outputs = {k: sorted(v.structured_outputs) for k, v in loaded.signatures.items()}
    assert outputs["encode"] == ["z_mean", "z_sample"]
    assert outputs["reconstruct"] == outputs["serving_default"] == ["images", "z_mean"]
    assert outputs["sample"] == ["images", "z"]
    info = json.loads(Path(export_path, "assets.extra/export_info.json").read_text())
    assert info["serving_default"] == "reconstruct" and info["z_dim"] == Z_DIM


def test_every_signature_runs(local, images):
    """... and gives each example of a batch what it gives that example alone: no output may
    depend on the rest of the batch (batch norm on its moving statistics, per-example seeds)."""
    for name, inputs in _valid_inputs(images).items():
        outputs = local.run(name, inputs)
        for key, value in outputs.items():
            assert value.dtype == np.float32 and value.shape[0] == 4, (name, key)
            assert np.all(np.isfinite(value)), (name, key)
        if "images" in outputs:
            assert outputs["images"].shape == (4, 28, 28, 1)
        for i in (0, 3):
            alone = local.run(name, {k: v[i:i + 1] for k, v in inputs.items()})
            for key, value in outputs.items():
                np.testing.assert_allclose(alone[key][0], value[i], atol=1e-5, err_msg=f"{name}/{key}")


def test_signatures_match_the_model(local, model, images):
    x = images[:4]
    xf = x.astype(np.float32) / 255
    seed = np.array([3, 1, 4, 1], np.int64)
    noise = functions.noise_from_seeds(seed, Z_DIM)
    _, z_mean = model.encode(xf, noise=tf.zeros([4, Z_DIM]))  # T(mu)
    _, z_sample = model.encode(xf, noise=noise)
    enc = local.run("encode", {"images": x, "seed": seed})
    np.testing.assert_allclose(enc["z_mean"], z_mean, atol=1e-5)
    np.testing.assert_allclose(enc["z_sample"], z_sample, atol=1e-5)
    rec = local.run("reconstruct", {"images": x})
    np.testing.assert_allclose(rec["z_mean"], z_mean, atol=1e-5)
    np.testing.assert_allclose(rec["images"], model.decode_mean(z_mean), atol=1e-5)
    np.testing.assert_allclose(local.run("serving_default", {"images": x})["images"],
                               rec["images"], atol=0)
    np.testing.assert_allclose(local.run("reconstruct_float", {"images": xf})["images"],
                               rec["images"], atol=1e-6)
    smp = local.run("sample", {"seed": seed})
    np.testing.assert_allclose(smp["z"], noise, atol=0)
    np.testing.assert_allclose(smp["images"], model.sample(4, noise=noise), atol=1e-5)
    dec = local.run("decode", {"z": smp["z"]})
    np.testing.assert_allclose(dec["images"], smp["images"], atol=1e-6)


def test_seeded_draws_do_not_depend_on_the_batch(local):
    full = local.run("sample", {"seed": np.arange(5, dtype=np.int64)})
    one = local.run("sample", {"seed": np.array([3], np.int64)})
    np.testing.assert_allclose(one["z"][0], full["z"][3], atol=0)
    assert not np.allclose(full["z"][0], full["z"][1])


def test_saved_model_cli_lists_signatures(export_path):
    result = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", export_path],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ALL_SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout, name
    assert "DT_UINT8" in result.stdout and "DT_INT64" in result.stdout
    assert "shape: (-1, 28, 28, 1)" in result.stdout


# ------------------------------------------------------------------ warmup, versions


def test_warmup_requests_parse_and_replay(export_path, session):
    path = os.path.join(export_path, "assets.extra", saved_model.WARMUP_FILE)
    logs = saved_model.read_warmup(path)
    assert sorted(log.predict_log.request.model_spec.signature_name for log in logs) \
        == ALL_SIGNATURES
    signatures = tf.saved_model.load(export_path).signatures
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "svae"
        response = session.predict(request)  # as TF Serving replays them on load
        signature = signatures[request.model_spec.signature_name]
        assert sorted(response.outputs) == sorted(signature.structured_outputs)
        # The same answer as the signature called on the request's inputs.
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        expected = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        for key, value in response.outputs.items():
            np.testing.assert_allclose(tf.make_ndarray(value), expected[key].numpy(), atol=1e-6, err_msg=key)


def test_version_numbering(model, run_dir, tmp_path):
    base = tmp_path / "svae"
    (base / "notes").mkdir(parents=True)  # non-integer entries are ignored
    assert saved_model.next_version(str(base)) == 1
    first = saved_model.export_saved_model(run_dir, str(base), version=5, model=model)
    assert os.path.basename(first) == "5"
    second = saved_model.export_saved_model(run_dir, str(base), model=model)
    assert os.path.basename(second) == "6"
    with pytest.raises(FileExistsError, match="already exists"):
        saved_model.export_saved_model(run_dir, str(base), version=6, model=model)
    assert saved_model.existing_versions(str(base)) == [5, 6]
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_failed_export_leaves_nothing(model, run_dir, tmp_path, monkeypatch):
    # The warmup file is written after the SavedModel itself: fail there.
    step = "write_warmup"
    base = tmp_path / "svae"
    seen = {}
    original = getattr(saved_model, step)

    def fail(path, *args, **kwargs):
        original(path, *args, **kwargs)  # the step writes, then the export dies
        # The SavedModel is complete in the temporary dir, yet no version is visible.
        seen["staged"] = os.path.exists(os.path.join(os.path.dirname(path), "..",
                                                     "saved_model.pb"))
        seen["versions"] = saved_model.existing_versions(str(base))
        raise RuntimeError("disk full")

    monkeypatch.setattr(saved_model, step, fail)
    with pytest.raises(RuntimeError, match="disk full"):
        saved_model.export_saved_model(run_dir, str(base), model=model)
    assert seen == {"staged": True, "versions": []}
    assert saved_model.existing_versions(str(base)) == []
    assert not base.exists() or os.listdir(base) == []
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # temp dir removed


def _run_without_checkpoint(tmp_path):
    model_dir = tmp_path / "untrained"
    runs.save_config(str(model_dir), runs.ModelConfig(preset_overrides=OVERRIDES))
    return model_dir


def test_no_checkpoint_fails_clearly_and_writes_nothing(tmp_path):
    model_dir = _run_without_checkpoint(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        saved_model.export_saved_model(str(model_dir), str(tmp_path / "out" / "svae"))
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        tflite.export_tflite(str(model_dir), str(tmp_path / "lite"))
    with pytest.raises(FileNotFoundError, match="No config.json"):
        saved_model.export_saved_model(str(tmp_path / "nothing"), str(tmp_path / "out2"))
    assert sorted(os.listdir(tmp_path)) == before


def test_cli_no_checkpoint_exits_with_message(tmp_path):
    model_dir = _run_without_checkpoint(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "export.saved_model", f"--model_dir={model_dir}",
         f"--export_dir={tmp_path / 'svae'}"],
        capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 1
    assert "error: No checkpoint" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["untrained"]


# ------------------------------------------------------------------ clients


@pytest.mark.parametrize("row_format", [True, False])
def test_rest_body_is_executed(local, images, row_format):
    x = images[:3]
    body = serving_client.rest_body("reconstruct", {"images": x}, row_format=row_format)
    wire = json.dumps(body)  # what would be POSTed to .../v1/models/svae:predict
    assert json.loads(wire)["signature_name"] == "reconstruct"
    reply = local.rest(json.loads(wire))
    expected = local.run("reconstruct", {"images": x})
    if row_format:
        assert len(body["instances"]) == 3
        got = np.array([p["images"] for p in reply["predictions"]], np.float32)
    else:
        got = np.array(reply["outputs"]["images"], np.float32)
    np.testing.assert_allclose(got, expected["images"], atol=1e-6)
    # Two inputs in one instance, and a reply for a single-output signature.
    body = serving_client.rest_body("decode", {"z": np.zeros([2, Z_DIM], np.float32)})
    assert np.array(local.rest(body)["predictions"]).shape == (2, 28, 28, 1)
    body = serving_client.rest_body("encode", {"images": x, "seed": [1, 2, 3]},
                                    row_format=row_format)
    reply = local.rest(body)
    assert "error" not in reply, reply
    assert serving_client.rest_url("h", 8501, "svae", 3) == \
        "http://h:8501/v1/models/svae/versions/3:predict"


def test_grpc_request_is_executed(local, session, images):
    from tensorflow_serving.apis import predict_pb2

    x, seed = images[:2], np.array([7, 8], np.int64)
    request = serving_client.grpc_request("encode", {"images": x, "seed": seed})
    assert isinstance(request, predict_pb2.PredictRequest)
    assert request.inputs["images"].dtype == tf.uint8.as_datatype_enum
    wire = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    expected = local.run("encode", {"images": x, "seed": seed})
    for server in (local.grpc, session.predict):
        response = server(wire)
        for key in ("z_mean", "z_sample"):
            np.testing.assert_allclose(tf.make_ndarray(response.outputs[key]),
                                       expected[key], atol=1e-6)


def test_rest_errors_are_replies_not_crashes(local, images):
    bad_shape = serving_client.rest_body("reconstruct", {"images": images[:2, :27]})
    assert "error" in local.rest(bad_shape)
    floats = serving_client.rest_body("reconstruct", {"images": images[:2] / 255.0})
    assert "expected integers" in local.rest(floats)["error"]
    missing = serving_client.rest_body("encode", {"images": images[:2]})
    assert "Missing input" in local.rest(missing)["error"]


# ------------------------------------------------------------------ bad input


def _zero(name, local_inputs):
    return {k: v[:0] for k, v in local_inputs.items()}


def test_zero_batch_returns_zero_outputs(local, session, images):
    for name, inputs in _valid_inputs(images).items():
        for server in (local, session):
            outputs = server.run(name, _zero(name, inputs))
            for key, value in outputs.items():
                assert value.shape[0] == 0, (name, key)
                assert value.shape[1:] in {(28, 28, 1), (Z_DIM,)}


BAD_INPUTS = [
    # (signature, inputs, message of the in-graph check)
    ("reconstruct", {"images": np.zeros([2, 27, 28, 1], np.uint8)},
     "reconstruct: input `images` must be uint8 pixels of shape [batch, 28, 28, 1]"),
    ("reconstruct", {"images": np.zeros([2, 28, 28], np.uint8)},
     "reconstruct: input `images` must be uint8 pixels of shape [batch, 28, 28, 1]"),
    ("encode", {"images": np.zeros([2, 28, 28, 3], np.uint8), "seed": np.zeros(2, np.int64)},
     "encode: input `images` must be uint8 pixels of shape"),
    ("encode", {"images": np.zeros([2, 28, 28, 1], np.uint8), "seed": np.zeros(3, np.int64)},
     "encode: input `seed` must hold one seed per image"),
    ("encode_float", {"images": np.zeros([2, 28, 28, 1], np.float32),
                      "seed": np.zeros([2, 1], np.int64)},
     "encode_float: input `seed` must be int64 seeds of shape [batch]"),
    ("decode", {"z": np.zeros([2, Z_DIM + 1], np.float32)},
     f"decode: input `z` must be float32 latents of shape [batch, {Z_DIM}]"),
    ("sample", {"seed": np.int64(3)}, "sample: input `seed` must be int64 seeds of shape"),
]


@pytest.mark.parametrize("signature,inputs,message", BAD_INPUTS)
def test_bad_shapes(local, session, signature, inputs, message):
    # Python loader: refused before execution, naming the declared spec.
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        local.signature(signature)(**{k: tf.constant(v) for k, v in inputs.items()})
    # Fed to the graph as TF Serving does: the in-graph check names the input.
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        session.run(signature, inputs)
    assert message in error.value.message.replace("\\", "")


BAD_VALUES = [
    ("reconstruct_float", "images", np.nan, "reconstruct_float: input `images` has NaN or Inf"),
    ("encode_float", "images", np.inf, "encode_float: input `images` has NaN or Inf"),
    ("reconstruct_float", "images", 255.0, "input `images` must be float32 pixels in [0, 1]"),
    ("decode", "z", np.nan, "decode: input `z` has NaN or Inf"),
]


@pytest.mark.parametrize("signature,key,value,message", BAD_VALUES)
def test_bad_values(local, session, images, signature, key, value, message):
    inputs = dict(_valid_inputs(images)[signature])
    inputs[key] = inputs[key].copy()
    inputs[key].flat[5] = value
    for run in (local.run, session.run):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            run(signature, inputs)
        assert message in error.value.message.replace("\\", "")


def test_wrong_dtypes(local, session, images):
    floats = images[:2].astype(np.float32) / 255
    # A float tensor to the uint8 signature: refused by the loaded function ...
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8"):
        local.signature("reconstruct")(images=tf.constant(floats))
    # ... and by the local client before TF would cast 0.5 -> 0 silently.
    with pytest.raises(TypeError, match="input 'images' must be uint8"):
        local.run("reconstruct", {"images": floats})
    # Fed to the graph (TF Serving): type mismatch at the input's _Arg node.
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?s)Type mismatch.*images"):
        session.run("reconstruct", {"images": floats})
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?s)Type mismatch.*seed"):
        session.run("sample", {"seed": np.arange(2, dtype=np.int32)})
    request = serving_client.grpc_request("reconstruct", {"images": floats})
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 'images'.*uint8"):
        local.grpc(request)


# ------------------------------------------------------------------ LiteRT


def test_litert_models_use_builtin_ops_only(lite_models):
    assert sorted(lite_models) == sorted(
        f"{m}_{q}.tflite" for m in ("sampler", "encoder") for q in tflite.QUANTIZATIONS)
    for name, path in lite_models.items():
        content = Path(path).read_bytes()
        assert tflite.flex_ops(content) == [], name
        lite = tflite_sample.LiteModel(path)  # the plain builtin-op Interpreter
        assert not [op for op in lite.op_names if op.startswith("Flex")], name
        x = np.zeros([2, *lite.input_shape[1:]], np.float32)
        assert lite(x).shape[0] == 2
    info = json.loads(Path(lite_models["sampler_float32.tflite"]).with_name(
        tflite.INFO_FILE).read_text())
    assert info["supported_ops"] == "TFLITE_BUILTINS"
    assert not [p for p in os.listdir(Path(path).parent) if ".tmp-" in p]


def test_litert_float32_matches_saved_model(lite_models, local, images):
    z = np.random.default_rng(2).standard_normal([16, Z_DIM]).astype(np.float32)
    xf = images[:16].astype(np.float32) / 255
    ref_images = local.run("decode", {"z": z})["images"]
    ref_z = local.run("encode_float", {"images": xf, "seed": np.arange(16)})["z_mean"]
    sampler = tflite_sample.LiteModel(lite_models["sampler_float32.tflite"])
    encoder = tflite_sample.LiteModel(lite_models["encoder_float32.tflite"])
    for n in (1, 16):  # batch 1 and a resized batch
        assert np.abs(sampler(z[:n]) - ref_images[:n]).max() < FLOAT32_TOL
        assert np.abs(encoder(xf[:n]) - ref_z[:n]).max() < FLOAT32_TOL
    assert sampler(z[:0]).shape == (0, 28, 28, 1)
    with pytest.raises(ValueError, match="shape"):
        sampler(z[:, :3])
    with pytest.raises(ValueError, match="float32"):
        encoder(images[:2])


def test_litert_quantized_error_is_bounded(lite_models, local, images):
    z = np.random.default_rng(3).standard_normal([32, Z_DIM]).astype(np.float32)
    xf = images[:32].astype(np.float32) / 255
    ref_images = local.run("decode", {"z": z})["images"]
    ref_z = local.run("encode_float", {"images": xf, "seed": np.arange(32)})["z_mean"]
    errors = {}
    for q in ("float16", "int8"):
        errors[f"sampler_{q}"] = np.abs(
            tflite_sample.LiteModel(lite_models[f"sampler_{q}.tflite"])(z) - ref_images).max()
        errors[f"encoder_{q}"] = np.abs(
            tflite_sample.LiteModel(lite_models[f"encoder_{q}.tflite"])(xf) - ref_z).max()
    scale = max(1.0, float(np.abs(ref_z).max()))
    assert errors["sampler_float16"] < FLOAT16_IMAGE_TOL, errors
    assert errors["encoder_float16"] < FLOAT16_Z_TOL * scale, errors
    assert errors["sampler_int8"] < INT8_IMAGE_TOL, errors
    assert errors["encoder_int8"] < INT8_Z_TOL * scale, errors
    # int8 transposed convs keep int8 weights but not the slow hybrid kernel (tflite.py).
    assert tflite.hybrid_transpose_convs(
        Path(lite_models["sampler_int8.tflite"]).read_bytes()) == 0
    sizes = {q: os.path.getsize(lite_models[f"sampler_{q}.tflite"]) for q in tflite.QUANTIZATIONS}
    assert sizes["int8"] < 0.4 * sizes["float32"] and sizes["float16"] < 0.6 * sizes["float32"]


def test_litert_sample_writes_png(lite_models, tmp_path):
    from PIL import Image

    lite = tflite_sample.LiteModel(lite_models["sampler_float32.tflite"])
    samples = tflite_sample.sample(lite, 10, seed=0)
    assert samples.shape == (10, 28, 28, 1)
    path = tmp_path / "grid.png"
    tflite_sample.write_png(str(path), tflite_sample.image_grid(samples))
    assert Image.open(path).size == (4 * 28, 3 * 28)


def test_litert_conversion_failure_writes_nothing(model, lite_models, tmp_path, monkeypatch):
    contents = {k: Path(v).read_bytes() for k, v in lite_models.items()}
    monkeypatch.setattr(tflite, "convert", lambda m, q: contents)
    monkeypatch.setattr(tflite, "flex_ops",
                        lambda c: ["FlexRandomStandardNormal"] if c is contents[
                            "encoder_int8.tflite"] else [])
    with pytest.raises(RuntimeError, match="FlexRandomStandardNormal"):
        tflite.export_tflite(None, str(tmp_path / "lite"), model=model)
    assert not (tmp_path / "lite").exists()


def test_maf_flow_encoder_converts_to_a_builtin_while_loop():
    # MAF's forward pass is a sequential loop: it becomes the builtin WHILE op and runs.
    # (IAF's forward pass is one conditioner pass per layer; it converts as coupling does.)
    flow = "maf"
    config = runs.ModelConfig(preset_overrides={**OVERRIDES, "flow": flow})
    model = runs.build_model(config)
    contents = tflite.convert(model, ["float32"])
    lite = tflite_sample.LiteModel(model_content=contents["encoder_float32.tflite"])
    assert "WHILE" in lite.op_names
    x = np.random.default_rng(4).random([3, 28, 28, 1], dtype=np.float32)
    np.testing.assert_allclose(lite(x), functions.z_mean(model, tf.constant(x)),
                               atol=FLOAT32_TOL)


def test_decoder_only_variant_exports_decode_and_sample(tmp_path):
    config = runs.ModelConfig(preset_overrides=OVERRIDES, variant="gan")
    model = runs.build_model(config)
    path = saved_model.export_saved_model(None, str(tmp_path / "gan"), model=model)
    server = serving_client.LocalServer(path)
    assert sorted(server.signatures) == ["decode", "sample", "serving_default"]
    out = server.run("serving_default", {"seed": np.arange(3)})
    assert out["images"].shape == (3, 28, 28, 1)
    contents = tflite.convert(model, ["float32"])
    assert sorted(contents) == ["sampler_float32.tflite"]
