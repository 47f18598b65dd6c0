"""B8 report at scale: what the end-of-sweep report costs for 100, 1,000 and 3,000 trials.

Each size is a study built without running trials (``create_trial``), shaped like a TPE sweep of
``configs/digits_rf_tpe.yaml``: its five parameters (ints with steps, categoricals with a null),
3 reported fold scores per trial, a tenth pruned and a few failed, start and end times spread
over 2 workers, a child-run id on every trial. The report is then written exactly as after a
sweep (``report.write_report``: plots, importances, trials.csv, best.json, dataset lineage and
the refit best model) to a parent run in a fresh SQLite store, in a child process of its own.
Figures: the report's wall and CPU seconds (this process and its plot child) and the peak
resident memory of either process (``ru_maxrss``), minus nothing: what the machine had to hold.
At 3,000 trials the report took ~70 s and 242 MB before it sampled its plots (issue #15 item 11).

Run: python benchmarks/b8_report.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

CONFIG = C.REPO / "configs" / "digits_rf_tpe.yaml"
SIZES = (100, 1000, 3000)
QUICK_SIZES = (100, 300)


# --- the child: build a study, write its report --------------------------------------------------


def build_study(directory: Path, name: str, n_trials: int) -> Any:
    """A finished TPE-like sweep of ``n_trials`` trials in a journal, without running any."""
    import datetime as dt
    import random

    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from sweeper.engine.study import journal_storage

    rng = random.Random(0)
    dists = {
        "n_estimators": IntDistribution(20, 150, step=10), "max_depth": IntDistribution(4, 24),
        "min_samples_leaf": IntDistribution(1, 8), "max_features": CategoricalDistribution(["sqrt", "log2", None]),
        "criterion": CategoricalDistribution(["gini", "entropy"]),
    }
    study = optuna.create_study(study_name=name, storage=journal_storage(directory, owner=True), direction="maximize")
    clock = [dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1)]  # two workers' clocks
    trials = []
    for number in range(n_trials):
        params = {
            "n_estimators": rng.randrange(20, 151, 10), "max_depth": rng.randint(4, 24),
            "min_samples_leaf": rng.randint(1, 8), "max_features": rng.choice(["sqrt", "log2", None]),
            "criterion": rng.choice(["gini", "entropy"]),
        }
        score = 0.80 + 0.15 * (1 - params["min_samples_leaf"] / 8) * (params["max_depth"] / 24) + rng.gauss(0, 0.01)
        folds = {step: score + rng.gauss(0, 0.005) for step in range(3)}
        worker = number % 2
        start = clock[worker] + dt.timedelta(milliseconds=rng.randint(5, 50))
        end = start + dt.timedelta(seconds=rng.uniform(0.3, 2.0))
        clock[worker] = end
        state = TrialState.COMPLETE
        if number % 10 == 9:
            state, folds = TrialState.PRUNED, {0: folds[0]}
        elif number % 97 == 50:
            state, folds = TrialState.FAIL, {}
        trials.append(create_trial(
            state=state, value=score if state == TrialState.COMPLETE else None, params=params, distributions=dists,
            intermediate_values=folds, system_attrs={"sweeper:mlflow_run_id": f"{number:032x}"},
        ))
        trials[-1].datetime_start, trials[-1].datetime_complete = start, end
    study.add_trials(trials)
    return study


def child_report(n_trials: int, workdir: str, **_: Any) -> dict[str, Any]:
    import os
    import resource
    import types

    from mlflow import MlflowClient

    from sweeper.config import load_config
    from sweeper.report import report as _report

    C.quiet_libraries()
    directory = Path(workdir)
    cfg = load_config(str(CONFIG), [f"storage_dir={directory / '.sweeper'}"])
    study = build_study(directory / ".sweeper" / cfg.name, cfg.name, n_trials)
    uri = C.sqlite_uri(directory)
    client = MlflowClient(uri)
    experiment = client.create_experiment(cfg.name, artifact_location=str(directory / "artifacts"))
    parent = client.create_run(experiment, run_name=cfg.name).info.run_id
    best = study.best_trial
    child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(child, "FINISHED")
    study.set_user_attr("mlflow_parent_run_id", parent)
    study.set_user_attr("mlflow_experiment_id", experiment)
    result = types.SimpleNamespace(study=study, tracking_uri=uri, parent_run_id=parent, run_ids={best.number: child},
                                   summary=types.SimpleNamespace(signal=None), experiment=cfg.name)
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = os.times()
    t0 = time.perf_counter()
    written = _report.write_report(cfg, result)
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    return {
        "wall_s": wall,
        "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "child_cpu_s": (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "before_mb": before_rss / 1024,
        "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "artifacts": written["artifacts"],
        "model": bool(written["model_uri"]),
    }


CHILDREN = {"report": child_report}


# --- the parent -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> C.Report:
    args = C.start(__doc__, CHILDREN, argv)
    if args is None:
        return C.Report("child")
    report = C.Report("B8 report at scale")
    for n in QUICK_SIZES if args.quick else SIZES:
        with C.temp_dir("b8") as tmp:
            C.wait_for_quiet()
            _, got = C.run_child("b8_report", "report", {"n_trials": n, "workdir": str(tmp)}, cwd=tmp)
        peak = max(got["peak_mb"], got["child_peak_mb"])
        report.add(f"{n:,} trials: report wall", C.fmt_s(got["wall_s"]),
                   note=f"cpu {got['cpu_s']:.1f} s + plot child {got['child_cpu_s']:.1f} s")
        report.add(f"{n:,} trials: peak resident memory", f"{peak:,.0f} MB",
                   note=f"report process {got['peak_mb']:,.0f} MB (study loaded: {got['before_mb']:,.0f} MB), "
                        f"plot child {got['child_peak_mb']:,.0f} MB")
        missing = {"trials.csv", "best.json", "plots/optimization_history.png", "plots/timeline.png"} - set(
            got["artifacts"])
        if missing or not got["model"]:
            report.note(f"{n} trials: report incomplete: missing {sorted(missing)}, model {got['model']}")
    return C.finish(report, args)


if __name__ == "__main__":
    main()
