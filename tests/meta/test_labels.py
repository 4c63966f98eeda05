"""Tests of the label build: the design, resuming an interrupted build, the LabelSet files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
import scipy.sparse as sp

from metarec_classic.data import Interactions
from metarec_classic.meta import (
    LABELS_VERSION,
    LabelSet,
    Task,
    build_labels,
    build_status,
    design_configs,
    export_labels,
    recompute_task_features,
)
from metarec_classic.meta._labels import _study_name
from metarec_classic.recommenders import PureSVDRecommender, get_recommender_class
from metarec_classic.tuning import resolve_storage

ALGORITHMS = ("most_popular", "pure_svd")
N_CONFIGS = 3
TASKS = [
    Task("ml-100k", "movielens", "users", 0.3, 0, 4000, 400),
    Task("filmtrust", "filmtrust", "popular", 300, 0, 4000, 400),
]
# Fit times and trial numbers depend on the run; everything else must not.
COMPARED = ["task_id", "algorithm", "config", "score", "state"]


def _sorted(labels: LabelSet) -> pd.DataFrame:
    return (
        labels.labels[COMPARED]
        .sort_values(["task_id", "algorithm", "config"])
        .reset_index(drop=True)
    )


def _design_size(algorithm: str) -> int:
    return len(design_configs(algorithm, N_CONFIGS, seed=0))


@pytest.fixture(scope="module")
def uninterrupted(loader: Callable[[str], Interactions]) -> LabelSet:
    return build_labels(
        TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS, loader=loader, landmark_seconds=30
    )


# -- the design --------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["itemknn", "pure_svd", "rp3beta", "ease", "als"])
def test_design_is_default_first_inside_the_space_and_deterministic(algorithm: str) -> None:
    cls = get_recommender_class(algorithm)
    design = design_configs(algorithm, 6, seed=11)
    assert len(design) == 6
    assert design[0] == cls.default_config()
    space = cls.search_space()
    for config in design:
        assert set(config) == set(space)
        for name, dist in space.items():
            assert dist._contains(dist.to_internal_repr(config[name])), (name, config[name])
    assert design_configs(algorithm, 6, seed=11) == design
    assert design_configs(algorithm, 6, seed=12)[1:] != design[1:]
    assert len({json.dumps(c, sort_keys=True) for c in design}) == 6


def test_design_of_a_model_without_parameters_is_its_default() -> None:
    assert design_configs("most_popular", 10, seed=0) == [{}]
    assert design_configs("pure_svd", 1, seed=0) == [PureSVDRecommender.default_config()]


# -- the build ---------------------------------------------------------------------------------
def test_build_labels_every_design_configuration_of_every_task(uninterrupted: LabelSet) -> None:
    labels = uninterrupted.labels
    assert set(labels["task_id"]) == {t.task_id for t in TASKS}
    counts = labels.groupby(["task_id", "algorithm"]).size()
    for (_, algorithm), count in counts.items():
        assert count == _design_size(algorithm)
    assert (labels["state"] == "COMPLETE").all()
    assert labels["score"].between(0, 1).all() and (labels["fit_time"] > 0).all()
    tasks = uninterrupted.tasks
    assert list(tasks["task_id"]) == [t.task_id for t in TASKS]
    assert {"n_users", "n_items", "n_interactions", "item_deg.gini"} <= set(tasks.columns)
    assert uninterrupted.provenance["labels_version"] == LABELS_VERSION
    assert uninterrupted.provenance["n_labels"] == len(labels)


def test_interrupted_between_datasets_resumes_to_the_same_labels(
    loader: Callable[[str], Interactions], uninterrupted: LabelSet, tmp_path: Path
) -> None:
    storage = tmp_path / "labels.journal"
    calls: list[str] = []

    def failing_loader(name: str) -> Interactions:
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("disk went away")
        return loader(name)

    with pytest.raises(RuntimeError, match="disk went away"):
        build_labels(
            TASKS,
            algorithms=ALGORITHMS,
            n_configs=N_CONFIGS,
            storage=storage,
            loader=failing_loader,
            landmark_seconds=30,
        )
    partial = export_labels(storage, TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS)
    assert set(partial.labels["task_id"]) == {TASKS[0].task_id}

    resumed = build_labels(
        TASKS,
        algorithms=ALGORITHMS,
        n_configs=N_CONFIGS,
        storage=storage,
        loader=loader,
        landmark_seconds=30,
    )
    pd.testing.assert_frame_equal(_sorted(resumed), _sorted(uninterrupted))
    # No trial was run twice: each study holds exactly its design.
    resolved = resolve_storage(storage)
    for task in TASKS:
        for algorithm in ALGORITHMS:
            study = optuna.load_study(study_name=_study_name(task, algorithm), storage=resolved)
            assert len(study.trials) == _design_size(algorithm)


def test_interrupted_inside_a_study_resumes_to_the_same_labels(
    loader: Callable[[str], Interactions],
    uninterrupted: LabelSet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: a trial stopped by Ctrl-C was kept as a failed label and never rerun, and
    the configurations it left queued were queued a second time on resume."""
    storage = tmp_path / "labels.journal"
    original = PureSVDRecommender._fit
    fits: list[int] = []

    def interrupted_fit(self: PureSVDRecommender, user_items: sp.csr_matrix) -> None:
        fits.append(1)
        if len(fits) == 2:
            raise KeyboardInterrupt
        original(self, user_items)

    monkeypatch.setattr(PureSVDRecommender, "_fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        build_labels(
            TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS, storage=storage, loader=loader
        )
    monkeypatch.setattr(PureSVDRecommender, "_fit", original)

    resumed = build_labels(
        TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS, storage=storage, loader=loader
    )
    pd.testing.assert_frame_equal(_sorted(resumed), _sorted(uninterrupted))
    resolved = resolve_storage(storage)
    study = optuna.load_study(study_name=_study_name(TASKS[0], "pure_svd"), storage=resolved)
    states = [t.state for t in study.trials]
    # The interrupted trial stays as a record, its configuration ran once more, and
    # nothing is left waiting or run twice.
    assert states.count(optuna.trial.TrialState.COMPLETE) == _design_size("pure_svd")
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert len(states) == _design_size("pure_svd") + 1
    # A stop asked for is not a death: the configuration keeps its one retry.
    assert not [t for t in study.trials if "failed_trial" in t.system_attrs]


def test_a_failing_configuration_is_a_label_and_not_rerun(
    loader: Callable[[str], Interactions], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = tmp_path / "labels.journal"
    original = PureSVDRecommender._fit
    fits: list[int] = []

    def fussy_fit(self: PureSVDRecommender, user_items: sp.csr_matrix) -> None:
        fits.append(self.n_factors)
        if self.n_factors not in (16, 20):  # 16 is the landmarker's, 20 the default
            raise RuntimeError("too many factors")
        original(self, user_items)

    monkeypatch.setattr(PureSVDRecommender, "_fit", fussy_fit)
    first = build_labels(
        TASKS[:1], algorithms=["pure_svd"], n_configs=3, storage=storage, loader=loader
    )
    failed = first.labels[first.labels["state"] == "FAIL"]
    assert len(failed) == 2  # the design points; the default completes
    assert (failed["fail_reason"] == "RuntimeError: too many factors").all()
    n_fits = len(fits)
    again = build_labels(
        TASKS[:1], algorithms=["pure_svd"], n_configs=3, storage=storage, loader=loader
    )
    assert len(fits) == n_fits  # nothing ran again
    pd.testing.assert_frame_equal(_sorted(again), _sorted(first))


# -- LabelSet files ----------------------------------------------------------------------------
def test_labelset_save_load_round_trip(uninterrupted: LabelSet, tmp_path: Path) -> None:
    folder = uninterrupted.save(tmp_path / "labels")
    assert sorted(p.name for p in folder.iterdir()) == [
        "labels.csv.gz",
        "provenance.json",
        "tasks.csv.gz",
    ]
    loaded = LabelSet.load(folder)
    assert loaded.provenance == uninterrupted.provenance
    pd.testing.assert_frame_equal(
        _sorted(loaded), _sorted(uninterrupted), check_exact=False, rtol=1e-5
    )
    original_tasks = uninterrupted.tasks.sort_values("task_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        loaded.tasks, original_tasks, check_exact=False, rtol=1e-7, check_dtype=False
    )


def test_labelset_refuses_another_version_and_missing_files(
    uninterrupted: LabelSet, tmp_path: Path
) -> None:
    folder = uninterrupted.save(tmp_path / "labels")
    provenance = json.loads((folder / "provenance.json").read_text())
    provenance["labels_version"] = LABELS_VERSION + 1
    (folder / "provenance.json").write_text(json.dumps(provenance))
    with pytest.raises(ValueError, match=rf"version {LABELS_VERSION + 1}.*Rebuild them"):
        LabelSet.load(folder)
    (folder / "tasks.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks \['tasks.csv.gz'\]"):
        LabelSet.load(folder)


def test_a_configuration_run_twice_gives_one_label(
    loader: Callable[[str], Interactions], tmp_path: Path
) -> None:
    """Two processes building the same study may both run a configuration; the labels keep
    the first result only."""
    storage = tmp_path / "labels.journal"
    first = build_labels(
        TASKS[:1], algorithms=["pure_svd"], n_configs=N_CONFIGS, storage=storage, loader=loader
    )
    study = optuna.load_study(
        study_name=_study_name(TASKS[0], "pure_svd"), storage=resolve_storage(storage)
    )
    done = study.trials[0]
    study.add_trial(
        optuna.trial.create_trial(params=done.params, distributions=done.distributions, value=0.0)
    )
    again = export_labels(storage, TASKS[:1], algorithms=["pure_svd"], n_configs=N_CONFIGS)
    assert len(again.labels) == _design_size("pure_svd")
    pd.testing.assert_frame_equal(_sorted(again), _sorted(first))


def test_without_family_drops_exactly_that_familys_tasks(uninterrupted: LabelSet) -> None:
    families = uninterrupted.tasks.set_index("task_id")["family"]
    family = families.iloc[0]
    held_out = uninterrupted.without_family(family)
    assert family not in set(held_out.tasks["family"])
    assert set(held_out.labels["task_id"]) == set(families[families != family].index)
    # Everything else is kept, row for row.
    others = uninterrupted.labels[uninterrupted.labels["task_id"].map(families) != family]
    assert len(held_out.labels) == len(others)


def test_recomputed_task_features_match_the_build_and_keep_every_label(
    uninterrupted: LabelSet, loader: Callable[[str], Interactions]
) -> None:
    # Stale features (as after a change to how they are computed) are replaced.
    stale_tasks = uninterrupted.tasks.copy()
    feature_columns = [c for c in stale_tasks.columns if "." in c]
    stale_tasks[feature_columns] = -1.0
    stale = LabelSet(uninterrupted.labels, stale_tasks, dict(uninterrupted.provenance))
    fresh = recompute_task_features(stale, TASKS, loader=loader, landmark_seconds=30)
    pd.testing.assert_frame_equal(fresh.labels, uninterrupted.labels)
    before = uninterrupted.tasks.set_index("task_id").sort_index()
    after = fresh.tasks.set_index("task_id").sort_index()[before.columns]
    pd.testing.assert_frame_equal(after, before)


def test_recompute_refuses_labels_of_unknown_tasks(uninterrupted: LabelSet) -> None:
    with pytest.raises(ValueError, match="not among `tasks`"):
        recompute_task_features(uninterrupted, TASKS[:1])


def test_joining_a_build_with_another_design_size_is_refused(
    loader: Callable[[str], Interactions], tmp_path: Path
) -> None:
    from metarec_classic.exceptions import TuningError

    storage = tmp_path / "labels.journal"
    build_labels(
        TASKS[:1], algorithms=["pure_svd"], n_configs=N_CONFIGS, storage=storage, loader=loader
    )
    with pytest.raises(TuningError, match="same configurations per study"):
        build_labels(
            TASKS[:1],
            algorithms=["pure_svd"],
            n_configs=N_CONFIGS + 1,
            storage=storage,
            loader=loader,
        )


def test_joining_a_build_with_other_caps_is_refused(
    loader: Callable[[str], Interactions], tmp_path: Path
) -> None:
    from dataclasses import replace

    from metarec_classic.exceptions import TuningError

    storage = tmp_path / "labels.journal"
    build_labels(TASKS[:1], algorithms=["pure_svd"], n_configs=2, storage=storage, loader=loader)
    # The task id does not name the caps: the same id, cut from other data.
    wider = replace(TASKS[0], max_interactions=TASKS[0].max_interactions + 1)
    with pytest.raises(TuningError, match="same --max-interactions and --max-items"):
        build_labels([wider], algorithms=["pure_svd"], n_configs=2, storage=storage, loader=loader)


def test_a_configuration_whose_every_try_died_is_counted_and_retried_on_request(
    loader: Callable[[str], Interactions],
    uninterrupted: LabelSet,
    lose_a_configuration,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = tmp_path / "labels.journal"
    lose_a_configuration(storage, TASKS[0], "pure_svd", N_CONFIGS)
    with caplog.at_level("WARNING", logger="metarec_classic"):
        short = build_labels(
            TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS, storage=storage, loader=loader
        )
    assert (short.provenance["n_unlabelled"], short.provenance["n_lost"]) == (1, 1)
    assert len(short.labels) == len(uninterrupted.labels) - 1
    assert "1 configurations in 1 studies have no label" in caplog.text
    assert "--retry-lost" in caplog.text
    status = build_status(storage, TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS)
    assert status.trials_lost == 1
    assert status.trials_finished == status.trials_budget - 1
    assert status.eta_seconds == 0  # nothing will run: no endless wait shown

    rerun = build_labels(
        TASKS, algorithms=ALGORITHMS, n_configs=N_CONFIGS, storage=storage, loader=loader
    )
    assert rerun.provenance["n_lost"] == 1  # a plain rerun does not try it again

    retried = build_labels(
        TASKS,
        algorithms=ALGORITHMS,
        n_configs=N_CONFIGS,
        storage=storage,
        loader=loader,
        retry_lost=True,
    )
    assert (retried.provenance["n_unlabelled"], retried.provenance["n_lost"]) == (0, 0)
    pd.testing.assert_frame_equal(_sorted(retried), _sorted(uninterrupted))
    assert uninterrupted.provenance["n_unlabelled"] == 0


# -- relabelling one algorithm -------------------------------------------------------------
def test_relabelling_replaces_one_algorithm_and_keeps_the_others(
    uninterrupted: LabelSet, loader: Callable[[str], Interactions]
) -> None:
    # pure_svd searched again with a larger design, as after a change to its space.
    larger = build_labels(TASKS, algorithms=["pure_svd"], n_configs=N_CONFIGS + 2, loader=loader)
    merged = uninterrupted.relabelled(larger)
    svd = merged.labels[merged.labels["algorithm"] == "pure_svd"]
    assert len(svd) == len(TASKS) * (N_CONFIGS + 2)
    pd.testing.assert_frame_equal(
        _sorted(LabelSet(svd, merged.tasks)), _sorted(larger), check_index_type=False
    )
    kept = merged.labels[merged.labels["algorithm"] == "most_popular"]
    original = uninterrupted.labels[uninterrupted.labels["algorithm"] == "most_popular"]
    pd.testing.assert_frame_equal(
        _sorted(LabelSet(kept, merged.tasks)), _sorted(LabelSet(original, merged.tasks))
    )
    assert merged.tasks is uninterrupted.tasks
    assert merged.provenance["n_configs_by_algorithm"] == {
        "most_popular": N_CONFIGS,
        "pure_svd": N_CONFIGS + 2,
    }
    assert merged.provenance["relabelled"][-1]["algorithms"] == ["pure_svd"]
    assert merged.provenance["n_labels"] == len(merged.labels)


def test_relabelling_other_tasks_is_refused(
    uninterrupted: LabelSet, loader: Callable[[str], Interactions]
) -> None:
    one_task = build_labels(TASKS[:1], algorithms=["pure_svd"], n_configs=2, loader=loader)
    with pytest.raises(ValueError, match="1 missing"):
        uninterrupted.relabelled(one_task)
