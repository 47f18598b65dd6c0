"""B3 tracking overhead: what full MLflow logging costs per trial.

Part 1, throughput: 500 trivial TPE trials (two suggestions, a constant-ish value), each logged
to MLflow as a nested child run of one parent run, in a fresh SQLite store:
    sweeper    sweeper.optimize(n_jobs=2), tracking on
    optuna     optuna study.optimize(n_jobs=1) + optuna_integration.MLflowCallback(nested runs
               under an mlflow.start_run parent), or, if optuna-integration is missing, the same
               calls made by hand (start_run(nested) + log_params + log_metric per trial)
Trials/s counts the whole call (both include the store's creation). Target: sweeper >= 2x.

Part 2, tracking on vs off: 20 CPU-bound trials of ~0.3 s (calibrated busy loop), n_jobs=2,
sweeper with tracking (fresh SQLite store; and a store created beforehand) vs track=False.
Target: <= 1.05x.

Run: python benchmarks/b3_overhead.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

TARGET_THROUGHPUT = 2.0
TARGET_OVERHEAD = 1.05


# --- children --------------------------------------------------------------------------------


def child_sweeper(n_trials: int, store: str | None, objective: str, kwargs: dict[str, Any],
                  n_jobs: int = 2, **_: Any) -> dict[str, Any]:
    import sweeper

    C.quiet_libraries()
    t0 = time.perf_counter()
    study = sweeper.optimize(
        objective, n_trials=n_trials, n_jobs=n_jobs, seed=0, objective_kwargs=kwargs,
        tracking_uri=store, track=store is not None, experiment="b3",
    )
    inner = time.perf_counter() - t0
    first = min(t.datetime_start for t in study.trials).timestamp()
    last = max(t.datetime_complete for t in study.trials).timestamp()
    return {"inner_s": inner, "complete": sum(t.state.name == "COMPLETE" for t in study.trials),
            "trials_span_s": last - first, "end_wall": time.time(), "last_complete": last}


def child_optuna_mlflow(n_trials: int, store: str, **_: Any) -> dict[str, Any]:
    import mlflow
    import optuna

    from benchmarks._objectives import trivial_objective

    C.quiet_libraries()
    t0 = time.perf_counter()
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("b3")
    try:
        from optuna_integration import MLflowCallback

        callback: Any = MLflowCallback(tracking_uri=store, metric_name="value", create_experiment=False,
                                       mlflow_kwargs={"nested": True})
        how = "optuna_integration.MLflowCallback"
    except ImportError:
        callback = _emulated_callback
        how = "emulated MLflowCallback (optuna-integration not installed)"
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    with mlflow.start_run(run_name="optuna-parent"):
        study.optimize(trivial_objective, n_trials=n_trials, n_jobs=1, callbacks=[callback])
    return {"inner_s": time.perf_counter() - t0, "how": how, "complete": len(study.trials)}


def _emulated_callback(study: Any, trial: Any) -> None:
    import mlflow

    with mlflow.start_run(run_name=str(trial.number), nested=True):
        mlflow.log_params(trial.params)
        mlflow.log_metric("value", trial.value)


def child_create_store(store: str, **_: Any) -> dict[str, Any]:
    from mlflow import MlflowClient

    t0 = time.perf_counter()
    MlflowClient(tracking_uri=store).search_experiments()
    return {"inner_s": time.perf_counter() - t0}


def child_count_runs(store: str, **_: Any) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, max_results=50000) if ids else []
    return {"runs": len(runs), "finished": sum(r.info.status == "FINISHED" for r in runs)}


CHILDREN = {"sweeper": child_sweeper, "optuna_mlflow": child_optuna_mlflow,
            "create_store": child_create_store, "count_runs": child_count_runs}


# --- the parent --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> C.Report:
    args = C.start(__doc__, CHILDREN, argv)
    if args is None:
        return C.Report("child")
    report = C.Report("B3 overhead")
    n_trivial = 100 if args.quick else 500
    n_busy, busy_s = (8, 0.3) if args.quick else (20, 0.3)
    repeats = 1 if args.quick else 2
    print(f"B3: {n_trivial} trivial TPE trials with MLflow; {n_busy} x {busy_s} s CPU trials on/off; "
          f"{repeats} repeat(s), best (minimum) shown")

    # --- part 1: throughput with full logging ----------------------------------------------
    sw, op = [], []
    how = ""
    for rep in range(repeats):
        C.wait_for_quiet()
        with C.temp_dir("b3-sw") as tmp:
            store = C.sqlite_uri(tmp)
            _, res = C.run_child("b3_overhead", "sweeper", {
                "n_trials": n_trivial, "store": store,
                "objective": "benchmarks._objectives:trivial_objective", "kwargs": {}}, cwd=tmp)
            _, runs = C.run_child("b3_overhead", "count_runs", {"store": store}, cwd=tmp)
        sw.append(res["inner_s"])
        if runs["runs"] != n_trivial + 1:
            report.note(f"sweeper: {runs['runs']} MLflow runs, expected {n_trivial + 1} (parent + one per trial)")
        print(f"  [{rep + 1}] sweeper        {res['inner_s']:6.2f} s in call ({n_trivial / res['inner_s']:6.1f} trials/s), "
              f"trials done after {res['trials_span_s']:.2f} s of it, {runs['runs']} runs")
        C.wait_for_quiet()
        with C.temp_dir("b3-op") as tmp:
            store = C.sqlite_uri(tmp)
            _, res = C.run_child("b3_overhead", "optuna_mlflow", {"n_trials": n_trivial, "store": store}, cwd=tmp)
            _, runs = C.run_child("b3_overhead", "count_runs", {"store": store}, cwd=tmp)
        op.append(res["inner_s"])
        how = res["how"]
        print(f"  [{rep + 1}] optuna+MLflow  {res['inner_s']:6.2f} s in call ({n_trivial / res['inner_s']:6.1f} trials/s), "
              f"{runs['runs']} runs")
    sw_rate, op_rate = n_trivial / C.best(sw), n_trivial / C.best(op)
    report.add(f"optuna n_jobs=1 + {how}, {n_trivial} trials", f"{op_rate:.1f} trials/s ({C.best(op):.2f} s)")
    report.add(f"sweeper n_jobs=2, tracking, {n_trivial} trials", f"{sw_rate:.1f} trials/s ({C.best(sw):.2f} s) "
               f"= {sw_rate / op_rate:.2f}x optuna", f">= {TARGET_THROUGHPUT}x", sw_rate / op_rate >= TARGET_THROUGHPUT)

    # --- part 2: tracking on vs off, 0.3 s CPU trials -----------------------------------------
    from benchmarks._objectives import calibrate

    n_iter = calibrate(busy_s)
    busy = {"objective": "benchmarks._objectives:cpu_objective", "kwargs": {"n_iter": n_iter}, "n_trials": n_busy}
    off, fresh, pre = [], [], []
    for rep in range(repeats):
        C.wait_for_quiet()
        with C.temp_dir("b3-off") as tmp:
            _, res = C.run_child("b3_overhead", "sweeper", {**busy, "store": None}, cwd=tmp)
        off.append(res["inner_s"])
        C.wait_for_quiet()
        with C.temp_dir("b3-on") as tmp:
            _, res = C.run_child("b3_overhead", "sweeper", {**busy, "store": C.sqlite_uri(tmp)}, cwd=tmp)
        fresh.append(res["inner_s"])
        with C.temp_dir("b3-pre") as tmp:
            store = C.sqlite_uri(tmp)
            C.run_child("b3_overhead", "create_store", {"store": store}, cwd=tmp)
            C.wait_for_quiet()
            _, res = C.run_child("b3_overhead", "sweeper", {**busy, "store": store}, cwd=tmp)
        pre.append(res["inner_s"])
        print(f"  [{rep + 1}] {n_busy} x {busy_s} s: track=False {off[-1]:.2f} s, tracking fresh store {fresh[-1]:.2f} s, "
              f"tracking existing store {pre[-1]:.2f} s")
    t_off, t_fresh, t_pre = C.best(off), C.best(fresh), C.best(pre)
    report.add(f"{n_busy} x {busy_s} s CPU trials, n_jobs=2, track=False", f"{t_off:.2f} s")
    report.add("... tracking on, fresh SQLite store (end to end)", f"{t_fresh:.2f} s = {t_fresh / t_off:.2f}x",
               f"<= {TARGET_OVERHEAD}x", t_fresh / t_off <= TARGET_OVERHEAD)
    report.add("... tracking on, store created beforehand", f"{t_pre:.2f} s = {t_pre / t_off:.2f}x",
               f"<= {TARGET_OVERHEAD}x", t_pre / t_off <= TARGET_OVERHEAD)
    return C.finish(report, args)


if __name__ == "__main__":
    main()
