"""Tests for kemm.survival.km."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.statistics import multivariate_logrank_test

from kemm.survival.km import kaplan_meier, logrank_p, risk_groups, risk_thresholds


def test_kaplan_meier_hand_computed():
    times, surv = kaplan_meier([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])
    np.testing.assert_allclose(times, [1, 2, 3, 4])
    # 4/5; then 4 at risk, 1 death -> 0.8 * 3/4; then 2 at risk, 1 death -> 0.6 / 2
    np.testing.assert_allclose(surv, [0.8, 0.6, 0.3, 0.3])


def test_logrank_matches_lifelines():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], 40)
    t = rng.exponential(np.array([10.0, 15.0, 30.0])[groups])
    c = rng.exponential(40.0, size=120)
    time, event = np.minimum(t, c), t <= c
    p = logrank_p(time, event, groups)
    ref = multivariate_logrank_test(time, groups, event).p_value
    assert p == pytest.approx(ref, rel=1e-6)
    assert p < 0.05


def test_logrank_undefined_is_nan():
    assert np.isnan(logrank_p([1, 2, 3], [1, 0, 1], [0, 0, 0]))
    assert np.isnan(logrank_p([1, 2, 3], [0, 0, 0], [0, 1, 1]))


def test_risk_groups_median_split_in_sample():
    risk = np.array([0.1, 0.9, 0.5, 0.3, 0.7])
    # median 0.5: values > 0.5 are high risk, ties go low
    np.testing.assert_array_equal(risk_groups(risk), [0, 1, 0, 0, 1])


def test_risk_groups_with_training_thresholds():
    train_risk = np.arange(10.0)  # terciles at 3 and 6
    thr = risk_thresholds(train_risk, n_groups=3)
    np.testing.assert_allclose(thr, [3.0, 6.0])
    test_risk = np.array([-5.0, 3.0, 3.5, 6.0, 100.0])
    np.testing.assert_array_equal(risk_groups(test_risk, thresholds=thr), [0, 0, 1, 1, 2])
    with pytest.raises(ValueError):
        risk_thresholds(train_risk, n_groups=1)
