"""Penalised Cox with direction priors, honest stacking and KEMM's residual over its linear
part, through the engine on a simulated cohort whose reports state the facts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kemm.cohort.simulate import simulate_cohort
from kemm.cohort.target import SurvivalTarget
from kemm.engine.config import parse_config
from kemm.engine.runner import run_cv
from kemm.models.registry import register
from kemm.models.tabular import PenalizedCox
from kemm.survival import harrell_c


def _survival_data(n=400, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.array([0.8, -0.5, 0.3] + [0.0] * (p - 3))
    time = rng.exponential(np.exp(-X @ beta))
    censor = rng.exponential(2.0, n)
    return X, SurvivalTarget(event=time <= censor, time=np.minimum(time, censor)), beta


def test_penalized_cox_matches_scikit_survival_breslow():
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    X, y, _ = _survival_data()
    ours = PenalizedCox(alpha=0.01 / len(X)).fit(X, y)
    reference = CoxPHSurvivalAnalysis(alpha=0.01, ties="breslow").fit(
        (X - X.mean(0)) / X.std(0), y.to_structured()
    )
    np.testing.assert_allclose(list(ours.coef_.values()), reference.coef_, atol=2e-3)


def test_direction_prior_constrains_the_sign_and_cv_picks_a_penalty():
    X, y, beta = _survival_data()
    free = PenalizedCox(alpha=0.001).fit(X, y)
    assert list(free.coef_.values())[1] < -0.2  # the data say feature 1 is protective
    # a prior claiming feature 1 is harmful (+1) holds its coefficient at >= 0
    prior = PenalizedCox(alpha=0.001, direction_prior=True,
                         feature_directions=[1, 1, 0, 0, 0, 0]).fit(X, y)  # fmt: skip
    coef = list(prior.coef_.values())
    assert coef[1] >= -1e-9 and coef[0] > 0.3
    cv = PenalizedCox(alpha="cv").fit(X, y)
    assert cv.alpha_ in cv.alphas and len(cv.cv_scores_) == len(cv.alphas)
    curves = cv.predict_survival(X[:5], [0.1, 0.5, 1.0])
    assert curves.shape == (5, 3) and np.all(np.diff(curves, axis=1) <= 1e-12)


# -------------------------------------------------------------------------- engine


class Memoriser:
    """A planted base model that memorises its training patients (perfect risks on them) and
    guesses at random for anyone else."""

    def __init__(self, *, feature_names=None, seed: int = 0):
        self.seen: dict[bytes, float] = {}
        self.rng = np.random.default_rng(seed)

    def fit(self, X, target):
        order = np.argsort(np.argsort(-target.time + 1000 * target.event))
        self.seen = {row.tobytes(): float(r) for row, r in zip(X, order, strict=True)}
        return self

    def predict_risk(self, X):
        return np.array([self.seen.get(row.tobytes(), self.rng.normal() * len(self.seen))
                         for row in X])  # fmt: skip

    def predict_survival(self, X, times):
        return np.full((len(X), len(times)), 0.5)


@pytest.fixture
def memoriser_registered():
    """The memoriser as a registered tabular model, for this test only."""
    from kemm.models import registry

    register("test_memoriser", kind="tabular", modalities=("genomics",), requires_any_of=())(
        Memoriser
    )
    yield
    registry._REGISTRY.pop("test_memoriser", None)


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim_stack")
    simulate_cohort(root, n_patients=200, patches=(20, 40), feature_dim=8, show_progress=False,
                    extent_effect=1.0)  # fmt: skip
    return root


def _config(root: Path, models: list[dict], epochs: int = 3) -> dict:
    return {
        "name": "stack_test",
        "data": {"root": str(root), "cohort": "sim", "cancer": "kirc", "folds": [0, 1, 2],
                 "clinical": ["age", "t", "n", "stage", "grade", "margin", "lvi"],
                 "reports": {"refiner": "extractive"}, "pbk": True},
        "models": models,
        "train": {"epochs": epochs, "batch_size": 16, "lr": 1e-3},
    }  # fmt: skip


@pytest.mark.slow
def test_stack_does_not_trust_a_base_model_that_memorises(sim_root, tmp_path, memoriser_registered):
    models = [
        {"name": "clinical_cox", "label": "facts", "params": {"direction_prior": True}},
        {"name": "test_memoriser", "label": "memoriser"},
        {"name": "stack", "label": "stack", "params": {"base": ["facts", "memoriser"]}},
    ]
    out = tmp_path / "run"
    metrics = run_cv(parse_config(_config(sim_root, models)), out, show_progress=False)
    c = {
        name: metrics["models"][name]["c_index"]["mean"] for name in ("facts", "memoriser", "stack")
    }
    assert c["facts"] > 0.65 and abs(c["memoriser"] - 0.5) < 0.12
    assert c["stack"] >= c["facts"] - 0.02
    for fold in sorted((out / "folds" / "stack" / "seed0").iterdir()):
        weights = json.loads((fold / "result.json").read_text())["stack_weights"]
        assert abs(weights["memoriser"]) < 0.25 * abs(weights["facts"])
        # the contrast: combining the same bases on their in-sample training risks trusts the
        # memoriser most, which is what the inner K-fold prevents
        cached = out / "base_risks"
        assert (cached / "memoriser" / "seed0" / f"{fold.name}.json").exists()


def test_naive_in_sample_stacking_would_trust_the_memoriser():
    X, y, _ = _survival_data(seed=3)
    honest = PenalizedCox(alpha=0.01).fit(X[:, :3], y).predict_risk(X[:, :3])
    memorised = Memoriser().fit(X, y).predict_risk(X)
    naive = PenalizedCox(alpha=0.001).fit(np.column_stack([honest, memorised]), y)
    weights = list(naive.coef_.values())
    assert weights[1] > weights[0]
    assert harrell_c(y.event, y.time, memorised) > 0.95


@pytest.mark.slow
def test_kemm_residual_over_its_linear_part(sim_root, tmp_path):
    models = [
        {"name": "clinical_cox", "label": "facts", "params": {"direction_prior": True}},
        {"name": "coxnet", "label": "genomic", "modalities": ["genomics"]},
        {"name": "kemm", "label": "kemm", "params": {"dim": 32, "fusion_layers": 1},
         "residual_over": ["facts", "genomic"]},
    ]  # fmt: skip
    out = tmp_path / "run"
    metrics = run_cv(parse_config(_config(sim_root, models, epochs=2)), out, show_progress=False)
    kemm = metrics["models"]["kemm"]
    assert 0.0 < kemm["ibs"]["mean"] < 0.5
    for fold in sorted((out / "folds" / "kemm" / "seed0").iterdir()):
        result = json.loads((fold / "result.json").read_text())
        assert set(result["residual_weights"]) == {"linear part", "network"}
        assert result["residual_over"] == ["facts", "genomic"]
        assert 0.5 < result["linear_part_c_index"] <= 1.0
    # at least as good as its own linear part, up to fold noise
    linear = np.mean([json.loads((f / "result.json").read_text())["linear_part_c_index"]
                      for f in (out / "folds" / "kemm" / "seed0").iterdir()])  # fmt: skip
    assert kemm["c_index"]["mean"] >= linear - 0.03


def test_config_refuses_unknown_base_and_covariate_names(sim_root):
    from kemm.errors import ConfigError

    models = [{"name": "stack", "params": {"base": ["nope"]}}]
    with pytest.raises(ConfigError, match="not models of the run"):
        parse_config(_config(sim_root, models))
    models = [{"name": "clinical_cox", "clinical": ["age", "ldh"]}]
    with pytest.raises(ConfigError, match="ldh"):
        parse_config(_config(sim_root, models))
