"""Discrete-time survival: logits -> hazards -> survival curve -> risk.

For bin ``k`` the model outputs a logit; the hazard ``h_k = sigmoid(logit_k)`` is the probability
of the event in bin ``k`` given survival to its start, and ``S_k = prod_{j<=k} (1 - h_j)`` is the
probability of surviving past the end of bin ``k``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kemm.survival.binning import TimeBins


def hazards_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-bin hazards ``sigmoid(logits)``, shape ``(B, n_bins)``."""
    return torch.sigmoid(logits)


def log_survival_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``log S_k = sum_{j<=k} log(1 - h_j)``, computed stably as ``cumsum(logsigmoid(-logits))``."""
    return torch.cumsum(F.logsigmoid(-logits), dim=-1)


def survival_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Survival curve ``S_k = prod_{j<=k} (1 - h_j)``, shape ``(B, n_bins)``."""
    return torch.exp(log_survival_from_logits(logits))


def risk_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Risk score, shape ``(B,)``; higher means worse prognosis. Over ``n_bins >= 2`` hazard
    logits it is ``-sum_k S_k``; a single output is a Cox log hazard ratio, the risk itself."""
    if logits.shape[-1] == 1:
        return logits[..., 0]
    return -survival_from_logits(logits).sum(dim=-1)


def survival_at_times(surv: np.ndarray, bins: TimeBins, times: np.ndarray) -> np.ndarray:
    """Evaluate discrete survival curves at arbitrary times, shape ``(n, len(times))``.

    Convention: the curve is a step function and the survival at time ``t`` is the curve value of
    the bin containing ``t`` (``S_{k(t)}``, the survival past the end of that bin). This is slightly
    pessimistic inside a bin and matches the NLL training convention that a patient censored in
    bin ``k`` survived bin ``k``. Times past the last finite edge use the last bin's value.
    """
    surv = np.asarray(surv, dtype=float)
    if surv.ndim != 2 or surv.shape[1] != bins.n_bins:
        raise ValueError(f"surv must have shape (n, {bins.n_bins}), got {surv.shape}")
    idx = bins.transform(np.atleast_1d(np.asarray(times, dtype=float)))
    return surv[:, idx]
