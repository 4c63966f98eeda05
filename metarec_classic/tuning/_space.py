"""Search spaces: of one algorithm or several, asking a trial, placing a configuration."""

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

from metarec_classic.recommenders import get_recommender_class

__all__ = [
    "Portfolio",
    "config_at_position",
    "jsonable_config",
    "position_in_space",
    "suggest_config",
]


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


class Portfolio:
    """The search space of one algorithm, or the joint space of several.

    With one algorithm, study parameters are the algorithm's own names. With several,
    the study has a categorical ``"algorithm"`` parameter and each algorithm's
    parameters are prefixed with ``"<algorithm>."`` so the spaces never collide.
    """

    def __init__(self, algorithms: str | Sequence[str]) -> None:
        names = [algorithms] if isinstance(algorithms, str) else list(dict.fromkeys(algorithms))
        if not names:
            raise ValueError("`algorithm` must name at least one algorithm; got none.")
        self.algorithms = names
        self.classes = {name: get_recommender_class(name) for name in names}
        self.joint = len(names) > 1
        self.label = "+".join(names)

    def suggest(self, trial: optuna.trial.BaseTrial) -> tuple[str, dict[str, Any]]:
        """Ask ``trial`` for an algorithm (in a joint search) and its configuration."""
        algorithm = (
            trial.suggest_categorical("algorithm", self.algorithms)
            if self.joint
            else self.algorithms[0]
        )
        prefix = f"{algorithm}." if self.joint else ""
        space = self.classes[algorithm].search_space()
        config = suggest_config(trial, {prefix + key: dist for key, dist in space.items()})
        return str(algorithm), {key[len(prefix) :]: value for key, value in config.items()}

    def encode(self, config: dict[str, Any]) -> dict[str, Any]:
        """Study parameters of ``config`` (with ``"algorithm"`` in a joint search)."""
        config = dict(config)
        algorithm = config.pop("algorithm", None) if self.joint else self.algorithms[0]
        if algorithm not in self.classes:
            raise ValueError(
                f"An enqueued configuration must name its `algorithm`, one of "
                f"{self.algorithms!r}; got {algorithm!r}."
            )
        config.pop("algorithm", None)
        space = self.classes[algorithm].search_space()
        unknown = sorted(set(config) - set(space))
        if unknown:
            raise ValueError(
                f"Enqueued configuration has parameters {unknown!r} outside the search "
                f"space of {algorithm!r} ({sorted(space)!r})."
            )
        if not self.joint:
            return jsonable_config(config)
        return {
            "algorithm": algorithm,
            **{f"{algorithm}.{key}": value for key, value in jsonable_config(config).items()},
        }

    def decode(self, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The algorithm and configuration of a trial's study parameters."""
        if not self.joint:
            return self.algorithms[0], dict(params)
        algorithm = str(params["algorithm"])
        prefix = f"{algorithm}."
        return algorithm, {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}

    def defaults(self) -> list[dict[str, Any]]:
        """Study parameters of every algorithm's default configuration."""
        return [
            self.encode({"algorithm": a, **cls.default_config()}) for a, cls in self.classes.items()
        ]


def jsonable_config(config: dict[str, Any]) -> dict[str, Any]:
    """Plain Python scalars, so configs store in any Optuna storage and in JSON."""
    return {
        key: value.item() if isinstance(value, np.generic) else value
        for key, value in config.items()
    }
