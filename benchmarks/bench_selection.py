"""Leave-one-family-out evaluation of meta-learned selection against the baselines users have.

For each dataset family that has a tuned portfolio in ``results/tuning_table.csv``
(written by ``bench_tuning.py``: every algorithm's default and 30-trial tuned test
NDCG@10 per dataset, per-user 80/20 split, seed 42):

1. train a meta-model on the shipped labels *without* that family's tasks;
2. for each of the family's datasets, select on the training split, fit the top pick
   with zero trials, and score it on the test split;
3. compare with the tuned portfolio of that dataset.

Printed per dataset and as medians:

- ``ndcg_pick``: test NDCG@10 of the zero-trial pick, and ``pick/oracle``;
- ``%diff`` = (best - chosen) / (best - worst) over the tuned portfolio, for the pick and
  for the baselines: the single best algorithm on the training families with its best
  average configuration (``single_best``), a uniformly random algorithm at its tuned
  configuration (``random``, an expectation), and each algorithm's default
  (``defaults``, the median over algorithms);
- ``top1``: whether the picked algorithm is the portfolio's best.

Run ``python benchmarks/bench_selection.py``; the table is also written to
``results/selection.csv``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from metarec_classic.data import DATASETS, load_dataset, random_holdout_split
from metarec_classic.evaluation import evaluate
from metarec_classic.meta import LabelSet, MetaModel, load_shipped_labels, select
from metarec_classic.recommenders import get_recommender_class, make_recommender
from metarec_classic.tuning import position_in_space

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def single_best(labels: LabelSet) -> tuple[str, dict]:
    """The algorithm with the best mean relative score, at its best average configuration.

    Design configurations differ between tasks, so a configuration's average over tasks
    is estimated from each task's nearest labelled configuration of the same algorithm
    (distance in the search space scaled to [0, 1], log where the space is log).
    """
    table = labels.labels[labels.labels["state"] == "COMPLETE"].copy()
    best = table.groupby("task_id")["score"].transform("max")
    table["relative"] = np.where(best > 0, table["score"] / best.where(best > 0, 1.0), 0.0)
    per_task = table.groupby(["algorithm", "task_id"])["relative"].max()
    algorithm = per_task.groupby("algorithm").mean().idxmax()
    rows = table[table["algorithm"] == algorithm]
    space = get_recommender_class(algorithm).search_space()
    configs = [json.loads(c) for c in rows["config"]]
    points = np.array([position_in_space(c, space) for c in configs]).reshape(len(rows), -1)
    task_ids = rows["task_id"].to_numpy()
    relative = rows["relative"].to_numpy()
    scores = []
    for point in points:
        nearest = []
        for task in np.unique(task_ids):
            mask = task_ids == task
            distance = np.abs(points[mask] - point).sum(axis=1)
            nearest.append(relative[mask][np.argmin(distance)])
        scores.append(np.mean(nearest))
    return str(algorithm), configs[int(np.argmax(scores))]


def test_ndcg(algorithm: str, config: dict, split) -> float:
    extra = (
        {"random_state": 0}
        if "random_state" in get_recommender_class(algorithm)().get_params()
        else {}
    )
    model = make_recommender(algorithm, config, **extra).fit(split.train)
    return float(evaluate(model, split.train, split.test, k=10, metrics=("ndcg",)).mean["ndcg@10"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=RESULTS / "tuning_table.csv")
    parser.add_argument("--out", type=Path, default=RESULTS / "selection.csv")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    # Two runs of the tuning benchmark may have written the same pair; keep the first.
    portfolio = pd.read_csv(args.table).drop_duplicates(["dataset", "algorithm"])
    labels = load_shipped_labels()
    rows = []
    for dataset, tuned in portfolio.groupby("dataset"):
        family = DATASETS[dataset].family
        train_labels = labels.without_family(family)
        model = MetaModel().fit(train_labels)
        split = random_holdout_split(load_dataset(dataset), test_fraction=0.2, random_state=42)

        started = time.perf_counter()
        selection = select(split.train, model)
        select_seconds = time.perf_counter() - started
        pick = selection.best
        pick_ndcg = test_ndcg(pick.algorithm, pick.config, split)
        sb_algorithm, sb_config = single_best(train_labels)
        sb_ndcg = test_ndcg(sb_algorithm, sb_config, split)

        scores = tuned.set_index("algorithm")["tuned_ndcg@10"]
        best, worst = float(scores.max()), float(scores.min())
        spread = (best - worst) or 1.0

        def diff(value: float, best: float = best, spread: float = spread) -> float:
            return 100.0 * (best - value) / spread

        rows.append(
            {
                "dataset": dataset,
                "family": family,
                "pick": pick.algorithm,
                "pick_config": json.dumps(pick.config),
                "ndcg_pick": pick_ndcg,
                "ndcg_oracle": best,
                "pick/oracle": pick_ndcg / best if best > 0 else np.nan,
                "%diff_pick": diff(pick_ndcg),
                "%diff_single_best": diff(sb_ndcg),
                "single_best": sb_algorithm,
                "%diff_random": float(np.mean([diff(v) for v in scores])),
                "%diff_defaults": float(np.median([diff(v) for v in tuned["default_ndcg@10"]])),
                "top1": pick.algorithm == scores.idxmax(),
                "oracle_algorithm": scores.idxmax(),
                "select_s": select_seconds,
                "out_of_range": len(selection.out_of_range),
            }
        )
        print(
            f"{dataset:>22}  pick {pick.algorithm:<12} ndcg {pick_ndcg:.4f} "
            f"oracle {best:.4f} ({scores.idxmax()})  %diff {rows[-1]['%diff_pick']:.1f}",
            flush=True,
        )

    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["pick_config"]).round(3).to_string(index=False))
    print()
    print(
        f"median %diff: pick {table['%diff_pick'].median():.1f} | single best "
        f"{table['%diff_single_best'].median():.1f} | random {table['%diff_random'].median():.1f}"
        f" | defaults {table['%diff_defaults'].median():.1f}   (goal for the pick: <= 10)"
    )
    print(f"median pick/oracle NDCG@10: {table['pick/oracle'].median():.3f}   (goal: >= 0.95)")
    print(f"top-1 algorithm was the best on {int(table['top1'].sum())} of {len(table)} datasets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
