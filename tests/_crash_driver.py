"""``python tests/_crash_driver.py POINT N sweeper-args...``: the sweeper CLI, with the
coordinator dying at its N-th pass through POINT as if SIGKILLed there (``os._exit`` skips every
cleanup: no finally, no atexit, nothing flushed). For the crash-point matrix (RELIABILITY B19).

Points: after_ask (a trial exists, nothing sent), after_dispatch (its worker has it), after_result
(its result arrived, not told), after_tell (told, not recorded).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sweeper.engine import coordinator
from sweeper.workers import local, messages

CRASH_EXIT = 86


def die_at(owner: Any, name: str, n: int, *, before: bool, when: Any = lambda *a, **k: True) -> None:
    original = getattr(owner, name)
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if when(*args, **kwargs):
            calls += 1
            if before and calls >= n:
                os._exit(CRASH_EXIT)
        result = original(*args, **kwargs)
        if not before and when(*args, **kwargs) and calls >= n:
            os._exit(CRASH_EXIT)
        return result

    setattr(owner, name, wrapper)


def main() -> int:
    point, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if point == "after_ask":  # the declared space is sampled right after study.ask()
        die_at(coordinator, "suggest_on", n, before=True)
    elif point == "after_dispatch":
        die_at(local.LocalBackend, "send", n, before=False,
               when=lambda self, slot, message: isinstance(message, messages.RunTrial))
    elif point == "after_result":
        die_at(coordinator.Coordinator, "_finish", n, before=True)
    elif point == "after_tell":  # counted right after the tell, before the recorder hears of it
        die_at(coordinator.Coordinator, "_count", n, before=True)
    else:
        raise SystemExit(f"unknown point {point!r}")
    from sweeper.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
