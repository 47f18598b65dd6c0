"""Guards on the package's shape: public surface, import layers, and light imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sweeper

PACKAGE = Path(sweeper.__file__).parent

# A module imports only from lower layers (one writer stays honest, workers stay light).
LAYERS = {
    "errors": 0, "_messages": 0, "_redact": 0, "_procs": 0,
    "_yaml": 1, "_space": 1, "trial": 1, "_shared": 1, "_mlflow_bulk": 1,
    "_store_template": 1, "_mlflow_client": 2, "_mlflow_sqlite": 2,
    "config": 2, "_tracking": 3, "_study": 2, "_objectives": 2,
    "_worker": 3, "_results": 3, "_tracker_process": 4,
    "_backends": 4, "_report": 4, "_ui": 4,
    "_coordinator": 5,
    "api": 6,
    "cli": 7, "__init__": 7, "__main__": 8,
}


def test_public_api_is_exactly_all():
    public = {name for name in dir(sweeper) if not name.startswith("_")} - {
        module for module in LAYERS if not module.startswith("_")
    }
    assert set(sweeper.__all__) - {"__version__"} == public


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == set(LAYERS)


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_modules_import_only_from_lower_layers(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            targets = [node.module] if node.module else [a.name for a in node.names]
            for target in targets:
                target = target.split(".")[0]
                assert LAYERS[target] < LAYERS[module] or (module == "__init__"), (
                    f"{module} (layer {LAYERS[module]}) imports {target} (layer {LAYERS[target]})"
                )


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return {name.split(".")[0] for name in out.stdout.split()}


def test_worker_imports_neither_optuna_nor_mlflow():
    loaded = _modules_after("import sweeper._worker")
    assert not {"optuna", "mlflow", "sklearn"} & loaded


def test_cli_help_imports_nothing_heavy():
    loaded = _modules_after("import sweeper.cli\ntry:\n    sweeper.cli.main(['--help'])\nexcept SystemExit:\n    pass")
    assert not {"optuna", "mlflow", "sklearn"} & loaded
