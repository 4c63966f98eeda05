"""Most-popular baseline: the same ranking, by training interaction count, for every user."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from metarec_classic.recommenders._base import BaseRecommender, shared_top_k

__all__ = ["MostPopularRecommender"]

_log = logging.getLogger(__name__)


class MostPopularRecommender(BaseRecommender):
    """Recommend the items with the most training interactions, unpersonalised.

    Every user gets the same ranking: items ordered by how many users interacted with
    them in the training data, ties broken by the lower item index. With
    ``exclude_seen=True`` each user's own items are skipped. It is the baseline every
    personalised model must beat, and strong on data dominated by a few hits.

    The model has no hyperparameters, so its search space is empty and its default
    configuration is ``{}``.

    Attributes
    ----------
    popularity_ : ndarray of shape (n_items,)
        Training interaction count of each item (the number of users with a non-zero
        entry), as float32.
    user_items_ : sparse matrix of shape (n_users, n_items)
        Training matrix, used to exclude seen items.
    item_popularity_ : ndarray of shape (n_items,)
        Same counts, as kept by every recommender for the cold-user fallback.
    effective_config_ : dict
        Always ``{}``.

    See Also
    --------
    UserKNNRecommender : Personalised neighbourhood model.
    EASERecommender : Strong linear item-item model.

    Notes
    -----
    Interaction strengths are ignored: an item bought ten times by one user counts once.
    Use the counts, not the scores, when comparing lists between fits: the score of an
    item is its count.

    References
    ----------
    .. [1] P. Cremonesi, Y. Koren and R. Turrin, "Performance of recommender algorithms on
       top-N recommendation tasks", Proc. RecSys, 2010.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from metarec_classic.recommenders import MostPopularRecommender
    >>> user_items = sp.csr_matrix(
    ...     [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0]], dtype="float32"
    ... )
    >>> model = MostPopularRecommender().fit(user_items)
    >>> ids, scores = model.recommend([1], k=2)
    >>> ids.tolist(), scores.tolist()
    ([[0, 2]], [[1.0, 1.0]])
    """

    name: ClassVar[str] = "most_popular"

    def __init__(self) -> None:
        pass

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Return the Optuna search space, which is empty: the model has no hyperparameters."""
        return {}

    def _fit(self, user_items: sp.csr_matrix) -> None:
        self.popularity_ = self.item_popularity_.copy()
        _log.debug("Most-popular: counted %d items.", self.popularity_.size)

    def _recommend_batch(
        self, users: np.ndarray, history: sp.csr_matrix, k: int, exclude_seen: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        return shared_top_k(
            self.popularity_, k, n_rows=len(users), exclude=history if exclude_seen else None
        )
