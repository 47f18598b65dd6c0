"""The coordinator's decisions, on a scripted in-memory backend: every engine case of the fault
catalogue (crash, timeout, retries, the failure brake, interruption, resume), in milliseconds.

The study is a real in-memory Optuna study; only the workers and the record are stand-ins
(``tests/_fakes.py``), which is what makes these unit tests rather than end-to-end ones.
"""

from __future__ import annotations

import json

import optuna
import pytest
from _fakes import FakeBackend, ListRecorder, Outcome

from sweeper.config import ParamSpec
from sweeper.engine.coordinator import Coordinator, SweepPlan
from sweeper.engine.study import RETRY_ATTR, counts_toward_budget, resume
from sweeper.errors import BackendError

pytestmark = pytest.mark.timeout(30)
SPACE = (ParamSpec("x", "float", 0.0, 1.0),)
COMPLETE, FAIL, PRUNED, RUNNING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                                   optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)


def new_study(direction: str = "minimize", pruner: object = None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0),
                               pruner=pruner or optuna.pruners.NopPruner())


def run(script, n_trials=6, n_workers=2, study=None, totals=None, **plan):
    study = study or new_study()
    backend, recorder = FakeBackend(script), ListRecorder()
    coordinator = Coordinator(study, SweepPlan("fake:objective", space=SPACE, n_trials=n_trials, **plan),
                              backend, n_workers, recorder, totals=totals)
    summary = coordinator.run()
    return study, summary, backend, recorder


def test_every_trial_is_told_and_recorded_once():
    study, summary, backend, recorder = run(lambda m: Outcome(value=m.params["x"]))
    assert [t.state for t in study.trials] == [COMPLETE] * 6
    assert sorted(r.number for r in recorder.finished) == list(range(6))
    assert sorted(s.number for s in recorder.started) == list(range(6))
    assert summary.n_complete == 6 and summary.session_finished == 6
    assert all(t.system_attrs["sweeper:record_id"] == f"run-{t.number}" for t in study.trials)
    assert study.user_attrs["record_parent"] == "parent-1"
    assert backend.closed


def test_a_crash_fails_only_its_trial_with_the_backends_words_and_output():
    study, summary, backend, recorder = run(
        lambda m: Outcome(state="crash") if m.trial_number == 2 else Outcome(value=1.0))
    states = {t.number: t.state for t in study.trials}
    assert states[2] == FAIL and sum(s == COMPLETE for s in states.values()) == 5
    crashed = recorder.by_number()[2]
    assert crashed.reason == "crashed" and "SIGKILL" in (crashed.error or "")
    assert crashed.output == "last words\n"
    assert summary.failure_reasons == {"crashed": 1}
    assert len(summary.workers) == 2  # the crashed slot's replacement took its place


def test_a_hung_trial_is_cancelled_at_its_deadline_and_ends_as_a_timeout():
    study, summary, backend, recorder = run(
        lambda m: Outcome(state="hang") if m.trial_number == 0 else Outcome(value=0.5), n_trials=4,
        trial_timeout_s=0.05)
    assert len(backend.cancelled) == 1
    timed_out = recorder.by_number()[0]
    assert timed_out.reason == "timeout" and "exceeded trial_timeout=0.05s" in (timed_out.error or "")
    assert timed_out.output == "stuck here\n"  # what it printed, read back when its worker went
    assert study.trials[0].state == FAIL
    assert sum(t.state == COMPLETE for t in study.trials) == 3


def test_messages_from_a_trial_that_timed_out_are_dropped():
    study, _, backend, recorder = run(
        lambda m: Outcome(state="hang") if m.trial_number == 0 else Outcome(value=0.5), n_trials=2,
        trial_timeout_s=0.05)
    assert [r.state for r in sorted(recorder.finished, key=lambda r: r.number)] == ["fail", "complete"]


def test_a_crashed_trial_is_retried_with_its_params_without_using_up_n_trials():
    attempts: dict[float, int] = {}

    def crash_first(message):
        x = message.params["x"]
        attempts[x] = attempts.get(x, 0) + 1
        return Outcome(state="crash") if attempts[x] == 1 and message.trial_number == 0 else Outcome(value=x)

    study, summary, _, _ = run(crash_first, n_trials=3, max_retries=1)
    retry = [t for t in study.trials if RETRY_ATTR in t.user_attrs]
    assert len(retry) == 1 and retry[0].user_attrs[RETRY_ATTR] == 0
    assert retry[0].params == study.trials[0].params and retry[0].state == COMPLETE
    assert sum(1 for t in study.trials if RETRY_ATTR not in t.user_attrs) == 3  # n_trials fresh ones
    assert summary.totals.counted == 3


def test_the_failure_brake_stops_a_crash_loop():
    study, summary, _, _ = run(lambda m: Outcome(state="crash"), n_trials=50, max_consecutive_failures=3)
    assert summary.failed_fast and "crash loop: 3 trial(s) failed in a row (most often: crashed)" in summary.stopped
    assert len(study.trials) < 10


def test_stop_lets_running_trials_finish_and_immediate_stop_fails_them():
    study = new_study()
    backend, recorder = FakeBackend(lambda m: Outcome(state="hang")), ListRecorder()
    coordinator = Coordinator(study, SweepPlan("fake:objective", space=SPACE, n_trials=10, stop_grace_s=0.05),
                              backend, 2, recorder)
    coordinator.stop("interrupted by SIGINT")
    summary = coordinator.run()
    assert summary.stopped == "interrupted by SIGINT" and len(study.trials) == 0

    study = new_study()
    backend, recorder = FakeBackend(lambda m: Outcome(state="hang")), ListRecorder()
    coordinator = Coordinator(study, SweepPlan("fake:objective", space=SPACE, n_trials=10), backend, 2, recorder)
    original = backend.send

    def send_then_abort(slot, message):
        original(slot, message)
        if len(backend.sent) == 2:
            coordinator.stop("interrupted", immediate=True)

    backend.send = send_then_abort  # type: ignore[method-assign]
    coordinator.run()
    assert [t.state for t in study.trials] == [FAIL, FAIL]
    assert {t.system_attrs["sweeper:fail_reason"] for t in study.trials} == {"interrupted"}
    assert {r.reason for r in recorder.finished} == {"interrupted"}


def test_define_by_run_suggestions_and_pruning_are_answered_by_the_study():
    distribution = json.dumps({"name": "IntDistribution", "attributes": {"low": 1, "high": 4, "step": 1, "log": False}})
    pruner = optuna.pruners.ThresholdPruner(upper=0.5)
    study, _, backend, recorder = run(
        lambda m: Outcome(value=0.1, suggest={"k": distribution}, reports=(0.9 if m.trial_number % 2 else 0.1, 0.1)),
        study=new_study(pruner=pruner), n_trials=4)
    assert all("k" in t.params for t in study.trials)
    states = [t.state for t in study.trials]
    assert states == [COMPLETE, PRUNED, COMPLETE, PRUNED]
    assert [r.reason for r in sorted(recorder.finished, key=lambda r: r.number)] == [None, "pruned", None, "pruned"]
    assert all(len(r.reports) >= 1 for r in recorder.finished)


def test_slots_that_never_get_ready_end_the_sweep_with_one_clear_error():
    study = new_study()
    backend, recorder = FakeBackend(lambda m: Outcome(), die_before_ready=100), ListRecorder()
    coordinator = Coordinator(study, SweepPlan("fake:objective", space=SPACE, n_trials=3), backend, 1, recorder)
    with pytest.raises(BackendError, match="every worker died before it was ready"):
        coordinator.run()
    assert backend.closed


def test_the_best_trial_is_optunas_ties_to_the_lower_number():
    study, summary, _, recorder = run(lambda m: Outcome(value=1.0 if m.trial_number in (1, 3) else 2.0), n_trials=5)
    assert summary.best == (1.0, 1) == (study.best_value, study.best_trial.number)
    assert recorder.progress_seen[-1].best_trial == 1


def test_progress_counts_the_workers_busy_after_a_trial_frees_one():
    seen: list[int] = []
    study = new_study()
    backend = FakeBackend(lambda m: Outcome(value=0.5))
    coordinator = Coordinator(study, SweepPlan("fake:objective", space=SPACE, n_trials=6), backend, 2, ListRecorder(),
                              on_trial_finished=lambda trial, summary, running: seen.append(running))
    coordinator.run()
    assert len(seen) == 6 and max(seen) == 2  # while trials remain, a freed worker is busy again


def test_a_recycled_worker_gets_no_trial_until_its_replacement_is_ready():
    study, summary, backend, _ = run(lambda m: Outcome(value=0.5, worker_exits=True), n_trials=4)
    assert sum(t.state == COMPLETE for t in study.trials) == 4
    assert len(backend.started) == 2 + 4  # every trial's worker was replaced
    assert len({w.pid for w in summary.workers.values()}) == 2


def test_totals_continue_from_what_an_earlier_session_did():
    study = new_study()
    run(lambda m: Outcome(value=m.params["x"]), n_trials=3, study=study)
    before = resume(study).totals  # what the next session starts from
    assert before.counted == 3
    _, summary, _, recorder = run(lambda m: Outcome(value=m.params["x"]), n_trials=2, study=study, n_target=5,
                                  totals=before)
    assert summary.totals.counted == 5 and summary.session_finished == 2
    assert recorder.progress_seen[-1].n_complete == 5 and recorder.progress_seen[-1].n_target == 5
    assert summary.best == (study.best_value, study.best_trial.number)


def test_resume_fails_trials_a_dead_coordinator_left_running_and_queues_them_once():
    study = new_study()
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    left = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # RUNNING, its coordinator gone
    resumed = resume(study)
    assert resumed.requeued == [left.number]
    frozen = study.trials[left.number]
    assert frozen.state == FAIL and frozen.system_attrs["sweeper:fail_reason"] == "interrupted"
    assert not counts_toward_budget(frozen) and resumed.totals.counted == 1
    assert study.trials[-1].state == optuna.trial.TrialState.WAITING  # its params, queued once
    again = resume(study)
    assert again.requeued == []


def test_a_changed_sweep_is_refused_naming_each_change():
    from sweeper.engine.study import check_spec
    from sweeper.errors import ConfigError

    study = new_study()
    spec = {"search_space": [{"name": "lr", "type": "float", "low": 0.01, "high": 0.3},
                             {"name": "depth", "type": "int", "low": 2, "high": 8}],
            "directions": ["maximize"], "model": "sklearn.svm.SVC", "objective": None}
    check_spec(study, spec, "rf.yaml")  # a new sweep stores its spec
    changed = json.loads(json.dumps(spec))
    changed["search_space"][0]["high"] = 0.5
    changed["search_space"].append({"name": "gamma", "type": "float", "low": 0.1, "high": 1.0})
    with pytest.raises(ConfigError) as refused:
        check_spec(study, changed, "rf.yaml")
    text = str(refused.value)
    assert "search_space.lr.high: expected 0.3 (as when the sweep started), got 0.5" in text
    assert "search_space.gamma: expected (absent)" in text and "--name NEW" in text
    assert len(text) < 600  # one line per change, not two JSON dumps
