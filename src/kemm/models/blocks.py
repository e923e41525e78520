"""Shared building blocks of the survival models.

Everything that touches the patches of a slide is linear in the bag size N: a few queries attend to
the N patch tokens (never patch-to-patch attention), gated attention pooling scores each patch with
a thin gate, and evaluation projects huge bags in chunks. The hand-written kernels these blocks use
(byte-draw dropout, the fused train-time bag attention) are in :mod:`kemm.models.kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kemm.models.base import ModelInput, PatchBudget
from kemm.models.kernels import (
    FusedBagAttention,
    MaskedScale,
    WorkspacePool,
    dropout_mask,
    dropout_scale,
    dropout_threshold,
)


def masked_softmax(logits: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """Softmax over ``dim`` ignoring positions where ``mask`` is False; an all-masked slice gives
    zeros (not NaN), with finite gradients."""
    if mask is None:
        return logits.softmax(dim)
    logits = logits.masked_fill(~mask, float("-inf"))
    peak = logits.amax(dim, keepdim=True).detach()
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    weights = torch.exp(logits - peak)
    total = weights.sum(dim, keepdim=True)
    return weights / total.clamp_min(torch.finfo(weights.dtype).tiny)


def masked_mean(x: Tensor, mask: Tensor | None, dim: int = 1) -> Tensor:
    """Mean of ``x`` (..., T, d) over the token axis ``dim`` where ``mask`` (..., T) is True;
    zeros for an all-masked slice. Masked entries may hold anything (even NaN)."""
    if mask is None:
        return x.mean(dim)
    m = mask.unsqueeze(-1)
    total = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim)
    count = m.sum(dim).clamp_min(1).to(x.dtype)
    return total / count


def presence(x: ModelInput, device: torch.device | str | None = None) -> dict[str, Tensor]:
    """(B,) bool per modality: which patients have it (``False`` for a modality the run lacks)."""
    batch = x.batch_size
    none = torch.zeros(batch, dtype=torch.bool, device=device)
    every = torch.ones(batch, dtype=torch.bool, device=device)
    genomics = none
    if x.genomics is not None:
        genomics = every if x.genomics_mask is None else x.genomics_mask.to(device).bool()
    pbk = none
    if x.pbk is not None:
        pbk = every if x.pbk_mask is None else x.pbk_mask.to(device).bool().any(1)
    return {
        "wsi": x.has_wsi().to(device),
        "genomics": genomics,
        "report": x.has_report().to(device),
        "pbk": pbk,
        "clinical": every if x.clinical is not None else none,
    }


def require_any(
    present: dict[str, Tensor], needs: Sequence[str] | frozenset[str], model: str
) -> None:
    """Raise ``ValueError`` naming the first batch index with none of ``needs``."""
    if not needs:
        return
    ok = torch.zeros_like(next(iter(present.values())))
    for name in needs:
        ok = ok | present[name]
    if not bool(ok.all()):
        index = int((~ok).nonzero()[0, 0])
        names = " or ".join(sorted(needs))
        raise ValueError(f"{model}: patient at batch index {index} has no {names}")


class SNNBlock(nn.Sequential):
    """Self-normalising block (Klambauer et al. 2017): Linear + ELU + AlphaDropout, LeCun-normal
    weights."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.25) -> None:
        linear = nn.Linear(in_dim, out_dim)
        nn.init.normal_(linear.weight, 0.0, 1.0 / math.sqrt(in_dim))
        nn.init.zeros_(linear.bias)
        super().__init__(linear, nn.ELU(), nn.AlphaDropout(dropout))


def snn_stack(in_dim: int, widths: Sequence[int], dropout: float = 0.25) -> nn.Sequential:
    """Consecutive :class:`SNNBlock` s, ``in_dim -> widths[0] -> ... -> widths[-1]``."""
    blocks, prev = [], in_dim
    for width in widths:
        blocks.append(SNNBlock(prev, width, dropout))
        prev = width
    return nn.Sequential(*blocks)


class GenomicTokenizer(nn.Module):
    """One SNN per genomic group (gene family / pathway) -> G tokens of width ``dim``."""

    def __init__(
        self,
        group_sizes: Sequence[int],
        dim: int = 256,
        *,
        hidden: int | None = None,
        depth: int = 2,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if not group_sizes:
            raise ValueError("GenomicTokenizer needs at least one genomic group")
        widths = [hidden or dim] * (depth - 1) + [dim]
        self.group_sizes = [int(g) for g in group_sizes]
        self.nets = nn.ModuleList(snn_stack(g, widths, dropout) for g in self.group_sizes)

    def forward(self, groups: Sequence[Tensor], mask: Tensor | None = None) -> Tensor:
        """``groups``: G tensors (B, g_i); ``mask`` (B,) patients that have genomics. -> (B, G, d).
        Rows of patients without genomics are zeroed before the SNNs (they are masked later)."""
        if len(groups) != len(self.nets):
            raise ValueError(f"expected {len(self.nets)} genomic groups, got {len(groups)}")
        tokens = []
        for i, (net, x) in enumerate(zip(self.nets, groups, strict=True)):
            if x.shape[-1] != self.group_sizes[i]:
                raise ValueError(
                    f"genomic group {i} has {x.shape[-1]} features, model expects "
                    f"{self.group_sizes[i]}"
                )
            if mask is not None:
                x = torch.where(mask[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
            tokens.append(net(x))
        return torch.stack(tokens, dim=1)


class FactTokenizer(nn.Module):
    """One token per report fact (T, N, stage, grade, ...) from its encoded columns.

    A fact ``f`` with columns ``J_f`` (e.g. ``grade>=2, grade>=3, grade>=4, grade=unknown``)
    becomes ``LayerNorm(b_f + sum_{j in J_f} x_j w_j)``: a learned embedding of the fact plus
    one learned direction per level, so grade 1 and grade 4 differ by construction (three
    cumulative columns) instead of by the wording of a sentence (a feature tokenizer in the
    style of FT-Transformer, over the cumulative coding of :mod:`kemm.knowledge.covariates`).
    """

    def __init__(self, groups: Sequence[int], dim: int) -> None:
        super().__init__()
        self.n_facts = max(groups) + 1 if groups else 0
        self.register_buffer("groups", torch.as_tensor(list(groups), dtype=torch.long))
        self.weight = nn.Parameter(torch.randn(len(groups), dim) * 0.1)
        self.bias = nn.Parameter(torch.randn(self.n_facts, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, F) encoded fact columns -> (B, n_facts, d)."""
        per_column = x[..., None] * self.weight  # (B, F, d)
        tokens = self.bias.expand(x.shape[0], -1, -1).index_add(1, self.groups, per_column)
        return self.norm(tokens)


class DirectedLinear(nn.Module):
    """A linear log-hazard term ``x @ w`` whose coefficients keep the sign a prior gives them
    (``directions``: +1 worse, -1 better, 0 free), starting at zero like a Cox model before
    its first step.

    The constraint is a projection (projected gradient descent): each forward first clips the
    coefficients to their allowed half-line, so an optimizer step that crosses zero leaves the
    coefficient at zero, from where the next gradient can move it again. (A ``softplus``
    reparametrisation would start near zero with a vanishing gradient, and under Adam such a
    coefficient barely moves in a short schedule.)"""

    def __init__(self, directions: Sequence[int], constrained: bool = True) -> None:
        super().__init__()
        signs = [int(d) if constrained else 0 for d in directions]
        self.register_buffer("signs", torch.as_tensor(signs, dtype=torch.float32))
        self.weight = nn.Parameter(torch.zeros(len(signs)))

    def forward(self, x: Tensor) -> Tensor:
        """(B, F) -> (B, 1)."""
        with torch.no_grad():
            wrong = self.signs * self.weight < 0
            self.weight.masked_fill_(wrong, 0.0)
        return x @ self.weight[:, None]


class Dropout(nn.Module):
    """Inverted dropout drawing its mask from random bytes (:func:`dropout_mask`).

    Same semantics as ``nn.Dropout`` (p quantised to 1/256); ``bernoulli_`` costs several times
    more on CPU, where dropout was a quarter of a small model's training step.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        dropout_threshold(p)  # validates p
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        dropped = dropout_mask(x.shape, self.p, x.device)
        return MaskedScale.apply(x, dropped, dropout_scale(self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _activation(name: str):
    if name == "gelu":
        return F.gelu
    if name == "relu":
        return F.relu
    raise ValueError(f"activation must be 'gelu' or 'relu', got {name!r}")


class PatchProjection(nn.Module):
    """Linear(D -> d) + activation + dropout over a bag of patch features.

    Train mode: a random subsample of at most ``budget.max_train_patches`` patches (``None`` =
    whole bag), dropout applied in place. Eval mode: the whole bag, projected
    ``budget.eval_chunk_size`` patches at a time into one preallocated (N, d) output, so memory
    stays bounded. The budget is the run's (:meth:`SurvivalModel.set_patch_budget`).
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 256,
        *,
        dropout: float = 0.25,
        activation: str = "gelu",
        budget: PatchBudget = PatchBudget(),
    ) -> None:
        super().__init__()
        self.in_dim, self.dim = int(in_dim), int(dim)
        self.linear = nn.Linear(in_dim, dim)
        self.p = float(dropout)
        dropout_threshold(self.p)  # validates
        self.budget = budget
        self.activation = activation
        self._act = _activation(activation)

    def check(self, bag: Tensor, index: int | None = None) -> None:
        """Clear error for a bag whose feature size does not match the model."""
        if bag.ndim != 2 or bag.shape[1] != self.in_dim:
            where = f" at batch index {index}" if index is not None else ""
            raise ValueError(
                f"WSI bag{where} has shape {tuple(bag.shape)}, expected (N, {self.in_dim}); "
                "were the features made by a different patch encoder than the model was built for?"
            )

    def subsample(self, bag: Tensor) -> tuple[Tensor, Tensor | None]:
        """Train-time random cap on the bag size -> (bag, kept indices or None)."""
        cap = self.budget.max_train_patches
        if not self.training or cap is None or bag.shape[0] <= cap:
            return bag, None
        keep = torch.randperm(bag.shape[0], device=bag.device)[:cap].sort().values
        return bag[keep], keep

    def project(self, bag: Tensor) -> Tensor:
        """Project without subsampling: dropout in train mode, chunked in eval mode."""
        dtype = self.linear.weight.dtype  # e.g. float16 feature files into a float32 model

        def proj(x: Tensor) -> Tensor:
            return self._act(self.linear(x.to(dtype)))

        if self.training:
            h = proj(bag)
            if self.p > 0:
                drop = dropout_mask(h.shape, self.p, h.device)
                scale = dropout_scale(self.p)
                # GELU saves its input, so its output may change in place; ReLU saves its output
                if self.activation == "gelu":
                    h = h.masked_fill_(drop, 0.0).mul_(scale)
                else:
                    h = h.masked_fill(drop, 0.0) * scale
            return h
        chunk = self.budget.eval_chunk_size
        if chunk is None or bag.shape[0] <= chunk:
            return proj(bag)
        first = proj(bag[:chunk])
        out = first.new_empty(bag.shape[0], self.dim)
        out[:chunk] = first
        for start in range(chunk, bag.shape[0], chunk):
            out[start : start + chunk] = proj(bag[start : start + chunk])
        return out

    def forward(self, bag: Tensor) -> Tensor:
        self.check(bag)
        return self.project(self.subsample(bag)[0])


class GatedAttentionPool(nn.Module):
    """Gated attention pooling (Ilse et al. 2018): a_n ∝ exp(w·(tanh(V h_n) ⊙ σ(U h_n)) + b_n).

    ``V`` and ``U`` share one Linear(d -> 2·hidden), so scoring N tokens is one thin GEMM. An
    optional additive ``bias`` (e.g. knowledge relevance) and a key-padding ``mask`` are supported.
    """

    def __init__(self, dim: int, hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.gate = nn.Linear(dim, 2 * hidden)
        self.score = nn.Linear(hidden, 1)
        self.drop = Dropout(dropout)

    def score_from_gate(self, gate: Tensor) -> Tensor:
        """Attention logits (..., N) from the gate pre-activations (..., N, 2·hidden)."""
        tanh_part, sigm_part = gate.split(self.hidden, dim=-1)
        return self.score(self.drop(torch.tanh(tanh_part) * torch.sigmoid(sigm_part))).squeeze(-1)

    def logits(self, h: Tensor) -> Tensor:
        return self.score_from_gate(self.gate(h))

    def forward(
        self, h: Tensor, mask: Tensor | None = None, bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``h`` (B, N, d) or (N, d) -> (pooled (B, d) or (d,), weights (B, N) or (N,))."""
        scores = self.logits(h)
        if bias is not None:
            scores = scores + bias
        weights = masked_softmax(scores, mask, dim=-1)
        pooled = (weights.unsqueeze(-2) @ h).squeeze(-2)
        return pooled, weights


@dataclass
class Attention:
    """Result of :class:`CrossAttention`: output (B, Q, d); weights / logits (B, H, Q, N)."""

    out: Tensor
    weights: Tensor | None = None
    logits: Tensor | None = None


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, Q, d) over keys (B, N, dk).

    ``project_kv=True``: standard attention with key/value projections (for short token sets).
    ``project_kv=False``: the keys serve as keys *and* values (no per-key projections; the
    learned projection is on the query side), and heads are block-diagonal query slices, so the
    only work over N is two thin GEMMs and memory is O(H·Q·N) -- meant for few queries over
    100k+ patch tokens. Queries with no valid key get a zero output. Weights are returned only
    when asked (never patch-by-patch).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        *,
        dropout: float = 0.0,
        project_kv: bool = True,
        key_dim: int | None = None,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.project_kv = project_kv
        self.q = nn.Linear(dim, dim)
        if project_kv:
            self.k = nn.Linear(key_dim or dim, dim)
            self.v = nn.Linear(key_dim or dim, dim)
        elif key_dim not in (None, dim):
            raise ValueError("project_kv=False needs keys of width dim")
        self.out = nn.Linear(dim, dim)
        self.drop = Dropout(dropout)
        head_of = torch.arange(dim) // self.head_dim
        self.register_buffer(
            "head_mask", (head_of[None, :] == torch.arange(heads)[:, None]).float(), False
        )

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        key_mask: Tensor | None = None,
        *,
        need_weights: bool = False,
        need_logits: bool = False,
    ) -> Attention:
        batch, n_query, _ = query.shape
        n_key = key.shape[1]
        heads, head_dim = self.heads, self.head_dim
        q = self.q(query) * head_dim**-0.5
        mask = key_mask[:, None, None, :] if key_mask is not None else None
        if self.project_kv:
            k = self.k(key).view(batch, n_key, heads, head_dim).transpose(1, 2)
            v = self.v(key).view(batch, n_key, heads, head_dim).transpose(1, 2)
            if heads > 1:  # strided batched GEMMs are slow on CPU
                k, v = k.contiguous(), v.contiguous()
            qh = q.view(batch, n_query, heads, head_dim).transpose(1, 2)
            logits = qh @ k.transpose(-1, -2)
            weights = masked_softmax(logits, mask)
            ctx = (self.drop(weights) @ v).transpose(1, 2).reshape(batch, n_query, self.dim)
        else:
            if heads == 1:
                logits = (q @ key.transpose(1, 2)).unsqueeze(1)
            else:
                hm = self.head_mask.to(q.dtype)
                qb = (q.unsqueeze(1) * hm[None, :, None, :]).reshape(batch, heads * n_query, -1)
                logits = (qb @ key.transpose(1, 2)).view(batch, heads, n_query, n_key)
            weights = masked_softmax(logits, mask)
            ctx = self.drop(weights).reshape(batch, heads * n_query, n_key) @ key
            if heads > 1:
                ctx = ctx.view(batch, heads, n_query, -1)
                ctx = (ctx * self.head_mask.to(ctx.dtype)[None, :, None, :]).sum(1)
        out = self.out(ctx)
        if key_mask is not None:
            out = torch.where(key_mask.any(1)[:, None, None], out, torch.zeros_like(out))
        return Attention(out, weights if need_weights else None, logits if need_logits else None)


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer over a short token sequence with a padding mask."""

    def __init__(
        self, dim: int, heads: int = 4, *, mlp_ratio: float = 2.0, dropout: float = 0.1
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.drop = Dropout(dropout)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, *, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        y = self.norm1(x)
        att = self.attn(y, y, mask, need_weights=need_weights)
        x = x + self.drop(att.out)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, att.weights


class SurvivalHead(nn.Module):
    """MLP from an embedding to ``n_bins`` discrete-time hazard logits."""

    def __init__(
        self, dim: int, n_bins: int, *, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, n_bins)
            )
        else:
            self.net = nn.Sequential(Dropout(dropout), nn.Linear(dim, n_bins))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


@dataclass
class BagReadout:
    """What :class:`BagAttention` reads from one bag.

    ``pooled`` (J, d): one gated-attention pool per query set; ``attended`` (Q, d): per-query
    attention context (keys = values = patch tokens); ``pool_weights`` (J, N) and
    ``query_weights`` (Q, N) when asked; ``kept`` the train-time subsample indices (or None).
    """

    pooled: Tensor
    attended: Tensor
    pool_weights: Tensor | None = None
    query_weights: Tensor | None = None
    kept: Tensor | None = None


class BagAttention(nn.Module):
    """Reads a bag once: :class:`PatchProjection`; Q queries attending to the patch tokens
    (one full-width head; keys = values = patch tokens, only the query is projected); and J gated
    attention pools whose logits get an additive *relevance* bias, the similarity of each patch
    token to the centroid of a subset of the queries, times a learned ``beta``.

    Over the N patches this costs the projection, one (N x d)·(d x (2·hidden + Q + J)) GEMM and
    one (Q + J x N)·(N x d) GEMM; memory is O(N·(d + Q)). In train mode with autograd (and no
    autocast) a fused autograd function (:class:`FusedBagAttention`) is used; the reference path
    serves evaluation (chunked projection), explanations and autocast.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 256,
        *,
        pool_hidden: int = 32,
        dropout: float = 0.25,
        activation: str = "gelu",
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.proj = PatchProjection(in_dim, dim, dropout=dropout, activation=activation)
        self.query = nn.Linear(dim, dim)
        self.pool = GatedAttentionPool(dim, pool_hidden)
        self.beta = nn.Parameter(torch.ones(()))
        self.scale = dim**-0.5
        self.fused = fused
        self._workspaces = WorkspacePool()

    def train(self, mode: bool = True) -> BagAttention:
        if not mode:
            self._workspaces.clear()  # evaluation does not use the training scratch buffers
        return super().train(mode)

    def keys(self, queries: Tensor, pool_sets: Sequence[Tensor] | None) -> Tensor:
        """Projected queries (Q, d), then one relevance direction per pool set (J, d)."""
        q = self.query(queries) * self.scale
        if pool_sets is None:
            return q
        weights = q.new_zeros(len(pool_sets), q.shape[0])
        for j, idx in enumerate(pool_sets):
            if idx.numel():
                weights[j, idx.to(q.device)] = 1.0 / idx.numel()
        return torch.cat([q, self.beta * (weights @ q)], 0)

    def forward(
        self,
        bag: Tensor,
        queries: Tensor,
        pool_sets: Sequence[Tensor] | None = None,
        *,
        need_weights: bool = False,
        index: int | None = None,
    ) -> BagReadout:
        """``bag`` (N, D); ``queries`` (Q, d); ``pool_sets``: J index tensors into the queries
        (one knowledge-biased pool each; an empty set gives no bias), or None for one unbiased
        pool."""
        self.proj.check(bag, index)
        bag, kept = self.proj.subsample(bag)
        n_query = queries.shape[0]
        keys = self.keys(queries, pool_sets)
        use_fused = (
            self.fused
            and self.training
            and torch.is_grad_enabled()
            and not need_weights
            and not torch.is_autocast_enabled(bag.device.type)
        )
        if use_fused:
            proj, pool = self.proj, self.pool
            pooled, attended = FusedBagAttention.apply(
                bag,
                proj.linear.weight,
                proj.linear.bias,
                pool.gate.weight,
                pool.gate.bias,
                pool.score.weight,
                pool.score.bias,
                keys,
                n_query,
                proj.p,
                proj.activation,
                self._workspaces if bag.device.type == "cpu" else None,
            )
            return BagReadout(pooled, attended, kept=kept)
        h = self.proj.project(bag)
        score = self.pool.score_from_gate(self.pool.gate(h))
        logits = h @ keys.t()  # (N, Q + J)
        pool_logits = score[:, None] + logits[:, n_query:] if pool_sets else score[:, None]
        pool_w = pool_logits.softmax(0)
        query_w = logits[:, :n_query].softmax(0)
        pooled = pool_w.t() @ h
        attended = query_w.t() @ h
        if need_weights:
            return BagReadout(pooled, attended, pool_w.t(), query_w.t(), kept)
        return BagReadout(pooled, attended, kept=kept)
