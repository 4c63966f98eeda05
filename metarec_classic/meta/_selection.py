"""Selection: rank algorithms and configurations for a dataset, and plan a warm start."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metarec_classic.data import Interactions
from metarec_classic.exceptions import DataError
from metarec_classic.meta._model import Candidate, MetaModel
from metarec_classic.metafeatures import dataset_metafeatures
from metarec_classic.recommenders import check_positive_weights, get_recommender_class
from metarec_classic.tuning import position_in_space

__all__ = ["QUEUE_SPREAD", "WARM_REFINE_SHARE", "Selection", "WarmStart", "select"]

_log = logging.getLogger(__name__)

#: Least difference, as a share of one parameter's range, between two configurations of
#: an algorithm in a warm-start queue.
QUEUE_SPREAD = 0.1

#: Share of a warm-started search's trials, after the first queued ones, that refine
#: the best configuration so far (``refine_share`` of :func:`~metarec_classic.tuning.tune`).
#: On the shared datasets the queued guesses land near the peak but seldom on it; a few
#: steps from there reach the score of a long cold search sooner than TPE does.
WARM_REFINE_SHARE = 2 / 3


@dataclass(frozen=True)
class WarmStart:
    """How to search after a selection.

    Its fields go to :func:`~metarec_classic.tuning.tune` as the algorithms, ``enqueue``
    (with ``enqueue_default=False``: the queue holds the defaults) and ``refine_share``.

    Attributes
    ----------
    algorithms : list of str
        The algorithms to search.
    queue : list of dict
        Configurations (each naming its ``algorithm``) to run first, in order.
    refine_share : float
        Share of the trials after the first queued ones that refine the best
        configuration so far.
    """

    algorithms: list[str]
    queue: list[dict[str, Any]]
    refine_share: float = WARM_REFINE_SHARE


@dataclass
class Selection:
    """The meta-model's answer for one dataset.

    Attributes
    ----------
    table : DataFrame
        Every candidate, best first: ``rank``, ``algorithm``, ``config``,
        ``rank_score``, ``predicted_relative`` and ``predicted_ndcg@10``.
    features : dict of str to float
        The dataset meta-features the answer was computed from.
    out_of_range : dict
        Meta-features outside what the meta-model was trained on: name -> (value, low,
        high). When not empty, the warm start widens.
    seconds : float
        Time taken by meta-features and ranking together.
    portfolios : dict of str to list of dict
        Per algorithm, configurations that cover the meta-model's training tasks
        (:attr:`MetaModel.portfolios_ <metarec_classic.meta.MetaModel>`); the warm start
        queues them between the ranked ones.
    """

    table: pd.DataFrame
    features: dict[str, float]
    out_of_range: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    seconds: float = 0.0
    portfolios: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def best(self) -> Candidate:
        """The top-ranked configuration (the zero-trial pick)."""
        row = self.table.iloc[0]
        return Candidate(row["algorithm"], dict(row["config"]))

    def algorithms(self) -> pd.DataFrame:
        """One row per algorithm: its best candidate's rank and predictions."""
        return self.table.drop_duplicates("algorithm").reset_index(drop=True)

    def warm_start(self, n_trials: int) -> WarmStart:
        """The algorithms to search, the configurations to run first, and the refinement.

        The search covers the top algorithms (3, or 5 when the data lies outside the
        training range, and never more than ``n_trials``). The queue holds about half
        the budget of configurations of those algorithms, then each one's default,
        interleaved so that a short search still tries every algorithm early; it never
        exceeds ``n_trials``. Each algorithm's share alternates its best ranked
        configurations for this data with its portfolio (configurations that cover the
        training tasks), so that when the ranking is wrong about the data, the search
        still starts from places that were right on other data.

        The best predicted configurations of one algorithm are often near copies of
        each other (the meta-model's score is flat around its peak), and running copies
        teaches the search nothing. A configuration is queued only if it differs from
        every one queued before for its algorithm by at least ``QUEUE_SPREAD`` of some
        parameter's range (see :func:`~metarec_classic.tuning.position_in_space`).

        After the first queued ones, :data:`WARM_REFINE_SHARE` of the trials refine
        the best configuration found so far, between the rest of the queue.
        """
        # A budget smaller than the portfolio searches fewer algorithms, each tried once.
        n_algorithms = min(5 if self.out_of_range else 3, max(n_trials, 1))
        algorithms = list(self.algorithms()["algorithm"][:n_algorithms])
        n_guesses = max(len(algorithms), n_trials // 2)
        per_algorithm = {
            a: _spread_out(
                _alternate(
                    [dict(c) for c in self.table.loc[self.table["algorithm"] == a, "config"]],
                    self.portfolios.get(a, []),
                ),
                get_recommender_class(a).search_space(),
                limit=n_guesses,
            )
            for a in algorithms
        }
        queue: list[dict[str, Any]] = []
        seen: set[str] = set()
        depth = 0
        while len(queue) < n_guesses and any(depth < len(v) for v in per_algorithm.values()):
            for algorithm in algorithms:
                configs = per_algorithm[algorithm]
                if depth < len(configs):
                    _append(queue, seen, {"algorithm": algorithm, **configs[depth]})
            depth += 1
        for algorithm in algorithms:
            default = get_recommender_class(algorithm).default_config()
            _append(queue, seen, {"algorithm": algorithm, **default})
        # Never queue more than the budget: leftovers would wait in the study forever.
        return WarmStart(algorithms, queue[: max(n_trials, 1)])

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """JSON-ready summary: the top candidates, algorithms, range warnings, time."""
        head = self.table.head(top)
        return {
            "best": {"algorithm": self.best.algorithm, "config": self.best.config},
            "candidates": head.to_dict(orient="records"),
            "algorithms": self.algorithms()[
                ["rank", "algorithm", "predicted_ndcg@10", "predicted_relative"]
            ].to_dict(orient="records"),
            "out_of_range": {
                name: {"value": v, "low": lo, "high": hi}
                for name, (v, lo, hi) in self.out_of_range.items()
            },
            "seconds": self.seconds,
        }


def select(
    train: Interactions,
    meta_model: MetaModel,
    *,
    random_state: int = 0,
    landmark_seconds: float = 10.0,
) -> Selection:
    """Rank every candidate configuration of ``meta_model`` for ``train``.

    Parameters
    ----------
    train : Interactions
        The data to choose for (a training split: never include test interactions).
    meta_model : MetaModel
        A fitted meta-model.
    random_state : int, default=0
        Seeds the landmarkers' subsample, so the same data gives the same answer.
    landmark_seconds : float, default=10.0
        Time cap of the landmarkers.

    Returns
    -------
    Selection

    Raises
    ------
    DataError
        When ``train`` holds no interaction, or weights no model can train on (zero or
        negative ones): the choice would be for data that cannot be fitted.
    """
    if train.n_interactions == 0:
        raise DataError(
            f"{train.name or 'The data'} holds no interactions, so there is nothing to choose "
            f"for ({train.n_users} users, {train.n_items} items). Check what loading dropped "
            "(its report), e.g. a threshold above every rating."
        )
    check_positive_weights(train.user_items)
    started = time.perf_counter()
    features = dataset_metafeatures(
        train, random_state=random_state, landmark_seconds=landmark_seconds
    )
    table = meta_model.rank(features)
    table.insert(0, "rank", range(1, len(table) + 1))
    out_of_range = meta_model.out_of_range(features)
    if out_of_range:
        _log.warning(
            "%d meta-features of %r lie outside the meta-model's training range (%s); the "
            "ranking is less certain and the warm start is widened.",
            len(out_of_range),
            train.name,
            _first_names(out_of_range),
        )
    return Selection(
        table, features, out_of_range, time.perf_counter() - started, meta_model.portfolios_
    )


def _alternate(first: list[Any], second: list[Any]) -> list[Any]:
    """``first[0], second[0], first[1], second[1], ...``, then the rest of the longer."""
    merged = [x for pair in zip(first, second, strict=False) for x in pair]
    shorter = min(len(first), len(second))
    return merged + first[shorter:] + second[shorter:]


def _spread_out(
    configs: list[dict[str, Any]], space: dict[str, Any], *, limit: int
) -> list[dict[str, Any]]:
    """The first ``limit`` of ``configs`` (best first) that are not near an earlier one."""
    kept: list[dict[str, Any]] = []
    points: list[np.ndarray] = []
    for config in configs:
        point = position_in_space(config, space)
        if all(np.abs(point - other).max(initial=0.0) >= QUEUE_SPREAD for other in points):
            kept.append(config)
            points.append(point)
            if len(kept) == limit:
                break
    return kept


def _append(queue: list[dict[str, Any]], seen: set[str], config: dict[str, Any]) -> None:
    key = repr(sorted(config.items()))
    if key not in seen:
        seen.add(key)
        queue.append(config)


def _first_names(names: dict[str, Any], shown: int = 5) -> str:
    """The first ``shown`` names, sorted, and how many more there are."""
    ordered = sorted(names)
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    return ", ".join(ordered[:shown]) + more
