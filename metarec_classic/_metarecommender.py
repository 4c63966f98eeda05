"""The public :class:`MetaRecommender`: select, tune, fit and recommend in one estimator."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from metarec_classic.data import IdMap, Interactions
from metarec_classic.evaluation import evaluate
from metarec_classic.exceptions import DataWarning
from metarec_classic.meta import (
    NO_HISTORY,
    Candidate,
    MetaModel,
    Selection,
    UserMetaModel,
    activity_segments,
    choose_per_segment,
    learned_segments,
    load_pretrained,
    load_pretrained_user_model,
    select,
)
from metarec_classic.metafeatures import user_metafeatures
from metarec_classic.recommenders import (
    RecommenderFileError,
    load_recommender,
    make_recommender,
    save_recommender,
)
from metarec_classic.tuning import PairedComparison, check_timeout, compare_on_validation, tune

__all__ = ["MetaRecommender"]

_log = logging.getLogger(__name__)

_FILE = "metarecommender.json"
_SEEN_FILE = "seen_nonpositive.npz"
_SEGMENT_MODES = ("activity", "auto")


class MetaRecommender(BaseEstimator):  # type: ignore[misc]
    """Recommender that chooses its own algorithm and configuration by meta-learning.

    ``fit`` computes the data's meta-features, asks the meta-model which algorithm and
    configuration will rank best, optionally refines that answer with a short Optuna
    search warm-started from the meta-model's best guesses, and fits the winner on all
    the data. ``recommend`` then works with the original user and item ids.

    Parameters
    ----------
    meta_model : MetaModel, path or None, default=None
        The meta-model, a folder saved by :meth:`MetaModel.save`, or ``None`` for the
        pretrained model shipped with the package.
    n_trials : int, default=0
        Trials of the warm-started search; 0 fits the meta-model's top pick directly.
    min_gain : float, default=1.0
        How many standard errors a searched configuration must gain over the
        meta-model's pick to replace it, measured user by user on a second validation
        split that the search did not use. On the search's own split the best of many
        noisy scores is biased upwards (the winner's curse); the meta-model's pick is an
        estimate made before any of that noise, so the search overrides it only for a
        gain larger than the noise (the one-standard-error rule). 0: the best
        validation score wins. On MovieLens 100K (ratings >= 4, MovieLens held out of
        the meta-model) a 20-trial search's best came from L2 434, penalty 0.04
        (validation NDCG@10 0.2521 against the pick's 0.2494; test 0.370); on the
        second split it scored 0.0029 below the pick's L2 411, penalty 0.22 (test
        0.375), whose place it would have taken on the search's own split (+0.0027,
        standard error 0.0025).
    timeout : float, optional
        Seconds after which the search starts no new trial. The warm start's queued
        configurations then share part of it per algorithm, so that an algorithm whose
        fits are slow on this data (EASE on a large catalogue) runs fewer of them; see
        :func:`~metarec_classic.tuning.tune`.
    storage : str, optional
        Optuna storage of the search (journal file path or database URL).
    segments : {"auto", "activity"} or None, default=None
        Choose per user segment: ``"activity"`` cuts users by training interactions
        (none, 1-4, 5-19, 20-99, 100+), ``"auto"`` learns a few readable rules over the
        user meta-features. A per-user meta-model predicts each user's NDCG@10 under each
        algorithm; a segment gets another algorithm than the dataset-level choice only
        where that is predicted clearly better (see
        :func:`~metarec_classic.meta.choose_per_segment`). One model is fitted per
        distinct choice. ``None`` serves every user with the dataset-level choice.
    user_meta_model : UserMetaModel, path or None, default=None
        The per-user meta-model, a folder saved by :meth:`UserMetaModel.save`, or
        ``None`` for the one shipped with the package.
    min_segment_size : int, default=50
        Users a segment needs before it may differ from the dataset-level choice.
    random_state : int, default=0
        Seeds meta-features, the search and the fitted model.
    show_progress : bool, default=False
        Progress bar of the search, on stderr.

    Attributes
    ----------
    selection_ : Selection
        The meta-model's ranking for the training data.
    algorithm_ : str
        The chosen algorithm.
    config_ : dict
        The chosen configuration.
    model_ : BaseRecommender
        The dataset-level choice, fitted on all the training data.
    models_ : list of BaseRecommender
        Every fitted model: ``model_`` first, then one per other per-segment choice.
    segments_ : DataFrame or None
        With ``segments``: one row per segment (``segment``, ``rule``, ``n_users``,
        ``algorithm``, ``config``, ``predicted_ndcg@10``, ``dataset_choice``,
        ``predicted_ndcg@10_dataset_choice``, ``fell_back``, ``reason``, ``model``: the
        position in ``models_``).
    user_segment_ : ndarray of int32
        Row of ``segments_`` each training user belongs to (-1 without ``segments``).
        The model serving a user follows from it (``user_route_``).
    tuning_ : TuningResult or None
        The warm-started search, when ``n_trials > 0``.
    search_gain_ : PairedComparison or None
        When the search's best differs from the meta-model's pick: the best's gain over
        the pick on the second validation split, which ``min_gain`` weighs.
    user_map_, item_map_ : IdMap
        Original ids of the training users and items.
    seen_nonpositive_ : sparse matrix of shape (n_users, n_items)
        The training data's ``seen_nonpositive`` entries (e.g. ratings below the positive
        threshold), never recommended; empty when the data has none.

    Examples
    --------
    >>> from metarec_classic import MetaRecommender
    >>> from metarec_classic.data import load_dataset
    >>> data = load_dataset("demo")
    >>> rec = MetaRecommender().fit(data)
    >>> table = rec.recommend(data.user_ids[:2], k=3)
    >>> list(table.columns)
    ['user_id', 'item_id', 'rank', 'score']
    """

    def __init__(
        self,
        meta_model: MetaModel | str | os.PathLike[str] | None = None,
        *,
        n_trials: int = 0,
        min_gain: float = 1.0,
        timeout: float | None = None,
        storage: str | None = None,
        segments: str | None = None,
        user_meta_model: UserMetaModel | str | os.PathLike[str] | None = None,
        min_segment_size: int = 50,
        random_state: int = 0,
        show_progress: bool = False,
    ) -> None:
        self.meta_model = meta_model
        self.n_trials = n_trials
        self.min_gain = min_gain
        self.timeout = timeout
        self.storage = storage
        self.segments = segments
        self.user_meta_model = user_meta_model
        self.min_segment_size = min_segment_size
        self.random_state = random_state
        self.show_progress = show_progress

    def select(self, interactions: Interactions) -> Selection:
        """Rank algorithms and configurations for ``interactions`` (no model is fitted)."""
        return select(interactions, self._meta_model(), random_state=self.random_state)

    def select_segments(self, interactions: Interactions) -> pd.DataFrame:
        """The per-segment choice for ``interactions`` without fitting or searching.

        Returns the table :attr:`segments_` would hold after ``fit`` with ``n_trials=0``.
        """
        if self.segments not in _SEGMENT_MODES:
            raise ValueError(
                f"`segments` must be 'auto' or 'activity' to choose per segment; got "
                f"{self.segments!r}."
            )
        self.selection_ = self.select(interactions)
        self.algorithm_ = self.selection_.best.algorithm
        self.config_ = dict(self.selection_.best.config)
        self.user_segment_ = np.full(interactions.n_users, -1, dtype=np.int32)
        self._choose_segments(interactions)
        assert self.segments_ is not None
        return self.segments_.copy()

    def fit(self, interactions: Interactions) -> MetaRecommender:
        """Choose, optionally tune, and fit a recommender on ``interactions``."""
        if not isinstance(interactions, Interactions):
            raise TypeError(
                "`interactions` must be an Interactions (see `metarec_classic.data`); got "
                f"{type(interactions).__name__}."
            )
        if not isinstance(self.n_trials, (int, np.integer)) or self.n_trials < 0:
            raise ValueError(f"`n_trials` must be an int >= 0; got {self.n_trials!r}.")
        if not isinstance(self.min_gain, (int, float)) or not 0 <= self.min_gain < math.inf:
            raise ValueError(
                f"`min_gain` must be a number of standard errors >= 0 (1 by default, 0 to "
                f"take the best validation score); got {self.min_gain!r}."
            )
        check_timeout(self.timeout)
        if self.segments is not None and self.segments not in _SEGMENT_MODES:
            raise ValueError(
                f"`segments` must be 'auto', 'activity' or None; got {self.segments!r}."
            )
        started = time.perf_counter()
        self.selection_ = self.select(interactions)
        self.tuning_ = None
        self.search_gain_: PairedComparison | None = None
        if self.n_trials == 0:
            self.algorithm_ = self.selection_.best.algorithm
            self.config_ = dict(self.selection_.best.config)
        else:
            plan = self.selection_.warm_start(self.n_trials)
            self.tuning_ = tune(
                plan.algorithms,
                interactions,
                n_trials=self.n_trials,
                timeout=self.timeout,
                storage=self.storage,
                seed=self.random_state,
                enqueue=plan.queue,
                enqueue_default=False,
                refine_share=plan.refine_share,
                show_progress=self.show_progress,
            )
            self.algorithm_, self.config_ = self._searched_choice(interactions)
        choices = [(self.algorithm_, self.config_)]
        self.segments_ = None
        self.user_segment_ = np.full(interactions.n_users, -1, dtype=np.int32)
        if self.segments is not None:
            choices = self._choose_segments(interactions)
        self.models_ = [
            make_recommender(algorithm, config, random_state=self.random_state).fit(interactions)
            for algorithm, config in choices
        ]
        self.model_ = self.models_[0]
        self.user_map_ = interactions.user_map
        self.item_map_ = interactions.item_map
        seen = interactions.seen_nonpositive
        self.seen_nonpositive_ = (
            sp.csr_matrix(interactions.user_items.shape, dtype=np.float32)
            if seen is None
            else sp.csr_matrix(seen, dtype=np.float32)
        )
        self.fit_seconds_ = time.perf_counter() - started
        _log.info("Chose %s %s in %.1f s.", self.algorithm_, self.config_, self.fit_seconds_)
        return self

    def _searched_choice(self, interactions: Interactions) -> tuple[str, dict[str, Any]]:
        """The search's best, unless its gain over the meta-model's pick is within noise."""
        assert self.tuning_ is not None
        best = (self.tuning_.best_algorithm, dict(self.tuning_.best_config))
        pick = (self.selection_.best.algorithm, dict(self.selection_.best.config))
        if self.min_gain <= 0 or best == pick or not self._was_tried(pick):
            return best
        # The search chose its best as the top of many noisy scores on its own split,
        # where that best is flattered (the winner's curse); a split it never saw
        # measures the gain without that bias.
        gain = compare_on_validation(best, pick, interactions, seed=self.random_state + 1)
        self.search_gain_ = gain
        if gain.difference > self.min_gain * gain.standard_error:
            return best
        _log.info(
            "Kept the meta-model's pick %s %s: the search's best %s %s gains %.4f on "
            "validation, within %g standard errors (%.4f).",
            *pick,
            *best,
            gain.difference,
            self.min_gain,
            gain.standard_error,
        )
        return pick

    def _was_tried(self, choice: tuple[str, dict[str, Any]]) -> bool:
        """Whether a trial of the search completed ``choice`` (so it had its chance)."""
        assert self.tuning_ is not None
        return any((a, c) == choice for a, c, _ in self.tuning_.completed)

    def recommend(self, user_ids: Any, *, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for users given by their original ids.

        Users unseen in training get the most popular items. The result has one row per
        recommended item: ``user_id``, ``item_id``, ``rank`` (1 = best) and ``score``.
        ``exclude_seen`` leaves out the items of each user's training history and the
        items the user has seen without liking them (``seen_nonpositive_``). A score is
        the serving model's own: it orders one user's list, and its scale differs between
        users served by different models (popularity counts for users without history).
        """
        check_is_fitted(self, "model_")
        ids = np.atleast_1d(np.asarray(user_ids, dtype=object))
        rows = self.user_map_.to_index(ids)
        unknown = rows < 0
        if unknown.any():
            example = ids[unknown][0]
            warnings.warn(
                f"{int(unknown.sum())} of {len(ids)} users are not in the training data (e.g. "
                f"{example!r}); they get the most popular items.{self._id_type_hint(example)}",
                DataWarning,
                stacklevel=2,
            )
        # Unknown users go to the model of users without history, with an index past the
        # training users: that model's fallback for users it has never seen.
        route = self._models_of(rows)
        exclude = None
        if exclude_seen:  # the rows of unknown users stay empty
            exclude = self.seen_nonpositive_[np.where(unknown, 0, rows)]
            exclude = sp.diags((~unknown).astype(np.float32)) @ exclude
        rows = np.where(unknown, self.model_.user_items_.shape[0], rows)
        items = np.full((len(ids), k), -1, dtype=np.int64)
        scores = np.full((len(ids), k), -np.inf, dtype=np.float32)
        for index in np.unique(route):
            chosen = route == index
            got_items, got_scores = self.models_[index].recommend(
                rows[chosen],
                k=k,
                exclude_seen=exclude_seen,
                exclude=None if exclude is None else exclude[np.flatnonzero(chosen)],
            )
            items[chosen, : got_items.shape[1]] = got_items
            scores[chosen, : got_scores.shape[1]] = got_scores
        user_col = np.repeat(ids, items.shape[1])
        flat_items, flat_scores = items.ravel(), scores.ravel()
        valid = flat_items >= 0
        ranks = np.tile(np.arange(1, items.shape[1] + 1), len(ids))
        return pd.DataFrame(
            {
                "user_id": user_col[valid],
                "item_id": self.item_map_.to_ids(flat_items[valid]),
                "rank": ranks[valid],
                "score": flat_scores[valid],
            }
        )

    def serving(self, user_ids: Any) -> pd.DataFrame:
        """Which segment and which algorithm serve each user.

        Returns one row per user: ``user_id``, ``segment`` (None without segments) and
        ``algorithm``. Users without training history, unseen ones included, get the
        most popular training items whatever their segment's algorithm; ``algorithm``
        then reads ``most_popular``.
        """
        check_is_fitted(self, "model_")
        ids = np.atleast_1d(np.asarray(user_ids, dtype=object))
        rows = self.user_map_.to_index(ids)
        known = rows >= 0
        history = np.zeros(len(ids), dtype=bool)
        counts = np.diff(self.model_.user_items_.indptr)
        history[known] = counts[rows[known]] > 0
        algorithms = np.array([self.models_[i].name for i in self._models_of(rows)], dtype=object)
        algorithms[~history] = "most_popular"
        segment: list[str | None] = [None] * len(ids)
        if self.segments_ is not None:
            names = self.segments_["segment"].tolist()
            segment = [names[i] for i in self._segments_of(rows)]
        return pd.DataFrame({"user_id": ids, "segment": segment, "algorithm": algorithms})

    @property
    def user_route_(self) -> np.ndarray:
        """Position in ``models_`` of the model serving each training user."""
        return self._models_of(np.arange(len(self.user_segment_)))

    def _segments_of(self, rows: np.ndarray) -> np.ndarray:
        """Row of ``segments_`` of each user row; -1 (an unseen user) is "no history"."""
        assert self.segments_ is not None
        no_history = int(np.flatnonzero(self.segments_["segment"] == NO_HISTORY)[0])
        return np.where(rows >= 0, self.user_segment_[np.maximum(rows, 0)], no_history)

    def _models_of(self, rows: np.ndarray) -> np.ndarray:
        """Position in ``models_`` of the model serving each user row (-1: unseen)."""
        if self.segments_ is None:
            return np.zeros(len(rows), dtype=np.int64)
        return self.segments_["model"].to_numpy(np.int64)[self._segments_of(rows)]

    def explain(self, top: int = 10) -> pd.DataFrame:
        """The meta-features that pushed the choice most, from LightGBM's contributions.

        Returns
        -------
        DataFrame
            ``feature``, ``value`` (the data's meta-feature) and ``contribution`` to the
            predicted relative score of the chosen configuration, largest first.
        """
        check_is_fitted(self, "model_")
        if not hasattr(self, "selection_"):
            raise NotFittedError(
                "`explain` needs the meta-features computed by `fit`, which a "
                "MetaRecommender loaded from disk does not keep; call `fit` on the data "
                "again to explain the choice."
            )
        contributions = self._meta_model().contributions(
            self.selection_.features, Candidate(self.algorithm_, self.config_)
        )
        frame = contributions.rename("contribution").rename_axis("feature").reset_index()
        # Keep the data's meta-features: the bias and the configuration's own columns
        # describe the candidate, not the data.
        frame = frame[frame["feature"].isin(list(self.selection_.features))]
        frame["value"] = [self.selection_.features[f] for f in frame["feature"]]
        return frame.head(top)[["feature", "value", "contribution"]].reset_index(drop=True)

    def predicted_ndcg(self) -> float:
        """The meta-model's predicted NDCG@10 of the fitted configuration.

        After a search this is the estimate for the configuration fitted, whether the
        search's best or the pick it did not beat (see ``min_gain``); the search's own
        validation scores are in ``tuning_``.
        """
        check_is_fitted(self, "model_")
        if not hasattr(self, "selection_"):
            raise NotFittedError(
                "`predicted_ndcg` needs the meta-features computed by `fit`, which a "
                "MetaRecommender loaded from disk does not keep; call `fit` on the data."
            )
        return self._meta_model().predict_ndcg(
            self.selection_.features, Candidate(self.algorithm_, self.config_)
        )

    def explain_segments(self, test: Interactions | None = None, *, k: int = 10) -> pd.DataFrame:
        """Each segment's rule, size, chosen algorithm and configuration, and predictions.

        Parameters
        ----------
        test : Interactions, optional
            Held-out interactions with the training data's id maps (the test or
            validation part of a split whose training part was fitted). Adds the
            measured ``ndcg@{k}`` of what each segment's users are served (their mean over
            users with a test positive) and ``measured_users``, how many such users.
        k : int, default=10
            List length of the measured NDCG.

        Raises
        ------
        NotFittedError
            If the model was fitted without ``segments``.
        """
        check_is_fitted(self, "model_")
        if self.segments_ is None:
            raise NotFittedError(
                "This MetaRecommender serves every user with one algorithm; fit it with "
                "`segments='auto'` or `segments='activity'` to choose per user segment."
            )
        table = self.segments_.copy()
        if test is None:
            return table
        train = self.model_.user_items_
        if test.user_items.shape != train.shape:
            raise ValueError(
                f"`test` has shape {test.user_items.shape}, the training data "
                f"{train.shape}; pass the held-out part of the split that was fitted."
            )
        measured = np.full(train.shape[0], np.nan)
        for index, model in enumerate(self.models_):
            users = np.flatnonzero(self.user_route_ == index)
            result = evaluate(model, train, test, k=k, metrics=("ndcg",), users=users)
            rows = result.per_user["user_index"].to_numpy()
            measured[rows] = result.per_user[f"ndcg@{k}"].to_numpy()
        per_segment = pd.DataFrame({"segment": self.user_segment_, "ndcg": measured}).dropna()
        grouped = per_segment.groupby("segment")["ndcg"]
        table[f"measured_ndcg@{k}"] = grouped.mean().reindex(range(len(table))).to_numpy()
        table["measured_users"] = grouped.size().reindex(range(len(table))).fillna(0).astype(int)
        return table

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the fitted model (arrays plus JSON, no pickle) and the choice to ``folder``.

        A model saved in ``folder`` before is replaced, including the sub-model folders
        it had beyond this model's (a logged note says so).
        """
        check_is_fitted(self, "model_")
        path = Path(folder)
        if (path / _FILE).is_file():
            _log.info("Replacing the model saved in %r.", str(path))
        for index, model in enumerate(self.models_):
            save_recommender(model, path / _model_folder(index))
        index = len(self.models_)
        while (path / _model_folder(index)).is_dir():
            shutil.rmtree(path / _model_folder(index))
            index += 1
        segments = None
        if self.segments_ is not None:
            segments = json.loads(self.segments_.to_json(orient="records"))
        document = {
            "algorithm": self.algorithm_,
            "config": self.config_,
            "n_models": len(self.models_),
            "segments": segments,
            "user_segments": None if segments is None else self.user_segment_.tolist(),
            "params": {
                k: v
                for k, v in self.get_params(deep=False).items()
                if k not in ("meta_model", "user_meta_model")
            },
            "selection": self.selection_.to_dict(),
            "user_ids": _ids_to_json(self.user_map_),
            "item_ids": _ids_to_json(self.item_map_),
            "seen_nonpositive_sha256": _save_csr(self.seen_nonpositive_, path / _SEEN_FILE),
        }
        document = json.loads(json.dumps(document, default=_json_default))
        document["sha256"] = _digest(document)
        (path / _FILE).write_text(json.dumps(document) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MetaRecommender:
        """Read a folder written by :meth:`save`."""
        path = Path(folder)
        if not (path / _FILE).is_file():
            raise FileNotFoundError(
                f"No fitted MetaRecommender in {str(path)!r} ({_FILE} is missing); create "
                "one with `metarec fit DATA --out DIR`."
            )
        text = (path / _FILE).read_text()
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise RecommenderFileError(
                f"{str(path / _FILE)!r} is damaged or truncated ({err}); fit and save again."
            ) from err
        if not isinstance(document, dict) or "sha256" not in document:
            raise RecommenderFileError(
                f"{str(path / _FILE)!r} holds no checksum (its 'sha256' entry is missing), so "
                "it cannot be trusted as saved; fit and save again."
            )
        stored_digest = document.pop("sha256")
        if _digest(document) != stored_digest:
            raise RecommenderFileError(
                f"The checksum of {str(path / _FILE)!r} does not match the one recorded when "
                "it was saved: the file was changed. Fit and save the model again."
            )
        rec = cls(**document["params"])
        rec.models_ = [
            load_recommender(path / _model_folder(index))
            for index in range(int(document.get("n_models", 1)))
        ]
        rec.model_ = rec.models_[0]
        rec.segments_ = (
            None if document.get("segments") is None else pd.DataFrame(document["segments"])
        )
        user_segments = document.get("user_segments")
        n_users = rec.model_.user_items_.shape[0]
        rec.user_segment_ = (
            np.full(n_users, -1, dtype=np.int32)
            if user_segments is None
            else np.asarray(user_segments, np.int32)
        )
        rec.algorithm_ = document["algorithm"]
        rec.config_ = document["config"]
        rec.user_map_ = _ids_from_json(document["user_ids"])
        rec.item_map_ = _ids_from_json(document["item_ids"])
        rec.saved_selection_ = document["selection"]
        shape = rec.model_.user_items_.shape
        rec.seen_nonpositive_ = _load_csr(
            path / _SEEN_FILE, document.get("seen_nonpositive_sha256"), shape
        )
        if (len(rec.user_map_), len(rec.item_map_)) != shape:
            raise RecommenderFileError(
                f"The model in {str(path)!r} holds {shape[0]} users × {shape[1]} items but its "
                f"id lists have {len(rec.user_map_)} and {len(rec.item_map_)}; the folder is "
                "inconsistent. Fit and save the model again."
            )
        return rec

    # -- helpers -------------------------------------------------------------------------
    def _id_type_hint(self, user_id: Any) -> str:
        """A hint when ``user_id`` is a known id spelled as another type ("7" for 7)."""
        spellings: list[Any] = [str(user_id)]
        if isinstance(user_id, str) and re.fullmatch(r"-?[0-9]+", user_id.strip()):
            spellings.append(int(user_id))
        for spelling in spellings:
            if type(spelling) is not type(user_id) and self.user_map_.to_index([spelling])[0] >= 0:
                return (
                    f" The training ids are {type(spelling).__name__}s: pass {spelling!r}, "
                    f"not {user_id!r}."
                )
        return ""

    def _choose_segments(self, interactions: Interactions) -> list[tuple[str, dict[str, Any]]]:
        """Choose per segment; return the distinct (algorithm, config) pairs to fit.

        The dataset-level choice comes first. Another algorithm takes its best
        configuration of the search when the search tried it, else the configuration the
        meta-model ranks highest for it on this data.
        """
        features = user_metafeatures(interactions, random_state=self.random_state)
        user_model = self._user_meta_model()
        known = set(user_model.algorithms_)
        if self.algorithm_ not in known:
            raise ValueError(
                f"The per-user meta-model knows {sorted(known)!r} but not the dataset-level "
                f"choice {self.algorithm_!r}, so it cannot compare segments against it; "
                "train the per-user meta-model on labels of every algorithm."
            )
        algorithms = [a for a in self.selection_.algorithms()["algorithm"] if a in known]
        predictions = user_model.predict(features, self.selection_.features, algorithms)
        if self.segments == "activity":
            segments = activity_segments(features)
        else:
            segments = learned_segments(
                features,
                predictions,
                min_segment_size=self.min_segment_size,
                random_state=self.random_state,
            )
        picks = choose_per_segment(
            predictions, segments, self.algorithm_, min_segment_size=self.min_segment_size
        )
        top_config = {
            row.algorithm: dict(row.config) for row in self.selection_.algorithms().itertuples()
        }
        if self.tuning_ is not None:
            top_config.update(self.tuning_.best_configs)
        choices: list[tuple[str, dict[str, Any]]] = [(self.algorithm_, self.config_)]
        rows: list[dict[str, Any]] = []
        for pick in picks:
            algorithm = pick.algorithm
            config = self.config_ if algorithm == self.algorithm_ else top_config[algorithm]
            if pick.segment.name == NO_HISTORY:
                # Every model answers a user without history with the most popular items;
                # serving them from that model says so in the table, at no cost.
                algorithm, config = "most_popular", {}
            if (algorithm, config) not in choices:
                choices.append((algorithm, config))
            index = choices.index((algorithm, config))
            self.user_segment_[np.asarray(pick.segment.mask, dtype=bool)] = len(rows)
            rows.append(
                {
                    **pick.to_dict(),
                    "algorithm": algorithm,
                    "config": json.dumps(config),
                    "model": index,
                }
            )
        self.segments_ = pd.DataFrame(rows)
        return choices

    def _user_meta_model(self) -> UserMetaModel:
        if isinstance(self.user_meta_model, UserMetaModel):
            return self.user_meta_model
        if not hasattr(self, "_loaded_user_model"):
            self._loaded_user_model = (
                load_pretrained_user_model()
                if self.user_meta_model is None
                else UserMetaModel.load(self.user_meta_model)
            )
        return self._loaded_user_model

    def _meta_model(self) -> MetaModel:
        if isinstance(self.meta_model, MetaModel):
            return self.meta_model
        if not hasattr(self, "_loaded_meta_model"):
            self._loaded_meta_model = (
                load_pretrained() if self.meta_model is None else MetaModel.load(self.meta_model)
            )
        return self._loaded_meta_model


def _model_folder(index: int) -> str:
    return "model" if index == 0 else f"model-{index}"


def _save_csr(matrix: sp.csr_matrix, file: Path) -> str:
    """Write ``matrix``'s structure to ``file`` (npz, no pickle); return its SHA-256."""
    np.savez(
        file,
        indptr=matrix.indptr,
        indices=matrix.indices,
        shape=np.asarray(matrix.shape, dtype=np.int64),
    )
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _load_csr(file: Path, digest: Any, shape: tuple[int, int]) -> sp.csr_matrix:
    """Read a :func:`_save_csr` file, refusing one that changed or does not fit ``shape``."""
    if not file.is_file():
        raise RecommenderFileError(
            f"{str(file)!r} is missing; the saved model is incomplete. Fit and save it again."
        )
    if hashlib.sha256(file.read_bytes()).hexdigest() != digest:
        raise RecommenderFileError(
            f"The checksum of {str(file)!r} does not match the one recorded when it was "
            "saved: the file was changed or truncated. Fit and save the model again."
        )
    with np.load(file, allow_pickle=False) as stored:
        indptr, indices = stored["indptr"], stored["indices"]
        stored_shape = tuple(int(v) for v in stored["shape"])
    if stored_shape != tuple(shape):
        raise RecommenderFileError(
            f"{str(file)!r} covers {stored_shape} users × items but the model {tuple(shape)}; "
            "the folder is inconsistent. Fit and save the model again."
        )
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=stored_shape)


def _digest(document: dict[str, Any]) -> str:
    """SHA-256 of a JSON document in canonical form (sorted keys, no spaces)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _ids_to_json(id_map: IdMap) -> dict[str, Any]:
    kind = "int" if id_map.ids.dtype.kind in "iu" else "str"
    # int64 ids are written as strings so JSON readers with float numbers keep them exact.
    return {"kind": kind, "ids": [str(v) for v in id_map.ids.tolist()]}


def _ids_from_json(document: dict[str, Any]) -> IdMap:
    ids = document["ids"]
    return IdMap(
        np.array([int(v) for v in ids], dtype=np.int64)
        if document["kind"] == "int"
        else np.array(ids, dtype=object)
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
