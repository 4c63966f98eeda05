"""Plumbing shared by the recommenders that wrap the implicit library (ALS, BPR, LMF, ItemKNN).

The wrappers keep our parameter names (``n_factors``, ``n_iter``, ``n_neighbors``,
``n_jobs``); :func:`to_implicit_params` is the one place where they become implicit's
(``factors``, ``iterations``, ``K``, ``num_threads``). Fits run silently with BLAS held to
one thread, and recommendations are delegated to implicit's batch ``recommend`` with its
padding converted to ours (id ``-1``, score ``-inf``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from implicit.recommender_base import ModelFitError
from implicit.utils import ParameterWarning

from metarec_classic._random import check_random_state
from metarec_classic.recommenders._base import BaseRecommender
from metarec_classic.recommenders._common import resolve_n_jobs, thread_controller

__all__ = [
    "ImplicitFactorRecommender",
    "ImplicitRecommender",
    "implicit_fit",
    "normalise_output",
    "to_implicit_params",
]

_log = logging.getLogger(__name__)

#: implicit marks filtered or missing entries with the lowest finite float32 score.
_FLOAT32_MAX = float(np.finfo(np.float32).max)

#: Our parameter names and the names implicit uses for the same thing.
_IMPLICIT_NAMES = {
    "n_factors": "factors",
    "n_iter": "iterations",
    "n_neighbors": "K",
    "n_jobs": "num_threads",
    "bm25_k1": "K1",
    "bm25_b": "B",
}


class ImplicitRecommender(BaseRecommender):
    """Base of the implicit wrappers: silent single-BLAS-thread fits, batch recommend.

    Subclasses implement ``_make_model(config)``, returning an unfitted implicit CPU model
    built from ``config`` (our parameter names, already clamped), ``_set_fitted(model)``,
    storing its learned arrays as fitted attributes, and ``_load_fitted(model)``, setting
    them back on a new model when :meth:`_restore` rebuilds ``model_`` after loading
    from disk.
    """

    #: Names of the constructor parameters passed on to implicit (besides the tunable ones).
    _passed_params: ClassVar[tuple[str, ...]] = ("n_jobs",)

    def _implicit_config(self) -> dict[str, Any]:
        """The effective (clamped) tunable parameters plus the passed-through ones."""
        config = dict(self.effective_config_)
        for key in self._passed_params:
            config[key] = getattr(self, key)
        return config

    def _make_model(self, config: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _set_fitted(self, model: Any) -> None:
        raise NotImplementedError

    def _fit(self, user_items: sp.csr_matrix) -> None:
        self._fit_model(self._new_model(), user_items)

    def _new_model(self) -> Any:
        """An unfitted implicit model for the effective configuration, seeded once."""
        config = self._implicit_config()
        if "random_state" in config:
            config["random_state"] = check_random_state(config["random_state"])
        return self._build(config)

    def _build(self, config: dict[str, Any]) -> Any:
        # implicit's ALS checks the BLAS thread count when constructed and warns about
        # a multi-threaded BLAS; the fit runs single-threaded, so build it under that limit.
        with _single_threaded_blas():
            return self._make_model(config)

    def _fit_model(self, model: Any, user_items: sp.csr_matrix) -> None:
        try:
            implicit_fit(model, user_items)
        except ModelFitError as err:
            fix = "lower `learning_rate` or raise" if hasattr(self, "learning_rate") else "raise"
            raise ValueError(
                f"{type(self).__name__} diverged (NaN in the learned factors) with "
                f"{self.effective_config_!r}; {fix} `regularization`."
            ) from err
        self.model_ = model
        self._set_fitted(model)

    def _restore(self) -> None:
        config = self._implicit_config()
        if "random_state" in config:
            # Nothing is drawn when the learned arrays are set back.
            config["random_state"] = None
        model = self._build(config)
        self._load_fitted(model)
        self.model_ = model

    def _load_fitted(self, model: Any) -> None:
        raise NotImplementedError

    def _recommend_batch(
        self, users: np.ndarray, history: sp.csr_matrix, k: int, exclude_seen: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        # implicit's top-k runs ``num_threads`` threads that each call BLAS; with more
        # than one of them a multi-threaded BLAS oversubscribes the cores (ALS on 50,000
        # users: 3.6 s against 2.8 s with one BLAS thread), while a single caller gains
        # from BLAS threads (3.0 s against 3.8 s).
        if self.model_.num_threads == 1:
            limit: Any = contextlib.nullcontext()
        else:
            limit = _single_threaded_blas()
        with limit:
            ids, scores = self.model_.recommend(
                users, history, N=k, filter_already_liked_items=exclude_seen
            )
        return normalise_output(ids, scores)


class ImplicitFactorRecommender(ImplicitRecommender):
    """Base of the matrix-factorisation wrappers: fitted factors kept as plain arrays."""

    _passed_params: ClassVar[tuple[str, ...]] = ("random_state", "n_jobs")

    def _set_fitted(self, model: Any) -> None:
        self.user_factors_ = model.user_factors
        self.item_factors_ = model.item_factors

    def _load_fitted(self, model: Any) -> None:
        model.user_factors = self.user_factors_
        model.item_factors = self.item_factors_


def to_implicit_params(config: dict[str, Any]) -> dict[str, Any]:
    """Rename our parameters to implicit's; ``n_jobs`` becomes a thread count.

    ``n_jobs`` follows scikit-learn: ``None`` is one thread, ``-1`` every core and
    ``-2`` every core but one. implicit's own ``0`` (every core) is never passed on, so
    the thread count recorded in the model is explicit.
    """
    params = {_IMPLICIT_NAMES.get(key, key): value for key, value in config.items()}
    if "num_threads" in params:
        params["num_threads"] = resolve_n_jobs(params["num_threads"])
    return params


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    # implicit parallelises over users and items itself; a multi-threaded BLAS inside
    # each of those threads oversubscribes the cores (implicit warns about it at import).
    with thread_controller().limit(limits=1, user_api="blas"):
        yield


def implicit_fit(model: Any, user_items: sp.csr_matrix) -> None:
    """Fit an implicit ``model`` on ``user_items`` silently, with BLAS held to one thread."""
    with _single_threaded_blas(), warnings.catch_warnings():
        # The item-item models transpose to COO internally and then warn about their own
        # conversion back to CSR; the input we pass is already CSR float32 (implicit 0.7.3).
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(user_items, show_progress=False)


def normalise_output(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert implicit's ``(ids, scores)`` to ours: int64 ids, float32 scores, -1 / -inf pads.

    implicit returns filtered-out items (already seen) at the end of each row with the
    score ``-finfo(float32).max``, and the item-item models pad short rows with id ``-1``
    and the same score, in float64.
    """
    ids = ids.astype(np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    # NaN compares false, so it is treated as padding too.
    pad = ~(scores > -_FLOAT32_MAX) | (ids < 0)
    if pad.any():
        if not scores.flags.writeable:
            scores = scores.copy()
        ids[pad] = -1
        scores[pad] = -np.inf
    return ids, scores
