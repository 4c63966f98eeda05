"""Leave-one-family-out evaluation of per-segment selection against one algorithm for all.

    python benchmarks/bench_segments.py > benchmarks/results/bench_segments.log 2>&1
    python benchmarks/bench_segments.py --datasets coat,filmtrust
    python benchmarks/bench_segments.py --quick       # smoke run: coat, a light user model

For each dataset family with a tuned portfolio in ``results/tuning_table.csv`` (written
by ``bench_tuning.py``: per dataset and algorithm the default and 30-trial tuned test
NDCG@10 and the tuned ``best_config``), a dataset-level ``MetaModel`` and a per-user
``UserMetaModel`` are trained on the shipped labels *without* that family's tasks. Then,
on each of the family's datasets, on the split of ``bench_tuning.py`` (per-user 80/20,
seed 42), test NDCG@10 over every test user (users with a test positive) of:

- (a) per-segment selection: ``MetaRecommender(segments="auto")`` fitted on the training
  split with both held-out models and zero trials, scored through its public
  ``recommend``; ``a_activity`` is the same with ``segments="activity"``. The headline
  is ``"auto"``, fixed before any result was seen;
- (b) dataset-level selection: ``MetaRecommender()`` with the held-out meta-model, zero
  trials;
- (c) the best single tuned algorithm: the portfolio's best tuned test NDCG@10, refitted
  with its ``best_config`` (seeded as in ``bench_tuning.py``); the table's figure is
  printed beside it;
- (d) the per-segment oracle: for each segment of (a)'s segmentation, the tuned
  algorithm (at its ``best_config``) with the best test NDCG@10 on that segment's test
  users, combined over all test users (``d_activity``: the same over the activity
  segments). It chooses on the test split, so it bounds what a choice per segment among
  the tuned configurations can reach.
- ``d_config``: the same oracle over the activity segments, with more to choose from:
  each tuned algorithm's ``best_config`` and its variants with one numeric parameter
  scaled by 1/4, 1/2, 2 or 4. It bounds what choosing a configuration per segment, not
  just an algorithm, can reach: where even this is below 1.03 x (c), no per-segment
  choice among these models meets the first goal.

Printed per dataset and saved to ``results/segments.csv``: a, a_activity, b, c, d, a/c,
the share of the gap closed ``(a - c) / (d - c)``, the users with at most 4 training
interactions (count, NDCG@10 under the per-segment and the dataset-level choice), each
segmentation's table (rule, size, chosen algorithm, realised test NDCG@10 of the choice,
of the dataset-level choice and of the segment's oracle algorithm), and the wall time.

Goals (PASS/FAIL): (a) >= 1.03 x (c) on at least two thirds of the datasets and never
below 0.99 x (c); median share of the gap closed >= 25 % (over the datasets where the
oracle beats (c)). ``--trials N`` fits (a), ``a_activity`` and (b) after an N-trial
warm-started search (default 0: the zero-trial choice).

EASE is left out of the oracle's portfolio where its estimated fit memory exceeds
``--ease-max-gb`` (default 2 GB: lastfm-hetrec-2k, 17k items, whose EASE fit takes
minutes); the output says where. It is still fitted when it is (c) or a chosen model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _machine import load_average, print_table
from optuna.distributions import CategoricalDistribution, IntDistribution

from metarec_classic import MetaRecommender
from metarec_classic.data import DATASETS, Interactions, load_dataset, random_holdout_split
from metarec_classic.evaluation import evaluate
from metarec_classic.meta import (
    LabelSet,
    MetaModel,
    Segment,
    UserLabelSet,
    UserMetaModel,
    activity_segments,
    learned_segments,
    load_shipped_labels,
    shipped_labels_path,
)
from metarec_classic.metafeatures import user_metafeatures
from metarec_classic.recommenders import get_recommender_class, make_recommender

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
K = 10
METRIC = f"ndcg@{K}"
SPLIT_SEED = 42
#: Seed of the refits, as ``bench_tuning.py`` seeds the default fit and the refit.
TUNE_SEED = 0
#: The segmentation the goals are judged on, chosen before any result was seen.
HEADLINE = "auto"
#: Users with at most this many training interactions are reported apart.
FEW = 4
QUICK_DATASETS = ("coat",)


# -- scoring ------------------------------------------------------------------------------
class _ByIndex:
    """``MetaRecommender.recommend`` (original ids) behind the row-index batch interface.

    ``evaluate`` asks models for rows of the user x item matrix; this maps them to the
    original ids, asks the fitted MetaRecommender, and maps its table back, so the score
    is that of the public ``recommend`` with its routing of users to models.
    """

    def __init__(self, rec: MetaRecommender, train: Interactions) -> None:
        self.rec = rec
        self.train = train

    def recommend(
        self, user_ids: Any, user_items: Any = None, *, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(user_ids, dtype=np.int64)
        table = self.rec.recommend(self.train.user_map.to_ids(rows), k=k, exclude_seen=exclude_seen)
        position = pd.Series(np.arange(len(rows)), index=rows)
        at = position.loc[self.train.user_map.to_index(table["user_id"].to_numpy())].to_numpy()
        items = np.full((len(rows), k), -1, dtype=np.int64)
        scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
        rank = table["rank"].to_numpy() - 1
        items[at, rank] = self.train.item_map.to_index(table["item_id"].to_numpy())
        scores[at, rank] = table["score"].to_numpy()
        return items, scores


def per_user(model: Any, split: Any) -> pd.DataFrame:
    """Test NDCG@10 of every user with a test positive: ``n_train`` and ``ndcg`` by row."""
    result = evaluate(model, split.train, split.test, k=K, metrics=("ndcg",))
    frame = result.per_user.set_index("user_index")[["n_train", METRIC]]
    return frame.rename(columns={METRIC: "ndcg"}).sort_index()


def seeded(algorithm: str) -> dict[str, Any]:
    params = get_recommender_class(algorithm)().get_params()
    return {"random_state": TUNE_SEED} if "random_state" in params else {}


# -- segments -----------------------------------------------------------------------------
def segment_masks(
    rec: MetaRecommender, user_model: UserMetaModel, train: Interactions
) -> list[Segment]:
    """The segments ``rec`` chose on, rebuilt from the same inputs with the same seeds.

    ``segments_`` keeps each segment's rule and size but not its members; the members
    are recomputed here and checked against the recorded names and sizes.
    """
    features = user_metafeatures(train, random_state=rec.random_state)
    if rec.segments == "activity":
        segments = activity_segments(features)
    else:
        known = set(user_model.algorithms_)
        algorithms = [a for a in rec.selection_.algorithms()["algorithm"] if a in known]
        predictions = user_model.predict(features, rec.selection_.features, algorithms)
        segments = learned_segments(
            features,
            predictions,
            min_segment_size=rec.min_segment_size,
            random_state=rec.random_state,
        )
    recorded = rec.segments_
    assert recorded is not None
    ours = [(s.name, s.size) for s in segments]
    theirs = list(zip(recorded["segment"], recorded["n_users"], strict=True))
    if ours != theirs:
        raise RuntimeError(f"rebuilt segments {ours} differ from the fitted ones {theirs}")
    covered = np.sum([s.mask for s in segments], axis=0)
    if not (covered == 1).all():
        raise RuntimeError("the segments do not partition the training users")
    return segments


def oracle(scores: pd.DataFrame, segments: list[Segment]) -> tuple[pd.Series, list[str]]:
    """Per user, the test NDCG@10 of the segment's best tuned algorithm on test."""
    values = pd.Series(np.nan, index=scores.index)
    picks = []
    for segment in segments:
        members = scores.index[np.asarray(segment.mask)[scores.index.to_numpy()]]
        if len(members) == 0:
            picks.append("")
            continue
        best = str(scores.loc[members].mean().idxmax())
        values.loc[members] = scores.loc[members, best]
        picks.append(best)
    return values, picks


def config_variants(algorithm: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """``config`` and its variants with one numeric parameter scaled by 1/4, 1/2, 2 or 4."""
    variants = [dict(config)]
    for name, dist in get_recommender_class(algorithm).search_space().items():
        if name not in config or isinstance(dist, CategoricalDistribution):
            continue
        for factor in (0.25, 0.5, 2.0, 4.0):
            value = min(max(config[name] * factor, dist.low), dist.high)
            variant = {**config, name: round(value) if isinstance(dist, IntDistribution) else value}
            if variant not in variants:
                variants.append(variant)
    return variants


def segment_table(
    rec: MetaRecommender,
    segments: list[Segment],
    chosen: pd.Series,
    dataset_level: pd.Series,
    scores: pd.DataFrame,
    oracle_picks: list[str],
) -> list[list[str]]:
    assert rec.segments_ is not None
    rows = []
    for segment, record, pick in zip(
        segments, rec.segments_.to_dict("records"), oracle_picks, strict=True
    ):
        members = chosen.index[np.asarray(segment.mask)[chosen.index.to_numpy()]]
        n = len(members)

        def mean(values: pd.Series, members: pd.Index = members) -> str:
            return f"{values.loc[members].mean():.4f}" if len(members) else "-"

        rows.append(
            [
                segment.name,
                segment.rule,
                str(segment.size),
                str(n),
                record["algorithm"]
                + (
                    f" (kept over {record['candidate']})"
                    if record["candidate"] != record["algorithm"]
                    else ""
                ),
                _num(record["predicted_ndcg@10"]),
                _num(record["predicted_ndcg@10_dataset_choice"]),
                mean(chosen),
                mean(dataset_level),
                pick or "-",
                mean(scores[pick]) if pick else "-",
            ]
        )
    return rows


# -- one dataset --------------------------------------------------------------------------
def run_dataset(
    dataset: str,
    tuned: pd.DataFrame,
    meta_model: MetaModel,
    user_model: UserMetaModel,
    ease_max_gb: float,
    n_trials: int,
) -> dict[str, Any]:
    started = time.perf_counter()
    data = load_dataset(dataset)
    split = random_holdout_split(data, test_fraction=0.2, random_state=SPLIT_SEED)
    print(
        f"\n== {dataset} (family {DATASETS[dataset].family}): {data.n_users:,} users x "
        f"{data.n_items:,} items, {split.train.n_interactions:,} train / "
        f"{split.test.n_interactions:,} test interactions",
        flush=True,
    )

    # (a), a_activity and (b): the MetaRecommender itself, scored through `recommend`.
    recs: dict[str, MetaRecommender] = {}
    fit_s: dict[str, float] = {}
    for name, segments in (("a", "auto"), ("a_activity", "activity"), ("b", None)):
        rec = MetaRecommender(
            meta_model=meta_model,
            segments=segments,
            user_meta_model=user_model if segments else None,
            n_trials=n_trials,
        )
        tic = time.perf_counter()
        recs[name] = rec.fit(split.train)
        fit_s[name] = time.perf_counter() - tic
    users = {name: per_user(_ByIndex(rec, split.train), split) for name, rec in recs.items()}
    n_train = users["b"]["n_train"]
    ndcg = pd.DataFrame({name: frame["ndcg"] for name, frame in users.items()})

    # The tuned portfolio at each best_config: (c) and the oracle's candidates.
    portfolio = tuned[tuned["best_config"].notna() & (tuned["best_config"] != "null")]
    best_row = portfolio.loc[portfolio["tuned_ndcg@10"].idxmax()]
    c_algorithm = str(best_row["algorithm"])
    scores: dict[str, pd.Series] = {}
    variant_scores: dict[str, pd.Series] = {}
    skipped: list[str] = []
    tic = time.perf_counter()
    for entry in portfolio.to_dict("records"):
        algorithm = str(entry["algorithm"])
        if algorithm == "ease" and algorithm != c_algorithm:
            needed = get_recommender_class("ease").estimate_memory_gb(split.train.n_items)
            if needed > ease_max_gb:
                print(
                    f"  ease left out of the oracle: about {needed:.2f} GB for "
                    f"{split.train.n_items:,} items > --ease-max-gb {ease_max_gb:g} "
                    f"(its tuned test NDCG@10 in the table: {entry['tuned_ndcg@10']:.4f})",
                    flush=True,
                )
                skipped.append(algorithm)
                continue
        config = json.loads(entry["best_config"])
        for number, variant in enumerate(config_variants(algorithm, config)):
            model = make_recommender(algorithm, variant, **seeded(algorithm)).fit(split.train)
            variant_scores[f"{algorithm}#{number}"] = per_user(model, split)["ndcg"]
        scores[algorithm] = variant_scores[f"{algorithm}#0"]
    portfolio_s = time.perf_counter() - tic
    scores_frame = pd.DataFrame(scores)
    c_users = scores_frame[c_algorithm]
    c_table = float(best_row["tuned_ndcg@10"])

    # (d): the oracle over each segmentation's segments.
    segments = {
        name: segment_masks(recs[name], user_model, split.train) for name in ("a", "a_activity")
    }
    d_users, d_picks = {}, {}
    for name, segs in segments.items():
        d_users[name], d_picks[name] = oracle(scores_frame, segs)
    d_config_users, d_config_picks = oracle(pd.DataFrame(variant_scores), segments["a_activity"])
    d_config = float(d_config_users.mean())

    a, a_act, b = (float(ndcg[name].mean()) for name in ("a", "a_activity", "b"))
    c = float(c_users.mean())
    d, d_act = float(d_users["a"].mean()), float(d_users["a_activity"].mean())
    few = n_train <= FEW
    row = {
        "dataset": dataset,
        "family": DATASETS[dataset].family,
        "n_test_users": len(ndcg),
        "a": a,
        "a_activity": a_act,
        "b": b,
        "c": c,
        "d": d,
        "d_activity": d_act,
        "a/c": a / c,
        "a_activity/c": a_act / c,
        "b/c": b / c,
        "d/c": d / c,
        "d_activity/c": d_act / c,
        "d_config": d_config,
        "d_config/c": d_config / c,
        "n_variants": len(variant_scores),
        "d_config_picks": ",".join(p for p in d_config_picks if p),
        "trials": n_trials,
        "gap_closed": (a - c) / (d - c) if d > c else np.nan,
        "gap_closed_activity": (a_act - c) / (d_act - c) if d_act > c else np.nan,
        "dataset_choice": recs["b"].algorithm_,
        "c_algorithm": c_algorithm,
        "c_table": c_table,
        "n_models_a": len(recs["a"].models_),
        "n_models_a_activity": len(recs["a_activity"].models_),
        "n_few": int(few.sum()),
        "few_a": float(ndcg.loc[few, "a"].mean()) if few.any() else np.nan,
        "few_a_activity": float(ndcg.loc[few, "a_activity"].mean()) if few.any() else np.nan,
        "few_b": float(ndcg.loc[few, "b"].mean()) if few.any() else np.nan,
        "segments_a": json.dumps(
            [
                {"rule": s.rule, "n_users": s.size, "algorithm": alg}
                for s, alg in zip(segments["a"], recs["a"].segments_["algorithm"], strict=True)
            ]
        ),
        "oracle_left_out": ",".join(skipped),
        "fit_a_s": fit_s["a"],
        "fit_a_activity_s": fit_s["a_activity"],
        "fit_b_s": fit_s["b"],
        "portfolio_s": portfolio_s,
        "wall_s": time.perf_counter() - started,
    }

    reproduced = "reproduced" if abs(c - c_table) < 5e-4 else "DIFFERS from the table"
    print(
        f"  dataset-level choice {row['dataset_choice']} "
        f"({json.dumps(recs['b'].config_, sort_keys=True)})",
        flush=True,
    )
    print(f"  c: {c_algorithm} refitted {c:.4f}, table {c_table:.4f} ({reproduced})", flush=True)
    for name, label in (("a", 'segments="auto"'), ("a_activity", 'segments="activity"')):
        fitted = ", ".join(
            f"{model.name} {json.dumps(model.get_params())}" for model in recs[name].models_
        )
        print(f"  {label}: {len(recs[name].models_)} model(s): {fitted}", flush=True)
        print_table(
            [
                "segment",
                "rule",
                "users",
                "test users",
                "chosen",
                "pred chosen",
                "pred dataset choice",
                "ndcg chosen",
                "ndcg dataset choice",
                "oracle",
                "ndcg oracle",
            ],
            segment_table(
                recs[name], segments[name], ndcg[name], ndcg["b"], scores_frame, d_picks[name]
            ),
            indent="    ",
        )
    print(
        f"  a {a:.4f} | a_activity {a_act:.4f} | b {b:.4f} | c {c:.4f} | d {d:.4f} "
        f"(d_activity {d_act:.4f}) | a/c {row['a/c']:.3f} | gap closed "
        f"{_pct(row['gap_closed'])}",
        flush=True,
    )
    print(
        f"  d_config {d_config:.4f} = {d_config / c:.3f} x c: the activity segments' best of "
        f"{len(variant_scores)} configurations on test ({row['d_config_picks']})",
        flush=True,
    )
    print(
        f"  users with <= {FEW} training interactions: {row['n_few']} of {len(ndcg)}; "
        f"NDCG@10 per segment (auto) {_num(row['few_a'])}, (activity) "
        f"{_num(row['few_a_activity'])}, dataset-level {_num(row['few_b'])}",
        flush=True,
    )
    print(
        f"  seconds: fit a {fit_s['a']:.1f}, a_activity {fit_s['a_activity']:.1f}, "
        f"b {fit_s['b']:.1f}, tuned portfolio {portfolio_s:.1f}, dataset {row['wall_s']:.1f}",
        flush=True,
    )
    return row


# -- output -------------------------------------------------------------------------------
def print_environment() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, {platform.platform()}")
    print(f"python {platform.python_version()}; {load_average()}")
    versions = []
    for package in ("metarec-classic", "implicit", "lightgbm", "scikit-learn", "numpy", "scipy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} unknown")
    print(", ".join(versions), flush=True)


def _pct(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{100 * value:.1f} %"


def _num(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.4f}"


def goals(table: pd.DataFrame, suffix: str = "") -> list[tuple[str, bool]]:
    a = f"a{suffix}"
    ratio = table[f"a{suffix}/c"]
    need = int(np.ceil(2 * len(table) / 3))
    above = int((ratio >= 1.03).sum())
    gap = table[f"gap_closed{suffix}"].dropna()
    median_gap = float(gap.median()) if len(gap) else np.nan
    return [
        (
            f"{a} >= 1.03 x c on at least two thirds of the datasets: {above} of {len(table)} "
            f"(need {need})",
            above >= need,
        ),
        (
            f"{a} never below 0.99 x c: lowest {a}/c {ratio.min():.3f} "
            f"({table.loc[ratio.idxmin(), 'dataset']})",
            bool((ratio >= 0.99).all()),
        ),
        (
            f"median share of the gap closed >= 25 %: {_pct(median_gap)} over {len(gap)} "
            f"datasets where d{suffix} > c",
            bool(median_gap >= 0.25),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=None, help="comma-separated (default: the table's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: coat, 100-round model")
    parser.add_argument("--table", type=Path, default=RESULTS / "tuning_table.csv")
    parser.add_argument("--out", type=Path, default=None, help="default results/segments.csv")
    parser.add_argument("--ease-max-gb", type=float, default=2.0)
    parser.add_argument(
        "--trials", type=int, default=0, help="warm-started search before each fit of a and b"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()

    # Two runs of the tuning benchmark may have written the same pair; keep the first.
    portfolio = pd.read_csv(args.table).drop_duplicates(["dataset", "algorithm"])
    available = list(dict.fromkeys(portfolio["dataset"]))
    if args.datasets:
        datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    elif args.quick:
        datasets = list(QUICK_DATASETS)
    else:
        datasets = available
    unknown = [name for name in datasets if name not in available]
    if unknown:
        parser.error(f"no tuned portfolio in {args.table.name} for {unknown}")
    out = args.out or (None if args.quick else RESULTS / "segments.csv")
    user_params = {"n_estimators": 100} if args.quick else {}

    print_environment()
    print(
        f"per-segment selection, leave-one-family-out, {len(datasets)} datasets; headline "
        f'segmentation: "{HEADLINE}"'
        + (" (quick run: 100-round user model)" if args.quick else ""),
        flush=True,
    )
    labels = load_shipped_labels()
    user_labels = UserLabelSet.load(shipped_labels_path())
    models: dict[str, tuple[MetaModel, UserMetaModel]] = {}
    rows = []
    for dataset in datasets:
        family = DATASETS[dataset].family
        if family not in models:
            tic = time.perf_counter()
            train_labels: LabelSet = labels.without_family(family)
            held_in = user_labels.without_family(family, labels)
            user_model = UserMetaModel(**user_params).fit(
                held_in.users, held_in.scores, train_labels.tasks
            )
            models[family] = (MetaModel().fit(train_labels), user_model)
            print(
                f"\nmeta-models without family {family}: {len(train_labels.tasks)} tasks, "
                f"user model on {user_model.n_training_rows_:,} rows of "
                f"{user_model.n_training_tasks_} tasks ({time.perf_counter() - tic:.1f} s)",
                flush=True,
            )
        meta_model, user_model = models[family]
        tuned = portfolio[portfolio["dataset"] == dataset]
        rows.append(
            run_dataset(dataset, tuned, meta_model, user_model, args.ease_max_gb, args.trials)
        )

    table = pd.DataFrame(rows)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    print("\nsummary (test NDCG@10 over every test user):")
    print_table(
        [
            "dataset",
            "users",
            "a (auto)",
            "a_activity",
            "b",
            "c",
            "c alg",
            "d",
            "d-c",
            "a/c",
            "a_act/c",
            "gap closed",
            "gap act",
            f"n<={FEW}",
            f"<={FEW} a",
            f"<={FEW} a_act",
            f"<={FEW} b",
            "s",
        ],
        [
            [
                r["dataset"],
                str(r["n_test_users"]),
                f"{r['a']:.4f}",
                f"{r['a_activity']:.4f}",
                f"{r['b']:.4f}",
                f"{r['c']:.4f}",
                r["c_algorithm"],
                f"{r['d']:.4f}",
                f"{r['d'] - r['c']:.4f}",
                f"{r['a/c']:.3f}",
                f"{r['a_activity/c']:.3f}",
                _pct(r["gap_closed"]),
                _pct(r["gap_closed_activity"]),
                str(r["n_few"]),
                _num(r["few_a"]),
                _num(r["few_a_activity"]),
                _num(r["few_b"]),
                f"{r['wall_s']:.0f}",
            ]
            for r in rows
        ],
    )
    print(
        f"headroom: the oracle of the auto segments reaches d >= 1.03 x c on "
        f"{int((table['d/c'] >= 1.03).sum())} of {len(table)} datasets (largest d/c "
        f"{table['d/c'].max():.3f}); over the activity segments on "
        f"{int((table['d_activity/c'] >= 1.03).sum())} "
        f"(largest {table['d_activity/c'].max():.3f}); "
        f"choosing a configuration per activity segment too (d_config) on "
        f"{int((table['d_config/c'] >= 1.03).sum())} (largest {table['d_config/c'].max():.3f}, "
        f"median {table['d_config/c'].median():.3f})"
    )
    print(f'\ngoals (headline: segments="{HEADLINE}"):')
    for text, passed in goals(table):
        print(f"  {'PASS' if passed else 'FAIL'}  {text}")
    print('the same for segments="activity" (not the headline):')
    for text, passed in goals(table, "_activity"):
        print(f"  {'PASS' if passed else 'FAIL'}  {text}")
    if out is not None:
        print(f"\ntable written to {out}")
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
