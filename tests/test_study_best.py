"""One definition of best (issue #13 item 5) in the engine's totals: ``Totals`` names the trial
Optuna's ``study.best_trial`` names, ties included, whatever the storage and the order trials
were told in (the parent run's ``sweeper.best_trial`` and the progress line come from it)."""

from __future__ import annotations

import optuna
import pytest

from sweeper.engine.study import Totals, directions_maximize, journal_storage, resume

optuna.logging.set_verbosity(optuna.logging.WARNING)


def told_out_of_order(study: optuna.Study, values: list[float], order: list[int], totals: Totals) -> None:
    """Ask one trial per value, then tell them in ``order``, counting each into ``totals`` as
    the coordinator does."""
    trials = [study.ask() for _ in values]
    for number in order:
        frozen = study.tell(trials[number], values[number])
        totals.add(frozen, directions_maximize(study))


@pytest.mark.parametrize("storage", ["memory", "journal"])
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_totals_name_optunas_best_trial_on_ties_told_out_of_order(tmp_path, storage, direction):
    study = optuna.create_study(direction=direction, study_name="s",
                                storage=None if storage == "memory" else journal_storage(tmp_path))
    totals = resume(study).totals  # as a sweep starts: its storage's tie-break
    values = [0.5, 0.9, 0.2, 0.9, 0.2, 0.9]  # ties on either best
    told_out_of_order(study, values, [5, 3, 0, 4, 2, 1], totals)
    assert totals.best_trial == study.best_trial.number and totals.best_value == study.best_value
    again = resume(study).totals  # a later session reads the study whole
    assert again.best_trial == study.best_trial.number
    told_out_of_order(study, [study.best_value] * 2, [1, 0], again)  # more ties, in the next session
    assert again.best_trial == study.best_trial.number


def test_totals_of_trials_alone_tie_to_the_lower_number():
    study = optuna.create_study()
    for value in (1.0, 0.5, 0.5):
        study.add_trial(optuna.trial.create_trial(value=value))
    assert Totals.of(study.trials, [False]).best_trial == 1
