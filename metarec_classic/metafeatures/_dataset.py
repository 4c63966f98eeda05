"""Dataset meta-features: numbers that describe a training split for the meta-model.

Every feature is computed on the training split only, in time linear in the number of
interactions, except the landmarkers (cheap models scored on a fixed-size subsample under
a time cap). No feature is ever NaN or infinite: degenerate data gets the documented
value below.

Groups (prefix: meaning):

- ``size.*``: counts and their logs, density, mean items per user and users per item.
- ``user_deg.*`` / ``item_deg.*``: the distribution of interactions per user / per item:
  mean, std, coefficient of variation, skew, kurtosis, Gini, normalised entropy,
  quantiles, max over mean, share of users (items) with at most 1, 2 and 5 interactions.
  A constant distribution has skew 0, kurtosis 0, Gini 0 and entropy 1.
- ``pop.*``: share of interactions on the top 1 % / 10 % of items, and the share of items
  needed to cover half and 80 % of interactions (long tail).
- ``value.*``: ratings or implicit weights: whether they are non-binary, mean, std, skew,
  number of distinct values (log). Binary data gets mean 1 and 0 elsewhere.
- ``time.*``: whether timestamps exist, span in days (log), interactions per day (log),
  median user activity span in days (log); 0 without timestamps.
- ``landmark.*``: validation NDCG@10 of MostPopular, a 10-neighbour cosine item-kNN and a
  16-factor PureSVD on a subsample of at most ``landmark_users`` users and their
  ``landmark_items`` most popular items (so the cost does not grow with the data), and
  the ratios of the two personalised ones to MostPopular. Then EASE along an L2 path
  (10 to 1,000) on the subsample's 500 most popular items: its score with the weakest
  and the strongest weight, their ratio, and the log of the weight where the curve
  peaks. They say how much regularisation the data wants, which absolute sizes do not
  tell (the best L2 weight of the corpus tasks ranges from 5 to 7,600 and follows the
  domain, not the size). A landmarker that fails or overruns the time cap gets 0 and
  ``landmark.complete`` becomes 0.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from metarec_classic.data import Interactions, Split, from_sparse, random_holdout_split
from metarec_classic.evaluation import evaluate
from metarec_classic.recommenders import EASERecommender, make_recommender

__all__ = ["dataset_feature_names", "dataset_metafeatures", "gini", "normalised_entropy"]

_log = logging.getLogger(__name__)

_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_LANDMARKERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("most_popular", "most_popular", {}),
    ("itemknn10", "itemknn", {"weighting": "cosine", "n_neighbors": 10}),
    ("svd16", "pure_svd", {"n_factors": 16}),
)
#: L2 weights of the EASE landmark curve, log-spaced; the first is the "weak" landmarker
#: and the last the "strong" one.
_EASE_LANDMARK_L2 = (10.0, 30.0, 100.0, 300.0, 1000.0)
#: Items of the EASE curve: fewer than the other landmarkers, as an EASE fit is cubic in
#: the items.
_EASE_LANDMARK_ITEMS = 500
_EASE_LANDMARK_KEYS = ("ease_weak", "ease_strong", "ease_strong_over_weak", "ease_l2_log")


def dataset_metafeatures(
    train: Interactions | sp.csr_matrix,
    *,
    landmarkers: bool = True,
    landmark_users: int = 1000,
    landmark_items: int = 3000,
    landmark_seconds: float = 10.0,
    random_state: int = 0,
) -> dict[str, float]:
    """Describe a training split by a fixed, ordered set of finite numbers.

    Parameters
    ----------
    train : Interactions or sparse matrix of shape (n_users, n_items)
        Training interactions only (never the test split).
    landmarkers : bool, default=True
        Also score the cheap landmark models (the only part that is not linear time).
    landmark_users : int, default=1000
        Users sampled for the landmarkers, so their cost does not grow with the data.
    landmark_items : int, default=3000
        The landmarkers score only the sampled users' most popular items (the size of
        the meta-training tasks' catalogues), for the same reason.
    landmark_seconds : float, default=10.0
        Time cap of all landmarkers together; the ones not started in time get 0.
    random_state : int, default=0
        Seeds the landmark subsample and models, so the features are reproducible.

    Returns
    -------
    dict of str to float
        Keys in the order of :func:`dataset_feature_names`.
    """
    data = train if isinstance(train, Interactions) else None
    matrix = train.user_items if isinstance(train, Interactions) else sp.csr_matrix(train)
    n_users, n_items = matrix.shape
    nnz = int(matrix.nnz)
    user_deg = np.diff(matrix.indptr).astype(np.float64)
    item_deg = np.bincount(matrix.indices, minlength=n_items).astype(np.float64)

    features: dict[str, float] = {}

    # Sizes.
    features["size.n_users_log"] = math.log1p(n_users)
    features["size.n_items_log"] = math.log1p(n_items)
    features["size.n_interactions_log"] = math.log1p(nnz)
    features["size.density_log"] = math.log10(max(nnz, 1) / max(n_users * n_items, 1))
    features["size.users_per_item_log"] = math.log(max(n_users, 1) / max(n_items, 1))
    features["size.items_per_user"] = nnz / max(n_users, 1)
    features["size.users_per_item"] = nnz / max(n_items, 1)

    # Degree distributions.
    features.update(_distribution("user_deg", user_deg))
    features.update(_distribution("item_deg", item_deg))

    # Popularity concentration and long tail.
    features.update(_popularity(item_deg))

    # Values (ratings or weights) and time.
    ratings = data.ratings if data is not None and data.ratings is not None else matrix.data
    features.update(_values(np.asarray(ratings, dtype=np.float64)))
    features.update(_time(data, matrix))

    # Landmarkers.
    features.update(
        _landmarkers(matrix, landmark_users, landmark_items, landmark_seconds, random_state)
        if landmarkers
        else _empty_landmarks()
    )

    for key, value in features.items():
        if not math.isfinite(value):
            raise AssertionError(
                f"Meta-feature {key!r} is {value!r}. This is a bug in metarec_classic; "
                "please report it with the data's shape."
            )
    return features


def _distribution(prefix: str, degrees: np.ndarray) -> dict[str, float]:
    """Shape of a degree distribution (interactions per user or per item)."""
    mean = float(degrees.mean()) if degrees.size else 0.0
    std = float(degrees.std()) if degrees.size else 0.0
    constant = std == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        skew = 0.0 if constant else float(stats.skew(degrees))
        kurt = 0.0 if constant else float(stats.kurtosis(degrees))
    out = {
        f"{prefix}.mean_log": math.log1p(mean),
        f"{prefix}.std_log": math.log1p(std),
        f"{prefix}.cv": std / mean if mean > 0 else 0.0,
        f"{prefix}.skew": _finite(skew),
        f"{prefix}.kurtosis_log": math.copysign(math.log1p(abs(_finite(kurt))), kurt),
        f"{prefix}.gini": gini(degrees),
        f"{prefix}.entropy": normalised_entropy(degrees),
        f"{prefix}.max_over_mean_log": math.log1p(float(degrees.max()) / mean) if mean > 0 else 0.0,
    }
    if degrees.size:
        for q, value in zip(_QUANTILES, np.quantile(degrees, _QUANTILES), strict=True):
            out[f"{prefix}.q{int(q * 100):02d}_log"] = math.log1p(float(value))
        for limit in (1, 2, 5):
            out[f"{prefix}.share_le{limit}"] = float(np.mean(degrees <= limit))
    else:
        out.update({f"{prefix}.q{int(q * 100):02d}_log": 0.0 for q in _QUANTILES})
        out.update({f"{prefix}.share_le{limit}": 0.0 for limit in (1, 2, 5)})
    return out


def _popularity(item_deg: np.ndarray) -> dict[str, float]:
    """Concentration of interactions on the most popular items."""
    total = float(item_deg.sum())
    if total <= 0:
        return {
            "pop.top1_share": 0.0,
            "pop.top10_share": 0.0,
            "pop.items_for_50": 0.0,
            "pop.items_for_80": 0.0,
        }
    ordered = np.sort(item_deg)[::-1]
    cumulative = np.cumsum(ordered) / total
    n = len(ordered)
    return {
        "pop.top1_share": float(cumulative[max(math.ceil(0.01 * n), 1) - 1]),
        "pop.top10_share": float(cumulative[max(math.ceil(0.10 * n), 1) - 1]),
        "pop.items_for_50": float((np.searchsorted(cumulative, 0.5) + 1) / n),
        "pop.items_for_80": float((np.searchsorted(cumulative, 0.8) + 1) / n),
    }


def _values(values: np.ndarray) -> dict[str, float]:
    """Ratings or weights: binary data gets mean 1 and zeros."""
    distinct = np.unique(values) if values.size else np.array([1.0])
    if distinct.size <= 1:
        return {
            "value.non_binary": 0.0,
            "value.mean": 1.0,
            "value.cv": 0.0,
            "value.skew": 0.0,
            "value.n_distinct_log": 0.0,
        }
    mean, std = float(values.mean()), float(values.std())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        skew = float(stats.skew(values)) if std > 0 else 0.0
    # Scale-free summaries, so 1-5 stars and 0-10 points are comparable.
    spread = float(distinct[-1] - distinct[0]) or 1.0
    return {
        "value.non_binary": 1.0,
        "value.mean": (mean - float(distinct[0])) / spread,
        "value.cv": std / abs(mean) if mean else 0.0,
        "value.skew": _finite(skew),
        "value.n_distinct_log": math.log(float(distinct.size)),
    }


def _time(data: Interactions | None, matrix: sp.csr_matrix) -> dict[str, float]:
    """Time span and rate; zeros without timestamps."""
    if data is None or data.timestamps is None or data.timestamps.size == 0:
        return {
            "time.has": 0.0,
            "time.span_days_log": 0.0,
            "time.per_day_log": 0.0,
            "time.user_span_days_log": 0.0,
        }
    ts = data.timestamps
    span_days = float(ts.max() - ts.min()) / 86400.0
    # Per-user span from the aligned CSR layout: max minus min within each row segment.
    starts = matrix.indptr[:-1]
    nonempty = np.diff(matrix.indptr) > 0
    user_max = np.maximum.reduceat(ts, starts[nonempty]) if nonempty.any() else np.zeros(1)
    user_min = np.minimum.reduceat(ts, starts[nonempty]) if nonempty.any() else np.zeros(1)
    return {
        "time.has": 1.0,
        "time.span_days_log": math.log1p(span_days),
        "time.per_day_log": math.log1p(matrix.nnz / max(span_days, 1.0)),
        "time.user_span_days_log": math.log1p(float(np.median(user_max - user_min)) / 86400.0),
    }


def _landmarkers(
    matrix: sp.csr_matrix, max_users: int, max_items: int, seconds: float, seed: int
) -> dict[str, float]:
    """Validation NDCG@10 of cheap models on a user subsample, under a time cap."""
    rng = np.random.default_rng(seed)
    n_users = matrix.shape[0]
    users = np.arange(n_users)
    if n_users > max_users:
        users = np.sort(rng.choice(n_users, size=max_users, replace=False))
    sub = matrix[users]
    # Items no sampled user touched carry no signal; dropping them keeps models small.
    item_counts = np.diff(sub.tocsc().indptr)
    used = np.flatnonzero(item_counts > 0)
    if len(used) > max_items:
        used = np.sort(used[np.argsort(-item_counts[used], kind="stable")[:max_items]])
    sub = sub[:, used]
    out = _empty_landmarks()
    deadline = time.perf_counter() + seconds
    split = _landmark_split(sub, seed)
    complete = split is not None and _score_landmarks(split, deadline, seed, out)
    pop = out["landmark.most_popular"]
    out["landmark.itemknn10_over_pop"] = out["landmark.itemknn10"] / pop if pop > 0 else 0.0
    out["landmark.svd16_over_pop"] = out["landmark.svd16"] / pop if pop > 0 else 0.0

    ease_items = np.argsort(-np.diff(sub.tocsc().indptr), kind="stable")[:_EASE_LANDMARK_ITEMS]
    split = _landmark_split(sub[:, np.sort(ease_items)], seed)
    complete &= split is not None and _ease_curve(split, deadline, out)
    out["landmark.complete"] = float(complete)
    return out


def _landmark_split(matrix: sp.csr_matrix, seed: int) -> Split | None:
    """A validation split of the landmark subsample; ``None`` if it is too small."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = from_sparse(sp.csr_matrix(matrix, dtype=np.float32), name="landmark")
            return random_holdout_split(data, test_fraction=0.2, random_state=seed)
    except ValueError as err:  # too small to split or score
        _log.debug("Landmarkers skipped: %s", err)
        return None


def _score_landmarks(split: Split, deadline: float, seed: int, out: dict[str, float]) -> bool:
    """Score the cheap landmark models into ``out``; False if any is missing."""
    complete = True
    for key, algorithm, config in _LANDMARKERS:
        if time.perf_counter() > deadline:
            return False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = make_recommender(algorithm, config, random_state=seed)
                model.fit(split.train)
                score = evaluate(model, split.train, split.test, k=10).mean["ndcg@10"]
            out[f"landmark.{key}"] = _finite(float(score))
        except Exception as err:  # any failure of a cheap model only costs its feature
            _log.debug("Landmarker %s failed: %s", key, err)
            complete = False
    return complete


def _ease_curve(split: Split, deadline: float, out: dict[str, float]) -> bool:
    """EASE's validation NDCG@10 along its L2 path, summarised into ``out``.

    The best L2 weight of the corpus tasks ranges from 5 to 7,600 and follows the
    domain, not the size, so it is measured rather than inferred: ``ease_l2_log`` is the
    natural log of the curve's peak, placed between grid points by a parabola (see
    :func:`_peak_log`).
    False, with the features left at 0, if the curve could not be measured in time.
    """
    scores = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # One BLAS thread: threads left spinning after each small product would
            # slow down the meta-model's prediction that follows.
            for model in EASERecommender.fit_path(split.train, _EASE_LANDMARK_L2, n_jobs=1):
                if time.perf_counter() > deadline:
                    return False
                result = evaluate(model, split.train, split.test, k=10)
                scores.append(_finite(float(result.mean["ndcg@10"])))
    except Exception as err:  # a failure only costs these features
        _log.debug("EASE landmark curve failed: %s", err)
        return False
    weak, strong = scores[0], scores[-1]
    out["landmark.ease_weak"] = weak
    out["landmark.ease_strong"] = strong
    out["landmark.ease_strong_over_weak"] = strong / weak if weak > 0 else 0.0
    out["landmark.ease_l2_log"] = _peak_log(np.log(_EASE_LANDMARK_L2), np.asarray(scores))
    return True


def _peak_log(x: np.ndarray, y: np.ndarray) -> float:
    """Position of the maximum of ``y`` over increasing ``x``, refined by a parabola.

    The parabola goes through the best point and its two neighbours; its vertex is kept
    within the half-way points to them. The best point stays as it is at an end of ``x``
    or on a flat top.
    """
    best = int(np.argmax(y))
    if best in (0, len(y) - 1):
        return float(x[best])
    (x0, x1, x2), (y0, y1, y2) = x[best - 1 : best + 2], y[best - 1 : best + 2]
    denominator = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if denominator == 0:
        return float(x1)
    numerator = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    vertex = x1 - 0.5 * numerator / denominator
    return float(np.clip(vertex, (x0 + x1) / 2, (x1 + x2) / 2))


def _empty_landmarks() -> dict[str, float]:
    keys = [f"landmark.{key}" for key, _, _ in _LANDMARKERS]
    keys += ["landmark.itemknn10_over_pop", "landmark.svd16_over_pop"]
    keys += [f"landmark.{key}" for key in _EASE_LANDMARK_KEYS]
    return {**dict.fromkeys(keys, 0.0), "landmark.complete": 0.0}


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal, towards 1 = concentrated)."""
    if values.size == 0 or values.sum() <= 0:
        return 0.0
    ordered = np.sort(values)
    n = ordered.size
    cumulative = np.cumsum(ordered)
    return float((n + 1 - 2 * (cumulative / cumulative[-1]).sum()) / n)


def normalised_entropy(values: np.ndarray) -> float:
    """Shannon entropy of ``values / sum`` divided by its maximum ``log(n)``.

    A constant distribution (fewer than two values, or all zero) gets 1; all the mass on a
    single one of several values gets 0.
    """
    positive = values[values > 0]
    if values.size < 2 or positive.size == 0:
        return 1.0
    if positive.size == 1:
        return 0.0
    p = positive / positive.sum()
    return float(-(p * np.log(p)).sum() / math.log(values.size))


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def dataset_feature_names() -> tuple[str, ...]:
    """Names of every dataset meta-feature, in the order :func:`dataset_metafeatures` uses."""
    tiny = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
    return tuple(dataset_metafeatures(tiny, landmarkers=False))
