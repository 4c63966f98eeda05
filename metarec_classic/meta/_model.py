"""The LightGBM meta-model: from dataset meta-features and a configuration to its rank.

Rows of the training table are (task, algorithm, configuration) triples of the labels.
Features are the task's dataset meta-features, the algorithm (a categorical feature)
and the configuration's parameters, one column per ``<algorithm>.<parameter>`` (missing
for other algorithms, which LightGBM handles natively; categorical parameters are coded
by their position among the choices).

Three boosters are trained:

- ``rank``: a LambdaRank model, one query per task, whose relevance grades are how close
  a configuration came to its task's best (in steps of 5 %). This orders the candidates
  (selection and warm start). Learning the order within each task, rather than the
  scores, puts the weight on the top of the list, where a choice is made; in
  leave-one-family-out runs it chose better than a regression on the same target.
- ``relative``: the configuration's validation NDCG@10 divided by its task's best, in
  [0, 1], by regression; dividing by the task's best removes the data's difficulty.
- ``best``: the task's best NDCG@10 from the meta-features alone, so that a candidate
  can be reported with a predicted NDCG@10 (``relative * best``).

Persistence writes LightGBM's text models plus a JSON document (feature names,
algorithms, candidate configurations, training ranges of the meta-features, library
versions and the SHA-256 of every file); loading refuses files whose checksum or format
version do not match. No pickle is involved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from optuna.distributions import CategoricalDistribution

from metarec_classic.exceptions import MetarecError
from metarec_classic.meta._booster import BoosterParams
from metarec_classic.meta._labels import LabelSet, library_versions
from metarec_classic.recommenders import get_recommender_class
from metarec_classic.tuning import position_in_space

__all__ = ["FORMAT_VERSION", "PORTFOLIO_SIZE", "MetaModel", "MetaModelFileError"]

_log = logging.getLogger(__name__)

#: Version of the saved layout; bumped whenever a saved model cannot be read as before.
FORMAT_VERSION = 4

#: Threads of the boosters' predictions over the candidates (the boosters were trained
#: with one, which they would otherwise keep). Each row is predicted alone, so the result
#: does not depend on it; two halve the ranking's time on a two-core machine.
_PREDICT_THREADS = min(2, os.cpu_count() or 1)

#: Size meta-features (log1p of counts) that parameters are also expressed relative to.
_SIZE_FEATURES = {"size.n_users_log": "users", "size.n_items_log": "items"}
#: Parameters also expressed relative to a landmarker that measured their best value on
#: the data (the log of that value): parameter column -> (meta-feature, column label).
_LANDMARK_ANCHORS = {"ease.l2_reg": ("landmark.ease_l2_log", "landmark_peak")}
#: Most configurations kept in each algorithm's portfolio (see ``MetaModel.portfolios_``).
PORTFOLIO_SIZE = 8


def _distribution(column: str) -> Any:
    """The search-space distribution of a parameter column ``algorithm.parameter``."""
    algorithm, _, name = column.partition(".")
    return get_recommender_class(algorithm).search_space()[name]


_META_FILE = "metamodel.json"
_BOOSTER_FILES = {
    "rank": "rank.lgb.txt",
    "relative": "relative.lgb.txt",
    "best": "best.lgb.txt",
}


class MetaModelFileError(MetarecError, ValueError):
    """A saved meta-model that is missing, tampered with, truncated or of another version."""


@dataclass
class Candidate:
    """One configuration the meta-model may recommend."""

    algorithm: str
    config: dict[str, Any]


def read_model_document(meta_path: Path, what: str, how_to_make: str) -> dict[str, Any]:
    """The JSON document of a saved model, or a :class:`MetaModelFileError` saying why not."""
    if not meta_path.is_file():
        raise MetaModelFileError(
            f"No {what} in {str(meta_path.parent)!r}: {meta_path.name} is missing. {how_to_make}"
        )
    try:
        document = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MetaModelFileError(
            f"{str(meta_path)!r} is not valid JSON ({err}); the file is damaged or "
            f"truncated. Retrain or restore the {what}."
        ) from err
    if not isinstance(document, dict):
        raise MetaModelFileError(f"{str(meta_path)!r} does not hold a {what}.")
    return document


class MetaModel(BoosterParams):
    """Ranks (algorithm, configuration) candidates for a dataset from its meta-features.

    Parameters
    ----------
    n_estimators : int, default=300
        Boosting rounds of each booster.
    learning_rate : float, default=0.05
        Shrinkage of each round.
    num_leaves : int, default=31
        Leaves per tree.
    min_child_samples : int, default=20
        Minimum rows per leaf; guards against fitting single tasks.
    random_state : int, default=0
        Seed of LightGBM's bagging and feature sampling.
    smoothing_neighbors : int, default=10
        A candidate's ranking score is the ranking booster's score averaged over the
        candidate and its nearest candidates of the same algorithm, this many in all
        (1: no averaging). See Notes.

    Attributes
    ----------
    booster_rank_ : lightgbm.Booster
        Orders candidates within a dataset (LambdaRank, one query per task).
    booster_relative_ : lightgbm.Booster
        Predicts a configuration's score relative to the task's best.
    booster_best_ : lightgbm.Booster
        Predicts the task's best NDCG@10 from the dataset meta-features.
    feature_names_ : list of str
        Dataset meta-feature names, in order.
    algorithms_ : list of str
        Algorithms seen in training, in the order of their category codes.
    candidates_ : list of Candidate
        Distinct configurations in the labels plus every algorithm's default.
    feature_ranges_ : dict of str to (float, float)
        1st and 99th percentile of each meta-feature over the training tasks.
    portfolios_ : dict of str to list of dict
        Per algorithm, up to ``PORTFOLIO_SIZE`` of its candidate configurations that
        together come close to its best on as many training tasks as possible, in the
        order they were chosen. See Notes.

    Notes
    -----
    The ranking booster's score is ragged across thousands of candidates: near copies
    of one configuration get different scores, and the single best of them is more
    often a spike of the model than the best configuration (the winner's curse). The
    average over a candidate's neighbourhood (distance: the largest difference of one
    parameter, as a share of its range; see
    :func:`~metarec_classic.tuning.position_in_space`) favours configurations in a
    region the model rates well as a whole. Leaving each dataset family of the shipped
    labels out in turn, with the other families' configurations as candidates and each
    held-out task's nearest labelled configuration as the truth, the pick reached on
    average 0.903 of the task's best score with no averaging and 0.930 with 10
    neighbours (5: 0.920, 20: 0.936).

    The ranking says what suits one dataset; where the meta-features mislead it, its
    top configurations are wrong together. A portfolio hedges against that without
    looking at the data: on every training task the ``relative`` booster scores each
    candidate of the algorithm, as a share of the best candidate on that task; the
    portfolio starts empty and greedily adds the candidate that most raises the mean,
    over tasks, of the best share among those chosen, and stops when no candidate
    raises it. The first choice is the configuration that is good most widely; later
    ones cover the tasks where it is not.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        random_state: int = 0,
        smoothing_neighbors: int = 10,
    ) -> None:
        super().__init__(
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            min_child_samples=min_child_samples,
            random_state=random_state,
        )
        self.smoothing_neighbors = smoothing_neighbors

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn estimators report them."""
        return {**super().get_params(), "smoothing_neighbors": self.smoothing_neighbors}

    # -- training ------------------------------------------------------------------------
    def fit(self, labels: LabelSet) -> MetaModel:
        """Train both boosters on a :class:`~metarec_classic.meta.LabelSet`."""
        table = labels.labels
        table = table[table["state"] == "COMPLETE"].dropna(subset=["score"])
        # Rows of one task together: the ranking objective reads each task as one query.
        table = table.sort_values(["task_id", "algorithm", "trial"], kind="stable")
        if table.empty:
            raise ValueError("The labels hold no completed trial; nothing to learn from.")
        tasks = labels.tasks.set_index("task_id")
        self.feature_names_ = [c for c in tasks.columns if "." in c]
        self.algorithms_ = sorted(table["algorithm"].unique())
        self.param_columns_ = self._param_columns(self.algorithms_)

        best = table.groupby("task_id")["score"].transform("max")
        relative = np.where(best > 0, table["score"] / best.where(best > 0, 1.0), 0.0)
        configs = [json.loads(c) for c in table["config"]]
        X = self._design(
            tasks.loc[table["task_id"], self.feature_names_].to_numpy(dtype=np.float64),
            list(table["algorithm"]),
            configs,
        )
        grades = np.clip(np.floor((relative - 0.5) * 20), 0, 10).astype(int)
        self.booster_rank_ = lgb.train(
            {**self._lightgbm_params("lambdarank"), "lambdarank_truncation_level": 20},
            lgb.Dataset(
                X,
                label=grades,
                group=table.groupby("task_id", sort=False).size().to_numpy(),
                categorical_feature=[len(self.feature_names_)],
            ),
            num_boost_round=self.n_estimators,
        )
        self.booster_relative_ = lgb.train(
            self._lightgbm_params("regression"),
            lgb.Dataset(
                X,
                label=relative,
                categorical_feature=[len(self.feature_names_)],
                free_raw_data=True,
            ),
            num_boost_round=self.n_estimators,
        )
        task_best = table.groupby("task_id")["score"].max()
        self.booster_best_ = lgb.train(
            {
                **self._lightgbm_params("regression"),
                "min_data_in_leaf": max(2, min(5, len(task_best) // 10)),
            },
            lgb.Dataset(
                tasks.loc[task_best.index, self.feature_names_].to_numpy(np.float64),
                label=task_best.to_numpy(),
            ),
            num_boost_round=max(50, self.n_estimators // 3),
        )
        self.candidates_ = self._collect_candidates(table, configs)
        self.portfolios_ = self._choose_portfolios(
            tasks.loc[task_best.index, self.feature_names_].to_numpy(np.float64)
        )
        quantiles = tasks[self.feature_names_].quantile([0.01, 0.99])
        self.feature_ranges_ = {
            name: (float(quantiles.loc[0.01, name]), float(quantiles.loc[0.99, name]))
            for name in self.feature_names_
        }
        self.n_training_tasks_ = int(table["task_id"].nunique())
        _log.info(
            "Meta-model trained on %d labels from %d tasks.", len(table), self.n_training_tasks_
        )
        return self

    # -- prediction ----------------------------------------------------------------------
    def rank(
        self,
        features: dict[str, float],
        *,
        algorithms: list[str] | None = None,
    ) -> pd.DataFrame:
        """Rank every candidate for a dataset, best first.

        Returns
        -------
        DataFrame
            Columns ``algorithm``, ``config`` (dict), ``rank_score`` (the ranking
            booster's score averaged over the candidate's neighbourhood, see Notes; only
            its order means something), ``predicted_relative`` and
            ``predicted_ndcg@10``, sorted by ``rank_score``.
        """
        self._check_fitted()
        wanted = [algorithms is None or c.algorithm in algorithms for c in self.candidates_]
        candidates = [c for c, keep in zip(self.candidates_, wanted, strict=True) if keep]
        codes, params = self._encoded_candidates()
        row = self._feature_row(features)
        X = self._stack(
            np.repeat(row[None, :], len(candidates), axis=0), codes[wanted], params[wanted]
        )
        raw = np.asarray(
            self.booster_rank_.predict(X, num_threads=_PREDICT_THREADS), dtype=np.float64
        )
        order_score = self._smoothed(raw, np.flatnonzero(wanted))
        relative = self.booster_relative_.predict(X, num_threads=_PREDICT_THREADS)
        best = float(self.booster_best_.predict(row[None, :])[0])
        table = pd.DataFrame(
            {
                "algorithm": [c.algorithm for c in candidates],
                "config": [c.config for c in candidates],
                "rank_score": order_score,
                "predicted_relative": relative,
                "predicted_ndcg@10": np.clip(relative, 0, None) * max(best, 0.0),
            }
        )
        # Stable order on ties, so the same data always gives the same ranking.
        return table.sort_values(["rank_score"], ascending=False, kind="stable").reset_index(
            drop=True
        )

    def out_of_range(self, features: dict[str, float]) -> dict[str, tuple[float, float, float]]:
        """Meta-features outside the training range: name -> (value, low, high)."""
        self._check_fitted()
        out = {}
        for name, (low, high) in self.feature_ranges_.items():
            value = float(features.get(name, 0.0))
            margin = 0.1 * (high - low)
            if value < low - margin or value > high + margin:
                out[name] = (value, low, high)
        return out

    def predict_ndcg(self, features: dict[str, float], candidate: Candidate) -> float:
        """Predicted validation NDCG@10 of any configuration, listed candidate or not.

        The same estimate as the ``predicted_ndcg@10`` column of :meth:`rank`: the
        predicted share of the data's best score times the predicted best score. A
        configuration found by a search gets its own estimate this way.
        """
        self._check_fitted()
        if candidate.algorithm not in self.algorithms_:
            raise ValueError(
                f"The meta-model knows no algorithm {candidate.algorithm!r}; it was trained "
                f"on {self.algorithms_!r}."
            )
        space = get_recommender_class(candidate.algorithm).search_space()
        unknown = sorted(set(candidate.config) - set(space))
        if unknown:
            raise ValueError(
                f"{candidate.algorithm!r} has no tunable parameters {unknown!r}; its "
                f"configuration takes {sorted(space)!r}; one left out is read as missing."
            )
        row = self._feature_row(features)
        X = self._design(row[None, :], [candidate.algorithm], [candidate.config])
        relative = float(self.booster_relative_.predict(X)[0])
        best = float(self.booster_best_.predict(row[None, :])[0])
        return max(relative, 0.0) * max(best, 0.0)

    def contributions(self, features: dict[str, float], candidate: Candidate) -> pd.Series:
        """Each feature's contribution to the candidate's ranking score.

        For one of ``candidates_`` the contributions are averaged over the same
        neighbours as its ``rank_score``, so that they add up to it.
        """
        self._check_fitted()
        row = self._feature_row(features)
        group = [candidate]
        if candidate in self.candidates_ and self.smoothing_neighbors > 1:
            padded = self._candidate_neighbours()[self.candidates_.index(candidate)]
            group = [self.candidates_[i] for i in padded if i < len(self.candidates_)]
        X = self._design(
            np.repeat(row[None, :], len(group), axis=0),
            [c.algorithm for c in group],
            [c.config for c in group],
        )
        contrib = np.asarray(self.booster_rank_.predict(X, pred_contrib=True)).mean(axis=0)
        names = [*self.feature_names_, "algorithm", *self._design_parameter_names(), "bias"]
        return pd.Series(contrib, index=names).sort_values(key=np.abs, ascending=False)

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the boosters as LightGBM text and the rest as JSON, with checksums."""
        self._check_fitted()
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        checksums = {}
        for key, name in _BOOSTER_FILES.items():
            booster: lgb.Booster = getattr(self, f"booster_{key}_")
            text = booster.model_to_string()
            (path / name).write_text(text)
            checksums[name] = hashlib.sha256(text.encode()).hexdigest()
        document = {
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "feature_names": self.feature_names_,
            "algorithms": self.algorithms_,
            "param_columns": self.param_columns_,
            "candidates": [
                {"algorithm": c.algorithm, "config": c.config} for c in self.candidates_
            ],
            "feature_ranges": self.feature_ranges_,
            "portfolios": self.portfolios_,
            "n_training_tasks": self.n_training_tasks_,
            "versions": library_versions(),
            "checksums": checksums,
        }
        (path / _META_FILE).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MetaModel:
        """Read a folder written by :meth:`save`, refusing damaged or foreign files."""
        path = Path(folder)
        document = read_model_document(
            path / _META_FILE,
            "meta-model",
            "Train one with `metarec train-meta` or omit the path to use the shipped model.",
        )
        version = document.get("format_version")
        if version != FORMAT_VERSION:
            raise MetaModelFileError(
                f"The meta-model in {str(path)!r} has format version {version!r}; this "
                f"metarec_classic reads version {FORMAT_VERSION}. Retrain it with "
                "`metarec train-meta`."
            )
        model = cls(**document["params"])
        for key, name in _BOOSTER_FILES.items():
            file = path / name
            if not file.is_file():
                raise MetaModelFileError(f"The meta-model file {str(file)!r} is missing.")
            text = file.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest != document["checksums"].get(name):
                raise MetaModelFileError(
                    f"The checksum of {str(file)!r} does not match the one recorded when it "
                    "was saved: the file was changed or truncated. Retrain or restore it."
                )
            setattr(model, f"booster_{key}_", lgb.Booster(model_str=text))
        model.feature_names_ = list(document["feature_names"])
        model.algorithms_ = list(document["algorithms"])
        model.param_columns_ = list(document["param_columns"])
        model.candidates_ = [Candidate(c["algorithm"], c["config"]) for c in document["candidates"]]
        model.feature_ranges_ = {
            k: (float(v[0]), float(v[1])) for k, v in document["feature_ranges"].items()
        }
        model.portfolios_ = {
            algorithm: [dict(config) for config in configs]
            for algorithm, configs in document["portfolios"].items()
        }
        model.n_training_tasks_ = int(document["n_training_tasks"])
        return model

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _param_columns(algorithms: list[str]) -> list[str]:
        return [
            f"{algorithm}.{name}"
            for algorithm in algorithms
            for name in get_recommender_class(algorithm).search_space()
        ]

    def _design(
        self, features: np.ndarray, algorithms: list[str], configs: list[dict[str, Any]]
    ) -> np.ndarray:
        """Stack meta-features, the algorithm code and the parameter columns."""
        return self._stack(features, *self._encode(algorithms, configs))

    def _stack(self, features: np.ndarray, codes: np.ndarray, params: np.ndarray) -> np.ndarray:
        return np.hstack(
            [features, codes[:, None], params, self._relative_params(features, params)]
        )

    def _encode(
        self, algorithms: list[str], configs: list[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The algorithm codes and parameter columns of (algorithm, config) pairs."""
        n = len(algorithms)
        params = np.full((n, len(self.param_columns_)), np.nan)
        column = {name: j for j, name in enumerate(self.param_columns_)}
        spaces = {a: get_recommender_class(a).search_space() for a in set(algorithms)}
        codes = np.array(
            [self.algorithms_.index(a) if a in self.algorithms_ else -1 for a in algorithms],
            dtype=np.float64,
        )
        for i, (algorithm, config) in enumerate(zip(algorithms, configs, strict=True)):
            for name, value in config.items():
                j = column.get(f"{algorithm}.{name}")
                if j is None:
                    continue
                dist = spaces[algorithm].get(name)
                if isinstance(dist, CategoricalDistribution):
                    params[i, j] = dist.choices.index(value) if value in dist.choices else np.nan
                else:
                    params[i, j] = float(value)
        return codes, params

    def _encoded_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_encode` of ``candidates_``, kept: it does not depend on the data ranked."""
        cached = getattr(self, "_candidate_encoding", None)
        if cached is None or cached[0] is not self.candidates_:
            encoded = self._encode(
                [c.algorithm for c in self.candidates_], [c.config for c in self.candidates_]
            )
            cached = self._candidate_encoding = (self.candidates_, *encoded)
        return cached[1], cached[2]

    def _smoothed(self, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Average ``scores`` (of the candidates ``rows``) over each one's neighbours."""
        if self.smoothing_neighbors <= 1:
            return scores
        neighbours = self._candidate_neighbours()
        # One more slot, left NaN: the padding of algorithms with fewer than k candidates.
        full = np.full(len(self.candidates_) + 1, np.nan)
        full[rows] = scores
        # Filtering ranks whole algorithms, so every neighbour of a row is a row too.
        return np.nanmean(full[neighbours[rows]], axis=1)

    def _candidate_neighbours(self) -> np.ndarray:
        """Each candidate's ``smoothing_neighbors`` nearest of the same algorithm.

        The candidate itself is one of them (distance 0); ties go to the candidate
        listed first. An algorithm with fewer candidates pads its rows with the index
        ``len(candidates_)``. Kept like :meth:`_encoded_candidates`.
        """
        k = self.smoothing_neighbors
        cached = getattr(self, "_neighbour_cache", None)
        if cached is not None and cached[0] is self.candidates_ and cached[1] == k:
            return cached[2]
        out = np.full((len(self.candidates_), k), len(self.candidates_), dtype=np.int64)
        algorithms = np.array([c.algorithm for c in self.candidates_])
        for algorithm in np.unique(algorithms):
            members = np.flatnonzero(algorithms == algorithm)
            space = get_recommender_class(str(algorithm)).search_space()
            points = np.array(
                [position_in_space(self.candidates_[i].config, space) for i in members]
            ).reshape(len(members), -1)
            distance = np.abs(points[:, None, :] - points[None, :, :]).max(axis=2, initial=0.0)
            nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
            out[members, : nearest.shape[1]] = members[nearest]
        self._neighbour_cache = (self.candidates_, k, out)
        return out

    def _scale_columns(self) -> list[tuple[int, int, str, bool]]:
        """The relative parameter columns, each (parameter column, meta-feature index, name, exact).

        ``exact``: the parameter is logged exactly rather than by ``log1p``.

        Labels come from tasks cut small, and the best ``l2_reg``, ``n_neighbors`` or
        ``n_factors`` grow with the data. Trees cannot extrapolate a raw value to a larger
        dataset; a value relative to the data's size (log ratio to users, to items) is a
        split that carries over from small tasks to large data. Where a landmarker
        measured a parameter's best value on the data itself (EASE's L2 weight), the log
        ratio to that value is one more column: one split then says "near the measured
        peak" for every dataset at once.
        """
        sizes = [
            (self.feature_names_.index(name), label)
            for name, label in _SIZE_FEATURES.items()
            if name in self.feature_names_
        ]
        numeric = [
            j
            for j, name in enumerate(self.param_columns_)
            if not isinstance(_distribution(name), CategoricalDistribution)
        ]
        columns = [
            (j, index, f"{self.param_columns_[j]}/{label}", False)
            for j in numeric
            for index, label in sizes
        ]
        for parameter, (feature, label) in _LANDMARK_ANCHORS.items():
            if parameter in self.param_columns_ and feature in self.feature_names_:
                columns.append(
                    (
                        self.param_columns_.index(parameter),
                        self.feature_names_.index(feature),
                        f"{parameter}/{label}",
                        True,
                    )
                )
        return columns

    def _relative_params(self, features: np.ndarray, params: np.ndarray) -> np.ndarray:
        columns = self._scale_columns()
        out = np.full((params.shape[0], len(columns)), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            for c, (j, index, _, exact) in enumerate(columns):
                value = params[:, j]
                # A landmarker that could not run left its feature at 0: no anchor.
                positive = (value > 0) & ~(exact & (features[:, index] == 0))
                logged = np.log(value[positive]) if exact else np.log1p(value[positive])
                out[positive, c] = logged - features[positive, index]
        return out

    def _design_parameter_names(self) -> list[str]:
        return [*self.param_columns_, *(name for _, _, name, _ in self._scale_columns())]

    def _feature_row(self, features: dict[str, float]) -> np.ndarray:
        missing = [n for n in self.feature_names_ if n not in features]
        if missing:
            raise ValueError(
                f"Meta-features {missing[:3]!r} are missing; compute them with "
                "`dataset_metafeatures` of the same metarec_classic version."
            )
        return np.array([features[n] for n in self.feature_names_], dtype=np.float64)

    def _choose_portfolios(self, task_features: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        """Each algorithm's portfolio over the training tasks (see the class Notes)."""
        codes, params = self._encoded_candidates()
        algorithms = np.array([c.algorithm for c in self.candidates_])
        n_tasks = len(task_features)
        portfolios: dict[str, list[dict[str, Any]]] = {}
        for algorithm in self.algorithms_:
            members = np.flatnonzero(algorithms == algorithm)
            X = self._stack(
                np.repeat(task_features, len(members), axis=0),
                np.tile(codes[members], n_tasks),
                np.tile(params[members], (n_tasks, 1)),
            )
            predicted = np.asarray(
                self.booster_relative_.predict(X, num_threads=_PREDICT_THREADS)
            ).reshape(n_tasks, len(members))
            predicted = np.clip(predicted, 0.0, None)
            share = predicted / np.maximum(predicted.max(axis=1, keepdims=True), 1e-12)
            covered = np.zeros(n_tasks)
            chosen: list[int] = []
            while len(chosen) < min(PORTFOLIO_SIZE, len(members)):
                gain = np.maximum(share, covered[:, None]).mean(axis=0)
                best = int(np.argmax(gain))
                if chosen and gain[best] <= covered.mean() + 1e-9:
                    break
                chosen.append(best)
                covered = np.maximum(covered, share[:, best])
            portfolios[algorithm] = [dict(self.candidates_[members[j]].config) for j in chosen]
        return portfolios

    def _collect_candidates(
        self, table: pd.DataFrame, configs: list[dict[str, Any]]
    ) -> list[Candidate]:
        seen: set[tuple[str, str]] = set()
        candidates = []
        defaults = [(a, get_recommender_class(a).default_config()) for a in self.algorithms_]
        for algorithm, config in [*defaults, *zip(table["algorithm"], configs, strict=True)]:
            key = (algorithm, json.dumps(config, sort_keys=True))
            if key not in seen:
                seen.add(key)
                candidates.append(Candidate(algorithm, config))
        return candidates

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_rank_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "This MetaModel is not fitted yet; call `fit` with labels or `MetaModel.load`."
            )
