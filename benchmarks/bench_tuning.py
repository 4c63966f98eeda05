"""Default against tuned configuration of every algorithm on the shared datasets.

    python benchmarks/bench_tuning.py                       # every algorithm and dataset
    python benchmarks/bench_tuning.py --datasets ml-100k,coat --algorithms als,ease

For each (dataset, algorithm): a per-user 80/20 split (seed 42); the default configuration
fitted on the training part and scored on the test part (NDCG@10, fit seconds); then
``tune(algorithm, train, n_trials=..., seed=0, timeout=...)``, whose validation split is
cut from the training part only, and its best configuration refitted on the whole
training part and scored on the test part. One row per pair is appended to
``benchmarks/results/tuning_table.csv`` as soon as it is done; pairs already in the file
are skipped, so an interrupted run resumes where it stopped. The whole table is printed
at the end.

``--timeout`` caps each study: Optuna starts no new trial after it (the running trial
finishes), and the row records how many trials completed and failed. Models that take a
``random_state`` are seeded with 0 for the default fit and the refit, as tuning seeds them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from metarec_classic.data import load_dataset, random_holdout_split
from metarec_classic.evaluation import evaluate
from metarec_classic.exceptions import TuningError
from metarec_classic.recommenders import ALGORITHM_NAMES, get_recommender_class, make_recommender
from metarec_classic.tuning import tune

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "tuning_table.csv"
#: Every shared dataset (about an hour and a half on two cores with the default budget).
DEFAULT_DATASETS = (
    "ml-100k",
    "ml-latest-small",
    "filmtrust",
    "coat",
    "douban-monti",
    "lastfm-hetrec-2k",
    "amazon-magazine",
    "ciaodvd",
    "citeulike-a",
    "jester5k",
    "msweb",
    "movietweetings-100k",
    "foursquare-sg",
    "retailrocket-caserec",
    "bookcrossing-caserec",
)
COLUMNS = (
    "dataset",
    "algorithm",
    "default_ndcg@10",
    "tuned_ndcg@10",
    "default_fit_s",
    "search_s",
    "n_trials_complete",
    "n_trials_failed",
    "best_config",
)
K = 10
SPLIT_SEED = 42
TUNE_SEED = 0


def seeded(algorithm: str) -> dict[str, Any]:
    """``random_state=TUNE_SEED`` for the models that take one, as ``tune`` seeds them."""
    params = get_recommender_class(algorithm)().get_params()
    return {"random_state": TUNE_SEED} if "random_state" in params else {}


def test_ndcg(algorithm: str, config: dict[str, Any], split: Any) -> tuple[float, float]:
    """Fit ``config`` on the training part; return (test NDCG@k, fit seconds)."""
    model = make_recommender(algorithm, config, **seeded(algorithm))
    started = time.perf_counter()
    model.fit(split.train)
    fit_s = time.perf_counter() - started
    result = evaluate(model, split.train, split.test, k=K, metrics=("ndcg",))
    return result.mean[f"ndcg@{K}"], fit_s


def run_pair(dataset: str, algorithm: str, split: Any, n_trials: int, timeout: float) -> dict:
    row: dict[str, Any] = {"dataset": dataset, "algorithm": algorithm}

    # Default configuration.
    try:
        row["default_ndcg@10"], row["default_fit_s"] = test_ndcg(algorithm, {}, split)
    except Exception as err:
        print(f"  default {algorithm} failed: {type(err).__name__}: {err}", flush=True)
        row["default_ndcg@10"], row["default_fit_s"] = math.nan, math.nan

    # Search on the training part, then refit the best configuration on all of it.
    storage = optuna.storages.InMemoryStorage()
    study_name = f"{algorithm}-{dataset}-seed{TUNE_SEED}"
    started = time.perf_counter()
    try:
        result = tune(
            algorithm,
            split.train,
            n_trials=n_trials,
            seed=TUNE_SEED,
            timeout=timeout,
            storage=storage,
            study_name=study_name,
        )
    except TuningError as err:
        row["search_s"] = time.perf_counter() - started
        print(f"  search {algorithm} failed: {err}", flush=True)
        states = [t.state for t in optuna.load_study(study_name=study_name, storage=storage).trials]
        row["n_trials_complete"] = states.count(optuna.trial.TrialState.COMPLETE)
        row["n_trials_failed"] = states.count(optuna.trial.TrialState.FAIL)
        row["tuned_ndcg@10"], row["best_config"] = math.nan, "null"
        return row
    row["search_s"] = time.perf_counter() - started
    row["n_trials_complete"], row["n_trials_failed"] = result.n_complete, result.n_failed
    row["best_config"] = json.dumps(result.best_config, sort_keys=True)
    try:
        row["tuned_ndcg@10"], _ = test_ndcg(algorithm, result.best_config, split)
    except Exception as err:
        print(f"  refit {algorithm} failed: {type(err).__name__}: {err}", flush=True)
        row["tuned_ndcg@10"] = math.nan
    print(
        f"  {dataset} {algorithm}: validation ndcg@{K} of the best trial {result.best_score:.4f}",
        flush=True,
    )
    return row


def done_pairs(path: Path) -> set[tuple[str, str]]:
    if not path.exists():
        return set()
    with path.open(newline="") as handle:
        return {(row["dataset"], row["algorithm"]) for row in csv.DictReader(handle)}


def append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({key: _cell(row[key]) for key in COLUMNS})
        handle.flush()
        os.fsync(handle.fileno())


def print_table(path: Path, datasets: list[str], algorithms: list[str]) -> None:
    with path.open(newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["dataset"] in datasets and row["algorithm"] in algorithms
        ]
    rows.sort(key=lambda r: (datasets.index(r["dataset"]), algorithms.index(r["algorithm"])))
    headers = [
        "dataset",
        "algorithm",
        "default ndcg",
        "tuned ndcg",
        "gain",
        "default fit s",
        "search s",
        "complete",
        "failed",
    ]
    table = [
        [
            r["dataset"],
            r["algorithm"],
            r["default_ndcg@10"],
            r["tuned_ndcg@10"],
            _gain(r["default_ndcg@10"], r["tuned_ndcg@10"]),
            r["default_fit_s"],
            r["search_s"],
            r["n_trials_complete"],
            r["n_trials_failed"],
        ]
        for r in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *table, strict=True)]
    print("  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in table:
        print("  ".join(f"{c:<{w}}" for c, w in zip(line, widths, strict=True)))
    print("\nbest configurations:")
    for r in rows:
        print(f"  {r['dataset']:<18} {r['algorithm']:<13} {r['best_config']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--algorithms", default=",".join(ALGORITHM_NAMES))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=40.0, help="seconds per study")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    algorithms = [name.strip() for name in args.algorithms.split(",") if name.strip()]
    unknown = sorted(set(algorithms) - set(ALGORITHM_NAMES))
    if unknown:
        parser.error(f"unknown algorithms {unknown}; choose from {', '.join(ALGORITHM_NAMES)}")
    warnings.simplefilter("ignore")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    print(
        f"tuning benchmark: {len(datasets)} datasets × {len(algorithms)} algorithms, "
        f"{args.trials} trials, timeout {args.timeout:g} s per study, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    done = done_pairs(args.out)
    for dataset in datasets:
        todo = [a for a in algorithms if (dataset, a) not in done]
        if not todo:
            print(f"{dataset}: every algorithm already in {args.out.name}", flush=True)
            continue
        data = load_dataset(dataset)
        split = random_holdout_split(data, test_fraction=0.2, random_state=SPLIT_SEED)
        print(
            f"{dataset}: {data.n_users:,} users × {data.n_items:,} items, "
            f"{split.train.n_interactions:,} train / {split.test.n_interactions:,} test",
            flush=True,
        )
        for algorithm in todo:
            if (dataset, algorithm) in done_pairs(args.out):
                # Another run writing the same table finished this pair meanwhile.
                print(f"  {dataset} {algorithm}: already in {args.out.name}", flush=True)
                continue
            pair_started = time.perf_counter()
            row = run_pair(dataset, algorithm, split, args.trials, args.timeout)
            append_row(args.out, row)
            print(
                f"  {dataset} {algorithm}: default {_cell(row['default_ndcg@10'])}, tuned "
                f"{_cell(row['tuned_ndcg@10'])}, {row['n_trials_complete']} complete / "
                f"{row['n_trials_failed']} failed trials, "
                f"{time.perf_counter() - pair_started:.1f} s in all "
                f"(elapsed {time.perf_counter() - started:.0f} s)",
                flush=True,
            )

    print(f"\ntable ({args.out}):")
    print_table(args.out, datasets, algorithms)
    print(f"\nwall time of this run {time.perf_counter() - started:.1f} s")
    return 0


def _cell(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{float(value):.6g}"
    return value


def _gain(default: str, tuned: str) -> str:
    try:
        return f"{float(tuned) - float(default):+.4f}"
    except ValueError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
