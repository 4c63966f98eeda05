"""Tests of selection: reproducible rankings, range warnings and the warm-start plan."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from metarec_classic.data import Interactions, from_sparse
from metarec_classic.exceptions import DataError
from metarec_classic.meta import QUEUE_SPREAD, MetaModel, Selection, select
from metarec_classic.recommenders import get_recommender_class
from metarec_classic.testing import make_user_items
from metarec_classic.tuning import position_in_space


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


def test_select_is_identical_for_the_same_data_and_seed(
    small_split: tuple[Interactions, Interactions], tiny_meta_model: MetaModel
) -> None:
    train = small_split[0]
    first = select(train, tiny_meta_model, random_state=4)
    second = select(train, tiny_meta_model, random_state=4)
    assert first.features == second.features
    pd.testing.assert_frame_equal(first.table, second.table)
    assert list(first.table["rank"]) == list(range(1, len(first.table) + 1))
    assert first.best.algorithm == first.table["algorithm"][0]
    assert first.best.config == first.table["config"][0]
    assert first.seconds > 0


def test_select_refuses_data_no_model_can_be_fitted_on(tiny_meta_model: MetaModel) -> None:
    data = from_sparse(make_user_items(n_users=30, n_items=20, seed=0), name="ratings")
    empty = data.select_entries(np.zeros(data.n_interactions, dtype=bool))
    with pytest.raises(DataError, match=r"ratings holds no interactions, .*\(30 users, 20 items\)"):
        select(empty, tiny_meta_model)
    ratings = data.user_items.data.copy()
    ratings[:3] = -1.0  # ratings of a -10..10 scale kept as weights
    with pytest.raises(DataError, match=r"3 of the .* have a zero or negative weight"):
        select(data.with_weights(ratings), tiny_meta_model)


def test_out_of_range_features_are_reported_and_logged(
    tiny_meta_model: MetaModel, caplog: pytest.LogCaptureFixture
) -> None:
    # A tiny, dense synthetic matrix is unlike any of the training tasks.
    data = from_sparse(make_user_items(n_users=30, n_items=12, density=0.6), name="odd")
    with caplog.at_level(logging.WARNING, logger="metarec_classic.meta"):
        selection = select(data, tiny_meta_model)
    assert "size.n_users_log" in selection.out_of_range
    value, low, _ = selection.out_of_range["size.n_users_log"]
    assert value == pytest.approx(np.log1p(30)) and value < low
    assert "outside the meta-model's training range" in caplog.text
    summary = selection.to_dict(top=3)
    assert len(summary["candidates"]) == 3
    assert summary["out_of_range"]["size.n_users_log"]["value"] == value


def _selection(out_of_range: bool) -> Selection:
    """A hand-made ranking over four algorithms, two configurations each."""
    rows = [
        ("pure_svd", {"n_factors": 64, "n_iter": 5}),
        ("itemknn", {"weighting": "bm25", "n_neighbors": 50, "bm25_k1": 1.0, "bm25_b": 0.5}),
        ("pure_svd", {"n_factors": 32, "n_iter": 4}),
        ("ease", {"l2_reg": 100.0}),
        ("itemknn", get_recommender_class("itemknn").default_config()),
        ("most_popular", {}),
        ("ease", {"l2_reg": 10.0}),
        ("rp3beta", {"alpha": 1.0, "beta": 0.2, "n_neighbors": 50}),
    ]
    extra = {"size.n_users_log": (1.0, 2.0, 3.0)} if out_of_range else {}
    return Selection(_ranking(rows), {}, extra)


def _ranking(rows: list[tuple[str, dict]]) -> pd.DataFrame:
    """A selection table holding ``rows`` (algorithm, config) best first."""
    return pd.DataFrame(
        {
            "rank": range(1, len(rows) + 1),
            "algorithm": [a for a, _ in rows],
            "config": [c for _, c in rows],
            "predicted_relative": np.linspace(0.9, 0.5, len(rows)),
            "predicted_ndcg@10": np.linspace(0.3, 0.1, len(rows)),
        }
    )


@pytest.mark.parametrize("n_trials", [1, 6, 20])
def test_warm_start_queues_configs_of_the_chosen_algorithms(n_trials: int) -> None:
    plan = _selection(out_of_range=False).warm_start(n_trials)
    algorithms, queue = plan.algorithms, plan.queue
    assert algorithms == ["pure_svd", "itemknn", "ease"][: min(3, n_trials)]
    assert {c["algorithm"] for c in queue} == set(algorithms)
    assert len(queue) <= n_trials
    keys = [_key(c) for c in queue]
    assert len(keys) == len(set(keys))
    if n_trials >= 6:  # room for a guess and the default of each algorithm
        for algorithm in algorithms:
            default = {"algorithm": algorithm, **get_recommender_class(algorithm).default_config()}
            assert _key(default) in keys
    # The best guess of each algorithm comes first, in rank order.
    assert [c["algorithm"] for c in queue[: len(algorithms)]] == algorithms
    assert queue[0] == {"algorithm": "pure_svd", "n_factors": 64, "n_iter": 5}


def test_warm_start_skips_near_copies_of_a_queued_configuration() -> None:
    # EASE's l2_reg is searched on a log scale; 100 and 101 are near copies, 30 is not.
    rows = [("ease", {"l2_reg": v}) for v in (100.0, 101.0, 99.0, 30.0, 102.0, 3000.0)]
    queue = Selection(_ranking(rows), {}).warm_start(20).queue
    ease = [c["l2_reg"] for c in queue if c["algorithm"] == "ease"]
    default = get_recommender_class("ease").default_config()["l2_reg"]
    assert ease[:3] == [100.0, 30.0, 3000.0]
    assert ease[3:] == [default]
    space = get_recommender_class("ease").search_space()
    guesses = [position_in_space({"l2_reg": v}, space) for v in ease[:3]]
    for i, first in enumerate(guesses):
        for second in guesses[i + 1 :]:
            assert np.abs(first - second).max() >= QUEUE_SPREAD


def test_warm_start_alternates_ranked_configurations_with_the_portfolio() -> None:
    rows = [("ease", {"l2_reg": v, "popularity_penalty": 0.0}) for v in (100.0, 30.0, 3000.0)]
    portfolio = [
        {"l2_reg": 100.0, "popularity_penalty": 0.0},  # already ranked first: not repeated
        {"l2_reg": 5.0, "popularity_penalty": 0.3},
        {"l2_reg": 101.0, "popularity_penalty": 0.01},  # a near copy of a ranked one
        {"l2_reg": 8000.0, "popularity_penalty": 0.1},
    ]
    selection = Selection(_ranking(rows), {}, portfolios={"ease": portfolio})
    queue = selection.warm_start(20).queue
    assert [(c["l2_reg"], c["popularity_penalty"]) for c in queue] == [
        (100.0, 0.0),
        (30.0, 0.0),
        (5.0, 0.3),
        (3000.0, 0.0),
        (8000.0, 0.1),
        (300.0, 0.0),  # the default
    ]


def test_warm_start_widens_when_the_data_is_out_of_range() -> None:
    plan = _selection(out_of_range=True).warm_start(10)
    algorithms, queue = plan.algorithms, plan.queue
    assert algorithms == ["pure_svd", "itemknn", "ease", "most_popular", "rp3beta"]
    assert {c["algorithm"] for c in queue} == set(algorithms)
    keys = [_key(c) for c in queue]
    assert len(keys) == len(set(keys))
    narrow = _selection(out_of_range=False).warm_start(10).algorithms
    assert len(narrow) == 3


def test_warm_start_never_searches_more_algorithms_than_trials() -> None:
    plan = _selection(out_of_range=True).warm_start(2)
    algorithms, queue = plan.algorithms, plan.queue
    assert algorithms == ["pure_svd", "itemknn"]
    assert len(queue) == 2


def test_warm_start_of_a_real_selection(
    small_split: tuple[Interactions, Interactions], tiny_meta_model: MetaModel
) -> None:
    selection = select(small_split[0], tiny_meta_model)
    plan = selection.warm_start(6)
    algorithms, queue = plan.algorithms, plan.queue
    assert algorithms == list(selection.algorithms()["algorithm"][: len(algorithms)])
    candidates = {
        _key({"algorithm": a, **c})
        for a, c in zip(selection.table["algorithm"], selection.table["config"], strict=True)
    }
    for config in queue:
        assert config["algorithm"] in algorithms
        assert _key(config) in candidates
    assert len({_key(c) for c in queue}) == len(queue)
