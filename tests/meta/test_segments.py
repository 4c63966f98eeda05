"""Tests of the per-user meta-model, user segments and the per-segment choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from metarec_classic.data import Interactions
from metarec_classic.meta import MetaModelFileError
from metarec_classic.meta._segments import (
    N_INTERACTIONS,
    NO_HISTORY,
    Segment,
    UserMetaModel,
    activity_segments,
    choose_per_segment,
    learned_segments,
)
from metarec_classic.metafeatures import (
    USER_FEATURE_NAMES,
    dataset_feature_names,
    dataset_metafeatures,
    user_metafeatures,
)

ALGORITHMS = ("als", "itemknn", "most_popular")
#: Bins of training interactions the synthetic users are drawn from (inclusive ranges).
BINS = ((0, 0), (1, 4), (5, 19), (20, 99), (100, 400))


# -- synthetic per-user labels ---------------------------------------------------------------
def _user_features(n_users: int, rng: np.random.Generator) -> pd.DataFrame:
    """Random user meta-features, with activity spread evenly over the bins."""
    bins = rng.integers(0, len(BINS), size=n_users)
    low = np.array([b[0] for b in BINS])[bins]
    high = np.array([b[1] for b in BINS])[bins]
    n = rng.integers(low, high + 1).astype(np.float64)
    columns = {name: rng.random(n_users) for name in USER_FEATURE_NAMES}
    columns[N_INTERACTIONS] = n
    columns["user_activity.n_interactions_log"] = np.log1p(n)
    return pd.DataFrame(columns, index=pd.RangeIndex(n_users, name="user_index"))


def _true_ndcg(n: np.ndarray) -> dict[str, np.ndarray]:
    """Heavy users do best with als, light ones with most_popular; itemknn in between."""
    share = np.log1p(n) / np.log1p(400)
    return {
        "als": 0.4 * share,
        "most_popular": 0.35 - 0.3 * share,
        "itemknn": np.full(n.shape, 0.15),
    }


def _synthetic_labels(
    n_tasks: int = 6, n_users: int = 200, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = dataset_feature_names()
    users, scores, tasks = [], [], []
    for task in range(n_tasks):
        task_id = f"task-{task}"
        tasks.append({"task_id": task_id, "dataset": "synthetic", **dict.fromkeys(names, 0.0)})
        tasks[-1].update({name: float(rng.random()) for name in names})
        features = _user_features(n_users, rng).reset_index()
        users.append(features.assign(task_id=task_id))
        truth = _true_ndcg(features[N_INTERACTIONS].to_numpy())
        for algorithm in ALGORITHMS:
            noisy = np.clip(truth[algorithm] + rng.normal(0, 0.05, n_users), 0, 1)
            scores.append(
                pd.DataFrame(
                    {
                        "task_id": task_id,
                        "algorithm": algorithm,
                        "user_index": features["user_index"],
                        "ndcg": noisy,
                    }
                )
            )
    return (
        pd.concat(users, ignore_index=True),
        pd.concat(scores, ignore_index=True),
        (pd.DataFrame(tasks)),
    )


def _dataset_features(seed: int = 99) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {name: float(rng.random()) for name in dataset_feature_names()}


@pytest.fixture(scope="module")
def labels() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return _synthetic_labels()


@pytest.fixture(scope="module")
def model(labels: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> UserMetaModel:
    return UserMetaModel(n_estimators=80, min_child_samples=20).fit(*labels)


@pytest.fixture(scope="module")
def new_users() -> pd.DataFrame:
    """Users of an unseen dataset, drawn like the training users."""
    return _user_features(1000, np.random.default_rng(7))


@pytest.fixture(scope="module")
def predictions(model: UserMetaModel, new_users: pd.DataFrame) -> pd.DataFrame:
    return model.predict(new_users, _dataset_features())


@pytest.fixture
def model_dir(model: UserMetaModel, tmp_path: Path) -> Path:
    return model.save(tmp_path / "user-model")


# -- the model -------------------------------------------------------------------------------
def test_fit_records_features_and_algorithms(
    model: UserMetaModel, labels: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    assert model.user_feature_names_ == list(USER_FEATURE_NAMES)
    assert model.feature_names_ == list(dataset_feature_names())
    assert model.algorithms_ == sorted(ALGORITHMS)
    assert model.n_training_tasks_ == 6
    assert model.n_training_rows_ == len(labels[1])


def test_predict_has_one_row_per_user_and_one_column_per_algorithm(
    model: UserMetaModel, new_users: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    assert predictions.shape == (len(new_users), len(ALGORITHMS))
    assert predictions.index.equals(new_users.index)
    assert list(predictions.columns) == sorted(ALGORITHMS)
    assert predictions.columns.name == "algorithm"
    values = predictions.to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    only = model.predict(new_users, _dataset_features(), algorithms=["most_popular", "als"])
    assert list(only.columns) == ["most_popular", "als"]
    np.testing.assert_allclose(only["als"], predictions["als"])
    assert model.predict(new_users.iloc[:0], _dataset_features()).shape == (0, 3)


def test_predictions_follow_the_synthetic_truth(
    new_users: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    n = new_users[N_INTERACTIONS]
    heavy, light = n >= 50, (n >= 1) & (n <= 3)
    assert (predictions.loc[heavy, "als"] > predictions.loc[heavy, "most_popular"]).mean() > 0.9
    assert (predictions.loc[light, "most_popular"] > predictions.loc[light, "als"]).mean() > 0.9
    truth = pd.DataFrame(_true_ndcg(n.to_numpy()), index=n.index)
    error = (predictions - truth[predictions.columns]).abs().to_numpy().mean()
    assert error < 0.03


def test_fit_is_deterministic_and_ignores_row_order(
    labels: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], new_users: pd.DataFrame
) -> None:
    users, scores, tasks = labels
    first = UserMetaModel(n_estimators=20, random_state=3).fit(users, scores, tasks)
    second = UserMetaModel(n_estimators=20, random_state=3).fit(users, scores, tasks)
    shuffled = UserMetaModel(n_estimators=20, random_state=3).fit(
        users.sample(frac=1.0, random_state=1),
        scores.sample(frac=1.0, random_state=2),
        tasks.iloc[::-1],
    )
    expected = first.booster_.model_to_string()
    assert second.booster_.model_to_string() == expected
    assert shuffled.booster_.model_to_string() == expected
    pd.testing.assert_frame_equal(
        first.predict(new_users, _dataset_features()),
        shuffled.predict(new_users, _dataset_features()),
    )


def test_bad_inputs_are_refused(
    model: UserMetaModel,
    labels: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    new_users: pd.DataFrame,
) -> None:
    users, scores, tasks = labels
    with pytest.raises(NotFittedError, match="not fitted yet"):
        UserMetaModel().predict(new_users, _dataset_features())
    with pytest.raises(ValueError, match=r"User meta-features \['user_pop.mean_pct'\]"):
        model.predict(new_users.drop(columns="user_pop.mean_pct"), _dataset_features())
    features = _dataset_features()
    del features["pop.top1_share"]
    with pytest.raises(ValueError, match=r"Meta-features \['pop.top1_share'\] are missing"):
        model.predict(new_users, features)
    with pytest.raises(ValueError, match=r"\['ease'\] were not seen in training"):
        model.predict(new_users, _dataset_features(), algorithms=["ease"])
    with pytest.raises(ValueError, match="lacks the columns \\['ndcg'\\]"):
        UserMetaModel().fit(users, scores.drop(columns="ndcg"), tasks)
    with pytest.raises(ValueError, match="missing from `users`"):
        UserMetaModel().fit(users.iloc[1:], scores, tasks)
    with pytest.raises(ValueError, match="missing from `tasks`"):
        UserMetaModel().fit(users, scores, tasks.iloc[1:])
    with pytest.raises(ValueError, match="more than once"):
        UserMetaModel().fit(users, pd.concat([scores, scores.iloc[:1]]), tasks)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        UserMetaModel().fit(users, scores.assign(ndcg=scores["ndcg"] + 2), tasks)
    with pytest.raises(ValueError, match="no NDCG@10"):
        UserMetaModel().fit(users, scores.assign(ndcg=np.nan), tasks)


# -- persistence -----------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_predictions(
    model: UserMetaModel, model_dir: Path, new_users: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "user_metamodel.json",
        "user_ndcg.lgb.txt",
    ]
    loaded = UserMetaModel.load(model_dir)
    assert loaded.get_params() == model.get_params()
    assert loaded.user_feature_names_ == model.user_feature_names_
    assert loaded.feature_names_ == model.feature_names_
    assert loaded.algorithms_ == model.algorithms_
    pd.testing.assert_frame_equal(loaded.predict(new_users, _dataset_features()), predictions)


def test_a_changed_booster_file_is_refused(model_dir: Path) -> None:
    booster = model_dir / "user_ndcg.lgb.txt"
    text = booster.read_text()
    position = text.index("leaf_value=") + len("leaf_value=")
    digit = text[position]
    booster.write_text(text[:position] + ("1" if digit != "1" else "2") + text[position + 1 :])
    with pytest.raises(MetaModelFileError, match=r"checksum of .*user_ndcg\.lgb\.txt.* changed"):
        UserMetaModel.load(model_dir)


def test_a_truncated_booster_file_is_refused(model_dir: Path) -> None:
    booster = model_dir / "user_ndcg.lgb.txt"
    booster.write_text(booster.read_text()[:-200])
    with pytest.raises(MetaModelFileError, match=r"checksum .* changed or truncated"):
        UserMetaModel.load(model_dir)


def test_a_changed_json_document_is_refused(model_dir: Path) -> None:
    meta = model_dir / "user_metamodel.json"
    document = json.loads(meta.read_text())
    document["algorithms"] = document["algorithms"][::-1]
    meta.write_text(json.dumps(document))
    with pytest.raises(MetaModelFileError, match=r"checksum of .*user_metamodel\.json"):
        UserMetaModel.load(model_dir)


def test_a_truncated_json_is_refused(model_dir: Path) -> None:
    meta = model_dir / "user_metamodel.json"
    meta.write_text(meta.read_text()[:100])
    with pytest.raises(MetaModelFileError, match=r"not valid JSON .* damaged or truncated"):
        UserMetaModel.load(model_dir)


def test_another_format_version_is_refused(model_dir: Path) -> None:
    meta = model_dir / "user_metamodel.json"
    document = json.loads(meta.read_text())
    document["format_version"] = 99
    meta.write_text(json.dumps(document))
    with pytest.raises(MetaModelFileError, match=r"format version 99.*Retrain"):
        UserMetaModel.load(model_dir)


def test_missing_files_and_mismatched_pairs_are_refused(
    model_dir: Path, tmp_path: Path, labels: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    with pytest.raises(MetaModelFileError, match=r"user_metamodel\.json is missing"):
        UserMetaModel.load(tmp_path / "nowhere")
    # A booster from a model with other features, next to this model's JSON.
    users, scores, tasks = labels
    other = UserMetaModel(n_estimators=5).fit(users.drop(columns="user_pop.std_pct"), scores, tasks)
    other_dir = other.save(tmp_path / "other")
    shutil.copy(other_dir / "user_ndcg.lgb.txt", model_dir / "user_ndcg.lgb.txt")
    with pytest.raises(MetaModelFileError, match="checksum"):
        UserMetaModel.load(model_dir)
    (model_dir / "user_ndcg.lgb.txt").unlink()
    with pytest.raises(MetaModelFileError, match=r"user_ndcg\.lgb\.txt' is missing"):
        UserMetaModel.load(model_dir)


# -- segments --------------------------------------------------------------------------------
def test_activity_segments_partition_users_by_interactions(new_users: pd.DataFrame) -> None:
    segments = activity_segments(new_users)
    assert [s.name for s in segments] == [NO_HISTORY, "1-4", "5-19", "20-99", "100+"]
    masks = np.vstack([s.mask for s in segments])
    assert (masks.sum(axis=0) == 1).all()
    n = new_users[N_INTERACTIONS].to_numpy()
    assert (n[segments[0].mask] == 0).all()
    assert ((n[segments[1].mask] >= 1) & (n[segments[1].mask] <= 4)).all()
    assert (n[segments[4].mask] >= 100).all()
    assert segments[3].rule == f"{N_INTERACTIONS} >= 20 and {N_INTERACTIONS} < 100"
    for segment in segments:
        np.testing.assert_array_equal(segment.contains(new_users), segment.mask)
    # Empty bins are kept: the bins are the same for every dataset.
    few = activity_segments(new_users[new_users[N_INTERACTIONS] < 5])
    assert [s.size for s in few][2:] == [0, 0, 0]


def test_per_segment_choice_picks_als_for_heavy_and_most_popular_for_light_users(
    new_users: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    choices = choose_per_segment(
        predictions, activity_segments(new_users), "itemknn", min_segment_size=50
    )
    by_name = {c.segment.name: c for c in choices}
    assert list(by_name) == [NO_HISTORY, "1-4", "5-19", "20-99", "100+"]
    assert by_name["1-4"].algorithm == "most_popular"
    assert by_name["20-99"].algorithm == "als"
    assert by_name["100+"].algorithm == "als"
    for name in ("1-4", "20-99", "100+"):
        choice = by_name[name]
        assert not choice.fell_back
        assert choice.candidate == choice.algorithm
        assert choice.predicted_ndcg > choice.predicted_ndcg_dataset_choice
        assert choice.n_users == choice.segment.size >= 50
        assert "over itemknn" in choice.reason
        members = predictions.loc[choice.segment.mask, choice.algorithm]
        assert choice.predicted_ndcg == pytest.approx(members.mean())
    json.dumps([c.to_dict() for c in choices])  # JSON-ready
    # When the dataset-level choice is already best for a segment, nothing falls back.
    als = {
        c.segment.name: c
        for c in choose_per_segment(predictions, activity_segments(new_users), "als")
    }
    assert als["100+"].algorithm == "als" and not als["100+"].fell_back
    assert "predicted best" in als["100+"].reason
    assert als["1-4"].algorithm == "most_popular"


def test_small_segments_and_small_gains_fall_back(
    new_users: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    segments = activity_segments(new_users)
    small = choose_per_segment(predictions, segments, "itemknn", min_segment_size=10_000)
    for choice in small[1:]:
        assert choice.algorithm == "itemknn"
        assert choice.predicted_ndcg == choice.predicted_ndcg_dataset_choice
        assert choice.fell_back
        assert "fewer than min_segment_size=10000" in choice.reason
    assert small[4].candidate == "als"
    assert small[4].predicted_ndcg_candidate > small[4].predicted_ndcg
    margin = choose_per_segment(predictions, segments, "itemknn", min_relative_gain=100.0)
    assert all(c.algorithm == "itemknn" and c.fell_back for c in margin[1:])
    assert "below the margin" in margin[1].reason
    absolute = choose_per_segment(predictions, segments, "itemknn", min_gain=1.0)
    assert all(c.algorithm == "itemknn" and c.fell_back for c in absolute[1:])


def test_the_no_history_segment_is_always_answered() -> None:
    predictions = pd.DataFrame(
        {"als": [0.3, 0.4, 0.1], "most_popular": [0.2, 0.1, 0.3]}, index=[10, 11, 12]
    )
    everyone = Segment("everyone", "every user", np.ones(3, dtype=bool))
    choices = choose_per_segment(
        predictions, [everyone], "most_popular", min_segment_size=1, max_share=1.0
    )
    assert [c.segment.name for c in choices] == [NO_HISTORY, "everyone"]
    first = choices[0]
    assert first.n_users == 0 and first.algorithm == "most_popular" and first.fell_back
    assert np.isnan(first.predicted_ndcg) and "no user" in first.reason
    assert "every model serves the most popular training items" in first.reason
    assert "most popular" not in choices[1].reason
    assert first.to_dict()["predicted_ndcg@10"] is None
    assert choices[1].algorithm == "als"
    # Ties go to the dataset-level choice.
    tied = pd.DataFrame({"als": [0.2], "most_popular": [0.2]})
    one = Segment("one", "every user", np.ones(1, dtype=bool))
    assert choose_per_segment(tied, [one], "most_popular", min_segment_size=1, max_share=1.0)[
        1
    ].algorithm == ("most_popular")
    with pytest.raises(ValueError, match="'ease' is not a column"):
        choose_per_segment(predictions, [everyone], "ease")
    with pytest.raises(ValueError, match="has 3 rows"):
        choose_per_segment(predictions, [one], "als")


def test_a_segment_of_nearly_every_user_keeps_the_dataset_level_choice() -> None:
    predictions = pd.DataFrame({"als": [0.4] * 10, "most_popular": [0.1] * 10})
    most = Segment("most", "nine users", np.arange(10) < 9)
    rest = Segment("rest", "one user", np.arange(10) >= 9)
    choices = choose_per_segment(predictions, [most, rest], "most_popular", min_segment_size=1)
    assert [c.algorithm for c in choices[1:]] == ["most_popular", "als"]
    assert choices[1].fell_back and "nearly all" in choices[1].reason
    with pytest.raises(ValueError, match="max_share"):
        choose_per_segment(predictions, [most], "als", max_share=0.0)


def test_learned_segments_find_a_rule_on_interactions(
    new_users: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    segments = learned_segments(new_users, predictions, min_segment_size=40, max_depth=2)
    assert segments[0].name == NO_HISTORY
    assert segments[0].size == int((new_users[N_INTERACTIONS] == 0).sum())
    learned = segments[1:]
    # The depth-2 tree has four leaves, but each side of its root split expects the same
    # algorithm in both of its leaves, so they are merged back: two segments remain.
    assert len(learned) == 2
    masks = np.vstack([s.mask for s in segments])
    assert (masks.sum(axis=0) == 1).all()  # a partition of the users
    for segment in segments:
        np.testing.assert_array_equal(segment.contains(new_users), segment.mask)
    for segment in learned:
        assert segment.size >= 40
        assert segment.rule.startswith(f"{N_INTERACTIONS} ")
        assert segment.expected_best in ALGORITHMS
    # The split that matters is on the number of interactions, near the crossing point.
    splits = [
        c for s in learned for c in s.conditions if c.feature == N_INTERACTIONS and c.value > 1
    ]
    assert splits and all(4 <= c.value <= 40 for c in splits)
    assert [s.expected_best for s in learned] == ["most_popular", "als"]
    heavy = next(s for s in learned if s.expected_best == "als")
    light = next(s for s in learned if s.expected_best == "most_popular")
    n = new_users[N_INTERACTIONS]
    assert n[heavy.mask].min() > n[light.mask].max()


def test_learned_segments_with_few_users_form_one_segment(
    new_users: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    segments = learned_segments(new_users, predictions, min_segment_size=5000)
    assert len(segments) == 2
    assert segments[1].rule == f"{N_INTERACTIONS} >= 1"
    assert segments[1].size == int((new_users[N_INTERACTIONS] >= 1).sum())
    with pytest.raises(ValueError, match="same index"):
        learned_segments(new_users, predictions.iloc[::-1])
    # Only n_interactions_log given: the rule uses it.
    logs = learned_segments(
        new_users, predictions, min_segment_size=40, features=["user_activity.n_interactions_log"]
    )
    assert any("user_activity.n_interactions_log" in s.rule for s in logs[1:])


# -- real data -------------------------------------------------------------------------------
def test_predict_on_real_user_features(
    model: UserMetaModel, small_split: tuple[Interactions, Interactions]
) -> None:
    train = small_split[0]
    users = user_metafeatures(train, random_state=0)
    features = dataset_metafeatures(train, landmarkers=False)
    predictions = model.predict(users, features)
    assert predictions.shape == (train.user_items.shape[0], len(ALGORITHMS))
    assert not predictions.isna().to_numpy().any()
    segments = activity_segments(users)
    assert sum(s.size for s in segments) == len(users)
    choices = choose_per_segment(predictions, segments, "itemknn", min_segment_size=5)
    assert len(choices) == 5
    learned = learned_segments(users, predictions, min_segment_size=10)
    assert sum(s.size for s in learned) == len(users)
