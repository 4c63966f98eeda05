"""Read interaction files (CSV, TSV, space-separated, ``::``) into :class:`Interactions`.

The reader works on raw bytes so that every problem can be reported with its line
number: bytes that are not valid in the file's encoding, rows with the wrong number of
fields and values that are not numbers are all counted in ``Interactions.report``
together with the first line where they occur.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from metarec_classic.data._builders import DuplicateRule, from_dataframe
from metarec_classic.data._interactions import Feedback, Interactions
from metarec_classic.data._report import DataReport
from metarec_classic.exceptions import DataError

__all__ = ["EncodingErrors", "read_interactions"]

_log = logging.getLogger(__name__)

EncodingErrors = Literal["strict", "replace", "skip"]

#: Column roles a field can take; any other field is ignored.
ROLES = ("user_id", "item_id", "rating", "weight", "timestamp")

#: Separators tried, in this order, when ``sep`` is not given. ``" "`` stands for any run
#: of whitespace.
_SEP_CANDIDATES = ("::", "\t", ",", ";", "|", " ")

#: Header names (lower case, without ``_``, ``-`` and spaces) and the role they stand for.
_HEADER_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        ("user", "userid", "users", "visitorid", "reviewerid", "customerid", "uid"), "user_id"
    ),
    **dict.fromkeys(
        (
            "item",
            "itemid",
            "items",
            "movie",
            "movieid",
            "artistid",
            "asin",
            "productid",
            "bookid",
            "isbn",
            "iid",
        ),
        "item_id",
    ),
    **dict.fromkeys(("rating", "ratings", "score", "stars", "overall"), "rating"),
    **dict.fromkeys(
        ("weight", "count", "counts", "event", "accessed", "plays", "playcount", "clicks"),
        "weight",
    ),
    **dict.fromkeys(("timestamp", "time", "date", "datetime", "unixtime", "ts"), "timestamp"),
}

_CANONICAL_INT = r"-?(?:0|[1-9][0-9]*)"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SNIFF_LINES = 50
#: Characters of a line quoted in an error message (a line can be megabytes long).
_SHOWN_CHARS = 80


@dataclass
class _Table:
    """Fields of an interaction file, one standard column per role."""

    frame: pd.DataFrame
    value_role: str | None
    has_timestamp: bool


def read_interactions(
    path: str | os.PathLike[str],
    *,
    sep: str | None = None,
    header: bool | None = None,
    columns: Sequence[str | None] | None = None,
    encoding: str = "utf-8",
    encoding_errors: EncodingErrors = "strict",
    feedback: Feedback | None = None,
    duplicates: DuplicateRule | None = None,
    positive_threshold: float | None = None,
    name: str | None = None,
) -> Interactions:
    r"""Read a delimited interaction file, one (user, item) event per line.

    Parameters
    ----------
    path : str or path-like
        The file. A gzip-compressed file (recognised by its first bytes) is
        decompressed first.
    sep : str, optional
        Field separator: ``","``, ``"\t"``, ``";"``, ``"|"``, ``"::"`` or ``" "`` (any run
        of whitespace). When not given it is sniffed from the first 50 non-blank lines:
        the first of ``"::"``, tab, ``","``, ``";"``, ``"|"`` that occurs in every one of
        them and splits them into at least two fields wins; otherwise whitespace.
    header : bool, optional
        Whether the first line holds column names. When not given, the first line is a
        header if at least two of its fields are known column names (``userId``,
        ``item``, ``rating``, ``timestamp``, ...), or if a field that is a number on the
        following lines is not a number on the first line. A first line read as data
        that could be names all the same (no numbers in it, and its user and item never
        come back) is counted in the report as ``first_line_read_as_data``.
    columns : sequence of str or None, optional
        The role of every field, in file order: ``"user_id"``, ``"item_id"``,
        ``"rating"``, ``"weight"``, ``"timestamp"``, or ``None`` to ignore the field.
        For example ``["item_id", "user_id", "rating", "timestamp"]`` for a file that
        lists the item first. By default the roles come from the header names, or by
        position: ``user_id, item_id[, value[, timestamp]]``. A header that names some
        fields but not both the user and the item is refused (by position, the item
        could be read as the user); one that names no field is read by position and
        counted in the report as ``header_taken_by_position``.
    encoding : str, default="utf-8"
        Text encoding of the file.
    encoding_errors : {"strict", "replace", "skip"}, default="strict"
        What to do with lines holding bytes that are not valid in ``encoding``: raise a
        :class:`DataError` naming the first such line, replace the bad bytes (the ids on
        those lines may then change), or drop those lines. Replaced or dropped lines are
        counted in the report.
    feedback : {"implicit", "explicit"}, optional
        Whether the third column is an explicit rating or an implicit weight (a count).
        By default a column named like a weight (``weight``, ``count``, ``event``, ...)
        is implicit and any other value column is an explicit rating. With only two
        columns every line is a binary implicit positive.
    duplicates : {"sum", "last", "max", "mean"}, optional
        How repeated (user, item) lines are merged; see :func:`from_dataframe`.
    positive_threshold : float, optional
        When given, keep only entries whose value is at least this and give them
        weight 1 (see :meth:`Interactions.binarize`). By default every value is kept.
    name : str, optional
        Name of the data set; defaults to the file name.

    Returns
    -------
    Interactions

    Raises
    ------
    DataError
        The file is empty, undecodable (with ``encoding_errors="strict"``), has no
        separator that can be detected, or has no usable rows.

    Notes
    -----
    Ids are read as strings and become ``int64`` only when every id of the column is
    a canonical integer (no sign other than ``-``, no leading zeros, within the
    ``int64`` range). So ``"0104257"`` stays the string ``"0104257"`` and
    ``9223372036854775807`` round-trips exactly. Rows with a different number of
    fields than the rest of the file, with a value that is not a number, or with an
    empty id are dropped and counted, with the first line number, in
    ``Interactions.report``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ratings.tsv"
    >>> _ = path.write_text("u1\ti1\t5\nu1\ti2\t3\nu2\ti1\t4\n")
    >>> data = read_interactions(path)
    >>> data.n_users, data.n_items, data.feedback
    (2, 2, 'explicit')
    """
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"The file {source!r} does not exist; check `path` (relative paths are "
            f"resolved against {os.getcwd()!r})."
        ) from None
    report = DataReport(source=source, hold_warnings=True)
    try:
        table = _read_table(
            raw,
            source=source,
            sep=sep,
            header=header,
            columns=columns,
            encoding=encoding,
            encoding_errors=encoding_errors,
            feedback=feedback,
            report=report,
        )
        data = _table_to_interactions(
            table,
            feedback=feedback,
            duplicates=duplicates,
            name=name if name is not None else path.name,
            report=report,
        )
    finally:
        # Also when reading failed: an error about one problem must not hide the others.
        report.release_warnings()
    if positive_threshold is not None:
        data = binarize_or_refuse(data, positive_threshold)
    return data


# -- internals shared with the dataset loaders -------------------------------------------
def _read_table(
    raw: bytes,
    *,
    source: str,
    sep: str | None = None,
    header: bool | None = None,
    columns: Sequence[str | None] | None = None,
    encoding: str = "utf-8",
    encoding_errors: EncodingErrors = "strict",
    feedback: Feedback | None = None,
    report: DataReport,
) -> _Table:
    """Decode, split and type the fields of one interaction file."""
    # Arguments first: a wrong one is refused before a large file is decoded.
    if encoding_errors not in ("strict", "replace", "skip"):
        raise ValueError(
            f"`encoding_errors` must be 'strict', 'replace' or 'skip'; got {encoding_errors!r}."
        )
    if header is not None and not isinstance(header, bool):
        raise TypeError(
            f"`header` must be True, False or None (guess); got {header!r}. On the command "
            "line it is --header yes/no/auto."
        )
    if isinstance(columns, str):
        raise TypeError(
            f"`columns` must be a list of names, e.g. ['user_id', 'item_id', 'rating']; got "
            f"the string {columns!r}. On the command line it is one comma-separated string."
        )
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if not raw.strip():
        raise DataError(
            f"The file {source!r} is empty; it must hold one `user item [value "
            "[timestamp]]` line per interaction."
        )
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"Unknown encoding {encoding!r} for {source!r}; pass one Python knows, e.g. "
            '`encoding="utf-8"`, `"latin-1"` or `"cp1252"`.'
        ) from None

    # Decode into numbered lines, dealing with undecodable bytes line by line.
    lines, numbers = _decode_lines(raw, source, encoding, encoding_errors, report)
    if not lines:
        raise DataError(f"The file {source!r} has no non-blank lines left to read.")

    # Separator and header.
    sample = lines[:_SNIFF_LINES]
    if sep is None:
        sep = _sniff_sep(sample, source)
    elif not sep:
        raise ValueError(f"`sep` must be a non-empty string; got {sep!r}.")
    rows = _split(lines, sep)
    if header is None:
        header = _sniff_header(rows[:_SNIFF_LINES])
        if not header and _may_be_names(rows[:_SNIFF_LINES]):
            report.add(
                "first_line_read_as_data",
                1,
                f"The first line of {source!r} ({sep.join(rows[0])}) was read as an "
                "interaction: none of its fields is a known column name, and no column is "
                "numeric to tell names from values. If it names the columns, pass "
                "`header=True` or name them user_id, item_id, ...",
            )
    header_fields = rows[0] if header else None
    if header:
        rows, numbers = rows[1:], numbers[1:]
        if not rows:
            raise DataError(f"The file {source!r} has a header line but no data lines.")

    # Roles of the fields, then drop rows with the wrong number of fields.
    roles = _resolve_roles(columns, header_fields, rows, feedback, source, report)
    rows, numbers = _drop_bad_field_counts(rows, numbers, len(roles), source, sep, report)

    # Typed columns.
    data: dict[str, object] = {}
    number_array = np.asarray(numbers, dtype=np.int64)
    keep = np.ones(len(rows), dtype=bool)
    value_role: str | None = None
    has_timestamp = False
    for position, role in enumerate(roles):
        if role is None:
            continue
        values = [row[position].strip() for row in rows]
        if role in ("user_id", "item_id"):
            ids = _typed_ids(values, role)
            _count_numeric_lookalikes(ids, role, source, report)
            data[role] = ids
        elif role in ("rating", "weight"):
            numeric, bad = _to_float(values)
            _count_bad(bad, number_array, role, source, report)
            keep &= ~bad
            data[role] = numeric
            value_role = role
        else:
            data[role] = _typed_timestamps(values)
            has_timestamp = True
    # Indexed by line number, so that later messages can point into the file.
    frame = pd.DataFrame(data, index=pd.Index(number_array, name="line"))
    if not keep.all():
        frame = frame.loc[keep]
    return _Table(frame=frame, value_role=value_role, has_timestamp=has_timestamp)


def _table_to_interactions(
    table: _Table,
    *,
    feedback: Feedback | None,
    duplicates: DuplicateRule | None,
    name: str,
    report: DataReport,
) -> Interactions:
    """Hand the typed columns to :func:`from_dataframe`."""
    if len(table.frame) == 0:
        # The error quotes every message; warning them as well would say it all twice.
        report.discard_held_warnings()
        raise DataError(
            f"No usable rows are left in {report.source!r}: "
            + ("; ".join(report.messages.values()) or "the file has no data lines.")
        )
    role = table.value_role
    if feedback is None:
        feedback = "explicit" if role == "rating" else "implicit"
    return from_dataframe(
        table.frame,
        user_col="user_id",
        item_col="item_id",
        rating_col="rating" if role == "rating" else None,
        weight_col="weight" if role == "weight" else None,
        timestamp_col="timestamp" if table.has_timestamp else None,
        feedback=feedback,
        duplicates=duplicates,
        name=name,
        report=report,
    )


def _decode_lines(
    raw: bytes,
    source: str,
    encoding: str,
    errors: EncodingErrors,
    report: DataReport,
) -> tuple[list[str], list[int]]:
    """Split ``raw`` into decoded, non-blank lines and their 1-based line numbers."""
    # Line breaks can be found in the raw bytes only where they are single ASCII bytes.
    ascii_compatible = "\n".encode(encoding, errors="ignore") == b"\n"
    if ascii_compatible and b"\n" not in raw and b"\r" in raw:
        # Old Mac files end lines with a carriage return alone; read them as newlines.
        n_breaks = raw.count(b"\r")
        raw = raw.replace(b"\r", b"\n")
        report.add(
            "carriage_returns_read_as_newlines",
            n_breaks,
            f"{source!r} ends its lines with a carriage return alone (old Mac style); its "
            f"{n_breaks} carriage returns were read as line breaks.",
        )
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        first_line = raw[: exc.start].count(b"\n") + 1
        if errors == "strict" or not ascii_compatible:
            raise DataError(
                f"The file {source!r} has bytes that are not valid {encoding} on line "
                f"{first_line} ({raw[exc.start : exc.start + 4]!r}); pass the file's real "
                'encoding (e.g. `encoding="latin-1"`) or `encoding_errors="replace"` / '
                '`"skip"` to replace or drop such lines.'
            ) from None
        lines, numbers = [], []
        n_bad = 0
        for number, chunk in enumerate(raw.split(b"\n"), start=1):
            try:
                line = chunk.decode(encoding)
            except UnicodeDecodeError:
                n_bad += 1
                if errors == "skip":
                    continue
                line = chunk.decode(encoding, errors="replace")
            lines.append(line)
            numbers.append(number)
        action = "dropped" if errors == "skip" else "replaced"
        what = "those lines were dropped" if errors == "skip" else "bad bytes became U+FFFD"
        report.add(
            f"invalid_bytes_{action}",
            n_bad,
            f"{n_bad} lines of {source!r} have bytes that are not valid {encoding} (first on "
            f"line {first_line}) and {what}; pass the file's real encoding (e.g. "
            '`encoding="latin-1"`) to keep them intact.',
        )
    else:
        lines = text.split("\n")
        numbers = list(range(1, len(lines) + 1))
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]

    # Blank lines carry no data; those inside the file are counted, the final ones not.
    kept = [(line.rstrip("\r"), n) for line, n in zip(lines, numbers, strict=True) if line.strip()]
    last_data = max((n for _, n in kept), default=0)
    inner_blank = sum(
        1 for line, n in zip(lines, numbers, strict=True) if not line.strip() and n < last_data
    )
    report.add(
        "blank_lines_skipped",
        inner_blank,
        f"{inner_blank} blank lines inside {source!r} were skipped.",
        warn=False,
    )
    return [line for line, _ in kept], [n for _, n in kept]


def _sniff_sep(sample: list[str], source: str) -> str:
    """The first candidate separator that splits every sampled line into ≥ 2 fields."""
    for candidate in _SEP_CANDIDATES:
        if candidate == " ":
            if all(len(line.split()) >= 2 for line in sample):
                return candidate
        elif all(candidate in line for line in sample):
            counts = Counter(len(line.split(candidate)) for line in sample)
            if counts.most_common(1)[0][0] >= 2:
                return candidate
    first = sample[0]
    shown = repr(first[:_SHOWN_CHARS]) + (
        f" ... ({len(first)} characters)" if len(first) > _SHOWN_CHARS else ""
    )
    # Text that is mostly outside ASCII was most likely decoded with the wrong encoding.
    garbled = sum(not char.isascii() for char in first[:1000]) > 0.3 * min(len(first), 1000)
    raise DataError(
        f"Could not detect the field separator of {source!r} (first line {shown}); "
        'pass `sep=` explicitly, e.g. `sep=","` or `sep="\\t"`'
        + (
            ". The line looks garbled: check the file's encoding (`encoding=`) first."
            if garbled
            else "."
        )
    )


def _split(lines: list[str], sep: str) -> list[list[str]]:
    """Split every line into fields; commas honour double quotes."""
    if sep == " ":
        return [line.split() for line in lines]
    if sep == "," and any('"' in line for line in lines[:1000]):
        return [list(fields) for fields in csv.reader(lines)]
    return [line.split(sep) for line in lines]


def _sniff_header(sample: list[list[str]]) -> bool:
    """Guess whether the first sampled row holds column names (see `read_interactions`)."""
    first, rest = sample[0], sample[1:]
    known = sum(_normalise(name) in _HEADER_ALIASES for name in first)
    if known >= 2:  # also a file of one line: a header without data is an error, not data
        return True
    if not rest:
        return False
    for position, name in enumerate(first):
        later = [row[position] for row in rest if len(row) > position]
        if not later:
            continue
        later_numeric = all(_NUMBER.fullmatch(v.strip()) for v in later)
        if later_numeric and not _NUMBER.fullmatch(name.strip()):
            return True
    return False


def _may_be_names(sample: list[list[str]]) -> bool:
    """Whether a first row read as data could be column names after all.

    It could when none of its fields is a number and its first two values (a user and
    an item, by position) appear nowhere else in their columns of the sample.
    """
    first, rest = sample[0], sample[1:]
    if len(first) < 2 or not rest or any(_NUMBER.fullmatch(v.strip()) for v in first):
        return False
    return all(
        all(len(row) <= position or row[position] != first[position] for row in rest)
        for position in (0, 1)
    )


def _resolve_roles(
    columns: Sequence[str | None] | None,
    header_fields: list[str] | None,
    rows: list[list[str]],
    feedback: Feedback | None,
    source: str,
    report: DataReport,
) -> list[str | None]:
    """The role of every field position."""
    if columns is not None:
        roles = [c or None for c in columns]
        unknown = [c for c in roles if c is not None and c not in ROLES]
        if unknown:
            raise ValueError(
                f"`columns` holds unknown roles {unknown!r}; use {list(ROLES)!r} or None "
                "for fields to ignore."
            )
        missing = [c for c in ("user_id", "item_id") if c not in roles]
        if missing:
            raise DataError(f"`columns` must name the fields {missing!r}; got {list(columns)!r}.")
        if "rating" in roles and "weight" in roles:
            raise ValueError("`columns` may hold 'rating' or 'weight', not both.")
        return roles

    if header_fields is not None:
        named = [_HEADER_ALIASES.get(_normalise(name)) for name in header_fields]
        value_names = [r for r in named if r in ("rating", "weight")]
        if "user_id" in named and "item_id" in named and len(value_names) <= 1:
            roles = [r if named.count(r) == 1 else None for r in named]
            return [_value_role(r, feedback) for r in roles]
        missing = [r for r in ("user_id", "item_id") if r not in named]
        if any(named):
            # Taking the other fields by position could silently read the item as the
            # user (``sku,customer,rating``) or a rating as an item.
            problem = (
                f"no {' and no '.join(missing)} column"
                if missing
                else "more than one value column (rating and weight)"
            )
            raise DataError(
                f"The header of {source!r} ({', '.join(header_fields)}) names "
                f"{', '.join(sorted({r for r in named if r}))} but has {problem}. Fix the "
                "header, or say which field is which with `columns=` (e.g. "
                "columns=['user_id', 'item_id', 'rating'])."
            )
        report.add(
            "header_taken_by_position",
            1,
            f"The header of {source!r} ({', '.join(header_fields)}) names no known column, "
            "so the fields are taken by position: user, item, then rating and timestamp. "
            "If that is wrong, say which field is which with `columns=` (e.g. "
            "columns=['item_id', 'user_id', 'rating']).",
        )
        n_fields = len(header_fields)
    else:
        n_fields = Counter(len(row) for row in rows[:1000]).most_common(1)[0][0]

    positional: list[str | None] = ["user_id", "item_id", "rating", "timestamp"]
    if n_fields < 2 or n_fields > len(positional):
        raise DataError(
            f"{source!r} has {n_fields} fields per line; pass `columns=` to say which field "
            "is the user, the item, the value and the timestamp (None for the others)."
        )
    return [_value_role(r, feedback) for r in positional[:n_fields]]


def _value_role(role: str | None, feedback: Feedback | None) -> str | None:
    """Map a value column to "rating" or "weight" following ``feedback``."""
    if role not in ("rating", "weight") or feedback is None:
        return role
    return "rating" if feedback == "explicit" else "weight"


def _drop_bad_field_counts(
    rows: list[list[str]],
    numbers: list[int],
    expected: int,
    source: str,
    sep: str,
    report: DataReport,
) -> tuple[list[list[str]], list[int]]:
    """Drop and count rows whose field count differs from ``expected``."""
    good = [len(row) == expected for row in rows]
    n_bad = len(good) - sum(good)
    if n_bad == 0:
        return rows, numbers
    first = next(i for i, ok in enumerate(good) if not ok)
    if n_bad == len(rows):
        raise DataError(
            f"No line of {source!r} has the expected {expected} fields (line "
            f"{numbers[first]} has {len(rows[first])} when split by {sep!r}); pass the "
            "right `sep=` or `columns=`."
        )
    report.add(
        "wrong_field_count_dropped",
        n_bad,
        f"{n_bad} lines of {source!r} do not have {expected} fields and were dropped (first "
        f"on line {numbers[first]}, with {len(rows[first])} fields); fix those lines or "
        "pass the right `sep=`.",
    )
    kept_rows = [row for row, ok in zip(rows, good, strict=True) if ok]
    kept_numbers = [n for n, ok in zip(numbers, good, strict=True) if ok]
    return kept_rows, kept_numbers


def _typed_ids(values: list[str], role: str) -> np.ndarray:
    """Ids as int64 when every one is a canonical integer, else as strings (None = empty)."""
    series = pd.Series(values, dtype=object)
    empty = series == ""
    present = series[~empty]
    if len(present) and bool(present.str.fullmatch(_CANONICAL_INT).all()):
        try:
            ints = np.fromiter((int(v) for v in present), dtype=np.int64, count=len(present))
        except OverflowError:
            _log.info("Column %r holds integers beyond int64; its ids are kept as strings.", role)
        else:
            if not empty.any():
                return ints
            out = np.full(len(values), None, dtype=object)
            out[~empty.to_numpy()] = ints.astype(object)
            return out
    text_ids: np.ndarray = series.to_numpy(dtype=object).copy()
    text_ids[empty.to_numpy()] = None
    return text_ids


def _count_numeric_lookalikes(ids: np.ndarray, role: str, source: str, report: DataReport) -> None:
    """Count text ids that equal another id as a number (``001`` and ``1``, ``1.0`` and ``1``).

    Such ids stay distinct (an id is its text), but they usually mean one user or item
    written two ways by an export, so the reader says so.
    """
    if ids.dtype != object:
        return
    text = pd.Series(sorted({v for v in ids if isinstance(v, str)}), dtype=object)
    numeric = text[text.str.fullmatch(_NUMBER.pattern)]
    if numeric.empty:
        return
    # Exact values: as floats, integers beyond 2**53 would seem to equal their neighbours.
    values = numeric.map(Decimal)
    repeated = values.duplicated(keep=False)
    if not repeated.any():
        return
    examples = numeric[repeated].groupby(values[repeated]).agg(list).iloc[0][:2]
    n_ids = int(repeated.sum())
    report.add(
        f"{role}_numeric_lookalikes",
        n_ids,
        f"{n_ids} distinct {role} values of {source!r} equal another one as a number (e.g. "
        f"{examples[0]!r} and {examples[1]!r}); they are kept as different ids. If they are "
        "the same, write them one way in the file.",
    )


def _to_float(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse numbers; return the floats and a mask of non-empty fields that are not numbers.

    Empty fields and spellings such as ``nan`` or ``inf`` parse to non-finite floats and
    are left to :func:`from_dataframe`, which counts them.
    """
    series = pd.Series(values, dtype=object)
    numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    lowered = series.str.lower().str.lstrip("+-")
    spelled_nan = lowered.isin(("nan", "inf", "infinity", "")).to_numpy()
    bad = np.isnan(numeric) & ~spelled_nan
    return numeric, bad


def _count_bad(
    bad: np.ndarray, numbers: np.ndarray, role: str, source: str, report: DataReport
) -> None:
    """Count rows whose ``role`` field is not a number."""
    if not bad.any():
        return
    report.add(
        f"non_numeric_{role}_dropped",
        int(bad.sum()),
        f"{int(bad.sum())} lines of {source!r} have a {role} that is not a number and were "
        f"dropped (first on line {int(numbers[bad][0])}); fix them or pass `columns=` if "
        "the fields are in another order.",
    )


def _typed_timestamps(values: list[str]) -> np.ndarray:
    """Numbers as float seconds; anything else is kept as text for date parsing."""
    numeric = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    if numeric.notna().all():
        seconds: np.ndarray = numeric.to_numpy(dtype=np.float64)
        return seconds
    return np.asarray(values, dtype=object)


def _normalise(name: str) -> str:
    """Lower-case a header name and drop ``_``, ``-``, spaces and quotes."""
    return re.sub(r"[\s_\-\"']", "", name).lower()


def binarize_or_refuse(data: Interactions, threshold: float) -> Interactions:
    """``data.binarize(threshold)``, refused when it would leave no positive at all."""
    positives = data.binarize(threshold)
    if positives.n_interactions or not data.n_interactions:
        return positives
    name = data.name or "The data"
    if data.ratings is None and np.all(data.user_items.data == 1):
        raise DataError(
            f"{name} has no rating column (every interaction has weight 1), so "
            f"`positive_threshold={threshold:g}` would drop all {data.n_interactions} "
            "interactions. Leave the threshold out, or name the rating column in `columns`."
        )
    values = data.ratings if data.ratings is not None else data.user_items.data
    raise DataError(
        f"No rating of {name} reaches the threshold {threshold:g} (they range from "
        f"{float(np.min(values)):g} to {float(np.max(values)):g}), so no positive is left. "
        "Pass a lower `positive_threshold`."
    )
