"""The report's model and data on MLflow: the dataset's lineage on the parent run, the best
configuration refit on all the data and logged to the best trial's child run, and its
registration (``run --register``).

    config data --mlflow.data.from_numpy/from_pandas--> client.log_inputs --> parent run (lineage)
    study.best_trial + config model --refit on all data--> mlflow.sklearn.log_model --> best child run
                                                       --tags, Logged models--> parent run

"Best" is Optuna's ``study.best_trial`` (ties as Optuna breaks them), as everywhere else. Only
public MLflow API: MLflow's fluent ``log_model`` needs the global tracking URI for a moment
(``_tracking_uri`` puts the host's back), and its check of the model's requirements against the
installed packages runs as MLflow wants it (~0.3 s on the first model of a process: sweeper's
requirements are the installed versions, so it finds nothing). Heavy imports stay inside functions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..tracking import records as _records
from .steps import quiet, step, timed, warn

# Parent-run tags that link the sweep to its best model (README "What lands in MLflow").
BEST_MODEL_URI_TAG = "sweeper.best_model_uri"
BEST_MODEL_RUN_URI_TAG = "sweeper.best_model_run_uri"
REGISTERED_TAG = "sweeper.registered_model"
MODEL_NAME = "model"


def _data_spec(cfg: Any) -> dict[str, Any]:
    data = cfg.data
    return {"loader": data.loader, "kwargs": dict(data.kwargs), "file": data.file, "target": data.target}


def load_data(cfg: Any) -> tuple[Any, Any]:
    from ..objectives.sklearn import load_dataset

    return load_dataset(_data_spec(cfg))


def log_dataset(client: Any, run_id: str, cfg: Any, X: Any, y: Any) -> dict[str, Any]:
    """Log the training data's name, digest, schema and shape as an input of ``run_id``."""
    import warnings

    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "source ... multiple ways", "integer columns"
        dataset = _dataset(cfg.data, X, y)
        # What mlflow.log_input does, without making the (finished) parent run active again.
        entity = _entity(dataset)
    client.log_inputs(run_id, datasets=[DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, "training")])])
    shape = list(getattr(X, "shape", ()))
    return {"name": dataset.name, "digest": dataset.digest, "shape": shape}


def _entity(dataset: Any) -> Any:
    """The ``mlflow.entities.Dataset`` of an ``mlflow.data`` dataset, from its public ``to_dict``."""
    from mlflow.entities import Dataset

    data = dataset.to_dict()
    return Dataset(name=data["name"], digest=data["digest"], source_type=data["source_type"],
                   source=data["source"], schema=data.get("schema"), profile=data.get("profile"))


def _dataset(data: Any, X: Any, y: Any) -> Any:
    import numpy as np
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.data.pandas_dataset import from_pandas

    if data.file:
        frame = X.copy()
        frame[data.target] = y
        dataset: Any = from_pandas(frame, source=data.file, targets=data.target, name=Path(data.file).name)
    else:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(data.kwargs.items()))
        name = f"{data.loader}({kwargs})" if kwargs else str(data.loader)
        if hasattr(X, "columns"):  # a loader asked for as_frame=True
            frame = X.copy()
            frame["target"] = np.asarray(y)
            dataset = from_pandas(frame, targets="target", name=name)
        else:
            dataset = from_numpy(np.asarray(X), targets=np.asarray(y), name=name)
    return dataset


def log_best_model(client: Any, cfg: Any, result: Any, X: Any, y: Any) -> dict[str, Any] | None:
    """Refit the best configuration on all the data and log it to the best trial's child run
    with ``mlflow.sklearn.log_model`` (signature and input example included); the parent run
    gets tags pointing at it, and the study remembers its URI for ``sweeper best``."""
    import warnings

    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from ..objectives.sklearn import build_estimator

    study = result.study
    best = study.best_trial
    run_id = result.run_ids.get(best.number) or _records.run_id_of(study, best)
    if run_id is None:
        warn(f"best trial #{best.number} has no MLflow run; its model is not logged")
        return None
    run_uri = f"runs:/{run_id}/{MODEL_NAME}"
    parent_tags = client.get_run(result.parent_run_id).data.tags
    if parent_tags.get(BEST_MODEL_RUN_URI_TAG) == run_uri and parent_tags.get(BEST_MODEL_URI_TAG):
        return {"model_uri": parent_tags[BEST_MODEL_URI_TAG], "run_uri": run_uri, "run_id": run_id,
                "format": None}  # a resumed sweep whose best trial did not change: already logged
    model = build_estimator(cfg.model.estimator, {**cfg.model.params, **best.params}, cap_n_jobs=False)
    with timed("refit the best model"):
        model.fit(X, y)
    example = X.head(5) if hasattr(X, "head") else X[:5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "integer columns cannot hold missing values"
        signature = infer_signature(example, model.predict(example))
    fmt = serialization_format()
    requirements = mlflow.sklearn.get_default_pip_requirements(
        include_cloudpickle=fmt == "cloudpickle", include_skops=fmt == "skops"
    ) + _extra_requirements(cfg.model.estimator)
    with timed("import skops and list the model's types"):
        trusted = _skops_types(model) if fmt == "skops" else None
    before = client.get_run(run_id).info
    with (
        timed("mlflow.sklearn.log_model"),
        _tracking_uri(result.tracking_uri),
        quiet("mlflow.sklearn", "mlflow.models"),
        warnings.catch_warnings(),
        mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
    ):
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.sklearn.log_model(
            model, name=MODEL_NAME, signature=signature, input_example=example,
            serialization_format=fmt, pip_requirements=requirements, skops_trusted_types=trusted,
        )
    # Reopening the run set it RUNNING then FINISHED "now": give it back its own end.
    client.set_terminated(run_id, before.status, end_time=before.end_time)
    if parent_tags.get(BEST_MODEL_URI_TAG):  # a model was logged before (a resumed sweep): untag it
        step("untag the previous best", lambda: _untag_previous_best(client, result.parent_run_id, run_id))
    client.set_tag(run_id, "sweeper.best_model", "true")
    client.set_tag(result.parent_run_id, BEST_MODEL_URI_TAG, info.model_uri)
    client.set_tag(result.parent_run_id, BEST_MODEL_RUN_URI_TAG, run_uri)
    step("list the model on the parent run", lambda: _link_model(client, result.parent_run_id, info.model_id))
    study.set_user_attr(_records.MODEL_URI_ATTR, info.model_uri)
    return {"model_uri": info.model_uri, "run_uri": run_uri, "run_id": run_id, "format": fmt}


def serialization_format() -> str:
    """skops (MLflow's safe default) when installed, else cloudpickle (MLflow's Databricks choice)."""
    import importlib.util

    return "skops" if importlib.util.find_spec("skops") is not None else "cloudpickle"


def _skops_types(model: Any) -> list[str]:
    """The types skops will not load unless told to trust them (a forest's ``Tree``, a boosted
    model's predictors). We built this model from an allowlisted estimator a moment ago, so
    its own types are trusted; MLflow stores the list with the model for ``load_model``."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def _untag_previous_best(client: Any, parent_run_id: str, run_id: str) -> None:
    """A resumed sweep with a new best: only one child says it holds the best model."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    previous = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`sweeper.best_model` = 'true'",
        max_results=100,
    )
    for run in previous:
        if run.info.run_id != run_id:
            client.set_tag(run.info.run_id, "sweeper.best_model", "false")


def _link_model(client: Any, parent_run_id: str, model_id: str) -> None:
    """The parent's "Logged models" shows the sweep's best model (it lives on the child run)."""
    from mlflow.entities import LoggedModelOutput

    client.log_outputs(parent_run_id, [LoggedModelOutput(model_id, 0)])


def register_best_model(tracking_uri: str, parent_run_id: str, name: str) -> str:
    """Register the sweep's best model (logged by ``finalize_sweep``) as ``name``; returns the
    new version. Raises ``SweeperError`` when the sweep has no logged model."""
    import mlflow
    from mlflow import MlflowClient

    from ..errors import SweeperError

    client = MlflowClient(tracking_uri)
    model_uri = client.get_run(parent_run_id).data.tags.get(BEST_MODEL_URI_TAG)
    if not model_uri:
        raise SweeperError(
            "no best model to register: only the built-in scikit-learn objective (model: + data:) "
            "logs one, after at least one trial completes"
        )
    with _tracking_uri(tracking_uri), quiet("mlflow"):
        version = mlflow.register_model(model_uri, name)
    client.set_tag(parent_run_id, REGISTERED_TAG, f"{name}/{version.version}")
    return str(version.version)


def _extra_requirements(estimator: str) -> list[str]:
    """The estimator's own package, pinned, when it is not scikit-learn (allow_imports)."""
    from importlib import metadata

    top = estimator.replace(":", ".").split(".")[0]
    if top == "sklearn":
        return []
    for dist in metadata.packages_distributions().get(top, []):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return [f"{dist}=={metadata.version(dist)}"]
    return []


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API at ``uri`` for a moment; the host's own setting comes back after it:
    a URI it set with ``mlflow.set_tracking_uri``, else none (MLflow's default), and its
    ``MLFLOW_TRACKING_URI`` as it was (``set_tracking_uri`` writes that variable too)."""
    import mlflow

    env = os.environ.get("MLFLOW_TRACKING_URI")
    current = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None  # type: ignore[no-untyped-call]
    explicit = current if current is not None and current != env else None  # set in code, not by the variable
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(explicit)  # type: ignore[arg-type]  # None unsets it (and the variable)
        if env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env
        else:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
