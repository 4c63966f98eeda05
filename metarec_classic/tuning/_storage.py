"""Turn the user's ``storage`` argument into an Optuna storage, with clear failures."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from metarec_classic.exceptions import MetarecError, MetarecWarning

__all__ = ["StorageError", "mask_url", "resolve_storage", "storage_errors"]

_log = logging.getLogger(__name__)

#: Seconds between heartbeats of a running trial in a database storage, and the grace
#: period after which a trial without heartbeat is marked failed (and run again once).
#: The environment variables ``METAREC_HEARTBEAT_INTERVAL`` and ``METAREC_HEARTBEAT_GRACE``
#: override them, e.g. to recover faster from workers that are known to be gone.
HEARTBEAT_INTERVAL = 30
HEARTBEAT_GRACE = 120
#: How often the configuration of a trial whose process died is run again.
STALE_TRIAL_RETRIES = 1

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: A database scheme (with or without its driver) followed by ":" or "//" but not "://",
#: e.g. "postgresql+psycopg2:/host" or "postgresql+psycopg2//host". A folder that merely
#: starts with such a name ("postgres-data/x.journal") is a path.
_BROKEN_URL = re.compile(
    r"^(postgres|postgresql|sqlite|mysql|mariadb|oracle|mssql)(\+[A-Za-z0-9_.-]+)?(:|//)",
    re.IGNORECASE,
)


class StorageError(MetarecError, ConnectionError):
    """A storage that cannot be opened or reached; the message names the URL and checks."""


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Both places a database URL may carry a password are masked: the user-info part
    (``user:password@``, also with an empty user name) and a ``password=`` query argument.
    """
    # Up to the last "@": a password may itself hold an unescaped "@".
    masked = re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)
    netloc = url.split("://", 1)[-1].split("/", 1)[0]
    if "@" not in netloc and netloc.count(":") > 1:
        # "user:password:host:port" without "@": malformed, and a password may be in it.
        masked = re.sub(r"(://[^:/@]*:)[^/?]*", r"\1***", masked)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked, flags=re.IGNORECASE)


def resolve_storage(
    storage: str | os.PathLike[str] | BaseStorage | None, *, existing: bool = False
) -> BaseStorage | None:
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
    existing : bool, default=False
        Only open a journal or SQLite file that is already there, for readers of a
        build: opening creates a missing file, which would hide a mistyped path.

    Returns
    -------
    optuna.storages.BaseStorage or None
    """
    if storage is None or isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    sqlite_file = text.partition(":///")[2] if text.startswith("sqlite") else ""
    path = Path(sqlite_file or text).expanduser()
    if existing and (sqlite_file or not _URL.match(text)) and not path.is_file():
        raise StorageError(
            f"No storage at {str(path)!r}: the file does not exist. Check the path, or "
            "start the build with the same --storage first."
        )
    if _URL.match(text):
        return _open_database(text)
    if _BROKEN_URL.match(text):
        scheme = re.split(r"[:/]", text, maxsplit=1)[0]  # the rest may hold a password
        raise StorageError(
            f"`storage` starts like a database URL ({scheme!r}) but has no '://' after its "
            "scheme; write it as postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE "
            "(a journal file path must not start with a database name)."
        )
    if path.is_dir():
        raise StorageError(
            f"`storage` {text!r} is a directory; give a file path for the journal (e.g. "
            f"{str(path / 'studies.journal')!r}) or a database URL."
        )
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise StorageError(
            f"Cannot create the journal file {text!r}: {str(blocking)!r} is a file, not a "
            "folder. Give a path in a folder you can write to, or a database URL."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as err:
        raise StorageError(
            f"Cannot create or open the journal file {text!r}: {err.strerror or err} "
            f"({err.filename or path}). Give a path in a folder you can write to, or a "
            "database URL."
        ) from err


@contextlib.contextmanager
def storage_errors(storage: str | os.PathLike[str] | BaseStorage | None) -> Iterator[None]:
    """Turn a database error inside the block into a :class:`StorageError` naming the URL.

    A server that stops or becomes unreachable while studies run surfaces as one of
    SQLAlchemy's many exception types; this names the storage (password masked), what to
    check, and that rerunning resumes (finished trials are kept in the database).
    """
    try:
        yield
    except StorageError:
        raise
    except Exception as err:
        # Optuna wraps some database errors in StorageInternalError; the cause tells more.
        cause = err.__cause__ if isinstance(err, optuna.exceptions.StorageInternalError) else err
        if cause is None or not type(cause).__module__.startswith(("sqlalchemy", "psycopg")):
            raise
        where = _describe(storage)
        detail = _first_line(cause)
        check = (
            _PRIVILEGES_HINT
            if _lacks_privileges(detail)
            else ("Check that the database server is running and reachable")
        )
        raise StorageError(
            f"Lost the storage {where!r}: {type(cause).__name__}: {detail}. {check}, then "
            "rerun the same command: finished trials are kept and the work resumes where it "
            "stopped."
        ) from err


#: What to do when the database refuses the user (PostgreSQL: "permission denied for ...").
_PRIVILEGES_HINT = (
    "The database user lacks privileges: Optuna creates its tables on first use and then "
    "reads and writes them, so connect as the database's owner or grant the user those "
    "rights (e.g. GRANT ALL ON SCHEMA public TO the_user, as the owner)"
)


def _lacks_privileges(detail: str) -> bool:
    return "permission denied" in detail.lower()


def backend_of(storage: BaseStorage) -> BaseStorage:
    """The storage itself: a study wraps a database storage in a cache of Optuna's."""
    return getattr(storage, "_backend", storage)  # type: ignore[no-any-return]


def _describe(storage: str | os.PathLike[str] | BaseStorage | None) -> str:
    """The storage's URL or path with any password masked, else its type."""
    if isinstance(storage, (str, os.PathLike)):
        return mask_url(os.fspath(storage))
    url = getattr(backend_of(storage), "url", None) if storage is not None else None
    return mask_url(str(url)) if url else type(storage).__name__


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
        interval = _env_seconds("METAREC_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL)
        grace = _env_seconds("METAREC_HEARTBEAT_GRACE", HEARTBEAT_GRACE)
        if grace <= interval:
            # A live trial would be judged dead between two of its heartbeats.
            raise StorageError(
                f"METAREC_HEARTBEAT_GRACE ({grace} s) must be longer than "
                f"METAREC_HEARTBEAT_INTERVAL ({interval} s), ideally at least twice as "
                "long; fix or unset them."
            )
        kwargs = {
            "heartbeat_interval": interval,
            "grace_period": grace,
            "heartbeat_stale_trial_callback": _retry_callback(),
        }
    try:
        return _create_rdb_storage(url, kwargs)
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
        # The driver's message may quote the URL, password included: keep only what
        # the masked URL shows.
        detail = _first_line(err).replace(url, masked)
        if type(err).__name__ == "NoSuchModuleError":
            raise StorageError(
                f"Unknown database in {masked!r} ({detail}). Write the URL as "
                "postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE or "
                "sqlite:///FILE.db."
            ) from err
        if url.startswith("sqlite"):
            raise StorageError(
                f"Could not open the SQLite storage {url!r}: {type(err).__name__}: {detail}. "
                "The file's folder must exist and be writable; sqlite:///name.db is relative "
                "to the working folder and sqlite:////abs/path/name.db (four slashes) is "
                "absolute."
            ) from err
        if "@" not in url or url.count("@") > 1 or isinstance(err, ValueError):
            detail = (
                "the URL cannot be parsed; write it as "
                "postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE and percent-encode "
                "special characters in the password (@ as %40, : as %3A, / as %2F)"
            )
        check = (
            _PRIVILEGES_HINT
            if _lacks_privileges(detail)
            else "Check that the server is running and reachable, the database exists, and "
            "the user name and password are right"
        )
        raise StorageError(
            f"Could not open the storage {masked!r}: {type(err).__name__}: {detail}. {check}."
        ) from err


def _create_rdb_storage(url: str, kwargs: dict[str, Any]) -> RDBStorage:
    """Open ``url``, creating Optuna's tables if needed.

    Processes started together on an empty database all try to create the tables; the
    ones that lose that race get an integrity error from the server, and retrying finds
    the tables made.
    """
    import sqlalchemy.exc

    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            lost_race = isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in str(
                err
            )
            if not lost_race or attempt == _CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


#: How often opening an empty database is tried while other processes create its tables.
_CREATE_ATTEMPTS = 5


def _env_seconds(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise StorageError(
            f"{name}={text!r} is not a whole number of seconds >= 1; fix or unset it."
        )
    return value


def _retry_callback() -> Any:
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=STALE_TRIAL_RETRIES)


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
