"""Hyperparameter search with Optuna: a queue of first configurations, refinement, TPE."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from metarec_classic.data import Interactions, validation_split
from metarec_classic.evaluation import evaluate
from metarec_classic.exceptions import TuningError
from metarec_classic.recommenders import get_recommender_class, make_recommender
from metarec_classic.tuning._refine import REFINE_START, refinement_move
from metarec_classic.tuning._space import Portfolio, jsonable_config
from metarec_classic.tuning._storage import resolve_storage

__all__ = [
    "PairedComparison",
    "TuningResult",
    "check_timeout",
    "compare_on_validation",
    "make_objective",
    "trials_frame",
    "tune",
]

_log = logging.getLogger(__name__)

#: User attributes every trial of our studies carries.
FIT_TIME_ATTR = "fit_time"
FAIL_REASON_ATTR = "fail_reason"
EFFECTIVE_CONFIG_ATTR = "effective_config"
#: User attribute of the trials that refinement queued (not counted as the queue's).
REFINEMENT_ATTR = "refinement"
#: User attribute of a queued trial whose configuration an earlier trial already holds:
#: the number of that trial. Such a trial ends without a fit (see ``_OnceEach``).
DUPLICATE_ATTR = "duplicate_of"


@dataclass
class TuningResult:
    """The outcome of :func:`tune`.

    Attributes
    ----------
    algorithm : str
        The algorithm searched, or the algorithms joined by ``"+"`` for a joint search.
    best_algorithm : str
        Algorithm of the best completed trial.
    best_config : dict
        Configuration of the best completed trial (parameter names without prefix).
    best_score : float
        Its validation score (``metric``).
    metric : str
        The metric maximised, e.g. ``"ndcg@10"``.
    trials : DataFrame
        One row per trial of the study: ``number``, ``state``, ``score``, ``fit_time``,
        ``fail_reason`` and one ``config.<name>`` column per parameter.
    study_name : str
        Name of the Optuna study (to resume it or inspect it).
    study : optuna.Study
        The study itself.
    best_configs : dict of str to dict
        Per algorithm with a completed trial, the configuration of its best one (what
        the search learned about the algorithms it did not choose).
    completed : list of (str, dict, float)
        Algorithm, configuration and score of every completed trial, best first.
    skipped : list of (str, dict)
        Algorithm and configuration of the queued configurations that did not run
        because their algorithm had spent its share of the time budget (see ``timeout``
        in :func:`tune`).
    n_repeats : int
        Queued trials not run because an earlier trial held their configuration: only
        processes sharing a study make them (both enqueue a configuration at once).
        They are failed trials marked ``duplicate_of`` in the study.
    """

    algorithm: str
    best_algorithm: str
    best_config: dict[str, Any]
    best_score: float
    metric: str
    trials: pd.DataFrame
    study_name: str
    study: optuna.Study = field(repr=False)
    best_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    skipped: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    n_repeats: int = 0

    @property
    def n_complete(self) -> int:
        """Number of completed trials."""
        return int((self.trials["state"] == "COMPLETE").sum())

    @property
    def n_failed(self) -> int:
        """Number of failed trials (each with its ``fail_reason``), repeats aside."""
        return int((self.trials["state"] == "FAIL").sum()) - self.n_repeats


def tune(
    algorithm: str | Sequence[str],
    train: Interactions,
    *,
    n_trials: int = 30,
    timeout: float | None = None,
    storage: str | os.PathLike[str] | BaseStorage | None = None,
    study_name: str | None = None,
    seed: int = 0,
    enqueue: Sequence[dict[str, Any]] | None = None,
    enqueue_default: bool = True,
    refine_share: float = 0.0,
    validation: Interactions | None = None,
    validation_fraction: float = 0.2,
    k: int = 10,
    metric: str = "ndcg",
    n_jobs: int | None = None,
    show_progress: bool = False,
) -> TuningResult:
    """Search the configuration that maximises validation NDCG@k, with Optuna's TPE.

    The validation split is cut from ``train`` only (a seeded per-user holdout), so a
    test split kept aside by the caller is never seen while tuning. The validation lists
    leave out the training data's ``seen_nonpositive`` items (e.g. low ratings), as
    :class:`~metarec_classic.MetaRecommender` does when it serves.

    Parameters
    ----------
    algorithm : str or sequence of str
        Algorithm name (``"als"``, ``"itemknn"``, ...), or several names for a joint
        search in which each trial first picks the algorithm (Optuna parameter
        ``"algorithm"``) and then that algorithm's parameters, named
        ``"<algorithm>.<parameter>"`` in the study.
    train : Interactions
        Training data. Tuning fits on part of it and validates on the rest.
    n_trials : int, default=30
        Number of finished (completed or failed) trials the study should hold. When the
        study already exists in ``storage`` (a resumed search), only the missing trials
        are run; processes that share the study stop once it holds that many between
        them (each trial running at that moment still finishes).
    timeout : float, optional
        Stop starting new trials after this many seconds. The queued configurations
        (``enqueue`` and the defaults) then get part of it: as much as their share of
        ``n_trials``, split equally between their algorithms. Once an algorithm's next
        queued trial would overrun its part, its remaining queued configurations are
        skipped (its first always runs) and listed in ``TuningResult.skipped``.
    storage : str, path or optuna storage, optional
        Where the study lives: in memory (``None``), a journal file path (resumable on
        one machine) or a database URL (shared by several machines); see
        :func:`~metarec_classic.tuning.resolve_storage`.
    study_name : str, optional
        Defaults to ``"<algorithm>-<data name>-seed<seed>"``.
    seed : int, default=0
        Seeds the validation split, the TPE sampler and every model.
    enqueue : sequence of dict, optional
        Configurations run first, in order (a warm start). In a joint search each must
        name its ``"algorithm"``. Missing parameters are sampled.
    enqueue_default : bool, default=True
        Also run the default configuration (of each algorithm) first.
    refine_share : float, default=0.0
        Share of the trials after the first queued ones
        (:data:`~metarec_classic.tuning.REFINE_START`, or one per queued algorithm when
        there are more) that refine the best configuration so far by a compass search
        (:func:`~metarec_classic.tuning.refinement_move`), spread evenly between the
        rest of the queue; TPE takes the trials that neither fills. A warm start begins
        near good configurations, where such steps find the peak sooner than TPE. ``0``
        turns it off.
    validation : Interactions, optional
        An explicit validation split (same shape as ``train``); then ``train`` is used
        whole for fitting.
    validation_fraction : float, default=0.2
        Share of each user's training interactions held out for validation.
    k : int, default=10
        List length of the validation metric.
    metric : {"ndcg", "recall", "precision", "map", "mrr", "hit_rate"}, default="ndcg"
        Validation metric to maximise.
    n_jobs : int, optional
        Threads of each model fit (models that accept ``n_jobs``); ``None`` keeps each
        model's own default, which was chosen as the fastest on 2 cores, except for
        models whose threaded fits do not repeat (BPR): they fit on one thread, so that
        the same ``seed`` gives the same study.
    show_progress : bool, default=False
        Show Optuna's progress bar (on stderr).

    Returns
    -------
    TuningResult

    Raises
    ------
    TuningError
        When no trial of the study completed; the message lists the failure reasons.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"`n_trials` must be a positive int; got {n_trials!r}.")
    check_timeout(timeout)
    if (
        isinstance(refine_share, bool)
        or not isinstance(refine_share, (int, float))
        or not 0.0 <= refine_share <= 1.0
    ):
        raise ValueError(f"`refine_share` must be a number in [0, 1]; got {refine_share!r}.")
    portfolio = Portfolio(algorithm)
    if not portfolio.joint and not portfolio.classes[portfolio.algorithms[0]].search_space():
        # Nothing to tune (e.g. most_popular): one trial measures the only configuration.
        n_trials = 1

    # Split: fit on part of train, validate on the rest.
    if validation is None:
        split = validation_split(train, validation_fraction=validation_fraction, random_state=seed)
        fit_part, validation = split.train, split.test
    else:
        fit_part = train
    objective = make_objective(
        portfolio, fit_part, validation, seed=seed, n_jobs=n_jobs, k=k, metric=metric
    )

    name = study_name or f"{portfolio.label}-{train.name or 'data'}-seed{seed}"
    previous_level = quiet_optuna()
    try:
        resolved = resolve_storage(storage)
        # A resumed study gets a sampler seeded by its history, so that it does not
        # replay the configurations its first run already tried.
        n_before = _count_existing(resolved, name)
        study = optuna.create_study(
            study_name=name,
            storage=resolved,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed + n_before),
            load_if_exists=True,
        )
        queue = portfolio.defaults() if enqueue_default else []
        feeder = _QueueFeeder(
            [*queue, *(portfolio.encode(config) for config in enqueue or [])],
            portfolio,
            n_trials=n_trials,
            timeout=timeout,
            refine_share=float(refine_share),
        )
        once_each = _OnceEach(objective)
        deadline = None if timeout is None else time.perf_counter() + timeout
        feeder(study)  # does nothing when the study is full already
        while (missing := n_trials - _count_finished(study.get_trials(deepcopy=False))) > 0:
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0:
                break
            repeats = once_each.repeats
            study.optimize(
                once_each,
                n_trials=missing,
                timeout=left,
                catch=(Exception,),
                callbacks=[feeder, _StopWhenFull(n_trials)],
                show_progress_bar=show_progress,
            )
            # Only repeats (see ``_OnceEach``) take a trial that does not count; without
            # them the search stopped for good (full, out of time, or stopped).
            if once_each.repeats == repeats:
                break
    finally:
        optuna.logging.set_verbosity(previous_level)

    trials = trials_frame(study)
    if _count(study, TrialState.COMPLETE) == 0:
        reasons = trials["fail_reason"].dropna().unique()[:3].tolist()
        raise TuningError(
            f"Every trial of {portfolio.label!r} failed ({len(trials)} trials); first "
            f"reasons: {reasons!r}. Check the data size against the search space, or the "
            "reasons."
        )
    best = study.best_trial
    best_algorithm, best_config = portfolio.decode(best.params)
    best_configs: dict[str, dict[str, Any]] = {}
    completed: list[tuple[str, dict[str, Any], float]] = []
    # Completed trials, best first; ties keep the earlier trial, as ``best_trial`` does.
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for trial in sorted(finished, key=lambda t: (-float(t.value or 0.0), t.number)):
        algorithm, config = portfolio.decode(trial.params)
        best_configs.setdefault(algorithm, config)
        completed.append((algorithm, config, float(trial.value or 0.0)))
    result = TuningResult(
        algorithm=portfolio.label,
        best_algorithm=best_algorithm,
        best_config=best_config,
        best_score=float(best.value or 0.0),
        metric=f"{metric}@{k}",
        trials=trials,
        study_name=name,
        study=study,
        best_configs=best_configs,
        completed=completed,
        skipped=list(feeder.skipped),
        n_repeats=_count_repeats(study),
    )
    repeats = result.n_repeats
    _log.info(
        "Tuned %s: best %s@%d %.4f (%s) after %d trials (%d failed)%s.",
        portfolio.label,
        metric,
        k,
        best.value,
        best_algorithm,
        len(trials) - repeats,
        result.n_failed,
        f"; {repeats} repeated queued configurations not run" if repeats else "",
    )
    return result


class _StopWhenFull:
    """Stops this process's search once the study holds ``n_trials`` finished trials.

    ``optimize`` counts only its own trials, so without it two processes sharing a
    study would each run the full budget. A trial still running elsewhere at that
    moment may add one more per process.
    """

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: Any) -> None:
        if _count_finished(study.get_trials(deepcopy=False)) >= self.n_trials:
            study.stop()


class _QueueFeeder:
    """Puts the queued configurations in the study one at a time, as it needs them.

    Called once before the search and after every trial (an Optuna callback), it
    enqueues the next queued configuration unless one is already waiting, so the queue
    runs in order, also when several processes share the study (a configuration the
    study already holds is passed over).

    Under a time budget, each algorithm's queued trials share equally the part of the
    budget that the queue holds of the trials (``len(queue) / n_trials``). An algorithm
    whose next queued trial would overrun its share, at the mean time of its queued
    trials so far, has its remaining queued configurations skipped: on a large catalogue
    a single EASE fit can take a minute, and a queue of them would use up a short
    search. Its first queued configuration always runs, and the search's own trials
    may still choose it. Skipped configurations are logged and listed in
    :attr:`TuningResult.skipped`.

    With ``refine_share`` above zero, once the first queued configurations have run
    (``REFINE_START``, or one per queued algorithm when there are more), that share of
    the next trials are moves of a compass search around the best configuration so far
    (:func:`~metarec_classic.tuning.refinement_move`), spread evenly between the rest of
    the queue; when the compass search has no move left, the queue (and after it TPE)
    takes the trial. Moves carry the user attribute ``refinement`` and do not count
    against the queue's share of the time.
    """

    def __init__(
        self,
        queue: list[dict[str, Any]],
        portfolio: Portfolio,
        *,
        n_trials: int,
        timeout: float | None,
        refine_share: float = 0.0,
    ) -> None:
        self.queue = queue
        self.portfolio = portfolio
        self.n_trials = n_trials
        self.timeout = timeout
        self._started: float | None = None
        algorithms = {self._algorithm(params) for params in queue}
        self.share = (
            math.inf
            if timeout is None or not queue
            else timeout * min(1.0, len(queue) / n_trials) / len(algorithms)
        )
        self.skipped: list[tuple[str, dict[str, Any]]] = []
        self._next = 0
        self.refine_share = refine_share
        self.refine_after = min(len(queue), max(len(algorithms), REFINE_START))

    def __call__(self, study: optuna.Study, trial: Any = None) -> None:
        if self._next >= len(self.queue) and not self.refine_share:
            return  # after the queue, no query of the storage per trial
        if self._started is None:
            self._started = time.perf_counter()
        # Nothing is left waiting in the study once the search is over: a resumed
        # search would otherwise run it before anything else.
        out_of_time = (
            self.timeout is not None and time.perf_counter() - self._started >= self.timeout
        )
        trials = study.get_trials(deepcopy=False)
        finished = _count_finished(trials)
        if (
            out_of_time
            or finished >= self.n_trials
            or any(t.state == TrialState.WAITING for t in trials)
        ):
            return
        if self._refines(finished):
            move = refinement_move(trials, self.portfolio)
            if move is not None:
                study.enqueue_trial(move, user_attrs={REFINEMENT_ATTR: True}, skip_if_exists=True)
                return
        self._enqueue_next(study, trials)

    def _refines(self, finished: int) -> bool:
        """Whether the next trial refines: ``refine_share`` of those after the start."""
        after = finished - self.refine_after
        if not self.refine_share or after < 0:
            return False
        # Rounding guard: 3 * (2 / 3) must count as 2.
        return math.ceil((after + 1) * self.refine_share - 1e-9) > math.ceil(
            after * self.refine_share - 1e-9
        )

    def _enqueue_next(self, study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Enqueue the next queued configuration that the study does not hold yet."""
        held = [t.system_attrs.get("fixed_params", t.params) for t in trials]
        spent = self._spent(trials)
        while self._next < len(self.queue):
            params = self.queue[self._next]
            self._next += 1
            if params in held:
                continue
            algorithm = self._algorithm(params)
            seconds, count = spent.get(algorithm, (0.0, 0))
            if count and seconds + seconds / count > self.share:
                self._skip(algorithm, params, seconds)
                continue
            # Another process may have queued it since: Optuna then leaves it out.
            study.enqueue_trial(params, skip_if_exists=True)
            return

    def _algorithm(self, params: dict[str, Any]) -> str:
        return str(params.get("algorithm", self.portfolio.algorithms[0]))

    def _spent(self, trials: list[optuna.trial.FrozenTrial]) -> dict[str, tuple[float, int]]:
        """Per algorithm, the seconds and number of its finished queued trials."""
        spent: dict[str, tuple[float, int]] = {}
        for trial in trials:
            fixed = trial.system_attrs.get("fixed_params")
            if (
                fixed is None
                or trial.user_attrs.get(REFINEMENT_ATTR)
                or trial.duration is None
                or not trial.state.is_finished()
            ):
                continue
            algorithm = self._algorithm(fixed)
            seconds, count = spent.get(algorithm, (0.0, 0))
            spent[algorithm] = (seconds + trial.duration.total_seconds(), count + 1)
        return spent

    def _skip(self, algorithm: str, params: dict[str, Any], seconds: float) -> None:
        if not any(name == algorithm for name, _ in self.skipped):
            _log.info(
                "Skipping the remaining queued configurations of %s: its queued trials "
                "took %.0f s, and one more would pass its %.0f s share of the time budget.",
                algorithm,
                seconds,
                self.share,
            )
        self.skipped.append(self.portfolio.decode(params))


class _RepeatedConfiguration(Exception):
    """A queued trial found its configuration already taken by an earlier trial."""


class _OnceEach:
    """The objective, except that a queued configuration an earlier trial holds is not rerun.

    Processes sharing a study can enqueue the same configuration at the same moment:
    ``enqueue_trial(skip_if_exists=True)`` reads the study, then writes, and nothing
    makes the two one step. Taking a waiting trial is one step (exactly one process
    moves it to RUNNING), so the repeat is caught there: the later of the two ends at
    once, failed, with :data:`DUPLICATE_ATTR` naming the earlier one. Without a
    ``fail_reason`` it counts neither against ``n_trials`` nor for the sampler, which
    skips failed trials. ``repeats`` counts those this process ended.
    """

    def __init__(self, objective: Callable[[optuna.trial.BaseTrial], float]) -> None:
        self.objective = objective
        self.repeats = 0

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        if isinstance(trial, optuna.Trial):
            earlier = _earlier_holder(trial.study.get_trials(deepcopy=False), trial.number)
            if earlier is not None:
                self.repeats += 1
                trial.set_user_attr(DUPLICATE_ATTR, earlier)
                raise _RepeatedConfiguration(_repeat_message(trial.number, earlier))
        return self.objective(trial)


def _repeat_message(number: int, earlier: int) -> str:
    return f"Trial {number} repeats the queued configuration of trial {earlier}; not run."


def _earlier_holder(trials: Sequence[optuna.trial.FrozenTrial], number: int) -> int | None:
    """The earlier trial holding the queued configuration of trial ``number``, if any.

    A trial interrupted without a reason (see ``_count_finished``) or itself a repeat
    holds nothing: its configuration is free to run again.
    """
    mine = next((t for t in trials if t.number == number), None)
    fixed = None if mine is None else mine.system_attrs.get("fixed_params")
    if fixed is None:
        return None
    for other in trials:
        if (
            other.number >= number
            or DUPLICATE_ATTR in other.user_attrs
            or (other.state == TrialState.FAIL and FAIL_REASON_ATTR not in other.user_attrs)
        ):
            continue
        if other.system_attrs.get("fixed_params", other.params) == fixed:
            return other.number
    return None


def make_objective(
    algorithms: str | Sequence[str] | Portfolio,
    fit_part: Interactions,
    validation: Interactions,
    *,
    seed: int = 0,
    n_jobs: int | None = None,
    k: int = 10,
    metric: str = "ndcg",
) -> Callable[[optuna.trial.BaseTrial], float]:
    """The Optuna objective: fit a suggested configuration, return its validation score.

    Each trial records its fit time and, when the fit changed the configuration to suit
    the data (e.g. ``n_factors`` above the number of items), the configuration it used
    (``effective_config``); a trial that raises, or scores NaN, records the reason in
    ``fail_reason``. Attributes cost a database round trip each in shared storages, so
    nothing is recorded twice.
    """
    portfolio = algorithms if isinstance(algorithms, Portfolio) else Portfolio(algorithms)
    metric_key = f"{metric}@{k}"

    def objective(trial: optuna.trial.BaseTrial) -> float:
        # Every error records its reason: a failed trial without one counts as
        # interrupted, which ``tune`` replaces with another trial.
        try:
            algorithm, config = portfolio.suggest(trial)
            model = make_recommender(
                algorithm, config, random_state=seed, n_jobs=_search_threads(algorithm, n_jobs)
            )
            started = time.perf_counter()
            model.fit(fit_part)
            trial.set_user_attr(FIT_TIME_ATTR, time.perf_counter() - started)
            effective = jsonable_config(getattr(model, "effective_config_", config))
            if effective != jsonable_config(config):
                trial.set_user_attr(EFFECTIVE_CONFIG_ATTR, effective)
            score = evaluate(
                model,
                fit_part,
                validation,
                k=k,
                metrics=(metric,),
                exclude=fit_part.seen_nonpositive,
            ).mean[metric_key]
        except Exception as err:
            trial.set_user_attr(FAIL_REASON_ATTR, f"{type(err).__name__}: {err}")
            raise
        if not math.isfinite(score):
            reason = f"The validation {metric_key} is {score!r}."
            trial.set_user_attr(FAIL_REASON_ATTR, reason)
            raise TuningError(reason)
        return float(score)

    return objective


@dataclass(frozen=True)
class PairedComparison:
    """How much one configuration beats another on the same validation users.

    Attributes
    ----------
    difference : float
        Mean over the validation users of (challenger's metric − incumbent's metric).
    standard_error : float
        Standard error of that mean (the users' differences' standard deviation over
        the square root of their number).
    n_users : int
        Validation users compared.
    """

    difference: float
    standard_error: float
    n_users: int


def compare_on_validation(
    challenger: tuple[str, dict[str, Any]],
    incumbent: tuple[str, dict[str, Any]],
    train: Interactions,
    *,
    seed: int = 0,
    validation_fraction: float = 0.2,
    k: int = 10,
    metric: str = "ndcg",
    n_jobs: int | None = None,
) -> PairedComparison:
    """Score two (algorithm, configuration) pairs user by user on :func:`tune`'s split.

    The split, the seeds and the metric are those of ``tune`` with the same arguments, so
    the two means are the trials' scores; the per-user differences add how sure the gap
    is, which one mean per trial cannot tell.
    """
    split = validation_split(train, validation_fraction=validation_fraction, random_state=seed)
    column = f"{metric}@{k}"
    scores: list[pd.Series] = []
    for algorithm, config in (challenger, incumbent):
        model = make_recommender(
            algorithm, config, random_state=seed, n_jobs=_search_threads(algorithm, n_jobs)
        )
        model.fit(split.train)
        result = evaluate(
            model,
            split.train,
            split.test,
            k=k,
            metrics=(metric,),
            exclude=split.train.seen_nonpositive,
        )
        scores.append(result.per_user[column].astype(np.float64))
    # Both were scored on the same users; the subtraction pairs them by user id.
    differences = (scores[0] - scores[1]).to_numpy()
    n = len(differences)
    error = float(differences.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return PairedComparison(float(differences.mean()) if n else 0.0, error, n)


def _search_threads(algorithm: str, n_jobs: int | None) -> int | None:
    """Threads of one fit in a search: as asked, else one where threads break repeats."""
    if n_jobs is None and not get_recommender_class(algorithm).repeats_with_threads:
        return 1
    return n_jobs


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, score, fit_time, fail_reason, config.<param>."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "score": trial.value,
            FIT_TIME_ATTR: trial.user_attrs.get(FIT_TIME_ATTR),
            FAIL_REASON_ATTR: trial.user_attrs.get(
                FAIL_REASON_ATTR, trial.system_attrs.get("fail_reason")
            ),
        }
        if DUPLICATE_ATTR in trial.user_attrs:
            row[FAIL_REASON_ATTR] = _repeat_message(trial.number, trial.user_attrs[DUPLICATE_ATTR])
        row.update({f"config.{key}": value for key, value in trial.params.items()})
        rows.append(row)
    columns = ["number", "state", "score", FIT_TIME_ATTR, FAIL_REASON_ATTR]
    return pd.DataFrame(rows, columns=None if rows else columns)


def quiet_optuna() -> int:
    """Lower Optuna's logging to ERROR; return the previous level to restore it.

    Our searches log one line per finished search; Optuna's per-trial lines, with a
    traceback for every failed trial, would bury it. The reason of each failure is kept
    in the trials table (``fail_reason``) instead.
    """
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return previous


def check_timeout(timeout: Any) -> None:
    """Refuse a time budget that is not a finite number of seconds > 0 (None: no limit)."""
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float, np.integer, np.floating))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(
            f"`timeout` must be a finite number of seconds > 0, or None for no limit; got "
            f"{timeout!r}."
        )


def _count_existing(storage: BaseStorage | None, name: str) -> int:
    """Trials already in the study ``name`` (0 when it does not exist yet)."""
    if storage is None:
        return 0
    try:
        return len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        return 0


def _count_finished(trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    """Trials that count against the budget: completed, or failed for a recorded reason.

    A failed trial without a reason was interrupted (Ctrl-C, a dead process); it says
    nothing about its configuration, so a resumed search runs another trial instead.
    """
    return sum(
        trial.state == TrialState.COMPLETE
        or (trial.state == TrialState.FAIL and FAIL_REASON_ATTR in trial.user_attrs)
        for trial in trials
    )


def _count_repeats(study: optuna.Study) -> int:
    """Trials that ended unrun as repeats of an earlier queued configuration."""
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return sum(DUPLICATE_ATTR in trial.user_attrs for trial in failed)


def _count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))
