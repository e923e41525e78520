"""The prepared cohort's data: what a run trains on, once read and checked.

:class:`PreparedCohort` (the patient table, splits, genomic groups, the clinical block, the
text modality and feature-bag locations) and :class:`TextModality`. Reading them is
:func:`kemm.cohort.prepared.prepare_cohort`; writing and reading a prepared-cohort folder is
:mod:`kemm.cohort.folder`. Both import this module and not each other's readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kemm.cohort.genomics import GenomicGroup, GroupingReport
from kemm.cohort.splits import Split
from kemm.cohort.table import Cohort


@dataclass
class TextModality:
    """Frozen text embeddings: per-patient report statements and the cohort's PBK."""

    encoder: str
    dim: int
    report_statements: dict[str, list[str]] = field(default_factory=dict)
    report_embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # case -> (M, E)
    pbk_statements: list[str] = field(default_factory=list)
    pbk_general: np.ndarray | None = None  # (P, E)
    pbk_risk: np.ndarray | None = None  # (3, E): low, intermediate, high prototypes
    reports_without_statements: list[str] = field(default_factory=list)


@dataclass
class PreparedCohort:
    cohort: Cohort
    splits: list[Split]
    groups: list[GenomicGroup]
    grouping_report: GroupingReport | None
    clinical: pd.DataFrame  # case_id x numeric covariates (raw; NaN = missing)
    clinical_directions: dict[str, int] = field(default_factory=dict)  # column -> +1 worse / 0
    text: TextModality | None = None
    bag_paths: dict[str, list[Path]] = field(default_factory=dict)
    wsi_dim: int | None = None
    bag_report: dict[str, object] = field(default_factory=dict)
    bag_requirements: tuple[str | None, int | None] = (None, None)  # (encoder, dim)

    @property
    def available_modalities(self) -> set[str]:
        found = set()
        if self.groups:
            found.add("genomics")
        if self.bag_paths:
            found.add("wsi")
        if self.text is not None and self.text.report_embeddings:
            found.add("report")
        if self.text is not None and self.text.pbk_general is not None:
            found.add("pbk")
        if not self.clinical.empty:
            found.add("clinical")
        return found

    def has_modality(self, case_id: str, modality: str) -> bool:
        if modality == "genomics":
            return bool(self.groups) and case_id in self.cohort.genomics.index
        if modality == "wsi":
            return case_id in self.bag_paths
        if modality == "report":
            return self.text is not None and case_id in self.text.report_embeddings
        if modality == "pbk":
            return self.text is not None and self.text.pbk_general is not None
        if modality == "clinical":
            return not self.clinical.empty
        raise ValueError(modality)
