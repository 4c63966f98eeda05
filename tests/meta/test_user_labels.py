"""Tests of the per-user labels: choices, sampled users, resuming, and the files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.sparse as sp
from optuna.trial import TrialState

from metarec_classic.data import Interactions
from metarec_classic.meta import (
    USER_LABELS_VERSION,
    LabelSet,
    Task,
    UserLabelSet,
    build_labels,
    build_user_labels,
    export_user_labels,
)
from metarec_classic.meta._user_labels import _best_configs, _study_name
from metarec_classic.metafeatures import USER_FEATURE_NAMES, user_metafeatures
from metarec_classic.recommenders import PureSVDRecommender
from metarec_classic.tuning import resolve_storage

ALGORITHMS = ("most_popular", "itemknn", "pure_svd")
USERS_PER_TASK = 40
SCORE_KEYS = ["task_id", "algorithm", "user_index"]


@pytest.fixture(scope="module")
def labels(
    tiny_tasks: list[Task], loader: Callable[[str], Interactions], tmp_path_factory
) -> LabelSet:
    storage = tmp_path_factory.mktemp("labels") / "labels.journal"
    return build_labels(
        tiny_tasks,
        algorithms=ALGORITHMS,
        n_configs=3,
        storage=storage,
        loader=loader,
        landmark_seconds=5,
    )


@pytest.fixture(scope="module")
def built(
    labels: LabelSet,
    tiny_tasks: list[Task],
    loader: Callable[[str], Interactions],
    tmp_path_factory,
) -> tuple[Path, UserLabelSet]:
    storage = tmp_path_factory.mktemp("user-labels") / "users.journal"
    user_labels = build_user_labels(
        labels, tiny_tasks, storage=storage, loader=loader, users_per_task=USERS_PER_TASK
    )
    return storage, user_labels


def _sorted(user_labels: UserLabelSet) -> tuple[pd.DataFrame, pd.DataFrame]:
    users = user_labels.users.sort_values(["task_id", "user_index"]).reset_index(drop=True)
    scores = user_labels.scores.sort_values(SCORE_KEYS).reset_index(drop=True)
    return users, scores


def _trials(storage: Path, task: Task, algorithm: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(
        study_name=_study_name(task, algorithm), storage=resolve_storage(storage)
    )
    return study.get_trials(deepcopy=False)


# -- what is built -------------------------------------------------------------------------
def test_every_pair_scores_the_same_sampled_users(
    built: tuple[Path, UserLabelSet], tiny_tasks: list[Task], small_split
) -> None:
    _, user_labels = built
    assert set(user_labels.users["task_id"]) == {task.task_id for task in tiny_tasks}
    assert len(user_labels.scores) == len(tiny_tasks) * len(ALGORITHMS) * USERS_PER_TASK
    for task_id, users in user_labels.users.groupby("task_id"):
        sampled = users["user_index"].to_numpy()
        assert 0 < len(sampled) <= USERS_PER_TASK
        assert len(set(sampled)) == len(sampled)
        scores = user_labels.scores[user_labels.scores["task_id"] == task_id]
        assert set(scores["algorithm"]) == set(ALGORITHMS)
        for _, per_algorithm in scores.groupby("algorithm"):
            np.testing.assert_array_equal(per_algorithm["user_index"].to_numpy(), sampled)
    # The sampled users of the first task have validation positives.
    _, validation = small_split
    first = user_labels.users[user_labels.users["task_id"] == tiny_tasks[0].task_id]
    positives = np.asarray((validation.user_items > 0).sum(axis=1)).ravel()
    assert (positives[first["user_index"].to_numpy()] > 0).all()


def test_per_user_values_average_to_the_study_value(
    built: tuple[Path, UserLabelSet], tiny_tasks: list[Task]
) -> None:
    storage, user_labels = built
    for task in tiny_tasks:
        for algorithm in ALGORITHMS:
            (trial,) = _trials(storage, task, algorithm)
            assert trial.state == TrialState.COMPLETE
            scores = user_labels.scores
            mine = scores[(scores["task_id"] == task.task_id) & (scores["algorithm"] == algorithm)]
            assert mine["ndcg"].between(0, 1).all()
            assert mine["ndcg"].mean() == pytest.approx(trial.value, abs=1e-12)


def test_every_user_sampled_gives_back_the_dataset_level_label(
    labels: LabelSet, tiny_tasks: list[Task], loader: Callable[[str], Interactions]
) -> None:
    # With every validation user sampled, the per-user mean is the label of the best
    # configuration: the fit is the label build's, to the last bit.
    task = tiny_tasks[0]
    one_task = LabelSet(
        labels.labels[labels.labels["task_id"] == task.task_id],
        labels.tasks[labels.tasks["task_id"] == task.task_id],
        dict(labels.provenance),
    )
    user_labels = build_user_labels(one_task, [task], loader=loader, users_per_task=10**6)
    means = user_labels.scores.groupby("algorithm")["ndcg"].mean()
    complete = one_task.labels[one_task.labels["state"] == "COMPLETE"]
    best = complete.groupby("algorithm")["score"].max()
    pd.testing.assert_series_equal(means.sort_index(), best.sort_index(), check_names=False)


def test_best_configuration_is_the_highest_score_and_ties_go_to_the_first_trial() -> None:
    rows = [
        ("t", "itemknn", 0, {"k": 1}, 0.2, "COMPLETE"),
        ("t", "itemknn", 1, {"k": 2}, 0.4, "COMPLETE"),
        ("t", "itemknn", 2, {"k": 3}, 0.4, "COMPLETE"),
        ("t", "itemknn", 3, {"k": 4}, None, "FAIL"),
        ("t", "pure_svd", 0, {"factors": 8}, 0.1, "FAIL"),
        ("t", "pure_svd", 1, {"factors": 16}, 0.05, "COMPLETE"),
        ("u", "itemknn", 2, {"k": 5}, 0.3, "COMPLETE"),
        ("u", "itemknn", 0, {"k": 6}, 0.3, "COMPLETE"),
    ]
    table = pd.DataFrame(
        [
            {
                "task_id": task,
                "algorithm": algorithm,
                "trial": trial,
                "config": json.dumps(config),
                "score": score,
                "state": state,
            }
            for task, algorithm, trial, config, score, state in rows
        ]
    )
    labels = LabelSet(table, pd.DataFrame({"task_id": ["t", "u"]}))
    assert _best_configs(labels, None) == {
        "t": {"itemknn": {"k": 2}, "pure_svd": {"factors": 16}},
        "u": {"itemknn": {"k": 6}},
    }
    assert _best_configs(labels, ["pure_svd"]) == {"t": {"pure_svd": {"factors": 16}}}


def test_the_built_configuration_is_the_best_label(
    built: tuple[Path, UserLabelSet], labels: LabelSet, tiny_tasks: list[Task]
) -> None:
    storage, _ = built
    complete = labels.labels[labels.labels["state"] == "COMPLETE"]
    for task in tiny_tasks:
        for algorithm in ("itemknn", "pure_svd"):
            mine = complete[
                (complete["task_id"] == task.task_id) & (complete["algorithm"] == algorithm)
            ]
            best = mine.sort_values(["score", "trial"], ascending=[False, True]).iloc[0]
            (trial,) = _trials(storage, task, algorithm)
            assert trial.params == json.loads(best["config"])


def test_user_features_are_those_of_the_train_split_and_finite(
    built: tuple[Path, UserLabelSet], tiny_tasks: list[Task], small_split
) -> None:
    _, user_labels = built
    assert list(user_labels.users.columns) == ["task_id", "user_index", *USER_FEATURE_NAMES]
    assert np.isfinite(user_labels.users[list(USER_FEATURE_NAMES)].to_numpy()).all()
    assert not user_labels.scores.isna().any().any()
    train, _ = small_split
    first = user_labels.users[user_labels.users["task_id"] == tiny_tasks[0].task_id]
    expected = user_metafeatures(train, random_state=tiny_tasks[0].seed)
    np.testing.assert_allclose(
        first[list(USER_FEATURE_NAMES)].to_numpy(),
        expected.iloc[first["user_index"].to_numpy()].to_numpy(),
    )


# -- resuming ------------------------------------------------------------------------------
def test_interrupted_build_resumes_to_the_same_user_labels_without_rerunning(
    built: tuple[Path, UserLabelSet],
    labels: LabelSet,
    tiny_tasks: list[Task],
    loader: Callable[[str], Interactions],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = tmp_path / "users.journal"
    original = PureSVDRecommender._fit
    fits: list[int] = []

    def interrupted_fit(self: PureSVDRecommender, user_items: sp.csr_matrix) -> None:
        fits.append(1)
        if len(fits) == 2:  # the pure_svd fit of the second task
            raise KeyboardInterrupt
        original(self, user_items)

    monkeypatch.setattr(PureSVDRecommender, "_fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        build_user_labels(
            labels, tiny_tasks, storage=storage, loader=loader, users_per_task=USERS_PER_TASK
        )
    monkeypatch.setattr(PureSVDRecommender, "_fit", original)
    partial = export_user_labels(storage, labels, tiny_tasks, users_per_task=USERS_PER_TASK)
    assert set(partial.scores["task_id"]) == {t.task_id for t in tiny_tasks[:2]}
    n_pairs = partial.scores.groupby(["task_id", "algorithm"]).ngroups
    assert partial.provenance["n_unscored"] == len(tiny_tasks) * len(ALGORITHMS) - n_pairs

    resumed = build_user_labels(
        labels, tiny_tasks, storage=storage, loader=loader, users_per_task=USERS_PER_TASK
    )
    for mine, theirs in zip(_sorted(resumed), _sorted(built[1]), strict=True):
        pd.testing.assert_frame_equal(mine, theirs)
    assert resumed.provenance["n_unscored"] == built[1].provenance["n_unscored"] == 0
    # Every pair ran once, but the interrupted one, which ran once more.
    interrupted = (tiny_tasks[1].task_id, "pure_svd")
    for task in tiny_tasks:
        for algorithm in ALGORITHMS:
            states = [t.state for t in _trials(storage, task, algorithm)]
            if (task.task_id, algorithm) == interrupted:
                assert states == [TrialState.FAIL, TrialState.COMPLETE]
            else:
                assert states == [TrialState.COMPLETE]

    # A finished build run again fits nothing.
    def no_fit(self: PureSVDRecommender, user_items: sp.csr_matrix) -> None:
        raise AssertionError("a finished pair was fitted again")

    monkeypatch.setattr(PureSVDRecommender, "_fit", no_fit)
    again = build_user_labels(
        labels, tiny_tasks, storage=storage, loader=loader, users_per_task=USERS_PER_TASK
    )
    pd.testing.assert_frame_equal(_sorted(again)[1], _sorted(resumed)[1])


def test_a_pair_whose_every_try_died_is_counted_and_retried_on_request(
    built: tuple[Path, UserLabelSet],
    labels: LabelSet,
    tiny_tasks: list[Task],
    loader: Callable[[str], Interactions],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    let_every_try_die,
) -> None:
    from metarec_classic.meta._labels import _is_label
    from metarec_classic.tuning import open_design_study

    storage = tmp_path / "users.journal"
    task = tiny_tasks[0]
    config = _best_configs(labels, None)[task.task_id]["pure_svd"]
    study = open_design_study(
        resolve_storage(storage), _study_name(task, "pure_svd"), [config], is_label=_is_label
    )
    assert study is not None
    let_every_try_die(study)
    with caplog.at_level("WARNING", logger="metarec_classic"):
        short = build_user_labels(
            labels, tiny_tasks, storage=storage, loader=loader, users_per_task=USERS_PER_TASK
        )
    assert short.provenance["n_unscored"] == 1
    assert "1 (task, algorithm) pairs have no per-user scores" in caplog.text
    retried = build_user_labels(
        labels,
        tiny_tasks,
        storage=storage,
        loader=loader,
        users_per_task=USERS_PER_TASK,
        retry_lost=True,
    )
    assert retried.provenance["n_unscored"] == 0
    for mine, theirs in zip(_sorted(retried), _sorted(built[1]), strict=True):
        pd.testing.assert_frame_equal(mine, theirs)


def test_storage_of_another_sample_size_is_refused(
    built: tuple[Path, UserLabelSet], labels: LabelSet, tiny_tasks: list[Task]
) -> None:
    storage, _ = built
    with pytest.raises(ValueError, match="users_per_task=40"):
        export_user_labels(storage, labels, tiny_tasks, users_per_task=USERS_PER_TASK + 1)


def test_storage_of_other_best_configurations_is_refused(
    built: tuple[Path, UserLabelSet], labels: LabelSet, tiny_tasks: list[Task]
) -> None:
    storage, _ = built
    changed = labels.labels.copy()
    best = changed[changed["algorithm"] == "itemknn"]["score"].idxmax()
    changed.loc[best, "score"] = -1.0  # another configuration becomes the best
    with pytest.raises(ValueError, match="labels changed"):
        export_user_labels(storage, LabelSet(changed, labels.tasks), tiny_tasks, users_per_task=40)


def test_tasks_missing_from_the_task_list_are_refused(
    labels: LabelSet, tiny_tasks: list[Task], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not among `tasks`"):
        build_user_labels(labels, tiny_tasks[:1], storage=tmp_path / "u.journal")
    with pytest.raises(ValueError, match="positive int"):
        build_user_labels(labels, tiny_tasks, storage=tmp_path / "u.journal", users_per_task=0)


# -- files ---------------------------------------------------------------------------------
def test_save_load_round_trip(built: tuple[Path, UserLabelSet], tmp_path: Path) -> None:
    _, user_labels = built
    folder = user_labels.save(tmp_path / "labels")
    assert sorted(p.name for p in folder.iterdir()) == [
        "user_features.csv.gz",
        "user_provenance.json",
        "user_scores.csv.gz",
    ]
    loaded = UserLabelSet.load(folder)
    assert loaded.provenance == user_labels.provenance
    assert loaded.provenance["user_labels_version"] == USER_LABELS_VERSION
    users, scores = _sorted(user_labels)
    loaded_users, loaded_scores = _sorted(loaded)
    pd.testing.assert_frame_equal(loaded_users, users, rtol=1e-5)
    pd.testing.assert_frame_equal(loaded_scores, scores, rtol=1e-5)


def test_load_refuses_missing_files_and_another_version(
    built: tuple[Path, UserLabelSet], tmp_path: Path
) -> None:
    _, user_labels = built
    with pytest.raises(FileNotFoundError, match=r"user_scores\.csv\.gz"):
        UserLabelSet.load(tmp_path)
    folder = user_labels.save(tmp_path / "labels")
    provenance = json.loads((folder / "user_provenance.json").read_text())
    provenance["user_labels_version"] = USER_LABELS_VERSION + 1
    (folder / "user_provenance.json").write_text(json.dumps(provenance))
    with pytest.raises(ValueError, match="version"):
        UserLabelSet.load(folder)


def test_without_family_drops_exactly_that_familys_users(
    built: tuple[Path, UserLabelSet], labels: LabelSet
) -> None:
    _, user_labels = built
    kept = user_labels.without_family("movielens", labels)
    assert set(kept.users["task_id"]) == {"filmtrust/popular-300/s0"}
    assert set(kept.scores["task_id"]) == {"filmtrust/popular-300/s0"}
    same = user_labels.without_family("movielens", labels.tasks)
    pd.testing.assert_frame_equal(same.scores, kept.scores)


# -- relabelling one algorithm -------------------------------------------------------------
@pytest.fixture
def itemknn_alone(
    labels: LabelSet,
    tiny_tasks: list[Task],
    loader: Callable[[str], Interactions],
    tmp_path: Path,
) -> Callable[[int], UserLabelSet]:
    """Per-user labels of itemknn alone, for ``users_per_task`` users per task."""

    def build(users_per_task: int) -> UserLabelSet:
        return build_user_labels(
            labels,
            tiny_tasks,
            storage=tmp_path / f"itemknn-{users_per_task}.journal",
            loader=loader,
            users_per_task=users_per_task,
            algorithms=["itemknn"],
        )

    return build


def test_relabelled_scores_replace_one_algorithm_and_keep_the_users(
    built: tuple[Path, UserLabelSet], itemknn_alone: Callable[[int], UserLabelSet]
) -> None:
    _, user_labels = built
    again = itemknn_alone(USERS_PER_TASK)
    assert set(again.scores["algorithm"]) == {"itemknn"}
    # A stale score of that algorithm is replaced, the others are kept as they were.
    stale = user_labels.scores.copy()
    stale.loc[stale["algorithm"] == "itemknn", "ndcg"] = -1.0
    merged = UserLabelSet(user_labels.users, stale, dict(user_labels.provenance)).relabelled(again)
    users, scores = _sorted(merged)
    expected_users, expected_scores = _sorted(user_labels)
    pd.testing.assert_frame_equal(users, expected_users)
    pd.testing.assert_frame_equal(scores, expected_scores)
    assert merged.provenance["n_scores"] == len(merged.scores)


def test_relabelled_scores_of_other_users_are_refused(
    built: tuple[Path, UserLabelSet], itemknn_alone: Callable[[int], UserLabelSet]
) -> None:
    _, user_labels = built
    with pytest.raises(ValueError, match="other users"):
        user_labels.relabelled(itemknn_alone(USERS_PER_TASK // 2))
