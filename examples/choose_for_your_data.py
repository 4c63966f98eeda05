"""Let the meta-model choose, tune and fit a recommender for a CSV of interactions.

    python examples/choose_for_your_data.py my_events.csv

The CSV needs the columns user_id,item_id (and optionally a rating or weight, and a
timestamp). Without an argument the embedded demo dataset is used.
"""

import sys

from metarec_classic import MetaRecommender
from metarec_classic.data import load_dataset, random_holdout_split
from metarec_classic.evaluation import evaluate

data = load_dataset(sys.argv[1] if len(sys.argv) > 1 else "demo")
print(data, "\nwhat loading changed:", dict(data.report.counts))

# Keep a test split aside; the search cuts its own validation split from train.
split = random_holdout_split(data, test_fraction=0.2, random_state=42)

rec = MetaRecommender(n_trials=0)
selection = rec.select(split.train)
print("\nranked algorithms:\n", selection.algorithms()[["rank", "algorithm", "predicted_ndcg@10"]])

for n_trials in (0, 10):
    rec = MetaRecommender(n_trials=n_trials, random_state=0).fit(split.train)
    scores = evaluate(rec.model_, split.train, split.test, k=10).mean
    print(f"\n{n_trials:>2} trials: {rec.algorithm_} {rec.config_}")
    print(f"    test ndcg@10 {scores['ndcg@10']:.4f}, recall@10 {scores['recall@10']:.4f}")

print("\nwhy:", rec.explain(top=5).to_string(index=False), sep="\n")
print("\nlists for two users:\n", rec.recommend(data.user_ids[:2], k=5))
