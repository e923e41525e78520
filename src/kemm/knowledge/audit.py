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

__all__ = ["AuditResult", "Recovery", "audit_grade_stage", "grade_levels", "stage_tokens"]

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
class Recovery:
    """Items a reference states: how many the output recovered, how many it contradicted (it
    states another value and none of the reference's)."""

    total: int = 0
    recovered: int = 0
    conflicts: int = 0

    def add(self, hit: bool, contradicted: bool = False) -> None:
        self.total += 1
        self.recovered += hit
        self.conflicts += contradicted

    @property
    def share(self) -> float:
        return self.recovered / self.total if self.total else float("nan")


@dataclass
class AuditResult:
    """Per-report recovery of the grade and the stage stated by the reference summaries;
    ``either``: reports stating a grade or a stage where at least one is recovered."""

    n_reports: int = 0
    grade: Recovery = field(default_factory=Recovery)
    stage: Recovery = field(default_factory=Recovery)
    either: Recovery = field(default_factory=Recovery)
    misses: list[dict[str, object]] = field(default_factory=list)

    @property
    def item_recovery(self) -> float:
        """Fraction of (report, grade|stage) items recovered: the stricter figure."""
        total = self.grade.total + self.stage.total
        return (self.grade.recovered + self.stage.recovered) / total if total else float("nan")

    def summary(self) -> str:
        g, s, e = self.grade, self.stage, self.either
        return (
            f"grade {g.recovered}/{g.total}, stage {s.recovered}/{s.total}, items "
            f"{self.item_recovery:.1%}, reports (grade or stage) {e.recovered}/{e.total} "
            f"= {e.share:.1%}; conflicts: grade {g.conflicts}, stage {s.conflicts}"
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
            result.grade.add(hit_grade, bool(out_grade) and not hit_grade)
        if ref_stage:
            result.stage.add(hit_stage, bool(out_stage) and not hit_stage)
        if ref_grade or ref_stage:
            result.either.add(hit_grade or hit_stage)
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
