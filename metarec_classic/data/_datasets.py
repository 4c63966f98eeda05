"""Load the public recommender data sets the project develops on, and the embedded demo.

A data set is recognised by the files in its folder, not by the folder's name, so a copy
under any name loads the same way. A short name such as ``"ml-100k"`` is looked up in a
data root: the ``data_root`` argument, else the environment variable ``METAREC_DATA``,
else ``../shared/data`` relative to the current directory or to the repository.

Explicit ratings are turned into implicit positives by a per-data-set default threshold
(``rating >= threshold`` keeps the entry with weight 1, see
:meth:`Interactions.binarize`). The thresholds mark "liked" on each scale, i.e. about
the top 40 % of the scale (4 of 5 stars):

========================  =============  ==================  ========================
name                      family         raw feedback        default threshold
========================  =============  ==================  ========================
``ml-100k``               movielens      explicit 1–5        ``>= 4``
``ml-latest-small``       movielens      explicit 0.5–5      ``>= 4.0``
``movietweetings-100k``   movietweetings explicit 0–10       ``>= 8``
``demo``                  movietweetings explicit 0–10       ``>= 8``
``filmtrust``             filmtrust      explicit 0.5–4      ``>= 3.5``
``ciaodvd``               ciao           explicit 1–5        ``>= 4``
``douban-monti``          douban         explicit 1–5        ``>= 4``
``lastfm-hetrec-2k``      lastfm         implicit counts     none: play counts kept
``citeulike-a``           citeulike      implicit binary     none
``jester5k``              jester         explicit −10…10     ``>= 5.0``
``msweb``                 msweb          implicit binary     none
``amazon-magazine``       amazon         explicit 1–5        ``>= 4``
``coat``                  coat           explicit 1–5        ``>= 4``
``foursquare-sg``         foursquare     implicit counts     none: check-ins kept
``bookcrossing-caserec``  bookcrossing   implicit binary     none (``"ratings"``: 8)
``retailrocket-caserec``  retailrocket   implicit counts     none: event counts kept
========================  =============  ==================  ========================

Pass ``positive_threshold=<float>`` to use another threshold, or ``None`` to keep every
rating as the weight (``Interactions.ratings`` always holds the raw ratings of the kept
entries, and ``Interactions.feedback`` the raw kind).

How each data set is assembled (the counts are in the MANIFEST of the data folder):

- **douban-monti**: ``M`` of the HDF5 ``.mat`` file, transposed to users × items, at the
  entries of ``Otraining`` and ``Otest`` (variant ``"union"``, the default; or
  ``"train"`` / ``"test"``). Ids are 0-based row and column numbers. The one user
  without ratings does not appear.
- **jester5k**: the ``dgCMatrix`` inside the ``realRatingMatrix`` of ``Jester5k.rda``,
  read by a small built-in R-serialisation reader; ids are the row and column names
  (``"u7452"``, ``"j1"``). A stored 0 is a real rating.
- **msweb**: the training file only (variant ``"train"``); ``"test"`` reads the test
  file instead. The two files reuse case ids, so they are never merged.
- **amazon-magazine**: the file lists the item first. Repeated (user, item) rows keep the
  latest rating by timestamp.
- **coat**: train and test together (variant ``"union"``; or ``"train"`` / ``"test"``).
  The 366 pairs present in both files have the same rating in both; they are merged
  into one entry and counted as ``duplicate_rows_merged``.
- **foursquare-sg**: train and test together (or ``"train"`` / ``"test"``); the
  check-in count is the weight. The files share no pair.
- **bookcrossing-caserec**: variant ``"history"`` (default, ``book_history.dat``: every
  recorded user–book event, implicit) or ``"ratings"`` (``book_ratings.dat``, explicit
  1–10, default threshold 8).
- **retailrocket-caserec**: the view, add-to-cart and purchase files together (variant
  ``"union"``) or one of them (``"view"``, ``"add_to_cart"``, ``"purchase"``). A pair
  found in several files is merged by summing, so its weight is the number of event
  types (1–3) recorded for it.
- Within every other file, repeated (user, item) rows are merged by
  :func:`from_dataframe`'s default rule (latest rating for explicit data, sum for
  implicit) and counted in the report.
"""

from __future__ import annotations

import difflib
import gzip
import importlib.resources
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from metarec_classic.data._builders import DuplicateRule, from_dataframe
from metarec_classic.data._interactions import Feedback, Interactions
from metarec_classic.data._rda import RObject, read_rda
from metarec_classic.data._readers import (
    _read_table,
    _table_to_interactions,
    binarize_or_refuse,
    read_interactions,
)
from metarec_classic.data._report import DataReport
from metarec_classic.exceptions import DataError

__all__ = ["DATASETS", "DatasetInfo", "load_dataset", "load_item_titles"]

_log = logging.getLogger(__name__)

#: Environment variable naming the folder that holds the data sets.
DATA_ENV = "METAREC_DATA"

#: Where the demo files live inside the package.
_DEMO_FOLDER = "datasets/demo"


@dataclass(frozen=True)
class DatasetInfo:
    """What the loader knows about one data set.

    Attributes
    ----------
    name : str
        Short name, also the usual folder name.
    family : str
        Data sets from the same source share a family (both MovieLens sets are
        ``"movielens"``); evaluations that hold out a data set should hold out its family.
    domain : str
        What the items are.
    feedback : {"implicit", "explicit"}
        Raw kind of the default variant.
    default_threshold : float or None
        Ratings at or above this become positives by default; ``None`` keeps the values.
    markers : tuple of str
        Files (relative to the folder) whose presence identifies the data set.
    variants : tuple of str
        Alternative ways to assemble it; the first is the default.
    """

    name: str
    family: str
    domain: str
    feedback: Feedback
    default_threshold: float | None
    markers: tuple[str, ...]
    variants: tuple[str, ...] = ()

    def defaults_for(self, variant: str | None) -> tuple[Feedback, float | None]:
        """Raw feedback kind and default threshold of ``variant`` (None = the default)."""
        if self.name == "bookcrossing-caserec" and variant == "ratings":
            return "explicit", 8.0
        return self.feedback, self.default_threshold


def _info(
    name: str,
    family: str,
    domain: str,
    feedback: Feedback,
    threshold: float | None,
    markers: tuple[str, ...],
    variants: tuple[str, ...] = (),
) -> tuple[str, DatasetInfo]:
    return name, DatasetInfo(name, family, domain, feedback, threshold, markers, variants)


#: Every data set :func:`load_dataset` knows, by short name.
DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(
    dict(
        [
            _info("ml-100k", "movielens", "movies", "explicit", 4.0, ("u.data",)),
            _info("ml-latest-small", "movielens", "movies", "explicit", 4.0, ("ratings.csv",)),
            _info(
                "movietweetings-100k",
                "movietweetings",
                "movies",
                "explicit",
                8.0,
                ("ratings.dat", "movies.dat"),
            ),
            _info("demo", "movietweetings", "movies", "explicit", 8.0, ()),
            _info(
                "filmtrust", "filmtrust", "movies", "explicit", 3.5, ("ratings.txt", "trust.txt")
            ),
            _info("ciaodvd", "ciao", "dvds", "explicit", 4.0, ("movie-ratings.txt",)),
            _info(
                "douban-monti",
                "douban",
                "movies",
                "explicit",
                4.0,
                ("training_test_dataset.mat",),
                ("union", "train", "test"),
            ),
            _info("lastfm-hetrec-2k", "lastfm", "music", "implicit", None, ("user_artists.dat",)),
            _info(
                "citeulike-a",
                "citeulike",
                "articles",
                "implicit",
                None,
                ("users.dat", "citations.dat"),
            ),
            _info("jester5k", "jester", "jokes", "explicit", 5.0, ("Jester5k.rda",)),
            _info(
                "msweb",
                "msweb",
                "web areas",
                "implicit",
                None,
                ("anonymous-msweb.data",),
                ("train", "test"),
            ),
            _info(
                "amazon-magazine",
                "amazon",
                "magazines",
                "explicit",
                4.0,
                ("Magazine_Subscriptions.csv",),
            ),
            _info(
                "coat",
                "coat",
                "clothing",
                "explicit",
                4.0,
                ("train/ratings_1.txt", "test/ratings_0.txt"),
                ("union", "train", "test"),
            ),
            _info(
                "foursquare-sg",
                "foursquare",
                "places",
                "implicit",
                None,
                ("checkin/trainData.txt", "checkin/testData.txt"),
                ("union", "train", "test"),
            ),
            _info(
                "bookcrossing-caserec",
                "bookcrossing",
                "books",
                "implicit",
                None,
                ("book_ratings.dat", "book_history.dat"),
                ("history", "ratings"),
            ),
            _info(
                "retailrocket-caserec",
                "retailrocket",
                "e-commerce",
                "implicit",
                None,
                ("view_ecommerce.dat", "add_to_cart_ecommerce.dat", "purchase_ecommerce.dat"),
                ("union", "view", "add_to_cart", "purchase"),
            ),
        ]
    )
)

_ALIASES = {
    "movietweetings": "movietweetings-100k",
    "douban": "douban-monti",
    "lastfm": "lastfm-hetrec-2k",
    "citeulike": "citeulike-a",
    "jester": "jester5k",
    "bookcrossing": "bookcrossing-caserec",
    "retailrocket": "retailrocket-caserec",
    "foursquare": "foursquare-sg",
}


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    positive_threshold: float | Literal["default"] | None = "default",
    variant: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    **read_options: Any,
) -> Interactions:
    """Load a known data set, the embedded demo, or any interaction file.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"demo"`` (the MovieTweetings 100K snapshot shipped with the package); a short
        name from :data:`DATASETS` (``"ml-100k"``, ...), looked up in the data root; a
        folder holding one of those data sets, recognised by its files; or a single
        file: ``.mat`` (HDF5 matrices ``M``, ``Otraining``, ``Otest``), ``.rda`` (an R
        rating matrix), a UCI DST file, or any delimited file for
        :func:`read_interactions`.
    positive_threshold : float, "default" or None, default="default"
        ``"default"`` applies the data set's threshold from the table in this module
        (none for plain files); a float keeps the entries whose value is at least that,
        with weight 1; ``None`` keeps every value as the weight.
    variant : str, optional
        How to assemble a data set that has several files (see
        :attr:`DatasetInfo.variants`); by default its first variant.
    data_root : str or path-like, optional
        Folder holding the data sets; see the module docstring for the default.
    **read_options
        Passed on to :func:`read_interactions` for a plain delimited file
        (``sep``, ``columns``, ``encoding``, ...).

    Returns
    -------
    Interactions
        Named after the data set, with everything that was dropped or merged counted in
        its ``report``.

    Raises
    ------
    DataError
        The name is unknown, its folder is not found, or the files cannot be read.

    Examples
    --------
    >>> data = load_dataset("demo")
    >>> data.item_ids.dtype.kind, data.feedback
    ('O', 'explicit')
    """
    _check_threshold(positive_threshold)
    info: DatasetInfo | None = None
    name = os.fspath(name_or_path)
    candidate = Path(name)

    # Resolve what to read: the demo, a known name, a folder or a file.
    if name == "demo":
        info = DATASETS["demo"]
        data = _load_demo()
    elif candidate.is_file():
        _reject_options(read_options, allowed=candidate.suffix.lower() not in (".mat", ".rda"))
        data = _load_file(candidate, variant, read_options)
    else:
        _reject_options(read_options, allowed=False)
        if candidate.is_dir():
            folder = candidate
            info = DATASETS[_detect(folder)]
        else:
            info = _known(name)
            folder = _find_folder(info, data_root)
        data = _LOADERS[info.name](folder, _check_variant(info, variant))

    # Turn ratings into positives.
    threshold: float | None
    if positive_threshold == "default":
        threshold = info.defaults_for(variant)[1] if info is not None else None
    else:
        threshold = positive_threshold
    if threshold is not None:
        data = binarize_or_refuse(data, threshold)
    _log.info("Loaded %r from %s.", data, data.report.source)
    return data


def locate_dataset(
    name_or_path: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
) -> Path | None:
    """Where ``load_dataset(name_or_path)`` would read from, without reading anything.

    Returns the file or folder (``None`` for the embedded demo). Raises
    :class:`DataError`, with the same message ``load_dataset`` would give, when the name
    is unknown or its folder is not found; use it to check many names before a long job.
    """
    name = os.fspath(name_or_path)
    if name == "demo":
        return None
    candidate = Path(name)
    if candidate.is_file() or candidate.is_dir():
        return candidate
    return _find_folder(_known(name), data_root)


def load_item_titles(
    name_or_path: str | os.PathLike[str] = "demo",
    *,
    data_root: str | os.PathLike[str] | None = None,
) -> pd.Series:
    """Return the titles of the items of a movie data set, indexed by item id.

    Parameters
    ----------
    name_or_path : str or path-like, default="demo"
        ``"demo"``, ``"movietweetings-100k"``, ``"ml-100k"`` or ``"ml-latest-small"``, by
        name or by folder.
    data_root : str or path-like, optional
        As in :func:`load_dataset`.

    Returns
    -------
    Series
        Titles (with the year in brackets), indexed by item ids of the same type as
        :func:`load_dataset` gives (MovieTweetings ids are strings with leading zeros).
    """
    name = os.fspath(name_or_path)
    if name == "demo":
        raw = gzip.decompress(_demo_file("movies.dat.gz").read_bytes())
        return _titles_from_dat(raw, "demo")
    folder = Path(name)
    info = DATASETS[_detect(folder)] if folder.is_dir() else _known(name)
    if not folder.is_dir():
        folder = _find_folder(info, data_root)
    if info.name == "movietweetings-100k":
        return _titles_from_dat((folder / "movies.dat").read_bytes(), info.name)
    if info.name == "ml-100k":
        frame = pd.read_csv(
            folder / "u.item",
            sep="|",
            header=None,
            usecols=[0, 1],
            names=["item_id", "title"],
            encoding="latin-1",
        )
    elif info.name == "ml-latest-small":
        frame = pd.read_csv(folder / "movies.csv", usecols=["movieId", "title"])
        frame.columns = pd.Index(["item_id", "title"])
    else:
        raise DataError(
            f"No item titles are known for {info.name!r}; `name_or_path` must be one of "
            "'demo', 'movietweetings-100k', 'ml-100k' or 'ml-latest-small'."
        )
    return pd.Series(
        frame["title"].to_numpy(dtype=object),
        index=pd.Index(frame["item_id"].to_numpy(dtype=np.int64), name="item_id"),
        name="title",
    )


# -- resolution --------------------------------------------------------------------------
def _check_threshold(value: object) -> None:
    if value is None or value == "default":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(
            f"`positive_threshold` must be a finite number, 'default' or None; got {value!r}."
        )


def _reject_options(options: Mapping[str, Any], *, allowed: bool) -> None:
    known = set(inspect.signature(read_interactions).parameters) - {"path"}
    unknown = sorted(set(options) - known)
    if unknown:
        hints = {
            name: difflib.get_close_matches(name, [*known, "positive_threshold"], n=1)
            for name in unknown
        }
        said = "; ".join(f"did you mean `{h[0]}`?" for h in hints.values() if h)
        raise TypeError(
            f"load_dataset() has no option {unknown!r}"
            + (f" ({said})" if said else "")
            + f"; it takes `positive_threshold`, `variant`, `data_root` and the reading "
            f"options of read_interactions: {sorted(known)!r}."
        )
    if options and not allowed:
        raise TypeError(
            f"Reading options {sorted(options)!r} only apply to a plain delimited file; a "
            "known data set is read with its own fixed options."
        )


def _known(name: str) -> DatasetInfo:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise DataError(
            f"{name!r} is neither an existing file or folder nor a known "
            f"data set; use a path, or one of {sorted(DATASETS)!r}, which are read "
            f"from the folder in ${DATA_ENV} (or ../shared/data)."
        )
    return DATASETS[key]


def _data_roots(data_root: str | os.PathLike[str] | None) -> list[Path]:
    """Folders to look for data sets in, in order of preference."""
    if data_root is not None:
        return [Path(data_root)]
    roots = []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]))
    beside_cwd = Path.cwd().parent / "shared" / "data"
    beside_repository = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    roots.append(beside_cwd)
    if beside_repository.resolve() != beside_cwd.resolve():  # run from the repository
        roots.append(beside_repository)
    return roots


def _find_folder(info: DatasetInfo, data_root: str | os.PathLike[str] | None) -> Path:
    names = [info.name, *[alias for alias, target in _ALIASES.items() if target == info.name]]
    roots = _data_roots(data_root)
    for root in roots:
        for folder_name in names:
            folder = root / folder_name
            if folder.is_dir() and _matches(folder, info):
                return folder
    raise DataError(
        f"The data set {info.name!r} was not found in {[str(r) for r in roots]!r}; set the "
        f"environment variable {DATA_ENV} or pass `data_root=` to the folder that holds "
        f"a {info.name!r} folder with the files {list(info.markers)!r}."
    )


def _matches(folder: Path, info: DatasetInfo) -> bool:
    return bool(info.markers) and all((folder / marker).is_file() for marker in info.markers)


def _detect(folder: Path) -> str:
    """Name of the data set whose marker files are all in ``folder`` (most markers wins)."""
    found = [info for info in DATASETS.values() if _matches(folder, info)]
    if not found:
        raise DataError(
            f"The folder {str(folder)!r} holds none of the known data sets; pass one of "
            "its interaction files instead, or a folder laid out as described in "
            "`metarec_classic.data.DATASETS`."
        )
    return max(found, key=lambda info: len(info.markers)).name


def _check_variant(info: DatasetInfo, variant: str | None) -> str | None:
    if variant is None:
        return info.variants[0] if info.variants else None
    if variant not in info.variants:
        raise ValueError(
            f"`variant` must be one of {list(info.variants)!r} for {info.name!r}; got {variant!r}."
        )
    return variant


# -- loaders -----------------------------------------------------------------------------
def _read_union(
    folder: Path,
    files: list[str],
    *,
    name: str,
    feedback: Feedback,
    duplicates: DuplicateRule | None = None,
    **options: Any,
) -> Interactions:
    """Read delimited files with the same layout and merge them into one data set."""
    report = DataReport(source=str(folder))
    tables = [
        _read_table(
            (folder / file).read_bytes(), source=str(folder / file), report=report, **options
        )
        for file in files
    ]
    table = tables[0]
    if len(tables) > 1:
        table.frame = pd.concat([t.frame for t in tables], ignore_index=True)
    return _table_to_interactions(
        table, feedback=feedback, duplicates=duplicates, name=name, report=report
    )


def _load_demo() -> Interactions:
    raw = _demo_file("ratings.dat.gz").read_bytes()
    report = DataReport(source="demo")
    table = _read_table(raw, source="demo (ratings.dat.gz)", sep="::", header=False, report=report)
    return _table_to_interactions(
        table, feedback="explicit", duplicates=None, name="demo", report=report
    )


def _demo_file(name: str) -> Any:
    return importlib.resources.files("metarec_classic").joinpath(f"{_DEMO_FOLDER}/{name}")


def _load_file(path: Path, variant: str | None, options: dict[str, Any]) -> Interactions:
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _mat_matrix(path, variant or "union", name=path.stem)
    if suffix in (".rda", ".rdata"):
        return _rda_matrix(path, name=path.stem)
    with path.open("rb") as handle:
        head = handle.read(2)
    if head == b"I,":
        return _dst_file(path, name=path.name)
    return read_interactions(path, **options)


def _load_movietweetings(folder: Path, variant: str | None) -> Interactions:
    return _read_union(
        folder, ["ratings.dat"], name="movietweetings-100k", feedback="explicit", sep="::"
    )


def _load_ml100k(folder: Path, variant: str | None) -> Interactions:
    return _read_union(folder, ["u.data"], name="ml-100k", feedback="explicit", sep="\t")


def _load_ml_latest_small(folder: Path, variant: str | None) -> Interactions:
    return _read_union(
        folder, ["ratings.csv"], name="ml-latest-small", feedback="explicit", sep=",", header=True
    )


def _load_filmtrust(folder: Path, variant: str | None) -> Interactions:
    return _read_union(folder, ["ratings.txt"], name="filmtrust", feedback="explicit", sep=" ")


def _load_ciaodvd(folder: Path, variant: str | None) -> Interactions:
    return _read_union(
        folder,
        ["movie-ratings.txt"],
        name="ciaodvd",
        feedback="explicit",
        sep=",",
        header=False,
        columns=["user_id", "item_id", None, None, "rating", "timestamp"],
    )


def _load_lastfm(folder: Path, variant: str | None) -> Interactions:
    return _read_union(
        folder,
        ["user_artists.dat"],
        name="lastfm-hetrec-2k",
        feedback="implicit",
        sep="\t",
        header=True,
        columns=["user_id", "item_id", "weight"],
    )


def _load_amazon(folder: Path, variant: str | None) -> Interactions:
    return _read_union(
        folder,
        ["Magazine_Subscriptions.csv"],
        name="amazon-magazine",
        feedback="explicit",
        sep=",",
        header=False,
        columns=["item_id", "user_id", "rating", "timestamp"],
    )


def _load_coat(folder: Path, variant: str | None) -> Interactions:
    files = {"train": ["train/ratings_1.txt"], "test": ["test/ratings_0.txt"]}
    chosen = files.get(variant or "", files["train"] + files["test"])
    return _read_union(
        folder, chosen, name="coat", feedback="explicit", duplicates="last", sep=" ", header=False
    )


def _load_foursquare(folder: Path, variant: str | None) -> Interactions:
    files = {"train": ["checkin/trainData.txt"], "test": ["checkin/testData.txt"]}
    chosen = files.get(variant or "", files["train"] + files["test"])
    return _read_union(
        folder,
        chosen,
        name="foursquare-sg",
        feedback="implicit",
        duplicates="sum",
        sep=" ",
        header=False,
        columns=["user_id", "item_id", "weight"],
    )


def _load_bookcrossing(folder: Path, variant: str | None) -> Interactions:
    if variant == "ratings":
        return _read_union(
            folder,
            ["book_ratings.dat"],
            name="bookcrossing-caserec",
            feedback="explicit",
            sep="\t",
            header=True,
            columns=["user_id", "item_id", "rating"],
        )
    return _read_union(
        folder,
        ["book_history.dat"],
        name="bookcrossing-caserec",
        feedback="implicit",
        sep="\t",
        header=True,
        columns=["user_id", "item_id", "weight"],
    )


def _load_retailrocket(folder: Path, variant: str | None) -> Interactions:
    events = ["view", "add_to_cart", "purchase"]
    chosen = events if variant in (None, "union") else [str(variant)]
    return _read_union(
        folder,
        [f"{event}_ecommerce.dat" for event in chosen],
        name="retailrocket-caserec",
        feedback="implicit",
        duplicates="sum",
        sep="\t",
        header=True,
        columns=["user_id", "item_id", "weight"],
    )


def _load_douban(folder: Path, variant: str | None) -> Interactions:
    return _mat_matrix(
        folder / "training_test_dataset.mat", variant or "union", name="douban-monti"
    )


def _load_jester(folder: Path, variant: str | None) -> Interactions:
    return _rda_matrix(folder / "Jester5k.rda", name="jester5k")


def _load_msweb(folder: Path, variant: str | None) -> Interactions:
    file = "anonymous-msweb.test" if variant == "test" else "anonymous-msweb.data"
    return _dst_file(folder / file, name="msweb")


def _load_citeulike(folder: Path, variant: str | None) -> Interactions:
    """Expand ``users.dat``: line u = user u (0-based) = ``count item item ...``."""
    path = folder / "users.dat"
    report = DataReport(source=str(path))
    users: list[int] = []
    items: list[int] = []
    n_mismatch, first_mismatch = 0, 0
    text = path.read_text(encoding="ascii")
    for user, line in enumerate(text.splitlines()):
        fields = line.split()
        if not fields:
            continue
        listed = [int(v) for v in fields[1:]]
        if int(fields[0]) != len(listed):
            n_mismatch += 1
            first_mismatch = first_mismatch or user + 1
        users.extend([user] * len(listed))
        items.extend(listed)
    report.add(
        "adjacency_count_mismatch",
        n_mismatch,
        f"{n_mismatch} lines of {str(path)!r} list a different number of items than their "
        f"leading count (first on line {first_mismatch}); the listed items were used.",
    )
    frame = pd.DataFrame(
        {"user_id": np.asarray(users, dtype=np.int64), "item_id": np.asarray(items, np.int64)}
    )
    return from_dataframe(frame, feedback="implicit", name="citeulike-a", report=report)


def _mat_matrix(path: Path, variant: str, *, name: str) -> Interactions:
    """Ratings ``M`` at the entries of the ``Otraining`` / ``Otest`` masks (HDF5 .mat)."""
    import h5py

    report = DataReport(source=str(path))
    with h5py.File(path, "r") as handle:
        missing = [key for key in ("M", "Otraining", "Otest") if key not in handle]
        if missing:
            raise DataError(
                f"{str(path)!r} lacks the matrices {missing!r}; it must hold `M`, "
                "`Otraining` and `Otest` as in the sRMGCNN data files."
            )
        # h5py gives MATLAB arrays transposed; .T makes them users × items.
        ratings = np.asarray(handle["M"]).T
        masks = {key: np.asarray(handle[key]).T != 0 for key in ("Otraining", "Otest")}
    if variant == "train":
        mask = masks["Otraining"]
    elif variant == "test":
        mask = masks["Otest"]
    else:
        mask = masks["Otraining"] | masks["Otest"]
    rows, cols = np.nonzero(mask)
    values = ratings[rows, cols]
    frame = pd.DataFrame({"user_id": rows.astype(np.int64), "item_id": cols.astype(np.int64)})
    frame["rating"] = values
    unrated = values == 0
    report.add(
        "masked_zero_dropped",
        int(unrated.sum()),
        f"{int(unrated.sum())} entries of the masks in {str(path)!r} have no rating in `M` "
        "and were dropped.",
    )
    return from_dataframe(
        frame.loc[~unrated],
        rating_col="rating",
        feedback="explicit",
        name=name,
        report=report,
    )


def _rda_matrix(path: Path, *, name: str) -> Interactions:
    """The first rating matrix (``realRatingMatrix`` or ``dgCMatrix``) of an ``.rda`` file."""
    objects = read_rda(path)
    matrix: RObject | None = None
    for obj in objects.values():
        if "data" in obj.attributes and obj.attributes["data"].rtype == 25:
            obj = obj.attributes["data"]
        if {"i", "p", "x", "Dim"} <= obj.attributes.keys():
            matrix = obj
            break
    if matrix is None:
        raise DataError(
            f"{str(path)!r} holds no sparse rating matrix (objects {sorted(objects)!r}); "
            "save a recommenderlab `realRatingMatrix` or a Matrix `dgCMatrix`."
        )
    rows = np.asarray(matrix.slot("i"), dtype=np.int64)
    pointers = np.asarray(matrix.slot("p"), dtype=np.int64)
    cols = np.repeat(np.arange(len(pointers) - 1), np.diff(pointers))
    n_rows, n_cols = (int(v) for v in matrix.slot("Dim"))
    dimnames = matrix.attributes.get("Dimnames")
    row_names: Any = np.arange(n_rows)
    col_names: Any = np.arange(n_cols)
    if dimnames is not None and isinstance(dimnames.value, list) and len(dimnames.value) == 2:
        if dimnames.value[0].value is not None:
            row_names = np.asarray(dimnames.value[0].value, dtype=object)
        if dimnames.value[1].value is not None:
            col_names = np.asarray(dimnames.value[1].value, dtype=object)
    frame = pd.DataFrame(
        {
            "user_id": row_names[rows],
            "item_id": col_names[cols],
            "rating": np.asarray(matrix.slot("x"), dtype=np.float64),
        }
    )
    return from_dataframe(
        frame,
        rating_col="rating",
        feedback="explicit",
        name=name,
        report=DataReport(source=str(path)),
    )


def _dst_file(path: Path, *, name: str) -> Interactions:
    """Parse the UCI "DST" format: ``C,"id",id`` starts a case, ``V,area,1`` a visit."""
    report = DataReport(source=str(path))
    users: list[int] = []
    items: list[int] = []
    user: int | None = None
    orphan, first_orphan = 0, 0
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        if line.startswith("C,"):
            user = int(line.rsplit(",", 1)[1])
        elif line.startswith("V,"):
            if user is None:
                orphan += 1
                first_orphan = first_orphan or number
                continue
            users.append(user)
            items.append(int(line.split(",")[1]))
    report.add(
        "visit_without_case_dropped",
        orphan,
        f"{orphan} visit lines of {str(path)!r} come before any case line and were dropped "
        f"(first on line {first_orphan}).",
    )
    if not users:
        raise DataError(f"{str(path)!r} has no `V,` visit lines; it is not a UCI DST file.")
    frame = pd.DataFrame(
        {"user_id": np.asarray(users, dtype=np.int64), "item_id": np.asarray(items, np.int64)}
    )
    return from_dataframe(frame, feedback="implicit", duplicates="max", name=name, report=report)


def _titles_from_dat(raw: bytes, source: str) -> pd.Series:
    """Titles of a MovieTweetings ``movies.dat`` (``id::title::genres``); ids stay strings."""
    ids, titles = [], []
    for line in raw.decode("utf-8").splitlines():
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) < 2:
            raise DataError(f"The movie list of {source!r} has a line without `::`: {line!r}.")
        ids.append(fields[0])
        titles.append("::".join(fields[1:-1]) if len(fields) > 2 else fields[1])
    return pd.Series(
        np.asarray(titles, dtype=object),
        index=pd.Index(np.asarray(ids, dtype=object), name="item_id"),
        name="title",
    )


_LOADERS: dict[str, Callable[[Path, str | None], Interactions]] = {
    "ml-100k": _load_ml100k,
    "ml-latest-small": _load_ml_latest_small,
    "movietweetings-100k": _load_movietweetings,
    "filmtrust": _load_filmtrust,
    "ciaodvd": _load_ciaodvd,
    "douban-monti": _load_douban,
    "lastfm-hetrec-2k": _load_lastfm,
    "citeulike-a": _load_citeulike,
    "jester5k": _load_jester,
    "msweb": _load_msweb,
    "amazon-magazine": _load_amazon,
    "coat": _load_coat,
    "foursquare-sg": _load_foursquare,
    "bookcrossing-caserec": _load_bookcrossing,
    "retailrocket-caserec": _load_retailrocket,
}
