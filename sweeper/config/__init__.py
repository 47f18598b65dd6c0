"""WHAT to run: a sweep config, read from YAML or built from arguments, checked before anything runs.

Imports no scikit-learn and no Optuna at import time (``check_config`` loads them to check
names against the libraries).
"""

from .build import (
    DEFAULT_ALLOWED_IMPORTS,
    DataSpec,
    EvaluationSpec,
    ModelSpec,
    ParamSpec,
    PrunerSpec,
    SamplerSpec,
    SweepConfig,
    TrackingSpec,
    check_config,
    config_from_dict,
    grid_size,
    grid_values,
    import_allowed,
    load_config,
    resolve_import_path,
)
from .space import PRUNER_CLASSES, SAMPLER_CLASSES

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "PRUNER_CLASSES",
    "SAMPLER_CLASSES",
    "DataSpec",
    "EvaluationSpec",
    "ModelSpec",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "SweepConfig",
    "TrackingSpec",
    "check_config",
    "config_from_dict",
    "grid_size",
    "grid_values",
    "import_allowed",
    "load_config",
    "resolve_import_path",
]
