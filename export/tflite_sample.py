"""Sample images on device with LiteRT: `ai_edge_litert` + numpy + Pillow, no TensorFlow.

    python -m export.tflite_sample --tflite=litert/sampler_float32.tflite \
        --out=samples.png --num=64 --seed=0

The sampler model maps latent noise [N, z_dim] float32 to images [N, H, W, C] float32 in
[0, 1] (decoder means). Random draws are not part of the model (TFLite has no builtin
`RandomStandardNormal`), so the caller draws z ~ N(0, I), here with numpy. The model
uses TFLite builtin ops only, so the plain `Interpreter` (no Flex delegate) runs it.
The grid and the PNG come from `svae_tf.utils.images` (numpy + Pillow), as the trainer's do.
"""

from absl import flags
import numpy as np

from svae_tf import cli
from svae_tf.utils.images import image_grid, write_png  # noqa: F401 (numpy + Pillow; also this module's API)


class LiteModel:
    """One-input, one-output LiteRT model with a dynamic batch dimension.

    `LiteModel(path)(x)` resizes the input to x's batch when needed, runs, and returns a
    copy of the output. Raises ValueError for inputs of the wrong shape or dtype.
    """

    def __init__(self, model_path=None, model_content=None, num_threads=1):
        from ai_edge_litert.interpreter import Interpreter

        # The plain builtin-op interpreter: a model with Flex (SELECT_TF_OPS) ops would
        # fail in allocate_tensors() below.
        self.interpreter = Interpreter(
            model_path=model_path, model_content=model_content, num_threads=num_threads
        )
        self.interpreter.allocate_tensors()
        (self.input,) = self.interpreter.get_input_details()
        (self.output,) = self.interpreter.get_output_details()
        self._batch = int(self.input["shape"][0])

    @property
    def input_shape(self):
        """Input shape with -1 for the dynamic batch, e.g. [-1, 64]."""
        return [int(d) for d in self.input["shape_signature"]]

    @property
    def op_names(self):
        """Names of the operators in the model (builtin names such as 'CONV_2D')."""
        return sorted({op["op_name"] for op in self.interpreter._get_ops_details()})

    def __call__(self, x):
        x = np.asarray(x)
        if x.dtype != self.input["dtype"]:
            raise ValueError(f"Input must be {np.dtype(self.input['dtype']).name}, got {x.dtype}.")
        expected = self.input_shape[1:]
        if x.ndim != len(expected) + 1 or list(x.shape[1:]) != expected:
            raise ValueError(f"Input must have shape [batch, {', '.join(map(str, expected))}], "
                             f"got {list(x.shape)}.")
        if x.shape[0] == 0:
            out_tail = [int(d) for d in self.output["shape_signature"][1:]]
            return np.zeros([0, *out_tail], self.output["dtype"])
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()


def sample(model, num, seed=0):
    """num images [num, H, W, C] in [0, 1] from a sampler LiteModel, z ~ N(0, I)."""
    z_dim = model.input_shape[1]
    noise = np.random.default_rng(seed).standard_normal([num, z_dim]).astype(np.float32)
    return model(noise)


def define_flags(flag_values=flags.FLAGS):
    """The program's flags, on `flag_values` (`svae_tf.cli`: defined when it runs)."""
    f = dict(flag_values=flag_values)
    flags.DEFINE_string("tflite", None, "Sampler .tflite (export.tflite output).", **f)
    flags.DEFINE_string("out", "samples.png", "PNG grid to write.", **f)
    flags.DEFINE_integer("num", 64, "Number of samples.", **f)
    flags.DEFINE_integer("seed", 0, "numpy seed of the latent noise.", **f)
    flags.DEFINE_integer("num_threads", 1, "LiteRT interpreter threads.", **f)
    flags.mark_flag_as_required("tflite", **f)


def main(f):
    """Sample on the flags `f` (`svae_tf.cli.run`)."""
    model = LiteModel(f.tflite, num_threads=f.num_threads)
    images = sample(model, f.num, f.seed)
    write_png(f.out, image_grid(images))
    print(f"Wrote {f.num} samples ({images.shape[1:]}) to {f.out}")


if __name__ == "__main__":
    cli.run(main, define_flags)
