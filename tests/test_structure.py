"""Guards on the package's shape: public surface, dependency rules between its parts, light imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sweeper

PACKAGE = Path(sweeper.__file__).parent
PARTS = ("config", "workers", "engine", "tracking", "report", "objectives")

#: part -> what it may never import (sweeper parts and third-party packages), and why.
NEVER: dict[str, tuple[set[str], str]] = {
    "workers": ({"engine", "tracking", "report", "api", "sweep", "cli", "optuna", "mlflow"},
                "workers run trials: they decide nothing, record nothing and stay cheap to start"),
    "engine": ({"tracking", "report", "api", "sweep", "cli", "mlflow"},
               "the engine knows no MLflow: tracking is one recorder among others"),
    "config": ({"engine", "tracking", "report", "workers", "api", "sweep", "cli", "mlflow"},
               "a config is plain data and its checks"),
    "tracking": ({"engine", "report", "workers", "api", "sweep", "cli", "optuna"},
                 "tracking implements the engine's recorder from plain records (engine.recorder only)"),
    "objectives": ({"engine", "tracking", "report", "api", "sweep", "cli", "mlflow"},
                   "the built-in objective runs in workers"),
}
#: The one module of a forbidden part a part may use: the contract it implements.
CONTRACTS = {"tracking": {"sweeper.engine.recorder", "sweeper.engine"}}
#: Imported at module level nowhere in these parts (loaded inside functions, when needed).
NOT_AT_IMPORT = {"config": {"sklearn", "optuna"}, "engine": {"optuna"}, "workers": {"sklearn", "numpy"}}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, bool]]:
    """Absolute names ``name`` imports, relative ones resolved, each with whether it happens at
    module level (not inside a function or under ``TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                nested = False
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, top))
                if not child.module:
                    found.extend((f"{target}.{a.name}", top) for a in child.names)
            visit(child, nested)

    visit(tree, True)
    return found


def part_of(name: str) -> str | None:
    """``sweeper.engine.coordinator`` -> ``engine``; third-party top-level names as they are."""
    bits = name.split(".")
    if bits[0] != "sweeper":
        return bits[0]
    if len(bits) == 1:
        return None
    return bits[1].removesuffix(".py")


def test_public_api_is_exactly_all():
    public = {name for name in dir(sweeper) if not name.startswith("_")}
    subpackages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    top_modules = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    assert set(sweeper.__all__) - {"__version__"} == public - subpackages - top_modules


@pytest.mark.parametrize("part", sorted(NEVER))
def test_dependency_rules(part):
    forbidden, why = NEVER[part]
    broken = []
    for name, path in modules().items():
        if part_of(name) != part:
            continue
        for target, _ in imports_of(name, path):
            if part_of(target) in forbidden and target not in CONTRACTS.get(part, ()):
                broken.append(f"{name} imports {target}")
    assert not broken, f"{why}: {broken}"


@pytest.mark.parametrize("part", sorted(NOT_AT_IMPORT))
def test_heavy_libraries_load_inside_functions(part):
    heavy = NOT_AT_IMPORT[part]
    broken = [
        f"{name} imports {target} at module level"
        for name, path in modules().items() if part_of(name) == part
        for target, top in imports_of(name, path) if top and part_of(target) in heavy
    ]
    assert not broken


def test_no_import_cycles_between_parts():
    graph: dict[str, set[str]] = {}
    for name, path in modules().items():
        here = part_of(name) or "sweeper"
        for target, _ in imports_of(name, path):
            there = part_of(target)
            if target.startswith("sweeper") and there and there != here:
                graph.setdefault(here, set()).add(there)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(p for p in graph if p in PARTS and reaches(p, p, {p}))
    assert not cycles, {p: sorted(graph[p]) for p in cycles}


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return {name.split(".")[0] for name in out.stdout.split()}


def test_worker_imports_neither_optuna_nor_mlflow():
    loaded = _modules_after("import sweeper.workers.local, sweeper.workers.trial")
    assert not {"optuna", "mlflow", "sklearn"} & loaded


def test_cli_help_imports_nothing_heavy():
    loaded = _modules_after("import sweeper.cli\ntry:\n    sweeper.cli.main(['--help'])\nexcept SystemExit:\n    pass")
    assert not {"optuna", "mlflow", "sklearn"} & loaded
