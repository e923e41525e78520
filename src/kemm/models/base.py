"""The contract between the engine and every torch survival model.

The engine builds a :class:`ModelInput` for a batch of B patients and calls
``model.training_step`` while training and ``model(x)`` at evaluation. Every model predicts
discrete-time hazard logits over ``n_bins`` time bins; survival curves and risks are derived from
them in :mod:`kemm.survival.discrete`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from kemm.survival.losses import SurvivalBatch

MODALITIES = ("genomics", "wsi", "report", "pbk", "clinical")


@dataclass
class InputDims:
    """Sizes of each modality, fixed per run (fitted on the training fold)."""

    genomic_groups: list[int] = field(default_factory=list)  # features per genomic group
    genomic_group_names: list[str] = field(default_factory=list)
    wsi_dim: int | None = None  # patch feature dimension D
    text_dim: int | None = None  # frozen text-embedding dimension E (reports and PBK)
    clinical_dim: int | None = None
    # report facts as the report modality gives them (kemm.knowledge.covariates columns, e.g.
    # "t>=2", "grade=unknown") and each column's direction of effect from PBK (+1 worse, 0 none)
    fact_columns: list[str] = field(default_factory=list)
    fact_directions: list[int] = field(default_factory=list)


@dataclass
class ModelInput:
    """A batch of B patients. A modality is ``None`` when the run does not use it; a patient
    missing a modality is marked by its mask (never by zero-filled fake tokens)."""

    genomics: list[Tensor] | None = None  # G tensors, each (B, g_i)
    genomics_mask: Tensor | None = None  # (B,) bool: patient has genomics
    wsi: list[Tensor | None] | None = None  # B entries: (N_i, D) patch features or None
    wsi_coords: list[Tensor | None] | None = None  # B entries: (N_i, 2) level-0 coords or None
    report: Tensor | None = None  # (B, M, E) report-statement embeddings (padded)
    report_mask: Tensor | None = None  # (B, M) bool; a patient without a report is all False
    pbk: Tensor | None = None  # (B, P, E) general PBK statement embeddings (padded)
    pbk_mask: Tensor | None = None  # (B, P) bool
    pbk_risk: Tensor | None = None  # (B, 3, E) low / intermediate / high risk prototypes
    clinical: Tensor | None = None  # (B, C) numeric covariates (scaled on the training fold)
    # (B, F) the report's facts, encoded and scaled like the clinical block (InputDims.
    # fact_columns); part of the report modality
    facts: Tensor | None = None
    # (B,) a fixed log-hazard offset added to every bin's logit (a residual model learns what it
    # misses), e.g. the out-of-fold linear predictor of report facts and genomics
    offset: Tensor | None = None

    @property
    def batch_size(self) -> int:
        for name in ("genomics_mask", "report_mask", "clinical", "pbk"):
            value = getattr(self, name)
            if value is not None:
                return int(value.shape[0])
        if self.wsi is not None:
            return len(self.wsi)
        raise ValueError("ModelInput has no modality")

    def has_report(self) -> Tensor:
        """(B,) bool: which patients have at least one report statement."""
        if self.report_mask is None:
            return torch.zeros(self.batch_size, dtype=torch.bool)
        return self.report_mask.any(dim=1)

    def has_wsi(self) -> Tensor:
        if self.wsi is None:
            return torch.zeros(self.batch_size, dtype=torch.bool)
        return torch.tensor([bag is not None and len(bag) > 0 for bag in self.wsi])

    def to(self, device: torch.device | str) -> ModelInput:
        def move(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value.to(device, non_blocking=True)
            if isinstance(value, list):
                return [move(v) for v in value]
            return value

        return ModelInput(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def without_report(self) -> ModelInput:
        """The same batch with the report modality removed (the distillation student's view)."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        kwargs["report"] = None
        kwargs["report_mask"] = None
        kwargs["facts"] = None
        return ModelInput(**kwargs)


@dataclass
class ModelOutput:
    logits: Tensor  # (B, n_bins) discrete-time hazard logits
    embedding: Tensor | None = None  # (B, d) fused patient embedding
    explanation: dict[str, Any] = field(default_factory=dict)  # attention maps etc.


@dataclass(frozen=True)
class PatchBudget:
    """How many patches a WSI model reads at a time: a compute setting of the run (the engine
    sets it from ``train.bag_cap`` and ``train.eval_chunk_size``), not a hyper-parameter of the
    model. ``max_train_patches``: a random subsample of at most that many patches per bag in
    train mode (``None`` = the whole bag). ``eval_chunk_size``: evaluation projects the whole bag
    this many patches at a time, so memory stays bounded (``None`` = at once)."""

    max_train_patches: int | None = 4096
    eval_chunk_size: int | None = 16384


@dataclass(frozen=True)
class Hyperparameters:
    """A torch model's hyper-parameters: each model subclasses this as a frozen dataclass
    (``Model.Params``) whose fields, with their defaults, are the names a run config may set
    under the model's ``params``."""


SurvivalLoss = Callable[[Tensor, SurvivalBatch], Tensor]  # (logits, outcome) -> loss


@dataclass(frozen=True)
class AlternativePath:
    """Another way a model can score a patient, which the engine evaluates beside the main one
    (KEMM's report-free student path): ``forward_kwargs`` select it; its risks are compared with
    the main path's over the patients that have ``compare_on`` (a modality), and reported as
    ``<agreement>_spearman``, ``<agreement>_patients`` and ``<name>_c_index``."""

    name: str
    forward_kwargs: dict[str, Any]
    compare_on: str
    agreement: str


class SurvivalModel(nn.Module):
    """Base class of torch survival models.

    Subclasses set ``modalities`` (the inputs they can use) and ``Params`` (their typed
    hyper-parameters), build themselves from ``(dims, n_bins, params)`` and implement
    ``forward``. Models with extra objectives (alignment, distillation) override
    ``training_step``. How many patches they read at a time is not a hyper-parameter but the
    run's :class:`PatchBudget`.
    """

    modalities: ClassVar[frozenset[str]] = frozenset()
    requires_any_of: ClassVar[frozenset[str]] = frozenset()  # patient needs >= 1 of these
    Params: ClassVar[type[Hyperparameters]] = Hyperparameters

    def __init__(self, params: Hyperparameters | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else self.Params()
        self.patch_budget = PatchBudget()

    @classmethod
    def hparam_names(cls) -> list[str]:
        """The hyper-parameters a config may set (the fields of ``Params``)."""
        return [f.name for f in fields(cls.Params)]

    @classmethod
    def build(cls, dims: InputDims, n_bins: int, **hparams: Any) -> SurvivalModel:
        """The model with these hyper-parameters (the rest at their defaults)."""
        return cls(dims, n_bins, cls.Params(**hparams))

    def forward(self, x: ModelInput) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def alternative_paths(self, modalities: set[str]) -> list[AlternativePath]:
        """Other scoring paths the engine should evaluate, given the modalities it receives
        (none by default)."""
        return []

    def set_patch_budget(self, budget: PatchBudget) -> None:
        """Give every patch reader of the model (modules with a ``budget``) this budget."""
        self.patch_budget = budget
        for module in self.modules():
            if isinstance(getattr(module, "budget", None), PatchBudget):
                module.budget = budget

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; models override this to give a part its own step size."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def training_step(
        self, x: ModelInput, y: SurvivalBatch, survival_loss: SurvivalLoss
    ) -> tuple[Tensor, dict[str, float]]:
        """Loss for one batch of patients with outcomes ``y``."""
        out = self(x)
        loss = survival_loss(out.logits, y)
        return loss, {"survival": float(loss.detach())}
