"""What a finished sweep leaves on its MLflow parent run besides metrics: plots, the trials
table, the best model and the dataset's lineage. Runs in the coordinator after the sweep.
"""

from __future__ import annotations

from typing import Any


def finalize_sweep(cfg: Any, result: Any) -> None:
    """Write the end-of-sweep artifacts for a config sweep (``result`` is ``api.SweepResult``)."""
    return None
