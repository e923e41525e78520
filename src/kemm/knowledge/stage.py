"""A numeric pathologic stage (1–4) parsed from report text, for clinical covariate models."""

from __future__ import annotations

import math
import re

from kemm.knowledge.clean import clean_report
from kemm.knowledge.facts import stage_groups, tnm_categories


def numeric_stage(text: str) -> float:
    """The stage group stated in the report (AJCC/FIGO, highest if several), else an
    approximation from TNM (M1 → 4, N+ → 3, else T category capped at 3); NaN when neither is
    stated. The approximation is coarse on purpose: it is a covariate, not a staging tool."""
    if not text or not text.strip():
        return math.nan
    cleaned = clean_report(text)
    groups = [int(g[0]) for g in stage_groups(cleaned) if g[:1].isdigit() and 1 <= int(g[0]) <= 4]
    if groups:
        return float(max(groups))
    categories = tnm_categories(cleaned)
    if any(re.fullmatch(r"M1[A-C]?", c) for c in categories):
        return 4.0
    if any(re.fullmatch(r"N[1-3][A-C]?", c) for c in categories):
        return 3.0
    t_values = [int(c[1]) for c in categories if re.fullmatch(r"T[1-4][A-D]?\d?", c)]
    if t_values:
        return float(min(max(t_values), 3))
    return math.nan
