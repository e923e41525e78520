"""A numeric pathologic stage (1–4) of a report, for clinical covariate models."""

from __future__ import annotations

import math

from kemm.knowledge.ajcc import stage_rank
from kemm.knowledge.report_facts import extract_report_facts


def numeric_stage(text: str | None, cancer: str | None = None) -> float:
    """The main stage group (1–4) of the report's record: the stated group, else the one the
    cancer's AJCC 7th edition table derives from the stated TNM (``cancer``: TCGA study code);
    NaN when neither is available."""
    rank = stage_rank(extract_report_facts(text, cancer).value("stage"))
    return math.nan if rank is None else float(rank)
