"""PureSVD: a truncated SVD of the interaction matrix, scored by projection onto items."""

from __future__ import annotations

import logging
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import optuna
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.utils._param_validation import Interval

from metarec_classic._random import check_random_state, seed_from
from metarec_classic.recommenders._base import BaseRecommender
from metarec_classic.recommenders._classic_common import (
    blas_threads,
    fill_unscored_rows,
)
from metarec_classic.recommenders._common import (
    N_JOBS_CONSTRAINT,
    RANDOM_STATE_CONSTRAINT,
    clamp_n_factors,
)

__all__ = ["PureSVDRecommender"]

_log = logging.getLogger(__name__)


class PureSVDRecommender(BaseRecommender):
    """PureSVD: rank items by projecting a user's history onto the top singular vectors.

    The interaction matrix is factorised by a truncated SVD, ``user_items ≈ U Σ Vᵀ``,
    with missing entries treated as zeros. A user with history row ``r`` scores the
    items by ``r V Vᵀ``, the projection of the row onto the span of the item factors, so
    new or updated histories are served without refitting.

    Parameters
    ----------
    n_factors : int, default=20
        Number of singular vectors kept. Clamped below ``min(n_users, n_items)`` (with a
        logged warning) on smaller data.
    n_iter : int, default=7
        Power iterations of the randomized SVD solver; more iterations give more
        accurate factors at a proportional cost.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the randomized solver; fix it for reproducible factors.
    n_jobs : int or None, default=None
        Threads for BLAS during the fit and scoring (``None``: one, ``-1``: all cores).

    Attributes
    ----------
    item_factors_ : ndarray of shape (n_items, n_factors)
        Right singular vectors ``V`` (float32, orthonormal columns).
    singular_values_ : ndarray of shape (n_factors,)
        The matching singular values, largest first.
    user_items_ : sparse matrix of shape (n_users, n_items)
        Training matrix (CSR float32).
    item_popularity_ : ndarray of shape (n_items,)
        Training interaction count of each item.
    effective_config_ : dict
        ``n_factors`` and ``n_iter`` as used after clamping.

    See Also
    --------
    NMFRecommender : Non-negative factorisation.
    EASERecommender : Full-rank linear item-item model.

    Notes
    -----
    scikit-learn's :class:`~sklearn.decomposition.TruncatedSVD` with the randomized
    solver does the factorisation; the singular values are not used for scoring, as in
    the original method. Memory is ``O(n_items × n_factors)`` for the model, plus
    ``batch × n_items`` dense scores when recommending.

    References
    ----------
    .. [1] P. Cremonesi, Y. Koren and R. Turrin, "Performance of recommender algorithms on
       top-N recommendation tasks", Proc. RecSys, 2010.
    .. [2] N. Halko, P.-G. Martinsson and J. A. Tropp, "Finding structure with randomness:
       probabilistic algorithms for constructing approximate matrix decompositions",
       SIAM Review 53(2), 2011.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from metarec_classic.recommenders import PureSVDRecommender
    >>> user_items = sp.csr_matrix(
    ...     [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1]], dtype="float32"
    ... )
    >>> model = PureSVDRecommender(n_factors=2, random_state=0).fit(user_items)
    >>> model.item_factors_.shape
    (4, 2)
    >>> ids, _ = model.recommend([0], k=1)
    >>> ids.tolist()
    [[2]]
    """

    name: ClassVar[str] = "pure_svd"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_factors": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": RANDOM_STATE_CONSTRAINT,
        "n_jobs": N_JOBS_CONSTRAINT,
    }

    def __init__(
        self,
        n_factors: int = 20,
        *,
        n_iter: int = 7,
        random_state: int | np.random.Generator | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.n_factors = n_factors
        self.n_iter = n_iter
        self.random_state = random_state
        self.n_jobs = n_jobs

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Return the Optuna search space.

        ``n_factors`` from 4 to 512 (log scale) and ``n_iter`` from 2 to 15.
        """
        return {
            "n_factors": optuna.distributions.IntDistribution(4, 512, log=True),
            "n_iter": optuna.distributions.IntDistribution(2, 15),
        }

    def _clamp_to_data(self, user_items: sp.csr_matrix) -> dict[str, Any]:
        config = super()._clamp_to_data(user_items)
        config["n_factors"] = clamp_n_factors(self, user_items)
        return config

    def _fit(self, user_items: sp.csr_matrix) -> None:
        rng = check_random_state(self.random_state)
        svd = TruncatedSVD(
            n_components=self.effective_config_["n_factors"],
            algorithm="randomized",
            n_iter=self.effective_config_["n_iter"],
            random_state=seed_from(rng),
        )
        with blas_threads(self.n_jobs):
            svd.fit(user_items)
        self.item_factors_ = np.ascontiguousarray(svd.components_.T, dtype=np.float32)
        self.singular_values_ = svd.singular_values_.astype(np.float32)
        _log.debug("PureSVD: %d factors.", self.item_factors_.shape[1])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        with blas_threads(self.n_jobs):
            projected = np.asarray(history @ self.item_factors_, dtype=np.float32)
            scores = projected @ self.item_factors_.T
        return fill_unscored_rows(scores, self.item_popularity_)
