"""The coordinator's side of the MLflow writer process: what it sends in one frame."""

from __future__ import annotations

import io

from sweeper._tracker_process import _latest_progress_only, read_frame, write_frame


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
