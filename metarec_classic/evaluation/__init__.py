"""Top-k ranking metrics and the evaluation of a fitted recommender on a test split."""

from metarec_classic.evaluation._metrics import (
    METRIC_NAMES,
    EvaluationResult,
    catalogue_coverage,
    evaluate,
    ranking_metrics,
)

__all__ = [
    "METRIC_NAMES",
    "EvaluationResult",
    "catalogue_coverage",
    "evaluate",
    "ranking_metrics",
]
