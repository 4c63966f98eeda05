"""Contract checks every recommender must pass, shipped so that new models can reuse them.

Use :func:`check_recommender` on an unfitted instance, or subclass
:class:`RecommenderContract` in a pytest module and set ``make``.
"""

from __future__ import annotations

import inspect
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from metarec_classic.recommenders._base import BaseRecommender
from metarec_classic.recommenders._persist import load_recommender, save_recommender

__all__ = ["RecommenderContract", "check_recommender", "make_user_items"]


def make_user_items(
    n_users: int = 60, n_items: int = 40, density: float = 0.15, seed: int = 0
) -> sp.csr_matrix:
    """A small random implicit matrix with power-law item popularity and no empty row."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    rows, cols = [], []
    for user in range(n_users):
        n = max(2, rng.binomial(n_items, density))
        items = rng.choice(n_items, size=min(n, n_items - 1), replace=False, p=popularity)
        rows.extend([user] * len(items))
        cols.extend(items.tolist())
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)


class RecommenderContract:
    """Pytest mixin: set ``make`` to a zero-argument factory of an unfitted recommender."""

    make: Callable[[], BaseRecommender]

    @pytest.fixture
    def user_items(self) -> sp.csr_matrix:
        return make_user_items()

    def test_unfitted_raises(self, user_items: sp.csr_matrix) -> None:
        with pytest.raises(NotFittedError, match="not fitted"):
            self.make().recommend([0, 1], k=5)

    def test_shapes_and_dtypes(self, user_items: sp.csr_matrix) -> None:
        model = self.make().fit(user_items)
        users = np.arange(user_items.shape[0])
        ids, scores = model.recommend(users, k=7)
        assert ids.shape == scores.shape == (len(users), 7)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        assert ids.max() < user_items.shape[1]
        assert not np.isnan(scores).any()
        valid = ids >= 0
        # Scores are sorted best first within the valid part of each list.
        filled = np.where(valid, scores, -np.inf)
        assert np.all(np.diff(filled, axis=1) <= 1e-6)

    def test_exclude_seen(self, user_items: sp.csr_matrix) -> None:
        model = self.make().fit(user_items)
        users = np.arange(user_items.shape[0])
        ids, _ = model.recommend(users, k=10, exclude_seen=True)
        for user in users:
            seen = set(user_items[user].indices.tolist())
            assert not seen & set(ids[user][ids[user] >= 0].tolist())
        ids_all, _ = model.recommend(users, k=10, exclude_seen=False)
        assert (ids_all >= 0).all()

    def test_no_duplicate_items_in_a_list(self, user_items: sp.csr_matrix) -> None:
        ids, _ = self.make().fit(user_items).recommend(np.arange(user_items.shape[0]), k=10)
        for row in ids:
            real = row[row >= 0]
            assert len(real) == len(set(real.tolist()))

    def test_same_seed_same_output(self, user_items: sp.csr_matrix) -> None:
        users = np.arange(user_items.shape[0])
        first = self.make().fit(user_items).recommend(users, k=5)
        second = self.make().fit(user_items).recommend(users, k=5)
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_allclose(first[1], second[1], rtol=1e-5)

    def test_clone_and_params(self, user_items: sp.csr_matrix) -> None:
        model = self.make()
        copy = clone(model)
        assert copy.get_params() == model.get_params()
        config = type(model).default_config()
        assert set(config) <= set(model.get_params())
        assert set(type(model).search_space()) == set(config)
        for dist in type(model).search_space().values():
            assert isinstance(dist, optuna.distributions.BaseDistribution)
        model.set_params(**config)

    def test_pickle_round_trip(self, user_items: sp.csr_matrix) -> None:
        model = self.make().fit(user_items)
        users = np.arange(5)
        again = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(
            model.recommend(users, k=5)[0], again.recommend(users, k=5)[0]
        )

    def test_save_load_round_trip(self, user_items: sp.csr_matrix, tmp_path: Any) -> None:
        """Arrays plus JSON on disk give back a model with identical recommendations."""
        model = self.make().fit(user_items)
        users = np.arange(user_items.shape[0])
        save_recommender(model, tmp_path / "model")
        again = load_recommender(tmp_path / "model")
        assert type(again) is type(model)
        np.testing.assert_array_equal(
            model.recommend(users, k=5)[0], again.recommend(users, k=5)[0]
        )
        np.testing.assert_allclose(
            model.recommend(users, k=5)[1], again.recommend(users, k=5)[1], rtol=1e-5
        )

    def test_cold_users_get_popularity_fallback(self, user_items: sp.csr_matrix) -> None:
        model = self.make().fit(user_items)
        n_users = user_items.shape[0]
        # One index beyond the training users and one user whose history is empty.
        empty = sp.csr_matrix((2, user_items.shape[1]), dtype=np.float32)
        ids, _scores = model.recommend([n_users, n_users + 1], empty, k=5)
        assert model.n_fallback_users_ == 2
        most_popular = np.argsort(
            -np.bincount(user_items.indices, minlength=user_items.shape[1]), kind="stable"
        )[:5]
        assert set(ids[0].tolist()) == set(most_popular.tolist())

    def test_k_larger_than_catalogue_pads(self, user_items: sp.csr_matrix) -> None:
        model = self.make().fit(user_items)
        n_items = user_items.shape[1]
        ids, scores = model.recommend([0], k=n_items + 5)
        assert ids.shape == (1, n_items + 5)
        n_seen = user_items[0].nnz
        assert (ids[0] >= 0).sum() <= n_items - n_seen
        assert (ids[0, n_items - n_seen :] == -1).all()
        assert np.isneginf(scores[0, n_items - n_seen :]).all()

    def test_every_search_space_point_runs(self, user_items: sp.csr_matrix) -> None:
        """Extremes of the search space (clamped to this small data) never give NaN."""
        cls = type(self.make())
        for pick in (_lowest, _highest):
            config = {name: pick(dist) for name, dist in cls.search_space().items()}
            model = self.make().set_params(**config).fit(user_items)
            _ids, scores = model.recommend(np.arange(10), k=5)
            assert not np.isnan(scores).any()

    def test_bool_for_a_number_is_refused(self, user_items: sp.csr_matrix) -> None:
        """``True`` is 1 to Python; a numeric parameter given a bool is a mistake to name."""
        numeric = [
            name
            for name, dist in type(self.make()).search_space().items()
            if not isinstance(dist, optuna.distributions.CategoricalDistribution)
        ]
        for name in numeric:
            with pytest.raises(TypeError, match=f"`{name}` .* must be a number, not a bool"):
                self.make().set_params(**{name: True}).fit(user_items)


def check_recommender(make: Callable[[], BaseRecommender]) -> None:
    """Run every contract check outside pytest; raises ``AssertionError`` on failure."""
    contract = type("Contract", (RecommenderContract,), {"make": staticmethod(make)})()
    for name in dir(contract):
        if not name.startswith("test_"):
            continue
        check = getattr(contract, name)
        if "tmp_path" in inspect.signature(check).parameters:
            # Stands in for pytest's ``tmp_path`` fixture.
            with tempfile.TemporaryDirectory() as folder:
                check(make_user_items(), Path(folder))
        else:
            check(make_user_items())


def _lowest(dist: Any) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[0]
    return dist.low


def _highest(dist: Any) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[-1]
    return dist.high
