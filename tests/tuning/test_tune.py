"""Tests of `tune`: results, failures, resuming, warm starts, joint searches, no test leak."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.sparse as sp

from metarec_classic.data import Interactions, random_holdout_split, validation_split
from metarec_classic.exceptions import TuningError
from metarec_classic.recommenders import PureSVDRecommender, get_recommender_class
from metarec_classic.tuning import (
    Portfolio,
    TuningResult,
    compare_on_validation,
    position_in_space,
    resolve_storage,
    trials_frame,
    tune,
)
from metarec_classic.tuning import _tune as tune_module


@pytest.fixture(scope="module")
def train(small_split: tuple[Interactions, Interactions]) -> Interactions:
    return small_split[0]


def _in_space(algorithm: str, config: dict[str, Any]) -> bool:
    space = get_recommender_class(algorithm).search_space()
    if set(config) != set(space):
        return False
    return all(dist._contains(dist.to_internal_repr(config[key])) for key, dist in space.items())


def _entries(matrix: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


# -- the result ------------------------------------------------------------------------------
def test_best_config_is_in_the_space_and_scores_the_best_trial(train: Interactions) -> None:
    result = tune("pure_svd", train, n_trials=4, seed=0)
    assert isinstance(result, TuningResult)
    assert result.best_algorithm == "pure_svd"
    assert _in_space("pure_svd", result.best_config)
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    assert len(result.trials) == 4 and result.n_complete == 4 and result.n_failed == 0
    assert result.best_score == pytest.approx(complete["score"].max())
    assert 0.0 < result.best_score <= 1.0
    assert result.metric == "ndcg@10"
    # The row of the best trial holds the best configuration.
    best_row = complete.loc[complete["score"].idxmax()]
    assert {k: best_row[f"config.{k}"] for k in result.best_config} == result.best_config


def test_every_trial_records_config_score_and_fit_time(train: Interactions) -> None:
    result = tune("itemknn", train, n_trials=3, seed=1)
    frame = result.trials
    assert list(frame["number"]) == [0, 1, 2]
    for _, row in frame.iterrows():
        assert row["state"] == "COMPLETE"
        assert math.isfinite(row["score"]) and row["fit_time"] > 0
        assert pd.isna(row["fail_reason"])
        config = {k[len("config.") :]: v for k, v in row.items() if k.startswith("config.")}
        assert _in_space("itemknn", config)
    # The first trial is the default configuration (queued first by default).
    assert result.study.trials[0].params == get_recommender_class("itemknn").default_config()


def test_trials_frame_of_an_empty_study_has_the_columns() -> None:
    import optuna

    frame = trials_frame(optuna.create_study())
    assert list(frame.columns) == ["number", "state", "score", "fit_time", "fail_reason"]
    assert frame.empty


# -- failures -------------------------------------------------------------------------------
def test_a_failing_configuration_records_its_reason(
    train: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = PureSVDRecommender._fit

    def fussy_fit(self: PureSVDRecommender, user_items: sp.csr_matrix) -> None:
        if self.n_factors != 20:
            raise RuntimeError(f"refusing n_factors={self.n_factors}")
        original(self, user_items)

    monkeypatch.setattr(PureSVDRecommender, "_fit", fussy_fit)
    result = tune("pure_svd", train, n_trials=3, seed=0)
    assert result.n_complete == 1 and result.n_failed == 2
    assert result.best_config["n_factors"] == 20
    failed = result.trials[result.trials["state"] == "FAIL"]
    for _, row in failed.iterrows():
        assert row["fail_reason"] == f"RuntimeError: refusing n_factors={row['config.n_factors']}"
        assert pd.isna(row["score"])


def test_every_trial_failing_raises_tuning_error_with_the_reasons(
    train: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fit(self: PureSVDRecommender, user_items: sp.csr_matrix) -> None:
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(PureSVDRecommender, "_fit", broken_fit)
    with pytest.raises(
        TuningError, match=r"Every trial of 'pure_svd' failed \(2 trials\).*out of cheese"
    ):
        tune("pure_svd", train, n_trials=2, seed=0)


def test_nan_score_is_a_failed_trial(train: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_evaluate(*args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(mean={"ndcg@10": float("nan")})

    monkeypatch.setattr(tune_module, "evaluate", nan_evaluate)
    with pytest.raises(TuningError, match=r"The validation ndcg@10 is nan"):
        tune("most_popular", train, n_trials=1)


@pytest.mark.parametrize("timeout", [0, -1.0, math.nan, math.inf, "60", True])
def test_timeout_must_be_finite_positive_seconds(train: Interactions, timeout: Any) -> None:
    with pytest.raises(ValueError, match="`timeout` must be a finite number of seconds > 0"):
        tune("pure_svd", train, n_trials=1, timeout=timeout)


@pytest.mark.parametrize("n_trials", [0, -1, 2.5, True])
def test_n_trials_must_be_positive_int(train: Interactions, n_trials: Any) -> None:
    with pytest.raises(ValueError, match="`n_trials` must be a positive int"):
        tune("most_popular", train, n_trials=n_trials)


# -- resuming and warm starts -----------------------------------------------------------------
def test_resume_from_journal_adds_only_the_missing_trials(
    train: Interactions, tmp_path: Path
) -> None:
    storage = tmp_path / "studies.journal"
    first = tune("pure_svd", train, n_trials=3, storage=storage, study_name="resume", seed=3)
    before = [(t.number, t.params, t.value) for t in first.study.trials]
    second = tune("pure_svd", train, n_trials=5, storage=str(storage), study_name="resume", seed=3)
    assert len(second.study.trials) == 5
    assert len(second.trials) == 5
    assert [(t.number, t.params, t.value) for t in second.study.trials[:3]] == before
    # Asking again for 5 runs nothing more.
    third = tune("pure_svd", train, n_trials=5, storage=storage, study_name="resume", seed=3)
    assert len(third.study.trials) == 5


def test_enqueued_configs_run_first_in_order(train: Interactions) -> None:
    queued = [{"n_factors": 7, "n_iter": 3}, {"n_factors": 33, "n_iter": 5}]
    result = tune("pure_svd", train, n_trials=4, enqueue=queued, enqueue_default=False)
    assert [t.params for t in result.study.trials[:2]] == queued

    with_default = tune("pure_svd", train, n_trials=3, enqueue=queued)
    expected = [PureSVDRecommender.default_config(), *queued]
    assert [t.params for t in with_default.study.trials] == expected


def test_enqueued_config_outside_the_space_is_refused(train: Interactions) -> None:
    with pytest.raises(ValueError, match=r"parameters \['n_neighbors'\] outside the search space"):
        tune("pure_svd", train, n_trials=1, enqueue=[{"n_neighbors": 5}])


def _queued_trial(params: dict[str, Any], seconds: float) -> optuna.trial.FrozenTrial:
    """A finished trial that ran a queued configuration for ``seconds``."""
    portfolio = Portfolio(["pure_svd", "most_popular"])
    trial = optuna.trial.create_trial(
        value=0.1,
        params=params,
        distributions={
            "algorithm": optuna.distributions.CategoricalDistribution(portfolio.algorithms),
            **{
                f"pure_svd.{key}": dist
                for key, dist in PureSVDRecommender.search_space().items()
                if f"pure_svd.{key}" in params
            },
        },
        system_attrs={"fixed_params": params},
    )
    trial.datetime_start = trial.datetime_complete - pd.Timedelta(seconds=seconds)
    return trial


def test_an_algorithm_past_its_share_of_the_time_has_its_queue_skipped() -> None:
    portfolio = Portfolio(["pure_svd", "most_popular"])
    svd = [
        portfolio.encode({"algorithm": "pure_svd", "n_factors": n, "n_iter": 3})
        for n in (5, 10, 20, 40)
    ]
    popular = portfolio.encode({"algorithm": "most_popular"})
    # Five queued of ten trials in 100 s: each of the two algorithms gets 25 s.
    feeder = tune_module._QueueFeeder(
        [svd[0], popular, svd[1], svd[2], svd[3]], portfolio, n_trials=10, timeout=100.0
    )
    assert feeder.share == pytest.approx(25.0)
    study = optuna.create_study(direction="maximize")
    feeder(study)
    queued = [t.system_attrs["fixed_params"] for t in study.trials]
    assert queued == [svd[0]]  # one at a time, in order
    study.tell(study.ask(), 0.1)  # the waiting trial finishes at once
    feeder(study)
    assert study.trials[-1].system_attrs["fixed_params"] == popular

    # As if the two queued SVD trials had taken 10 s each: a third would end at 30 s.
    study = optuna.create_study(direction="maximize")
    study.add_trial(_queued_trial(svd[0], 10.0))
    study.add_trial(_queued_trial(popular, 0.1))
    study.add_trial(_queued_trial(svd[1], 10.0))
    feeder = tune_module._QueueFeeder(
        [svd[0], popular, svd[1], svd[2], svd[3]], portfolio, n_trials=10, timeout=100.0
    )
    feeder(study)
    assert len(study.trials) == 3  # nothing left to enqueue
    assert feeder.skipped == [portfolio.decode(svd[2]), portfolio.decode(svd[3])]

    # At 7 s each, a third queued trial (ending at 21 s) fits in the 25 s share.
    study = optuna.create_study(direction="maximize")
    for params, seconds in ((svd[0], 7.0), (popular, 0.1), (svd[1], 7.0)):
        study.add_trial(_queued_trial(params, seconds))
    feeder = tune_module._QueueFeeder(
        [svd[0], popular, svd[1], svd[2], svd[3]], portfolio, n_trials=10, timeout=100.0
    )
    feeder(study)
    assert study.trials[-1].system_attrs["fixed_params"] == svd[2]
    assert feeder.skipped == []


def test_without_a_time_budget_the_whole_queue_runs(train: Interactions) -> None:
    queued = [{"algorithm": "pure_svd", "n_factors": n, "n_iter": 3} for n in (5, 6, 7, 8, 9)] + [
        {"algorithm": "most_popular"}
    ]
    result = tune(
        ["pure_svd", "most_popular"], train, n_trials=6, enqueue=queued, enqueue_default=False
    )
    portfolio = Portfolio(["pure_svd", "most_popular"])
    ran = [portfolio.decode(t.params) for t in result.study.trials]
    assert ran == [portfolio.decode(portfolio.encode(config)) for config in queued]
    assert result.skipped == []
    # Nothing is left waiting in the study after its last trial.
    assert {t.state for t in result.study.trials} == {optuna.trial.TrialState.COMPLETE}


def test_a_slow_algorithm_gives_up_its_queue_under_a_time_budget(
    train: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SVD fits made to take two seconds, a 10 s budget runs two of its four queued."""
    real_make = tune_module.make_recommender

    def slow_svd(algorithm: str, *args: Any, **kwargs: Any) -> Any:
        if algorithm == "pure_svd":
            time.sleep(2.0)
        return real_make(algorithm, *args, **kwargs)

    monkeypatch.setattr(tune_module, "make_recommender", slow_svd)
    queued = [{"algorithm": "pure_svd", "n_factors": n, "n_iter": 3} for n in (5, 10, 20, 40)]
    queued.insert(1, {"algorithm": "most_popular"})
    # Five queued of five trials in 10 s: 5 s per algorithm, room for two SVD fits.
    result = tune(
        ["pure_svd", "most_popular"],
        train,
        n_trials=5,
        timeout=10.0,
        enqueue=queued,
        enqueue_default=False,
    )
    assert result.skipped == [
        ("pure_svd", {"n_factors": 20, "n_iter": 3}),
        ("pure_svd", {"n_factors": 40, "n_iter": 3}),
    ]
    ran = [t.params for t in result.study.trials[:3]]
    assert ran == [Portfolio(["pure_svd", "most_popular"]).encode(c) for c in queued[:3]]


#: One of two processes sharing a warm-started search: both wait for each other first.
_SHARED_SEARCH = """
import sys, time
from pathlib import Path
from metarec_classic.data import load_dataset
from metarec_classic.tuning import tune

storage, ready, me = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
data = load_dataset("ml-100k")
(ready / me).touch()
while len(list(ready.iterdir())) < 2:
    time.sleep(0.01)
queue = [{"algorithm": "pure_svd", "n_factors": n, "n_iter": 3} for n in (5, 10, 20, 40)]
queue.append({"algorithm": "itemknn", "weighting": "cosine", "n_neighbors": 50,
              "bm25_k1": 1.2, "bm25_b": 0.75})
tune(["pure_svd", "itemknn"], data, n_trials=10, storage=storage, study_name="shared",
     enqueue=queue, enqueue_default=False)
"""


@pytest.mark.parametrize("where", ["journal", "postgres"])
def test_processes_sharing_a_warm_started_search_split_its_queue_and_budget(
    where: str, shared_data: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import os
    import subprocess
    import sys

    storage = (
        str(tmp_path / "search.journal")
        if where == "journal"
        else request.getfixturevalue("postgres_database")
    )
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, "METAREC_DATA": str(shared_data)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SHARED_SEARCH, storage, str(ready), name],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for process in processes:
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors

    study = optuna.load_study(study_name="shared", storage=resolve_storage(storage))
    ran = [t for t in study.trials if tune_module.DUPLICATE_ATTR not in t.user_attrs]
    states = [t.state for t in ran]
    # Ten between them, plus at most the one trial the other process was running.
    assert 10 <= states.count(optuna.trial.TrialState.COMPLETE) <= 11
    assert set(states) == {optuna.trial.TrialState.COMPLETE}
    # Each queued configuration ran once. When both processes reach for the same one,
    # either Optuna skips the second enqueue (the loser samples its trial instead) or,
    # when both enqueue at once, the later trial ends unrun as a repeat of the earlier.
    for repeat in study.trials:
        if tune_module.DUPLICATE_ATTR in repeat.user_attrs:
            assert repeat.state == optuna.trial.TrialState.FAIL
            earlier = study.trials[repeat.user_attrs[tune_module.DUPLICATE_ATTR]]
            assert earlier.number < repeat.number
            assert earlier.system_attrs["fixed_params"] == repeat.system_attrs["fixed_params"]
    queued = [t.system_attrs["fixed_params"] for t in ran if "fixed_params" in t.system_attrs]
    assert sorted(q["algorithm"] for q in queued) == ["itemknn"] + ["pure_svd"] * 4
    assert len({json.dumps(q, sort_keys=True) for q in queued}) == 5
    assert "fixed_params" in study.trials[0].system_attrs


def test_a_queued_configuration_enqueued_twice_at_once_runs_once(
    train: Interactions, tmp_path: Path
) -> None:
    """Two processes can both enqueue the same configuration; the later copy is not run."""
    queued = {"n_factors": 7, "n_iter": 3}
    storage, study = _journal_study(tmp_path, "race")
    study.enqueue_trial(queued)
    study.enqueue_trial(queued)  # what the losing process wrote, not knowing of the first
    result = tune(
        "pure_svd",
        train,
        n_trials=3,
        storage=storage,
        study_name="race",
        enqueue=[queued],
        enqueue_default=False,
    )
    first, repeat, *rest = result.study.trials
    assert first.state.name == "COMPLETE" and first.params == queued
    assert repeat.state.name == "FAIL" and repeat.user_attrs == {"duplicate_of": 0}
    reason = result.trials.set_index("number").loc[1, "fail_reason"]
    assert reason == "Trial 1 repeats the queued configuration of trial 0; not run."
    # The repeat takes no trial of the budget and is no failure of the search.
    assert [t.state.name for t in rest] == ["COMPLETE", "COMPLETE"]
    assert (result.n_complete, result.n_failed, result.n_repeats) == (3, 0, 1)
    assert queued not in [t.params for t in rest]


def _journal_study(tmp_path: Path, name: str) -> tuple[Any, optuna.Study]:
    storage = resolve_storage(tmp_path / "studies.journal")
    return storage, optuna.create_study(study_name=name, storage=storage, direction="maximize")


def test_a_configuration_whose_earlier_trial_was_interrupted_runs_again(
    train: Interactions, tmp_path: Path
) -> None:
    queued = {"n_factors": 7, "n_iter": 3}
    storage, study = _journal_study(tmp_path, "cut")
    study.enqueue_trial(queued)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # died without a reason
    study.enqueue_trial(queued)
    result = tune("pure_svd", train, n_trials=1, storage=storage, study_name="cut")
    rerun = result.study.trials[1]
    assert rerun.state.name == "COMPLETE" and rerun.params == queued
    assert result.n_repeats == 0


# -- joint searches ---------------------------------------------------------------------------
def test_joint_search_decodes_algorithm_and_config(train: Interactions) -> None:
    result = tune(["most_popular", "pure_svd"], train, n_trials=4, seed=0)
    assert result.algorithm == "most_popular+pure_svd"
    best_params = result.study.best_trial.params
    assert result.best_algorithm == best_params["algorithm"]
    assert _in_space(result.best_algorithm, result.best_config)
    prefix = f"{result.best_algorithm}."
    assert result.best_config == {
        k[len(prefix) :]: v for k, v in best_params.items() if k.startswith(prefix)
    }
    # The defaults of both algorithms run first, in the given order.
    first_two = [t.params for t in result.study.trials[:2]]
    assert first_two == [
        {"algorithm": "most_popular"},
        {"algorithm": "pure_svd", "pure_svd.n_factors": 20, "pure_svd.n_iter": 7},
    ]


def test_joint_search_keeps_each_algorithms_best_configuration(train: Interactions) -> None:
    result = tune(["most_popular", "pure_svd"], train, n_trials=6, seed=0)
    assert set(result.best_configs) == {"most_popular", "pure_svd"}
    assert result.best_configs[result.best_algorithm] == result.best_config
    done = result.trials[result.trials["state"] == "COMPLETE"]
    svd = done[done["config.algorithm"] == "pure_svd"]
    best_svd = svd.loc[svd["score"].idxmax()]
    assert result.best_configs["pure_svd"] == {
        "n_factors": best_svd["config.pure_svd.n_factors"],
        "n_iter": best_svd["config.pure_svd.n_iter"],
    }


def test_joint_search_picks_the_enqueued_winner(
    train: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With scores fixed by the algorithm, decoding must return the winner's own config."""
    real_evaluate = tune_module.evaluate

    def biased(model: Any, *args: Any, **kwargs: Any) -> Any:
        result = real_evaluate(model, *args, **kwargs)
        if model.name == "pure_svd" and model.n_factors == 9:
            result.mean["ndcg@10"] = 0.99
        return result

    monkeypatch.setattr(tune_module, "evaluate", biased)
    result = tune(
        ["most_popular", "pure_svd"],
        train,
        n_trials=3,
        enqueue=[{"algorithm": "pure_svd", "n_factors": 9, "n_iter": 4}],
    )
    assert result.best_algorithm == "pure_svd"
    assert result.best_config == {"n_factors": 9, "n_iter": 4}
    assert result.best_score == pytest.approx(0.99)


def test_portfolio_encode_decode_round_trip() -> None:
    portfolio = Portfolio(["itemknn", "pure_svd", "itemknn"])
    assert portfolio.algorithms == ["itemknn", "pure_svd"] and portfolio.joint
    params = portfolio.encode({"algorithm": "pure_svd", "n_factors": np.int64(8)})
    assert params == {"algorithm": "pure_svd", "pure_svd.n_factors": 8}
    assert type(params["pure_svd.n_factors"]) is int
    assert portfolio.decode({**params, "itemknn.n_neighbors": 3}) == ("pure_svd", {"n_factors": 8})
    with pytest.raises(ValueError, match="must name its `algorithm`"):
        portfolio.encode({"n_factors": 8})
    single = Portfolio("pure_svd")
    assert not single.joint
    assert single.encode({"algorithm": "pure_svd", "n_iter": 3}) == {"n_iter": 3}
    with pytest.raises(ValueError, match="at least one algorithm"):
        Portfolio([])
    with pytest.raises(ValueError, match="Unknown algorithm 'nope'"):
        Portfolio("nope")


# -- the test split is never seen ---------------------------------------------------------------
def test_validation_is_cut_from_train_only(
    small_split: tuple[Interactions, Interactions], monkeypatch: pytest.MonkeyPatch
) -> None:
    train_val = small_split[0]
    split = random_holdout_split(train_val, test_fraction=0.3, random_state=0)
    train, test = split.train, split.test
    train_entries, test_entries = _entries(train.user_items), _entries(test.user_items)
    assert test_entries and not train_entries & test_entries

    seen: list[tuple[set[tuple[int, int]], set[tuple[int, int]]]] = []
    fitted: list[set[tuple[int, int]]] = []
    real_evaluate = tune_module.evaluate

    def spy(model: Any, fit_part: Interactions, validation: Interactions, **kwargs: Any) -> Any:
        seen.append((_entries(fit_part.user_items), _entries(validation.user_items)))
        fitted.append(_entries(model.user_items_))
        return real_evaluate(model, fit_part, validation, **kwargs)

    monkeypatch.setattr(tune_module, "evaluate", spy)
    tune("pure_svd", train, n_trials=2, seed=5)
    assert len(seen) == 2
    for (fit_entries, validation_entries), model_entries in zip(seen, fitted, strict=True):
        assert validation_entries and fit_entries
        # Fit part and validation partition the training split; nothing comes from test.
        assert fit_entries | validation_entries == train_entries
        assert not fit_entries & validation_entries
        assert not (fit_entries | validation_entries) & test_entries
        assert model_entries == fit_entries


def test_explicit_validation_fits_on_the_whole_train(
    small_split: tuple[Interactions, Interactions], monkeypatch: pytest.MonkeyPatch
) -> None:
    train, validation = small_split
    fitted: list[int] = []
    real_evaluate = tune_module.evaluate

    def spy(model: Any, *args: Any, **kwargs: Any) -> Any:
        fitted.append(model.user_items_.nnz)
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(tune_module, "evaluate", spy)
    result = tune("most_popular", train, n_trials=1, validation=validation)
    assert fitted == [train.n_interactions]
    # The score is the one of most_popular fitted on train, scored on validation.
    from metarec_classic.evaluation import evaluate
    from metarec_classic.recommenders import make_recommender

    expected = evaluate(make_recommender("most_popular").fit(train), train, validation, k=10)
    assert result.best_score == pytest.approx(expected.mean["ndcg@10"])


def test_a_resumed_search_does_not_replay_the_first_configurations(
    train: Interactions, tmp_path: Path
) -> None:
    """Regression: a resumed study once restarted its sampler and repeated trials 1, 2, ..."""
    storage = tmp_path / "studies.journal"
    tune("rp3beta", train, n_trials=3, storage=storage, study_name="replay", seed=1)
    resumed = tune("rp3beta", train, n_trials=6, storage=storage, study_name="replay", seed=1)
    configs = [json.dumps(t.params, sort_keys=True) for t in resumed.study.trials]
    assert len(configs) == 6
    assert len(set(configs)) == 6


def test_an_interrupted_trial_does_not_count_against_the_budget(
    train: Interactions, tmp_path: Path
) -> None:
    """A failed trial without a recorded reason (Ctrl-C, a dead process) is run again."""
    storage = tmp_path / "studies.journal"
    first = tune("pure_svd", train, n_trials=2, storage=storage, study_name="cut", seed=0)
    interrupted = first.study.ask()
    first.study.tell(interrupted, state=optuna.trial.TrialState.FAIL)
    resumed = tune("pure_svd", train, n_trials=3, storage=storage, study_name="cut", seed=0)
    states = [t.state.name for t in resumed.study.trials]
    assert states.count("COMPLETE") == 3
    assert states.count("FAIL") == 1


def test_an_algorithm_without_parameters_runs_one_trial(train: Interactions) -> None:
    result = tune("most_popular", train, n_trials=5)
    assert len(result.trials) == 1
    assert result.best_config == {}


def test_trials_record_the_effective_config_only_when_the_fit_changed_it(small_split) -> None:
    from optuna.trial import FixedTrial

    from metarec_classic.tuning import make_objective

    train, validation = small_split
    objective = make_objective("pure_svd", train, validation, seed=0)
    clamped = FixedTrial({"n_factors": 5000, "n_iter": 3})
    objective(clamped)
    assert clamped.user_attrs["effective_config"]["n_factors"] < 5000
    plain = FixedTrial({"n_factors": 8, "n_iter": 3})
    objective(plain)
    assert "effective_config" not in plain.user_attrs
    assert plain.user_attrs["fit_time"] > 0


def test_position_in_space_scales_each_parameter_to_its_range() -> None:
    space = {
        "n": optuna.distributions.IntDistribution(1, 100, log=True),
        "rate": optuna.distributions.FloatDistribution(0.0, 2.0),
        "kind": optuna.distributions.CategoricalDistribution(("a", "b", "c")),
        "unset": optuna.distributions.FloatDistribution(0.0, 1.0),
    }
    point = position_in_space({"n": 10, "rate": 3.0, "kind": "c"}, space)
    # log scale: 10 is half way from 1 to 100; 3.0 lies above the range and is clipped.
    np.testing.assert_allclose(point, [0.5, 1.0, 1.0, 0.5])
    np.testing.assert_allclose(
        position_in_space({"kind": "b", "rate": 0.5}, space)[1:3], [0.25, 0.5]
    )


# -- comparing two configurations user by user ----------------------------------------------
def test_paired_comparison_matches_the_trials_and_measures_the_noise(train: Interactions) -> None:
    first = {"weighting": "bm25", "n_neighbors": 50, "bm25_k1": 1.2, "bm25_b": 0.75}
    second = {"weighting": "cosine", "n_neighbors": 10, "bm25_k1": 1.2, "bm25_b": 0.75}
    result = tune(
        "itemknn", train, n_trials=2, enqueue=[first, second], enqueue_default=False, seed=3
    )
    scores = {json.dumps(c, sort_keys=True): s for _, c, s in result.completed}
    gain = compare_on_validation(("itemknn", first), ("itemknn", second), train, seed=3)
    # The means are the trials' own scores, on the split of the same seed.
    expected = (
        scores[json.dumps(first, sort_keys=True)] - scores[json.dumps(second, sort_keys=True)]
    )
    assert gain.difference == pytest.approx(expected, abs=1e-9)
    assert 0 < gain.standard_error < abs(gain.difference) + 1
    validation = validation_split(train, random_state=3).test.user_items
    assert gain.n_users == int((np.diff(validation.indptr) > 0).sum())
    # Against itself: no gain and no noise.
    same = compare_on_validation(("itemknn", first), ("itemknn", first), train, seed=3)
    assert same.difference == 0 and same.standard_error == 0


def test_completed_lists_every_completed_trial_best_first(train: Interactions) -> None:
    result = tune("itemknn", train, n_trials=4, seed=1)
    scores = [score for _, _, score in result.completed]
    assert scores == sorted(scores, reverse=True) and len(scores) == result.n_complete
    assert result.completed[0][:2] == (result.best_algorithm, result.best_config)


# -- repeatability ---------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_study_with_a_lock_free_model(ml100k: Interactions) -> None:
    # BPR updates without locks on several threads; a search fits it on one, or one
    # score would differ and every later suggestion with it. LMF repeats on its own.
    first, second = (
        tune(["bpr", "lmf"], ml100k, n_trials=4, seed=0, enqueue_default=False) for _ in range(2)
    )
    assert first.trials["score"].tolist() == second.trials["score"].tolist()


def test_a_search_keeps_the_threads_it_is_given(
    train: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[tuple[str, int | None]] = []
    build = tune_module.make_recommender

    def recording(algorithm: str, config: dict, **kwargs: Any) -> Any:
        threads.append((algorithm, kwargs["n_jobs"]))
        return build(algorithm, config, **kwargs)

    monkeypatch.setattr(tune_module, "make_recommender", recording)
    tune(["bpr", "als"], train, n_trials=2, seed=0)
    assert threads == [("bpr", 1), ("als", None)]
    threads.clear()
    tune(["bpr", "als"], train, n_trials=2, seed=0, n_jobs=2)
    assert threads == [("bpr", 2), ("als", 2)]
