"""Build meta-training labels with one or many worker processes sharing one storage.

Every (task, algorithm) pair is a design study (see
:mod:`metarec_classic.tuning._design`): its configurations are fixed before the build and
enqueued once, and workers take them one at a time through the storage alone. So a
build may be spread over processes and machines that know nothing of each other beyond
the storage URL, each study ends with exactly its budget of trials, and the labels are
the same whether 1 or 40 workers built them.

Threads: each of the ``workers`` processes on a machine holds BLAS and OpenMP to
``cpu_count // workers`` threads (at least one), so that N workers never oversubscribe
the cores. The trials themselves fit with one thread (models and BLAS) whatever the
share: several models give different results for different thread counts (lock-free
parallel SGD in BPR and LMF, BLAS summation order in a near-singular truncated SVD), and
a label must be a function of the task and configuration alone. A build therefore uses
the cores through its workers; run as many workers as cores.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.trial import TrialState

from metarec_classic.data import Interactions, load_dataset
from metarec_classic.exceptions import MetarecError, MetarecWarning, Terminated, TuningError
from metarec_classic.meta._corpus import Task, _stable_seed
from metarec_classic.meta._labels import (
    CUT_ATTR,
    LabelSet,
    _is_label,
    _load_study,
    _record_task,
    _study_name,
    _task_split,
    design_configs,
    design_size,
    export_labels,
    task_caps,
)
from metarec_classic.recommenders import ALGORITHM_NAMES, get_recommender_class
from metarec_classic.tuning import (
    DesignProgress,
    claim_trial,
    design_progress,
    heartbeats_enabled,
    hold_threads,
    make_objective,
    open_design_study,
    recover_stale_trials,
    requeue_lost,
    resolve_storage,
    run_claimed_trial,
    storage_errors,
    worker_threads,
)
from metarec_classic.tuning._tune import quiet_optuna

__all__ = ["BuildStatus", "build_labels", "build_status", "run_worker"]

_log = logging.getLogger(__name__)

#: Seconds between looks at the storage while waiting for other workers' trials.
_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class BuildStatus:
    """How far a label build has come, read from its storage.

    ``trials_per_second`` is measured over the last ten minutes of finished trials, by
    every worker together; ``eta_seconds`` extrapolates it to the trials left.
    ``trials_lost`` counts configurations no worker will label: every try died (see
    :class:`~metarec_classic.tuning.DesignProgress`); the build retries them when rerun
    with ``retry_lost=True``. ``trials_running`` leaves out ``trials_orphaned``, the trials
    of workers of this host that are gone (a rerun runs them again). With nothing running,
    no estimate of the time left is given: the build has stopped.
    """

    studies_total: int
    studies_done: int
    trials_budget: int
    trials_finished: int
    trials_running: int
    trials_retried: int
    trials_lost: int
    trials_orphaned: int
    trials_per_second: float
    eta_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "studies_done": self.studies_done,
            "studies_total": self.studies_total,
            "trials_finished": self.trials_finished,
            "trials_budget": self.trials_budget,
            "trials_running": self.trials_running,
            "trials_retried": self.trials_retried,
            "trials_lost": self.trials_lost,
            "trials_orphaned": self.trials_orphaned,
            "trials_per_second": round(self.trials_per_second, 3),
            "eta_seconds": None if math.isinf(self.eta_seconds) else round(self.eta_seconds),
        }


def build_labels(
    tasks: Sequence[Task],
    *,
    algorithms: Sequence[str] = ALGORITHM_NAMES,
    n_configs: int = 10,
    storage: str | os.PathLike[str] | BaseStorage | None = None,
    workers: int = 1,
    loader: Callable[[str], Interactions] = load_dataset,
    landmark_seconds: float = 10.0,
    show_progress: bool = False,
    retry_lost: bool = False,
) -> LabelSet:
    """Run the design of every (task, algorithm) pair and return the labels.

    Parameters
    ----------
    tasks : sequence of Task
        The tasks, e.g. from :func:`~metarec_classic.meta.make_tasks`.
    algorithms : sequence of str
        Algorithms to label.
    n_configs : int, default=10
        Configurations per (task, algorithm): the default plus ``n_configs - 1`` design
        points (one for algorithms without parameters).
    storage : str, path or optuna storage, optional
        Where the studies live: a journal file resumes an interrupted build; a database
        URL (PostgreSQL) lets processes on several machines build together and recovers
        the trials of workers that died. In memory when omitted (``workers=1`` only).
    workers : int, default=1
        Worker processes started on this machine; with 1 the build runs in this process.
        Running the same build on another machine, against the same storage URL, adds its
        workers to the build.
    loader : callable, default=load_dataset
        Turns a task's dataset name into :class:`~metarec_classic.data.Interactions`; with
        several workers it must be importable by name (a module-level function).
    landmark_seconds : float, default=10.0
        Time cap of the landmarkers in each task's meta-features.
    show_progress : bool, default=False
        A line on stderr per finished study and a progress bar over the whole build
        (every worker on every machine), read from the storage.
    retry_lost : bool, default=False
        Queue once more, before the workers start, each configuration whose every try
        died (its worker ran out of memory, say). Without it such configurations stay
        unlabelled, and the labels' provenance and a warning count them.

    Returns
    -------
    LabelSet
    """
    if workers < 1:
        raise ValueError(f"`workers` must be at least 1, got {workers!r}.")
    shared = isinstance(storage, (str, os.PathLike))
    if workers > 1 and not shared:
        raise ValueError(
            "Several workers share their work through the storage: pass `storage` as a "
            "journal file path or a database URL, not an in-memory storage."
        )
    resolved = resolve_storage(storage)
    if resolved is None:
        resolved = InMemoryStorage()
    threads = worker_threads(workers)
    _log.info(
        "Building labels with %d worker(s) on %d core(s); each fit uses one thread, the "
        "meta-features %d.",
        workers,
        os.cpu_count() or 1,
        threads,
    )
    with storage_errors(storage):
        _check_designs(resolved, tasks, algorithms, n_configs)
        if retry_lost:
            _retry_lost(resolved, tasks, algorithms, n_configs)
    monitor = _Monitor(resolved, tasks, algorithms, n_configs, enabled=show_progress)
    monitor.start()
    try:
        _run_workers(
            resolved,
            os.fspath(storage) if shared else None,  # type: ignore[arg-type]
            tasks,
            algorithms,
            n_configs,
            loader,
            landmark_seconds,
            workers,
            threads,
        )
    finally:
        monitor.stop()
    with storage_errors(storage):
        return export_labels(resolved, tasks, algorithms=algorithms, n_configs=n_configs)


def run_worker(
    storage: str | os.PathLike[str] | BaseStorage,
    tasks: Sequence[Task],
    *,
    algorithms: Sequence[str] = ALGORITHM_NAMES,
    n_configs: int = 10,
    loader: Callable[[str], Interactions] = load_dataset,
    landmark_seconds: float = 10.0,
    n_threads: int = 1,
    worker_index: int = 0,
    n_workers: int = 1,
) -> int:
    """Take and run waiting trials of the build until none is left; return how many ran.

    The worker starts at its own place in the task list (``worker_index`` of
    ``n_workers``) so that workers begin on different datasets. Once it finds nothing
    more to take it still waits, with a database storage, for the trials other workers
    are running: if one of those workers dies, this one runs the trial again.
    """
    with storage_errors(storage):
        return _run_worker(
            storage,
            tasks,
            algorithms=algorithms,
            n_configs=n_configs,
            loader=loader,
            landmark_seconds=landmark_seconds,
            n_threads=n_threads,
            worker_index=worker_index,
            n_workers=n_workers,
        )


def _run_worker(
    storage: str | os.PathLike[str] | BaseStorage,
    tasks: Sequence[Task],
    *,
    algorithms: Sequence[str],
    n_configs: int,
    loader: Callable[[str], Interactions],
    landmark_seconds: float,
    n_threads: int,
    worker_index: int,
    n_workers: int,
) -> int:
    resolved = resolve_storage(storage)
    assert resolved is not None
    start = (worker_index * len(tasks)) // max(1, n_workers)
    order = list(tasks[start:]) + list(tasks[:start])
    cache: dict[str, Interactions] = {}
    ran = 0
    previous_level = quiet_optuna()
    try:
        with hold_threads(n_threads):
            for task in order:
                split = _task_split(task, cache, loader)
                _record_task(resolved, task, split, landmark_seconds)
                if split is None:
                    continue
                for algorithm in algorithms:
                    ran += _work_on(resolved, task, algorithm, split, n_configs)
            ran += _wait_for_others(resolved, order, algorithms, n_configs, cache, loader)
    finally:
        optuna.logging.set_verbosity(previous_level)
    return ran


def build_status(
    storage: str | os.PathLike[str] | BaseStorage,
    tasks: Sequence[Task],
    *,
    algorithms: Sequence[str] = ALGORITHM_NAMES,
    n_configs: int = 10,
) -> BuildStatus:
    """Read how far the build of ``tasks`` has come from ``storage``, without joining it."""
    with storage_errors(storage):
        resolved = resolve_storage(storage, existing=True)
        assert resolved is not None
        return _read_status(resolved, tasks, algorithms, n_configs)


def _read_status(
    resolved: BaseStorage, tasks: Sequence[Task], algorithms: Sequence[str], n_configs: int
) -> BuildStatus:
    skipped = _skipped_tasks(resolved, tasks)
    counts = _Counts()
    recent: list[datetime] = []
    now = datetime.now()
    for task in tasks:
        if task.task_id in skipped:
            continue
        for algorithm in algorithms:
            budget = design_size(algorithm, n_configs)
            study = _load_study(resolved, _study_name(task, algorithm))
            if study is None:
                counts.add(DesignProgress(budget, 0, 0, 0, 0, 0))
                continue
            progress = design_progress(study, _is_label)
            counts.add(replace(progress, budget=progress.budget or budget))
            recent += [
                t.datetime_complete
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.datetime_complete and now - t.datetime_complete < timedelta(minutes=10)
            ]
    rate = 0.0
    if len(recent) >= 2:
        span = (max(recent) - min(recent)).total_seconds()
        rate = (len(recent) - 1) / span if span > 0 else 0.0
    left = counts.budget - counts.finished - counts.lost
    running = counts.running - counts.orphaned
    eta = 0.0 if left <= 0 else (left / rate if rate > 0 and running > 0 else math.inf)
    return BuildStatus(
        studies_total=counts.studies,
        studies_done=counts.done,
        trials_budget=counts.budget,
        trials_finished=counts.finished,
        trials_running=running,
        trials_retried=counts.retried,
        trials_lost=counts.lost,
        trials_orphaned=counts.orphaned,
        trials_per_second=rate,
        eta_seconds=eta,
    )


# -- one study -----------------------------------------------------------------------------
def _work_on(
    storage: BaseStorage,
    task: Task,
    algorithm: str,
    split: tuple[Interactions, Interactions],
    n_configs: int,
) -> int:
    """Run waiting trials of one study until none is left; return how many ran."""
    design = _design(task, algorithm, n_configs)
    study = open_design_study(
        storage,
        _study_name(task, algorithm),
        design,
        is_label=_is_label,
        space=get_recommender_class(algorithm).search_space(),
    )
    if study is None:  # another process is enqueuing it right now
        return 0
    recover_stale_trials(study)
    objective = None
    ran = 0
    last = -1
    # Held once for the study, not per trial: holding costs about 2 ms (it inspects every
    # loaded BLAS and OpenMP library). See the module docstring: labels must not depend on
    # threads.
    with hold_threads(1):
        while (trial := claim_trial(study, after=last)) is not None:
            last = trial.number
            if objective is None:
                objective = make_objective(algorithm, *split, seed=task.seed, n_jobs=1)
            run_claimed_trial(study, trial, objective)
            ran += 1
    return ran


def _design(task: Task, algorithm: str, n_configs: int) -> list[dict[str, Any]]:
    """The configurations of the (task, algorithm) study, the same in every process."""
    return design_configs(algorithm, n_configs, seed=_stable_seed(f"{task.task_id}|{algorithm}"))


def _retry_lost(
    storage: BaseStorage, tasks: Sequence[Task], algorithms: Sequence[str], n_configs: int
) -> None:
    queued = 0
    for task in tasks:
        for algorithm in algorithms:
            study = _load_study(storage, _study_name(task, algorithm))
            if study is None:
                continue
            queued += requeue_lost(
                study,
                _design(task, algorithm, n_configs),
                is_label=_is_label,
                space=get_recommender_class(algorithm).search_space(),
            )
    if queued:
        _log.warning("Queued %d lost configuration(s) for one more try.", queued)


def _wait_for_others(
    storage: BaseStorage,
    tasks: Sequence[Task],
    algorithms: Sequence[str],
    n_configs: int,
    cache: dict[str, Interactions],
    loader: Callable[[str], Interactions],
) -> int:
    """Until every study is done, rerun the trials of workers that died (database only)."""
    if not heartbeats_enabled(storage):
        return 0
    ran = 0
    open_pairs = [(task, algorithm) for task in tasks for algorithm in algorithms]
    while open_pairs:
        still_open = []
        for task, algorithm in open_pairs:
            study = _load_study(storage, _study_name(task, algorithm))
            if study is None or _is_skipped(storage, task):
                continue
            progress = design_progress(study, _is_label)
            if progress.done:
                continue
            if progress.running or progress.waiting or not progress.budget:
                split = _task_split(task, cache, loader)
                if split is not None:
                    ran += _work_on(storage, task, algorithm, split, n_configs)
                still_open.append((task, algorithm))
        open_pairs = [p for p in still_open if not _study_done(storage, *p)]
        if open_pairs:
            time.sleep(_POLL_SECONDS)
    return ran


def _study_done(storage: BaseStorage, task: Task, algorithm: str) -> bool:
    study = _load_study(storage, _study_name(task, algorithm))
    if study is None:
        return False
    progress = design_progress(study, _is_label)
    # A study with nothing running or waiting cannot progress any more (its retries are
    # used up); waiting on it would never end.
    return progress.done or (progress.budget > 0 and not progress.running and not progress.waiting)


def _is_skipped(storage: BaseStorage, task: Task) -> bool:
    return bool(_skipped_tasks(storage, [task]))


def _skipped_tasks(storage: BaseStorage, tasks: Sequence[Task]) -> set[str]:
    skipped = set()
    for task in tasks:
        study = _load_study(storage, _study_name(task, "_task"))
        if study is not None and study.user_attrs.get("skipped"):
            skipped.add(task.task_id)
    return skipped


def _check_designs(
    storage: BaseStorage, tasks: Sequence[Task], algorithms: Sequence[str], n_configs: int
) -> None:
    """Refuse to join a build begun with other caps or another design size (``n_configs``)."""
    for task in tasks:
        recorded = _load_study(storage, _study_name(task, "_task"))
        caps = recorded.user_attrs.get(CUT_ATTR) if recorded is not None else None
        if caps is not None and caps != task_caps(task):
            raise TuningError(
                f"The storage already holds the task {task.task_id} cut with {caps}, not "
                f"{task_caps(task)}: rerun with the same --max-interactions and --max-items "
                "as the build began with, or use another storage."
            )
        for algorithm in algorithms:
            study = _load_study(storage, _study_name(task, algorithm))
            if study is None:
                continue
            size = study.user_attrs.get("design_size")
            if size is not None and int(size) != design_size(algorithm, n_configs):
                raise TuningError(
                    f"The storage already holds this build with {size} configurations per "
                    f"study (e.g. {task.task_id} {algorithm}), not "
                    f"{design_size(algorithm, n_configs)}: rerun with the same configurations "
                    "per study (--configs) as the build began with, or use another storage."
                )


class _Counts:
    def __init__(self) -> None:
        self.studies = self.done = self.budget = self.finished = 0
        self.running = self.retried = self.lost = self.orphaned = 0

    def add(self, progress: DesignProgress) -> None:
        self.studies += 1
        self.done += int(progress.done)
        self.budget += progress.budget
        self.finished += min(progress.finished, progress.budget)
        self.running += progress.running
        self.retried += progress.retried
        self.lost += progress.lost
        self.orphaned += progress.orphaned


# -- processes -----------------------------------------------------------------------------
def _run_workers(
    storage: BaseStorage,
    url_or_path: str | None,
    tasks: Sequence[Task],
    algorithms: Sequence[str],
    n_configs: int,
    loader: Callable[[str], Interactions],
    landmark_seconds: float,
    workers: int,
    threads: int,
) -> None:
    """Run ``workers`` workers: this process, on ``storage``, and ``workers - 1`` processes.

    The other processes open the storage at ``url_or_path`` (needed when ``workers > 1``).
    This process works too, so that the build starts while the others are still
    importing (about a second and a half each), and one process fewer holds the data.
    Each other worker is a fresh interpreter running this module (not a fork, and not
    multiprocessing's spawn, which imports the caller's main module again and so needs an
    ``if __name__ == "__main__"`` guard in every script and fails in notebooks). Its
    arguments arrive pickled on stdin: this is one program talking to itself.
    """
    processes = []
    with hold_threads(threads):  # the children start with these limits in their environment
        for index in range(1, workers):
            arguments = {
                "storage": url_or_path,
                "tasks": list(tasks),
                "algorithms": list(algorithms),
                "n_configs": n_configs,
                "loader": loader,
                "landmark_seconds": landmark_seconds,
                "n_threads": threads,
                "worker_index": index,
                "n_workers": workers,
            }
            process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_COMMAND], stdin=subprocess.PIPE
            )
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(arguments))
            process.stdin.close()
            processes.append(process)
    work = functools.partial(
        run_worker,
        storage,
        tasks,
        algorithms=algorithms,
        n_configs=n_configs,
        loader=loader,
        landmark_seconds=landmark_seconds,
        n_threads=threads,
    )
    try:
        with _terminate_as_interrupt():
            work(worker_index=0, n_workers=workers)
            codes = [process.wait() for process in processes]
            failed = [(index, code) for index, code in enumerate(codes, start=1) if code]
            if failed:
                _log.warning(
                    "%d of %d workers stopped early (%s); this process runs what they left.",
                    len(failed),
                    workers,
                    ", ".join(f"worker {index}: exit code {code}" for index, code in failed),
                )
                # Their running trials are recovered as those of dead workers: at once in
                # a journal on this host, after the grace period in a database.
                work(worker_index=0, n_workers=1)
    except BaseException:  # an error here, Ctrl-C or SIGTERM: the other workers stop with it
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        raise


_WORKER_COMMAND = "from metarec_classic.meta._build import _worker_main; _worker_main()"
#: Seconds a stopped worker gets to hand back its trial before it is killed.
_STOP_SECONDS = 10.0


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM as Ctrl-C while inside: the running trial is queued again, not lost.

    Without this, ``kill`` (or a scheduler stopping the job) ends the process at once:
    its trial stays running until it is recovered as stale, which spends its one retry.
    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_when_orphaned() -> None:
    """Stop this worker (as SIGTERM does) once the command that started it has died.

    A command killed outright (``kill -9``, out of memory) cannot stop its workers; each
    notices that its parent changed and hands back its trial instead of building on
    unwatched.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="metarec-orphan-watch", daemon=True).start()


def _worker_main() -> None:
    """Entry point of a worker process started by :func:`_run_workers`."""
    # The command's own process works through the same tasks on the same storage, so it
    # has shown these warnings (about the data read, the storage) once already.
    warnings.simplefilter("ignore", MetarecWarning)
    arguments = pickle.loads(sys.stdin.buffer.read())
    storage = arguments.pop("storage")
    tasks = arguments.pop("tasks")
    _stop_when_orphaned()
    try:
        with _terminate_as_interrupt():
            run_worker(storage, tasks, **arguments)
    except MetarecError as err:  # an error for the user, not a traceback
        sys.stderr.write(f"metarec worker {os.getpid()}: {err}\n")
        sys.exit(1)
    except KeyboardInterrupt:  # stopped by the command (or Ctrl-C): its trial is queued again
        sys.exit(130)


# -- progress ------------------------------------------------------------------------------
class _Monitor:
    """Prints a line per finished study and a progress bar, reading the storage."""

    def __init__(
        self,
        storage: BaseStorage,
        tasks: Sequence[Task],
        algorithms: Sequence[str],
        n_configs: int,
        *,
        enabled: bool,
        interval: float = 2.0,
    ) -> None:
        self.storage = storage
        self.pairs = [(task, algorithm) for task in tasks for algorithm in algorithms]
        self.n_configs = n_configs
        self.enabled = enabled
        self.interval = interval
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-monitor", daemon=True)
        self._bar: Any = None
        self._started = time.monotonic()
        self._finished_at_start: int | None = None

    def start(self) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=len(self.pairs), desc="studies", unit="study", file=sys.stderr)
        self._thread.start()

    def stop(self) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        try:
            self._poll()
        except Exception as err:  # the build's own error, if any, says more
            _log.debug("Progress could not be read: %s", err)
        self._bar.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._poll()
            except Exception as err:  # progress must never end a build
                _log.debug("Progress could not be read: %s", err)

    def _poll(self) -> None:
        finished = 0
        for task, algorithm in self.pairs:
            name = _study_name(task, algorithm)
            if name in self._done:
                finished += design_size(algorithm, self.n_configs)
                continue
            study = _load_study(self.storage, name)
            if study is None:
                if _is_skipped(self.storage, task):  # too small to label: nothing to wait for
                    self._done.add(name)
                continue
            progress = design_progress(study, _is_label)
            finished += progress.finished
            if progress.lost and not progress.running and not progress.waiting:
                self._done.add(name)
                self._bar.write(
                    f"incomplete {task.task_id} {algorithm}: {progress.finished}/"
                    f"{progress.budget} trials, {progress.lost} lost (every try died; "
                    "rerun with --retry-lost)",
                    file=sys.stderr,
                )
            elif progress.done:
                self._done.add(name)
                best = max(
                    (t.value for t in study.get_trials(deepcopy=False) if t.value is not None),
                    default=float("nan"),
                )
                self._bar.write(
                    f"labelled {task.task_id} {algorithm}: {progress.finished}/"
                    f"{progress.budget} trials, best ndcg@10 {best:.4f}"
                    + (f", {progress.retried} retried" if progress.retried else ""),
                    file=sys.stderr,
                )
        if self._finished_at_start is None:
            self._finished_at_start = finished
        self._bar.n = len(self._done)
        total_trials = sum(design_size(a, self.n_configs) for _, a in self.pairs)
        elapsed = time.monotonic() - self._started
        rate = (finished - self._finished_at_start) / elapsed if elapsed > 0 else 0.0
        left = total_trials - finished
        eta = f"{left / rate / 60:.1f} min" if rate > 0 else "?"
        self._bar.set_postfix_str(f"{rate:.2f} trials/s, {eta} left", refresh=False)
        self._bar.refresh()
