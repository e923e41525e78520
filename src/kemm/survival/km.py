"""Kaplan-Meier curves, log-rank test and risk-group stratification (no plotting)."""

from __future__ import annotations

import logging

import numpy as np
from sksurv.compare import compare_survival
from sksurv.nonparametric import kaplan_meier_estimator

from kemm.cohort.target import SurvivalTarget

log = logging.getLogger(__name__)


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate: unique times and the survival probability just after each."""
    times, surv = kaplan_meier_estimator(
        np.asarray(event).astype(bool), np.asarray(time, dtype=float)
    )
    return np.asarray(times), np.asarray(surv)


def km_median(time: np.ndarray, event: np.ndarray) -> float:
    """The first time the Kaplan-Meier curve reaches 0.5 or below (NaN if it never does)."""
    times, surv = kaplan_meier(time, event)
    below = np.nonzero(surv <= 0.5)[0]
    return float(times[below[0]]) if len(below) else float("nan")


def median_follow_up(time: np.ndarray, event: np.ndarray) -> float:
    """Median follow-up by the reverse Kaplan-Meier method (censoring as the event), the
    usual summary that is not shortened by early deaths."""
    return km_median(time, 1 - np.asarray(event).astype(int))


def logrank_p(time: np.ndarray, event: np.ndarray, groups: np.ndarray) -> float:
    """p-value of the (multi-group) log-rank test; NaN (with a warning) if it is undefined.

    Undefined when there are fewer than two groups or no event.
    """
    groups = np.asarray(groups)
    target = SurvivalTarget(event=np.asarray(event), time=np.asarray(time, dtype=float))
    if len(np.unique(groups)) < 2 or not target.event.any():
        log.warning("logrank_p: need >= 2 groups and >= 1 event; returning NaN")
        return float("nan")
    _, p_value = compare_survival(target.to_structured(), groups)
    return float(p_value)


def risk_thresholds(train_risk: np.ndarray, n_groups: int = 2) -> np.ndarray:
    """Quantile cut points of (training) risks splitting them into ``n_groups`` equal groups."""
    if n_groups < 2:
        raise ValueError(f"n_groups must be >= 2, got {n_groups}")
    qs = np.arange(1, n_groups) / n_groups
    return np.quantile(np.asarray(train_risk, dtype=float), qs)


def risk_groups(
    risk: np.ndarray, thresholds: np.ndarray | None = None, n_groups: int = 2
) -> np.ndarray:
    """Risk group per patient, 0 = lowest risk; ``risk > thresholds[g-1]`` puts it in group >= g.

    Pass ``thresholds`` fitted on the training risks (:func:`risk_thresholds`) to stratify an
    evaluation fold honestly; without them the split is fitted on ``risk`` itself (in-sample
    quantiles, e.g. the median for ``n_groups=2``).
    """
    risk = np.asarray(risk, dtype=float)
    if thresholds is None:
        thresholds = risk_thresholds(risk, n_groups)
    thresholds = np.sort(np.atleast_1d(np.asarray(thresholds, dtype=float)))
    return np.searchsorted(thresholds, risk, side="left").astype(np.int64)
