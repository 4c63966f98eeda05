"""Random state handling shared by every layer (data splits, models, searches)."""

from __future__ import annotations

import numpy as np

__all__ = ["check_random_state", "seed_from"]


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``random_state`` into a :class:`numpy.random.Generator`, once, where work starts."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (
        isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool)
    ):
        return np.random.default_rng(random_state)
    raise TypeError(
        "`random_state` must be an int, a numpy Generator or None; "
        f"got {type(random_state).__name__}."
    )


def seed_from(rng: np.random.Generator) -> int:
    """Draw a 31-bit integer seed for libraries that take ints (implicit, scikit-learn)."""
    return int(rng.integers(0, 2**31 - 1))
