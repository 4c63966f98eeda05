"""Base recommenders behind one scikit-learn style interface, one module per family.

Use :func:`make_recommender` with an algorithm name (``"als"``, ``"itemknn"``, ...) or
import a class directly.
"""

from metarec_classic.recommenders._base import BaseRecommender, top_k
from metarec_classic.recommenders._registry import (
    ALGORITHM_NAMES,
    get_recommender_class,
    make_recommender,
)

__all__ = [
    "ALGORITHM_NAMES",
    "BaseRecommender",
    "get_recommender_class",
    "make_recommender",
    "top_k",
]
