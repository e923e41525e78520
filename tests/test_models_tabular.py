"""Tabular Cox models: fit / predict on synthetic data with a planted signal."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from kemm.cohort.target import SurvivalTarget
from kemm.models import ClinicalCox, CoxNet, create


def planted(n: int = 300, p: int = 20, seed: int = 0):
    """Exponential survival times driven by the first three features; random censoring."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    risk = 1.2 * X[:, 0] - 0.8 * X[:, 1] + 0.6 * X[:, 2]
    t_event = rng.exponential(np.exp(-risk))
    t_cens = rng.exponential(2.0, size=n)
    event = t_event <= t_cens
    return X, SurvivalTarget(event, np.minimum(t_event, t_cens) + 1e-3)


def c_index(target: SurvivalTarget, risk: np.ndarray) -> float:
    return concordance_index_censored(target.event, target.time, risk)[0]


@pytest.mark.parametrize("factory", [lambda: CoxNet(), lambda: ClinicalCox(alpha=0.1)])
def test_planted_signal_is_recovered_on_held_out_patients(factory):
    X, y = planted()
    model = factory().fit(X[:200], y[:200])
    risk = model.predict_risk(X[200:])
    assert risk.shape == (100,)
    assert c_index(y[200:], risk) > 0.7
    times = np.array([0.0, 0.1, 0.5, 1.0, 100.0])
    surv = model.predict_survival(X[200:], times)
    assert surv.shape == (100, 5)
    assert np.all(surv[:, 0] == 1.0) and np.all((surv >= 0) & (surv <= 1))
    assert np.all(np.diff(surv, axis=1) <= 1e-12)  # non-increasing in time
    # higher risk -> lower survival at a fixed time
    order = np.argsort(risk)
    assert surv[order[-1], 2] <= surv[order[0], 2]


def test_coxnet_selects_the_planted_features_by_inner_cv():
    X, y = planted(seed=1)
    names = [f"g{i}" for i in range(X.shape[1])]
    model = CoxNet(feature_names=names).fit(X, y)
    assert model.alpha_ > 0 and model.cv_scores_ is not None
    coef = model.coef_
    top = sorted(coef, key=lambda k: -abs(coef[k]))[:3]
    assert set(top) == {"g0", "g1", "g2"}
    assert set(model.selected_features()) >= {"g0", "g1", "g2"}


def test_fixed_alpha_and_registry():
    X, y = planted(n=120, p=5)
    model = create("coxnet", alpha=0.05)
    assert isinstance(model, CoxNet)
    model.fit(X, y)
    assert model.alpha_ == 0.05
    assert isinstance(create("clinical_cox"), ClinicalCox)


def test_clear_errors():
    X, y = planted(n=60, p=4)
    with pytest.raises(ValueError, match="3 feature names"):
        CoxNet(feature_names=["a", "b", "c"]).fit(X, y)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="impute"):
        ClinicalCox().fit(bad, y)
    with pytest.raises(ValueError, match="no events"):
        ClinicalCox().fit(X, SurvivalTarget(np.zeros(60, bool), y.time))
    with pytest.raises(RuntimeError, match="not fitted"):
        ClinicalCox().predict_risk(X)
    model = ClinicalCox().fit(X, y)
    with pytest.raises(ValueError, match="fitted on 4"):
        model.predict_risk(X[:, :3])


@pytest.mark.parametrize("cls", [CoxNet, ClinicalCox])
def test_state_round_trip_predicts_like_the_fitted_model(cls):
    import json

    X, y = planted(n=150, p=6, seed=2)
    model = cls(feature_names=[f"f{i}" for i in range(6)]).fit(X, y)
    restored = cls.from_state(json.loads(json.dumps(model.to_state())))
    times = np.array([0.0, 0.2, 0.7, 2.0, 50.0])
    assert np.allclose(restored.predict_survival(X, times), model.predict_survival(X, times))
    diff = restored.predict_risk(X) - model.predict_risk(X)
    assert np.allclose(diff, diff[0])  # same linear predictor up to a constant


@pytest.mark.parametrize("cls", [CoxNet, ClinicalCox])
def test_tabular_models_pass_scikit_learn_estimator_checks(cls):
    """The estimator checks that apply to a survival model (those that do not need a
    classification or regression ``y``)."""
    from sklearn.utils import estimator_checks as checks

    name = cls.__name__
    for check in (
        checks.check_no_attributes_set_in_init,
        checks.check_parameters_default_constructible,
        checks.check_get_params_invariance,
        checks.check_set_params,
        checks.check_estimator_cloneable,
        checks.check_estimator_repr,
    ):
        check(name, cls())


def test_tabular_models_work_in_pipeline_and_grid_search():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sksurv.util import Surv

    X, target = planted(n=200, p=8)
    y = Surv.from_arrays(event=target.event, time=target.time)
    pipeline = make_pipeline(StandardScaler(), ClinicalCox(alpha=1.0))
    search = GridSearchCV(pipeline, {"penalizedcox__alpha": [0.01, 100.0]}, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"penalizedcox__alpha": 0.01}  # the planted signal is strong
    assert 0.6 < search.score(X, y) <= 1.0
    coxnet = GridSearchCV(CoxNet(alpha=0.05), {"l1_ratio": [0.2, 0.9]}, cv=3).fit(X, y)
    assert set(coxnet.cv_results_["mean_test_score"]) and coxnet.best_estimator_.alpha_ == 0.05
    # the structured array and kemm's SurvivalTarget give the same fit
    a = clone(ClinicalCox(alpha=0.1)).fit(X, y).predict(X)
    b = ClinicalCox(alpha=0.1).fit(X, target).predict_risk(X)
    np.testing.assert_allclose(a, b)
    assert ClinicalCox(alpha=0.1).fit(X, y).score(X, y) == pytest.approx(c_index(target, a))
