"""Baselines, written from the papers' equations (no peer code): SNN, ABMIL, MCAT-, SurvPath- and
PORPOISE-style models, a report-only model, and ``floor`` (the cost floor used by the benchmark).

Every patch-level computation is linear in the bag size N (few queries over N patches, never
patch-to-patch attention). Multimodal baselines fall back to the modality a patient has when the
other one is missing; the fusion layer is used only for patients with both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from kemm.errors import ConfigError
from kemm.models.base import Hyperparameters, InputDims, ModelInput, ModelOutput, SurvivalModel
from kemm.models.blocks import (
    CrossAttention,
    GatedAttentionPool,
    GenomicTokenizer,
    PatchProjection,
    SurvivalHead,
    TransformerBlock,
    masked_mean,
    presence,
    require_any,
    snn_stack,
)
from kemm.models.registry import register


def _need(dims: InputDims, model: str, *, wsi: bool = False, genomics: bool = False) -> None:
    if wsi and dims.wsi_dim is None:
        raise ConfigError(f"{model} needs WSI features (dims.wsi_dim is None)")
    if genomics and not dims.genomic_groups:
        raise ConfigError(f"{model} needs genomics (dims.genomic_groups is empty)")


def _concat_genomics(x: ModelInput, mask: Tensor, device: torch.device, dtype) -> Tensor:
    """(B, sum g_i): all genomic groups side by side; rows without genomics are zeros."""
    flat = torch.cat([g.to(device, dtype) for g in x.genomics], dim=1)
    return torch.where(mask[:, None], flat, torch.zeros((), dtype=dtype, device=device))


def _fallback(both: Tensor, fused: Tensor, has_wsi: Tensor, path: Tensor, omic: Tensor) -> Tensor:
    """Fused embedding where a patient has both modalities, else the one it has."""
    single = torch.where(has_wsi[:, None], path, omic)
    return torch.where(both[:, None], fused, single)


@dataclass(frozen=True)
class BaselineParams(Hyperparameters):
    """What the slide, genomic and text baselines share: token width and dropout rate."""

    dim: int = 256
    dropout: float = 0.25


class _Baseline(SurvivalModel):
    """What the baselines share: the inputs each patient has (an error naming the first patient
    with none of ``requires_any_of``), and for those reading slides the patch projection and,
    for the genomic-guided ones, one token per genomic group."""

    label: ClassVar[str]  # the registered name, for error messages

    def _present(self, x: ModelInput, device: torch.device) -> dict[str, Tensor]:
        present = presence(x, device)
        require_any(present, self.requires_any_of, self.label)
        return present

    def _build_readers(
        self, dims: InputDims, dim: int, dropout: float, *, genomic_tokens: bool = False
    ) -> None:
        """The patch projection, the MIL convention (CLAM, MCAT, PORPOISE): Linear + ReLU +
        Dropout. ``None`` for a run without slides: the multimodal baselines then use their
        genomic branch (the same fallback they apply to a single patient without a slide)."""
        self.proj = None
        if dims.wsi_dim is not None:
            self.proj = PatchProjection(dims.wsi_dim, dim, dropout=dropout, activation="relu")
        if genomic_tokens:
            self.genomic = GenomicTokenizer(dims.genomic_groups, dim, dropout=dropout)

    def _patches(self, x: ModelInput, index: int) -> Tensor:
        """Patient ``index``'s projected patch tokens (N, d)."""
        self.proj.check(x.wsi[index], index)
        return self.proj(x.wsi[index])

    def _group_tokens(
        self, x: ModelInput, has_gen: Tensor, device: torch.device, dtype: torch.dtype
    ) -> Tensor | None:
        """(B, G, d) genomic group tokens; ``None`` for a run without genomics."""
        if x.genomics is None:
            return None
        return self.genomic([g.to(device, dtype) for g in x.genomics], has_gen)


class _SlideGenomicBaseline(_Baseline):
    """A baseline fusing slides and genomics: the run must have genomics, slides are optional
    (without them, for the run or for one patient, the genomic branch is used alone)."""

    modalities = frozenset({"wsi", "genomics"})
    requires_any_of = frozenset({"wsi", "genomics"})

    def _build_fusion_readers(
        self, dims: InputDims, params: BaselineParams, genomic_tokens: bool
    ) -> None:
        """Check that the run has genomics, then build the readers (``_build_readers``)."""
        _need(dims, self.label, genomics=True)
        self._build_readers(dims, params.dim, params.dropout, genomic_tokens=genomic_tokens)


@register("floor", description="Cost floor for benchmarks: Linear(D->d) over the bag, mean, head")
class Floor(_Baseline):
    """Cost floor for benchmarks: one Linear(D -> d) over the whole bag (no patch budget), mean,
    linear head."""

    @dataclass(frozen=True)
    class Params(Hyperparameters):
        dim: int = 256

    label = "floor"
    modalities = frozenset({"wsi"})
    requires_any_of = frozenset({"wsi"})

    def __init__(self, dims: InputDims, n_bins: int, params: Params | None = None) -> None:
        super().__init__(params)
        p = self.params
        _need(dims, "floor", wsi=True)
        self.proj = nn.Linear(dims.wsi_dim, p.dim)
        self.head = nn.Linear(p.dim, n_bins)

    def forward(self, x: ModelInput) -> ModelOutput:
        self._present(x, self.head.weight.device)
        z = torch.stack([self.proj(bag.to(self.head.weight.dtype)).mean(0) for bag in x.wsi])
        return ModelOutput(self.head(z), z)


@register("snn")
class SNN(_Baseline):
    """Self-normalising network on the concatenated genomic groups (Klambauer et al.)."""

    @dataclass(frozen=True)
    class Params(Hyperparameters):
        hidden: tuple[int, ...] = (256, 256)
        dropout: float = 0.25

    label = "snn"
    modalities = frozenset({"genomics"})
    requires_any_of = frozenset({"genomics"})

    def __init__(self, dims: InputDims, n_bins: int, params: Params | None = None) -> None:
        super().__init__(params)
        p = self.params
        _need(dims, "snn", genomics=True)
        self.net = snn_stack(sum(dims.genomic_groups), p.hidden, p.dropout)
        self.head = nn.Linear(p.hidden[-1], n_bins)

    def forward(self, x: ModelInput) -> ModelOutput:
        device, dtype = self.head.weight.device, self.head.weight.dtype
        present = self._present(x, device)
        z = self.net(_concat_genomics(x, present["genomics"], device, dtype))
        return ModelOutput(self.head(z), z)


@register("abmil")
class ABMIL(_Baseline):
    """Gated attention MIL over the WSI bag (Ilse et al. 2018)."""

    @dataclass(frozen=True)
    class Params(BaselineParams):
        attn_hidden: int = 128

    label = "abmil"
    modalities = frozenset({"wsi"})
    requires_any_of = frozenset({"wsi"})

    def __init__(self, dims: InputDims, n_bins: int, params: Params | None = None) -> None:
        super().__init__(params)
        p = self.params
        _need(dims, "abmil", wsi=True)
        self._build_readers(dims, p.dim, p.dropout)
        self.pool = GatedAttentionPool(p.dim, p.attn_hidden, p.dropout)
        self.rho = nn.Sequential(nn.Linear(p.dim, p.dim), nn.ReLU(), nn.Dropout(p.dropout))
        self.head = SurvivalHead(p.dim, n_bins)

    def forward(self, x: ModelInput, explain: bool = False) -> ModelOutput:
        self._present(x, self.rho[0].weight.device)
        pooled, weights = [], []
        for i in range(len(x.wsi)):
            p, w = self.pool(self._patches(x, i))
            pooled.append(p)
            weights.append(w.detach())
        z = self.rho(torch.stack(pooled))
        explanation = {"patients": [{"patch_pool": w} for w in weights]} if explain else {}
        return ModelOutput(self.head(z), z, explanation)


@register("mcat")
class MCAT(_SlideGenomicBaseline):
    """MCAT-style genomic-guided co-attention (Chen et al. 2021): genomic group tokens query the
    patch tokens (G co-attended WSI tokens, linear in N); a transformer and gated attention pooling
    per modality; concatenation fusion. Without genomics the WSI branch pools the patches directly;
    without WSI the genomic embedding is used alone."""

    @dataclass(frozen=True)
    class Params(BaselineParams):
        heads: int = 8
        layers: int = 2

    label = "mcat"

    def __init__(self, dims: InputDims, n_bins: int, params: Params | None = None) -> None:
        super().__init__(params)
        p = self.params
        dim, heads, layers, dropout = p.dim, p.heads, p.layers, p.dropout
        self._build_fusion_readers(dims, p, genomic_tokens=True)
        self.coattn = CrossAttention(dim, 1, project_kv=True)  # MCAT: one head

        def branch() -> tuple[nn.ModuleList, GatedAttentionPool, nn.Sequential]:
            blocks = nn.ModuleList(
                TransformerBlock(dim, heads, dropout=dropout) for _ in range(layers)
            )
            rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))
            return blocks, GatedAttentionPool(dim, dim, dropout), rho

        self.path_blocks, self.path_pool, self.path_rho = branch()
        self.omic_blocks, self.omic_pool, self.omic_rho = branch()
        self.path_fallback = GatedAttentionPool(dim, dim, dropout)
        self.fuse = nn.Sequential(
            nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU()
        )
        self.head = SurvivalHead(dim, n_bins)

    def forward(self, x: ModelInput) -> ModelOutput:
        device, dtype = self.head.net[-1].weight.device, self.head.net[-1].weight.dtype
        present = self._present(x, device)
        has_wsi, has_gen = present["wsi"], present["genomics"]
        batch = x.batch_size
        tokens = self._group_tokens(x, has_gen, device, dtype)
        if tokens is None:
            tokens = torch.zeros(batch, len(self.genomic.nets), self.path_rho[0].in_features)
            tokens = tokens.to(device, dtype)
        zero = tokens.new_zeros(tokens.shape[-1])
        path = []
        for b in range(batch):
            if not bool(has_wsi[b]):
                path.append(zero)
                continue
            h = self._patches(x, b)
            if bool(has_gen[b]):
                co = self.coattn(tokens[b : b + 1], h[None]).out
                for block in self.path_blocks:
                    co, _ = block(co)
                path.append(self.path_pool(co[0])[0])
            else:
                path.append(self.path_fallback(h)[0])
        path = self.path_rho(torch.stack(path))
        omic = tokens
        for block in self.omic_blocks:
            omic, _ = block(omic)
        omic = self.omic_rho(self.omic_pool(omic)[0])
        z = _fallback(has_wsi & has_gen, self.fuse(torch.cat([path, omic], 1)), has_wsi, path, omic)
        return ModelOutput(self.head(z), z)


@register("survpath")
class SurvPath(_SlideGenomicBaseline):
    """SurvPath-style structured attention (Jaume et al. 2024): pathway (genomic group) tokens and
    patch tokens in one attention layer where pathway->pathway, pathway->patch and patch->pathway
    interactions are kept and patch<->patch is dropped (linear in N); mean of each token set,
    concatenated. With one modality missing, its attention terms are dropped."""

    Params = BaselineParams
    label = "survpath"

    def __init__(self, dims: InputDims, n_bins: int, params: BaselineParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        dim, dropout = p.dim, p.dropout
        self._build_fusion_readers(dims, p, genomic_tokens=True)
        self.norm = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, 1, project_kv=True)
        self.post_norm = nn.LayerNorm(dim)
        self.fuse = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.head = SurvivalHead(dim, n_bins, hidden=dim // 2)

    def forward(self, x: ModelInput) -> ModelOutput:
        device, dtype = self.norm.weight.device, self.norm.weight.dtype
        present = self._present(x, device)
        has_wsi, has_gen = present["wsi"], present["genomics"]
        tokens = self._group_tokens(x, has_gen, device, dtype)
        zero = self.norm.weight.new_zeros(self.norm.weight.shape[0])
        pw_all = self.norm(tokens) if tokens is not None else None
        # A patient without a bag attends over its pathway tokens alone: one batched call for
        # all of them (the attention is per patient either way; a loop cost a tenth of a
        # benchmark). Patients with a bag have keys of their own length: one at a time.
        no_bag = (
            self.post_norm(pw_all + self.attn(pw_all, pw_all).out).mean(1)
            if pw_all is not None
            else zero.expand(x.batch_size, -1)
        )
        paths, patches = [zero] * x.batch_size, [zero] * x.batch_size
        for b in has_wsi.nonzero().flatten().tolist():
            pw = pw_all[b] if pw_all is not None and bool(has_gen[b]) else None
            ph = self.norm(self._patches(x, b))
            if pw is not None:
                keys = torch.cat([pw, ph])  # pathway -> pathway, patches
                upd = self.attn(pw[None], keys[None]).out[0]
                paths[b] = self.post_norm(pw + upd).mean(0)
            upd = self.attn(ph[None], pw[None]).out[0] if pw is not None else 0.0
            patches[b] = self.post_norm(ph + upd).mean(0)  # patch -> pathway only
        bag_free = (has_gen & ~has_wsi)[:, None]
        path_emb = torch.where(bag_free, no_bag, torch.stack(paths))
        patch_emb = torch.stack(patches)
        fused = self.fuse(torch.cat([path_emb, patch_emb], 1))
        z = _fallback(has_wsi & has_gen, fused, has_wsi, patch_emb, path_emb)
        return ModelOutput(self.head(z), z)


class _KroneckerFusion(nn.Module):
    """Gated Kronecker (bilinear) fusion (Pathomic Fusion / PORPOISE): each modality is gated by
    both, reduced to k dims, extended by a constant 1 and the outer product is projected."""

    def __init__(self, dim: int, k: int = 32, dropout: float = 0.25) -> None:
        super().__init__()
        self.gate_p, self.gate_g = nn.Linear(2 * dim, k), nn.Linear(2 * dim, k)
        self.red_p, self.red_g = nn.Linear(dim, k), nn.Linear(dim, k)
        self.out = nn.Sequential(
            nn.Dropout(dropout), nn.Linear((k + 1) ** 2, dim), nn.ReLU(), nn.Dropout(dropout)
        )

    def forward(self, hp: Tensor, hg: Tensor) -> Tensor:
        both = torch.cat([hp, hg], 1)
        op = torch.relu(self.red_p(hp)) * torch.sigmoid(self.gate_p(both))
        og = torch.relu(self.red_g(hg)) * torch.sigmoid(self.gate_g(both))
        one = op.new_ones(op.shape[0], 1)
        outer = torch.cat([op, one], 1)[:, :, None] * torch.cat([og, one], 1)[:, None, :]
        return self.out(outer.flatten(1))


class _GatedConcat(nn.Module):
    """Each modality scaled by a sigmoid gate computed from both, concatenated, projected."""

    def __init__(self, dim: int, dropout: float = 0.25) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * dim, 2)
        self.out = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, hp: Tensor, hg: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate(torch.cat([hp, hg], 1)))
        return self.out(torch.cat([g[:, :1] * hp, g[:, 1:] * hg], 1))


@register("porpoise")
class PORPOISE(_SlideGenomicBaseline):
    """PORPOISE-style late fusion (Chen et al. 2022): ABMIL WSI embedding + SNN genomic embedding,
    gated Kronecker (``fusion="kron"``) or gated concatenation (``"concat"``) fusion."""

    @dataclass(frozen=True)
    class Params(BaselineParams):
        fusion: str = "kron"
        fusion_dim: int = 32

    label = "porpoise"

    def __init__(self, dims: InputDims, n_bins: int, params: Params | None = None) -> None:
        super().__init__(params)
        p = self.params
        dim, fusion, dropout = p.dim, p.fusion, p.dropout
        self._build_fusion_readers(dims, p, genomic_tokens=False)
        self.pool = GatedAttentionPool(dim, dim, dropout)
        self.path_rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.snn = snn_stack(sum(dims.genomic_groups), [dim, dim], dropout)
        if fusion == "kron":
            self.fusion = _KroneckerFusion(dim, p.fusion_dim, dropout)
        elif fusion == "concat":
            self.fusion = _GatedConcat(dim, dropout)
        else:
            raise ConfigError(f"porpoise fusion must be 'kron' or 'concat', got {fusion!r}")
        self.head = SurvivalHead(dim, n_bins)

    def forward(self, x: ModelInput) -> ModelOutput:
        device, dtype = self.path_rho[0].weight.device, self.path_rho[0].weight.dtype
        present = self._present(x, device)
        has_wsi, has_gen = present["wsi"], present["genomics"]
        zero = torch.zeros(self.path_rho[0].in_features, device=device, dtype=dtype)
        pooled = []
        for b in range(x.batch_size):
            pooled.append(self.pool(self._patches(x, b))[0] if bool(has_wsi[b]) else zero)
        path = self.path_rho(torch.stack(pooled))
        if x.genomics is not None:
            omic = self.snn(_concat_genomics(x, has_gen, device, dtype))
        else:
            omic = torch.zeros_like(path)
        z = _fallback(has_wsi & has_gen, self.fusion(path, omic), has_wsi, path, omic)
        return ModelOutput(self.head(z), z)


@register("report_only")
class ReportOnly(_Baseline):
    """Report statements (frozen text embeddings, projected) pooled by gated attention or mean,
    optionally with the PBK statements, -> survival head."""

    @dataclass(frozen=True)
    class Params(BaselineParams):
        pool: str = "attention"
        use_pbk: bool = False

    label = "report_only"
    modalities = frozenset({"report", "pbk"})
    requires_any_of = frozenset({"report"})

    def __init__(self, dims: InputDims, n_bins: int, params: Params | None = None) -> None:
        super().__init__(params)
        p = self.params
        dim, pool, use_pbk, dropout = p.dim, p.pool, p.use_pbk, p.dropout
        if dims.text_dim is None:
            raise ConfigError("report_only needs text embeddings (dims.text_dim is None)")
        if pool not in ("attention", "mean"):
            raise ConfigError(f"report_only pool must be 'attention' or 'mean', got {pool!r}")
        self.use_pbk, self.pool_kind = use_pbk, pool
        self.proj = nn.Sequential(
            nn.Linear(dims.text_dim, dim), nn.GELU(), nn.Dropout(dropout), nn.LayerNorm(dim)
        )
        self.text_type = nn.Parameter(torch.zeros(2, dim))
        self.pool = GatedAttentionPool(dim, dim // 2) if pool == "attention" else None
        self.head = SurvivalHead(dim, n_bins, dropout=dropout)

    def _tokens(self, emb: Tensor, mask: Tensor | None, kind: int) -> tuple[Tensor, Tensor]:
        dtype, device = self.text_type.dtype, self.text_type.device
        emb = emb.detach().to(device, dtype)
        if mask is None:
            mask = torch.ones(emb.shape[:2], dtype=torch.bool, device=device)
        mask = mask.to(device).bool()
        emb = torch.where(mask[..., None], emb, torch.zeros((), dtype=dtype, device=device))
        return self.proj(emb) + self.text_type[kind], mask

    def forward(self, x: ModelInput, explain: bool = False) -> ModelOutput:
        self._present(x, self.text_type.device)
        tokens, mask = self._tokens(x.report, x.report_mask, 1)
        if self.use_pbk and x.pbk is not None:
            pbk, pmask = self._tokens(x.pbk, x.pbk_mask, 0)
            tokens, mask = torch.cat([tokens, pbk], 1), torch.cat([mask, pmask], 1)
        if self.pool is None:
            z, weights = masked_mean(tokens, mask), None
        else:
            z, weights = self.pool(tokens, mask)
        explanation = {}
        if explain and weights is not None:
            explanation = {"patients": [{"statement_weight": w.detach()} for w in weights]}
        return ModelOutput(self.head(z), z, explanation)
