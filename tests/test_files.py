"""Tests of svae_tf.utils.files (atomic writes) and runs.checkpoint_info."""

import json
import os

import pytest

from svae_tf.utils import files


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    files.atomic_write(path, "first")
    files.atomic_write(path, "zweite Fassung")
    assert path.read_text(encoding="utf-8") == "zweite Fassung"
    files.atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    files.write_json(tmp_path / "v.json", {"b": 1, "a": float("nan")})
    assert (tmp_path / "v.json").read_text() == '{\n  "a": NaN,\n  "b": 1\n}'
    assert sorted(os.listdir(tmp_path)) == ["out.txt", "v.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(path, suffix=".keras") as tmp:
            assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("the writer failed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["model.keras"]
    with pytest.raises(TypeError):
        files.atomic_write(path, 3)  # neither str nor bytes
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["model.keras"]


def test_checkpoint_info_reads_the_trainers_counters(tmp_path):
    import tensorflow as tf

    from svae_tf import runs

    model_dir = os.fspath(tmp_path)
    assert runs.checkpoint_info(model_dir) == (0, 0, None)
    optimizer_like = tf.Module()
    optimizer_like.iterations = tf.Variable(40, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(epoch=tf.Variable(2, dtype=tf.int64), g_optimizer=optimizer_like)
    path = runs.checkpoint_manager(checkpoint, model_dir).save()
    assert runs.checkpoint_info(model_dir) == runs.CheckpointInfo(epoch=2, steps=40, path=path)
    other = tf.train.Checkpoint(weights=tf.Variable(1.0))  # no counters
    path = runs.checkpoint_manager(other, model_dir).save()
    assert runs.checkpoint_info(model_dir) == (None, None, path)
    json.dumps(runs.checkpoint_info(model_dir))  # plain values
