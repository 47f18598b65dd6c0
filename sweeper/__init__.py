"""sweeper: process-parallel hyperparameter sweeps with Optuna, every trial logged to MLflow.

    import sweeper
    study = sweeper.optimize(objective, n_trials=50, n_jobs=4)   # Optuna-style objective(trial)
    study = sweeper.run("configs/digits_rf_tpe.yaml")             # a YAML sweep config

Importing sweeper is cheap: optuna, mlflow and scikit-learn load only when a sweep runs, and
sweeper's own modules when first used (``sweeper.optimize`` does not load the YAML config
machinery; a worker or the MLflow writer process, which import a submodule, load neither).
"""

import importlib as _importlib
from typing import Any as _Any

from .errors import BackendError, ConfigError, SweeperError, TrackingError, TrialPruned

__version__ = "0.1.0"

#: Public names and the submodule each lives in, imported on first access (PEP 562).
_LAZY = {"optimize": "api", "run": "api", "SweepConfig": "config", "load_config": "config",
         "share": "workers.shared", "Trial": "workers.trial"}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sweeper' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BackendError",
    "ConfigError",
    "SweepConfig",
    "SweeperError",
    "TrackingError",
    "Trial",
    "TrialPruned",
    "__version__",
    "load_config",
    "optimize",
    "run",
    "share",
]
