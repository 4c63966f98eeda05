"""Interaction data: the :class:`Interactions` container, id maps, readers and splits."""

from metarec_classic.data._builders import from_dataframe, from_sparse
from metarec_classic.data._datasets import (
    DATASETS,
    DatasetInfo,
    load_dataset,
    load_item_titles,
    locate_dataset,
)
from metarec_classic.data._interactions import Feedback, IdMap, Interactions
from metarec_classic.data._readers import read_interactions
from metarec_classic.data._report import DataReport
from metarec_classic.data._splits import (
    Split,
    leave_last_k_out_split,
    random_holdout_split,
    temporal_split,
    validation_split,
)

__all__ = [
    "DATASETS",
    "DataReport",
    "DatasetInfo",
    "Feedback",
    "IdMap",
    "Interactions",
    "Split",
    "from_dataframe",
    "from_sparse",
    "leave_last_k_out_split",
    "load_dataset",
    "load_item_titles",
    "locate_dataset",
    "random_holdout_split",
    "read_interactions",
    "temporal_split",
    "validation_split",
]
