from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from metarec_classic.data import (
    IdMap,
    Interactions,
    Split,
    from_dataframe,
    leave_last_k_out_split,
    random_holdout_split,
    temporal_split,
    validation_split,
)
from metarec_classic.exceptions import DataError, DataWarning

SEEDS = [0, 1, 42, 2024]


def _interactions(rows: Sequence[tuple[object, object, float, float]]) -> Interactions:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return from_dataframe(frame, rating_col="rating", timestamp_col="timestamp", name="toy")


def _entries(data: Interactions) -> pd.DataFrame:
    """Every stored entry with all aligned values, in a canonical order."""
    frame = data.to_frame().astype({"user_id": object, "item_id": object})
    return frame.sort_values(["user_id", "item_id"]).reset_index(drop=True)


def _check_partition(data: Interactions, split: Split) -> None:
    """Train and test share shape and id maps, are disjoint and add up to the input."""
    for part in (split.train, split.test):
        assert part.user_items.shape == data.user_items.shape
        assert part.user_map is data.user_map
        assert part.item_map is data.item_map
        assert part.user_items.has_canonical_format
    overlap = split.train.user_items.multiply(split.test.user_items)
    assert overlap.nnz == 0
    union = pd.concat([_entries(split.train), _entries(split.test)], ignore_index=True)
    union = union.sort_values(["user_id", "item_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(union, _entries(data))
    assert split.stats["n_train"] + split.stats["n_test"] == data.n_interactions
    assert split.stats["n_train"] == split.train.n_interactions
    assert split.stats["n_test"] == split.test.n_interactions


@pytest.fixture
def toy() -> Interactions:
    """Users u1..u4 with 1, 2, 3 and 10 entries; timestamps increase with the item."""
    rows: list[tuple[object, object, float, float]] = [("u1", "a", 5.0, 100.0)]
    rows += [("u2", item, 4.0, 100.0 + t) for t, item in enumerate("ab")]
    rows += [("u3", item, 3.0, 200.0 + t) for t, item in enumerate("abc")]
    rows += [("u4", item, float(1 + t % 5), 300.0 + t) for t, item in enumerate("abcdefghij")]
    return _interactions(rows)


# -- random holdout ----------------------------------------------------------------------
def test_random_holdout_rounds_half_up_per_user(toy: Interactions) -> None:
    split = random_holdout_split(toy, test_fraction=0.2, random_state=0)
    per_user = dict(zip(toy.user_ids, np.diff(split.test.user_items.indptr), strict=True))
    # n=1 and n=2 stay in train (0.2, 0.4 round to 0), n=3 -> 1 (0.6), n=10 -> 2.
    assert per_user == {"u1": 0, "u2": 0, "u3": 1, "u4": 2}
    _check_partition(toy, split)


def test_random_holdout_half_rounds_up_and_min_train_caps(toy: Interactions) -> None:
    split = random_holdout_split(toy, test_fraction=0.5, random_state=0)
    # n=1 -> round(0.5)=1 but min_train=1 caps it at 0; n=3 -> round(1.5) = 2.
    per_user = np.diff(split.test.user_items.indptr).tolist()
    assert per_user == [0, 1, 2, 5]
    no_min = random_holdout_split(toy, test_fraction=0.5, random_state=0, min_train=0)
    assert np.diff(no_min.test.user_items.indptr).tolist() == [1, 1, 2, 5]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_holdout_same_seed_same_split(toy: Interactions, seed: int) -> None:
    first = random_holdout_split(toy, random_state=seed)
    again = random_holdout_split(toy, random_state=np.random.default_rng(seed))
    assert (first.test.user_items != again.test.user_items).nnz == 0
    _check_partition(toy, first)


def test_random_holdout_seeds_differ_and_are_uniform() -> None:
    # One user with 100 items: each seed holds out 20, and different seeds differ.
    rows = [("u", i, 1.0, float(i)) for i in range(100)] + [("v", 0, 1.0, 0.0)]
    data = _interactions(rows)
    tests = [random_holdout_split(data, random_state=s).test.user_items for s in range(30)]
    assert all(m.nnz == 20 for m in tests)
    assert len({tuple(m.indices.tolist()) for m in tests}) == 30
    # Every item is held out at least once over 30 seeds (P(miss) ~ 0.8**30 per item).
    held_out = np.unique(np.concatenate([m.indices for m in tests]))
    assert len(held_out) >= 90


def test_random_holdout_reports_unseen_users_without_crash(toy: Interactions) -> None:
    split = random_holdout_split(toy, test_fraction=0.9, random_state=0, min_train=0)
    # u1 (1 entry) goes wholly to test; its history in train is empty.
    assert split.train.user_items[0].nnz == 0
    assert split.stats["n_test_users_unseen"] >= 1
    unseen = (np.diff(split.test.user_items.indptr) > 0) & (
        np.diff(split.train.user_items.indptr) == 0
    )
    assert split.stats["n_test_users_unseen"] == int(unseen.sum())
    _check_partition(toy, split)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test_fraction": 0.0}, "`test_fraction` must be a float in"),
        ({"test_fraction": 1.0}, "`test_fraction` must be a float in"),
        ({"min_train": -1}, "`min_train` must be a non-negative int"),
    ],
)
def test_random_holdout_rejects_bad_arguments(
    toy: Interactions, kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        random_holdout_split(toy, **kwargs)  # type: ignore[arg-type]


def test_random_holdout_rejects_bad_random_state(toy: Interactions) -> None:
    with pytest.raises(TypeError, match="`random_state` must be an int"):
        random_holdout_split(toy, random_state="seed")  # type: ignore[arg-type]


# -- temporal ------------------------------------------------------------------------------
def test_temporal_split_by_cutoff_has_no_future_leak(toy: Interactions) -> None:
    split = temporal_split(toy, cutoff=202)
    assert split.train.timestamps is not None and split.test.timestamps is not None
    assert split.train.timestamps.max() < 202 <= split.test.timestamps.min()
    assert split.stats["cutoff"] == 202.0
    _check_partition(toy, split)
    # u4 (times 300..309) is only in test: an unseen user, reported.
    assert split.stats["n_test_users_unseen"] == 1
    assert split.stats["n_test_interactions_unseen_user"] == 10


def test_temporal_split_reports_unseen_items() -> None:
    rows = [("u", "old", 1.0, 1.0), ("v", "old", 1.0, 2.0), ("u", "new", 1.0, 10.0)]
    rows += [("v", "new", 1.0, 11.0), ("v", "newer", 1.0, 12.0)]
    split = temporal_split(_interactions(rows), cutoff=5.0)
    assert split.stats["n_test_items_unseen"] == 2
    assert split.stats["n_test_interactions_unseen_item"] == 3
    assert split.stats["n_test_users_unseen"] == 0


def test_temporal_split_by_fraction_picks_quantile(toy: Interactions) -> None:
    split = temporal_split(toy, test_fraction=0.25)
    # 16 entries, 4 latest go to test: times 306..309.
    assert split.stats["cutoff"] == 306.0
    assert split.test.n_interactions == 4
    default = temporal_split(toy)
    assert default.stats["test_fraction"] == 0.2
    assert default.test.n_interactions == 3  # round(0.2 * 16) = 3


def test_temporal_ties_at_cutoff_go_to_test() -> None:
    rows = [("u", i, 1.0, 1.0 if i < 2 else 5.0) for i in range(6)] + [("v", 0, 1.0, 0.0)]
    split = temporal_split(_interactions(rows), test_fraction=0.2)
    assert split.stats["cutoff"] == 5.0
    assert split.test.n_interactions == 4


@pytest.mark.parametrize(
    "cutoff",
    [202, 202.0, np.float64(202.0), "1970-01-01 00:03:22", datetime(1970, 1, 1, 0, 3, 22)],
)
def test_temporal_cutoff_types(toy: Interactions, cutoff: object) -> None:
    split = temporal_split(toy, cutoff=cutoff)  # type: ignore[arg-type]
    assert split.stats["cutoff"] == 202.0


def test_temporal_cutoff_aware_datetime(toy: Interactions) -> None:
    # 02:03:22 at UTC+2 is 00:03:22 UTC, i.e. 202 seconds.
    cutoff = datetime(1970, 1, 1, 2, 3, 22, tzinfo=timezone(timedelta(hours=2)))
    assert temporal_split(toy, cutoff=cutoff).stats["cutoff"] == 202.0


def test_temporal_without_timestamps_names_the_fix() -> None:
    data = from_dataframe(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2]}))
    with pytest.raises(DataError, match=r"no timestamps.*timestamp_col"):
        temporal_split(data)


def test_temporal_rejects_cutoff_and_fraction(toy: Interactions) -> None:
    with pytest.raises(ValueError, match="either `cutoff` or `test_fraction`"):
        temporal_split(toy, cutoff=200, test_fraction=0.2)


def test_temporal_cutoff_outside_range_warns(toy: Interactions) -> None:
    with pytest.warns(DataWarning, match="leaves test empty"):
        split = temporal_split(toy, cutoff=10_000)
    assert split.test.n_interactions == 0
    _check_partition(toy, split)


# -- leave last k out ------------------------------------------------------------------
def test_leave_last_k_out_takes_latest(toy: Interactions) -> None:
    split = leave_last_k_out_split(toy, k=2)
    test = split.test.to_frame()
    # u1 keeps its only entry; u2 -> 1 (min_train); u3 -> b, c; u4 -> i, j.
    assert sorted(zip(test.user_id, test.item_id, strict=True)) == [
        ("u2", "b"),
        ("u3", "b"),
        ("u3", "c"),
        ("u4", "i"),
        ("u4", "j"),
    ]
    _check_partition(toy, split)


def test_leave_last_k_out_ties_by_item_index() -> None:
    # Items "z", "y", "x" get indices 0, 1, 2 in order of appearance; same timestamp.
    rows = [("u", item, 1.0, 7.0) for item in "zyx"] + [("u", "w", 1.0, 3.0)]
    rows += [("v", "w", 1.0, 1.0)]
    data = _interactions(rows)
    first = leave_last_k_out_split(data, k=1)
    assert first.test.to_frame().item_id.tolist() == ["x"]  # largest index among ties
    two = leave_last_k_out_split(data, k=2)
    assert sorted(two.test.to_frame().item_id) == ["x", "y"]


def test_leave_last_k_out_without_timestamps_names_the_fix() -> None:
    data = from_dataframe(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2]}))
    with pytest.raises(DataError, match=r"no timestamps.*random_holdout_split"):
        leave_last_k_out_split(data)


@pytest.mark.parametrize("k", [0, -1, True, 1.5])
def test_leave_last_k_out_rejects_bad_k(toy: Interactions, k: object) -> None:
    with pytest.raises(ValueError, match="`k` must be a positive int"):
        leave_last_k_out_split(toy, k=k)  # type: ignore[arg-type]


# -- validation split ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["random_holdout", "temporal", "leave_last_k_out"])
def test_validation_split_uses_train_only(toy: Interactions, method: str) -> None:
    outer = random_holdout_split(toy, test_fraction=0.3, random_state=3)
    inner = validation_split(outer, method=method)  # type: ignore[arg-type]
    assert inner.stats["method"] == "validation"
    assert inner.stats["validation_of"] == method
    _check_partition(outer.train, inner)
    # Nothing of the outer test set reaches tuning.
    for part in (inner.train, inner.test):
        assert part.user_items.multiply(outer.test.user_items).nnz == 0
    same = validation_split(outer.train, method=method)  # type: ignore[arg-type]
    assert (same.test.user_items != inner.test.user_items).nnz == 0


def test_validation_split_rejects_unknown_method(toy: Interactions) -> None:
    with pytest.raises(ValueError, match="`method` must be 'random_holdout'"):
        validation_split(toy, method="kfold")  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------------
@st.composite
def interactions_data(draw: st.DrawFn) -> Interactions:
    """Random small data: unique (user, item) pairs, tied timestamps, >= 2 users/items."""
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, 7), st.integers(0, 9)), min_size=0, max_size=60, unique=True
        )
    )
    pairs = [p for p in pairs if p not in {(0, 0), (1, 1)}] + [(0, 0), (1, 1)]
    ratings = draw(st.lists(st.integers(1, 5), min_size=len(pairs), max_size=len(pairs)))
    times = draw(st.lists(st.integers(0, 15), min_size=len(pairs), max_size=len(pairs)))
    rows = [(u, i, float(r), float(t)) for (u, i), r, t in zip(pairs, ratings, times, strict=True)]
    return _interactions(rows)


@settings(max_examples=60, deadline=None)
@given(
    data=interactions_data(),
    seed=st.integers(0, 2**32 - 1),
    fraction=st.floats(0.05, 0.95),
    min_train=st.integers(0, 3),
)
def test_random_holdout_partitions(
    data: Interactions, seed: int, fraction: float, min_train: int
) -> None:
    split = random_holdout_split(
        data, test_fraction=fraction, random_state=seed, min_train=min_train
    )
    _check_partition(data, split)
    counts = np.diff(data.user_items.indptr)
    expected = np.clip(np.minimum(np.floor(fraction * counts + 0.5), counts - min_train), 0, None)
    assert np.diff(split.test.user_items.indptr).tolist() == expected.astype(int).tolist()


@settings(max_examples=60, deadline=None)
@given(data=interactions_data(), fraction=st.floats(0.05, 0.95), cutoff=st.integers(-1, 17))
def test_temporal_partitions_without_leak(data: Interactions, fraction: float, cutoff: int) -> None:
    for kwargs in ({"test_fraction": fraction}, {"cutoff": cutoff}):
        split = _temporal_checking_warning(data, kwargs)
        _check_partition(data, split)
        assert split.train.timestamps is not None and split.test.timestamps is not None
        assert np.all(split.train.timestamps < split.stats["cutoff"])
        assert np.all(split.test.timestamps >= split.stats["cutoff"])


def _temporal_checking_warning(data: Interactions, kwargs: dict[str, Any]) -> Split:
    """Run a temporal split; a DataWarning must come exactly when one side is empty."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = temporal_split(data, **kwargs)  # type: ignore[arg-type]
    empty = split.train.n_interactions == 0 or split.test.n_interactions == 0
    flagged = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(flagged) == int(empty)
    return split


@settings(max_examples=60, deadline=None)
@given(data=interactions_data(), k=st.integers(1, 4), min_train=st.integers(0, 2))
def test_leave_last_k_out_partitions(data: Interactions, k: int, min_train: int) -> None:
    split = leave_last_k_out_split(data, k=k, min_train=min_train)
    _check_partition(data, split)
    # Per user, every test entry is at least as late as every train entry, and ties
    # are broken toward the larger item index.
    for user in range(data.n_users):
        train_row, test_row = split.train.user_items[user], split.test.user_items[user]
        if train_row.nnz == 0 or test_row.nnz == 0:
            continue
        train_keys = _time_item_keys(split.train, user)
        test_keys = _time_item_keys(split.test, user)
        assert max(train_keys) < min(test_keys)


def _time_item_keys(data: Interactions, user: int) -> list[tuple[float, int]]:
    assert data.timestamps is not None
    start, stop = data.user_items.indptr[user], data.user_items.indptr[user + 1]
    items = data.user_items.indices[start:stop]
    return list(zip(data.timestamps[start:stop].tolist(), items.tolist(), strict=True))


@settings(max_examples=40, deadline=None)
@given(data=interactions_data(), seed=st.integers(0, 1000))
def test_cold_start_counts_match_definition(data: Interactions, seed: int) -> None:
    split = random_holdout_split(data, test_fraction=0.6, random_state=seed, min_train=0)
    train, test = split.train.user_items, split.test.user_items
    test_users = set(test.tocoo().row.tolist())
    train_users = set(train.tocoo().row.tolist())
    test_items = set(test.indices.tolist())
    train_items = set(train.indices.tolist())
    assert split.stats["n_test_users_unseen"] == len(test_users - train_users)
    assert split.stats["n_test_items_unseen"] == len(test_items - train_items)
    assert split.stats["n_test_users"] == len(test_users)
    assert split.stats["n_train_users"] == len(train_users)
    unseen_item_entries = sum(1 for i in test.indices.tolist() if i not in train_items)
    assert split.stats["n_test_interactions_unseen_item"] == unseen_item_entries


def test_split_of_matrix_without_aligned_arrays() -> None:
    matrix = sp.random(30, 20, density=0.3, format="csr", dtype=np.float32, random_state=1)
    matrix.data[:] = np.arange(1, matrix.nnz + 1)
    data = Interactions(
        user_items=matrix, user_map=IdMap(np.arange(30)), item_map=IdMap(np.arange(20))
    )
    split = random_holdout_split(data, random_state=5)
    _check_partition(data, split)
    assert "Split(method='random_holdout'" in repr(split)
