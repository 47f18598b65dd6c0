"""The ``sweeper`` command end to end: real subprocesses, real stores under tmp_path."""

from __future__ import annotations

import datetime

import io
import itertools
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from conftest import children_runs

from sweeper.engine.study import journal_storage

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "configs" / "digits_svc_grid.yaml"


def sweeper_cli(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )


def load_study(cwd: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=journal_storage(cwd / ".sweeper" / name))


@pytest.mark.slow
def test_grid_sweep_covers_every_point_once_and_logs_to_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = sweeper_cli("run", str(GRID), "--n-jobs", "2", "--tracking-uri", uri, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "24 complete, 0 failed" in done.stdout
    assert f"mlflow ui --backend-store-uri {uri}" in done.stdout
    study = load_study(tmp_path, "digits_svc_grid")
    points = [tuple(t.params[k] for k in ("C", "gamma", "kernel")) for t in study.trials]
    expected = set(itertools.product([0.1, 1, 10, 100], ["scale", 0.001, 0.0001], ["rbf", "linear"]))
    assert sorted(points, key=str) == sorted(expected, key=str)  # each point exactly once

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.run_name == "digits_svc_grid" and parent.info.status == "FINISHED"
    assert parent.data.params["model.estimator"] == "sklearn.svm.SVC"
    assert parent.data.params["sampler.name"] == "grid"
    assert "sweep.yaml" in [a.path for a in client.list_artifacts(parent_id)]
    children = children_runs(client, parent_id)
    assert len(children) == 24
    assert {r.info.status for r in children} == {"FINISHED"}
    assert all({"value", "cv_mean", "fold_score"} <= set(r.data.metrics) for r in children)
    assert len({r.data.tags["sweeper.worker_pid"] for r in children}) >= 2

    again = sweeper_cli("run", str(GRID), "--tracking-uri", uri, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n_trial: 3\n", "n_trial"),
        ("model: sklearn.svm.SVC\ndata: load_digits\nsearch_space:\n  C: {low: 10, high: 1}\nn_trials: 2\n",
         "search_space.C"),
        ("model: os.system\ndata: load_digits\nsearch_space:\n  C: [1, 2]\nn_trials: 2\n", "model.estimator"),
        ("[1, 2]\n", "top level"),
    ],
)
def test_bad_config_is_one_clear_line_per_problem_and_exit_2(tmp_path, text, expected):
    path = write(tmp_path, text)
    done = sweeper_cli("run", str(path), cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert str(path) in done.stderr and expected in done.stderr
    assert not (tmp_path / ".sweeper").exists()  # nothing started
    assert not (tmp_path / "mlflow.db").exists()


def test_validate_prints_the_space_and_grid_size(tmp_path):
    done = sweeper_cli("validate", str(GRID), cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "grid size: 24" in done.stdout and "kernel: one of ['rbf', 'linear']" in done.stdout


def test_the_program_returns_its_status_and_freezes_what_exists_for_a_cheap_teardown(tmp_path):
    """``main()`` as the whole program returns normally (no os._exit: atexit handlers, buffered
    output and the exit status all behave as Python's), with the objects alive at the end
    frozen out of the last garbage collection, the ~1 s teardown after mlflow is loaded."""
    script = (
        "import atexit, gc, sys\n"
        "from sweeper import cli\n"
        "atexit.register(lambda: print('atexit handler ran'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        f"sys.argv = ['sweeper', 'validate', {str(tmp_path / 'missing.yaml')!r}]\n"
        "code = cli.main()\n"
        "print(' frozen', gc.get_freeze_count() > 0)\n"
        "raise SystemExit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "missing.yaml" in done.stderr
    assert done.stdout == "buffered, no newline frozen True\natexit handler ran\n"
    called = subprocess.run([sys.executable, "-c", "import gc; from sweeper import cli\n"
                             "cli.main(['validate', 'missing.yaml']); print(gc.get_freeze_count())"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert called.stdout.strip() == "0"  # a caller's own process is left as it was


def test_user_objective_config_and_exit_1_when_nothing_completes(tmp_path):
    (tmp_path / "myobj.py").write_text(
        "def objective(trial):\n    trial.suggest_float('x', 0, 1)\n    raise RuntimeError('always')\n"
    )
    path = write(tmp_path, "objective: myobj:objective\nsearch_space:\n  x: {low: 0.0, high: 1.0}\n"
                           "n_trials: 3\nn_jobs: 2\nmax_consecutive_failures: null\n")
    done = sweeper_cli("run", str(path), "--tracking-uri", f"sqlite:///{tmp_path}/m.db", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "0 complete, 3 failed" in done.stdout
    assert "RuntimeError: always" in done.stderr


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _fake_trial(number: int, value: float):
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    return SimpleNamespace(number=number, values=[value], state=optuna.trial.TrialState.COMPLETE, system_attrs={},
                           datetime_start=start, datetime_complete=start + datetime.timedelta(seconds=10))


def test_progress_is_one_live_line_in_a_terminal_and_plain_lines_in_logs():
    from sweeper.cli import _Progress
    from sweeper.engine.coordinator import SweepSummary
    from sweeper.engine.recorder import WorkerInfo
    from sweeper.engine.study import Totals

    summary = SweepSummary(totals=Totals(complete=2, counted=2, best_trial=1, best_value=0.5),
                           workers={0: WorkerInfo("h", 1), 1: WorkerInfo("h", 2)})
    for tty in (True, False):
        stream = _Stream(tty)
        progress = _Progress(4, stream=stream)
        progress(_fake_trial(0, 0.7), summary, 1)
        progress(_fake_trial(1, 0.5), summary, 1)
        progress.close()
        text = stream.getvalue()
        assert "[2/4] done 2 failed 0 pruned 0 running 1 | best 0.5 (#1)" in text
        assert "eta 0:10" in text  # 2 trials left of 10 s each, on 2 workers
        if tty:
            assert text.count("\r\033[K") == 2 and text.count("\n") == 1
        else:
            assert text.count("\n") == 2 and "\r" not in text


@pytest.mark.parametrize("how", ["python -m sweeper", "sweeper"])
def test_modules_planted_in_the_working_directory_never_shadow_libraries(tmp_path, how):
    """A ``yaml.py`` or ``sklearn/`` in the directory a command runs from must not run as the
    library (issue: every verb put the working directory first on sys.path)."""
    marker = tmp_path / "hijacked"
    for planted in ("yaml.py", "sklearn/__init__.py", "optuna.py"):
        path = tmp_path / planted
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"open({str(marker)!r}, 'a').write({planted!r})\n")
    config = tmp_path / "svc.yaml"
    config.write_text((ROOT / "configs" / "digits_svc_grid.yaml").read_text())
    program = [sys.executable, "-m", "sweeper"] if how.startswith("python") else [
        str(Path(sys.executable).with_name("sweeper"))]
    done = subprocess.run([*program, "validate", str(config)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), marker.read_text()


def test_main_called_again_in_one_process_leaves_the_logger_as_it_found_it(tmp_path, capsys):
    import logging

    from sweeper.cli import main

    logger = logging.getLogger("sweeper")
    before = list(logger.handlers), logger.level, logger.propagate
    for _ in range(3):
        assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert (list(logger.handlers), logger.level, logger.propagate) == before
