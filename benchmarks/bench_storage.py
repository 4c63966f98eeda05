"""Time the trial storages, and label builds with 1 and 2 worker processes.

    python benchmarks/bench_storage.py            # full run (about 8 minutes on 2 cores)
    python benchmarks/bench_storage.py --quick    # smoke run: fewer trials, a tiny build
    python benchmarks/bench_storage.py --postgres-url postgresql+psycopg2://user@host:5432/db

Needs a PostgreSQL server: ``--postgres-url`` (default: ``$METAREC_TEST_POSTGRES_URL``,
else the throwaway server of ``.ci/postgres start``). The script creates databases of its
own beside the one in the URL (``metarec_bench_<pid>_<n>``) and drops them at the end.
The datasets come from ``$METAREC_DATA``.

Four figures, printed as tables, with the goal and PASS/FAIL where there is one:

(a) Cost of the storage per trial, on trials that do no work: in memory, a journal file,
    SQLite and PostgreSQL (with heartbeats), each opened by ``resolve_storage``. Trials run
    the way label builds run them: ``open_design_study`` enqueues a fixed design once,
    then ``claim_trial`` / ``run_claimed_trial`` until none is waiting; the objective only
    suggests the design's one parameter. Each repetition is a fresh study of ``--trials``
    trials; the storages take turns (rotating order); medians of ``--reps`` repetitions.
    Printed: enqueueing, claiming + running, their sum, and the CPU time of this process
    (the rest is waiting for the storage, or its server's CPU on this machine).
(b) What PostgreSQL adds to a typical label trial. Its cost per trial: label-shaped
    trials that do no work, in studies of 10 design points of one algorithm
    (``design_configs``), each opened and checked for stale trials as a build does, the
    objective suggesting every parameter and recording the fit time as ``make_objective``
    does; shown for ItemKNN and ALS next to a real trial of each (fit + validation NDCG@10
    of the default configuration through ``make_objective``, one thread, ml-100k
    ``users-0.5``). Interleaved, medians. The typical label trial: 40 trials drawn at
    random from the shipped labels, each run again on its own task. Goal: the larger
    label-shaped cost is at most 5 % of the median corpus trial; its share of the mean
    (what PostgreSQL adds to a build's time) is printed beside it.
(c) Build throughput: ``build_labels`` of real tasks (ml-100k and lastfm-hetrec-2k, four
    cuts each, capped at 30,000 interactions) with ALS, BPR, LMF and EASE (trials of
    about 0.1-1 s) into a fresh PostgreSQL database, with ``workers=1`` (in this process)
    and ``workers=2`` (this process and one worker process), rounds alternating the order.
    Printed: trials per second over the build's wall time, and over the span from the
    first trial started to the last one finished (without process start-up and the wait
    at the end), the median trial, how the trials split between workers, and whether both
    builds gave the same labels. A small build with each worker count runs first, unmeasured.
(d) The machine's own ceiling, sampled just before every build of (c): two plain
    CPU-bound processes (a pure-Python loop; numpy matrix products held to one BLAS
    thread) started together against one alone, each timing its own fixed work from a
    common start. Ceiling speed-up = 2 × t(alone) / t(slower of the two together): what
    two processes can gain on this machine at best right now (2.0 on two free, independent
    cores; less when the cores are shared or busy). Each round's 2-worker speed-up (wall
    time) is divided by the same round's ceiling (the higher workload's, the mean of the
    round's two samples). Goal: the median of these fractions is at least 90 %.

Every figure is measured when the script runs, with ``time.perf_counter``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
import threadpoolctl
from _machine import blas_lines, load_average, print_table, print_verdict
from optuna.distributions import FloatDistribution
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.trial import FixedTrial, FrozenTrial, TrialState

import metarec_classic
from metarec_classic.data import Interactions, load_dataset
from metarec_classic.exceptions import MetarecWarning
from metarec_classic.meta import (
    Task,
    build_labels,
    cut_task,
    design_configs,
    load_shipped_labels,
    make_tasks,
)
from metarec_classic.recommenders import get_recommender_class
from metarec_classic.tuning import (
    Portfolio,
    claim_trial,
    hold_threads,
    make_objective,
    mask_url,
    open_design_study,
    recover_stale_trials,
    resolve_storage,
    run_claimed_trial,
)
from metarec_classic.tuning._tune import FIT_TIME_ATTR

DEFAULT_URL = "postgresql+psycopg2://postgres@localhost:55432/metarec_test"
POSTGRES_ENV = "METAREC_TEST_POSTGRES_URL"
TRIAL_SHARE_GOAL = 0.05
CEILING_GOAL = 0.90
#: Design points per study in the label-shaped trials of (b): the default of build_labels.
LABEL_DESIGN_SIZE = 10
#: Label-shaped studies per run in (b).
LABEL_STUDIES = 5
#: The real trials of (b): the task and the algorithms at their default configuration.
TRIAL_TASK = Task("ml-100k", "movielens", "users", 0.5, 0, 30_000, 3_000)
TRIAL_ALGORITHMS = ("itemknn", "als")
#: Label trials of the shipped corpus timed again in (b): the typical trial of a real build.
CORPUS_SAMPLE = 40
#: The build of (c).
BUILD_DATASETS = (("ml-100k", "movielens"), ("lastfm-hetrec-2k", "lastfm"))
BUILD_PLAN = (("users", 0.5), ("kcore", 5), ("items", 0.5), ("popular", 1000))
BUILD_ALGORITHMS = ("als", "bpr", "lmf", "ease")
BUILD_MAX_INTERACTIONS = 30_000


# -- PostgreSQL databases -----------------------------------------------------------------


class Server:
    """Creates and drops this run's databases on the server of ``url``."""

    def __init__(self, url: str) -> None:
        import psycopg2

        self.base = sqlalchemy.engine.make_url(url)
        self.admin = psycopg2.connect(**self._connect_args(self.base.database), connect_timeout=5)
        self.admin.autocommit = True
        self.created: list[str] = []

    def _connect_args(self, database: str | None) -> dict[str, Any]:
        return {
            "host": self.base.host or "localhost",
            "port": self.base.port or 5432,
            "user": self.base.username,
            "password": self.base.password,
            "dbname": database,
        }

    def version(self) -> str:
        with self.admin.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return str(cursor.fetchone()[0])

    def create(self) -> str:
        """A new, empty database; return its SQLAlchemy URL."""
        name = f"metarec_bench_{os.getpid()}_{len(self.created)}"
        with self.admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.base.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = sqlalchemy.engine.make_url(url).database
        with self.admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def query(self, url: str, sql: str) -> list[tuple[Any, ...]]:
        import psycopg2

        database = sqlalchemy.engine.make_url(url).database
        connection = psycopg2.connect(**self._connect_args(database))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def close(self) -> None:
        """Drop every database this run created; warn about any that could not be dropped."""
        import psycopg2

        left = list(self.created)
        self.created.clear()
        try:
            self.admin.close()
            admin = psycopg2.connect(**self._connect_args(self.base.database), connect_timeout=5)
            admin.autocommit = True
            with admin.cursor() as cursor:
                while left:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{left[0]}" WITH (FORCE)')
                    left.pop(0)
            admin.close()
        except Exception as err:
            print(
                f"bench_storage: could not drop the databases {left!r} ({type(err).__name__}); "
                "drop them by hand.",
                file=sys.stderr,
            )


def open_server(url: str) -> Server:
    """Connect to the server, or exit with a message that says what to do."""
    try:
        return Server(url)
    except ImportError:
        sys.exit('bench_storage: psycopg2 is missing; pip install "metarec-classic[postgres]".')
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        sys.exit(
            f"bench_storage: cannot reach PostgreSQL at {mask_url(url)!r} ({first}). Start the "
            f"throwaway server with `.ci/postgres start` and pass the URL it prints as "
            f"--postgres-url (or set {POSTGRES_ENV})."
        )


# -- (a) and (b): trials through a design study ------------------------------------------


@dataclass
class DesignRun:
    """Seconds spent on one design study: enqueueing, claiming + running, CPU of this process."""

    trials: int
    enqueue: float
    run: float
    cpu: float

    def __add__(self, other: DesignRun) -> DesignRun:
        return DesignRun(
            self.trials + other.trials,
            self.enqueue + other.enqueue,
            self.run + other.run,
            self.cpu + other.cpu,
        )


def _completed(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE


def run_design(
    storage: BaseStorage,
    configs: list[dict[str, Any]],
    objective: Callable[[optuna.trial.BaseTrial], float],
    *,
    space: dict[str, Any],
    recover: bool = False,
) -> DesignRun:
    """Enqueue ``configs`` in a fresh design study and run every trial of it in this process,
    the way label builds do (parameters stored at enqueue time, claims by trial number)."""
    cpu = time.process_time()
    started = time.perf_counter()
    study = open_design_study(
        storage, f"bench-{uuid.uuid4().hex[:12]}", configs, is_label=_completed, space=space
    )
    if study is None:
        raise RuntimeError("A fresh design study was reported as being enqueued elsewhere.")
    enqueued = time.perf_counter()
    if recover:
        recover_stale_trials(study)
    count = 0
    last = -1
    while (trial := claim_trial(study, after=last)) is not None:
        last = trial.number
        if run_claimed_trial(study, trial, objective) != TrialState.COMPLETE:
            raise RuntimeError(f"A no-work trial failed in {type(storage).__name__}.")
        count += 1
    finished = time.perf_counter()
    if count != len(configs):
        raise RuntimeError(f"Ran {count} trials of a design of {len(configs)}.")
    return DesignRun(count, enqueued - started, finished - enqueued, time.process_time() - cpu)


#: The one parameter of the no-work trials.
BARE_SPACE: dict[str, Any] = {"x": FloatDistribution(0.0, 1.0)}


def bare_objective(trial: optuna.trial.BaseTrial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def label_shaped_objective(algorithm: str) -> Callable[[optuna.trial.BaseTrial], float]:
    """``make_objective``'s storage calls without the fit: suggest every parameter, record the
    fit time (a configuration that fits the data records nothing else)."""
    portfolio = Portfolio(algorithm)

    def objective(trial: optuna.trial.BaseTrial) -> float:
        portfolio.suggest(trial)
        trial.set_user_attr(FIT_TIME_ATTR, 0.0)
        return 0.0

    return objective


def open_storages(folder: Path, postgres_url: str) -> dict[str, BaseStorage]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetarecWarning)  # SQLite: meant for one process
        storages = {
            "in-memory": InMemoryStorage(),
            "journal file": resolve_storage(folder / "trials.journal"),
            "sqlite": resolve_storage(f"sqlite:///{folder / 'trials.db'}"),
            "postgresql": resolve_storage(postgres_url),
        }
    return {name: storage for name, storage in storages.items() if storage is not None}


def part_storage(storages: dict[str, BaseStorage], reps: int, n_trials: int) -> float:
    """Print (a); return PostgreSQL's median milliseconds per trial."""
    print(
        f"\n(a) storage cost per no-work trial: open_design_study + claim_trial/"
        f"run_claimed_trial, {n_trials} trials per repetition (a fresh study), median of "
        f"{reps} repetitions, storages interleaved"
    )
    configs = [{"x": (index + 0.5) / n_trials} for index in range(n_trials)]
    names = list(storages)
    for name in names:  # warm-up: tables, connections, first-call costs
        run_design(storages[name], configs[:5], bare_objective, space=BARE_SPACE)
    samples: dict[str, list[DesignRun]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(
                run_design(storages[name], configs, bare_objective, space=BARE_SPACE)
            )
    rows, medians = [], {}
    for name in names:
        runs = samples[name]
        per = {
            field: statistics.median(getattr(run, field) / run.trials * 1e3 for run in runs)
            for field in ("enqueue", "run", "cpu")
        }
        total = statistics.median((run.enqueue + run.run) / run.trials * 1e3 for run in runs)
        spread = [(run.enqueue + run.run) / run.trials * 1e3 for run in runs]
        medians[name] = total
        rows.append(
            [
                name,
                f"{per['enqueue']:.2f}",
                f"{per['run']:.2f}",
                f"{total:.2f}",
                f"{min(spread):.2f}-{max(spread):.2f}",
                f"{per['cpu']:.2f}",
                f"{total / medians['in-memory']:.0f}x" if "in-memory" in medians else "",
            ]
        )
    print_table(
        [
            "storage",
            "enqueue ms",
            "claim+run ms",
            "total ms/trial",
            "range",
            "client CPU ms",
            "vs in-memory",
        ],
        rows,
    )
    return medians["postgresql"]


def part_label_trial(
    data: Interactions, postgres: BaseStorage, bare_ms: float | None, n_runs: int, min_run: float
) -> list[str]:
    split = cut_task(TRIAL_TASK, data)
    if split is None:
        raise RuntimeError(f"{TRIAL_TASK.task_id} is too small to cut.")
    train, validation = split
    print(
        f"\n(b) PostgreSQL's cost per trial against a real label trial ({TRIAL_TASK.task_id}: "
        f"{train.n_users:,} users × {train.n_items:,} items, {train.n_interactions:,} "
        f"training interactions; default config, one thread), median of {n_runs} "
        "interleaved runs"
    )
    print(
        f"    label-shaped = no-work trials of {LABEL_STUDIES} studies × {LABEL_DESIGN_SIZE} "
        "design points of the algorithm, suggesting its parameters and recording the fit "
        "time as make_objective does; bare = figure (a). The goal is judged below, against "
        "trials of the shipped corpus"
    )
    arms: dict[str, Callable[[], tuple[int, float]]] = {}
    scores: dict[str, float] = {}
    for algorithm in TRIAL_ALGORITHMS:
        objective = make_objective(algorithm, train, validation, seed=0, n_jobs=1)
        config = get_recommender_class(algorithm).default_config()

        def work(objective: Any = objective, config: Any = config, name: str = algorithm) -> Any:
            with hold_threads(1):
                started = time.perf_counter()
                scores[name] = objective(FixedTrial(config))
                return 1, time.perf_counter() - started

        designs = [
            design_configs(algorithm, LABEL_DESIGN_SIZE, seed=seed) for seed in range(LABEL_STUDIES)
        ]
        shaped = label_shaped_objective(algorithm)

        space = get_recommender_class(algorithm).search_space()

        def storage_cost(
            designs: Any = designs, shaped: Any = shaped, space: Any = space
        ) -> tuple[int, float]:
            total = DesignRun(0, 0.0, 0.0, 0.0)
            for design in designs:
                total = total + run_design(postgres, design, shaped, space=space, recover=True)
            return total.trials, total.enqueue + total.run

        arms[f"{algorithm} trial"] = work
        arms[f"{algorithm} postgres"] = storage_cost
    times = time_interleaved(arms, n_runs, min_run)
    rows = []
    for algorithm in TRIAL_ALGORITHMS:
        trial_ms = times[f"{algorithm} trial"] * 1e3
        shaped_ms = times[f"{algorithm} postgres"] * 1e3
        rows.append(
            [
                algorithm,
                f"{scores[algorithm]:.4f}",
                f"{trial_ms:.1f}",
                "-" if bare_ms is None else f"{bare_ms:.2f}",
                f"{shaped_ms:.2f}",
                f"{shaped_ms / trial_ms:.1%}",
            ]
        )
    print_table(
        ["algorithm", "ndcg@10", "trial ms", "pg bare ms", "pg label-shaped ms", "shaped/trial"],
        rows,
    )

    corpus, counts = corpus_trial_times(CORPUS_SAMPLE)
    cost_ms = max(times[f"{a} postgres"] for a in TRIAL_ALGORITHMS) * 1e3
    median_ms = statistics.median(corpus) * 1e3
    mean_ms = statistics.fmean(corpus) * 1e3
    print(
        f"\n    the shipped corpus: {len(corpus)} label trials drawn at random and run again "
        f"({', '.join(f'{a} {n}' for a, n in sorted(counts.items()))}); PostgreSQL's cost per "
        f"trial = the larger label-shaped figure above, {cost_ms:.2f} ms"
    )
    share_median = cost_ms / median_ms
    verdict = "PASS" if share_median <= TRIAL_SHARE_GOAL else "FAIL"
    print_table(
        ["corpus trial", "ms", "pg share", "goal", "result"],
        [
            ["median (typical trial)", f"{median_ms:.1f}", f"{share_median:.1%}",
             f"<= {TRIAL_SHARE_GOAL:.0%}", verdict],
            ["mean (= share of build time)", f"{mean_ms:.1f}", f"{cost_ms / mean_ms:.1%}",
             "-", "-"],
        ],
    )  # fmt: skip
    if verdict == "FAIL":
        return [f"(b) postgres adds {share_median:.1%} to the median label trial of the corpus"]
    return []


def corpus_trial_times(n_trials: int, seed: int = 0) -> tuple[list[float], dict[str, int]]:
    """Time ``n_trials`` label trials drawn at random from the shipped labels, run again.

    Each trial is what a build runs (fit + validation NDCG@10 through ``make_objective``,
    one thread) on its own task, cut again from the shared data. Returns the times in
    seconds and how many trials each algorithm had.
    """
    labels = load_shipped_labels()
    rows = labels.labels[labels.labels["state"] == "COMPLETE"].sample(n_trials, random_state=seed)
    tasks = labels.tasks.set_index("task_id")
    datasets: dict[str, Interactions] = {}  # several tasks share a dataset: read it once
    times: list[float] = []
    for task_id, group in rows.groupby("task_id", sort=True):
        row = tasks.loc[task_id]
        task = Task(
            row["dataset"], row["family"], row["kind"], float(row["size"]), int(row["seed"]),
            int(row["max_interactions"]), int(row["max_items"]),
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetarecWarning)  # what loading merges, as in builds
            if task.dataset not in datasets:
                datasets[task.dataset] = load_dataset(task.dataset)
            split = cut_task(task, datasets[task.dataset])
        if split is None:
            raise RuntimeError(f"{task_id} of the shipped labels no longer cuts.")
        for algorithm, config in zip(group["algorithm"], group["config"], strict=True):
            objective = make_objective(algorithm, split[0], split[1], seed=task.seed, n_jobs=1)
            with hold_threads(1):
                started = time.perf_counter()
                objective(FixedTrial(json.loads(config)))
                times.append(time.perf_counter() - started)
    return times, rows["algorithm"].value_counts().to_dict()


def time_interleaved(
    arms: dict[str, Callable[[], tuple[int, float]]], n_runs: int, min_run: float
) -> dict[str, float]:
    """Median seconds per unit of each arm, the arms interleaved in a rotating order.

    An arm's call does some units of work and returns (units, seconds). Each arm is called
    once first (warm-up); a run then repeats the call until it has lasted ``min_run``
    seconds.
    """
    for call in arms.values():
        call()
    names = list(arms)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(n_runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            units, seconds = 0, 0.0
            while seconds < min_run:
                done, spent = arms[name]()
                units += done
                seconds += spent
            samples[name].append(seconds / units)
    return {name: statistics.median(values) for name, values in samples.items()}


# -- (c) and (d): builds and the machine's ceiling ----------------------------------------


@dataclass
class BuildRun:
    workers: int
    wall: float
    trials: int
    span: float
    startup: float
    tail: float
    median_trial: float
    trial_seconds: float
    per_worker: list[int]
    labels: dict[tuple[str, str, int], float]

    @property
    def rate(self) -> float:
        return self.trials / self.wall

    @property
    def span_rate(self) -> float:
        return self.trials / self.span

    @property
    def busy(self) -> float:
        """Share of the workers' wall time spent inside trials (claimed to told)."""
        return self.trial_seconds / (self.wall * self.workers)


def run_build(
    server: Server, tasks: list[Task], algorithms: tuple[str, ...], n_configs: int, workers: int
) -> BuildRun:
    url = server.create()
    try:
        started_at = datetime.now()
        started = time.perf_counter()
        labels = build_labels(
            tasks, algorithms=algorithms, n_configs=n_configs, storage=url, workers=workers
        )
        wall = time.perf_counter() - started
        ended_at = datetime.now()
        ((count, first, last, median, in_trials),) = server.query(
            url,
            "SELECT count(*), min(datetime_start), max(datetime_complete), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
            "datetime_complete - datetime_start)), sum(extract(epoch FROM "
            "datetime_complete - datetime_start)) FROM trials WHERE state = 'COMPLETE'",
        )
        per_worker = server.query(
            url,
            "SELECT count(*) FROM trial_user_attributes WHERE key = 'worker' "
            "GROUP BY value_json ORDER BY count(*) DESC",
        )
    finally:
        server.drop(url)
    table = labels.labels
    return BuildRun(
        workers=workers,
        wall=wall,
        trials=int(count),
        span=(last - first).total_seconds(),
        startup=(first - started_at).total_seconds(),
        tail=(ended_at - last).total_seconds(),
        median_trial=float(median),
        trial_seconds=float(in_trials),
        per_worker=[int(row[0]) for row in per_worker],
        labels={
            (str(t), str(a), int(i)): float(s)
            for t, a, i, s in zip(
                table["task_id"], table["algorithm"], table["trial"], table["score"], strict=True
            )
        },
    )


_CEILING_CHILD = """
import sys, time

def work(workload, size):
    if workload == "numpy":
        import numpy as np

        a = np.random.default_rng(0).random((256, 256))
        b = a.copy()
        yield
        for _ in range(size):
            b = a @ b
            b /= b.max()
    else:
        yield
        total = 0
        for i in range(size):
            total += i * i % 7

workload, size, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
steps = work(workload, size)
next(steps)  # imports and data, before the common start
while time.time() < start_at:
    time.sleep(0.001)
started = time.perf_counter()
for _ in steps:
    pass
print(time.perf_counter() - started)
"""

_ONE_THREAD = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    )
}


def ceiling_sizes(seconds: float) -> dict[str, int]:
    """Work sizes of the two workloads that take about ``seconds`` alone, measured here."""
    sizes = {"python": int(2_000_000 * seconds / _python_loop(2_000_000))}
    a = np.random.default_rng(0).random((256, 256))
    b = a.copy()
    with threadpoolctl.threadpool_limits(limits=1):
        started = time.perf_counter()
        for _ in range(200):
            b = a @ b
            b /= b.max()
        sizes["numpy"] = int(200 * seconds / (time.perf_counter() - started))
    return sizes


def _python_loop(size: int) -> float:
    """Seconds of the child's pure-Python loop (in a function, as in the child)."""
    started = time.perf_counter()
    total = 0
    for i in range(size):
        total += i * i % 7
    return time.perf_counter() - started


def concurrent_times(workload: str, size: int, n_processes: int) -> list[float]:
    """Seconds each of ``n_processes`` children took on the same work, started together."""
    start_at = time.time() + 1.0  # after every child has started and imported
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CEILING_CHILD, workload, str(size), f"{start_at:.6f}"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **_ONE_THREAD},
        )
        for _ in range(n_processes)
    ]
    outputs = [child.communicate()[0] for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError(f"A ceiling process of the {workload} workload failed.")
    return [float(output) for output in outputs]


def ceiling_sample(sizes: dict[str, int]) -> dict[str, tuple[float, float]]:
    """For each workload: (one process alone, the slower of two run together), seconds."""
    out = {}
    for workload, size in sizes.items():
        alone = concurrent_times(workload, size, 1)[0]
        together = max(concurrent_times(workload, size, 2))
        out[workload] = (alone, together)
    return out


def part_build(
    server: Server,
    tasks: list[Task],
    algorithms: tuple[str, ...],
    n_configs: int,
    rounds: int,
    ceiling_seconds: float,
) -> list[str]:
    budget = len(tasks) * len(algorithms) * n_configs
    print(
        f"\n(c) build_labels into a fresh PostgreSQL database: {len(tasks)} tasks × "
        f"{len(algorithms)} algorithms ({', '.join(algorithms)}) × {n_configs} configs = "
        f"{budget} trials; workers=1 vs workers=2, {rounds} round(s) alternating the order"
    )
    sizes = ceiling_sizes(ceiling_seconds)
    # Warm-up, not measured: the first build in a process pays first-call costs (imports,
    # kernels, data read from disk) that would favour whichever worker count runs second.
    for workers in (1, 2):
        run_build(server, tasks[:2], algorithms, 1, workers)
    builds: dict[int, list[BuildRun]] = {1: [], 2: []}
    # Per round, the ceiling samples taken just before each of its two builds.
    ceilings: list[list[dict[str, tuple[float, float]]]] = []
    for index in range(rounds):
        ceilings.append([])
        for workers in (1, 2) if index % 2 == 0 else (2, 1):
            ceilings[-1].append(ceiling_sample(sizes))
            build = run_build(server, tasks, algorithms, n_configs, workers)
            builds[workers].append(build)
            print(
                f"    ... round {index + 1}: workers={workers} {build.wall:.1f} s, "
                f"{build.trials} trials",
                file=sys.stderr,
                flush=True,
            )

    reference = builds[1][0].labels
    rows = []
    for workers in (1, 2):
        runs = builds[workers]
        same = sum(run.labels == reference for run in runs)
        rows.append(
            [
                str(workers),
                str(int(statistics.median(run.trials for run in runs))),
                f"{statistics.median(run.wall for run in runs):.1f}",
                f"{statistics.median(run.rate for run in runs):.3f}",
                f"{statistics.median(run.span_rate for run in runs):.3f}",
                f"{statistics.median(run.startup for run in runs):.1f}",
                f"{statistics.median(run.tail for run in runs):.1f}",
                f"{statistics.median(run.median_trial for run in runs) * 1e3:.0f}",
                f"{statistics.median(run.busy for run in runs):.0%}",
                " ".join("/".join(map(str, run.per_worker)) for run in runs),
                f"{same}/{len(runs)}",
            ]
        )
    print_table(
        [
            "workers",
            "trials",
            "wall s",
            "trials/s (wall)",
            "trials/s (span)",
            "to 1st trial s",
            "after last s",
            "median trial ms",
            "in trials",
            "trials per worker",
            "same labels",
        ],
        rows,
    )
    print(
        "    span = first trial started to last one finished; in trials = time between "
        "claiming and telling a trial, summed, over workers × wall time; same labels = "
        "identical scores to the first 1-worker build"
    )
    pairs = list(zip(builds[1], builds[2], strict=True))
    speedups = [two.rate / one.rate for one, two in pairs]
    span_speedups = [two.span_rate / one.span_rate for one, two in pairs]

    print(
        "\n(d) the machine's ceiling, sampled before every build: two CPU-bound processes "
        "started together vs one alone (one BLAS thread), each timing its own work; "
        "ceiling = 2 × alone / together (2.0 = two free cores)"
    )
    round_ceiling: dict[str, list[float]] = {}
    rows = []
    for workload in sizes:
        samples = [sample[workload] for pair in ceilings for sample in pair]
        round_ceiling[workload] = [
            statistics.mean(2 * alone / together for alone, together in (s[workload] for s in pair))
            for pair in ceilings
        ]
        rows.append(
            [
                workload,
                f"{statistics.median(alone for alone, _ in samples):.2f}",
                f"{statistics.median(together for _, together in samples):.2f}",
                f"{statistics.median(round_ceiling[workload]):.3f}",
                ", ".join(f"{c:.3f}" for c in round_ceiling[workload]),
            ]
        )
    print_table(["workload", "alone s", "together s", "ceiling", "per round"], rows)

    # Each round's speed-up against the same round's ceiling (the higher workload's).
    ceiling_by_round = [max(values) for values in zip(*round_ceiling.values(), strict=True)]
    fractions = [s / c for s, c in zip(speedups, ceiling_by_round, strict=True)]
    span_fractions = [s / c for s, c in zip(span_speedups, ceiling_by_round, strict=True)]
    rows = [
        [
            str(index + 1),
            f"{one.rate:.3f}",
            f"{two.rate:.3f}",
            f"{speedups[index]:.3f}",
            f"{span_speedups[index]:.3f}",
            f"{ceiling_by_round[index]:.3f}",
            f"{fractions[index]:.1%}",
            f"{span_fractions[index]:.1%}",
        ]
        for index, (one, two) in enumerate(pairs)
    ]
    fraction = statistics.median(fractions)
    verdict = "PASS" if fraction >= CEILING_GOAL else "FAIL"
    rows.append(
        [
            "median",
            f"{statistics.median(run.rate for run in builds[1]):.3f}",
            f"{statistics.median(run.rate for run in builds[2]):.3f}",
            f"{statistics.median(speedups):.3f}",
            f"{statistics.median(span_speedups):.3f}",
            f"{statistics.median(ceiling_by_round):.3f}",
            f"{fraction:.1%}",
            f"{statistics.median(span_fractions):.1%}",
        ]
    )
    print(
        "\n(c/d) 2-worker speed-up against the ceiling, paired by round (goal: median "
        f"speed-up / ceiling >= {CEILING_GOAL:.0%} on wall time)"
    )
    print_table(
        [
            "round",
            "1 worker trials/s",
            "2 workers trials/s",
            "speed-up (wall)",
            "speed-up (span)",
            "ceiling",
            "of ceiling (wall)",
            "of ceiling (span)",
        ],
        rows,
    )
    print(f"result: {fraction:.1%} of the ceiling (goal >= {CEILING_GOAL:.0%}): {verdict}")
    return [] if verdict == "PASS" else [f"(c/d) 2 workers reach {fraction:.1%} of the ceiling"]


# -- output -------------------------------------------------------------------------------


def print_environment(server: Server, url: str) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, {platform.platform()}")
    print(f"python {platform.python_version()}; {load_average()}")
    print(
        f"metarec_classic {metarec_classic.__version__}, optuna {optuna.__version__}, "
        f"sqlalchemy {sqlalchemy.__version__}, numpy {np.__version__}"
    )
    print(f"PostgreSQL {server.version()} at {mask_url(url)}")
    for line in blas_lines():
        print(line)


@contextmanager
def quiet() -> Iterator[None]:
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few trials, tiny build")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV) or DEFAULT_URL,
        help=f"a database on the server to use (default ${POSTGRES_ENV}, else {DEFAULT_URL})",
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions in (a) (default 5)")
    parser.add_argument(
        "--trials", type=int, default=None, help="trials per repetition in (a) (default 50)"
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per figure in (b) (default 5)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="build rounds in (c) and (d) (default 3)"
    )
    parser.add_argument(
        "--n-configs", type=int, default=None, help="configs per study in (c) (default 4)"
    )
    parser.add_argument(
        "--parts", default="abc", help="which parts to run: a, b, c (c includes d); default abc"
    )
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    n_trials = args.trials or (20 if args.quick else 50)
    n_runs = args.runs or (2 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 3)
    n_configs = args.n_configs or (2 if args.quick else 4)
    min_run = 0.2 if args.quick else 1.0
    ceiling_seconds = 0.5 if args.quick else 1.5
    if args.quick:
        tasks = make_tasks(
            [BUILD_DATASETS[0]], plan=BUILD_PLAN[:2], max_interactions=BUILD_MAX_INTERACTIONS
        )
        algorithms: tuple[str, ...] = BUILD_ALGORITHMS[:2]
    else:
        tasks = make_tasks(BUILD_DATASETS, plan=BUILD_PLAN, max_interactions=BUILD_MAX_INTERACTIONS)
        algorithms = BUILD_ALGORITHMS

    started = time.perf_counter()
    server = open_server(args.postgres_url)
    failures: list[str] = []
    try:
        print_environment(server, args.postgres_url)
        print(
            f"(a) {reps} repetitions × {n_trials} trials; (b) {n_runs} runs of at least "
            f"{min_run} s; (c, d) {rounds} round(s)"
        )
        with quiet(), tempfile.TemporaryDirectory(prefix="bench_storage_") as folder:
            postgres_url = server.create()
            storages = open_storages(Path(folder), postgres_url)
            bare_ms = None
            if "a" in args.parts:
                bare_ms = part_storage(storages, reps, n_trials)
            if "b" in args.parts:
                data = load_dataset(TRIAL_TASK.dataset)
                failures += part_label_trial(data, storages["postgresql"], bare_ms, n_runs, min_run)
            storages.clear()
            server.drop(postgres_url)
            if "c" in args.parts:
                failures += part_build(
                    server, tasks, algorithms, n_configs, rounds, ceiling_seconds
                )
    finally:
        server.close()

    print_verdict(failures, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
