"""KEMM: LLM-driven knowledge-enhanced multimodal survival model, as reconstructed in DESIGN §2.

Per patient: a WSI bag, genomic groups, refined report statements and the PBK of the cancer type
(general statements + low / intermediate / high risk prototypes), all optional except that WSI or
genomics must be present. Text arrives as frozen embeddings (E) and is projected to d. Beyond the
paper, clinical covariates (age, sex, stage parsed from the report) enter, when the run provides
them, as one fusion token and a linear term on the hazard logits (``use_clinical``).

Forward (one *view* of the knowledge): knowledge tokens K = [learned slots; PBK; report]
(the *student* view drops the report tokens) ->
KECM (a) each knowledge token queries the patch tokens and the genomic tokens -> one
knowledge-focused WSI token and genomic token per knowledge token (linear in N);
(b) gated attention pools of patches and of genomic tokens, biased by each token's similarity to
the knowledge centroid -> global WSI and genomic embeddings;
(c) co-attention between the focused WSI and genomic token sets, then a small transformer over
[CLS; WSI global; WSI tokens; genomic global; genomic tokens] -> fused embedding z -> hazard logits.

Training (``training_step``): survival loss on the teacher view (with reports); for patients with a
report, the student view (without) gets the survival loss too and distils the teacher's hazards
(KL) and embedding (MSE, teacher detached); PBK risk alignment of z to the risk prototypes;
report alignment of the (report-free) modality embeddings to the mean report embedding.
Inference: ``forward`` uses reports where a patient has them; for a patient without one the
teacher view *is* the student view, so reports are never required.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kemm.errors import ConfigError
from kemm.models.base import (
    AlternativePath,
    Hyperparameters,
    InputDims,
    ModelInput,
    ModelOutput,
    SurvivalLoss,
    SurvivalModel,
)
from kemm.models.blocks import (
    BagAttention,
    CrossAttention,
    DirectedLinear,
    FactTokenizer,
    GatedAttentionPool,
    GenomicTokenizer,
    SurvivalHead,
    TransformerBlock,
    masked_mean,
    presence,
)
from kemm.models.registry import register
from kemm.survival.losses import SurvivalBatch

RISK_LEVELS = ("low", "intermediate", "high")  # order of ModelInput.pbk_risk
KD_LOSSES = ("kl", "bce", "event_time")
REPORT_ALIGNMENTS = ("cosine", "infonce")
_SEGMENTS = (
    "cls", "wsi_global", "wsi_tokens", "genomic_global", "genomic_tokens", "clinical", "knowledge"
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# loss helpers (pure functions, tested on their own)
# --------------------------------------------------------------------------------------------


def risk_level_of_bin(n_bins: int) -> Tensor:
    """(n_bins,) risk level index of an event in each bin: first bin -> high (2), last bin ->
    low (0), any bin in between -> intermediate (1)."""
    levels = torch.ones(n_bins, dtype=torch.long)
    if n_bins >= 2:
        levels[0], levels[-1] = 2, 0
    return levels


def risk_level_targets(bins: Tensor, event: Tensor, n_bins: int) -> Tensor:
    """(B, 3) bool: the risk levels (low, intermediate, high) consistent with each outcome.

    An event in bin b allows only that bin's level. A patient censored in bin b is known to have
    its event in bin b or later, so every level of a bin >= b is allowed: censored in the last bin
    -> low; in a middle bin -> low or intermediate; in the first bin -> anything (uninformative,
    the row is all True and contributes no loss).
    """
    if n_bins < 2:
        return torch.ones(bins.shape[0], 3, dtype=torch.bool, device=bins.device)
    onehot = F.one_hot(risk_level_of_bin(n_bins), 3).bool().to(bins.device)  # (n_bins, 3)
    later = onehot.flip(0).cummax(0).values.flip(0)  # any level at bin >= b
    bins = bins.long().clamp(0, n_bins - 1)
    return torch.where(event.bool()[:, None], onehot[bins], later[bins])


def hazard_distillation(student_logits: Tensor, teacher_logits: Tensor, kind: str = "kl") -> Tensor:
    """(B,) distance from the student's to the (detached) teacher's discrete-time hazards.

    ``kl``: sum over bins of the Bernoulli KL(teacher || student) of the per-bin hazards;
    ``bce``: the same with the teacher's hazards as soft targets (KL + teacher entropy);
    ``event_time``: KL between the event-time distributions (n_bins + 1 outcomes: an event in each
    bin, or survival past the last one).
    """
    t = teacher_logits.detach()
    s = student_logits
    if kind == "kl":
        pt = torch.sigmoid(t)
        per_bin = pt * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - pt) * (
            F.logsigmoid(-t) - F.logsigmoid(-s)
        )
        return per_bin.sum(1)
    if kind == "bce":
        target = torch.sigmoid(t)
        return F.binary_cross_entropy_with_logits(s, target, reduction="none").sum(1)
    if kind == "event_time":

        def log_dist(logits: Tensor) -> Tensor:
            log_surv = torch.cumsum(F.logsigmoid(-logits), 1)
            before = F.pad(log_surv[:, :-1], (1, 0))
            return torch.cat([F.logsigmoid(logits) + before, log_surv[:, -1:]], 1)

        lt, ls = log_dist(t), log_dist(s)
        return (lt.exp() * (lt - ls)).sum(1)
    raise ConfigError(f"kd_loss must be one of {KD_LOSSES}, got {kind!r}")


def alignment_loss(pred: Tensor, target: Tensor, kind: str = "cosine", tau: float = 0.1) -> Tensor:
    """Align predictions (n, E) with targets (n, E): mean (1 - cosine), or InfoNCE over the batch
    (falls back to cosine for fewer than two pairs)."""
    if kind == "cosine" or pred.shape[0] < 2:
        return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
    if kind == "infonce":
        logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).t() / tau
        return F.cross_entropy(logits, torch.arange(pred.shape[0], device=pred.device))
    raise ConfigError(f"report_alignment must be one of {REPORT_ALIGNMENTS}, got {kind!r}")


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


@dataclass
class _Encoded:
    """Per-batch state shared by the views (see :meth:`KEMM._encode`)."""

    has_wsi: Tensor  # (B,)
    has_gen: Tensor  # (B,)
    knowledge: Tensor | None  # (B, K, d) knowledge tokens (teacher view)
    view_masks: dict[str, Tensor]  # view -> (B, K) valid knowledge positions
    labels: list[str]  # K knowledge position labels ("learned:0", "pbk:3", "report:1")
    wsi_tokens: Tensor  # (B, Tw, d)
    wsi_pos: dict[str, Tensor]  # view -> (B, Tw) valid WSI token positions
    gen_tokens: Tensor  # (B, Tg, d)
    gen_pos: dict[str, Tensor]  # view -> (B, Tg)
    wsi_global: dict[str, Tensor]  # view -> (B, d)
    gen_global: dict[str, Tensor]  # view -> (B, d)
    clinical: Tensor | None = None  # (B, C) scaled covariates, when the model uses them
    facts: Tensor | None = None  # (B, F) report facts, when the teacher view reads them
    explain: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _KnowledgeTokens:
    """The knowledge side of a batch: tokens, their normalised queries, labels, view masks."""

    tokens: Tensor  # (B, K, d)
    queries: Tensor  # (B, K, d)
    labels: list[str]
    view_masks: dict[str, Tensor]  # view -> (B, K)


@dataclass
class _GenomicTokens:
    """One token per genomic group: raw, as queries, valid positions, patients that have them."""

    raw: Tensor  # (B, G, d)
    query: Tensor  # (B, G, d)
    mask: Tensor  # (B, G)
    present: Tensor  # (B,)


@dataclass
class _ViewOut:
    logits: Tensor
    z: Tensor
    cls_attention: Tensor | None = None  # (B, T) last-layer CLS attention (explanations)
    segments: dict[str, slice] = field(default_factory=dict)


class KEMM(SurvivalModel):
    """KEMM: knowledge-enhanced multimodal survival (WSI + genomics + report + PBK)."""

    @dataclass(frozen=True)
    class Params(Hyperparameters):
        dim: int = 256
        heads: int = 4
        fusion_layers: int = 2
        n_learned_queries: int = 4
        dropout: float = 0.1
        patch_dropout: float = 0.25
        genomic_dropout: float = 0.25
        pool_hidden: int = 16
        patch_activation: str = "gelu"
        use_report: bool = True
        use_pbk: bool = True
        use_kecm: bool = True
        use_distillation: bool = True
        use_risk_alignment: bool = True
        use_report_alignment: bool = True
        use_clinical: bool = True
        use_facts: bool = True
        clinical_lr: float = 1e-2
        lambda_kd: float = 0.5
        lambda_risk: float = 0.2
        lambda_report: float = 0.2
        kd_loss: str = "kl"
        kd_embedding_weight: float = 1.0
        student_survival_weight: float = 1.0
        risk_temperature: float = 0.1
        report_alignment: str = "cosine"
        report_temperature: float = 0.1

    modalities = frozenset({"wsi", "genomics", "report", "pbk", "clinical"})
    requires_any_of = frozenset({"wsi", "genomics"})

    def __init__(self, dims: InputDims, n_bins: int, params: Params | None = None) -> None:
        super().__init__(params)
        p = self.params
        self.has_wsi_branch = dims.wsi_dim is not None
        self.has_gen_branch = bool(dims.genomic_groups)
        if not (self.has_wsi_branch or self.has_gen_branch):
            raise ConfigError("KEMM needs WSI (dims.wsi_dim) or genomics (dims.genomic_groups)")
        text_users = {
            "use_report": p.use_report,
            "use_pbk": p.use_pbk,
            "use_risk_alignment": p.use_risk_alignment,
            "use_report_alignment": p.use_report_alignment,
        }
        if dims.text_dim is None and any(text_users.values()):
            on = ", ".join(f"{k}=False" for k, v in text_users.items() if v)
            raise ConfigError(
                "KEMM uses report/PBK text embeddings but dims.text_dim is None: prepare the cohort "
                f"with knowledge embeddings, or pass {on}"
            )
        if p.kd_loss not in KD_LOSSES:
            raise ConfigError(f"kd_loss must be one of {KD_LOSSES}, got {p.kd_loss!r}")
        if p.report_alignment not in REPORT_ALIGNMENTS:
            raise ConfigError(
                f"report_alignment must be one of {REPORT_ALIGNMENTS}, got {p.report_alignment!r}"
            )
        self.dims, self.n_bins = dims, n_bins
        # the switches that also depend on the inputs; the settings are read from self.params
        self.use_distillation = p.use_distillation and p.use_report
        self.use_clinical = p.use_clinical and bool(dims.clinical_dim)

        # knowledge tokens: learned slots (always), PBK and report statements from frozen text
        self.learned = nn.Parameter(torch.randn(p.n_learned_queries, p.dim) * 0.02)
        if p.use_report or p.use_pbk:
            self.text_proj = nn.Sequential(nn.Linear(dims.text_dim, p.dim), nn.LayerNorm(p.dim))
            self.text_type = nn.Parameter(torch.zeros(2, p.dim))  # 0: PBK, 1: report
        # The report's facts (T, N, stage, grade, ...) as knowledge tokens that carry their
        # value, plus a linear hazard term over them whose signs follow PBK's directions of
        # effect (with PBK): the part of the report a sentence embedding blurs (grade 1 vs 4).
        self.use_facts = p.use_report and p.use_facts and bool(dims.fact_columns)
        if self.use_facts:
            from kemm.knowledge.covariates import covariate_of

            names = list(dict.fromkeys(covariate_of(c) for c in dims.fact_columns))
            self.fact_names = names
            self.fact_tokens = FactTokenizer(
                [names.index(covariate_of(c)) for c in dims.fact_columns], p.dim
            )
            self.fact_type = nn.Parameter(torch.zeros(p.dim))
            self.fact_linear = DirectedLinear(dims.fact_directions, constrained=p.use_pbk)
        self.query_norm = nn.LayerNorm(p.dim)

        if self.has_wsi_branch:
            self.bag = BagAttention(
                dims.wsi_dim,
                p.dim,
                pool_hidden=p.pool_hidden,
                dropout=p.patch_dropout,
                activation=p.patch_activation,
            )
            self.bag_out = nn.Linear(p.dim, p.dim)
            self.wsi_norm = nn.LayerNorm(p.dim)
        if self.has_gen_branch:
            self.genomic = GenomicTokenizer(dims.genomic_groups, p.dim, dropout=p.genomic_dropout)
            self.gen_pool = GatedAttentionPool(p.dim, p.dim // 4)
            self.gen_norm = nn.LayerNorm(p.dim)
            if p.use_kecm:
                self.gen_attn = CrossAttention(p.dim, p.heads, dropout=p.dropout)
                self.gen_beta = nn.Parameter(torch.ones(()))

        # cross-modal co-attention and fusion transformer
        self.co_norm_w, self.co_norm_g = nn.LayerNorm(p.dim), nn.LayerNorm(p.dim)
        self.co_w = CrossAttention(
            p.dim, p.heads, dropout=p.dropout
        )  # WSI tokens -> genomic tokens
        self.co_g = CrossAttention(
            p.dim, p.heads, dropout=p.dropout
        )  # genomic tokens -> WSI tokens
        self.cls = nn.Parameter(torch.zeros(1, p.dim))
        self.segment = nn.Parameter(torch.randn(len(_SEGMENTS), p.dim) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(p.dim, p.heads, dropout=p.dropout) for _ in range(p.fusion_layers)
        )
        self.norm = nn.LayerNorm(p.dim)
        self.head = SurvivalHead(p.dim, n_bins, hidden=p.dim // 2, dropout=p.dropout)
        if self.use_distillation:
            # The report-free student reads the shared encoder's report-free embedding through
            # its own adapter and head; its losses stop there, so distillation cannot teach the
            # shared encoder to do without the report (what weight sharing did).
            self.student_adapter = nn.Sequential(
                nn.LayerNorm(p.dim), nn.Linear(p.dim, p.dim), nn.GELU(), nn.Linear(p.dim, p.dim)
            )
            self.student_head = SurvivalHead(p.dim, n_bins, hidden=p.dim // 2, dropout=p.dropout)
        if self.use_clinical:
            # Covariates (age, sex, report-parsed stage) as a fusion token, plus a linear term on
            # the hazard logits: the proportional-hazards path a statistician would fit, which
            # small cohorts learn far more reliably than through attention alone.
            self.clinical_token = nn.Sequential(
                nn.Linear(dims.clinical_dim, p.dim), nn.LayerNorm(p.dim)
            )
            self.clinical_linear = nn.Linear(dims.clinical_dim, 1, bias=False)
            nn.init.zeros_(self.clinical_linear.weight)

        if p.use_risk_alignment:
            self.risk_z = nn.Linear(p.dim, p.dim)
            self.risk_text = nn.Linear(dims.text_dim, p.dim)
        if p.use_report_alignment:
            if self.has_wsi_branch:
                self.report_from_wsi = nn.Linear(p.dim, dims.text_dim)
            if self.has_gen_branch:
                self.report_from_gen = nn.Linear(p.dim, dims.text_dim)

    # ---------------------------------------------------------------- knowledge and encoding

    def _text_tokens(self, emb: Tensor, mask: Tensor | None, kind: int) -> tuple[Tensor, Tensor]:
        """Frozen text embeddings (B, M, E) -> tokens (B, M, d) and mask (B, M)."""
        emb = emb.detach().to(self.cls.device, self.cls.dtype)
        if mask is None:
            mask = torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device)
        mask = mask.to(emb.device).bool()
        emb = torch.where(mask[..., None], emb, torch.zeros((), dtype=emb.dtype, device=emb.device))
        return self.text_proj(emb) + self.text_type[kind], mask

    def _knowledge(
        self, x: ModelInput, batch: int, with_report: bool
    ) -> tuple[Tensor, Tensor, Tensor, list[str]]:
        """Knowledge tokens (B, K, d), their mask, which positions are report statements (K,),
        and a label per position."""
        device = self.cls.device
        tokens = [self.learned.unsqueeze(0).expand(batch, -1, -1)]
        masks = [torch.ones(batch, self.params.n_learned_queries, dtype=torch.bool, device=device)]
        labels = [f"learned:{i}" for i in range(self.params.n_learned_queries)]
        is_report = [False] * self.params.n_learned_queries
        if self.params.use_pbk and x.pbk is not None:
            tok, mask = self._text_tokens(x.pbk, x.pbk_mask, 0)
            tokens.append(tok)
            masks.append(mask)
            labels += [f"pbk:{i}" for i in range(tok.shape[1])]
            is_report += [False] * tok.shape[1]
        if with_report and x.report is not None:
            tok, mask = self._text_tokens(x.report, x.report_mask, 1)
            tokens.append(tok)
            masks.append(mask)
            labels += [f"report:{i}" for i in range(tok.shape[1])]
            is_report += [True] * tok.shape[1]
        if with_report and self.use_facts and x.facts is not None:
            tok = self.fact_tokens(x.facts.to(device, self.cls.dtype)) + self.fact_type
            tokens.append(tok)
            masks.append(torch.ones(tok.shape[:2], dtype=torch.bool, device=device))
            labels += [f"fact:{name}" for name in self.fact_names]
            is_report += [True] * tok.shape[1]
        report_pos = torch.tensor(is_report, dtype=torch.bool, device=device)
        return torch.cat(tokens, 1), torch.cat(masks, 1), report_pos, labels

    def _encode(self, x: ModelInput, views: tuple[str, ...], explain: bool) -> _Encoded:
        """Everything before the per-view fusion; the patch side runs once for all views."""
        device, dtype = self.cls.device, self.cls.dtype
        present = presence(x, device)
        has_wsi = present["wsi"] & self.has_wsi_branch
        has_gen = present["genomics"] & self.has_gen_branch
        missing = ~(has_wsi | has_gen)
        if bool(missing.any()):
            index = int(missing.nonzero()[0, 0])
            raise ValueError(f"KEMM: patient at batch index {index} has neither WSI nor genomics")
        with_report = self.params.use_report and "teacher" in views
        know, kmask, report_pos, labels = self._knowledge(x, x.batch_size, with_report)
        k = _KnowledgeTokens(
            know, self.query_norm(know), labels,
            {"teacher": kmask, "student": kmask & ~report_pos[None, :]},
        )  # fmt: skip
        g = self._genomic_tokens(x, has_gen)
        explain_rows: list[dict[str, Any]] = [{} for _ in range(x.batch_size)]
        wsi_tokens, wsi_global, wsi_pos = self._patch_side(
            x, views, k, g, has_wsi, explain_rows if explain else None
        )
        gen_tokens, gen_global, gen_pos = self._genomic_side(
            views, k, g, explain_rows if explain else None
        )
        clinical = (
            x.clinical.to(device, dtype) if self.use_clinical and x.clinical is not None else None
        )
        facts = (
            x.facts.to(device, dtype)
            if with_report and self.use_facts and x.facts is not None
            else None
        )
        return _Encoded(has_wsi, has_gen, know, k.view_masks, labels, wsi_tokens, wsi_pos,
                        gen_tokens, gen_pos, wsi_global, gen_global, clinical, facts,
                        explain_rows)  # fmt: skip

    def _genomic_tokens(self, x: ModelInput, has_gen: Tensor) -> _GenomicTokens:
        """One token per genomic group (zeros without the branch); queries normalised when KECM
        is off (with KECM the knowledge queries the raw tokens)."""
        device, dtype, batch = self.cls.device, self.cls.dtype, x.batch_size
        if self.has_gen_branch and x.genomics is not None:
            raw = self.genomic([g.to(device, dtype) for g in x.genomics], has_gen)  # (B, G, d)
        else:
            n_groups = len(self.dims.genomic_groups) or 1
            raw = torch.zeros(batch, n_groups, self.params.dim, device=device, dtype=dtype)
        query = self.gen_norm(raw) if self.has_gen_branch and not self.params.use_kecm else raw
        return _GenomicTokens(raw, query, has_gen[:, None].expand(batch, raw.shape[1]), has_gen)

    def _patch_queries(
        self, b: int, k: _KnowledgeTokens, g: _GenomicTokens, views: tuple[str, ...],
        union: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor] | None]:  # fmt: skip
        """Patient ``b``'s query positions, raw and normalised queries, and one pool set per
        view: the knowledge tokens with KECM, else the learned queries and genomic tokens."""
        if self.params.use_kecm:
            pos = union[b].nonzero().squeeze(1)
            sets = [k.view_masks[v][b, pos].nonzero().squeeze(1) for v in views]
            return pos, k.tokens[b, pos], k.queries[b, pos], sets
        device = self.cls.device
        pos = torch.cat([
            torch.arange(self.params.n_learned_queries, device=device),
            self.params.n_learned_queries + torch.arange(g.raw.shape[1], device=device)
            if bool(g.present[b]) else torch.zeros(0, dtype=torch.long, device=device),
        ])  # fmt: skip
        q_in = torch.cat([self.learned, g.raw[b]])[pos]
        q = torch.cat([k.queries[b, : self.params.n_learned_queries], g.query[b]])[pos]
        return pos, q_in, q, None

    def _patch_side(
        self, x: ModelInput, views: tuple[str, ...], k: _KnowledgeTokens, g: _GenomicTokens,
        has_wsi: Tensor, explain_rows: list[dict[str, Any]] | None,
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:  # fmt: skip
        """WSI tokens (the queries' attention read of each bag), the per-view pooled bag vector
        and the valid WSI positions; each bag is read once for all views."""
        device, dtype = self.cls.device, self.cls.dtype
        n_tokens = (
            k.tokens.shape[1]
            if self.params.use_kecm
            else self.params.n_learned_queries + g.raw.shape[1]
        )
        zero_tok = torch.zeros(n_tokens, self.params.dim, device=device, dtype=dtype)
        zero_vec = torch.zeros(self.params.dim, device=device, dtype=dtype)
        query_labels = k.labels
        if not self.params.use_kecm:
            query_labels = k.labels[: self.params.n_learned_queries] + [
                f"genomic:{self._group_name(i)}" for i in range(g.raw.shape[1])
            ]
        union = None
        if self.params.use_kecm:
            union = k.view_masks[views[0]]
            for v in views[1:]:
                union = union | k.view_masks[v]
        rows, pooled = [], {v: [] for v in views}
        for b in range(x.batch_size):
            if not bool(has_wsi[b]):
                rows.append(zero_tok)
                for v in views:
                    pooled[v].append(zero_vec)
                continue
            pos, q_in, q, sets = self._patch_queries(b, k, g, views, union)
            read = self.bag(x.wsi[b], q, sets, need_weights=explain_rows is not None, index=b)
            focused = self.wsi_norm(q_in + self.bag_out(read.attended))
            rows.append(zero_tok.index_copy(0, pos, focused))
            for j, v in enumerate(views):
                pooled[v].append(read.pooled[j if sets is not None else 0])
            if explain_rows is not None:
                explain_rows[b].update(
                    patch_queries=[query_labels[int(i)] for i in pos],
                    patch_attention=read.query_weights.detach(),
                    patch_pool=read.pool_weights[0].detach(),
                    patch_index=read.kept,
                )
        if self.params.use_kecm:
            positions = {v: k.view_masks[v] & has_wsi[:, None] for v in views}
        else:
            learned = torch.ones_like(k.view_masks["teacher"][:, : self.params.n_learned_queries])
            base = torch.cat([learned, g.mask], 1)
            positions = {v: base & has_wsi[:, None] for v in views}
        return torch.stack(rows), {v: torch.stack(r) for v, r in pooled.items()}, positions

    def _genomic_side(
        self, views: tuple[str, ...], k: _KnowledgeTokens, g: _GenomicTokens,
        explain_rows: list[dict[str, Any]] | None,
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:  # fmt: skip
        """Genomic tokens, the per-view pooled genomic vector and the valid positions. With KECM
        the knowledge attends to the groups and biases the pool towards the groups its view's
        queries find relevant; without, the tokens and an unbiased pool."""
        if self.params.use_kecm and self.has_gen_branch:
            att = self.gen_attn(k.queries, g.raw, g.mask, need_weights=explain_rows is not None,
                                need_logits=True)  # fmt: skip
            tokens = self.gen_norm(k.tokens + att.out)
            sim = att.logits.mean(1)  # (B, K, G), linear in the query: mean = centroid's logit
            pooled = {}
            for v in views:
                centroid = masked_mean(sim, k.view_masks[v], dim=1)  # (B, G)
                pooled[v], pool_w = self.gen_pool(g.raw, g.mask, self.gen_beta * centroid)
            positions = {v: k.view_masks[v] & g.present[:, None] for v in views}
            if explain_rows is not None:  # forward explains a single view
                weights, pool_w = att.weights.mean(1).detach(), pool_w.detach()
                for b in range(len(explain_rows)):
                    if bool(g.present[b]):
                        explain_rows[b]["genomic_attention"] = weights[b]
                        explain_rows[b]["genomic_pool"] = pool_w[b]
            return tokens, pooled, positions
        batch = g.raw.shape[0]
        pooled_all, pool_w = (
            self.gen_pool(g.raw, g.mask)
            if self.has_gen_branch
            else (torch.zeros(batch, self.params.dim, device=g.raw.device, dtype=g.raw.dtype), None)
        )
        if explain_rows is not None and pool_w is not None:
            for b in range(batch):
                if bool(g.present[b]):
                    explain_rows[b]["genomic_pool"] = pool_w[b].detach()
        return g.query, dict.fromkeys(views, pooled_all), dict.fromkeys(views, g.mask)

    def _group_name(self, i: int) -> str:
        names = self.dims.genomic_group_names
        return names[i] if i < len(names) else str(i)

    def _fuse(self, enc: _Encoded, views: tuple[str, ...], explain: bool) -> dict[str, _ViewOut]:
        """Co-attention and fusion transformer -> logits and z per view (the views share one
        co-attention call, stacked along the batch; the transformer runs per view, each on the
        positions it reads)."""

        def stack(per_view: dict[str, Tensor]) -> Tensor:
            return torch.cat([per_view[v] for v in views])

        n_views, batch = len(views), enc.has_wsi.shape[0]
        has_wsi, has_gen = enc.has_wsi.repeat(n_views), enc.has_gen.repeat(n_views)
        w_tok = enc.wsi_tokens.repeat(n_views, 1, 1)
        g_tok = enc.gen_tokens.repeat(n_views, 1, 1)
        w_pos, g_pos = stack(enc.wsi_pos), stack(enc.gen_pos)
        if bool(has_wsi.any()) and bool(has_gen.any()):  # otherwise both outputs are masked/zero
            wn, gn = self.co_norm_w(w_tok), self.co_norm_g(g_tok)
            w_tok = w_tok + self.co_w(wn, gn, g_pos).out
            g_tok = g_tok + self.co_g(gn, wn, w_pos).out
        seg = self.segment
        parts = [
            (
                self.cls.expand(batch * n_views, -1)[:, None] + seg[0],
                torch.ones_like(has_wsi)[:, None],
            ),
            (stack(enc.wsi_global)[:, None] + seg[1], has_wsi[:, None]),
            (w_tok + seg[2], w_pos),
            (stack(enc.gen_global)[:, None] + seg[3], has_gen[:, None]),
            (g_tok + seg[4], g_pos),
        ]
        names = list(_SEGMENTS[:5])
        clinical = enc.clinical.repeat(n_views, 1) if enc.clinical is not None else None
        if clinical is not None:
            parts.append(
                (
                    self.clinical_token(clinical)[:, None] + seg[5],
                    has_wsi.new_ones(batch * n_views, 1),
                )
            )
            names.append("clinical")
        if not self.params.use_kecm and enc.knowledge is not None:
            knowledge = enc.knowledge.repeat(n_views, 1, 1)
            parts.append((knowledge + seg[6], torch.cat([enc.view_masks[v] for v in views])))
            names.append("knowledge")
        segments, start = {}, 0
        for name, (tok, _) in zip(names, parts, strict=True):
            segments[name] = slice(start, start + tok.shape[1])
            start += tok.shape[1]
        # Parts masked in every row (an absent modality) change nothing: never concatenated.
        live = [
            (segments[name], part)
            for name, part in zip(names, parts, strict=True)
            if bool(part[1].any())
        ]
        seq = torch.cat([tok for _, (tok, _) in live], 1)
        mask = torch.cat([m for _, (_, m) in live], 1)
        position = torch.cat([torch.arange(s.start, s.stop) for s, _ in live]).to(seq.device)
        out = {}
        # split, not row slices: its backward is one concatenation, not a zero-filled copy each
        for v, seq_v, mask_v in zip(views, seq.split(batch), mask.split(batch), strict=True):
            z_v, att = self._fusion_blocks(seq_v, mask_v, position, start, explain)
            if v == "student" and self.use_distillation:
                z_v = z_v.detach()
                z_v = z_v + self.student_adapter(z_v)
                logits = self.student_head(z_v)
                if enc.clinical is not None:
                    logits = logits + enc.clinical @ self.clinical_linear.weight.detach().t()
            else:
                logits = self.head(z_v)
                if enc.clinical is not None:
                    logits = logits + self.clinical_linear(enc.clinical)
                if v == "teacher" and enc.facts is not None:
                    logits = logits + self.fact_linear(enc.facts)
            out[v] = _ViewOut(logits, z_v, att, segments)
        return out

    def _fusion_blocks(
        self, seq: Tensor, mask: Tensor, position: Tensor, width: int, explain: bool
    ) -> tuple[Tensor, Tensor | None]:
        """The fusion transformer over one view's tokens (``position``: each token's index among
        all ``width`` positions) -> (z, CLS attention over the ``width`` positions when
        ``explain``). Positions masked in every row of the view (padding, the report tokens of the
        report-free view) change nothing and are dropped first: the student view runs on its
        shorter sequence."""
        kept = mask.any(0).nonzero().squeeze(1)
        if len(kept) < seq.shape[1]:
            seq, mask, position = seq[:, kept], mask[:, kept], position[kept]
        cls_att = None
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            seq, weights = block(seq, mask, need_weights=explain and last)
            if weights is not None:
                cls_att = torch.zeros(seq.shape[0], width, dtype=weights.dtype, device=seq.device)
                cls_att[:, position] = weights[:, :, 0].mean(1).detach()  # (B, T)
        return self.norm(seq[:, 0]), cls_att

    def _explanation(self, enc: _Encoded, out: _ViewOut, view: str) -> dict[str, Any]:
        patients = []
        for b, row in enumerate(enc.explain):
            row = dict(row)
            valid = enc.view_masks[view][b]
            pos = valid.nonzero().squeeze(1)
            row["statements"] = [enc.labels[int(i)] for i in pos]
            if out.cls_attention is not None:
                att = out.cls_attention[b]
                if self.params.use_kecm:
                    per_statement = (
                        att[out.segments["wsi_tokens"]][pos]
                        + att[out.segments["genomic_tokens"]][pos]
                    )
                else:
                    per_statement = (
                        att[out.segments["knowledge"]][pos]
                        if "knowledge" in out.segments
                        else att[:0]
                    )
                total = per_statement.sum()
                row["statement_weight"] = per_statement / total if total > 0 else per_statement
            if self.params.use_kecm and "genomic_attention" in row:
                row["genomic_attention"] = row["genomic_attention"][pos]
            patients.append(row)
        return {"patients": patients, "genomic_groups": list(self.dims.genomic_group_names)}

    # ---------------------------------------------------------------- public API

    def alternative_paths(self, modalities: set[str]) -> list[AlternativePath]:
        """With reports: the student path (no report), evaluated beside the teacher."""
        if not (self.params.use_report and "report" in modalities):
            return []
        return [AlternativePath("student", {"use_report": False}, "report", "student_teacher")]

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The linear clinical hazard term is a handful of Cox coefficients: at the network's step
        size (~1e-4) it would move by a few hundredths in a short schedule, so it gets its own,
        Cox-sized step (``clinical_lr``, never below ``lr``)."""
        linear = [
            p for name in ("clinical_linear", "fact_linear") if hasattr(self, name)
            for p in getattr(self, name).parameters()
        ]  # fmt: skip
        if not linear:
            return super().parameter_groups(lr)
        rest = [p for p in self.parameters() if p.requires_grad and all(p is not q for q in linear)]
        return [
            {"params": rest, "lr": lr},
            {"params": linear, "lr": max(lr, self.params.clinical_lr)},
        ]

    def forward(
        self, x: ModelInput, use_report: bool | None = None, explain: bool = False
    ) -> ModelOutput:
        """Hazard logits. ``use_report``: None/True = teacher view (report tokens where a patient
        has them), False = student view (reports ignored). ``explain`` fills
        ``ModelOutput.explanation`` with, per patient: ``statements`` (knowledge labels),
        ``patch_attention`` (K x N), ``patch_pool`` (N), ``genomic_attention`` (K x G),
        ``genomic_pool`` (G) and ``statement_weight`` (K, the CLS attention on each statement's
        tokens)."""
        view = "student" if use_report is False or not self.params.use_report else "teacher"
        without = ~presence(x, self.cls.device)["report"]
        if view == "teacher" and self.use_distillation and bool(without.any()) and not explain:
            # a patient without a report is scored by the report-free student
            enc = self._encode(x, ("teacher", "student"), False)
            views = self._fuse(enc, ("teacher", "student"), False)
            pick = without[:, None]
            logits = torch.where(pick, views["student"].logits, views["teacher"].logits)
            z = torch.where(pick, views["student"].z, views["teacher"].z)
            return ModelOutput(_with_offset(logits, x), z, {})
        enc = self._encode(x, (view,), explain)
        out = self._fuse(enc, (view,), explain)[view]
        explanation = self._explanation(enc, out, view) if explain else {}
        return ModelOutput(_with_offset(out.logits, x), out.z, explanation)

    def training_step(
        self, x: ModelInput, y: SurvivalBatch, survival_loss: SurvivalLoss
    ) -> tuple[Tensor, dict[str, float]]:
        """Survival loss + distillation + risk alignment + report alignment (each switchable)."""
        device = self.cls.device
        y = y.to(device)
        has_report = presence(x, device)["report"]
        any_report = bool(has_report.any())
        distil = self.use_distillation and any_report
        report_align = self.params.use_report_alignment and any_report
        views = (
            ("teacher", "student")
            if self.params.use_report and (distil or report_align)
            else ("teacher",)
        )
        enc = self._encode(x, views, explain=False)
        fused = self._fuse(enc, ("teacher", "student") if distil else ("teacher",), False)
        teacher = fused["teacher"]
        loss = survival_loss(_with_offset(teacher.logits, x), y)
        logs = {"survival": float(loss.detach())}

        if distil:
            student = fused["student"]
            sel = has_report
            if self.params.student_survival_weight > 0:
                s_loss = survival_loss(_with_offset(student.logits, x)[sel], y[sel])
                loss = loss + self.params.student_survival_weight * s_loss
                logs["survival_student"] = float(s_loss.detach())
            kd_hazard = hazard_distillation(
                student.logits[sel], teacher.logits[sel], self.params.kd_loss
            ).mean()
            kd_embedding = F.mse_loss(student.z[sel], teacher.z[sel].detach())
            kd = kd_hazard + self.params.kd_embedding_weight * kd_embedding
            loss = loss + self.params.lambda_kd * kd
            logs.update(
                kd=float(kd.detach()),
                kd_hazard=float(kd_hazard.detach()),
                kd_embedding=float(kd_embedding.detach()),
            )

        if self.params.use_risk_alignment and x.pbk_risk is not None:
            allowed = risk_level_targets(y.bins, y.event, y.n_bins)
            informative = ~allowed.all(1)
            if bool(informative.any()):
                protos = self.risk_text(x.pbk_risk.detach().to(device, self.cls.dtype))
                sim = F.cosine_similarity(self.risk_z(teacher.z)[:, None], protos, dim=-1)
                log_p = F.log_softmax(sim / self.params.risk_temperature, dim=1)
                nll = -torch.logsumexp(log_p.masked_fill(~allowed, float("-inf")), dim=1)
                risk = nll[informative].mean()
                loss = loss + self.params.lambda_risk * risk
                logs["risk_align"] = float(risk.detach())

        if report_align and x.report is not None:
            view = "student" if "student" in views else "teacher"  # embeddings made without reports
            report = x.report.detach().to(device, self.cls.dtype)
            target = masked_mean(report, x.report_mask.to(device).bool(), dim=1)
            terms = []
            for has, emb, name in (
                (enc.has_wsi, enc.wsi_global[view], "report_from_wsi"),
                (enc.has_gen, enc.gen_global[view], "report_from_gen"),
            ):
                sel = has & has_report
                if hasattr(self, name) and bool(sel.any()):
                    pred = getattr(self, name)(emb[sel])
                    terms.append(
                        alignment_loss(
                            pred,
                            target[sel],
                            self.params.report_alignment,
                            self.params.report_temperature,
                        )
                    )
            if terms:
                align = torch.stack(terms).mean()
                loss = loss + self.params.lambda_report * align
                logs["report_align"] = float(align.detach())

        logs["loss"] = float(loss.detach())
        return loss, logs


def _with_offset(logits: Tensor, x: ModelInput) -> Tensor:
    """Hazard logits plus the batch's fixed log-hazard offset, when it has one."""
    if x.offset is None:
        return logits
    return logits + x.offset.to(logits.device, logits.dtype)[:, None]


# Ablations: the same class under another name, with other defaults (see kemm.models.registry).
_ABLATIONS: dict[str, dict[str, Any]] = {
    "kemm_no_report": {"modalities": ("wsi", "genomics", "pbk", "clinical"), "use_report": False,
                       "use_distillation": False, "use_report_alignment": False},
    "kemm_no_pbk": {"modalities": ("wsi", "genomics", "report", "clinical"), "use_pbk": False,
                    "use_risk_alignment": False},
    "kemm_no_knowledge": {"modalities": ("wsi", "genomics", "clinical"), "use_report": False,
                          "use_pbk": False, "use_distillation": False,
                          "use_risk_alignment": False, "use_report_alignment": False},
    "kemm_no_clinical": {"modalities": ("wsi", "genomics", "report", "pbk"),
                         "use_clinical": False},
    "kemm_no_kecm": {"use_kecm": False},
    "kemm_no_kd": {"use_distillation": False},
    "kemm_no_risk_align": {"use_risk_alignment": False},
    "kemm_no_report_align": {"use_report_alignment": False},
}  # fmt: skip
register("kemm")(KEMM)
for _name, _defaults in _ABLATIONS.items():
    register(_name, **_defaults)(KEMM)
