"""MovieLens 100K against the choices a user has without metarec.

Protocol: per-user 80/20 random holdout (seed 42) of the ratings >= 4, models trained on
the training positives, NDCG@10 over the test users. The meta-model is trained on the
shipped labels *without* the MovieLens family, so ml-100k is unseen data for it.

Printed, each with its wall time:

- most popular, default ALS, default BM25 item-kNN (what a habit gives);
- EASE with its L2 weight chosen from seven values on a validation split cut from the
  training split (a strong hand-tuned classical baseline);
- metarec's zero-trial pick (meta-features, meta-model, one fit);
- metarec with a 20-trial warm-started search.

Run ``python benchmarks/bench_ml100k.py``.
"""

from __future__ import annotations

import time
import warnings

from metarec_classic import MetaRecommender
from metarec_classic.data import load_dataset, random_holdout_split, validation_split
from metarec_classic.evaluation import evaluate
from metarec_classic.meta import MetaModel, load_shipped_labels
from metarec_classic.recommenders import make_recommender


def ndcg(model, split) -> float:
    return float(evaluate(model, split.train, split.test, k=10, metrics=("ndcg",)).mean["ndcg@10"])


def main() -> int:
    warnings.simplefilter("ignore")
    data = load_dataset("ml-100k")
    split = random_holdout_split(data, test_fraction=0.2, random_state=42)
    rows: list[tuple[str, float, float]] = []

    def timed(label: str, build) -> None:
        started = time.perf_counter()
        model = build()
        seconds = time.perf_counter() - started
        rows.append((label, ndcg(model, split), seconds))
        print(f"{label:<42} ndcg@10 {rows[-1][1]:.4f}  {seconds:7.2f} s", flush=True)

    timed("most popular", lambda: make_recommender("most_popular").fit(split.train))
    timed("ALS, defaults", lambda: make_recommender("als", random_state=0).fit(split.train))
    timed(
        "item-kNN BM25, defaults",
        lambda: make_recommender("itemknn", {"weighting": "bm25"}).fit(split.train),
    )

    def ease_grid():
        inner = validation_split(split.train, validation_fraction=0.2, random_state=0)
        grid = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
        scores = {
            l2: ndcg(make_recommender("ease", {"l2_reg": l2}).fit(inner.train), inner)
            for l2 in grid
        }
        best = max(scores, key=scores.__getitem__)
        return make_recommender("ease", {"l2_reg": best}).fit(split.train)

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
