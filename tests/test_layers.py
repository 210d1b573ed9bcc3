"""The import rules of docs/architecture.md: no module imports from a floor above its own,
the library never imports the programs, and every module has a floor."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOORS = {
    1: ["svae_tf.objectives", "svae_tf.presets", "svae_tf.files", "svae_tf.logs", "svae_tf.images",
        "svae_tf.datasets"],
    2: ["svae_tf.variants", "svae_tf.config", "svae_tf.cli"],
    3: ["svae_tf.distributions", "svae_tf.flows", "svae_tf.networks", "svae_tf.noise", "svae_tf.ema",
        "svae_tf.data"],
    4: ["svae_tf.model"],
    5: ["svae_tf.runs", "svae_tf.likelihood", "svae_tf.metrics", "svae_tf.classifiers", "svae_tf.refit"],
    6: ["trainers.train_lib", "trainers.callbacks", "trainers.run_state"],
}
PROGRAMS = 7  # trainers.command, the thin trainers, evaluate, classifier, export.*, benchmarks.*
PACKAGES = ("svae_tf", "trainers", "export", "benchmarks")


def _modules():
    return {".".join(path.relative_to(REPO).with_suffix("").parts): path
            for package in PACKAGES for path in (REPO / package).glob("*.py") if path.name != "__init__.py"}


def _floor(module):
    return next((floor for floor, names in FLOORS.items() if module in names), PROGRAMS)


def _imports(path):
    """Project modules imported by the file at `path` (at any depth: lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            out.update(f"{node.module}.{a.name}" if node.module in PACKAGES else node.module for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return out


def test_no_module_imports_from_a_floor_above_its_own():
    modules = _modules()
    violations = []
    for name, path in sorted(modules.items()):
        for imported in _imports(path):
            if imported in modules and _floor(imported) > _floor(name):
                violations.append(f"{name} (floor {_floor(name)}) imports {imported} (floor {_floor(imported)})")
    assert not violations, "\n".join(violations)


def test_every_library_module_has_a_floor_below_the_programs():
    library = [name for name in _modules() if name.startswith("svae_tf.")]
    assert sorted(library) == sorted(n for names in FLOORS.values() for n in names if n.startswith("svae_tf."))


def test_the_rule_catches_an_upward_import(tmp_path):
    path = tmp_path / "objectives.py"
    path.write_text("def f():\n    from svae_tf import model\n")
    assert _imports(path) == {"svae_tf.model"} and _floor("svae_tf.model") > _floor("svae_tf.objectives")
