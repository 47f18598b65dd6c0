"""The writes of a sweep through MLflow's public client: any store MLflow can open.

Tracking servers (HTTP), PostgreSQL, MySQL, file stores, a SQLite store at a schema revision
the direct path was not verified on, and whatever the direct path hands over mid-sweep. Only
``MlflowClient``'s public methods are used; a run costs ``create_run`` + one ``log_batch`` per
100 params and tags (1,000 metrics) + one call per artifact + ``set_terminated``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from . import template as _template
from .records import MLFLOW_PARENT_RUN_ID, PROBE_TAG
from .sqlite_store import sqlite_path
from .store import PartialWrite, RunRef, RunWrite

#: MLflow caps one log_batch at 100 params + tags and 1000 items in all.
_MAX_PARAMS_TAGS, _MAX_ITEMS = 100, 1000
_PAGE = 1000


class ClientStore:
    """``MlflowClient`` behind the writer's interface, in one experiment."""

    kind = "MLflow client"
    transactional = False

    def __init__(self, client: Any) -> None:
        self._client = client
        self._experiment_id: str | None = None

    @classmethod
    def open(cls, uri: str) -> ClientStore:
        path = sqlite_path(uri)
        if path is not None and not os.path.exists(path):
            # a new SQLite store is a copy of MLflow's own empty one: no migrations (~0.9 s),
            # and the next sweep can write directly
            if _template.ensure_template() is not None:
                _template.seed_store(path)
        if uri.startswith(("http://", "https://")):
            # MLflow's defaults retry one failed request for minutes (7 retries, backoff 2);
            # the writer retries itself and keeps what still fails. Explicit settings win.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            # no "View run <url>" line per run (credentials included), nor the get_run behind it
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (and for a database, migrates) the store now
        return cls(client)

    def close(self) -> None:
        pass

    def open_experiment(self, name: str, artifact_location: str | None, tags: Mapping[str, str]) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            self._experiment_id = self._client.create_experiment(
                name, artifact_location=artifact_location, tags=dict(tags))
        else:
            self._experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                self._client.restore_experiment(self._experiment_id)
        return str(self._experiment_id)

    def probe(self, params: Sequence[str], metrics: Sequence[str], tags: Mapping[str, str]) -> None:
        import time

        now = int(time.time() * 1000)
        [run_id] = self.write([RunWrite(None, "sweeper-probe", now, "RUNNING", tags={PROBE_TAG: "true", **tags})])
        try:
            self.write([RunWrite(run_id, "sweeper-probe", now, "RUNNING", params={k: "probe" for k in params},
                                 metrics=[(k, 0.0, 0, now) for k in metrics])])
        finally:
            self._client.delete_run(run_id)

    # --- runs -------------------------------------------------------------------------------------

    def write(self, runs: Sequence[RunWrite]) -> list[str]:
        return [self._write_one(run) for run in runs]

    def _write_one(self, run: RunWrite) -> str:
        if run.run_id is None:
            created = self._client.create_run(self._experiment_id, start_time=run.start_ms, tags=dict(run.tags),
                                              run_name=run.run_name)
            run_id: str = created.info.run_id
            try:
                self._fill(run_id, run, tags={})
            except Exception as exc:  # noqa: BLE001 - the run exists: the retry must not make another
                raise PartialWrite(run_id, exc) from exc
            return run_id
        self._fill(run.run_id, run, tags=run.tags)
        return run.run_id

    def _fill(self, run_id: str, run: RunWrite, tags: Mapping[str, str]) -> None:
        self._log_batch(run_id, run.metrics, run.params, tags)
        for name, text in run.texts.items():
            self._client.log_text(run_id, text, name)
        for name, data, artifact_dir in run.files:
            with tempfile.TemporaryDirectory(prefix="sweeper-artifact-") as tmp:
                path = os.path.join(tmp, os.path.basename(name))
                with open(path, "wb") as handle:
                    handle.write(data)
                self._client.log_artifact(run_id, path, artifact_dir)
        if run.status != "RUNNING":
            self._client.set_terminated(run_id, run.status, end_time=run.end_ms)

    def _log_batch(self, run_id: str, metrics: Sequence[tuple[str, float, int, int]], params: Mapping[str, str],
                   tags: Mapping[str, str]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        ps = [Param(k, v) for k, v in params.items()]
        ts = [RunTag(k, v) for k, v in tags.items()]
        ms = [Metric(k, v, ts_ms, step) for k, v, step, ts_ms in metrics]
        while ps or ts or ms:  # one request for the usual trial
            p, ps = ps[:_MAX_PARAMS_TAGS], ps[_MAX_PARAMS_TAGS:]
            t, ts = ts[: _MAX_PARAMS_TAGS - len(p)], ts[_MAX_PARAMS_TAGS - len(p):]
            room = _MAX_ITEMS - len(p) - len(t)
            m, ms = ms[:room], ms[room:]
            self._client.log_batch(run_id, metrics=m, params=p, tags=t)

    def set_status(self, run_id: str, status: str, end_ms: int | None = None) -> None:
        if end_ms is None:
            self._client.update_run(run_id, status=status)
        else:
            self._client.set_terminated(run_id, status, end_time=end_ms)

    def delete_run(self, run_id: str) -> None:
        self._client.delete_run(run_id)

    # --- reads ------------------------------------------------------------------------------------

    def find_runs(self, tag: str, value: str) -> list[RunRef]:
        runs = self._search(f"tags.`{tag}` = '{value}'")
        return sorted((RunRef(r.info.run_id, r.info.status, None, r.info.start_time or 0) for r in runs),
                      key=lambda ref: (ref.start_ms, ref.run_id))

    def children(self, parent_run_id: str) -> list[RunRef]:
        found = []
        for r in self._search(f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"):
            number = r.data.tags.get("sweeper.trial_number")
            found.append(RunRef(r.info.run_id, r.info.status, int(number) if number and number.isdigit() else None,
                                r.info.start_time or 0))
        return sorted(found, key=lambda ref: (ref.start_ms, ref.run_id))

    def _search(self, filter_string: str) -> list[Any]:
        runs: list[Any] = []
        token = None
        while True:
            page = self._client.search_runs([self._experiment_id], filter_string=filter_string,
                                            max_results=_PAGE, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def run_status(self, run_id: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            run = self._client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        if run.info.lifecycle_stage != "active" or str(run.info.experiment_id) != str(self._experiment_id):
            return None
        return str(run.info.status)

    def run_contents(self, run_id: str) -> tuple[set[str], bool]:
        data = self._client.get_run(run_id).data
        return set(data.params), bool(data.metrics)
