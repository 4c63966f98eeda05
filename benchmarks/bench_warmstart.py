"""Warm-started search against a cold TPE search over the whole portfolio.

Leave-one-family-out, like ``bench_selection.py``: for each held-out dataset,

1. train a meta-model on the shipped labels *without* the dataset's family;
2. split the data per user 80/20 (seed 42) and keep the training split only;
3. on that training split run two searches with the same seed (hence the same
   validation split, which ``tune`` cuts from the training split):

   - ``warm``: ``select`` ranks the candidates, ``Selection.warm_start`` picks the
     algorithms and the queue of first configurations, and ``tune`` searches those
     algorithms with that queue;
   - ``cold``: ``tune`` over every algorithm, TPE from the first trial, no queue.

The best validation NDCG@10 so far is recorded after every trial (a failed trial
carries the previous best). Printed per dataset: how many warm trials reach the cold
search's best after N trials (``>N`` if never), and 99 % of it; both bests after N; the
time of ``select``; whether a study was cut short by a time cap. At the end: the
medians and the goals (median trials-to-match <= 10; warm worse than cold after N
trials on at most one dataset in ten).

By default a study has no time cap, so "after N trials" means N trials on every
dataset, whatever the machine's speed or load. With ``--timeout`` the large datasets
stop short of N, and the queue's time shares (see ``tune``) come into play: that is
how a time budget is measured (``--timeout 300 --out results/warmstart-300s.csv``).

With several seeds, a dataset counts as lost when the median over seeds of the paired
difference (warm best − cold best, the two studies of one seed sharing one validation
split) is below zero. Each seed draws its own validation split, so bests of different
seeds are on different scales; the medians of the two sides taken apart can set one
seed's warm against another seed's cold. That count is printed as well.

    python benchmarks/bench_warmstart.py                     # 15 datasets, 50 trials, seed 0
    python benchmarks/bench_warmstart.py --datasets coat ml-100k --trials 20 --seeds 0 1
    python benchmarks/bench_warmstart.py --seeds 0 1 2 --report  # summarise the CSV only
    python benchmarks/bench_warmstart.py --seeds 0 1 2 --report --paired  # and the noise
    python benchmarks/bench_warmstart.py --seeds 0 1 2 --rerun-warm  # warm side only, again

Rows go to ``results/warmstart.csv`` (dataset, seed, kind, trial, score, best_so_far,
plus the trial's algorithm, seconds since the study started and configuration as JSON)
once both studies of a (dataset, seed) pair have finished; a rerun skips the pairs
already there. After a change to the warm start, ``--rerun-warm`` runs the warm studies
of the pairs already there again and replaces their rows (pair by pair, so a cut-off
rerun keeps what it finished).
The curves are drawn in ``results/warmstart.png``.

A best-so-far gap of a few ten-thousandths may be luck of the validation users, and the
goal counts it all the same. ``--paired`` says which gaps stand out from that noise: it
refits each pair's two bests on their shared validation split and prints the mean
per-user difference, its standard error and their ratio (pairs recorded before
configurations were kept are left out). This is context for the verdicts, not a
different goal.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from metarec_classic.data import DATASETS, Interactions, load_dataset, random_holdout_split
from metarec_classic.exceptions import TuningError
from metarec_classic.meta import LabelSet, MetaModel, load_shipped_labels, select
from metarec_classic.recommenders import ALGORITHM_NAMES
from metarec_classic.tuning import Portfolio, TuningResult, compare_on_validation, tune

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: Every shared dataset (the demo is a MovieTweetings snapshot, held out with it).
DEFAULT_DATASETS = tuple(name for name in DATASETS if name != "demo")
COLUMNS = [
    "dataset",
    "seed",
    "kind",
    "trial",
    "score",
    "best_so_far",
    "algorithm",
    "seconds",
    "config",
]


def training_split(dataset: str) -> Interactions:
    """The training part of the dataset's per-user 80/20 split (seed 42); the studies search it."""
    return random_holdout_split(load_dataset(dataset), test_fraction=0.2, random_state=42).train


def curve(result: TuningResult, n_trials: int) -> pd.DataFrame:
    """Score, best-so-far and configuration (JSON) per trial number (1-based).

    A failed trial carries the best so far.
    """
    trials = result.trials.sort_values("number")
    trials = trials[trials["state"].isin(["COMPLETE", "FAIL"])].head(n_trials)
    portfolio = Portfolio(result.algorithm.split("+"))
    configs = {
        t.number: json.dumps(portfolio.decode(t.params)[1], sort_keys=True)
        for t in result.study.trials
    }
    score = trials["score"].where(trials["state"] == "COMPLETE").astype(float)
    started = min(t.datetime_start for t in result.study.trials if t.datetime_start is not None)
    finished = {
        t.number: (t.datetime_complete - started).total_seconds()
        for t in result.study.trials
        if t.datetime_complete is not None
    }
    algorithm = (
        trials["config.algorithm"]
        if "config.algorithm" in trials
        else pd.Series(result.algorithm, index=trials.index)
    )
    return pd.DataFrame(
        {
            "trial": np.arange(1, len(trials) + 1),
            "score": score.to_numpy(),
            "best_so_far": score.cummax().ffill().to_numpy(),
            "algorithm": algorithm.to_numpy(),
            "seconds": [finished.get(n, math.nan) for n in trials["number"]],
            "config": [configs[n] for n in trials["number"]],
        }
    )


def trials_to_match(warm: np.ndarray, target: float) -> int | None:
    """First trial (1-based) at which ``warm`` best-so-far reaches ``target``; None if never."""
    reached = np.flatnonzero(np.nan_to_num(warm, nan=-np.inf) >= target - 1e-12)
    return int(reached[0]) + 1 if reached.size else None


def run_pair(
    dataset: str,
    seed: int,
    meta_model: MetaModel,
    train,
    n_trials: int,
    timeout: float | None,
    *,
    cold: bool = True,
) -> tuple[pd.DataFrame, float]:
    """Run the warm and (unless ``cold`` is false) the cold study of one (dataset, seed).

    Returns the rows and the time of ``select``.
    """
    started = time.perf_counter()
    selection = select(train, meta_model)
    select_seconds = time.perf_counter() - started
    plan = selection.warm_start(n_trials)
    warm = tune(
        plan.algorithms,
        train,
        n_trials=n_trials,
        timeout=timeout,
        seed=seed,
        enqueue=plan.queue,
        enqueue_default=False,
        refine_share=plan.refine_share,
    )
    results = [("warm", warm)]
    if cold:
        cold_result = tune(
            list(ALGORITHM_NAMES),
            train,
            n_trials=n_trials,
            timeout=timeout,
            seed=seed,
            enqueue_default=False,
        )
        results.append(("cold", cold_result))
    frames = []
    for kind, result in results:
        frame = curve(result, n_trials)
        frame.insert(0, "kind", kind)
        frame.insert(0, "seed", seed)
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    print(
        f"  {dataset} seed {seed}: select {select_seconds:.1f} s, warm searches "
        f"{'+'.join(plan.algorithms)} with {len(plan.queue)} queued"
        + (
            f", {len(selection.out_of_range)} features out of range"
            if selection.out_of_range
            else ""
        ),
        flush=True,
    )
    return pd.concat(frames, ignore_index=True)[COLUMNS], select_seconds


def summarise(table: pd.DataFrame, n_trials: int) -> pd.DataFrame:
    """One row per (dataset, seed): trials to match, final bests, trials run, seconds."""
    rows = []
    for (dataset, seed), pair in table.groupby(["dataset", "seed"], sort=False):
        warm = pair[pair["kind"] == "warm"].sort_values("trial")
        cold = pair[pair["kind"] == "cold"].sort_values("trial")
        cold_best = float(cold["best_so_far"].iloc[-1])
        warm_best = float(warm["best_so_far"].iloc[-1])
        match = trials_to_match(warm["best_so_far"].to_numpy(), cold_best)
        near = trials_to_match(warm["best_so_far"].to_numpy(), 0.99 * cold_best)
        rows.append(
            {
                "dataset": dataset,
                "seed": seed,
                "to_match": match,
                "to_99pct": near,
                "warm_best": warm_best,
                "cold_best": cold_best,
                "warm_trials": len(warm),
                "cold_trials": len(cold),
                "warm_s": float(warm["seconds"].max()),
                "cold_s": float(cold["seconds"].max()),
                "warm_algorithm": warm.loc[warm["score"].idxmax(), "algorithm"]
                if warm["score"].notna().any()
                else "",
                "cold_algorithm": cold.loc[cold["score"].idxmax(), "algorithm"]
                if cold["score"].notna().any()
                else "",
                "cut_short": len(warm) < n_trials or len(cold) < n_trials,
            }
        )
    return pd.DataFrame(rows)


def best_trial(study_rows: pd.DataFrame) -> tuple[str, dict] | None:
    """The (algorithm, configuration) of a study's best trial; None without configs."""
    if "config" not in study_rows or study_rows["score"].isna().all():
        return None
    row = study_rows.loc[study_rows["score"].idxmax()]
    if not isinstance(row["config"], str):
        return None  # rows written before configurations were recorded
    return str(row["algorithm"]), json.loads(row["config"])


def paired_check(table: pd.DataFrame) -> pd.DataFrame:
    """Per pair, warm's best against cold's best, user by user on their shared split.

    The two bests are refitted on the validation split ``tune`` used (same seed), so the
    mean difference repeats the recorded one (``recorded``: a mismatch means the study
    did not repeat), and the standard error says how far the gap stands out from the
    noise of the validation users. Pairs recorded without configurations are left out.
    """
    rows = []
    trains: dict[str, Interactions] = {}
    for (dataset, seed), pair in table.groupby(["dataset", "seed"], sort=False):
        warm = best_trial(pair[pair["kind"] == "warm"])
        cold = best_trial(pair[pair["kind"] == "cold"])
        if warm is None or cold is None:
            continue
        if dataset not in trains:
            trains[dataset] = training_split(dataset)
        comparison = compare_on_validation(warm, cold, trains[dataset], seed=int(seed))
        recorded = float(
            pair.loc[pair["kind"] == "warm", "score"].max()
            - pair.loc[pair["kind"] == "cold", "score"].max()
        )
        rows.append(
            {
                "dataset": dataset,
                "seed": int(seed),
                "difference": comparison.difference,
                "recorded": recorded,
                "standard_error": comparison.standard_error,
                "n_users": comparison.n_users,
            }
        )
    return pd.DataFrame(rows)


def print_paired(paired: pd.DataFrame, n_pairs: int) -> None:
    """The paired check's table and how many pairs warm loses beyond the noise."""
    print()
    if paired.empty:
        print("paired check: no pair has its configurations recorded")
        return
    print(
        f"{'dataset':>20} {'seed':>4} {'warm - cold':>11} {'std error':>9} "
        f"{'in errors':>9} {'users':>6}"
    )
    for _, row in paired.iterrows():
        repeat = (
            ""
            if abs(row["difference"] - row["recorded"]) < 1e-6
            else (f"  (recorded {row['recorded']:+.5f}: the study did not repeat)")
        )
        print(
            f"{row['dataset']:>20} {row['seed']:>4} {row['difference']:+11.5f} "
            f"{row['standard_error']:9.5f} {row['difference'] / row['standard_error']:+9.2f} "
            f"{row['n_users']:>6}{repeat}"
        )
    z = paired["difference"] / paired["standard_error"]
    print(
        f"paired check over {len(paired)} of {n_pairs} pairs: warm worse in {(z < 0).sum()}, "
        f"by more than 2 standard errors in {(z < -2).sum()}; better by more than 2 in "
        f"{(z > 2).sum()}"
    )


def format_row(row: pd.Series, n_trials: int) -> str:
    """One line of the per-dataset table."""
    match, near = (
        f">{n_trials}" if value is None or pd.isna(value) else str(int(value))
        for value in (row["to_match"], row["to_99pct"])
    )
    cut = "  (time cap cut a study short)" if row["cut_short"] else ""
    return (
        f"{row['dataset']:>18} {row['seed']:>4} {match:>8} {near:>6} {row['warm_best']:9.4f} "
        f"{row['cold_best']:9.4f} {row['warm_trials']:>7}/{row['cold_trials']:<8} "
        f"{row['warm_s']:7.0f} {row['cold_s']:7.0f}  {row['warm_algorithm']} / "
        f"{row['cold_algorithm']}{cut}"
    )


def plot(table: pd.DataFrame, path: Path, n_trials: int) -> None:
    """One small panel per dataset: median best-so-far over seeds against the trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"]))
    n_cols = min(5, len(datasets))
    n_rows = math.ceil(len(datasets) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.0 * n_cols, 2.4 * n_rows), squeeze=False)
    for ax, dataset in zip(axes.ravel(), datasets, strict=False):
        part = table[table["dataset"] == dataset]
        for kind, style in (("warm", "-"), ("cold", "--")):
            line = part[part["kind"] == kind].groupby("trial")["best_so_far"].median()
            ax.plot(line.index, line.to_numpy(), style, label=kind, drawstyle="steps-post")
        ax.set_title(dataset, fontsize=9)
        ax.set_xlim(1, n_trials)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(datasets) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel("trial", fontsize=9)
    fig.supylabel("best validation NDCG@10 so far", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds per study (default: none, so that every study runs all its trials and "
        "the comparison does not depend on the machine's speed or load)",
    )
    parser.add_argument("--labels", type=Path, help="labels folder (default: shipped labels)")
    parser.add_argument("--out", type=Path, default=RESULTS / "warmstart.csv")
    parser.add_argument("--plot", type=Path, default=RESULTS / "warmstart.png")
    parser.add_argument(
        "--rerun-warm",
        action="store_true",
        help="after a change to the warm start: run the warm study again for the pairs "
        "already in --out and replace its rows, keeping the cold study's (which does not "
        "depend on the warm start)",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="also refit each pair's two bests and compare them user by user (paired "
        "standard error), for the pairs whose configurations are recorded",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: summarise the rows of --out for --datasets and --seeds",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    labels = LabelSet.load(args.labels) if args.labels else load_shipped_labels()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = pd.read_csv(args.out) if args.out.is_file() else pd.DataFrame(columns=COLUMNS)
    complete = {
        (d, int(s))
        for (d, s), pair in done.groupby(["dataset", "seed"])
        if set(pair["kind"]) == {"warm", "cold"}
    }
    models: dict[str, MetaModel] = {}
    select_seconds: dict[str, float] = {}
    datasets_to_run = [] if args.report else args.datasets
    for dataset in datasets_to_run:
        todo = [s for s in args.seeds if ((dataset, s) in complete) == args.rerun_warm]
        if not todo and args.rerun_warm:
            print(f"{dataset}: no finished pair in {args.out.name} to rerun; skipped")
            continue
        if not todo:
            print(f"{dataset}: all seeds already in {args.out.name}; skipped", flush=True)
            continue
        family = DATASETS[dataset].family
        if family not in models:
            models[family] = MetaModel().fit(labels.without_family(family))
        train = training_split(dataset)
        print(
            f"{dataset} ({family}): {train.n_users} users, {train.n_items} items, "
            f"{train.n_interactions} training interactions",
            flush=True,
        )
        for seed in todo:
            try:
                rows, select_seconds[f"{dataset}/{seed}"] = run_pair(
                    dataset,
                    seed,
                    models[family],
                    train,
                    args.trials,
                    args.timeout,
                    cold=not args.rerun_warm,
                )
            except TuningError as err:
                print(f"  {dataset} seed {seed}: no completed trial, not recorded ({err})")
                continue
            # Rewrite the file after each pair, so that a cut-off run keeps its work (and
            # rows written before a column was added gain it).
            table = pd.read_csv(args.out) if args.out.is_file() else rows.iloc[:0]
            stale = (table["dataset"] == dataset) & (table["seed"] == seed)
            if args.rerun_warm:
                stale &= table["kind"] == "warm"
            table = pd.concat([table[~stale], rows], ignore_index=True)[COLUMNS]
            table.to_csv(args.out, index=False)
            rows = table[(table["dataset"] == dataset) & (table["seed"] == seed)]
            print("  " + format_row(summarise(rows, args.trials).iloc[0], args.trials), flush=True)

    table = pd.read_csv(args.out)
    table = table[table["dataset"].isin(args.datasets) & table["seed"].isin(args.seeds)]
    if table.empty:
        print("no results")
        return 0
    n = args.trials
    summary = summarise(table, n)
    print()
    print(
        f"{'dataset':>18} {'seed':>4} {'to match':>8} {'to 99%':>6} {'warm best':>9} "
        f"{'cold best':>9} "
        f"{'warm/cold trials':>16} {'warm s':>7} {'cold s':>7}  best algorithm warm / cold"
    )
    for _, row in summary.iterrows():
        print(format_row(row, n))
    if select_seconds:
        print(
            "select seconds (this run): "
            + ", ".join(f"{k} {v:.1f}" for k, v in select_seconds.items())
        )

    # Per dataset: median over seeds; a never-matched pair counts as infinitely many.
    summary["to_match_num"] = summary["to_match"].astype(float).fillna(np.inf)
    summary["to_99pct_num"] = summary["to_99pct"].astype(float).fillna(np.inf)
    summary["warm_not_worse"] = summary["warm_best"] >= summary["cold_best"] - 1e-12
    summary["difference"] = summary["warm_best"] - summary["cold_best"]
    per_dataset = summary.groupby("dataset", sort=False).agg(
        to_match=("to_match_num", "median"),
        to_99pct=("to_99pct_num", "median"),
        warm_best=("warm_best", "median"),
        cold_best=("cold_best", "median"),
        seeds_not_worse=("warm_not_worse", "sum"),
        difference=("difference", "median"),
        n_seeds=("seed", "size"),
    )
    if (per_dataset["n_seeds"] > 1).any():
        # Two searches that end in near-ties differ by luck from seed to seed: show how
        # often warm held its own, next to the medians the goal is judged on.
        print()
        print(
            f"{'dataset':>20} {'seeds':>5} {'warm >= cold':>12} {'median warm':>11} "
            f"{'median cold':>11} {'median warm - cold':>18}"
        )
        for dataset, row in per_dataset.iterrows():
            print(
                f"{dataset:>20} {int(row['n_seeds']):>5} {int(row['seeds_not_worse']):>12} "
                f"{row['warm_best']:11.4f} {row['cold_best']:11.4f} {row['difference']:+18.4f}"
            )
    median_match = float(np.median(per_dataset["to_match"]))
    worse = int((per_dataset["difference"] < -1e-12).sum())
    worse_by_medians = int((per_dataset["warm_best"] < per_dataset["cold_best"] - 1e-12).sum())
    n_datasets = len(per_dataset)
    n_cut = int(summary["cut_short"].sum())
    median_near = float(np.median(per_dataset["to_99pct"]))
    median_text, near_text = (
        f">{n}" if math.isinf(value) else f"{value:g}" for value in (median_match, median_near)
    )
    print()
    print(
        f"datasets: {n_datasets}, seeds: {sorted(set(summary['seed']))}, trials: {n}; "
        f"{n_cut} of {len(summary)} pairs had a study cut short"
        + (f" by the {args.timeout:g} s time cap" if args.timeout else "")
    )
    print(
        f"median warm trials to match cold's best after {n}: {median_text}   (goal: <= 10) "
        f"{'MET' if median_match <= 10 else 'NOT MET'}"
    )
    print(f"median warm trials to reach 99 % of cold's best after {n}: {near_text}")
    print(
        f"median best after {n}: warm {per_dataset['warm_best'].median():.4f} | cold "
        f"{per_dataset['cold_best'].median():.4f}"
    )
    print(
        f"warm worse than cold after {n} trials on {worse} of {n_datasets} datasets   "
        f"(goal: at most 1 in 10) {'MET' if worse <= n_datasets / 10 else 'NOT MET'}"
    )
    if (per_dataset["n_seeds"] > 1).any():
        print(
            f"  (by the median over seeds of warm - cold; comparing the median of each side "
            f"taken apart, {worse_by_medians} of {n_datasets})"
        )

    if args.paired:
        print_paired(paired_check(table), len(summary))
    plot(table, args.plot, n)
    print(f"curves: {args.plot}; rows: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
