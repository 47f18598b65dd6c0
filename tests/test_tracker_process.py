"""The MLflow writer process and the coordinator's end of its pipes: typed frames, no threads,
a full pipe that never blocks the coordinator, and a writer that dies losing nothing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from sweeper.engine.recorder import Progress, SweepEnd, TrialRecord, TrialStarted
from sweeper.tracking.frames import Close, FrameReader, Open, TrialEnd, Written, encode, from_wire, to_wire
from sweeper.tracking.recorder import MlflowRecorder
from sweeper.tracking.records import ChildRecord


def a_record(number: int, output: str = "") -> TrialRecord:
    now = int(time.time() * 1000)
    return TrialRecord(number, "complete", now, now + 5, 0.005, params={"x": 0.5}, values=(1.0 + number,),
                       output=output)


def test_frames_round_trip_through_bytes_in_any_pieces():
    child = ChildRecord(3, "FAILED", 1, 2, params={"x": "1"}, metrics=[("m", float("nan"), 0, 1)],
                        tags={"a": "b"}, texts={"traceback.txt": "boom"}, files=[("f.bin", b"\x00\xff", "dir")])
    frames = [TrialEnd(child), Close("FINISHED", {"t": "v"}, {1: {"p": "true"}}), Written({1: "abc"}, (1, 2))]
    data = b"".join(encode(f) for f in frames)
    reader, out = FrameReader(), []
    for i in range(len(data)):  # a byte at a time: frames come out whole, in order
        out += reader.feed(data[i:i + 1])
    assert [type(f) for f in out] == [TrialEnd, Close, Written]
    got = out[0].record
    assert (got.number, got.status, got.params, got.tags, got.texts, got.files) == (
        3, "FAILED", {"x": "1"}, {"a": "b"}, {"traceback.txt": "boom"}, [("f.bin", b"\x00\xff", "dir")])
    assert str(got.metrics[0][1]) == "nan"
    assert out[1] == frames[1] and out[2] == frames[2]


def test_only_writer_frames_come_out_of_a_pipe():
    with pytest.raises(ValueError, match="unknown writer frame 'Popen'"):
        from_wire(["Popen", "rm -rf /"])
    with pytest.raises(ValueError, match="fields"):
        from_wire(to_wire(Written({}, ()))[:-1])


def open_recorder(tmp_path, **kwargs) -> MlflowRecorder:
    recorder = MlflowRecorder(f"sqlite:///{tmp_path}/mlflow.db", "e", "sweep", spool_path=str(tmp_path / "spool.jsonl"),
                              **kwargs)
    recorder.start({"n_trials": 3}, {}, {})
    recorder.wait_ready()
    return recorder


def test_the_coordinator_side_runs_no_thread(tmp_path):
    before = {t.ident for t in threading.enumerate()}
    recorder = open_recorder(tmp_path)
    for number in range(3):
        recorder.trial_started(TrialStarted(number, int(time.time() * 1000)))
        recorder.trial_finished(a_record(number))
        recorder.progress(Progress(number + 1, 0, 0, 0, 3, number, 1.0 + number))
        assert {t.ident for t in threading.enumerate()} == before
    assert recorder.close(SweepEnd("finished", progress=Progress(3, 0, 0, 0, 3, 2, 3.0))) == []
    assert {t.ident for t in threading.enumerate()} == before
    assert set(recorder.run_ids) == {0, 1, 2}


def test_a_full_pipe_queues_instead_of_blocking_and_a_stopped_writer_catches_up(tmp_path):
    recorder = open_recorder(tmp_path)
    os.kill(recorder.pid, signal.SIGSTOP)  # the writer takes nothing now: the pipe fills
    try:
        for number in range(12):  # ~12 MB through a 64 KB pipe
            recorder.trial_finished(a_record(number, output="x" * 1_000_000))
        assert recorder._writer.backlog_bytes > 0  # queued in the coordinator, the calls returned
    finally:
        os.kill(recorder.pid, signal.SIGCONT)
    assert recorder.close(SweepEnd("finished")) == []
    assert sorted(recorder.run_ids) == list(range(12))
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert {client.get_run(r).info.status for r in recorder.run_ids.values()} == {"FINISHED"}


def test_a_writer_killed_mid_sweep_leaves_every_unwritten_record_in_the_spool(tmp_path):
    recorder = open_recorder(tmp_path)
    recorder.trial_finished(a_record(0))
    deadline = time.monotonic() + 30
    while 0 not in recorder.run_ids:  # trial 0 is in the store, by the writer's word
        assert time.monotonic() < deadline
        recorder.check()
        time.sleep(0.01)
    os.kill(recorder.pid, signal.SIGSTOP)
    for number in (1, 2):  # sent, never acknowledged
        recorder.trial_finished(a_record(number))
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.trial_finished(a_record(3))  # after its death
    failures = recorder.close(SweepEnd("finished"))
    assert any("MLflow writer process exited" in f for f in failures), failures
    assert any("3 trial record(s) were not written" in f for f in failures), failures
    spooled = [json.loads(line) for line in (tmp_path / "spool.jsonl").read_text().splitlines()]
    assert sorted(e["record"]["number"] for e in spooled) == [1, 2, 3]
    assert spooled[0]["record"]["metrics"] and spooled[0]["record"]["params"] == {"x": "0.5"}


def test_a_store_that_cannot_be_opened_is_one_whole_error(tmp_path):
    from sweeper.errors import TrackingError

    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)
    recorder = MlflowRecorder(f"sqlite:///{tmp_path}/mlflow.db", "e", "sweep")
    recorder.start({}, {}, {})
    with pytest.raises(TrackingError) as caught:
        recorder.wait_ready()
    message = str(caught.value)
    assert message.startswith(f"could not open MLflow store sqlite:///{tmp_path}/mlflow.db: ")
    assert "file is not a database" in message
    recorder.close_quietly()


def test_open_frame_is_plain_data():
    frame = Open("sqlite:///x", "e", "s", "key", None, 1, {"a": "1"}, {}, {}, {}, ("x",), ("value",), None, True,
                 (ChildRecord(0, "FINISHED", 1, 2),))
    [back] = FrameReader().feed(encode(frame))
    assert back == frame


def test_replies_read_while_sending_are_handed_out_not_dropped(tmp_path):
    """A send pumps the pipes; what the writer said meanwhile must reach the next pump's caller
    (dropping it lost the writer's Opened, Written or Closed whenever it answered quickly)."""
    from sweeper.tracking.process import WriterProcess

    writer = WriterProcess()
    writer._arrived = ["a reply read during a send"]  # as if send()'s pump had read it
    assert writer.pump() == ["a reply read during a send"]
    assert writer.pump() == []
