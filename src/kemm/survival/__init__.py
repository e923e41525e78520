"""kemm.survival: time binning, discrete-time and Cox losses, metrics, Kaplan-Meier helpers."""

from kemm.survival.binning import TimeBins
from kemm.survival.discrete import (
    hazards_from_logits,
    log_survival_from_logits,
    risk_from_logits,
    survival_at_times,
    survival_from_logits,
)
from kemm.survival.km import (
    kaplan_meier,
    km_median,
    logrank_p,
    median_follow_up,
    risk_groups,
    risk_thresholds,
)
from kemm.survival.losses import (
    LOSSES,
    SurvivalBatch,
    cox_ph,
    n_outputs,
    nll_discrete,
    survival_loss,
)
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

__all__ = [
    "LOSSES",
    "SurvivalBatch",
    "n_outputs",
    "survival_loss",
    "TimeBins",
    "bootstrap_ci",
    "cox_ph",
    "default_eval_times",
    "evaluate",
    "harrell_c",
    "hazards_from_logits",
    "integrated_brier",
    "ipcw_horizon",
    "is_constant",
    "kaplan_meier",
    "km_median",
    "median_follow_up",
    "log_survival_from_logits",
    "logrank_p",
    "nll_discrete",
    "risk_from_logits",
    "risk_groups",
    "risk_thresholds",
    "survival_at_times",
    "survival_from_logits",
    "time_dependent_auc",
    "uno_c",
]
