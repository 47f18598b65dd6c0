"""WHAT to run: a sweep config, read from YAML or built from arguments, checked before anything runs.

    schema       the frozen dataclasses, whose fields are the table of options (rule, default, help)
    rules        how one value is judged and described in an error
    yaml_loader  safe, bounded YAML with a line for every key
    build        raw data (a file, --set, sweeper.optimize()) -> SweepConfig, every problem at once
    imports      the import-path allowlist, judged as strings before anything is imported
    checks       check_config: names and values against scikit-learn and Optuna
    space        search spaces, grids and sampler/pruner names -> Optuna

Imports no scikit-learn and no Optuna at import time (``check_config`` loads them).
"""

from ..errors import ConfigError, ConfigProblem
from .build import config_from_dict, load_config, options_from_kwargs
from .checks import check_config
from .imports import (
    DEFAULT_ALLOWED_IMPORTS,
    check_objective_path,
    import_allowed,
    objective_root,
    resolve_import_path,
)
from .schema import (
    DataSpec,
    EvaluationSpec,
    ModelSpec,
    ParamSpec,
    PrunerSpec,
    SamplerSpec,
    SweepConfig,
    TrackingSpec,
    reference,
)
from .space import MAX_GRID_POINTS, PRUNER_CLASSES, SAMPLER_CLASSES, grid_size, grid_values

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "MAX_GRID_POINTS",
    "PRUNER_CLASSES",
    "SAMPLER_CLASSES",
    "ConfigError",
    "ConfigProblem",
    "DataSpec",
    "EvaluationSpec",
    "ModelSpec",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "SweepConfig",
    "TrackingSpec",
    "check_config",
    "check_objective_path",
    "config_from_dict",
    "grid_size",
    "grid_values",
    "import_allowed",
    "load_config",
    "objective_root",
    "options_from_kwargs",
    "reference",
    "resolve_import_path",
]
