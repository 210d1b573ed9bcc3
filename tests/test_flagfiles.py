"""Every flagfile in trainers/configs/ trains on the real data.

Each file runs as its own documented command (the `python -m trainers.<name>
--flagfile=trainers/configs/<file>` line in its header) in a subprocess, for two steps
of a small batch on the first 16 real examples, with overrides after `--flagfile`
(which win over the file). The architecture, variant, lambda and optimizer settings
are the file's own. Asserted: exit status 0, finite training and held-out scalars in
TensorBoard at every step, a checkpoint, the PNG grids, a config of the file's variant.

The files are collected with a glob, so a new flagfile is covered without editing this.

ImageNet 64 is not available here: `imagenet_svae_r.flags` trains on a folder of real
CIFAR-10 images upsampled to 64x64 PNGs (`--dataset=folder:DIR --image_size=64`), and
the plain command must stop with the message naming the dataset and the directory searched.
"""

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

import trainer_testlib as tl

CONFIGS = tl.REPO / "trainers" / "configs"
FLAGFILES = sorted(CONFIGS.glob("*.flags"))

# Small overrides: 16 examples, batch 8, 2 steps, 1 held-out batch.
OVERRIDES = [
    "--take=16",
    "--batch_size=8",
    "--steps_per_epoch=2",
    "--epochs=1",
    "--eval_batches=1",
    "--num_grid_images=4",
    "--log_every_steps=1",
    "--verbose=2",
]
STEPS = 2

# Trainers whose dataset is not prepared here, and the image size of the folder that
# stands in for it.
FOLDER_INSTEAD = {"imagenet": 64}

_COMMAND = re.compile(r"python -m trainers\.(\w+) --flagfile=trainers/configs/(\S+\.flags)")


def _documented_command(path):
    """(trainer, flagfile) of the command line in the file's header comment."""
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    match = _COMMAND.search(header)
    assert match, f"{path.name}: no 'python -m trainers.<name> --flagfile=trainers/configs/...' line in its header"
    return match.group(1), match.group(2)


def _flag(path, name):
    """The value of --name=... in a flagfile, or None."""
    for line in path.read_text().splitlines():
        if line.startswith(f"--{name}="):
            return line.split("=", 1)[1].strip()
    return None


def test_every_flagfile_documents_its_command():
    assert len(FLAGFILES) >= 10, FLAGFILES
    for path in FLAGFILES:
        trainer, named = _documented_command(path)
        assert named == path.name, f"{path.name} documents the command of {named}"
        assert (tl.REPO / "trainers" / f"{trainer}.py").is_file(), f"{path.name}: no trainers/{trainer}.py"
        assert _flag(path, "variant"), f"{path.name} sets no --variant"


@pytest.fixture(scope="module")
def upsampled_cifar_folder(tmp_path_factory, data_dir):
    """A folder of 16 real CIFAR-10 training images, upsampled (bicubic) to 64x64 PNGs."""
    from svae_tf.data import pipelines as data

    folder = tmp_path_factory.mktemp("cifar_as_64x64")
    batch = next(iter(data.load_images("cifar10", "train", batch_size=16, data_dir=data_dir, take=16)))
    pixels = np.round(batch.numpy() * 255.0).astype(np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image).resize((64, 64), Image.BICUBIC).save(folder / f"{i:02d}.png")
    return folder


@pytest.mark.parametrize("path", FLAGFILES, ids=[p.name for p in FLAGFILES])
def test_flagfile_trains_on_real_data(path, tmp_path, data_dir, request):
    trainer, _ = _documented_command(path)
    model_dir = tmp_path / "run"
    args = [f"--flagfile=trainers/configs/{path.name}", f"--model_dir={model_dir}", *OVERRIDES]
    if trainer in FOLDER_INSTEAD:
        folder = request.getfixturevalue("upsampled_cifar_folder")
        args += [f"--dataset=folder:{folder}", f"--image_size={FOLDER_INSTEAD[trainer]}"]
    proc = tl.check_ok(tl.run(trainer, *args, timeout=900, extra_env={"TFDS_DATA_DIR": data_dir}))
    epoch, _, step, _ = tl.finished(proc.stdout + proc.stderr)
    assert (epoch, step) == (1, STEPS)

    variant = _flag(path, "variant")
    config = json.loads((model_dir / "config.json").read_text())
    assert config["variant"] == variant
    assert tl.checkpoint_numbers(model_dir) == [STEPS]
    assert list((model_dir / "checkpoints").glob(f"ckpt-{STEPS}.index"))

    train = tl.event_scalars(model_dir / "logs" / "train")
    names = {"g_loss"} | ({"log_px_given_z", "elbo"} if variant == "vae" else {"d_loss", "d_acc_q", "d_acc_p"})
    if variant == "svae_r":
        names |= {"log_px_given_z", "log_qz_given_x", "symmetric_kl_bound"}
    for name in names:
        assert [s for s, _ in train.get(name, [])] == list(range(1, STEPS + 1)), (name, sorted(train))
        assert f"epoch/{name}" in train, (name, sorted(train))
    validation = tl.event_scalars(model_dir / "logs" / "validation")
    assert "elbo" in validation, sorted(validation)
    for tag, values in {**train, **{f"validation/{t}": v for t, v in validation.items()}}.items():
        assert all(math.isfinite(v) for _, v in values), (tag, values)

    for name in ("samples", "reconstructions"):
        with Image.open(model_dir / f"{name}_epoch_001.png") as image:
            image.load()


def test_imagenet_flagfile_without_the_data_stops_with_a_clear_message(data_dir, tmp_path):
    """The plain documented command, on a data directory without ImageNet 64."""
    from svae_tf.data import pipelines as data

    path = CONFIGS / "imagenet_svae_r.flags"
    trainer, _ = _documented_command(path)
    try:
        data.num_examples("imagenet64", "train", data_dir)
        search_dir = tmp_path / "tfds"  # ImageNet 64 is prepared there: use an empty directory
        search_dir.mkdir()
    except data.DatasetNotFoundError:
        search_dir = data_dir
    runs_dir_existed = (tl.REPO / "runs" / "imagenet_svae_r").exists()
    proc = tl.run(trainer, f"--flagfile=trainers/configs/{path.name}", timeout=300,
                  extra_env={"TFDS_DATA_DIR": str(search_dir)})
    assert proc.returncode != 0, proc.stdout[-2000:]
    message = proc.stderr
    assert re.search(r"Dataset 'imagenet64' .* not found in data_dir " + re.escape(repr(str(search_dir))), message), message[-3000:]
    assert "Searched:" in message and "TFDS_DATA_DIR" in message, message[-3000:]
    assert "Traceback" not in message, message[-3000:]
    if not runs_dir_existed:
        assert not (tl.REPO / "runs" / "imagenet_svae_r").exists(), "the failed run wrote its model_dir"
