"""User meta-features: numbers that describe each user of a training split.

One row per user (the rows of the user × item matrix), computed from the training
interactions only, in time linear in the number of interactions: every feature is a
vectorised pass over the stored entries, except the neighbour overlap, whose cost is
bounded by a fixed-size sample of users (see :func:`user_metafeatures`). No feature is
ever NaN or infinite: users with no training interaction, and data without ratings or
timestamps, get the documented values below.

Groups (prefix: meaning):

- ``user_activity.*``: how many interactions the user has.
- ``user_pop.*``: how popular the user's items are (popularity percentiles, long tail,
  spread over popularity deciles).
- ``user_rating.*``: the user's ratings on the data's rating range scaled to [0, 1].
- ``user_time.*``: how long the user has been active and how long ago.
- ``user_overlap.*``: how much the user's items overlap those of the most similar users
  found in a random sample of users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from metarec_classic._random import check_random_state
from metarec_classic.data import Interactions

__all__ = ["USER_FEATURE_NAMES", "user_metafeatures"]

#: Names of the user meta-features, in the column order of :func:`user_metafeatures`.
USER_FEATURE_NAMES: tuple[str, ...] = (
    "user_activity.n_interactions",
    "user_activity.n_interactions_log",
    "user_pop.mean_pct",
    "user_pop.std_pct",
    "user_pop.long_tail_share",
    "user_pop.decile_entropy",
    "user_rating.mean",
    "user_rating.std",
    "user_time.span_days",
    "user_time.recency_days",
    "user_overlap.jaccard_topk",
)

_DAY = 86_400.0
#: Share of all interactions held by the head; the other items are the long tail.
_HEAD_SHARE = (4, 5)  # 80 %, as an exact fraction
_N_DECILES = 10
#: Upper bound of the dense users × sample block computed at once for the overlap.
_BLOCK_CELLS = 1 << 22


def user_metafeatures(
    interactions: Interactions | sp.csr_matrix,
    *,
    sample_users: int = 500,
    n_neighbors: int = 10,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Describe every user of a training split by a fixed, ordered set of finite numbers.

    Parameters
    ----------
    interactions : Interactions or sparse matrix of shape (n_users, n_items)
        Training interactions only (never the test split). A plain matrix has no ratings
        nor timestamps, so its rating and time features get their documented values.
    sample_users : int, default=500
        Size of the random sample of users (among the users with at least one
        interaction) that every user is compared with for ``user_overlap.jaccard_topk``.
        The overlap costs at most ``sample_users`` operations per interaction and
        ``sample_users`` values of memory per user, whatever the number of users. When
        the data has no more users with interactions than this, all of them are used
        and the feature is exact.
    n_neighbors : int, default=10
        How many of the most similar sampled users the overlap averages over.
    random_state : int, numpy Generator or None, default=None
        Seeds the overlap sample; the other features do not depend on it.

    Returns
    -------
    DataFrame of shape (n_users, len(USER_FEATURE_NAMES))
        Index: the internal user index ``0..n_users-1``; columns: float64, in the order
        of :data:`USER_FEATURE_NAMES`. ``attrs["overlap_sample_users"]`` holds the
        (sorted) indices of the sampled users as a tuple of int.

    Raises
    ------
    ValueError
        If ``sample_users`` or ``n_neighbors`` is smaller than 1.

    Notes
    -----
    Item popularity is the number of training interactions of the item. Only items with
    at least one interaction are ranked, so items that occur only in a test split do
    not shift the percentiles. The features, with the value a user without training
    interactions gets in brackets:

    ``user_activity.n_interactions`` [0]
        Number of stored interactions of the user.
    ``user_activity.n_interactions_log`` [0]
        Its ``log1p``.
    ``user_pop.mean_pct`` [0.5]
        Mean popularity percentile of the user's items. The percentile of an item is
        ``(r - 1) / (m - 1)`` where ``r`` is its average rank by ascending popularity
        among the ``m`` items with interactions: 0 for the least and 1 for the most
        popular item, and tied items share a value (0.5 when all items tie).
    ``user_pop.std_pct`` [0]
        Standard deviation (``ddof=0``) of those percentiles; 0 for a single item.
    ``user_pop.long_tail_share`` [0]
        Share of the user's items in the long tail. The head is the smallest set of
        most popular items that holds at least 80 % of all interactions (the set whose
        size ``pop.items_for_80`` of :func:`dataset_metafeatures` reports), widened to
        every item as popular as its least popular member, so tied items are never
        split; every other item is in the long tail.
    ``user_pop.decile_entropy`` [0]
        Entropy of the user's items over the ten popularity deciles (percentile bins
        ``[0, 0.1), ..., [0.9, 1]``), divided by its largest possible value for that
        many items, ``log(min(n_interactions, 10))``: 1 when the items are spread as
        evenly as possible, 0 when they all fall in one decile (always so for one item).
    ``user_rating.mean`` [0]
        Mean of the user's raw ratings (``Interactions.ratings``), after mapping the
        data's lowest rating to 0 and its highest to 1. 0 for every user when there are
        no ratings or they are all equal.
    ``user_rating.std`` [0]
        Standard deviation (``ddof=0``) of the same scaled ratings; 0 likewise.
    ``user_time.span_days`` [0]
        Days between the user's first and last interaction; 0 for every user without
        timestamps.
    ``user_time.recency_days`` [the data's time span in days]
        Days between the user's last interaction and the last timestamp of the data;
        0 for every user without timestamps.
    ``user_overlap.jaccard_topk`` [0]
        Mean Jaccard similarity (shared items over items of either user) between the
        user and the ``n_neighbors`` most similar users of the overlap sample, the user
        itself excluded. Dissimilar neighbours count with 0, so a user who shares items
        with fewer sampled users than ``n_neighbors`` gets a lower value. A random
        sample finds less similar neighbours than the whole population, so on data with
        more users than ``sample_users`` this underestimates the overlap with the user's
        true nearest neighbours.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32))
    >>> features = user_metafeatures(matrix, random_state=0)
    >>> features["user_activity.n_interactions"].tolist()
    [2.0, 1.0, 0.0]
    >>> features["user_pop.mean_pct"].tolist()
    [0.5, 1.0, 0.5]
    >>> features["user_overlap.jaccard_topk"].tolist()
    [0.5, 0.5, 0.0]
    """
    if isinstance(sample_users, bool) or int(sample_users) < 1:
        raise ValueError(f"`sample_users` must be at least 1; got {sample_users!r}.")
    if isinstance(n_neighbors, bool) or int(n_neighbors) < 1:
        raise ValueError(f"`n_neighbors` must be at least 1; got {n_neighbors!r}.")
    rng = check_random_state(random_state)
    data = interactions if isinstance(interactions, Interactions) else None
    if data is not None:
        matrix = data.user_items
    else:
        # A plain matrix may hold repeated entries; merge them on a copy.
        matrix = sp.csr_matrix(interactions, copy=True)
        matrix.sum_duplicates()
    n_users, n_items = matrix.shape
    deg = np.diff(matrix.indptr).astype(np.float64)
    rows = np.repeat(np.arange(n_users), np.diff(matrix.indptr))
    nonempty = deg > 0

    columns: dict[str, np.ndarray] = {
        "user_activity.n_interactions": deg,
        "user_activity.n_interactions_log": np.log1p(deg),
    }
    columns.update(_popularity(matrix, rows, deg))
    ratings = data.ratings if data is not None else None
    columns.update(_ratings(ratings, rows, deg))
    timestamps = data.timestamps if data is not None else None
    columns.update(_time(timestamps, matrix.indptr, nonempty))
    overlap, sample = _overlap(matrix, deg, int(sample_users), int(n_neighbors), rng)
    columns["user_overlap.jaccard_topk"] = overlap

    frame = pd.DataFrame(
        {name: np.asarray(columns[name], dtype=np.float64) for name in USER_FEATURE_NAMES},
        index=pd.RangeIndex(n_users, name="user_index"),
    )
    values = frame.to_numpy()
    if not np.isfinite(values).all():
        bad = frame.columns[~np.isfinite(values).all(axis=0)].tolist()
        raise AssertionError(
            f"User meta-features {bad!r} are not finite. This is a bug in metarec_classic; "
            f"please report it with the data's shape {(n_users, n_items)}."
        )
    frame.attrs["overlap_sample_users"] = tuple(int(u) for u in sample)
    return frame


def _per_user_sum(rows: np.ndarray, values: np.ndarray, n_users: int) -> np.ndarray:
    return np.bincount(rows, weights=values, minlength=n_users)


def _mean_std(
    rows: np.ndarray, values: np.ndarray, deg: np.ndarray, empty_mean: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user mean and ``ddof=0`` std of entry values, in two passes for accuracy."""
    n_users = deg.size
    safe = np.maximum(deg, 1.0)
    mean = _per_user_sum(rows, values, n_users) / safe
    var = _per_user_sum(rows, (values - mean[rows]) ** 2, n_users) / safe
    mean[deg == 0] = empty_mean
    return mean, np.sqrt(np.maximum(var, 0.0))


def _item_percentiles(item_deg: np.ndarray) -> np.ndarray:
    """Average-rank popularity percentile of every item with interactions (0 elsewhere)."""
    active = np.flatnonzero(item_deg > 0)
    pct = np.zeros(item_deg.size, dtype=np.float64)
    m = active.size
    if m == 0:
        return pct
    if m == 1:
        pct[active] = 0.5
        return pct
    counts = item_deg[active]
    # Average 1-based rank of each distinct count, from how many items hold smaller ones.
    _, inverse, ties = np.unique(counts, return_inverse=True, return_counts=True)
    below = np.concatenate(([0], np.cumsum(ties)[:-1]))
    avg_rank = below + (ties + 1) / 2.0
    pct[active] = (avg_rank[inverse] - 1.0) / (m - 1)
    return pct


def _head_items(item_deg: np.ndarray) -> np.ndarray:
    """Boolean mask of the head: the most popular items holding 80 % of interactions."""
    head = np.zeros(item_deg.size, dtype=bool)
    counts = item_deg.astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return head
    ordered = np.sort(counts)[::-1]
    numerator, denominator = _HEAD_SHARE
    # First position where the cumulative share reaches 80 %, in exact integers.
    last = int(np.searchsorted(denominator * np.cumsum(ordered), numerator * total))
    threshold = ordered[min(last, ordered.size - 1)]
    head[counts >= max(int(threshold), 1)] = True
    return head


def _popularity(matrix: sp.csr_matrix, rows: np.ndarray, deg: np.ndarray) -> dict[str, np.ndarray]:
    n_users, n_items = matrix.shape
    item_deg = np.bincount(matrix.indices, minlength=n_items).astype(np.float64)
    pct = _item_percentiles(item_deg)[matrix.indices]
    mean, std = _mean_std(rows, pct, deg, empty_mean=0.5)

    tail = (~_head_items(item_deg))[matrix.indices].astype(np.float64)
    tail_share = _per_user_sum(rows, tail, n_users) / np.maximum(deg, 1.0)

    decile = np.minimum((pct * _N_DECILES).astype(np.int64), _N_DECILES - 1)
    counts = np.bincount(rows * _N_DECILES + decile, minlength=n_users * _N_DECILES)
    shares = counts.reshape(n_users, _N_DECILES) / np.maximum(deg, 1.0)[:, None]
    # log(1) = 0 stands in for the empty deciles, whose term p log p is 0.
    entropy = 0.0 - (shares * np.log(np.where(shares > 0, shares, 1.0))).sum(axis=1)
    most = np.log(np.clip(deg, 1.0, float(_N_DECILES)))  # 0 for zero or one item
    entropy = np.divide(entropy, most, out=np.zeros(n_users), where=most > 0)
    return {
        "user_pop.mean_pct": mean,
        "user_pop.std_pct": std,
        "user_pop.long_tail_share": tail_share,
        "user_pop.decile_entropy": np.clip(entropy, 0.0, 1.0),
    }


def _ratings(
    ratings: np.ndarray | None, rows: np.ndarray, deg: np.ndarray
) -> dict[str, np.ndarray]:
    zeros = np.zeros(deg.size)
    if ratings is None or ratings.size == 0:
        return {"user_rating.mean": zeros, "user_rating.std": zeros.copy()}
    values = np.asarray(ratings, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if not high > low:
        return {"user_rating.mean": zeros, "user_rating.std": zeros.copy()}
    mean, std = _mean_std(rows, (values - low) / (high - low), deg, empty_mean=0.0)
    return {"user_rating.mean": mean, "user_rating.std": std}


def _time(
    timestamps: np.ndarray | None, indptr: np.ndarray, nonempty: np.ndarray
) -> dict[str, np.ndarray]:
    n_users = nonempty.size
    if timestamps is None or timestamps.size == 0:
        return {
            "user_time.span_days": np.zeros(n_users),
            "user_time.recency_days": np.zeros(n_users),
        }
    ts = np.asarray(timestamps, dtype=np.float64)
    first_all, last_all = float(ts.min()), float(ts.max())
    # Segments start at the non-empty rows; empty rows in between add no entries.
    starts = indptr[:-1][nonempty]
    first = np.full(n_users, last_all)
    last = np.full(n_users, first_all)
    first[nonempty] = np.minimum.reduceat(ts, starts)
    last[nonempty] = np.maximum.reduceat(ts, starts)
    span = np.where(nonempty, last - first, 0.0) / _DAY
    recency = (last_all - last) / _DAY
    return {"user_time.span_days": span, "user_time.recency_days": recency}


def _overlap(
    matrix: sp.csr_matrix,
    deg: np.ndarray,
    sample_users: int,
    n_neighbors: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean Jaccard with the most similar sampled users, and the sample itself."""
    n_users = matrix.shape[0]
    out = np.zeros(n_users)
    candidates = np.flatnonzero(deg > 0)
    if candidates.size == 0:
        return out, candidates
    if candidates.size > sample_users:
        sample = np.sort(rng.choice(candidates, size=sample_users, replace=False))
    else:
        sample = candidates
    size = sample.size
    binary = sp.csr_matrix(
        (np.ones(matrix.nnz, dtype=np.float64), matrix.indices, matrix.indptr),
        shape=matrix.shape,
    )
    right = sp.csr_matrix(binary[sample].T)
    sample_deg = deg[sample]
    position = np.full(n_users, -1, dtype=np.int64)
    position[sample] = np.arange(size)
    k = min(n_neighbors, size)
    block = max(1, _BLOCK_CELLS // size)
    for lo in range(0, candidates.size, block):  # bounded: at most _BLOCK_CELLS cells per pass
        chunk = candidates[lo : lo + block]
        shared = (binary[chunk] @ right).toarray()
        union = deg[chunk][:, None] + sample_deg[None, :] - shared
        jaccard = shared / union  # union >= 1: every sampled user has an interaction
        own = position[chunk]
        in_sample = own >= 0
        jaccard[np.flatnonzero(in_sample), own[in_sample]] = -1.0  # never its own neighbour
        top = jaccard if k == size else np.partition(jaccard, size - k, axis=1)[:, size - k :]
        valid = top >= 0
        out[chunk] = np.where(valid, top, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    return out, sample
