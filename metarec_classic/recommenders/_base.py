"""The interface every recommender implements, and the shared top-k machinery."""

from __future__ import annotations

import inspect
import logging
import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted

from metarec_classic.data import Interactions
from metarec_classic.exceptions import DataError, InputConversionWarning

__all__ = [
    "BaseRecommender",
    "as_user_items",
    "check_positive_weights",
    "shared_top_k",
    "top_k",
]

_log = logging.getLogger(__name__)

#: Number of users scored at once by the dense default path; bounds memory to
#: ``_SCORE_BATCH * n_items`` floats.
_SCORE_BATCH = 2048

#: ``top_k`` screens candidates on every ``_SCREEN_STRIDE``-th column first.
_SCREEN_STRIDE = 8
_F32_MAX = float(np.finfo(np.float32).max)


class BaseRecommender(BaseEstimator):  # type: ignore[misc]
    """Base class of every recommender: scikit-learn estimator contract plus top-k lists.

    Subclasses set :attr:`name`, store their constructor arguments unchanged, and
    implement ``_fit(user_items)`` and either ``_score(user_ids, user_items)`` (dense
    scores for a batch of users) or override ``_recommend_batch``.

    Users with no training history (an empty row in ``user_items``) cannot be scored by
    personalised models. They get the **popularity fallback**: items ranked by their
    number of training interactions. The count of such users in the last call is kept
    in ``n_fallback_users_``.

    Attributes
    ----------
    user_items_ : sparse matrix of shape (n_users, n_items)
        Training matrix (CSR float32), used to exclude seen items by default.
    item_popularity_ : ndarray of shape (n_items,)
        Training interaction count of each item, used by the popularity fallback.
    effective_config_ : dict
        The configuration after clamping to the data (e.g. ``n_factors`` above
        ``n_items``); equal to the requested one when nothing was clamped.
    n_fallback_users_ : int
        Users served by the popularity fallback in the last ``recommend`` call.
    """

    #: Algorithm name used on the command line and in configurations.
    name: ClassVar[str] = ""

    #: Whether two fits with the same ``random_state`` are identical on several threads.
    #: Searches run the models for which it is False on one thread, so that a seeded
    #: search repeats (one different score changes every later suggestion).
    repeats_with_threads: ClassVar[bool] = True

    #: Declarative constraints per constructor parameter, in scikit-learn's format
    #: (``Interval``, ``StrOptions``, types, ``None``); checked when ``fit`` starts.
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    # -- search space and defaults -------------------------------------------------------
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Return the default configuration (tunable parameters only)."""
        params = cls().get_params()
        return {key: params[key] for key in cls.search_space()}

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Return the Optuna search space: parameter name to ``optuna.distributions``."""
        return {}

    # -- fitting -----------------------------------------------------------------------
    def fit(self, user_items: Any) -> BaseRecommender:
        """Fit the model on a users × items matrix or an :class:`Interactions`.

        Parameters
        ----------
        user_items : Interactions or sparse matrix of shape (n_users, n_items)
            Training interactions; positive values are interaction strengths.

        Returns
        -------
        self
        """
        matrix = self._start_fit(user_items)
        self._fit(matrix)
        return self

    def _start_fit(self, user_items: Any) -> sp.csr_matrix:
        """Check the data and parameters and set the state every fitted model has."""
        matrix = as_user_items(user_items)
        check_positive_weights(matrix)
        self._validate_params()
        self.effective_config_ = self._clamp_to_data(matrix)
        self.user_items_ = matrix
        self.item_popularity_ = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(
            np.float32
        )
        return matrix

    def _validate_params(self) -> None:
        """Check hyperparameters against ``_parameter_constraints`` when ``fit`` starts."""
        # A bool is an int to Python (and to the constraints), so ``True`` would pass
        # as 1 for a number of neighbours or a penalty: refuse it unless bools are meant.
        # One parameter at a time, so that a refusal can add that parameter's default.
        for name, value in self.get_params(deep=False).items():
            allowed = self._parameter_constraints.get(name, [])
            takes_bool = any(isinstance(c, (str, type)) and c in ("boolean", bool) for c in allowed)
            if isinstance(value, (bool, np.bool_)) and not takes_bool:
                raise TypeError(
                    f"`{name}` of {type(self).__name__} must be a number, not a bool; got "
                    f"{value!r}. Pass a number, e.g. the default {self._default(name)}."
                )
            if not allowed:
                continue
            try:
                validate_parameter_constraints(
                    {name: allowed}, {name: value}, caller_name=type(self).__name__
                )
            except InvalidParameterError as err:
                raise InvalidParameterError(
                    f"{err} The default is {self._default(name)}."
                ) from None

    @classmethod
    def _default(cls, name: str) -> str:
        """``name=value`` of a constructor parameter's default, for error messages."""
        return f"{name}={inspect.signature(cls.__init__).parameters[name].default!r}"

    def _clamp_to_data(self, user_items: sp.csr_matrix) -> dict[str, Any]:
        """Clamp parameters that cannot work on this data; return the effective config."""
        return {key: getattr(self, key) for key in self.search_space()}

    def _fit(self, user_items: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _restore(self) -> None:
        """Rebuild fitted state that is not an array after loading from disk.

        :func:`~metarec_classic.recommenders.load_recommender` sets every saved fitted
        array and JSON value, then calls this. Models that keep a third-party object
        (an implicit model, say) rebuild it here from their saved arrays.
        """

    # -- recommending --------------------------------------------------------------------
    def recommend(
        self,
        user_ids: Any,
        user_items: Any = None,
        *,
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-``k`` items for each user.

        Parameters
        ----------
        user_ids : array-like of int of shape (n_batch,)
            Row indices of the users (internal indices, not original ids). Indices at or
            above the number of training users are treated as users with no history.
        user_items : sparse matrix of shape (n_batch, n_items), optional
            The histories of the listed users, row ``i`` for ``user_ids[i]``, used to
            score history-based models and to exclude seen items. Defaults to the
            training rows of ``user_ids``.
        k : int, default=10
            Length of each list.
        exclude_seen : bool, default=True
            Leave items of the user's history out of the list.
        exclude : sparse matrix of shape (n_batch, n_items), optional
            More items to leave out, row ``i`` for ``user_ids[i]``: items the users have
            seen but that are not in their history, such as low ratings. The model is
            asked for longer lists and these items are taken out.

        Returns
        -------
        item_ids : ndarray of shape (n_batch, k), int64
            Column indices of the recommended items, best first; ``-1`` pads lists with
            fewer than ``k`` candidates.
        scores : ndarray of shape (n_batch, k), float32
            The matching scores; padding entries hold ``-inf``. Factor models (ALS,
            BPR, LMF, PureSVD, NMF) score with float32 BLAS, whose sums may round
            differently with the number of users asked for at once: a user's scores can
            differ in the last digit between batches, and only items tied to that digit
            can change places.
        """
        check_is_fitted(self, "user_items_")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ValueError(f"`k` must be a positive int; got {k!r}.")
        users = np.asarray(user_ids, dtype=np.int64).ravel()
        if exclude is not None:
            return self._recommend_excluding(users, user_items, k, exclude_seen, exclude)
        if users.size and users.min() < 0:
            raise ValueError(
                f"`user_ids` must be non-negative row indices; got {int(users.min())}. Map "
                "original ids with `Interactions.user_map.to_index` and drop unknown (-1) ones."
            )
        history = self._history_rows(users, user_items)
        known = users < self.user_items_.shape[0]
        cold = np.diff(history.indptr) == 0
        if not known.all():
            cold |= ~known
        self.n_fallback_users_ = int(cold.sum())

        k_eff = min(int(k), self.user_items_.shape[1])
        ids = np.full((len(users), k_eff), -1, dtype=np.int64)
        scores = np.full((len(users), k_eff), -np.inf, dtype=np.float32)
        warm = np.flatnonzero(~cold)
        if warm.size:
            ids[warm], scores[warm] = self._recommend_batch(
                users[warm], history[warm], k_eff, exclude_seen
            )
        if cold.any():
            cold_rows = np.flatnonzero(cold)
            ids[cold_rows], scores[cold_rows] = shared_top_k(
                self.item_popularity_,
                k_eff,
                n_rows=cold_rows.size,
                exclude=history[cold_rows] if exclude_seen else None,
            )
        if k_eff < k:
            pad = k - k_eff
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return ids, scores

    def _recommend_excluding(
        self, users: np.ndarray, user_items: Any, k: int, exclude_seen: bool, exclude: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`recommend` with the items of ``exclude``'s rows taken out."""
        rows = sp.csr_matrix(exclude)
        if rows.shape != (len(users), self.user_items_.shape[1]):
            raise ValueError(
                f"`exclude` must have one row per user and one column per item, "
                f"{(len(users), self.user_items_.shape[1])}; got {rows.shape}."
            )
        rows.eliminate_zeros()
        extra = int(np.diff(rows.indptr).max(initial=0))
        ids, scores = self.recommend(users, user_items, k=k + extra, exclude_seen=exclude_seen)
        if extra == 0:
            return ids[:, :k], scores[:, :k]
        n_items = self.user_items_.shape[1]
        excluded = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(rows.indptr))
        excluded = excluded * n_items + rows.indices
        listed = np.arange(len(users), dtype=np.int64)[:, None] * n_items + ids
        dropped = np.isin(listed, excluded) | (ids < 0)
        # The kept items first, in the model's order (a stable sort), then padding.
        order = np.argsort(dropped, axis=1, kind="stable")[:, :k]
        padding = np.take_along_axis(dropped, order, axis=1)
        ids = np.where(padding, -1, np.take_along_axis(ids, order, axis=1))
        scores = np.where(padding, -np.inf, np.take_along_axis(scores, order, axis=1))
        return ids, scores.astype(np.float32, copy=False)

    def _history_rows(self, users: np.ndarray, user_items: Any) -> sp.csr_matrix:
        """The histories of ``users`` as a CSR of shape (len(users), n_items)."""
        n_items = self.user_items_.shape[1]
        if user_items is None:
            n_train = self.user_items_.shape[0]
            known = (users >= 0) & (users < n_train)
            rows = self.user_items_[np.where(known, users, 0)]
            if not known.all():
                # Users outside the training matrix have no history: blank their rows.
                rows = sp.csr_matrix(sp.diags(known.astype(np.float32)) @ rows)
                rows.eliminate_zeros()
            return rows
        matrix = as_user_items(user_items)
        if matrix.shape[1] != n_items:
            raise ValueError(
                f"`user_items` has {matrix.shape[1]} items but the model was fitted on {n_items}."
            )
        if matrix.shape[0] != len(users):
            # One row per listed user, as in implicit; slicing a full matrix by guesswork
            # would silently pair users with the wrong rows when the counts happen to match.
            raise ValueError(
                f"`user_items` must have one row per user in `user_ids` ({len(users)} rows); "
                f"got {matrix.shape[0]}. Pass `user_items[user_ids]` for a full matrix."
            )
        return matrix

    def _recommend_batch(
        self, users: np.ndarray, history: sp.csr_matrix, k: int, exclude_seen: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k for users that have a history; default: dense scores then ``top_k``."""
        ids = np.empty((len(users), k), dtype=np.int64)
        scores = np.empty((len(users), k), dtype=np.float32)
        for start in range(0, len(users), _SCORE_BATCH):
            stop = start + _SCORE_BATCH
            block = self._score(users[start:stop], history[start:stop])
            ids[start:stop], scores[start:stop] = top_k(
                block, k, exclude=history[start:stop] if exclude_seen else None
            )
        return ids, scores

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Dense scores of shape (len(users), n_items) for users with a history."""
        raise NotImplementedError


def top_k(
    scores: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices and values of the ``k`` highest scores of each row, best first.

    Entries of ``exclude`` (same shape as ``scores``) are never returned; rows with fewer
    than ``k`` eligible items, or with NaN scores, are padded with ``-1`` / ``-inf``.
    Ties are broken by the lower item index, so results are deterministic.
    """
    scores = np.array(scores, dtype=np.float32, copy=True)
    # NaN -> -inf and +inf -> the largest float32, in two passes instead of nan_to_num's.
    nan = np.isnan(scores)
    if nan.any():
        scores[nan] = -np.inf
    np.minimum(scores, _F32_MAX, out=scores)
    if exclude is not None and exclude.nnz:
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    n_rows, n_items = scores.shape
    k = min(k, n_items)

    # Screen: the k-th best of every 8th column is a lower bound of each row's k-th best,
    # so the items at or above it hold the whole top k, boundary ties included. Sorting
    # those few by (row, -score, index) gives the lists directly.
    sample = scores[:, ::_SCREEN_STRIDE]
    if n_rows and sample.shape[1] >= 4 * k:
        bound = np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]
        row, col = np.nonzero(scores >= bound[:, None])
        if row.size <= 0.1 * scores.size:
            value = scores[row, col]
            order = _row_then_descending(row, value)
            col, value = col[order], value[order]
            take = (np.searchsorted(row[order], np.arange(n_rows))[:, None] + np.arange(k)).ravel()
            ids = col[take].reshape(n_rows, k).astype(np.int64)
            values = value[take].reshape(n_rows, k)
            ids[~np.isfinite(values) & (values < 0)] = -1
            return ids, values

    # Full partition (heavy ties or short rows). Only rows with more candidates than k at
    # the k-th score need the lowest-index tie-break.
    if k < n_items:
        kth = np.partition(scores, n_items - k, axis=1)[:, n_items - k : n_items - k + 1]
        keep = scores >= kth
        excess = np.flatnonzero(keep.sum(axis=1) > k)
        if excess.size:
            sub, sub_kth = scores[excess], kth[excess]
            above = sub > sub_kth
            tied = sub == sub_kth
            need = k - above.sum(axis=1, keepdims=True)
            keep[excess] = above | (tied & (np.cumsum(tied, axis=1) <= need))
        part = np.nonzero(keep)[1].reshape(n_rows, k)
    else:
        part = np.broadcast_to(np.arange(n_items), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    values = np.take_along_axis(part_scores, order, axis=1)
    ids[~np.isfinite(values) & (values < 0)] = -1
    return ids, values


def _row_then_descending(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Order entries by row, then by value from high to low, ties kept in input order.

    Same as ``np.lexsort((np.arange(n), -values, rows))`` but about ten times faster: the
    float32 values are mapped to unsigned integers of the same order, and row and value
    share one 64-bit key for a single stable sort.
    """
    # Adding 0.0 turns -0.0 into 0.0, which must tie with it. Values must not be NaN.
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    ordered = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    key = (rows.astype(np.uint64) << np.uint64(32)) | (~ordered).astype(np.uint64)
    return np.argsort(key, kind="stable")


def shared_top_k(
    scores: np.ndarray, k: int, *, n_rows: int, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` for ``n_rows`` rows that all hold the same ``scores`` (popularity).

    The items are ranked once; each row then reads the front of that ranking, only as
    far as its excluded items push it, instead of ranking a full row per user. Results
    equal ``top_k(np.tile(scores, (n_rows, 1)), k, exclude=exclude)``.
    """
    n_items = scores.size
    k = min(k, n_items)
    clean = np.minimum(np.asarray(scores, dtype=np.float32), _F32_MAX)
    clean[np.isnan(clean)] = -np.inf
    ranking = np.lexsort((np.arange(n_items), -clean))
    ranked = clean[ranking]
    if exclude is None or exclude.nnz == 0:
        ids = np.broadcast_to(ranking[:k], (n_rows, k)).astype(np.int64)
        values = np.broadcast_to(ranked[:k], (n_rows, k)).copy()
    else:
        position = np.empty(n_items, dtype=np.int64)
        position[ranking] = np.arange(n_items)
        seen_row = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        seen_at = position[exclude.indices]
        # Widen the window until every row has k unexcluded items inside it.
        width = k
        while True:
            inside = seen_at < width
            most_seen = int(np.bincount(seen_row[inside], minlength=n_rows).max(initial=0))
            wanted = min(n_items, k + most_seen)
            if wanted <= width:
                break
            width = wanted
        window = np.broadcast_to(ranked[:width], (n_rows, width)).copy()
        window[seen_row[inside], seen_at[inside]] = -np.inf
        # Rows stay in ranking order; move the excluded entries behind the rest.
        order = np.argsort(np.isneginf(window), axis=1, kind="stable")[:, :k]
        ids = ranking[order].astype(np.int64)
        values = np.take_along_axis(window, order, axis=1)
    ids[np.isneginf(values)] = -1
    return ids, values


def as_user_items(data: Any) -> sp.csr_matrix:
    """Return ``data`` as a CSR float32 matrix, warning when a conversion was needed."""
    if isinstance(data, Interactions):
        return data.user_items
    if not sp.issparse(data):
        raise TypeError(
            f"`user_items` must be an Interactions or a scipy sparse matrix; got "
            f"{type(data).__name__}."
        )
    if data.format == "csr" and data.dtype == np.float32:
        return sp.csr_matrix(data) if not isinstance(data, sp.csr_matrix) else data
    warnings.warn(
        f"Converted `user_items` from {data.format.upper()} {data.dtype} to CSR float32; "
        "pass CSR float32 to avoid the copy.",
        InputConversionWarning,
        stacklevel=3,
    )
    return sp.csr_matrix(data, dtype=np.float32)


def check_positive_weights(matrix: sp.csr_matrix) -> None:
    """Refuse zero or negative weights: no model here reads them as a dislike."""
    nonpositive = int((matrix.data <= 0).sum())
    if nonpositive:
        raise DataError(
            f"{nonpositive} of the {matrix.nnz} training interactions have a zero or negative "
            "weight (ratings kept as weights?). The models read every weight as the strength "
            "of a positive interaction. Load the data with a `positive_threshold=` to keep "
            "ratings >= X as positives, or drop those entries with "
            "`Interactions.drop_nonpositive_weights()`."
        )
