"""Meta-training tasks: deterministic cuts of real datasets, each with its own split.

A meta-model learns which algorithm and configuration rank best *as a function of the
data*, so it needs many data situations, not only the few public datasets. Each
:class:`Task` cuts one situation out of a dataset:

=========  ==============================================================================
kind       what is kept
=========  ==============================================================================
users      a random share of the users (``size`` = share), all their interactions
items      a random share of the items (``size`` = share), users left with >= 2 kept
kcore      the ``size``-core: users and items with at least ``size`` interactions each
popular    the ``size`` most popular items and every user with >= 2 of them
=========  ==============================================================================

Every task is then capped at ``max_items`` (keeping the most popular items, as
practitioners filter rare items) and at ``max_interactions`` (by sampling users), so that
a search over it takes seconds even for models whose cost grows with the catalogue cubed
(EASE), and split into train and validation by a seeded per-user
holdout. Everything is a pure function of the task's fields, so a corpus can be rebuilt,
resumed or shared between machines and give the same tasks.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from metarec_classic.data import IdMap, Interactions, random_holdout_split

__all__ = ["DEFAULT_TASK_PLAN", "TASK_KINDS", "Task", "cut_task", "make_tasks", "subset"]

_log = logging.getLogger(__name__)

#: How a task may be cut from a dataset (see the module docstring).
TASK_KINDS: tuple[str, ...] = ("users", "items", "kcore", "popular", "full")

#: The cuts made of every dataset by default: (kind, size).
DEFAULT_TASK_PLAN: tuple[tuple[str, float], ...] = (
    ("users", 0.5),
    ("items", 0.5),
    ("kcore", 5),
    ("popular", 1000),
)

#: Smallest task worth a search: below this the validation scores are mostly noise.
MIN_USERS, MIN_ITEMS, MIN_INTERACTIONS = 50, 50, 1000


@dataclass(frozen=True)
class Task:
    """One meta-training situation cut from a dataset.

    Parameters
    ----------
    dataset : str
        Dataset name (as :func:`~metarec_classic.data.load_dataset` knows it).
    family : str
        Dataset family; datasets of one family are held out together in evaluation.
    kind : {"users", "items", "kcore", "popular", "full"}
        How the task is cut (see the module docstring).
    size : float
        Parameter of the cut.
    seed : int
        Seed of the cut and of the validation split.
    max_interactions : int
        Cap on the task's interactions.
    max_items : int
        Cap on the task's items.
    """

    dataset: str
    family: str
    kind: str
    size: float
    seed: int = 0
    max_interactions: int = 30_000
    max_items: int = 3_000

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"Task kind {self.kind!r} is unknown; use one of {TASK_KINDS!r}.")
        size = float(self.size)
        if self.kind in ("users", "items") and not 0 < size <= 1:
            raise ValueError(
                f"A {self.kind!r} task keeps a fraction of the {self.kind}: its size must be "
                f"in (0, 1], got {self.size!r} (e.g. {self.kind}:0.5)."
            )
        if self.kind in ("kcore", "popular") and not size >= 1:
            raise ValueError(
                f"A {self.kind!r} task's size is a count of at least 1, got {self.size!r} "
                f"(e.g. kcore:5 or popular:1000)."
            )

    @property
    def task_id(self) -> str:
        """Stable, readable identifier, e.g. ``"ml-100k/kcore-5/s0"``."""
        size = f"{self.size:g}"
        return f"{self.dataset}/{self.kind}-{size}/s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The task's fields plus its ``task_id``."""
        return {"task_id": self.task_id, **asdict(self)}


def make_tasks(
    datasets: Iterable[tuple[str, str]],
    *,
    plan: Sequence[tuple[str, float]] = DEFAULT_TASK_PLAN,
    seeds: Sequence[int] = (0,),
    max_interactions: int = 30_000,
    max_items: int = 3_000,
) -> list[Task]:
    """Return the tasks of ``plan`` for every (dataset, family) pair and seed, in order."""
    return [
        Task(name, family, kind, float(size), seed, max_interactions, max_items)
        for name, family in datasets
        for seed in seeds
        for kind, size in plan
    ]


def cut_task(task: Task, data: Interactions) -> tuple[Interactions, Interactions] | None:
    """Cut ``task`` out of ``data`` and split it; ``None`` when the cut is too small.

    Returns
    -------
    (train, validation) : tuple of Interactions, or None
        Both with the task's users and items; validation holds 20 % of each user's
        interactions (users with a single interaction stay in train).
    """
    rng = np.random.default_rng([_stable_seed(task.task_id), task.seed])
    matrix = data.user_items
    users = np.arange(matrix.shape[0])
    items = np.arange(matrix.shape[1])

    if task.kind == "users":
        users = np.sort(rng.choice(users, size=max(1, int(task.size * len(users))), replace=False))
    elif task.kind == "items":
        items = np.sort(rng.choice(items, size=max(1, int(task.size * len(items))), replace=False))
    elif task.kind == "popular":
        popularity = np.bincount(matrix.indices, minlength=matrix.shape[1])
        items = np.sort(np.argsort(-popularity, kind="stable")[: int(task.size)])
    elif task.kind == "kcore":
        users, items = _k_core(matrix, int(task.size))
    sub = matrix[users][:, items]
    if task.kind in ("items", "popular"):
        keep = np.diff(sub.indptr) >= 2
        sub, users = sub[keep], users[keep]

    # Cap the catalogue (most popular items), then the size (sampling users).
    if sub.shape[1] > task.max_items:
        popular = np.sort(np.argsort(-np.diff(sub.tocsc().indptr), kind="stable")[: task.max_items])
        sub, items = sub[:, popular], items[popular]
        keep = np.diff(sub.indptr) >= 2
        sub, users = sub[keep], users[keep]

    if sub.nnz > task.max_interactions:
        order = rng.permutation(sub.shape[0])
        cumulative = np.cumsum(np.diff(sub.indptr)[order])
        chosen = np.sort(order[: int(np.searchsorted(cumulative, task.max_interactions)) + 1])
        sub, users = sub[chosen], users[chosen]

    # Drop items nobody kept, so the catalogue is the task's own.
    used = np.flatnonzero(np.diff(sub.tocsc().indptr) > 0)
    sub = sub[:, used]
    items = items[used]
    if sub.shape[0] < MIN_USERS or sub.shape[1] < MIN_ITEMS or sub.nnz < MIN_INTERACTIONS:
        _log.info(
            "Task %s is too small (%s, %d interactions); skipped.", task.task_id, sub.shape, sub.nnz
        )
        return None
    cut = subset(data, users, items, name=task.task_id)
    split = random_holdout_split(cut, test_fraction=0.2, random_state=task.seed)
    return split.train, split.test


def subset(
    data: Interactions, users: np.ndarray, items: np.ndarray, *, name: str = ""
) -> Interactions:
    """The interactions of ``users`` with ``items``, keeping ratings and timestamps.

    Rows and columns follow the order of ``users`` and ``items``; the arrays aligned with
    the matrix entries (ratings, timestamps) are carried along.
    """
    m = data.user_items
    # Slice a matrix whose values are entry numbers, to know which entries survive.
    numbered = sp.csr_matrix(
        (np.arange(1, m.nnz + 1, dtype=np.float64), m.indices, m.indptr), shape=m.shape
    )
    cut = numbered[users][:, items]
    cut.sort_indices()
    entries = cut.data.astype(np.int64) - 1
    matrix = sp.csr_matrix((m.data[entries], cut.indices, cut.indptr), shape=cut.shape)
    return Interactions(
        user_items=matrix,
        user_map=IdMap(data.user_map.ids[users]),
        item_map=IdMap(data.item_map.ids[items]),
        timestamps=None if data.timestamps is None else data.timestamps[entries],
        ratings=None if data.ratings is None else data.ratings[entries],
        feedback=data.feedback,
        name=name or data.name,
    )


def _k_core(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Users and items that keep at least ``k`` interactions each after repeated pruning."""
    users = np.arange(matrix.shape[0])
    items = np.arange(matrix.shape[1])
    sub = matrix
    while True:
        user_ok = np.diff(sub.indptr) >= k
        item_ok = np.bincount(sub.indices, minlength=sub.shape[1]) >= k
        if user_ok.all() and item_ok.all():
            return users, items
        users, items = users[user_ok], items[item_ok]
        sub = matrix[users][:, items]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            return users, items


def _stable_seed(text: str) -> int:
    """A seed derived from text that, unlike ``hash``, is the same in every process."""
    return zlib.crc32(text.encode("utf-8"))
