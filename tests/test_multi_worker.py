"""Two worker processes on 127.0.0.1 train together with --strategy=multi_worker.

MultiWorkerMirroredStrategy reads the cluster from TF_CONFIG. Both workers must end
with identical weights (each prints a sha256 of its weights); the chief (worker 0)
writes the run to model_dir, the other worker only to a temporary directory.
"""

import json
import socket
import subprocess

import pytest

import trainer_testlib as tl

pytestmark = pytest.mark.usefixtures("data_dir")  # skips without the data; fails under CI


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_end_with_identical_weights(tmp_path):
    from svae_tf import runs

    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = tmp_path / "multi_worker"
    args = ["--take=64", "--batch_size=16", "--steps_per_epoch=3", "--epochs=1", "--eval_batches=1",
            "--num_grid_images=4", "--flow=none", "--strategy=multi_worker",
            f"--model_dir={model_dir}", "--verbose=2"]
    workers, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w+")
        logs.append(log)
        workers.append(subprocess.Popen(
            tl.command("mnist", *args), cwd=tl.REPO, env=tl.env(TF_CONFIG=tf_config),
            stdout=log, stderr=subprocess.STDOUT, text=True,
        ))
    try:
        for proc in workers:
            proc.wait(timeout=400)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    for index, (proc, output) in enumerate(zip(workers, outputs)):
        assert proc.returncode == 0, f"worker {index} exit {proc.returncode}:\n{output[-5000:]}"
    assert "worker:0 of 2 replicas" in outputs[0] and "worker:1 of 2 replicas" in outputs[1]

    results = [tl.finished(output) for output in outputs]
    assert results[0][:3] == (1, 3, 3)
    assert results[0] == results[1], "workers ended with different weights"

    # Only the chief wrote the run; its checkpoint loads.
    assert tl.checkpoint_numbers(model_dir) == [3]
    assert (model_dir / "samples_epoch_001.png").exists()
    assert list((model_dir / "logs" / "train").glob("events.out.tfevents.*"))
    runs.load_model(str(model_dir))
    assert "Saved checkpoint" not in outputs[1]
