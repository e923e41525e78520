"""Honest stacking: a Cox model over other models' risks, each base out-of-fold.

The engine gives :class:`RiskStack` the risks of its base models for the training patients
from an inner K-fold on the training fold (each patient's risk comes from a base model that
never saw it), and for the evaluation patients from the base models refit on the whole
training fold. A :class:`~kemm.models.tabular.PenalizedCox` (penalty by inner CV) combines them,
so a base model that memorises its training patients gets no weight it has not earned out of
fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kemm.cohort.target import SurvivalTarget
from kemm.errors import ConfigError
from kemm.models.registry import register
from kemm.models.tabular import PenalizedCox, breslow_baseline


@register(
    "stack",
    kind="stack",
    modalities=("genomics", "wsi", "report", "pbk", "clinical"),
    requires_any_of=(),
)
class RiskStack:
    """Cox combination of base models' out-of-fold risks. ``base``: labels of other models of
    the run; ``inner_folds``: K of the inner K-fold that makes the training risks."""

    kind = "stack"

    def __init__(
        self,
        *,
        base: Sequence[str] = (),
        inner_folds: int = 5,
        alpha: float | str = "cv",
        feature_names: Sequence[str] | None = None,
    ) -> None:
        if not base:
            raise ConfigError("stack needs `base`: the labels of the models it combines")
        if inner_folds < 2:
            raise ConfigError(f"stack inner_folds must be >= 2, got {inner_folds}")
        self.base = list(base)
        self.inner_folds = inner_folds
        # non-negative weights (Breiman's stacked regressions): a base's risk may add evidence,
        # never act as a suppressor of another base
        self.combiner = PenalizedCox(
            alpha=alpha,
            feature_names=feature_names or self.base,
            direction_prior=True,
            feature_directions=[1] * len(self.base),
        )

    def fit(self, train_risks: np.ndarray, target: SurvivalTarget) -> RiskStack:
        """``train_risks``: (n, len(base)) out-of-fold risks of the training patients."""
        self.combiner.fit(np.asarray(train_risks, float), target)
        return self

    def predict_risk(self, risks: np.ndarray) -> np.ndarray:
        return self.combiner.predict_risk(np.asarray(risks, float))

    def predict_survival(self, risks: np.ndarray, times: Sequence[float]) -> np.ndarray:
        return self.combiner.predict_survival(np.asarray(risks, float), times)

    @property
    def weights_(self) -> dict[str, float]:
        """Combiner coefficient of each base (on standardised risks)."""
        return self.combiner.coef_

    def to_state(self) -> dict:
        return {"base": self.base, "inner_folds": self.inner_folds, **self.combiner.to_state()}


class BreslowCurves:
    """Survival curves S(t | risk) = S0(t) ** exp(risk), S0 by Breslow on the training fold."""

    def __init__(self, train_risk: np.ndarray, train: SurvivalTarget) -> None:
        self.center = float(np.mean(train_risk))
        self.times, self.baseline = breslow_baseline(
            train_risk - self.center, train.time, train.event
        )

    def to_state(self) -> dict:
        return {"center": self.center, "times": np.asarray(self.times).tolist(),
                "baseline": np.asarray(self.baseline).tolist()}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> BreslowCurves:
        curves = cls.__new__(cls)
        curves.center = float(state["center"])
        curves.times = np.asarray(state["times"], float)
        curves.baseline = np.asarray(state["baseline"], float)
        return curves

    def __call__(self, risk: np.ndarray, times) -> np.ndarray:
        idx = np.searchsorted(self.times, np.asarray(times, dtype=float), side="right") - 1
        base = np.where(idx < 0, 1.0, self.baseline[np.clip(idx, 0, None)])
        return base[None, :] ** np.exp(np.asarray(risk, float) - self.center)[:, None]


def combine(columns: list[np.ndarray], target: SurvivalTarget, names: list[str]) -> PenalizedCox:
    """A Cox combiner (penalty by inner CV) over risk columns of the same patients, with
    non-negative weights (as in Breiman's stacked regressions): each column is a risk score,
    so it may add its evidence but never enter as a suppressor of another."""
    return PenalizedCox(
        alpha="cv", feature_names=names, direction_prior=True, feature_directions=[1] * len(names)
    ).fit(np.column_stack(columns), target)
