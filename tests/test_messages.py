"""Every message is plain, frozen data that survives pickling (spawn sends it by pickle) and its
plain-list wire form, which decodes only to the message classes themselves."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from sweeper.workers import messages as m

SAMPLES = [
    m.RunTrial(3, "pkg.mod:fn", {"x": 1.5, "k": "rbf"}, {"n": 2}),
    m.RunTrial(3, "pkg.mod:fn", {}, {}, capture_output=True, study={"study_name": "s", "directions": ["minimize"]}),
    m.TrialEnvRequest(0, 3),
    m.TrialEnv(3, {"MLFLOW_RUN_ID": "abc123"}),
    m.Suggestion(3, "x", 0.25),
    m.Suggestion(3, "x", None, error="ValueError: bad"),
    m.PruneDecision(3, True),
    m.Shutdown(),
    m.WorkerReady(0, "host-a", 1234),
    m.Suggest(0, 3, "y", '{"name": "IntDistribution", "attributes": {"low": 1, "high": 5}}'),
    m.Report(0, 3, 2, 0.5),
    m.ShouldPrune(0, 3),
    m.Metrics(0, 3, {"loss": 0.1}, step=4),
    m.UserAttr(0, 3, "note", {"a": [1, 2]}),
    m.Artifact(0, 3, "plot.png", b"\x89PNG", None),
    m.TrialFinished(0, 3, "fail", None, 1.5, "ValueError: boom", "Traceback ...", "exception"),
    m.TrialFinished(0, 3, "complete", (0.5, 1.0), 0.1, output="hello\n"),
    m.WorkerLost(1, "worker killed by SIGKILL (possibly out of memory), exit code -9"),
    m.WorkerLost(1, "worker exited (code 1) before reporting a result", replaced=False),
]


def test_every_message_class_has_a_sample():
    classes = {
        obj for obj in vars(m).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj)
    }
    assert classes == {type(s) for s in SAMPLES} == set(m.MESSAGE_CLASSES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_messages_round_trip_through_pickle(message):
    assert pickle.loads(pickle.dumps(message)) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_messages_round_trip_through_their_wire_form(message):
    wire = m.to_wire(message)
    assert all(isinstance(item, (str, int, float, bool, bytes, list, tuple, dict, type(None))) for item in wire)
    assert m.from_wire(wire) == message
    if not any(isinstance(item, bytes) for item in wire):  # JSON-like transports lose tuples only
        assert m.from_wire(json.loads(json.dumps(wire))) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_messages_are_frozen_and_slotted(message):
    assert not hasattr(message, "__dict__")
    fields = dataclasses.fields(message)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, fields[0].name, None)


@pytest.mark.parametrize("wire", [None, [], [1, 2], ["os.system", "rm"], ["Path", "/"], ["Shutdown", 1, 2],
                                  {"RunTrial": 1}])
def test_the_wire_form_decodes_message_classes_only(wire):
    with pytest.raises(ValueError):
        m.from_wire(wire)
