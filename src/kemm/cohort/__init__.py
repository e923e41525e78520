"""Cohorts: the data root, patient tables, survival targets, splits, named genomic groups, and
the prepared cohort a run trains on (``prepare_cohort``: tables, splits, the clinical block with
report facts, the text modality, feature-bag locations), plus the simulator."""

import importlib

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

# The prepared cohort reads reports and feature bags (kemm.knowledge, kemm.wsi): imported on use.
_LAZY = {
    "DataConfig": "kemm.cohort.config",
    "NewPatients": "kemm.cohort.prepared",
    "PreparedCohort": "kemm.cohort.prepared",
    "TextModality": "kemm.cohort.prepared",
    "prepare_cohort": "kemm.cohort.prepared",
    "load_text_modality": "kemm.cohort.text",
    "simulate_cohort": "kemm.cohort.simulate",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kemm.cohort' has no attribute {name!r}")


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
