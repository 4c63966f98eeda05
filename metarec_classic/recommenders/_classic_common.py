"""Helpers shared by the scikit-learn and NumPy based models (kNN, SVD, NMF, EASE, RP3beta)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from metarec_classic.recommenders._common import resolve_n_jobs, thread_controller

__all__ = [
    "blas_threads",
    "fill_unscored_rows",
    "rows_match_training",
    "rows_per_block",
    "top_k_per_row",
]

_log = logging.getLogger(__name__)

#: Working blocks (dense, or sparse in the worst case) hold at most this many entries.
_BLOCK_ENTRIES = 2**24

#: Above this fill, ``top_k_per_row`` works on the dense block instead of sorting entries.
_DENSE_FRACTION = 0.25


def blas_threads(n_jobs: int | None) -> Any:
    """Context manager holding BLAS (and OpenMP inside it) to the threads ``n_jobs`` allows."""
    return thread_controller().limit(limits=resolve_n_jobs(n_jobs), user_api="blas")


def rows_per_block(n_cols: int) -> int:
    """Rows of a dense ``(rows, n_cols)`` working block that keep it within the budget."""
    return max(1, _BLOCK_ENTRIES // max(1, n_cols))


def fill_unscored_rows(scores: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Give rows whose scores are all zero the popularity scores instead (in place).

    A user whose history shares nothing with the model (no neighbour, items without
    training interactions) would otherwise get items in index order.
    """
    empty = ~np.any(scores != 0, axis=1)
    if empty.any():
        scores[empty] = popularity
    return scores


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest positive entries of each row of a sparse matrix (CSR float32).

    Ties at the cut are broken by the lower column index, so the result is deterministic.
    The work is a sort of the stored entries, so it stays cheap when rows are sparse.
    """
    matrix = sp.csr_matrix(matrix)
    matrix.data[~(matrix.data > 0)] = 0.0  # NaN and negative weights are dropped too
    matrix.eliminate_zeros()
    n_rows, n_cols = matrix.shape
    if k < n_cols and matrix.nnz > _DENSE_FRACTION * n_rows * n_cols:
        # Nearly dense rows: a partition of the dense block beats sorting every entry.
        return _top_k_dense(matrix.toarray(), k)
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(n_rows), counts)
    if counts.size and counts.max() > k:
        # Within each row: largest value first, then lowest column; keep the first k.
        order = np.lexsort((matrix.indices, -matrix.data, rows))
        rank = np.arange(matrix.nnz) - matrix.indptr[rows[order]]
        chosen = np.sort(order[rank < k])
    else:
        chosen = np.arange(matrix.nnz)
    return sp.csr_matrix(
        (matrix.data[chosen].astype(np.float32), (rows[chosen], matrix.indices[chosen])),
        shape=matrix.shape,
    )


def rows_match_training(
    training: sp.csr_matrix, users: np.ndarray, history: sp.csr_matrix
) -> np.ndarray:
    """Mask of the ``history`` rows that equal the training rows of the same ``users``."""
    known = users < training.shape[0]
    match = np.zeros(len(users), dtype=bool)
    if known.any():
        difference = training[users[known]] - history[np.flatnonzero(known)]
        difference.eliminate_zeros()
        match[known] = difference.getnnz(axis=1) == 0
    return match


def _top_k_dense(block: np.ndarray, k: int) -> sp.csr_matrix:
    """``top_k_per_row`` for a dense block with non-negative entries and ``k < n_cols``."""
    # The k-th largest value of each row is the cut; everything above it is kept and the
    # values equal to it are taken in column order until the row has k entries.
    cut = -np.partition(-block, k - 1, axis=1)[:, k - 1 : k]
    above = block > cut
    at_cut = block == cut
    room = k - above.sum(axis=1, keepdims=True)
    selected = (above | (at_cut & (np.cumsum(at_cut, axis=1) <= room))) & (block > 0)
    rows, cols = np.nonzero(selected)
    return sp.csr_matrix((block[rows, cols].astype(np.float32), (rows, cols)), shape=block.shape)
