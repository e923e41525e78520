"""Audit of refined statements against human-corrected report summaries.

For each report whose corrected summary states a tumour grade or a stage, does the refined
output state the same one, and does it state a different one (a conflict)? Grades are compared
as levels (``grade II`` = ``G2`` = ``moderately differentiated``; ``high grade``; Gleason sums),
stages as TNM categories (``pT2``, ``N1``) or stage groups (``IIB``).

Both sides are read with the token functions of :mod:`kemm.knowledge.facts`, the ones grounding
reads statements with (OCR spacing such as ``pT 2. N 1.`` included), so a statement rendered
from the report-fact record (``Tumour grade: G2.``, ``Pathologic TNM: pT1b N0.``,
``Pathologic stage: IIIA (from TNM, AJCC 7th edition).``) is scored on its values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kemm.knowledge.facts import differentiation_terms, grade_values, stage_groups, tnm_categories

__all__ = ["AuditResult", "audit_grade_stage", "grade_levels", "stage_tokens"]

_DIFF_LEVEL = {"WELL": "G1", "MODERATELY": "G2", "POORLY": "G3", "UN": "G4"}


def grade_levels(text: str) -> set[str]:
    """Grade levels stated in ``text``: ``G1``..``G4``, ``HIGH``/``LOW``, ``GLEASON<n>``."""
    levels = set(grade_values(text))
    levels |= {_DIFF_LEVEL[d] for d in differentiation_terms(text)}
    return levels


def stage_tokens(text: str) -> set[str]:
    """Stage facts in ``text``: TNM categories (``T2``, ``N1A``) and groups (``STAGE2B``)."""
    return set(tnm_categories(text)) | {f"STAGE{s}" for s in stage_groups(text)}


def _matches(reference: set[str], candidate: set[str]) -> bool:
    """True when a reference token is recovered (``T1`` in the reference accepts ``T1A``)."""
    for ref in reference:
        for cand in candidate:
            if ref == cand or (len(ref) >= 2 and cand.startswith(ref) and ref[0] in "TNM"):
                return True
            if len(cand) >= 2 and ref.startswith(cand) and cand[0] in "TNM":
                return True
    return False


@dataclass
class AuditResult:
    """Per-report recovery of the grade and the stage stated by the reference summaries."""

    n_reports: int = 0
    grade_total: int = 0
    grade_recovered: int = 0
    stage_total: int = 0
    stage_recovered: int = 0
    either_total: int = 0
    either_recovered: int = 0
    grade_conflicts: int = 0  # the output states a grade, none of the reference's
    stage_conflicts: int = 0  # the output states stage facts, none matching the reference's
    misses: list[dict[str, object]] = field(default_factory=list)

    @property
    def item_recovery(self) -> float:
        """Fraction of (report, grade|stage) items recovered: the stricter figure."""
        total = self.grade_total + self.stage_total
        return (self.grade_recovered + self.stage_recovered) / total if total else float("nan")

    @property
    def report_recovery(self) -> float:
        """Fraction of reports stating a grade or stage where at least one is recovered."""
        return self.either_recovered / self.either_total if self.either_total else float("nan")

    def summary(self) -> str:
        return (
            f"grade {self.grade_recovered}/{self.grade_total}, stage "
            f"{self.stage_recovered}/{self.stage_total}, items {self.item_recovery:.1%}, "
            f"reports (grade or stage) {self.either_recovered}/{self.either_total} "
            f"= {self.report_recovery:.1%}; conflicts: grade {self.grade_conflicts}, "
            f"stage {self.stage_conflicts}"
        )


def audit_grade_stage(
    sources: Mapping[str, str],
    references: Mapping[str, str],
    refine: Callable[[str], list[str]],
) -> AuditResult:
    """Score ``refine(source)`` against the reference summaries (same keys)."""
    result = AuditResult()
    for case_id, reference in references.items():
        result.n_reports += 1
        output = " ".join(refine(sources[case_id]))
        ref_grade, ref_stage = grade_levels(reference), stage_tokens(reference)
        out_grade, out_stage = grade_levels(output), stage_tokens(output)
        hit_grade = bool(ref_grade) and bool(ref_grade & out_grade)
        hit_stage = bool(ref_stage) and _matches(ref_stage, out_stage)
        if ref_grade:
            result.grade_total += 1
            result.grade_recovered += hit_grade
            result.grade_conflicts += bool(out_grade) and not hit_grade
        if ref_stage:
            result.stage_total += 1
            result.stage_recovered += hit_stage
            result.stage_conflicts += bool(out_stage) and not hit_stage
        if ref_grade or ref_stage:
            result.either_total += 1
            result.either_recovered += hit_grade or hit_stage
            if (ref_grade and not hit_grade) or (ref_stage and not hit_stage):
                result.misses.append(
                    {
                        "case_id": case_id,
                        "reference_grade": sorted(ref_grade),
                        "output_grade": sorted(out_grade),
                        "reference_stage": sorted(ref_stage),
                        "output_stage": sorted(out_stage),
                    }
                )
    return result
