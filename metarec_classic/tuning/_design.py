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
:func:`~metarec_classic.tuning.resolve_storage`). Heartbeats need a database storage; in a
journal file a worker is known dead when it ran on this host and its process is gone, so
the trial of a dead worker on another machine stays RUNNING.

A design point whose every try died has no label and nothing left to run: it is *lost*.
:func:`design_progress` counts such points and :func:`requeue_lost` gives each one more try.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
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
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from metarec_classic.exceptions import TuningError
from metarec_classic.tuning._storage import backend_of

__all__ = [
    "DESIGN_INDEX_ATTR",
    "WORKER_ATTR",
    "ClaimedTrial",
    "DesignProgress",
    "claim_trial",
    "design_progress",
    "heartbeats_enabled",
    "hold_threads",
    "open_design_study",
    "recover_stale_trials",
    "requeue_lost",
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
#: When this process first found each design study without its start time.
_first_seen_unstarted: dict[tuple[int, str], float] = {}


@dataclass(frozen=True)
class DesignProgress:
    """Trial counts of one design study.

    ``finished`` counts design points with a label (a completed trial, or one that failed
    with a recorded reason); ``retried`` counts trials whose process died and whose
    configuration was enqueued again; ``lost`` counts design points without a label and
    with no trial left waiting or running: every try died (out of memory, say), so no
    worker will label them unless :func:`requeue_lost` queues them again. ``orphaned``
    counts the running trials (included in ``running``) of workers of this host whose
    process is gone: nobody runs them until they are recovered.
    """

    budget: int
    finished: int
    running: int
    waiting: int
    retried: int
    lost: int = 0
    orphaned: int = 0

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
        if started is None:
            # Created an instant ago (its creator writes the start time next), or by a
            # creator that died before writing it: the grace runs from when this process
            # first saw the study so.
            started = _first_seen_unstarted.setdefault(
                (id(backend_of(storage)), study_name), time.time()
            )
        if time.time() - float(started) < ENQUEUE_GRACE:
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


@dataclass(frozen=True)
class ClaimedTrial:
    """A waiting trial that this process took: where it is and the configuration it holds.

    ``params`` are the parameters stored with the trial and ``fixed_params`` those queued
    through Optuna's marker (values outside the search space, retried trials); the
    objective sees both, stored ones first.
    """

    trial_id: int
    number: int
    params: dict[str, Any]
    fixed_params: dict[str, Any]


def claim_trial(study: optuna.Study, after: int = -1) -> ClaimedTrial | None:
    """Take one waiting trial of ``study`` for this process, or ``None`` if it finds none.

    In PostgreSQL a trial that another process is taking at that very moment is passed
    over, so ``None`` can come while such a trial is still waiting (its taker failed);
    a build's final pass over unfinished studies runs it.

    The change from WAITING to RUNNING succeeds for exactly one process; a trial another
    process took first is skipped. The claimed trial carries the user attribute
    ``worker`` (``host:pid``) and, in a storage with heartbeats, its first heartbeat.

    Trials are tried in the order of their numbers, from ``after + 1``: a loop that
    passes the number of the trial it claimed last skips the trials it has already seen
    taken (a trial never returns to WAITING).

    In PostgreSQL and SQLite the claim is one transaction (state, first heartbeat,
    worker and the trial's parameters together), so a running trial always has a
    heartbeat to judge it by; other storages go through their public calls one by one.
    """
    database = _direct(study._storage)
    if database is not None:
        return _claim_in_database(database, study._study_id, after)
    storage = study._storage
    number = after
    while True:
        number += 1
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        except KeyError:  # past the last trial
            return None
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        if heartbeats_enabled(storage):
            storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
        storage.set_trial_user_attr(trial_id, WORKER_ATTR, _worker_name())
        frozen = storage.get_trial(trial_id)
        return ClaimedTrial(
            trial_id=trial_id,
            number=frozen.number,
            params=dict(frozen.params),
            fixed_params=dict(frozen.system_attrs.get("fixed_params", {})),
        )


def run_claimed_trial(
    study: optuna.Study,
    claimed: ClaimedTrial,
    objective: Callable[[optuna.trial.BaseTrial], float],
) -> TrialState:
    """Run ``objective`` on a claimed trial, sending heartbeats, and record its outcome.

    The objective gets the trial's configuration as an :class:`optuna.trial.FixedTrial`:
    it asks for parameters and sets user attributes as usual, and everything it recorded
    is written together with the outcome (one transaction in PostgreSQL and SQLite). An
    exception from the objective, or a NaN, fails the trial (the objective records why); a
    ``KeyboardInterrupt`` fails it too, queues its configuration again and is raised
    again. Returns the state recorded, FAIL also when the trial had already been failed
    because its heartbeat stopped (its configuration then runs again elsewhere).
    """
    trial = optuna.trial.FixedTrial(
        {**claimed.fixed_params, **claimed.params}, number=claimed.number
    )
    state, value = TrialState.COMPLETE, None
    with _heartbeats.keep_alive(study._storage, claimed.trial_id):
        try:
            value = float(objective(trial))
        except KeyboardInterrupt:
            # The configuration said nothing wrong: fail the trial and queue it again, so
            # that the next run of the build runs it. Not as a retry: a stop asked for
            # (Ctrl-C, SIGTERM) must not spend the one retry a dying worker gets.
            if _finish(study, claimed, trial, TrialState.FAIL, None):
                _queue_unchanged(study, study._storage.get_trial(claimed.trial_id))
            raise
        except Exception as err:
            _log.debug("Trial %d of %s failed: %s", claimed.number, study.study_name, err)
            state = TrialState.FAIL
    if value is not None and math.isnan(value):  # as Study.tell: NaN fails the trial
        _log.debug("Trial %d of %s returned NaN.", claimed.number, study.study_name)
        state, value = TrialState.FAIL, None
    if not _finish(study, claimed, trial, state, value):
        _log.warning(
            "Trial %d of %s ran after it had been marked failed (no heartbeat for longer "
            "than the grace period); its result is dropped and its configuration runs "
            "again.",
            claimed.number,
            study.study_name,
        )
        return TrialState.FAIL
    return state


def _finish(
    study: optuna.Study,
    claimed: ClaimedTrial,
    trial: optuna.trial.FixedTrial,
    state: TrialState,
    value: float | None,
) -> bool:
    """Record what the objective set and the trial's outcome; ``False`` if already finished.

    Parameters the objective asked for that the trial did not store yet (values queued
    through Optuna's marker) are stored with their distributions, as a running
    :class:`optuna.Trial` stores them.
    """
    new_params = {
        name: (trial.distributions[name], chosen)
        for name, chosen in trial.params.items()
        if name not in claimed.params
    }
    database = _direct(study._storage)
    if database is not None:
        return _finish_in_database(database, claimed, new_params, trial.user_attrs, state, value)
    storage = study._storage
    try:
        for name, (distribution, external) in new_params.items():
            storage.set_trial_param(
                claimed.trial_id, name, distribution.to_internal_repr(external), distribution
            )
        for key, attr in trial.user_attrs.items():
            storage.set_trial_user_attr(claimed.trial_id, key, attr)
        storage.set_trial_state_values(
            claimed.trial_id, state=state, values=None if value is None else [value]
        )
    except UpdateFinishedTrialError:
        return False
    return True


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- the same two steps in one transaction each, for database storages ----------------------
# Optuna's relational storage spends a transaction per call (about twenty statements and six
# commits per trial through its public calls). These write the rows its calls would write,
# through the table models of ``optuna.storages._rdb.models`` (not a public interface: the
# tests compare the trials read back with those Optuna's own calls leave). The statements
# are built once: building them costs more client time than running them.


#: Databases whose SQL the statements below are written in (ON CONFLICT, RETURNING, and an
#: UPDATE that selects from its own table); others go through Optuna's calls.
_DIRECT_DIALECTS = ("postgresql", "sqlite")


def _direct(storage: BaseStorage) -> RDBStorage | None:
    """The database storage behind ``storage`` if its trials can be written directly."""
    backend = backend_of(storage)
    if isinstance(backend, RDBStorage) and backend.engine.dialect.name in _DIRECT_DIALECTS:
        return backend
    return None


@functools.cache
def _statements(dialect: str) -> dict[str, Any]:
    import sqlalchemy as sa
    from optuna.storages._rdb import models
    from sqlalchemy.dialects import postgresql, sqlite

    trials = models.TrialModel.__table__
    params = models.TrialParamModel.__table__
    system = models.TrialSystemAttributeModel.__table__
    attrs = models.TrialUserAttributeModel.__table__
    of_trial: Any = sa.bindparam("of_trial")
    # The first waiting trial after ``after``, taken in one statement. SKIP LOCKED lets
    # workers pass over a row another one is taking (where the database knows it); the
    # guard on the state decides who wins where it does not.
    first_waiting = (
        sa.select(trials.c.trial_id)
        .where(
            trials.c.study_id == sa.bindparam("of_study"),
            trials.c.state == TrialState.WAITING,
            trials.c.number > sa.bindparam("after_number"),
        )
        .order_by(trials.c.number)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(attrs)
    set_attrs = insert.on_conflict_do_update(
        index_elements=[attrs.c.trial_id, attrs.c.key],
        set_={"value_json": insert.excluded.value_json},
    )
    return {
        "claim": sa.update(trials)
        .where(trials.c.trial_id == first_waiting, trials.c.state == TrialState.WAITING)
        .values(state=TrialState.RUNNING, datetime_start=sa.bindparam("now"))
        .returning(trials.c.trial_id, trials.c.number),
        "heartbeat": sa.insert(models.TrialHeartbeatModel.__table__),
        "params": sa.select(
            params.c.param_name, params.c.param_value, params.c.distribution_json
        ).where(params.c.trial_id == of_trial),
        "fixed_params": sa.select(system.c.value_json).where(
            system.c.trial_id == of_trial, system.c.key == "fixed_params"
        ),
        "finish": sa.update(trials)
        .where(trials.c.trial_id == of_trial, trials.c.state == TrialState.RUNNING)
        .values(state=sa.bindparam("new_state"), datetime_complete=sa.bindparam("now")),
        "value": sa.insert(models.TrialValueModel.__table__),
        "param": sa.insert(params),
        "set_attrs": set_attrs,
    }


def _claim_in_database(storage: RDBStorage, study_id: int, after: int) -> ClaimedTrial | None:
    statements = _statements(storage.engine.dialect.name)
    with storage.engine.begin() as connection:
        row = connection.execute(
            statements["claim"],
            {"of_study": study_id, "after_number": after, "now": datetime.now()},
        ).first()
        if row is None:
            return None
        trial_id = int(row.trial_id)
        if storage.heartbeat_interval is not None:
            connection.execute(statements["heartbeat"], [{"trial_id": trial_id}])
        # A retried trial carries the worker of the trial it repeats: replace it.
        _set_user_attrs(connection, statements, trial_id, {WORKER_ATTR: _worker_name()})
        params = {}
        for name, internal, stored in connection.execute(
            statements["params"], {"of_trial": trial_id}
        ):
            params[name] = json_to_distribution(stored).to_external_repr(internal)
        fixed = connection.execute(statements["fixed_params"], {"of_trial": trial_id}).scalar()
    return ClaimedTrial(
        trial_id=trial_id,
        number=int(row.number),
        params=params,
        fixed_params=json.loads(fixed) if fixed is not None else {},
    )


def _finish_in_database(
    storage: RDBStorage,
    claimed: ClaimedTrial,
    new_params: Mapping[str, tuple[BaseDistribution, Any]],
    user_attrs: Mapping[str, Any],
    state: TrialState,
    value: float | None,
) -> bool:
    from optuna.storages._rdb import models

    statements = _statements(storage.engine.dialect.name)
    trial_id = claimed.trial_id
    with storage.engine.begin() as connection:
        # The guarded state change comes first: it takes the row lock that stale-trial
        # recovery also takes, so a trial is finished by one of the two, never by both.
        won = connection.execute(
            statements["finish"], {"of_trial": trial_id, "new_state": state, "now": datetime.now()}
        ).rowcount
        if not won:
            return False
        if value is not None:
            stored, value_type = models.TrialValueModel.value_to_stored_repr(value)
            row = {"trial_id": trial_id, "objective": 0, "value": stored, "value_type": value_type}
            connection.execute(statements["value"], [row])
        if new_params:
            rows = [
                {
                    "trial_id": trial_id,
                    "param_name": name,
                    "param_value": distribution.to_internal_repr(external),
                    "distribution_json": distribution_to_json(distribution),
                }
                for name, (distribution, external) in new_params.items()
            ]
            connection.execute(statements["param"], rows)
        if user_attrs:
            _set_user_attrs(connection, statements, trial_id, user_attrs)
    return True


def _set_user_attrs(
    connection: Any, statements: dict[str, Any], trial_id: int, attrs: Mapping[str, Any]
) -> None:
    """Set user attributes of a trial, replacing those it has, as Optuna's call does."""
    rows = [
        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        for key, value in attrs.items()
    ]
    connection.execute(statements["set_attrs"], rows)


def _queue_unchanged(study: optuna.Study, stopped: optuna.trial.FrozenTrial) -> None:
    """Enqueue the configuration of a trial stopped on request, as a fresh design point."""
    config = {**stopped.system_attrs.get("fixed_params", {}), **stopped.params}
    index = stopped.user_attrs[DESIGN_INDEX_ATTR]
    study.add_trial(_waiting_trial(index, config, stopped.distributions))


def _queue_again(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """Enqueue the configuration of a trial that failed for its process, linked to it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback()(study, failed)


def recover_stale_trials(study: optuna.Study) -> None:
    """Fail the running trials whose process died, and enqueue each configuration again once.

    With heartbeats (a database), a trial is stale when its heartbeat is older than the
    storage's grace period. A claimed trial has its first heartbeat from the moment it
    runs (both are written in the claim's transaction), so a process that dies at any
    point leaves a trial that this finds. Without heartbeats (a journal file), a running
    trial is stale when the worker that claimed it ran on this host and its process no
    longer exists, or when it never got its worker's name (its claimer died between the
    two writes of a claim); trials of live or remote workers are left as they are.
    """
    if heartbeats_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _orphaned(trial):
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another process failed it first, and queued it
        if "failed_trial" not in trial.system_attrs:  # once, as with heartbeats
            _queue_again(study, study._storage.get_trial(trial._trial_id))


#: Seconds after which a running trial that never got its worker's name is taken as the
#: trial of a process that died while claiming it (a journal writes the name separately,
#: an instant after the state).
_UNNAMED_GRACE = 60.0


def _orphaned(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether running ``trial`` has nobody running it (see :func:`recover_stale_trials`)."""
    return _died_on_this_host(trial.user_attrs.get(WORKER_ATTR)) or _never_named(trial)


def _never_named(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` has run without a worker's name for longer than a claim takes."""
    if WORKER_ATTR in trial.user_attrs or trial.datetime_start is None:
        return False
    return (datetime.now() - trial.datetime_start).total_seconds() > _UNNAMED_GRACE


def _died_on_this_host(worker: object) -> bool:
    """Whether ``worker`` (``host:pid``) names a process of this host that is gone."""
    host, _, pid = str(worker).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    return False


def requeue_lost(
    study: optuna.Study,
    configs: Sequence[dict[str, Any]],
    *,
    is_label: Callable[[optuna.trial.FrozenTrial], bool],
    space: Mapping[str, BaseDistribution] | None = None,
) -> int:
    """Queue each lost design point of ``study`` (see :class:`DesignProgress`) once more.

    ``configs`` is the study's design, as given to :func:`open_design_study`. Returns how
    many points were queued. Two processes that call this on the same study at the same
    moment may both queue a point; the build's export keeps one label per point.
    """
    lost = _lost_points(study.get_trials(deepcopy=False), is_label)
    if lost:
        _enqueue(study, configs, space, skip=set(range(len(configs))) - lost)
    return len(lost)


def _lost_points(
    trials: Sequence[optuna.trial.FrozenTrial],
    is_label: Callable[[optuna.trial.FrozenTrial], bool],
) -> set[int]:
    """Design indices with a trial, no label, and nothing waiting or running."""
    tried: set[int] = set()
    settled: set[int] = set()
    for trial in trials:
        if DESIGN_INDEX_ATTR not in trial.user_attrs:
            continue
        index = int(trial.user_attrs[DESIGN_INDEX_ATTR])
        tried.add(index)
        if is_label(trial) or trial.state in (TrialState.RUNNING, TrialState.WAITING):
            settled.add(index)
    return tried - settled


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
        lost=len(_lost_points(trials, is_label)),
        orphaned=sum(t.state == TrialState.RUNNING and _orphaned(t) for t in trials),
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


class _Heartbeats:
    """One thread per process that keeps the heartbeats of the process's running trials fresh.

    A thread per trial would cost two thread switches per trial (starting it and joining
    it), which on a busy machine outweigh the rest of a short trial's storage cost. This
    thread wakes every ``tick`` seconds and beats each registered trial whose last beat is
    older than its storage's interval; the first beat is written when the trial is claimed.
    """

    tick = 0.25

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trials: dict[tuple[int, int], tuple[Any, float, float]] = {}
        self._thread_pid: int | None = None

    @contextlib.contextmanager
    def keep_alive(self, storage: BaseStorage, trial_id: int) -> Iterator[None]:
        """Beat for ``trial_id`` until the block ends (nothing without heartbeats)."""
        if not heartbeats_enabled(storage):
            yield
            return
        beating: Any = storage
        key = (id(storage), trial_id)
        with self._lock:
            self._trials[key] = (beating, float(beating.get_heartbeat_interval()), time.monotonic())
            if self._thread_pid != os.getpid():  # not started yet, or a forked child
                self._thread_pid = os.getpid()
                threading.Thread(target=self._run, name="heartbeats", daemon=True).start()
        try:
            yield
        finally:
            with self._lock:
                self._trials.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                due = [
                    (key, storage, interval)
                    for key, (storage, interval, last) in self._trials.items()
                    if now - last >= interval
                ]
            for key, storage, interval in due:
                try:
                    storage.record_heartbeat(key[1])
                except Exception as err:  # a lost server must not end the thread
                    _log.warning("Could not record a heartbeat: %s", err)
                with self._lock:
                    if key in self._trials:
                        self._trials[key] = (storage, interval, now)


_heartbeats = _Heartbeats()
