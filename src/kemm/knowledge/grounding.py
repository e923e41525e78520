"""Grounding: a statement is kept only if its checkable facts are supported by the source report.

Checked facts: numbers (sizes, counts, percentages; number words in the source count), TNM
categories and stage groups, grades (numeric, Gleason, high/low), differentiation words,
receptor / IHC calls (marker + polarity), and the polarity of invasion / margin / nodal findings
where the source states the opposite or does not mention the topic at all. Every statement must
also share most of its content words with the source, so invented prose and entities are dropped.

The source is read twice: token by token (:mod:`kemm.knowledge.facts`, liberal, through OCR
spacing such as ``pT 2. N 1.``), and as the report-fact record
(:func:`kemm.knowledge.report_facts.extract_report_facts`), the reader the extractive statements
are written from. The record's values count as stated (a node total summed over specimens, a
stage derived from TNM), and the polarities that a statement must not contradict (margins,
lymphovascular and perineural invasion, nodal status) are the record's, so extraction and
grounding cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kemm.knowledge.clean import clean_report
from kemm.knowledge.extractive import DERIVED_NOTE, DERIVED_TNM_NOTE, stated_node_counts
from kemm.knowledge.facts import Facts, extract_facts, roman_to_int
from kemm.knowledge.report_facts import ReportFacts, extract_report_facts

__all__ = ["GroundingResult", "SourceIndex", "check_statement", "ground_statements"]

_STOP = set(
    """a an and are as at be been by for from has have in into is it its of on or that the this
    to was were with which within without than then there these those not no also both either
    per each any all its their other patient report shows showed reveals revealed noted
    tumour tumor grade stage status present absent positive negative identified seen
    histologic histological type size lymph node nodes margin margins invasion surgical
    pathologic pathological diagnosis finding findings statement cm mm free clear involved
    uninvolved involvement metastasis metastases metastatic vascular lymphovascular perineural
    venous lymphatic angiolymphatic vessel small large regional evidence close closest tnm
    nottingham score proliferation index estrogen oestrogen progesterone receptor receptors
    mismatch repair proteins promoter examined differentiated differentiation""".split()
)
# a roman stage or grade ("IIIA", "iv") and a TNM prefix ("ypT4") are checked as stage / grade /
# TNM facts, not as words
_CODE_WORD_RE = re.compile(r"(?:i{1,3}|iv|vi{0,3})[a-c]?|yp[tnm]")
_STAGE_VALUE_RE = re.compile(r"(IV|I{1,3})([ABC]\d?)?")
# kinds of invasion read as the record's lymphovascular field ("venous" / "large vessel" are not)
_LVI_KINDS = (
    "lymphovascular",
    "lympho-vascular",
    "angiolymphatic",
    "lymphatic",
    "vascular",
    r"small\s+vessel",  # the statement side writes a space as \s+
)
_GENERIC_LVI = ("lymphovascular", "lympho-vascular", "angiolymphatic")


@dataclass
class SourceIndex:
    """Pre-computed facts of one source report (reused for all its statements)."""

    text: str
    facts: Facts
    words: set[str]
    record: ReportFacts

    @classmethod
    def build(cls, source: str, cancer: str | None = None) -> SourceIndex:
        cleaned = clean_report(source)
        record = extract_report_facts(source, cancer)
        facts = _union(extract_facts(source, source=True), extract_facts(cleaned, source=True))
        return cls(
            text=cleaned,
            facts=_union(facts, _record_facts(record)),
            # the record's histology is a vocabulary term ("invasive ductal carcinoma" for
            # "infiltrating duct carcinoma"): its words count as stated, as its values do
            words=_words(source) | _words(cleaned) | _words(record.value("histology") or ""),
            record=record,
        )

    def polarity(self, kind: str) -> str | None:
        """ "pos"/"neg" for what the source's record states about ``kind`` (an invasion type,
        ``"margins"`` or ``"lymph nodes"``), None when it states nothing."""
        record = self.record
        if kind == "margins":
            return _polarity(record.value("margin"))
        if kind == "lymph nodes":
            return _record_node_polarity(record)
        if kind == "perineural":
            return _polarity(record.value("pni"))
        if kind in _LVI_KINDS and record.lvi is not None:
            # a sub-kind ("vascular") is compared only when the record read it from a line
            # about that kind; "lymphovascular" / "angiolymphatic" always
            if kind in _GENERIC_LVI or re.search(kind, record.lvi.source, re.IGNORECASE):
                return _polarity(record.value("lvi"))
        return None


@dataclass
class GroundingResult:
    """Whether a statement is supported, and which of its facts are not."""

    statement: str
    supported: bool
    unsupported: list[str] = field(default_factory=list)


def _union(a: Facts, b: Facts) -> Facts:
    """Facts of the raw and the cleaned source together (cleaning re-joins broken lines)."""
    return Facts(
        numbers=a.numbers | b.numbers,
        tnm=a.tnm | b.tnm,
        stages=a.stages | b.stages,
        grades=a.grades | b.grades,
        differentiation=a.differentiation | b.differentiation,
        receptors=a.receptors | b.receptors,
    )


def _record_facts(record: ReportFacts) -> Facts:
    """The record's values as checkable facts: they count as stated by the source."""
    facts = Facts()
    for name in ("t", "n", "m"):
        value = record.value(name)
        if isinstance(value, str):
            facts.tnm.add(value.upper())
    stage = record.value("stage")
    m = _STAGE_VALUE_RE.fullmatch(str(stage or ""))
    if m:
        facts.stages.add(f"{roman_to_int(m.group(1))}{m.group(2) or ''}")
    grade = record.value("grade")
    if isinstance(grade, str):
        facts.grades.add(grade.upper())
    facts.numbers |= {float(v) for v in stated_node_counts(record) if v is not None}
    size = record.value("size_cm")
    if size is not None:
        facts.numbers |= {float(size), round(float(size) * 10, 6)}
    return facts


def _record_node_polarity(record: ReportFacts) -> str | None:
    """Nodal status of a record: from the node counts, else from the N category."""
    positive, _ = stated_node_counts(record)
    if positive is not None:
        return "pos" if positive > 0 else "neg"
    n = record.value("n")
    if isinstance(n, str) and re.match(r"N[0-3]", n):
        return "neg" if n[1] == "0" else "pos"
    return None


def _words(text: str) -> set[str]:
    return {
        w[:6]
        for w in re.findall(r"[a-z]{3,}", text.lower())
        if w not in _STOP and not _CODE_WORD_RE.fullmatch(w)
    }


def _polarity(value: str | None) -> str | None:
    if not value:
        return None
    value = value.lower()
    if value.startswith(("absent", "negative")) or value.endswith("absent"):
        return "neg"
    if value.startswith(("present", "positive")) or value.endswith("present"):
        return "pos"
    return None


_NO_FINDING_RE = re.compile(
    r":\s*(?:not\s+(?:specified|stated|mentioned|provided|available|reported|applicable|"
    r"documented|given)|n/?a|unknown|none\s+(?:specified|stated|given))\.?\s*$|"
    r"\b(?:is|are|was|were)\s+not\s+(?:specified|stated|mentioned|provided|reported)\b",
    re.IGNORECASE,
)
# A statement about a topic needs the source to mention that topic at all.
_TOPICS = (
    ("perineural invasion", r"perineural", r"perineural|peri-neural"),
    ("lymph nodes", r"lymph\s*nodes?|nodal", r"node|nodal|\bp?N[0-3xX]"),
    ("margins", r"margins?", r"margin|\bR[012]\b"),
    ("vascular invasion", r"lymphovascular|angiolymphatic|lymphatic|vascular|venous|vessel",
     r"lymphovascular|angiolymphatic|lymphatic|vascular|venous|vessel|\bL[01]\b|\bV[01]\b"),
    ("estrogen receptor", r"estrogen|oestrogen|\bER\b", r"estrogen|oestrogen|\bER\b"),
    ("progesterone receptor", r"progesterone|\bPR\b", r"progesterone|\bPR\b|\bPgR\b"),
    ("HER2", r"HER-?2", r"HER[- ]?2|erb-?B-?2"),
)  # fmt: skip
_KIND_RE = re.compile(
    r"(lymphovascular|lympho-vascular|angiolymphatic|lymphatic|venous|vascular|perineural|"
    r"small\s+vessel|large\s+vessel)\s+(?:\w+\s+)?invasion",
    re.IGNORECASE,
)


def _value_polarity(text: str) -> str | None:
    s = text.lower()
    if re.search(r"\b(no|not|absent|negative|without|free|uninvolved|clear|none)\b", s):
        return "neg"
    if re.search(r"\b(present|positive|identified|involved|seen|extensive|focal)\b", s):
        return "pos"
    return None


def _node_polarity(text: str) -> str | None:
    """Nodal status claimed by a text: "pos" (``2 of 17 positive``), "neg" (``0/12``,
    ``negative``), or None."""
    s = text.lower()
    if re.search(r"(?<![\d.])0\s*(?:of|/|out\s+of)\s*\d|(?<![\d.])0\s+(?:positive|involved)", s):
        return "neg"
    if re.search(r"(?<![\d.])[1-9]\d*\s*(?:of|/|out\s+of)\s*\d+", s):
        return "pos"
    if re.search(r"\b(no|not|negative|free|uninvolved|without|none|benign)\b", s):
        return "neg"
    if re.search(r"\b(positive|involved|metasta\w*)\b", s):
        return "pos"
    return None


def _statement_polarities(statement: str) -> list[tuple[str, str]]:
    """(kind, polarity) claims of a statement about invasion types and margins."""
    out: list[tuple[str, str]] = []
    for m in _KIND_RE.finditer(statement):
        pol = _value_polarity(statement)
        if pol:
            out.append((re.sub(r"\s+", r"\\s+", m.group(1).lower()), pol))
    if re.search(r"\bmargins?\b", statement, re.IGNORECASE):
        pol = _value_polarity(statement)
        if pol:
            out.append(("margins", pol))
    if re.search(r"\blymph\s*nodes?\b|\bnodal\b", statement, re.IGNORECASE):
        pol = _node_polarity(statement)
        if pol:
            out.append(("lymph nodes", pol))
    return out


def _tnm_supported(token: str, source: set[str]) -> bool:
    # "T1" is supported by "T1A"; "T1A" needs "T1A".
    return any(s == token or s.startswith(token) for s in source)


def _stage_supported(stage: str, source: set[str]) -> bool:
    return any(s == stage or s.startswith(stage) for s in source)


def _number_supported(value: float, statement: str, source: set[float]) -> bool:
    if any(abs(value - s) < 1e-9 for s in source):
        return True
    # a size converted between cm and mm ("0.9 cm" for "9 mm")
    if re.search(r"\b(cm|mm)\b", statement):
        return any(abs(value * 10 - s) < 1e-6 or abs(value / 10 - s) < 1e-6 for s in source)
    return False


def check_statement(
    statement: str,
    source: str | SourceIndex,
    *,
    min_content_overlap: float = 0.5,
    cancer: str | None = None,
) -> GroundingResult:
    """Check one statement against its source report (``cancer``: the TCGA study code the
    source record is read with, see :func:`extract_report_facts`)."""
    index = source if isinstance(source, SourceIndex) else SourceIndex.build(source, cancer)
    # the provenance note of a derived stage is not a claim about the report
    body = statement.replace(DERIVED_NOTE, "").replace(DERIVED_TNM_NOTE, "")
    facts = extract_facts(body)
    bad: list[str] = []
    for value in sorted(facts.numbers):
        if not _number_supported(value, statement, index.facts.numbers):
            bad.append(f"number {value:g}")
    for token in sorted(facts.tnm):
        if not _tnm_supported(token, index.facts.tnm):
            bad.append(f"TNM {token}")
    for stage in sorted(facts.stages):
        if not _stage_supported(stage, index.facts.stages):
            bad.append(f"stage {stage}")
    for grade in sorted(facts.grades - index.facts.grades):
        bad.append(f"grade {grade}")
    for term in sorted(facts.differentiation - index.facts.differentiation):
        bad.append(f"differentiation {term.lower()}")
    for call in sorted(facts.receptors - index.facts.receptors):
        bad.append(f"receptor {call[0]} {call[1]}")
    if _NO_FINDING_RE.search(statement):
        bad.append("states no finding")
    for topic, statement_rx, source_rx in _TOPICS:
        if re.search(statement_rx, statement, re.IGNORECASE) and not re.search(
            source_rx, index.text, re.IGNORECASE
        ):
            bad.append(f"topic not in source: {topic}")
    for kind, pol in _statement_polarities(statement):
        source_pol = index.polarity(kind)
        if source_pol and pol != source_pol:
            name = kind.replace("\\s+", " ")
            bad.append(f"{name} {'present' if pol == 'pos' else 'absent'} contradicts source")
    words = _words(body)
    if words:  # invented entities ("adenocarcinoma" for a squamous tumour) are dropped too
        overlap = len(words & index.words) / len(words)
        if overlap < min_content_overlap:
            bad.append(f"content words {overlap:.0%} in source")
    if not re.search(r"[A-Za-z0-9]", statement):
        bad.append("no content")
    return GroundingResult(statement=statement, supported=not bad, unsupported=bad)


def ground_statements(
    statements: list[str],
    source: str,
    *,
    min_content_overlap: float = 0.5,
    cancer: str | None = None,
) -> tuple[list[str], list[GroundingResult]]:
    """Split statements into (kept, dropped-with-reasons)."""
    index = SourceIndex.build(source, cancer)
    kept: list[str] = []
    dropped: list[GroundingResult] = []
    for statement in statements:
        result = check_statement(statement, index, min_content_overlap=min_content_overlap)
        (kept.append(statement) if result.supported else dropped.append(result))
    return kept, dropped
