"""Every queue message is plain, frozen data that survives pickling (spawn sends it by pickle)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from sweeper.workers import messages as m

SAMPLES = [
    m.RunTrial(3, "pkg.mod:fn", {"x": 1.5, "k": "rbf"}, {"n": 2}),
    m.RunIdRequest(0, 3),
    m.RunIdReply(3, "abc123", "sqlite:///x.db"),
    m.Suggestion(3, "x", 0.25),
    m.Suggestion(3, "x", None, error="ValueError: bad"),
    m.PruneDecision(3, True),
    m.Shutdown(),
    m.WorkerReady(0, 1234),
    m.Suggest(0, 3, "y", '{"name": "IntDistribution", "attributes": {"low": 1, "high": 5}}'),
    m.Report(0, 3, 2, 0.5),
    m.ShouldPrune(0, 3),
    m.Metrics(0, 3, {"loss": 0.1}, step=4),
    m.UserAttr(0, 3, "note", {"a": [1, 2]}),
    m.Artifact(0, 3, "/tmp/plot.png", None),
    m.TrialFinished(0, 3, "fail", None, 1.5, "ValueError: boom", "Traceback ...", "exception"),
    m.TrialFinished(0, 3, "complete", (0.5, 1.0), 0.1),
]


def test_every_message_class_has_a_sample():
    classes = {
        obj for obj in vars(m).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj)
    }
    assert classes == {type(s) for s in SAMPLES}


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_messages_round_trip_through_pickle(message):
    assert pickle.loads(pickle.dumps(message)) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_messages_are_frozen_and_slotted(message):
    assert not hasattr(message, "__dict__")
    fields = dataclasses.fields(message)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, fields[0].name, None)
