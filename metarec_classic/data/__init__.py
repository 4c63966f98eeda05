"""Interaction data: the :class:`Interactions` container, id maps, readers and splits."""

from metarec_classic.data._builders import from_dataframe, from_sparse
from metarec_classic.data._interactions import Feedback, IdMap, Interactions
from metarec_classic.data._report import DataReport

__all__ = [
    "DataReport",
    "Feedback",
    "IdMap",
    "Interactions",
    "from_dataframe",
    "from_sparse",
]
