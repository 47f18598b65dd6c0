"""The coordinator's side of the MLflow writer process: what it sends in one frame."""

from __future__ import annotations

import io

from sweeper.tracking.process import _latest_progress_only, read_frame, write_frame


def test_a_batch_keeps_every_trial_event_in_order_and_only_the_last_progress():
    batch = [("child_start", 0), ("progress", "a"), ("child_end", 0), ("progress", "b"), ("child_start", 1)]
    assert _latest_progress_only(batch) == [("child_start", 0), ("child_end", 0), ("progress", "b"), ("child_start", 1)]
    assert _latest_progress_only([("child_end", 3)]) == [("child_end", 3)]


def test_frames_round_trip_and_end_cleanly():
    stream = io.BytesIO()
    write_frame(stream, [("child_end", 1), ("close", None)])
    write_frame(stream, [("init", {"uri": "sqlite:///x"})])
    stream.seek(0)
    assert read_frame(stream) == [("child_end", 1), ("close", None)]
    assert read_frame(stream) == [("init", {"uri": "sqlite:///x"})]
    assert read_frame(stream) is None  # the coordinator's end of the pipe closed


def test_run_ids_go_back_a_burst_at_a_time():
    import threading
    import time

    from sweeper.tracking.process import _RunIdReplies

    sent, arrived = [], threading.Event()

    def reply(message):
        sent.append(message)
        arrived.set()

    replies = _RunIdReplies(reply)
    for number in range(20):
        replies.add(number, f"run{number}")
    assert arrived.wait(5)
    time.sleep(2 * _RunIdReplies.GATHER_S)
    assert sent[0][0] == "run_ids" and len(sent) <= 2  # one reply for the burst (two at worst)
    assert {k: v for _, batch in sent for k, v in batch.items()} == {n: f"run{n}" for n in range(20)}
