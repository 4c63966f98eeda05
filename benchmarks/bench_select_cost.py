"""Cost of meta-learned selection against one default ALS fit, on the largest dataset.

The largest shared dataset is found by counting interactions after ``load_dataset``'s
defaults. On its training split (per-user 80/20, seed 42) the script times, interleaved
and alternating which goes first:

- ``select(train, load_pretrained())``: dataset meta-features, landmarkers and the
  meta-model's ranking together;
- ``make_recommender("als").fit(train)``: one ALS fit at its default configuration.

It prints both medians and their ratio against the goal (select <= 0.25 x ALS fit), then
a breakdown of ``select`` (meta-features without landmarkers, landmarkers, ranking),
also medians of interleaved runs.

    python benchmarks/bench_select_cost.py               # 5 runs each
    python benchmarks/bench_select_cost.py --runs 7 --dataset citeulike-a --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
import warnings

from metarec_classic.data import DATASETS, load_dataset, random_holdout_split
from metarec_classic.meta import MetaModel, load_pretrained, select
from metarec_classic.metafeatures import dataset_metafeatures
from metarec_classic.recommenders import make_recommender

GOAL = 0.25


def largest_dataset() -> tuple[str, int]:
    """The shared dataset with the most interactions after the loader's defaults."""
    sizes = {}
    for name in DATASETS:
        if name == "demo":  # the embedded copy of movietweetings-100k
            continue
        sizes[name] = load_dataset(name).n_interactions
    name = max(sizes, key=sizes.__getitem__)
    print(
        "interactions after load_dataset defaults: "
        + ", ".join(f"{k} {v}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]))
    )
    return name, sizes[name]


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="skip the size search and use this dataset")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (>= 5)")
    parser.add_argument("--model", help="folder of a saved meta-model (default: shipped)")
    parser.add_argument(
        "--profile", action="store_true", help="also print the costliest calls of one select"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    runs = max(args.runs, 5)

    name = args.dataset or largest_dataset()[0]
    train = random_holdout_split(load_dataset(name), test_fraction=0.2, random_state=42).train
    print(
        f"{name}: training split {train.n_users} users x {train.n_items} items, "
        f"{train.n_interactions} interactions"
    )
    meta_model = MetaModel.load(args.model) if args.model else load_pretrained()
    print(
        f"meta-model: {len(meta_model.candidates_)} candidates, "
        f"{meta_model.n_training_tasks_} training tasks"
    )

    # Warm-up: imports, caches and thread pools out of the timed runs.
    select(train, meta_model)
    make_recommender("als").fit(train)

    # Interleaved: select and ALS alternate, and which one goes first alternates too.
    select_times, als_times = [], []
    for run in range(runs):
        pair = [
            (select_times, lambda: select(train, meta_model)),
            (als_times, lambda: make_recommender("als").fit(train)),
        ]
        for times, function in pair if run % 2 == 0 else pair[::-1]:
            times.append(timed(function))
    select_median = statistics.median(select_times)
    als_median = statistics.median(als_times)
    ratio = select_median / als_median
    print(
        f"select: median {select_median:.3f} s over {runs} runs "
        f"({', '.join(f'{t:.3f}' for t in select_times)})"
    )
    print(
        f"ALS fit (default config): median {als_median:.3f} s over {runs} runs "
        f"({', '.join(f'{t:.3f}' for t in als_times)})"
    )
    print(
        f"select / ALS fit = {ratio:.3f}   (goal: <= {GOAL}) "
        f"{'MET' if ratio <= GOAL else 'NOT MET'}"
    )

    # Breakdown, interleaved the same way: features without landmarkers, all features
    # (the difference is the landmarkers), ranking of every candidate.
    features = dataset_metafeatures(train, random_state=0)
    parts: dict[str, list[float]] = {"base": [], "full": [], "rank": []}
    for _ in range(runs):
        parts["base"].append(timed(lambda: dataset_metafeatures(train, landmarkers=False)))
        parts["full"].append(timed(lambda: dataset_metafeatures(train, random_state=0)))
        parts["rank"].append(
            timed(lambda: (meta_model.rank(features), meta_model.out_of_range(features)))
        )
    base = statistics.median(parts["base"])
    landmarks = statistics.median(f - b for f, b in zip(parts["full"], parts["base"], strict=True))
    rank = statistics.median(parts["rank"])
    print("breakdown of select (medians):")
    print(f"  meta-features without landmarkers  {base:.3f} s")
    print(f"  landmarkers                        {landmarks:.3f} s")
    print(f"  ranking {len(meta_model.candidates_):>6} candidates           {rank:.3f} s")
    print(f"  sum                                {base + landmarks + rank:.3f} s")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(select, train, meta_model)
        print("costliest calls of one select (cumulative seconds, profiler overhead included):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
