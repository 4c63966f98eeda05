"""Tests of the LightGBM meta-model: fit, rank, contributions and safe persistence."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from metarec_classic.meta import Candidate, LabelSet, MetaModel, MetaModelFileError
from metarec_classic.meta._model import FORMAT_VERSION, PORTFOLIO_SIZE
from metarec_classic.metafeatures import dataset_feature_names
from metarec_classic.recommenders import get_recommender_class
from metarec_classic.tuning import position_in_space


def _features(labels: LabelSet, row: int = 0) -> dict[str, float]:
    tasks = labels.tasks
    return {name: float(tasks.iloc[row][name]) for name in dataset_feature_names()}


@pytest.fixture
def model_dir(tiny_meta_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the saved tiny meta-model, free to damage."""
    return Path(shutil.copytree(tiny_meta_model_dir, tmp_path / "model"))


def test_fit_learns_features_algorithms_and_candidates(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel
) -> None:
    model = tiny_meta_model
    assert model.feature_names_ == list(dataset_feature_names())
    assert model.algorithms_ == sorted(tiny_labels.labels["algorithm"].unique())
    assert model.n_training_tasks_ == tiny_labels.tasks.shape[0]
    # Every algorithm's default is a candidate, and no candidate is repeated.
    keys = [(c.algorithm, json.dumps(c.config, sort_keys=True)) for c in model.candidates_]
    assert len(keys) == len(set(keys))
    for algorithm in model.algorithms_:
        default = get_recommender_class(algorithm).default_config()
        assert (algorithm, json.dumps(default, sort_keys=True)) in keys
    low, high = model.feature_ranges_["size.n_users_log"]
    assert low <= high


def test_rank_orders_every_candidate_best_first(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel
) -> None:
    table = tiny_meta_model.rank(_features(tiny_labels))
    assert list(table.columns) == [
        "algorithm",
        "config",
        "rank_score",
        "predicted_relative",
        "predicted_ndcg@10",
    ]
    assert table["rank_score"].is_monotonic_decreasing
    assert len(table) == len(tiny_meta_model.candidates_)
    assert (table["predicted_ndcg@10"] >= 0).all()
    only = tiny_meta_model.rank(_features(tiny_labels), algorithms=["pure_svd"])
    assert set(only["algorithm"]) == {"pure_svd"}


def test_rank_score_averages_the_booster_over_nearest_candidates(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel
) -> None:
    features = _features(tiny_labels)
    model = copy.copy(tiny_meta_model)
    model.smoothing_neighbors = 3
    table = model.rank(features)
    codes, params = model._encoded_candidates()
    row = model._feature_row(features)
    raw = model.booster_rank_.predict(
        model._stack(np.repeat(row[None, :], len(codes), axis=0), codes, params)
    )
    for position in (0, len(table) - 1):
        candidate = Candidate(table["algorithm"][position], table["config"][position])
        space = get_recommender_class(candidate.algorithm).search_space()
        here = position_in_space(candidate.config, space)
        same = [i for i, c in enumerate(model.candidates_) if c.algorithm == candidate.algorithm]
        distance = [
            np.abs(position_in_space(model.candidates_[i].config, space) - here).max(initial=0)
            for i in same
        ]
        nearest = [same[j] for j in np.argsort(distance, kind="stable")[:3]]
        assert table["rank_score"][position] == pytest.approx(raw[nearest].mean(), abs=1e-12)
    # most_popular has one configuration: its score is the booster's own.
    alone = model.candidates_.index(Candidate("most_popular", {}))
    assert table.loc[table["algorithm"] == "most_popular", "rank_score"].item() == pytest.approx(
        raw[alone], abs=1e-12
    )
    # Changing the count takes effect on the next ranking, although neighbours are kept.
    model.smoothing_neighbors = 2
    assert model._candidate_neighbours().shape == (len(model.candidates_), 2)
    model.smoothing_neighbors = 1
    plain = model.rank(features)
    assert sorted(plain["rank_score"]) == pytest.approx(sorted(raw), abs=1e-12)


def test_contributions_add_up_to_the_prediction(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel
) -> None:
    features = _features(tiny_labels, 1)
    table = tiny_meta_model.rank(features)
    top = Candidate(table["algorithm"][0], table["config"][0])
    contributions = tiny_meta_model.contributions(features, top)
    assert "bias" in contributions.index and "size.n_users_log" in contributions.index
    assert contributions.sum() == pytest.approx(table["rank_score"][0], abs=1e-9)
    assert contributions.abs().is_monotonic_decreasing


def test_predicted_ndcg_of_any_configuration(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel
) -> None:
    features = _features(tiny_labels, 2)
    table = tiny_meta_model.rank(features)
    # A listed candidate gets the estimate its row of the ranking shows.
    for i in (0, len(table) - 1):
        candidate = Candidate(table["algorithm"][i], table["config"][i])
        assert tiny_meta_model.predict_ndcg(features, candidate) == pytest.approx(
            table["predicted_ndcg@10"][i], rel=1e-9
        )
    # So does a configuration no label holds, as a search may find.
    listed = {json.dumps(c, sort_keys=True) for c in table["config"]}
    unseen = {"weighting": "bm25", "n_neighbors": 123, "bm25_k1": 1.7, "bm25_b": 0.31}
    assert json.dumps(unseen, sort_keys=True) not in listed
    estimate = tiny_meta_model.predict_ndcg(features, Candidate("itemknn", unseen))
    assert 0 < estimate < 1
    with pytest.raises(ValueError, match=r"no tunable parameters \['k'\]"):
        tiny_meta_model.predict_ndcg(features, Candidate("itemknn", {"k": 5}))
    with pytest.raises(ValueError, match="knows no algorithm 'ease'"):
        tiny_meta_model.predict_ndcg(features, Candidate("ease", {}))


def test_portfolios_cover_the_training_tasks_greedily(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel
) -> None:
    model = tiny_meta_model
    assert set(model.portfolios_) == set(model.algorithms_)
    # Shares recomputed through the public ranking, one training task at a time.
    rankings = [model.rank(_features(tiny_labels, row)) for row in range(len(tiny_labels.tasks))]
    for algorithm, portfolio in model.portfolios_.items():
        assert 1 <= len(portfolio) <= PORTFOLIO_SIZE
        keys = [json.dumps(c, sort_keys=True) for c in portfolio]
        assert len(set(keys)) == len(keys)
        shares = []
        for table in rankings:
            table = table[table["algorithm"] == algorithm]
            relative = table["predicted_relative"].clip(lower=0).to_numpy()
            by_key = dict(
                zip(
                    (json.dumps(c, sort_keys=True) for c in table["config"]),
                    relative / max(relative.max(), 1e-12),
                    strict=True,
                )
            )
            shares.append(by_key)
        frame = pd.DataFrame(shares)  # tasks x candidates of the algorithm
        covered = np.zeros(len(frame))
        for key in keys:
            gains = np.maximum(frame.to_numpy(), covered[:, None]).mean(axis=0)
            # Each choice is the best next one, and it helps.
            assert np.maximum(frame[key], covered).mean() == pytest.approx(gains.max())
            assert gains.max() > covered.mean() or not covered.any()
            covered = np.maximum(covered, frame[key].to_numpy())
        if len(keys) < min(PORTFOLIO_SIZE, frame.shape[1]):
            # Stopped early: no candidate would have raised the coverage.
            gains = np.maximum(frame.to_numpy(), covered[:, None]).mean(axis=0)
            assert gains.max() == pytest.approx(covered.mean())


def test_save_load_round_trip_gives_identical_rankings(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel, tiny_meta_model_dir: Path
) -> None:
    loaded = MetaModel.load(tiny_meta_model_dir)
    assert loaded.get_params() == tiny_meta_model.get_params()
    assert loaded.feature_ranges_ == tiny_meta_model.feature_ranges_
    assert loaded.portfolios_ == tiny_meta_model.portfolios_
    for row in range(len(tiny_labels.tasks)):
        features = _features(tiny_labels, row)
        pd.testing.assert_frame_equal(loaded.rank(features), tiny_meta_model.rank(features))
        assert loaded.out_of_range(features) == tiny_meta_model.out_of_range(features)


def test_a_changed_booster_file_is_refused(model_dir: Path) -> None:
    booster = model_dir / "relative.lgb.txt"
    text = booster.read_text()
    position = text.index("leaf_value=") + len("leaf_value=")
    digit = text[position]
    booster.write_text(text[:position] + ("1" if digit != "1" else "2") + text[position + 1 :])
    with pytest.raises(MetaModelFileError, match=r"checksum of .*relative\.lgb\.txt.* does not"):
        MetaModel.load(model_dir)


def test_a_truncated_booster_file_is_refused(model_dir: Path) -> None:
    booster = model_dir / "best.lgb.txt"
    booster.write_text(booster.read_text()[:-200])
    with pytest.raises(MetaModelFileError, match=r"checksum .* changed or truncated"):
        MetaModel.load(model_dir)


def test_a_truncated_json_is_refused(model_dir: Path) -> None:
    meta = model_dir / "metamodel.json"
    meta.write_text(meta.read_text()[:100])
    with pytest.raises(MetaModelFileError, match=r"not valid JSON .* damaged or truncated"):
        MetaModel.load(model_dir)


def test_another_format_version_is_refused(model_dir: Path) -> None:
    meta = model_dir / "metamodel.json"
    document = json.loads(meta.read_text())
    document["format_version"] = FORMAT_VERSION + 1
    meta.write_text(json.dumps(document))
    with pytest.raises(MetaModelFileError, match=rf"format version {FORMAT_VERSION + 1}.*Retrain"):
        MetaModel.load(model_dir)


def test_missing_files_are_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(MetaModelFileError, match=r"metamodel\.json is missing"):
        MetaModel.load(tmp_path / "nowhere")
    (model_dir / "best.lgb.txt").unlink()
    with pytest.raises(MetaModelFileError, match=r"best\.lgb\.txt' is missing"):
        MetaModel.load(model_dir)


def test_unfitted_and_bad_inputs(tiny_labels: LabelSet, tiny_meta_model: MetaModel) -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        MetaModel().rank(_features(tiny_labels))
    features = _features(tiny_labels)
    del features["pop.top1_share"]
    with pytest.raises(ValueError, match=r"Meta-features \['pop.top1_share'\] are missing"):
        tiny_meta_model.rank(features)
    failed = LabelSet(tiny_labels.labels.assign(state="FAIL", score=np.nan), tiny_labels.tasks)
    with pytest.raises(ValueError, match="no completed trial"):
        MetaModel().fit(failed)


def test_out_of_range_reports_features_far_outside_training(
    tiny_labels: LabelSet, tiny_meta_model: MetaModel
) -> None:
    features = _features(tiny_labels)
    low, high = tiny_meta_model.feature_ranges_["size.n_users_log"]
    features["size.n_users_log"] = high + 10 * (high - low) + 5
    report = tiny_meta_model.out_of_range(features)
    assert "size.n_users_log" in report
    assert report["size.n_users_log"] == (features["size.n_users_log"], low, high)
