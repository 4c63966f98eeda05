"""Build :class:`Interactions` from a DataFrame or a sparse matrix, checking every row."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from metarec_classic.data._interactions import Feedback, IdMap, Interactions, _as_id_array
from metarec_classic.data._report import DataReport
from metarec_classic.exceptions import DataError, InputConversionWarning

__all__ = ["from_dataframe", "from_sparse"]

DuplicateRule = Literal["sum", "last", "max", "mean"]


def from_dataframe(
    frame: pd.DataFrame,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    weight_col: str | None = None,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    feedback: Feedback | None = None,
    duplicates: DuplicateRule | None = None,
    name: str = "",
    report: DataReport | None = None,
) -> Interactions:
    """Build :class:`Interactions` from one row per (user, item) event.

    Parameters
    ----------
    frame : DataFrame
        The events.
    user_col, item_col : str
        Columns holding the original ids (any hashable type; see Notes).
    weight_col : str, optional
        Implicit strength (counts, 1 for binary). Without it and without ``rating_col``
        every row is a binary positive of weight 1.
    rating_col : str, optional
        Explicit rating. The matrix weight is then the rating, and the raw ratings are
        also kept in ``Interactions.ratings``.
    timestamp_col : str, optional
        Unix seconds (numbers) or anything :func:`pandas.to_datetime` parses.
    feedback : {"implicit", "explicit"}, optional
        Defaults to ``"explicit"`` when ``rating_col`` is given, else ``"implicit"``.
    duplicates : {"sum", "last", "max", "mean"}, optional
        How repeated (user, item) rows are merged. Default: ``"sum"`` of implicit
        weights (repeated events add up), ``"last"`` for explicit ratings (the latest
        by timestamp, else the last in input order, is the user's current opinion).
    name : str
        Name of the data set, for reports.
    report : DataReport, optional
        Report to add to (readers pass theirs so file-level problems are kept too).

    Returns
    -------
    Interactions

    Raises
    ------
    DataError
        Missing columns, no usable rows, or ids that cannot be used.

    Notes
    -----
    Rows are dropped, with a count in ``report`` and a
    :class:`~metarec_classic.exceptions.DataWarning`, when an id is missing, when a weight
    or rating is NaN or infinite, or when an implicit weight is negative or zero. When
    one id column mixes integers and strings, every id in it is converted to ``str``
    (``7`` and ``"7"`` become the same id) and the conversion is counted.
    """
    report = report if report is not None else DataReport(source=name or "DataFrame")
    value_col = rating_col or weight_col
    feedback = feedback or ("explicit" if rating_col else "implicit")
    needed = [c for c in (user_col, item_col, weight_col, rating_col, timestamp_col) if c]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"Columns {missing!r} are missing; the data has columns {list(frame.columns)!r}. "
            "Rename them or pass the right `user_col`, `item_col`, `rating_col`, "
            "`weight_col` or `timestamp_col`."
        )
    if len(frame) == 0:
        raise DataError(f"The data {report.source!r} has no rows; nothing to recommend from.")

    # Where a row came from, for messages: the frame's index label, which readers set to
    # the file's line number (and name "line").
    place = frame.index.name if isinstance(frame.index.name, str) else "row"
    labels = frame.index.to_numpy()
    frame = frame[needed].reset_index(drop=True)
    n_input = len(frame)

    # Missing ids cannot be mapped to a row or column.
    for col in (user_col, item_col):
        bad = frame[col].isna().to_numpy()
        first = labels[frame.index.to_numpy()[bad][0]] if bad.any() else None
        report.add(
            f"missing_{col}_dropped",
            int(bad.sum()),
            f"{int(bad.sum())} rows have no value in column {col!r} and were dropped "
            f"(first at {place} {first}).",
        )
        frame = frame.loc[~bad]

    # Values: numeric, finite, and for implicit feedback strictly positive.
    if value_col is not None:
        values = pd.to_numeric(frame[value_col], errors="coerce").to_numpy(dtype=np.float64)
        not_number = frame[value_col].notna().to_numpy() & np.isnan(values)
        report.add(
            f"non_numeric_{value_col}_dropped",
            int(not_number.sum()),
            f"{int(not_number.sum())} rows have a non-numeric {value_col!r} "
            f"(e.g. {frame[value_col].to_numpy()[not_number][:1].tolist()!r}) and were "
            "dropped; fix the column or choose another `rating_col` / `weight_col`.",
        )
        bad = ~np.isfinite(values) & ~not_number
        report.add(
            f"nonfinite_{value_col}_dropped",
            int(bad.sum()),
            f"{int(bad.sum())} rows have a NaN or infinite {value_col!r} and were dropped.",
        )
        keep = np.isfinite(values)
        if feedback == "implicit":
            nonpos = keep & (values <= 0)
            report.add(
                f"nonpositive_{value_col}_dropped",
                int(nonpos.sum()),
                f"{int(nonpos.sum())} rows have a zero or negative implicit weight in "
                f"{value_col!r} and were dropped; implicit weights must be > 0. If the "
                "column holds ratings, pass it as `rating_col` instead.",
            )
            keep &= ~nonpos
        frame = frame.loc[keep].assign(**{value_col: values[keep]})

    if timestamp_col is not None:
        frame = frame.assign(**{timestamp_col: _to_unix_seconds(frame[timestamp_col])})
        bad = frame[timestamp_col].isna().to_numpy()
        report.add(
            "bad_timestamp_dropped",
            int(bad.sum()),
            f"{int(bad.sum())} rows have a missing or unparsable {timestamp_col!r} and "
            "were dropped.",
        )
        frame = frame.loc[~bad]

    if len(frame) == 0:
        raise DataError(
            f"No usable rows are left in {report.source!r} out of {n_input}: "
            + "; ".join(report.messages.values())
        )

    user_codes, user_ids = _factorize_ids(frame[user_col], user_col, report)
    item_codes, item_ids = _factorize_ids(frame[item_col], item_col, report)
    values = (
        frame[value_col].to_numpy(dtype=np.float64)
        if value_col is not None
        else np.ones(len(frame), dtype=np.float64)
    )
    times = frame[timestamp_col].to_numpy(dtype=np.float64) if timestamp_col else None

    user_codes, item_codes, values, times = _merge_duplicates(
        user_codes,
        item_codes,
        values,
        times,
        rule=duplicates or ("last" if feedback == "explicit" else "sum"),
        report=report,
    )
    _check_not_degenerate(len(user_ids), len(item_ids), report)

    matrix = sp.csr_matrix(
        (values.astype(np.float32), (user_codes, item_codes)),
        shape=(len(user_ids), len(item_ids)),
    )
    # After the merge each (user, item) appears once and rows are sorted by (user, item),
    # so the CSR data order equals the row order and aligned arrays need no reordering.
    return Interactions(
        user_items=matrix,
        user_map=IdMap(user_ids),
        item_map=IdMap(item_ids),
        timestamps=times,
        ratings=values.astype(np.float32) if rating_col else None,
        feedback=feedback,
        name=name,
        report=report,
    )


def from_sparse(
    matrix: Any,
    *,
    user_ids: Any = None,
    item_ids: Any = None,
    feedback: Feedback = "implicit",
    name: str = "",
) -> Interactions:
    """Build :class:`Interactions` from a users × items scipy sparse matrix.

    Any sparse format and numeric dtype is accepted; a non-CSR or non-float32 matrix is
    converted with an :class:`~metarec_classic.exceptions.InputConversionWarning`.
    Explicit zeros are removed and counted; NaN, infinite and (for implicit feedback)
    negative entries are removed and counted.
    """
    if not sp.issparse(matrix):
        raise TypeError(
            f"`matrix` must be a scipy sparse matrix; got {type(matrix).__name__}. Use "
            "`scipy.sparse.csr_matrix(array)` for a dense array."
        )
    report = DataReport(source=name or "sparse matrix")
    if matrix.format != "csr" or matrix.dtype != np.float32:
        warnings.warn(
            f"Converted a {matrix.format.upper()} matrix of {matrix.dtype} to CSR float32.",
            InputConversionWarning,
            stacklevel=2,
        )
    csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    csr.sum_duplicates()
    data = csr.data
    bad = ~np.isfinite(data)
    report.add(
        "nonfinite_weight_dropped",
        int(bad.sum()),
        f"{int(bad.sum())} NaN or infinite entries were dropped.",
    )
    zero = data == 0
    report.add(
        "explicit_zero_dropped",
        int(zero.sum()),
        f"{int(zero.sum())} explicitly stored zeros were dropped.",
        warn=False,
    )
    drop = bad | zero
    if feedback == "implicit":
        neg = data < 0
        report.add(
            "nonpositive_weight_dropped",
            int(neg.sum()),
            f"{int(neg.sum())} negative implicit weights were dropped; implicit "
            "weights must be > 0.",
        )
        drop |= neg
    csr.data[drop] = 0
    csr.eliminate_zeros()
    n_users, n_items = csr.shape
    if csr.nnz == 0:
        raise DataError(f"The matrix {report.source!r} has no usable entries.")
    _check_not_degenerate(n_users, n_items, report)
    return Interactions(
        user_items=csr.astype(np.float32),
        user_map=IdMap(np.arange(n_users) if user_ids is None else user_ids),
        item_map=IdMap(np.arange(n_items) if item_ids is None else item_ids),
        ratings=csr.data.astype(np.float32) if feedback == "explicit" else None,
        feedback=feedback,
        name=name,
        report=report,
    )


def _factorize_ids(column: pd.Series, col: str, report: DataReport) -> tuple[np.ndarray, Any]:
    """Codes 0..n-1 and the distinct original ids, in order of first appearance."""
    values = column.to_numpy(dtype=object) if column.dtype == object else column.to_numpy()
    if values.dtype == object or str(column.dtype) in ("string", "str"):
        values = np.asarray(values, dtype=object)
        is_int = np.fromiter(
            (isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values),
            dtype=bool,
            count=len(values),
        )
        is_float = np.fromiter(
            (isinstance(v, (float, np.floating)) for v in values), dtype=bool, count=len(values)
        )
        if is_float.any():
            raise DataError(
                f"Column {col!r} holds float ids (e.g. {values[is_float][0]!r}); ids must be "
                "integers or strings. Read the column with `dtype=str` or cast it to int."
            )
        if is_int.any() and not is_int.all():
            report.add(
                f"mixed_{col}_types_converted",
                int(is_int.sum()),
                f"Column {col!r} mixes integer and string ids; {int(is_int.sum())} integer "
                "ids were converted to strings so every id has one type. Cast the column "
                "yourself to choose otherwise.",
            )
            values = np.array([str(v) for v in values], dtype=object)
        elif is_int.all():
            values = values.astype(np.int64)
    elif values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if np.all(finite == np.round(finite)):
            report.add(
                f"float_{col}_converted",
                len(values),
                f"Column {col!r} was read as floats; its whole-number ids were converted "
                "to integers.",
                warn=False,
            )
            values = values.astype(np.int64)
        else:
            raise DataError(
                f"Column {col!r} holds non-integer numbers (e.g. "
                f"{values[values != np.round(values)][0]!r}); ids must be integers or "
                "strings."
            )
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), _as_id_array(np.asarray(uniques))


def _merge_duplicates(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    times: np.ndarray | None,
    *,
    rule: DuplicateRule,
    report: DataReport,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Sort by (user, item) and merge repeated pairs by ``rule``; count what was merged."""
    # Stable order: by user, item, then time (or input order), so "last" is well defined.
    keys = [np.arange(len(users))] if times is None else [np.arange(len(users)), times]
    order = np.lexsort((*keys, items, users))
    users, items, values = users[order], items[order], values[order]
    times = None if times is None else times[order]

    new_pair = np.ones(len(users), dtype=bool)
    new_pair[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    n_merged = int(len(users) - new_pair.sum())
    if n_merged == 0:
        return users, items, values, times

    starts = np.flatnonzero(new_pair)
    ends = np.append(starts[1:], len(users)) - 1
    if rule == "sum":
        merged = np.add.reduceat(values, starts)
    elif rule == "max":
        merged = np.maximum.reduceat(values, starts)
    elif rule == "mean":
        merged = np.add.reduceat(values, starts) / np.diff(np.append(starts, len(users)))
    elif rule == "last":
        merged = values[ends]
    else:
        raise ValueError(f"`duplicates` must be 'sum', 'last', 'max' or 'mean'; got {rule!r}.")
    report.add(
        "duplicate_rows_merged",
        n_merged,
        f"{n_merged} rows repeated an earlier (user, item) pair and were merged into it by "
        f"the rule {rule!r}; pass `duplicates=` to choose another rule.",
    )
    return users[starts], items[starts], merged, None if times is None else times[ends]


def _check_not_degenerate(n_users: int, n_items: int, report: DataReport) -> None:
    """Refuse data with one user or one item: no recommender can rank anything there."""
    if n_users < 2 or n_items < 2:
        raise DataError(
            f"The data {report.source!r} has {n_users} user(s) and {n_items} item(s); "
            "recommending needs at least 2 of each. Check the separator and the id columns."
        )


def _to_unix_seconds(column: pd.Series) -> pd.Series:
    """Numbers pass through as seconds; strings and datetimes are parsed to seconds."""
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(np.float64)
    parsed = pd.to_datetime(column, errors="coerce", utc=True)
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds
