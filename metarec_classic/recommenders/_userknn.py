"""User-based nearest neighbours with cosine similarity, shrinkage and an exponent."""

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

__all__ = ["UserKNNRecommender"]

_log = logging.getLogger(__name__)


class UserKNNRecommender(BaseRecommender):
    """User-based k-nearest-neighbours recommender with cosine similarity.

    A user's score for an item is the similarity-weighted sum of that item's entries in
    the histories of the user's ``n_neighbors`` most similar training users. Similarity
    is the cosine between the users' rows, optionally shrunk towards zero when the two
    users share little, and raised to ``exponent`` to favour the closest neighbours.

    Neighbours are found when recommending, from the histories passed to ``recommend``,
    so users with a new or updated history are served without refitting.

    Parameters
    ----------
    n_neighbors : int, default=100
        Number of most similar training users that vote for each user's items. Clamped
        to ``n_users - 1`` (with a logged warning) on smaller data.
    shrinkage : float, default=0.0
        Added to the denominator of the cosine, ``dot / (|u| |v| + shrinkage)``: pairs
        of users with short histories get lower similarity. ``0`` is the plain cosine.
    exponent : float, default=2.0
        Similarities are raised to this power before voting; above 1 the closest
        neighbours weigh more.

    Attributes
    ----------
    item_users_ : sparse matrix of shape (n_items, n_users)
        Transposed training matrix (CSR float32), for the batched similarity products.
    user_norms_ : ndarray of shape (n_users,)
        Euclidean norm of each training user's row.
    user_items_ : sparse matrix of shape (n_users, n_items)
        Training matrix (CSR float32); its rows are the neighbours' votes.
    item_popularity_ : ndarray of shape (n_items,)
        Training interaction count of each item.
    effective_config_ : dict
        ``n_neighbors``, ``shrinkage`` and ``exponent`` as used after clamping.

    See Also
    --------
    RP3betaRecommender : Item-based graph model, usually stronger and faster to serve.
    EASERecommender : Linear item-item model.

    Notes
    -----
    Similarities are computed for a batch of users against all training users at a time
    as a sparse product, keeping only the top ``n_neighbors`` of each row, so memory
    grows with the co-occurring pairs of a batch and never with ``n_users²``. Serving
    therefore costs a sparse product per batch; the fit only stores the matrix and its
    norms.

    A training user is never its own neighbour: the row with the user's own index is
    skipped. Users without any similar training user (for example, whose items nobody
    else has) are ranked by popularity instead of getting all-zero scores.

    References
    ----------
    .. [1] J. S. Breese, D. Heckerman and C. Kadie, "Empirical analysis of predictive
       algorithms for collaborative filtering", Proc. UAI, 1998.
    .. [2] J. L. Herlocker, J. A. Konstan, A. Borchers and J. Riedl, "An algorithmic
       framework for performing collaborative filtering", Proc. SIGIR, 1999.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from metarec_classic.recommenders import UserKNNRecommender
    >>> user_items = sp.csr_matrix(
    ...     [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]], dtype="float32"
    ... )
    >>> model = UserKNNRecommender(n_neighbors=1, shrinkage=0.0).fit(user_items)
    >>> ids, _ = model.recommend([0], k=1)
    >>> ids.tolist()
    [[2]]
    """

    name: ClassVar[str] = "userknn"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "shrinkage": [Interval(Real, 0, None, closed="left")],
        "exponent": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self, n_neighbors: int = 100, *, shrinkage: float = 0.0, exponent: float = 2.0
    ) -> None:
        self.n_neighbors = n_neighbors
        self.shrinkage = shrinkage
        self.exponent = exponent

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Return the Optuna search space.

        ``n_neighbors`` from 5 to 1000 (log scale), ``shrinkage`` from 0 to 200 and
        ``exponent`` from 0.5 to 4.
        """
        return {
            "n_neighbors": optuna.distributions.IntDistribution(5, 1000, log=True),
            "shrinkage": optuna.distributions.FloatDistribution(0.0, 200.0),
            "exponent": optuna.distributions.FloatDistribution(0.5, 4.0),
        }

    def _clamp_to_data(self, user_items: sp.csr_matrix) -> dict[str, Any]:
        config = super()._clamp_to_data(user_items)
        config["n_neighbors"] = clamp_n_neighbors(self, user_items.shape[0] - 1, "other users")
        return config

    def _fit(self, user_items: sp.csr_matrix) -> None:
        self.item_users_ = sp.csr_matrix(user_items.T)
        self.user_norms_ = _row_norms(user_items)
        _log.debug("UserKNN: stored %d users for neighbour search.", user_items.shape[0])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        n_users = self.user_items_.shape[0]
        step = rows_per_block(n_users)
        blocks = [
            self._neighbours(users[start : start + step], history[start : start + step])
            for start in range(0, len(users), step)
        ]
        weights = sp.vstack(blocks, format="csr")
        scores = np.asarray((weights @ self.user_items_).toarray(), dtype=np.float32)
        return fill_unscored_rows(scores, self.item_popularity_)

    def _neighbours(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix:
        """Top-``n_neighbors`` similarity rows (batch × n_users, sparse) for ``history``."""
        config = self.effective_config_

        # Dot products with every training user, kept sparse: most pairs share nothing.
        similarity = sp.csr_matrix(history @ self.item_users_, dtype=np.float64)
        similarity.sum_duplicates()
        rows = np.repeat(np.arange(similarity.shape[0]), np.diff(similarity.indptr))
        cols = similarity.indices

        # Cosine with shrinkage; stored entries have a non-zero dot, so both norms are > 0.
        similarity.data /= _row_norms(history)[rows] * self.user_norms_[cols] + config["shrinkage"]

        # A training user is not its own neighbour.
        similarity.data[cols == users[rows]] = 0.0

        np.maximum(similarity.data, 0.0, out=similarity.data)
        similarity.data **= config["exponent"]
        return top_k_per_row(similarity, config["n_neighbors"])


def _row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    """Euclidean norm of each row of a sparse matrix, in float64."""
    squared = matrix.multiply(matrix).sum(axis=1)
    return np.sqrt(np.asarray(squared, dtype=np.float64).ravel())
