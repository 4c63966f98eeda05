"""Label builds shared by several worker processes through a real PostgreSQL server.

These tests need ``METAREC_TEST_POSTGRES_URL`` (``.ci/postgres start`` prints one); CI
starts the server and fails, rather than skips, when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from metarec_classic.meta import Task, build_labels, build_status, design_configs
from metarec_classic.meta._corpus import _stable_seed
from metarec_classic.tuning import resolve_storage

#: 2 tasks x 4 algorithms = 8 studies of 5 configurations each; the tasks are large
#: enough (trials of 0.1-1 s) that no worker finishes the build before the others start.
TASKS = [
    Task("ml-100k", "movielens", "users", 0.6, 0, 25000, 1500),
    Task("ml-100k", "movielens", "kcore", 10, 1, 25000, 1500),
]
ALGORITHMS = ["itemknn", "pure_svd", "rp3beta", "als"]
N_CONFIGS = 5


@pytest.fixture(autouse=True)
def _data_for_workers(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Worker processes find the shared datasets through the environment they inherit.
    monkeypatch.setenv("METAREC_DATA", str(shared_data))


def _studies(url: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = resolve_storage(url)
    return {
        summary.study_name: optuna.load_study(
            study_name=summary.study_name, storage=storage
        ).get_trials(deepcopy=False)
        for summary in optuna.get_all_study_summaries(storage)
        if not summary.study_name.endswith("|_task")
    }


def _comparable(labels):
    # Fit times are measurements, not labels; everything else must match exactly.
    keys = ["task_id", "algorithm", "trial"]
    return labels.drop(columns="fit_time").sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def four_worker_build(new_postgres_database, shared_data):
    """Build the 8 studies with 4 worker processes into a fresh database."""
    url = new_postgres_database()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("METAREC_DATA", str(shared_data))
        labels = build_labels(
            TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS, storage=url, workers=4
        )
    return url, labels


def test_four_workers_run_every_budget_exactly_once(four_worker_build) -> None:
    url, labels = four_worker_build
    studies = _studies(url)
    assert len(studies) == 8
    all_trials = [t for trials in studies.values() for t in trials]
    assert len(all_trials) == 40
    assert Counter(t.state for t in all_trials) == {TrialState.COMPLETE: 40}
    for name, trials in studies.items():
        _, task_id, algorithm = name.split("|")
        design = design_configs(algorithm, N_CONFIGS, seed=_stable_seed(f"{task_id}|{algorithm}"))
        ran = sorted(json.dumps(t.params, sort_keys=True) for t in trials)
        assert ran == sorted(json.dumps(c, sort_keys=True) for c in design), name
    workers = {t.user_attrs["worker"] for t in all_trials}
    assert len(workers) >= 2, "the work was not shared between processes"
    assert len(labels.labels) == 40


def test_labels_do_not_depend_on_the_number_of_workers(postgres_database, four_worker_build):
    _, four = four_worker_build
    one = build_labels(
        TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS, storage=postgres_database, workers=1
    )
    assert _comparable(one.labels).equals(_comparable(four.labels))
    assert (
        one.tasks.sort_values("task_id")
        .reset_index(drop=True)
        .equals(four.tasks.sort_values("task_id").reset_index(drop=True))
    )


def test_a_worker_killed_mid_trial_costs_one_retry_and_nothing_else(
    postgres_database, shared_data
) -> None:
    # Trials of about a second (EASE on 3000 items), so that the kill lands inside one.
    command = [
        sys.executable, "-m", "metarec_classic.cli", "build-corpus", "lastfm-hetrec-2k",
        "--storage", postgres_database, "--workers", "2", "--algorithms", "ease",
        "--configs", "6", "--cuts", "popular:3000", "--max-interactions", "30000",
    ]  # fmt: skip
    env = {
        **os.environ,
        "METAREC_DATA": str(shared_data),
        "METAREC_HEARTBEAT_INTERVAL": "1",
        "METAREC_HEARTBEAT_GRACE": "3",
    }
    build = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    storage = resolve_storage(postgres_database)
    name = "labels-v1|lastfm-hetrec-2k/popular-3000/s0|ease"
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except KeyError:
            trials = []
        # A worker process, not the command's own process (it works too).
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and "worker" in t.user_attrs
            and int(t.user_attrs["worker"].rsplit(":", 1)[1]) != build.pid
        ]
        if running:
            victim = running[0]
        else:
            time.sleep(0.02)
    assert victim is not None, "no trial started within two minutes"
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    _, stderr = build.communicate(timeout=300)
    assert build.returncode == 0, stderr
    assert "exit code -9" in stderr

    # The build rerun finds nothing left to do.
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    killed = next(t for t in trials if t.number == victim.number)
    assert killed.state == TrialState.FAIL
    assert "fail_reason" not in killed.user_attrs  # failed for its worker, not its config
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE
    # Parameters are stored when a trial is enqueued; the retry runs the same ones.
    assert retries[0].params == killed.params
    assert retries[0].user_attrs["design_index"] == killed.user_attrs["design_index"]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    assert len({t.user_attrs["design_index"] for t in complete}) == 6
    assert len(trials) == 7  # the six design points and the one retry

    status = build_status(
        postgres_database,
        [Task("lastfm-hetrec-2k", "lastfm-hetrec-2k", "popular", 3000, 0, 30000, 3000)],
        algorithms=["ease"],
        n_configs=6,
    )
    assert (status.studies_done, status.trials_finished, status.trials_retried) == (1, 6, 1)


def test_status_reads_progress_without_joining(postgres_database, shared_data) -> None:
    command = [
        sys.executable, "-m", "metarec_classic.cli", "build-corpus", "ml-100k",
        "--storage", postgres_database, "--algorithms", "itemknn", "most_popular",
        "--configs", "3", "--cuts", "users:0.3", "kcore:10", "--max-interactions", "6000",
    ]  # fmt: skip
    env = {**os.environ, "METAREC_DATA": str(shared_data)}
    before = subprocess.run(
        [*command, "--status", "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(before.stdout)["trials_finished"] == 0
    assert json.loads(before.stdout)["studies_total"] == 4
    subprocess.run([*command, "--workers", "1"], env=env, capture_output=True, check=True)
    after = json.loads(
        subprocess.run(
            [*command, "--status", "--json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert after["studies_done"] == 4
    assert after["trials_finished"] == after["trials_budget"] == 3 + 1 + 3 + 1
    assert after["eta_seconds"] == 0


def test_labels_of_an_unshared_storage_cannot_have_several_workers() -> None:
    with pytest.raises(ValueError, match="journal file path or a database URL"):
        build_labels(TASKS, storage=None, workers=2)


def test_a_server_that_goes_away_gives_a_clear_error_and_the_rerun_resumes(
    postgres_url, shared_data
) -> None:
    # A server of this test's own, so that stopping it disturbs no other test. Its folder
    # sits directly in the temp dir: the server runs as the postgres user, who cannot
    # enter pytest's private temp folders.
    folder = Path(tempfile.mkdtemp(prefix="metarec-pg-"))
    folder.chmod(0o777)
    script = Path(__file__).resolve().parents[2] / ".ci" / "postgres"
    server_env = {**os.environ, "METAREC_PG_PORT": "55439", "METAREC_PG_DATA": str(folder / "pg")}
    started = subprocess.run(
        [str(script), "start"], env=server_env, capture_output=True, text=True, check=True
    )
    url = started.stdout.strip().replace("postgres@", "postgres:secret@")
    command = [
        sys.executable, "-m", "metarec_classic.cli", "build-corpus", "lastfm-hetrec-2k",
        "--storage", url, "--workers", "1", "--algorithms", "ease",
        "--configs", "8", "--cuts", "popular:3000", "--max-interactions", "30000",
    ]  # fmt: skip
    env = {**os.environ, "METAREC_DATA": str(shared_data)}
    try:
        build = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        storage = resolve_storage(url)
        name = "labels-v1|lastfm-hetrec-2k/popular-3000/s0|ease"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                trials = optuna.load_study(study_name=name, storage=storage).get_trials()
            except KeyError:
                trials = []
            if any(t.state == TrialState.COMPLETE for t in trials):
                break
            time.sleep(0.05)
        storage.engine.dispose()  # our own connections must not keep the server up
        subprocess.run([str(script), "stop"], env=server_env, check=True)
        _, stderr = build.communicate(timeout=120)
        assert build.returncode != 0
        assert "Lost the storage" in stderr
        assert "secret" not in stderr and "postgres:***@localhost:55439" in stderr
        assert "rerun the same command" in stderr

        subprocess.run([str(script), "start"], env=server_env, capture_output=True, check=True)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        trials = optuna.load_study(study_name=name, storage=resolve_storage(url)).get_trials()
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert sorted(t.user_attrs["design_index"] for t in complete) == list(range(8))
    finally:
        subprocess.run([str(script), "stop"], env=server_env, check=False)
        shutil.rmtree(folder, ignore_errors=True)
