"""B6 scaling: the coordinator's cost per trial, and n_jobs 1 -> 2.

Per-trial cost at 100 and 2,000 trivial TPE trials (two define-by-run suggestions each),
sweeper.optimize(n_jobs=2) with track=False (the coordinator alone) and with tracking (fresh
SQLite store), against Optuna's own ask + suggest + tell loop on an in-memory study of the same
size (what any TPE sweep must pay). Per trial = (last trial finished - first trial started) / n,
so worker start-up is excluded (it is shown separately); the whole call / n is shown as well.
Target: sweeper (track=False) <= Optuna's + 2 ms a trial.

Then 0.1 s sleep trials, n_jobs=1 vs n_jobs=2 (track=False): the speed-up (ideal 2x).

Run: python benchmarks/b6_scaling.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

TARGET_MS = 2.0


# --- children --------------------------------------------------------------------------------


def child_optuna_ask_tell(n_trials: int, **_: Any) -> dict[str, Any]:
    import optuna

    from benchmarks._objectives import trivial_objective

    C.quiet_libraries()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    for _ in range(n_trials):
        trial = study.ask()
        study.tell(trial, trivial_objective(trial))
    return {"inner_s": time.perf_counter() - t0}


def child_sweeper(n_trials: int, store: str | None, objective: str = "benchmarks._objectives:trivial_objective",
                  kwargs: dict[str, Any] | None = None, n_jobs: int = 2, **_: Any) -> dict[str, Any]:
    import sweeper

    C.quiet_libraries()
    called = time.time()
    t0 = time.perf_counter()
    study = sweeper.optimize(objective, n_trials=n_trials, n_jobs=n_jobs, seed=0, objective_kwargs=kwargs or {},
                             tracking_uri=store, track=store is not None, experiment="b6")
    inner = time.perf_counter() - t0
    first = min(t.datetime_start for t in study.trials).timestamp()
    last = max(t.datetime_complete for t in study.trials).timestamp()
    return {"inner_s": inner, "startup_s": first - called, "span_s": last - first,
            "complete": sum(t.state.name == "COMPLETE" for t in study.trials)}


CHILDREN = {"optuna": child_optuna_ask_tell, "sweeper": child_sweeper}


# --- the parent --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> C.Report:
    args = C.start(__doc__, CHILDREN, argv)
    if args is None:
        return C.Report("child")
    report = C.Report("B6 scaling")
    sizes = (50, 200) if args.quick else (100, 2000)
    print(f"B6: per-trial cost at {sizes} trivial TPE trials; sleep trials n_jobs 1 -> 2")
    for n in sizes:
        C.wait_for_quiet()
        _, op = C.run_child("b6_scaling", "optuna", {"n_trials": n})
        C.wait_for_quiet()
        _, off = C.run_child("b6_scaling", "sweeper", {"n_trials": n, "store": None})
        C.wait_for_quiet()
        with C.temp_dir("b6") as tmp:
            _, on = C.run_child("b6_scaling", "sweeper", {"n_trials": n, "store": C.sqlite_uri(tmp)}, cwd=tmp)
        op_ms = op["inner_s"] / n * 1000
        off_ms, on_ms = off["span_s"] / n * 1000, on["span_s"] / n * 1000
        print(f"  n={n}: optuna ask+tell {op_ms:.2f} ms/trial; sweeper track=False {off_ms:.2f} ms/trial "
              f"(start-up {off['startup_s']:.2f} s, call {off['inner_s']:.2f} s); tracking {on_ms:.2f} ms/trial "
              f"(call {on['inner_s']:.2f} s)")
        report.add(f"optuna ask+tell, in-memory, {n} trials", f"{op_ms:.2f} ms/trial")
        report.add(f"sweeper n_jobs=2 track=False, {n} trials",
                   f"{off_ms:.2f} ms/trial = optuna + {off_ms - op_ms:.2f} ms (whole call {off['inner_s'] / n * 1000:.2f} "
                   f"ms/trial, start-up {off['startup_s']:.2f} s)",
                   f"<= optuna + {TARGET_MS:.0f} ms", off_ms <= op_ms + TARGET_MS)
        report.add(f"sweeper n_jobs=2 tracking (fresh SQLite), {n} trials",
                   f"{on_ms:.2f} ms/trial = optuna + {on_ms - op_ms:.2f} ms; whole call incl. MLflow flush "
                   f"{on['inner_s'] / n * 1000:.2f} ms/trial ({on['inner_s']:.2f} s)",
                   f"<= optuna + {TARGET_MS:.0f} ms", on_ms <= op_ms + TARGET_MS)
    n_sleep = 20 if args.quick else 40
    sleep = {"objective": "benchmarks._objectives:sleep_objective", "kwargs": {"seconds": 0.1},
             "n_trials": n_sleep, "store": None}
    C.wait_for_quiet()
    _, one = C.run_child("b6_scaling", "sweeper", {**sleep, "n_jobs": 1})
    C.wait_for_quiet()
    _, two = C.run_child("b6_scaling", "sweeper", {**sleep, "n_jobs": 2})
    speedup_span = one["span_s"] / two["span_s"]
    speedup_call = one["inner_s"] / two["inner_s"]
    ideal = n_sleep * 0.1
    report.add(f"{n_sleep} x 0.1 s sleep trials, n_jobs=1", f"{one['span_s']:.2f} s trials ({one['inner_s']:.2f} s call; "
               f"ideal {ideal:.1f} s)")
    report.add(f"{n_sleep} x 0.1 s sleep trials, n_jobs=2", f"{two['span_s']:.2f} s trials ({two['inner_s']:.2f} s call; "
               f"ideal {ideal / 2:.1f} s): {speedup_span:.2f}x ({speedup_call:.2f}x whole call)", "ideal 2x", None)
    return C.finish(report, args)


if __name__ == "__main__":
    main()
