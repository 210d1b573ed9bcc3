"""One command-line convention for every program (issue #29, `svae_tf/cli.py`).

A program under benchmarks/, trainers/ or export/ defines its flags in
`define_flags(flag_values=flags.FLAGS)`, each of them on `flag_values`; its `main` receives
a namespace of its own flags; it ends with `if __name__ == "__main__": cli.run(main,
define_flags[, errors=...])`, and in-process callers parse a command line with
`cli.parse(define_flags, argv)`. So no function but `define_flags` (and no code but the
`__main__` blocks) reads absl's process-global `flags.FLAGS`, and nothing calls `app.run`
itself. Checked on the source (`ast`), then by parsing each program's flags in-process.

The one exception is `trainers/command.py`, the thin trainers' command line
(`python -m trainers.mnist|cifar|imagenet`): its flags are derived from the configs for
each trainer (`define_flags(flag_values, trainer, module_name)`) and its `main` needs the
parsed FlagValues, not a namespace of values: which flags the user gave (`.present`) is
what it reports as unused and records in flags.json.
"""

import ast
import importlib
from pathlib import Path

import pytest

from svae_tf import cli

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmarks", "trainers", "export")
EXCEPTIONS = ("trainers/command.py",)  # see the docstring
FLAG_CALLS = ("DEFINE", "mark_flag", "register_validator", "adopt_module_key_flags", "declare_key_flag")


def _modules():
    return {str(path.relative_to(REPO)): path for package in PACKAGES
            for path in sorted((REPO / package).glob("*.py")) if path.name != "__init__.py"}


def _is_main_block(node):
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def _reads_flags_global(node):
    """`flags.FLAGS`, a bare `FLAGS` or `from absl.flags import FLAGS`."""
    return ((isinstance(node, ast.Attribute) and node.attr == "FLAGS")
            or (isinstance(node, ast.Name) and node.id == "FLAGS")
            or (isinstance(node, ast.ImportFrom) and any(a.name == "FLAGS" for a in node.names)))


def violations(source):
    """Lines of `source` (a module's text) that break the convention, each with its reason."""
    tree = ast.parse(source)
    found = []

    def visit(node, may_read_flags):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "define_flags":
            may_read_flags = True
            found.extend(_define_flags_violations(node))
        elif _is_main_block(node):
            may_read_flags = True
        if _reads_flags_global(node) and not may_read_flags:
            found.append(f"line {node.lineno}: reads flags.FLAGS outside define_flags and __main__")
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("app.run", "absl.app.run"):
            found.append(f"line {node.lineno}: calls {ast.unparse(node.func)}( (use cli.run)")
        for child in ast.iter_child_nodes(node):
            visit(child, may_read_flags)

    visit(tree, False)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    imports_absl = any(isinstance(n, (ast.Import, ast.ImportFrom)) and "absl" in ast.unparse(n)
                       for n in ast.walk(tree))
    if "main" in functions and imports_absl:  # a program
        if "define_flags" not in functions:
            found.append("a program without define_flags(flag_values=flags.FLAGS)")
        main_blocks = [n for n in tree.body if _is_main_block(n)]
        if not any(isinstance(n, ast.Call) and ast.unparse(n).startswith("cli.run(main, define_flags")
                   for block in main_blocks[-1:] for n in ast.walk(block)):
            found.append("the last `if __name__ == \"__main__\":` block does not call cli.run(main, define_flags...)")
    return found


def _define_flags_violations(function):
    """define_flags' signature and every flag call in it on `flag_values`."""
    found = []
    args = function.args
    if not args.args or args.args[0].arg != "flag_values" or not args.defaults \
            or len(args.defaults) != len(args.args) or ast.unparse(args.defaults[0]) != "flags.FLAGS":
        found.append(f"line {function.lineno}: define_flags's first argument is not flag_values=flags.FLAGS")
    for node in ast.walk(function):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func.value) == "flags" and node.func.attr.startswith(FLAG_CALLS)
                and not any(k.arg in ("flag_values", None) for k in node.keywords)):
            found.append(f"line {node.lineno}: flags.{node.func.attr} without flag_values")
    return found


def test_programs_follow_the_convention():
    found = {name: lines for name, path in _modules().items() if name not in EXCEPTIONS
             if (lines := violations(path.read_text()))}
    assert not found, "\n".join(f"{name}: {line}" for name, lines in found.items() for line in lines)


def test_the_exception_is_still_needed():
    """trainers/command.py reads the global FLAGS and calls app.run; when it stops, drop it from EXCEPTIONS."""
    assert violations((REPO / EXCEPTIONS[0]).read_text())


OLD_SHAPE = '''
from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("steps", 5, "Steps.")


def work():
    return FLAGS.steps


def main(argv):
    f = flags.FLAGS
    return f.steps


if __name__ == "__main__":
    define_flags()
    app.run(main)
'''

NEW_SHAPE = '''
from absl import flags

from svae_tf import cli


def define_flags(flag_values=flags.FLAGS):
    f = dict(flag_values=flag_values)
    flags.DEFINE_integer("steps", 5, "Steps.", **f)
    flags.mark_flag_as_required("steps", flag_values=flag_values)


def main(args):
    return args.steps


if __name__ == "__main__":
    cli.run(main, define_flags, errors=(ValueError,))
'''


def test_the_check_catches_the_old_shape():
    found = violations(OLD_SHAPE)
    assert any("line 4: reads flags.FLAGS" in v for v in found), found  # FLAGS = flags.FLAGS
    assert any("line 12: reads flags.FLAGS" in v for v in found), found  # in work()
    assert any("line 16: reads flags.FLAGS" in v for v in found), found  # in main()
    assert any("calls app.run(" in v for v in found), found
    assert any("define_flags's first argument" in v for v in found), found
    assert any("DEFINE_integer without flag_values" in v for v in found), found
    assert any("does not call cli.run" in v for v in found), found
    assert violations(NEW_SHAPE) == []


# Each converted program with the flags it requires, and one flag's default.
PROGRAMS = {
    "benchmarks.batch_norm_population": ([], ("num_images", 2000)),
    "benchmarks.first_step": ([], ("train_steps", 5)),
    "benchmarks.input_pipeline": ([], ("pipeline_batches", 1800)),
    "benchmarks.mode_collapse": ([], ("every", 100)),
    "benchmarks.sampling_latency": ([], ("min_calls", 20)),
    "benchmarks.train_throughput": ([], ("presets", ["mnist", "mnist_a1"])),
    "benchmarks.yardsticks": ([], ("rounds", 3)),
    "benchmarks.step_fingerprint": ([], ("steps", 20)),
    "benchmarks.step_work": ([], ("calls", 3)),
    "export.saved_model": (["--model_dir=m", "--export_dir=e"], ("model_name", "svae")),
    "export.serving_client": (["--export_dir=e"], ("signature", "serving_default")),
    "export.tflite": (["--model_dir=m", "--output_dir=o"], ("quantization", ["float32", "float16", "int8"])),
    "export.tflite_sample": (["--tflite=s.tflite"], ("out", "samples.png")),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_program_parses_its_flags_in_process(name):
    """`cli.parse(module.define_flags, argv)`: the program's own flags, in a FlagValues of their
    own (no clash with the other programs' --seed, --batch_size ... in this process); a
    required flag left out, or a flag of another program, is an app.UsageError."""
    from absl import app

    module = importlib.import_module(name)
    required, (flag, default) = PROGRAMS[name]
    args = cli.parse(module.define_flags, required)
    assert getattr(args, flag) == default
    with pytest.raises(app.UsageError):
        cli.parse(module.define_flags, [*required, "--no_such_flag_here=1"])
    if required:
        with pytest.raises(app.UsageError):
            cli.parse(module.define_flags, required[1:])
