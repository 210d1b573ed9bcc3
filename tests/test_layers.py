"""The import rules of docs/architecture.md, read from the source with `ast`:

1. every module belongs to one layer (a subpackage of `svae_tf`, a top-level library module,
   the training program, or the command-line programs), and the folder tree is the layer;
2. a module imports only from its own layer or from layers below it (lazy imports count);
3. within a layer the imports form no cycle.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Layer of each package or module prefix, lowest first; a module's layer is its longest prefix.
LAYERS = {
    "svae_tf.utils": 1,        # files, logs, images: no project imports
    "svae_tf.data": 2,         # datasets (TensorFlow-free registry), pipelines (tf.data)
    "svae_tf.model": 3,        # objectives .. variants, config .. SymmetricVAE
    "svae_tf.evaluation": 4,   # likelihood, metrics, classifiers, refit
    "svae_tf.runs": 4,         # a run directory: build / load a model, checkpoints
    "svae_tf.cli": 5,          # flags derived from the configs, cli.run
    "trainers.train_lib": 6,   # the one training program (reads no flags)
    "trainers.callbacks": 6,
    "trainers.run_state": 6,
    "trainers": 7,             # command-line programs
    "export": 7,
    "benchmarks": 7,
}
PACKAGES = ("svae_tf", "trainers", "export", "benchmarks")


def _modules():
    return {".".join(path.relative_to(REPO).with_suffix("").parts): path
            for package in PACKAGES for path in (REPO / package).rglob("*.py") if path.name != "__init__.py"}


def _group(module):
    """The layer prefix a module belongs to (its longest prefix in LAYERS)."""
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} is in no layer of tests/test_layers.py"
    return max(prefixes, key=len)


def _imports(path, modules):
    """Project modules imported by the file at `path` (at any depth: lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:  # `from pkg import module` names a module; else the import is of pkg
                name = f"{node.module}.{alias.name}"
                out.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return {m for m in out if m in modules}


def _graph():
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_library_module_is_in_a_subpackage_layer_or_a_named_top_level_module():
    for name in _modules():
        assert _group(name)
        if name.startswith("svae_tf."):
            assert _group(name) != "svae_tf", name


def test_no_module_imports_from_a_layer_above_its_own():
    violations = [f"{name} (layer {LAYERS[_group(name)]}) imports {imported} (layer {LAYERS[_group(imported)]})"
                  for name, imports in sorted(_graph().items()) for imported in sorted(imports)
                  if LAYERS[_group(imported)] > LAYERS[_group(name)]]
    assert not violations, "\n".join(violations)


def test_layers_of_equal_rank_do_not_import_each_other():
    violations = [f"{name} imports {imported}" for name, imports in sorted(_graph().items())
                  for imported in sorted(imports)
                  if _group(imported) != _group(name) and LAYERS[_group(imported)] == LAYERS[_group(name)]
                  and _group(name).startswith("svae_tf")]
    assert not violations, "\n".join(violations)


def _cycle(graph):
    """A list of modules forming an import cycle, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycles():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_rules_catch_an_upward_import_and_a_cycle(tmp_path):
    modules = _modules()
    path = tmp_path / "objectives.py"
    path.write_text("def f():\n    from svae_tf.model import symmetric_vae\n    from svae_tf import runs\n")
    assert _imports(path, modules) == {"svae_tf.model.symmetric_vae", "svae_tf.runs"}
    assert LAYERS[_group("svae_tf.runs")] > LAYERS[_group("svae_tf.model.objectives")]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_never_imports_the_programs():
    for name, imports in _graph().items():
        if name.startswith("svae_tf."):
            assert not [m for m in imports if not m.startswith("svae_tf.")], name


def test_the_package_exports_its_public_api_and_imports_tensorflow_only_on_use():
    import subprocess
    import sys
    code = ("import sys, svae_tf\n"
            "from svae_tf import ModelConfig, TrainConfig, ArchitectureOverrides\n"
            "from svae_tf.model import config, variants, presets\n"
            "from svae_tf.data import datasets\n"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported early'\n"
            "from svae_tf.model.symmetric_vae import SymmetricVAE\n"
            "from svae_tf import runs\n"
            "assert svae_tf.SymmetricVAE is SymmetricVAE and svae_tf.load_model is runs.load_model\n"
            "assert ModelConfig is config.ModelConfig and set(svae_tf.__all__) <= set(dir(svae_tf))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
