"""Time metarec's wrappers against implicit called directly, and 1 against 2 threads.

    python benchmarks/bench_overhead.py            # full run (about 15 minutes on 2 cores)
    python benchmarks/bench_overhead.py --quick    # smoke run: fewer runs, smaller data

Three parts, each printed as a table with its goal and PASS/FAIL per row:

(a) fit + recommend (k=10, every user) through ``make_recommender(...).fit`` and
    ``.recommend`` against the same implicit model built, fitted and asked directly with
    the same parameters, for als, bpr, lmf and itemknn (cosine, bm25, tfidf), on
    MovieLens 100K (ratings >= 4) and a seeded synthetic matrix with power-law item
    popularity. The direct call is timed twice: with BLAS held to one thread exactly
    where our wrappers hold it (the fair comparison, used for the goal) and without any
    limit (plain implicit usage). Goal: metarec / direct <= 1.05.
(b) ``evaluate(model, train, test, k=10)`` (NDCG@10 of every test user) against the
    implicit model's own batch ``recommend`` for the same users, on a per-user 80/20
    split of MovieLens 100K. Goal: evaluate / recommend <= 1.25.
(c) ``n_jobs=1`` against ``n_jobs=2`` (fit + recommend for every user) for every
    algorithm whose parameters include ``n_jobs``, on both data sets; the default
    ``n_jobs`` should be within 1.10 times the faster setting.

Every figure is measured when the script runs. Arms that are compared are timed
interleaved (A B C, B C A, ... rotating the order) in one process, and each figure is the
median of the runs; a run repeats a call that is shorter than ``--min-run`` seconds and
reports the time per call.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import implicit
import numpy as np
import optuna
import scipy
import scipy.sparse as sp
import sklearn
import threadpoolctl
from _machine import blas_lines, load_average, print_table, print_verdict
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.cpu.lmf import LogisticMatrixFactorization
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
from implicit.utils import ParameterWarning
from threadpoolctl import ThreadpoolController

import metarec_classic
from metarec_classic.data import Interactions, from_sparse, load_dataset, random_holdout_split
from metarec_classic.evaluation import evaluate
from metarec_classic.recommenders import (
    ALGORITHM_NAMES,
    get_recommender_class,
    make_recommender,
)

OVERHEAD_GOAL = 1.05
EVALUATE_GOAL = 1.25
THREADS_GOAL = 1.10
K = 10
SEED = 0
#: Calls at least this long (seconds) need no separate warm-up run.
LONG_CALL = 2.0
#: Parameters changed on the synthetic matrix only, to bound the run time; each is applied
#: to every arm of a comparison alike.
SYNTHETIC_OVERRIDES: dict[str, dict[str, Any]] = {"bpr": {"n_iter": 30}}

#: The implicit-backed cases of part (a): label, algorithm name, fixed config.
IMPLICIT_CASES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("als", "als", {}),
    ("bpr", "bpr", {}),
    ("lmf", "lmf", {}),
    ("itemknn-cosine", "itemknn", {"weighting": "cosine"}),
    ("itemknn-bm25", "itemknn", {"weighting": "bm25"}),
    ("itemknn-tfidf", "itemknn", {"weighting": "tfidf"}),
)

_CONTROLLER = ThreadpoolController()


# -- timing -------------------------------------------------------------------------------


@dataclass
class Arm:
    """One side of a side-by-side timing: a label and a call that does the work once."""

    label: str
    call: Callable[[], Any]


def time_interleaved(
    arms: list[Arm], n_runs: int, min_run: float, results: dict[str, Any] | None = None
) -> dict[str, float]:
    """Median seconds per call of each arm, the arms interleaved in a rotating order.

    Each arm is called once first, in order (warm-up, and to size its repeats): a run then
    repeats the call enough times to last about ``min_run`` seconds and records the time
    per call. When every warm-up call took at least ``LONG_CALL`` seconds, the warm-up
    pass counts as the first run, since first-call costs are negligible next to it. The
    warm-up calls' return values are stored in ``results`` when it is given.
    """
    repeats, warm_up = {}, {}
    for arm in arms:
        started = time.perf_counter()
        value = arm.call()
        warm_up[arm.label] = time.perf_counter() - started
        if results is not None:
            results[arm.label] = value
        repeats[arm.label] = max(1, math.ceil(min_run / max(warm_up[arm.label], 1e-9)))
    samples: dict[str, list[float]] = {arm.label: [] for arm in arms}
    first = 0
    if min(warm_up.values()) >= LONG_CALL:
        for label, seconds in warm_up.items():
            samples[label].append(seconds)
        first = 1
    for run in range(first, n_runs):
        shift = run % len(arms)
        for arm in arms[shift:] + arms[:shift]:
            count = repeats[arm.label]
            started = time.perf_counter()
            for _ in range(count):
                arm.call()
            samples[arm.label].append((time.perf_counter() - started) / count)
    return {label: statistics.median(values) for label, values in samples.items()}


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


# -- data ---------------------------------------------------------------------------------


def synthetic_user_items(
    n_users: int, n_items: int, n_target: int, seed: int = SEED
) -> sp.csr_matrix:
    """A binary users × items CSR with power-law item popularity and skewed user activity.

    Item ``i`` (in a shuffled order) is drawn with probability proportional to
    ``rank ** -1``; users are drawn with log-normal activity weights, and each user gets 5
    draws to start with. Repeated (user, item) draws merge into one entry, so draws are
    added in rounds until the matrix holds at least 99 % of ``n_target`` entries.
    Every user has at least one entry.
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)
    popularity = rng.permutation(popularity / popularity.sum())
    activity = rng.lognormal(mean=0.0, sigma=1.0, size=n_users)
    activity /= activity.sum()
    rows = np.repeat(np.arange(n_users), 5)
    keys = np.unique(rows * n_items + rng.choice(n_items, size=rows.size, p=popularity))
    while keys.size < 0.99 * n_target:
        n_draws = int(1.3 * (n_target - keys.size))
        rows = rng.choice(n_users, size=n_draws, p=activity)
        cols = rng.choice(n_items, size=n_draws, p=popularity)
        keys = np.union1d(keys, rows * n_items + cols)
    matrix = sp.csr_matrix(
        (np.ones(keys.size, dtype=np.float32), (keys // n_items, keys % n_items)),
        shape=(n_users, n_items),
    )
    matrix.sort_indices()
    return matrix


def describe(user_items: sp.csr_matrix) -> str:
    n_users, n_items = user_items.shape
    return f"{n_users:,} users × {n_items:,} items, {user_items.nnz:,} interactions"


# -- direct implicit calls ----------------------------------------------------------------


def direct_model(algorithm: str, params: dict[str, Any]) -> Any:
    """The implicit model a user would build by hand from our model's parameters."""
    threads = 1 if params.get("n_jobs") is None else int(params["n_jobs"])
    if algorithm == "als":
        return AlternatingLeastSquares(
            factors=params["n_factors"],
            regularization=params["regularization"],
            alpha=params["alpha"],
            iterations=params["n_iter"],
            random_state=params["random_state"],
            num_threads=threads,
        )
    if algorithm == "bpr":
        return BayesianPersonalizedRanking(
            factors=params["n_factors"],
            learning_rate=params["learning_rate"],
            regularization=params["regularization"],
            iterations=params["n_iter"],
            random_state=params["random_state"],
            num_threads=threads,
        )
    if algorithm == "lmf":
        return LogisticMatrixFactorization(
            factors=params["n_factors"],
            learning_rate=params["learning_rate"],
            regularization=params["regularization"],
            neg_prop=params["neg_prop"],
            iterations=params["n_iter"],
            random_state=params["random_state"],
            num_threads=threads,
        )
    if algorithm == "itemknn":
        if params["weighting"] == "bm25":
            return BM25Recommender(
                K=params["n_neighbors"],
                K1=params["bm25_k1"],
                B=params["bm25_b"],
                num_threads=threads,
            )
        kind = {"cosine": CosineRecommender, "tfidf": TFIDFRecommender}[params["weighting"]]
        return kind(K=params["n_neighbors"], num_threads=threads)
    raise ValueError(f"No direct implicit call for {algorithm!r}.")


def direct_fit_recommend(
    algorithm: str, params: dict[str, Any], user_items: sp.csr_matrix, *, limit_blas: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Build, fit and ask implicit directly for every user's top-k; return (ids, scores).

    With ``limit_blas``, BLAS is held to one thread where our wrappers hold it: while the
    model is built and fitted, and while recommending with more than one implicit thread.
    """
    users = np.arange(user_items.shape[0])
    fit_limit = single_blas_thread if limit_blas else contextlib.nullcontext
    with fit_limit(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        model = direct_model(algorithm, params)
        model.fit(user_items, show_progress=False)
    return recommend_direct(model, users, user_items[users], limit_blas=limit_blas)


def recommend_direct(
    model: Any, users: np.ndarray, history: sp.csr_matrix, *, limit_blas: bool
) -> Any:
    limited = limit_blas and model.num_threads != 1
    with single_blas_thread() if limited else contextlib.nullcontext():
        return model.recommend(users, history, N=K, filter_already_liked_items=True)


def metarec_fit_recommend(
    algorithm: str, config: dict[str, Any], data: Interactions
) -> tuple[np.ndarray, np.ndarray]:
    model = make_recommender(algorithm, config)
    model.fit(data)
    return model.recommend(np.arange(data.n_users), k=K)


def same_lists(ours: np.ndarray, direct: tuple[np.ndarray, np.ndarray]) -> str:
    """How many users get the same top-k from metarec and from implicit directly.

    implicit's filler entries (id -1, or the lowest float32 score) count as metarec's
    padding (-1).
    """
    ids, scores = direct
    ids = np.where((ids < 0) | ~(scores > -np.finfo(np.float32).max), -1, ids)
    return f"{int((ours == ids).all(axis=1).sum())}/{len(ours)}"


def case_params(algorithm: str, fixed: dict[str, Any], data_name: str) -> dict[str, Any]:
    """Default parameters of ``algorithm`` with ``fixed`` on top and a fixed seed."""
    params = {**get_recommender_class(algorithm)().get_params(), **fixed}
    if data_name == "synthetic":
        params.update(SYNTHETIC_OVERRIDES.get(algorithm, {}))
    if "random_state" in params:
        params["random_state"] = SEED
    return params


# -- the three parts ----------------------------------------------------------------------


def part_overhead(datasets: dict[str, Interactions], n_runs: int, min_run: float) -> list[str]:
    print(f"\n(a) fit + recommend k={K} for every user: metarec vs implicit called directly")
    print(
        "    direct = same parameters, BLAS held to 1 thread where metarec holds it (goal "
        f"metarec/direct <= {OVERHEAD_GOAL}); raw = direct without any BLAS limit; same "
        "lists = users whose top-k is identical from both (users without history get "
        "metarec's popularity fallback)"
    )
    rows, failures = [], []
    for data_name, data in datasets.items():
        for label, algorithm, fixed in IMPLICIT_CASES:
            params = case_params(algorithm, fixed, data_name)
            config = {key: value for key, value in params.items() if key != "warm_start"}
            arms = [
                Arm(
                    "metarec", lambda a=algorithm, c=config, d=data: metarec_fit_recommend(a, c, d)
                ),
                Arm(
                    "direct",
                    lambda a=algorithm, p=params, m=data.user_items: direct_fit_recommend(
                        a, p, m, limit_blas=True
                    ),
                ),
                Arm(
                    "raw",
                    lambda a=algorithm, p=params, m=data.user_items: direct_fit_recommend(
                        a, p, m, limit_blas=False
                    ),
                ),
            ]
            first: dict[str, Any] = {}
            # The goal's two arms are interleaved with each other only: after the raw arm,
            # OpenBLAS's idle threads keep spinning for a while and slow whatever runs next,
            # which in a three-way rotation is twice as often metarec as direct.
            times = time_interleaved(arms[:2], n_runs, min_run, first)
            times.update(time_interleaved(arms[2:], n_runs, min_run))
            agreement = same_lists(first["metarec"][0], first["direct"])
            ratio = times["metarec"] / times["direct"]
            verdict = "PASS" if ratio <= OVERHEAD_GOAL else "FAIL"
            if verdict == "FAIL":
                failures.append(f"(a) {data_name} {label}: {ratio:.3f}")
            rows.append(
                [
                    data_name,
                    label,
                    _threads(params),
                    agreement,
                    f"{times['metarec']:.4f}",
                    f"{times['direct']:.4f}",
                    f"{times['raw']:.4f}",
                    f"{ratio:.3f}",
                    f"{times['metarec'] / times['raw']:.3f}",
                    f"<= {OVERHEAD_GOAL}",
                    verdict,
                ]
            )
            print(f"    ... {data_name} {label} done", file=sys.stderr, flush=True)
    print_table(
        [
            "data",
            "model",
            "threads",
            "same lists",
            "metarec s",
            "direct s",
            "raw s",
            "metarec/direct",
            "metarec/raw",
            "goal",
            "result",
        ],
        rows,
    )
    return failures


def part_evaluate(data: Interactions, n_runs: int, min_run: float) -> list[str]:
    split = random_holdout_split(data, test_fraction=0.2, random_state=42)
    train_m, test_m = split.train.user_items, split.test.user_items
    users = np.flatnonzero(np.diff(test_m.indptr) > 0)
    print(
        f"\n(b) evaluate(model, train, test, k={K}) vs the implicit model's batch recommend "
        f"for the same {users.size:,} test users (ml-100k, per-user 80/20, seed 42)"
    )
    print(
        "    evaluate = all metrics (the default), ndcg-only = metrics=('ndcg',); direct = "
        "model.model_.recommend with BLAS held where metarec holds it (goal evaluate/direct "
        f"<= {EVALUATE_GOAL}); raw = the same call without a limit"
    )
    rows, failures = [], []
    for label, algorithm, fixed in IMPLICIT_CASES:
        params = case_params(algorithm, fixed, "ml-100k")
        config = {key: value for key, value in params.items() if key != "warm_start"}
        model = make_recommender(algorithm, config).fit(split.train)
        ndcg = evaluate(model, split.train, split.test, k=K, metrics=("ndcg",)).mean[f"ndcg@{K}"]
        arms = [
            Arm("evaluate", lambda m=model: evaluate(m, split.train, split.test, k=K)),
            Arm(
                "ndcg only",
                lambda m=model: evaluate(m, split.train, split.test, k=K, metrics=("ndcg",)),
            ),
            Arm(
                "direct",
                lambda m=model: recommend_direct(m.model_, users, train_m[users], limit_blas=True),
            ),
            Arm(
                "raw",
                lambda m=model: recommend_direct(m.model_, users, train_m[users], limit_blas=False),
            ),
        ]
        times = time_interleaved(arms, n_runs, min_run)
        ratio = times["evaluate"] / times["direct"]
        verdict = "PASS" if ratio <= EVALUATE_GOAL else "FAIL"
        if verdict == "FAIL":
            failures.append(f"(b) ml-100k {label}: {ratio:.3f}")
        rows.append(
            [
                label,
                f"{ndcg:.4f}",
                f"{times['evaluate'] * 1e3:.2f}",
                f"{times['ndcg only'] * 1e3:.2f}",
                f"{times['direct'] * 1e3:.2f}",
                f"{times['raw'] * 1e3:.2f}",
                f"{ratio:.3f}",
                f"{times['ndcg only'] / times['direct']:.3f}",
                f"{times['evaluate'] / times['raw']:.3f}",
                f"<= {EVALUATE_GOAL}",
                verdict,
            ]
        )
        print(f"    ... {label} done", file=sys.stderr, flush=True)
    print_table(
        [
            "model",
            f"ndcg@{K}",
            "evaluate ms",
            "ndcg-only ms",
            "direct ms",
            "raw ms",
            "evaluate/direct",
            "ndcg-only/direct",
            "evaluate/raw",
            "goal",
            "result",
        ],
        rows,
    )
    return failures


def part_threads(datasets: dict[str, Interactions], n_runs: int, min_run: float) -> list[str]:
    cases = []
    for algorithm in ALGORITHM_NAMES:
        defaults = get_recommender_class(algorithm)().get_params()
        if "n_jobs" not in defaults:
            continue
        if algorithm == "itemknn":
            cases += [(f"itemknn-{w}", algorithm, {"weighting": w}) for w in ("cosine", "bm25")]
            cases.append(("itemknn-tfidf", algorithm, {"weighting": "tfidf"}))
        else:
            cases.append((algorithm, algorithm, {}))
    print(
        f"\n(c) n_jobs=1 vs n_jobs=2, fit + recommend k={K} for every user (goal: default "
        f"n_jobs <= {THREADS_GOAL} × the faster setting)"
    )
    rows, failures = [], []
    for data_name, data in datasets.items():
        for label, algorithm, fixed in cases:
            params = case_params(algorithm, fixed, data_name)
            config = {key: value for key, value in params.items() if key != "warm_start"}
            default_jobs = params["n_jobs"]
            arms = [
                Arm(
                    f"n_jobs={jobs}",
                    lambda a=algorithm, c={**config, "n_jobs": jobs}, d=data: metarec_fit_recommend(
                        a, c, d
                    ),
                )
                for jobs in (1, 2)
            ]
            times = time_interleaved(arms, n_runs, min_run)
            t1, t2 = times["n_jobs=1"], times["n_jobs=2"]
            best = 1 if t1 <= t2 else 2
            default_threads = _thread_count(default_jobs)
            t_default = times[f"n_jobs={default_threads}"]
            ratio = t_default / min(t1, t2)
            verdict = "PASS" if ratio <= THREADS_GOAL else "FAIL"
            if verdict == "FAIL":
                failures.append(
                    f"(c) {data_name} {label}: default n_jobs={default_jobs!r} is {ratio:.3f}× "
                    f"the best (n_jobs={best})"
                )
            rows.append(
                [
                    data_name,
                    label,
                    f"{t1:.4f}",
                    f"{t2:.4f}",
                    f"{t1 / t2:.3f}",
                    f"n_jobs={best}",
                    f"{default_jobs!r} (={default_threads})",
                    f"{ratio:.3f}",
                    f"<= {THREADS_GOAL}",
                    verdict,
                ]
            )
            print(f"    ... {data_name} {label} done", file=sys.stderr, flush=True)
    print_table(
        [
            "data",
            "model",
            "1 thread s",
            "2 threads s",
            "t1/t2",
            "best",
            "default n_jobs",
            "default/best",
            "goal",
            "result",
        ],
        rows,
    )
    return failures


# -- output -------------------------------------------------------------------------------


def print_environment() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, {platform.platform()}")
    print(f"python {platform.python_version()}; {load_average()}")
    print(
        f"metarec_classic {metarec_classic.__version__}, implicit {implicit.__version__}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}, "
        f"optuna {optuna.__version__}, threadpoolctl {threadpoolctl.__version__}"
    )
    for line in blas_lines():
        print(line)


def _threads(params: dict[str, Any]) -> str:
    return str(_thread_count(params.get("n_jobs")))


def _thread_count(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return int(n_jobs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 runs, small data")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5)")
    parser.add_argument(
        "--min-run", type=float, default=None, help="seconds a run lasts at least (default 0.3)"
    )
    parser.add_argument(
        "--parts", default="abc", help="which parts to run, any of 'a', 'b', 'c' (default abc)"
    )
    args = parser.parse_args()
    n_runs = args.runs or (2 if args.quick else 5)
    min_run = args.min_run if args.min_run is not None else (0.05 if args.quick else 0.3)
    if args.quick:
        synth_shape = (5_000, 2_000, 100_000)
    else:
        synth_shape = (25_000, 5_000, 1_000_000)
    warnings.simplefilter("ignore", ParameterWarning)

    started = time.perf_counter()
    print_environment()
    ml100k = load_dataset("ml-100k")
    synth_matrix = synthetic_user_items(*synth_shape)
    synth = from_sparse(synth_matrix, name="synthetic")
    datasets = {"ml-100k": ml100k, "synthetic": synth}
    print(f"ml-100k (ratings >= 4): {describe(ml100k.user_items)}")
    print(
        f"synthetic (seed {SEED}, item popularity ∝ 1/rank, log-normal user activity): "
        f"{describe(synth_matrix)}"
    )
    for algorithm, changed in SYNTHETIC_OVERRIDES.items():
        print(f"on the synthetic matrix {algorithm} runs with {changed} in every arm (run time)")
    print(f"runs per figure: {n_runs} (median), each run at least {min_run} s of repeated calls")

    failures: list[str] = []
    if "a" in args.parts:
        failures += part_overhead(datasets, n_runs, min_run)
    if "b" in args.parts:
        failures += part_evaluate(ml100k, n_runs, min_run)
    if "c" in args.parts:
        failures += part_threads(datasets, n_runs, min_run)

    print_verdict(failures, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
