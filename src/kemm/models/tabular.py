"""Tabular Cox baselines on a feature matrix (genomic or clinical), wrapping scikit-survival.

Both standardise features on the training data, and expose ``fit(X, target)``,
``predict_risk(X) -> (n,)`` (higher = worse) and ``predict_survival(X, times) -> (n, len(times))``.
They are scikit-learn estimators: ``get_params``/``set_params``, ``fit(X, y)`` with ``y`` a
:class:`~kemm.cohort.target.SurvivalTarget` or a scikit-survival structured array,
``predict(X)`` (the risk) and ``score(X, y)`` (Harrell's C), so ``Pipeline``, ``clone`` and
``GridSearchCV`` work with them.
``CoxNet`` is an elastic-net Cox model whose penalty is chosen by cross-validation *inside the
training data* (never the evaluation fold); ``ClinicalCox`` is a Cox model with a small ridge
penalty for a handful of clinical covariates.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator

from kemm.cohort.target import SurvivalTarget
from kemm.errors import ConfigError
from kemm.models.registry import register


def as_target(y: SurvivalTarget | np.ndarray) -> SurvivalTarget:
    """A :class:`SurvivalTarget` from itself or a scikit-survival structured array (one boolean
    event field and one time field, e.g. ``sksurv.util.Surv.from_arrays``)."""
    if isinstance(y, SurvivalTarget):
        return y
    names = getattr(getattr(y, "dtype", None), "names", None)
    if not names or len(names) != 2:
        raise TypeError(
            "y must be a kemm SurvivalTarget or a structured array (event, time), "
            "e.g. sksurv.util.Surv.from_arrays(event, time)"
        )
    event = next((n for n in names if y.dtype[n] == np.bool_), names[0])
    time = next(n for n in names if n != event)
    return SurvivalTarget(event=y[event], time=y[time])


class _TabularCox(BaseEstimator):
    """Shared standardisation, validation and survival-curve evaluation."""

    kind = "tabular"
    # fitted state (scikit-learn convention: set by fit, never by __init__)
    model_ = None
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    warnings_: tuple[str, ...] | list[str] = ()

    def __init__(self, feature_names: Sequence[str] | None = None) -> None:
        self.feature_names = feature_names

    @property
    def _names(self) -> list[str] | None:
        return list(self.feature_names) if self.feature_names is not None else None

    # -- helpers
    def _check_X(self, X: np.ndarray, fitting: bool = False) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise ValueError(f"{type(self).__name__}: X must be 2-d, got shape {X.shape}")
        if self.feature_names is not None and X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"{type(self).__name__}: X has {X.shape[1]} columns but {len(self.feature_names)} "
                "feature names were given"
            )
        if not fitting and self.mean_ is not None and X.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: X has {X.shape[1]} columns, model was fitted on "
                f"{self.mean_.shape[0]}"
            )
        if not np.isfinite(X).all():
            bad = np.where(~np.isfinite(X).all(0))[0][:5]
            names = [self._names[i] for i in bad] if self.feature_names is not None else list(bad)
            raise ValueError(
                f"{type(self).__name__}: X has missing/non-finite values (columns {names}); "
                "impute on the training fold first"
            )
        return X

    def _standardise(self, X: np.ndarray, fit: bool = False) -> np.ndarray:
        if fit:
            self.mean_ = X.mean(0)
            std = X.std(0)
            self.scale_ = np.where(std > 0, std, 1.0)
        if self.mean_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        return (X - self.mean_) / self.scale_

    @staticmethod
    def _check_target(target: SurvivalTarget | np.ndarray, n: int) -> SurvivalTarget:
        target = as_target(target)
        if len(target) != n:
            raise ValueError(f"target has {len(target)} patients, X has {n} rows")
        if not target.event.any():
            raise ValueError("target has no events: a Cox model cannot be fitted")
        return target

    def _predict_kwargs(self) -> dict:
        return {}

    # -- public API
    def predict(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's name for :meth:`predict_risk`."""
        return self.predict_risk(X)

    def score(self, X: np.ndarray, y: SurvivalTarget | np.ndarray) -> float:
        """Harrell's C-index of the predicted risks (scikit-survival's convention)."""
        from kemm.survival.metrics import harrell_c

        target = as_target(y)
        return harrell_c(target.event, target.time, self.predict_risk(X))

    def predict_risk(self, X: np.ndarray) -> np.ndarray:
        """(n,) linear predictor; higher means shorter expected survival."""
        Xs = self._standardise(self._check_X(X))
        return np.asarray(self.model_.predict(Xs, **self._predict_kwargs()), dtype=float)

    def predict_survival(self, X: np.ndarray, times: Sequence[float]) -> np.ndarray:
        """(n, len(times)) survival probabilities S(t | x): 1 before the first training time,
        held at the last value after the last one."""
        Xs = self._standardise(self._check_X(X))
        curves = self.model_.predict_survival_function(
            Xs, return_array=True, **self._predict_kwargs()
        )
        grid = np.asarray(self.model_.unique_times_, dtype=float)
        idx = np.searchsorted(grid, np.asarray(times, dtype=float), side="right") - 1
        out = curves[:, np.clip(idx, 0, None)]
        out[:, idx < 0] = 1.0
        return out

    def to_state(self) -> dict:
        """A JSON-ready description of the fitted model (no pickling): standardisation,
        coefficients and the baseline survival S0(t) at risk 0, from which
        S(t | x) = S0(t) ** exp(risk(x)) (Breslow)."""
        if self.mean_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        grid = np.asarray(self.model_.unique_times_, dtype=float)
        baseline = self.model_.predict_survival_function(
            np.zeros((1, self.mean_.shape[0])), return_array=True, **self._predict_kwargs()
        )[0]
        return {
            "class": type(self).__name__,
            "feature_names": self._names,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": np.asarray(self._coef(), dtype=float).ravel().tolist(),
            "times": grid.tolist(),
            "baseline_survival": np.asarray(baseline, dtype=float).tolist(),
        }

    @classmethod
    def from_state(cls, state: dict) -> _FittedCox:
        """A predictor rebuilt from :meth:`to_state` (``predict_risk``/``predict_survival``)."""
        return _FittedCox(state)

    @property
    def coef_(self) -> dict[str, float]:
        """Coefficients on the standardised features, by feature name."""
        coef = np.asarray(self._coef(), dtype=float).ravel()
        names = self._names or [f"x{i}" for i in range(coef.shape[0])]
        return dict(zip(names, coef.tolist(), strict=True))

    def _coef(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


@register("coxnet", kind="tabular", modalities=("genomics", "clinical"), requires_any_of=())
class CoxNet(_TabularCox):
    """Elastic-net Cox model (sksurv ``CoxnetSurvivalAnalysis``) with the penalty chosen by
    inner cross-validation on the training data (``alpha="cv"``) or fixed (``alpha=float``)."""

    def __init__(
        self,
        *,
        l1_ratio: float = 0.5,
        alpha: float | str = "cv",
        n_alphas: int = 30,
        alpha_min_ratio: float | str = 0.05,
        cv_folds: int = 5,
        max_iter: int = 100000,
        seed: int = 0,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_names)
        if not (isinstance(alpha, float | int) or alpha == "cv"):
            raise ConfigError(f"CoxNet alpha must be a number or 'cv', got {alpha!r}")
        self.l1_ratio, self.alpha, self.n_alphas = l1_ratio, alpha, n_alphas
        self.alpha_min_ratio, self.cv_folds, self.max_iter, self.seed = (
            alpha_min_ratio,
            cv_folds,
            max_iter,
            seed,
        )

    alpha_: float | None = None
    cv_scores_: np.ndarray | None = None

    def _estimator(self, alphas=None, min_ratio=None, baseline: bool = False):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        kwargs = {"alphas": alphas} if alphas is not None else {"n_alphas": self.n_alphas}
        return CoxnetSurvivalAnalysis(
            l1_ratio=self.l1_ratio,
            alpha_min_ratio=min_ratio if min_ratio is not None else self.alpha_min_ratio,
            max_iter=self.max_iter,
            fit_baseline_model=baseline,
            **kwargs,
        )

    def _fit_quiet(self, est, X, y):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X, y)
        for w in caught:
            message = f"{w.category.__name__}: {w.message}"
            if message not in self.warnings_:
                self.warnings_.append(message)
        return est

    def _path(self, X, y) -> np.ndarray:
        """The alpha path on the training data, growing alpha_min_ratio on numerical failure."""
        ratio = self.alpha_min_ratio
        for _ in range(4):
            try:
                return self._fit_quiet(self._estimator(min_ratio=ratio), X, y).alphas_
            except ArithmeticError:
                ratio = 0.1 if ratio == "auto" else min(0.5, float(ratio) * 5)
        raise RuntimeError(
            "CoxNet: the elastic-net path failed to converge (numerical error) even with "
            f"alpha_min_ratio={ratio}; use fewer features, a larger alpha_min_ratio or a fixed alpha"
        )

    def _cv_alpha(self, X, y, target: SurvivalTarget) -> float:
        from sklearn.model_selection import StratifiedKFold
        from sksurv.metrics import concordance_index_censored

        alphas = self._path(X, y)
        folds = min(self.cv_folds, int(target.event.sum()), int((~target.event).sum()) or 2)
        if folds < 2:
            return float(alphas[len(alphas) // 2])
        scores = np.full((folds, len(alphas)), np.nan)
        split = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        for f, (tr, va) in enumerate(split.split(X, target.event)):
            if not target.event[tr].any() or not target.event[va].any():
                continue
            try:
                est = self._fit_quiet(self._estimator(alphas=alphas), X[tr], y[tr])
            except ArithmeticError:
                continue
            for a, alpha in enumerate(est.alphas_):
                risk = est.predict(X[va], alpha=alpha)
                if np.ptp(risk) > 0:
                    scores[f, a] = concordance_index_censored(
                        target.event[va], target.time[va], risk
                    )[0]
        self.cv_scores_ = scores
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an alpha no fold could score
            mean = np.nanmean(scores, axis=0)
        mean = np.where(np.isnan(mean), -np.inf, mean)
        if not np.isfinite(mean).any():
            return float(alphas[len(alphas) // 2])
        return float(alphas[int(np.argmax(mean))])

    def fit(self, X: np.ndarray, y: SurvivalTarget | np.ndarray) -> CoxNet:
        """Standardise on ``X``, choose alpha (inner CV on ``X`` only), refit with a baseline."""
        X = self._check_X(X, fitting=True)
        target = self._check_target(y, X.shape[0])
        Xs = self._standardise(X, fit=True)
        y = target.to_structured()
        self.warnings_ = []
        self.alpha_ = float(self.alpha) if self.alpha != "cv" else self._cv_alpha(Xs, y, target)
        # Refit along the path down to the chosen alpha (warm starts keep coordinate descent
        # stable where a cold fit at a small alpha can diverge); on a numerical failure step up
        # to the next larger alpha of the path rather than give up.
        path = np.asarray(self._path(Xs, y), dtype=float)
        candidates = sorted({float(a) for a in path if a >= self.alpha_} | {self.alpha_})
        for alpha in candidates:
            alphas = sorted({float(a) for a in path if a >= alpha} | {alpha}, reverse=True)
            try:
                self.model_ = self._fit_quiet(self._estimator(alphas=alphas, baseline=True), Xs, y)
            except ArithmeticError as error:
                last_error = error
                continue
            if alpha != self.alpha_:
                self.warnings_.append(
                    f"refit at alpha={alpha:.4g} (alpha={self.alpha_:.4g} diverged)"
                )
            self.alpha_ = alpha
            return self
        raise RuntimeError(
            f"CoxNet: fitting with alpha={self.alpha_:.4g} failed ({last_error}); try a larger alpha"
        )

    def _predict_kwargs(self) -> dict:
        return {"alpha": self.alpha_}

    def _coef(self) -> np.ndarray:
        return self.model_.coef_[:, -1]

    def selected_features(self) -> list[str]:
        """Names of the features with a non-zero coefficient."""
        return [name for name, c in self.coef_.items() if c != 0]


def _breslow_terms(time: np.ndarray, event: np.ndarray):
    """Order and tie structure for the Breslow partial likelihood (computed once per fit)."""
    order = np.argsort(time, kind="stable")
    t_sorted = time[order]
    # first position of each patient's time in the sorted order: the start of its risk set
    first = np.searchsorted(t_sorted, t_sorted, side="left")
    return order, first, event[order].astype(bool)


def cox_negative_log_likelihood(
    beta: np.ndarray, X: np.ndarray, terms, alpha: float, n: int
) -> tuple[float, np.ndarray]:
    """Breslow negative partial log-likelihood / n + alpha/2 ||beta||^2, and its gradient."""
    order, first, event = terms
    Xs = X[order]
    eta = Xs @ beta
    shift = eta.max()
    w = np.exp(eta - shift)
    s0 = np.cumsum(w[::-1])[::-1][first]
    s1 = np.cumsum((w[:, None] * Xs)[::-1], axis=0)[::-1][first]
    loss = -(eta[event] - shift - np.log(s0[event])).sum() / n + 0.5 * alpha * beta @ beta
    grad = -(Xs[event] - s1[event] / s0[event, None]).sum(0) / n + alpha * beta
    return float(loss), grad


def partial_log_likelihood(eta: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Breslow partial log-likelihood of fixed linear predictors (higher is better)."""
    order, first, ev = _breslow_terms(np.asarray(time, float), np.asarray(event, bool))
    e = np.asarray(eta, float)[order]
    shift = e.max()
    s0 = np.cumsum(np.exp(e - shift)[::-1])[::-1][first]
    return float((e[ev] - shift - np.log(s0[ev])).sum())


def breslow_baseline(
    eta: np.ndarray, time: np.ndarray, event: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Breslow baseline survival S0(t) at the unique event times (risk 0)."""
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    w = np.exp(np.asarray(eta, float))
    times = np.unique(time[event])
    if len(times) == 0:
        return np.array([float(time.max())]), np.array([1.0])
    at_risk = np.array([w[time >= t].sum() for t in times])
    deaths = np.array([(event & (time == t)).sum() for t in times])
    return times, np.exp(-np.cumsum(deaths / at_risk))


@register("clinical_cox", kind="tabular", modalities=("clinical",), requires_any_of=())
class PenalizedCox(_TabularCox):
    """Ridge-penalised Cox model (Breslow ties) for clinical covariates and report facts.

    * ``alpha="cv"`` chooses the penalty by inner cross-validation on the training data only
      (cross-validated linear predictors, scored by the partial likelihood); a number fixes it.
    * ``direction_prior=True`` constrains the coefficient of every column with a known
      direction of effect (``feature_directions``: +1 higher is worse) to be >= 0, the prior
      that prognostic background knowledge gives (higher T, positive margin ... are worse).
    """

    def __init__(
        self,
        *,
        alpha: float | str = "cv",
        alphas: Sequence[float] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        cv_folds: int = 5,
        direction_prior: bool = False,
        feature_names: Sequence[str] | None = None,
        feature_directions: Sequence[int] | None = None,
        seed: int = 0,
        n_iter: int | None = None,  # accepted for configs of the former sksurv model
    ) -> None:
        super().__init__(feature_names)
        if not (isinstance(alpha, float | int) or alpha == "cv"):
            raise ConfigError(f"clinical_cox alpha must be a number or 'cv', got {alpha!r}")
        self.alpha, self.alphas, self.cv_folds = alpha, alphas, cv_folds
        self.direction_prior = direction_prior
        self.feature_directions = feature_directions
        self.seed = seed
        self.n_iter = n_iter

    alpha_: float | None = None
    coef_vector_: np.ndarray | None = None
    times_: np.ndarray | None = None
    baseline_: np.ndarray | None = None
    cv_scores_: dict[float, float] | None = None

    def _bounds(self, p: int):
        if not self.direction_prior or self.feature_directions is None:
            return None
        if len(self.feature_directions) != p:
            raise ValueError(f"{p} features but {len(self.feature_directions)} directions")
        return [(0.0, None) if d > 0 else (None, 0.0) if d < 0 else (None, None)
                for d in list(self.feature_directions)]  # fmt: skip

    def _solve(
        self, X: np.ndarray, time: np.ndarray, event: np.ndarray, alpha: float,
        start: np.ndarray | None = None,
    ) -> np.ndarray:  # fmt: skip
        from scipy.optimize import minimize

        terms = _breslow_terms(time, event)
        result = minimize(
            cox_negative_log_likelihood, np.zeros(X.shape[1]) if start is None else start,
            args=(X, terms, alpha, len(time)), jac=True, method="L-BFGS-B",
            bounds=self._bounds(X.shape[1]), options={"maxiter": 500},
        )  # fmt: skip
        return result.x

    def _cv_alpha(self, X: np.ndarray, target: SurvivalTarget) -> float:
        from sklearn.model_selection import StratifiedKFold

        folds = min(self.cv_folds, int(target.event.sum()), int((~target.event).sum()))
        if folds < 2:
            return float(np.median(self.alphas))
        split = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        path = sorted(self.alphas, reverse=True)  # warm starts from the most penalised fit
        eta = {alpha: np.zeros(len(X)) for alpha in path}
        for tr, va in split.split(X, target.event):
            beta = None
            for alpha in path:
                beta = self._solve(X[tr], target.time[tr], target.event[tr], alpha, beta)
                eta[alpha][va] = X[va] @ beta
        self.cv_scores_ = {
            a: partial_log_likelihood(eta[a], target.time, target.event) for a in path
        }
        return max(path, key=lambda a: (self.cv_scores_[a], a))

    def fit(self, X: np.ndarray, y: SurvivalTarget | np.ndarray) -> PenalizedCox:
        X = self._check_X(X, fitting=True)
        target = self._check_target(y, X.shape[0])
        Xs = self._standardise(X, fit=True)
        self.alpha_ = float(self.alpha) if self.alpha != "cv" else self._cv_alpha(Xs, target)
        self.coef_vector_ = self._solve(Xs, target.time, target.event, self.alpha_)
        self.times_, self.baseline_ = breslow_baseline(
            Xs @ self.coef_vector_, target.time, target.event
        )
        self.model_ = self
        return self

    def predict_risk(self, X: np.ndarray) -> np.ndarray:
        if self.coef_vector_ is None:
            raise RuntimeError("PenalizedCox is not fitted; call fit() first")
        return self._standardise(self._check_X(X)) @ self.coef_vector_

    def predict_survival(self, X: np.ndarray, times: Sequence[float]) -> np.ndarray:
        return _FittedCox(self.to_state()).predict_survival(self._check_X(X), times)

    def to_state(self) -> dict:
        if self.coef_vector_ is None:
            raise RuntimeError("PenalizedCox is not fitted; call fit() first")
        return {
            "class": type(self).__name__, "feature_names": self._names,
            "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
            "coef": self.coef_vector_.tolist(), "alpha": self.alpha_,
            "direction_prior": self.direction_prior, "times": self.times_.tolist(),
            "baseline_survival": self.baseline_.tolist(),
        }  # fmt: skip

    def _coef(self) -> np.ndarray:
        return self.coef_vector_


ClinicalCox = PenalizedCox  # the name of the former fixed-ridge sksurv model


def restore_tabular(state: dict) -> _FittedCox:
    """A fitted Cox-type model (``CoxNet``, ``PenalizedCox``, a stack's combiner) rebuilt from
    its ``to_state()``; predicts risks and survival like the fitted estimator."""
    return _FittedCox(state)


class _FittedCox:
    """A Cox model restored from its JSON state; predicts like the fitted estimator."""

    def __init__(self, state: dict) -> None:
        self.feature_names = state.get("feature_names")
        self.mean = np.asarray(state["mean"], dtype=float)
        self.scale = np.asarray(state["scale"], dtype=float)
        self.coef = np.asarray(state["coef"], dtype=float)
        self.times = np.asarray(state["times"], dtype=float)
        self.baseline = np.asarray(state["baseline_survival"], dtype=float)

    def predict_risk(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} columns, model was fitted on {self.mean.shape[0]}"
            )
        return ((X - self.mean) / self.scale) @ self.coef

    def predict_survival(self, X: np.ndarray, times: Sequence[float]) -> np.ndarray:
        idx = np.searchsorted(self.times, np.asarray(times, dtype=float), side="right") - 1
        base = np.where(idx < 0, 1.0, self.baseline[np.clip(idx, 0, None)])
        return base[None, :] ** np.exp(self.predict_risk(X))[:, None]
