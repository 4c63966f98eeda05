"""Train/test splits of :class:`Interactions` that keep the id maps and the shape whole.

Every split assigns each stored entry of ``interactions.user_items`` to exactly one side,
so for every split::

    train ∪ test == interactions   (entries, weights, ratings and timestamps)
    train ∩ test == ∅

Both sides share the input's :class:`~metarec_classic.data.IdMap` objects and shape, so
row ``u`` and column ``i`` mean the same user and item in the input, in ``train`` and in
``test``. Users or items that end up only in ``test`` are not an error: they are counted
in :attr:`Split.stats` and a recommender serves such users from its popularity fallback.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from metarec_classic._random import check_random_state
from metarec_classic.data._interactions import Interactions
from metarec_classic.exceptions import DataError, DataWarning

__all__ = [
    "Split",
    "leave_last_k_out_split",
    "random_holdout_split",
    "temporal_split",
    "validation_split",
]

_log = logging.getLogger(__name__)

ValidationMethod = Literal["random_holdout", "temporal", "leave_last_k_out"]


@dataclass(frozen=True)
class Split:
    """The result of a split: two disjoint parts of the same :class:`Interactions`.

    Parameters
    ----------
    train : Interactions
        Entries used for fitting. Same shape and id maps as the input.
    test : Interactions
        Held-out entries. Same shape and id maps as the input.
    stats : dict
        Sizes and cold-start counts, see Notes.

    Notes
    -----
    ``stats`` holds these keys (all ints unless said otherwise):

    - ``"method"`` (str): name of the split function.
    - ``"n_interactions"``, ``"n_train"``, ``"n_test"``: stored entries in the input and
      on each side (``n_train + n_test == n_interactions``).
    - ``"n_train_users"``, ``"n_test_users"``: users with at least one entry on each side.
    - ``"n_test_users_unseen"``: test users without any train entry (no history; a
      model can only serve them from its popularity fallback).
    - ``"n_test_items_unseen"``: items with test entries but no train entry (no model
      trained on ``train`` can recommend them).
    - ``"n_test_interactions_unseen_user"``, ``"n_test_interactions_unseen_item"``: test
      entries that belong to such users or items.
    - split parameters, e.g. ``"test_fraction"``, ``"k"`` or ``"cutoff"`` (float, unix
      seconds).
    """

    train: Interactions
    test: Interactions
    stats: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Split(method={self.stats.get('method')!r}, n_train={self.train.n_interactions}, "
            f"n_test={self.test.n_interactions}, "
            f"n_test_users_unseen={self.stats.get('n_test_users_unseen')}, "
            f"n_test_items_unseen={self.stats.get('n_test_items_unseen')})"
        )


def random_holdout_split(
    interactions: Interactions,
    *,
    test_fraction: float = 0.2,
    random_state: int | np.random.Generator | None = 42,
    min_train: int = 1,
) -> Split:
    """Hold out a random share of every user's entries.

    Parameters
    ----------
    interactions : Interactions
        The data to split.
    test_fraction : float, default=0.2
        Share of each user's entries that goes to test, in ``(0, 1)``.
    random_state : int, numpy Generator or None, default=42
        Seed of the random choice; the same seed gives the same split.
    min_train : int, default=1
        Entries each user keeps in train at least (when the user has that many).

    Returns
    -------
    Split

    Notes
    -----
    A user with ``n`` entries gets ``n_test = min(floor(test_fraction * n + 0.5),
    n - min_train)`` test entries (at least 0), i.e. the share is rounded half up and then
    capped so that ``min_train`` entries stay in train. With the defaults, users with 1 or
    2 entries keep everything in train, a user with 3 entries gets 1 test entry and a user
    with 10 entries gets 2. The test entries are drawn uniformly without replacement.

    Examples
    --------
    >>> import pandas as pd
    >>> from metarec_classic.data import from_dataframe, random_holdout_split
    >>> frame = pd.DataFrame({"user_id": [1] * 5 + [2] * 2, "item_id": [1, 2, 3, 4, 5, 1, 2]})
    >>> split = random_holdout_split(from_dataframe(frame), test_fraction=0.2, random_state=0)
    >>> split.stats["n_train"], split.stats["n_test"]
    (6, 1)
    >>> split.train.user_items.shape == split.test.user_items.shape == (2, 5)
    True
    """
    _check_fraction(test_fraction, "test_fraction")
    _check_non_negative_int(min_train, "min_train")
    rng = check_random_state(random_state)
    rows, counts = _entry_rows(interactions)

    # How many entries of each user go to test.
    n_test = np.floor(test_fraction * counts + 0.5).astype(np.int64)
    n_test = np.clip(np.minimum(n_test, counts - min_train), 0, None)

    # A random rank inside each user: shuffle by a random key within each row.
    keys = rng.random(interactions.n_interactions)
    rank = _rank_within_rows(rows, keys, interactions.user_items.indptr)
    in_test = rank < n_test[rows]
    return _make_split(
        interactions,
        in_test,
        method="random_holdout",
        params={"test_fraction": float(test_fraction), "min_train": int(min_train)},
    )


def temporal_split(
    interactions: Interactions,
    *,
    cutoff: float | str | datetime | None = None,
    test_fraction: float | None = None,
) -> Split:
    """Split every user at one global point in time.

    Entries with a timestamp before ``cutoff`` go to train, entries at or after it go to
    test, so train holds nothing later than the cutoff and test nothing earlier.

    Parameters
    ----------
    interactions : Interactions
        The data to split; it must have timestamps.
    cutoff : float, str or datetime, optional
        First instant of the test period: unix seconds, or a date that
        :class:`pandas.Timestamp` parses (a date without a time zone is read as UTC,
        like the timestamps of :func:`~metarec_classic.data.from_dataframe`).
    test_fraction : float, optional
        Used when ``cutoff`` is not given: the cutoff is the timestamp of the entry that
        starts the latest ``round(test_fraction * n_interactions)`` entries. Defaults to
        0.2 when neither argument is given. Give at most one of the two.

    Returns
    -------
    Split
        ``stats["cutoff"]`` holds the cutoff in unix seconds.

    Raises
    ------
    DataError
        When ``interactions`` has no timestamps.

    Notes
    -----
    Entries that share the cutoff timestamp all go to test, so with ``test_fraction``
    the test share can be a little larger than asked. A cutoff outside the data's time
    range leaves one side empty; that is allowed but warned about. Users active only
    after the cutoff appear in test without a train history and are counted in
    ``stats["n_test_users_unseen"]``.

    Examples
    --------
    >>> import pandas as pd
    >>> from metarec_classic.data import from_dataframe, temporal_split
    >>> frame = pd.DataFrame(
    ...     {"user_id": [1, 1, 2, 3], "item_id": [1, 2, 1, 2], "timestamp": [10, 20, 30, 40]}
    ... )
    >>> split = temporal_split(from_dataframe(frame, timestamp_col="timestamp"), cutoff=25)
    >>> split.test.timestamps.tolist(), split.stats["n_test_users_unseen"]
    ([30.0, 40.0], 2)
    """
    times = _require_timestamps(interactions, "temporal_split")
    if cutoff is not None and test_fraction is not None:
        raise ValueError(
            f"Give either `cutoff` or `test_fraction`, not both; got cutoff={cutoff!r} and "
            f"test_fraction={test_fraction!r}."
        )
    if cutoff is None:
        fraction = 0.2 if test_fraction is None else test_fraction
        _check_fraction(fraction, "test_fraction")
        ordered = np.sort(times)
        n = len(ordered)
        n_test_target = min(max(math.floor(fraction * n + 0.5), 1), n - 1) if n > 1 else n
        cutoff_seconds = float(ordered[n - n_test_target]) if n else math.inf
        params: dict[str, Any] = {"test_fraction": float(fraction)}
    else:
        cutoff_seconds = _to_seconds(cutoff)
        params = {}
    params["cutoff"] = cutoff_seconds

    in_test = times >= cutoff_seconds
    split = _make_split(interactions, in_test, method="temporal", params=params)
    if split.train.n_interactions == 0 or split.test.n_interactions == 0:
        side = "train" if split.train.n_interactions == 0 else "test"
        warnings.warn(
            f"The temporal cutoff {cutoff_seconds!r} leaves {side} empty; the timestamps "
            f"range from {float(times.min())!r} to {float(times.max())!r}. Choose a cutoff "
            "inside that range.",
            DataWarning,
            stacklevel=2,
        )
    return split


def leave_last_k_out_split(
    interactions: Interactions,
    *,
    k: int = 1,
    min_train: int = 1,
) -> Split:
    """Hold out each user's ``k`` latest entries.

    Parameters
    ----------
    interactions : Interactions
        The data to split; it must have timestamps.
    k : int, default=1
        Number of latest entries per user that go to test.
    min_train : int, default=1
        Entries each user keeps in train at least: a user with ``n`` entries gets
        ``max(min(k, n - min_train), 0)`` test entries, so with the defaults users with
        a single entry stay in train.

    Returns
    -------
    Split

    Raises
    ------
    DataError
        When ``interactions`` has no timestamps.

    Notes
    -----
    Entries of one user with the same timestamp are ordered by item index (the column
    of ``user_items``): the larger index counts as the later one. The split is therefore
    deterministic. The data has no other record of input order to fall back on, which is
    why timestamps are required; use :func:`random_holdout_split` for data without them.
    """
    _check_positive_int(k, "k")
    _check_non_negative_int(min_train, "min_train")
    times = _require_timestamps(interactions, "leave_last_k_out_split")
    rows, counts = _entry_rows(interactions)
    n_test = np.clip(np.minimum(k, counts - min_train), 0, None)

    # Rank entries inside each user from the latest (0) backwards. CSR entries of a row
    # are sorted by item, so the position breaks timestamp ties by item index.
    position = np.arange(interactions.n_interactions)
    order = np.lexsort((-position, -times, rows))
    rank = np.empty_like(position)
    rank[order] = position - interactions.user_items.indptr[rows[order]]
    in_test = rank < n_test[rows]
    return _make_split(
        interactions,
        in_test,
        method="leave_last_k_out",
        params={"k": int(k), "min_train": int(min_train)},
    )


def validation_split(
    train: Interactions | Split,
    *,
    method: ValidationMethod = "random_holdout",
    validation_fraction: float = 0.2,
    k: int = 1,
    random_state: int | np.random.Generator | None = 42,
    min_train: int = 1,
) -> Split:
    """Cut a validation set out of the training part only, for tuning.

    Parameters
    ----------
    train : Interactions or Split
        The training data. Given a :class:`Split`, only its ``train`` is used, so the
        test part can never leak into tuning.
    method : {"random_holdout", "temporal", "leave_last_k_out"}, default="random_holdout"
        Which split to apply to ``train``.
    validation_fraction : float, default=0.2
        Share held out for validation (``"random_holdout"`` per user, ``"temporal"``
        globally).
    k : int, default=1
        Entries per user held out by ``"leave_last_k_out"``.
    random_state : int, numpy Generator or None, default=42
        Seed of ``"random_holdout"``.
    min_train : int, default=1
        Entries each user keeps in the fitting part (per-user methods).

    Returns
    -------
    Split
        ``train`` is the part to fit on during tuning; ``test`` is the validation set.
        Both have the shape and id maps of the input.
    """
    data = train.train if isinstance(train, Split) else train
    if method == "random_holdout":
        split = random_holdout_split(
            data,
            test_fraction=validation_fraction,
            random_state=random_state,
            min_train=min_train,
        )
    elif method == "temporal":
        split = temporal_split(data, test_fraction=validation_fraction)
    elif method == "leave_last_k_out":
        split = leave_last_k_out_split(data, k=k, min_train=min_train)
    else:
        raise ValueError(
            f"`method` must be 'random_holdout', 'temporal' or 'leave_last_k_out'; got {method!r}."
        )
    split.stats["validation_of"] = split.stats["method"]
    split.stats["method"] = "validation"
    return split


# -- private helpers -------------------------------------------------------------------
def _make_split(
    interactions: Interactions, in_test: np.ndarray, *, method: str, params: dict[str, Any]
) -> Split:
    """Build both sides from one boolean mask over the entries and count the cold start."""
    train = interactions.select_entries(~in_test)
    test = interactions.select_entries(in_test)
    stats = {
        "method": method,
        **params,
        "n_interactions": interactions.n_interactions,
        "n_train": train.n_interactions,
        "n_test": test.n_interactions,
        **_cold_start_counts(train, test),
    }
    _log.debug("%s split of %r: %s", method, interactions.name, stats)
    return Split(train=train, test=test, stats=stats)


def _cold_start_counts(train: Interactions, test: Interactions) -> dict[str, int]:
    """Users and items of ``test`` that ``train`` never saw, and their test entries."""
    train_m, test_m = train.user_items, test.user_items
    train_user_n = np.diff(train_m.indptr)
    test_user_n = np.diff(test_m.indptr)
    train_item_n = np.bincount(train_m.indices, minlength=train.n_items)
    test_item_n = np.bincount(test_m.indices, minlength=test.n_items)
    unseen_user = (test_user_n > 0) & (train_user_n == 0)
    unseen_item = (test_item_n > 0) & (train_item_n == 0)
    return {
        "n_train_users": int(np.count_nonzero(train_user_n)),
        "n_test_users": int(np.count_nonzero(test_user_n)),
        "n_test_users_unseen": int(unseen_user.sum()),
        "n_test_items_unseen": int(unseen_item.sum()),
        "n_test_interactions_unseen_user": int(test_user_n[unseen_user].sum()),
        "n_test_interactions_unseen_item": int(test_item_n[unseen_item].sum()),
    }


def _entry_rows(interactions: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Row of every stored entry and the number of entries of every row."""
    counts = np.diff(interactions.user_items.indptr).astype(np.int64)
    rows = np.repeat(np.arange(interactions.n_users, dtype=np.int64), counts)
    return rows, counts


def _rank_within_rows(rows: np.ndarray, keys: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Rank (0 = smallest key) of every entry among the entries of its row."""
    order = np.lexsort((keys, rows))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows), dtype=np.int64) - indptr[rows[order]]
    return rank


def _require_timestamps(interactions: Interactions, func: str) -> np.ndarray:
    """The timestamps as float64, or a clear error when the data has none."""
    if interactions.timestamps is None:
        raise DataError(
            f"`interactions` has no timestamps, which `{func}` needs; build it with "
            "`from_dataframe(..., timestamp_col=...)` or use `random_holdout_split`."
        )
    times = np.asarray(interactions.timestamps, dtype=np.float64)
    if np.isnan(times).any():
        raise DataError(
            f"`interactions` has {int(np.isnan(times).sum())} NaN timestamps; drop or fill "
            f"them before calling `{func}`."
        )
    return times


def _to_seconds(cutoff: float | str | datetime) -> float:
    """A cutoff given as seconds, a date string or a datetime, in unix seconds."""
    if isinstance(cutoff, (int, float, np.integer, np.floating)) and not isinstance(cutoff, bool):
        seconds = float(cutoff)
    else:
        try:
            stamp = pd.Timestamp(cutoff)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"`cutoff` must be unix seconds, a datetime or a date string; got {cutoff!r}."
            ) from exc
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        seconds = stamp.timestamp()
    if math.isnan(seconds):
        raise ValueError(f"`cutoff` must be a number or a date, not NaN; got {cutoff!r}.")
    return seconds


def _check_fraction(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a float in (0, 1); got {value!r}.")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"`{name}` must be a float in (0, 1); got {value!r}.")


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}.")


def _check_non_negative_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative int; got {value!r}.")
