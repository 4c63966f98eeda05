"""Top-k ranking metrics computed from recommended id matrices, vectorised over users.

Conventions
-----------
Inputs
    ``recommended`` is an integer matrix of shape ``(n_users, k)``: column indices of
    the recommended items, best first, padded with ``-1`` (as returned by
    :meth:`~metarec_classic.recommenders.BaseRecommender.recommend`). Row ``r`` is scored
    against row ``r`` of the test matrix. Padding is never looked up as an item: it is
    simply a miss. A list with fewer than ``k`` columns is treated as padded to ``k``, and
    columns after the ``k``-th are ignored. If an item appears twice in one list only its
    first occurrence can be a hit.
Relevance
    Binary: an item is relevant to a user when the test matrix stores a positive value
    (``> 0``) for the pair. The grade of the value is not used.
Seen items
    Items of the user's training history are expected to be left out of the list by the
    recommender (``exclude_seen=True``, which :func:`evaluate` uses); the metrics do not
    remove them. Train and test of a :mod:`~metarec_classic.data` split are disjoint, so
    a seen item can never be a hit anyway; it only wastes a slot.
Users without test positives
    Get ``NaN`` from :func:`ranking_metrics` and are left out of every mean;
    :func:`evaluate` does not even ask the model for their lists.
Users without a list
    A user whose list is all padding scores 0 on every metric (when they have test
    positives).

Definitions (``rel_j`` = 1 when the item at rank ``j = 1..k`` is a hit, ``R`` = number of
test positives of the user, ``hits = Σ_j rel_j``):

- ``precision@k = hits / k`` (padding counts as a miss; the denominator is always ``k``)
- ``recall@k = hits / R`` (the plain definition; it is below 1 whenever ``R > k``)
- ``ndcg@k = DCG / IDCG`` with ``DCG = Σ_j rel_j / log2(j + 1)`` and the ideal
  ``IDCG = Σ_{j=1..min(k, R)} 1 / log2(j + 1)``
- ``map@k = (1 / min(k, R)) Σ_j rel_j · precision@j``
- ``mrr@k = 1 / (rank of the first hit)``, or 0 without a hit
- ``hit_rate@k = 1`` when the list holds at least one hit, else 0
- ``coverage@k`` (catalogue coverage, one number per evaluation): distinct items that
  appear in at least one of the evaluated users' top-``k`` lists, divided by ``n_items``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from metarec_classic.data import Interactions

__all__ = [
    "METRIC_NAMES",
    "EvaluationResult",
    "catalogue_coverage",
    "evaluate",
    "ranking_metrics",
]

_log = logging.getLogger(__name__)

#: Per-user metrics, in the order they are reported.
PER_USER_METRICS: tuple[str, ...] = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate")
#: Every metric name accepted by ``metrics=`` (per-user ones plus catalogue coverage).
METRIC_NAMES: tuple[str, ...] = (*PER_USER_METRICS, "coverage")

#: Users asked from the model in one ``recommend`` call by :func:`evaluate`.
_DEFAULT_BATCH = 4096


class _Recommends(Protocol):
    """Anything with the batch ``recommend`` of :class:`BaseRecommender`."""

    def recommend(
        self,
        user_ids: Any,
        user_items: Any = None,
        *,
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class EvaluationResult:
    """Top-k metrics of one model on one test set.

    Parameters
    ----------
    mean : dict of str to float
        Mean of every per-user metric over the evaluated users, plus ``coverage@k``;
        keys are spelled ``"ndcg@10"``, ``"recall@10"``, ... ``"coverage@10"``.
    per_user : DataFrame
        One row per evaluated user, indexed by the original user id (``"user_id"``),
        with the columns ``user_index`` (row in ``user_items``), ``n_relevant`` (test
        positives), ``n_train`` (training entries; 0 means served by the fallback) and
        one column per per-user metric.
    n_users_evaluated : int
        Users with at least one test positive, i.e. the users the means are over.
    n_fallback_users : int
        Evaluated users with no training history; a :class:`BaseRecommender` serves
        them from its popularity fallback.
    k : int
        List length the metrics were computed at.
    """

    mean: dict[str, float]
    per_user: pd.DataFrame
    n_users_evaluated: int
    n_fallback_users: int
    k: int


def ranking_metrics(
    recommended: np.ndarray,
    test_user_items: Any,
    *,
    k: int = 10,
    metrics: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-user top-k metrics of recommendation lists against test positives.

    See the module docstring for the exact definitions and conventions.

    Parameters
    ----------
    recommended : array-like of int of shape (n_users, n_cols)
        Recommended item indices, best first, ``-1`` for padding.
    test_user_items : Interactions or sparse matrix of shape (n_users, n_items)
        Test interactions; row ``r`` belongs to row ``r`` of ``recommended``.
    k : int, default=10
        Cut-off of the lists.
    metrics : sequence of str, optional
        Names from ``("ndcg", "recall", "precision", "map", "mrr", "hit_rate")``;
        default all of them.

    Returns
    -------
    dict of str to ndarray of shape (n_users,)
        Keyed ``"ndcg@10"`` and so on; float64, ``NaN`` for users without test positives.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from metarec_classic.evaluation import ranking_metrics
    >>> test = sp.csr_matrix(np.array([[0, 1, 0, 1], [0, 0, 0, 0]], dtype=np.float32))
    >>> recommended = np.array([[1, 2], [0, -1]])
    >>> result = ranking_metrics(recommended, test, k=2, metrics=["precision", "recall"])
    >>> result["precision@2"].tolist(), result["recall@2"].tolist()
    ([0.5, nan], [0.5, nan])
    """
    k = _check_k(k)
    names = _check_metrics(metrics, allow_coverage=False)
    test = _as_csr(test_user_items, "test_user_items")
    rec = _check_recommended(recommended, k, test.shape[1])
    if rec.shape[0] != test.shape[0]:
        raise ValueError(
            f"`recommended` has {rec.shape[0]} rows but `test_user_items` has "
            f"{test.shape[0]}; pass the test rows of the same users, in the same order."
        )
    keys, n_relevant = _positive_keys(test)
    hits = _hit_matrix(rec, np.arange(rec.shape[0], dtype=np.int64), keys, test.shape[1])
    return _metrics_from_hits(hits, n_relevant, k, names)


def catalogue_coverage(recommended: np.ndarray, n_items: int, *, k: int = 10) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list.

    Parameters
    ----------
    recommended : array-like of int of shape (n_users, n_cols)
        Recommended item indices, ``-1`` for padding (ignored).
    n_items : int
        Size of the catalogue.
    k : int, default=10
        Only the first ``k`` columns count.

    Returns
    -------
    float
        Distinct recommended items divided by ``n_items``.
    """
    k = _check_k(k)
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items <= 0:
        raise ValueError(f"`n_items` must be a positive int; got {n_items!r}.")
    rec = _check_recommended(recommended, k, int(n_items))
    valid = rec[rec >= 0]
    return float(np.count_nonzero(np.bincount(valid, minlength=n_items))) / float(n_items)


def evaluate(
    model: _Recommends,
    train: Interactions | Any,
    test: Interactions | Any,
    *,
    k: int = 10,
    metrics: Sequence[str] | None = None,
    users: Any = None,
    batch_size: int = _DEFAULT_BATCH,
    exclude: Interactions | Any = None,
) -> EvaluationResult:
    """Ask a fitted model for top-``k`` lists of the test users and score them.

    Parameters
    ----------
    model : recommender
        A fitted model with the batch ``recommend`` of
        :class:`~metarec_classic.recommenders.BaseRecommender`.
    train : Interactions or sparse matrix of shape (n_users, n_items)
        The training part: passed to ``recommend`` as each user's history, so its items
        are excluded from the lists (and history-based models score from it).
    test : Interactions or sparse matrix of shape (n_users, n_items)
        The test part, same shape (and id maps) as ``train``.
    k : int, default=10
        List length.
    metrics : sequence of str, optional
        Names from ``METRIC_NAMES``; default all (``ndcg``, ``recall``, ``precision``,
        ``map``, ``mrr``, ``hit_rate``, ``coverage``).
    users : array-like of int, optional
        Row indices to evaluate (default: every user). Only those with at least one test
        positive are evaluated.
    batch_size : int, default=4096
        Users per ``recommend`` call; bounds the memory of the model's score matrix.
    exclude : Interactions or sparse matrix of shape (n_users, n_items), optional
        More items to keep out of each user's list besides ``train``'s: typically every
        item the user rated in the training period, when the model learns from the
        positives only (ratings below the threshold are seen items, not candidates;
        ``train.seen_nonpositive`` holds them when the data came through a threshold).
        They are passed on to the model's ``recommend(..., exclude=)``, which fills each
        list with ``k`` items where it has that many.

    Returns
    -------
    EvaluationResult

    Examples
    --------
    >>> import pandas as pd
    >>> from metarec_classic.data import from_dataframe, leave_last_k_out_split
    >>> from metarec_classic.evaluation import evaluate
    >>> from metarec_classic.recommenders import make_recommender
    >>> frame = pd.DataFrame(
    ...     {
    ...         "user_id": [1, 1, 1, 2, 2, 3, 3],
    ...         "item_id": [1, 2, 3, 1, 3, 2, 3],
    ...         "timestamp": [1, 2, 3, 1, 2, 1, 2],
    ...     }
    ... )
    >>> split = leave_last_k_out_split(from_dataframe(frame, timestamp_col="timestamp"))
    >>> model = make_recommender("most_popular").fit(split.train)
    >>> result = evaluate(model, split.train, split.test, k=2)
    >>> result.n_users_evaluated, round(result.mean["ndcg@2"], 3)
    (3, 0.754)
    """
    k = _check_k(k)
    names = _check_metrics(metrics, allow_coverage=True)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
    train_m = _as_csr(train, "train")
    test_m = _as_csr(test, "test")
    if train_m.shape != test_m.shape:
        raise ValueError(
            f"`train` has shape {train_m.shape} but `test` has {test_m.shape}; both must "
            "come from one split of the same Interactions."
        )
    exclude_m = None if exclude is None else _as_csr(exclude, "exclude")
    if exclude_m is not None and exclude_m.shape != train_m.shape:
        raise ValueError(
            f"`exclude` has shape {exclude_m.shape} but `train` has {train_m.shape}; both "
            "must have the same users and items (rows and columns)."
        )
    if (
        isinstance(train, Interactions)
        and isinstance(test, Interactions)
        and (train.user_map is not test.user_map or train.item_map is not test.item_map)
        and (train.user_map != test.user_map or train.item_map != test.item_map)
    ):
        raise ValueError(
            "`train` and `test` have different id maps; split one Interactions with "
            "`metarec_classic.data` so that rows and columns mean the same ids."
        )
    n_users, n_items = test_m.shape

    # The users to evaluate: those (of `users`) with at least one test positive.
    keys, n_relevant = _positive_keys(test_m)
    candidates = np.flatnonzero(n_relevant > 0)
    if users is not None:
        wanted = np.unique(np.asarray(users, dtype=np.int64).ravel())
        if wanted.size and (wanted.min() < 0 or wanted.max() >= n_users):
            raise ValueError(
                f"`users` must be row indices in [0, {n_users}); got values from "
                f"{int(wanted.min())} to {int(wanted.max())}."
            )
        candidates = np.intersect1d(candidates, wanted, assume_unique=True)

    # Lists from the model, in batches, with the training rows as histories.
    recommended = np.full((len(candidates), k), -1, dtype=np.int64)
    for start in range(0, len(candidates), int(batch_size)):
        batch = candidates[start : start + int(batch_size)]
        if exclude_m is None:  # models without an `exclude` argument are scored too
            ids, _ = model.recommend(batch, train_m[batch], k=k, exclude_seen=True)
        else:
            ids, _ = model.recommend(
                batch, train_m[batch], k=k, exclude_seen=True, exclude=exclude_m[batch]
            )
        recommended[start : start + len(batch)] = _check_recommended(ids, k, n_items)

    # Scores from the hit matrix of all lists at once.
    hits = _hit_matrix(recommended, candidates, keys, n_items)
    per_user_names = [name for name in names if name in PER_USER_METRICS]
    per_metric = _metrics_from_hits(hits, n_relevant[candidates], k, per_user_names)
    n_train = np.diff(train_m.indptr)[candidates]
    user_ids = train.user_map.ids[candidates] if isinstance(train, Interactions) else candidates
    per_user = pd.DataFrame(
        {
            "user_index": candidates,
            "n_relevant": n_relevant[candidates],
            "n_train": n_train,
            **per_metric,
        },
        index=pd.Index(user_ids, name="user_id"),
    )
    if len(candidates):
        mean = {name: float(values.mean()) for name, values in per_metric.items()}
    else:
        _log.warning("No user has a test positive; every mean metric is NaN.")
        mean = {name: float("nan") for name in per_metric}
    if "coverage" in names:
        mean[f"coverage@{k}"] = catalogue_coverage(recommended, n_items, k=k)
    n_fallback = int(np.count_nonzero(n_train == 0))
    _log.debug(
        "Evaluated %d users at k=%d (%d without history): %s",
        len(candidates),
        k,
        n_fallback,
        mean,
    )
    return EvaluationResult(
        mean=mean,
        per_user=per_user,
        n_users_evaluated=len(candidates),
        n_fallback_users=n_fallback,
        k=k,
    )


# -- private helpers -------------------------------------------------------------------
def _metrics_from_hits(
    hits: np.ndarray, n_relevant: np.ndarray, k: int, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Every requested per-user metric from the ``(n, k)`` boolean hit matrix."""
    has_positive = n_relevant > 0
    n_hits = hits.sum(axis=1, dtype=np.float64)
    safe_relevant = np.where(has_positive, n_relevant, 1).astype(np.float64)
    # Ideal list length, for NDCG's ideal DCG and MAP's normaliser.
    ideal = np.minimum(np.where(has_positive, n_relevant, 1), k)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "ndcg":
            discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
            ideal_dcg = np.concatenate(([0.0], np.cumsum(discounts)))[ideal]
            values = (hits @ discounts) / ideal_dcg
        elif name == "recall":
            values = n_hits / safe_relevant
        elif name == "precision":
            values = n_hits / k
        elif name == "map":
            precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
            values = (precision_at * hits).sum(axis=1) / ideal
        elif name == "mrr":
            first = np.argmax(hits, axis=1)
            values = np.where(n_hits > 0, 1.0 / (first + 1.0), 0.0)
        elif name == "hit_rate":
            values = (n_hits > 0).astype(np.float64)
        else:  # pragma: no cover - names are checked on entry
            raise AssertionError(f"Unknown metric {name!r}; this is a bug in metarec_classic.")
        out[f"{name}@{k}"] = np.where(has_positive, values, np.nan)
    return out


def _hit_matrix(
    recommended: np.ndarray, rows: np.ndarray, positive_keys: np.ndarray, n_items: int
) -> np.ndarray:
    """Boolean ``(n, k)``: is item ``recommended[r, j]`` a test positive of user ``rows[r]``.

    Each (user, item) pair is encoded as ``user * n_items + item`` and looked up in the
    sorted keys of the test positives, so no Python loop runs over users.
    """
    valid = recommended >= 0
    pair = rows[:, None] * np.int64(n_items) + np.where(valid, recommended, 0)
    if positive_keys.size == 0:
        return np.zeros(recommended.shape, dtype=bool)
    pos = np.searchsorted(positive_keys, pair)
    found = positive_keys[np.minimum(pos, positive_keys.size - 1)] == pair
    hits = found & valid & ~_repeated_in_row(recommended)
    return hits


def _repeated_in_row(recommended: np.ndarray) -> np.ndarray:
    """True where an id already occurred earlier in the same row (padding excluded)."""
    if recommended.shape[1] < 2:
        return np.zeros(recommended.shape, dtype=bool)
    order = np.argsort(recommended, axis=1, kind="stable")
    ordered = np.take_along_axis(recommended, order, axis=1)
    repeat_sorted = np.zeros(recommended.shape, dtype=bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeated = np.empty_like(repeat_sorted)
    np.put_along_axis(repeated, order, repeat_sorted, axis=1)
    return repeated & (recommended >= 0)


def _positive_keys(test: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``row * n_items + col`` keys of the positive entries, and positives per row."""
    n_items = test.shape[1]
    positive = test.data > 0
    rows = np.repeat(np.arange(test.shape[0], dtype=np.int64), np.diff(test.indptr))[positive]
    keys = rows * np.int64(n_items) + test.indices[positive].astype(np.int64)
    if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
        # Non-canonical input (unsorted or duplicate entries): sort and merge duplicates.
        keys = np.unique(keys)
        rows = keys // n_items
    n_relevant = np.bincount(rows, minlength=test.shape[0]).astype(np.int64)
    return keys, n_relevant


def _check_recommended(recommended: Any, k: int, n_items: int) -> np.ndarray:
    """Validate the id matrix; return exactly ``k`` int64 columns (cut or padded)."""
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(
            f"`recommended` must be a 2-D array of shape (n_users, k); got {rec.ndim} dimension(s)."
        )
    if rec.size and rec.dtype.kind not in "iu":
        raise ValueError(
            f"`recommended` must hold integer item indices (-1 for padding); got dtype {rec.dtype}."
        )
    rec = rec.astype(np.int64, copy=False)
    if rec.shape[1] > k:
        rec = rec[:, :k]
    elif rec.shape[1] < k:
        rec = np.pad(rec, ((0, 0), (0, k - rec.shape[1])), constant_values=-1)
    if rec.size and (rec.min() < -1 or rec.max() >= n_items):
        bad = rec[(rec < -1) | (rec >= n_items)][:3].tolist()
        raise ValueError(
            f"`recommended` holds ids {bad!r} outside [0, {n_items}); ids must be item "
            "indices (columns of `user_items`), with -1 only as padding."
        )
    return rec


def _as_csr(data: Any, name: str) -> sp.csr_matrix:
    """The CSR matrix of an :class:`Interactions` or of a scipy sparse matrix."""
    if isinstance(data, Interactions):
        return data.user_items
    if sp.issparse(data):
        return sp.csr_matrix(data)
    raise TypeError(
        f"`{name}` must be an Interactions or a scipy sparse matrix; got {type(data).__name__}."
    )


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"`k` must be a positive int; got {k!r}.")
    return int(k)


def _check_metrics(metrics: Sequence[str] | None, *, allow_coverage: bool) -> list[str]:
    allowed = METRIC_NAMES if allow_coverage else PER_USER_METRICS
    if metrics is None:
        return list(allowed)
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in allowed]
    if unknown:
        raise ValueError(
            f"`metrics` has unknown names {unknown!r}; choose from {', '.join(allowed)}."
        )
    return list(dict.fromkeys(metrics))
