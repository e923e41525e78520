"""Cohorts: patient tables, survival targets, splits and named genomic groups."""

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
]
