"""Studies that run a fixed design of configurations, shared by many worker processes.

A *design study* is an Optuna study whose trials are a list of configurations fixed
before any of them runs, enqueued once as waiting trials. Workers, in any number of
processes on any number of machines that open the same storage, take waiting trials one
at a time; taking one is a single state change from WAITING to RUNNING that the storage
grants to exactly one process (a row lock in a database, the log order in a journal
file). Hence the budget holds exactly: a study ends with one finished trial per design
point, whatever the number of workers, and no configuration runs twice.

A worker that dies (out of memory, ``kill -9``, a lost machine) stops sending heartbeats;
once the grace period has passed, the next worker that looks at the study marks the trial
failed and enqueues its configuration again, once (see
:func:`~metarec_classic.tuning.resolve_storage`). Heartbeats need a database storage: in a
journal file the trial of a dead worker stays RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from metarec_classic.exceptions import TuningError
from metarec_classic.tuning._storage import backend_of

__all__ = [
    "DESIGN_INDEX_ATTR",
    "WORKER_ATTR",
    "DesignProgress",
    "claim_trial",
    "design_progress",
    "heartbeats_enabled",
    "hold_threads",
    "open_design_study",
    "recover_stale_trials",
    "run_claimed_trial",
    "worker_threads",
]

_log = logging.getLogger(__name__)

#: User attribute of every design trial: its position in the design.
DESIGN_INDEX_ATTR = "design_index"
#: User attribute naming the process that claimed a trial (``host:pid``).
WORKER_ATTR = "worker"
#: Study attributes: the design size once it is fully enqueued, and when enqueuing began.
_DESIGN_SIZE_ATTR = "design_size"
_DESIGN_STARTED_ATTR = "design_started"
#: Seconds after which a design left half-enqueued (its process died) is completed by
#: another process.
ENQUEUE_GRACE = 60.0


@dataclass(frozen=True)
class DesignProgress:
    """Trial counts of one design study.

    ``finished`` counts design points with a label (a completed trial, or one that failed
    with a recorded reason); ``retried`` counts trials whose process died and whose
    configuration was enqueued again.
    """

    budget: int
    finished: int
    running: int
    waiting: int
    retried: int

    @property
    def done(self) -> bool:
        return self.budget > 0 and self.finished >= self.budget


def open_design_study(
    storage: BaseStorage,
    study_name: str,
    configs: Sequence[dict[str, Any]],
    *,
    is_label: Callable[[optuna.trial.FrozenTrial], bool],
    space: Mapping[str, BaseDistribution] | None = None,
) -> optuna.Study | None:
    """Return the study with ``configs`` enqueued exactly once, creating it if needed.

    Creating a study is the one step the storage grants to a single process (names are
    unique), so the process that creates it is the one that enqueues the design. Returns
    ``None`` while another process is still enqueuing; call again later.

    With ``space`` (the distributions of the configurations' parameters), each waiting
    trial is stored with its parameters already set, so running it asks the storage
    nothing per parameter: a database round trip saved per parameter and trial.
    """
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage)
        if _DESIGN_SIZE_ATTR in study.user_attrs:
            size = int(study.user_attrs[_DESIGN_SIZE_ATTR])
            if size != len(configs):
                raise TuningError(
                    f"The study {study_name!r} was built with a design of {size} "
                    f"configurations, not {len(configs)}; every process of a build must use "
                    f"the same design (the same --configs, here {size}), or use another "
                    "storage for the new design."
                ) from None
            return study
        started = study.user_attrs.get(_DESIGN_STARTED_ATTR)
        if started is not None and time.time() - float(started) < ENQUEUE_GRACE:
            return None
        # The creator died while enqueuing. One process, the one that creates the repair
        # study, enqueues the design points that have no trial yet.
        try:
            optuna.create_study(study_name=f"{study_name}|repair", storage=storage)
        except DuplicatedStudyError:
            return None
        _enqueue(study, configs, space, skip=_design_indices(study, is_label=None))
        return study
    study.set_user_attr(_DESIGN_STARTED_ATTR, time.time())
    _enqueue(study, configs, space, skip=set())
    return study


def _enqueue(
    study: optuna.Study,
    configs: Sequence[dict[str, Any]],
    space: Mapping[str, BaseDistribution] | None,
    skip: set[int],
) -> None:
    pending = [(index, config) for index, config in enumerate(configs) if index not in skip]
    backend = backend_of(study._storage)
    if space is not None and isinstance(backend, RDBStorage):
        _insert_waiting_trials(backend, study._study_id, pending, space)
    else:
        for index, config in pending:
            study.add_trial(_waiting_trial(index, config, space))
    study.set_user_attr(_DESIGN_SIZE_ATTR, len(configs))


def _waiting_trial(
    index: int, config: dict[str, Any], space: Mapping[str, BaseDistribution] | None
) -> optuna.trial.FrozenTrial:
    """The waiting trial of design point ``index``, with its parameters stored if it can."""
    attrs = {DESIGN_INDEX_ATTR: index}
    known = {name: value for name, value in config.items() if space and name in space}
    return optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=known,
        distributions={name: space[name] for name in known} if space else {},
        user_attrs=attrs,
        # Values outside ``space`` go through Optuna's own queue marker (retries copy it);
        # stored parameters need none, which saves a write per trial.
        system_attrs={} if len(known) == len(config) else {"fixed_params": dict(config)},
    )


def _insert_waiting_trials(
    storage: RDBStorage,
    study_id: int,
    pending: Sequence[tuple[int, dict[str, Any]]],
    space: Mapping[str, BaseDistribution],
) -> None:
    """Write the waiting trials of a design into a database in one transaction.

    ``Study.add_trial`` costs one transaction of about ten statements per trial (it reads
    the trial back before each parameter), over a quarter of a label trial's storage cost
    on PostgreSQL. This writes the same rows as ``add_trial`` would, through the table
    models of Optuna's relational storage (not a public interface: the tests compare the
    trials read back with those ``add_trial`` writes). The study row is locked as Optuna
    locks it to number new trials, so concurrent writers number theirs after these.
    """
    # Imported here: SQLAlchemy loads only when a database storage is used.
    import sqlalchemy
    import sqlalchemy.orm
    from optuna.storages._rdb import models

    trials = [_waiting_trial(index, config, space) for index, config in pending]
    with sqlalchemy.orm.Session(storage.engine) as session, session.begin():
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        first = session.scalar(
            sqlalchemy.select(sqlalchemy.func.count(models.TrialModel.trial_id)).where(
                models.TrialModel.study_id == study_id
            )
        )
        rows = [
            models.TrialModel(study_id=study_id, number=int(first or 0) + k, state=t.state)
            for k, t in enumerate(trials)
        ]
        session.add_all(rows)
        session.flush()  # assigns the trial ids, in order
        for row, trial in zip(rows, trials, strict=True):
            session.add_all(
                [
                    *(
                        models.TrialParamModel(
                            trial_id=row.trial_id,
                            param_name=name,
                            param_value=trial.distributions[name].to_internal_repr(value),
                            distribution_json=distribution_to_json(trial.distributions[name]),
                        )
                        for name, value in trial.params.items()
                    ),
                    *(
                        models.TrialUserAttributeModel(
                            trial_id=row.trial_id, key=key, value_json=json.dumps(value)
                        )
                        for key, value in trial.user_attrs.items()
                    ),
                    *(
                        models.TrialSystemAttributeModel(
                            trial_id=row.trial_id, key=key, value_json=json.dumps(value)
                        )
                        for key, value in trial.system_attrs.items()
                    ),
                ]
            )


def _design_indices(
    study: optuna.Study, is_label: Callable[[optuna.trial.FrozenTrial], bool] | None
) -> set[int]:
    """Design indices that have a trial (with ``is_label``: a labelling trial)."""
    return {
        int(t.user_attrs[DESIGN_INDEX_ATTR])
        for t in study.get_trials(deepcopy=False)
        if DESIGN_INDEX_ATTR in t.user_attrs and (is_label is None or is_label(t))
    }


def claim_trial(study: optuna.Study, after: int = -1) -> optuna.Trial | None:
    """Take one waiting trial of ``study`` for this process, or ``None`` if none is left.

    The change from WAITING to RUNNING succeeds for exactly one process; a trial another
    process took first is skipped. The claimed trial gets its first heartbeat at once and
    then the user attribute ``worker`` (``host:pid``), in that order: a running trial
    without ``worker`` may have no heartbeat, and :func:`recover_stale_trials` judges it
    by its start time instead.

    Trials are tried in the order of their numbers, from ``after + 1``: a loop that
    passes the number of the trial it claimed last skips the trials it has already seen
    taken (a trial never returns to WAITING). Each try reads one trial id and attempts
    one state change, instead of reading every waiting trial whole.
    """
    storage = study._storage
    study_id = study._study_id
    number = after
    while True:
        number += 1
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        except KeyError:  # past the last trial
            return None
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        if heartbeats_enabled(storage):
            storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
        trial = optuna.Trial(study, trial_id)
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        return trial


def run_claimed_trial(
    study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float]
) -> TrialState:
    """Run ``objective`` on a claimed trial, sending heartbeats, and record its outcome.

    An exception from the objective fails the trial (the objective records why); a
    ``KeyboardInterrupt`` fails it too and is raised again.
    """
    with _heartbeat(study._storage, trial._trial_id):
        try:
            value = objective(trial)
        except KeyboardInterrupt:
            # The configuration said nothing wrong: fail the trial and queue it again, so
            # that the next run of the build runs it.
            study.tell(trial, state=TrialState.FAIL)
            _queue_again(study, study._storage.get_trial(trial._trial_id))
            raise
        except Exception as err:
            _log.debug("Trial %d of %s failed: %s", trial.number, study.study_name, err)
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
    # The storage's own call: Study.tell reads the trial back twice to check what this
    # function already knows (a running trial of this study, one finite value).
    study._storage.set_trial_state_values(
        trial._trial_id, state=TrialState.COMPLETE, values=[float(value)]
    )
    return TrialState.COMPLETE


def _queue_again(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """Enqueue the configuration of a trial that failed for its process, linked to it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback()(study, failed)


def recover_stale_trials(study: optuna.Study) -> None:
    """Fail the running trials whose process died, and enqueue each configuration again once.

    A trial is stale when its heartbeat is older than the storage's grace period, or,
    for a trial whose process died between claiming it and its first heartbeat (it has
    no ``worker`` attribute), when it started longer ago than the grace period.
    """
    storage: Any = study._storage
    if not heartbeats_enabled(storage):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    grace = _grace_seconds(storage)
    now = datetime.now()
    retry = storage.get_heartbeat_stale_trial_callback()
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = frozen.datetime_start
        if WORKER_ATTR in frozen.user_attrs or started is None:
            continue
        if (now - started).total_seconds() <= grace:
            continue
        try:
            won = storage.set_trial_state_values(frozen._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        if won and retry is not None:
            retry(study, storage.get_trial(frozen._trial_id))


def design_progress(
    study: optuna.Study, is_label: Callable[[optuna.trial.FrozenTrial], bool]
) -> DesignProgress:
    """Count the design points of ``study`` that are finished, running and waiting."""
    trials = study.get_trials(deepcopy=False)
    budget = int(study.user_attrs.get(_DESIGN_SIZE_ATTR, 0))
    finished = {t.user_attrs.get(DESIGN_INDEX_ATTR, t.number) for t in trials if is_label(t)}
    return DesignProgress(
        budget=budget,
        finished=len(finished),
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
        retried=sum("failed_trial" in t.system_attrs for t in trials),
    )


# -- threads -------------------------------------------------------------------------------
def worker_threads(n_workers: int, n_cpus: int | None = None) -> int:
    """Threads each of ``n_workers`` processes may use so that together they fill the cores.

    The cores are split evenly (rounded down, at least one each): 2 workers on 2 cores get
    one thread each, 1 worker gets both.
    """
    cpus = n_cpus if n_cpus is not None else (os.cpu_count() or 1)
    return max(1, cpus // max(1, n_workers))


_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@contextlib.contextmanager
def hold_threads(n_threads: int) -> Iterator[None]:
    """Hold BLAS and OpenMP to ``n_threads`` in this process (and the processes it starts)."""
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: str(n_threads) for name in _THREAD_VARIABLES})
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- heartbeats ----------------------------------------------------------------------------
def heartbeats_enabled(storage: BaseStorage) -> bool:
    """Whether trials in ``storage`` send heartbeats (database storages opened by metarec).

    Studies wrap a database storage in a cache that forwards heartbeats, so the test is
    on the methods rather than the class.
    """
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None and hasattr(storage, "record_heartbeat")


def _grace_seconds(storage: BaseStorage) -> float:
    """The storage's grace period (Optuna's rule: twice the interval when unset)."""
    backend = backend_of(storage)
    grace = getattr(backend, "grace_period", None)
    return float(grace) if grace else 2.0 * float(storage.get_heartbeat_interval() or 1)  # type: ignore[attr-defined]


@contextlib.contextmanager
def _heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Record a heartbeat for ``trial_id`` now and then every interval until the block ends."""
    if not heartbeats_enabled(storage):
        yield
        return
    beating: Any = storage
    interval = float(beating.get_heartbeat_interval() or 1)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                beating.record_heartbeat(trial_id)
            except Exception as err:  # a lost server must not kill the trial's thread
                _log.warning("Could not record a heartbeat: %s", err)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
