"""Every flagfile in trainers/configs/ trains on the real data.

Each file runs as its own documented command (the `python -m trainers.<name>
--flagfile=trainers/configs/<file>` line in its header) in a subprocess, for two steps
of a small batch on the first 16 real examples, with overrides after `--flagfile`
(which win over the file). The architecture, variant, lambda and optimizer settings
are the file's own. Asserted: exit status 0, finite training and held-out scalars in
TensorBoard at every step, a checkpoint, the PNG grids, a config of the file's variant.

The files are collected with a glob, so a new flagfile is covered without editing this;
`mnist_svae_r_quick.flags` is trained by the README chain (`test_chain.py`) instead.

ImageNet 64 is not available here: `imagenet_svae_r.flags` trains on a folder of real
CIFAR-10 images upsampled to PNGs of other sizes (`--dataset=folder:DIR --image_size=64`), and
the plain command must stop with the message naming the dataset and the directory searched.
"""

import re

import numpy as np
import pytest
from PIL import Image

import trainer_testlib as tl

CONFIGS = tl.REPO / "trainers" / "configs"
FLAGFILES = sorted(CONFIGS.glob("*.flags"))
# Flagfiles another test trains with the same checks (`tl.assert_trained`), not run again here.
TRAINED_ELSEWHERE = {"mnist_svae_r_quick.flags": "test_chain.py"}
TRAINED_HERE = [p for p in FLAGFILES if p.name not in TRAINED_ELSEWHERE]

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
    """A folder of 16 real CIFAR-10 training images, upsampled (bicubic) to PNGs of 64 to 79 x
    90 pixels: not square and not 64x64, so the trainer center-crops and resizes them."""
    from svae_tf.data import pipelines as data

    folder = tmp_path_factory.mktemp("cifar_as_64x64")
    batch = next(iter(data.load_images("cifar10", "train", batch_size=16, data_dir=data_dir, take=16)))
    pixels = np.round(batch.numpy() * 255.0).astype(np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image).resize((90, 64 + i), Image.BICUBIC).save(folder / f"{i:02d}.png")
    return folder


def test_flagfiles_trained_elsewhere_are_trained_there():
    for name, test_file in TRAINED_ELSEWHERE.items():
        text = (tl.REPO / "tests" / test_file).read_text()
        assert f"--flagfile=trainers/configs/{name}" in text and "tl.assert_trained(" in text, (name, test_file)


@pytest.mark.parametrize("path", TRAINED_HERE, ids=[p.name for p in TRAINED_HERE])
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

    tl.assert_trained(model_dir, _flag(path, "variant"), STEPS)

    for name in ("samples", "reconstructions"):
        with Image.open(model_dir / f"{name}_epoch_001.png") as image:
            image.load()
            if trainer in FOLDER_INSTEAD and name == "samples":  # 4 images of the requested size, 2 x 2
                assert image.size == (2 * FOLDER_INSTEAD[trainer],) * 2, image.size


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
