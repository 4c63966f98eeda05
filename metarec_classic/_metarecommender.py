"""The public :class:`MetaRecommender`: select, tune, fit and recommend in one estimator."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from metarec_classic.data import IdMap, Interactions
from metarec_classic.meta import Candidate, MetaModel, Selection, load_pretrained, select
from metarec_classic.recommenders import (
    RecommenderFileError,
    load_recommender,
    make_recommender,
    save_recommender,
)
from metarec_classic.tuning import tune

__all__ = ["MetaRecommender"]

_log = logging.getLogger(__name__)

_FILE = "metarecommender.json"


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
    timeout : float, optional
        Seconds after which the search starts no new trial.
    storage : str, optional
        Optuna storage of the search (journal file path or database URL).
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
        The chosen recommender, fitted on all the training data.
    tuning_ : TuningResult or None
        The warm-started search, when ``n_trials > 0``.
    user_map_, item_map_ : IdMap
        Original ids of the training users and items.

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
        timeout: float | None = None,
        storage: str | None = None,
        random_state: int = 0,
        show_progress: bool = False,
    ) -> None:
        self.meta_model = meta_model
        self.n_trials = n_trials
        self.timeout = timeout
        self.storage = storage
        self.random_state = random_state
        self.show_progress = show_progress

    def select(self, interactions: Interactions) -> Selection:
        """Rank algorithms and configurations for ``interactions`` (no model is fitted)."""
        return select(interactions, self._meta_model(), random_state=self.random_state)

    def fit(self, interactions: Interactions) -> MetaRecommender:
        """Choose, optionally tune, and fit a recommender on ``interactions``."""
        if not isinstance(interactions, Interactions):
            raise TypeError(
                "`interactions` must be an Interactions (see `metarec_classic.data`); got "
                f"{type(interactions).__name__}."
            )
        if not isinstance(self.n_trials, (int, np.integer)) or self.n_trials < 0:
            raise ValueError(f"`n_trials` must be an int >= 0; got {self.n_trials!r}.")
        started = time.perf_counter()
        self.selection_ = self.select(interactions)
        self.tuning_ = None
        if self.n_trials == 0:
            self.algorithm_ = self.selection_.best.algorithm
            self.config_ = dict(self.selection_.best.config)
        else:
            algorithms, queue = self.selection_.warm_start(self.n_trials)
            self.tuning_ = tune(
                algorithms,
                interactions,
                n_trials=self.n_trials,
                timeout=self.timeout,
                storage=self.storage,
                seed=self.random_state,
                enqueue=queue,
                enqueue_default=False,
                show_progress=self.show_progress,
            )
            self.algorithm_ = self.tuning_.best_algorithm
            self.config_ = dict(self.tuning_.best_config)
        self.model_ = make_recommender(
            self.algorithm_, self.config_, random_state=self.random_state
        ).fit(interactions)
        self.user_map_ = interactions.user_map
        self.item_map_ = interactions.item_map
        self.fit_seconds_ = time.perf_counter() - started
        _log.info("Chose %s %s in %.1f s.", self.algorithm_, self.config_, self.fit_seconds_)
        return self

    def recommend(self, user_ids: Any, *, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for users given by their original ids.

        Users unseen in training get the most popular items. The result has one row per
        recommended item: ``user_id``, ``item_id``, ``rank`` (1 = best) and ``score``.
        """
        check_is_fitted(self, "model_")
        ids = np.atleast_1d(np.asarray(user_ids, dtype=object))
        rows = self.user_map_.to_index(ids)
        unknown = rows < 0
        if unknown.any():
            _log.warning(
                "%d of %d users are not in the training data (e.g. %r); they get the most "
                "popular items.",
                int(unknown.sum()),
                len(ids),
                ids[unknown][0],
            )
        # Unknown users get an index past the training users: the popularity fallback.
        rows = np.where(rows < 0, self.model_.user_items_.shape[0], rows)
        items, scores = self.model_.recommend(rows, k=k, exclude_seen=exclude_seen)
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

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the fitted model (arrays plus JSON, no pickle) and the choice to ``folder``."""
        check_is_fitted(self, "model_")
        path = Path(folder)
        save_recommender(self.model_, path / "model")
        document = {
            "algorithm": self.algorithm_,
            "config": self.config_,
            "params": {k: v for k, v in self.get_params(deep=False).items() if k != "meta_model"},
            "selection": self.selection_.to_dict(),
            "user_ids": _ids_to_json(self.user_map_),
            "item_ids": _ids_to_json(self.item_map_),
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
            stored_digest = document.pop("sha256")
        except (json.JSONDecodeError, KeyError, AttributeError) as err:
            raise RecommenderFileError(
                f"{str(path / _FILE)!r} is damaged or truncated ({err}); fit and save again."
            ) from err
        if _digest(document) != stored_digest:
            raise RecommenderFileError(
                f"The checksum of {str(path / _FILE)!r} does not match the one recorded when "
                "it was saved: the file was changed. Fit and save the model again."
            )
        rec = cls(**document["params"])
        rec.model_ = load_recommender(path / "model")
        rec.algorithm_ = document["algorithm"]
        rec.config_ = document["config"]
        rec.user_map_ = _ids_from_json(document["user_ids"])
        rec.item_map_ = _ids_from_json(document["item_ids"])
        rec.saved_selection_ = document["selection"]
        shape = rec.model_.user_items_.shape
        if (len(rec.user_map_), len(rec.item_map_)) != shape:
            raise RecommenderFileError(
                f"The model in {str(path)!r} holds {shape[0]} users × {shape[1]} items but its "
                f"id lists have {len(rec.user_map_)} and {len(rec.item_map_)}; the folder is "
                "inconsistent. Fit and save the model again."
            )
        return rec

    # -- helpers -------------------------------------------------------------------------
    def _meta_model(self) -> MetaModel:
        if isinstance(self.meta_model, MetaModel):
            return self.meta_model
        if not hasattr(self, "_loaded_meta_model"):
            self._loaded_meta_model = (
                load_pretrained() if self.meta_model is None else MetaModel.load(self.meta_model)
            )
        return self._loaded_meta_model


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
