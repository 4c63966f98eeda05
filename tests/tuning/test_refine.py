"""Tests of the compass search that refines a study's best configuration, and its schedule."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import optuna
import pytest

from metarec_classic.data import Interactions
from metarec_classic.tuning import (
    REFINE_START,
    REFINE_STEPS,
    Portfolio,
    config_at_position,
    position_in_space,
    refinement_move,
    tune,
)
from metarec_classic.tuning import _tune as tune_module

EASE_SPACE = Portfolio("ease").classes["ease"].search_space()  # log L2 in [1, 1e4], penalty


@pytest.fixture(scope="module")
def train(small_split: tuple[Interactions, Interactions]) -> Interactions:
    return small_split[0]


def _study(portfolio: Portfolio, scored: list[tuple[dict[str, Any], float]]) -> optuna.Study:
    """A study holding one completed trial per (configuration, score)."""
    study = optuna.create_study(direction="maximize")
    for config, score in scored:
        params = portfolio.encode(config)
        algorithm = config.get("algorithm", portfolio.algorithms[0])
        space = portfolio.classes[algorithm].search_space()
        prefix = f"{algorithm}." if portfolio.joint else ""
        distributions = {
            prefix + key: dist for key, dist in space.items() if prefix + key in params
        }
        if portfolio.joint:
            distributions["algorithm"] = optuna.distributions.CategoricalDistribution(
                portfolio.algorithms
            )
        study.add_trial(
            optuna.trial.create_trial(
                value=score,
                params=params,
                distributions=distributions,
                system_attrs={"fixed_params": params},
            )
        )
    return study


def test_config_at_position_inverts_position_in_space() -> None:
    space = {
        "n": optuna.distributions.IntDistribution(1, 100, log=True),
        "rate": optuna.distributions.FloatDistribution(0.0, 2.0),
        "kind": optuna.distributions.CategoricalDistribution(("a", "b", "c")),
    }
    config = config_at_position([0.5, 0.25, 0.0], space, {"kind": "b"})
    # log scale: half way from 1 to 100 is 10; a categorical keeps the template's value.
    assert config == {"n": 10, "rate": pytest.approx(0.5), "kind": "b"}
    assert isinstance(config["n"], int)
    np.testing.assert_allclose(position_in_space(config, space), [0.5, 0.25, 0.5])
    # Outside [0, 1] is clipped to the range.
    clipped = config_at_position([1.7, -3.0, 0.0], space, {"kind": "a"})
    assert (clipped["n"], clipped["rate"]) == (100, 0.0)


def test_moves_step_along_one_parameter_at_a_time_from_the_best() -> None:
    portfolio = Portfolio("ease")
    best = {"l2_reg": 100.0, "popularity_penalty": 0.25}  # at 0.5 and 0.5 of the ranges
    study = _study(portfolio, [(best, 0.30), ({"l2_reg": 5.0, "popularity_penalty": 0.0}, 0.10)])
    seen = []
    for _ in range(4):
        move = refinement_move(study.get_trials(), portfolio)
        assert move is not None
        seen.append(position_in_space(move, EASE_SPACE) - [0.5, 0.5])
        study = _study(portfolio, [(best, 0.30), *((m, 0.20) for m in _configs(seen))])
    step = REFINE_STEPS[0]
    np.testing.assert_allclose(seen, [[step, 0], [-step, 0], [0, step], [0, -step]], atol=1e-9)


def _configs(offsets: list[np.ndarray]) -> list[dict[str, Any]]:
    return [config_at_position(np.array([0.5, 0.5]) + o, EASE_SPACE, {}) for o in offsets]


def test_after_a_gain_the_search_goes_on_in_the_same_direction() -> None:
    portfolio = Portfolio("ease")
    start = config_at_position([0.5, 0.5], EASE_SPACE, {})
    up = config_at_position([0.5 + REFINE_STEPS[0], 0.5], EASE_SPACE, {})
    study = _study(portfolio, [(start, 0.30), (up, 0.35)])  # the move up gained
    move = refinement_move(study.get_trials(), portfolio)
    # From the new best, up again: the way back down was measured already.
    np.testing.assert_allclose(
        position_in_space(move, EASE_SPACE), [0.5 + 2 * REFINE_STEPS[0], 0.5], atol=1e-9
    )


def test_a_joint_search_refines_the_leading_algorithm_and_stops_when_steps_run_out() -> None:
    portfolio = Portfolio(["ease", "most_popular"])
    study = _study(
        portfolio,
        [({"algorithm": "most_popular"}, 0.5), ({"algorithm": "ease", "l2_reg": 10.0}, 0.1)],
    )
    # The best has no parameter to step along.
    assert refinement_move(study.get_trials(), portfolio) is None
    assert refinement_move([], portfolio) is None

    study = _study(portfolio, [({"algorithm": "ease", "l2_reg": 300.0}, 0.3)])
    moves = 0
    while (move := refinement_move(study.get_trials(), portfolio)) is not None:
        assert move["algorithm"] == "ease"
        study.enqueue_trial(move)
        trial = study.ask()
        portfolio.suggest(trial)
        study.tell(trial, 0.1)  # never better: the search shrinks its step
        moves += 1
        assert moves < 50
    # Four moves per step size (two parameters, up and down), none against the range ends.
    assert moves == 4 * len(REFINE_STEPS)


def test_the_feeder_spreads_refinement_between_the_rest_of_the_queue() -> None:
    portfolio = Portfolio(["ease", "pure_svd"])
    queue = [
        portfolio.encode(config)
        for l2, n in ((10.0, 8), (1000.0, 16), (3.0, 32), (3000.0, 64))
        for config in (
            {"algorithm": "ease", "l2_reg": l2, "popularity_penalty": 0.0},
            {"algorithm": "pure_svd", "n_factors": n, "n_iter": 3},
        )
    ]
    feeder = tune_module._QueueFeeder(
        queue, portfolio, n_trials=20, timeout=None, refine_share=2 / 3
    )
    assert feeder.refine_after == REFINE_START == 6
    study = optuna.create_study(direction="maximize")
    kinds = []
    for number in range(15):
        feeder(study)
        trial = study.ask()
        params = study.trials[trial.number].system_attrs.get("fixed_params")
        kinds.append("queue" if params in queue else "refine" if params else "tpe")
        portfolio.suggest(trial)
        study.tell(trial, 0.5 if number == 0 else 0.1)
    # Two of every three trials refine; the third takes the rest of the queue, and TPE
    # once the queue is spent.
    assert kinds == ["queue"] * 6 + ["refine", "refine", "queue"] * 2 + ["refine"] * 2 + ["tpe"]
    # With more algorithms than that, each first gets its turn.
    many = Portfolio(["ease", "pure_svd", "most_popular", "itemknn", "rp3beta", "userknn", "als"])
    defaults = many.defaults()
    assert tune_module._QueueFeeder(defaults, many, n_trials=20, timeout=None).refine_after == 7


def test_refinement_trials_do_not_use_up_the_queue_s_share_of_the_time() -> None:
    portfolio = Portfolio(["ease", "pure_svd"])
    queued = portfolio.encode({"algorithm": "ease", "l2_reg": 10.0, "popularity_penalty": 0.0})
    study = _study(portfolio, [])
    study.enqueue_trial(queued)
    first = study.ask()
    portfolio.suggest(first)
    study.tell(first, 0.2)
    feeder = tune_module._QueueFeeder(
        [queued], portfolio, n_trials=10, timeout=100.0, refine_share=1.0
    )
    feeder.refine_after = 1
    feeder(study)  # queues a refinement move, marked as such
    trial = study.ask()
    portfolio.suggest(trial)
    time.sleep(0.05)
    study.tell(trial, 0.1)
    assert study.trials[-1].user_attrs == {tune_module.REFINEMENT_ATTR: True}
    spent = feeder._spent(study.get_trials())
    assert spent["ease"][1] == 1  # the queued trial only


def test_refine_share_is_checked(train: Interactions) -> None:
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match="refine_share"):
            tune("pure_svd", train, n_trials=2, refine_share=bad)


def test_a_refined_search_resumes_without_repeating_a_configuration(
    train: Interactions, tmp_path
) -> None:
    journal = tmp_path / "study.log"
    queue = [{"algorithm": "pure_svd", "n_factors": n, "n_iter": 3} for n in (8, 32)]
    kwargs = {
        "storage": journal,
        "study_name": "refined",
        "enqueue": queue,
        "enqueue_default": False,
        "refine_share": 1.0,
    }
    first = tune(["pure_svd", "most_popular"], train, n_trials=6, **kwargs)
    resumed = tune(["pure_svd", "most_popular"], train, n_trials=10, **kwargs)
    assert len(first.trials) == 6 and len(resumed.trials) == 10
    configs = [
        tuple(sorted((k, v) for k, v in row.items() if k.startswith("config.") and v == v))
        for _, row in resumed.trials.iterrows()
    ]
    assert len(set(configs)) == len(configs)
    # After the queue, each trial changed one parameter of the best trial before it.
    rows = resumed.trials.sort_values("number").reset_index(drop=True)
    names = ["config.pure_svd.n_factors", "config.pure_svd.n_iter"]
    for i in range(len(queue), len(rows)):
        before = rows.iloc[:i]
        best = before.loc[before["score"].idxmax()]
        assert rows.loc[i, "config.algorithm"] == "pure_svd"
        assert sum(rows.loc[i, n] != best[n] for n in names) == 1
