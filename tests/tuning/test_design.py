"""Design studies: a fixed list of configurations, enqueued once, each claimed once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from metarec_classic.exceptions import MetarecWarning, TuningError
from metarec_classic.tuning import _design as design_module
from metarec_classic.tuning import (
    claim_trial,
    design_progress,
    hold_threads,
    open_design_study,
    recover_stale_trials,
    requeue_lost,
    resolve_storage,
    run_claimed_trial,
    worker_threads,
)
from metarec_classic.tuning._design import DESIGN_INDEX_ATTR, WORKER_ATTR

CONFIGS = [{"x": 0.1}, {"x": 0.4}, {"x": 0.7}, {"x": 0.9}]


def _is_label(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE


def _objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def test_the_design_is_enqueued_once_however_often_it_is_opened(tmp_path) -> None:
    storage = resolve_storage(tmp_path / "studies.journal")
    first = open_design_study(storage, "design", CONFIGS, is_label=_is_label)
    second = open_design_study(storage, "design", CONFIGS, is_label=_is_label)
    assert first is not None and second is not None
    trials = second.get_trials()
    assert len(trials) == len(CONFIGS)
    assert [t.user_attrs[DESIGN_INDEX_ATTR] for t in trials] == [0, 1, 2, 3]
    assert design_progress(second, _is_label).budget == len(CONFIGS)


def test_two_handles_never_claim_the_same_trial(tmp_path) -> None:
    path = tmp_path / "studies.journal"
    one = open_design_study(resolve_storage(path), "design", CONFIGS, is_label=_is_label)
    other = optuna.load_study(study_name="design", storage=resolve_storage(path))
    assert one is not None
    claimed = []
    for study in (one, other, one, other, one, other):
        trial = claim_trial(study)
        if trial is not None:
            claimed.append(trial.number)
            assert WORKER_ATTR in study.trials[trial.number].user_attrs
            run_claimed_trial(study, trial, _objective)
    assert sorted(claimed) == [0, 1, 2, 3]
    progress = design_progress(other, _is_label)
    assert (progress.finished, progress.running, progress.waiting) == (4, 0, 0)
    assert progress.done
    values = sorted(t.value for t in other.get_trials())
    assert values == [0.1, 0.4, 0.7, 0.9]


def test_a_failing_objective_fails_its_trial_only(tmp_path) -> None:
    study = open_design_study(
        resolve_storage(tmp_path / "s.journal"), "design", CONFIGS[:2], is_label=_is_label
    )
    assert study is not None

    def flaky(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if x < 0.2:
            raise ValueError("too small")
        return x

    states = []
    while (trial := claim_trial(study)) is not None:
        states.append(run_claimed_trial(study, trial, flaky))
    assert states == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_design_left_half_enqueued_is_completed_by_another_process(tmp_path, monkeypatch) -> None:
    storage = resolve_storage(tmp_path / "s.journal")
    # A creator that died after enqueuing two of the four points, long ago.
    study = optuna.create_study(study_name="design", storage=storage, direction="maximize")
    study.set_user_attr("design_started", time.time() - 3600)
    for index in (0, 1):
        study.enqueue_trial(CONFIGS[index], user_attrs={DESIGN_INDEX_ATTR: index})
    repaired = open_design_study(storage, "design", CONFIGS, is_label=_is_label)
    assert repaired is not None
    indices = sorted(t.user_attrs[DESIGN_INDEX_ATTR] for t in repaired.get_trials())
    assert indices == [0, 1, 2, 3]
    # Repair happens once: a second opener finds the design complete.
    again = open_design_study(storage, "design", CONFIGS, is_label=_is_label)
    assert again is not None and len(again.get_trials()) == 4


def _written_by_add_trial_and_in_one_transaction(url: str) -> tuple[list, list]:
    """The trials of one design, enqueued trial by trial and in one transaction."""
    space = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0),
        "kind": optuna.distributions.CategoricalDistribution(("a", "b")),
        "n": optuna.distributions.IntDistribution(1, 100, log=True),
    }
    # The last point has a value outside the space, stored through Optuna's queue marker.
    configs = [{"x": 0.1, "kind": "b", "n": 7}, {"x": 0.5, "kind": "a", "n": 90, "extra": 3}]
    storage = resolve_storage(url)
    one_by_one = optuna.create_study(study_name="one-by-one", storage=storage)
    one_by_one.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    for index, config in enumerate(configs):
        one_by_one.add_trial(design_module._waiting_trial(index, config, space))
    batched = optuna.create_study(study_name="batched", storage=storage)
    batched.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    design_module._enqueue(batched, configs, space, skip=set())
    return one_by_one.get_trials(), batched.get_trials()


def _same_trials(expected: list, got: list) -> None:
    assert len(got) == len(expected) == 3
    for want, have in zip(expected, got, strict=True):
        assert (have.number, have.state, have.params) == (want.number, want.state, want.params)
        assert have.distributions == want.distributions
        assert have.user_attrs == want.user_attrs
        assert have.system_attrs == want.system_attrs
        assert have.datetime_start == want.datetime_start or have.state != TrialState.WAITING


def test_one_transaction_writes_the_trials_add_trial_writes(tmp_path) -> None:
    with pytest.warns(MetarecWarning):  # SQLite is for one process
        _same_trials(*_written_by_add_trial_and_in_one_transaction(f"sqlite:///{tmp_path}/s.db"))


def test_one_transaction_writes_the_trials_add_trial_writes_in_postgres(
    postgres_database,
) -> None:
    _same_trials(*_written_by_add_trial_and_in_one_transaction(postgres_database))


def test_a_design_of_another_size_is_refused(tmp_path) -> None:
    storage = resolve_storage(tmp_path / "s.journal")
    assert open_design_study(storage, "design", CONFIGS, is_label=_is_label) is not None
    with pytest.raises(TuningError, match="design of 4 configurations, not 2"):
        open_design_study(storage, "design", CONFIGS[:2], is_label=_is_label)


def test_a_design_being_enqueued_right_now_is_left_alone(tmp_path) -> None:
    storage = resolve_storage(tmp_path / "s.journal")
    study = optuna.create_study(study_name="design", storage=storage)
    study.set_user_attr("design_started", time.time())
    assert open_design_study(storage, "design", CONFIGS, is_label=_is_label) is None
    assert len(study.get_trials()) == 0


def test_a_design_created_an_instant_ago_is_left_to_its_creator(tmp_path, monkeypatch) -> None:
    storage = resolve_storage(tmp_path / "s.journal")
    # The creator has created the study but not yet written when it began enqueuing.
    optuna.create_study(study_name="design", storage=storage)
    assert open_design_study(storage, "design", CONFIGS, is_label=_is_label) is None
    assert len(optuna.load_study(study_name="design", storage=storage).get_trials()) == 0
    # Had the creator died there, the design is completed once the grace period is over.
    monkeypatch.setattr(design_module, "ENQUEUE_GRACE", 0.0)
    repaired = open_design_study(storage, "design", CONFIGS, is_label=_is_label)
    assert repaired is not None and len(repaired.get_trials()) == len(CONFIGS)


@pytest.mark.parametrize(
    ("workers", "cpus", "expected"), [(1, 2, 2), (2, 2, 1), (4, 2, 1), (3, 8, 2), (1, 1, 1)]
)
def test_worker_threads_split_the_cores(workers: int, cpus: int, expected: int) -> None:
    assert worker_threads(workers, n_cpus=cpus) == expected


def test_hold_threads_sets_and_restores_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with hold_threads(1):
        assert os.environ["OMP_NUM_THREADS"] == "1"
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_a_claimed_trial_has_its_heartbeat_at_once_and_is_retried_when_it_stops(
    postgres_database, monkeypatch
) -> None:
    monkeypatch.setenv("METAREC_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("METAREC_HEARTBEAT_GRACE", "2")
    storage = resolve_storage(postgres_database)
    study = open_design_study(storage, "design", CONFIGS[:1], is_label=_is_label)
    assert study is not None
    # A process that claims the trial and dies before running it.
    claimed = claim_trial(study)
    assert claimed is not None
    running = study.get_trials()[0]
    assert running.state == TrialState.RUNNING and WORKER_ATTR in running.user_attrs
    assert storage._get_stale_trial_ids(study._study_id) == []  # heartbeat written at claim
    time.sleep(3.5)
    recover_stale_trials(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].system_attrs["failed_trial"] == 0
    assert trials[1].user_attrs[DESIGN_INDEX_ATTR] == 0
    retry = claim_trial(study)
    assert retry is not None and retry.number == 1
    assert run_claimed_trial(study, retry, _objective) == TrialState.COMPLETE
    progress = design_progress(study, _is_label)
    assert (progress.finished, progress.retried, progress.done) == (1, 1, True)
    # The dead process, had it come back, cannot finish the trial that was failed.
    assert run_claimed_trial(study, claimed, _objective) == TrialState.FAIL
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]


_SPACE = {
    "x": optuna.distributions.FloatDistribution(0.0, 1.0),
    "kind": optuna.distributions.CategoricalDistribution(("a", "b")),
    "n": optuna.distributions.IntDistribution(1, 100, log=True),
}


def _recording_objective(trial: optuna.trial.BaseTrial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    kind = trial.suggest_categorical("kind", ("a", "b"))
    n = trial.suggest_int("n", 1, 100, log=True)
    trial.set_user_attr("fit_time", 0.25)
    trial.set_user_attr("effective", {"n": n, "kind": kind})
    if kind == "b":
        trial.set_user_attr("fail_reason", "b fails")
        raise ValueError("b fails")
    return x * n


def _run_by_optuna_and_by_claims(url: str) -> tuple[list, list]:
    """The same design run through Optuna's own calls and through claims."""
    # One point stores its parameters, the other goes through Optuna's queue marker.
    configs = [{"x": 0.1, "kind": "a", "n": 7}, {"x": 0.5, "kind": "b", "n": 90, "extra": 3}]
    storage = resolve_storage(url)
    by_optuna = optuna.create_study(study_name="by-optuna", storage=storage, direction="maximize")
    design_module._enqueue(by_optuna, configs, _SPACE, skip=set())
    by_optuna.optimize(_recording_objective, n_trials=len(configs), catch=(ValueError,))
    by_claims = open_design_study(storage, "by-claims", configs, is_label=_is_label, space=_SPACE)
    assert by_claims is not None
    while (claimed := claim_trial(by_claims)) is not None:
        run_claimed_trial(by_claims, claimed, _recording_objective)
    return by_optuna.get_trials(), by_claims.get_trials()


def _same_outcomes(expected: list, got: list) -> None:
    assert [t.state for t in got] == [TrialState.COMPLETE, TrialState.FAIL]
    for want, have in zip(expected, got, strict=True):
        assert (have.number, have.state, have.values) == (want.number, want.state, want.values)
        assert (have.params, have.distributions) == (want.params, want.distributions)
        assert have.user_attrs.pop(WORKER_ATTR)
        assert have.user_attrs == want.user_attrs
        assert have.system_attrs == want.system_attrs
        assert have.datetime_start is not None and have.datetime_complete is not None
        assert have.datetime_start <= have.datetime_complete


def test_claims_record_what_optunas_own_calls_record(tmp_path) -> None:
    _same_outcomes(*_run_by_optuna_and_by_claims(str(tmp_path / "s.journal")))


def test_claims_record_what_optunas_own_calls_record_in_sqlite(tmp_path) -> None:
    with pytest.warns(MetarecWarning):  # SQLite is for one process
        _same_outcomes(*_run_by_optuna_and_by_claims(f"sqlite:///{tmp_path}/s.db"))


def test_claims_record_what_optunas_own_calls_record_in_postgres(postgres_database) -> None:
    _same_outcomes(*_run_by_optuna_and_by_claims(postgres_database))


def test_an_objective_returning_nan_fails_its_trial(tmp_path) -> None:
    study = open_design_study(
        resolve_storage(tmp_path / "s.journal"), "design", CONFIGS[:1], is_label=_is_label
    )
    assert study is not None
    claimed = claim_trial(study)
    assert claimed is not None
    assert run_claimed_trial(study, claimed, lambda trial: float("nan")) == TrialState.FAIL
    assert study.get_trials()[0].state == TrialState.FAIL


def _dead_worker() -> str:
    """The ``worker`` name of a process of this host that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def _claim_as(study: optuna.Study, worker: str) -> None:
    claimed = claim_trial(study)
    assert claimed is not None
    study._storage.set_trial_user_attr(claimed.trial_id, WORKER_ATTR, worker)


def test_a_journal_trial_of_a_dead_local_worker_is_retried_once_then_lost(tmp_path) -> None:
    storage = resolve_storage(tmp_path / "s.journal")
    study = open_design_study(storage, "design", CONFIGS[:3], is_label=_is_label)
    assert study is not None
    _claim_as(study, _dead_worker())  # point 0: its process is gone
    _claim_as(study, f"{socket.gethostname()}:{os.getpid()}")  # point 1: this live process
    _claim_as(study, "another-host.example:1")  # point 2: cannot be judged from here
    recover_stale_trials(study)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING]
    retry = study.get_trials()[3]
    assert retry.user_attrs[DESIGN_INDEX_ATTR] == 0 and retry.system_attrs["failed_trial"] == 0
    assert design_progress(study, _is_label).lost == 0

    _claim_as(study, _dead_worker())  # the retry dies too: no third try
    recover_stale_trials(study)
    assert [t.state for t in study.get_trials()][3:] == [TrialState.FAIL]
    progress = design_progress(study, _is_label)
    assert (progress.lost, progress.retried, progress.waiting) == (1, 1, 0)

    assert requeue_lost(study, CONFIGS[:3], is_label=_is_label) == 1
    again = study.get_trials()[-1]
    assert again.state == TrialState.WAITING and again.user_attrs[DESIGN_INDEX_ATTR] == 0
    assert design_progress(study, _is_label).lost == 0
    assert requeue_lost(study, CONFIGS[:3], is_label=_is_label) == 0  # nothing lost now
    claimed = claim_trial(study)
    assert claimed is not None and {**claimed.fixed_params, **claimed.params} == {"x": 0.1}


def test_a_journal_trial_whose_claimer_died_before_naming_itself_is_retried(
    tmp_path, monkeypatch
) -> None:
    storage = resolve_storage(tmp_path / "s.journal")
    study = open_design_study(storage, "design", CONFIGS[:1], is_label=_is_label)
    assert study is not None
    # A claim is two writes in a journal (the state, then the name); the claimer died
    # between them.
    storage.set_trial_state_values(study.get_trials()[0]._trial_id, state=TrialState.RUNNING)
    recover_stale_trials(study)
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]  # just claimed
    monkeypatch.setattr(design_module, "_UNNAMED_GRACE", 0.0)
    assert design_progress(study, _is_label).orphaned == 1
    recover_stale_trials(study)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]
