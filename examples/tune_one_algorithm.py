"""Tune one algorithm with Optuna, resumably, and compare it with its defaults.

    python examples/tune_one_algorithm.py ../shared/data/ml-100k als 30

The study is kept in ``tuning.journal``: run the script again with more trials and it
continues where it stopped.
"""

import sys

from metarec_classic.data import load_dataset, random_holdout_split
from metarec_classic.evaluation import evaluate
from metarec_classic.recommenders import make_recommender
from metarec_classic.tuning import tune

if len(sys.argv) != 4 or not sys.argv[3].isdigit():
    sys.exit("usage: python examples/tune_one_algorithm.py DATA ALGORITHM N_TRIALS")
path, algorithm, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
split = random_holdout_split(load_dataset(path), test_fraction=0.2, random_state=42)

result = tune(algorithm, split.train, n_trials=n_trials, storage="tuning.journal", seed=0)
print(result.trials[["number", "state", "score", "fit_time"]].to_string(index=False))

for label, config in (("default", None), ("tuned", result.best_config)):
    model = make_recommender(algorithm, config, random_state=0).fit(split.train)
    ndcg = evaluate(model, split.train, split.test, k=10).mean["ndcg@10"]
    print(f"{label:>8}: test ndcg@10 {ndcg:.4f}  {config or ''}")
