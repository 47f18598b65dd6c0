"""The study journal on disk (issue #15 items 3 and 9): a torn tail is cut, not fatal; a damaged
line is one clear error everywhere; an append is a whole line or nothing.

Real files throughout: journals written by Optuna through sweeper's backend, then cut, padded
with garbage or written on a full tmpfs (when this machine lets the test mount one; the same
failure is also injected into sweeper's own write path, never Optuna's).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

from sweeper import cli
from sweeper.engine import journal as _journal
from sweeper.engine.journal import JournalCorrupt, JournalWriteError
from sweeper.engine.study import journal_storage

pytestmark = pytest.mark.timeout(120)
optuna.logging.set_verbosity(optuna.logging.WARNING)
DIST = {"x": FloatDistribution(0, 1)}


def make_study(directory: Path, n: int = 5, name: str = "s") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=journal_storage(directory, owner=True))
    for i in range(n):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=i / 10, params={"x": i / 10},
                                     distributions=DIST))
    return study


def reload(directory: Path, name: str = "s", *, owner: bool = False) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=journal_storage(directory, owner=owner))


def journal_lines(directory: Path) -> list[bytes]:
    return (directory / "study.journal").read_bytes().splitlines(keepends=True)


def optunas_own_view(directory: Path, name: str = "s") -> optuna.Study:
    """The journal as Optuna's own backend reads it (optuna-dashboard, load_study)."""
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(directory / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


# --- a torn tail ----------------------------------------------------------------------------------


def test_a_torn_last_line_is_cut_kept_and_the_sweep_goes_on(tmp_path, caplog):
    make_study(tmp_path, 5)
    journal = tmp_path / "study.journal"
    whole = journal.read_bytes()
    torn_bytes = whole[-40:-1]  # the last line without its end, as a full disk leaves it
    journal.write_bytes(whole[:-40] + torn_bytes)

    assert len(reload(tmp_path).trials) == 4  # a reader skips it (it may be an append in flight)
    study = reload(tmp_path, owner=True)  # a writer cuts it first: the torn write is lost, only it
    assert len(study.trials) == 4
    kept = list(tmp_path.glob("study.journal.torn-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == whole[whole.rfind(b"\n", 0, len(whole) - 1) + 1:-1]
    assert journal.read_bytes().endswith(b"\n") and journal.read_bytes() == whole[:len(whole) - len(kept[0].read_bytes()) - 1]
    assert "ended in a torn line" in caplog.text and str(kept[0]) in caplog.text
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.9, params={"x": 0.9}, distributions=DIST))
    assert [t.value for t in reload(tmp_path).trials][-1] == 0.9
    assert len(optunas_own_view(tmp_path).trials) == len(reload(tmp_path).trials)  # Optuna reads it too


def test_a_journal_an_older_sweeper_tore_then_appended_to_is_mended(tmp_path, caplog):
    """The issue's reproduction: disk full tore the last line, the next run appended after the
    torn bytes, and from then on nothing could load the study."""
    make_study(tmp_path, 4)
    journal = tmp_path / "study.journal"
    lines = journal_lines(tmp_path)
    torn = lines[-1][:25]  # what the full disk left of an entry
    journal.write_bytes(b"".join(lines[:-2]) + torn + lines[-2] + lines[-1])  # then the next run's appends
    with pytest.raises(ValueError):
        optunas_own_view(tmp_path)  # what Optuna (and the old sweeper) made of it
    with pytest.raises(JournalCorrupt):
        reload(tmp_path)  # a reader says so, naming the line
    study = reload(tmp_path, owner=True)
    assert [t.value for t in study.trials] == [0.0, 0.1, 0.2, 0.3]
    (kept,) = tmp_path.glob("study.journal.torn-*")
    assert kept.read_bytes() == torn and "torn line joined to the next entry" in caplog.text
    assert len(optunas_own_view(tmp_path).trials) == 4


# --- a damaged middle ----------------------------------------------------------------------------


@pytest.mark.parametrize("garbage, what", [(b"this is not json\n", "not a journal entry"),
                                           (b"\xff\xfe\x00garbage\xc3\n", "not valid UTF-8"),
                                           (b"[1, 2]\n", "not a journal entry")])
def test_a_damaged_line_is_one_error_naming_it_and_what_to_do(tmp_path, garbage, what):
    make_study(tmp_path, 3)
    lines = journal_lines(tmp_path)
    (tmp_path / "study.journal").write_bytes(b"".join(lines[:3]) + garbage + b"".join(lines[3:]))
    total = len(lines) + 1
    path = tmp_path / "study.journal"
    for owner in (False, True):
        with pytest.raises(JournalCorrupt) as caught:
            reload(tmp_path, owner=owner)
        message = str(caught.value)
        assert "\n" not in message and caught.value.__cause__ is None
        assert caught.value.__context__ is None or caught.value.__suppress_context__  # no chained traceback
        assert message == (
            f"the study journal {path} is damaged at line 4 of {total} ({what}); sweeper will not guess what "
            f"it held: to keep the 3 line(s) before it (trials recorded after it are lost): "
            f"head -n 3 {path} > {path}.kept && mv {path}.kept {path}; or move the file away to start the sweep over"
        )
    subprocess.run(f"head -n 3 {path} > {path}.kept && mv {path}.kept {path}", shell=True, check=True)
    assert reload(tmp_path).study_name == "s"  # the remedy it names works


def test_garbage_after_the_last_line_is_not_silently_skipped(tmp_path):
    """Optuna skips an undecodable last line; the next append would bury it in the middle."""
    make_study(tmp_path, 2)
    with (tmp_path / "study.journal").open("ab") as journal:
        journal.write(b"garbage\n")
    with pytest.raises(JournalCorrupt, match="damaged at line"):
        reload(tmp_path, owner=True)


def test_status_and_ls_on_a_damaged_journal_say_so_in_one_line(tmp_path, capsys):
    root = tmp_path / "sweeps"
    make_study(root / "bad", 3, name="bad")
    make_study(root / "good", 2, name="good")
    with (root / "bad" / "study.journal").open("r+b") as journal:
        journal.seek(30)
        journal.write(b"\x00\xff garbage")
    code = cli.main(["status", "bad", "--dir", str(root)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"sweeper: error: the study journal {root}/bad/study.journal is "
                                                   "damaged at line 1 of ")
    assert cli.main(["ls", "--dir", str(root), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["good"]["state"] == "finished"
    assert rows["bad"]["state"] == "unreadable" and "damaged at line 1" in rows["bad"]["error"]
    assert cli.main(["ls", "--dir", str(root)]) == 0
    table = capsys.readouterr().out
    assert "unreadable" in table and "damaged at line 1" in table


# --- appends: a whole line or nothing --------------------------------------------------------------


def test_an_append_the_disk_refuses_leaves_the_journal_as_it_was(tmp_path, monkeypatch):
    study = make_study(tmp_path, 2)
    before = (tmp_path / "study.journal").read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:  # the disk takes part of it, then is full
        if len(data) > 20:
            return real_write(fd, bytes(data[:20]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_journal.os, "write", half_then_full)
    with pytest.raises(JournalWriteError) as caught:
        study.set_user_attr("k", "v" * 100)
    monkeypatch.undo()
    assert (tmp_path / "study.journal").read_bytes() == before
    assert str(caught.value) == (
        f"cannot write the study journal {tmp_path}/study.journal: the disk is full; the trials recorded so far "
        "are kept -- free some space, then run the same command again to resume"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    study = reload(tmp_path, owner=True)
    study.set_user_attr("k", "v")
    assert reload(tmp_path).user_attrs["k"] == "v" and not list(tmp_path.glob("*.torn-*"))


def test_appends_are_whole_lines_optuna_reads(tmp_path):
    study = make_study(tmp_path, 3)
    study.set_user_attr("many", list(range(1000)))
    assert all(line.endswith(b"\n") for line in journal_lines(tmp_path))
    assert optunas_own_view(tmp_path).user_attrs["many"] == list(range(1000))


def test_reading_resumes_where_it_ended(tmp_path):
    """The storage re-reads before every operation: only new lines are parsed."""
    make_study(tmp_path, 3)
    backend = _journal.journal_backend(tmp_path / "study.journal")
    first = list(backend.read_logs(0))
    assert list(backend.read_logs(len(first))) == []
    reload(tmp_path).set_user_attr("later", 1)
    (new,) = list(backend.read_logs(len(first)))
    assert new["user_attr"] == {"later": 1}
    assert list(backend.read_logs(2)) == first[2:] + [new]


def test_an_unwritable_sweep_directory_is_one_line(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(JournalWriteError, match="the file system is read-only; .* run it where the sweep "
                                                r"directory is writable \(or set storage_dir\)"):
        journal_storage(tmp_path / "new", owner=True)
