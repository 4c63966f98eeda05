"""Tests of MetaRecommender: zero-trial and warm-started fits, original ids, persistence."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from metarec_classic import MetaRecommender
from metarec_classic.data import (
    Interactions,
    from_dataframe,
    load_dataset,
    random_holdout_split,
)
from metarec_classic.evaluation import evaluate
from metarec_classic.exceptions import DataWarning
from metarec_classic.meta import WARM_REFINE_SHARE, Candidate, MetaModel, WarmStart
from metarec_classic.recommenders import RecommenderFileError
from metarec_classic.tuning import REFINE_START, Portfolio, compare_on_validation


@pytest.fixture(scope="module")
def string_data(ml100k: Interactions) -> Interactions:
    """200 ml-100k users with ids like "u007" and items like "00042" (leading zeros)."""
    frame = ml100k.to_frame()
    frame = frame[frame["user_id"] < 200]
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u:03d}" for u in frame["user_id"]],
            "item_id": [f"{i:05d}" for i in frame["item_id"]],
        }
    )
    return from_dataframe(frame, name="strings")


@pytest.fixture(scope="module")
def fitted(string_data: Interactions, tiny_meta_model: MetaModel) -> MetaRecommender:
    return MetaRecommender(tiny_meta_model, n_trials=0).fit(string_data)


def test_zero_trials_fits_the_meta_model_pick(
    fitted: MetaRecommender, string_data: Interactions
) -> None:
    assert fitted.tuning_ is None
    assert fitted.algorithm_ == fitted.selection_.best.algorithm
    assert fitted.config_ == fitted.selection_.best.config
    assert fitted.model_.name == fitted.algorithm_
    assert fitted.model_.user_items_.nnz == string_data.n_interactions
    assert fitted.user_map_ == string_data.user_map and fitted.fit_seconds_ > 0


def _warm_search(
    data: Interactions, meta_model: MetaModel, n_trials: int
) -> tuple[MetaRecommender, WarmStart, list[dict]]:
    """A fitted warm-started search, its plan, and the queue as study parameters."""
    rec = MetaRecommender(meta_model, n_trials=n_trials, random_state=1).fit(data)
    assert rec.tuning_ is not None
    plan = rec.selection_.warm_start(n_trials)
    portfolio = Portfolio(plan.algorithms)
    return rec, plan, [portfolio.encode(c) for c in plan.queue]


def test_small_search_is_warm_started_with_the_queue(
    string_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    rec, plan, queued = _warm_search(string_data, tiny_meta_model, 3)
    algorithms, trials = plan.algorithms, rec.tuning_.study.trials
    n_run = min(3, len(queued))
    assert [t.params for t in trials[:n_run]] == queued[:n_run]
    assert rec.tuning_.n_complete == 3
    assert rec.algorithm_ == rec.tuning_.best_algorithm
    assert rec.config_ == rec.tuning_.best_config
    assert rec.algorithm_ in algorithms


def test_a_longer_search_refines_its_best_configuration_between_the_queue(
    string_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    rec, plan, queued = _warm_search(string_data, tiny_meta_model, 12)
    assert plan.refine_share == WARM_REFINE_SHARE
    trials = rec.tuning_.study.trials
    fixed = [t.system_attrs.get("fixed_params") for t in trials]
    start = min(len(queued), max(len(plan.algorithms), REFINE_START))
    assert fixed[:start] == queued[:start]
    moves = [i for i in range(start, len(trials)) if fixed[i] not in queued]
    assert len(moves) == round(WARM_REFINE_SHARE * (12 - start))
    for i in moves:  # one parameter of the best trial before it, changed
        best = max(trials[:i], key=lambda t: (t.value, -t.number))
        changed = {k for k in fixed[i] if fixed[i][k] != best.params.get(k)}
        assert len(changed) == 1 and fixed[i]["algorithm"] == best.params["algorithm"]


def test_recommend_with_original_string_ids(fitted: MetaRecommender) -> None:
    table = fitted.recommend(["u007", "u010"], k=4)
    assert list(table.columns) == ["user_id", "item_id", "rank", "score"]
    assert list(table["user_id"]) == ["u007"] * 4 + ["u010"] * 4
    assert list(table["rank"]) == [1, 2, 3, 4] * 2
    assert all(isinstance(i, str) and len(i) == 5 for i in table["item_id"])
    assert set(table["item_id"]) <= set(fitted.item_map_.ids)
    # Items of the user's history are not recommended.
    row = fitted.user_map_.to_index(["u007"])[0]
    seen = set(fitted.item_map_.ids[fitted.model_.user_items_[row].indices])
    assert not seen & set(table.loc[table["user_id"] == "u007", "item_id"])


def test_an_unseen_user_gets_the_popular_list(fitted: MetaRecommender) -> None:
    with pytest.warns(DataWarning, match=r"1 of 2 users are not in the training data .*popular"):
        table = fitted.recommend(["stranger", "u007"], k=5)
    stranger = table[table["user_id"] == "stranger"]
    assert list(stranger["rank"]) == [1, 2, 3, 4, 5]
    popularity = fitted.model_.item_popularity_
    expected = fitted.item_map_.ids[np.argsort(-popularity, kind="stable")[:5]]
    assert set(stranger["item_id"]) == set(expected)
    # An integer id is not the string "7": it is unseen too, not user "u007".
    assert len(fitted.recommend([7], k=3)) == 3


def test_save_load_round_trip_gives_identical_recommendations(
    fitted: MetaRecommender, tmp_path: Path
) -> None:
    folder = fitted.save(tmp_path / "rec")
    loaded = MetaRecommender.load(folder)
    users = ["u001", "u007", "u150", "nobody"]
    pd.testing.assert_frame_equal(loaded.recommend(users, k=7), fitted.recommend(users, k=7))
    assert loaded.algorithm_ == fitted.algorithm_ and loaded.config_ == fitted.config_
    assert loaded.user_map_ == fitted.user_map_ and loaded.item_map_ == fitted.item_map_
    assert loaded.saved_selection_["best"]["algorithm"] == fitted.algorithm_


def test_a_meta_model_object_does_not_break_saving(fitted: MetaRecommender, tmp_path: Path) -> None:
    """Regression: the nested parameters of a MetaModel object (``meta_model__...``) were
    saved, and loading then failed with an unexpected keyword argument."""
    folder = fitted.save(tmp_path / "rec")
    params = json.loads((folder / "metarecommender.json").read_text())["params"]
    assert not any("__" in name for name in params)
    assert MetaRecommender.load(folder).get_params()["n_trials"] == 0


def test_tampered_model_arrays_are_refused(fitted: MetaRecommender, tmp_path: Path) -> None:
    folder = fitted.save(tmp_path / "rec")
    arrays = folder / "model" / "arrays.npz"
    raw = bytearray(arrays.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    arrays.write_bytes(bytes(raw))
    with pytest.raises(RecommenderFileError, match=r"checksum .* does not match"):
        MetaRecommender.load(folder)


@pytest.fixture(scope="module")
def rated_data(shared_data: Path) -> Interactions:
    """200 ml-100k users' ratings; the ones >= 4 are positives, the rest seen only."""
    ratings = load_dataset(shared_data / "ml-100k", positive_threshold=None).to_frame()
    ratings = ratings[ratings["user_id"] < 200]
    data = from_dataframe(ratings, rating_col="rating", name="rated").binarize(4)
    assert data.seen_nonpositive is not None and data.seen_nonpositive.nnz > 5000
    return data


def _seen_nonpositive_listed(table: pd.DataFrame, data: Interactions) -> int:
    assert data.seen_nonpositive is not None
    rows = data.user_map.to_index(table["user_id"].to_numpy())
    cols = data.item_map.to_index(table["item_id"].to_numpy())
    return int(np.asarray(data.seen_nonpositive[rows, cols]).sum())


def test_a_known_id_of_another_type_is_pointed_out(
    rated_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    rec = MetaRecommender(tiny_meta_model).fit(rated_data)  # integer ids
    with pytest.warns(DataWarning, match=r"The training ids are ints: pass 1, not '1'"):
        rec.recommend(["1"], k=3)
    with pytest.warns(DataWarning) as caught:
        rec.recommend(["nobody"], k=3)
    assert "training ids are" not in str(caught[0].message)


def test_items_rated_below_the_threshold_are_never_recommended(
    rated_data: Interactions, tiny_meta_model: MetaModel, tmp_path: Path
) -> None:
    rec = MetaRecommender(tiny_meta_model).fit(rated_data)
    assert rec.seen_nonpositive_.nnz == rated_data.seen_nonpositive.nnz  # type: ignore[union-attr]
    users = rated_data.user_ids
    table = rec.recommend(users, k=20)
    assert _seen_nonpositive_listed(table, rated_data) == 0
    assert table.groupby("user_id").size().eq(20).all()  # the lists are still full
    # The check can fail: without the exclusion some low-rated items come back.
    assert _seen_nonpositive_listed(rec.recommend(users, k=20, exclude_seen=False), rated_data)
    loaded = MetaRecommender.load(rec.save(tmp_path / "rec"))
    pd.testing.assert_frame_equal(loaded.recommend(users, k=20), table)


def test_a_search_validates_without_the_low_rated_items(
    rated_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    as_served = MetaRecommender(tiny_meta_model, n_trials=3).fit(rated_data)
    unaware = MetaRecommender(tiny_meta_model, n_trials=3).fit(
        replace(rated_data, seen_nonpositive=None)
    )
    assert as_served.tuning_ is not None and unaware.tuning_ is not None
    # The same trials, scored on lists from which the low-rated items are taken out.
    served, blind = as_served.tuning_.trials, unaware.tuning_.trials
    pd.testing.assert_frame_equal(served.filter(like="config."), blind.filter(like="config."))
    assert (served["score"] > blind["score"]).all()


@pytest.mark.parametrize("damage", ["change", "remove"])
def test_a_damaged_or_missing_seen_file_is_refused(
    rated_data: Interactions, tiny_meta_model: MetaModel, tmp_path: Path, damage: str
) -> None:
    folder = MetaRecommender(tiny_meta_model).fit(rated_data).save(tmp_path / "rec")
    seen = folder / "seen_nonpositive.npz"
    if damage == "remove":
        seen.unlink()
        match = "is missing; the saved model is incomplete"
    else:
        raw = bytearray(seen.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        seen.write_bytes(bytes(raw))
        match = r"checksum .* does not match"
    with pytest.raises(RecommenderFileError, match=match):
        MetaRecommender.load(folder)


def test_load_of_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No fitted MetaRecommender .*`metarec fit"):
        MetaRecommender.load(tmp_path)


def test_explain_lists_meta_features_with_contributions(fitted: MetaRecommender) -> None:
    frame = fitted.explain(top=5)
    assert list(frame.columns) == ["feature", "value", "contribution"]
    assert 0 < len(frame) <= 5
    assert set(frame["feature"]) <= set(fitted.selection_.features)
    for _, row in frame.iterrows():
        assert row["value"] == fitted.selection_.features[row["feature"]]
    assert frame["contribution"].abs().is_monotonic_decreasing


def test_explain_after_load_says_what_is_missing(fitted: MetaRecommender, tmp_path: Path) -> None:
    loaded = MetaRecommender.load(fitted.save(tmp_path / "rec"))
    with pytest.raises(NotFittedError, match="loaded from disk does not keep"):
        loaded.explain()


def test_bad_arguments(string_data: Interactions, tiny_meta_model: MetaModel) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        MetaRecommender(tiny_meta_model).recommend(["u007"])
    with pytest.raises(TypeError, match="must be an Interactions"):
        MetaRecommender(tiny_meta_model).fit(string_data.user_items)
    with pytest.raises(ValueError, match="`n_trials` must be an int >= 0"):
        MetaRecommender(tiny_meta_model, n_trials=-1).fit(string_data)
    with pytest.raises(ValueError, match="`timeout` must be a finite number of seconds"):
        MetaRecommender(tiny_meta_model, n_trials=2, timeout=0).fit(string_data)


def test_one_unknown_id_does_not_send_known_users_to_the_fallback(
    fitted: MetaRecommender,
) -> None:
    """Regression: an unknown id of another type once made every user look unknown."""
    known = fitted.user_map_.ids[0]
    alone = fitted.recommend([known], k=5)
    mixed = fitted.recommend([known, 12345], k=5)
    assert mixed[mixed["user_id"] == known]["item_id"].tolist() == alone["item_id"].tolist()


def test_an_edited_model_document_is_refused(fitted: MetaRecommender, tmp_path: Path) -> None:
    folder = fitted.save(tmp_path / "model")
    path = folder / "metarecommender.json"
    document = json.loads(path.read_text())
    document["user_ids"]["ids"] = document["user_ids"]["ids"][1:]  # shifts every user
    path.write_text(json.dumps(document))
    with pytest.raises(RecommenderFileError, match="checksum"):
        MetaRecommender.load(folder)


@pytest.mark.parametrize("edit", ["drop the checksum", "not an object"])
def test_a_model_document_without_a_checksum_is_refused(
    fitted: MetaRecommender, tmp_path: Path, edit: str
) -> None:
    folder = fitted.save(tmp_path / "model")
    path = folder / "metarecommender.json"
    document = json.loads(path.read_text())
    del document["sha256"]
    path.write_text(json.dumps(document if edit == "drop the checksum" else [document]))
    with pytest.raises(RecommenderFileError, match=r"holds no checksum \(its 'sha256' entry"):
        MetaRecommender.load(folder)


def test_edited_recommender_parameters_are_refused(fitted: MetaRecommender, tmp_path: Path) -> None:
    folder = fitted.save(tmp_path / "model")
    path = folder / "model" / "recommender.json"
    document = json.loads(path.read_text())
    document["params"] = {**document["params"], "unexpected": 1}
    path.write_text(json.dumps(document))
    with pytest.raises(RecommenderFileError, match="checksum"):
        MetaRecommender.load(folder)


# -- per-segment choice ------------------------------------------------------------------------
def _segment_user_model(algorithms: tuple[str, ...], light: str = "most_popular") -> object:
    """A per-user meta-model trained on synthetic labels in which heavy users do best with
    pure_svd (a factorisation) and light users with ``light``; the rest score a flat
    0.15 whatever the user."""
    from metarec_classic.meta import UserMetaModel
    from metarec_classic.metafeatures import USER_FEATURE_NAMES, dataset_feature_names

    rng = np.random.default_rng(0)
    users, scores, tasks = [], [], []
    for task in range(6):
        task_id = f"task-{task}"
        tasks.append(
            {"task_id": task_id, **{n: float(rng.random()) for n in dataset_feature_names()}}
        )
        n = rng.choice([1, 2, 3, 4, 8, 15, 30, 60, 120, 250], size=300).astype(float)
        features = pd.DataFrame({name: rng.random(300) for name in USER_FEATURE_NAMES})
        features["user_activity.n_interactions"] = n
        features["user_activity.n_interactions_log"] = np.log1p(n)
        users.append(features.assign(task_id=task_id, user_index=np.arange(300)))
        share = np.log1p(n) / np.log1p(250)
        truth = {"pure_svd": 0.45 * share, light: 0.4 - 0.35 * share}
        for algorithm in algorithms:
            value = truth.get(algorithm, np.full(300, 0.15))
            scores.append(
                pd.DataFrame(
                    {
                        "task_id": task_id,
                        "algorithm": algorithm,
                        "user_index": np.arange(300),
                        "ndcg": np.clip(value + rng.normal(0, 0.03, 300), 0, 1),
                    }
                )
            )
    return UserMetaModel(n_estimators=100, min_child_samples=20).fit(
        pd.concat(users), pd.concat(scores), pd.DataFrame(tasks)
    )


@pytest.fixture(scope="module")
def segmented(string_data: Interactions, tiny_meta_model: MetaModel) -> MetaRecommender:
    user_model = _segment_user_model(tuple(tiny_meta_model.algorithms_))
    return MetaRecommender(
        tiny_meta_model, segments="activity", user_meta_model=user_model, min_segment_size=5
    ).fit(string_data)


def test_segments_give_heavy_users_the_factorisation_and_light_users_popularity(
    segmented: MetaRecommender,
) -> None:
    table = segmented.explain_segments().set_index("segment")
    # These 200 users have at least 5 positives but one; 5-19 is the light segment.
    assert table.loc["5-19", "algorithm"] == "most_popular"
    assert table.loc["100+", "algorithm"] == "pure_svd"
    assert table["n_users"].sum() == len(segmented.user_map_)
    fitted_algorithms = [type(m).name for m in segmented.models_]
    assert sorted(set(fitted_algorithms)) == sorted(set(table["algorithm"]))
    assert len(fitted_algorithms) == len(set(fitted_algorithms))  # one model per choice


def test_each_user_gets_the_lists_of_their_segments_model(
    segmented: MetaRecommender, string_data: Interactions, tmp_path: Path
) -> None:
    counts = np.diff(string_data.user_items.indptr)
    light, heavy = int(np.flatnonzero((counts >= 5) & (counts < 20))[0]), int(counts.argmax())
    users = string_data.user_ids[[light, heavy]]
    table = segmented.recommend(users, k=5)
    for row, user in zip((light, heavy), users, strict=True):
        model = segmented.models_[segmented.user_route_[row]]
        expected, _ = model.recommend(np.array([row]), k=5)
        got = table[table["user_id"] == user]["item_id"].tolist()
        assert got == segmented.item_map_.to_ids(expected[0][expected[0] >= 0]).tolist()
    assert type(segmented.models_[segmented.user_route_[light]]).name == "most_popular"
    assert type(segmented.models_[segmented.user_route_[heavy]]).name == "pure_svd"

    segmented.save(tmp_path / "model")
    loaded = MetaRecommender.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.recommend(users, k=5), table)
    pd.testing.assert_frame_equal(loaded.explain_segments(), segmented.explain_segments())
    # A user never seen in training is served by the model of users without history.
    unseen = loaded.recommend(["nobody"], k=5)
    assert len(unseen) == 5

    serving = loaded.serving([*users, "nobody"])
    assert serving["segment"].tolist() == ["5-19", "100+", "no history"]
    assert serving["algorithm"].tolist() == ["most_popular", "pure_svd", "most_popular"]
    pd.testing.assert_frame_equal(serving, segmented.serving([*users, "nobody"]))


def test_after_a_search_each_segments_algorithm_takes_its_searched_configuration(
    string_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    # Light users are best served by an algorithm the search tries but does not choose.
    unsegmented = MetaRecommender(tiny_meta_model, n_trials=20).fit(string_data)
    assert unsegmented.tuning_ is not None
    guesses = unsegmented.selection_.algorithms().set_index("algorithm")["config"]
    # One whose searched configuration differs from the meta-model's guess, so that the
    # segment's configuration tells which of the two it took.
    other = next(
        a
        for a, searched in unsegmented.tuning_.best_configs.items()
        if a != unsegmented.algorithm_ and dict(guesses[a]) != searched
    )
    user_model = _segment_user_model(tuple(tiny_meta_model.algorithms_), light=other)
    rec = MetaRecommender(
        tiny_meta_model,
        segments="activity",
        user_meta_model=user_model,
        min_segment_size=5,
        n_trials=20,
    ).fit(string_data)
    assert rec.tuning_ is not None and rec.algorithm_ == unsegmented.algorithm_ != other
    table = rec.explain_segments().set_index("segment")
    assert table.loc["5-19", "algorithm"] == other
    assert json.loads(table.loc["5-19", "config"]) == rec.tuning_.best_configs[other]
    guessed = rec.selection_.algorithms().set_index("algorithm").loc[other, "config"]
    assert dict(guessed) != rec.tuning_.best_configs[other]  # the search found better
    served = next(m for m in rec.models_ if type(m).name == other)
    assert {k: served.get_params()[k] for k in rec.tuning_.best_configs[other]} == (
        rec.tuning_.best_configs[other]
    )


def test_segments_must_be_a_known_mode(string_data: Interactions) -> None:
    with pytest.raises(ValueError, match="'auto', 'activity' or None"):
        MetaRecommender(segments="per-user").fit(string_data)


def test_explain_segments_needs_a_segmented_fit(fitted: MetaRecommender) -> None:
    with pytest.raises(NotFittedError, match="segments="):
        fitted.explain_segments()


def test_explain_segments_measures_what_each_segment_is_served(
    string_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    split = random_holdout_split(string_data, test_fraction=0.3, random_state=0)
    user_model = _segment_user_model(tuple(tiny_meta_model.algorithms_))
    rec = MetaRecommender(
        tiny_meta_model, segments="activity", user_meta_model=user_model, min_segment_size=5
    ).fit(split.train)
    table = rec.explain_segments(split.test)
    assert "measured_ndcg@10" not in rec.explain_segments().columns
    # By hand: every user with a test positive, scored by the model of their segment.
    for position, row in table.iterrows():
        members = np.flatnonzero(rec.user_segment_ == position)
        scores = []
        for user in members:
            model = rec.models_[rec.user_route_[user]]
            result = evaluate(model, split.train, split.test, k=10, metrics=("ndcg",), users=[user])
            scores.extend(result.per_user["ndcg@10"].tolist())
        assert row["measured_users"] == len(scores)
        if scores:
            assert row["measured_ndcg@10"] == pytest.approx(np.mean(scores))
        else:
            assert np.isnan(row["measured_ndcg@10"])
    assert (
        table["measured_users"].sum()
        == evaluate(rec.model_, split.train, split.test, k=10, metrics=("ndcg",)).n_users_evaluated
    )
    with pytest.raises(ValueError, match="held-out part of the split"):
        rec.explain_segments(
            from_dataframe(
                pd.DataFrame({"user": [1, 2], "item": [1, 2]}), user_col="user", item_col="item"
            )
        )


def test_saving_over_a_model_replaces_all_of_it(
    segmented: MetaRecommender, fitted: MetaRecommender, tmp_path: Path
) -> None:
    folder = segmented.save(tmp_path / "model")
    assert len(segmented.models_) > 1 and (folder / "model-1").is_dir()
    fitted.save(folder)  # one model: the segmented model's other folders must go
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["model"]
    loaded = MetaRecommender.load(folder)
    assert loaded.segments_ is None and len(loaded.models_) == 1


def test_predicted_ndcg_is_that_of_the_searched_configuration(
    string_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    rec = MetaRecommender(tiny_meta_model, n_trials=20).fit(string_data)
    assert rec.tuning_ is not None
    pick = rec.selection_.table.iloc[0]  # the zero-trial pick
    assert (pick["algorithm"], dict(pick["config"])) != (rec.algorithm_, rec.config_)
    expected = tiny_meta_model.predict_ndcg(
        rec.selection_.features, Candidate(rec.algorithm_, rec.config_)
    )
    assert rec.predicted_ndcg() == pytest.approx(expected)
    assert rec.predicted_ndcg() != pytest.approx(float(pick["predicted_ndcg@10"]))


def test_a_search_replaces_the_pick_only_for_a_gain_beyond_the_noise(
    string_data: Interactions, tiny_meta_model: MetaModel
) -> None:
    pick = MetaRecommender(tiny_meta_model).select(string_data).best
    greedy = MetaRecommender(tiny_meta_model, n_trials=20, min_gain=0).fit(string_data)
    assert greedy.tuning_ is not None and greedy.search_gain_ is None
    best = (greedy.tuning_.best_algorithm, greedy.tuning_.best_config)
    assert (greedy.algorithm_, greedy.config_) == best != (pick.algorithm, pick.config)

    # The same search, with a bar no gain can pass: the meta-model's pick stays.
    cautious = MetaRecommender(tiny_meta_model, n_trials=20, min_gain=1e9).fit(string_data)
    gain = cautious.search_gain_
    assert gain is not None and 0 < gain.standard_error
    assert (cautious.algorithm_, cautious.config_) == (pick.algorithm, pick.config)
    # The gain is measured on a split the search did not use, so it is not the gap
    # between the two trials' scores, which selection flatters.
    on_search_split = greedy.tuning_.best_score - _score_of(greedy, pick)
    assert gain.difference != pytest.approx(on_search_split, abs=1e-9)
    assert gain == compare_on_validation(best, (pick.algorithm, pick.config), string_data, seed=1)

    # With the default bar the rule is applied as documented.
    default = MetaRecommender(tiny_meta_model, n_trials=20).fit(string_data)
    assert default.search_gain_ is not None
    replaced = default.search_gain_.difference > default.search_gain_.standard_error
    assert (default.algorithm_, default.config_) == (
        best if replaced else (pick.algorithm, pick.config)
    )


def _score_of(rec: MetaRecommender, candidate: Candidate) -> float:
    assert rec.tuning_ is not None
    return next(
        score
        for algorithm, config, score in rec.tuning_.completed
        if (algorithm, config) == (candidate.algorithm, candidate.config)
    )


@pytest.mark.parametrize("min_gain", [-1.0, float("nan"), float("inf"), "1"])
def test_min_gain_must_be_a_number_of_standard_errors(
    string_data: Interactions, tiny_meta_model: MetaModel, min_gain: object
) -> None:
    with pytest.raises(ValueError, match="`min_gain` must be a number of standard errors"):
        MetaRecommender(tiny_meta_model, n_trials=2, min_gain=min_gain).fit(string_data)
