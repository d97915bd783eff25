"""The module structure: no import cycles, leaves stay leaves, every parameter declared."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sktext
from sktext.registry import registered_estimators
from sktext.validation import parameter_constraints

PACKAGE = Path(sktext.__file__).parent
LEAVES = {
    "sktext.card",
    "sktext.persistence",
    "sktext.export",
    "sktext.deploy",
    "sktext.cli",
    "sktext.report",
    "sktext.demo",
    "sktext.__main__",
    "sktext.streaming",
    "sktext.dask",
    "sktext.serve",
    "sktext.serve.app",
    "sktext.serve.backends",
    "sktext.serve.batcher",
    "sktext.serve.metrics",
    "sktext.serve.server",
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


def test_deploy_imports_no_sktext_module():
    """The ONNX predictor is one file a service can copy: it needs numpy, onnxruntime, tokenizers."""
    assert GRAPH["sktext.deploy"] == set()


def _run(script: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_package_imports_nothing_heavy_and_the_registries_fill_themselves(tmp_path):
    """``import sktext`` is lazy; whichever submodule comes first, save and load still find every class."""
    folders = Path(__file__).parent / "data" / "v0_1_0"
    result = _run(
        f"""
import json, sys
import sktext
heavy = sorted(m for m in ("torch", "sklearn", "transformers", "skorch") if m in sys.modules)
from sktext import load_model  # persistence alone: the families are not imported yet
loaded = load_model({str(folders / "ulmfit_classifier")!r})
print(json.dumps({{"heavy": heavy, "loaded": type(loaded).__name__}}))
"""
    )
    assert result["heavy"] == []
    assert result["loaded"] == "ULMFiTClassifier"
    result = _run(
        f"""
import json
from sktext.transformer import TransformerRegressor  # no persistence imported yet
loaded = TransformerRegressor.load({str(folders / "transformer_regressor")!r})
print(json.dumps({{"saved": str(loaded.save({str(tmp_path / "again")!r}))}}))
"""
    )
    assert Path(result["saved"], "sktext.json").is_file()


def test_the_package_exports_what_it_did():
    expected = {
        "FocalLoss",
        "TransformerEmbedder",
        "TransformerMultiLabelClassifier",
        "TransformerRegressor",
        "ULMFiTClassifier",
        "ULMFiTRegressor",
        "ULMFiTEmbedder",
        "load_model",
        "save_model",
        "__version__",
    }
    assert set(sktext.__all__) == expected
    for name in expected:
        assert getattr(sktext, name) is not None
