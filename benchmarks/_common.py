"""Shared plumbing for the benchmark scripts: rows, tables, child processes, machine facts.

Every benchmark is a script with ``main(argv=None) -> list[Row]`` and ``--quick``. Timings that
must include interpreter start-up run as child processes (``run_child``), each with its own
temporary directory, so no benchmark writes an ``mlflow.db`` or ``.sweeper/`` into the repo.
Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
PY = sys.executable
RESULT_PREFIX = "BENCH-RESULT: "


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    figure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target for this figure (reported for context)
    note: str = ""

    @property
    def met_text(self) -> str:
        return {True: "yes", False: "**NO**", None: "n/a"}[self.met]


@dataclass
class Report:
    """What one benchmark returns: its rows plus free-text findings for results.md."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "", met: bool | None = None, note: str = "") -> None:
        self.rows.append(Row(self.name, figure, value, target, met, note))

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": [asdict(r) for r in self.rows], "notes": self.notes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        return cls(data["name"], [Row(**r) for r in data["rows"]], list(data["notes"]))


def cli(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON (used by run_all.py)")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "JSON"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def start(doc: str, children: dict[str, Callable[..., dict[str, Any]]], argv: Sequence[str] | None,
          ) -> argparse.Namespace | None:
    """Every benchmark's entry: parse the command line; in a ``--child`` run do that child's
    work and return None (the parent measures it from outside)."""
    ensure_repo_on_path()
    args = cli(doc.splitlines()[0], argv)
    if args.child:
        child_main(children, args)
        return None
    prepare_machine()
    return args


def prepare_machine() -> None:
    """The state of a machine where sweeper is installed and has run once: bytecode for sweeper
    and the benchmarks (pip compiles a wheel at install; a checkout writes it on first import --
    without it every process compiles sweeper's ~25 modules again, ~65 ms here, which is what
    PYTHONDONTWRITEBYTECODE=1 makes happen; the children do not inherit that variable), and the
    empty MLflow store template in sweeper's cache (made by the first sweep on a machine)."""
    import compileall

    for folder in ("sweeper", "benchmarks"):
        compileall.compile_dir(str(REPO / folder), quiet=1, maxlevels=0)
    from sweeper.tracking import template as _store_template

    _store_template.template()


def finish(report: Report, args: argparse.Namespace) -> Report:
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=1))
    return report


def print_table(report: Report) -> None:
    rows = [("figure", "value", "target", "met?")] + [(r.figure, r.value, r.target, r.met_text) for r in report.rows]
    widths = [min(60, max(len(row[i]) for row in rows)) for i in range(4)]
    print(f"\n== {report.name} ==")
    for i, row in enumerate(rows):
        print("  " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("  " + "-+-".join("-" * w for w in widths))
    sys.stdout.flush()


# --- child processes ---------------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: the repo importable, no inherited MLflow store."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # see precompile()
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def ensure_repo_on_path() -> None:
    """Scripts run as ``python benchmarks/bX.py`` need the repo importable, here and in workers."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *parts])


class ChildFailed(RuntimeError):
    pass


def run_child(module: str, name: str, params: dict[str, Any], *, cwd: str | os.PathLike[str] | None = None,
              timeout: float = 900.0) -> tuple[float, dict[str, Any]]:
    """Run ``python -m benchmarks.<module> --child NAME JSON``; return (whole-process wall s, result)."""
    cmd = [PY, "-m", f"benchmarks.{module}", "--child", name, json.dumps(params)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise ChildFailed(f"{module} child {name} exited {proc.returncode}:\n{tail(proc.stderr, 30)}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return wall, json.loads(line[len(RESULT_PREFIX):])
    raise ChildFailed(f"{module} child {name} printed no result:\n{tail(proc.stdout + proc.stderr, 30)}")


def child_main(children: dict[str, Callable[..., dict[str, Any]]], args: argparse.Namespace) -> None:
    """The child side of ``run_child``: run one function, print its result as one JSON line."""
    name, params = args.child
    result = children[name](**json.loads(params))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"sweeper-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sqlite_uri(directory: Path, name: str = "mlflow.db") -> str:
    return "sqlite:///" + str(directory / name)


def sweeper_exe() -> str:
    """The ``sweeper`` console script of this interpreter's environment."""
    candidate = Path(PY).parent / "sweeper"
    return str(candidate) if candidate.exists() else (shutil.which("sweeper") or "sweeper")


def quiet_libraries() -> None:
    """Keep Optuna's per-trial INFO lines out of the benchmark output (inside children)."""
    import logging
    import warnings

    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover
        pass
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


# --- statistics and formatting -----------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def best(values: Sequence[float]) -> float:
    """The figure reported for repeated timings: the minimum. On a shared machine, noise (another
    process taking a core) only ever adds time, so the fastest repeat is the least disturbed."""
    return min(values)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def fmt_x(ratio: float) -> str:
    return f"{ratio:.2f}x"


def fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:,.0f} MB"


# --- the machine -------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    from importlib import metadata

    info = {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu count": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})",
        "cpu model": cpu_model(),
        "memory": _memory_text(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
    }
    for package in ("sweeper", "optuna", "mlflow", "scikit-learn", "numpy", "SQLAlchemy",
                    "optuna-integration", "psutil"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    info["sweeper commit"] = _git_state()
    return info


def _memory_text() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def _git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sweeper"], check=False, cwd=REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' + uncommitted changes in sweeper/' if dirty else ''}" if head else "?"


# --- a quiet machine -----------------------------------------------------------------------------


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def cpu_busy_fraction(interval_s: float = 0.5) -> float:
    """Share of the machine's CPU capacity in use (by anything) over ``interval_s``."""
    try:
        busy0, total0 = _cpu_ticks()
        time.sleep(interval_s)
        busy1, total1 = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_for_quiet(threshold: float = 0.15, max_wait_s: float = 45.0) -> float:
    """Before a timing: wait (up to ``max_wait_s``) until other processes leave the CPUs idle.

    The benchmarks share the machine with whatever else runs (a test suite, an editor's
    linters); a measurement taken while another process burns a core is not a measurement.
    Returns the busy share last seen (reported by run_all.py when it stays high).
    """
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy_fraction()
    warned = False
    while busy > threshold and time.monotonic() < deadline:
        if not warned:
            print(f"  (machine busy: {busy:.0%} of CPU in use by other processes; waiting up to "
                  f"{max_wait_s:.0f}s for it to settle)", flush=True)
            warned = True
        busy = cpu_busy_fraction(1.0)
    if busy > threshold:
        print(f"  (still {busy:.0%} busy: measuring anyway, figures will be pessimistic)", flush=True)
    _BUSY_SEEN.append(busy)
    return busy


_BUSY_SEEN: list[float] = []


def busy_seen() -> list[float]:
    return list(_BUSY_SEEN)
