"""The layering of docs/architecture.md, checked on the source: data flows one way, and no
module outside kemm.models names a concrete model class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "kemm"
# top to bottom: a package may import its own layer and the ones before it
LAYERS = ("top", "wsi", "knowledge", "cohort", "survival", "models", "engine", "cli")
TOP_LEVEL = {"errors", "io", "device", "lazy"}
# the contract between the engine and the models (not concrete models)
MODEL_CONTRACT = {"AlternativePath", "InputDims", "ModelInput", "ModelOutput", "SurvivalModel",
                  "SurvivalLoss", "ModelEntry", "MODALITIES", "BreslowCurves", "Hyperparameters",
                  "PatchBudget"}  # fmt: skip


def _package(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else "top"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every kemm import in a file, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kemm"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("kemm")]
    return out


def _layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in TOP_LEVEL:
        return "top"
    return parts[1]


SOURCES = sorted(p for p in SRC.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_one_way(path):
    own = LAYERS.index(_package(path))
    for module, _ in _imports(path):
        assert LAYERS.index(_layer_of(module)) <= own, f"{path.name} imports {module}"


def _concrete_model_classes() -> set[str]:
    names = set()
    for path in (SRC / "models").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                names.add(node.name)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}  # aliases
    return names - MODEL_CONTRACT


def test_no_module_outside_models_names_a_concrete_model_class():
    concrete = _concrete_model_classes()
    assert {"KEMM", "CoxNet", "PenalizedCox", "RiskStack", "ClinicalCox"} <= concrete
    for path in SOURCES:
        if _package(path) == "models":
            continue
        for module, names in _imports(path):
            if module.startswith("kemm.models"):
                named = set(names) & concrete
                assert not named, f"{path.relative_to(SRC)} imports {sorted(named)}"
