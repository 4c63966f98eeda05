"""RP3beta: three-step random-walk item similarity with a popularity penalty."""

from __future__ import annotations

import logging
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import optuna
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval

from metarec_classic.recommenders._base import BaseRecommender
from metarec_classic.recommenders._classic_common import (
    fill_unscored_rows,
    rows_per_block,
    top_k_per_row,
)
from metarec_classic.recommenders._common import clamp_n_neighbors

__all__ = ["RP3betaRecommender"]

_log = logging.getLogger(__name__)


class RP3betaRecommender(BaseRecommender):
    """RP3beta: item-item similarity from random walks on the user-item graph.

    A walk from item ``i`` goes to a random user who interacted with ``i``, then to a
    random item ``j`` of that user. The transition probabilities ``P_iu`` and ``P_uj``
    (rows of the interaction matrix and its transpose, normalised to sum to one) are
    raised to ``alpha``, their product gives the weight of ``i → j``, and that weight
    is divided by ``popularity(j) ** beta`` so that popular items do not dominate every
    list. Each item keeps its ``n_neighbors`` strongest successors. A user with history
    row ``r`` scores the items by ``r W``, so new histories are served without refitting.

    Parameters
    ----------
    alpha : float, default=0.7
        Exponent of the transition probabilities; below 1 flattens them, above 1
        sharpens them. ``alpha=1, beta=0`` is the plain three-step walk (P³).
    beta : float, default=0.5
        Popularity penalty: weights towards item ``j`` are divided by its number of
        training users to the power ``beta``.
    n_neighbors : int, default=300
        Weights kept per item (the strongest). Clamped to ``n_items - 1`` (with a logged
        warning) on smaller data.

    Attributes
    ----------
    similarity_ : sparse matrix of shape (n_items, n_items)
        The item-item weights ``W`` (CSR float32), at most ``n_neighbors`` per row and
        none on the diagonal.
    user_items_ : sparse matrix of shape (n_users, n_items)
        Training matrix (CSR float32).
    item_popularity_ : ndarray of shape (n_items,)
        Training interaction count of each item.
    effective_config_ : dict
        ``alpha``, ``beta`` and ``n_neighbors`` as used after clamping.

    See Also
    --------
    EASERecommender : Dense linear item-item model, often slightly more accurate on
        small catalogues.
    UserKNNRecommender : User-based neighbourhood model.

    Notes
    -----
    The weights are computed a block of items at a time as a sparse product, then pruned
    to the top ``n_neighbors``, so the model's memory grows with
    ``n_items × n_neighbors``. An item is not its own neighbour. Interaction strengths
    enter the transition probabilities as they are; binarise the data first to weigh
    every interaction alike. Users whose items have no neighbours are ranked by
    popularity.

    References
    ----------
    .. [1] B. Paudel, F. Christoffel, C. Newell and A. Bernstein, "Updatable, accurate,
       diverse, and scalable recommendations for interactive applications", ACM Trans.
       Interactive Intelligent Systems 7(1), 2016.
    .. [2] F. Christoffel, B. Paudel, C. Newell and A. Bernstein, "Blockbusters and
       wallflowers: accurate, diverse, and scalable recommendations with random walks",
       Proc. RecSys, 2015.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from metarec_classic.recommenders import RP3betaRecommender
    >>> user_items = sp.csr_matrix(
    ...     [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1]], dtype="float32"
    ... )
    >>> model = RP3betaRecommender(n_neighbors=2).fit(user_items)
    >>> model.similarity_.shape
    (4, 4)
    >>> ids, _ = model.recommend([0], k=1)
    >>> ids.tolist()
    [[2]]
    """

    name: ClassVar[str] = "rp3beta"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, alpha: float = 0.7, *, beta: float = 0.5, n_neighbors: int = 300) -> None:
        self.alpha = alpha
        self.beta = beta
        self.n_neighbors = n_neighbors

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Return the Optuna search space.

        ``alpha`` from 0 to 2, ``beta`` from 0 to 1 and ``n_neighbors`` from 5 to 1000
        (log scale).
        """
        return {
            "alpha": optuna.distributions.FloatDistribution(0.0, 2.0),
            "beta": optuna.distributions.FloatDistribution(0.0, 1.0),
            "n_neighbors": optuna.distributions.IntDistribution(5, 1000, log=True),
        }

    def _clamp_to_data(self, user_items: sp.csr_matrix) -> dict[str, Any]:
        config = super()._clamp_to_data(user_items)
        config["n_neighbors"] = clamp_n_neighbors(self, user_items.shape[1] - 1, "other items")
        return config

    def _fit(self, user_items: sp.csr_matrix) -> None:
        config = self.effective_config_
        n_items = user_items.shape[1]

        # Transition probabilities user → item and item → user, raised to alpha.
        user_to_item = _row_stochastic(user_items, config["alpha"])
        item_to_user = _row_stochastic(sp.csr_matrix(user_items.T), config["alpha"])

        # Popularity penalty on the destination item; items nobody has get no weight.
        popularity = self.item_popularity_.astype(np.float64)
        penalty = np.zeros(n_items)
        np.power(popularity, -config["beta"], out=penalty, where=popularity > 0)

        # Three-step weights a block of source items at a time, pruned to the top.
        blocks = []
        step = rows_per_block(n_items)
        for start in range(0, n_items, step):
            stop = min(start + step, n_items)
            block = sp.csr_matrix(item_to_user[start:stop] @ user_to_item)
            block.sum_duplicates()
            rows = np.repeat(np.arange(start, stop), np.diff(block.indptr))
            block.data *= penalty[block.indices]
            block.data[block.indices == rows] = 0.0
            blocks.append(top_k_per_row(block, config["n_neighbors"]))
        self.similarity_ = sp.vstack(blocks, format="csr")
        _log.debug("RP3beta: %d item weights kept.", self.similarity_.nnz)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray((history @ self.similarity_).toarray(), dtype=np.float32)
        return fill_unscored_rows(scores, self.item_popularity_)


def _row_stochastic(matrix: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Rows scaled to sum to one (empty rows stay empty), entries raised to ``alpha``."""
    result = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    result.eliminate_zeros()
    sums = np.asarray(result.sum(axis=1), dtype=np.float64).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    result.data *= np.repeat(scale, np.diff(result.indptr))
    if alpha != 1.0:
        np.power(result.data, alpha, out=result.data)
    return result
