"""Meta-features: numbers that describe a dataset (and later its users) for the meta-model."""

from metarec_classic.metafeatures._dataset import (
    dataset_feature_names,
    dataset_metafeatures,
    gini,
    normalised_entropy,
)

__all__ = ["dataset_feature_names", "dataset_metafeatures", "gini", "normalised_entropy"]
