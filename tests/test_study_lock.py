"""The sweep lock (issue #15 item 8): one coordinator per sweep, however they race or die.

Contenders are real processes released together by a barrier, many rounds in a row; the old
lock (create-then-write-pid, a pid-less file taken for stale) let both hold it in 124 of 300.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from sweeper.engine.study import SweepLock, lock_holder, read_pid
from sweeper.errors import SweeperError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ROUNDS = 300
CONTENDERS = 3


def contend(directory: str, rounds: int, start: "multiprocessing.synchronize.Barrier",
            tried: "multiprocessing.synchronize.Barrier", done: "multiprocessing.synchronize.Barrier",
            wins: "multiprocessing.Queue[tuple[int, int]]") -> None:
    lock = SweepLock(Path(directory))
    for round_number in range(rounds):
        start.wait()
        try:
            lock.acquire(wait_s=0)
        except SweeperError:
            pass
        else:
            wins.put((round_number, os.getpid()))
        tried.wait()  # every contender has tried while the winner still holds it
        lock.release()
        done.wait()


def holders_per_round(directory: Path, rounds: int, contenders: int) -> list[int]:
    ctx = multiprocessing.get_context("fork")
    start, tried, done = ctx.Barrier(contenders), ctx.Barrier(contenders), ctx.Barrier(contenders)
    wins = ctx.Queue()
    processes = [ctx.Process(target=contend, args=(str(directory), rounds, start, tried, done, wins))
                 for _ in range(contenders)]
    for process in processes:
        process.start()
    counts = [0] * rounds
    try:
        for process in processes:
            process.join(100)
            assert process.exitcode == 0, "a contender failed or hung"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    while not wins.empty():
        round_number, _ = wins.get()
        counts[round_number] += 1
    return counts


def test_contenders_started_together_never_both_hold_the_lock(tmp_path):
    counts = holders_per_round(tmp_path, ROUNDS, CONTENDERS)
    assert counts == [1] * ROUNDS, {n: c for n, c in enumerate(counts) if c != 1}


def test_a_second_coordinator_is_refused_naming_the_holder(tmp_path):
    first = SweepLock(tmp_path)
    first.acquire()
    try:
        assert read_pid(first.path) == os.getpid() and lock_holder(tmp_path) == os.getpid()
        with pytest.raises(SweeperError, match=rf"already running \(pid {os.getpid()}\); wait for it"):
            SweepLock(tmp_path).acquire()
    finally:
        first.release()
    assert lock_holder(tmp_path) is None and first.path.exists() and read_pid(first.path) is None
    again = SweepLock(tmp_path)
    again.acquire(wait_s=0)
    again.release()


def _hold_then_wait(directory: str, held: "multiprocessing.synchronize.Event", fork_child: bool) -> None:
    lock = SweepLock(Path(directory))
    lock.acquire()
    if fork_child and os.fork() == 0:  # a child that outlives its parent (the report's plot child)
        time.sleep(30)
        os._exit(0)
    held.set()
    time.sleep(60)


@pytest.mark.parametrize("fork_child", [False, True], ids=["alone", "with-a-forked-child"])
def test_a_killed_holders_lock_is_free_at_once(tmp_path, fork_child):
    ctx = multiprocessing.get_context("fork")
    held = ctx.Event()
    holder = ctx.Process(target=_hold_then_wait, args=(str(tmp_path), held, fork_child))
    holder.start()
    assert held.wait(30)
    assert lock_holder(tmp_path) == holder.pid
    with pytest.raises(SweeperError, match=f"pid {holder.pid}"):
        SweepLock(tmp_path).acquire(wait_s=0)
    grandchildren = []
    if fork_child:
        import psutil

        grandchildren = psutil.Process(holder.pid).children()
        assert grandchildren
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    try:
        assert lock_holder(tmp_path) is None  # its pid is still in the file; the kernel knows better
        assert read_pid(tmp_path / "lock") == holder.pid
        lock = SweepLock(tmp_path)
        lock.acquire(wait_s=0)
        assert read_pid(lock.path) == os.getpid()
        lock.release()
    finally:
        for child in grandchildren:
            child.kill()


def test_a_lock_file_left_by_an_older_sweeper_is_taken_over(tmp_path):
    (tmp_path / "lock").write_text("999999999")  # a pid file of the old create-with-pid lock
    lock = SweepLock(tmp_path)
    lock.acquire(wait_s=0)
    assert read_pid(lock.path) == os.getpid()
    lock.release()


def test_release_in_a_forked_child_leaves_the_parents_lock_alone(tmp_path):
    lock = SweepLock(tmp_path)
    lock.acquire()
    try:
        pid = os.fork()
        if pid == 0:
            lock.release()  # not the owner here: nothing happens
            os._exit(0)
        os.waitpid(pid, 0)
        assert lock_holder(tmp_path) == os.getpid()
    finally:
        lock.release()
