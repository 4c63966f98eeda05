"""Meta-features: numbers that describe a dataset and its users for the meta-model."""

from metarec_classic.metafeatures._dataset import (
    dataset_feature_names,
    dataset_metafeatures,
    gini,
    normalised_entropy,
)
from metarec_classic.metafeatures._user import USER_FEATURE_NAMES, user_metafeatures

__all__ = [
    "USER_FEATURE_NAMES",
    "dataset_feature_names",
    "dataset_metafeatures",
    "gini",
    "normalised_entropy",
    "user_metafeatures",
]
