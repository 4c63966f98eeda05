"""Tests of storage resolution: memory, journal files, database URLs and their errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
import pytest
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage

from metarec_classic.exceptions import MetarecError, MetarecWarning
from metarec_classic.tuning import StorageError, mask_url, resolve_storage

BAD_POSTGRES = "postgresql+psycopg2://u:secret@127.0.0.1:1/db"
# Optuna marks the heartbeat of database storages as experimental.
OPTUNA_HEARTBEAT_WARNING = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning"
)


def test_none_keeps_the_study_in_memory() -> None:
    assert resolve_storage(None) is None


def test_a_storage_object_is_returned_as_is() -> None:
    storage = InMemoryStorage()
    assert resolve_storage(storage) is storage


@pytest.mark.parametrize("as_path", [False, True])
def test_journal_path_creates_parents_and_holds_a_study(tmp_path: Path, as_path: bool) -> None:
    target = tmp_path / "nested" / "deeper" / "studies.journal"
    storage = resolve_storage(target if as_path else str(target))
    assert isinstance(storage, JournalStorage)
    study = optuna.create_study(study_name="s", storage=storage)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    # A second resolution of the same path sees the study written by the first.
    again = optuna.load_study(study_name="s", storage=resolve_storage(str(target)))
    assert [t.value for t in again.trials] == [0.5]


def test_a_reader_of_a_build_never_creates_a_missing_file(tmp_path: Path) -> None:
    journal = tmp_path / "typo" / "studies.journal"
    database = tmp_path / "typo.db"
    for target in (str(journal), f"sqlite:///{database}"):
        with pytest.raises(StorageError, match=r"No storage at .*does not exist"):
            resolve_storage(target, existing=True)
    assert not journal.parent.exists() and not database.exists()
    resolve_storage(journal)  # a build creates it ...
    assert isinstance(resolve_storage(journal, existing=True), JournalStorage)  # ... then it opens


def test_directory_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"is a directory.*studies\.journal") as info:
        resolve_storage(tmp_path)
    assert isinstance(info.value, MetarecError)


def test_a_journal_path_under_a_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(StorageError, match=r"'.*notes\.txt' is a file, not a folder"):
        resolve_storage(tmp_path / "notes.txt" / "studies.journal")


def test_a_journal_that_cannot_be_written_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked"))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(StorageError, match=r"Permission denied .* folder you can write to"):
        resolve_storage(tmp_path / "locked" / "studies.journal")


def test_sqlite_url_warns_that_it_is_for_one_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    with pytest.warns(MetarecWarning, match="SQLite storage .* one process; use PostgreSQL"):
        storage = resolve_storage(url)
    assert isinstance(storage, RDBStorage)
    assert isinstance(storage, BaseStorage)


@OPTUNA_HEARTBEAT_WARNING
def test_unreachable_postgres_masks_the_password_and_names_the_checks() -> None:
    with pytest.raises(StorageError, match=r"u:\*\*\*@127\.0\.0\.1:1/db") as info:
        resolve_storage(BAD_POSTGRES)
    message = str(info.value)
    assert "secret" not in message
    # Either the driver is missing (and the message says how to install it) or the
    # server is unreachable (and the message lists what to check).
    assert "running and reachable" in message or "pip install" in message


@OPTUNA_HEARTBEAT_WARNING
def test_postgres_url_without_installed_driver_names_module_and_install_command() -> None:
    """Regression: Optuna re-raises the missing module as a plain ImportError, which used
    to lose the install hint."""
    # SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, which is not a dependency.
    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg 3 is installed, so the driver is not missing.")
    with pytest.raises(
        StorageError, match=r"no module named 'psycopg'.*metarec-classic\[postgres\]"
    ):
        resolve_storage("postgresql://u:secret@127.0.0.1:1/db")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg2://u:secret@host:5432/db", "postgresql+psycopg2://u:***@host:5432/db"),
        ("postgresql://user:p%40ss/w@host/db", "postgresql://user:***@host/db"),
        ("postgresql://:secret@host/db", "postgresql://:***@host/db"),
        (
            "postgresql://host/db?user=u&password=secret&x=1",
            "postgresql://host/db?user=u&password=***&x=1",
        ),
        ("postgresql://u@host/db", "postgresql://u@host/db"),
        ("sqlite:///studies.db", "sqlite:///studies.db"),
        # An unescaped "@" in the password: mask up to the last "@".
        ("postgresql://u:sec@ret@host/db", "postgresql://u:***@host/db"),
        # No "@" at all but a password typed in: malformed, everything masked.
        ("postgresql://u:secret:host:5432/db", "postgresql://u:***/db"),
        ("postgresql://host:5432/db", "postgresql://host:5432/db"),
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected
    assert "secret" not in mask_url(url) and "ret" not in mask_url(url).split("@")[0]


def test_a_malformed_url_is_explained_without_its_password() -> None:
    with pytest.raises(StorageError, match="percent-encode") as caught:
        resolve_storage("postgresql+psycopg2://u:secret:127.0.0.1:1/db")
    assert "secret" not in str(caught.value)


def test_an_sqlite_file_that_cannot_be_opened_names_the_folder_rule(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'trials.db'}"
    with pytest.raises(StorageError, match=r"folder must exist.*four slashes"):
        resolve_storage(url)


@pytest.mark.parametrize(
    "text",
    ["postgresql+psycopg2:/user:secret@localhost/db", "postgresql+psycopg2//user:secret@h/db"],
)
def test_a_database_url_missing_its_slashes_is_not_taken_for_a_file(tmp_path, text) -> None:
    with pytest.raises(StorageError, match="no '://' after") as caught:
        resolve_storage(text)
    assert "secret" not in str(caught.value)
    assert not Path(text.split("/")[0]).exists()


def test_an_unknown_database_scheme_names_the_url_form() -> None:
    with pytest.raises(StorageError, match="Unknown database") as caught:
        resolve_storage("postgresq+psycopg2://user:secret@localhost/db")
    assert "secret" not in str(caught.value)


def test_a_grace_period_shorter_than_the_heartbeat_interval_is_refused(
    monkeypatch, postgres_database
) -> None:
    monkeypatch.setenv("METAREC_HEARTBEAT_INTERVAL", "30")
    monkeypatch.setenv("METAREC_HEARTBEAT_GRACE", "5")
    with pytest.raises(StorageError, match="must be longer than"):
        resolve_storage(postgres_database)


def test_processes_opening_an_empty_database_together_all_succeed(new_postgres_database) -> None:
    # Each process creates Optuna's tables; the losers of that race must retry, not fail.
    import subprocess
    import sys

    url = new_postgres_database()
    code = f"from metarec_classic.tuning import resolve_storage; resolve_storage({url!r})"
    processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0, 0]


@pytest.mark.parametrize("name", ["sqlite/labels.journal", "postgres-data/labels.journal"])
def test_a_folder_named_like_a_database_is_a_journal_path(tmp_path, monkeypatch, name) -> None:
    monkeypatch.chdir(tmp_path)
    assert isinstance(resolve_storage(name), JournalStorage)
    assert (tmp_path / name).parent.is_dir()


def test_a_user_without_privileges_is_told_so_not_to_check_the_server(
    postgres_database: str,
) -> None:
    import uuid

    import sqlalchemy
    from sqlalchemy.engine import make_url

    # A login role that may connect but not create tables in the public schema (the
    # default since PostgreSQL 15).
    role = f"reader_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD 'secret'"))
        connection.execute(sqlalchemy.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    url = make_url(postgres_database).set(username=role, password="secret")
    text = url.render_as_string(hide_password=False)
    try:
        with pytest.raises(StorageError, match="lacks privileges") as info:
            resolve_storage(text)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP ROLE {role}"))
        admin.dispose()
    message = str(info.value)
    assert "permission denied" in message and "GRANT" in message
    assert "server is running" not in message and "secret" not in message
