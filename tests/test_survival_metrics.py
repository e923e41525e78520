"""Tests for kemm.survival.metrics."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from lifelines.utils import concordance_index

from kemm.cohort.target import SurvivalTarget
from kemm.errors import InputDataError
from kemm.survival.binning import TimeBins
from kemm.survival.metrics import (
    bootstrap_ci,
    default_eval_times,
    evaluate,
    harrell_c,
    integrated_brier,
    ipcw_horizon,
    is_constant,
    time_dependent_auc,
    uno_c,
)


def _target(time, event) -> SurvivalTarget:
    return SurvivalTarget(event=np.asarray(event, dtype=bool), time=np.asarray(time, dtype=float))


def _cohort(n: int, seed: int, censor_scale: float = 150.0):
    """Exponential times whose rate grows with the risk; independent censoring."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    t = rng.exponential(100.0 * np.exp(-risk))
    c = rng.exponential(censor_scale, size=n)
    return _target(np.minimum(t, c), t <= c), risk


def test_harrell_hand_computed():
    # comparable pairs (event i, later j): 0-1..0-4 concordant; 1-2 discordant, 1-3, 1-4
    # concordant; 3-4 tied risk (0.5) -> (6 + 0.5) / 8
    c = harrell_c([1, 1, 0, 1, 0], [1, 2, 3, 4, 5], [5, 3, 4, 1, 1])
    assert c == pytest.approx(6.5 / 8)


def test_harrell_matches_lifelines():
    target, risk = _cohort(120, seed=0)
    noisy = risk + np.random.default_rng(1).normal(scale=1.0, size=120)
    ours = harrell_c(target.event, target.time, noisy)
    # lifelines expects predicted survival times: pass -risk
    ref = concordance_index(target.time, -noisy, target.event)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0.6 < ours < 0.9


def test_constant_risk_gives_half():
    target, _ = _cohort(50, seed=2)
    assert harrell_c(target.event, target.time, np.zeros(50)) == pytest.approx(0.5)
    assert is_constant(np.full(50, 3.0))
    assert not is_constant(np.array([0.0, 0.1]))


def test_uno_equals_harrell_without_censoring():
    rng = np.random.default_rng(3)
    time = rng.exponential(10.0, size=80)
    target = _target(time, np.ones(80))
    risk = -time + rng.normal(scale=5.0, size=80)
    assert uno_c(target, target, risk) == pytest.approx(
        harrell_c(target.event, target.time, risk), abs=1e-10
    )


def test_uno_robust_to_test_beyond_training_followup():
    train = _target([1, 2, 3, 4, 5, 6], [1, 1, 0, 1, 1, 0])  # last patient censored: G(6) = 0
    assert ipcw_horizon(train) == 6.0
    test = _target([1.5, 2.5, 3.5, 6.0, 9.0], [1, 1, 1, 1, 1])
    c = uno_c(train, test, np.array([5.0, 4.0, 3.0, 2.0, 1.0]), tau=100.0)
    assert c == pytest.approx(1.0)
    # the time-dependent metrics also accept test events at/after the last training time
    auc, mean_auc = time_dependent_auc(train, test, np.array([5.0, 4.0, 3.0, 2.0, 1.0]))
    assert mean_auc == pytest.approx(1.0)
    # by hand: censoring KM G = 1 before 3, 0.75 on [3, 6); with S = 0.5 every Brier term is
    # 0.25 / G, so BS(t) = 0.25 * (cases + controls / G(t)) / 5 -> 0.25 for t < 3, 0.3 after
    # (the event at 3.5 is a case weighted 1 / 0.75; the 9.0 patient is a control)
    times = np.array([2.0, 2.9, 3.0, 5.9])
    ibs = integrated_brier(train, test, np.full((5, 4), 0.5), times)
    assert ibs == pytest.approx((0.9 * 0.25 + 0.1 * 0.275 + 2.9 * 0.3) / 3.9)


def test_ibs_perfect_prediction_is_zero():
    rng = np.random.default_rng(4)
    time = rng.exponential(10.0, size=60)
    target = _target(time, np.ones(60))
    times = default_eval_times(target, target)
    perfect = (time[:, None] > times[None, :]).astype(float)
    assert integrated_brier(target, target, perfect, times) == pytest.approx(0.0, abs=1e-12)


def test_ibs_of_kaplan_meier_prediction_is_s_times_one_minus_s():
    rng = np.random.default_rng(5)
    time = rng.exponential(10.0, size=60)
    target = _target(time, np.ones(60))
    times = default_eval_times(target, target, n_times=30)
    # without censoring the KM curve is the empirical fraction still alive, same for everyone
    s = (time[:, None] > times[None, :]).mean(axis=0)

    def km_pred(t):
        return np.tile((time[:, None] > t[None, :]).mean(axis=0), (60, 1))

    expected = np.trapezoid(s * (1 - s), times) / (times[-1] - times[0])
    ibs_km = integrated_brier(target, target, km_pred, times)
    assert ibs_km == pytest.approx(expected, rel=1e-10)
    assert 0.1 < ibs_km < 0.25
    # the array form evaluated at the same times agrees; unsorted times are handled
    order = np.arange(len(times))[::-1]
    assert integrated_brier(target, target, km_pred(times)[:, order], times[order]) == (
        pytest.approx(ibs_km)
    )


def test_ibs_informative_beats_uninformative_with_censoring():
    train, _ = _cohort(300, seed=6)
    test, risk = _cohort(150, seed=7)

    def model(t):  # the true survival function of the simulation
        return np.exp(-t[None, :] / (100.0 * np.exp(-risk[:, None])))

    def flat(t):
        return np.tile(np.exp(-t / 100.0), (len(test), 1))

    assert integrated_brier(train, test, model) < integrated_brier(train, test, flat)


def test_ibs_array_requires_times():
    target, _ = _cohort(30, seed=8)
    with pytest.raises(ValueError, match="times"):
        integrated_brier(target, target, np.ones((30, 5)))


def test_default_eval_times_window():
    train, _ = _cohort(200, seed=9)
    test, _ = _cohort(80, seed=10)
    times = default_eval_times(train, test, n_times=40)
    assert 2 <= len(times) <= 40
    assert np.all(np.diff(times) > 0)
    assert times[0] >= np.percentile(test.time, 10) - 1e-9
    assert times[-1] < min(ipcw_horizon(train), test.time.max())
    with pytest.raises(InputDataError):
        default_eval_times(_target([1.0, 2.0], [1, 1]), _target([5.0, 6.0], [1, 1]))


def test_time_dependent_auc_perfect_and_random():
    rng = np.random.default_rng(11)
    time = rng.exponential(10.0, size=80)
    target = _target(time, np.ones(80))
    auc, mean_auc = time_dependent_auc(target, target, -time)
    assert mean_auc == pytest.approx(1.0)
    np.testing.assert_allclose(auc, 1.0)
    _, mean_const = time_dependent_auc(target, target, np.zeros(80))
    assert mean_const == pytest.approx(0.5)


def test_time_dependent_auc_nan_where_no_case():
    target = _target([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0, 0, 1, 1, 1, 0])
    auc, mean_auc = time_dependent_auc(target, target, np.arange(6.0)[::-1], times=[1.5, 3.5])
    assert np.isnan(auc[0])  # no event by t = 1.5
    assert auc[1] == pytest.approx(1.0)
    assert mean_auc == pytest.approx(1.0)


def test_bootstrap_ci_contains_point_estimate():
    target, risk = _cohort(150, seed=12)
    point = harrell_c(target.event, target.time, risk)

    def metric(idx):
        return harrell_c(target.event[idx], target.time[idx], risk[idx])

    lo, hi = bootstrap_ci(metric, n=150, n_boot=200, seed=0)
    assert lo < point < hi
    assert 0.02 < hi - lo < 0.3
    assert bootstrap_ci(metric, n=150, n_boot=50, seed=3) == bootstrap_ci(
        metric, n=150, n_boot=50, seed=3
    )


def test_bootstrap_ci_skips_and_raises():
    calls = {"n": 0}

    def sometimes(idx):
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise ValueError("no comparable pairs")
        return float(np.mean(idx))

    lo, hi = bootstrap_ci(sometimes, n=10, n_boot=100)
    assert lo <= 4.5 <= hi
    with pytest.raises(InputDataError, match="failed on 100 of 100"):
        bootstrap_ci(lambda idx: float("nan"), n=10, n_boot=100)


def test_evaluate_keys_and_values():
    train, _ = _cohort(200, seed=13)
    test, risk = _cohort(100, seed=14)
    bins = TimeBins.fit(train)
    surv = np.exp(-bins.bin_times[None, :] / (100.0 * np.exp(-risk[:, None])))
    out = evaluate(train, test, risk, surv, bins)
    assert list(out) == ["c_index", "uno_c", "ibs", "mean_auc", "risk_std"]
    assert out["c_index"] == pytest.approx(harrell_c(test.event, test.time, risk))
    assert out["uno_c"] == pytest.approx(uno_c(train, test, risk))
    assert 0.6 < out["c_index"] < 0.95 and 0.6 < out["mean_auc"] < 0.95
    assert 0.0 < out["ibs"] < 0.25
    assert out["risk_std"] == pytest.approx(np.std(risk))


def test_evaluate_constant_risk_and_no_curve(caplog):
    train, _ = _cohort(100, seed=15)
    test, _ = _cohort(40, seed=16)
    with caplog.at_level(logging.WARNING):
        out = evaluate(train, test, np.ones(40))
    assert out["c_index"] == 0.5 and out["uno_c"] == 0.5
    assert np.isnan(out["ibs"])
    assert out["risk_std"] == 0.0
    assert "constant risk" in caplog.text


def test_evaluate_undefined_metrics_are_nan_not_errors(caplog):
    train, _ = _cohort(100, seed=17)
    test = _target([10.0, 20.0, 30.0], [0, 0, 0])  # no events: nothing is comparable
    with caplog.at_level(logging.WARNING):
        out = evaluate(train, test, np.array([1.0, 2.0, 3.0]))
    assert np.isnan(out["c_index"]) and np.isnan(out["uno_c"]) and np.isnan(out["mean_auc"])
    assert "undefined" in caplog.text
