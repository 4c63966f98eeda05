"""Tests of the meta-training tasks: deterministic cuts and aligned subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec_classic.data import Interactions
from metarec_classic.meta import DEFAULT_TASK_PLAN, Task, cut_task, make_tasks, subset


def _frame(data: Interactions) -> pd.DataFrame:
    return data.to_frame().sort_values(["user_id", "item_id"]).reset_index(drop=True)


def test_make_tasks_covers_plan_datasets_and_seeds_in_order() -> None:
    tasks = make_tasks([("a", "fa"), ("b", "fb")], seeds=(0, 1), max_interactions=500)
    assert len(tasks) == 2 * 2 * len(DEFAULT_TASK_PLAN)
    assert [t.dataset for t in tasks[: 2 * len(DEFAULT_TASK_PLAN)]] == ["a"] * 8
    assert [(t.kind, t.size) for t in tasks[:4]] == [(k, float(s)) for k, s in DEFAULT_TASK_PLAN]
    assert tasks[4].seed == 1 and all(t.max_interactions == 500 for t in tasks)
    assert len({t.task_id for t in tasks}) == len(tasks)
    assert Task("ml-100k", "movielens", "kcore", 5.0, 2).task_id == "ml-100k/kcore-5/s2"
    assert Task("x", "f", "users", 0.5).to_dict()["task_id"] == "x/users-0.5/s0"


@pytest.mark.parametrize(
    ("kind", "size"), [("users", 0.3), ("items", 0.5), ("kcore", 10), ("popular", 300)]
)
def test_cut_is_deterministic_and_seed_dependent(
    ml100k: Interactions, kind: str, size: float
) -> None:
    task = Task("ml-100k", "movielens", kind, size, seed=0, max_interactions=5000, max_items=500)
    first, second = cut_task(task, ml100k), cut_task(task, ml100k)
    assert first is not None and second is not None
    for a, b in zip(first, second, strict=True):
        assert a.user_map == b.user_map and a.item_map == b.item_map
        assert (a.user_items != b.user_items).nnz == 0
    train, validation = first
    # The caps hold: the catalogue, and the size up to the last sampled user's history.
    total = train.user_items + validation.user_items
    assert total.nnz <= 5000 + total.getnnz(axis=1).max()
    assert train.n_items <= 500
    assert validation.n_interactions > 0
    other = cut_task(
        Task("ml-100k", "movielens", kind, size, seed=1, max_interactions=5000, max_items=500),
        ml100k,
    )
    assert other is not None
    differs = (
        other[0].user_map != train.user_map or (other[0].user_items != train.user_items).nnz > 0
    )
    assert differs


def test_cut_train_and_validation_partition_the_cut(ml100k: Interactions) -> None:
    task = Task("ml-100k", "movielens", "users", 0.2, seed=0, max_interactions=4000, max_items=400)
    split = cut_task(task, ml100k)
    assert split is not None
    train, validation = split
    assert train.name == task.task_id
    assert train.user_map == validation.user_map and train.item_map == validation.item_map
    assert (train.user_items.multiply(validation.user_items)).nnz == 0
    # Every interaction of the cut is one of the original data, with its rating.
    original = _frame(ml100k).set_index(["user_id", "item_id"])
    for part in (train, validation):
        frame = _frame(part).set_index(["user_id", "item_id"])
        assert frame.index.isin(original.index).all()
        np.testing.assert_array_equal(frame["rating"], original.loc[frame.index, "rating"])


def test_too_small_cut_is_none_and_unknown_kind_is_refused(ml100k: Interactions) -> None:
    assert cut_task(Task("ml-100k", "movielens", "popular", 20), ml100k) is None
    with pytest.raises(ValueError, match="Task kind 'diagonal' is unknown"):
        Task("ml-100k", "movielens", "diagonal", 1)
    with pytest.raises(ValueError, match=r"size must be in \(0, 1\]"):
        Task("ml-100k", "movielens", "users", 2.0)
    with pytest.raises(ValueError, match="count of at least 1"):
        Task("ml-100k", "movielens", "kcore", 0.5)


def test_subset_keeps_ratings_and_timestamps_aligned(ml100k: Interactions) -> None:
    rng = np.random.default_rng(0)
    # Unsorted users and items: rows and columns follow the given order.
    users = rng.choice(ml100k.n_users, size=60, replace=False)
    items = rng.choice(ml100k.n_items, size=300, replace=False)
    cut = subset(ml100k, users, items, name="cut")
    assert cut.name == "cut"
    np.testing.assert_array_equal(cut.user_ids, ml100k.user_ids[users])
    np.testing.assert_array_equal(cut.item_ids, ml100k.item_ids[items])
    assert cut.timestamps is not None and cut.ratings is not None
    assert cut.n_interactions > 0

    original = _frame(ml100k).set_index(["user_id", "item_id"])
    frame = _frame(cut).set_index(["user_id", "item_id"])
    for column in ("weight", "rating", "timestamp"):
        np.testing.assert_array_equal(frame[column], original.loc[frame.index, column])
    # Exactly the entries of the chosen users and items survive.
    expected = original[
        original.index.get_level_values(0).isin(ml100k.user_ids[users])
        & original.index.get_level_values(1).isin(ml100k.item_ids[items])
    ]
    assert len(expected) == cut.n_interactions
