"""The README's chain end to end, as a user runs it: train -> classifier -> evaluate ->
SavedModel -> LiteRT -> on-device sampling -> REST and gRPC requests.

Every step is the README's command (`python -m ...` from the repository root, in the
installed environment), with small sizes so the chain takes a minute or two:

1. `TFDS_DATA_DIR=... python -m trainers.mnist --flagfile=trainers/configs/mnist_svae_r_quick.flags`
   with overrides after the flagfile (2 steps of batch 8 on 32 real MNIST images; this is the
   flagfile's test in `test_flagfiles.py` too);
2. `python -m trainers.classifier --output=PATH` (the MNIST classifier behind IS/FID), here
   1 epoch of 2 steps on 64 images instead of 10 epochs on 60,000;
3. `python -m trainers.evaluate --model_dir=... --dataset=mnist --json=... --classifier=PATH`
   with K = 8 on 16 test images and 32 samples;
4. `python -m export.saved_model --model_dir=... --export_dir=.../svae`, and
   `saved_model_cli show --all --dir .../svae/1`;
5. `python -m export.tflite --model_dir=... --output_dir=...` (all three quantizations);
6. `python -m export.tflite_sample --tflite=.../sampler_float32.tflite --out=samples.png --num=16`;
7. `python -m export.serving_client --export_dir=.../svae --signature=sample`, then the
   `curl -d ...` REST request and the Python REST/gRPC example (`sc.post_rest`,
   `sc.predict_grpc`) of docs/deployment.md, both read from it and sent to `tests/serving_standin.py`, a
   TF Serving stand-in on 127.0.0.1 whose REST and gRPC predict APIs run the requests on
   the export with `serving_client.LocalServer` (the hosts and ports are the only change).

Not run here: `docker run ... tensorflow/serving` (no Docker engine in this workspace; the
stand-in takes its place), `tensorboard --logdir runs/` (a long-running server), the
full-size runs (minutes to hours), `pip install -e .` (the environment is installed).
"""

import ast
import json
import math
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainer_testlib as tl

DEPLOYMENT = tl.REPO / "docs" / "deployment.md"  # the serving examples (REST, gRPC)
MNIST_Z_DIM = 64  # the MNIST preset's latent size (docs/deployment.md, signatures table)
SIGNATURES = ["decode", "encode", "encode_float", "reconstruct", "reconstruct_float", "sample",
              "serving_default"]


def _python(*args):
    return [sys.executable, *map(str, args)]


QUIET = ("train", "evaluate", "saved_model", "tflite")  # no TensorFlow C++ notices at the default level


def _run(step, argv, timings, data_dir, timeout=600):
    """Run one step of the chain from the repository root with the user's default log level
    (no TF_CPP_MIN_LOG_LEVEL); returns its CompletedProcess."""
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=tl.REPO, env=tl.user_env(TFDS_DATA_DIR=data_dir), capture_output=True,
                          text=True, timeout=timeout)
    timings[step] = round(time.monotonic() - start, 1)
    assert proc.returncode == 0, (
        f"{step}: {shlex.join(map(str, argv))} exited {proc.returncode}\n"
        f"STDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-5000:]}")
    if step in QUIET:
        tl.assert_quiet(proc)
    return proc


def _doc_block(language, after=None, containing=None, doc=DEPLOYMENT):
    """The first ```language block of `doc` after the line `after` / containing `containing`."""
    text = doc.read_text()
    if after is not None:
        assert after in text, f"{doc.name} has no {after!r}"
        text = text[text.index(after):]
    for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S):
        if containing is None or containing in block:
            return block
    raise AssertionError(f"{doc.name}: no ```{language} block" + (f" with {containing!r}" if containing else ""))


def _substitute(text, old, new):
    assert text.count(old) == 1, f"docs example changed: expected one {old!r} in\n{text}"
    return text.replace(old, new)


@pytest.fixture
def standin():
    """Start tests/serving_standin.py on an export base dir; yields its ports; stops it."""
    procs = []

    def start(export_dir):
        proc = subprocess.Popen(
            _python(Path(__file__).with_name("serving_standin.py"), f"--export_dir={export_dir}",
                    "--lifetime=300"),
            cwd=tl.REPO, env=tl.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline()  # {"rest": port, "grpc": port} once both listen
        assert line, f"the TF Serving stand-in did not start:\n{proc.stderr.read()[-3000:]}"
        return json.loads(line)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_readme_chain(tmp_path, data_dir, standin):
    timings = {}

    def run(step, argv):
        return _run(step, argv, timings, data_dir)

    run_dir = tmp_path / "mnist_svae_r_quick"
    classifier = tmp_path / "mnist_classifier.keras"
    eval_json = tmp_path / "eval.json"
    exports = tmp_path / "exports" / "svae"
    litert = tmp_path / "litert"
    samples_png = tmp_path / "samples.png"

    # 1. Train (the README's main job, tiny).
    proc = run("train", _python("-m", "trainers.mnist", "--flagfile=trainers/configs/mnist_svae_r_quick.flags",
                                f"--model_dir={run_dir}", "--take=32", "--batch_size=8", "--steps_per_epoch=2",
                                "--epochs=1", "--eval_batches=1", "--num_grid_images=4", "--log_every_steps=1",
                                "--verbose=2"))
    epoch, _, step, _ = tl.finished(proc.stdout + proc.stderr)
    assert (epoch, step) == (1, 2)
    assert "WARNING" not in proc.stdout + proc.stderr  # e.g. no flag of the flagfile reported as unused
    variant = re.search(r"^--variant=(\S+)$", (tl.REPO / "trainers" / "configs" / "mnist_svae_r_quick.flags").read_text(),
                        re.M).group(1)
    tl.assert_trained(run_dir, variant, 2)  # the checks test_flagfiles.py makes of every flagfile
    for name in ("config.json", "flags.json", "flags.txt", "samples_epoch_001.png", "reconstructions_epoch_001.png"):
        assert (run_dir / name).is_file(), name

    # 2. The MNIST classifier for IS / FID (README: `python -m trainers.classifier`).
    run("classifier", _python("-m", "trainers.classifier", f"--output={classifier}", "--epochs=1",
                              "--batch_size=32", "--take=64", "--steps_per_epoch=2", "--test_take=64",
                              "--splits=2", "--verbose=0"))
    assert classifier.is_file() and Path(f"{classifier}.json").is_file()

    # 3. Evaluate.
    proc = run("evaluate", _python("-m", "trainers.evaluate", f"--model_dir={run_dir}", "--dataset=mnist",
                                   f"--json={eval_json}", "--iw_samples=8", "--num_nll_images=16",
                                   "--nll_batch_size=8", "--num_rmse_images=16", "--num_samples=32",
                                   "--splits=2", "--num_reference=64", "--batch_size=16",
                                   f"--classifier={classifier}", f"--cache_dir={tmp_path / 'cache'}"))
    assert "| run | variant | steps |" in proc.stdout, proc.stdout
    results = json.loads(eval_json.read_text())
    for key in ("nll_nats", "nll_bits_per_dim", "elbo", "rmse", "inception_score", "fid"):
        assert isinstance(results[key], float) and math.isfinite(results[key]), (key, results[key])
    assert results["train_steps"] == 2 and results["iw_samples"] == 8 and results["num_samples"] == 32
    assert results["elbo"] < 0 and -results["elbo"] >= results["nll_nats"] - 1e-3  # IWAE >= ELBO
    assert 0 <= results["rmse"] <= 255 and 1.0 <= results["inception_score"] <= 10.0 and results["fid"] >= 0
    np.testing.assert_allclose(results["nll_bits_per_dim"], results["nll_nats"] / (784 * math.log(2)), rtol=1e-6)

    # 4. SavedModel for TF Serving, and its inspection.
    proc = run("saved_model", _python("-m", "export.saved_model", f"--model_dir={run_dir}",
                                      f"--export_dir={exports}"))
    version = exports / "1"
    assert f"Exported {version}" in proc.stdout, proc.stdout
    assert sorted(re.search(r"Signatures: (.*)", proc.stdout).group(1).split(", ")) == SIGNATURES
    for name in ("saved_model.pb", "variables", "assets.extra/tf_serving_warmup_requests",
                 "assets.extra/export_info.json"):
        assert (version / name).exists(), name
    saved_model_cli = Path(sys.executable).with_name("saved_model_cli")
    proc = run("saved_model_cli", [str(saved_model_cli), "show", "--all", "--dir", str(version)])
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in proc.stdout, name

    # 5. LiteRT models.
    proc = run("tflite", _python("-m", "export.tflite", f"--model_dir={run_dir}", f"--output_dir={litert}"))
    for q in ("float32", "float16", "int8"):
        for kind in ("sampler", "encoder"):
            assert (litert / f"{kind}_{q}.tflite").stat().st_size > 0, (kind, q)
    assert (litert / "litert_info.json").is_file()

    # 6. On-device sampling.
    proc = run("tflite_sample", _python("-m", "export.tflite_sample", f"--tflite={litert / 'sampler_float32.tflite'}",
                                        f"--out={samples_png}", "--num=16"))
    assert "Wrote 16 samples" in proc.stdout, proc.stdout
    with Image.open(samples_png) as grid:
        assert grid.size == (4 * 28, 4 * 28)
        pixels = np.asarray(grid)
    assert pixels.std() > 0  # not a blank image

    # 7. Requests: the demo client, then docs/deployment.md's curl and Python examples over the wire.
    proc = run("serving_client", _python("-m", "export.serving_client", f"--export_dir={exports}",
                                         "--signature=sample"))
    rest_line = re.search(r"(\d+) predictions, per-example shapes (\{.*\})", proc.stdout)
    grpc_line = re.search(r"gRPC: PredictRequest -> (\{.*\})", proc.stdout)
    assert rest_line and grpc_line, proc.stdout
    assert rest_line.group(1) == "2", proc.stdout
    assert ast.literal_eval(rest_line.group(2)) == {"images": (28, 28, 1), "z": (MNIST_Z_DIM,)}, proc.stdout
    assert ast.literal_eval(grpc_line.group(1)) == {"images": [2, 28, 28, 1], "z": [2, MNIST_Z_DIM]}, proc.stdout

    ports = standin(exports)
    assert shutil.which("curl"), "curl is not installed (apt-get install curl)"
    curl = shlex.split(_doc_block("bash", containing="curl -d").replace("\\\n", " "))
    curl = [_substitute(a, "http://localhost:8501/", f"http://127.0.0.1:{ports['rest']}/") if a.startswith("http") else a
            for a in curl]
    proc = run("curl", curl)
    predictions = json.loads(proc.stdout)["predictions"]
    assert len(predictions) == 2
    assert np.shape(predictions[0]["images"]) == (28, 28, 1) and np.shape(predictions[0]["z"]) == (MNIST_Z_DIM,)
    assert np.all((np.asarray(predictions[0]["images"]) >= 0) & (np.asarray(predictions[0]["images"]) <= 1))

    example = _doc_block("python", after="From Python (`export/serving_client.py`):")
    example = _substitute(example, 'sc.rest_url("localhost", 8501, "svae")',
                          f'sc.rest_url("127.0.0.1", {ports["rest"]}, "svae")')
    example = _substitute(example, '"localhost:8500"', f'"127.0.0.1:{ports["grpc"]}"')
    example += (
        "\nimport json\n"
        "row_reply = sc.post_rest(sc.rest_url('127.0.0.1', %d, 'svae'),"
        " sc.rest_body('reconstruct', {'images': np.zeros([2, 28, 28, 1], np.uint8)}))\n"
        "print(json.dumps({'encode': {k: np.shape(v) for k, v in reply['outputs'].items()},"
        " 'reconstruct': [{k: np.shape(v) for k, v in p.items()} for p in row_reply['predictions']],"
        " 'grpc_images': list(images.shape), 'grpc_min': float(images.min()), 'grpc_max': float(images.max())}))\n"
        % ports["rest"]
    )
    proc = run("python_rest_grpc", _python("-c", example))
    shapes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shapes["encode"] == {"z_mean": [2, MNIST_Z_DIM], "z_sample": [2, MNIST_Z_DIM]}, shapes
    assert shapes["reconstruct"] == [{"images": [28, 28, 1], "z_mean": [MNIST_Z_DIM]}] * 2, shapes
    assert shapes["grpc_images"] == [4, 28, 28, 1] and 0 <= shapes["grpc_min"] <= shapes["grpc_max"] <= 1, shapes
    print("chain step wall times (s):", json.dumps(timings))
