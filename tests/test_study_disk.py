"""A sweep on a disk that fills up or is read-only (issue #15 items 3 and 9): one line on stderr,
no traceback, the journal whole, and the same command resumes it once space is back.

Real sweeps through the CLI. The disk is a small tmpfs when this machine lets the test mount
one (root); the same failure is also injected into sweeper's own journal write path
(``sweeper.engine.journal._write_all``) in a driver process, so the test runs anywhere.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

from sweeper.engine.study import Totals, directions_maximize

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
TESTS = Path(__file__).resolve().parent
N_TRIALS = 8

OBJECTIVE = """
import os, time

def objective(trial, marker=None, filler=None):
    x = trial.suggest_float("x", 0, 1)
    time.sleep(0.05)
    if marker and filler and trial.number >= 2 and os.path.exists(marker):
        os.unlink(marker)  # once: the disk fills while the sweep runs
        try:
            with open(filler, "wb") as out:
                while True:
                    out.write(b"\\0" * 65536)
        except OSError:
            pass
    return x
"""


@contextlib.contextmanager
def small_disk(path: Path, size: str = "1m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def write_config(tmp_path: Path, storage: Path, marker: Path | None = None, filler: Path | None = None) -> Path:
    (tmp_path / "fillobj.py").write_text(OBJECTIVE)
    kwargs = f"objective_kwargs: {{marker: '{marker}', filler: '{filler}'}}\n" if marker else ""
    config = tmp_path / "fill.yaml"
    config.write_text(
        "objective: fillobj:objective\n" + kwargs
        + "search_space:\n  x: {low: 0.0, high: 1.0}\n"
        + f"sampler: random\nseed: 0\nn_trials: {N_TRIALS}\nn_jobs: 2\nstorage_dir: '{storage}'\n"
        + f"tracking: {{uri: 'sqlite:///{tmp_path}/mlflow.db'}}\n"
    )
    return config


def run(tmp_path: Path, *args: str, driver: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", driver] if driver else [sys.executable, "-m", "sweeper"]
    return subprocess.run([*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=150, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr and "During handling" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("sweeper: error:")]
    assert len(errors) == 1, done.stderr
    assert all(word in errors[0] for word in words), errors[0]
    return errors[0]


def assert_whole_and_complete(storage: Path) -> None:
    journal = storage / "fill" / "study.journal"
    assert journal.read_bytes().endswith(b"\n")
    storage_ = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))  # Optuna's own reader
    study = optuna.load_study(study_name="fill", storage=storage_)
    totals = Totals.of(study.trials, directions_maximize(study))
    assert totals.counted == N_TRIALS and not [t for t in study.trials if not t.state.is_finished()]


def test_a_disk_that_fills_mid_sweep_is_one_line_and_the_sweep_resumes(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        marker, filler = tmp_path / "fill-once", disk / "filler"
        marker.touch()
        config = write_config(tmp_path, disk / ".sweeper", marker, filler)
        done = run(tmp_path, "run", str(config))
        assert_one_line_error(done, "disk is full", str(disk / ".sweeper" / "fill" / "study.journal"),
                              "free some space", "run the same command again to resume")
        assert not marker.exists() and filler.exists()
        assert (disk / ".sweeper" / "fill" / "study.journal").read_bytes().endswith(b"\n")
        filler.unlink()
        again = run(tmp_path, "run", str(config))
        assert again.returncode == 0, again.stderr
        assert_whole_and_complete(disk / ".sweeper")


INJECTED = """
import errno, sys
from sweeper import cli
from sweeper.engine import journal

calls, real = [0], journal._write_all

def full_after_some(fd, data):  # the disk takes some appends, then part of one, then none
    calls[0] += 1
    if calls[0] > {after}:
        journal.os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.{errno_name}, "injected")
    return real(fd, data)

journal._write_all = full_after_some
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("errno_name, words", [("ENOSPC", ("disk is full", "free some space")),
                                               ("EROFS", ("read-only", "writable"))])
def test_a_journal_write_the_disk_refuses_is_one_line_and_the_sweep_resumes(tmp_path, errno_name, words):
    storage = tmp_path / ".sweeper"
    config = write_config(tmp_path, storage)
    done = run(tmp_path, "run", str(config), driver=textwrap.dedent(INJECTED.format(after=12, errno_name=errno_name)))
    assert_one_line_error(done, *words, str(storage / "fill" / "study.journal"))
    assert (storage / "fill" / "study.journal").read_bytes().endswith(b"\n")  # the half append was cut back
    again = run(tmp_path, "run", str(config))
    assert again.returncode == 0, again.stderr
    assert_whole_and_complete(storage)


def test_a_read_only_sweep_directory_is_one_line(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        config = write_config(tmp_path, disk / ".sweeper")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        done = run(tmp_path, "run", str(config))
        assert_one_line_error(done, "read-only", "writable (or set storage_dir)")
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        assert run(tmp_path, "run", str(config)).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        listed = run(tmp_path, "ls", "--dir", str(disk / ".sweeper"))  # reading needs no writing
        assert listed.returncode == 0 and "finished" in listed.stdout, listed.stderr
        assert_one_line_error(run(tmp_path, "run", str(config)), "read-only")  # complete, but run means write
