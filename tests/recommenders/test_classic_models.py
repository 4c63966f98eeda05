"""Tests of the NumPy / scikit-learn models: most-popular, UserKNN, PureSVD, NMF, EASE, RP3beta."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.decomposition import NMF

from metarec_classic.data import from_dataframe
from metarec_classic.exceptions import DataError, MemoryLimitError, MetarecError
from metarec_classic.recommenders import (
    ALGORITHM_NAMES,
    BaseRecommender,
    EASERecommender,
    MostPopularRecommender,
    NMFRecommender,
    PureSVDRecommender,
    RP3betaRecommender,
    UserKNNRecommender,
    _classic_common,
    get_recommender_class,
    make_recommender,
)
from metarec_classic.recommenders._base import _row_then_descending, shared_top_k, top_k
from metarec_classic.recommenders._classic_common import top_k_per_row
from metarec_classic.testing import RecommenderContract, make_user_items

# -- the shared contract, with parameters small enough for the 60 × 40 fixture -----------


class TestMostPopularContract(RecommenderContract):
    make = staticmethod(MostPopularRecommender)


class TestUserKNNContract(RecommenderContract):
    make = staticmethod(lambda: UserKNNRecommender(n_neighbors=10, shrinkage=2.0))


class TestPureSVDContract(RecommenderContract):
    make = staticmethod(lambda: PureSVDRecommender(n_factors=8, random_state=0))


class TestNMFContract(RecommenderContract):
    make = staticmethod(lambda: NMFRecommender(n_factors=6, max_iter=100, random_state=0))


class TestEASEContract(RecommenderContract):
    make = staticmethod(lambda: EASERecommender(l2_reg=10.0))


class TestRP3betaContract(RecommenderContract):
    make = staticmethod(lambda: RP3betaRecommender(n_neighbors=10))


ALL_CLASSES = [
    MostPopularRecommender,
    UserKNNRecommender,
    PureSVDRecommender,
    NMFRecommender,
    EASERecommender,
    RP3betaRecommender,
]


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_registry_resolves_each_name(cls: type[BaseRecommender]) -> None:
    assert get_recommender_class(cls.name) is cls
    assert isinstance(make_recommender(cls.name, cls.default_config()), cls)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_default_config_matches_constructor_defaults(cls: type[BaseRecommender]) -> None:
    params = cls().get_params()
    assert cls.default_config() == {key: params[key] for key in cls.search_space()}
    # Every default lies inside its own search space.
    for key, dist in cls.search_space().items():
        assert dist._contains(dist.to_internal_repr(params[key]))


# -- hyperparameter validation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "param"),
    [
        (UserKNNRecommender(n_neighbors=0), "n_neighbors"),
        (UserKNNRecommender(exponent=0.0), "exponent"),
        (PureSVDRecommender(n_factors=0), "n_factors"),
        (NMFRecommender(init="random"), "init"),
        (NMFRecommender(l1_ratio=1.5), "l1_ratio"),
        (EASERecommender(l2_reg=0.0), "l2_reg"),
        (EASERecommender(popularity_penalty=-0.1), "popularity_penalty"),
        (EASERecommender(max_memory_gb=-1.0), "max_memory_gb"),
        (RP3betaRecommender(beta=-0.1), "beta"),
    ],
)
def test_invalid_parameters_raise_at_fit(model: object, param: str) -> None:
    with pytest.raises(ValueError, match=f"'{param}' parameter.* The default is {param}="):
        model.fit(make_user_items())  # type: ignore[attr-defined]


# -- most popular ----------------------------------------------------------------------


def test_most_popular_order_is_count_order() -> None:
    user_items = make_user_items(n_users=80, n_items=30, seed=3)
    counts = np.bincount(user_items.indices, minlength=30)
    model = MostPopularRecommender().fit(user_items)
    ids, scores = model.recommend(np.arange(80), k=30, exclude_seen=False)
    expected = np.lexsort((np.arange(30), -counts))
    np.testing.assert_array_equal(ids, np.tile(expected, (80, 1)))
    np.testing.assert_array_equal(scores[0], counts[expected].astype(np.float32))
    assert model.default_config() == {} and model.search_space() == {}


def test_most_popular_ties_go_to_the_lower_index() -> None:
    user_items = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 1, 1]], dtype=np.float32))
    ids, _ = MostPopularRecommender().fit(user_items).recommend([0], k=4, exclude_seen=False)
    assert ids.tolist() == [[2, 0, 1, 3]]


def test_excluded_items_leave_the_list_and_the_next_ones_move_up() -> None:
    user_items = make_user_items(n_users=20, n_items=12, seed=5)
    model = EASERecommender(l2_reg=10.0).fit(user_items)
    users = np.array([0, 3, 25])  # 25: a user the model has never seen
    full, full_scores = model.recommend(users, k=12)
    exclude = sp.lil_matrix((3, 12), dtype=np.float32)
    exclude[0, full[0, [0, 2]]] = 1  # the first and third of user 0's list
    exclude[2, full[2, 0]] = 1
    ids, scores = model.recommend(users, k=3, exclude=exclude.tocsr())
    kept_0 = [i for i in full[0] if i >= 0 and i not in full[0, [0, 2]]][:3]
    assert ids[0].tolist() == kept_0
    assert ids[1].tolist() == full[1, :3].tolist()  # nothing excluded, nothing changes
    assert ids[2].tolist() == full[2, 1:4].tolist()
    position = {item: j for j, item in enumerate(full[0])}
    np.testing.assert_array_equal(scores[0], full_scores[0, [position[i] for i in kept_0]])


def test_excluding_every_candidate_pads_the_list() -> None:
    user_items = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 1, 0]], dtype=np.float32))
    model = MostPopularRecommender().fit(user_items)
    exclude = sp.csr_matrix(np.array([[0, 1, 1, 1]], dtype=np.float32))
    ids, scores = model.recommend([0], k=2, exclude=exclude)
    assert ids.tolist() == [[-1, -1]] and np.isneginf(scores).all()


def test_exclude_of_the_wrong_shape_is_refused() -> None:
    model = MostPopularRecommender().fit(make_user_items(n_users=5, n_items=4, seed=0))
    with pytest.raises(ValueError, match=r"one row per user and one column per item, \(2, 4\)"):
        model.recommend([0, 1], k=2, exclude=sp.csr_matrix((2, 5)))


# -- UserKNN -----------------------------------------------------------------------------

#: Users 0 and 1 share two items, users 2 and 3 two others, user 2 bridges both groups.
TINY = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 1, 0, 1, 1],
            [0, 0, 0, 1, 1],
        ],
        dtype=np.float32,
    )
)


def test_userknn_hand_computed_ranking() -> None:
    model = UserKNNRecommender(n_neighbors=2, shrinkage=0.0, exponent=1.0).fit(TINY)
    ids, scores = model.recommend([0, 3], k=3)
    # User 0: cos(0, 1) = 2 / sqrt(6), cos(0, 2) = 1 / sqrt(6), cos(0, 3) = 0.
    # Item 2 comes from user 1; items 3 and 4 from user 2, tied, lower index first.
    assert ids[0].tolist() == [2, 3, 4]
    np.testing.assert_allclose(scores[0], [2 / np.sqrt(6), 1 / np.sqrt(6), 1 / np.sqrt(6)])
    # User 3: only user 2 is similar (2 / sqrt(6)); it votes for item 1 alone.
    assert ids[1].tolist() == [1, 0, 2]
    np.testing.assert_allclose(scores[1], [2 / np.sqrt(6), 0.0, 0.0], atol=1e-7)


def test_userknn_shrinkage_and_exponent_follow_the_formula() -> None:
    model = UserKNNRecommender(n_neighbors=1, shrinkage=1.0, exponent=2.0).fit(TINY)
    _ids, scores = model.recommend([0], k=1)
    np.testing.assert_allclose(scores[0, 0], (2 / (np.sqrt(6) + 1)) ** 2, rtol=1e-6)


def test_userknn_user_is_not_its_own_neighbour() -> None:
    # With one neighbour allowed, user 1's only neighbour must be user 0, not itself.
    model = UserKNNRecommender(n_neighbors=1, shrinkage=0.0, exponent=1.0).fit(TINY)
    _ids, scores = model.recommend([1], k=5, exclude_seen=False)
    # cos(1, 0) = 2 / sqrt(6); user 0 has items 0 and 1.
    np.testing.assert_allclose(np.sort(scores[0])[::-1][:2], [2 / np.sqrt(6)] * 2, rtol=1e-6)


def test_userknn_serves_new_histories() -> None:
    model = UserKNNRecommender(n_neighbors=2, shrinkage=0.0, exponent=1.0).fit(TINY)
    # User 0 now has user 3's items: its neighbours become users 2 and 3's group.
    new = sp.csr_matrix(np.array([[0, 0, 0, 1, 1]], dtype=np.float32))
    ids, _ = model.recommend([0], new, k=1)
    assert ids.tolist() == [[1]]
    # Passing the training row explicitly gives the default result.
    same = model.recommend([0, 1], TINY[[0, 1]], k=3)
    default = model.recommend([0, 1], k=3)
    np.testing.assert_array_equal(same[0], default[0])


def test_userknn_batches_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neighbour blocks of a few rows reproduce the single-block computation."""
    user_items = make_user_items(n_users=50, n_items=30, seed=5)
    model = UserKNNRecommender(n_neighbors=7, shrinkage=3.0, exponent=1.5).fit(user_items)
    one_block = model.recommend(np.arange(50), k=10)
    monkeypatch.setattr(_classic_common, "_BLOCK_ENTRIES", 3 * 50)
    many_blocks = model.recommend(np.arange(50), k=10)
    np.testing.assert_array_equal(one_block[0], many_blocks[0])
    np.testing.assert_allclose(one_block[1], many_blocks[1], rtol=1e-6)


def test_user_without_similar_users_gets_popularity() -> None:
    """A user whose only item nobody else has would otherwise get all-zero scores."""
    user_items = sp.csr_matrix(
        np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]]),
        dtype=np.float32,
    )
    ids, scores = UserKNNRecommender(n_neighbors=2).fit(user_items).recommend([3], k=3)
    assert ids.tolist() == [[1, 0, 2]]
    assert np.isfinite(scores).all()


# -- PureSVD and NMF ---------------------------------------------------------------------


def test_pure_svd_scores_are_the_projection() -> None:
    user_items = make_user_items(seed=1)
    model = PureSVDRecommender(n_factors=5, random_state=0).fit(user_items)
    factors = model.item_factors_
    np.testing.assert_allclose(factors.T @ factors, np.eye(5), atol=1e-4)
    history = user_items[:3]
    expected = history.toarray() @ factors @ factors.T
    _ids, scores = model.recommend([0, 1, 2], k=5, exclude_seen=False)
    np.testing.assert_allclose(scores, np.sort(expected, axis=1)[:, ::-1][:, :5], rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_svd_is_reproducible_per_seed(seed: int) -> None:
    user_items = make_user_items(seed=seed)
    first = PureSVDRecommender(n_factors=6, random_state=seed).fit(user_items)
    second = PureSVDRecommender(n_factors=6, random_state=np.random.default_rng(seed)).fit(
        user_items
    )
    np.testing.assert_allclose(np.abs(first.item_factors_), np.abs(second.item_factors_))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_nmf_uses_fitted_factors_and_folds_in_new_histories() -> None:
    user_items = make_user_items(seed=2)
    model = NMFRecommender(n_factors=5, alpha_W=0.0, random_state=0).fit(user_items)
    assert (model.user_factors_ >= 0).all() and (model.item_factors_ >= 0).all()
    # Training users are scored with their fitted factors.
    _ids, scores = model.recommend([0], k=3, exclude_seen=False)
    fitted = model.user_factors_[0] @ model.item_factors_.T
    np.testing.assert_allclose(scores[0], np.sort(fitted)[::-1][:3], rtol=1e-5)
    # A changed history is folded in with the item factors fixed.
    row = user_items[[0]].toarray()
    row[0, np.flatnonzero(row[0] == 0)[0]] = 1.0
    new = sp.csr_matrix(row)
    _ids, scores = model.recommend([0], new, k=3, exclude_seen=False)
    # scikit-learn's own fold-in, run on the model's item factors, is the reference.
    reference = NMF(n_components=5, init="nndsvda", max_iter=1000, tol=1e-8).fit(user_items)
    reference.components_ = model.item_factors_.T.copy()
    folded = reference.transform(new)[0] @ model.item_factors_.T
    np.testing.assert_allclose(scores[0], np.sort(folded)[::-1][:3], rtol=1e-3)


@pytest.mark.parametrize(("alpha_w", "l1_ratio"), [(0.0, 0.0), (0.01, 0.0), (0.005, 0.5)])
def test_nmf_fold_in_satisfies_the_optimality_conditions(alpha_w: float, l1_ratio: float) -> None:
    """Folded-in factors minimise the penalised loss: the KKT conditions hold."""
    user_items = make_user_items(seed=7)
    model = NMFRecommender(n_factors=6, alpha_W=alpha_w, l1_ratio=l1_ratio, random_state=0)
    model.fit(user_items)
    history = make_user_items(n_users=8, seed=8)
    factors = model._fold_in(history).astype(np.float64)
    item_factors = model.item_factors_.astype(np.float64)
    strength = alpha_w * user_items.shape[1]
    residual = factors @ item_factors.T - history.toarray()
    gradient = residual @ item_factors + strength * (l1_ratio + (1 - l1_ratio) * factors)
    assert (factors >= 0).all()
    assert (gradient > -1e-3).all()
    np.testing.assert_allclose(gradient[factors > 1e-6], 0.0, atol=1e-3)


# -- clamping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "param", "expected"),
    [
        (PureSVDRecommender(n_factors=500, random_state=0), "n_factors", 39),
        (NMFRecommender(n_factors=500, random_state=0, max_iter=50), "n_factors", 39),
        (UserKNNRecommender(n_neighbors=500), "n_neighbors", 59),
        (RP3betaRecommender(n_neighbors=500), "n_neighbors", 39),
    ],
)
def test_impossible_sizes_are_clamped_with_a_warning(
    model: object, param: str, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="metarec_classic"):
        model.fit(make_user_items())  # type: ignore[attr-defined]
    assert model.effective_config_[param] == expected  # type: ignore[attr-defined]
    assert model.get_params()[param] == 500  # type: ignore[attr-defined]
    assert any(f"`{param}`=500" in record.getMessage() for record in caplog.records)


def test_sizes_that_fit_are_not_clamped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="metarec_classic"):
        model = RP3betaRecommender(n_neighbors=10).fit(make_user_items())
    assert model.effective_config_ == {"alpha": 0.7, "beta": 0.5, "n_neighbors": 10}
    assert not caplog.records


# -- EASE --------------------------------------------------------------------------------


def test_ease_matches_the_dense_closed_form() -> None:
    user_items = make_user_items(n_users=40, n_items=25, seed=4)
    dense = user_items.toarray().astype(np.float64)
    l2_reg = 7.5
    inverse = np.linalg.inv(dense.T @ dense + l2_reg * np.eye(25))
    weights = np.eye(25) - inverse / np.diag(inverse)[None, :]
    model = EASERecommender(l2_reg=l2_reg).fit(user_items)
    np.testing.assert_allclose(model.item_weights_, weights, atol=1e-5)
    np.testing.assert_array_equal(np.diag(model.item_weights_), np.zeros(25))
    _ids, scores = model.recommend(np.arange(40), k=25, exclude_seen=False)
    expected = dense @ weights
    np.testing.assert_allclose(scores, -np.sort(-expected, axis=1), rtol=1e-4, atol=1e-5)


def test_ease_popularity_penalty_divides_each_items_scores() -> None:
    user_items = make_user_items(n_users=40, n_items=25, seed=6)
    plain = EASERecommender(l2_reg=20.0).fit(user_items)
    penalised = EASERecommender(l2_reg=20.0, popularity_penalty=0.3).fit(user_items)
    popularity = np.maximum(np.asarray((user_items > 0).sum(axis=0)).ravel(), 1)
    np.testing.assert_allclose(
        penalised.item_weights_, plain.item_weights_ / popularity[None, :] ** 0.3, rtol=1e-5
    )
    # The penalty moves less popular items up the lists.
    penalised_ids, _ = penalised.recommend(np.arange(40), k=5)
    plain_ids, _ = plain.recommend(np.arange(40), k=5)
    mean_popularity = [popularity[ids[ids >= 0]].mean() for ids in (plain_ids, penalised_ids)]
    assert mean_popularity[1] < mean_popularity[0]
    assert penalised.effective_config_ == {"l2_reg": 20.0, "popularity_penalty": 0.3}


def test_ease_refuses_above_the_memory_limit() -> None:
    user_items = make_user_items(n_users=30, n_items=40)
    model = EASERecommender(max_memory_gb=1e-6)
    with pytest.raises(MemoryLimitError, match=r"`max_memory_gb`=1e-06.*itemknn") as info:
        model.fit(user_items)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, MetarecError)
    assert f"{EASERecommender.estimate_memory_gb(40):.3g} GB" in str(info.value)
    assert not hasattr(model, "item_weights_")
    # The same data fits once the limit covers the estimate.
    model.set_params(max_memory_gb=2 * EASERecommender.estimate_memory_gb(40)).fit(user_items)
    assert model.item_weights_.shape == (40, 40)


def test_ease_path_gives_the_models_of_separate_fits() -> None:
    user_items = make_user_items(n_users=40, n_items=25, seed=5)
    l2_values = [1.0, 30.0, 1000.0]
    params = {"n_jobs": 1, "popularity_penalty": 0.2}
    path = list(EASERecommender.fit_path(user_items, l2_values, **params))
    assert [model.l2_reg for model in path] == l2_values
    for model, l2_reg in zip(path, l2_values, strict=True):
        alone = EASERecommender(l2_reg=l2_reg, **params).fit(user_items)
        np.testing.assert_allclose(model.item_weights_, alone.item_weights_, atol=1e-6)
        assert model.effective_config_ == {"l2_reg": l2_reg, "popularity_penalty": 0.2}
        np.testing.assert_array_equal(model.item_popularity_, alone.item_popularity_)
    # Each model owns its weights: the shared Gram matrix is copied, never aliased.
    assert not np.shares_memory(path[0].item_weights_, path[1].item_weights_)
    assert not np.allclose(path[0].item_weights_, path[2].item_weights_)


def test_ease_path_refuses_like_a_fit() -> None:
    user_items = make_user_items(n_users=30, n_items=40)
    with pytest.raises(MemoryLimitError, match="max_memory_gb"):
        next(EASERecommender.fit_path(user_items, [10.0], max_memory_gb=1e-6))
    with pytest.raises(ValueError, match="l2_reg"):
        next(EASERecommender.fit_path(user_items, [-1.0]))
    with pytest.raises(TypeError, match=r"list of L2 weights.*l2_reg=\.\.\."):
        next(EASERecommender.fit_path(user_items, 300.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="leave it out"):
        next(EASERecommender.fit_path(user_items, [300.0], l2_reg=5.0))


def test_ease_memory_estimate_grows_with_the_square() -> None:
    assert EASERecommender.estimate_memory_gb(10_000) == pytest.approx(1.2)
    assert EASERecommender.estimate_memory_gb(20_000) == pytest.approx(4.8)


# -- RP3beta -----------------------------------------------------------------------------


def test_rp3beta_matches_the_dense_random_walk() -> None:
    user_items = make_user_items(n_users=30, n_items=12, seed=6)
    dense = user_items.toarray().astype(np.float64)
    alpha, beta = 0.7, 0.4
    p_ui = (dense / dense.sum(axis=1, keepdims=True)) ** alpha
    counts = dense.sum(axis=0)
    p_iu = np.divide(
        dense.T, counts[:, None], out=np.zeros_like(dense.T), where=counts[:, None] > 0
    )
    weights = (p_iu**alpha) @ p_ui
    weights = np.divide(weights, counts**beta, out=np.zeros_like(weights), where=counts > 0)
    np.fill_diagonal(weights, 0.0)
    model = RP3betaRecommender(alpha, beta=beta, n_neighbors=11).fit(user_items)
    np.testing.assert_allclose(model.similarity_.toarray(), weights, rtol=1e-5, atol=1e-7)


def test_rp3beta_keeps_n_neighbors_per_item() -> None:
    model = RP3betaRecommender(n_neighbors=4).fit(make_user_items())
    assert np.diff(model.similarity_.indptr).max() <= 4
    assert not model.similarity_.diagonal().any()


@pytest.mark.parametrize("dense_fraction", [0.0, 2.0], ids=["dense-path", "sparse-path"])
def test_top_k_per_row_breaks_ties_by_column(
    dense_fraction: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_classic_common, "_DENSE_FRACTION", dense_fraction)
    block = sp.csr_matrix(
        np.array([[0.5, 0.9, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [0.2, -1.0, 0.0, 0.0, 3.0]])
    )
    kept = top_k_per_row(block, 3)
    assert kept[0].indices.tolist() == [0, 1, 2]
    assert kept[1].nnz == 0
    # Negative weights are never neighbours, even when the row has room for them.
    assert kept[2].indices.tolist() == [0, 4]
    np.testing.assert_array_equal(kept[2].data, np.array([0.2, 3.0], dtype=np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_per_row_paths_agree(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct values, so many ties fall at the cut.
    values = rng.integers(0, 4, size=(30, 20)).astype(np.float64)
    values[rng.random((30, 20)) < 0.5] = 0.0
    monkeypatch.setattr(_classic_common, "_DENSE_FRACTION", 0.0)
    dense_path = top_k_per_row(sp.csr_matrix(values), 5)
    monkeypatch.setattr(_classic_common, "_DENSE_FRACTION", 2.0)
    sparse_path = top_k_per_row(sp.csr_matrix(values), 5)
    assert (dense_path != sparse_path).nnz == 0
    np.testing.assert_array_equal(dense_path.indptr, sparse_path.indptr)
    assert np.diff(sparse_path.indptr).max() <= 5


def test_row_then_descending_matches_lexsort() -> None:
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38], dtype=np.float32)
    values = np.concatenate([rng.integers(-3, 4, 500).astype(np.float32), special])
    values = rng.permutation(values)
    rows = rng.integers(0, 20, values.size)
    expected = np.lexsort((np.arange(values.size), -values, rows))
    np.testing.assert_array_equal(_row_then_descending(rows, values), expected)


@pytest.mark.parametrize("seed", range(40))
def test_shared_top_k_equals_top_k_of_the_tiled_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_items = int(rng.integers(1, 30)), int(rng.integers(1, 50))
    # Few distinct values for ties, plus a NaN and an infinity on some seeds.
    scores = rng.integers(0, 4, n_items).astype(np.float32)
    if seed % 3 == 0:
        scores[rng.integers(n_items)] = np.nan
    if seed % 4 == 0:
        scores[rng.integers(n_items)] = np.inf
    exclude = sp.random(n_rows, n_items, density=rng.uniform(0, 0.95), format="csr", rng=rng)
    k = int(rng.integers(1, 60))
    for excluded in (exclude, None):
        shared = shared_top_k(scores, k, n_rows=n_rows, exclude=excluded)
        tiled = top_k(np.tile(scores, (n_rows, 1)), k, exclude=excluded)
        np.testing.assert_array_equal(shared[0], tiled[0])
        np.testing.assert_array_equal(shared[1], tiled[1])


# -- planted structure -------------------------------------------------------------------


def _planted_blocks(seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Three groups of users, each sharing its own block of items, one item held out."""
    rng = np.random.default_rng(seed)
    n_groups, users_per_group, items_per_group = 3, 30, 15
    n_users, n_items = n_groups * users_per_group, n_groups * items_per_group
    dense = (rng.random((n_users, n_items)) < 0.03).astype(np.float32)
    for group in range(n_groups):
        rows = slice(group * users_per_group, (group + 1) * users_per_group)
        cols = slice(group * items_per_group, (group + 1) * items_per_group)
        dense[rows, cols] = rng.random((users_per_group, items_per_group)) < 0.8
    held_out = np.empty(n_users, dtype=np.int64)
    for user in range(n_users):
        group = user // users_per_group
        block = slice(group * items_per_group, (group + 1) * items_per_group)
        in_block = np.flatnonzero(dense[user, block])
        held_out[user] = group * items_per_group + rng.choice(in_block)
        dense[user, held_out[user]] = 0.0
    return sp.csr_matrix(dense), held_out


@pytest.mark.parametrize(
    "make",
    [
        lambda: PureSVDRecommender(n_factors=3, random_state=0),
        lambda: EASERecommender(l2_reg=5.0),
        lambda: RP3betaRecommender(n_neighbors=20),
        lambda: UserKNNRecommender(n_neighbors=10),
        lambda: NMFRecommender(n_factors=3, alpha_W=0.0, random_state=0),
    ],
    ids=["pure_svd", "ease", "rp3beta", "userknn", "nmf"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_blocks_are_recovered(make: object, seed: int) -> None:
    user_items, held_out = _planted_blocks(seed)
    model = make().fit(user_items)  # type: ignore[operator]
    ids, _ = model.recommend(np.arange(user_items.shape[0]), k=5)
    hit_rate = np.mean([held_out[user] in ids[user] for user in range(len(held_out))])
    # About four in-block items are unseen, so a model that finds the blocks hits nearly
    # always; a random top-5 of the ~35 unseen items hits about 15 % of the time and
    # the unpersonalised most-popular list about 10 %.
    assert hit_rate > 0.8


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_fitted_model_pickles_with_its_weights(cls: type[BaseRecommender]) -> None:
    model = cls().fit(make_user_items())
    again = pickle.loads(pickle.dumps(model))
    assert again.effective_config_ == model.effective_config_
    np.testing.assert_array_equal(
        again.recommend(np.arange(20), k=5)[1], model.recommend(np.arange(20), k=5)[1]
    )


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_zero_or_negative_weights_are_refused_with_the_fix(name: str) -> None:
    matrix = make_user_items(n_users=20, n_items=15, density=0.3, seed=0)
    matrix.data[:3] = [-3.0, 0.0, -1.0]
    with pytest.raises(
        DataError, match=r"3 of the \d+ training interactions have a zero or negative weight"
    ):
        make_recommender(name).fit(matrix)


def test_ratings_kept_as_weights_can_drop_their_nonpositive_entries() -> None:
    frame = pd.DataFrame(
        {"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2], "rating": [5.0, -2.0, 0.0, 3.0, 1.0]}
    )
    data = from_dataframe(frame, user_col="user", item_col="item", rating_col="rating")
    with pytest.raises(DataError, match="positive_threshold="):
        make_recommender("most_popular").fit(data)
    kept = data.drop_nonpositive_weights()
    assert kept.n_interactions == 3
    assert kept.report.counts["nonpositive_weights_dropped"] == 2
    ids, _ = make_recommender("most_popular").fit(kept).recommend([0], k=2)
    assert ids.shape == (1, 2)


def test_ease_inverts_large_matrices_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two-thread OpenBLAS Cholesky crashed the process on 17,632 items; see inverse_threads.
    from metarec_classic.recommenders import _ease

    assert _ease.inverse_threads(3_000, 2) == 2
    assert _ease.inverse_threads(14_000, 2) == 2
    assert _ease.inverse_threads(14_001, 2) == 1
    assert _ease.inverse_threads(17_632, None) == 1

    # The fit asks for those threads: with the limit lowered below 40 items, one thread.
    asked: list[int | None] = []
    real = _ease.blas_threads

    def recording(n_jobs: int | None) -> object:
        asked.append(n_jobs)
        return real(n_jobs)

    monkeypatch.setattr(_ease, "blas_threads", recording)
    EASERecommender(n_jobs=2).fit(make_user_items(n_items=40))
    monkeypatch.setattr(_ease, "_THREADED_INVERSE_MAX_ITEMS", 39)
    EASERecommender(n_jobs=2).fit(make_user_items(n_items=40))
    assert asked == [2, 1]
