"""What the LightGBM meta-models share: their hyperparameters and how LightGBM runs them."""

from __future__ import annotations

from typing import Any


class BoosterParams:
    """Hyperparameters of a LightGBM meta-model, stored as given (scikit-learn style).

    Subclasses document the parameters; they differ only in defaults.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn estimators report them."""
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "random_state": self.random_state,
        }

    def _lightgbm_params(self, objective: str) -> dict[str, Any]:
        """LightGBM's training parameters: reproducible for a fixed ``random_state``."""
        return {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "seed": self.random_state,
            # LightGBM otherwise picks its histogram layout by timing both, which can
            # change the model from one run to the next.
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
