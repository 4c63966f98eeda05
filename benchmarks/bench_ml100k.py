"""MovieLens 100K against the choices a user has without metarec.

Protocol: every user's ratings are split 80/20 at random (seed 42); the ratings >= 4 are
the positives. Models learn from the training positives only, and each user's list
leaves out every item the user rated in the training period, a low rating included (a
movie seen and disliked is no candidate). NDCG@10 is taken over the test positives of
every user who has one. The meta-model is trained on the shipped labels *without* the
MovieLens family, so ml-100k is unseen data for it.

Printed, each with its wall time:

- most popular, default ALS, default BM25 item-kNN (what a habit gives);
- EASE with its L2 weight chosen from seven values on a validation split cut the same
  way from the training ratings (a strong hand-tuned classical baseline);
- metarec's zero-trial pick (meta-features, meta-model, one fit);
- metarec with a 20-trial warm-started search. Its search validates on a split of the
  training positives and knows nothing of the low ratings, which the lists still leave
  out at test time.

``--exclude-positives-only`` scores the same models letting items rated below 4 back
into the lists (the protocol of the other benchmarks, where a dataset holds positives
only); on ml-100k every figure is then 13-18 % lower.

Run ``python benchmarks/bench_ml100k.py``.
"""

from __future__ import annotations

import argparse
import time
import warnings

from metarec_classic import MetaRecommender
from metarec_classic.data import Interactions, load_dataset, random_holdout_split
from metarec_classic.evaluation import evaluate
from metarec_classic.meta import MetaModel, load_shipped_labels
from metarec_classic.recommenders import make_recommender

POSITIVE = 4.0


class RatingSplit:
    """Train and test positives of a split of the ratings, and the training ratings."""

    def __init__(self, ratings: Interactions, random_state: int) -> None:
        split = random_holdout_split(ratings, test_fraction=0.2, random_state=random_state)
        self.rated = split.train
        self.train = split.train.binarize(POSITIVE)
        self.test = split.test.binarize(POSITIVE)


def ndcg(model, split: RatingSplit, exclude_rated: bool) -> float:
    result = evaluate(
        model,
        split.train,
        split.test,
        k=10,
        metrics=("ndcg",),
        exclude=split.rated if exclude_rated else None,
    )
    return float(result.mean["ndcg@10"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--exclude-positives-only",
        action="store_true",
        help="let items rated below 4 in training back into the lists",
    )
    args = parser.parse_args()
    exclude_rated = not args.exclude_positives_only
    warnings.simplefilter("ignore")
    ratings = load_dataset("ml-100k", positive_threshold=None)
    split = RatingSplit(ratings, random_state=42)
    print(
        f"ml-100k: {split.train.n_interactions:,} training positives of "
        f"{split.rated.n_interactions:,} training ratings, {split.test.n_interactions:,} test "
        f"positives; lists leave out "
        + ("every item rated in training" if exclude_rated else "the training positives only"),
        flush=True,
    )
    rows: list[tuple[str, float, float]] = []

    def timed(label: str, build) -> None:
        started = time.perf_counter()
        model = build()
        seconds = time.perf_counter() - started
        rows.append((label, ndcg(model, split, exclude_rated), seconds))
        print(f"{label:<42} ndcg@10 {rows[-1][1]:.4f}  {seconds:7.2f} s", flush=True)

    timed("most popular", lambda: make_recommender("most_popular").fit(split.train))
    timed("ALS, defaults", lambda: make_recommender("als", random_state=0).fit(split.train))
    timed(
        "item-kNN BM25, defaults",
        lambda: make_recommender("itemknn", {"weighting": "bm25"}).fit(split.train),
    )

    def fitted_ease(l2: float, train: Interactions):
        return make_recommender("ease", {"l2_reg": l2}).fit(train)

    def ease_grid():
        inner = RatingSplit(split.rated, random_state=0)
        grid = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
        scores = {l2: ndcg(fitted_ease(l2, inner.train), inner, exclude_rated) for l2 in grid}
        best = max(scores, key=scores.__getitem__)
        return fitted_ease(best, split.train)

    timed("EASE, L2 from 7 values on validation", ease_grid)

    labels = load_shipped_labels().without_family("movielens")
    meta_model = MetaModel().fit(labels)
    for trials in (0, 20):
        rec = MetaRecommender(meta_model, n_trials=trials)
        timed(f"metarec, {trials} trials", lambda rec=rec: rec.fit(split.train).model_)
        print(f"{'':<42} chose {rec.algorithm_} {rec.config_}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
