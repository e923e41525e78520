"""Out-of-fold base risks for honest stacking and for residual models.

For one outer fold, a base model's risks are computed twice:

* training patients: an inner stratified K-fold on the training fold — each patient's risk
  comes from a copy of the base model fitted (with its own preprocessing) without that patient;
* evaluation patients: the base model refit on the whole training fold.

Results are cached per (base, seed, fold) under ``folds/_base/`` of the run directory, so the
stack row and KEMM's residual share them and a resumed run does not recompute them.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kemm.cohort.prepared import PreparedCohort
from kemm.engine.config import ModelConfig
from kemm.engine.data import FoldPreprocessor
from kemm.io import atomic_path
from kemm.models.registry import create, get_entry

INNER_FOLDS = 5


@dataclass
class BaseRisks:
    label: str
    train: np.ndarray  # out-of-fold risks of the training patients
    test: np.ndarray  # risks of the evaluation patients (base refit on the whole training fold)


def _fit_predict(
    spec: ModelConfig, data: PreparedCohort, modalities: set[str], fit_ids: list[str],
    predict_ids: list[str], top_variance: int | None, directions: bool,
    alpha: float | None = None,
) -> tuple[np.ndarray, float | None]:  # fmt: skip
    """Risks of ``predict_ids`` from the base fitted on ``fit_ids`` (with its own
    preprocessing), and the penalty it used; ``alpha`` fixes that penalty."""
    pre = FoldPreprocessor.fit(data, fit_ids, top_variance).restrict(spec.clinical)
    x_fit, names = pre.tabular_matrix(data, fit_ids, modalities)
    x_new, _ = pre.tabular_matrix(data, predict_ids, modalities)
    kwargs = tabular_kwargs(spec, data, names, directions)
    if alpha is not None:
        kwargs["alpha"] = alpha
    model = create(spec.name, **kwargs)
    model.fit(x_fit, data.cohort.subset(fit_ids).target)
    return np.asarray(model.predict_risk(x_new), dtype=float), getattr(model, "alpha_", None)


def tabular_kwargs(spec: ModelConfig, data: PreparedCohort, names: list[str], directions: bool):
    """Constructor arguments of a tabular model: its params, feature names and, where it takes
    them, the directions of effect of its features (from the clinical block)."""
    kwargs = dict(spec.params)
    kwargs["feature_names"] = names
    accepted = get_entry(spec.name).hparam_names() or []
    if directions and "feature_directions" in accepted:
        kwargs["feature_directions"] = [data.clinical_directions.get(n, 0) for n in names]
    return kwargs


def base_risks(
    spec: ModelConfig, modalities: set[str], data: PreparedCohort, train_ids: list[str],
    test_ids: list[str], *, seed: int, cache: Path | None, top_variance: int | None = None,
) -> BaseRisks:  # fmt: skip
    """Out-of-fold training risks and refit evaluation risks of one tabular base model."""
    if cache is None:
        return _compute_base_risks(
            spec, modalities, data, train_ids, test_ids, seed, None, top_variance
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    # one process computes a base per fold; others (parallel workers) wait for its result
    with open(cache.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cache.exists():
            saved = json.loads(cache.read_text())
            if saved["train_ids"] == train_ids and saved["test_ids"] == test_ids:
                return BaseRisks(
                    spec.display, np.asarray(saved["train"]), np.asarray(saved["test"])
                )
        return _compute_base_risks(
            spec, modalities, data, train_ids, test_ids, seed, cache, top_variance
        )


def _compute_base_risks(
    spec: ModelConfig, modalities: set[str], data: PreparedCohort, train_ids: list[str],
    test_ids: list[str], seed: int, cache: Path | None, top_variance: int | None,
) -> BaseRisks:  # fmt: skip
    from sklearn.model_selection import StratifiedKFold

    event = data.cohort.subset(train_ids).target.event
    # the refit on the whole training fold chooses the base's penalty by its own inner CV; the
    # inner K-fold copies reuse that one number (a K-fold of K-folds would cost K times more
    # for one scalar), while their coefficients never see the patients they score
    test, alpha = _fit_predict(spec, data, modalities, train_ids, test_ids, top_variance, True)
    train = np.zeros(len(train_ids))
    split = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed)
    for fit, held in split.split(np.zeros(len(train_ids)), event):
        train[held], _ = _fit_predict(
            spec, data, modalities, [train_ids[i] for i in fit], [train_ids[i] for i in held],
            top_variance, True, alpha,
        )  # fmt: skip
    if cache is not None:
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps({"train_ids": train_ids, "test_ids": test_ids,
                                       "train": train.tolist(), "test": test.tolist()}))  # fmt: skip
    return BaseRisks(spec.display, train, test)
