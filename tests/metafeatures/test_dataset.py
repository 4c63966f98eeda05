"""Tests of the dataset meta-features: count, finiteness, hand-checked values, landmarkers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from metarec_classic.data import Interactions, from_dataframe
from metarec_classic.metafeatures import (
    dataset_feature_names,
    dataset_metafeatures,
    gini,
    normalised_entropy,
)

DAY = 86_400.0


def _matrix(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    data = np.zeros((len(rows), n_items), dtype=np.float32)
    for user, items in enumerate(rows):
        data[user, items] = 1.0
    return sp.csr_matrix(data)


def _all_finite(features: dict[str, float]) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) for v in features.values())


# -- names and count ---------------------------------------------------------------------------
def test_at_least_40_named_features_in_a_stable_order() -> None:
    names = dataset_feature_names()
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    assert all("." in name for name in names)
    features = dataset_metafeatures(_matrix([[0, 1], [1, 2], [0, 2]], 3), landmarkers=False)
    assert tuple(features) == names


# -- real data -------------------------------------------------------------------------------
def test_finite_on_real_data_and_deterministic_for_a_seed(
    small_split: tuple[Interactions, Interactions],
) -> None:
    train = small_split[0]
    first = dataset_metafeatures(train, random_state=3)
    second = dataset_metafeatures(train, random_state=3)
    assert first == second
    assert _all_finite(first)
    assert tuple(first) == dataset_feature_names()
    # ml-100k has ratings and timestamps, and the landmarkers ran to completion.
    # The raw ratings of the positives (4 and 5) are described, not the unit weights.
    assert first["value.non_binary"] == 1.0
    assert first["value.n_distinct_log"] == pytest.approx(math.log(2))
    assert first["time.has"] == 1.0 and first["time.span_days_log"] > 0
    assert first["landmark.complete"] == 1.0
    assert 0 < first["landmark.most_popular"] < 1
    assert first["landmark.itemknn10_over_pop"] == pytest.approx(
        first["landmark.itemknn10"] / first["landmark.most_popular"]
    )
    assert first["landmark.ease_strong_over_weak"] == pytest.approx(
        first["landmark.ease_strong"] / first["landmark.ease_weak"]
    )
    assert 0 < first["landmark.ease_weak"] < 1 and 0 < first["landmark.ease_strong"] < 1
    assert math.log(10) <= first["landmark.ease_l2_log"] <= math.log(1000)
    assert first["size.n_users_log"] == pytest.approx(math.log1p(train.n_users))


def test_ease_peak_follows_the_data_not_its_size(loader) -> None:
    # Measured on the corpus tasks, MovieLens wants an L2 weight in the hundreds and the
    # sparse retail sessions of RetailRocket one in the tens, at about the same size.
    movies = dataset_metafeatures(loader("ml-100k"))["landmark.ease_l2_log"]
    retail = dataset_metafeatures(loader("retailrocket-caserec"))["landmark.ease_l2_log"]
    assert movies - retail > math.log(5)


@pytest.mark.parametrize("peak", [math.log(20.0), math.log(100.0), math.log(450.0)])
def test_ease_peak_is_placed_between_grid_points(peak: float) -> None:
    from metarec_classic.metafeatures._dataset import _peak_log

    grid = np.log([10.0, 30.0, 100.0, 300.0, 1000.0])
    # A parabola in log L2 is found exactly; the curve's scale does not matter.
    for scale in (1.0, 0.01):
        assert _peak_log(grid, scale * (1 - (grid - peak) ** 2)) == pytest.approx(peak)


def test_ease_peak_at_an_end_or_on_a_plateau() -> None:
    from metarec_classic.metafeatures._dataset import _peak_log

    grid = np.log([10.0, 30.0, 100.0, 300.0, 1000.0])
    assert _peak_log(grid, np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(grid[-1])
    assert _peak_log(grid, np.array([0.5, 0.4, 0.3, 0.2, 0.1])) == pytest.approx(grid[0])
    # Two equal best points: the peak is half-way between them.
    top = _peak_log(grid, np.array([0.1, 0.3, 0.3, 0.2, 0.1]))
    assert top == pytest.approx((grid[1] + grid[2]) / 2)


def test_landmarker_seed_changes_the_subsample(ml100k: Interactions) -> None:
    a = dataset_metafeatures(ml100k, landmark_users=200, random_state=0)
    b = dataset_metafeatures(ml100k, landmark_users=200, random_state=1)
    landmarks = [k for k in a if k.startswith("landmark.") and k != "landmark.complete"]
    assert any(a[k] != b[k] for k in landmarks)
    # Features that do not depend on the subsample are the same.
    assert {k: v for k, v in a.items() if not k.startswith("landmark.")} == {
        k: v for k, v in b.items() if not k.startswith("landmark.")
    }


# -- hand-checked values -----------------------------------------------------------------------
def test_hand_checked_values_on_a_tiny_matrix() -> None:
    # user degrees (3, 2, 1); item degrees (3, 2, 1, 0); 6 of 12 cells filled.
    features = dataset_metafeatures(_matrix([[0, 1, 2], [0, 1], [0]], 4), landmarkers=False)
    assert features["size.density_log"] == pytest.approx(math.log10(0.5))
    assert features["size.items_per_user"] == pytest.approx(2.0)
    assert features["size.users_per_item"] == pytest.approx(1.5)
    # Gini = sum |x_i - x_j| / (2 n^2 mean): items 20 / (2 * 16 * 1.5), users 8 / (2 * 9 * 2).
    assert features["item_deg.gini"] == pytest.approx(20 / 48)
    assert features["user_deg.gini"] == pytest.approx(8 / 36)
    p = np.array([3, 2, 1]) / 6
    assert features["item_deg.entropy"] == pytest.approx(-(p * np.log(p)).sum() / math.log(4))
    assert features["user_deg.entropy"] == pytest.approx(-(p * np.log(p)).sum() / math.log(3))
    # The most popular item (1 of 4) holds half of the interactions.
    assert features["pop.top1_share"] == pytest.approx(0.5)
    assert features["pop.top10_share"] == pytest.approx(0.5)
    assert features["pop.items_for_50"] == pytest.approx(0.25)
    assert features["pop.items_for_80"] == pytest.approx(0.5)
    assert features["user_deg.share_le1"] == pytest.approx(1 / 3)
    assert features["item_deg.share_le1"] == pytest.approx(2 / 4)
    assert features["user_deg.q50_log"] == pytest.approx(math.log1p(2))
    assert features["value.non_binary"] == 0.0 and features["value.mean"] == 1.0


def test_gini_and_entropy_helpers() -> None:
    assert gini(np.array([4.0, 4.0, 4.0])) == 0.0
    assert gini(np.array([0.0, 0.0, 0.0, 5.0])) == pytest.approx(0.75)
    assert gini(np.array([])) == 0.0 and gini(np.zeros(3)) == 0.0
    assert normalised_entropy(np.array([2.0, 2.0, 2.0])) == pytest.approx(1.0)
    assert normalised_entropy(np.array([7.0])) == 1.0
    assert normalised_entropy(np.zeros(4)) == 1.0


def test_all_mass_on_one_item_has_zero_entropy() -> None:
    """Regression: a single positive among several values used to get entropy 1 (the value
    of a uniform distribution) instead of 0."""
    assert normalised_entropy(np.array([5.0, 0.0, 0.0])) == 0.0
    features = dataset_metafeatures(_matrix([[0], [0], [0]], 3), landmarkers=False)
    assert features["item_deg.entropy"] == 0.0
    assert features["item_deg.gini"] == pytest.approx(2 / 3)


def test_ratings_are_described_scale_free() -> None:
    frame = pd.DataFrame(
        {"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 2], "rating": [1, 5, 3, 5, 1]}
    )
    data = from_dataframe(frame, rating_col="rating")
    features = dataset_metafeatures(data, landmarkers=False)
    assert features["value.non_binary"] == 1.0
    assert features["value.mean"] == pytest.approx((3.0 - 1.0) / 4.0)
    assert features["value.n_distinct_log"] == pytest.approx(math.log(3))


# -- degenerate data ---------------------------------------------------------------------------
DEGENERATE = {
    "one interaction per user": _matrix([[0], [1], [2], [3], [4]], 5),
    "constant degrees": _matrix([[0, 1], [1, 2], [2, 0]], 3),
    "2x2": _matrix([[0], [1]], 2),
    "full 2x2": _matrix([[0, 1], [0, 1]], 2),
    "empty item columns": _matrix([[0], [0]], 6),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_data_gives_finite_features(name: str) -> None:
    features = dataset_metafeatures(DEGENERATE[name], landmark_seconds=2)
    assert _all_finite(features)
    assert tuple(features) == dataset_feature_names()


def test_constant_degrees_have_documented_values() -> None:
    features = dataset_metafeatures(DEGENERATE["constant degrees"], landmarkers=False)
    for prefix in ("user_deg", "item_deg"):
        assert features[f"{prefix}.skew"] == 0.0
        assert features[f"{prefix}.kurtosis_log"] == 0.0
        assert features[f"{prefix}.gini"] == 0.0
        assert features[f"{prefix}.entropy"] == pytest.approx(1.0)
        assert features[f"{prefix}.cv"] == 0.0


def test_without_timestamps_time_features_are_zero() -> None:
    frame = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [1, 2, 2, 3]})
    features = dataset_metafeatures(from_dataframe(frame), landmarkers=False)
    assert {k: v for k, v in features.items() if k.startswith("time.")} == {
        "time.has": 0.0,
        "time.span_days_log": 0.0,
        "time.per_day_log": 0.0,
        "time.user_span_days_log": 0.0,
    }


def test_with_timestamps_time_features_are_hand_checked() -> None:
    # Span 4 days; user spans 2, 0 and 0 days (median 0); 4 interactions over 4 days.
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "item_id": [1, 2, 2, 3],
            "timestamp": [0.0, 2 * DAY, DAY, 4 * DAY],
        }
    )
    data = from_dataframe(frame, timestamp_col="timestamp")
    features = dataset_metafeatures(data, landmarkers=False)
    assert features["time.has"] == 1.0
    assert features["time.span_days_log"] == pytest.approx(math.log1p(4.0))
    assert features["time.per_day_log"] == pytest.approx(math.log1p(1.0))
    assert features["time.user_span_days_log"] == pytest.approx(0.0)
    # With a longer history for user 1 the median user span moves to its 2 days.
    frame2 = pd.concat(
        [frame, pd.DataFrame({"user_id": [2], "item_id": [3], "timestamp": [3 * DAY]})]
    )
    features2 = dataset_metafeatures(
        from_dataframe(frame2, timestamp_col="timestamp"), landmarkers=False
    )
    assert features2["time.user_span_days_log"] == pytest.approx(math.log1p(2.0))


# -- landmarkers -------------------------------------------------------------------------------
def test_landmark_time_cap_of_zero_gives_zeros_and_incomplete(
    small_split: tuple[Interactions, Interactions],
) -> None:
    features = dataset_metafeatures(small_split[0], landmark_seconds=0)
    landmarks = {k: v for k, v in features.items() if k.startswith("landmark.")}
    assert landmarks["landmark.complete"] == 0.0
    assert set(landmarks.values()) == {0.0}


def test_landmarkers_off_gives_zeros() -> None:
    features = dataset_metafeatures(DEGENERATE["constant degrees"], landmarkers=False)
    assert all(v == 0.0 for k, v in features.items() if k.startswith("landmark."))


def test_a_landmarker_raising_costs_only_its_own_feature(
    small_split: tuple[Interactions, Interactions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a landmark model raising anything but ValueError used to abort the
    whole meta-feature computation (and with it selection)."""
    from metarec_classic.recommenders import PureSVDRecommender

    def broken_fit(self: PureSVDRecommender, user_items: sp.csr_matrix) -> None:
        raise RuntimeError("did not converge")

    monkeypatch.setattr(PureSVDRecommender, "_fit", broken_fit)
    features = dataset_metafeatures(small_split[0])
    assert features["landmark.svd16"] == 0.0 and features["landmark.svd16_over_pop"] == 0.0
    assert features["landmark.complete"] == 0.0
    assert features["landmark.itemknn10"] > 0
