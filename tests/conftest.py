"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The repository root (the folder that holds ``tests/``).
REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_path() -> Path:
    return Path(os.environ.get("METAREC_DATA", str(REPO_ROOT.parent / "shared" / "data")))


def _no_data_message(path: Path) -> str:
    return f"Shared data folder {path} not found; set METAREC_DATA to its location."


def pytest_report_header(config: pytest.Config) -> str:
    path = _shared_data_path()
    return f"shared data: {path}" + ("" if path.is_dir() else " (NOT FOUND)")


def pytest_unconfigure(config: pytest.Config) -> None:
    # Said last, below the result line: a run without the data passes, but most of what
    # it could check was not checked.
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = [
        report
        for report in reporter.stats.get("skipped", [])
        if "Shared data folder" in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        reporter.write_sep(
            "!",
            f"{len(skipped)} tests on real data were SKIPPED: "
            + _no_data_message(_shared_data_path()),
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the shared real data sets (``ml-100k/``, ...).

    Taken from the ``METAREC_DATA`` environment variable, else ``<repo>/../shared/data``.
    When the folder is missing the test is skipped (and the run's summary says how many
    were), except on CI (``CI=true``) where a missing data folder is a broken setup and
    fails the test.
    """
    path = _shared_data_path()
    if not path.is_dir():
        message = _no_data_message(path)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


# -- small real data and a tiny meta-model, built once per session -------------------------
#: Cheap algorithms used wherever a test needs a label build or a meta-model.
TINY_ALGORITHMS = ("most_popular", "itemknn", "pure_svd")


def _tiny_tasks() -> list:
    from metarec_classic.meta import Task

    return [
        Task("ml-100k", "movielens", "users", 0.3, 0, 4000, 400),
        Task("ml-100k", "movielens", "popular", 300, 1, 4000, 400),
        Task("filmtrust", "filmtrust", "popular", 300, 0, 4000, 400),
    ]


@pytest.fixture(scope="session")
def loader(shared_data: Path):
    """Dataset loader for label builds that reads from the shared data folder."""
    import warnings

    from metarec_classic.data import load_dataset

    def load(name: str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_dataset(shared_data / name)

    return load


@pytest.fixture(scope="session")
def ml100k(loader):
    """The whole ml-100k data set (positives: ratings >= 4)."""
    return loader("ml-100k")


@pytest.fixture(scope="session")
def small_split(ml100k):
    """A small real cut of ml-100k: (train, validation), about 80 users and 400 items."""
    from metarec_classic.meta import Task, cut_task

    split = cut_task(Task("ml-100k", "movielens", "users", 0.3, 0, 4000, 400), ml100k)
    assert split is not None
    return split


@pytest.fixture(scope="session")
def tiny_tasks() -> list:
    """Three small tasks cut from ml-100k and filmtrust."""
    return _tiny_tasks()


@pytest.fixture(scope="session")
def tiny_labels(tiny_tasks, loader):
    """Labels of the tiny tasks for three cheap algorithms, three configurations each."""
    from metarec_classic.meta import build_labels

    return build_labels(
        tiny_tasks, algorithms=TINY_ALGORITHMS, n_configs=3, loader=loader, landmark_seconds=5
    )


@pytest.fixture(scope="session")
def tiny_meta_model(tiny_labels):
    """A small MetaModel fitted on the tiny labels."""
    from metarec_classic.meta import MetaModel

    return MetaModel(n_estimators=30, min_child_samples=3).fit(tiny_labels)


@pytest.fixture(scope="session")
def tiny_meta_model_dir(tiny_meta_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding the tiny meta-model as saved by ``MetaModel.save``."""
    return tiny_meta_model.save(tmp_path_factory.mktemp("meta-model"))


# -- a real PostgreSQL server --------------------------------------------------------------
POSTGRES_ENV = "METAREC_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a PostgreSQL database the tests may create databases beside.

    Taken from ``METAREC_TEST_POSTGRES_URL`` (``.ci/postgres start`` starts a throwaway
    server and prints one). Without it the test is skipped, except on CI, where the
    server is part of the setup and its absence fails the test.
    """
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = f"{POSTGRES_ENV} is not set; start a server with `.ci/postgres start`."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def new_postgres_database(postgres_url: str):
    """Factory of new, empty PostgreSQL databases on the test server; all dropped at the end."""
    import uuid

    import psycopg2
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url)
    admin = psycopg2.connect(
        host=base.host,
        port=base.port,
        user=base.username,
        password=base.password,
        dbname=base.database,
    )
    admin.autocommit = True
    created: list[str] = []

    def create() -> str:
        name = f"metarec_{uuid.uuid4().hex[:12]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return base.set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.cursor() as cursor:
        for name in created:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def postgres_database(new_postgres_database) -> str:
    """URL of a new, empty PostgreSQL database."""
    return new_postgres_database()


def _let_every_try_die(study) -> None:
    """Let a worker of this host die on the first waiting trial of ``study``, twice.

    The first try and its one retry each end with their process gone, as after two
    out-of-memory kills: the design point is then lost (no label, nothing left to run).
    """
    import socket
    import subprocess
    import sys

    from metarec_classic.tuning import claim_trial, recover_stale_trials
    from metarec_classic.tuning._design import WORKER_ATTR

    after = -1
    for _ in range(2):  # the configuration, then its retry (the newest trial)
        claimed = claim_trial(study, after=after)
        assert claimed is not None
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        worker = f"{socket.gethostname()}:{ended.pid}"
        study._storage.set_trial_user_attr(claimed.trial_id, WORKER_ATTR, worker)
        recover_stale_trials(study)
        after = len(study.get_trials()) - 2


@pytest.fixture(scope="session")
def let_every_try_die():
    """:func:`_let_every_try_die`: lose the first waiting configuration of a study."""
    return _let_every_try_die


@pytest.fixture(scope="session")
def lose_a_configuration():
    """A function that leaves one design point of a label build lost in a journal file.

    ``lose(storage_path, task, algorithm, n_configs)`` opens the (task, algorithm) study
    as the build would and lets every try of its first configuration die
    (:func:`_let_every_try_die`).
    """
    from metarec_classic.meta._build import _design
    from metarec_classic.meta._labels import _is_label, _study_name
    from metarec_classic.recommenders import get_recommender_class
    from metarec_classic.tuning import design_progress, open_design_study, resolve_storage

    def lose(storage_path, task, algorithm: str, n_configs: int) -> None:
        study = open_design_study(
            resolve_storage(storage_path),
            _study_name(task, algorithm),
            _design(task, algorithm, n_configs),
            is_label=_is_label,
            space=get_recommender_class(algorithm).search_space(),
        )
        assert study is not None
        _let_every_try_die(study)
        assert design_progress(study, _is_label).lost == 1

    return lose
