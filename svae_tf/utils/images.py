"""Image grids and PNG files: the one helper behind the trainer's grids, the LiteRT sampler's
PNG and the sample grids of `benchmarks.reproduce_mnist`.

numpy, Pillow and `svae_tf.utils.files` only (no TensorFlow), so `export.tflite_sample` stays
TensorFlow-free.
"""

import io
import math

import numpy as np

from svae_tf.utils import files


def image_grid(images, columns=None):
    """numpy [N, H, W, C] in [0, 1] -> one image [rows H, columns W, C] float32 in [0, 1].

    Row-major, `columns` per row (default ceil(sqrt(N))); cells after the last image are
    white (1.0). Values are clipped to [0, 1].
    """
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    columns = columns or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / columns))
    grid = np.ones((rows * h, columns * w, c), np.float32)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = images[i]
    return grid


def to_uint8(images):
    """Images in [0, 1] -> uint8 levels round(255 x), clipped (any shape)."""
    return np.round(np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_png(grid):
    """[H, W, C] float in [0, 1] (or uint8 levels) -> PNG bytes (grey for C == 1)."""
    from PIL import Image

    grid = np.asarray(grid)
    pixels = grid if grid.dtype == np.uint8 else to_uint8(grid)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path, grid):
    """Write `grid` ([H, W, C] float in [0, 1] or uint8) as a PNG at `path`, atomically
    (`files.atomic_write`)."""
    files.atomic_write(path, encode_png(grid))
