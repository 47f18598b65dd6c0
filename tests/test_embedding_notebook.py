"""A sweep from a Jupyter notebook, through a real kernel (nbclient + ipykernel): cells define the
data, an objective and a lambda; every trial runs in a worker process (not the kernel) and lands
as an MLflow child run; progress shows as log lines on stderr and tqdm's widget bar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import children_runs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
NOTEBOOK = Path(__file__).parent / "notebooks" / "sweep.ipynb"


def test_a_notebook_sweep_runs_every_trial_in_a_worker_and_records_it(tmp_path, monkeypatch):
    import nbformat
    from mlflow import MlflowClient
    from nbclient import NotebookClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("SWEEPER_NOTEBOOK_TRACKING_URI", uri)  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=150, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    printed = [o for o in notebook.cells[-1].outputs if o.output_type == "stream" and o.name == "stdout"]
    result = json.loads(printed[0].text)
    assert result["states"] == ["COMPLETE"] * 4
    assert result["kernel_pid"] not in result["trial_pids"]  # every trial ran in a worker process
    client = MlflowClient(uri)
    runs = children_runs(client, result["parent_run_id"])
    assert sorted(int(r.data.tags["sweeper.worker_pid"]) for r in runs) == sorted(result["trial_pids"])

    # how progress shows there: a line per trial on the cell's stderr, and the widget bar
    outputs = notebook.cells[-2].outputs
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert stderr.count(" sweeper] Trial ") == 4, stderr
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs
               if o.output_type == "display_data"), outputs
