"""Run the benchmarks and write ``benchmarks/results.md``.

    python benchmarks/run_all.py              # all of them, full sizes (about 10-20 minutes)
    python benchmarks/run_all.py --quick      # small sizes, a smoke run
    python benchmarks/run_all.py b1 b4        # a subset, by number or name (b2, grid, memory...);
                                              # the other benchmarks' rows stay as they were

Each benchmark runs as its own process (``python -m benchmarks.<name> --json ...``), its output
streamed here; the rows it returns go into one table "benchmark | figure | target | met?" with
the machine (CPU count and model, Python and library versions, date). While each runs, a
monitor thread measures how much CPU *other* processes on the machine used, because a shared
machine (a test suite running next to the benchmarks) skews every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

BENCHMARKS = {
    "b1_cpu_bound": "B1 CPU-bound trials vs serial / Optuna",
    "b2_sklearn_grid": "B2 scikit-learn grid vs GridSearchCV, TPE + pruning",
    "b3_overhead": "B3 MLflow tracking overhead",
    "b4_memory": "B4 memory of a large dataset",
    "b5_startup": "B5 CLI imports and start-up",
    "b6_scaling": "B6 per-trial coordinator cost, n_jobs scaling",
    "b7_dask": "B7 Dask cluster (1 and 2 workers) vs local backend / Optuna on PostgreSQL / Ray Tune",
    "b8_report": "B8 the end-of-sweep report at 100, 1,000 and 3,000 trials",
}


class ForeignCpu:
    """Samples every process twice a second; sums the CPU time of those not descended from us."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.foreign_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = True

    def __enter__(self) -> Self:
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.elapsed_s = time.perf_counter() - self.t0

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:
            self.available = False
            return
        me = os.getpid()
        seen: dict[tuple[int, float], float] = {}
        first = True
        while not self._stop.is_set():
            try:
                ours = {me, *(p.pid for p in psutil.Process(me).children(recursive=True))}
            except psutil.Error:
                ours = {me}
            current: dict[tuple[int, float], float] = {}
            for proc in psutil.process_iter(["pid", "create_time", "cpu_times"]):
                info = proc.info
                if info["pid"] in ours or info["cpu_times"] is None:
                    continue
                key = (info["pid"], info["create_time"])
                cpu = info["cpu_times"].user + info["cpu_times"].system
                current[key] = cpu
                if not first:  # a process born since the last sample counts all it used
                    self.foreign_s += cpu - seen.get(key, 0.0)
            seen = current
            first = False
            self._stop.wait(self.interval_s)


def select(names: list[str]) -> list[str]:
    if not names:
        return list(BENCHMARKS)
    chosen = []
    for name in names:
        matches = [m for m in BENCHMARKS if m == name or m.startswith(name + "_") or name in m]
        if not matches:
            raise SystemExit(f"run_all: no benchmark matches {name!r}; choose from {', '.join(BENCHMARKS)}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def run_one(module: str, quick: bool) -> tuple[C.Report, float, float | None]:
    with tempfile.TemporaryDirectory(prefix="sweeper-bench-json-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [C.PY, "-m", f"benchmarks.{module}", "--json", str(out)] + (["--quick"] if quick else [])
        monitor = ForeignCpu()
        with monitor:
            proc = subprocess.run(cmd, check=False, cwd=C.REPO, env=C.child_env(), timeout=3600)
        foreign = monitor.foreign_s / (monitor.elapsed_s * (os.cpu_count() or 1)) if monitor.available else None
        if proc.returncode != 0 or not out.exists():
            report = C.Report(BENCHMARKS[module].split(" ", 1)[0] + " " + module)
            report.add("(benchmark failed)", f"exit status {proc.returncode}; see its output above", "runs", False)
            return report, monitor.elapsed_s, foreign
        return C.Report.from_json(json.loads(out.read_text())), monitor.elapsed_s, foreign


DATA_MARK = "<!-- sweeper-bench-data: "
Result = tuple[str, C.Report, float, "float | None", str]  # module, report, seconds, foreign CPU share, date


def previous_results(path: Path, quick: bool) -> dict[str, Result]:
    """Results kept in an existing results.md (same --quick mode), so a subset run updates only
    its own rows."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    start = text.rfind(DATA_MARK)
    if start < 0:
        return {}
    try:
        data = json.loads(text[start + len(DATA_MARK):text.index(" -->", start)])
    except ValueError:
        return {}
    if data.get("quick") != quick:
        return {}
    return {r["module"]: (r["module"], C.Report.from_json(r["report"]), r["elapsed"], r["foreign"], r["date"])
            for r in data.get("results", []) if r.get("module") in BENCHMARKS}


def write_markdown(path: Path, results: list[Result], quick: bool, machine: dict[str, str], total_s: float) -> None:
    lines = [
        "# sweeper benchmarks",
        "",
        (f"Generated by `python benchmarks/run_all.py{' --quick' if quick else ''}` "
         f"({'QUICK smoke sizes: not the real figures' if quick else 'full sizes'}), in {total_s / 60:.1f} min."),
        "Do not edit by hand: re-run to refresh. How each figure is measured: `benchmarks/README.md`.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Results",
        "",
        "| benchmark | figure | target | met? |",
        "| --- | --- | --- | --- |",
    ]
    for _, report, _, _, _ in results:
        for row in report.rows:
            figure = f"{row.figure}: **{row.value}**".replace("|", "\\|")
            lines.append(f"| {row.benchmark} | {figure} | {row.target.replace('|', '/')} | {row.met_text} |")
    lines += ["", "## Conditions and notes", ""]
    for module, report, elapsed, foreign, date in results:
        busy = "not measured (psutil missing)" if foreign is None else f"{foreign:.0%} of the machine's CPU capacity"
        lines.append(f"- **{report.name}** (`benchmarks/{module}.py`, run {date}, {elapsed:.0f} s): other "
                     f"processes on the machine used {busy} while it ran.")
        for note in report.notes:
            lines.append(f"  - {note}")
        for row in report.rows:
            if row.note:
                lines.append(f"  - {row.figure}: {row.note}")
    data = {"quick": quick, "results": [
        {"module": m, "report": r.to_json(), "elapsed": e, "foreign": f, "date": d} for m, r, e, f, d in results
    ]}
    lines += ["", DATA_MARK + json.dumps(data).replace("-->", "--\\u003e") + " -->", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    C.ensure_repo_on_path()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all): b1 ... b6 or part of a name")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", default=str(C.BENCH_DIR / "results.md"), help="where to write the table")
    args = parser.parse_args(argv)
    modules = select(args.names)
    machine = C.machine_info()
    print("machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()), flush=True)
    t0 = time.perf_counter()
    kept = previous_results(Path(args.out), args.quick) if args.names else {}
    if kept:
        print(f"keeping earlier results of {', '.join(m for m in kept if m not in modules)} from {args.out}")
    results: dict[str, Result] = {m: r for m, r in kept.items() if m not in modules}
    for module in modules:
        print(f"\n##### {module} ({BENCHMARKS[module]}){' --quick' if args.quick else ''}", flush=True)
        report, elapsed, foreign = run_one(module, args.quick)
        if foreign is not None:
            print(f"##### {module}: {elapsed:.0f} s; other processes used {foreign:.0%} of the CPU meanwhile", flush=True)
        results[module] = (module, report, elapsed, foreign, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    total = time.perf_counter() - t0
    ordered = [results[m] for m in BENCHMARKS if m in results]
    write_markdown(Path(args.out), ordered, args.quick, machine, total)
    print(f"\nwrote {args.out}")
    print(Path(args.out).read_text())
    # Missed targets are findings, not errors: fail only when a benchmark could not run.
    return 1 if any(r.figure == "(benchmark failed)" for _, rep, _, _, _ in ordered for r in rep.rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
