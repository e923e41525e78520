"""Tests for kemm.survival.binning."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kemm.cohort.target import SurvivalTarget
from kemm.errors import ConfigError, InputDataError
from kemm.survival.binning import TimeBins


def _target(time, event) -> SurvivalTarget:
    return SurvivalTarget(event=np.asarray(event, dtype=bool), time=np.asarray(time, dtype=float))


def test_fit_uses_quantiles_of_uncensored_times_only():
    # events at 1..8; censored patients (even with extreme times) must not move the edges
    time = [1, 2, 3, 4, 5, 6, 7, 8, 0.5, 100, 200]
    event = [1] * 8 + [0, 0, 0]
    bins = TimeBins.fit(_target(time, event), n_bins=4)
    np.testing.assert_allclose(bins.edges, [0.0, 2.75, 4.5, 6.25, np.inf])
    assert bins.n_bins == 4
    assert bins.max_time == 200.0
    assert bins.source == "train"


def test_transform_left_closed_and_covers_all_times():
    bins = TimeBins(edges=np.array([0.0, 2.75, 4.5, 6.25, np.inf]))
    got = bins.transform(np.array([-1.0, 0.0, 2.7, 2.75, 4.5, 6.0, 6.25, 1e9]))
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 2, 2, 3, 3])
    assert got.dtype == np.int64
    assert int(bins.transform(3.0)) == 1


def test_tied_event_times_are_deduplicated():
    bins = TimeBins.fit(_target([1, 1, 1, 1, 1, 1, 2, 3], [1] * 8), n_bins=4)
    # quantiles 0.25, 0.5, 0.75 -> 1, 1, 1.25 -> dedupe
    np.testing.assert_allclose(bins.edges, [0.0, 1.0, 1.25, np.inf])
    assert bins.n_bins == 3


def test_all_events_tied_keeps_two_bins():
    bins = TimeBins.fit(_target([5, 5, 5, 9], [1, 1, 1, 0]), n_bins=4)
    np.testing.assert_allclose(bins.edges, [0.0, 5.0, np.inf])
    assert bins.n_bins == 2


def test_no_events_raises_clear_error():
    with pytest.raises(InputDataError, match="no.*observed event"):
        TimeBins.fit(_target([1, 2, 3], [0, 0, 0]))


def test_invalid_n_bins_and_edges():
    with pytest.raises(ConfigError):
        TimeBins.fit(_target([1, 2, 3], [1, 1, 1]), n_bins=1)
    with pytest.raises(ConfigError):
        TimeBins(edges=np.array([0.0, 2.0, 1.0, np.inf]))
    with pytest.raises(ConfigError):
        TimeBins(edges=np.array([1.0, 2.0, np.inf]))


def test_dict_roundtrip_through_json():
    bins = TimeBins.fit(_target([1, 2, 3, 4, 5, 10], [1, 1, 1, 1, 1, 0]))
    restored = TimeBins.from_dict(json.loads(json.dumps(bins.to_dict())))
    np.testing.assert_array_equal(restored.edges, bins.edges)
    assert restored.max_time == bins.max_time == 10.0
    assert restored.source == "train"


def test_bin_times_and_midpoints():
    bins = TimeBins(edges=np.array([0.0, 2.0, 4.0, np.inf]), max_time=10.0)
    np.testing.assert_allclose(bins.bin_times, [2.0, 4.0, 10.0])
    np.testing.assert_allclose(bins.midpoints, [1.0, 3.0, 7.0])
    manual = TimeBins(edges=np.array([0.0, 2.0, 4.0, np.inf]))
    np.testing.assert_allclose(manual.bin_times, [2.0, 4.0, 4.0])


def test_fit_on_train_maps_unseen_test_times():
    train = _target([1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 1, 1])
    bins = TimeBins.fit(train)
    np.testing.assert_array_equal(bins.transform(np.array([0.1, 50.0])), [0, bins.n_bins - 1])


def test_fit_legacy_matches_pandas_qcut_cut_semantics():
    rng = np.random.default_rng(3)
    time = np.round(rng.exponential(30.0, size=300), 1) + 0.1
    event = rng.random(300) < 0.4
    bins = TimeBins.fit_legacy(_target(time, event), n_bins=4)
    assert bins.source == "legacy_whole_cohort"
    # legacy recipe: qcut the uncensored times, widen outer edges to the cohort range,
    # then assign every patient with left-closed intervals
    _, q = pd.qcut(pd.Series(time[event]), q=4, retbins=True, labels=False)
    q[0] = time.min() - 1e-6
    q[-1] = time.max() + 1e-6
    expected = pd.cut(pd.Series(time), bins=q, labels=False, right=False, include_lowest=True)
    np.testing.assert_array_equal(bins.transform(time), expected.to_numpy())
