"""Tests for kemm.survival.losses and kemm.survival.discrete."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kemm.survival.binning import TimeBins
from kemm.survival.discrete import (
    hazards_from_logits,
    risk_from_logits,
    survival_at_times,
    survival_from_logits,
)
from kemm.survival.losses import cox_ph, nll_discrete


def _logit(p):
    p = torch.as_tensor(p, dtype=torch.float64)
    return torch.log(p / (1 - p))


H = [0.2, 0.5, 0.25]  # hazards -> S = [0.8, 0.4, 0.3]


def test_discrete_curve_and_risk():
    logits = _logit([H, [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(hazards_from_logits(logits).numpy(), [H, [0.5] * 3])
    surv = survival_from_logits(logits)
    np.testing.assert_allclose(surv.numpy(), [[0.8, 0.4, 0.3], [0.5, 0.25, 0.125]], rtol=1e-12)
    np.testing.assert_allclose(risk_from_logits(logits).numpy(), [-1.5, -0.875], rtol=1e-12)


def test_survival_at_times_uses_bin_containing_t():
    bins = TimeBins(edges=np.array([0.0, 10.0, 20.0, np.inf]), max_time=30.0)
    surv = np.array([[0.8, 0.4, 0.3], [0.9, 0.7, 0.6]])
    got = survival_at_times(surv, bins, np.array([0.0, 9.9, 10.0, 25.0, 1000.0]))
    np.testing.assert_allclose(got, [[0.8, 0.8, 0.4, 0.3, 0.3], [0.9, 0.9, 0.7, 0.6, 0.6]])
    with pytest.raises(ValueError):
        survival_at_times(surv[:, :2], bins, np.array([1.0]))


def test_nll_hand_computed():
    logits = _logit([H, H, H, H])
    bins = torch.tensor([1, 1, 0, 2])
    event = torch.tensor([1, 0, 1, 0])
    expected = [
        -math.log(0.8) - math.log(0.5),  # event in bin 1: S_0 * h_1
        -math.log(0.4),  # censored in bin 1: S_1
        -math.log(0.2),  # event in bin 0: h_0
        -math.log(0.3),  # censored in last bin: S_2
    ]
    loss = nll_discrete(logits, bins, event)
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-10)


def test_nll_alpha_weighting():
    logits = _logit([H, H])
    bins = torch.tensor([1, 2])
    event = torch.tensor([1.0, 0.0])
    u = -math.log(0.8) - math.log(0.5)
    c = -math.log(0.3)
    for alpha in (0.0, 0.4, 1.0):
        loss = nll_discrete(logits, bins, event, alpha=alpha)
        # uncensored terms keep weight 1, censored ones get (1 - alpha)
        assert loss.item() == pytest.approx((u + (1 - alpha) * c) / 2, rel=1e-10)


def _nll_reference(logits, bins, event, eps):
    """Probability-space reference: clamp h and S at eps, as the formula is usually written."""
    h = torch.sigmoid(logits)
    s = torch.cumprod(1 - h, dim=1)
    s_pad = torch.cat([torch.ones_like(s[:, :1]), s], dim=1)
    idx = bins.unsqueeze(1)
    s_prev = s_pad.gather(1, idx).squeeze(1).clamp(min=eps)
    s_this = s_pad.gather(1, idx + 1).squeeze(1).clamp(min=eps)
    h_this = h.gather(1, idx).squeeze(1).clamp(min=eps)
    e = event.double()
    return (-e * (torch.log(s_prev) + torch.log(h_this)) - (1 - e) * torch.log(s_this)).mean()


def test_nll_matches_probability_space_reference():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, generator=gen, dtype=torch.float64) * 3
    bins = torch.randint(0, 4, (32,), generator=gen)
    event = torch.randint(0, 2, (32,), generator=gen)
    got = nll_discrete(logits, bins, event, eps=1e-7)
    assert got.item() == pytest.approx(_nll_reference(logits, bins, event, 1e-7).item(), rel=1e-9)


def test_nll_extreme_logits_finite_with_finite_gradient():
    logits = torch.tensor([[60.0, 60.0, 60.0], [-60.0, -60.0, -60.0]], requires_grad=True)
    loss = nll_discrete(logits, torch.tensor([2, 0]), torch.tensor([1, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(-math.log(1e-7), rel=1e-4)  # both clamped at eps
    assert torch.isfinite(logits.grad).all()


def test_nll_gradient_and_validation():
    logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    bins = torch.tensor([0, 1, 2, 3, 1, 2])
    event = torch.tensor([1, 0, 1, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda x: nll_discrete(x, bins, event), (logits,))
    with pytest.raises(ValueError):
        nll_discrete(logits, torch.tensor([0, 1, 2, 4, 1, 2]), event)
    with pytest.raises(ValueError):
        nll_discrete(logits, bins[:5], event)


def _cox_bruteforce(risk, time, event):
    terms = []
    for i in range(len(risk)):
        if event[i]:
            at_risk = time >= time[i]
            terms.append(risk[i] - np.log(np.exp(risk[at_risk]).sum()))
    return -np.mean(terms)


def test_cox_hand_computed():
    a, b, c = 0.3, -1.2, 2.0
    risk = torch.tensor([a, b, c], dtype=torch.float64)
    loss = cox_ph(risk, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1, 1, 0]))
    expected = (
        -(
            (a - math.log(math.exp(a) + math.exp(b) + math.exp(c)))
            + (b - math.log(math.exp(b) + math.exp(c)))
        )
        / 2
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_cox_matches_bruteforce_with_ties():
    rng = np.random.default_rng(1)
    for n in (2, 7, 40):
        risk = rng.normal(size=n)
        time = rng.integers(1, 6, size=n).astype(float)  # many tied times
        event = rng.random(n) < 0.6
        event[0] = True
        got = cox_ph(torch.tensor(risk), torch.tensor(time), torch.tensor(event))
        assert got.item() == pytest.approx(_cox_bruteforce(risk, time, event), rel=1e-10)


def test_cox_gradient_and_no_events():
    gen = torch.Generator().manual_seed(2)
    risk = torch.randn(10, dtype=torch.float64, generator=gen, requires_grad=True)
    time = torch.randint(1, 5, (10,), generator=gen).double()
    event = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda r: cox_ph(r, time, event), (risk,))

    r = torch.randn(4, requires_grad=True)
    loss = cox_ph(r, torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.zeros(4))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(r.grad, torch.zeros(4))


def test_cox_accepts_column_risk():
    risk = torch.tensor([[0.5], [0.1], [-0.3]])
    flat = cox_ph(risk.squeeze(1), torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1, 1, 1]))
    col = cox_ph(risk, torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1, 1, 1]))
    assert col.item() == pytest.approx(flat.item())
