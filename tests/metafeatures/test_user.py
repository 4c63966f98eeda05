"""Tests of the user meta-features: hand-checked values, real data, seeding, sample bound."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from metarec_classic.data import Interactions, from_dataframe, load_dataset
from metarec_classic.metafeatures import USER_FEATURE_NAMES, user_metafeatures

DAY = 86_400
T0 = 1_000_000_000

# (user, item, rating, day). Item counts in training: A 5, B 3, C 2, D 2, E 1 (13 in all).
# Percentiles (average rank - 1) / 4: E 0, C and D 0.375, B 0.75, A 1.
# Head (80 % of 13 interactions = 10.4): A, B, C, D (5 + 3 + 2 + 2 = 12); long tail: E.
# Deciles: E 0, C and D 3, B 7, A 9. Ratings 1..5 scale to (r - 1) / 4.
# User "u4" is dropped from training below, so it is a row without interactions.
_EVENTS = [
    ("u0", "A", 5, 0.0),
    ("u0", "B", 4, 1.0),
    ("u0", "C", 3, 2.0),
    ("u0", "D", 1, 10.0),
    ("u1", "A", 5, 5.0),
    ("u1", "B", 5, 5.0),
    ("u1", "C", 5, 5.0),
    ("u2", "A", 2, 3.0),
    ("u2", "B", 4, 20.0),
    ("u3", "A", 3, 1.5),
    ("u3", "D", 3, 2.0),
    ("u3", "E", 3, 4.0),
    ("u4", "C", 1, 30.0),
    ("u5", "A", 4, 12.0),
]


@pytest.fixture(scope="module")
def tiny() -> Interactions:
    frame = pd.DataFrame(_EVENTS, columns=["user_id", "item_id", "rating", "day"])
    frame["timestamp"] = T0 + (frame["day"] * DAY).astype(np.int64)
    data = from_dataframe(frame, rating_col="rating", timestamp_col="timestamp", name="tiny")
    dropped = data.user_map.to_index(["u4"])[0]
    rows = np.repeat(np.arange(data.n_users), np.diff(data.user_items.indptr))
    train = data.select_entries(rows != dropped)
    assert train.n_users == 6 and train.n_interactions == 13
    return train


def _row(features: pd.DataFrame, data: Interactions, user: str) -> pd.Series:
    return features.loc[int(data.user_map.to_index([user])[0])]


def _check_frame(features: pd.DataFrame, n_users: int) -> None:
    assert tuple(features.columns) == USER_FEATURE_NAMES
    assert features.index.equals(pd.RangeIndex(n_users))
    assert (features.dtypes == np.float64).all()
    assert np.isfinite(features.to_numpy()).all()


# -- hand-checked values -----------------------------------------------------------------------
def test_names_are_distinct_and_grouped() -> None:
    assert len(set(USER_FEATURE_NAMES)) == len(USER_FEATURE_NAMES)
    assert all(name.startswith("user_") and "." in name for name in USER_FEATURE_NAMES)


def test_hand_checked_values_on_a_tiny_matrix(tiny: Interactions) -> None:
    features = user_metafeatures(tiny, n_neighbors=2, random_state=0)
    _check_frame(features, 6)
    ent2 = -(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5)) / math.log(4)  # = 0.75
    expected = {
        "u0": {
            "user_activity.n_interactions": 4,
            "user_activity.n_interactions_log": math.log(5),
            "user_pop.mean_pct": 0.625,
            "user_pop.std_pct": np.std([1, 0.75, 0.375, 0.375]),
            "user_pop.long_tail_share": 0,
            "user_pop.decile_entropy": ent2,
            "user_rating.mean": 0.5625,
            "user_rating.std": np.std([1, 0.75, 0.5, 0]),
            "user_time.span_days": 10,
            "user_time.recency_days": 10,
            "user_overlap.jaccard_topk": (3 / 4 + 2 / 4) / 2,
        },
        "u1": {
            "user_activity.n_interactions": 3,
            "user_activity.n_interactions_log": math.log(4),
            "user_pop.mean_pct": 2.125 / 3,
            "user_pop.std_pct": np.std([1, 0.75, 0.375]),
            "user_pop.long_tail_share": 0,
            "user_pop.decile_entropy": 1,
            "user_rating.mean": 1,
            "user_rating.std": 0,
            "user_time.span_days": 0,
            "user_time.recency_days": 15,
            "user_overlap.jaccard_topk": (3 / 4 + 2 / 3) / 2,
        },
        "u2": {
            "user_activity.n_interactions": 2,
            "user_activity.n_interactions_log": math.log(3),
            "user_pop.mean_pct": 0.875,
            "user_pop.std_pct": 0.125,
            "user_pop.long_tail_share": 0,
            "user_pop.decile_entropy": 1,
            "user_rating.mean": 0.5,
            "user_rating.std": 0.25,
            "user_time.span_days": 17,
            "user_time.recency_days": 0,
            "user_overlap.jaccard_topk": (2 / 3 + 1 / 2) / 2,
        },
        "u3": {
            "user_activity.n_interactions": 3,
            "user_activity.n_interactions_log": math.log(4),
            "user_pop.mean_pct": 1.375 / 3,
            "user_pop.std_pct": np.std([1, 0.375, 0]),
            "user_pop.long_tail_share": 1 / 3,
            "user_pop.decile_entropy": 1,
            "user_rating.mean": 0.5,
            "user_rating.std": 0,
            "user_time.span_days": 2.5,
            "user_time.recency_days": 16,
            "user_overlap.jaccard_topk": (2 / 5 + 1 / 3) / 2,
        },
        "u4": {  # no training interaction: the documented values
            "user_activity.n_interactions": 0,
            "user_activity.n_interactions_log": 0,
            "user_pop.mean_pct": 0.5,
            "user_pop.std_pct": 0,
            "user_pop.long_tail_share": 0,
            "user_pop.decile_entropy": 0,
            "user_rating.mean": 0,
            "user_rating.std": 0,
            "user_time.span_days": 0,
            "user_time.recency_days": 20,  # the data's time span
            "user_overlap.jaccard_topk": 0,
        },
        "u5": {  # only the most popular item
            "user_activity.n_interactions": 1,
            "user_activity.n_interactions_log": math.log(2),
            "user_pop.mean_pct": 1,
            "user_pop.std_pct": 0,
            "user_pop.long_tail_share": 0,
            "user_pop.decile_entropy": 0,
            "user_rating.mean": 0.75,
            "user_rating.std": 0,
            "user_time.span_days": 0,
            "user_time.recency_days": 8,
            "user_overlap.jaccard_topk": (1 / 2 + 1 / 3) / 2,
        },
    }
    for user, values in expected.items():
        row = _row(features, tiny, user)
        for name, value in values.items():
            assert row[name] == pytest.approx(value, abs=1e-12), (user, name)


def test_overlap_averages_over_every_other_user_when_k_is_large(tiny: Interactions) -> None:
    features = user_metafeatures(tiny, n_neighbors=50)
    # u0 against u1, u2, u3, u5: Jaccard 3/4, 2/4, 2/5, 1/4.
    assert _row(features, tiny, "u0")["user_overlap.jaccard_topk"] == pytest.approx(0.475)
    assert _row(features, tiny, "u4")["user_overlap.jaccard_topk"] == 0.0
    # All five users with interactions fit in the default sample, so no seed is needed.
    assert features.attrs["overlap_sample_users"] == tuple(
        sorted(int(tiny.user_map.to_index([u])[0]) for u in ("u0", "u1", "u2", "u3", "u5"))
    )


def test_a_one_user_sample_compares_everyone_with_that_user(tiny: Interactions) -> None:
    features = user_metafeatures(tiny, sample_users=1, random_state=7)
    (sampled,) = features.attrs["overlap_sample_users"]
    binary = tiny.user_items.toarray() > 0
    for user in range(tiny.n_users):
        got = features.loc[user, "user_overlap.jaccard_topk"]
        if user == sampled or not binary[user].any():
            assert got == 0.0  # a user is never its own neighbour
        else:
            both = np.sum(binary[user] & binary[sampled])
            either = np.sum(binary[user] | binary[sampled])
            assert got == pytest.approx(both / either)


def test_ties_at_the_head_boundary_all_join_the_head() -> None:
    # Item counts 4, 3, 1, 1, 1: 80 % of 10 is reached at the first count-1 item, so every
    # count-1 item is in the head and no item is in the long tail.
    rows = [[0, 1, 2], [0, 1, 3], [0, 1, 4], [0]]
    dense = np.zeros((4, 5), dtype=np.float32)
    for user, items in enumerate(rows):
        dense[user, items] = 1.0
    features = user_metafeatures(sp.csr_matrix(dense), random_state=0)
    assert (features["user_pop.long_tail_share"] == 0.0).all()
    # A plain matrix has no ratings and no timestamps.
    for name in ("user_rating.mean", "user_rating.std", "user_time.span_days"):
        assert (features[name] == 0.0).all()
    assert (features["user_time.recency_days"] == 0.0).all()


def test_all_tied_items_sit_at_the_middle_percentile() -> None:
    features = user_metafeatures(sp.identity(3, dtype=np.float32, format="csr"), random_state=0)
    assert (features["user_pop.mean_pct"] == 0.5).all()
    assert (features["user_overlap.jaccard_topk"] == 0.0).all()


def test_invalid_parameters_are_refused(tiny: Interactions) -> None:
    with pytest.raises(ValueError, match="sample_users"):
        user_metafeatures(tiny, sample_users=0)
    with pytest.raises(ValueError, match="n_neighbors"):
        user_metafeatures(tiny, n_neighbors=0)


# -- real data ---------------------------------------------------------------------------------
def test_finite_on_ml100k(ml100k: Interactions) -> None:
    features = user_metafeatures(ml100k, random_state=0)
    _check_frame(features, ml100k.n_users)
    for name in ("user_pop.mean_pct", "user_pop.long_tail_share", "user_pop.decile_entropy"):
        assert features[name].between(0, 1).all()
    assert (features["user_time.recency_days"] >= 0).all()
    assert features["user_activity.n_interactions"].sum() == ml100k.n_interactions


def test_finite_on_the_demo_dataset() -> None:
    demo = load_dataset("demo")
    features = user_metafeatures(demo, random_state=0)
    _check_frame(features, demo.n_users)
    empty = np.diff(demo.user_items.indptr) == 0
    assert empty.any()
    assert (features.loc[empty, "user_overlap.jaccard_topk"] == 0.0).all()
    assert (features.loc[empty, "user_pop.mean_pct"] == 0.5).all()


def test_same_seed_same_output_and_the_seed_only_moves_the_overlap(ml100k: Interactions) -> None:
    first = user_metafeatures(ml100k, sample_users=100, random_state=3)
    second = user_metafeatures(ml100k, sample_users=100, random_state=3)
    pd.testing.assert_frame_equal(first, second)
    assert first.attrs == second.attrs
    other = user_metafeatures(ml100k, sample_users=100, random_state=4)
    assert first.attrs != other.attrs
    overlap = "user_overlap.jaccard_topk"
    assert not first[overlap].equals(other[overlap])
    pd.testing.assert_frame_equal(first.drop(columns=overlap), other.drop(columns=overlap))


def test_a_user_with_only_the_most_popular_item(ml100k: Interactions) -> None:
    matrix = ml100k.user_items
    top = int(np.argmax(np.bincount(matrix.indices, minlength=ml100k.n_items)))
    user = int(matrix[:, top].nonzero()[0][0])
    rows = np.repeat(np.arange(ml100k.n_users), np.diff(matrix.indptr))
    keep = (rows != user) | (matrix.indices == top)
    features = user_metafeatures(ml100k.select_entries(keep), random_state=0)
    row = features.loc[user]
    assert row["user_activity.n_interactions"] == 1
    assert row["user_pop.mean_pct"] > 0.99
    assert row["user_pop.long_tail_share"] == 0.0
    assert row["user_pop.decile_entropy"] == 0.0


@pytest.mark.parametrize("sample_users", [1, 37, 500])
def test_the_overlap_sample_respects_its_size_bound(
    ml100k: Interactions, sample_users: int
) -> None:
    features = user_metafeatures(ml100k, sample_users=sample_users, n_neighbors=5, random_state=0)
    sample = np.asarray(features.attrs["overlap_sample_users"])
    active = np.diff(ml100k.user_items.indptr) > 0
    assert len(sample) == min(sample_users, int(active.sum()))
    assert np.all(np.diff(sample) > 0) and active[sample].all()
    # The feature is computed against exactly that sample: brute force on a few users.
    binary = (ml100k.user_items > 0).astype(np.float64)
    shared = (binary[:40] @ binary[sample].T).toarray()
    deg = np.asarray(binary.sum(axis=1)).ravel()
    jaccard = shared / (deg[:40, None] + deg[sample][None, :] - shared)
    for user in range(40):
        others = jaccard[user][sample != user]
        top = np.sort(others)[::-1][:5]
        expected = top.mean() if top.size else 0.0
        assert features.loc[user, "user_overlap.jaccard_topk"] == pytest.approx(expected)
