"""B5 start-up: what the CLI imports, and how long until the first trial runs.

    python -X importtime -m sweeper --help                     heavy libraries imported? wall time
    python -X importtime -m sweeper validate configs/digits_svc_grid.yaml      the same
    sweeper run configs/digits_svc_grid.yaml --n-trials 2      (temp cwd, fresh SQLite MLflow store)
        launch -> first trial started (its datetime_start in the sweep's Optuna journal, set when
        the coordinator hands it to a ready worker) and -> first "trial N" progress line on stderr
    python -c "import sklearn.svm, sklearn.model_selection"    the floor: a worker needs these

Targets: --help imports none of mlflow/sklearn/optuna; first trial running <= the sklearn
import (whole process) + 1 s.

Run: python benchmarks/b5_startup.py [--quick]
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

PROGRESS = re.compile(r"\btrial \d+ (complete|pruned|fail)")  # one line per finished trial (not a tty)
HEAVY = ("mlflow", "sklearn", "optuna", "numpy", "scipy", "pandas", "sqlalchemy", "pydantic")
MUST_NOT = ("mlflow", "sklearn", "optuna")


def _config() -> Path:
    repo_config = C.REPO / "configs" / "digits_svc_grid.yaml"
    return repo_config if repo_config.exists() else C.BENCH_DIR / "configs" / "svc_grid.yaml"


def importtime(args: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``python -X importtime ARGS``; the top-level packages imported and their cumulative ms."""
    t0 = time.perf_counter()
    proc = subprocess.run([C.PY, "-X", "importtime", *args], check=False, cwd=cwd, env=C.child_env(),
                          capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    cumulative: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) != 3:
            continue
        try:
            cum_us = float(parts[1])
        except ValueError:  # the header line
            continue
        top = parts[2].strip().split(".")[0]
        cumulative[top] = max(cumulative.get(top, 0.0), cum_us / 1000)  # the package's own import
    return {"wall": wall, "rc": proc.returncode, "modules": cumulative, "stdout": proc.stdout}


def first_trial_latency(config: Path, tmp: Path) -> dict[str, Any]:
    """Launch ``sweeper run``; times (from launch) to the first trial's start and first progress line."""
    cmd = [C.sweeper_exe(), "run", str(config), "--n-trials", "2", "--n-jobs", "2",
           "--tracking-uri", C.sqlite_uri(tmp), "--name", "b5"]
    launched = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, env=C.child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first_line = None
    assert proc.stderr is not None
    for line in proc.stderr:
        if first_line is None and PROGRESS.search(line):
            first_line = time.perf_counter() - t0
    proc.wait(timeout=600)
    wall = time.perf_counter() - t0
    journal = tmp / ".sweeper" / "b5" / "study.journal"
    _, read = C.run_child("b2_sklearn_grid", "read_journal", {"journal": str(journal), "name": "b5"}, cwd=tmp)
    starts = [t["start"] for t in read["trials"] if t["start"]]
    ends = [t["complete"] for t in read["trials"] if t["complete"]]
    return {"first_start": min(starts) - launched if starts else float("nan"),
            "tail": wall - (max(ends) - launched) if ends else float("nan"),
            "first_line": first_line if first_line is not None else float("nan"), "wall": wall, "rc": proc.returncode}


def main(argv: list[str] | None = None) -> C.Report:
    C.ensure_repo_on_path()
    args = C.cli(__doc__.splitlines()[0], argv)
    report = C.Report("B5 start-up")
    repeats = 1 if args.quick else 3
    config = _config()
    print(f"B5: CLI imports and time to first trial ({config.relative_to(C.REPO)}), {repeats} repeat(s), best (minimum) shown")
    with C.temp_dir("b5") as tmp:
        C.wait_for_quiet()
        helps = [importtime(["-m", "sweeper", "--help"], tmp) for _ in range(repeats)]
        validates = [importtime(["-m", "sweeper", "validate", str(config)], tmp) for _ in range(repeats)]
        floor = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([C.PY, "-c", "import sklearn.svm, sklearn.model_selection"], env=C.child_env(), check=True)
            floor.append(time.perf_counter() - t0)
    for label, runs, target in (("sweeper --help", helps, True), ("sweeper validate", validates, False)):
        mods = runs[-1]["modules"]
        heavy = [m for m in HEAVY if m in mods]
        bad = [m for m in MUST_NOT if m in mods]
        shown = ", ".join(f"{m} ({mods[m]:.0f} ms)" for m in heavy) or "none of " + "/".join(HEAVY)
        wall = C.best([r["wall"] for r in runs])
        if target:
            report.add(f"{label}: heavy imports", shown, "no mlflow/sklearn/optuna", not bad)
        else:
            report.add(f"{label}: heavy imports", shown, "(report)", None)
        report.add(f"{label}: wall (whole process)", f"{wall:.2f} s, exit {runs[-1]['rc']}"
                   + (f", sweeper package import {mods.get('sweeper', 0):.0f} ms" if "sweeper" in mods else ""))
    sk = C.best(floor)
    report.add("python -c 'import sklearn.svm, sklearn.model_selection' (whole process)", f"{sk:.2f} s")
    firsts, lines, walls, tails = [], [], [], []
    for rep in range(repeats):
        C.wait_for_quiet()
        with C.temp_dir("b5-run") as tmp:
            res = first_trial_latency(config, tmp)
        firsts.append(res["first_start"])
        lines.append(res["first_line"])
        walls.append(res["wall"])
        tails.append(res["tail"])
        print(f"  [{rep + 1}] first trial started {res['first_start']:.2f} s after launch, first progress line "
              f"{res['first_line']:.2f} s, run {res['wall']:.2f} s (exit {res['rc']})")
    first = C.best(firsts)
    report.add("sweeper run: launch -> first trial running", f"{first:.2f} s (sklearn import + {first - sk:.2f} s)",
               f"<= {sk + 1:.2f} s (sklearn + 1 s)", first <= sk + 1.0)
    report.add("sweeper run: launch -> first progress line (trial finished)", f"{C.best(lines):.2f} s; "
               f"2-trial run {C.best(walls):.2f} s, {C.best(tails):.2f} s of it after the last trial finished "
               "(end-of-sweep report, MLflow flush, exit)")
    return C.finish(report, args)


if __name__ == "__main__":
    main()
