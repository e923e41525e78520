"""LLM-free prognostic statements from pathology reports, written from the report-fact record.

Every statement about a field of the record (stage, TNM, grade, lymph nodes, margins,
histologic type, lymphovascular and perineural invasion, tumour size, ER / PR / HER2) is a
rendering of :func:`kemm.knowledge.report_facts.extract_report_facts`: there is no second
parser, so the statements, the clinical covariates and the grounding check read a report the
same way (history, clinical information, page footers and text addressed to a model are not
read). Besides the record, a few markers that are not record fields (Ki-67 index, MGMT, IDH,
p16, mismatch repair / MSI, EGFR, ALK, PD-L1) are read from the same readable units.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from kemm.knowledge.facts import receptor_calls
from kemm.knowledge.report_facts import Fact, ReportFacts, extract_report_facts, report_units

__all__ = [
    "DERIVED_NOTE",
    "DERIVED_TNM_NOTE",
    "ReportFields",
    "extract_fields",
    "refine_extractive",
    "stated_node_counts",
]

DERIVED_NOTE = " (from TNM, AJCC 7th edition)"
"""Appended to a stage group that the record derived from TNM rather than read."""
DERIVED_TNM_NOTE = " (derived from size, invasion or node counts, AJCC 7th edition)"
"""Appended to TNM categories of which one or more were derived from the defining findings."""

# Markers that are not fields of the record: (receptor_calls marker, label, words by polarity).
_MARKERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("MGMT", "MGMT promoter", {"POS": "methylated", "NEG": "unmethylated"}),
    ("IDH", "IDH", {"POS": "mutant", "NEG": "wild-type"}),
    ("P16", "p16", {"POS": "positive", "NEG": "negative"}),
    ("MMR", "Mismatch repair", {"POS": "deficient", "NEG": "intact"}),
    ("MSI", "MSI", {"POS": "high", "NEG": "stable"}),
    ("EGFR", "EGFR", {"POS": "mutated", "NEG": "wild-type"}),
    ("ALK", "ALK", {"POS": "positive", "NEG": "negative"}),
    ("PDL1", "PD-L1", {"POS": "positive", "NEG": "negative"}),
)
_KI67_RE = re.compile(
    r"(?:Ki-?67|MIB-?1)[^.;\d]{0,40}?(?P<a>\d{1,3}(?:\.\d)?)\s*%?"
    r"(?:\s*(?:to|-)\s*(?P<b>\d{1,3}(?:\.\d)?))?\s*%",
    re.IGNORECASE,
)
_RECEPTORS = (("er", "Estrogen receptor"), ("pr", "Progesterone receptor"), ("her2", "HER2"))


def stated_node_counts(record: ReportFacts) -> tuple[int | None, int | None]:
    """(positive, examined) node counts of a record, ``None`` for a count not stated or not
    consistent: positive > examined, or a count that contradicts the stated N category
    (``N0`` with positive nodes, ``N1``+ with none) is not used."""
    pos, exam = record.value("nodes_positive"), record.value("nodes_examined")
    if pos is not None and exam is not None and int(pos) > int(exam):
        return None, None
    n = record.value("n")
    if pos is not None and isinstance(n, str) and re.match(r"N[0-3]", n):
        if (int(pos) > 0) != (n[1] != "0"):
            return None, None  # a count against the N category is likely a partial count
    return (None if pos is None else int(pos)), (None if exam is None else int(exam))


def _stage(record: ReportFacts) -> str | None:
    fact = record.stage
    if fact is None:
        return None
    return f"Pathologic stage: {fact.value}{DERIVED_NOTE if fact.derived else ''}."


def _tnm(record: ReportFacts) -> str | None:
    axes = [
        (axis, fact) for axis in ("t", "n", "m") if isinstance(fact := getattr(record, axis), Fact)
    ]
    stated = [(getattr(record, f"{axis}_prefix") or "", fact.value) for axis, fact in axes]
    if not stated:
        return None
    label = "Clinical TNM" if all(p == "c" for p, _ in stated) else "Pathologic TNM"
    note = DERIVED_TNM_NOTE if any(fact.derived for _, fact in axes) else ""
    return f"{label}: {' '.join(p + str(v) for p, v in stated)}{note}."


def _nodes(record: ReportFacts) -> str | None:
    pos, exam = stated_node_counts(record)
    if pos is not None and exam is not None:
        return f"Lymph nodes: {pos} of {exam} positive."
    if pos is not None:
        return f"Lymph nodes: {pos} positive."
    if exam is not None:
        return f"Lymph nodes: {exam} examined."
    return None


def _size(record: ReportFacts) -> str | None:
    value = record.value("size_cm")
    return None if value is None else f"Tumour size: {float(value):g} cm."


def _simple(label: str, name: str):
    def render(record: ReportFacts) -> str | None:
        value = record.value(name)
        return None if value is None else f"{label}: {value}."

    return render


# Priority order: what is kept first when the statements are capped.
_RENDERERS = (
    _stage,
    _tnm,
    _simple("Tumour grade", "grade"),
    _nodes,
    _simple("Surgical margins", "margin"),
    _simple("Histologic type", "histology"),
    _simple("Lymphovascular invasion", "lvi"),
    _simple("Perineural invasion", "pni"),
    _size,
    *(_simple(label, name) for name, label in _RECEPTORS),
)


def _marker_statements(text: str) -> list[str]:
    """Ki-67 and the markers that are not record fields, from the record's readable units."""
    ki67: list[tuple[float, str]] = []  # (upper value, as written)
    calls: dict[str, str] = {}
    for unit in report_units(text):
        for m in _KI67_RE.finditer(unit.text):
            a, b = m.group("a"), m.group("b")
            ki67.append((float(b or a), f"{a}-{b}" if b else a))
        for marker, pol in sorted(receptor_calls(unit.text)):
            calls.setdefault(marker, pol)
    # several specimens: the highest index, as the record stages by the highest T
    out = [f"Ki-67 proliferation index: {max(ki67)[1]}%."] if ki67 else []
    for marker, label, words in _MARKERS:
        word = words.get(calls.get(marker, ""))
        if word is None:
            continue
        statement = f"{label}: {word}."
        if receptor_calls(statement) == {(marker, calls[marker])}:  # reads back the same call
            out.append(statement)
    return out


@dataclass
class ReportFields:
    """The fact record of one report and the marker statements that are not record fields."""

    facts: ReportFacts
    markers: list[str] = field(default_factory=list)

    def statements(self) -> list[str]:
        """Statements in priority order: stage, TNM, grade, nodes, margins, then the rest."""
        out = [s for render in _RENDERERS if (s := render(self.facts))]
        return out + self.markers


def extract_fields(text: str, *, cancer: str | None = None) -> ReportFields:
    """The record of a report (:func:`extract_report_facts`) and its marker statements.

    ``cancer`` (TCGA study code) selects the grade scale, the AJCC table used to derive a stage
    from TNM, and whether ER / PR / HER2 are read (breast).
    """
    if not text or not str(text).strip():
        return ReportFields(ReportFacts())
    text = str(text)
    return ReportFields(extract_report_facts(text, cancer), list(_markers_cached(text)))


@functools.lru_cache(maxsize=16384)
def _markers_cached(text: str) -> tuple[str, ...]:
    return tuple(_marker_statements(text))


def refine_extractive(text: str, max_statements: int = 12, cancer: str | None = None) -> list[str]:
    """Short prognostic statements of one report (at most ``max_statements``, in priority
    order: stage, TNM, grade, lymph nodes, margins, then the rest)."""
    if max_statements <= 0:
        return []
    return extract_fields(text, cancer=cancer).statements()[:max_statements]
