"""How the report runs each of its steps: timed for ``SWEEPER_LOG_LEVEL=DEBUG``, and a failure
is one warning line on stderr, never a failed sweep (the sweep itself already succeeded)."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from .._redact import redact_uri

logger = logging.getLogger("sweeper")
T = TypeVar("T")


def step(what: str, action: Callable[[], T]) -> T | None:
    """``action()``, or None and one warning line when it raises."""
    try:
        with timed(what, indent=""):
            return action()
    except Exception as exc:  # noqa: BLE001 - one missing piece of the report is not fatal
        warn(f"report: could not {what}: {describe(exc)}")
        return None


@contextlib.contextmanager
def timed(what: str, indent: str = "  ") -> Iterator[None]:
    """Wall and CPU time (this process') of a step or a part of one, for SWEEPER_LOG_LEVEL=DEBUG."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        logger.debug("report: %s%s took %.2fs (cpu %.2fs)", indent, what,
                     time.perf_counter() - started, time.process_time() - cpu)


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Libraries' INFO/WARNING chatter (e.g. MLflow's pickle-format notice) off for a moment."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def describe(exc: BaseException) -> str:
    text = redact_uri(str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def warn(message: str) -> None:
    print(f"sweeper: warning: {message}", file=sys.stderr, flush=True)
