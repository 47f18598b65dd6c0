"""B7 Dask: trials on a Dask cluster on 127.0.0.1, against the local backend, Optuna's own way to
scale out (2 processes on one PostgreSQL RDB storage) and Ray Tune.

    transport  a Suggest-sized message worker -> coordinator -> worker over each Dask primitive:
               queues both ways, events out + a queue in, a queue out + an actor inbox (what
               chose the backend's transport; the 1-worker cluster below, median of 300)
    suggest    one define-by-run suggest through the whole backend and back (coordinator
               thread, scheduler, worker): local backend vs Dask backend
    CPU-bound  16 pure-Python trials of ~0.25 s, whole child process and in the call: sweeper on
               a `dask scheduler` + 1 and 2 `dask worker --nthreads 1` (started before, as a
               user's cluster is), on `--cluster local:2` (a LocalCluster it starts itself), on
               the local backend (n_jobs=2); Optuna in 2 processes on PostgreSQL (started here);
               Ray Tune with 2 CPUs
    overhead   300 trivial trials (two define-by-run suggestions): the cost per trial (first
               trial started -> last finished, / n) on the local backend, on Dask, on Optuna +
               PostgreSQL; Ray Tune on 20

Ratios printed: Dask 2 workers vs 1 (ideal 2x on 2 cores), Dask vs the local backend, vs Optuna
+ PostgreSQL, vs Ray Tune. PostgreSQL (apt: postgresql; pip: psycopg2-binary) and Ray Tune
(pip: "ray[tune]") rows are skipped with a note when they are not installed.
Run: python benchmarks/b7_dask.py [--quick]
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common as C

DASK = str(Path(C.PY).parent / "dask")


# --- objectives (imported by workers as benchmarks.b7_dask) -------------------------------------


def many_suggests(trial: Any, k: int = 200) -> float:
    """Seconds per define-by-run suggest: each is a round trip to the coordinator."""
    t0 = time.perf_counter()
    for i in range(k):
        trial.suggest_float(f"p{i}", 0.0, 1.0)
    return (time.perf_counter() - t0) / k


# --- children (each runs in its own process) ---------------------------------------------------


def child_sweeper(n_trials: int, n_jobs: int, cluster: str | None = None, n_iter: int | None = None,
                  objective: str | None = None, kwargs: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    import logging

    import sweeper

    C.quiet_libraries()
    logging.getLogger("sweeper").setLevel(logging.WARNING)
    if objective is None:
        objective = "benchmarks._objectives:trivial_objective" if n_iter is None else "benchmarks._objectives:cpu_objective"
        kwargs = {} if n_iter is None else {"n_iter": n_iter}
    called = time.time()
    t0 = time.perf_counter()
    study = sweeper.optimize(objective, n_trials=n_trials, n_jobs=n_jobs, seed=0, objective_kwargs=kwargs or {},
                             track=False, cluster=cluster,
                             sampler="random" if n_iter is None and objective.endswith("trivial_objective") else None)
    inner = time.perf_counter() - t0
    first = min(t.datetime_start for t in study.trials).timestamp()
    last = max(t.datetime_complete for t in study.trials).timestamp()
    values = [t.value for t in study.trials if t.value is not None]
    return {"inner_s": inner, "startup_s": first - called, "span_s": last - first, "values": values,
            "complete": sum(t.state.name == "COMPLETE" for t in study.trials)}


def child_serial(n_trials: int, n_iter: int, **_: Any) -> dict[str, Any]:
    from benchmarks._objectives import spin

    t0 = time.perf_counter()
    for _ in range(n_trials):
        spin(n_iter)
    return {"inner_s": time.perf_counter() - t0}


def child_optuna_pg(n_trials: int, url: str, n_iter: int | None = None, **_: Any) -> dict[str, Any]:
    import optuna

    from benchmarks._objectives import cpu_objective, trivial_objective

    C.quiet_libraries()
    sampler = optuna.samplers.RandomSampler() if n_iter is None else None
    study = optuna.load_study(study_name="b7", storage=url, sampler=sampler)
    objective = trivial_objective if n_iter is None else functools.partial(cpu_objective, n_iter=n_iter)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return {"inner_s": time.perf_counter() - t0}


def child_pg_create(url: str, trivial: bool, **_: Any) -> dict[str, Any]:
    import optuna

    C.quiet_libraries()
    if "b7" in optuna.get_all_study_names(url):
        optuna.delete_study(study_name="b7", storage=url)
    optuna.create_study(study_name="b7", storage=url,
                        sampler=optuna.samplers.RandomSampler() if trivial else None)
    return {}


def child_pg_count(url: str, **_: Any) -> dict[str, Any]:
    import optuna

    C.quiet_libraries()
    study = optuna.load_study(study_name="b7", storage=url)
    trials = study.trials
    first = min(t.datetime_start for t in trials).timestamp()
    last = max(t.datetime_complete for t in trials if t.datetime_complete).timestamp()
    return {"complete": sum(t.state.name == "COMPLETE" for t in trials), "span_s": last - first}


def child_ray(n_trials: int, directory: str, n_iter: int | None = None, **_: Any) -> dict[str, Any]:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    import ray
    from ray import tune

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    t1 = time.perf_counter()

    def trainable(config: dict[str, Any]) -> dict[str, float]:
        from benchmarks._objectives import spin

        if n_iter is not None:
            spin(n_iter)
        return {"value": (config["x"] - 1.0) ** 2 + 0.1 * config["y"]}

    tuner = tune.Tuner(
        trainable, param_space={"x": tune.uniform(-10.0, 10.0), "y": tune.randint(0, 11)},
        tune_config=tune.TuneConfig(num_samples=n_trials, max_concurrent_trials=2, metric="value", mode="min"),
        run_config=tune.RunConfig(storage_path=directory, verbose=0),
    )
    results = tuner.fit()
    t2 = time.perf_counter()
    complete = sum(1 for r in results if r.error is None)
    ray.shutdown()
    return {"init_s": t1 - t0, "inner_s": t2 - t1, "complete": complete}


def child_transport(n: int, address: str, **_: Any) -> dict[str, Any]:
    """Median round trip of a Suggest-sized wire message over each primitive (ms), on the
    1-worker cluster (its scheduler a process of its own, as on a real cluster)."""
    import asyncio

    import distributed

    async def measure() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        async with distributed.Client(address, asynchronous=True) as client:
            reply = ["Suggestion", 7, "x", 0.5, None]
            inbox, outbox = await distributed.Queue("in", client=client), await distributed.Queue("out", client=client)
            worker = client.submit(_w_queues, "in", "out", n, pure=False)
            for _ in range(n + 20):
                await outbox.get()
                await inbox.put(reply)
            out["queues both ways"] = await worker
            inbox2 = await distributed.Queue("in2", client=client)
            loop = asyncio.get_running_loop()
            client.subscribe_topic("b7-out", lambda event: loop.create_task(inbox2.put(reply)))
            out["events out, a queue in"] = await client.submit(_w_events, "in2", "b7-out", n, pure=False)
            outbox3 = await distributed.Queue("out3", client=client)
            actor_future = client.submit(_Inbox, actor=True)
            actor = await actor_future
            worker = client.submit(_w_actor, actor_future.key, "out3", n, pure=False)
            for _ in range(n + 20):
                await outbox3.get()
                await actor.put(reply)
            out["a queue out, an actor inbox"] = await worker
        return out

    found = asyncio.run(measure())
    return {name: statistics.median(times) * 1000 for name, times in found.items()}


_MESSAGE = ["Suggest", 0, 7, "x", '{"name": "FloatDistribution", "attributes": {"step": null, "low": -10.0, '
            '"high": 10.0, "log": false}}']


def _w_queues(inbox_name: str, outbox_name: str, n: int) -> list[float]:
    import distributed

    client = distributed.get_client()
    inbox, outbox = distributed.Queue(inbox_name, client=client), distributed.Queue(outbox_name, client=client)
    times = []
    for _ in range(n + 20):
        t0 = time.perf_counter()
        outbox.put(_MESSAGE)
        inbox.get()
        times.append(time.perf_counter() - t0)
    return times[20:]


def _w_events(inbox_name: str, topic: str, n: int) -> list[float]:
    import distributed

    worker, client = distributed.get_worker(), distributed.get_client()
    inbox = distributed.Queue(inbox_name, client=client)
    times = []
    for _ in range(n + 20):
        t0 = time.perf_counter()
        worker.log_event(topic, _MESSAGE)
        inbox.get()
        times.append(time.perf_counter() - t0)
    return times[20:]


class _Inbox:
    def __init__(self) -> None:
        import queue

        self.queue: Any = queue.Queue()

    def put(self, item: Any) -> None:
        self.queue.put(item)


def _w_actor(actor_key: str, outbox_name: str, n: int) -> list[float]:
    import distributed

    worker, client = distributed.get_worker(), distributed.get_client()
    outbox = distributed.Queue(outbox_name, client=client)
    inbox = worker.state.actors[actor_key] if actor_key in getattr(worker.state, "actors", {}) else worker.actors[actor_key]
    times = []
    for _ in range(n + 20):
        t0 = time.perf_counter()
        outbox.put(_MESSAGE)
        inbox.queue.get(timeout=30)
        times.append(time.perf_counter() - t0)
    return times[20:]


CHILDREN = {
    "serial": child_serial, "sweeper": child_sweeper, "optuna_pg": child_optuna_pg, "pg_create": child_pg_create, "pg_count": child_pg_count,
    "ray": child_ray, "transport": child_transport,
}


# --- the parent: a cluster started by hand, PostgreSQL ------------------------------------------------


class DaskCluster:
    """``dask scheduler`` + N ``dask worker --nthreads 1`` on 127.0.0.1, each in its own session."""

    def __init__(self, directory: Path, n_workers: int) -> None:
        self.directory, self.n_workers = directory, n_workers
        self.processes: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def __enter__(self) -> DaskCluster:
        file = self.directory / "scheduler.json"
        self._spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file)])
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            if time.monotonic() > deadline:
                raise C.ChildFailed("dask scheduler did not start")
            time.sleep(0.05)
        self.address = json.loads(file.read_text())["address"]
        for i in range(self.n_workers):
            self._spawn(["worker", self.address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                         "--name", f"w{i}"])
        code = (f"import distributed; c = distributed.Client({self.address!r}, timeout=30); "
                f"c.wait_for_workers({self.n_workers}, timeout=60); c.close()")
        subprocess.run([C.PY, "-c", code], check=True, env=C.child_env(), timeout=120, capture_output=True)
        return self

    def _spawn(self, args: list[str]) -> None:
        # As sweeper's README asks of a user's workers: no sampling profiler, trials may start processes.
        env = C.child_env({"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
                           "DASK_DISTRIBUTED__WORKER__DAEMON": "False"})
        log = open(self.directory / f"dask-{len(self.processes)}.log", "ab")  # noqa: SIM115 - the process owns it
        self.processes.append(subprocess.Popen([DASK, *args], stdout=log, stderr=log, env=env,
                                               start_new_session=True, cwd=self.directory))

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(15)


class Postgres:
    """A PostgreSQL server of the benchmark's own on 127.0.0.1 (trust auth, temporary data dir);
    run as the ``postgres`` user when we are root. ``url`` is None (and ``why`` says why) when
    it cannot run here."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "pg"
        self.url: str | None = None
        self.why = ""
        self._ctl: list[str] = []

    def __enter__(self) -> Postgres:
        try:
            import psycopg2  # noqa: F401 - Optuna's RDB storage needs a driver
        except ImportError:
            self.why = "psycopg2 is not installed (pip install psycopg2-binary)"
            return self
        bindir = _pg_bindir()
        if bindir is None:
            self.why = "PostgreSQL is not installed (apt-get install postgresql)"
            return self
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.directory.mkdir()
        if as_postgres:
            os.chmod(self.directory.parent, 0o711)  # a temporary directory is ours alone: let postgres through
            shutil.chown(self.directory, "postgres", "postgres")
        port = _free_port()
        data, run = self.directory / "data", self.directory
        try:
            subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                           check=True, capture_output=True, timeout=120)
            self._ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data)]
            subprocess.run([*self._ctl, "-w", "-l", str(run / "log"), "-o",
                            f"-p {port} -k {run} -c listen_addresses=127.0.0.1 -c fsync=on", "start"],
                           check=True, capture_output=True, timeout=120)
            subprocess.run([*as_postgres, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
                            "postgres", "bench"], check=True, capture_output=True, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            self.why = f"PostgreSQL did not start: {exc} {detail.decode(errors='replace')[-300:]}"
            return self
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/bench"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ctl:
            subprocess.run([*self._ctl, "-m", "immediate", "stop"], check=False, capture_output=True, timeout=60)


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _have(module: str) -> bool:
    probe = subprocess.run([C.PY, "-c", f"import {module}"], capture_output=True, env=C.child_env(), timeout=120)
    return probe.returncode == 0


# --- the parent -------------------------------------------------------------------------------------


def _optuna_pg(url: str, n_trials: int, n_iter: int | None, directory: Path) -> tuple[float, float, int, float]:
    """Two whole processes on one PostgreSQL study: (wall, slowest in-call, complete, span)."""
    C.run_child("b7_dask", "pg_create", {"url": url, "trivial": n_iter is None}, cwd=directory)
    params = json.dumps({"n_trials": n_trials // 2, "url": url, "n_iter": n_iter})
    cmd = [C.PY, "-m", "benchmarks.b7_dask", "--child", "optuna_pg", params]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=directory, env=C.child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    inner = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise C.ChildFailed(f"optuna on PostgreSQL exited {proc.returncode}:\n{C.tail(err, 20)}")
        line = [x for x in out.splitlines() if x.startswith(C.RESULT_PREFIX)][-1]
        inner.append(json.loads(line[len(C.RESULT_PREFIX):])["inner_s"])
    wall = time.perf_counter() - t0
    _, counted = C.run_child("b7_dask", "pg_count", {"url": url}, cwd=directory)
    return wall, max(inner), counted["complete"], counted["span_s"]


def main(argv: list[str] | None = None) -> C.Report:
    args = C.start(__doc__, CHILDREN, argv)
    if args is None:
        return C.Report("child")
    from benchmarks._objectives import calibrate

    quick = args.quick
    n_cpu, trial_s, repeats = (8, 0.1, 1) if quick else (16, 0.25, 3)
    n_trivial, n_ray_trivial, suggests = (60, 8, 50) if quick else (300, 20, 200)
    n_iter = calibrate(trial_s)
    report = C.Report("B7 Dask")
    have_ray = _have("ray.tune")
    print(f"B7: {n_cpu} trials x {trial_s} s busy loop ({n_iter:,} iterations), {repeats} repeat(s), best shown; "
          f"{n_trivial} trivial trials for the per-trial cost")

    walls: dict[str, list[float]] = {}
    inner: dict[str, list[float]] = {}
    spans: dict[str, list[float]] = {}  # first trial started -> last finished (sweeper rows)
    per_trial: dict[str, float] = {}
    per_suggest: dict[str, float] = {}

    def timed(label: str, params: dict[str, Any], cwd: Path) -> dict[str, Any]:
        C.wait_for_quiet()
        wall, result = C.run_child("b7_dask", "sweeper", params, cwd=cwd)
        expected = params["n_trials"]
        if result["complete"] != expected:
            report.note(f"{label}: {result['complete']} trials complete, expected {expected}")
        walls.setdefault(label, []).append(wall)
        inner.setdefault(label, []).append(result["inner_s"])
        spans.setdefault(label, []).append(result["span_s"])
        print(f"  {label:34s} wall {wall:6.2f} s  in call {result['inner_s']:6.2f} s  "
              f"(first trial after {result['startup_s']:.2f} s, trials over {result['span_s']:.2f} s)")
        return result

    def overhead(label: str, cluster: str | None, cwd: Path) -> None:
        C.wait_for_quiet()
        _, result = C.run_child("b7_dask", "sweeper", {"n_trials": n_trivial, "n_jobs": 2, "cluster": cluster}, cwd=cwd)
        per_trial[label] = result["span_s"] / n_trivial
        C.wait_for_quiet()
        _, result = C.run_child("b7_dask", "sweeper", {
            "n_trials": 4, "n_jobs": 1, "cluster": cluster, "objective": "benchmarks.b7_dask:many_suggests",
            "kwargs": {"k": suggests}}, cwd=cwd)
        per_suggest[label] = statistics.median(result["values"])
        print(f"  {label:34s} {per_trial[label] * 1000:6.2f} ms a trivial trial, "
              f"{per_suggest[label] * 1000:6.2f} ms a suggest")

    with C.temp_dir("b7") as tmp:
        serial = []
        for rep in range(repeats):
            C.wait_for_quiet()
            serial.append(C.run_child("b7_dask", "serial", {"n_trials": n_cpu, "n_iter": n_iter}, cwd=tmp)[1]["inner_s"])
        print(f"  {'serial loop':34s} {C.best(serial):6.2f} s")
        # the local backend, for reference
        for rep in range(repeats):
            timed("local backend, n_jobs=2", {"n_trials": n_cpu, "n_jobs": 2, "n_iter": n_iter}, tmp)
        overhead("local backend", None, tmp)
        # a Dask cluster of 1 worker, then of 2
        for n_workers in (1, 2):
            directory = tmp / f"dask-{n_workers}"
            directory.mkdir()
            with DaskCluster(directory, n_workers) as cluster:
                if n_workers == 1:  # what chose the Dask backend's transport
                    C.wait_for_quiet()
                    _, transport = C.run_child("b7_dask", "transport", {"n": 100 if quick else 300,
                                                                        "address": cluster.address}, cwd=tmp)
                    for name, ms in transport.items():
                        report.add(f"round trip of a Suggest over Dask {name} (median)", f"{ms:.2f} ms")
                        print(f"  transport: {name:28s} {ms:6.2f} ms")
                for rep in range(repeats):
                    timed(f"dask, {n_workers} worker(s)", {"n_trials": n_cpu, "n_jobs": n_workers, "n_iter": n_iter,
                                                           "cluster": cluster.address}, tmp)
                if n_workers == 2:
                    overhead("dask, 2 workers", cluster.address, tmp)
        for rep in range(repeats):
            timed("dask, --cluster local:2", {"n_trials": n_cpu, "n_jobs": 2, "n_iter": n_iter,
                                              "cluster": "local:2"}, tmp)

        # Optuna's own way: two processes on one PostgreSQL storage
        with Postgres(tmp) as pg:
            if pg.url is None:
                report.note(f"Optuna + PostgreSQL skipped: {pg.why}")
            else:
                for rep in range(repeats):
                    C.wait_for_quiet()
                    wall, slowest, complete, _ = _optuna_pg(pg.url, n_cpu, n_iter, tmp)
                    walls.setdefault("optuna 2 processes, PostgreSQL", []).append(wall)
                    inner.setdefault("optuna 2 processes, PostgreSQL", []).append(slowest)
                    if complete != n_cpu:
                        report.note(f"optuna on PostgreSQL: {complete} trials complete, expected {n_cpu}")
                    print(f"  {'optuna 2 processes, PostgreSQL':34s} wall {wall:6.2f} s  in call {slowest:6.2f} s")
                C.wait_for_quiet()
                _, slowest, complete, span = _optuna_pg(pg.url, n_trivial, None, tmp)
                per_trial["optuna 2 processes, PostgreSQL"] = slowest / n_trivial
                print(f"  {'optuna 2 processes, PostgreSQL':34s} {slowest / n_trivial * 1000:6.2f} ms a trivial trial")

        # Ray Tune, where it installs
        if not have_ray:
            report.note('Ray Tune skipped: it is not installed here (pip install "ray[tune]")')
        else:
            for rep in range(repeats):
                C.wait_for_quiet()
                wall, result = C.run_child("b7_dask", "ray", {"n_trials": n_cpu, "n_iter": n_iter,
                                                              "directory": str(tmp / "ray")}, cwd=tmp)
                walls.setdefault("ray tune, 2 CPUs", []).append(wall)
                inner.setdefault("ray tune, 2 CPUs", []).append(result["inner_s"])
                if result["complete"] != n_cpu:
                    report.note(f"ray tune: {result['complete']} trials complete, expected {n_cpu}")
                print(f"  {'ray tune, 2 CPUs':34s} wall {wall:6.2f} s  in call {result['inner_s']:6.2f} s "
                      f"(ray.init {result['init_s']:.2f} s)")
            C.wait_for_quiet()
            _, result = C.run_child("b7_dask", "ray", {"n_trials": n_ray_trivial, "directory": str(tmp / "ray")},
                                    cwd=tmp)
            per_trial["ray tune, 2 CPUs"] = result["inner_s"] / n_ray_trivial
            print(f"  {'ray tune, 2 CPUs':34s} {per_trial['ray tune, 2 CPUs'] * 1000:6.2f} ms a trivial trial "
                  f"({n_ray_trivial} trials)")

    ideal = C.best(serial)
    report.add(f"{n_cpu} CPU-bound trials: serial loop", f"{ideal:.2f} s")
    for label in walls:
        wall, in_call = C.best(walls[label]), C.best(inner[label])
        value = f"{wall:.2f} s end to end, {in_call:.2f} s in the call ({ideal / in_call:.2f}x serial in the call)"
        if label in spans:
            value += f", trials over {C.best(spans[label]):.2f} s"
        if len(walls[label]) > 1:
            value += f" [median {C.median(walls[label]):.2f} s]"
        report.add(f"{n_cpu} CPU-bound trials: {label}", value)
    for label, seconds in per_trial.items():
        report.add(f"cost per trivial trial: {label}", C.fmt_ms(seconds))
    for label, seconds in per_suggest.items():
        report.add(f"one define-by-run suggest and back: {label}", C.fmt_ms(seconds))

    def ratio(a: str, b: str, table: dict[str, list[float]] = inner) -> float | None:
        return C.best(table[b]) / C.best(table[a]) if a in table and b in table else None

    lines = []
    scaling = ratio("dask, 2 worker(s)", "dask, 1 worker(s)")
    if scaling is not None:
        over_trials = ratio("dask, 2 worker(s)", "dask, 1 worker(s)", spans)
        report.add("Dask scaling, 1 -> 2 workers", f"{C.fmt_x(scaling)} in the call, {over_trials:.2f}x over the "
                   "trials (first started -> last finished)", "toward 2x on 2 cores")
        lines.append(f"Dask 2 workers vs 1: {scaling:.2f}x faster in the call, {over_trials:.2f}x over the trials "
                     "(ideal 2x)")
    local_scaling = ratio("local backend, n_jobs=2", "dask, 1 worker(s)", spans)
    if local_scaling is not None:
        lines.append(f"dask, 1 worker takes {local_scaling:.2f}x the trials' span of the local backend with 2")
    for other in ("local backend, n_jobs=2", "optuna 2 processes, PostgreSQL", "ray tune, 2 CPUs",
                  "dask, --cluster local:2"):
        value = ratio("dask, 2 worker(s)", other)
        if value is not None:
            lines.append(f"{other} takes {value:.2f}x the time of dask, 2 workers (CPU-bound, in the call)")
    if "dask, 2 workers" in per_trial and "local backend" in per_trial:
        extra = per_trial["dask, 2 workers"] - per_trial["local backend"]
        report.add("Dask's extra cost per trial vs the local backend", C.fmt_ms(extra),
                   note="trivial trials, two define-by-run suggestions each")
        lines.append(f"per trivial trial: dask {per_trial['dask, 2 workers'] * 1000:.2f} ms vs local "
                     f"{per_trial['local backend'] * 1000:.2f} ms ({per_trial['dask, 2 workers'] / per_trial['local backend']:.2f}x)")
        for other in ("optuna 2 processes, PostgreSQL", "ray tune, 2 CPUs"):
            if other in per_trial:
                lines.append(f"per trivial trial: {other} {per_trial[other] * 1000:.2f} ms "
                             f"({per_trial[other] / per_trial['dask, 2 workers']:.2f}x dask's)")
    print("\nratios:\n  " + "\n  ".join(lines))
    for line in lines:
        report.note(line)
    return C.finish(report, args)


if __name__ == "__main__":
    main()
