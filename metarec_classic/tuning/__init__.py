"""Optuna searches over a recommender's configuration, and the storages that hold them."""

from metarec_classic.tuning._design import (
    ClaimedTrial,
    DesignProgress,
    claim_trial,
    design_progress,
    heartbeats_enabled,
    hold_threads,
    open_design_study,
    recover_stale_trials,
    requeue_lost,
    run_claimed_trial,
    worker_threads,
)
from metarec_classic.tuning._refine import REFINE_START, REFINE_STEPS, refinement_move
from metarec_classic.tuning._space import (
    Portfolio,
    config_at_position,
    position_in_space,
    suggest_config,
)
from metarec_classic.tuning._storage import (
    StorageError,
    mask_url,
    resolve_storage,
    storage_errors,
)
from metarec_classic.tuning._tune import (
    PairedComparison,
    TuningResult,
    check_timeout,
    compare_on_validation,
    make_objective,
    trials_frame,
    tune,
)

__all__ = [
    "REFINE_START",
    "REFINE_STEPS",
    "ClaimedTrial",
    "DesignProgress",
    "PairedComparison",
    "Portfolio",
    "StorageError",
    "TuningResult",
    "check_timeout",
    "claim_trial",
    "compare_on_validation",
    "config_at_position",
    "design_progress",
    "heartbeats_enabled",
    "hold_threads",
    "make_objective",
    "mask_url",
    "open_design_study",
    "position_in_space",
    "recover_stale_trials",
    "refinement_move",
    "requeue_lost",
    "resolve_storage",
    "run_claimed_trial",
    "storage_errors",
    "suggest_config",
    "trials_frame",
    "tune",
    "worker_threads",
]
