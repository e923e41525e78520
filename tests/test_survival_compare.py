"""Paired comparisons of two models on the same folds (kemm.survival.compare)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kemm.errors import InputDataError
from kemm.survival import harrell_c
from kemm.survival.compare import compare_predictions, corrected_t_test, pool


def _predictions(seed: int = 0, n: int = 60, folds: int = 5, strength: float = 1.0) -> pd.DataFrame:
    """Two models on ``folds`` folds of ``n`` patients each: ``good`` sees the true log-hazard,
    ``noisy`` a noisier copy; each fold's risks on their own scale."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(folds):
        eta = rng.standard_normal(n)
        time = rng.exponential(np.exp(-strength * eta)) * 12
        time = np.round(time, 1)  # ties in time, as in real follow-up
        event = rng.random(n) < 0.6
        ids = [f"P{k}-{i}" for i in range(n)]
        good = eta + 0.5 * rng.standard_normal(n)
        noisy = eta + 2.0 * rng.standard_normal(n)
        for model, risk in (("good", good * (k + 1) + 10 * k), ("noisy", np.round(noisy, 1))):
            rows.append(pd.DataFrame({"case_id": ids, "seed": 0, "fold": f"fold{k}",
                                      "model": model, "time": time, "event": event.astype(int),
                                      "risk": risk}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_corrected_t_test_matches_baycomp_correlated_t_test():
    """The frequentist reading of the correlated Bayesian t-test (Corani & Benavoli 2015, the
    Nadeau-Bengio correction): same variance, the same Student t, so the same interval and p."""
    import baycomp  # a dev dependency: the published implementation we check against

    a = np.array([0.71, 0.66, 0.74, 0.69, 0.70])
    b = np.array([0.69, 0.65, 0.70, 0.70, 0.66])
    mean, ci, p, variance = corrected_t_test(a - b, test_train_ratio=1 / 4)
    posterior = baycomp.CorrelatedTTest(b, a, rope=0)  # baycomp's difference is x - y reversed
    assert mean == pytest.approx(posterior.mean)
    assert variance == pytest.approx(posterior.var)
    left, right = posterior.probs()
    assert p == pytest.approx(2 * min(left, right))
    half = stats.t.ppf(0.975, 4) * np.sqrt(posterior.var)
    assert ci == pytest.approx((posterior.mean - half, posterior.mean + half))


def test_corrected_variance_is_wider_than_the_naive_one():
    deltas = np.array([0.02, 0.01, 0.03, -0.01, 0.02])
    _, ci, p, _ = corrected_t_test(deltas, 0.25)
    naive = stats.ttest_1samp(deltas, 0.0)
    assert p > naive.pvalue
    assert ci[1] - ci[0] > 2 * stats.t.ppf(0.975, 4) * deltas.std(ddof=1) / np.sqrt(5)
    with pytest.raises(ValueError, match="at least 2 folds"):
        corrected_t_test(np.array([0.1]), 0.25)


def test_fold_deltas_are_harrells_c_per_fold():
    frame = _predictions()
    result = compare_predictions(frame, "good", "noisy", n_boot=0)
    for k, delta in enumerate(result.deltas):
        fold = frame[frame["fold"] == f"fold{k}"]
        c = {m: harrell_c(g["event"], g["time"], g["risk"]) for m, g in fold.groupby("model")}
        assert delta == pytest.approx(c["good"] - c["noisy"], abs=1e-12)
    assert result.mean > 0.05 and result.p < 0.05 and result.ci[0] > 0


def test_bootstrap_is_stratified_by_fold():
    """Each fold's risks are on their own scale: shifting and scaling one model's risks per fold
    changes nothing, which a bootstrap pooling folds into one C would not survive."""
    frame = _predictions()
    result = compare_predictions(frame, "good", "noisy", n_boot=300, seed=1)
    assert result.bootstrap_ci[0] > 0 and result.bootstrap_p < 0.05
    assert result.bootstrap_ci[0] < result.mean < result.bootstrap_ci[1]
    again = compare_predictions(frame, "good", "noisy", n_boot=300, seed=1)
    assert again.bootstrap_ci == result.bootstrap_ci  # seeded


def test_a_model_against_itself_is_no_difference():
    frame = _predictions()
    same = frame[frame["model"] == "good"].assign(model="copy")
    result = compare_predictions(pd.concat([frame, same]), "good", "copy", n_boot=100)
    assert result.mean == 0 and result.p == 1.0 and result.bootstrap_ci == (0.0, 0.0)


def test_pool_weighs_each_cohort_the_same():
    a = compare_predictions(_predictions(0), "good", "noisy", scope="A", n_boot=200)
    b = compare_predictions(_predictions(1, strength=0.2), "good", "noisy", scope="B", n_boot=200)
    pooled = pool([a, b])
    assert pooled.mean == pytest.approx((a.mean + b.mean) / 2)
    assert pooled.variance == pytest.approx((a.variance + b.variance) / 4)
    assert len(pooled.deltas) == 10 and pooled.scope == "pooled (2 cohorts)"
    assert 4 <= pooled.df <= 8
    twice = pool([a, a])
    assert twice.variance == pytest.approx(a.variance / 2) and twice.p < a.p


def test_models_on_other_folds_or_patients_are_refused():
    frame = _predictions()
    with pytest.raises(InputDataError, match="no predictions of model 'absent'"):
        compare_predictions(frame, "good", "absent")
    fewer = frame[~((frame["model"] == "noisy") & (frame["fold"] == "fold4"))]
    with pytest.raises(InputDataError, match="not scored on the same folds"):
        compare_predictions(fewer, "good", "noisy")
    other = frame.copy()
    other.loc[(other["model"] == "noisy") & (other["fold"] == "fold0"), "case_id"] += "x"
    with pytest.raises(InputDataError, match="different patients in seed 0, fold fold0"):
        compare_predictions(other, "good", "noisy")


def test_patients_one_model_left_out_are_unpaired():
    """A model needing a modality scores fewer patients: the pair is read on the common ones."""
    frame = _predictions()
    fewer = frame[~((frame["model"] == "noisy") & frame["case_id"].str.endswith("-0"))]
    result = compare_predictions(fewer, "good", "noisy", n_boot=0)
    assert result.unpaired == 5 and result.to_dict()["unpaired"] == 5
    common = frame[~frame["case_id"].str.endswith("-0")]
    assert result.mean == pytest.approx(compare_predictions(common, "good", "noisy", n_boot=0).mean)
