"""B4 memory: an 800 MB float64 dataset used by 2 workers; peak total PSS vs dataset size.

Each variant runs in its own child process; this (parent) process samples, from outside, the
PSS of the child and all its descendants (workers, the Manager process, the forkserver, the
resource tracker) every 20 ms and keeps the peak of the sum. PSS splits a shared page between
the processes that map it, so the sum counts each page once -- but only in an atomic snapshot.
Processes are read one after another, and while a worker is still touching a shared segment
for the first time, a page read early in the coordinator's share can be read again later in
the worker's: the sum overshoots by up to a third of the segment. So a ``/dev/shm`` segment is
counted once, at its resident size (tmpfs ``st_blocks``), and each process contributes the PSS
of everything else it maps. Every trial reads the whole array (``X.sum()``) and holds it 1 s.

    sweeper share()            X = sweeper.share(shape=...) filled in place with
                               ``rng.random(out=X)`` (the data exists once, in shared memory), then optimize(objective_kwargs=
                               {"X": X}) under spawn: workers map it, nothing is copied
    sweeper objective_kwargs   optimize(objective_kwargs={"X": X}) with the caller keeping X:
                               published once in shared memory, the caller's copy stays (2x)
    sweeper fork + global      optimize(start_method="fork"), X a module global set before
                               the workers fork (copy-on-write inheritance)
    sweeper per-worker load    the default (forkserver); each worker makes/loads X itself once,
                               as sweeper's built-in objective does (its _DATASETS cache)
    sweeper + np.load(mmap)    user workaround: X saved as .npy, each worker np.load(mmap_mode="r")
    Pool fork + global         multiprocessing.Pool(2) (fork), X a global: the fork reference
    Pool pickled args          multiprocessing.Pool(2) (forkserver), X passed as a task argument

Each variant also runs with a 1 MB dataset to show the processes' own baseline. "Usable" is the
time from the sweep call to the data being in hand in a worker's objective (worker start-up,
attaching or unpickling or loading included; the slower of the two workers), and "first full
read" the objective's first pass over it. --quick: an 80 MB dataset.

Run: python benchmarks/b4_memory.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

N_TRIALS = 4
HOLD_S = 1.0
VARIANTS = {
    "sweeper_share": "sweeper.share(shape=...) filled in place, spawn",
    "sweeper_kwargs": "sweeper objective_kwargs, caller keeps X (auto-shared)",
    "sweeper_fork": "sweeper start_method=fork + module global",
    "sweeper_per_worker": "sweeper default, each worker loads its own",
    "sweeper_mmap": "sweeper + np.load(mmap_mode='r') in the objective",
    "pool_fork": "multiprocessing.Pool(2) fork + global",
    "pool_pickled": "multiprocessing.Pool(2) array as task argument",
}


# --- the child: one variant --------------------------------------------------------------------


def child_memory(variant: str, n_bytes: int, tmp: str, **_: Any) -> dict[str, Any]:
    import multiprocessing

    from benchmarks import _objectives as O

    C.quiet_libraries()
    t0 = time.perf_counter()
    workers: list[int] = []
    ready: dict[str, float] = {}

    def sweep(objective: Any, kwargs: dict[str, Any], start_method: str | None = None) -> None:
        import sweeper

        kwargs["t0"] = time.time()
        study = sweeper.optimize(objective, n_trials=N_TRIALS, n_jobs=2, track=False, seed=0,
                                 objective_kwargs=kwargs, start_method=start_method)
        bad = [t.number for t in study.trials if t.state.name != "COMPLETE"]
        if bad:
            raise RuntimeError(f"trials {bad} did not complete: {study.trials[bad[0]].system_attrs}")
        workers.extend(t.system_attrs.get("sweeper:worker_pid") for t in study.trials)
        for key in ("ready_s", "read_s"):  # the slower worker's
            ready[key] = max(t.user_attrs.get(key, 0.0) for t in study.trials)

    if variant == "sweeper_share":
        import sweeper

        import numpy as np

        X = sweeper.share(shape=max(1, n_bytes // 8), dtype=np.float64)
        np.random.default_rng(0).random(out=X)  # filled in place: no second copy, not even a chunk
        sweep(O.memory_from_kwargs, {"X": X, "hold_s": HOLD_S}, start_method="spawn")
    elif variant == "sweeper_kwargs":
        sweep(O.memory_from_kwargs, {"X": O.make_dataset(n_bytes), "hold_s": HOLD_S})
    elif variant == "sweeper_fork":
        O.SHARED["X"] = O.make_dataset(n_bytes)
        sweep(O.memory_from_global, {"hold_s": HOLD_S}, start_method="fork")
    elif variant == "sweeper_per_worker":
        sweep(O.memory_generate_per_worker, {"n_bytes": n_bytes, "hold_s": HOLD_S})
    elif variant == "sweeper_mmap":
        import numpy as np

        path = str(Path(tmp) / "X.npy")
        np.save(path, O.make_dataset(n_bytes))
        sweep(O.memory_mmap, {"path": path, "hold_s": HOLD_S})
    elif variant == "pool_fork":
        O.SHARED["X"] = O.make_dataset(n_bytes)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map(O.pool_task_global, [HOLD_S] * N_TRIALS, chunksize=1)
    elif variant == "pool_pickled":
        X = O.make_dataset(n_bytes)
        with multiprocessing.get_context("forkserver").Pool(2) as pool:
            pool.map(O.pool_task_array, [(X, HOLD_S)] * N_TRIALS, chunksize=1)
    else:
        raise ValueError(variant)
    return {"inner_s": time.perf_counter() - t0, "workers": sorted({w for w in workers if w}), **ready}


CHILDREN = {"memory": child_memory}


# --- the parent: run one variant and watch its process tree ------------------------------------


def _role(pid: int, info: tuple[str, int], root: int, workers: set[int], variant: str) -> str:
    cmd, ppid = info
    if pid == root:
        return "coordinator"
    if pid in workers:
        return "workers"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "forkserver" in cmd and ppid == root:
        return "forkserver"
    return "Manager" if variant.startswith("sweeper") else "pool workers"


SEGMENTS = -1  # the pseudo-pid under which shared-memory segments are counted


def _pss_outside_segments(p: Any, segments: dict[str, int]) -> int:
    """``p``'s PSS without its ``/dev/shm`` mappings, which are added to ``segments`` (path ->
    resident bytes of the whole segment, counted once however many processes map it)."""
    own = 0
    for m in p.memory_maps(grouped=True):
        path = m.path.removesuffix(" (deleted)")
        if not path.startswith("/dev/shm/"):
            own += m.pss
        elif path not in segments:
            try:
                segments[path] = os.stat(path).st_blocks * 512
            except OSError:  # unlinked while mapped: the best lower bound is this mapping's pages
                segments[path] = m.rss
        else:
            segments[path] = max(segments[path], m.rss)
    return own


def measure(variant: str, n_bytes: int) -> dict[str, Any]:
    import psutil

    with C.temp_dir("b4") as tmp:
        params = json.dumps({"variant": variant, "n_bytes": n_bytes, "tmp": str(tmp)})
        cmd = [C.PY, "-m", "benchmarks.b4_memory", "--child", "memory", params]
        proc = subprocess.Popen(cmd, cwd=tmp, env=C.child_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        root = psutil.Process(proc.pid)
        peak, peak_parts, max_procs = 0, {}, 0
        cmds: dict[int, tuple[str, int]] = {}
        t0 = time.perf_counter()
        while proc.poll() is None:
            parts: dict[int, tuple[Any, int]] = {}
            segments: dict[str, int] = {}
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in tree:
                try:
                    if p.pid not in cmds:
                        cmds[p.pid] = (" ".join(p.cmdline()), p.ppid())
                    parts[p.pid] = (p, _pss_outside_segments(p, segments))
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            if sum(segments.values()) >= 1 << 20:  # not just multiprocessing's semaphores
                parts[SEGMENTS] = (None, sum(segments.values()))
            total = sum(v for _, v in parts.values())
            max_procs = max(max_procs, len(parts))
            if total > peak:
                peak, peak_parts = total, parts
            time.sleep(0.02)
        out, err = proc.communicate()
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise C.ChildFailed(f"b4 {variant} exited {proc.returncode}:\n{C.tail(err, 20)}")
    result = json.loads(next(line for line in reversed(out.splitlines())
                             if line.startswith(C.RESULT_PREFIX))[len(C.RESULT_PREFIX):])
    by_role: dict[str, int] = {}
    for pid, (p, pss) in peak_parts.items():
        role = "shared memory" if pid == SEGMENTS else _role(pid, cmds.get(pid, ("", 0)), proc.pid, set(result["workers"]), variant)
        by_role[role] = by_role.get(role, 0) + pss
    return {"peak": peak, "by_role": by_role, "wall": wall, "procs": max_procs,
            "ready_s": result.get("ready_s"), "read_s": result.get("read_s")}


def main(argv: list[str] | None = None) -> C.Report:
    args = C.start(__doc__, CHILDREN, argv)
    if args is None:
        return C.Report("child")
    report = C.Report("B4 memory")
    size = 80_000_000 if args.quick else 800_000_000
    print(f"B4: {size / 1e6:.0f} MB float64 dataset, 2 workers, {N_TRIALS} trials; peak total PSS of the process tree")
    for variant, label in VARIANTS.items():
        base = measure(variant, 1_000_000)
        big = measure(variant, size)
        ratio, extra = big["peak"] / size, (big["peak"] - base["peak"]) / size
        parts = ", ".join(f"{k} {v / 1e6:,.0f}" for k, v in sorted(big["by_role"].items(), key=lambda kv: -kv[1]))
        print(f"  {label:52s} peak {big['peak'] / 1e6:8,.0f} MB = {ratio:5.2f}x data "
              f"(baseline {base['peak'] / 1e6:,.0f} MB; data adds {extra:.2f}x) in {big['wall']:.1f} s  [{parts} MB]")
        ready = (f"; data usable in a worker {big['ready_s']:.2f} s after the call, first full read "
                 f"{big['read_s']:.2f} s" if big["ready_s"] is not None else "")
        print(f"  {'':52s} {ready.lstrip('; ')}" if ready else "", end="\n" if ready else "")
        target, met = "", None
        if variant == "sweeper_share":
            target = "<= 1.2x data, usable < 1 s"
            met = ratio <= 1.2 and big["ready_s"] is not None and big["ready_s"] < 1.0
        report.add(label, f"peak {big['peak'] / 1e6:,.0f} MB = {ratio:.2f}x data; data adds {extra:.2f}x "
                   f"over the {base['peak'] / 1e6:,.0f} MB baseline{ready}", target, met,
                   note=f"PSS at the peak (MB): {parts}")
    report.note("sweeper.share(X) copies X into shared memory once; workers map it read-only (spawn included). "
                "Large arrays passed in objective_kwargs are shared the same way automatically, but a caller that "
                "keeps its own X holds the data twice. The built-in objective loads its dataset once in the "
                "coordinator, publishes it and drops its copy.")
    return C.finish(report, args)


if __name__ == "__main__":
    main()
