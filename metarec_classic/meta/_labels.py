"""Meta-training labels: the validation scores of many configurations on many tasks.

For every (task, algorithm) pair an Optuna study runs a fixed *design* of
configurations: the algorithm's default, then points of a scrambled Sobol sequence over
its search space, seeded by the task and algorithm. Because the design is fixed before
the build, the labels do not depend on how many processes built them or in which order,
and an interrupted build resumes from the storage without repeating a finished trial.

The build's outputs are two tables: ``labels`` (one row per trial: task, algorithm,
configuration, validation NDCG@10, fit time, state) and ``tasks`` (one row per task: its
provenance and dataset meta-features).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import BaseStorage
from optuna.trial import TrialState
from scipy.stats import qmc

from metarec_classic.data import Interactions, load_dataset
from metarec_classic.meta._corpus import Task, cut_task
from metarec_classic.metafeatures import dataset_metafeatures
from metarec_classic.recommenders import ALGORITHM_NAMES, get_recommender_class
from metarec_classic.tuning import resolve_storage
from metarec_classic.tuning._design import DESIGN_INDEX_ATTR, design_progress
from metarec_classic.tuning._tune import FAIL_REASON_ATTR, FIT_TIME_ATTR

__all__ = [
    "LABELS_VERSION",
    "LabelSet",
    "design_configs",
    "export_labels",
    "library_versions",
    "recompute_task_features",
]

_log = logging.getLogger(__name__)

#: Version of the labels table layout and of the design; part of every study name.
LABELS_VERSION = 1
_STUDY_PREFIX = f"labels-v{LABELS_VERSION}"
_TASK_ATTR = "task"
_FEATURES_ATTR = "metafeatures"
_SKIPPED_ATTR = "skipped"
#: The task's caps, which its id does not name: processes of one build must agree on them.
CUT_ATTR = "cut"


@dataclass
class LabelSet:
    """Labels and task meta-features, with the provenance of the build.

    Attributes
    ----------
    labels : DataFrame
        One row per labelled design point: ``task_id``, ``algorithm``, ``trial`` (the
        point's position in the design), ``config``
        (JSON text), ``score`` (validation NDCG@10), ``fit_time``, ``state``,
        ``fail_reason``.
    tasks : DataFrame
        One row per task: ``task_id``, ``dataset``, ``family``, ``kind``, ``size``,
        ``seed``, ``n_users``, ``n_items``, ``n_interactions`` and one column per dataset
        meta-feature.
    provenance : dict
        Labels version, library versions, design size and build date.
    """

    labels: pd.DataFrame
    tasks: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``labels.csv.gz``, ``tasks.csv.gz`` and ``provenance.json`` to ``folder``."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self.labels.sort_values(["task_id", "algorithm", "trial"]).to_csv(
            path / "labels.csv.gz", index=False, float_format="%.6g"
        )
        self.tasks.sort_values("task_id").to_csv(
            path / "tasks.csv.gz", index=False, float_format="%.8g"
        )
        (path / "provenance.json").write_text(json.dumps(self.provenance, indent=2) + "\n")
        return path

    def without_family(self, family: str) -> LabelSet:
        """The labels of every task outside the dataset ``family`` (for held-out tests)."""
        tasks = self.tasks[self.tasks["family"] != family]
        keep = self.labels["task_id"].isin(tasks["task_id"])
        return LabelSet(self.labels[keep], tasks, dict(self.provenance))

    def relabelled(self, other: LabelSet) -> LabelSet:
        """These labels with the rows of every algorithm in ``other`` taken from ``other``.

        For a change to one algorithm (its search space, say) without searching the
        others again: ``other`` labels the same tasks for the changed algorithms only,
        perhaps with another design size. The tasks table of ``self`` is kept. The
        provenance records each algorithm's design size (``n_configs_by_algorithm``) and
        which algorithms were relabelled when.

        Raises
        ------
        ValueError
            When ``other`` labels tasks that ``self`` does not have, or misses some.
        """
        mine, theirs = set(self.tasks["task_id"]), set(other.tasks["task_id"])
        if mine != theirs:
            raise ValueError(
                f"The relabelled tasks differ from these: {len(theirs - mine)} new (e.g. "
                f"{sorted(theirs - mine)[:2]!r}) and {len(mine - theirs)} missing (e.g. "
                f"{sorted(mine - theirs)[:2]!r}); relabel with the task list these labels "
                "were built from."
            )
        changed = list(
            other.provenance.get("algorithms", sorted(other.labels["algorithm"].unique()))
        )
        kept = self.labels[~self.labels["algorithm"].isin(changed)]
        labels = pd.concat([kept, other.labels], ignore_index=True)
        sizes = dict(self.provenance.get("n_configs_by_algorithm", {}))
        for algorithm in self.provenance.get("algorithms", []):
            sizes.setdefault(algorithm, self.provenance.get("n_configs"))
        sizes.update(dict.fromkeys(changed, other.provenance.get("n_configs")))
        algorithms = [*self.provenance.get("algorithms", []), *changed]
        provenance = {
            **self.provenance,
            "algorithms": list(dict.fromkeys(algorithms)),
            "n_configs_by_algorithm": sizes,
            "n_labels": len(labels),
            "relabelled": [
                *self.provenance.get("relabelled", []),
                {"algorithms": changed, "built": other.provenance.get("built")},
            ],
        }
        return LabelSet(labels, self.tasks, provenance)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> LabelSet:
        """Read a folder written by :meth:`save`."""
        path = Path(folder)
        missing = [
            n
            for n in ("labels.csv.gz", "tasks.csv.gz", "provenance.json")
            if not (path / n).is_file()
        ]
        if missing:
            raise FileNotFoundError(
                f"The labels folder {str(path)!r} lacks {missing!r}; build one with "
                "`metarec build-corpus` or point to the folder it wrote."
            )
        provenance = json.loads((path / "provenance.json").read_text())
        if provenance.get("labels_version") != LABELS_VERSION:
            raise ValueError(
                f"The labels in {str(path)!r} have version "
                f"{provenance.get('labels_version')!r}; this metarec_classic reads version "
                f"{LABELS_VERSION}. Rebuild them with `metarec build-corpus`."
            )
        return cls(
            labels=pd.read_csv(path / "labels.csv.gz"),
            tasks=pd.read_csv(path / "tasks.csv.gz"),
            provenance=provenance,
        )


def design_configs(algorithm: str, n_configs: int, seed: int) -> list[dict[str, Any]]:
    """The default configuration followed by ``n_configs - 1`` scrambled Sobol points.

    Integer and float parameters are mapped on a log scale where their distribution is
    logarithmic; categorical ones take the choice whose slot the point falls into.
    """
    cls = get_recommender_class(algorithm)
    space: dict[str, BaseDistribution] = cls.search_space()
    configs = [cls.default_config()]
    if not space or n_configs <= 1:
        return configs[: max(n_configs, 1)]
    sampler = qmc.Sobol(d=len(space), scramble=True, seed=seed)
    # Sobol points are balanced in blocks of powers of two; draw one and keep the head.
    points = sampler.random(2 ** math.ceil(math.log2(n_configs)))[: n_configs - 1]
    for point in points:
        configs.append(
            {name: _to_value(dist, u) for (name, dist), u in zip(space.items(), point, strict=True)}
        )
    return configs


def design_size(algorithm: str, n_configs: int) -> int:
    """How many configurations :func:`design_configs` gives ``algorithm``."""
    return 1 if not get_recommender_class(algorithm).search_space() else max(1, n_configs)


def export_labels(
    storage: str | os.PathLike[str] | BaseStorage,
    tasks: Sequence[Task],
    *,
    algorithms: Sequence[str] = ALGORITHM_NAMES,
    n_configs: int = 10,
) -> LabelSet:
    """Read the labels of ``tasks`` from ``storage`` into a :class:`LabelSet`.

    Every design point of a task the build reached should have a label. Those that have
    none are counted in the provenance (``n_unlabelled``, of which ``n_lost``: every try
    of the point died, see :class:`~metarec_classic.tuning.DesignProgress`) and named in
    a warning, never dropped silently.
    """
    resolved = resolve_storage(storage)
    assert resolved is not None
    label_rows: list[dict[str, Any]] = []
    task_rows: list[dict[str, Any]] = []
    unlabelled: dict[str, int] = {}
    n_lost = 0
    for task in tasks:
        info = _task_info(resolved, task)
        if info is None or info.get(_SKIPPED_ATTR):
            continue
        task_rows.append({**task.to_dict(), **info["shape"], **info[_FEATURES_ATTR]})
        for algorithm in algorithms:
            study = _load_study(resolved, _study_name(task, algorithm))
            budget = design_size(algorithm, n_configs)
            if study is None:
                unlabelled[_study_name(task, algorithm)] = budget
                continue
            progress = design_progress(study, _is_label)
            if progress.finished < budget:
                unlabelled[study.study_name] = budget - progress.finished
                n_lost += progress.lost
            labelled: set[Any] = set()
            for trial in study.get_trials(deepcopy=False):
                # One label per design point: the first trial that finished it. A point
                # whose worker died is run again; only the finished run labels it.
                config = _config_key(trial.params)
                point = trial.user_attrs.get(DESIGN_INDEX_ATTR)
                if not _is_label(trial) or config in labelled or point in labelled:
                    continue
                labelled.update({config, point} - {None})
                label_rows.append(
                    {
                        "task_id": task.task_id,
                        "algorithm": algorithm,
                        "trial": trial.user_attrs.get(DESIGN_INDEX_ATTR, trial.number),
                        "config": config,
                        "score": trial.value,
                        FIT_TIME_ATTR: trial.user_attrs.get(FIT_TIME_ATTR),
                        "state": trial.state.name,
                        FAIL_REASON_ATTR: trial.user_attrs.get(FAIL_REASON_ATTR),
                    }
                )
    provenance = {
        "labels_version": LABELS_VERSION,
        "metric": "ndcg@10",
        "n_configs": n_configs,
        "algorithms": list(algorithms),
        "n_tasks": len(task_rows),
        "n_labels": len(label_rows),
        "n_unlabelled": sum(unlabelled.values()),
        "n_lost": n_lost,
        "built": time.strftime("%Y-%m-%d"),
        "versions": library_versions(),
    }
    if unlabelled:
        n_waiting = sum(unlabelled.values()) - n_lost
        fixes = []
        if n_lost:
            fixes.append(
                f"{n_lost} lost because every try of them died (out of memory?): rerun the "
                "build with --retry-lost (Python: retry_lost=True) to try them again"
            )
        if n_waiting:
            fixes.append(f"{n_waiting} not run yet: rerun the build to finish them")
        _log.warning(
            "%d configurations in %d studies have no label (e.g. %s): %s.",
            sum(unlabelled.values()),
            len(unlabelled),
            next(iter(unlabelled)),
            "; ".join(fixes),
        )
    return LabelSet(pd.DataFrame(label_rows), pd.DataFrame(task_rows), provenance)


def recompute_task_features(
    labels: LabelSet,
    tasks: Sequence[Task],
    *,
    loader: Callable[[str], Interactions] = load_dataset,
    landmark_seconds: float = 10.0,
) -> LabelSet:
    """The same labels with every task's meta-features computed again by this version.

    The expensive part of a corpus is its searches; the meta-features are cheap. After a
    change to how meta-features are computed, this brings the tasks table up to date
    without rerunning a single search.
    """
    by_id = {task.task_id: task for task in tasks}
    missing = sorted(set(labels.tasks["task_id"]) - set(by_id))
    if missing:
        raise ValueError(
            f"Tasks {missing[:3]!r} of the labels are not among `tasks`; pass the task list "
            "the labels were built from."
        )
    cache: dict[str, Interactions] = {}
    rows = []
    for task_id in labels.tasks["task_id"]:
        task = by_id[task_id]
        split = _task_split(task, cache, loader)
        if split is None:
            raise ValueError(f"Task {task_id!r} no longer cuts to a usable size.")
        features = dataset_metafeatures(
            split[0], landmark_seconds=landmark_seconds, random_state=task.seed
        )
        rows.append({"task_id": task_id, **features})
    fresh = pd.DataFrame(rows)
    kept = labels.tasks[[c for c in labels.tasks.columns if "." not in c]]
    return LabelSet(labels.labels, kept.merge(fresh, on="task_id"), dict(labels.provenance))


# -- one task ------------------------------------------------------------------------------
def _task_split(
    task: Task, cache: dict[str, Interactions], loader: Callable[[str], Interactions]
) -> tuple[Interactions, Interactions] | None:
    if task.dataset not in cache:
        cache.clear()  # tasks come grouped by dataset; keep one in memory
        cache[task.dataset] = loader(task.dataset)
    return cut_task(task, cache[task.dataset])


def _record_task(
    storage: BaseStorage,
    task: Task,
    split: tuple[Interactions, Interactions] | None,
    landmark_seconds: float,
) -> None:
    """Store the task's meta-features once, in a study of its own."""
    if _task_info(storage, task) is not None:
        return
    study = optuna.create_study(
        study_name=_study_name(task, "_task"), storage=storage, load_if_exists=True
    )
    study.set_user_attr(CUT_ATTR, task_caps(task))
    if split is None:
        study.set_user_attr(_SKIPPED_ATTR, True)
        return
    train, _ = split
    features = dataset_metafeatures(
        train, landmark_seconds=landmark_seconds, random_state=task.seed
    )
    study.set_user_attr(
        "shape",
        {
            "n_users": train.n_users,
            "n_items": train.n_items,
            "n_interactions": train.n_interactions,
        },
    )
    study.set_user_attr(_FEATURES_ATTR, features)


def task_caps(task: Task) -> dict[str, int]:
    """The caps of ``task`` as recorded with it in a build's storage."""
    return {"max_interactions": int(task.max_interactions), "max_items": int(task.max_items)}


def _task_info(storage: BaseStorage, task: Task) -> dict[str, Any] | None:
    study = _load_study(storage, _study_name(task, "_task"))
    if study is None:
        return None
    attrs = study.user_attrs
    if attrs.get(_SKIPPED_ATTR):
        return {_SKIPPED_ATTR: True}
    if _FEATURES_ATTR not in attrs:
        return None
    return attrs


# -- helpers -------------------------------------------------------------------------------
def _study_name(task: Task, algorithm: str) -> str:
    return f"{_STUDY_PREFIX}|{task.task_id}|{algorithm}"


def _config_key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def _is_label(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial labels its configuration: it completed, or the configuration failed.

    A failed trial without a recorded reason was interrupted (Ctrl-C, or an error outside
    the configuration's fit); it says nothing about the configuration and is run again.
    """
    if trial.state == TrialState.COMPLETE:
        return True
    return trial.state == TrialState.FAIL and FAIL_REASON_ATTR in trial.user_attrs


def _load_study(storage: BaseStorage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _to_value(dist: BaseDistribution, u: float) -> Any:
    """Map ``u`` in [0, 1) to a value of ``dist`` (log scale where the distribution is)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[min(int(u * len(dist.choices)), len(dist.choices) - 1)]
    if isinstance(dist, (IntDistribution, FloatDistribution)):
        low, high = float(dist.low), float(dist.high)
        value = (
            math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
            if dist.log
            else low + u * (high - low)
        )
        if isinstance(dist, IntDistribution):
            step = dist.step or 1
            return int(min(max(round((value - low) / step) * step + low, low), high))
        if dist.step:
            value = round((value - low) / dist.step) * dist.step + low
        return float(min(max(value, low), high))
    raise TypeError(f"Unsupported distribution {dist!r}.")


def library_versions() -> dict[str, str]:
    out = {}
    for package in (
        "metarec-classic",
        "implicit",
        "scikit-learn",
        "lightgbm",
        "optuna",
        "numpy",
        "scipy",
    ):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out
