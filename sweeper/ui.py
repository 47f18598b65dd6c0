"""``sweeper ui``: the MLflow UI on a sweep's tracking store, one command, stopped by Ctrl-C.

    sweeper ui NAME --> store URI (flag > the study's record > MLFLOW_TRACKING_URI > ./mlflow.db)
                    --> `python -m mlflow server --host 127.0.0.1 --port N` in its own session,
                        the store in its environment (MLFLOW_BACKEND_STORE_URI), never its argv
                    --> wait for /health --> print the experiment's URL --> wait
    Ctrl-C / SIGTERM --> SIGTERM to the server's process group, SIGKILL after a grace period

The server runs in a new session so a terminal's Ctrl-C reaches only us, and we stop the
whole group (uvicorn workers, MLflow's job runner) ourselves: nothing is left listening. The
group's leader is a small guard (``GUARD``) that runs the server and, should ``sweeper ui`` be
killed outright (SIGKILL: no chance to stop anything), stops the group itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import results as _results
from ._redact import redact_uri
from .tracking.uri import resolve_tracking_uri
from .errors import SweeperError

DEFAULT_PORT = 5000
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
#: The runs view of an experiment (MLflow 3 opens experiments in its GenAI view otherwise).
RUNS_VIEW = "runs?workflowType=machine_learning"


@dataclass(frozen=True)
class UiTarget:
    """What to serve and where to point the user."""

    tracking_uri: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    sweep: str | None = None


def resolve_target(name: str | None, root: str, tracking_uri: str | None) -> UiTarget:
    """The store (and the sweep's experiment) for ``sweeper ui [NAME]``."""
    if name is None:
        return UiTarget(resolve_tracking_uri(tracking_uri))
    study = _results.load_study(root, name)
    ids = _results.mlflow_ids(study)
    uri = tracking_uri or ids["tracking_uri"] or resolve_tracking_uri(None)
    return UiTarget(uri, ids["experiment_id"], ids["parent_run_id"], name)


def urls(target: UiTarget, base: str) -> dict[str, str]:
    """The experiment's runs view and the parent run's page on the server at ``base``."""
    if target.experiment_id is None:
        return {"experiments": f"{base}/#/experiments"}
    found = {"experiment": f"{base}/#/experiments/{target.experiment_id}/{RUNS_VIEW}"}
    if target.parent_run_id:
        found["parent_run"] = (f"{base}/#/experiments/{target.experiment_id}/runs/{target.parent_run_id}"
                               f"?{RUNS_VIEW.partition('?')[2]}")
    return found


def check_store(uri: str) -> None:
    """A local SQLite store must exist: ``mlflow server`` would silently create an empty one."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if not os.path.isfile(path):
            raise SweeperError(
                f"no MLflow store at {path} (from {redact_uri(uri)}); run a sweep first, "
                "or pass --tracking-uri"
            )


def free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """Fail before starting the server (which would take seconds to say so). SO_REUSEADDR as the
    server sets it: connections of a UI stopped a moment ago (TIME_WAIT) do not block the port."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise SweeperError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "pass --port N, or --port 0 for any free port"
            ) from None


#: The leader of the server's process group: runs the server, exits with its status, and if
#: its parent (``sweeper ui``) dies, SIGTERMs the group, then SIGKILLs it after a grace period.
GUARD = """
import os, signal, subprocess, sys, time
parent, grace = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGTERM, lambda *_: None)  # a group SIGTERM is for the server; we follow it
server = subprocess.Popen(sys.argv[3:])
orphaned = None
while server.poll() is None:
    if orphaned is None and os.getppid() != parent:
        orphaned = time.monotonic()
        os.killpg(0, signal.SIGTERM)
    elif orphaned is not None and time.monotonic() - orphaned > grace:
        os.killpg(0, signal.SIGKILL)
    time.sleep(0.2)
sys.exit(128 - server.returncode if server.returncode < 0 else server.returncode)
"""


def guarded(command: list[str], grace_s: float = STOP_GRACE_S) -> list[str]:
    """``command`` run under ``GUARD``, for this process."""
    return [sys.executable, "-c", GUARD, str(os.getpid()), str(grace_s), *command]


def server_command(host: str, port: int) -> list[str]:
    """``mlflow server`` for ``server_env``'s store. The store is not an argument: a process's
    argv is readable by every user of the machine, and a store URI may hold a password."""
    return [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1"]


def server_env(uri: str) -> dict[str, str]:
    """The environment ``server_command`` runs in: the store as ``MLFLOW_BACKEND_STORE_URI``
    (``mlflow server`` reads ``--backend-store-uri`` from it), no background job runner (the UI
    needs none; a tree of huey consumers is slow to start on 2 cores)."""
    return {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def serve(target: UiTarget, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          out: TextIO | None = None, start_timeout_s: float = START_TIMEOUT_S) -> int:
    """Run the MLflow UI until Ctrl-C/SIGTERM (exit 0) or until the server dies (exit 1)."""
    out = out or sys.stdout
    if target.tracking_uri.startswith(("http://", "https://")):
        base = target.tracking_uri.rstrip("/")
        print(f"the store of this sweep is an MLflow server already: {redact_uri(base)}", file=out)
        for label, url in urls(target, redact_uri(base)).items():
            print(f"  {label.replace('_', ' ')}: {url}", file=out)
        return 0
    check_store(target.tracking_uri)
    if port == 0:
        port = free_port(host)
    check_port(host, port)
    base = f"http://{_url_host(host)}:{port}"
    log = tempfile.NamedTemporaryFile(prefix="sweeper-ui-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        guarded(server_command(host, port)), stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=server_env(target.tracking_uri),
    )
    # Ctrl-C stops us whatever we inherited: a script's background job starts with SIGINT
    # ignored, and Python then never turns it into KeyboardInterrupt.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    clean = False
    try:
        _wait_until_up(process, base, start_timeout_s, Path(log.name))
        where = f" for sweep {target.sweep!r}" if target.sweep else ""
        print(f"MLflow UI{where} on store {redact_uri(target.tracking_uri)}", file=out)
        for label, url in urls(target, base).items():
            print(f"  {label.replace('_', ' ')}: {url}", file=out)
        print(f"server log: {log.name}; press Ctrl-C to stop", file=out, flush=True)
        code = process.wait()
        print(f"sweeper: the MLflow server exited with status {code}; see {log.name}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the MLflow UI", file=out, flush=True)
        clean = True
        return 0
    finally:
        stop(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.close()
        if clean:
            Path(log.name).unlink(missing_ok=True)  # kept when something went wrong


def stop(process: subprocess.Popen[Any], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _group_alive(process):
            time.sleep(0.1)
        if not _group_alive(process):
            break
    process.poll()


def _group_alive(process: subprocess.Popen[Any]) -> bool:
    process.poll()  # reap the leader, so a zombie does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_until_up(process: subprocess.Popen[Any], base: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise SweeperError(
                f"the MLflow server exited at start with status {process.returncode}: "
                + redact_uri(" | ".join(tail) or "no output")
            )
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise SweeperError(f"the MLflow server did not answer on {base} within {timeout_s:.0f}s; see {log}")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
