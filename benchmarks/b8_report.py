"""B8 report at scale: what the end-of-sweep report costs for 100, 1,000 and 3,000 trials.

Each size is a study built without running trials (``create_trial``), shaped like a TPE sweep of
``configs/digits_rf_tpe.yaml``: its five parameters (ints with steps, categoricals with a null),
3 reported fold scores per trial, a tenth pruned and a few failed, start and end times spread
over 2 workers, a child-run id on every trial. The report is then written exactly as after a
sweep (``report.write_report``: plots, importances, trials.csv, best.json; for the built-in
objective also the dataset lineage and the refit best model, a 20-150-tree forest) to a parent
run in a fresh SQLite store, in a child process of its own. Every size as a user objective's
sweep (what the report costs for the trials), the smallest and largest also with the model.
Figures: the report's wall and CPU seconds (this process and its plot child) and the peak
resident memory of either process (``ru_maxrss``), minus nothing: what the machine had to hold.
At 3,000 trials the report took ~70 s and 242 MB before it sampled its plots (issue #15 item 11).

Run: python benchmarks/b8_report.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from collections.abc import Callable
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
        params: dict[str, Any] = {
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


def child_store(workdir: str, **_: Any) -> dict[str, Any]:
    """The MLflow side a sweep leaves: a store with the sweep's experiment, its parent run and
    the best trial's child run. Made in a process of its own: the report's process must not
    have imported mlflow (its telemetry threads would keep the plot child from being forked),
    as a coordinator has not."""
    from mlflow import MlflowClient

    C.quiet_libraries()
    directory = Path(workdir)
    client = MlflowClient(C.sqlite_uri(directory))
    experiment = client.create_experiment("digits_rf_tpe", artifact_location=str(directory / "artifacts"))
    parent = client.create_run(experiment, run_name="digits_rf_tpe").info.run_id
    child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(child, "FINISHED")
    return {"experiment": experiment, "parent": parent, "child": child}


def child_report(n_trials: int, workdir: str, store: dict[str, str], model: bool = True, **_: Any) -> dict[str, Any]:
    import os
    import resource
    import threading
    import types

    from sweeper.config import load_config
    from sweeper.report import report as _report

    C.quiet_libraries()
    directory = Path(workdir)
    cfg: Any = load_config(str(CONFIG), [f"storage_dir={directory / '.sweeper'}"])
    if not model:  # a user objective: the same report without the dataset and the refit model
        cfg = types.SimpleNamespace(objective="userobj:objective", model=None, name=cfg.name,
                                    storage_dir=cfg.storage_dir)
    study = build_study(directory / ".sweeper" / cfg.name, cfg.name, n_trials)
    study.set_user_attr("mlflow_parent_run_id", store["parent"])
    study.set_user_attr("mlflow_experiment_id", store["experiment"])
    result = types.SimpleNamespace(study=study, tracking_uri=C.sqlite_uri(directory), parent_run_id=store["parent"],
                                   run_ids={study.best_trial.number: store["child"]},
                                   summary=types.SimpleNamespace(signal=None), experiment=cfg.name)
    forked = threading.active_count() == 1  # as after a sweep: the plots are drawn by a forked child
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
        "forked": forked,
    }


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {"store": child_store, "report": child_report}


# --- the parent -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> C.Report:
    args = C.start(__doc__, CHILDREN, argv)
    if args is None:
        return C.Report("child")
    report = C.Report("B8 report at scale")
    sizes = QUICK_SIZES if args.quick else SIZES
    cases = [(n, False) for n in sizes] + [(n, True) for n in (sizes[0], sizes[-1])]
    for n, model in cases:
        kind = "built-in RF, model refit" if model else "user objective"
        with C.temp_dir("b8") as tmp:
            _, store = C.run_child("b8_report", "store", {"workdir": str(tmp)}, cwd=tmp)
            C.wait_for_quiet()
            _, got = C.run_child("b8_report", "report", {"n_trials": n, "workdir": str(tmp), "store": store,
                                                         "model": model}, cwd=tmp)
        peak = max(got["peak_mb"], got["child_peak_mb"])
        report.add(f"{n:,} trials ({kind}): report wall", C.fmt_s(got["wall_s"]),
                   note=f"cpu {got['cpu_s']:.1f} s + plot child {got['child_cpu_s']:.1f} s")
        report.add(f"{n:,} trials ({kind}): peak resident memory", f"{peak:,.0f} MB",
                   note=f"report process {got['peak_mb']:,.0f} MB (study loaded: {got['before_mb']:,.0f} MB), "
                        f"plot child {got['child_peak_mb']:,.0f} MB")
        missing = {"trials.csv", "best.json", "plots/optimization_history.png", "plots/timeline.png"} - set(
            got["artifacts"])
        if not got["forked"]:
            report.note(f"{n} trials: the plots were drawn in the report's own process (a thread ran)")
        if missing or got["model"] != model:
            report.note(f"{n} trials: report incomplete: missing {sorted(missing)}, model {got['model']}")
    return C.finish(report, args)


if __name__ == "__main__":
    main()
