"""The module structure: no import cycles, leaves stay leaves, every parameter declared."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sktext
from sktext.registry import registered_estimators
from sktext.validation import parameter_constraints

PACKAGE = Path(sktext.__file__).parent
LEAVES = {
    "sktext.persistence",
    "sktext.cli",
    "sktext.report",
    "sktext.demo",
    "sktext.__main__",
    "sktext.streaming",
    "sktext.dask",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The sktext modules ``path`` imports, counting imports inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sktext"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("sktext"):
                continue
            found.add(target)
            for alias in node.names:  # "from . import text" imports a module
                if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).with_suffix(".py").is_file():
                    found.add(f"{target}.{alias.name}")
    return found - {name}


GRAPH = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def test_no_import_cycles():
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH.get(module, ())):
            if target == "sktext":
                raise AssertionError(f"{module} imports the package sktext itself")
            if state.get(target) == "open":
                cycle = trail[trail.index(target) :] + [target] if target in trail else [module, target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state and target in GRAPH:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module != "sktext" and module not in state:
            visit(module, [module])


@pytest.mark.parametrize("leaf", sorted(LEAVES & set(GRAPH)))
def test_the_core_never_imports_a_leaf(leaf):
    importers = [module for module, targets in GRAPH.items() if leaf in targets and module != "sktext"]
    assert set(importers) <= LEAVES, f"{leaf} is imported by {importers}"


def test_persistence_imports_no_estimator_module():
    families = {
        "sktext.transformer",
        "sktext.ulmfit",
        "sktext.embedders",
        "sktext.base",
        "sktext.classification",
        "sktext.regression",
    }
    assert not GRAPH["sktext.persistence"] & families


def test_distributed_imports_no_sktext_module():
    """The core calls sktext.distributed unconditionally: it must stay torch alone."""
    assert not GRAPH["sktext.distributed"]


def test_every_registered_estimator_declares_every_parameter():
    for name, cls in registered_estimators().items():
        declared = parameter_constraints(cls)
        missing = set(cls().get_params()) - set(declared)
        assert not missing, f"{name} declares no constraint for {sorted(missing)}"
