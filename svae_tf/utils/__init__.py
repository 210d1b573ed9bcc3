"""Layer 1 -- helpers with no project imports.

- `files`: `atomic_write`, `atomic_path`, `write_json` (write to a temp path, then rename).
- `logs`: TensorFlow's log level for the command-line programs.
- `images`: `image_grid`, `encode_png`, `write_png`.
"""
