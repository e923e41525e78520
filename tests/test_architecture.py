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


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the kemm modules it imports (lazy imports included; ``from pkg import name``
    counts as importing ``pkg.name`` when that is a module, else ``pkg``)."""
    modules = {_module_of(p): p for p in SOURCES}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for imported, names in _imports(path):
            subs = {f"{imported}.{n}" for n in names} & set(modules)
            targets |= subs or {imported}
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def test_no_import_circle_between_modules():
    """The one circle there was (cohort.folder <-> cohort.prepared) is gone, and no other
    module pair (or longer loop) imports itself back, lazily or not."""
    graph = _import_graph()
    assert "kemm.cohort.prepared" in graph["kemm.cohort.text"]  # the graph sees imports
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                loop = path[path.index(target) :] + [target] if target in path else [module, target]
                raise AssertionError("import circle: " + " -> ".join(loop))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _mentions(node: ast.AST, attribute: str) -> bool:
    return any(
        (isinstance(n, ast.Attribute) and n.attr == attribute)
        or (isinstance(n, ast.Name) and n.id == attribute)
        for n in ast.walk(node)
    )


# Where the engine may look at a model's kind: validating a config (which combinations a run
# may name, before anything is read) and the one lookup of a kind's fold-model class.
KIND_LOOKUPS = {("config.py", "_model_references"), ("fold_models.py", "fold_model_type")}


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_engine_never_branches_on_a_model_kind():
    """Fitting, saving, loading and scoring go through kemm.engine.fold_models; the runner,
    predict and explain call its interface and never ask which kind of model they hold."""
    found = []
    for path in sorted((SRC / "engine").glob("*.py")):
        tree = ast.parse(path.read_text())
        for function in _functions(tree):
            if (path.name, function.name) in KIND_LOOKUPS:
                continue
            for node in ast.walk(function):
                tests = []
                if isinstance(node, ast.If | ast.IfExp | ast.While):
                    tests.append(node.test)
                if isinstance(node, ast.Compare | ast.BoolOp):
                    tests.append(node)
                if isinstance(node, ast.comprehension):
                    tests += node.ifs
                if isinstance(node, ast.Match):
                    tests.append(node.subject)
                if any(_mentions(t, "kind") for t in tests):
                    line = getattr(node, "lineno", function.lineno)
                    found.append(f"{path.name}:{line} ({function.name})")
    assert not found, f"branches on a model's kind: {sorted(set(found))}"
    for name in ("runner.py", "predict.py", "explain.py"):
        tree = ast.parse((SRC / "engine" / name).read_text())
        assert not _mentions(tree, "residual_over"), f"engine/{name} reads residual_over"
        assert not _mentions(tree, "has_network"), f"engine/{name} asks for a network"
