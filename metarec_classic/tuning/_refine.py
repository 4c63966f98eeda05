"""Local refinement: a compass search around the best configuration a study has found.

A warm start begins near good configurations, where the validation score changes
smoothly with each numeric parameter (EASE's L2 weight, RP3beta's exponents, ...).
There a few steps along one parameter at a time find the peak sooner than TPE, which
spreads its trials over the whole joint space of several algorithms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from metarec_classic.tuning._space import Portfolio, config_at_position, position_in_space

__all__ = ["REFINE_START", "REFINE_STEPS", "refinement_move"]

#: Step sizes of the compass search, as shares of each parameter's range (on a log scale
#: where the parameter is log): the search tries every step of one size around the best
#: configuration before it moves on to the next, smaller one. A warm start's queue
#: spaces its guesses about a tenth of a range apart, so the steps begin below that.
REFINE_STEPS = (0.08, 0.04, 0.02, 0.01)

#: Queued trials that run before the first refinement move (or one per queued algorithm,
#: when there are more): the best so far should be a guess chosen for the data rather
#: than whichever algorithm happened to be queued first.
REFINE_START = 6

# States of trials whose configuration counts as tried: running and waiting ones too,
# so that processes sharing a study do not queue the same move twice.
_TRIED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)


def refinement_move(
    trials: Sequence[FrozenTrial], portfolio: Portfolio, steps: Sequence[float] = REFINE_STEPS
) -> dict[str, Any] | None:
    """Study parameters of the next compass-search move, or None when none is left.

    The move starts from the best completed trial and changes one numeric parameter by
    one step, up then down, parameters in the order of the search space, largest step
    first. A move is passed over when an earlier trial of the same algorithm lies
    within half a step of it in every parameter: that neighbourhood was measured
    already. Each call reads the study afresh, so when a move beats the best, the
    search continues from there, and the next move along that parameter goes on in
    the same direction (the way back was measured).
    """
    completed = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not completed:
        return None
    # Ties keep the earlier trial, as Optuna's ``best_trial`` does.
    best = max(completed, key=lambda t: (float(t.value or 0.0), -t.number))
    algorithm, incumbent = portfolio.decode(best.params)
    space = portfolio.classes[algorithm].search_space()
    here = position_in_space(incumbent, space)
    measured = []
    for trial in trials:
        if trial.state not in _TRIED:
            continue
        params = trial.system_attrs.get("fixed_params", trial.params)
        if not params:
            continue
        other_algorithm, config = portfolio.decode(params)
        if other_algorithm == algorithm:
            measured.append(position_in_space(config, space))
    numeric = [
        j for j, dist in enumerate(space.values()) if not isinstance(dist, CategoricalDistribution)
    ]
    for step in steps:
        for j in numeric:
            for sign in (1.0, -1.0):
                target = here.copy()
                target[j] = min(max(here[j] + sign * step, 0.0), 1.0)
                if abs(target[j] - here[j]) < step / 2:
                    continue  # against the end of the range
                config = config_at_position(target, space, incumbent)
                landed = position_in_space(config, space)
                if any(np.abs(landed - other).max() < step / 2 for other in measured):
                    continue
                return portfolio.encode({"algorithm": algorithm, **config})
    return None
