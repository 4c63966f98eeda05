"""Tests of the installed ``metarec`` command, run as a subprocess."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarec_classic.data import Interactions, from_dataframe, load_dataset


def _executable() -> str:
    found = shutil.which("metarec") or str(Path(sys.executable).parent / "metarec")
    if not Path(found).is_file():
        pytest.fail(f"The `metarec` command is not installed (looked for {found}).")
    return found


def run(*args: str | os.PathLike[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed command; stdout and stderr are kept apart."""
    return subprocess.run(
        [_executable(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )


def run_json(*args: str | os.PathLike[str]) -> dict:
    """Run with --json; stdout must be exactly one JSON document."""
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # fails on anything but a single document


def run_bad_input(*args: str | os.PathLike[str], message: str) -> None:
    """Run a command that must refuse its input: exit 2, ``message`` on stderr, no traceback."""
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.fixture(scope="module")
def string_csv(ml100k: Interactions, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV of 150 ml-100k users with ids like "u007" and item ids with leading zeros."""
    frame = ml100k.to_frame()
    frame = frame[frame["user_id"] < 150]
    path = tmp_path_factory.mktemp("csv") / "events.csv"
    pd.DataFrame(
        {
            "user_id": [f"u{u:03d}" for u in frame["user_id"]],
            "item_id": [f"{i:05d}" for i in frame["item_id"]],
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(
    string_csv: Path, tiny_meta_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("fitted") / "model"
    document = run_json("fit", string_csv, "--meta-model", tiny_meta_model_dir, "--out", out)
    assert document["saved_to"] == str(out)
    assert document["algorithm"] in {"most_popular", "itemknn", "pure_svd"}
    assert all(row["user_id"].startswith("u") for row in document["example_recommendations"])
    # The algorithms in the meta-model's order, the chosen one first, each with its rank.
    top = document["top_algorithms"]
    assert [row["rank"] for row in top] == list(range(1, len(top) + 1))
    assert top[0]["algorithm"] == document["algorithm"]
    return out


# -- information and evaluation ---------------------------------------------------------------
def test_info_demo_json() -> None:
    document = run_json("info", "--demo")
    assert document["name"] == "demo"
    assert document["n_users"] > 0 and document["n_items"] > 0
    assert document["n_interactions"] > document["n_users"]
    assert 0 < document["density"] < 1
    # The report's messages name the flag, not only the Python argument.
    dropped = document["report"]["messages"]["below_threshold_dropped"]
    assert dropped.endswith("On the command line: --threshold none.")


def test_info_human_readable_output(string_csv: Path) -> None:
    result = run("info", string_csv)
    assert result.returncode == 0, result.stderr
    assert "n_users: 149" in result.stdout


def test_evaluate_shared_dataset(shared_data: Path) -> None:
    document = run_json("evaluate", shared_data / "ml-100k", "--algorithm", "most_popular")
    assert document["algorithm"] == "most_popular"
    assert 0 < document["test"]["ndcg@10"] < 1
    assert document["n_users_evaluated"] > 0


def test_tune_json_with_logs_and_progress_on_stderr(string_csv: Path) -> None:
    result = run(
        "tune",
        string_csv,
        "--algorithm",
        "pure_svd",
        "--trials",
        "2",
        "--json",
        "--verbose",
        "--progress",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # exactly one JSON document, nothing else
    assert document["n_trials_complete"] == 2 and document["n_trials_failed"] == 0
    assert 0 < document["validation"]["ndcg@10"] < 1
    assert set(document["best_config"]) == {"n_factors", "n_iter"}
    # The log line of the finished search and the progress bar went to stderr.
    assert "Tuned pure_svd" in result.stderr and "2/2" in result.stderr
    assert "Tuned" not in result.stdout


# -- bad input -----------------------------------------------------------------------------------
def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    result = run("info", tmp_path / "missing.csv")
    assert result.returncode == 2
    assert "missing.csv" in result.stderr and "neither an existing file" in result.stderr
    assert result.stdout == ""


def test_with_json_a_failure_is_a_json_document_too(tmp_path: Path) -> None:
    result = run("info", tmp_path / "missing.csv", "--json")
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["exit_status"] == 2 and document["kind"] == "error"
    assert "missing.csv" in document["error"]
    assert f"metarec: error: {document['error']}" in result.stderr  # for the person, too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--demo", "--trials", "-1"], "argument --trials: must be at least 0, got -1"),
        (["recommend", "somewhere"], "the following arguments are required: --users"),
    ],
)
def test_with_json_a_command_line_argparse_refuses_is_a_json_document_too(
    args: list[str], message: str
) -> None:
    result = run(*args, "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {"error": message, "kind": "usage", "exit_status": 2}
    assert "usage: metarec" in result.stderr and message in result.stderr


def test_bad_params_json_is_bad_input(string_csv: Path) -> None:
    result = run("evaluate", string_csv, "--algorithm", "most_popular", "--params", "{oops")
    assert result.returncode == 2
    assert "`--params` must be a JSON object" in result.stderr and "{oops" in result.stderr


def test_params_that_are_not_an_object_are_bad_input(string_csv: Path) -> None:
    result = run("evaluate", string_csv, "--algorithm", "most_popular", "--params", "[1, 2]")
    assert result.returncode == 2
    assert "`--params` must be a JSON object; got list" in result.stderr


def test_unknown_algorithm_is_bad_input() -> None:
    result = run("evaluate", "--demo", "--algorithm", "deep_magic")  # refused before loading
    assert result.returncode == 2
    assert "invalid choice: 'deep_magic'" in result.stderr


def test_data_and_demo_together_is_bad_input(string_csv: Path) -> None:
    result = run("info", string_csv, "--demo")
    assert result.returncode == 2
    assert "either a DATA path or --demo, not both" in result.stderr


def test_no_data_is_bad_input() -> None:
    result = run("info")
    assert result.returncode == 2
    assert "No data given" in result.stderr


def test_csv_with_one_column_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("user_id\nu1\nu2\nu3\n")
    run_bad_input("info", path, message="one.csv")


# -- fit and recommend ---------------------------------------------------------------------------
def test_recommend_prints_csv_with_original_ids(model_dir: Path, string_csv: Path) -> None:
    result = run("recommend", model_dir, "--users", "u007,u010", "--k", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "user_id,item_id,rank,score"
    table = pd.read_csv(io.StringIO(result.stdout), dtype={"user_id": str, "item_id": str})
    assert list(table["user_id"]) == ["u007"] * 3 + ["u010"] * 3
    assert list(table["rank"]) == [1, 2, 3, 1, 2, 3]
    known = set(pd.read_csv(string_csv, dtype=str)["item_id"])
    assert set(table["item_id"]) <= known
    assert all(len(i) == 5 for i in table["item_id"])  # leading zeros kept


def test_recommend_json_and_an_unknown_user(model_dir: Path, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u007\nsomeone-new\n")
    result = run("recommend", model_dir, "--users", users, "--k", "4", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["user_id"] for r in rows] == ["u007"] * 4 + ["someone-new"] * 4
    assert all(isinstance(r["item_id"], str) and len(r["item_id"]) == 5 for r in rows)
    assert [r["rank"] for r in rows if r["user_id"] == "someone-new"] == [1, 2, 3, 4]


def test_recommend_a_list_of_ids_longer_than_a_file_name(model_dir: Path) -> None:
    users = [f"u{u:03d}" for u in range(1, 150)] * 3  # 2,235 characters
    result = run("recommend", model_dir, "--users", ",".join(users), "--k", "2")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(io.StringIO(result.stdout), dtype={"user_id": str})
    assert len(table) == 2 * len(users)


def test_recommend_into_a_reader_that_stops_early(model_dir: Path) -> None:
    # `metarec recommend ... | head -1`: the reader closes the pipe after one line. Every
    # user's whole list is megabytes, far beyond a pipe's buffer, so the writer cannot
    # have finished before the pipe closes.
    users = ",".join(f"u{u:03d}" for u in range(1, 150))
    process = subprocess.Popen(
        [_executable(), "recommend", model_dir, "--users", users, "--k", "20000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().strip() == "["
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 128 + 13  # the shell's status for SIGPIPE
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_recommend_for_an_empty_users_file(model_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "users.txt"
    empty.write_text("\n\n")
    run_bad_input("recommend", model_dir, "--users", empty, message="holds no user id")


def test_recommend_from_a_folder_without_a_model(tmp_path: Path) -> None:
    result = run("recommend", tmp_path, "--users", "u007")
    assert result.returncode == 2
    assert "No fitted MetaRecommender" in result.stderr


# -- building a corpus and training a meta-model ----------------------------------------------
def test_build_corpus_then_train_meta(shared_data: Path, tmp_path: Path) -> None:
    labels_dir = tmp_path / "labels"
    built = run_json(
        "build-corpus",
        shared_data / "filmtrust",
        "--algorithms",
        "most_popular",
        "pure_svd",
        "--configs",
        "2",
        "--max-interactions",
        "3000",
        "--storage",
        tmp_path / "corpus.journal",
        "--out",
        labels_dir,
    )
    assert built["saved_to"] == str(labels_dir)
    assert built["n_tasks"] == 4 and built["n_configs"] == 2
    assert built["n_labels"] == built["n_tasks"] * (1 + 2)  # most_popular 1, pure_svd 2
    assert (labels_dir / "labels.csv.gz").is_file()

    trained = run_json("train-meta", labels_dir, "--out", tmp_path / "meta")
    assert trained["algorithms"] == ["most_popular", "pure_svd"]
    assert trained["n_tasks"] == built["n_tasks"]
    assert (tmp_path / "meta" / "metamodel.json").is_file()


def test_a_build_with_a_lost_configuration_says_so_and_retries_it_on_request(
    shared_data: Path, tmp_path: Path, lose_a_configuration
) -> None:
    from metarec_classic.meta import make_tasks

    storage = tmp_path / "corpus.journal"
    build = [
        "build-corpus", "filmtrust", "--algorithms", "most_popular", "pure_svd",
        "--configs", "2", "--cuts", "users:0.5", "--max-interactions", "3000",
        "--storage", storage, "--json",
    ]  # fmt: skip
    (task,) = make_tasks([("filmtrust", "filmtrust")], plan=[("users", 0.5)], max_interactions=3000)
    lose_a_configuration(storage, task, "pure_svd", 2)

    short = run(*build)
    assert short.returncode == 3, short.stderr
    assert (json.loads(short.stdout)["n_unlabelled"], json.loads(short.stdout)["n_lost"]) == (1, 1)
    assert "--retry-lost" in short.stderr
    status = run(*build, "--status")
    assert status.returncode == 0 and json.loads(status.stdout)["trials_lost"] == 1
    assert "1 configuration(s) lost" in status.stderr

    retried = run(*build, "--retry-lost")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["n_unlabelled"] == 0
    assert json.loads(retried.stdout)["n_labels"] == 1 + 2
    assert json.loads(run(*build, "--status").stdout)["trials_lost"] == 0


_EASE_STUDY = "labels-v1|lastfm-hetrec-2k/popular-3000/s0|ease"


def _ease_build(storage: Path) -> list[str]:
    """A build of six EASE trials of about a second each, so that a signal lands in one."""
    return [
        _executable(), "build-corpus", "lastfm-hetrec-2k", "--storage", str(storage),
        "--workers", "2", "--algorithms", "ease", "--configs", "6",
        "--cuts", "popular:3000", "--max-interactions", "30000",
    ]  # fmt: skip


def _ease_trials(storage: Path) -> list:
    import optuna

    from metarec_classic.tuning import resolve_storage

    try:
        study = optuna.load_study(study_name=_EASE_STUDY, storage=resolve_storage(storage))
    except KeyError:
        return []
    return study.trials


def _start_with_two_running_workers(storage: Path) -> tuple[subprocess.Popen, set[str]]:
    """Start the EASE build; return it once the command and its worker both run a trial."""
    import time

    from optuna.trial import TrialState

    process = subprocess.Popen(_ease_build(storage), stderr=subprocess.PIPE, text=True)
    workers: set[str] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline:
        running = [t for t in _ease_trials(storage) if t.state == TrialState.RUNNING]
        # In a journal the worker's name is written just after the state: wait for it.
        workers = {t.user_attrs["worker"] for t in running if "worker" in t.user_attrs}
        time.sleep(0.05)
    assert len(workers) == 2, "two workers did not start trials within two minutes"
    return process, workers


def _pid(worker: str) -> int:
    return int(worker.rsplit(":", 1)[1])


def _labelled_once_each(storage: Path) -> bool:
    from optuna.trial import TrialState

    complete = [t for t in _ease_trials(storage) if t.state == TrialState.COMPLETE]
    return sorted(t.user_attrs["design_index"] for t in complete) == list(range(6))


def test_sigterm_stops_every_worker_and_queues_their_trials_again(
    shared_data: Path, tmp_path: Path
) -> None:
    import signal

    from optuna.trial import TrialState

    storage = tmp_path / "corpus.journal"
    process, workers = _start_with_two_running_workers(storage)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "metarec: terminated: " in stderr and "rerun the same command to resume" in stderr
    assert "still running" not in stderr
    for worker in workers:  # no worker outlives the command
        with pytest.raises(ProcessLookupError):
            os.kill(_pid(worker), 0)
    trials = _ease_trials(storage)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert not [t for t in trials if "failed_trial" in t.system_attrs]  # no retry spent

    rerun = run(*_ease_build(storage)[1:])
    assert rerun.returncode == 0, rerun.stderr
    assert _labelled_once_each(storage)


def test_a_worker_killed_outright_is_replaced_by_the_command(
    shared_data: Path, tmp_path: Path
) -> None:
    import signal

    storage = tmp_path / "corpus.journal"
    process, workers = _start_with_two_running_workers(storage)
    (child,) = [w for w in workers if _pid(w) != process.pid]
    os.kill(_pid(child), signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "1 of 2 workers stopped early (worker 1: exit code -9)" in stderr
    assert _labelled_once_each(storage)
    retries = [t for t in _ease_trials(storage) if "failed_trial" in t.system_attrs]
    assert len(retries) == 1  # the killed trial, run again once


def test_workers_of_a_command_killed_outright_stop_and_hand_back_their_trials(
    shared_data: Path, tmp_path: Path
) -> None:
    import signal
    import time

    from optuna.trial import TrialState

    storage = tmp_path / "corpus.journal"
    process, workers = _start_with_two_running_workers(storage)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    (child,) = [w for w in workers if _pid(w) != process.pid]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(_pid(child), 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the worker outlived its command by a minute")
    # The worker handed its trial back; only the command's own trial was left running.
    running = [t for t in _ease_trials(storage) if t.state == TrialState.RUNNING]
    assert [_pid(t.user_attrs["worker"]) for t in running] == [process.pid]
    status = run(*_ease_build(storage)[1:], "--status", "--json")
    assert status.returncode == 0, status.stderr
    counts = json.loads(status.stdout)
    assert (counts["trials_orphaned"], counts["trials_running"]) == (1, 0)
    assert counts["eta_seconds"] is None  # nothing runs: no time left to promise
    assert "rerun the build to run them again" in status.stderr

    rerun = run(*_ease_build(storage)[1:])
    assert rerun.returncode == 0, rerun.stderr
    assert _labelled_once_each(storage)


def test_users_file_that_does_not_exist_is_bad_input(model_dir: Path, tmp_path: Path) -> None:
    result = run("recommend", model_dir, "--users", tmp_path / "users.txt")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["fit", "build-corpus", "train-meta"])
def test_an_out_path_that_is_a_file_is_refused_before_any_work(
    command: str, string_csv: Path, tmp_path: Path
) -> None:
    target = tmp_path / "afile"
    target.write_text("not a folder")
    arguments = {
        "fit": [string_csv],
        "build-corpus": ["filmtrust", "--storage", tmp_path / "s.journal"],
        "train-meta": [tmp_path / "no-labels"],
    }[command]
    result = run(command, *arguments, "--out", target)
    assert result.returncode == 2, result.stderr
    assert "is a file; give a folder" in result.stderr
    assert not (tmp_path / "s.journal").exists()  # refused before the build began
    # A folder that cannot be made (here: under a file) is refused as early.
    result = run(command, *arguments, "--out", target / "models")
    assert result.returncode == 2, result.stderr
    assert "cannot be written (Not a directory); give a folder you can write" in result.stderr
    assert not (tmp_path / "s.journal").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nosuch-dataset"], "neither an existing file or folder nor a known data set"),
        (["ml-100k", "--cuts", "users:2"], "size must be in (0, 1]"),
        (["ml-100k", "--cuts", "users"], "is not KIND:SIZE"),
        (["ml-100k", "--configs", "0"], "argument --configs: must be at least 1, got 0"),
        (["ml-100k", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
    ],
)
def test_build_corpus_checks_its_arguments_before_any_work(
    arguments: list[str], message: str, tmp_path: Path
) -> None:
    run_bad_input("build-corpus", *arguments, "--storage", tmp_path / "s.journal", message=message)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["recommend", "model", "--users", "1", "--k", "-3"], "argument --k: must be at least 1"),
        (["tune", "--demo", "--algorithm", "als", "--k", "0"], "argument --k: must be at least 1"),
        (["tune", "--demo", "--algorithm", "als", "--trials", "0"], "--trials: must be at least 1"),
        (["fit", "--demo", "--trials", "-1"], "argument --trials: must be at least 0, got -1"),
        (["fit", "--demo", "--timeout", "-5"], "must be a finite number of seconds > 0, got -5"),
        (["fit", "--demo", "--timeout", "inf"], "leave the option out for no limit"),
        (["fit", "--demo", "--min-gain", "-1"], "argument --min-gain: must be a number >= 0"),
        (["select", "--demo", "--top", "x"], "expected a whole number, got 'x'"),
    ],
)
def test_numeric_flags_are_checked_before_any_work(arguments: list[str], message: str) -> None:
    run_bad_input(*arguments, message=message)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["fit", "--demo", "--trails", "3"], "usage: metarec fit [-h]"),
        (
            ["fit", "--demo", "--trails", "3"],
            "metarec fit: error: unrecognized arguments: --trails (did you mean --trials?); "
            "see 'metarec fit --help'",
        ),
        # Nothing near: no guess.
        (
            ["recommend", "model", "--users", "1", "--zzzz"],
            "unrecognized arguments: --zzzz; see 'metarec recommend --help'",
        ),
    ],
)
def test_an_unknown_flag_is_named_with_the_command_usage(
    arguments: list[str], message: str
) -> None:
    run_bad_input(*arguments, message=message)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{"l2_reg": -1}', "'l2_reg' parameter of EASERecommender must be a float in the range"),
        ('{"popularity_penalty": true}', "must be a number, not a bool"),
    ],
)
def test_evaluate_names_a_wrong_configuration_before_reading_the_data(
    params: str, message: str, tmp_path: Path
) -> None:
    missing = tmp_path / "not-there.csv"
    run_bad_input("evaluate", missing, "--algorithm", "ease", "--params", params, message=message)


def test_reading_flags_fix_what_the_messages_name(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("user_id,rating,code\n1,5,a\n2,3,b\n3,4,a\n4,2,c\n")
    run_bad_input("info", path, message="no item_id column")
    run_bad_input("info", path, message="On the command line: --columns")
    read = run_json("info", path, "--columns", "user_id,rating,item_id")
    assert (read["n_users"], read["n_items"], read["n_interactions"]) == (4, 3, 4)
    swapped = run_json("info", path, "--columns", "item_id,rating,user_id")
    assert (swapped["n_users"], swapped["n_items"]) == (3, 4)
    run_bad_input("info", "--demo", "--sep", ",", message="--sep applies to a CSV/TSV file")


def test_header_flag_reads_unknown_names_as_a_header(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("u,i\nalice,book1\nbob,book2\nalice,book2\nbob,book3\n")
    guessed = run("info", path, "--json")
    assert guessed.returncode == 0, guessed.stderr
    assert "(u,i) was read as an interaction" in guessed.stderr
    assert "On the command line: --header yes" in guessed.stderr
    assert json.loads(guessed.stdout)["n_interactions"] == 5
    named = run("info", path, "--header", "yes", "--json")
    assert "read as an interaction" not in named.stderr
    assert json.loads(named.stdout)["n_interactions"] == 4


def test_fit_with_a_time_budget_reports_the_search(
    string_csv: Path, tiny_meta_model_dir: Path, tmp_path: Path
) -> None:
    args = ["fit", string_csv, "--meta-model", tiny_meta_model_dir, "--trials", "3"]
    document = run_json(*args, "--timeout", "600", "--out", tmp_path / "model")
    search = document["search"]
    assert search["n_trials_complete"] + search["n_trials_failed"] == 3
    assert search["n_trials_repeated"] == 0  # one process: nothing enqueued twice
    # Fits of a second on a 600 s budget never use up an algorithm's share.
    assert search["queued_skipped_for_time"] == []


def test_fit_demo_per_segment_then_recommend_names_each_users_segment(tmp_path: Path) -> None:
    out = tmp_path / "demo-model"
    document = run_json("fit", "--demo", "--segments", "auto", "--out", out)
    segments = document["segments"]
    assert segments[0]["segment"] == "no history"
    assert sum(s["n_users"] for s in segments) == run_json("info", "--demo")["n_users"]
    data = load_dataset("demo")
    counts = np.diff(data.user_items.indptr)
    heavy, empty = data.user_ids[counts.argmax()], data.user_ids[counts.argmin()]
    users = f"{heavy},{empty},someone-new"
    rows = json.loads(run("recommend", out, "--users", users, "--k", "3", "--json").stdout)
    served = {str(r["user_id"]): (r["segment"], r["algorithm"]) for r in rows}
    names = {s["segment"]: s["algorithm"] for s in segments}
    assert served[str(heavy)][1] == names[served[str(heavy)][0]]
    assert served["someone-new"] == ("no history", "most_popular")
    assert counts.min() == 0  # users whose every rating is below the demo's threshold
    assert served[str(empty)] == ("no history", "most_popular")

    # What a user rated below the threshold never comes back, even to a user with no
    # positives at all (served by popularity).
    seen = data.seen_nonpositive
    assert seen is not None and document["seen_nonpositive_never_recommended"] == seen.nnz
    critic = int(np.diff(seen.indptr).argmax())
    disliked = set(data.item_ids[seen[critic].indices].astype(str))
    for user in (critic, int(counts.argmin())):
        user_id = str(data.user_ids[user])
        args = ["recommend", out, "--users", user_id, "--k", "100", "--json"]
        listed = {str(r["item_id"]) for r in json.loads(run(*args).stdout)}
        seen_items = set(data.item_ids[seen[user].indices].astype(str))
        assert len(listed) == 100 and not listed & seen_items
        if user == critic:
            again = json.loads(run(*args, "--include-seen").stdout)
            assert {str(r["item_id"]) for r in again} & disliked  # the check can fail


def test_ratings_kept_as_weights_are_refused_at_fit_with_a_threshold_that_works(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ratings.csv"
    rows = [f"u{u},i{(u * 7 + j) % 30},{(u + j) % 5 - 1}" for u in range(40) for j in range(8)]
    path.write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    args = ("evaluate", path, "--algorithm", "als")
    run_bad_input(*args, message="training interactions have a zero or negative weight")
    run_bad_input(*args, message="On the command line: --threshold X")
    assert run("evaluate", path, "--algorithm", "als", "--threshold", "1").returncode == 0


def test_user_ids_given_on_the_command_line_are_typed_as_the_readers_type_them() -> None:
    from metarec_classic.cli import _read_user_ids

    int_map = from_dataframe(
        pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 2]}), user_col="user", item_col="item"
    ).user_map
    assert _read_user_ids("1,-2,001,1.0,u1", int_map).tolist() == [1, -2, "001", "1.0", "u1"]
