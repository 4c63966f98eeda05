"""Turn the user's ``storage`` argument into an Optuna storage, with clear failures."""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from metarec_classic.exceptions import MetarecError, MetarecWarning

__all__ = ["StorageError", "mask_url", "resolve_storage"]

_log = logging.getLogger(__name__)

#: Seconds between heartbeats of a running trial in a database storage, and the grace
#: period after which a trial without heartbeat is marked failed.
HEARTBEAT_INTERVAL = 30
HEARTBEAT_GRACE = 120

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class StorageError(MetarecError, ConnectionError):
    """A storage that cannot be opened or reached; the message names the URL and checks."""


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Both places a database URL may carry a password are masked: the user-info part
    (``user:password@``, also with an empty user name) and a ``password=`` query argument.
    """
    masked = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked, flags=re.IGNORECASE)


def resolve_storage(storage: str | os.PathLike[str] | BaseStorage | None) -> BaseStorage | None:
    """Return the Optuna storage for ``storage``.

    Parameters
    ----------
    storage : str, path, optuna storage or None
        ``None`` keeps the study in memory (lost when the process ends). A database URL
        (``postgresql+psycopg2://user:pw@host/db``, ``sqlite:///file.db``, anything
        SQLAlchemy accepts) gives an :class:`optuna.storages.RDBStorage` shared by every
        process that opens the same URL, with heartbeats so that a trial whose process
        died is marked failed. Any other string or path is a journal file: the resumable
        default for one machine (several processes on that machine may share it).

    Returns
    -------
    optuna.storages.BaseStorage or None
    """
    if storage is None or isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    if _URL.match(text):
        return _open_database(text)
    path = Path(text).expanduser()
    if path.is_dir():
        raise StorageError(
            f"`storage` {text!r} is a directory; give a file path for the journal (e.g. "
            f"{str(path / 'studies.journal')!r}) or a database URL."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _open_database(url: str) -> RDBStorage:
    """Open a database storage, translating driver and connection errors."""
    masked = mask_url(url)
    if url.startswith("sqlite"):
        warnings.warn(
            f"SQLite storage {masked!r} is meant for one process; use PostgreSQL to share "
            "studies between processes or machines.",
            MetarecWarning,
            stacklevel=3,
        )
    kwargs: dict[str, Any] = {}
    if not url.startswith("sqlite"):
        kwargs = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": HEARTBEAT_GRACE}
    try:
        return RDBStorage(url, **kwargs)
    except ImportError as err:
        # Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError, so the
        # missing module is found on the exception chain.
        missing = _missing_module(err)
        reason = f"no module named {missing!r}" if missing else _first_line(err)
        hint = ""
        if url.startswith("postgres"):
            hint = (
                ' Install the driver with `pip install "metarec-classic[postgres]"` and name '
                "it in the URL: `postgresql+psycopg2://user:password@host/db`."
            )
        raise StorageError(
            f"The database driver for {masked!r} is missing ({reason}).{hint}"
        ) from err
    except Exception as err:  # SQLAlchemy raises many types for unreachable servers.
        raise StorageError(
            f"Could not open the storage {masked!r}: {type(err).__name__}: "
            f"{_first_line(err)}. Check that the server is running and reachable, the "
            "database exists, and the user name and password are right."
        ) from err


def _missing_module(err: BaseException) -> str | None:
    """Name of the module whose import failed, searched along the exception chain."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            return current.name
        current = current.__cause__ or current.__context__
    return None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
