"""Survival metrics: thin, robust wrappers around scikit-survival.

Risk scores follow the sksurv convention: higher risk = shorter expected survival. IPCW metrics
(Uno's C, integrated Brier score, time-dependent AUC) estimate the censoring distribution on the
*training* target, as in the evaluation protocol.

IPCW weights are ``1 / G``, with ``G`` the Kaplan-Meier censoring survival of the training fold, so
they explode where ``G`` is near zero: a site-held-out fold whose test follow-up outlasts the
training follow-up once gave an integrated Brier score above 2. The rule, fixed a priori
(:data:`IPCW_RULE`): evaluation times are kept where ``G(t) >= g_floor`` (default
:data:`IPCW_G_FLOOR` = 0.1, so no weight exceeds 10). :func:`ipcw_horizon` gives the limit ``h``
(the first training time where ``G`` drops below the floor, at most the last training time):
every evaluation time and Uno's ``tau`` are kept below it, and test patients beyond it are
treated as still at risk at ``h`` (which leaves every quantity at times ``< h`` unchanged and
keeps every test weight ``<= 1 / g_floor``). ``g_floor=0`` restores the former limit (the last
training time).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import CensoringDistributionEstimator

from kemm.cohort.target import SurvivalTarget
from kemm.errors import InputDataError
from kemm.survival.binning import TimeBins
from kemm.survival.discrete import survival_at_times

log = logging.getLogger(__name__)

__all__ = [
    "IPCW_G_FLOOR",
    "IPCW_RULE",
    "bootstrap_ci",
    "default_eval_times",
    "evaluate",
    "harrell_c",
    "integrated_brier",
    "ipcw_horizon",
    "is_constant",
    "time_dependent_auc",
    "uno_c",
]


# Smallest training censoring survival G(t) at which IPCW metrics are evaluated. Chosen a priori,
# not tuned on any data: G >= 0.1 bounds every inverse-probability-of-censoring weight 1 / G by 10
# (beyond it, a handful of training patients still under follow-up decide the weights of the whole
# test fold, and the Brier score can exceed 1).
IPCW_G_FLOOR = 0.1


def _rule_text(g_floor: float) -> str:
    bound = f"1/G <= {1.0 / g_floor:g}" if g_floor > 0 else "1/G unbounded"
    return (
        f"IPCW metrics (IBS, time-dependent AUC, Uno's C tau) only at times t where the training "
        f"fold's Kaplan-Meier censoring survival G(t) >= {g_floor:g} (weights {bound}); test "
        f"patients followed past that horizon are censored at it"
    )


# The rule as stated in the run's metrics.json (protocol).
IPCW_RULE = _rule_text(IPCW_G_FLOOR)


def harrell_c(event: np.ndarray, time: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index (sksurv ``concordance_index_censored``; risk ties count 0.5)."""
    event = np.asarray(event).astype(bool)
    return float(concordance_index_censored(event, np.asarray(time, float), np.asarray(risk))[0])


def _check_floor(g_floor: float) -> float:
    g_floor = float(g_floor)
    if not 0.0 <= g_floor < 1.0:
        raise ValueError(f"g_floor must be in [0, 1), got {g_floor}")
    return g_floor


def ipcw_horizon(train: SurvivalTarget, g_floor: float = IPCW_G_FLOOR) -> float:
    """Time limit ``h`` of the IPCW metrics: evaluation times must be ``< h``.

    ``h`` is the first training time at which the censoring survival ``G`` (sksurv's
    ``CensoringDistributionEstimator``, the Kaplan-Meier estimate sksurv weights with, fitted on
    ``train``) drops below ``g_floor``, or the maximum training follow-up if it never does
    (sksurv refuses to extrapolate ``G`` beyond it). ``G`` is a right-continuous step function
    that only changes at training times, so ``G(t) >= g_floor`` on every ``t < h`` and no IPCW
    weight used below ``h`` exceeds ``1 / g_floor``. ``g_floor=0`` gives the maximum training
    follow-up.
    """
    g_floor = _check_floor(g_floor)
    last = float(np.max(train.time))
    if g_floor == 0.0:
        return last
    cens = CensoringDistributionEstimator().fit(train.to_structured())
    times = np.unique(np.asarray(train.time, dtype=float))
    below = np.flatnonzero(cens.predict_proba(times) < g_floor)
    return min(float(times[below[0]]), last) if below.size else last


def _restrict_test(
    train: SurvivalTarget, test: SurvivalTarget, g_floor: float = IPCW_G_FLOOR
) -> SurvivalTarget:
    """Test target that sksurv accepts: patients past the IPCW horizon are censored there.

    Exact for every quantity evaluated at times below :func:`ipcw_horizon`: such patients are
    only ever "still at risk" (controls) at those times. The remaining test events all lie
    before the horizon, so their weights ``1 / G(t_i)`` are at most ``1 / g_floor``.
    """
    h = ipcw_horizon(train, g_floor)
    event = test.event & (test.time < h)
    time = np.minimum(test.time, h)
    return SurvivalTarget(event=event, time=time)


def _valid_window(
    train: SurvivalTarget, test: SurvivalTarget, g_floor: float = IPCW_G_FLOOR
) -> tuple[float, float]:
    """Evaluation times ``t`` must satisfy ``lo <= t < hi`` (sksurv's follow-up check + IPCW)."""
    adj = _restrict_test(train, test, g_floor)
    return float(adj.time.min()), min(ipcw_horizon(train, g_floor), float(adj.time.max()))


def default_eval_times(
    train: SurvivalTarget,
    test: SurvivalTarget,
    n_times: int = 50,
    *,
    g_floor: float = IPCW_G_FLOOR,
) -> np.ndarray:
    """An evenly spaced grid between the 10th and 90th percentiles of the test times.

    Restricted to the window where sksurv can evaluate IPCW metrics: within the test follow-up
    and below :func:`ipcw_horizon` of the training target (where its censoring survival is at
    least ``g_floor``).
    """
    lo_lim, hi_lim = _valid_window(train, test, g_floor)
    lo = max(float(np.percentile(test.time, 10)), lo_lim)
    hi = min(float(np.percentile(test.time, 90)), hi_lim)
    grid = np.unique(np.linspace(lo, hi, n_times))
    grid = grid[(grid >= lo_lim) & (grid < hi_lim)]
    if len(grid) < 2:
        raise InputDataError(
            f"no evaluation window for time-dependent metrics: test follow-up "
            f"[{test.time.min():g}, {test.time.max():g}] vs training IPCW horizon "
            f"{ipcw_horizon(train, g_floor):g} (censoring survival >= {g_floor:g})"
        )
    return grid


def _prepare_times(
    train: SurvivalTarget,
    test: SurvivalTarget,
    times: np.ndarray,
    what: str,
    g_floor: float = IPCW_G_FLOOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique valid times and, for each, the column index in the caller's ``times``."""
    times = np.atleast_1d(np.asarray(times, dtype=float))
    uniq, first = np.unique(times, return_index=True)
    lo_lim, hi_lim = _valid_window(train, test, g_floor)
    ok = (uniq >= lo_lim) & (uniq < hi_lim)
    if not ok.all():
        log.warning(
            "%s: dropped %d evaluation time(s) outside the valid window [%g, %g)",
            what,
            int((~ok).sum()),
            lo_lim,
            hi_lim,
        )
    return uniq[ok], first[ok]


def uno_c(
    train: SurvivalTarget,
    test: SurvivalTarget,
    risk: np.ndarray,
    tau: float | None = None,
    *,
    g_floor: float = IPCW_G_FLOOR,
) -> float:
    """Uno's IPCW concordance index (sksurv ``concordance_index_ipcw``), truncated at ``tau``.

    The censoring distribution is fitted on ``train``. ``tau`` (default: no truncation) is clipped
    to :func:`ipcw_horizon` of ``train`` (where its censoring survival drops below ``g_floor``;
    sksurv keeps test patients with times strictly below ``tau`` as the earlier member of a pair),
    so sksurv neither fails on test times it cannot weight nor uses weights above ``1 / g_floor``.
    """
    h = ipcw_horizon(train, g_floor)
    tau_eff = h if tau is None else min(float(tau), h)
    result = concordance_index_ipcw(
        train.to_structured(), test.to_structured(), np.asarray(risk, float), tau=tau_eff
    )
    return float(result[0])


def integrated_brier(
    train: SurvivalTarget,
    test: SurvivalTarget,
    surv_at: Callable[[np.ndarray], np.ndarray] | np.ndarray,
    times: np.ndarray | None = None,
    *,
    g_floor: float = IPCW_G_FLOOR,
) -> float:
    """Integrated Brier score (sksurv ``integrated_brier_score``, IPCW from ``train``); lower is better.

    ``surv_at`` is either a callable mapping times ``(m,)`` to survival probabilities ``(n, m)``,
    or an array ``(n, len(times))`` of survival probabilities at ``times``. Default ``times``:
    :func:`default_eval_times` (callable only). Times outside the valid window (including those
    at or past :func:`ipcw_horizon`, where the training censoring survival is below ``g_floor``)
    are dropped, so no IPCW weight exceeds ``1 / g_floor``.
    """
    if times is None:
        if not callable(surv_at):
            raise ValueError("integrated_brier: pass `times` when `surv_at` is an array")
        times = default_eval_times(train, test, g_floor=g_floor)
    valid, cols = _prepare_times(train, test, times, "integrated_brier", g_floor)
    if len(valid) < 2:
        raise InputDataError("integrated_brier: fewer than 2 valid evaluation times")
    if callable(surv_at):
        est = np.asarray(surv_at(valid), dtype=float)
    else:
        est = np.asarray(surv_at, dtype=float)
        n_times = len(np.atleast_1d(times))
        if est.shape != (len(test), n_times):
            raise ValueError(f"surv must have shape ({len(test)}, {n_times}), got {est.shape}")
        est = est[:, cols]
    if est.shape != (len(test), len(valid)):
        raise ValueError(f"surv_at returned {est.shape}, expected ({len(test)}, {len(valid)})")
    adj = _restrict_test(train, test, g_floor)
    return float(integrated_brier_score(train.to_structured(), adj.to_structured(), est, valid))


def time_dependent_auc(
    train: SurvivalTarget,
    test: SurvivalTarget,
    risk: np.ndarray,
    times: np.ndarray | None = None,
    *,
    g_floor: float = IPCW_G_FLOOR,
) -> tuple[np.ndarray, float]:
    """Cumulative/dynamic AUC (sksurv ``cumulative_dynamic_auc``) and its mean.

    Returns ``(auc, mean_auc)``; ``auc`` is aligned with ``np.unique(times)`` (default
    :func:`default_eval_times`) and is NaN at times outside the valid window (see
    :func:`ipcw_horizon` for ``g_floor``) or with no case (event by ``t``) or no control (still
    at risk after ``t``). ``mean_auc`` is sksurv's survival-weighted mean over the remaining times.
    """
    if times is None:
        times = default_eval_times(train, test, g_floor=g_floor)
    all_times = np.unique(np.asarray(times, dtype=float))
    valid, _ = _prepare_times(train, test, all_times, "time_dependent_auc", g_floor)
    adj = _restrict_test(train, test, g_floor)
    has_case = np.array([(adj.event & (adj.time <= t)).any() for t in valid], dtype=bool)
    has_ctrl = np.array([(adj.time > t).any() for t in valid], dtype=bool)
    valid = valid[has_case & has_ctrl]
    if len(valid) == 0:
        raise InputDataError("time_dependent_auc: no evaluation time with both cases and controls")
    auc, mean_auc = cumulative_dynamic_auc(
        train.to_structured(), adj.to_structured(), np.asarray(risk, float), valid
    )
    out = np.full(len(all_times), np.nan)
    out[np.searchsorted(all_times, valid)] = auc
    return out, float(mean_auc)


def bootstrap_ci(
    metric: Callable[[np.ndarray], float],
    n: int,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(lo, hi)`` confidence interval of ``metric``.

    ``metric`` receives the resampled indices (``n`` drawn with replacement). Resamples where it
    raises or returns a non-finite value (no events, no comparable pairs) are skipped and
    counted; if more than half fail, :class:`InputDataError` is raised.
    """
    rng = np.random.default_rng(seed)
    values: list[float] = []
    failed = 0
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        try:
            value = float(metric(idx))
        except (ValueError, ArithmeticError):
            failed += 1
            continue
        if math.isfinite(value):
            values.append(value)
        else:
            failed += 1
    if failed > n_boot / 2:
        raise InputDataError(
            f"bootstrap_ci: the metric failed on {failed} of {n_boot} resamples "
            "(too few events or comparable pairs)"
        )
    if failed:
        log.warning("bootstrap_ci: skipped %d of %d failed resamples", failed, n_boot)
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def is_constant(risk: np.ndarray, rtol: float = 1e-6) -> bool:
    """True when the risk scores are (numerically) all equal: a collapsed model, C = 0.5."""
    r = np.asarray(risk, dtype=float).reshape(-1)
    if r.size == 0:
        return True
    scale = max(1.0, float(np.max(np.abs(r[np.isfinite(r)]), initial=0.0)))
    return bool(np.ptp(r) <= rtol * scale)


def _safe(name: str, fn: Callable[[], float]) -> float:
    try:
        value = float(fn())
    except Exception as err:  # metrics must never crash an evaluation
        log.warning("metric %s undefined, reported as NaN: %s", name, err)
        return float("nan")
    return value


def evaluate(
    train: SurvivalTarget,
    test: SurvivalTarget,
    risk: np.ndarray,
    surv: np.ndarray | None = None,
    bins: TimeBins | None = None,
    *,
    g_floor: float = IPCW_G_FLOOR,
) -> dict[str, float | str]:
    """All fold metrics; each is NaN (with a logged warning) when undefined.

    Keys: ``c_index`` (Harrell), ``uno_c``, ``ibs`` (needs the discrete curves ``surv``
    ``(n, n_bins)`` and their ``bins``, see :func:`~kemm.survival.discrete.survival_at_times`),
    ``mean_auc`` and ``risk_std`` (a std near 0 flags constant-risk collapse); then the IPCW
    rule the fold was evaluated under: ``ipcw_horizon`` (:func:`ipcw_horizon`, the exclusive
    upper limit of the evaluation times and Uno's ``tau``; NaN if it cannot be computed),
    ``ipcw_g_floor`` and ``ipcw_rule`` (text, :data:`IPCW_RULE` for the default floor).
    """
    g_floor = _check_floor(g_floor)
    risk = np.asarray(risk, dtype=float).reshape(-1)
    if len(risk) != len(test):
        raise ValueError(f"risk has {len(risk)} values for {len(test)} test patients")
    if is_constant(risk):
        log.warning("constant risk scores (model collapse?): C-index will be 0.5")
    out = {
        "c_index": _safe("c_index", lambda: harrell_c(test.event, test.time, risk)),
        "uno_c": _safe("uno_c", lambda: uno_c(train, test, risk, g_floor=g_floor)),
        "ibs": float("nan"),
        "mean_auc": _safe(
            "mean_auc", lambda: time_dependent_auc(train, test, risk, g_floor=g_floor)[1]
        ),
        "risk_std": float(np.std(risk)),
        "ipcw_horizon": _safe("ipcw_horizon", lambda: ipcw_horizon(train, g_floor)),
        "ipcw_g_floor": g_floor,
        "ipcw_rule": _rule_text(g_floor),
    }
    if surv is not None and bins is not None:
        curves = np.asarray(surv, dtype=float)
        out["ibs"] = _safe(
            "ibs",
            lambda: integrated_brier(
                train, test, lambda t: survival_at_times(curves, bins, t), g_floor=g_floor
            ),
        )
    return out
