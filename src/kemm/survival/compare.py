"""Paired comparison of two models scored on the same cross-validation folds.

Two models evaluated on the same folds are compared fold by fold: the difference of their
Harrell C on each evaluation fold, ``d_j = C_a,j - C_b,j``. Folds share training patients, so
the ``d_j`` are correlated and the plain t-test over folds is too confident. Two instruments:

* the **corrected resampled t-test** (Nadeau & Bengio, 2003): ``t = mean(d) / sqrt((1/J +
  n_test/n_train) s^2)`` with ``J - 1`` degrees of freedom, ``s^2`` the sample variance of the
  ``d_j``; the 95 % interval is ``mean(d) +- t_{0.975, J-1} sqrt((1/J + n_test/n_train) s^2)``.
  It equals the frequentist reading of the correlated Bayesian t-test of Corani & Benavoli
  (2015), ``baycomp.CorrelatedTTest`` with ``rho = n_test / n``, which the tests use as the
  reference;
* a **patient bootstrap** of the mean ΔC over folds on the out-of-fold risks, stratified by fold
  (patients are resampled within their fold, and each fold's C is computed on its own risks:
  fold models put their risks on different scales, so folds are never pooled into one C).

Several cohorts pool by cohort (:func:`pool`): the mean of the cohort means, its variance the
mean of the cohorts' corrected variances over ``K^2``, Welch–Satterthwaite degrees of freedom;
the bootstrap replicates are averaged the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "PairedComparison",
    "compare_predictions",
    "corrected_t_test",
    "format_comparisons",
    "pool",
]


@dataclass
class PairedComparison:
    """Model ``a`` against model ``b``: ΔC = C(a) - C(b), positive when ``a`` ranks better."""

    a: str
    b: str
    scope: str  # a cohort, or "pooled (K cohorts)"
    deltas: np.ndarray  # per-fold ΔC
    mean: float
    ci: tuple[float, float]  # corrected resampled t-test, 95 %
    p: float  # two-sided, corrected resampled t-test
    variance: float  # the corrected variance of the mean
    df: float
    bootstrap_ci: tuple[float, float] = (float("nan"), float("nan"))
    bootstrap_p: float = float("nan")  # two-sided: 2 * share of replicates on the other side
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    unpaired: int = 0  # predictions left out: patients only one of the models scored

    def to_dict(self) -> dict:
        return {
            "a": self.a, "b": self.b, "scope": self.scope, "folds": len(self.deltas),
            "fold_deltas": [float(d) for d in self.deltas], "delta_c": self.mean,
            "ci95": list(self.ci), "p": self.p, "df": self.df,
            "bootstrap_ci95": list(self.bootstrap_ci), "bootstrap_p": self.bootstrap_p,
            "unpaired": self.unpaired, "variance": self.variance,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, c: dict) -> PairedComparison:
        """A comparison read back from :meth:`to_dict` (``metrics.json``, ``benchmark.json``);
        the bootstrap replicates are not kept."""
        return cls(c["a"], c["b"], c["scope"], np.array(c["fold_deltas"]), c["delta_c"],
                   tuple(c["ci95"]), c["p"], c.get("variance", float("nan")), c["df"],
                   tuple(c["bootstrap_ci95"]), c["bootstrap_p"],
                   unpaired=c.get("unpaired", 0))  # fmt: skip


def corrected_t_test(
    deltas: np.ndarray, test_train_ratio: float, level: float = 0.95
) -> tuple[float, tuple[float, float], float, float]:
    """Mean, ``level`` interval, two-sided p and corrected variance of the mean of per-fold
    differences ``deltas`` (Nadeau & Bengio's corrected resampled t-test; ``test_train_ratio``
    is ``n_test / n_train`` of a fold, 1/4 for 5-fold CV)."""
    deltas = np.asarray(deltas, dtype=float)
    j = len(deltas)
    if j < 2:
        raise ValueError(f"a paired comparison needs at least 2 folds, got {j}")
    mean = float(np.mean(deltas))
    variance = (1.0 / j + test_train_ratio) * float(np.var(deltas, ddof=1))
    return mean, *_t_summary(mean, variance, j - 1, level), variance


def _t_summary(mean: float, variance: float, df: float, level: float):
    if variance <= 0:
        p = 1.0 if mean == 0 else 0.0
        return (mean, mean), p
    se = np.sqrt(variance)
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return (mean - half, mean + half), p


def _concordance_matrices(time: np.ndarray, event: np.ndarray, risk: np.ndarray):
    """Harrell's comparable pairs (i has the event, and j a longer time or a censoring at the
    same time, as scikit-survival counts them) and their concordance (1 concordant, 0.5 tied
    risk), as (n, n) matrices so a weighted C is two quadratic forms."""
    event = event.astype(bool)
    later = (time[:, None] < time[None, :]) | ((time[:, None] == time[None, :]) & ~event[None, :])
    comparable = later & event[:, None]
    concordant = np.where(risk[:, None] > risk[None, :], 1.0,
                          np.where(risk[:, None] == risk[None, :], 0.5, 0.0))  # fmt: skip
    return comparable.astype(float), concordant * comparable


def _weighted_c(comparable: np.ndarray, concordant: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Harrell's C for each row of ``weights`` (R, n) (bootstrap multiplicities)."""
    numerator = np.einsum("ri,ij,rj->r", weights, concordant, weights)
    denominator = np.einsum("ri,ij,rj->r", weights, comparable, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def compare_predictions(
    predictions: pd.DataFrame, a: str, b: str, *, scope: str = "", n_boot: int = 2000,
    seed: int = 0, test_train_ratio: float | None = None, level: float = 0.95,
) -> PairedComparison:  # fmt: skip
    """Compare models ``a`` and ``b`` of one run's out-of-fold predictions (columns ``model``,
    ``seed``, ``fold``, ``case_id``, ``time``, ``event``, ``risk``), fold by fold.

    Both models must have scored the same folds (same run, or two runs on the same splits);
    within a fold they are paired on the patients both scored (a model that needs a modality
    leaves out the patients without it; the count is ``unpaired``). ``test_train_ratio`` defaults to each fold's evaluation size over the rest of
    the patients (the training fold)."""
    from kemm.errors import InputDataError

    folds = []
    for model in (a, b):
        rows = predictions[predictions["model"] == model]
        if rows.empty:
            known = sorted(predictions["model"].unique())
            raise InputDataError(f"no predictions of model {model!r} (models: {known})")
        folds.append(rows)
    keys = sorted(set(zip(folds[0]["seed"], folds[0]["fold"], strict=True)))
    other = set(zip(folds[1]["seed"], folds[1]["fold"], strict=True))
    if set(keys) != other:
        raise InputDataError(
            f"models {a!r} and {b!r} were not scored on the same folds "
            f"({len(keys)} and {len(other)} folds)"
        )
    n_patients = predictions["case_id"].nunique()
    rng = np.random.default_rng(seed)
    deltas, ratios, boot, unpaired = [], [], np.zeros(n_boot), 0
    for key in keys:
        pa = _fold_rows(folds[0], key)
        pb = _fold_rows(folds[1], key)
        common = pa.index.intersection(pb.index)
        if len(common) < max(len(pa), len(pb)) / 2:
            raise InputDataError(
                f"models {a!r} and {b!r} scored different patients in seed {key[0]}, fold "
                f"{key[1]} ({len(common)} in common of {len(pa)} and {len(pb)}); compare "
                "models of runs on the same splits"
            )
        # a model that needs a modality excludes the patients without it: pair on the rest
        unpaired += len(pa) + len(pb) - 2 * len(common)
        pa, pb = pa.loc[common], pb.loc[common]
        time, event = pa["time"].to_numpy(float), pa["event"].to_numpy(int)
        comparable, conc_a = _concordance_matrices(time, event, pa["risk"].to_numpy(float))
        _, conc_b = _concordance_matrices(time, event, pb["risk"].to_numpy(float))
        ones = np.ones((1, len(pa)))
        deltas.append(float(_weighted_c(comparable, conc_a, ones)[0]
                            - _weighted_c(comparable, conc_b, ones)[0]))  # fmt: skip
        ratios.append(len(pa) / max(n_patients - len(pa), 1))
        if n_boot:
            weights = rng.multinomial(len(pa), np.full(len(pa), 1 / len(pa)), size=n_boot)
            weights = weights.astype(float)
            boot += (_weighted_c(comparable, conc_a, weights)
                     - _weighted_c(comparable, conc_b, weights)) / len(keys)  # fmt: skip
    ratio = float(np.mean(ratios)) if test_train_ratio is None else test_train_ratio
    mean, ci, p, variance = corrected_t_test(np.array(deltas), ratio, level)
    result = PairedComparison(a, b, scope, np.array(deltas), mean, ci, p, variance,
                              len(deltas) - 1, unpaired=unpaired)  # fmt: skip
    if n_boot:
        _bootstrap_summary(result, boot[np.isfinite(boot)], level)
    return result


def _fold_rows(rows: pd.DataFrame, key) -> pd.DataFrame:
    seed, fold = key
    picked = rows[(rows["seed"] == seed) & (rows["fold"] == fold)]
    return picked.set_index("case_id").sort_index()


def _bootstrap_summary(result: PairedComparison, replicates: np.ndarray, level: float) -> None:
    if not len(replicates):
        return
    tail = (1 - level) / 2
    result.replicates = replicates
    result.bootstrap_ci = (float(np.quantile(replicates, tail)),
                           float(np.quantile(replicates, 1 - tail)))  # fmt: skip
    below, above = np.mean(replicates <= 0), np.mean(replicates >= 0)
    result.bootstrap_p = float(min(1.0, 2 * min(below, above)))


def pool(comparisons: list[PairedComparison], level: float = 0.95) -> PairedComparison:
    """Several cohorts' comparisons of the same two models as one: the mean of the cohort
    means (each cohort weighs the same, as in the table's mean column), the variance of that
    mean from the cohorts' corrected variances, Welch–Satterthwaite degrees of freedom, and
    the bootstrap replicates averaged over cohorts."""
    if not comparisons:
        raise ValueError("nothing to pool")
    k = len(comparisons)
    mean = float(np.mean([c.mean for c in comparisons]))
    variances = np.array([c.variance for c in comparisons])
    variance = float(variances.sum() / k**2)
    denominator = float(np.sum(variances**2 / np.array([c.df for c in comparisons])))
    df = float(variances.sum() ** 2 / denominator) if denominator > 0 else float(
        sum(c.df for c in comparisons))  # fmt: skip
    ci, p = _t_summary(mean, variance, df, level)
    first = comparisons[0]
    result = PairedComparison(first.a, first.b, f"pooled ({k} cohorts)",
                              np.concatenate([c.deltas for c in comparisons]), mean, ci, p,
                              variance, df)  # fmt: skip
    sizes = {len(c.replicates) for c in comparisons}
    if len(sizes) == 1 and sizes != {0}:
        _bootstrap_summary(result, np.mean([c.replicates for c in comparisons], axis=0), level)
    return result


def format_comparisons(comparisons: list[PairedComparison]) -> str:
    """A markdown table: comparison, scope, folds, ΔC, 95 % CI (corrected t), p, bootstrap CI."""
    lines = [
        "| comparison | scope | folds | ΔC | 95 % CI | p | bootstrap 95 % CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.a} vs {c.b} | {c.scope} | {len(c.deltas)} | {c.mean:+.3f} | "
            f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}] | {_p(c.p)} | "
            f"[{c.bootstrap_ci[0]:+.3f}, {c.bootstrap_ci[1]:+.3f}] |"
        )
    return "\n".join(lines)


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
