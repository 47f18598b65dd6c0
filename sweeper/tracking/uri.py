"""Where a sweep's MLflow store is, whether it can be reached, and how a person opens it.

Stdlib only: the CLI and the coordinator use it without importing mlflow.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from .._redact import redact_uri
from ..errors import TrackingError


def resolve_tracking_uri(uri: str | None) -> str:
    """The store this sweep writes to: explicit, else ``MLFLOW_TRACKING_URI``, else MLflow's
    own default, the SQLite file ``mlflow.db`` in the working directory (what ``mlflow ui``
    started here opens)."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return "sqlite:///" + os.path.abspath("mlflow.db")


def check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Fail fast, before any worker starts and without importing mlflow, on an unusable store."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout_s):
                pass
        except OSError as exc:
            raise TrackingError(
                f"MLflow tracking server {redact_uri(uri)} is unreachable ({exc.strerror or exc}); "
                "start it, or drop --tracking-uri to use the local mlflow.db"
            ) from None
    elif parts.scheme == "sqlite":
        path = uri[len("sqlite:///"):]
        directory = os.path.dirname(path) or "."
        if path and not os.path.isdir(directory):
            raise TrackingError(f"tracking store {redact_uri(uri)}: directory {directory} does not exist")


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store live beside it (``<dir>/mlartifacts/<experiment>``), not in
    whatever ``./mlruns`` the working directory happens to be, so the store and its files move
    together and ``mlflow ui`` finds them from anywhere."""
    if not uri.startswith("sqlite:///"):
        return None  # a server or another database decides its own artifact root
    directory = os.path.dirname(os.path.abspath(uri[len("sqlite:///"):]))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
    return os.path.join(directory, "mlartifacts", safe)


def mlflow_ui_command(uri: str) -> str:
    """How a person opens the store: a tracking server's own URL (it is the UI), else the
    ``mlflow ui`` command line for it. A password is never printed: the command takes it from
    ``$MLFLOW_TRACKING_URI`` when that is the store, else shows where it goes."""
    if uri.startswith(("http://", "https://")):  # the browser asks for the user and password
        parts = urlsplit(uri)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl().rstrip("/")
    shown = redact_uri(uri)
    if shown != uri:
        shown = '"$MLFLOW_TRACKING_URI"' if os.environ.get("MLFLOW_TRACKING_URI") == uri else \
            "'" + shown.replace(":***@", ":<password>@") + "'"
    scheme = urlsplit(uri).scheme
    prefix = "MLFLOW_ALLOW_FILE_STORE=true " if scheme in ("", "file") else ""  # MLflow 3 refuses them otherwise
    return f"{prefix}mlflow ui --backend-store-uri {shown}"
