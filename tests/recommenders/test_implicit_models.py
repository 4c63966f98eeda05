"""Tests of the implicit-based models: ALS, BPR, LMF and ItemKNN (cosine, BM25, TF-IDF)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.cpu.lmf import LogisticMatrixFactorization
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender

from metarec_classic.recommenders import (
    ALSRecommender,
    BaseRecommender,
    BPRRecommender,
    ItemKNNRecommender,
    LMFRecommender,
    get_recommender_class,
    make_recommender,
)
from metarec_classic.recommenders._implicit_common import normalise_output, to_implicit_params
from metarec_classic.testing import RecommenderContract, make_user_items

# -- the shared contract, with small models for the 60 × 40 fixture ----------------------


class TestALSContract(RecommenderContract):
    make = staticmethod(lambda: ALSRecommender(n_factors=8, n_iter=5, random_state=0))


class TestBPRContract(RecommenderContract):
    # One thread: with two, lock-free updates make fits differ between runs (documented).
    make = staticmethod(lambda: BPRRecommender(n_factors=8, n_iter=20, random_state=0, n_jobs=1))


class TestLMFContract(RecommenderContract):
    make = staticmethod(lambda: LMFRecommender(n_factors=8, n_iter=10, random_state=0))


class TestItemKNNCosineContract(RecommenderContract):
    make = staticmethod(lambda: ItemKNNRecommender("cosine"))


class TestItemKNNBM25Contract(RecommenderContract):
    make = staticmethod(lambda: ItemKNNRecommender("bm25", bm25_k1=1.5, bm25_b=0.5))


class TestItemKNNTFIDFContract(RecommenderContract):
    make = staticmethod(lambda: ItemKNNRecommender("tfidf", n_neighbors=10))


FACTOR_CLASSES = [ALSRecommender, BPRRecommender, LMFRecommender]
ALL_CLASSES = [*FACTOR_CLASSES, ItemKNNRecommender]


# -- registry, defaults and parameters ------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_registered_under_its_name(cls: type[BaseRecommender]) -> None:
    assert get_recommender_class(cls.name) is cls
    assert isinstance(make_recommender(cls.name), cls)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_defaults_lie_in_the_search_space(cls: type[BaseRecommender]) -> None:
    space = cls.search_space()
    for name, value in cls.default_config().items():
        dist = space[name]
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            assert value in dist.choices, name
        else:
            assert dist.low <= value <= dist.high, (name, value)


def test_parameters_translate_to_implicit_names() -> None:
    ours = {"n_factors": 8, "n_iter": 3, "n_neighbors": 5, "bm25_k1": 1.0, "bm25_b": 0.5}
    assert to_implicit_params({**ours, "n_jobs": 2, "alpha": 4.0}) == {
        "factors": 8,
        "iterations": 3,
        "K": 5,
        "K1": 1.0,
        "B": 0.5,
        "num_threads": 2,
        "alpha": 4.0,
    }
    assert to_implicit_params({"n_jobs": None})["num_threads"] == 1
    assert to_implicit_params({"n_jobs": -1})["num_threads"] == (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (ALSRecommender(n_factors=0), "n_factors"),
        (ALSRecommender(alpha=0.0), "alpha"),
        (BPRRecommender(learning_rate=-1.0), "learning_rate"),
        (LMFRecommender(neg_prop=0), "neg_prop"),
        (ItemKNNRecommender("jaccard"), "weighting"),
        (ItemKNNRecommender(bm25_b=2.0), "bm25_b"),
        (ALSRecommender(n_jobs=0), "n_jobs"),
    ],
)
def test_invalid_parameters_raise_at_fit(model: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model.fit(make_user_items())  # type: ignore[attr-defined]


def test_normalise_output_turns_implicit_padding_into_ours() -> None:
    low = -np.finfo(np.float32).max
    ids = np.array([[3, 1, 7], [2, -1, -1]], dtype=np.int32)
    scores = np.array([[0.5, 0.25, low], [1.0, low, low]], dtype=np.float64)
    out_ids, out_scores = normalise_output(ids, scores)
    assert out_ids.dtype == np.int64 and out_scores.dtype == np.float32
    np.testing.assert_array_equal(out_ids, [[3, 1, -1], [2, -1, -1]])
    np.testing.assert_array_equal(out_scores, [[0.5, 0.25, -np.inf], [1.0, -np.inf, -np.inf]])


# -- clamping to small data ------------------------------------------------------------------


@pytest.mark.parametrize("cls", FACTOR_CLASSES)
def test_too_many_factors_are_clamped_with_a_warning(
    cls: type, caplog: pytest.LogCaptureFixture
) -> None:
    user_items = make_user_items(n_users=30, n_items=12)
    model = cls(n_factors=64, n_iter=3, random_state=0)
    with caplog.at_level(logging.WARNING, logger="metarec_classic"):
        model.fit(user_items)
    assert "n_factors" in caplog.text and "using n_factors=11" in caplog.text
    assert model.effective_config_["n_factors"] == 11
    assert model.n_factors == 64  # the parameter itself is left as given
    assert model.item_factors_.shape[0] == 12
    ids, scores = model.recommend(np.arange(30), k=5)
    assert np.isfinite(scores[ids >= 0]).all()


def test_too_many_neighbours_are_clamped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    user_items = make_user_items(n_users=30, n_items=12)
    with caplog.at_level(logging.WARNING, logger="metarec_classic"):
        model = ItemKNNRecommender(n_neighbors=500).fit(user_items)
    assert "using n_neighbors=12" in caplog.text
    assert model.effective_config_["n_neighbors"] == 12
    assert model.similarity_.shape == (12, 12)


def test_defaults_need_no_clamping_on_moderate_data(caplog: pytest.LogCaptureFixture) -> None:
    user_items = make_user_items(n_users=150, n_items=120)
    with caplog.at_level(logging.WARNING, logger="metarec_classic"):
        model = ALSRecommender(n_iter=2, random_state=0).fit(user_items)
    assert caplog.text == ""
    assert model.effective_config_ == ALSRecommender.default_config() | {"n_iter": 2}


# -- quality on planted structure --------------------------------------------------------------


def _planted_communities(seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Four user communities, each using its own block of 25 items; one item held out per user.

    Returns the training matrix and the held-out item of every user.
    """
    rng = np.random.default_rng(seed)
    n_blocks, users_per_block, items_per_block = 4, 40, 25
    dense = np.zeros((n_blocks * users_per_block, n_blocks * items_per_block), dtype=np.float32)
    for block in range(n_blocks):
        rows = slice(block * users_per_block, (block + 1) * users_per_block)
        cols = slice(block * items_per_block, (block + 1) * items_per_block)
        dense[rows, cols] = rng.random((users_per_block, items_per_block)) < 0.7
    dense[rng.random(dense.shape) < 0.01] = 1.0  # a little cross-community noise
    held_out = np.empty(dense.shape[0], dtype=np.int64)
    for user in range(dense.shape[0]):
        block = user // users_per_block
        own = np.flatnonzero(dense[user, block * items_per_block : (block + 1) * items_per_block])
        held_out[user] = block * items_per_block + rng.choice(own)
        dense[user, held_out[user]] = 0.0
    return sp.csr_matrix(dense), held_out


def _hit_rate(ids: np.ndarray, held_out: np.ndarray) -> float:
    return float(np.mean([held in row for row, held in zip(ids, held_out, strict=True)]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "make",
    [
        lambda: ALSRecommender(n_factors=8, alpha=10.0, regularization=0.1, random_state=0),
        lambda: ItemKNNRecommender("bm25", n_neighbors=30),
    ],
    ids=["als", "itemknn"],
)
def test_recovers_planted_communities_far_better_than_random(make: object, seed: int) -> None:
    user_items, held_out = _planted_communities(seed)
    model = make().fit(user_items)  # type: ignore[operator]
    k = 5
    ids, _ = model.recommend(np.arange(user_items.shape[0]), k=k)
    hit_rate = _hit_rate(ids, held_out)
    # A random unseen item hits with probability k / (unseen items), about 5 / 83 here; a
    # model that knows the communities picks among about 8 unseen items of the own block.
    random_rate = float(np.mean(k / (user_items.shape[1] - np.diff(user_items.indptr))))
    assert hit_rate > 0.4
    assert hit_rate > 6 * random_rate


# -- identical output to implicit called directly -------------------------------------------


def _direct(implicit_model: object, user_items: sp.csr_matrix, k: int) -> np.ndarray:
    implicit_model.fit(user_items, show_progress=False)  # type: ignore[attr-defined]
    users = np.arange(user_items.shape[0])
    ids, scores = implicit_model.recommend(users, user_items, N=k)  # type: ignore[attr-defined]
    return normalise_output(ids, scores)[0]


# implicit's item-item models warn about their own internal COO to CSR conversion.
@pytest.mark.filterwarnings("ignore::implicit.utils.ParameterWarning")
@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda s: ALSRecommender(n_factors=16, alpha=5.0, n_iter=6, random_state=s),
            lambda s: AlternatingLeastSquares(
                factors=16, alpha=5.0, iterations=6, num_threads=2, random_state=s
            ),
        ),
        (
            lambda s: BPRRecommender(n_factors=16, n_iter=30, random_state=s, n_jobs=1),
            lambda s: BayesianPersonalizedRanking(
                factors=16, iterations=30, num_threads=1, random_state=s
            ),
        ),
        (
            lambda s: LMFRecommender(n_factors=16, n_iter=10, random_state=s),
            lambda s: LogisticMatrixFactorization(
                factors=16, iterations=10, num_threads=2, random_state=s
            ),
        ),
        (
            lambda s: ItemKNNRecommender("cosine", n_neighbors=15),
            lambda s: CosineRecommender(K=15),
        ),
        (
            lambda s: ItemKNNRecommender("bm25", n_neighbors=15, bm25_k1=2.0, bm25_b=0.3),
            lambda s: BM25Recommender(K=15, K1=2.0, B=0.3),
        ),
        (
            lambda s: ItemKNNRecommender("tfidf", n_neighbors=15),
            lambda s: TFIDFRecommender(K=15),
        ),
    ],
    ids=["als", "bpr", "lmf", "cosine", "bm25", "tfidf"],
)
def test_same_lists_as_implicit_called_directly(ours: object, theirs: object, seed: int) -> None:
    user_items = make_user_items(n_users=200, n_items=150, density=0.08, seed=seed)
    expected = _direct(theirs(seed), user_items, k=10)  # type: ignore[operator]
    ids, _ = ours(seed).fit(user_items).recommend(np.arange(200), k=10)  # type: ignore[operator]
    np.testing.assert_array_equal(ids, expected)


def test_same_lists_as_implicit_on_movielens(shared_data: Path) -> None:
    raw = np.loadtxt(shared_data / "ml-100k" / "u.data", dtype=np.int64, max_rows=20000)
    raw = raw[raw[:, 2] >= 4]
    users = np.unique(raw[:, 0], return_inverse=True)[1]
    items = np.unique(raw[:, 1], return_inverse=True)[1]
    user_items = sp.csr_matrix(
        (np.ones(len(raw), dtype=np.float32), (users, items)), dtype=np.float32
    )
    theirs = AlternatingLeastSquares(factors=32, iterations=5, num_threads=2, random_state=3)
    expected = _direct(theirs, user_items, k=10)
    model = ALSRecommender(n_factors=32, n_iter=5, random_state=3).fit(user_items)
    ids, _ = model.recommend(np.arange(user_items.shape[0]), k=10)
    np.testing.assert_array_equal(ids, expected)


# -- model-specific behaviour -------------------------------------------------------------------


def test_als_warm_start_continues_from_the_previous_factors() -> None:
    user_items = make_user_items(n_users=80, n_items=50)
    warm = ALSRecommender(n_factors=6, n_iter=4, random_state=0, warm_start=True)
    warm.fit(user_items).set_params(n_iter=3).fit(user_items)
    cold = ALSRecommender(n_factors=6, n_iter=7, random_state=0).fit(user_items)
    np.testing.assert_allclose(warm.item_factors_, cold.item_factors_, rtol=1e-5, atol=1e-6)
    restarted = ALSRecommender(n_factors=6, n_iter=4, random_state=0).fit(user_items)
    restarted.set_params(n_iter=3).fit(user_items)
    assert not np.allclose(restarted.item_factors_, cold.item_factors_, atol=1e-4)


def test_als_warm_start_with_other_shapes_starts_afresh(caplog: pytest.LogCaptureFixture) -> None:
    model = ALSRecommender(n_factors=6, n_iter=2, random_state=0, warm_start=True)
    model.fit(make_user_items(n_users=80, n_items=50))
    with caplog.at_level(logging.WARNING, logger="metarec_classic"):
        model.fit(make_user_items(n_users=70, n_items=45))
    assert "`warm_start` ignored" in caplog.text
    assert model.user_factors_.shape == (70, 6)


def test_als_alpha_reaches_implicit() -> None:
    user_items = make_user_items()
    low = ALSRecommender(n_factors=6, alpha=1.0, n_iter=3, random_state=0).fit(user_items)
    high = ALSRecommender(n_factors=6, alpha=40.0, n_iter=3, random_state=0).fit(user_items)
    assert high.model_.alpha == 40.0
    assert not np.allclose(low.item_factors_, high.item_factors_)


def test_bpr_divergence_raises_a_clear_error() -> None:
    model = BPRRecommender(n_factors=32, learning_rate=50.0, regularization=0.0, random_state=0)
    with pytest.raises(ValueError, match="diverged"):
        model.fit(make_user_items(n_users=200, n_items=100))


@pytest.mark.parametrize("weighting", ["cosine", "bm25", "tfidf"])
def test_itemknn_never_returns_seen_items_in_short_lists(weighting: str) -> None:
    """Regression: implicit 0.7.3 returned the user's own items (score 0) once the other
    candidates ran out, so long lists with ``exclude_seen`` contained seen items."""
    user_items = make_user_items(n_users=40, n_items=30)
    model = ItemKNNRecommender(weighting, n_neighbors=3).fit(user_items)
    ids, scores = model.recommend(np.arange(40), k=30)
    for user in range(40):
        row = ids[user]
        assert not set(row[row >= 0].tolist()) & set(user_items[user].indices.tolist())
        # Padding sits at the end of each list.
        n_real = int((row >= 0).sum())
        assert (row[n_real:] == -1).all() and np.isneginf(scores[user, n_real:]).all()


def test_itemknn_bm25_parameters_only_matter_for_bm25() -> None:
    user_items = make_user_items()
    users = np.arange(user_items.shape[0])
    for weighting, should_differ in [("cosine", False), ("bm25", True)]:
        a = ItemKNNRecommender(weighting, bm25_k1=0.2, bm25_b=0.0).fit(user_items)
        b = ItemKNNRecommender(weighting, bm25_k1=3.0, bm25_b=1.0).fit(user_items)
        same = np.allclose(a.similarity_.toarray(), b.similarity_.toarray())
        assert same is not should_differ
        if not should_differ:
            np.testing.assert_array_equal(a.recommend(users)[0], b.recommend(users)[0])
