"""B2 scikit-learn grid: SVC on load_digits, 24-point grid, 3-fold CV, whole processes.

    sweeper      ``sweeper run benchmarks/configs/svc_grid.yaml --n-jobs 2`` in a temp cwd, full
                 MLflow logging to a fresh ``--tracking-uri sqlite:///...``
    GridSearchCV a script running GridSearchCV(SVC(), grid, cv=StratifiedKFold(3, shuffle, seed 0),
                 n_jobs=2, refit=False) (no logging; refit off because sweeper does not refit)

    sweeper, report: false   the same run without the end-of-sweep report (plots, best model
                 refit and logged, dataset lineage): every trial is still a child run in MLflow

Checks: every grid point exactly once, the same CV score for each point and the same best
params. Target: sweeper wall <= 1.25x GridSearchCV's (shown for both sweeper runs).

Then TPE + median pruner (per-fold pruning, 5-fold CV, benchmarks/configs/svc_tpe_prune.yaml)
against GridSearchCV with the same 5 folds: the trials and the time (from process launch)
TPE needs to reach the grid's best score. Target: <= 0.5x GridSearchCV's 5-fold wall.

Run: python benchmarks/b2_sklearn_grid.py [--quick]     (--quick: a 12-point grid, C in {1, 10})
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

GRID_CONFIG = C.BENCH_DIR / "configs" / "svc_grid.yaml"
TPE_CONFIG = C.BENCH_DIR / "configs" / "svc_tpe_prune.yaml"
FULL_C = [0.1, 1, 10, 100]
QUICK_C = [1, 10]
GAMMA = ["scale", 0.001, 0.0001]
KERNEL = ["rbf", "linear"]
TARGET_GRID = 1.25
TARGET_TPE = 0.5


# --- children --------------------------------------------------------------------------------


def child_gridsearch(cv: int, C_values: list[float], **_: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    search = GridSearchCV(
        SVC(), {"C": C_values, "gamma": GAMMA, "kernel": KERNEL},
        cv=StratifiedKFold(n_splits=cv, shuffle=True, random_state=0),
        scoring="accuracy", n_jobs=2, refit=False,
    )
    search.fit(X, y)
    results = search.cv_results_
    points = [
        {"params": dict(p), "score": float(s)}
        for p, s in zip(results["params"], results["mean_test_score"])
    ]
    return {"inner_s": time.perf_counter() - t0, "points": points}


def child_read_journal(journal: str, name: str, **_: Any) -> dict[str, Any]:
    """sweeper's results, read back with Optuna's own tools from the sweep's journal."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(journal)))
    trials = []
    for t in study.trials:
        trials.append({
            "number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
            "start": t.datetime_start.timestamp() if t.datetime_start else None,
            "complete": t.datetime_complete.timestamp() if t.datetime_complete else None,
            "steps": len(t.intermediate_values),
        })
    return {"trials": trials}


CHILDREN = {"gridsearch": child_gridsearch, "read_journal": child_read_journal}


# --- the parent --------------------------------------------------------------------------------


def _key(params: dict[str, Any]) -> tuple[Any, ...]:
    gamma = params["gamma"]
    return (float(params["C"]), gamma if isinstance(gamma, str) else float(gamma), params["kernel"])


def _sweeper_run(config: Path, name: str, tmp: Path, extra: list[str]) -> dict[str, Any]:
    """``sweeper run`` as a whole process in ``tmp``; then its journal, read with Optuna."""
    cmd = [C.sweeper_exe(), "run", str(config), "--n-jobs", "2",
           "--tracking-uri", C.sqlite_uri(tmp), *extra]
    launched = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=tmp, env=C.child_env(), capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    journal = tmp / ".sweeper" / name / "study.journal"
    trials: list[dict[str, Any]] = []
    if journal.exists():
        _, read = C.run_child("b2_sklearn_grid", "read_journal", {"journal": str(journal), "name": name}, cwd=tmp)
        trials = read["trials"]
    return {"wall": wall, "launched": launched, "rc": proc.returncode, "stderr": proc.stderr,
            "stdout": proc.stdout, "trials": trials}


def _phases(run: dict[str, Any]) -> str:
    """launch -> first trial started -> last trial finished -> process exit."""
    starts = [t["start"] for t in run["trials"] if t["start"]]
    ends = [t["complete"] for t in run["trials"] if t["complete"]]
    first, last = min(starts) - run["launched"], max(ends) - run["launched"]
    return (f"start-up {first:.2f} s (launch -> first trial), trials {last - first:.2f} s, after the last "
            f"trial {run['wall'] - last:.2f} s (end-of-sweep report + MLflow flush + exit)")


def _describe_failure(run: dict[str, Any]) -> str:
    err = run["stderr"]
    if "Study.stop" in err and "UpdateFinishedTrialError" in err:
        return (f"exit status {run['rc']}: coordinator crashed when the grid was exhausted (GridSampler."
                "after_trial calls study.stop() outside optimize -> RuntimeError; _tell_failure then writes "
                "to the finished trial -> UpdateFinishedTrialError)")
    lines = [line for line in err.splitlines() if line.strip()]
    return f"exit status {run['rc']}: {lines[-1] if lines else '(no stderr)'}"


def main(argv: list[str] | None = None) -> C.Report:
    args = C.start(__doc__, CHILDREN, argv)
    if args is None:
        return C.Report("child")
    report = C.Report("B2 sklearn grid")
    C_values = QUICK_C if args.quick else FULL_C
    n_points = len(C_values) * len(GAMMA) * len(KERNEL)
    extra = [] if not args.quick else ["--set", f"search_space.C={C_values}"]
    repeats = 1 if args.quick else 3
    print(f"B2: SVC on digits, {n_points}-point grid, {repeats} repeat(s), best (minimum) wall shown")

    # --- exhaustive grid: sweeper vs GridSearchCV -------------------------------------------
    gs_walls, sw_walls, sw_runs, gs_points, bare_runs = [], [], [], [], []
    for rep in range(repeats):
        C.wait_for_quiet()
        with C.temp_dir("b2-gs") as tmp:
            wall, gs = C.run_child("b2_sklearn_grid", "gridsearch", {"cv": 3, "C_values": C_values}, cwd=tmp)
        gs_walls.append(wall)
        gs_points = gs["points"]
        C.wait_for_quiet()
        with C.temp_dir("b2-sw") as tmp:
            run = _sweeper_run(GRID_CONFIG, "bench_svc_grid", tmp, extra)
        sw_walls.append(run["wall"])
        sw_runs.append(run)
        C.wait_for_quiet()
        with C.temp_dir("b2-bare") as tmp:
            bare = _sweeper_run(GRID_CONFIG, "bench_svc_grid", tmp, [*extra, "--set", "report=false"])
        bare_runs.append(bare)
        print(f"  [{rep + 1}] GridSearchCV {wall:6.2f} s   sweeper run {run['wall']:6.2f} s (exit {run['rc']}, "
              f"{sum(t['state'] == 'COMPLETE' for t in run['trials'])} trials complete)   "
              f"report: false {bare['wall']:6.2f} s (exit {bare['rc']})")
    gs_wall, sw_wall = C.best(gs_walls), C.best(sw_walls)
    ratio = sw_wall / gs_wall
    report.add("GridSearchCV(n_jobs=2), 3-fold, whole process", f"{gs_wall:.2f} s [median {C.median(gs_walls):.2f} s]")
    report.add("sweeper run --n-jobs 2 (MLflow to fresh SQLite), whole process",
               f"{sw_wall:.2f} s = {ratio:.2f}x GridSearchCV [median {C.median(sw_walls):.2f} s = "
               f"{C.median(sw_walls) / C.median(gs_walls):.2f}x]", f"<= {TARGET_GRID}x", ratio <= TARGET_GRID)
    bare_walls = [r["wall"] for r in bare_runs]
    bare_ratio = C.best(bare_walls) / gs_wall
    report.add("sweeper run --n-jobs 2, report: false (every trial still logged to MLflow), whole process",
               f"{C.best(bare_walls):.2f} s = {bare_ratio:.2f}x GridSearchCV [median {C.median(bare_walls):.2f} s = "
               f"{C.median(bare_walls) / C.median(gs_walls):.2f}x]", f"<= {TARGET_GRID}x",
               bare_ratio <= TARGET_GRID and all(r["rc"] == 0 for r in bare_runs))
    failed = [r for r in sw_runs + bare_runs if r["rc"] != 0]
    if failed:
        report.add("sweeper run exit status", _describe_failure(failed[0]).split(":")[0] + f" in {len(failed)}/{len(sw_runs)} runs",
                   "0", False)
        report.note("sweeper run: " + _describe_failure(failed[0]))
    # correctness, from the last run
    run = sw_runs[-1]
    complete = [t for t in run["trials"] if t["state"] == "COMPLETE"]
    counts: dict[tuple[Any, ...], int] = {}
    for t in complete:
        counts[_key(t["params"])] = counts.get(_key(t["params"]), 0) + 1
    expected = {_key(p["params"]) for p in gs_points}
    once = set(counts) == expected and all(c == 1 for c in counts.values()) and len(run["trials"]) == n_points
    report.add("every grid point exactly once",
               f"{len(counts)}/{len(expected)} points, {len(run['trials'])} trials, "
               f"{sum(c > 1 for c in counts.values())} repeated", "yes", once)
    gs_score = {_key(p["params"]): p["score"] for p in gs_points}
    diffs = [abs(t["value"] - gs_score[_key(t["params"])]) for t in complete if _key(t["params"]) in gs_score]
    max_diff = max(diffs) if diffs else float("nan")
    report.add("CV score per point vs GridSearchCV", f"max |diff| {max_diff:.2e} over {len(diffs)} points",
               "identical (<= 1e-12)", bool(diffs) and max_diff <= 1e-12)
    gs_best = max(p["score"] for p in gs_points)
    gs_best_keys = {_key(p["params"]) for p in gs_points if p["score"] == gs_best}
    if complete:
        sw_best = max(complete, key=lambda t: (t["value"], -t["number"]))
        same = _key(sw_best["params"]) in gs_best_keys and abs(sw_best["value"] - gs_best) <= 1e-12
        report.add("best params and score", f"sweeper {_key(sw_best['params'])} {sw_best['value']:.6f}; GridSearchCV "
                   f"{sorted(gs_best_keys)} {gs_best:.6f}", "identical", same)
    if run["trials"]:
        report.add("sweeper run: where the time goes (best run)", _phases(min(sw_runs, key=lambda r: r["wall"])))
        report.add("... report: false: where the time goes (best run)",
                   _phases(min(bare_runs, key=lambda r: r["wall"])).replace("end-of-sweep report + ", ""))

    # --- TPE + median pruner, 5-fold ---------------------------------------------------------
    C.wait_for_quiet()
    with C.temp_dir("b2-gs5") as tmp:
        gs5_wall, gs5 = C.run_child("b2_sklearn_grid", "gridsearch", {"cv": 5, "C_values": C_values}, cwd=tmp)
    best5 = max(p["score"] for p in gs5["points"])
    n_tpe = 12 if args.quick else 24
    C.wait_for_quiet()
    with C.temp_dir("b2-tpe") as tmp:
        tpe = _sweeper_run(TPE_CONFIG, "bench_svc_tpe_prune", tmp, [*extra, "--n-trials", str(n_tpe)])
    finished = sorted((t for t in tpe["trials"] if t["complete"]), key=lambda t: t["complete"])
    pruned = sum(t["state"] == "PRUNED" for t in finished)
    report.add("GridSearchCV(n_jobs=2), 5-fold, whole process", f"{gs5_wall:.2f} s, best {best5:.6f}")
    reached = None
    for i, t in enumerate(finished):
        if t["state"] == "COMPLETE" and t["value"] is not None and t["value"] >= best5 - 1e-12:
            reached = (i + 1, t)
            break
    distinct = len({_key(t["params"]) for t in tpe["trials"]})
    summary = (f"{len(finished)} trials, {distinct} distinct points, in {tpe['wall']:.2f} s ({pruned} pruned), "
               f"exit {tpe['rc']}")
    complete5 = [t for t in finished if t["state"] == "COMPLETE" and t["value"] is not None]
    if complete5:
        top = max(t["value"] for t in complete5)
        first_top = next(i for i, t in enumerate(finished) if t in complete5 and t["value"] == top)
        rank = sorted({p["score"] for p in gs5["points"]}, reverse=True).index(top) + 1 \
            if top in {p["score"] for p in gs5["points"]} else None
        report.add("TPE+median pruner: best 5-fold score it found",
                   f"{top:.6f} (grid's best {best5:.6f}{f', its #{rank} score' if rank else ''}) after "
                   f"{first_top + 1} trials, {finished[first_top]['complete'] - tpe['launched']:.2f} s from launch")
    if reached is None:
        report.add("TPE+median pruner: trials to reach the grid's best 5-fold score",
                   f"not reached ({summary})", f"time <= {TARGET_TPE}x GridSearchCV 5-fold", False)
    else:
        budget, t = reached
        to_reach = t["complete"] - tpe["launched"]
        ratio5 = to_reach / gs5_wall
        report.add("TPE+median pruner: trials to reach the grid's best 5-fold score",
                   f"{budget} trials (of {n_points} grid points), trial #{t['number']}", "", None)
        report.add("TPE+median pruner: time to reach it (from launch)",
                   f"{to_reach:.2f} s = {ratio5:.2f}x GridSearchCV 5-fold ({summary})",
                   f"<= {TARGET_TPE}x", ratio5 <= TARGET_TPE)
    if tpe["rc"] != 0:
        report.note("TPE run: " + _describe_failure(tpe))
    return C.finish(report, args)


if __name__ == "__main__":
    main()
