"""Optuna searches over a recommender's configuration, and the storages that hold them."""

from metarec_classic.tuning._storage import StorageError, mask_url, resolve_storage
from metarec_classic.tuning._tune import (
    Portfolio,
    TuningResult,
    make_objective,
    suggest_config,
    trials_frame,
    tune,
)

__all__ = [
    "Portfolio",
    "StorageError",
    "TuningResult",
    "make_objective",
    "mask_url",
    "resolve_storage",
    "suggest_config",
    "trials_frame",
    "tune",
]
