"""Survival losses as pure functions of tensors (no state)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kemm.survival.discrete import log_survival_from_logits

LOSSES = ("cox", "nll")


def nll_discrete(
    logits: torch.Tensor,
    bins: torch.Tensor,
    event: torch.Tensor,
    alpha: float = 0.0,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Discrete-time negative log-likelihood for right-censored data, mean over the batch.

    With hazards ``h = sigmoid(logits)`` and ``S_k = prod_{j<=k}(1 - h_j)`` (``S_{-1} = 1``), a
    patient in bin ``k`` contributes

    - event observed: ``-log S_{k-1} - log h_k`` (survived the earlier bins, died in bin ``k``);
    - censored:       ``-log S_k`` (survived bin ``k``: censoring is treated as at its end).

    ``loss = (1 - alpha) * (uncensored + censored) + alpha * uncensored``: ``alpha = 0`` is the
    plain likelihood; ``alpha > 0`` up-weights the uncensored terms relative to the censored ones
    (``alpha = 1`` ignores censored patients). Probabilities are clamped below at ``eps`` (in log
    space, same values as clamping ``h`` and ``S``) so that the loss stays finite.

    Args:
        logits: ``(B, n_bins)`` hazard logits.
        bins: ``(B,)`` integer bin index of each patient's time (see ``TimeBins.transform``).
        event: ``(B,)`` 1 for an observed event, 0 for censored.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, n_bins), got {tuple(logits.shape)}")
    n, n_bins = logits.shape
    bins = bins.reshape(-1).long().to(logits.device)
    event = event.reshape(-1).to(device=logits.device, dtype=logits.dtype)
    if bins.shape[0] != n or event.shape[0] != n:
        raise ValueError(
            f"batch size mismatch: logits {n}, bins {bins.shape[0]}, event {event.shape[0]}"
        )
    if n and (int(bins.min()) < 0 or int(bins.max()) >= n_bins):
        raise ValueError(f"bin indices must be in [0, {n_bins - 1}], got {bins.tolist()}")

    log_s = log_survival_from_logits(logits)
    # log S padded with log S_{-1} = 0 in front: log_s_pad[:, k] = log S_{k-1}
    log_s_pad = torch.cat([torch.zeros_like(log_s[:, :1]), log_s], dim=1)
    log_h = F.logsigmoid(logits)
    floor = math.log(eps) if eps > 0 else -math.inf
    idx = bins.unsqueeze(1)
    log_s_prev = log_s_pad.gather(1, idx).squeeze(1).clamp(min=floor)
    log_s_this = log_s_pad.gather(1, idx + 1).squeeze(1).clamp(min=floor)
    log_h_this = log_h.gather(1, idx).squeeze(1).clamp(min=floor)

    uncensored = -event * (log_s_prev + log_h_this)
    censored = -(1.0 - event) * log_s_this
    loss = (1.0 - alpha) * (uncensored + censored) + alpha * uncensored
    return loss.mean()


def cox_ph(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Cox negative partial log-likelihood (Breslow ties), mean over events.

    ``-(1/d) * sum_{i: event} [r_i - log sum_{j: t_j >= t_i} exp(r_j)]`` with ``d`` the number of
    events. Returns ``0 * risk.sum()`` (zero, still differentiable) when there is no event.
    """
    risk = risk.reshape(-1)
    time = time.reshape(-1).to(risk.device)
    event = event.reshape(-1).to(risk.device).bool()
    if not (risk.shape[0] == time.shape[0] == event.shape[0]):
        raise ValueError(
            f"length mismatch: risk {risk.shape[0]}, time {time.shape[0]}, event {event.shape[0]}"
        )
    n_events = int(event.sum())
    if n_events == 0:
        return 0.0 * risk.sum()

    # sort by time, descending: the risk set of i is a prefix extended over tied times
    order = torch.argsort(time, descending=True)
    t_sorted = time[order].to(torch.float64)
    r_sorted = risk[order]
    log_cum = torch.logcumsumexp(r_sorted, dim=0)
    # last position whose time is >= t_i (includes every tie of t_i)
    neg_t = (-t_sorted).contiguous()
    last = torch.searchsorted(neg_t, neg_t, right=True) - 1
    log_risk_set = log_cum[last]
    ev = event[order]
    return -(r_sorted[ev] - log_risk_set[ev]).sum() / n_events


@dataclass(frozen=True)
class SurvivalBatch:
    """The outcome of a batch of B patients, as a training loss reads it: ``bins`` (B,) the
    time-bin index (discrete likelihood, risk levels), ``event`` (B,) 1 for an observed event,
    ``time`` (B,) follow-up time (the Cox risk sets), ``n_bins`` the fold's number of bins."""

    bins: torch.Tensor
    event: torch.Tensor
    time: torch.Tensor
    n_bins: int

    def __getitem__(self, index) -> SurvivalBatch:
        return SurvivalBatch(self.bins[index], self.event[index], self.time[index], self.n_bins)

    def to(self, device: torch.device | str) -> SurvivalBatch:
        return SurvivalBatch(
            self.bins.to(device), self.event.to(device), self.time.to(device), self.n_bins
        )


def survival_loss(kind: str, alpha: float = 0.0):
    """The training loss ``(logits, SurvivalBatch) -> loss`` of a run (``train.loss``).

    ``nll``: the discrete-time likelihood over ``n_bins`` hazard logits (:func:`nll_discrete`);
    ``cox``: the Cox partial likelihood (:func:`cox_ph`) of a single output, the log hazard
    ratio (a network trained with it has one output; its survival curves come from a Breslow
    baseline on the training fold)."""
    if kind == "nll":
        return lambda logits, y: nll_discrete(logits, y.bins, y.event, alpha=alpha)
    if kind == "cox":

        def cox(logits: torch.Tensor, y: SurvivalBatch) -> torch.Tensor:
            if logits.ndim != 2 or logits.shape[1] != 1:
                raise ValueError(
                    f"the Cox loss takes one output per patient, got {tuple(logits.shape)}"
                )
            return cox_ph(logits[:, 0], y.time, y.event)

        return cox
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def n_outputs(kind: str, n_bins: int) -> int:
    """How many outputs a network trained with loss ``kind`` has: one log hazard ratio (Cox) or
    one hazard logit per time bin."""
    return 1 if kind == "cox" else n_bins
