"""Search spaces: asking a trial for a configuration, and placing one in its space."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

__all__ = ["config_at_position", "position_in_space", "suggest_config"]


def suggest_config(
    trial: optuna.trial.BaseTrial, space: dict[str, BaseDistribution]
) -> dict[str, Any]:
    """Ask ``trial`` for one value of every distribution in ``space``."""
    config: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, IntDistribution):
            config[name] = trial.suggest_int(
                name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        elif isinstance(dist, FloatDistribution):
            config[name] = trial.suggest_float(
                name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        elif isinstance(dist, CategoricalDistribution):
            config[name] = trial.suggest_categorical(name, dist.choices)
        else:
            raise TypeError(f"Unsupported distribution {dist!r} for parameter {name!r}.")
    return config


def position_in_space(
    config: Mapping[str, Any], space: Mapping[str, BaseDistribution]
) -> np.ndarray:
    """Where ``config`` lies in ``space``: one number in [0, 1] per parameter.

    Numeric parameters are scaled from ``low`` (0) to ``high`` (1), on a log scale where
    the distribution is log; a categorical parameter gives its choice's index over the
    last index. A parameter missing from ``config`` sits at 0.5, so that distances
    between configurations stay defined.
    """
    out = np.full(len(space), 0.5)
    for j, (name, dist) in enumerate(space.items()):
        if name not in config:
            continue
        value = config[name]
        if isinstance(dist, CategoricalDistribution):
            if value in dist.choices:
                out[j] = dist.choices.index(value) / max(len(dist.choices) - 1, 1)
        elif isinstance(dist, (IntDistribution, FloatDistribution)):
            low, high, value = float(dist.low), float(dist.high), float(value)
            if dist.log:
                low, high, value = math.log(low), math.log(high), math.log(max(value, dist.low))
            out[j] = (value - low) / (high - low) if high > low else 0.5
    return np.clip(out, 0.0, 1.0)


def config_at_position(
    position: Sequence[float] | np.ndarray,
    space: Mapping[str, BaseDistribution],
    template: Mapping[str, Any],
) -> dict[str, Any]:
    """The configuration at ``position`` of ``space`` (the inverse of ``position_in_space``).

    Numeric parameters are read from ``position`` (clipped to their range, integers
    rounded); a categorical parameter keeps its value in ``template``, since its
    choices have no order to step along.
    """
    config: dict[str, Any] = {}
    for where, (name, dist) in zip(position, space.items(), strict=True):
        if isinstance(dist, CategoricalDistribution):
            config[name] = template[name]
            continue
        if not isinstance(dist, (IntDistribution, FloatDistribution)):
            raise TypeError(f"Unsupported distribution {dist!r} for parameter {name!r}.")
        low, high = float(dist.low), float(dist.high)
        share = min(max(float(where), 0.0), 1.0)
        if dist.log:
            value = math.exp(math.log(low) + share * (math.log(high) - math.log(low)))
        else:
            value = low + share * (high - low)
        value = min(max(value, low), high)
        config[name] = round(value) if isinstance(dist, IntDistribution) else value
    return config
