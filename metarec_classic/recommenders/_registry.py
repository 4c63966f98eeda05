"""Algorithm names, as used on the command line and in configurations, to classes."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ALGORITHM_NAMES", "get_recommender_class", "make_recommender"]

# name -> (module, class). Imported on first use so that listing names stays cheap.
_REGISTRY: dict[str, tuple[str, str]] = {
    "most_popular": ("_popularity", "MostPopularRecommender"),
    "als": ("_als", "ALSRecommender"),
    "bpr": ("_bpr", "BPRRecommender"),
    "lmf": ("_lmf", "LMFRecommender"),
    "itemknn": ("_itemknn", "ItemKNNRecommender"),
    "userknn": ("_userknn", "UserKNNRecommender"),
    "pure_svd": ("_svd", "PureSVDRecommender"),
    "nmf": ("_nmf", "NMFRecommender"),
    "ease": ("_ease", "EASERecommender"),
    "rp3beta": ("_rp3beta", "RP3betaRecommender"),
}

#: Every algorithm name, in a stable order.
ALGORITHM_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_recommender_class(name: str) -> Any:
    """Return the recommender class registered under ``name`` (e.g. ``"als"``)."""
    try:
        module, cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown algorithm {name!r}; choose one of {', '.join(ALGORITHM_NAMES)}."
        ) from None
    return getattr(importlib.import_module(f"metarec_classic.recommenders.{module}"), cls)


def make_recommender(
    name: str,
    config: dict[str, Any] | None = None,
    *,
    random_state: Any = None,
    n_jobs: int | None = None,
    **fixed: Any,
) -> Any:
    """Build the recommender ``name`` with ``config`` (tunable) and ``fixed`` parameters.

    ``random_state`` and ``n_jobs`` are passed only to the models that take them, so a
    caller can seed or thread any algorithm alike; ``None`` keeps the model's default.
    Unknown parameter names raise a ``ValueError`` that lists the valid ones, and values
    outside a parameter's constraints raise here too, before any data is read.
    """
    cls = get_recommender_class(name)
    valid = set(cls().get_params())
    params = {**(config or {}), **fixed}
    for key, value in (("random_state", random_state), ("n_jobs", n_jobs)):
        if value is not None and key in valid:
            params[key] = value
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(
            f"Unknown parameters {unknown!r} for algorithm {name!r}; valid parameters are "
            f"{sorted(valid)!r}."
        )
    model = cls(**params)
    model._validate_params()
    return model
