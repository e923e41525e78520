"""Cohorts: the data root, patient tables, survival targets, splits, named genomic groups, and
the prepared cohort a run trains on (``prepare_cohort``: tables, splits, the clinical block with
report facts, the text modality, feature-bag locations), plus the simulator."""

from kemm.cohort.genomics import (
    SIGNATURE_FILES,
    GenomicGroup,
    GroupingReport,
    group_features,
    read_signatures,
    single_group,
)
from kemm.cohort.splits import Split, read_split, read_splits
from kemm.cohort.table import GENOMIC_MODALITIES, Cohort, read_all_clean
from kemm.cohort.target import SurvivalTarget
from kemm.lazy import lazy_exports

# The prepared cohort reads reports and feature bags (kemm.knowledge, kemm.wsi): imported on use.
__getattr__, _LAZY = lazy_exports(
    "kemm.cohort",
    {
        "config": ("DataConfig",),
        "dataset": ("PreparedCohort", "TextModality"),
        "prepared": ("NewPatients", "prepare_cohort"),
        "text": ("load_text_modality",),
        "simulate": ("simulate_cohort",),
    },
)

__all__ = [
    "GENOMIC_MODALITIES",
    "SIGNATURE_FILES",
    "Cohort",
    "GenomicGroup",
    "GroupingReport",
    "Split",
    "SurvivalTarget",
    "group_features",
    "read_all_clean",
    "read_signatures",
    "read_split",
    "read_splits",
    "single_group",
    *_LAZY,
]
