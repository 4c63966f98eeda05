"""Helpers every recommender family shares: thread counts and clamping to the data."""

from __future__ import annotations

import functools
import logging
import os
from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval
from threadpoolctl import ThreadpoolController

__all__ = [
    "N_JOBS_CONSTRAINT",
    "RANDOM_STATE_CONSTRAINT",
    "clamp_n_factors",
    "clamp_n_neighbors",
    "resolve_n_jobs",
]

_log = logging.getLogger(__name__)

#: Parameter constraints shared by every model: ``n_jobs`` in scikit-learn's convention
#: (a positive count, -1 for all cores, -2 for all but one, None for one thread).
N_JOBS_CONSTRAINT: list[Any] = [
    Interval(Integral, 1, None, closed="left"),
    Interval(Integral, None, -1, closed="right"),
    None,
]
RANDOM_STATE_CONSTRAINT: list[Any] = ["random_state", np.random.Generator]


def resolve_n_jobs(n_jobs: int | None) -> int:
    """Number of threads for ``n_jobs`` in scikit-learn's convention (None → 1, -1 → all)."""
    n_cpus = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return max(1, n_jobs)


def clamp_n_factors(model: Any, user_items: sp.csr_matrix) -> int:
    """``n_factors`` lowered below ``min(n_users, n_items)`` when it cannot fit the data."""
    limit = max(1, min(user_items.shape) - 1)
    requested = int(model.n_factors)
    if requested <= limit:
        return requested
    _log.warning(
        "%s: `n_factors`=%d is not below min(n_users, n_items)=%d; using n_factors=%d.",
        type(model).__name__,
        requested,
        min(user_items.shape),
        limit,
    )
    return limit


def clamp_n_neighbors(model: Any, available: int, what: str) -> int:
    """``n_neighbors`` lowered to the ``available`` candidates (``what`` names them)."""
    available = max(1, available)
    requested = int(model.n_neighbors)
    if requested <= available:
        return requested
    _log.warning(
        "%s: `n_neighbors`=%d exceeds the %d %s available; using n_neighbors=%d.",
        type(model).__name__,
        requested,
        available,
        what,
        available,
    )
    return available


@functools.cache
def thread_controller() -> ThreadpoolController:
    """The process's thread pools (BLAS, OpenMP), found once.

    Finding them reads the process's loaded libraries, about 3 ms each time: as long as
    a small EASE fit. The package imports numpy and SciPy's BLAS before any model runs,
    so the pools found at the first call are all there are.
    """
    return ThreadpoolController()
