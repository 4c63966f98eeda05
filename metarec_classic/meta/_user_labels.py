"""Per-user labels: how well each algorithm's best configuration serves each user of a task.

The dataset-level labels say which configuration of each algorithm scores best on a
task. Refitting that configuration and scoring it user by user tells, for a fixed sample
of the task's validation users, how each algorithm does *for that user*; together with
the users' meta-features (:func:`~metarec_classic.metafeatures.user_metafeatures`) this
is the training data of a per-user selection.

Every (task, algorithm) pair is a design study with a single point, the best
configuration, run with the machinery of the label build (see
:mod:`metarec_classic.tuning._design`): an interrupted build resumes from its storage
without refitting a finished pair, and several processes that open the same storage
share the pairs between them. A task's sampled users and their meta-features are stored
once, in a study of their own, so every algorithm is scored on the same users.

The fit is the one of the label build (the task's train split, ``random_state`` the
task's seed, one thread), so with every validation user sampled the mean of the
per-user values is the dataset-level label.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.trial import TrialState

from metarec_classic.data import Interactions, load_dataset
from metarec_classic.evaluation import evaluate
from metarec_classic.meta._corpus import Task, _stable_seed
from metarec_classic.meta._labels import (
    LabelSet,
    _config_key,
    _is_label,
    _load_study,
    _task_split,
    library_versions,
)
from metarec_classic.metafeatures import USER_FEATURE_NAMES, user_metafeatures
from metarec_classic.recommenders import get_recommender_class, make_recommender
from metarec_classic.tuning import (
    claim_trial,
    design_progress,
    hold_threads,
    open_design_study,
    recover_stale_trials,
    requeue_lost,
    resolve_storage,
    run_claimed_trial,
    storage_errors,
    suggest_config,
)
from metarec_classic.tuning._tune import FAIL_REASON_ATTR, FIT_TIME_ATTR, quiet_optuna

__all__ = [
    "USER_LABELS_VERSION",
    "UserLabelSet",
    "build_user_labels",
    "export_user_labels",
]

_log = logging.getLogger(__name__)

#: Version of the per-user labels layout; part of every study name.
USER_LABELS_VERSION = 1
_STUDY_PREFIX = f"user-labels-v{USER_LABELS_VERSION}"
_K = 10
_METRIC = f"ndcg@{_K}"
#: Attributes of a task's users study, and of a trial.
_USERS_ATTR = "users"
_FEATURES_ATTR = "user_features"
_SAMPLE_SIZE_ATTR = "users_per_task"
_VALUES_ATTR = "user_ndcg"
#: Files of a saved UserLabelSet; they sit beside the dataset-level labels.
_FEATURES_FILE = "user_features.csv.gz"
_SCORES_FILE = "user_scores.csv.gz"
_PROVENANCE_FILE = "user_provenance.json"


@dataclass
class UserLabelSet:
    """Per-user scores of every algorithm's best configuration, and the users' features.

    Attributes
    ----------
    users : DataFrame
        One row per sampled user: ``task_id``, ``user_index`` (the user's row in the
        task's train split) and one column per user meta-feature
        (:data:`~metarec_classic.metafeatures.USER_FEATURE_NAMES`).
    scores : DataFrame
        One row per (task, algorithm, sampled user): ``task_id``, ``algorithm``,
        ``user_index``, ``ndcg`` (validation NDCG@10 of the algorithm's best
        configuration for that user).
    provenance : dict
        Layout version, users per task, the labels the configurations came from, library
        versions and build date.
    """

    users: pd.DataFrame
    scores: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``user_features.csv.gz``, ``user_scores.csv.gz`` and ``user_provenance.json``.

        The scores are written one row per (task, user) with one column per algorithm,
        which keeps the file a fraction of the long table's size; :meth:`load` turns them
        back into the long table.
        """
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self.users.sort_values(["task_id", "user_index"]).to_csv(
            path / _FEATURES_FILE, index=False, float_format="%.6g"
        )
        wide = self.scores.pivot(
            index=["task_id", "user_index"], columns="algorithm", values="ndcg"
        ).sort_index()
        wide.columns.name = None
        wide.reset_index().to_csv(path / _SCORES_FILE, index=False, float_format="%.6g")
        (path / _PROVENANCE_FILE).write_text(json.dumps(self.provenance, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> UserLabelSet:
        """Read a folder written by :meth:`save`."""
        path = Path(folder)
        names = (_FEATURES_FILE, _SCORES_FILE, _PROVENANCE_FILE)
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"The folder {str(path)!r} lacks the per-user label files {missing!r}; build "
                "them with `build_user_labels` and save them there."
            )
        provenance = json.loads((path / _PROVENANCE_FILE).read_text())
        version = provenance.get("user_labels_version")
        if version != USER_LABELS_VERSION:
            raise ValueError(
                f"The per-user labels in {str(path)!r} have version {version!r}; this "
                f"metarec_classic reads version {USER_LABELS_VERSION}. Rebuild them with "
                "`build_user_labels`."
            )
        wide = pd.read_csv(path / _SCORES_FILE)
        scores = (
            wide.melt(id_vars=["task_id", "user_index"], var_name="algorithm", value_name="ndcg")
            .dropna(subset=["ndcg"])
            .sort_values(["task_id", "algorithm", "user_index"])
            .reset_index(drop=True)
        )
        return cls(
            users=pd.read_csv(
                path / _FEATURES_FILE, dtype={name: np.float64 for name in USER_FEATURE_NAMES}
            ),
            scores=scores[["task_id", "algorithm", "user_index", "ndcg"]],
            provenance=provenance,
        )

    def relabelled(self, other: UserLabelSet) -> UserLabelSet:
        """These per-user labels with the scores of every algorithm in ``other`` replaced.

        The counterpart of :meth:`LabelSet.relabelled`: ``other`` scores the same users
        (drawn per task, seeded by the task) for the relabelled algorithms only.

        Raises
        ------
        ValueError
            When ``other`` was drawn for other users.
        """
        keys = ["task_id", "user_index"]
        mine = set(map(tuple, self.users[keys].to_numpy()))
        theirs = set(map(tuple, other.users[keys].to_numpy()))
        if mine != theirs:
            raise ValueError(
                f"The relabelled per-user labels hold other users ({len(theirs ^ mine)} "
                "(task, user) pairs differ); build them with the same tasks and "
                "`users_per_task`."
            )
        changed = sorted(other.scores["algorithm"].unique())
        kept = self.scores[~self.scores["algorithm"].isin(changed)]
        scores = (
            pd.concat([kept, other.scores], ignore_index=True)
            .sort_values(["task_id", "algorithm", "user_index"])
            .reset_index(drop=True)
        )
        provenance = {
            **self.provenance,
            "labels": other.provenance.get("labels", self.provenance.get("labels")),
            "n_scores": len(scores),
            "failed": [
                *(f for f in self.provenance.get("failed", []) if f["algorithm"] not in changed),
                *other.provenance.get("failed", []),
            ],
        }
        return UserLabelSet(self.users, scores, provenance)

    def without_family(self, family: str, tasks: pd.DataFrame | LabelSet) -> UserLabelSet:
        """The users of every task outside the dataset ``family`` (for held-out tests).

        ``tasks`` gives each task's family: the tasks table of the dataset-level labels
        (``LabelSet.tasks``) or the LabelSet itself.
        """
        table = tasks.tasks if isinstance(tasks, LabelSet) else tasks
        held_out = set(table.loc[table["family"] == family, "task_id"])
        unknown = sorted(set(self.users["task_id"]) - set(table["task_id"]))
        if unknown:
            raise ValueError(
                f"Tasks {unknown[:3]!r} are not in `tasks`; pass the tasks table of the "
                "labels these per-user labels were built from."
            )
        users = self.users[~self.users["task_id"].isin(held_out)]
        scores = self.scores[~self.scores["task_id"].isin(held_out)]
        return UserLabelSet(users, scores, dict(self.provenance))


def build_user_labels(
    labels: LabelSet,
    tasks: Sequence[Task],
    *,
    storage: str | os.PathLike[str] | BaseStorage | None = None,
    loader: Callable[[str], Interactions] = load_dataset,
    users_per_task: int = 200,
    algorithms: Sequence[str] | None = None,
    retry_lost: bool = False,
) -> UserLabelSet:
    """Score each algorithm's best configuration on a sample of each task's users.

    For every task of ``labels`` and every algorithm labelled on it, the configuration
    with the highest validation NDCG@10 (ties: the earliest design point) is fitted on
    the task's train split as in the label build, and its NDCG@10 is recorded for each
    of at most ``users_per_task`` validation users with a validation positive. The users
    are drawn once per task, seeded by the task, so every algorithm is scored on the
    same users.

    Parameters
    ----------
    labels : LabelSet
        Dataset-level labels, e.g. :func:`~metarec_classic.meta.load_shipped_labels`.
    tasks : sequence of Task
        The tasks the labels were built from (matched by ``task_id``).
    storage : str, path or optuna storage, optional
        Where the studies live: a journal file resumes an interrupted build, and several
        processes that run this same call against one journal file or database share the
        work. In memory when omitted.
    loader : callable, default=load_dataset
        Turns a task's dataset name into :class:`~metarec_classic.data.Interactions`.
    users_per_task : int, default=200
        Largest number of users sampled per task.
    algorithms : sequence of str, optional
        Algorithms to score; default every algorithm with a completed label on the task.
    retry_lost : bool, default=False
        Try once more each pair whose every try died (see
        :class:`~metarec_classic.tuning.DesignProgress`); without it such pairs stay
        unscored, and the provenance (``n_unscored``) and a warning count them.

    Returns
    -------
    UserLabelSet
        What the storage holds once this process has no work left. A pair another
        process is still fitting is missing (counted as unscored);
        :func:`export_user_labels` reads it later.
    """
    _check_size(users_per_task)
    best = _best_configs(labels, algorithms)
    order = _ordered_tasks(labels, tasks)
    with storage_errors(storage):
        resolved = resolve_storage(storage) or InMemoryStorage()
    cache: dict[str, Interactions] = {}
    previous_level = quiet_optuna()
    try:
        # One thread for the fits, as in the label build: the scores must not depend on it.
        with storage_errors(storage), hold_threads(1):
            for task in order:
                configs = best.get(task.task_id, {})
                if not configs or _task_done(resolved, task, configs, users_per_task):
                    continue
                split = _task_split(task, cache, loader)
                if split is None:
                    raise ValueError(
                        f"Task {task.task_id!r} no longer cuts to a usable size; pass the "
                        "data the labels were built from."
                    )
                users = _record_users(resolved, task, split, users_per_task)
                for algorithm, config in configs.items():
                    _work_on(resolved, task, algorithm, config, split, users, retry_lost)
    finally:
        optuna.logging.set_verbosity(previous_level)
    with storage_errors(storage):
        return _export(resolved, labels, order, best, users_per_task)


def export_user_labels(
    storage: str | os.PathLike[str] | BaseStorage,
    labels: LabelSet,
    tasks: Sequence[Task],
    *,
    users_per_task: int = 200,
    algorithms: Sequence[str] | None = None,
) -> UserLabelSet:
    """Read the per-user labels of ``tasks`` built by :func:`build_user_labels`.

    Pairs not built yet are left out. Raises ``ValueError`` when the storage was built
    with another ``users_per_task`` or from labels with other best configurations.
    """
    _check_size(users_per_task)
    best = _best_configs(labels, algorithms)
    order = _ordered_tasks(labels, tasks)
    with storage_errors(storage):
        resolved = resolve_storage(storage)
        assert resolved is not None
        return _export(resolved, labels, order, best, users_per_task)


# -- choices -------------------------------------------------------------------------------
def _best_configs(
    labels: LabelSet, algorithms: Sequence[str] | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{task_id: {algorithm: best configuration}}`` from the completed labels."""
    if algorithms is not None:
        for name in algorithms:
            get_recommender_class(name)  # unknown names raise here, with the valid ones
    table = labels.labels
    table = table[table["state"] == TrialState.COMPLETE.name]
    if algorithms is not None:
        table = table[table["algorithm"].isin(list(algorithms))]
    ranked = table.sort_values(
        ["task_id", "algorithm", "score", "trial"], ascending=[True, True, False, True]
    ).drop_duplicates(["task_id", "algorithm"])
    best: dict[str, dict[str, dict[str, Any]]] = {}
    for row in ranked.itertuples(index=False):
        best.setdefault(str(row.task_id), {})[str(row.algorithm)] = json.loads(str(row.config))
    return best


def _ordered_tasks(labels: LabelSet, tasks: Sequence[Task]) -> list[Task]:
    """The tasks of ``labels``, in the order of ``tasks`` (grouped by dataset)."""
    wanted = set(labels.tasks["task_id"])
    known = {task.task_id for task in tasks}
    missing = sorted(wanted - known)
    if missing:
        raise ValueError(
            f"Tasks {missing[:3]!r} of the labels are not among `tasks`; pass the task list "
            "the labels were built from."
        )
    return [task for task in tasks if task.task_id in wanted]


def _sample_users(validation: Interactions, task: Task, users_per_task: int) -> np.ndarray:
    """Sorted row indices of at most ``users_per_task`` users with a validation positive."""
    positives = np.asarray((validation.user_items > 0).sum(axis=1)).ravel()
    candidates = np.flatnonzero(positives > 0)
    if len(candidates) <= users_per_task:
        return candidates
    rng = np.random.default_rng(_stable_seed(task.task_id))
    return np.sort(rng.choice(candidates, size=users_per_task, replace=False))


# -- one task ------------------------------------------------------------------------------
def _record_users(
    storage: BaseStorage,
    task: Task,
    split: tuple[Interactions, Interactions],
    users_per_task: int,
) -> np.ndarray:
    """Store the task's sampled users and their meta-features once; return the users."""
    info = _users_info(storage, task, users_per_task)
    if info is not None:
        return np.asarray(info[_USERS_ATTR], dtype=np.int64)
    train, validation = split
    users = _sample_users(validation, task, users_per_task)
    if len(users) == 0:
        raise ValueError(f"Task {task.task_id!r} has no validation user with a positive.")
    features = user_metafeatures(train, random_state=task.seed).iloc[users]
    study = optuna.create_study(
        study_name=_study_name(task, "_users"), storage=storage, load_if_exists=True
    )
    study.set_user_attr(_SAMPLE_SIZE_ATTR, users_per_task)
    study.set_user_attr(_USERS_ATTR, [int(u) for u in users])
    # Written last: a study without it was left half-written and is written again.
    study.set_user_attr(
        _FEATURES_ATTR, {name: [float(v) for v in features[name]] for name in features.columns}
    )
    return users


def _users_info(storage: BaseStorage, task: Task, users_per_task: int) -> dict[str, Any] | None:
    study = _load_study(storage, _study_name(task, "_users"))
    if study is None:
        return None
    attrs = study.user_attrs
    if _FEATURES_ATTR not in attrs:
        return None
    if attrs.get(_SAMPLE_SIZE_ATTR) != users_per_task:
        raise ValueError(
            f"The storage holds per-user labels of task {task.task_id!r} with "
            f"users_per_task={attrs.get(_SAMPLE_SIZE_ATTR)!r}, not {users_per_task!r}; use "
            "the same value or another storage."
        )
    return attrs


def _task_done(
    storage: BaseStorage, task: Task, configs: dict[str, dict[str, Any]], users_per_task: int
) -> bool:
    """Whether the task's users and every one of its pairs are in the storage already."""
    if _users_info(storage, task, users_per_task) is None:
        return False
    for algorithm in configs:
        study = _load_study(storage, _study_name(task, algorithm))
        if study is None or not design_progress(study, _is_label).done:
            return False
    return True


# -- one study -----------------------------------------------------------------------------
def _work_on(
    storage: BaseStorage,
    task: Task,
    algorithm: str,
    config: dict[str, Any],
    split: tuple[Interactions, Interactions],
    users: np.ndarray,
    retry_lost: bool = False,
) -> int:
    """Run the pair's single trial if it is still waiting; return how many trials ran."""
    study = open_design_study(storage, _study_name(task, algorithm), [config], is_label=_is_label)
    if study is None:  # another process is enqueuing it right now
        return 0
    recover_stale_trials(study)
    if retry_lost:
        requeue_lost(study, [config], is_label=_is_label)
    ran = 0
    last = -1
    while (trial := claim_trial(study, after=last)) is not None:
        last = trial.number
        objective = _make_objective(algorithm, split, users, seed=task.seed)
        started = time.perf_counter()
        state = run_claimed_trial(study, trial, objective)
        ran += 1
        _log.info(
            "User labels of %s %s: %s in %.1f s.",
            task.task_id,
            algorithm,
            state.name,
            time.perf_counter() - started,
        )
    return ran


def _make_objective(
    algorithm: str,
    split: tuple[Interactions, Interactions],
    users: np.ndarray,
    *,
    seed: int,
) -> Callable[[optuna.trial.BaseTrial], float]:
    """Fit the trial's configuration; store each user's NDCG@10 and return their mean."""
    train, validation = split
    space = get_recommender_class(algorithm).search_space()

    def objective(trial: optuna.trial.BaseTrial) -> float:
        config = suggest_config(trial, space)
        model = make_recommender(algorithm, config, random_state=seed, n_jobs=1)
        started = time.perf_counter()
        try:
            model.fit(train)
            trial.set_user_attr(FIT_TIME_ATTR, time.perf_counter() - started)
            result = evaluate(model, train, validation, k=_K, metrics=("ndcg",), users=users)
            per_user = result.per_user.set_index("user_index")[_METRIC].reindex(users)
            values = per_user.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                raise ValueError(
                    f"{int((~np.isfinite(values)).sum())} sampled users got no finite {_METRIC}."
                )
        except Exception as err:
            trial.set_user_attr(FAIL_REASON_ATTR, f"{type(err).__name__}: {err}")
            raise
        trial.set_user_attr(_VALUES_ATTR, [float(v) for v in values])
        return float(values.mean())

    return objective


# -- reading -------------------------------------------------------------------------------
def _export(
    storage: BaseStorage,
    labels: LabelSet,
    order: Sequence[Task],
    best: dict[str, dict[str, dict[str, Any]]],
    users_per_task: int,
) -> UserLabelSet:
    user_frames: list[pd.DataFrame] = []
    score_frames: list[pd.DataFrame] = []
    failed: list[dict[str, str]] = []
    unscored: list[str] = []
    for task in order:
        info = _users_info(storage, task, users_per_task)
        if info is None:
            unscored.extend(f"{task.task_id} {a}" for a in best.get(task.task_id, {}))
            continue
        users = np.asarray(info[_USERS_ATTR], dtype=np.int64)
        frame = pd.DataFrame({"task_id": task.task_id, "user_index": users})
        features = info[_FEATURES_ATTR]
        for name in USER_FEATURE_NAMES:
            frame[name] = np.asarray(features[name], dtype=np.float64)
        user_frames.append(frame)
        for algorithm, config in best.get(task.task_id, {}).items():
            trial = _finished_trial(storage, task, algorithm)
            if trial is None:
                unscored.append(f"{task.task_id} {algorithm}")
                continue
            if _config_key(trial.params) != _config_key(config):
                raise ValueError(
                    f"The storage scored {algorithm!r} on task {task.task_id!r} with "
                    f"{_config_key(trial.params)}, but its best configuration in the labels "
                    f"is {_config_key(config)}; the labels changed since. Use another storage."
                )
            if trial.state != TrialState.COMPLETE:
                reason = str(trial.user_attrs.get(FAIL_REASON_ATTR))
                failed.append({"task_id": task.task_id, "algorithm": algorithm, "reason": reason})
                continue
            score_frames.append(
                pd.DataFrame(
                    {
                        "task_id": task.task_id,
                        "algorithm": algorithm,
                        "user_index": users,
                        "ndcg": np.asarray(trial.user_attrs[_VALUES_ATTR], dtype=np.float64),
                    }
                )
            )
    users_table = _concat(user_frames, ["task_id", "user_index", *USER_FEATURE_NAMES])
    scores = _concat(score_frames, ["task_id", "algorithm", "user_index", "ndcg"])
    provenance = {
        "user_labels_version": USER_LABELS_VERSION,
        "metric": _METRIC,
        "users_per_task": users_per_task,
        "algorithms": sorted(set(scores["algorithm"])),
        "n_tasks": int(users_table["task_id"].nunique()),
        "n_users": len(users_table),
        "n_scores": len(scores),
        "failed": failed,
        "n_unscored": len(unscored),
        "labels": {
            key: labels.provenance.get(key)
            for key in ("labels_version", "n_configs", "n_configs_by_algorithm", "built")
        },
        "built": time.strftime("%Y-%m-%d"),
        "versions": library_versions(),
    }
    if unscored:
        _log.warning(
            "%d (task, algorithm) pairs have no per-user scores (e.g. %s): not run yet, or "
            "every try died (out of memory?); rerun the build to finish them, with "
            "retry_lost=True for the ones whose tries died.",
            len(unscored),
            unscored[0],
        )
    return UserLabelSet(users_table, scores, provenance)


def _finished_trial(
    storage: BaseStorage, task: Task, algorithm: str
) -> optuna.trial.FrozenTrial | None:
    """The pair's labelling trial (completed, or failed with a reason), if it has one."""
    study = _load_study(storage, _study_name(task, algorithm))
    if study is None:
        return None
    finished = [t for t in study.get_trials(deepcopy=False) if _is_label(t)]
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    chosen = complete or finished
    return chosen[0] if chosen else None


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _study_name(task: Task, algorithm: str) -> str:
    return f"{_STUDY_PREFIX}|{task.task_id}|{algorithm}"


def _check_size(users_per_task: int) -> None:
    if (
        isinstance(users_per_task, bool)
        or not isinstance(users_per_task, (int, np.integer))
        or users_per_task < 1
    ):
        raise ValueError(f"`users_per_task` must be a positive int; got {users_per_task!r}.")
