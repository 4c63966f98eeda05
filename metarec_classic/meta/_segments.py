"""Per-user meta-model and user segments: which algorithm serves which users best.

The dataset-level :class:`~metarec_classic.meta.MetaModel` picks one algorithm for all
users of a dataset. :class:`UserMetaModel` predicts, for every user, the validation
NDCG@10 each algorithm would reach for that user, from the user's meta-features
(:func:`~metarec_classic.metafeatures.user_metafeatures`), the dataset's meta-features
and the algorithm. The predictions are then summarised over *segments* of users:

- :func:`activity_segments`: fixed bins of training interactions (none, 1-4, 5-19,
  20-99, 100 and more), comparable across datasets;
- :func:`learned_segments`: a few readable rules over the user meta-features, found by
  a shallow decision tree that separates users by the algorithm predicted best for them.

:func:`choose_per_segment` then gives each segment the algorithm with the largest
predicted gain over the dataset-level choice, keeping the dataset-level choice wherever
the predicted gain is too small, or the segment too small, to act on.

Every segment is a conjunction of :class:`Condition` on user meta-features, so it can
also be applied to users it was not built from (:meth:`Segment.contains`). The segment
named :data:`NO_HISTORY` holds the users without training interactions; users never seen
in training belong to it, which is why :func:`choose_per_segment` always answers for it.

Persistence follows :class:`~metarec_classic.meta.MetaModel`: the booster is written as
LightGBM text and everything else as JSON, with the SHA-256 of the booster and of the
JSON document itself; loading refuses files that were changed, truncated or written by
another format version. No pickle is involved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np
import pandas as pd

from metarec_classic.meta._booster import BoosterParams
from metarec_classic.meta._labels import library_versions
from metarec_classic.meta._model import MetaModelFileError, read_model_document

__all__ = [
    "ACTIVITY_EDGES",
    "NO_HISTORY",
    "N_INTERACTIONS",
    "USER_FORMAT_VERSION",
    "Condition",
    "Segment",
    "SegmentChoice",
    "UserMetaModel",
    "activity_segments",
    "choose_per_segment",
    "learned_segments",
]

_log = logging.getLogger(__name__)

#: Version of the saved layout of :class:`UserMetaModel`; bumped whenever a saved model
#: cannot be read as before.
USER_FORMAT_VERSION = 1
_META_FILE = "user_metamodel.json"
_BOOSTER_FILE = "user_ndcg.lgb.txt"
_DIGEST_KEY = "document_sha256"
#: Users per prediction block, which bounds the memory of :meth:`UserMetaModel.predict`.
_PREDICT_BLOCK = 1 << 16

#: The user meta-feature that segments are built around: training interactions per user.
N_INTERACTIONS = "user_activity.n_interactions"
#: Name of the segment of users without training interactions (and of unseen users).
NO_HISTORY = "no history"
#: Lower edges of the activity bins after :data:`NO_HISTORY`: 1-4, 5-19, 20-99, 100+.
ACTIVITY_EDGES: tuple[int, ...] = (1, 5, 20, 100)


# -- the per-user meta-model ---------------------------------------------------------------
class UserMetaModel(BoosterParams):
    """Predicts each user's NDCG@10 under each algorithm.

    One LightGBM booster is trained on rows (task, user, algorithm) whose features are
    the user's meta-features, the task's dataset meta-features and the algorithm (a
    categorical feature), and whose target is the user's validation NDCG@10 under the
    algorithm's best configuration on the task. The objective is LightGBM's
    ``cross_entropy``: like a squared-error regression it estimates the mean NDCG@10,
    but its predictions stay within [0, 1], which matters for the many users whose
    NDCG@10 is 0.

    Parameters
    ----------
    n_estimators : int, default=300
        Boosting rounds.
    learning_rate : float, default=0.05
        Shrinkage of each round.
    num_leaves : int, default=31
        Leaves per tree.
    min_child_samples : int, default=50
        Minimum rows per leaf. Higher than for :class:`MetaModel` because a single
        user's NDCG@10, computed from a few validation items, is a noisy target.
    random_state : int, default=0
        Seed of LightGBM's bagging and feature sampling.

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The fitted booster.
    user_feature_names_ : list of str
        User meta-feature names, in order.
    feature_names_ : list of str
        Dataset meta-feature names, in order.
    algorithms_ : list of str
        Algorithms seen in training, in the order of their category codes.
    n_training_tasks_ : int
        Tasks in the training data.
    n_training_rows_ : int
        (task, user, algorithm) rows the booster was trained on.

    Notes
    -----
    Training is deterministic for a fixed ``random_state``: LightGBM runs on one thread
    with ``deterministic=True`` and a fixed (column-wise) histogram layout, and the rows
    are sorted by task, algorithm and user before training, so their order in the input
    does not matter.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            min_child_samples=min_child_samples,
            random_state=random_state,
        )

    # -- training ------------------------------------------------------------------------
    def fit(self, users: pd.DataFrame, scores: pd.DataFrame, tasks: pd.DataFrame) -> UserMetaModel:
        """Train the booster on per-user labels.

        Parameters
        ----------
        users : DataFrame
            One row per (task, user): ``task_id``, ``user_index`` and one column per
            user meta-feature. Meta-feature columns are those whose name contains a
            ``.`` (as in ``user_activity.n_interactions``); other columns are ignored.
        scores : DataFrame
            One row per (task, algorithm, user): ``task_id``, ``algorithm``,
            ``user_index`` and ``ndcg`` (the user's validation NDCG@10, in [0, 1]).
            Rows whose ``ndcg`` is missing are skipped.
        tasks : DataFrame
            One row per task: ``task_id`` and one column per dataset meta-feature
            (again, the columns whose name contains a ``.``), such as
            :attr:`LabelSet.tasks <metarec_classic.meta.LabelSet.tasks>`.

        Returns
        -------
        UserMetaModel
            ``self``.

        Raises
        ------
        ValueError
            If a column is missing, a score has no matching user or task, a (task,
            algorithm, user) is scored twice, an NDCG@10 lies outside [0, 1], or no
            score is left to learn from.
        """
        _require_columns(users, ("task_id", "user_index"), "users")
        _require_columns(scores, ("task_id", "algorithm", "user_index", "ndcg"), "scores")
        _require_columns(tasks, ("task_id",), "tasks")
        user_names = [str(c) for c in users.columns if "." in str(c)]
        dataset_names = [str(c) for c in tasks.columns if "." in str(c)]
        if not user_names:
            raise ValueError(
                "`users` has no user meta-feature column (a name with a '.', such as "
                f"{N_INTERACTIONS!r}); compute them with `user_metafeatures`."
            )
        clash = sorted(set(user_names) & set(dataset_names))
        if clash:
            raise ValueError(f"Columns {clash[:3]!r} are both user and dataset meta-features.")
        if users.duplicated(["task_id", "user_index"]).any():
            raise ValueError("`users` holds a (task_id, user_index) pair more than once.")
        if tasks["task_id"].duplicated().any():
            raise ValueError("`tasks` holds a task_id more than once.")

        table = scores.dropna(subset=["ndcg"])
        if table.empty:
            raise ValueError("`scores` holds no NDCG@10; there is nothing to learn from.")
        if table.duplicated(["task_id", "algorithm", "user_index"]).any():
            raise ValueError("`scores` holds a (task_id, algorithm, user_index) more than once.")
        ndcg = table["ndcg"].to_numpy(dtype=np.float64)
        if ((ndcg < 0) | (ndcg > 1)).any():
            raise ValueError("Every NDCG@10 in `scores` must lie in [0, 1].")
        # Rows in a fixed order, so the booster does not depend on the input's order.
        table = table.sort_values(["task_id", "algorithm", "user_index"], kind="stable")

        user_rows = users.set_index(["task_id", "user_index"])[user_names]
        keys = pd.MultiIndex.from_frame(table[["task_id", "user_index"]])
        unknown_users = ~keys.isin(user_rows.index)
        if unknown_users.any():
            task_id, user_index = keys[np.flatnonzero(unknown_users)[0]]
            raise ValueError(
                f"{int(unknown_users.sum())} scores belong to users missing from `users` "
                f"(the first: task {task_id!r}, user {user_index!r})."
            )
        task_rows = tasks.set_index("task_id")[dataset_names]
        unknown_tasks = ~table["task_id"].isin(task_rows.index)
        if unknown_tasks.any():
            raise ValueError(
                f"Tasks {sorted(set(table.loc[unknown_tasks, 'task_id']))[:3]!r} of `scores` "
                "are missing from `tasks`."
            )

        self.user_feature_names_ = user_names
        self.feature_names_ = dataset_names
        self.algorithms_ = sorted(str(a) for a in table["algorithm"].unique())
        codes = table["algorithm"].astype(str).map(self.algorithms_.index)
        X = self._design(
            user_rows.reindex(keys).to_numpy(dtype=np.float64),
            task_rows.loc[table["task_id"]].to_numpy(dtype=np.float64),
            codes.to_numpy(dtype=np.float64),
        )
        self.booster_ = lgb.train(
            self._lightgbm_params("cross_entropy"),
            lgb.Dataset(
                X,
                label=table["ndcg"].to_numpy(dtype=np.float64),
                feature_name=self._column_names(),
                categorical_feature=[X.shape[1] - 1],
                free_raw_data=True,
            ),
            num_boost_round=self.n_estimators,
        )
        self.n_training_tasks_ = int(table["task_id"].nunique())
        self.n_training_rows_ = len(table)
        _log.info(
            "User meta-model trained on %d (task, user, algorithm) rows from %d tasks.",
            self.n_training_rows_,
            self.n_training_tasks_,
        )
        return self

    # -- prediction ----------------------------------------------------------------------
    def predict(
        self,
        user_features: pd.DataFrame,
        dataset_features: Mapping[str, float],
        algorithms: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Predicted NDCG@10 of every user under every algorithm.

        Parameters
        ----------
        user_features : DataFrame
            One row per user, with (at least) the columns of
            :attr:`user_feature_names_`, as returned by ``user_metafeatures``.
        dataset_features : dict of str to float
            The dataset's meta-features, as returned by ``dataset_metafeatures``.
        algorithms : sequence of str, optional
            Algorithms to predict for, among :attr:`algorithms_`; all by default.

        Returns
        -------
        DataFrame
            Index: that of ``user_features``; columns: the algorithms (the column index
            is named ``algorithm``); values: predicted NDCG@10 in [0, 1].

        Raises
        ------
        ValueError
            If a meta-feature is missing or an algorithm was not seen in training.
        """
        self._check_fitted()
        missing = [n for n in self.user_feature_names_ if n not in user_features.columns]
        if missing:
            raise ValueError(
                f"User meta-features {missing[:3]!r} are missing; compute them with "
                "`user_metafeatures` of the same metarec_classic version."
            )
        missing = [n for n in self.feature_names_ if n not in dataset_features]
        if missing:
            raise ValueError(
                f"Meta-features {missing[:3]!r} are missing; compute them with "
                "`dataset_metafeatures` of the same metarec_classic version."
            )
        if isinstance(algorithms, str):
            algorithms = [algorithms]
        names = list(self.algorithms_) if algorithms is None else [str(a) for a in algorithms]
        unknown = [a for a in names if a not in self.algorithms_]
        if unknown:
            raise ValueError(
                f"Algorithms {unknown!r} were not seen in training; the model knows "
                f"{self.algorithms_!r}."
            )
        users = user_features[self.user_feature_names_].to_numpy(dtype=np.float64)
        dataset = np.array(
            [float(dataset_features[n]) for n in self.feature_names_], dtype=np.float64
        )
        n_users = users.shape[0]
        values = np.empty((n_users, len(names)), dtype=np.float64)
        for j, algorithm in enumerate(names):
            code = float(self.algorithms_.index(algorithm))
            for lo in range(0, n_users, _PREDICT_BLOCK):
                block = users[lo : lo + _PREDICT_BLOCK]
                X = self._design(
                    block,
                    np.broadcast_to(dataset, (block.shape[0], dataset.size)),
                    np.full(block.shape[0], code),
                )
                values[lo : lo + block.shape[0], j] = self.booster_.predict(X)
        return pd.DataFrame(
            values,
            index=user_features.index.copy(),
            columns=pd.Index(names, name="algorithm"),
        )

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the booster as LightGBM text and the rest as JSON, with checksums.

        The files (``user_metamodel.json`` and ``user_ndcg.lgb.txt``) do not collide
        with those of :meth:`MetaModel.save`, so both models may share a folder.
        """
        self._check_fitted()
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        text = self.booster_.model_to_string()
        (path / _BOOSTER_FILE).write_text(text)
        document: dict[str, Any] = {
            "format_version": USER_FORMAT_VERSION,
            "params": self.get_params(),
            "user_feature_names": self.user_feature_names_,
            "feature_names": self.feature_names_,
            "algorithms": self.algorithms_,
            "n_training_tasks": self.n_training_tasks_,
            "n_training_rows": self.n_training_rows_,
            "versions": library_versions(),
            "checksums": {_BOOSTER_FILE: _sha256(text)},
        }
        document[_DIGEST_KEY] = _document_digest(document)
        (path / _META_FILE).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> UserMetaModel:
        """Read a folder written by :meth:`save`, refusing damaged or foreign files.

        Raises
        ------
        MetaModelFileError
            If a file is missing, is not what :meth:`save` wrote (its checksum differs:
            changed or truncated), or was written by another format version.
        """
        path = Path(folder)
        meta_path = path / _META_FILE
        document = read_model_document(
            meta_path,
            "user meta-model",
            "Train one with `UserMetaModel.fit` and write it with `UserMetaModel.save`.",
        )
        version = document.get("format_version")
        if version != USER_FORMAT_VERSION:
            raise MetaModelFileError(
                f"The user meta-model in {str(path)!r} has format version {version!r}; this "
                f"metarec_classic reads version {USER_FORMAT_VERSION}. Retrain it."
            )
        if document.get(_DIGEST_KEY) != _document_digest(document):
            raise MetaModelFileError(
                f"The checksum of {str(meta_path)!r} does not match the one recorded when it "
                "was saved: the file was changed or truncated. Retrain or restore it."
            )
        booster_path = path / _BOOSTER_FILE
        if not booster_path.is_file():
            raise MetaModelFileError(f"The user meta-model file {str(booster_path)!r} is missing.")
        text = booster_path.read_text()
        try:
            recorded = document["checksums"][_BOOSTER_FILE]
            model = cls(**document["params"])
            model.user_feature_names_ = [str(n) for n in document["user_feature_names"]]
            model.feature_names_ = [str(n) for n in document["feature_names"]]
            model.algorithms_ = [str(a) for a in document["algorithms"]]
            model.n_training_tasks_ = int(document["n_training_tasks"])
            model.n_training_rows_ = int(document["n_training_rows"])
        except (KeyError, TypeError, ValueError) as err:
            raise MetaModelFileError(
                f"{str(meta_path)!r} lacks a field of the user meta-model ({err!r}); it was "
                "not written by `UserMetaModel.save`."
            ) from err
        if _sha256(text) != recorded:
            raise MetaModelFileError(
                f"The checksum of {str(booster_path)!r} does not match the one recorded when "
                "it was saved: the file was changed or truncated. Retrain or restore it."
            )
        model.booster_ = lgb.Booster(model_str=text)
        if model.booster_.feature_name() != model._column_names():
            raise MetaModelFileError(
                f"The features of {str(booster_path)!r} differ from those listed in "
                f"{str(meta_path)!r}; the two files do not belong together."
            )
        return model

    # -- helpers -------------------------------------------------------------------------
    def _column_names(self) -> list[str]:
        return [*self.user_feature_names_, *self.feature_names_, "algorithm"]

    @staticmethod
    def _design(users: np.ndarray, dataset: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Stack user meta-features, dataset meta-features and the algorithm code."""
        return np.hstack([users, dataset, codes[:, None]])

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "This UserMetaModel is not fitted yet; call `fit` with per-user labels or "
                "`UserMetaModel.load`."
            )


# -- segments ------------------------------------------------------------------------------
_OPERATORS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


class Condition(NamedTuple):
    """One comparison of a user meta-feature with a threshold, such as ``x <= 4.5``."""

    feature: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value:.6g}"

    def holds(self, user_features: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of ``user_features`` that meet the condition.

        Values are compared in single precision, as scikit-learn's decision trees do,
        so that a learned rule selects exactly the users the tree put in its leaf.
        """
        if self.feature not in user_features.columns:
            raise ValueError(f"The user meta-feature {self.feature!r} is missing.")
        values = user_features[self.feature].to_numpy(dtype=np.float32)
        return np.asarray(_OPERATORS[self.op](values.astype(np.float64), self.value))


@dataclass(frozen=True, eq=False)
class Segment:
    """A group of users, defined by a rule over their meta-features.

    Attributes
    ----------
    name : str
        Short name, such as ``"1-4"`` or ``"segment 2 (als)"``.
    rule : str
        The rule as readable text, such as ``"user_activity.n_interactions >= 5 and
        user_activity.n_interactions < 20"``.
    mask : ndarray of bool
        Membership of each row of the user features the segment was built from.
    conditions : tuple of Condition
        The rule as data: a user belongs to the segment when every condition holds.
    expected_best : str or None
        For learned segments, the algorithm most of its users are predicted to be best
        served by; ``None`` otherwise.
    """

    name: str
    rule: str
    mask: np.ndarray
    conditions: tuple[Condition, ...] = ()
    expected_best: str | None = None

    @property
    def size(self) -> int:
        """Number of member users."""
        return int(np.count_nonzero(self.mask))

    def contains(self, user_features: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of ``user_features`` that the rule selects.

        Unlike :attr:`mask`, this applies to any users, for example those of a later
        training split.
        """
        mask = np.ones(len(user_features), dtype=bool)
        for condition in self.conditions:
            mask &= condition.holds(user_features)
        return mask

    def __repr__(self) -> str:
        return f"Segment(name={self.name!r}, rule={self.rule!r}, size={self.size})"


def activity_segments(user_features: pd.DataFrame) -> list[Segment]:
    """Fixed segments by training interactions: none, 1-4, 5-19, 20-99 and 100+.

    Parameters
    ----------
    user_features : DataFrame
        One row per user with the column ``user_activity.n_interactions``.

    Returns
    -------
    list of Segment
        Always the five segments, in that order, named ``"no history"``, ``"1-4"``,
        ``"5-19"``, ``"20-99"`` and ``"100+"``, even when some are empty: the bins are
        the same for every dataset and together cover every possible user.

    Examples
    --------
    >>> import pandas as pd
    >>> features = pd.DataFrame({"user_activity.n_interactions": [0.0, 3.0, 250.0]})
    >>> [(s.name, s.size) for s in activity_segments(features)]
    [('no history', 1), ('1-4', 1), ('5-19', 0), ('20-99', 0), ('100+', 1)]
    >>> activity_segments(features)[2].rule
    'user_activity.n_interactions >= 5 and user_activity.n_interactions < 20'
    """
    if N_INTERACTIONS not in user_features.columns:
        raise ValueError(f"The user meta-feature {N_INTERACTIONS!r} is missing.")
    segments = [_segment(NO_HISTORY, (Condition(N_INTERACTIONS, "<", 1.0),), user_features)]
    for low, high in zip(ACTIVITY_EDGES, (*ACTIVITY_EDGES[1:], None), strict=True):
        conditions = [Condition(N_INTERACTIONS, ">=", float(low))]
        if high is None:
            name = f"{low}+"
        else:
            name = f"{low}-{high - 1}"
            conditions.append(Condition(N_INTERACTIONS, "<", float(high)))
        segments.append(_segment(name, tuple(conditions), user_features))
    return segments


def learned_segments(
    user_features: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    min_segment_size: int = 50,
    max_depth: int = 2,
    features: Sequence[str] | None = None,
    random_state: int = 0,
) -> list[Segment]:
    """Group users by the algorithm predicted to serve them best, as readable rules.

    Users without training interactions form the :data:`NO_HISTORY` segment, always
    first and never merged, since unseen users are routed there. On the other users a
    shallow decision tree (scikit-learn's ``DecisionTreeClassifier``) learns, from
    their meta-features, which algorithm has the highest predicted NDCG@10 (ties go to
    the first column of ``predictions``); each leaf is a segment whose rule is the path
    from the root.

    Parameters
    ----------
    user_features : DataFrame
        One row per user, as returned by ``user_metafeatures``.
    predictions : DataFrame
        Predicted NDCG@10, rows aligned with ``user_features`` (same index), one column
        per algorithm; for example :meth:`UserMetaModel.predict`.
    min_segment_size : int, default=50
        Fewest users of a segment other than :data:`NO_HISTORY`. It is the tree's
        ``min_samples_leaf``, so no leaf is ever smaller: small groups are never split
        off in the first place. When fewer users than that have a history, they form
        one segment.
    max_depth : int, default=2
        Depth of the tree: at most ``2 ** max_depth`` segments besides
        :data:`NO_HISTORY`, each a conjunction of at most ``max_depth`` conditions
        (plus ``user_activity.n_interactions >= 1``).
    features : sequence of str, optional
        User meta-features the rules may use. By default every column whose name
        contains a ``.``, except ``<name>_log`` when ``<name>`` is also a column: a
        monotone transform allows no other split and makes rules harder to read.
    random_state : int, default=0
        Breaks ties between equally good splits in the tree.

    Returns
    -------
    list of Segment
        :data:`NO_HISTORY` (possibly empty) first, then the leaves, left (``<=``)
        before right (``>``), named ``"segment <i> (<algorithm>)"``.

    Notes
    -----
    Merging: when both sides of a split expect the same best algorithm, the split only
    refines the tree's class probabilities and would give two segments with the same
    choice, so the two are merged back into their parent (the split is undone), from
    the leaves upwards. Empty leaves are dropped; with ``min_samples_leaf`` there are
    none, but rules applied to float64 values near a threshold are checked anyway.
    """
    from sklearn.tree import DecisionTreeClassifier

    _check_aligned(user_features, predictions)
    if isinstance(min_segment_size, bool) or int(min_segment_size) < 1:
        raise ValueError(f"`min_segment_size` must be at least 1; got {min_segment_size!r}.")
    if isinstance(max_depth, bool) or int(max_depth) < 1:
        raise ValueError(f"`max_depth` must be at least 1; got {max_depth!r}.")
    if N_INTERACTIONS not in user_features.columns:
        raise ValueError(f"The user meta-feature {N_INTERACTIONS!r} is missing.")
    names = _split_features(user_features) if features is None else [str(f) for f in features]
    missing = [n for n in names if n not in user_features.columns]
    if missing:
        raise ValueError(f"User meta-features {missing[:3]!r} are missing.")
    if not names:
        raise ValueError("No user meta-feature to build rules on; pass `features`.")
    X_all = user_features[names].to_numpy(dtype=np.float32)
    if not np.isfinite(X_all).all():
        raise ValueError("The user meta-features must be finite to build rules on them.")

    segments = [_segment(NO_HISTORY, (Condition(N_INTERACTIONS, "<", 1.0),), user_features)]
    active = np.flatnonzero(~segments[0].mask)
    if active.size == 0:
        return segments
    columns = np.asarray([str(c) for c in predictions.columns], dtype=object)
    best = columns[predictions.to_numpy(dtype=np.float64).argmax(axis=1)]
    tree = DecisionTreeClassifier(
        max_depth=int(max_depth),
        min_samples_leaf=int(min_segment_size),
        random_state=random_state,
    ).fit(X_all[active], best[active])
    structure = tree.tree_
    classes = tree.classes_

    def majority(node: int) -> str:
        return str(classes[int(np.argmax(structure.value[node][0]))])

    def walk(node: int, path: tuple[Condition, ...]) -> list[tuple[tuple[Condition, ...], int]]:
        left, right = structure.children_left[node], structure.children_right[node]
        if left < 0:
            return [(path, node)]
        feature, threshold = names[structure.feature[node]], float(structure.threshold[node])
        low = walk(left, (*path, Condition(feature, "<=", threshold)))
        high = walk(right, (*path, Condition(feature, ">", threshold)))
        if len(low) == 1 and len(high) == 1 and majority(low[0][1]) == majority(high[0][1]):
            return [(path, node)]
        return low + high

    base = (Condition(N_INTERACTIONS, ">=", 1.0),)
    for i, (path, node) in enumerate(walk(0, base), start=1):
        label = majority(node)
        segment = _segment(f"segment {i}", _simplify(path), user_features, expected_best=label)
        if segment.size > 0:
            segments.append(segment)
    return segments


# -- per-segment choice --------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentChoice:
    """The algorithm chosen for one segment, and why.

    Attributes
    ----------
    segment : Segment
        The segment.
    algorithm : str
        The algorithm its users should get.
    predicted_ndcg : float
        Mean predicted NDCG@10 of the segment's users under ``algorithm``; NaN for an
        empty segment.
    dataset_choice : str
        The dataset-level choice.
    predicted_ndcg_dataset_choice : float
        Mean predicted NDCG@10 of the segment's users under ``dataset_choice``.
    candidate : str
        The algorithm with the largest predicted gain; the same as ``algorithm`` unless
        the choice fell back.
    predicted_ndcg_candidate : float
        Mean predicted NDCG@10 of the segment's users under ``candidate``.
    fell_back : bool
        Whether the dataset-level choice was kept for want of confidence: the segment
        is empty, or ``candidate`` differs from it but the segment is smaller than the
        minimum or the gain below the margin. False when the dataset-level choice is
        itself predicted best, or when the candidate replaced it.
    reason : str
        Why the algorithm was chosen, in words.
    """

    segment: Segment
    algorithm: str
    predicted_ndcg: float
    dataset_choice: str
    predicted_ndcg_dataset_choice: float
    candidate: str
    predicted_ndcg_candidate: float
    fell_back: bool
    reason: str

    @property
    def n_users(self) -> int:
        """Number of users in the segment."""
        return self.segment.size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (NaN, for an empty segment, becomes ``None``)."""

        def number(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        return {
            "segment": self.segment.name,
            "rule": self.segment.rule,
            "n_users": self.n_users,
            "algorithm": self.algorithm,
            "predicted_ndcg@10": number(self.predicted_ndcg),
            "dataset_choice": self.dataset_choice,
            "predicted_ndcg@10_dataset_choice": number(self.predicted_ndcg_dataset_choice),
            "candidate": self.candidate,
            "predicted_ndcg@10_candidate": number(self.predicted_ndcg_candidate),
            "fell_back": self.fell_back,
            "reason": self.reason,
        }


def choose_per_segment(
    predictions: pd.DataFrame,
    segments: Sequence[Segment],
    dataset_choice: str,
    *,
    min_segment_size: int = 50,
    min_gain: float = 0.0,
    min_relative_gain: float = 0.05,
    max_share: float = 0.8,
) -> list[SegmentChoice]:
    """Give each segment the algorithm with the best predicted gain, when it is clear.

    For each segment, the gain of an algorithm is the mean over the segment's users of
    its predicted NDCG@10 minus that of ``dataset_choice`` (the mean rather than the
    sum, which orders the algorithms the same way within a segment). The candidate is
    the algorithm with the largest gain (the dataset-level choice on ties). The
    dataset-level choice stands instead when the model is not confident, that is when:

    - the segment has fewer than ``min_segment_size`` users (or none): its mean rests
      on too few users; or
    - the candidate's mean gain is not above ``min_gain``, or is below
      ``min_relative_gain`` times the dataset-level choice's mean predicted NDCG@10; or
    - the segment holds more than ``max_share`` of the users: it is nearly the whole
      dataset, and for the whole dataset the dataset-level meta-model, trained on that
      very question, is the better judge (on held-out datasets a learned segment that
      covered every user swapped a better dataset-level choice for a worse one).

    The margin is a plain threshold, not a statistical test: the model reports no
    uncertainty of its own, and differences of a few percent in predicted per-user
    NDCG@10 are within its error, while switching algorithms for part of the users
    has costs of its own (another model to train and serve). The 5 % default is a
    judgement; set it from the realised gains on held-out tasks where they are known.

    Parameters
    ----------
    predictions : DataFrame
        Predicted NDCG@10, one row per user and one column per algorithm, such as
        :meth:`UserMetaModel.predict`; it must include ``dataset_choice``.
    segments : sequence of Segment
        Segments whose masks index the rows of ``predictions``.
    dataset_choice : str
        The algorithm chosen for the whole dataset.
    min_segment_size : int, default=50
        Fewest users a segment needs to get an algorithm of its own.
    min_gain : float, default=0.0
        Mean predicted NDCG@10 gain the candidate must exceed.
    min_relative_gain : float, default=0.05
        Smallest mean gain relative to the dataset-level choice's mean.
    max_share : float, default=0.8
        Largest share of all users a segment may hold and still differ from the
        dataset-level choice.

    Returns
    -------
    list of SegmentChoice
        One per segment, in order. When no segment is named :data:`NO_HISTORY`, an
        empty one (users with ``user_activity.n_interactions < 1``) with the
        dataset-level choice comes first, so that unseen users always have an answer.
    """
    if dataset_choice not in predictions.columns:
        raise ValueError(
            f"The dataset-level choice {dataset_choice!r} is not a column of `predictions` "
            f"({[str(c) for c in predictions.columns]!r})."
        )
    if isinstance(min_segment_size, bool) or int(min_segment_size) < 0:
        raise ValueError(f"`min_segment_size` must not be negative; got {min_segment_size!r}.")
    if min_gain < 0 or min_relative_gain < 0:
        raise ValueError("`min_gain` and `min_relative_gain` must not be negative.")
    if not 0 < max_share <= 1:
        raise ValueError(f"`max_share` must be in (0, 1]; got {max_share!r}.")
    values = predictions.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("`predictions` must be finite.")
    algorithms = [str(c) for c in predictions.columns]
    base = list(predictions.columns).index(dataset_choice)
    # The dataset-level choice first, so that it wins ties.
    order = [base, *(j for j in range(len(algorithms)) if j != base)]

    segments = list(segments)
    if not any(s.name == NO_HISTORY for s in segments):
        condition = Condition(N_INTERACTIONS, "<", 1.0)
        empty = np.zeros(len(predictions), dtype=bool)
        segments.insert(0, Segment(NO_HISTORY, str(condition), empty, (condition,)))

    choices = []
    for segment in segments:
        mask = np.asarray(segment.mask, dtype=bool)
        if mask.shape != (len(predictions),):
            raise ValueError(
                f"The mask of segment {segment.name!r} has shape {mask.shape}; `predictions` "
                f"has {len(predictions)} rows."
            )
        choice = _choose(
            segment,
            values[mask],
            algorithms,
            base,
            order,
            int(min_segment_size),
            float(min_gain),
            float(min_relative_gain),
            int(max_share * len(predictions)),
        )
        if segment.name == NO_HISTORY:
            # Whatever the choice, a model has nothing to go on for these users.
            choice = replace(
                choice,
                reason=f"{choice.reason}; without history every model serves the most "
                "popular training items",
            )
        choices.append(choice)
    return choices


def _choose(
    segment: Segment,
    values: np.ndarray,
    algorithms: list[str],
    base: int,
    order: list[int],
    min_segment_size: int,
    min_gain: float,
    min_relative_gain: float,
    max_users: int,
) -> SegmentChoice:
    dataset_choice = algorithms[base]
    n = values.shape[0]
    if n == 0:
        nan = float("nan")
        return SegmentChoice(
            segment,
            dataset_choice,
            nan,
            dataset_choice,
            nan,
            dataset_choice,
            nan,
            True,
            "no user in the segment; the dataset-level choice stands",
        )
    means = values.mean(axis=0)
    gains = means - means[base]
    best = max(order, key=lambda j: gains[j])
    gain = float(gains[best])
    base_mean = float(means[base])
    relative = gain / base_mean if base_mean > 0 else math.inf
    candidate = algorithms[best]

    def answer(chosen: int, fell_back: bool, reason: str) -> SegmentChoice:
        return SegmentChoice(
            segment,
            algorithms[chosen],
            float(means[chosen]),
            dataset_choice,
            base_mean,
            candidate,
            float(means[best]),
            fell_back,
            reason,
        )

    described = f"{candidate} would gain {gain:+.4f} NDCG@10 ({relative:+.1%})"
    if best == base:
        return answer(base, False, "the dataset-level choice is predicted best")
    if n < min_segment_size:
        return answer(
            base,
            True,
            f"{described}, but the segment has {n} users, fewer than "
            f"min_segment_size={min_segment_size}",
        )
    if n > max_users:
        return answer(
            base,
            True,
            f"{described}, but the segment holds {n} users, nearly all of them: for the "
            "whole dataset the dataset-level choice stands",
        )
    if gain <= min_gain or relative < min_relative_gain:
        return answer(
            base,
            True,
            f"{described}, below the margin (min_gain={min_gain}, "
            f"min_relative_gain={min_relative_gain:.1%})",
        )
    return answer(best, False, f"{described} over {dataset_choice}")


# -- helpers -------------------------------------------------------------------------------
def _segment(
    name: str,
    conditions: tuple[Condition, ...],
    user_features: pd.DataFrame,
    expected_best: str | None = None,
) -> Segment:
    mask = np.ones(len(user_features), dtype=bool)
    for condition in conditions:
        mask &= condition.holds(user_features)
    rule = " and ".join(str(c) for c in conditions) or "every user"
    return Segment(name, rule, mask, conditions, expected_best)


def _simplify(conditions: tuple[Condition, ...]) -> tuple[Condition, ...]:
    """Keep the tightest lower and upper bound of each feature, in order of appearance."""
    tightest: dict[tuple[str, bool], Condition] = {}
    for condition in conditions:
        upper = condition.op in ("<", "<=")
        key = (condition.feature, upper)
        kept = tightest.get(key)
        if kept is None:
            tightest[key] = condition
            continue
        # At an equal threshold the strict comparison is the tighter one.
        strict = condition.op in ("<", ">")
        if upper:
            tighter = condition.value < kept.value or (condition.value == kept.value and strict)
        else:
            tighter = condition.value > kept.value or (condition.value == kept.value and strict)
        if tighter:
            tightest[key] = condition
    return tuple(tightest.values())


def _split_features(user_features: pd.DataFrame) -> list[str]:
    columns = [str(c) for c in user_features.columns if "." in str(c)]
    present = set(columns)
    return [c for c in columns if not (c.endswith("_log") and c[: -len("_log")] in present)]


def _check_aligned(user_features: pd.DataFrame, predictions: pd.DataFrame) -> None:
    if not predictions.index.equals(user_features.index):
        raise ValueError(
            "The rows of `predictions` must be those of `user_features` (the same index, "
            "in the same order)."
        )
    if predictions.shape[1] == 0:
        raise ValueError("`predictions` has no algorithm column.")


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"`{name}` lacks the columns {missing!r}.")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _document_digest(document: Mapping[str, Any]) -> str:
    body = {k: v for k, v in document.items() if k != _DIGEST_KEY}
    return _sha256(json.dumps(body, sort_keys=True))
