"""sweeper: process-parallel hyperparameter sweeps with Optuna, every trial logged to MLflow.

    import sweeper
    study = sweeper.optimize(objective, n_trials=50, n_jobs=4)   # Optuna-style objective(trial)
    study = sweeper.run("configs/digits_rf_tpe.yaml")             # a YAML sweep config

Importing sweeper is cheap: optuna, mlflow and scikit-learn load only when a sweep runs.
"""

from ._shared import share
from .api import optimize, run
from .config import SweepConfig, load_config
from .errors import BackendError, ConfigError, SweeperError, TrackingError, TrialPruned
from .trial import Trial

__version__ = "0.1.0"

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
