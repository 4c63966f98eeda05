"""Base recommenders behind one scikit-learn style interface, one module per family.

Use :func:`make_recommender` with an algorithm name (``"als"``, ``"itemknn"``, ...) or
import a class directly.
"""

from metarec_classic.recommenders._als import ALSRecommender
from metarec_classic.recommenders._base import BaseRecommender, check_positive_weights, top_k
from metarec_classic.recommenders._bpr import BPRRecommender
from metarec_classic.recommenders._ease import EASERecommender
from metarec_classic.recommenders._itemknn import ItemKNNRecommender
from metarec_classic.recommenders._lmf import LMFRecommender
from metarec_classic.recommenders._nmf import NMFRecommender
from metarec_classic.recommenders._persist import (
    RecommenderFileError,
    load_recommender,
    save_recommender,
)
from metarec_classic.recommenders._popularity import MostPopularRecommender
from metarec_classic.recommenders._registry import (
    ALGORITHM_NAMES,
    get_recommender_class,
    make_recommender,
)
from metarec_classic.recommenders._rp3beta import RP3betaRecommender
from metarec_classic.recommenders._svd import PureSVDRecommender
from metarec_classic.recommenders._userknn import UserKNNRecommender

__all__ = [
    "ALGORITHM_NAMES",
    "ALSRecommender",
    "BPRRecommender",
    "BaseRecommender",
    "EASERecommender",
    "ItemKNNRecommender",
    "LMFRecommender",
    "MostPopularRecommender",
    "NMFRecommender",
    "PureSVDRecommender",
    "RP3betaRecommender",
    "RecommenderFileError",
    "UserKNNRecommender",
    "check_positive_weights",
    "get_recommender_class",
    "load_recommender",
    "make_recommender",
    "save_recommender",
    "top_k",
]
