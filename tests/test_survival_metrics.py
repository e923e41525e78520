"""Tests for kemm.survival.metrics."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from lifelines.utils import concordance_index
from sksurv.metrics import brier_score, concordance_index_ipcw, integrated_brier_score
from sksurv.nonparametric import CensoringDistributionEstimator

from kemm.cohort.target import SurvivalTarget
from kemm.errors import InputDataError
from kemm.survival.binning import TimeBins
from kemm.survival.metrics import (
    IPCW_G_FLOOR,
    IPCW_RULE,
    _restrict_test,
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
    assert list(out) == [
        "c_index",
        "uno_c",
        "ibs",
        "mean_auc",
        "risk_std",
        "ipcw_horizon",
        "ipcw_g_floor",
        "ipcw_rule",
    ]
    assert out["ipcw_horizon"] == ipcw_horizon(train)
    assert out["ipcw_g_floor"] == IPCW_G_FLOOR == 0.1
    assert out["ipcw_rule"] == IPCW_RULE
    assert "G(t) >= 0.1" in IPCW_RULE and "<= 10" in IPCW_RULE
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


# --- IPCW horizon: the training censoring survival G must stay >= IPCW_G_FLOOR --------------------


def _old_ibs(train: SurvivalTarget, test: SurvivalTarget, surv_at) -> tuple[float, np.ndarray]:
    """The former computation, straight through sksurv: grid up to the last training time."""
    h = float(train.time.max())
    adj = _target(np.minimum(test.time, h), test.event & (test.time < h))
    lo_lim, hi_lim = float(adj.time.min()), min(h, float(adj.time.max()))
    lo = max(float(np.percentile(test.time, 10)), lo_lim)
    hi = min(float(np.percentile(test.time, 90)), hi_lim)
    grid = np.unique(np.linspace(lo, hi, 50))
    grid = grid[(grid >= lo_lim) & (grid < hi_lim)]
    ibs = integrated_brier_score(train.to_structured(), adj.to_structured(), surv_at(grid), grid)
    return float(ibs), grid


def _shifted_fold(seed: int = 2):
    """A site-held-out fold whose test follow-up far outlasts the training follow-up.

    Training (200): all but 4 patients censored uniformly on [2, 18], 4 followed to 24-25, so
    the training censoring survival G is near zero before t = 18 and its last steps rest on a
    handful of patients. Test (150): the same event process, administratively censored at 100.
    Returns ``(train, test, true survival function of the test patients, test risk)``.
    """
    rng = np.random.default_rng(seed)
    n, m = 200, 150
    t = rng.exponential(60.0 * np.exp(-rng.normal(size=n)))
    c = np.where(np.arange(n) < n - 4, rng.uniform(2.0, 18.0, size=n), rng.uniform(24.0, 25.0, n))
    train = _target(np.minimum(t, c), t <= c)
    risk = rng.normal(size=m)
    tt = rng.exponential(60.0 * np.exp(-risk))
    test = _target(np.minimum(tt, 100.0), tt <= 100.0)

    def true_surv(times):
        return np.exp(-np.asarray(times)[None, :] / (60.0 * np.exp(-risk[:, None])))

    return train, test, true_surv, risk


def test_shifted_fold_old_ibs_explodes_fixed_ibs_is_bounded():
    train, test, true_surv, _ = _shifted_fold()
    assert (~train.event).mean() > 0.7 and train.time.max() < 25.0 and test.time.max() > 90.0
    cens = CensoringDistributionEstimator().fit(train.to_structured())
    # before: the true survival function scores an "IBS" above 1, because the grid runs up to the
    # last training time, where G ~ 0.01 and IPCW weights reach ~100
    old, old_grid = _old_ibs(train, test, true_surv)
    assert old > 1.0
    assert 1.0 / cens.predict_proba(old_grid).min() > 50.0
    # g_floor = 0 is exactly the former rule
    assert integrated_brier(train, test, true_surv, g_floor=0.0) == pytest.approx(old, rel=1e-12)

    # after: the grid stops before the first time G drops below the floor
    h = ipcw_horizon(train)
    assert h < 20.0 < ipcw_horizon(train, g_floor=0.0)
    assert cens.predict_proba(np.array([h]))[0] < IPCW_G_FLOOR
    grid = default_eval_times(train, test)
    assert grid.max() < h
    assert cens.predict_proba(grid).min() >= IPCW_G_FLOOR
    new = integrated_brier(train, test, true_surv)
    assert 0.0 <= new <= 1.0
    assert new < 0.4
    assert new == pytest.approx(integrated_brier(train, test, true_surv(grid), grid), rel=1e-12)


def test_shifted_fold_weights_bounded_by_floor():
    train, test, true_surv, _ = _shifted_fold()
    cens = CensoringDistributionEstimator().fit(train.to_structured())
    grid = default_eval_times(train, test)
    # every weight sksurv applies: 1 / G(t) for controls at the grid times, 1 / G(t_i) for the
    # test events kept after the restriction (those past the horizon are censored there)
    adj = _restrict_test(train, test)
    h = ipcw_horizon(train)
    assert adj.time.max() <= h and not adj.event[adj.time >= h].any()
    case_w = cens.predict_ipcw(adj.to_structured())
    assert case_w.max() <= 1.0 / IPCW_G_FLOOR
    assert (1.0 / cens.predict_proba(grid)).max() <= 1.0 / IPCW_G_FLOOR
    # the former restriction kept test events whose weights far exceed the bound
    old_adj = _restrict_test(train, test, g_floor=0.0)
    assert cens.predict_ipcw(old_adj.to_structured()).max() > 50.0

    # direct check over predictors: each Brier term is at most its weight, so no predictor in
    # [0, 1] can score above 1 / floor; plausible predictors (true curves, calibrated marginal,
    # constant 0.5, over/under-confident curves) all stay in [0, 1]
    s_true = true_surv(grid)
    _, worst_0 = brier_score(
        train.to_structured(), adj.to_structured(), np.zeros_like(s_true), grid
    )
    _, worst_1 = brier_score(train.to_structured(), adj.to_structured(), np.ones_like(s_true), grid)
    worst = np.trapezoid(worst_0 + worst_1, grid) / (grid[-1] - grid[0])
    assert worst <= 1.0 / IPCW_G_FLOOR
    marginal = np.tile(np.exp(-grid / 60.0), (len(test), 1))
    for pred in (s_true, marginal, np.full_like(s_true, 0.5), s_true**3, np.sqrt(s_true)):
        assert 0.0 <= integrated_brier(train, test, pred, grid) <= 1.0


def test_shifted_fold_uno_auc_and_evaluate_use_horizon():
    train, test, true_surv, risk = _shifted_fold()
    h = ipcw_horizon(train)
    c = uno_c(train, test, risk)
    assert c == pytest.approx(
        concordance_index_ipcw(train.to_structured(), test.to_structured(), risk, tau=h)[0]
    )
    assert 0.5 < c < 1.0
    assert uno_c(train, test, risk, tau=100.0) == c  # tau is clipped to the horizon
    auc, mean_auc = time_dependent_auc(train, test, risk)
    assert 0.5 < mean_auc < 1.0
    assert len(auc) == len(default_eval_times(train, test))

    bins = TimeBins.fit(train)
    out = evaluate(train, test, risk, true_surv(bins.bin_times), bins)
    assert out["ipcw_horizon"] == h and out["ipcw_g_floor"] == IPCW_G_FLOOR
    assert out["ipcw_rule"] == IPCW_RULE
    assert 0.0 <= out["ibs"] <= 1.0
    loose = evaluate(train, test, risk, true_surv(bins.bin_times), bins, g_floor=0.02)
    assert loose["ipcw_horizon"] > h and "G(t) >= 0.02" in loose["ipcw_rule"]


def test_explicit_times_past_horizon_are_dropped(caplog):
    train, test, true_surv, _ = _shifted_fold()
    h = ipcw_horizon(train)
    times = np.array([5.0, 10.0, h - 0.5, h, h + 2.0, 24.0])
    with caplog.at_level(logging.WARNING):
        ibs = integrated_brier(train, test, true_surv(times), times)
    assert "dropped 3 evaluation time(s)" in caplog.text
    kept = times[:3]
    assert ibs == pytest.approx(integrated_brier(train, test, true_surv(kept), kept), rel=1e-12)
    auc, _ = time_dependent_auc(train, test, -np.arange(len(test), dtype=float), times)
    assert np.isnan(auc[3:]).all()


def test_unshifted_fold_unchanged():
    # an ordinary fold: G stays far above the floor on the evaluation grid, so the grid, the IBS
    # and the mean AUC equal the former computation exactly, and so does Uno's C when no test
    # time falls between the new and the former horizon
    train, _ = _cohort(200, seed=13)
    test, risk = _cohort(100, seed=14)
    cens = CensoringDistributionEstimator().fit(train.to_structured())

    def model(t):
        return np.exp(-np.asarray(t)[None, :] / (100.0 * np.exp(-risk[:, None])))

    old, old_grid = _old_ibs(train, test, model)
    assert cens.predict_proba(old_grid).min() > 2 * IPCW_G_FLOOR
    np.testing.assert_array_equal(default_eval_times(train, test), old_grid)
    assert integrated_brier(train, test, model) == pytest.approx(old, rel=1e-12)
    assert time_dependent_auc(train, test, risk)[1] == pytest.approx(
        time_dependent_auc(train, test, risk, g_floor=0.0)[1], rel=1e-12
    )
    h, h_old = ipcw_horizon(train), ipcw_horizon(train, g_floor=0.0)
    assert h_old == train.time.max() and h <= h_old
    assert not ((test.time >= h) & (test.time < h_old)).any()
    old_uno = concordance_index_ipcw(train.to_structured(), test.to_structured(), risk, tau=h_old)
    assert uno_c(train, test, risk) == pytest.approx(old_uno[0], rel=1e-12)


def test_horizon_without_censoring_and_floor_validation():
    target = _target([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1])  # no censoring: G = 1 throughout
    assert ipcw_horizon(target) == 4.0
    with pytest.raises(ValueError, match="g_floor"):
        ipcw_horizon(target, g_floor=1.0)
    with pytest.raises(ValueError, match="g_floor"):
        evaluate(target, target, np.arange(4.0), g_floor=-0.1)
