"""Hand-written kernels of the survival models: byte-draw dropout and the fused bag attention.

Dropout draws one random byte per unit (``dropout_mask``), eight units per 64-bit draw, an order
of magnitude cheaper on CPU than ``bernoulli_``; every dropout in kemm (the :class:`Dropout`
module, the in-place dropout of the patch projection, the fused bag attention) uses these
draws and :func:`dropout_scale`. :class:`FusedBagAttention` is the train-time bag attention with
a hand-written backward for 100k+ patch bags on CPU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DROPPED = -1.0e4  # pre-activation of a dropped unit: GELU/ReLU give exactly 0 there, with 0 slope


def dropout_threshold(p: float) -> int:
    """Dropout masks draw one random byte per unit: p is used as round(256·p)/256."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    return min(255, round(256 * p))


def dropout_scale(p: float) -> float:
    """The inverted-dropout scale of kept units, 1 / (1 - threshold / 256)."""
    return 256.0 / (256 - dropout_threshold(p))


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device) -> Tensor:
    """Bool mask, True = dropped with probability ``dropout_threshold(p) / 256``.

    One 64-bit draw gives eight units (an order of magnitude cheaper on CPU than ``bernoulli_``,
    which matters at 100k+ patches x 256 channels).
    """
    numel = math.prod(shape)
    words = torch.empty((numel + 7) // 8, dtype=torch.int64, device=device)
    words.random_(-(2**63), 2**63 - 1)
    return words.view(torch.uint8)[:numel].view(shape) < dropout_threshold(p)


class MaskedScale(torch.autograd.Function):
    """y = x · scale where ``keep``, else 0; the backward applies the same mask."""

    @staticmethod
    def forward(ctx, x: Tensor, dropped: Tensor, scale: float) -> Tensor:  # noqa: D102
        ctx.save_for_backward(dropped)
        ctx.scale = scale
        return x.masked_fill(dropped, 0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (dropped,) = ctx.saved_tensors
        return grad.masked_fill(dropped, 0).mul_(ctx.scale), None, None


def _activation_out(pre: Tensor, activation: str, out: Tensor) -> Tensor:
    if activation == "gelu":
        return torch.ops.aten.gelu.out(pre, approximate="none", out=out)
    return torch.clamp(pre, min=0, out=out)


def _activation_backward_out(grad: Tensor, pre: Tensor, activation: str, out: Tensor) -> Tensor:
    if activation == "gelu":
        return torch.ops.aten.gelu_backward.grad_input(grad, pre, grad_input=out)
    return torch.ops.aten.threshold_backward.grad_input(grad, pre, 0, grad_input=out)


class _Workspace:
    """Scratch buffers of one fused bag-attention call, reused across training steps.

    On CPU every fresh allocation above glibc's mmap threshold (32 MB) is page-faulted in on each
    step, which at 100k+ patches costs as much as the arithmetic; a CUDA run has a caching
    allocator and does not use this.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device) -> Tensor:
        numel = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != dtype or buf.device != device:
            buf = torch.empty(numel, dtype=dtype, device=device)
            self._buffers[name] = buf
        return buf[:numel].view(shape)


class WorkspacePool(list):
    """Free workspaces of one module. A workspace is taken by a forward and handed back by its
    backward, so two forwards before one backward never share buffers. Not copied or pickled."""

    def __deepcopy__(self, memo: dict) -> WorkspacePool:
        return WorkspacePool()

    def __reduce__(self):
        return (WorkspacePool, ())


class FusedBagAttention(torch.autograd.Function):
    """Train-time :class:`BagAttention` with a hand-written backward (same maths as the reference
    path, checked by the tests).

    Written for 100k+ patch bags on CPU: few, large operations in a (features x N) layout and
    three (N, d) buffers (pre-activations, activations, one gradient), reused across steps. A
    dropped unit's pre-activation is set to ``DROPPED`` (activation and slope exactly 0), so the
    mask needs no storage; the dropout scale is folded into the small weight matrices; the softmax
    column sums come from the outputs (sum_n z_jn (h_n . g_j) = out_j . g_j); the two GEMMs that
    give the gradient of the patch tokens are one; the activation gradient is written over the
    activations, which are dead by then.
    """

    @staticmethod
    def forward(ctx, bag, w_p, b_p, w_g, b_g, w_s, b_s, keys, n_query, p, activation, pool):  # noqa: D102
        ws = pool.pop() if pool else _Workspace()
        n, dim, dt, dev = bag.shape[0], w_p.shape[0], w_p.dtype, w_p.device

        def buf(name: str, *shape: int) -> Tensor:
            return ws.get(name, shape, dt, dev)

        thr = dropout_threshold(p) if p > 0 else 0
        scale = dropout_scale(p) if p > 0 else 1.0
        pre = torch.addmm(b_p, bag.to(dt), w_p.t(), out=buf("pre", n, dim))
        if thr:  # same draws as dropout_mask(), without a separate mask buffer
            words = ws.get("rnd", ((n * dim + 7) // 8,), torch.int64, dev)
            words.random_(-(2**63), 2**63 - 1)
            rnd = words.view(torch.uint8)[: n * dim].view(n, dim)
            drop = torch.lt(rnd, thr, out=rnd.view(torch.bool))
            pre.masked_fill_(drop, DROPPED)
        h = _activation_out(pre, activation, buf("h", n, dim))  # unscaled: true = scale·h
        n_gate, hidden = w_g.shape[0], w_g.shape[0] // 2
        w_cat = torch.cat([w_g, keys], 0).mul_(scale)  # rows: gate | queries | relevance
        b_cat = torch.cat([b_g, b_g.new_zeros(keys.shape[0])])
        s_t = torch.addmm(b_cat[:, None], w_cat, h.t(), out=buf("s", w_cat.shape[0], n))
        tanh_t = torch.tanh(s_t[:hidden], out=buf("tanh", hidden, n))
        sigm_t = torch.sigmoid(s_t[hidden:n_gate], out=buf("sigm", hidden, n))
        gated = torch.mul(tanh_t, sigm_t, out=buf("gated", hidden, n))
        score = torch.addmm(b_s[:, None], w_s, gated)  # (1, N)
        n_rel = keys.shape[0] - n_query
        n_pool = max(n_rel, 1)
        logit = buf("logit", n_pool + n_query, n)
        if n_rel:
            torch.add(s_t[n_gate + n_query :], score, out=logit[:n_pool])
        else:
            logit[:1] = score
        logit[n_pool:] = s_t[n_gate : n_gate + n_query]
        z_t = torch.ops.aten._softmax.out(logit, 1, False, out=buf("z", n_pool + n_query, n))
        out = (z_t @ h).mul_(scale)
        ctx.tensors = (bag, w_p, pre, h, w_cat, tanh_t, sigm_t, gated, w_s, z_t, out)
        ctx.ws, ctx.pool = ws, pool
        ctx.scale, ctx.activation, ctx.n_gate, ctx.n_pool = scale, activation, n_gate, n_pool
        ctx.n_query, ctx.n_rel = n_query, n_rel
        return out[:n_pool].clone(), out[n_pool:].clone()

    @staticmethod
    def backward(ctx, d_pooled, d_attended):  # noqa: D102
        if ctx.tensors is None:
            raise RuntimeError(
                "the fused bag attention supports one backward per forward; set fused=False on "
                "the BagAttention module to backpropagate twice"
            )
        bag, w_p, pre, h, w_cat, tanh_t, sigm_t, gated, w_s, z_t, out = ctx.tensors
        ws, scale, n_gate, n_pool = ctx.ws, ctx.scale, ctx.n_gate, ctx.n_pool
        hidden, n_z, n = n_gate // 2, z_t.shape[0], z_t.shape[1]
        dt, dev = w_p.dtype, w_p.device

        def buf(name: str, *shape: int) -> Tensor:
            return ws.get(name, shape, dt, dev)

        d_out = torch.cat([d_pooled, d_attended], 0)
        colsum = (out * d_out).sum(1, keepdim=True)
        d_out_s = d_out * scale
        # big rows: softmax weights | d gate (tanh, sigmoid) | d query logits | d relevance
        big = buf("big", n_z + w_cat.shape[0], n)
        big[:n_z] = z_t
        d_logit = torch.mm(d_out_s, h.t(), out=buf("dlogit", n_z, n)).sub_(colsum).mul_(z_t)
        d_pool = d_logit[:n_pool]
        d_score = d_pool.sum(0, keepdim=True)  # (1, N)
        d_w_s = d_score @ gated.t()
        d_b_s = d_score.sum().reshape(1)
        d_gated = torch.mm(w_s.t(), d_score, out=buf("dgated", hidden, n))
        g0 = n_z
        d_tanh = torch.mul(tanh_t, tanh_t, out=big[g0 : g0 + hidden])
        d_tanh.neg_().add_(1).mul_(sigm_t).mul_(d_gated)
        d_sigm = torch.sub(1, sigm_t, out=big[g0 + hidden : g0 + n_gate])
        d_sigm.mul_(gated).mul_(d_gated)
        big[g0 + n_gate : g0 + n_gate + ctx.n_query] = d_logit[n_pool:]
        if ctx.n_rel:
            big[g0 + n_gate + ctx.n_query :] = d_pool
        d_s = big[n_z:]
        d_b_g = d_s[:n_gate].sum(1)
        d_w_cat = (d_s @ h).mul_(scale)
        d_h = torch.mm(big.t(), torch.cat([d_out_s, w_cat], 0), out=buf("dh", n, w_p.shape[0]))
        # with a pooled workspace h is dead now and takes the gradient; else keep it (re-entrant)
        reuse = ctx.pool is not None
        d_pre = _activation_backward_out(
            d_h, pre, ctx.activation, h if reuse else torch.empty_like(h)
        )
        d_w_p = d_pre.t() @ bag.to(dt)
        d_b_p = d_pre.sum(0)
        d_bag = (d_pre @ w_p).to(bag.dtype) if ctx.needs_input_grad[0] else None
        grads = (d_bag, d_w_p, d_b_p, d_w_cat[:n_gate], d_b_g, d_w_s, d_b_s, d_w_cat[n_gate:])
        if reuse:
            ctx.tensors, ctx.ws = None, None
            ctx.pool.append(ws)
        return grads + (None, None, None, None)
