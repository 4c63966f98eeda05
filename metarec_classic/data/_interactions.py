"""The :class:`Interactions` container: a user × item matrix with its id maps."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from metarec_classic.data._report import DataReport
from metarec_classic.exceptions import DataError

__all__ = ["Feedback", "IdMap", "Interactions"]

Feedback = Literal["implicit", "explicit"]


class IdMap:
    """Bidirectional map between original ids and contiguous indices ``0..n-1``.

    Original ids keep their type: strings stay strings (``"0104257"`` keeps its leading
    zero), integers are stored as ``int64`` and round-trip exactly.

    Parameters
    ----------
    ids : array-like of shape (n,)
        Distinct original ids; position ``i`` holds the id of index ``i``.
    """

    def __init__(self, ids: Any) -> None:
        array = _as_id_array(ids)
        index = pd.Index(array)
        if not index.is_unique:
            dup = index[index.duplicated()][:3].tolist()
            raise DataError(f"Id map values must be distinct; got repeated ids {dup!r}.")
        self.ids: np.ndarray = array
        self._index = index

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        return len(self) == len(other) and bool(np.all(self.ids == other.ids))

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)}, dtype={self.ids.dtype})"

    def to_index(self, ids: Any, *, missing: int = -1) -> np.ndarray:
        """Return the indices of ``ids``; ids that are not in the map get ``missing``.

        Integer-like strings are not matched against integer ids (and vice versa):
        ``"7"`` and ``7`` are different ids, as they were in the input.
        """
        raw = np.atleast_1d(np.asarray(ids, dtype=object))
        found = np.full(len(raw), -1, dtype=np.int64)
        # Each id is matched on its own: one id of another type must not hide the rest.
        is_int = np.fromiter(
            (isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in raw),
            dtype=bool,
            count=len(raw),
        )
        if self.ids.dtype.kind in "iu":
            if is_int.any():
                found[is_int] = self._index.get_indexer(raw[is_int].astype(np.int64))
        else:
            text = ~is_int
            if text.any():
                found[text] = self._index.get_indexer(
                    np.array([str(v) for v in raw[text]], dtype=object)
                )
        if missing != -1:
            found[found < 0] = missing
        return found

    def to_ids(self, indices: Any) -> np.ndarray:
        """Return the original ids of ``indices``; raise on indices outside the map."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            bad = idx[(idx < 0) | (idx >= len(self))][:3].tolist()
            raise IndexError(
                f"Indices {bad!r} are outside the id map of size {len(self)}; padding "
                "entries (-1) of a recommendation list must be removed before mapping."
            )
        return self.ids[idx]


@dataclass
class Interactions:
    """Users × items interaction data with the maps back to the original ids.

    Parameters
    ----------
    user_items : sparse matrix of shape (n_users, n_items)
        CSR, float32, canonical (sorted indices, no duplicate entries). Values are the
        weights a model trains on: 1 for binary feedback, a count, or a rating.
    user_map : IdMap
        Original user id of every row.
    item_map : IdMap
        Original item id of every column.
    timestamps : ndarray of shape (nnz,), optional
        Unix seconds of each stored entry, aligned with ``user_items.data``.
    ratings : ndarray of shape (nnz,), optional
        Raw explicit rating of each stored entry, aligned with ``user_items.data``.
    feedback : {"implicit", "explicit"}
        Whether the raw values are explicit ratings or implicit signals.
    name : str
        Short name of the data set, for reports.
    report : DataReport
        What was dropped, merged or converted while building this object.
    seen_nonpositive : sparse matrix of shape (n_users, n_items), optional
        Entries the users interacted with that are not positives, such as the ratings
        below the positive threshold that :meth:`binarize` takes out: no model trains on
        them, and :class:`~metarec_classic.MetaRecommender` never recommends them (a
        movie rated one star is no candidate). CSR with value 1 per entry.

    Notes
    -----
    Arrays aligned with ``user_items.data`` stay aligned because ``user_items`` is kept
    canonical; every method that builds a new matrix also re-slices them.
    """

    user_items: sp.csr_matrix
    user_map: IdMap
    item_map: IdMap
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    feedback: Feedback = "implicit"
    name: str = ""
    report: DataReport = field(default_factory=DataReport)
    seen_nonpositive: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        m = self.user_items
        if not sp.isspmatrix_csr(m) and not isinstance(m, sp.csr_array):
            raise TypeError(f"`user_items` must be CSR; got {type(m).__name__}.")
        if m.shape != (len(self.user_map), len(self.item_map)):
            raise DataError(
                f"`user_items` has shape {m.shape} but the id maps have "
                f"{len(self.user_map)} users and {len(self.item_map)} items."
            )
        for label, arr in (("timestamps", self.timestamps), ("ratings", self.ratings)):
            if arr is not None and len(arr) != m.nnz:
                raise DataError(f"`{label}` has {len(arr)} values but `user_items` stores {m.nnz}.")
        seen = self.seen_nonpositive
        if seen is not None and (not sp.issparse(seen) or seen.shape != m.shape):
            raise DataError(
                f"`seen_nonpositive` must be a sparse matrix of the shape of `user_items` "
                f"{m.shape}; got {getattr(seen, 'shape', type(seen).__name__)}."
            )

    # -- sizes -------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return int(self.user_items.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns)."""
        return int(self.user_items.shape[1])

    @property
    def n_interactions(self) -> int:
        """Number of stored (user, item) entries."""
        return int(self.user_items.nnz)

    @property
    def density(self) -> float:
        """Share of the users × items matrix that is filled."""
        cells = self.n_users * self.n_items
        return self.n_interactions / cells if cells else 0.0

    @property
    def user_ids(self) -> np.ndarray:
        """Original user ids, one per row."""
        return self.user_map.ids

    @property
    def item_ids(self) -> np.ndarray:
        """Original item ids, one per column."""
        return self.item_map.ids

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, n_users={self.n_users}, "
            f"n_items={self.n_items}, n_interactions={self.n_interactions}, "
            f"feedback={self.feedback!r})"
        )

    # -- conversions -------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """Return one row per stored entry: user_id, item_id, weight [, rating, timestamp]."""
        coo = self.user_items.tocoo()
        frame = pd.DataFrame(
            {
                "user_id": self.user_map.ids[coo.row],
                "item_id": self.item_map.ids[coo.col],
                "weight": coo.data,
            }
        )
        if self.ratings is not None:
            frame["rating"] = self.ratings
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        return frame

    def select_entries(self, mask: np.ndarray) -> Interactions:
        """Return a copy that keeps the stored entries where ``mask`` is true.

        ``mask`` is aligned with ``user_items.data``. The id maps are kept whole, so the
        result has the same shape and the same users and items as ``self``.
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.n_interactions,):
            raise DataError(f"`mask` must have shape ({self.n_interactions},); got {mask.shape}.")
        m = self.user_items
        row_of_entry = np.repeat(np.arange(self.n_users), np.diff(m.indptr))
        kept = sp.csr_matrix(
            (m.data[mask], m.indices[mask], _indptr_from_rows(row_of_entry[mask], self.n_users)),
            shape=m.shape,
        )
        return replace(
            self,
            user_items=kept,
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            ratings=None if self.ratings is None else self.ratings[mask],
            report=DataReport(source=self.report.source),
        )

    def with_weights(self, weights: np.ndarray) -> Interactions:
        """Return a copy whose matrix values are ``weights`` (aligned with the entries)."""
        m = self.user_items
        new = sp.csr_matrix(
            (np.asarray(weights, dtype=np.float32), m.indices.copy(), m.indptr.copy()),
            shape=m.shape,
        )
        return replace(self, user_items=new)

    def binarize(self, threshold: float | None = None) -> Interactions:
        """Return implicit positives: entries whose rating is at least ``threshold``.

        The kept entries get weight 1. Entries below the threshold are removed from the
        matrix (counted in the report under ``"below_threshold_dropped"``) and kept in
        ``seen_nonpositive``; the id maps are kept. With ``threshold=None`` every entry
        becomes a positive of weight 1.
        """
        values = self.ratings if self.ratings is not None else self.user_items.data
        keep = np.ones(self.n_interactions, dtype=bool)
        if threshold is not None:
            keep = values >= threshold
        result = self.select_entries(keep) if not keep.all() else replace(self)
        result = result.with_weights(np.ones(result.n_interactions, dtype=np.float32))
        result.seen_nonpositive = self._seen_with(~keep)
        result.report = DataReport(source=self.report.source)
        result.report.merge(self.report)
        result.report.add(
            "below_threshold_dropped",
            int((~keep).sum()),
            f"{int((~keep).sum())} interactions with a rating below {threshold} were dropped "
            "as non-positive (and are never recommended back); pass "
            "`positive_threshold=None` to keep every interaction.",
            warn=False,
        )
        return result

    def drop_nonpositive_weights(self) -> Interactions:
        """Return the data without the entries whose weight is zero or negative (counted).

        Ratings kept as weights (no threshold) must be positive to act as weights: a rating
        of -3 on a -10..10 scale would otherwise count as a (weak) positive.
        """
        keep = self.user_items.data > 0
        if keep.all():
            return self
        result = self.select_entries(keep)
        result.seen_nonpositive = self._seen_with(~keep)
        result.report = DataReport(source=self.report.source)
        result.report.merge(self.report)
        n_dropped = int((~keep).sum())
        result.report.add(
            "nonpositive_weights_dropped",
            n_dropped,
            f"{n_dropped} interactions have a zero or negative rating, which cannot be kept as "
            "a weight; they were dropped (and are never recommended back). Pass "
            "`positive_threshold=` to keep only ratings at or above a threshold, as "
            "positives of weight 1.",
        )
        return result

    def _seen_with(self, entries: np.ndarray) -> sp.csr_matrix | None:
        """``seen_nonpositive`` plus the stored entries where ``entries`` is true."""
        if not entries.any():
            return self.seen_nonpositive
        m = self.user_items
        row_of_entry = np.repeat(np.arange(self.n_users), np.diff(m.indptr))
        dropped = sp.csr_matrix(
            (
                np.ones(int(entries.sum()), dtype=np.float32),
                (row_of_entry[entries], m.indices[entries]),
            ),
            shape=m.shape,
        )
        if self.seen_nonpositive is not None:
            dropped = dropped + self.seen_nonpositive
            dropped.data[:] = 1.0
        dropped.sort_indices()
        return dropped


def _indptr_from_rows(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Row pointer of a CSR matrix whose entries belong to the (sorted) ``rows``."""
    counts = np.bincount(rows, minlength=n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def _as_id_array(ids: Any) -> np.ndarray:
    """Return ids as int64 when they are all integers, else as an object array of str.

    Mixed integer and string ids are not silently unified here: the readers decide and
    report that conversion, so this only normalises already-consistent ids.
    """
    array = np.asarray(ids)
    if array.dtype.kind in "iu":
        if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
            return array.astype(object)
        return array.astype(np.int64)
    if array.dtype.kind == "b":
        raise DataError("Ids must be integers or strings; got booleans.")
    if array.dtype.kind == "f":
        raise DataError(
            "Ids must be integers or strings; got floats. Read the id column as str or "
            "int (e.g. `dtype={'user_id': str}`)."
        )
    if array.dtype.kind == "O" and array.size:
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in array):
            try:
                return array.astype(np.int64)
            except OverflowError:
                return array
        return np.array([str(v) for v in array], dtype=object)
    return array.astype(object)
