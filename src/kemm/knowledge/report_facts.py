"""The report-fact extractor: one pathology report -> one typed, grounded record.

Every model that reads report facts (clinical covariates, the extractive refiner, grounding,
the audit scorer and ``kemm knowledge facts``) goes through :func:`extract_report_facts`.

How a report is read:

* The text is cut into *units*: a line of the OCR text, or a sentence where the OCR export
  joined lines with ``". "``; a synoptic label alone on its line (``REGIONAL LYMPH NODES (pN)``)
  forms one unit with the value line under it. A fact always comes from one unit, never from
  pieces of different lines.
* Units are assigned to sections by the headers met while walking the report. History,
  clinical information, pre-operative diagnoses, gross description and frozen sections are
  not read (they state what was suspected or a comorbidity, not the tumour's pathology).
  Page headers and footers, confidentiality boilerplate and text addressed to a model
  (``SYSTEM:``, ``ignore previous instructions`` ...) are not report text and are skipped.
* OCR variants are read (``pTlb``, ``pT1 b``, ``T2 a``, ``PT3b``, ``pNO``, ``pT2N0Mx``,
  ``9.5 em``). "Not specified", "cannot be assessed" and the like mean *not stated*, never
  absent.
* Where a report states TNM but no stage group, the stage comes from the cancer's AJCC 7th
  edition table (:mod:`kemm.knowledge.ajcc`), and the field says so (``derived``).

Each field is a :class:`Fact` with its value, the character span of its unit in the original
text and that unit's text; a field that the report does not state is ``None``. The vocabulary
these rules share with the token layer and the LLM validator (not-stated, margin, invasion, node,
size, differentiation and histology words) lives in :mod:`kemm.knowledge.patterns`.
"""

from __future__ import annotations

import collections
import copy
import functools
import re
from dataclasses import dataclass, field, fields

from kemm.knowledge.derived_tnm import derive_n, derive_t
from kemm.knowledge.facts import normalise_number_words, receptor_calls, roman_to_int, to_roman
from kemm.knowledge.histology import is_generic, normalise_histology
from kemm.knowledge.patterns import (
    ABSENT_BEFORE_RE,
    ABSENT_HEAD_RE,
    DIFFERENTIATION_RE,
    GENERIC_HISTOLOGY,
    IN_SITU_RE,
    ISOLATED_CELLS_RE,
    LVI_LABEL,
    MARGIN_CALL_RE,
    MARGIN_MENTION_RE,
    MARGIN_NEGATIVE_RE,
    MARGIN_POSITIVE_RE,
    MARGIN_WORD_RE,
    NEGATED_BEFORE_RE,
    NEGATED_FINDING_RE,
    NHG_RE,
    NODE_NEGATIVE_WORDS_RE,
    NODE_TUMOUR,
    NODE_WORD,
    NOT_STATED_RE,
    OCR_DIGITS,
    PNI_LABEL,
    PRECURSOR_WORDS,
    PRESENT_BEFORE_RE,
    PRESENT_HEAD_RE,
    SIZE_VALUE_RE,
    STATION_BEFORE_RE,
    TUMOUR_NOUN,
    UNINVOLVED_RE,
    differentiation_grade,
    names_node_tumour,
    size_cm,
)

__all__ = [
    "FACT_COLUMNS",
    "Fact",
    "ReportFacts",
    "Unit",
    "extract_report_facts",
    "report_units",
    "seventh_edition_value",
]

# ----------------------------------------------------------------------------------------------
# Units and sections


@dataclass(frozen=True)
class Unit:
    """One line (or one sentence of a joined OCR export) of a report, with its section."""

    text: str
    start: int
    end: int
    section: str


# Section headers recognised at the start of a unit. ``skip`` sections are not read.
_SECTION_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "skip",
        r"(?:pertinent\s+)?(?:past\s+)?(?:clinical\s+|medical\s+)?history|clinical\s+"
        r"(?:data|information|notes?|diagnosis|indications?)|indications?(?:\s+for\s+\w+)?|"
        r"pre-?\s?op(?:erative)?\.?\s+diagnosis|post-?\s?op(?:erative)?\.?\s+diagnosis|"
        r"reason\s+for\s+(?:referral|request|surgery)|frozen\s+section(?:\s+diagnosis)?|"
        r"intra-?operative\s+(?:consultation|diagnosis)|gross(?:\s+(?:description|examination|"
        r"exam|findings))?|macroscopic(?:\s+description)?|specimens?\s+(?:received|submitted)|"
        r"comorbidit(?:y|ies)|past\s+medical",
    ),
    (
        "synoptic",
        r"synoptic(?:\s+\w+)?|(?:[a-z]+\s+){0,3}(?:carcinoma|cancer|tumou?r)\s+(?:case\s+)?"
        r"summary|(?:[a-z]+\s*,?\s*){0,4}case\s+summary|pathologic(?:al)?\s+staging(?:\s*\(p?tnm\))?|"
        r"(?:cap\s+)?checklist|summary\s+of\s+(?:pathologic\s+)?findings",
    ),
    (
        "diagnosis",
        # "Einal"/"Pinal": OCR's readings of "Final"
        r"(?:[fep]inal\s+)?(?:surgical\s+)?(?:pathologic(?:al)?\s+)?diagnos[ie]s"
        r"(?:\s+based\s+on[\w\s]{0,40})?|final\s+report|impression|conclusions?|"
        r"histopathological\s+(?:diagnosis|examination)",
    ),
    ("microscopic", r"microscopic(?:\s+(?:description|examination|findings))?"),
    ("comment", r"comments?|addendum|note"),
)
_SECTION_RE = [
    (
        name,
        re.compile(
            r"^\s*[\W\d]{0,4}\s*(?:[A-Za-z0-9\- ]{1,25}:\s*)?(?:"
            + rx
            + r")\s*(?:\(s\))?\s*(?::|\.|-|$)",
            re.I,
        ),
    )
    for name, rx in _SECTION_HEADERS
]
# Any of the headers: a line it does not match is no header (one match instead of one per
# section; the sections are then tried in order, so the first match still wins).
_ANY_SECTION_RE = re.compile(
    r"^\s*[\W\d]{0,4}\s*(?:[A-Za-z0-9\- ]{1,25}:\s*)?(?:"
    + "|".join(f"(?:{rx})" for _, rx in _SECTION_HEADERS)
    + r")\s*(?:\(s\))?\s*(?::|\.|-|$)",
    re.I,
)


# A word every header above contains: a line without one is no header (a cheap test first).
_HEADER_WORD_RE = re.compile(
    r"histor|clinical|indication|diagnos|reason|frozen|operative|gross|macroscopic|specimen|"
    r"comorbid|past|synoptic|summary|staging|checklist|report|impression|conclusion|"
    r"histopatholog|microscopic|comment|addendum|note",
    re.I,
)


def _section_of(line: str) -> str | None:
    """The section a header line opens, or None for a line that is no known header."""
    if not _HEADER_WORD_RE.search(line) or not _ANY_SECTION_RE.match(line):
        return None
    return next((name for name, rx in _SECTION_RE if rx.match(line)), None)


# Whole units that are not report text.
_NOT_TEXT_RE = re.compile(
    r"\bpage\s*:?\s*\d+\s*(?:of\s*\d+)?\b|^\s*\d+\s+of\s+\d+\s*\.?\s*$|confidential|privileged|unauthori[sz]ed|"
    r"\bprotected\s+by\b|electronic(?:ally)?\s+sign|\bsigned\s+out\b|\bdictated\s+by\b|"
    r"\bprinted\s+(?:on|by)\b|\buuid\b|\bredacted\b|\bebrowser\b|\bresult\s+for\s*:",
    re.I,
)
# Text addressed to a language model (prompt injection), never pathology.
_INJECTION_RE = re.compile(
    r"^\s*(?:system|assistant|user|instruction|prompt)\s*[:>]|ignore\s+(?:all\s+)?(?:the\s+)?"
    r"(?:previous|prior|above)|disregard\s+(?:the\s+)?(?:previous|above)|\byou\s+are\s+an?\b|"
    r"\bas\s+an\s+ai\b|\bllm\b|\blanguage\s+model\b|new\s+instructions?",
    re.I,
)
# The labels of lymphovascular and perineural invasion items.
_LVI_LABEL_RE = re.compile(LVI_LABEL, re.I)
_PNI_LABEL_RE = re.compile(PNI_LABEL, re.I)
# History, comorbidity and suspicion inside otherwise readable sections.
_HISTORY_RE = re.compile(
    r"\bhistory\s+of\b|\bh/o\b|\bhx\b|\bprior\s+(?:history|diagnosis)\b|\bprevious(?:ly)?\s+(?:diagnosed|treated|resected|"
    r"excised|history)\b|"
    r"\bchronic\s+kidney\s+disease\b|\bckd\b|\bend[- ]stage\s+renal\b|\brenal\s+transplant\b|"
    r"\brule\s+out\b|\br/o\b|\bsuspicious\s+for\b|\bclinical(?:ly)?\b|\bper\s+(?:clinical|"
    r"radiology)\b|\bradiolog|\bimaging\b|\bct\s+scan\b|\bpet\b",
    re.I,
)
# Any header-like line: a few upper-case words alone, optionally ending with ":" or ".".
_ANY_HEADER_RE = re.compile(r"^\s*[A-Z][A-Z&/()\- ]{2,40}\s*[:.]?\s*$")
# A final-diagnosis specimen line: [part] site[, side], procedure: diagnosis naming a tumour.
_SPECIMEN_LINE_RE = re.compile(
    r"^\s*(?:[A-Z]?\d{0,2}[.)]\s*)?[A-Za-z][A-Za-z ()/\-]{2,60}(?:,\s*[A-Za-z ()/\-]{2,40}){0,3},\s*"
    r"(?:[a-z ]{0,30}\s)?(?:resection|biopsy|biopsies|excision|(?:radical\s+|partial\s+)?"
    r"(?:nephrectomy|mastectomy|lobectomy|pneumonectomy|hysterectomy|colectomy|gastrectomy|"
    r"esophagectomy|adrenalectomy|thyroidectomy|prostatectomy|cystectomy|pancreatectomy|"
    r"hepatectomy|lumpectomy|segmentectomy|glossectomy|laryngectomy|resection))[^:]{0,40}:\s*"
    r".{0,120}?(?:carcinoma|adenocarcinoma|sarcoma|melanoma|mesothelioma|neoplasm|tumou?r|"
    r"lymphoma|blastoma|cytoma)",
    re.I,
)
# A synoptic label alone on its line: its value is on the next line.
_LABEL_ONLY_RE = re.compile(r"^[A-Z][A-Z0-9 ()/,&'\-]{3,70}:?\s*$")
# A line that is only an explanation in brackets ("(excluding renal vein)"), no value after it.
_PARENTHETICAL_LINE_RE = re.compile(r"^\([^()]*\)\W*$")
# A number at the end of a line whose unit opens the next ("... GRADE 3 (7.0" / "CM IN DIAMETER)").
_NUMBER_AT_END_RE = re.compile(r"\d(?:\.\d+)?\s*$")
_UNIT_AT_START_RE = re.compile(r"^\s*(?:cm|mm)\b", re.I)


# A synoptic item's label with its colon ("Tumor size:"), and what follows it on the line.
_COLUMN_LABEL_RE = re.compile(r"^([A-Z][A-Za-z ()/\-]{2,40}):\s*(.*)$")
# A synoptic label written without its colon ("Nodal Involvement"), not an upper-case header.
_COLUMN_TITLE_RE = re.compile(r"^(?=.*[a-z])[A-Z][A-Za-z ()/\-]{2,40}$")
# What a value must look like under a label, so that a column block whose values are shifted
# against its labels (an item left empty) is not paired at all: a wrong fact is worse than none.
_COLUMN_VALUE_CHECKS = (
    (re.compile(r"size|dimension", re.I), re.compile(r"\d\s*(?:cm|mm)\b", re.I)),
    (
        re.compile(r"grade", re.I),
        re.compile(r"grade|\bG\s?[1-4X]\b|differentiat|\b(?:low|high)\b", re.I),
    ),
    (
        re.compile(r"margin", re.I),
        re.compile(
            r"involved|free|negative|positive|clear|close|\d\s*(?:cm|mm)|identified|present|absent",
            re.I,
        ),
    ),
    (
        re.compile(r"invasion|nodes?\b", re.I),
        re.compile(r"identified|present|absent|negative|positive|involved|\bnot?\b|none", re.I),
    ),
    (re.compile(r"extension|involvement", re.I), re.compile(r"\w")),
    (
        re.compile(r"^(?!.*grade).*(?:histolog|tumou?r\s+type)", re.I),
        re.compile(r"oma\b|type|cell", re.I),
    ),
    (
        re.compile(r"stage|\btnm\b", re.I),
        re.compile(r"\b(?:y?p)?T[0-4X]|\bstage|\b[IV]{1,3}\b", re.I),
    ),
)


def _column_pairs(lines: list[str]) -> tuple[dict[int, tuple[str, str]], set[int]]:
    """Synoptic items laid out in two columns that OCR read one column after the other: k labels
    on k lines ("Tumor size:" ...), then the k values in the same order. The last label often
    carries the first value ("Margins:Solitary"). Returns, by line index, the (label, value)
    each value line stands for, and the label-only lines (no facts of their own). A block is
    paired only when every value fits its label (a size has cm or mm, a grade a grade ...)."""
    pairs: dict[int, tuple[str, str]] = {}
    labels_only: set[int] = set()
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and (m := _COLUMN_LABEL_RE.match(lines[j])) and not m.group(2):
            j += 1
        if j - i < 2 or (i > 0 and _COLUMN_TITLE_RE.match(lines[i - 1])):
            # (a label without its colon just above: the block's start is not known)
            i = max(j, i + 1)
            continue
        labels = [_COLUMN_LABEL_RE.match(lines[k]).group(1) for k in range(i, j)]
        glued = _COLUMN_LABEL_RE.match(lines[j]) if j < len(lines) else None
        if glued:  # "Margins:Solitary": the last label, then the first value
            labels.append(glued.group(1))
            values = [(j, glued.group(2).strip())] + [
                (k, lines[k]) for k in range(j + 1, min(j + len(labels), len(lines)))
            ]
        else:
            values = [(k, lines[k]) for k in range(j, min(j + len(labels), len(lines)))]
        after = values[-1][0] + 1 if values else len(lines)
        fits = (
            len(labels) >= 3
            and len(values) == len(labels)
            # the block ends where it should: its last value runs into the next column's label
            # ("tumorAccession:") or the next line is a label, a header or the end; a value
            # left empty would pull a later line in
            and (
                re.search(r"[a-z][A-Z]\w*:$", values[-1][1])
                or after >= len(lines)
                or _COLUMN_LABEL_RE.match(lines[after])
                or _ANY_HEADER_RE.match(lines[after])
            )
            # a block of synoptic items: at least one label the checks know
            and any(rx.search(label) for label in labels for rx, _ in _COLUMN_VALUE_CHECKS)
            and all(
                len(value) < 120
                # a value holds no item of its own ("Right ovary: Not involved"), but the last
                # may run into the next column's label ("Uninvolved by tumorAccession:")
                and ":"
                not in re.sub(r"(?<=[a-z])[A-Z]\w*:$" if n == len(values) - 1 else "$^", "", value)
                and all(not rx.search(label) or ok.search(value) for rx, ok in _COLUMN_VALUE_CHECKS)
                # a value naming another item ("Lymph nodes negative (0/12)") is that item's
                and not re.search(r"lymph\s+nodes?|margin", value, re.I)
                for n, (label, (_, value)) in enumerate(zip(labels, values, strict=True))
            )
        )
        if fits:
            labels_only.update(range(i, j))
            for label, (k, value) in zip(labels, values, strict=True):
                pairs[k] = (label, value)
            i = values[-1][0] + 1
        else:
            i = j
    return pairs, labels_only


def _joined_export(text: str) -> bool:
    """True for the OCR exports that joined every line with ``". "`` (few real newlines)."""
    return text.count("\n") < max(3, len(text) / 400)


def _raw_units(text: str) -> list[tuple[int, int]]:
    if _joined_export(text):
        spans, start = [], 0
        # a sentence end: ". " not inside a decimal number, an abbreviation-like "e.g." or "Dr."
        # (not before a TNM piece that OCR cut off with a dot: "pT 2. N 1. M X.", nor before
        # a measurement's noun that ends a broken phrase: "12 cm greatest. diameter")
        for m in re.finditer(
            r"(?<!\b[A-HJ-UW-Za-hj-uw-z])(?<!\bDr)(?<!\bNo)\.\s+"
            r"(?![NM]\s?[0-3xXO]\b|(?:diameter|dimension)\b)|\n",
            text,
        ):
            spans.append((start, m.start()))
            start = m.end()
        spans.append((start, len(text)))
        return spans
    spans, start = [], 0
    for m in re.finditer(r"\n", text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def report_units(text: str) -> list[Unit]:
    """The readable units of a report, each with its section (``skip`` units are dropped)."""
    text = _repair(text)
    units: list[Unit] = []
    section = "preamble"
    raw = [(a, b) for a, b in _raw_units(text) if text[a:b].strip()]
    columns, labels_only = (
        ({}, set()) if _joined_export(text) else _column_pairs([text[a:b].strip() for a, b in raw])
    )
    i = 0
    while i < len(raw):
        a, b = raw[i]
        line = text[a:b].strip()
        header = _section_of(line)
        if header is not None:
            section = header
        elif _ANY_HEADER_RE.match(line):
            section = "other"  # an unknown header ends a skipped section
        if i in labels_only or i in columns:
            if i in columns and section != "skip":
                label, value = columns[i]
                units.append(Unit(re.sub(r"\s+", " ", f"{label}: {value}"), a, b, section))
            i += 1
            continue
        # a label alone on its line (upper case, no value) takes the next line as its value,
        # skipping one parenthetical explanation line ("(excluding renal vein ...)")
        if _LABEL_ONLY_RE.match(line) and i + 1 < len(raw) and not _is_header_only(line):
            j = i + 1
            nxt = text[raw[j][0] : raw[j][1]].strip()
            if _PARENTHETICAL_LINE_RE.match(nxt) and j + 1 < len(raw):
                j += 1
                nxt = text[raw[j][0] : raw[j][1]].strip()
            # never take a sign-off as the value ("PATHOLOGIC. (AJCC Seventh Edition) : pT2
            # pNO. (Electronic Signature)": the line in brackets holds the value here)
            if not _LABEL_ONLY_RE.match(nxt) and len(nxt) < 160 and not _NOT_TEXT_RE.search(nxt):
                b = raw[j][1]
                i = j
        nxt_line = text[raw[i + 1][0] : raw[i + 1][1]] if i + 1 < len(raw) else ""
        if (
            _NUMBER_AT_END_RE.search(text[a:b])
            and _UNIT_AT_START_RE.match(nxt_line)
            and i + 1 not in columns
            and i + 1 not in labels_only
        ):
            i += 1  # a measurement broken between its number and its unit is one unit
            b = raw[i][1]
        unit = text[a:b]
        i += 1
        if _INJECTION_RE.search(unit):
            # text addressed to a model: it and what follows it, up to the next section
            # header, is not report text (injected lines are appended as a block)
            section = "skip"
            continue
        if section == "skip" or _NOT_TEXT_RE.search(unit):
            continue
        # under a header the rules do not know, a specimen line ("1. Adrenal gland, left,
        # resection: adrenocortical carcinoma ...") is the diagnosis all the same
        unit_section = (
            "diagnosis" if section == "other" and _SPECIMEN_LINE_RE.match(unit) else section
        )
        units.append(Unit(re.sub(r"\s+", " ", unit).strip(), a, b, unit_section))
    return units


def _is_header_only(line: str) -> bool:
    return len(line) < 40 and _section_of(line) is not None


def _repair(text: str) -> str:
    """Same-length OCR repairs, so spans stay valid in the original text."""
    return text.replace("\r", "\n").replace("\t", " ")


# ----------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True)
class Fact:
    """One stated fact: normalised value, the span of its unit in the report, the unit text.
    ``derived`` marks a value computed from other facts (stage from TNM, T from size or
    invasion, N from a node count), ``rule`` names the rule that computed it."""

    value: str | float | int
    start: int
    end: int
    source: str
    derived: bool = False
    rule: str | None = None


@dataclass
class ReportFacts:
    """Facts of one report; ``None`` means the report does not state it."""

    t: Fact | None = None  # "T2a" (prefix in t_prefix)
    t_prefix: str | None = None  # "p", "yp", "c" ...
    n: Fact | None = None
    n_prefix: str | None = None
    m: Fact | None = None
    m_prefix: str | None = None
    stage: Fact | None = None  # "IIIA"; FIGO for UCEC
    grade: Fact | None = None  # "G2" on the cancer's own scale
    nodes_positive: Fact | None = None
    nodes_examined: Fact | None = None
    size_cm: Fact | None = None
    margin: Fact | None = None  # "positive" / "negative"
    lvi: Fact | None = None  # "present" / "absent"
    pni: Fact | None = None
    histology: Fact | None = None
    er: Fact | None = None  # "positive" / "negative" / "equivocal"
    pr: Fact | None = None
    her2: Fact | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def value(self, name: str):
        fact = getattr(self, name)
        return fact.value if isinstance(fact, Fact) else None

    def row(self, *, receptors: bool = False) -> dict[str, object]:
        """The CSV row of ``kemm knowledge facts`` (empty string = not stated)."""
        columns = FACT_COLUMNS + (RECEPTOR_COLUMNS if receptors else ())
        out: dict[str, object] = {}
        for name in columns:
            value = self.value(name)
            out[name] = "" if value is None else value
        return out

    def stated(self) -> list[str]:
        return [f.name for f in fields(self) if isinstance(getattr(self, f.name), Fact)]


FACT_COLUMNS = ("t", "n", "m", "stage", "grade", "nodes_positive", "nodes_examined", "size_cm",
                "margin", "lvi", "pni", "histology")  # fmt: skip
RECEPTOR_COLUMNS = ("er", "pr", "her2")

# ----------------------------------------------------------------------------------------------
# TNM

_T_VALUE = r"(?:is|[0-4xX]|[lIO](?=[a-d\s,;.):/]|$|[NM]))"
_N_VALUE = r"(?:[0-3xX]|[lIO](?=[a-c\s,;.):/(\]]|$|M|\(|mi))"
_M_VALUE = r"(?:[01xX]|[lIO](?=[a-c\s,;.):/]|$))"
# (the "c" of a following "cM0" / "cN0" is no subcategory: "pN0 cM0" is N0)
# (joined, "pT1cN0" is T1c: the clinical prefix is written apart)
_NEXT_TOKEN = r"(?!\s[cpyCPY]{1,2}\s?[TNM]\s?[0-4xXlIOis])"
_SUB = r"(?:" + _NEXT_TOKEN + r"\s?[a-d](?![a-z]))?(?:\s?\d(?!\d))?"
_PRE = r"(?P<pre>[yY]?[pP]|y|c|r|a)"
# a prefixed category: pT2a, ypN0, pT 1 b, PT3b, pMx, pN1mi
# case-sensitive on purpose: "cm in" must not read as cM1 ("P" for "p" is a common OCR slip)
_PREFIXED_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<pre>y?p|[yY][pP]|P|y|c|r)\s?(?P<cat>[TNM])\s?"
    r"(?P<val>is|a(?![A-Za-z])|[0-4xX]|[lIO](?![a-z]{2}))"
    # an upper-case subcategory only joined to its digit ("PT2A"; "PT3 B. LYMPH NODES" is T3)
    r"(?P<sub>\s?(?:mi|(?<=[0-3])MI(?![A-Za-z])|\(i[+-]\)|\(mol[+-]\)|"
    + _NEXT_TOKEN
    + r"[a-d](?![a-z])|"
    r"(?<=[0-4])[A-D](?![A-Za-z]))?"
    r"(?:\s?\d(?![\d.]))?)"
)
# an unprefixed run: T2N0M0, T2 N1 MX, T3a, N1, M0 (a run needs at least two categories);
# an upper-case subcategory joined to its digit is read inside a run ("PT2AN0", "YPT3N1B")
_RUN_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:" + _PRE + r"\s?)?T\s?(?P<t>" + _T_VALUE + r")"
    # (a joined upper-case "C" before N or M is the clinical prefix: "PT2CN0", "PT3N0CMX")
    r"(?P<ts>(?<=[0-4])(?:[ABD]|C(?![NM]))|" + _SUB + r")"
    r"\s*[,/]?\s*(?:[yY]?[pP]|[cC])?N\s?(?P<n>"
    + _N_VALUE
    + r")(?P<ns>(?:(?i:mic?)|(?<=[0-3])(?:[AB]|C(?!M))(?![a-z])|"
    + _NEXT_TOKEN
    + r"\s?[a-c](?![a-z]))?)"
    r"(?:\s*[,/]?\s*(?:y?[pP]|[cC])?M\s?(?P<m>" + _M_VALUE + r")(?P<ms>[a-c]?|(?<=1)[A-C]))?"
    r"(?![A-Za-z0-9])",
)
# a labelled item: "Primary tumor (pT): T2", "Regional lymph nodes: N0", "T stage: 2"
_LABELLED_RE = {
    "T": re.compile(
        r"primary\s+tumou?r(?:\s*\(p?T\))?|\bp?T[\s-]*(?:stage|category)|"
        r"\bp?T\s*:(?=\s*(?:is|[0-4xX]))",
        re.I,
    ),
    "N": re.compile(
        r"regional\s+lymph\s+nodes?(?:\s*\(p?N\))?|\bp?N[\s-]*(?:stage|category)|"
        r"\bp?N\s*:(?=\s*[0-3xX])",
        re.I,
    ),
    "M": re.compile(
        r"distant\s+metastas[ie]s(?:\s*\(p?M\))?|\bp?M[\s-]*(?:stage|category)|"
        r"\bp?M\s*:(?=\s*[01xX])",
        re.I,
    ),
}
_LABEL_VALUE_RE = {
    "T": re.compile(r"^[\s:.\-]*(?:y?p|c)?\s?T?\s?(?P<val>is|[0-4xX]|[lIO](?![a-z]{2}))"
                    r"(?P<sub>\s?(?:[a-d](?![a-z]))?(?:\d(?!\d))?)(?![A-Za-z0-9])", re.I),
    "N": re.compile(r"^[\s:.\-]*(?:y?p|c)?\s?N?\s?(?P<val>[0-3xX]|[lIO](?![a-z]{2}))"
                    r"(?P<sub>\s?(?:mi|[a-c](?![a-z]))?)(?![A-Za-z0-9])", re.I),
    "M": re.compile(r"^[\s:.\-]*(?:y?p|c)?\s?M?\s?(?P<val>[01xX]|[lIO](?![a-z]{2}))"
                    r"(?P<sub>[a-c]?)(?![A-Za-z0-9])", re.I),
}  # fmt: skip
_STAGING_CONTEXT_RE = re.compile(
    r"\bp?TNM\b|\bAJCC\b|\bstag(?:e|ing)\b|primary\s+tumou?r|pathologic(?:al)?\s+[TNM]\b", re.I
)
_CONTEXT_TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<cat>[TNM])(?P<val>is|[0-4xX])(?P<sub>[a-d]?)(?![A-Za-z0-9])"
)
_T_ORDER = {"TIS": 0, "T0": 0, "T1": 1, "T2": 2, "T3": 3, "T4": 4}


def _digit(value: str) -> str:
    value = value.strip()
    if value.lower() == "is":
        return "is"
    return OCR_DIGITS.get(value, value).upper()


def _norm_category(cat: str, value: str, sub: str) -> str | None:
    """``("T", "l", " b")`` -> ``"T1b"``; ``None`` for X (not assessed)."""
    value = _digit(value)
    if value.upper() == "X":
        return None
    if value.lower() == "a":
        return "Ta" if cat == "T" else None  # non-invasive papillary carcinoma (bladder)
    sub = re.sub(r"\s", "", sub or "")
    if cat == "T":
        if value == "is":
            return "Tis"
        sub = sub.lower()
        if sub.isdigit() or (len(sub) == 2 and sub[0].isalpha()):
            sub = sub if sub.isdigit() is False else ""  # a trailing digit alone is noise
        return f"T{value}{sub}"
    if cat == "N":
        sub = sub.lower()
        if sub.startswith("(i") or sub.isdigit():
            sub = ""  # isolated tumour cells count as N0; a trailing digit is OCR noise
        return f"N{value}{sub}"
    return f"M{value}{sub.lower()}"


def _is_x(value: str) -> bool:
    return value.strip().upper() == "X"


@dataclass
class _Candidate:
    value: str | None  # None = explicitly X
    prefix: str | None
    unit: Unit
    strength: int  # 3 a correction, 2 prefixed or run, 1 labelled
    at: int = 0  # position in the unit
    defined: bool = False  # followed by its definition ("pN3: Metastasis in a lymph node ...")


# An addendum's correction: "the stage is amended to pT1a from pT1b", "amended from N1 to N2",
# "the template is revised to reflect the correct pathologic stage: pT2N1Mx"
_CORRECTION_RE = re.compile(
    r"\b(?:amended|revised|corrected|changed)\s+(?:from\s+[^.;]{1,60}?\s+)?to\b"
    r"(?:\s+reflect\s+the\s+correct\b)?|"
    # "ADDENDUM: Revised pathologic stage: pT3 pN0", "the final stage is pT3 (not pT4a ...)"
    r"\b(?:revised|corrected|amended|final)\s+(?:pathologic(?:al)?\s+)?(?:stage|staging)\s*"
    r"(?:is|:|=)",
    re.I,
)
# not a correction: "has not been changed to", "would be changed to", "if amended to"
_NO_CORRECTION_RE = re.compile(r"\b(?:not|never|would|could|if|may|might)\b[^.;]{0,20}$", re.I)
# the value a correction replaces: "from pT1b", "(previously reported as pT3)", "rather than"
_SUPERSEDED_RE = re.compile(
    r"(?:\bfrom|previously|originally|formerly|initially|rather\s+than|instead\s+of|"
    r"original\w*(?:\s+\w+){0,2}\s+read\w*)[^.;()]{0,25}$",
    re.I,
)


def _correction_in(text: str) -> re.Match[str] | None:
    """The correction a unit states ("amended to ..."), if any."""
    for m in _CORRECTION_RE.finditer(text):
        if not _NO_CORRECTION_RE.search(text[max(0, m.start() - 30) : m.start()]):
            return m
    return None


def _corrected(strength: int, text: str, at: int, correction: re.Match[str] | None) -> int | None:
    """A candidate's strength where its unit corrects a category: what follows "amended to" in
    the same sentence wins (3), what a correction replaces is dropped (None); else unchanged."""
    if correction is None:
        return strength
    if correction.start() <= at < correction.end() or (
        at >= correction.end() and _SUPERSEDED_RE.search(text[correction.end() : at])
    ):
        return None
    if at >= correction.end() and not re.search(r"[.;]\s", text[correction.end() : at]):
        return 3
    return strength


# A token that states no category of this tumour: an unticked option of a form ("[ ] pT1",
# "___ pT2"), a token in a range or list ("T1-T4", "(M1, M2)"), a negated or hedged one ("not
# pT4a", "pT4a cannot be excluded", "would require M1"), or one in a clause about clinical,
# pretreatment or earlier staging ("Pretreatment EUS stage: T3N1", "history of ... (pT4a N2a)
# resected in 2008", "Prior TURBT (2011) showed pT1")
_UNTICKED_BEFORE_RE = re.compile(r"(?:\[\s*\]|_{2,}|\(\s*\))\s*$")
# "pT4a [ ]", "pM1a: Metastasis confined to one organ or site [ ]": the box after the option
_UNTICKED_AFTER_RE = re.compile(
    r"^[^\[\]\n]{0,60}?\[\s*\]|^[^\n]{0,60}?specify[^:\n]{0,20}:\s*_{2,}"
)
_BOX_AFTER_RE = re.compile(r"^\s*[:\-]?\s*\[\s*\]")
# the line's first box comes before its first category ("[ ] pT1 [x] pT2")
_BOX_FIRST_RE = re.compile(
    r"^(?:(?!(?:[yY]?[pP])?[TNM]\s?[0-4aisxX])[^\[])*(?:\[\s*[xX✓√]?\s*\]|_{2,}|_[xX]_)\s*"
    r"(?:[yY]?[pP])?[TNM]\s?[0-4aisxX]"
)
_TICKED_AFTER_RE = re.compile(r"^\s*[:\-]?\s*\[\s*[xX✓√]\s*\]")
_TICKED_BEFORE_RE = re.compile(r"(?:\[\s*[xX✓√]\s*\]|_*[xX]_+|\(\s*[xX]\s*\))\s*$")
_RANGE_AFTER_RE = re.compile(r"^\s*(?:-|–|to|,|/|or)\s*[TNM]\s?[0-4]")
_RANGE_BEFORE_RE = re.compile(r"[TNM]\s?[0-4][a-d]?\s*(?:-|–|to|,|or)\s*$")
_NEGATED_TOKEN_BEFORE_RE = re.compile(
    r"\b(?:not|no|rather\s+than|instead\s+of|would\s+(?:\w+\s+)?(?:require|be)|if|unless)\s+"
    r"(?:as\s+)?(?:an?\s+)?$|\bnot\s+(?:\w+\s+){1,2}(?:to\s+)?$",
    re.I,
)
_NEGATED_TOKEN_AFTER_RE = re.compile(
    r"^\s*\(?\s*(?:cannot\s+be\s+(?:excluded|ruled\s+out)|is\s+not\s+(?:assigned|applicable|"
    r"used)|not\s+(?:assigned|applicable)|would\s+(?:require|be))",
    re.I,
)
_OTHER_STAGING_BEFORE_RE = re.compile(
    r"\b(?:pre-?treatment|baseline|pre-?chemo\w*|pre-?neoadjuvant|prior\s+to\s+(?:therapy|"
    r"treatment|chemo\w*|radia\w*|neoadjuvant)|clinical(?:ly)?|EUS|MRI|history\s+of|"
    r"(?:prior|previous)\s+(?:\w+\s+){0,2}(?:\(\d{4}\)\s+)?(?:showed|revealed|demonstrated|was)|"
    r"previously|resected\s+in|in\s+(?:19|20)\d\d)\b[^.;]{0,60}$",
    re.I,
)


_M_NOT_ASSESSED_RE = re.compile(
    r"(?:distant\s+metastas[ie]s|\bp?M\b)\s*(?:\(p?M\))?\s*[:\-]?\s*(?:not\s+applicable|"
    r"cannot\s+be\s+assessed|not\s+assessed)|\bp?MX\s*(?:\[\s*[xX]\s*\]|:)",
    re.I,
)


_M_LABEL_ONLY_RE = re.compile(r"^\W*distant\s+metastas[ie]s\s*(?:\(p?M\))?\s*:?\s*$", re.I)
_NOT_ASSESSED_START_RE = re.compile(r"^\W*(?:not\s+applicable|cannot\s+be\s+assessed)", re.I)


def _not_a_statement(text: str, start: int, end: int, prefixed: bool = True) -> bool:
    """True for a TNM token at ``text[start:end]`` that states no category of this tumour
    (``prefixed``: a pT/pN/pM token, never part of a range: "amended from pN1 to pN0")."""
    before, after = text[max(0, start - 80) : start], text[end:]
    # a form puts its boxes before its options ("[ ] pT1 [x] pT2") or after them ("pT3 [X]
    # pT4a [ ]"): the first box of the line says which
    if _BOX_FIRST_RE.search(text):
        if _TICKED_BEFORE_RE.search(before):
            return False
    else:
        if _TICKED_AFTER_RE.match(after):
            return False
        if _BOX_AFTER_RE.match(after):
            return True
        if _TICKED_BEFORE_RE.search(before):
            return False
    return bool(
        _UNTICKED_BEFORE_RE.search(before)
        or _UNTICKED_AFTER_RE.match(after)
        or not prefixed
        and (_RANGE_AFTER_RE.match(after) or _RANGE_BEFORE_RE.search(before))
        or _NEGATED_TOKEN_BEFORE_RE.search(before[-30:])
        or _NEGATED_TOKEN_AFTER_RE.match(after)
        or _OTHER_STAGING_BEFORE_RE.search(before)
    )


def _legend_tokens(text: str) -> bool:
    """A unit listing a form's options with their definitions ("___ pT2: Tumor invades ... _X_
    pT3: ... ___ pT4a: ..."): three or more categories of one kind followed by ":"."""
    counts = collections.Counter(
        m.group(1).upper()
        for m in re.finditer(r"\b[yY]?[pP]?([TNM])\s?[0-4a-dxXis]{1,3}\s*:", text)
    )
    return any(n >= 3 for n in counts.values())


def _tnm_candidates(units: list[Unit]) -> dict[str, list[_Candidate]]:
    out: dict[str, list[_Candidate]] = {"T": [], "N": [], "M": []}
    for unit in units:
        text = _untangle_tnm(unit.text)
        correction = _correction_in(text)
        taken: list[tuple[int, int]] = []
        legend = _legend_tokens(text)
        for m in _RUN_RE.finditer(text):
            prefix = (m.group("pre") or "").lower() or None
            taken.append(m.span())
            # (a run states several categories: never one end of a range)
            if _not_a_statement(text, m.start(), m.end()) or (
                legend and not _TICKED_BEFORE_RE.search(text[max(0, m.start() - 10) : m.start()])
            ):
                continue
            strength = _corrected(2, text, m.start(), correction)
            for cat, val, sub in (("T", m.group("t"), m.group("ts")),
                                  ("N", m.group("n"), m.group("ns")),
                                  ("M", m.group("m"), m.group("ms"))):  # fmt: skip
                if val is None or strength is None:
                    continue
                norm = None if _is_x(val) else _norm_category(cat, val, sub)
                defined = bool(_TOKEN_DEFINITION_RE.match(text[m.end() :]))
                out[cat].append(_Candidate(norm, prefix, unit, strength, m.start(), defined))
        for m in _PREFIXED_RE.finditer(text):
            if any(a <= m.start() < b for a, b in taken):
                continue
            cat = m.group("cat").upper()
            pre = m.group("pre").lower()
            if pre == "a" or (pre == "r" and cat != "T"):
                continue  # "aN" / "rN" are not TNM prefixes in reports
            if _not_a_statement(text, m.start(), m.end()) or (
                legend and not _TICKED_BEFORE_RE.search(text[max(0, m.start() - 10) : m.start()])
            ):
                continue
            val = m.group("val")
            # "pN" followed by a lymph-node station number is not a category (rare), but "pNO"
            # (OCR zero) is
            norm = None if _is_x(val) else _norm_category(cat, val, m.group("sub"))
            strength = _corrected(2, text, m.start(), correction)
            if strength is not None:
                defined = bool(_TOKEN_DEFINITION_RE.match(text[m.end() :]))
                out[cat].append(_Candidate(norm, pre, unit, strength, m.start(), defined))
        if _STAGING_CONTEXT_RE.search(text):
            # a staging line ("pTNM Stage: T1b", "AJCC: T3a N0 M0"): unprefixed tokens count
            for m in _CONTEXT_TOKEN_RE.finditer(text):
                if any(a <= m.start() < b for a, b in taken):
                    continue
                cat = m.group("cat")
                if any(c.unit is unit for c in out[cat]) or _not_a_statement(
                    text, m.start(), m.end(), prefixed=False
                ):
                    continue
                val = m.group("val")
                norm = None if _is_x(val) else _norm_category(cat, val, m.group("sub"))
                strength = _corrected(1, text, m.start(), correction)
                if strength is not None:
                    out[cat].append(_Candidate(norm, None, unit, strength, m.start()))
        for cat, label in _LABELLED_RE.items():
            lm = label.search(text)
            if not lm:
                continue
            rest = text[lm.end() :]
            rest = re.sub(r"^\s*\((?:p?[TNM])\)\s*", "", rest)
            vm = _LABEL_VALUE_RE[cat].match(rest)
            if vm and not out[cat] or (vm and all(c.unit is not unit for c in out[cat])):
                val = vm.group("val")
                norm = None if _is_x(val) else _norm_category(cat, val, vm.group("sub"))
                out[cat].append(_Candidate(norm, None, unit, 1))
    for cat, cands in out.items():
        # a form that prints its options with their definitions on lines of their own: only
        # the categories stated without a definition are findings
        if len({c.value for c in cands if c.defined}) >= 2:
            out[cat] = [c for c in cands if not c.defined]
    return out


_TOKEN_DEFINITION_RE = re.compile(
    r"\s*:\s*(?:tumou?r|metasta\w*|no\s|distant|carcinoma|invades|spread|isolated|"
    r"regional|single|multiple|ipsilateral|bilateral)",
    re.I,
)


def _untangle_tnm(text: str) -> str:
    """Join TNM pieces that OCR split with dots: ``pT 2. N 1. M X.`` -> ``pT2 N1 MX``."""
    return re.sub(
        r"(?<![A-Za-z])(p?T)\s?([0-4xX]|is)([a-d]?)\.\s*(N)\s?([0-3xX])([a-c]?)\.?\s*(?:(M)\s?([01xX]))?",
        lambda m: (
            f"{m.group(1)}{m.group(2)}{m.group(3)} N{m.group(5)}{m.group(6)}"
            + (f" M{m.group(8)}" if m.group(7) else "")
        ),
        text,
    )


def _choose(cands: list[_Candidate], order) -> _Candidate | None:
    """The stated category: the last correction if there is one (its first token; an X there
    leaves the category unstated); else among non-X statements, the strongest evidence, then
    the highest (multiple tumours are staged by the highest T)."""
    corrections = [c for c in cands if c.strength == 3]
    if corrections:
        last = max(corrections, key=lambda c: (c.unit.start, -c.at))
        return last if last.value is not None else None
    stated = [c for c in cands if c.value is not None]
    if any(c.prefix != "c" for c in stated):
        stated = [c for c in stated if c.prefix != "c"]  # pathologic wins over clinical
    if not stated:
        return None
    best = max(c.strength for c in stated)
    stated = [c for c in stated if c.strength == best]
    return max(stated, key=lambda c: order(c.value))


def _t_rank(value: str) -> tuple[int, str]:
    return (_T_ORDER.get(value[:2].upper() if value[:3].upper() != "TIS" else "TIS", 0), value)


def _nm_rank(value: str) -> tuple[int, str]:
    digits = re.findall(r"\d", value)
    return (int(digits[0]) if digits else 0, value)


# ----------------------------------------------------------------------------------------------
# Stage group

_STAGE_RE = re.compile(
    r"(?<![A-Za-z])(?P<label>(?:(?:ajcc|pathologic(?:al)?|figo|tnm|anatomic|overall|prognostic)\s+)*"
    r"(?:stage(?:\s+group(?:ing)?)?|figo))\s*(?:\((?:ajcc|figo|p?tnm)[^)]{0,20}\)\s*)?"
    r"(?:(?:is|:|-|=)\s*)*(?:stage\s*)?(?P<roman>IV|I{1,3}|[1-4]|[lI]{1,3}V?)"
    # ("IIIA/B", "III-A/B": either subgroup, so the main group only)
    r"(?:-?(?P<sub>[ABC][12]?)(?!/)|-?[ABC][12]?/[ABC][12]?)?(?![A-Za-z0-9])",
    re.I,
)
# words that make "stage N" something other than the tumour's stage group
_NOT_TUMOUR_STAGE_RE = re.compile(
    r"(?:kidney|renal|liver|heart|lung)\s+disease|\bckd\b|\besrd\b|fibrosis|cirrhosis|ishak|"
    r"dukes|astler|clark|breslow|decubitus|pressure|ulcer|hypertension|sleep|batts|ludwig|"
    r"laennec|metavir|scheuer|\bnash\b|\bcrn\b|steatohepatitis|"
    r"\bcin\b|pelvic\s+organ|prolapse|lymphedema",
    re.I,
)


# a stage of the past, or of before treatment, or a suspected one: what a system-named stage
# beside a Dukes stage or "clinical" may still be ("a prior rectal adenocarcinoma (modified
# Dukes C2, AJCC stage IIIC) resected in 2006", "Pre-treatment stage (AJCC): III (Astler-Coller
# C2)", "Clinically suspected FIGO stage IIB")
_PAST_STAGE_RE = re.compile(
    r"\b(?:prior|previous(?:ly)?|remote|former(?:ly)?|earlier|original(?:ly)?|initial(?:ly)?|"
    r"pre-?treatment|pre-?operative|recurr\w*|suspect\w*|presum\w*|possibl\w*|probabl\w*|"
    r"likely|resected|treated|diagnosed)\b|\b(?:in|of)\s+(?:19|20)\d\d\b",
    re.I,
)
# cancers whose FIGO stage is assigned clinically (cervix): "FIGO stage IB1 (clinical)" is the
# stage TCGA records, not a history
_CLINICAL_FIGO = frozenset({"cesc"})


def _stage_candidates(units: list[Unit], cancer: str | None) -> list[tuple[str, Unit]]:
    """Stated stage groups; where an addendum corrects the stage ("FIGO stage IIIA has been
    changed to FIGO stage IA"), only the last correction."""
    out, corrections = [], []
    clinical_figo = (cancer or "").lower() in _CLINICAL_FIGO
    for unit in units:
        correction = _correction_in(unit.text)
        for m in _STAGE_RE.finditer(unit.text):
            strength = _corrected(2, unit.text, m.start(), correction)
            if strength is None:
                continue  # the group a correction replaces
            window = unit.text[max(0, m.start() - 40) : m.end() + 40]
            # a stage named by its system ("(AJCC stage IIIB)" after "Modified Dukes stage C1",
            # "FIGO stage IB1" beside "arising in CIN III") is the tumour's
            system = re.search(r"ajcc|figo|tnm", m.group(0), re.I) and not _PAST_STAGE_RE.search(
                unit.text
            )
            if not system and _NOT_TUMOUR_STAGE_RE.search(window):
                continue
            if any(
                not (clinical_figo and system and h.group(0).lower() == "clinical")
                for h in _HISTORY_RE.finditer(unit.text)
            ):
                continue  # history or suspicion; a cervix's FIGO stage is clinical by definition
            if re.search(r"(?<![A-Za-z])(?:y?p|c)?\s?[TNM][\s-]*$", unit.text[: m.start()]):
                continue  # "N stage: 1", "pT stage: 2" state a category, not a stage group
            if m.group("label").lower() == "figo" and not m.group("sub") and (
                m.group("roman").isdigit()
                or re.search(r"grade[^.;]{0,30}$|differentiat\w*\W{0,5}$",
                             unit.text[: m.start()], re.I)
            ):  # fmt: skip
                # "Histologic grade: 3 (FIGO 3)", "Moderately differentiated (FIGO 2)", "FIGO
                # 3/3": the FIGO grade; a stage has a Roman numeral or a subgroup ("FIGO 1A",
                # "moderately differentiated, FIGO IB")
                continue
            if re.match(r"\s*(?:-|to|or|/)\s*(?:IV|I{1,3}|[1-4])(?![A-Za-z0-9])",
                        unit.text[m.end() :], re.I):  # fmt: skip
                continue  # a range of stages ("stage II-III", "stage II or III"): none
            if re.match(r"\s*(?:would|if|requires?|is\s+not)\b", unit.text[m.end() :], re.I):
                continue  # "stage IV would require M1": no finding
            if _DEFINITION_RE.match(unit.text[m.end() :]):
                continue  # a staging legend ("Stage IVB: the cancer has spread ..."), not a finding
            roman = m.group("roman").upper().replace("L", "I")
            rank = roman_to_int(roman)
            if rank is None or not 1 <= rank <= 4:
                continue
            sub = (m.group("sub") or "").upper()
            (corrections if strength == 3 else out).append((to_roman(rank) + sub, unit))
    return corrections[-1:] if corrections else out


_DEFINITION_RE = re.compile(
    r"\s*[:\-]\s*(?:the\s+)?(?:cancer|tumou?rs?|carcinoma|disease)\s+(?:has|have|is|are|invades?|"
    r"extends?|spread)",
    re.I,
)


def _stage_key(stage: str) -> tuple[int, str]:
    m = re.match(r"(IV|I{1,3}|0)", stage)
    rank = {"0": 0, "I": 1, "II": 2, "III": 3, "IV": 4}.get(m.group(1), 0) if m else 0
    return (rank, stage)


# ----------------------------------------------------------------------------------------------
# Grade

_GRADE_NUM = r"(?:G\s?)?(?P<g>[1-4]|IV|I{1,3}|[lI]{1,3}|X)(?![A-Za-z0-9])"
_GRADE_LABELLED_RE = re.compile(
    r"(?P<sys>nottingham|histologic(?:al)?|fuhrman|furman|isup|who/isup|who|figo|overall|"
    r"combined|elston|sbr|bloom[- ]richardson|modified\s+bloom[- ]richardson|nuclear|tumou?r)?"
    r"[\s\w()/,-]{0,40}?grade(?:\s*\([^)]{0,40}\))?\s*(?:is|of|:|-|=|\s)*\s*" + _GRADE_NUM,
    re.I,
)
_G_TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9\-/])G(?P<g>[1-4]|[lI]{1,3})(?![A-Za-z0-9])(?!\s*:\s*[a-z])"
)
_GRADE_CONTEXT_RE = re.compile(r"grade|differentiat", re.I)
_TWO_TIER_RE = re.compile(
    r"\b(?P<level>high|low)[\s-]grade\b(?!\s+(?:" + PRECURSOR_WORDS + "))", re.I
)
_SCORE_RE = re.compile(
    r"(?:score|nottingham|sbr|bloom)[^.;\n]{0,40}?(?<![\d+])(?P<a>[1-3])\s*\+\s*(?P<b>[1-3])\s*\+"
    r"\s*(?P<c>[1-3])(?![\d+])|(?:total|nottingham|sbr|combined)\s+score\s*(?:of\s*)?[:=]?\s*"
    r"(?P<s>[3-9])(?:\s*/\s*9)?\b",
    re.I,
)
_HIGH_GRADE_HISTOLOGY_RE = re.compile(
    r"\bserous\s+(?:adeno)?carcinoma|\bclear\s+cell\s+(?:adeno)?carcinoma|carcinosarcoma|"
    r"undifferentiated\s+carcinoma",
    re.I,
)


def _grade_scale(cancer: str | None) -> int:
    return {"brca": 3, "ucec": 3, "luad": 3, "lusc": 3, "kirc": 4, "kirp": 4, "kich": 4}.get(
        (cancer or "").lower(), 4
    )


def _grade(units: list[Unit], cancer: str | None) -> Fact | None:
    """Grade on the cancer's own scale: Nottingham 1-3 (breast, invasive tumour), Fuhrman /
    ISUP 1-4 (kidney), FIGO 1-3 (endometrium; serous and clear cell are high grade, G3), and
    differentiation for lung (well/moderately/poorly = G1/G2/G3)."""
    scale = _grade_scale(cancer)
    code = (cancer or "").lower()
    best: tuple[int, int, Unit] | None = None  # (priority, grade, unit)

    def offer(priority: int, grade: int | None, unit: Unit) -> None:
        nonlocal best
        if grade is None or not 1 <= grade <= scale:
            return
        if best is None or (priority, grade) > (best[0], best[1]):
            best = (priority, grade, unit)

    for unit in units:
        text = unit.text
        if IN_SITU_RE.search(text) or _HISTORY_RE.search(text):
            continue
        for m in _SCORE_RE.finditer(text):
            total = int(m.group("s")) if m.group("s") else sum(int(m.group(k)) for k in "abc")
            offer(3 if code == "brca" else 1, 1 if total <= 5 else 2 if total <= 7 else 3, unit)
        for m in _GRADE_LABELLED_RE.finditer(text):
            system = (m.group("sys") or "").lower()
            if code == "brca" and system in ("nuclear", "tumour", "tumor", ""):
                if "nuclear" in m.group(0).lower():
                    continue  # a component of the Nottingham score, not the grade
            value = m.group("g").upper()
            grade = None if value == "X" else roman_to_int(value.replace("L", "I"))
            priority = 3 if system and system not in ("nuclear", "tumour", "tumor") else 2
            offer(priority, grade, unit)
        if _GRADE_CONTEXT_RE.search(text):
            for m in _G_TOKEN_RE.finditer(text):
                offer(2, roman_to_int(m.group("g").replace("l", "I").replace("L", "I")), unit)
        for m in NHG_RE.finditer(text):
            offer(3, roman_to_int(m.group("g").upper()), unit)
        if scale == 3:  # two-tier grading maps onto the ends of a three-tier scale
            for m in _TWO_TIER_RE.finditer(text):
                offer(1, 3 if m.group("level").lower() == "high" else 1, unit)
        if code in ("luad", "lusc", "ucec", "") or best is None:
            for m in DIFFERENTIATION_RE.finditer(text):
                offer(1, differentiation_grade(m, scale), unit)
    if code == "ucec":
        for unit in units:
            if _HIGH_GRADE_HISTOLOGY_RE.search(unit.text) and not _HISTORY_RE.search(unit.text):
                offer(4, 3, unit)
                break
    if best is None:
        return None
    return Fact(f"G{best[1]}", best[2].start, best[2].end, best[2].text)


# ----------------------------------------------------------------------------------------------
# Lymph nodes

_NODE_PATTERNS = (
    # "metastatic carcinoma in 2 of 17 lymph nodes", "2/17 lymph nodes", "(0/3) nodes"
    # ("FOUR (4) OF FOURTEEN (14) LYMPH NODES": a number restated in brackets)
    re.compile(r"(?P<p>\d{1,2}|no|none|zero)\s*(?:\(\d{1,2}\)\s*)?(?:\(|\b)?\s*(?:of|/|out\s+of)\s*"
               r"(?P<n>\d{1,3})\s*(?:\(\d{1,3}\))?\)?\s*(?:\w+\s+){0,3}" + NODE_WORD, re.I),
    # "lymph nodes: 1/12", "lymph nodes (0/15)", "Positive 1 / 12" in a node unit
    re.compile(NODE_WORD + r"[^0-9]{0,60}?\(?\s*(?P<p>\d{1,2})\s*(?:/|of|out\s+of)\s*(?P<n>\d{1,3})\b",
               re.I),
)  # fmt: skip
_NODES_EXAMINED_RE = re.compile(
    r"(?:number\s+of\s+)?(?:lymph\s+)?nodes?\s+(?:examined|recovered|retrieved|identified|"
    r"submitted|sampled)(?:\s*\([^)]{0,60}\))?\s*(?:[:=]|\bis\b)?\s*(?P<n>\d{1,3})\b|(?P<n2>\d{1,3})\s+"
    r"(?:lymph\s+)?nodes?\s+(?:were\s+)?(?:examined|recovered|retrieved|identified)|"
    # "Total lymph nodes: 11 (including 2 sentinel nodes)", not "Total lymph nodes: 3/11"
    r"\btotal\s+(?:number\s+of\s+)?lymph\s+nodes?\s*[:=]\s*(?P<n3>\d{1,3})"
    r"(?=\s*(?:$|[.;]|,\s*(?!\d)|\(including\b))",
    re.I,
)
_NODES_POSITIVE_RE = re.compile(
    r"(?:(?:number\s+of\s+)?(?:lymph\s+)?nodes?\s+(?:positive|involved)(?:\s+(?:for|with)\s+"
    r"[\w\s]{0,30}?)?|number\s+of\s+(?:positive|involved|metastatic)\s+(?:lymph\s+)?nodes?)"
    r"\s*[:=]+\s*(?P<p>\d{1,3}|none|no|zero|o)\b",
    re.I,
)
# A synoptic node item stating the report's totals: "Lymph node status: Positive 1/5",
# "Regional lymph nodes: 2/14", "Lymph nodes:: 0 of 12", "Lymph node status: Negative 0/3".
_NODES_TOTAL_ITEM_RE = re.compile(
    r"^\W*(?:regional\s+)?lymph\s+nodes?(?:\s+(?:status|summary|sampling))?\s*[:=]+\s*"
    r"(?:(?:positive|negative|involved|uninvolved|metastatic)\s*)?\(?\s*(?P<p>\d{1,2})\s*"
    r"(?:/|of|out\s+of)\s*(?P<n>\d{1,3})\b",
    re.I,
)
# A synoptic node item's count said, right after it, to hold no tumour: "3 of 3, with no
# metastatic carcinoma" (not "1/18, no tumor deposits", nor "2/16; margins free of tumor").
# What says counted nodes hold no tumour: a negated finding, "benign", "reactive", a bare
# "negative" (not "negative for extracapsular extension").
_NODES_DENIED = r"(?:" + NEGATED_FINDING_RE.pattern + r"|benign|reactive|negative\b(?!\s+for\b))"
_ITEM_DENIED_AFTER_RE = re.compile(
    r"^\s*(?:lymph\s+)?(?:nodes?)?\s*(?:examined)?\s*,?\s*"
    r"(?:(?:with|are|were|all|each|showing|show)\s+)*"
    + _NODES_DENIED
    + r"(?=\s*(?:$|[.;,()\-]|identified|present|seen|noted|lymph|nodes?\b))",
    re.I,
)
# The pN category with the count it rests on: "pNO (0/25)", "pN1a (2/14)".
_PN_COUNT_RE = re.compile(
    r"\bp\s*N\s*[0-3O][a-c]?(?:\s*\([^)/]{0,12}\))?\s*[(:]?\s*(?P<p>\d{1,2})\s*/\s*"
    r"(?P<n>\d{1,3})\b"
)
# "Five lymph nodes, no tumor present", "TWO (2) BENIGN REACTIVE LYMPH NODES": a count without
# a fraction (number words already turned into digits).
# "Lymph nodes (2); negative for tumor": the count in brackets after the noun.
_NODE_COUNT_AFTER_RE = re.compile(r"\blymph\s*nodes?\s*\((?P<n>\d{1,3})\)", re.I)
# ("SEVEN FRAGMENTS OF LYMPH NODE" counts fragments, "one 3 cm lymph node" a size, "10R lymph
# nodes" names a station: no count of nodes)
# ("pT3 with pN0 for lymph nodes": a number attached to a letter is no count; "four lymph node
# profiles" may be parts of the nodes counted elsewhere)
_NODE_COUNT_ONLY_RE = re.compile(
    r"(?<![\w/.])(?P<n>\d{1,3}(?![\w-])|solitary|single)\s*(?:\(\d{1,3}\)\s*)?"
    r"(?:(?!fragments?\b|pieces?\b|portions?\b|cm\b|mm\b)[a-z-]+,?\s+){0,3}lymph\s*nodes?\b"
    r"(?!\s*(?:profiles?|fragments?)\b)",
    re.I,
)
_NODE_TUMOUR_WORD_RE = re.compile(r"\b(?:" + NODE_TUMOUR + r")", re.I)
# what says a tumour is in nodes, beside a count ("identified in 3 lymph nodes", "involving 2")
_POSITIVE_VERB_RE = re.compile(
    r"\b(?:present|identified|found|seen|detected|noted|involv\w*|extends?|extending|"
    r"contains?|containing|positive)\b",
    re.I,
)
_PN_RE = re.compile(r"\bp\s*N\s*[0-3O]", re.I)
_FRACTION_OR_ZERO_RE = re.compile(
    r"\(\s*\d{1,2}\s*/\s*\d{1,3}\s*\)|(?:\bin|:)\s*(?:0|zero|none)\b", re.I
)
# "Multiple lymph nodes were examined, all showing no ... carcinoma, with one lymph node
# exhibiting calcification": the count is of some of the nodes, not of those examined
_UNCOUNTED_NODES_RE = re.compile(
    r"\b(?:multiple|several|numerous|many|various)\s+(?:[a-z-]+\s+){0,2}?(?:lymph\s*)?nodes\b",
    re.I,
)
# What comes before a station's or a part's number besides STATION_BEFORE_RE: "levels 2 and
# 3", "station 4R and 7", "group 6", "PART 2 LYMPH NODE".
_COUNT_NOT_AFTER_RE = re.compile(
    r"(?:\b(?:levels?|stations?|groups?|zones?|areas?|regions?|parts?|specimens?)|"
    r"\d[A-Za-z]?\s*(?:and|&|,|-|to|or|/))\s*$",
    re.I,
)
# A count that sums the parts: "24 total lymph nodes", "35 lymph nodes free of metastatic tumor
# (see parts B through E)", "Summary: twenty lymph nodes negative", "LYMPH NODES (ALL PARTS) :
# ... 2 of 21 lymph nodes".
_NODE_SUMMARY_RE = re.compile(
    r"\btotal\s+(?:lymph\s*)?nodes\b|\bsee\s+parts\b|\(see\s+[A-H](?:\s*,|\s+(?:and|through|to)\b)|"
    r"^\W*summary\s*:|\ball\s+parts\b",
    re.I,
)
# The fraction that a "total" qualifies: "ONE (1) OF TWENTY-FOUR TOTAL LYMPH NODES", "(3 of 14
# total lymph nodes; see parts A and B)" (number words already turned into digits).
_TOTAL_FRACTION_RE = re.compile(
    r"(?<![\d/.])(?P<p>\d{1,2})\s*(?:\(\d{1,2}\)\s*)?(?:/|of|out\s+of)\s*(?P<n>\d{1,3})\s*"
    r"(?:\(\d{1,3}\)\s*)?total\s+(?:lymph\s*)?nodes\b",
    re.I,
)
# pN0 with its count in words: "pN0 (twelve lymph nodes, negative for metastasis)".
_PN0_COUNT_RE = re.compile(
    r"\bp\s*N\s*[0O](?![\w(])[^()\n]{0,5}\(\s*(?P<n>\d{1,3})\s+(?:[a-z-]+\s+){0,2}(?:lymph\s*)?nodes?\b",
    re.I,
)
# "All 17 nodes negative for tumor": the report's total.
_ALL_NEGATIVE_RE = re.compile(
    r"\ball\s+(?P<n>\d{1,3})\s+(?:lymph\s*)?nodes?\s+(?:are\s+|were\s+)?(?:negative|benign|free)",
    re.I,
)
# The word before "lymph nodes examined" that names a group of them ("sentinel", "pelvic").
_NODE_GROUP_RE = re.compile(
    r"(?<![a-z-])(?![a-z-]*lymph\b|the\b|all\b|regional\b)([a-z-]{3,})\s+(?:lymph\s*)?nodes?\s*$",
    re.I,
)
# The first line of a synoptic item's label wrapped onto two ("Number of pelvic lymph").
_WRAPPED_LABEL_RE = re.compile(r"^\s*number\s+of\s+[a-z -]+$", re.I)
# A checklist's node items without the word "nodes" ("Regional Lymph Nodes" / "Number examined:
# 18" / "Number involved: 0"): read as node items only right under a lymph-node heading or
# another such item.
_BARE_NODE_ITEM_RE = re.compile(
    r"(?<![A-Za-z])number\s+(?=(?P<kind>examined|involved|positive|sampled|retrieved|recovered)"
    r"\s*[:=])",
    re.I,
)
_NODE_HEADING_RE = re.compile(r"(?:regional\s+)?lymph\s+nodes?\W*$", re.I)


def _bare_kind(item: re.Match[str]) -> str:
    """A bare node item's count: "positive" (involved, positive) or "examined"."""
    return "positive" if item.group("kind").lower() in ("involved", "positive") else "examined"


def _bare_node_kinds(units: list[Unit]) -> set[str]:
    """The kinds of bare node item ("examined", "positive") a report states once and nowhere
    else: several bare items of a kind may be groups the item does not name ("Sentinel: Number
    examined: 2", "Number examined: 12 (pelvic)"), or another item may state the count, so
    they are read only where one item alone says it."""
    counts = collections.Counter(
        _bare_kind(m) for unit in units for m in _BARE_NODE_ITEM_RE.finditer(unit.text)
    )
    return {
        kind
        for kind, count in counts.items()
        if count == 1
        and not any(
            (_NODES_POSITIVE_RE if kind == "positive" else _NODES_EXAMINED_RE).search(unit.text)
            for unit in units
        )
    }


def _bare_node_items(text: str, heading: bool, kinds: set[str]) -> str | None:
    """``text`` with its bare node items of ``kinds`` named as such ("Number examined: 18" ->
    "Number of lymph nodes examined: 18") where ``heading`` (the unit before is a lymph-node
    heading or a node-count item) or the unit itself opens with the heading; else None."""
    m = _BARE_NODE_ITEM_RE.search(text)
    if m is None or not (heading or _NODE_HEADING_RE.fullmatch(text[: m.start()].strip(" \t:.-"))):
        return None
    named = _BARE_NODE_ITEM_RE.sub(
        lambda b: "number of lymph nodes " if _bare_kind(b) in kinds else b.group(0), text
    )
    return named if named != text else None


# The label of a specimen part ("PART 4:", "B.", "SPECIMEN C -") opening a unit.
_PART_LABEL_RE = re.compile(
    r"^\W*(?:(?:part|specimen)\s*#?\s*(?P<a>[A-Z]|\d{1,2})\b|(?P<b>[A-H]|\d{1,2})\s*[.):]\s+"
    r"(?=[A-Z]))",
    re.I,
)
# A unit that continues the statement before it: "IDENTIFIED IN 5 OF 28 AXILLARY LYMPH NODES".
_CONTINUED_FINDING_RE = re.compile(
    r"^\W*(?:identified|present|seen|found|noted|detected)\s+in\s+\d", re.I
)
# Within one OCR sentence, the start of the next specimen part ("... (0/1). D. SENTINEL ...").
_NEXT_PART_RE = re.compile(
    r"(?<=[.)])\s+(?=[A-H]\.\s+[A-Z]{3}|(?i:part|specimen)\s*#?\s*(?:[A-H]|\d{1,2})\b)"
)


_FRACTION_BEFORE_RE = re.compile(
    r"(?<![\d/.])(?P<p>\d{1,2})\s*(?:/|of|out\s+of)\s*(?P<n>\d{1,3})\s*(?:[a-z-]+\s+){0,3}?"
    r"(?:and|&|,)\s*$",
    re.I,
)


def _count(word: str) -> int:
    return 0 if word.lower() in ("no", "none", "zero", "o") else int(word)


def _nodes(units: list[Unit]) -> tuple[Fact | None, Fact | None]:
    """(positive, examined): explicit totals when stated (synoptic "examined: N" / "involved:
    N" / "Lymph node status: 1/5" / "pN0 (0/25)"), else the sum of distinct node statements over
    the report's specimen parts (the same statement under two part labels counts twice;
    repeated without a part label, e.g. restated in a comment, once).

    Several "examined: N" lines: a "total" one wins; lines naming distinct groups ("sentinel",
    "non-sentinel") are added; otherwise the first counts. The caller drops the counts, stated
    or summed, when they contradict the stated pN (one of the two is misread).
    """
    examined: list[tuple[int, str, Unit]] = []
    positive: list[tuple[int, str, Unit]] = []
    totals_pos: Fact | None = None
    totals_exam: Fact | None = None
    parts: list[tuple[int, int, str, Unit]] = []
    uncounted = False  # a positive statement the rules could not count
    part_label = ""
    previous: Unit | None = None
    node_heading = False  # the unit before is a lymph-node heading or a node-count item
    bare_kinds = _bare_node_kinds(units)
    for unit in units:
        text, before_unit = unit.text, previous
        before = before_unit.text if before_unit is not None else ""
        previous = unit
        label = _PART_LABEL_RE.match(text)
        if label:
            part_label = (label.group("a") or label.group("b")).upper()
        if bare_kinds:  # (most reports have no bare item: nothing to track)
            text = _bare_node_items(text, node_heading, bare_kinds) or text
            node_heading = bool(
                _NODE_HEADING_RE.fullmatch(text.strip())
                or _NODES_EXAMINED_RE.search(text)
                or _NODES_POSITIVE_RE.search(text)
            )
        if _HISTORY_RE.search(text) or not re.search(r"node|\bLN", text, re.I):
            continue
        for rx, found in ((_NODES_EXAMINED_RE, examined), (_NODES_POSITIVE_RE, positive)):
            m = rx.search(text)
            if m:
                value = (
                    m.group("p") if "p" in rx.groupindex
                    else m.group("n") or m.group("n2") or m.group("n3")
                )  # fmt: skip
                # the group is named before the match's "nodes" ("Number of para-aortic lymph
                # nodes examined" matches from "lymph"), or on the line before when the item's
                # label is wrapped ("Number of para-aortic" / "lymph nodes examined: 6")
                head = text[: m.start() + re.search(r"nodes?\b", m.group(0), re.I).end()]
                if not text[: m.start()].strip() and _WRAPPED_LABEL_RE.match(before):
                    head = f"{before} {head}"
                group = _NODE_GROUP_RE.search(head)
                found.append((_count(value), group.group(1).lower() if group else "", unit))
        total = _stated_total(text)
        if total is not None:
            totals_pos = totals_pos or Fact(total[0], unit.start, unit.end, unit.text)
            totals_exam = totals_exam or Fact(total[1], unit.start, unit.end, unit.text)
            continue
        for n_piece, piece in enumerate(_NEXT_PART_RE.split(text)):
            label = _PART_LABEL_RE.match(piece)
            if label and piece is not text:
                part_label = (label.group("a") or label.group("b")).upper()
            source = unit
            finding = re.split(r"[:;]", before)[-1][-80:]  # the end of the unit before
            if (
                n_piece == 0
                and before_unit is not None
                and _CONTINUED_FINDING_RE.match(piece)
                # "ANTHRACOSIS WITHOUT METASTATIC CARCINOMA. PRESENT IN 3 OF 3 LYMPH NODES"
                and not _NEGATION_RE.search(finding)
            ):
                # "METASTATIC CARCINOMA. IDENTIFIED IN 5 OF 28 LYMPH NODES": OCR cut the
                # statement; its finding is the end of the unit before, which the source spans
                piece = f"{finding} {piece}"
                source = Unit(f"{before} {text}", before_unit.start, unit.end, unit.section)
            count = _node_count(piece)
            if count is not None:
                parts.append((*count, part_label, source))
            elif _uncounted_positive(piece):
                uncounted = True
    totals_exam = totals_exam or _node_total(examined)
    totals_pos = totals_pos or _node_total(positive)
    stated = (totals_pos, totals_exam)
    if parts and (totals_pos is None or totals_exam is None):
        if any(unit.section == "diagnosis" for *_, unit in parts):
            # the final diagnosis lists the parts; a microscopic description restates them
            parts = [part for part in parts if part[3].section == "diagnosis"]
        seen: dict[tuple[int, int, str], set[str]] = {}
        distinct: list[tuple[int, int, Unit]] = []
        for p, n, label, unit in parts:
            labels = seen.setdefault((p, n, re.sub(r"\W", "", unit.text.lower())[:40]), set())
            if labels and (not label or "" in labels or label in labels):
                continue  # the same statement again, not another part's
            labels.add(label)
            distinct.append((p, n, unit))
        pos, exam = sum(p for p, _, _ in distinct), sum(n for _, n, _ in distinct)
        if len(distinct) >= 4:
            p, n, last = distinct[-1]
            if (2 * p, 2 * n) == (pos, exam) and re.search(r"\ball\b|\btotal", last.text, re.I):
                # the last statement sums all the others: a summary ("Thirty-four lymph nodes
                # all negative" after eleven parts that add up to 34)
                pos, exam = p, n
        first = parts[0][3]
        source = "; ".join(dict.fromkeys(u.text for *_, u in parts))
        # a stated positive count fills the number examined from the parts only where their
        # positive nodes add up to it ("Number involved: 1" beside parts summing 0 of 4: the
        # parts missed the positive node's specimen, so 4 is not the number examined)
        if totals_pos is None:
            totals_pos = Fact(pos, first.start, parts[-1][3].end, source)
        grouped = any(group for _, group, _ in positive)  # "sentinel nodes positive: 1"
        if totals_exam is None and (grouped or int(totals_pos.value) == pos):
            totals_exam = Fact(exam, first.start, parts[-1][3].end, source)
    if (
        totals_pos is not None
        and totals_exam is not None
        and int(totals_pos.value) > int(totals_exam.value)
    ):
        # contradictory counts (stated or summed, e.g. a sentinel count beside the parts'
        # positive nodes): neither is trusted
        return None, None
    if uncounted and totals_pos is not None and int(totals_pos.value) == 0:
        # a positive statement the rules could not count beside negative ones: the parts'
        # sum would read no positive node, so only the counts stated as such stand (a sum
        # that has positive nodes stays, as a lower bound of them)
        return stated
    return totals_pos, totals_exam


def _stated_total(text: str) -> tuple[int, int] | None:
    """(positive, examined) when a line states the report's node totals ("All 17 nodes
    negative", "Lymph node status: Negative 0/3", "pN0 (0/25)", "pN0 (twelve lymph nodes,
    negative)", "1 of 24 total lymph nodes", "35 lymph nodes free of tumor (see parts B
    through E)")."""
    m = _ALL_NEGATIVE_RE.search(text)
    if m and 0 < int(m.group("n")) <= 150:
        return 0, int(m.group("n"))
    m = _NODES_TOTAL_ITEM_RE.match(text)
    if m and _ITEM_DENIED_AFTER_RE.match(text[m.end() :]) and 0 < int(m.group("n")) <= 150:
        return 0, int(m.group("n"))  # "Lymph nodes: 3 of 3, with no metastatic carcinoma"
    m = m or _PN_COUNT_RE.search(text)
    if m and int(m.group("p")) <= int(m.group("n")) <= 150:
        return int(m.group("p")), int(m.group("n"))
    plain = normalise_number_words(text)
    m = _PN0_COUNT_RE.search(plain)
    if m and 0 < int(m.group("n")) <= 150:
        return 0, int(m.group("n"))
    m = _TOTAL_FRACTION_RE.search(plain)
    if m and int(m.group("p")) <= int(m.group("n")) <= 150:
        p = int(m.group("p"))
        if p > 0 and not names_node_tumour(plain):
            if not NODE_NEGATIVE_WORDS_RE.search(plain):
                return None
            p = 0
        return p, int(m.group("n"))
    if _NODE_SUMMARY_RE.search(text) and not _PART_LABEL_RE.match(text):
        # a summary line under no part of its own (a part's "12 total lymph nodes" is its own)
        return _node_count(text)
    return None


def _contradicts_n(n: Fact | None, positive: Fact | None) -> bool:
    """A stated pN that the positive-node count contradicts (pN1 with 0 positive nodes, pN0
    with some)."""
    if n is None or positive is None or n.derived:
        return False
    category = re.match(r"N([0-3])", str(n.value))
    if category is None:
        return False
    return (category.group(1) == "0") != (int(positive.value) == 0)


def _node_total(found: list[tuple[int, str, Unit]]) -> Fact | None:
    """The total of labelled node counts: a "total" line, else the sum over distinct named
    groups, else the first line."""
    if not found:
        return None
    for value, _, unit in found:
        if re.search(r"\btotal\b", unit.text, re.I):
            return Fact(value, unit.start, unit.end, unit.text)
    groups = [group for _, group, _ in found]
    if len(found) > 1 and all(groups) and len(set(groups)) == len(groups):
        units = [unit for *_, unit in found]
        source = "; ".join(u.text for u in units)
        return Fact(sum(v for v, _, _ in found), units[0].start, units[-1].end, source)
    value, _, unit = found[0]
    return Fact(value, unit.start, unit.end, unit.text)


# the nodes just counted said to be negative: "8 of 8, negative for metastatic carcinoma"
# (the negation must be about tumour: "2 of 10 lymph nodes, negative for extracapsular
# extension" is positive)
_COUNT_DENIED_AFTER_RE = re.compile(
    r"^[\s,;:\-(]*(?:(?:all|each|are|were)\s+)?" + _NODES_DENIED, re.I
)


# A tumour named at a node count, not negated: "Squamous cell carcinoma identified in 2 of
# 25", "Carcinoid tumor in 1 of 4" (before it), "2 of 14 lymph nodes contain carcinoma",
# "One lymph node with adenocarcinoma (1/6)" (after it, in the same clause).
_TUMOUR_BEFORE_COUNT_RE = re.compile(
    r"(?:" + NODE_TUMOUR + r")\s+(?:(?:is|are|was|were)\s+)?"
    r"(?:(?:identified|seen|present|found|noted|detected)\s+)?(?:in|involving)\s*$",
    re.I,
)
_TUMOUR_AFTER_COUNT_RE = re.compile(
    r"^[^.;:]{0,25}?\b(?:contains?|containing|with|show(?:s|ing)?|involved\s+by|harbou?ring)\s+"
    r"(?:[a-z-]+\s+){0,3}?(?:" + NODE_TUMOUR + r")\b",
    re.I,
)


def _clause_around(text: str, count: re.Match[str]) -> tuple[str, str]:
    """The count's own clause before and after it (from the last ";" or "." before it to the
    first after it), negated findings blanked out."""
    before = re.split(r"[;.]\s", text[max(0, count.start() - 60) : count.start()])[-1]
    after = re.split(r"[;.]\s", text[count.end() : count.end() + 80])[0]
    return NEGATED_FINDING_RE.sub(" ", before), NEGATED_FINDING_RE.sub(" ", after)


def _tumour_at_count(text: str, count: re.Match[str]) -> bool:
    before, after = _clause_around(text, count)
    if ISOLATED_CELLS_RE.search(f"{before} {after}"):
        return False  # isolated tumour cells leave a node negative (pN0(i+))
    return bool(_TUMOUR_BEFORE_COUNT_RE.search(before) or _TUMOUR_AFTER_COUNT_RE.match(after))


def _says_negative(text: str) -> bool:
    """A node statement saying its nodes hold no tumour: a negative word ("negative", "free
    of", "benign") or a negated finding ("metastatic carcinoma not identified in 15 lymph
    nodes", "Carcinoma is absent in 9 of 9")."""
    return bool(NODE_NEGATIVE_WORDS_RE.search(text) or NEGATED_FINDING_RE.search(text))


def _node_count(text: str) -> tuple[int, int] | None:
    """(positive, examined) of one node statement (``x of y``, or a count of nodes said to be
    negative), or None."""
    text = normalise_number_words(text)
    for rx in _NODE_PATTERNS:
        m = rx.search(text)
        if not m:
            continue
        p, n = _count(m.group("p")), int(m.group("n"))
        # "in 2 of 11 pericolic and 0 of 3 mesenteric lymph nodes": the fractions of one
        # statement before the one that names the nodes
        start = m.start()
        while extra := _FRACTION_BEFORE_RE.search(text[max(0, start - 120) : start]):
            p, n = p + int(extra.group("p")), n + int(extra.group("n"))
            start -= len(text[max(0, start - 120) : start]) - extra.start()
        if (
            p > 0
            and ")" not in m.group(0)  # "(1/3) Three lymph nodes negative": another statement
            and _COUNT_DENIED_AFTER_RE.match(text[m.end() : m.end() + 60])
            # "Serous carcinoma seen in 1 of 8 lymph nodes; no metastatic carcinoma in
            # para-aortic nodes": the negation after is another group's
            and not _TUMOUR_BEFORE_COUNT_RE.search(_clause_around(text, m)[0])
        ):
            p = 0  # "8 of 8, negative for metastatic carcinoma": the 8 are negative
        if p > 0 and not names_node_tumour(text) and not _tumour_at_count(text, m):
            # "lymph nodes (2 of 2 ...)" without saying what the 2 have: if the line says they
            # are negative they count as examined, else it states nothing
            if not _says_negative(text):
                return None
            p = 0
        return (p, n) if 0 < n <= 150 and p <= n else None
    # "level 10 lymph nodes", "R-4 lymph nodes": a station, not a count ("LEVEL 5 LYMPH NODE
    # ... NO METASTASIS IN FOUR (4) LYMPH NODES": the count comes after the station)
    counts = _plain_counts(text)
    if not counts or not _says_negative(text) or names_node_tumour(text):
        return None
    if _UNCOUNTED_NODES_RE.search(text) and not _NODE_COUNT_AFTER_RE.search(text):
        return None  # "Multiple lymph nodes ..., one lymph node with calcification"
    numbers = [int(c.group("n")) if c.group("n").isdigit() else 1 for c in counts]
    if len(set(numbers)) > 1:
        # several groups: all negative ("four lymph nodes from #7 ... are negative, as well
        # as fourteen lymph nodes from the 4R excision") or some positive ("not identified in
        # 7 lymph nodes and present in 2"), which the rules cannot tell apart by count
        kept = ISOLATED_CELLS_RE.sub(" ", NEGATED_FINDING_RE.sub(" ", text))
        if _NODE_TUMOUR_WORD_RE.search(kept) or _POSITIVE_VERB_RE.search(kept):
            return None
        n = sum(numbers)
    else:
        n = numbers[0]
    return (0, n) if 0 < n <= 150 else None


def _plain_counts(text: str) -> list[re.Match[str]]:
    """Counts of nodes without a fraction ("Four lymph nodes", "lymph nodes (2)"), not a
    station's or a part's number ("level 10 lymph nodes", "R-4 lymph nodes"; "LEVEL 5 LYMPH
    NODE ... NO METASTASIS IN FOUR (4) LYMPH NODES": the count comes after the station)."""
    # a count after the noun restates one before it ("Solitary benign lymph node (011)": an
    # OCR-cut 0/1); more than 60 nodes in one statement is an item number ("131 Right
    # obturator lymph nodes": OCR's "13)")
    counts = [*_NODE_COUNT_ONLY_RE.finditer(text)] or [*_NODE_COUNT_AFTER_RE.finditer(text)]
    return [
        c
        for c in counts
        if not STATION_BEFORE_RE.search(text[: c.start()])
        and not _COUNT_NOT_AFTER_RE.search(text[: c.start()])
        and (not c.group("n").isdigit() or int(c.group("n")) <= 60)
    ]


def _uncounted_positive(text: str) -> bool:
    """A statement of positive nodes the rules cannot count: a plain count beside a tumour
    named outside any negated finding ("Carcinoma is present in 1 lymph node", "detected in 4
    lymph nodes; the remaining 10 are negative"). Summing the other statements would then
    undercount the positive nodes."""
    text = normalise_number_words(text)
    if not _plain_counts(text) or _PN_RE.search(text) or _FRACTION_OR_ZERO_RE.search(text):
        # none; a pN category's definition ("pN3a: Metastases in 10 or more"); a fraction or
        # a zero stated beside it ("containing metastatic carcinoma: 0 (0/13)", "involved by
        # tumor in 0 nodes")
        return False
    kept = ISOLATED_CELLS_RE.sub(" ", NEGATED_FINDING_RE.sub(" ", text))
    return bool(_NODE_TUMOUR_WORD_RE.search(kept) and _POSITIVE_VERB_RE.search(kept))


# ----------------------------------------------------------------------------------------------
# Margins, invasion


def _margin(units: list[Unit]) -> Fact | None:
    """Margin status from a margin unit: "positive" if any margin is involved, "negative" if the
    margins are stated free; not stated for "not specified"/"cannot be assessed"."""
    found: Fact | None = None
    for unit in units:
        text = unit.text
        if not MARGIN_MENTION_RE.search(text) or _HISTORY_RE.search(text):
            continue
        m = MARGIN_WORD_RE.search(text)
        after = text[m.start() :] if m else text
        if m and re.search(r"\b(?:no|free\s+of|without)\s+(?:residual\s+|invasive\s+)?"
                           r"(?:tumou?r|carcinoma|malignancy|neoplasm)[^.;]{0,50}$",
                           text[: m.start()], re.I):  # fmt: skip
            found = found or Fact("negative", unit.start, unit.end, unit.text)
            continue
        label = re.match(r"[^:]{0,60}margins?[^:]{0,50}:\s*(?=\S)", after, re.I)
        if label:  # a synoptic item: its value decides ("MARGINS INVOLVED BY ...: 4.5 mm")
            if re.search(r"in\s+situ|dcis", label.group(0), re.I):
                continue  # the in-situ component's margins, not the invasive tumour's
            after = after[label.end() :]
            after = re.split(r"\b[A-Z][A-Z /-]{3,40}:", after, maxsplit=1)[0]  # up to the next item
            if re.match(r"(?:distance|closest|\d+(?:\.\d+)?\s*(?:mm|cm))", after, re.I):
                found = found or Fact("negative", unit.start, unit.end, unit.text)
                continue
        if NOT_STATED_RE.search(after[:80]) and not MARGIN_CALL_RE.search(after[:80]):
            continue
        neg = MARGIN_NEGATIVE_RE.search(after)
        pos = MARGIN_POSITIVE_RE.search(after)
        if pos and (not neg or pos.start() < neg.start()):
            if UNINVOLVED_RE.search(after[max(0, pos.start() - 4) : pos.end()]):
                pos = None
        if pos and (not neg or pos.start() < neg.start()):
            return Fact("positive", unit.start, unit.end, unit.text)
        if neg and found is None and re.search(r"margin", text, re.I):
            found = Fact("negative", unit.start, unit.end, unit.text)
    return found


def _invasion(units: list[Unit], rx: re.Pattern[str]) -> Fact | None:
    absent: Fact | None = None
    for unit in units:
        text = unit.text
        m = rx.search(text)
        if not m or _HISTORY_RE.search(text):
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        after = text[m.end() : m.end() + 200]
        if ABSENT_BEFORE_RE.search(before):
            absent = absent or Fact("absent", unit.start, unit.end, unit.text)
            continue
        head = re.sub(r"^\s*(?:\([^)]*\)\s*)*", "", after)
        head = re.sub(r"^\s*(?:\((?:[LVP]n?|small\s+vessel)\)\s*)?[:\-.=]?\s*", "", head)
        if NOT_STATED_RE.match(head):
            continue
        if PRESENT_HEAD_RE.match(head) or PRESENT_BEFORE_RE.search(before):
            return Fact("present", unit.start, unit.end, unit.text)
        if ABSENT_HEAD_RE.match(head):
            absent = absent or Fact("absent", unit.start, unit.end, unit.text)
    return absent


# ----------------------------------------------------------------------------------------------
# Size, histology, receptors

_SIZE_LABEL_RE = re.compile(
    r"tumou?r\s+size|size\s+of\s+(?:the\s+)?tumou?r|sizeof\s+tumou?r|greatest\s+(?:dimension|"
    r"diameter)|largest\s+(?:dimension|tumou?r)|size\s+of\s+(?:largest\s+)?(?:invasive\s+)?"
    r"(?:carcinoma|focus)|invasive\s+(?:carcinoma|tumou?r)\s+size|tumou?r\s+measures|"
    r"mass\s+measur(?:es|ing)|(?:carcinoma|tumou?r)[^.;]{0,30}measuring",
    re.I,
)
_SIZE_EXCLUDE_RE = re.compile(r"\bfoc(?:us|i)\b|p63|\bfrom\b|away|distance|margin|node|less\s+than|"
                              r"more\s+than|up\s+to|<|>|specimen|"
                              r"in\s+situ|dcis|lcis|satellite|additional", re.I)  # fmt: skip


_METASTASIS_RE = re.compile(r"metasta\w*", re.I)
# "tumor 3.0 cm from nipple": a distance, not a size
_DISTANCE_AFTER_RE = re.compile(r"\s*(?:from|to|away|of\s+the\s+margin|beneath|deep)\b", re.I)
# one of several tumour foci given a size in one item ("Hilar focus 3.1 cm, apical focus 4.2 cm")
_FOCUS_SIZE_RE = re.compile(
    r"\b(?:focus|nodule|tumou?r|lesion|mass)\s*[:,]?\s*(?P<size>\d{1,3}(?:[.,]\d{1,2})?\s*(?:cm|mm)\b)",
    re.I,
)
_SIZE_APPOSED_RE = re.compile(
    r"(?<!metastatic\s)(?<!in\ssitu\s)\b(?:carcinoma|tumou?r|neoplasm)\s*[;,:]\s*"
    r"(?=\d{1,2}(?:[.,]\d{1,2})?\s*(?:x\s*\d{1,2}(?:[.,]\d{1,2})?\s*){0,2}(?:cm|mm)\s*(?:[.;)]|$))",
    re.I,
)
_SIZE_AFTER_RE = re.compile(
    r"\d{1,3}(?:[.,]\d{1,2})?\s*(?:cm|mm|em)\s+(?:in\s+)?(?:greatest|maximum|largest)\.?\s+"
    r"(?:dimension|diameter|extent)",
    re.I,
)

# A diameter set beside the tumour: "adenocarcinoma, 40 mm in diameter", "CARCINOMA ... GRADE 3
# (7.0 CM IN DIAMETER)", "a 4 cm diameter palpable tumor". Read only where no other rule gives a
# size, and never across a preposition ("a tumor bed 4 cm in diameter", "9 cm in diameter with
# tumor", "in a thyroid lobe 5 cm in diameter").
# Before the diameter only a histologic noun ("tumor, 2.2 cm in diameter" may be a nodule, a
# deposit or a thrombus); after it, "a 4 cm diameter palpable tumor" or "mass".
_TUMOUR_WORD = r"(?:carcinoma|tumou?r|mass|neoplasm|lesion)\b"
_HISTOLOGIC_NOUN = r"(?:carcinoma|sarcoma|melanoma|blastoma)\b"
_DIAMETER = r"\d{1,3}(?:[.,]\d{1,2})?\s*(?:cm|mm)\s+(?:in\s+)?diameter\b"
_SIZE_DIAMETER_RE = re.compile(
    _HISTOLOGIC_NOUN + r"(?P<gap>[^.;]{0,80}?)(?<![\d.])(?P<v>" + _DIAMETER + r")|(?<![\d.])(?P<w>"
    + _DIAMETER + r")\s+(?:(?!(?:with|in|of|and|by|from|to)\b)\w+\s+){0,2}" + _TUMOUR_WORD,
    re.I,
)  # fmt: skip
_DIAMETER_GAP_RE = re.compile(
    r"\b(?:with|within|in|into|by|along|abut\w*|contain\w*|and|adjacent|near|which|that|"
    r"involv\w*|extend\w*|invad\w*|to)\b",
    re.I,
)
# lesions beside the tumour whose size a report gives in the same way
_OTHER_LESION = (
    r"\bpolyps?\b|\bcysts?\b|leiomyomas?\b|leiomyomata|fibroids?\b|\b(?:fibro)?adenomas?\b|"
    r"\bovary\b|\bovaries\b|\bnodes?\b|hematoma|haematoma|seroma|biopsy\s+site|bulla|cavity|"
    r"cavitation|abscess|\bbed\b"
)
_OTHER_LESION_RE = re.compile(_OTHER_LESION, re.I)
# what else has a diameter in a report: not the tumour's size
_NOT_TUMOUR_DIAMETER_RE = re.compile(
    _OTHER_LESION + r"|skin|nipple|tube|vessel|artery|vein|\bbronch(?:us|i)\b|crater|"
    r"lumen|diverticul|uterus|gland|ureter|\barea\b|smaller|second|separate|satellite|"
    r"thromb|nodule|deposit|implant|necros|\bscar\b|" + _METASTASIS_RE.pattern,
    re.I,
)
# a report naming several tumours: a diameter may be any one's
_SEVERAL_TUMOURS_RE = re.compile(
    r"\b(?:two|three|four|five|multiple|several|[2-9])\s+(?:\(\d\)\s+)?(?:separate\s+|distinct\s+|"
    r"discrete\s+)?(?:lesions|tumou?rs|foci|nodules|masses|(?:adeno)?carcinomas)\b"
    # "several foci of squamous metaplasia", "foci of vascular invasion": not tumours
    r"(?!\s+of\s+(?!(?:[\w-]+\s+){0,3}(?:\w*carcinoma|tumou?r|neoplasm|malignan)))",
    re.I,
)
# the type words that tell one tumour from another in a report ("squamous" vs "adeno")
_TYPE_FAMILY_RE = re.compile(
    r"squamous|adeno(?!squamous)|urothelial|transitional|ductal|lobular|clear\s+cell|papillary|"
    r"serous|endometrioid|small\s+cell|carcinoid|neuroendocrine|melanoma|sarcoma",
    re.I,
)


_NO_MALIGNANCY_RE = re.compile(
    r"negative\s+for\s+(?:malignan|tumou?r|carcinoma)|\bno\s+(?:residual\s+)?(?:malignan|"
    r"tumou?r|carcinoma)|\bbenign\b",
    re.I,
)


def _type_families(text: str) -> set[str]:
    return {re.sub(r"\s+", " ", m.group(0).lower()) for m in _TYPE_FAMILY_RE.finditer(text)}


def _diameter_size(text: str, histology: Fact | None) -> re.Match[str] | None:
    """The tumour's size from a diameter beside it (see ``_SIZE_DIAMETER_RE``), or None."""
    diameter = _SIZE_DIAMETER_RE.search(text)
    if diameter is None or (
        diameter.group("gap") and _DIAMETER_GAP_RE.search(diameter.group("gap"))
    ):
        return None
    at = diameter.start("v" if diameter.group("v") else "w")
    if re.search(r"(?:[x×*\-–]|\bto)\s*$", text[:at], re.I):
        return None  # the last of several dimensions ("7 x 5 x 4 cm in diameter", "1-2 cm")
    # the clause that gives it, from its label's colon at most ("... lymph node sampling:
    # adenocarcinoma, 70 mm in diameter" is the tumour's)
    clause = text[max(0, diameter.start() - 60) : diameter.end()].rsplit(":", 1)[-1]
    # and the noun right after it ("a 5 cm diameter seroma cavity")
    clause += re.split(r"[,.;(]", text[diameter.end() : diameter.end() + 40], maxsplit=1)[0]
    sentence = re.split(r"[.;]\s", text[diameter.end() :], maxsplit=1)[0]
    if (
        _NOT_TUMOUR_DIAMETER_RE.search(clause)
        or _SIZE_EXCLUDE_RE.search(clause)
        or _NO_MALIGNANCY_RE.search(clause + sentence)
    ):
        return None
    named, report = (
        _type_families(clause),
        _type_families(str(histology.value) if histology else ""),
    )
    if named and report and not named & report:
        return None  # another tumour's ("squamous cell carcinoma ...; adenocarcinoma, 1.2 cm")
    return SIZE_VALUE_RE.match(text, at)


def _closed_size(text: str, label: re.Match[str]) -> re.Match[str] | None:
    """The tumour's size that a "greatest dimension" label closes ("THE LARGER 2.5 CM IN
    GREATEST DIMENSION"), or None: not a definition's bound ("< 5 cm in greatest dimension"),
    and only where its clause names the tumour and nothing else (not "The kidney, 12.5 cm")."""
    closed = _SIZE_AFTER_RE.search(text[max(0, label.start() - 30) : label.end()])
    if closed is None or re.search(
        r"[<>]|\b(?:less|more|greater)\s+than|\bup\s+to|\bover\b",
        text[max(0, label.start() - 45) : label.start()],
        re.I,
    ):
        return None
    measured = re.split(
        r"[;:.]\s|,\s(?=[A-Za-z]+\s)", text[max(0, label.start() - 80) : label.start()]
    )[-1]
    if not re.search(_TUMOUR_WORD + r"|\b(?:larger|largest|dominant|main)\b", measured, re.I):
        return None
    if (
        _NOT_TUMOUR_DIAMETER_RE.search(measured)
        or _SIZE_EXCLUDE_RE.search(measured)
        or re.search(
            r"depth|thick|distance|kidney|breast|lobe|organ|specimen|in\s+situ|\bdcis\b",
            measured,
            re.I,
        )
    ):
        return None
    return SIZE_VALUE_RE.search(closed.group(0))


def _size(units: list[Unit], histology: Fact | None = None) -> Fact | None:
    """Greatest dimension of the main (largest) tumour, in cm (``histology``: the report's, so
    that a diameter of another tumour type is not read)."""
    best: tuple[float, Unit] | None = None
    diameters: list[tuple[float, Unit]] = []
    several = any(_SEVERAL_TUMOURS_RE.search(unit.text) for unit in units)
    for unit in units:
        text = unit.text
        if _HISTORY_RE.search(text):
            continue
        label = _SIZE_LABEL_RE.search(text)
        if label and _METASTASIS_RE.search(text[max(0, label.start() - 100) : label.start()]):
            label = None  # the size of a metastasis ("metastatic carcinoma ... measuring 0.9 cm")
        if label and _OTHER_LESION_RE.search(
            re.split(r"[;:.]\s", text[max(0, label.start() - 60) : label.start()])[-1]
        ):
            label = None  # "an area of cavitation ... within the tumour measuring 25 mm"
        # "0.8 CM IN GREATEST DIMENSION, THE LARGER 2.5 CM": the label closes a size
        closing = label and re.search(r"(?:cm|mm)\s+(?:in\s+)?$", text[: label.start()], re.I)
        m = None
        if label and not re.search(r"specimen|\bnode", text[: label.start()], re.I):
            tail = text[label.end() :]
            if closing:
                # "1.0 cm in greatest dimension). There is a 2.5 cm ovary": not past its sentence
                tail = re.split(r"(?<!\d)[.;]\s", tail, maxsplit=1)[0]
            colon = re.search(r"(?<!\d):\s*(?=\d)", tail[:80])
            if colon and re.search(r"\d\s*(?:cm|mm)\b", tail[: colon.start()], re.I):
                tail = tail[colon.end() :]  # "... invasion over 0.1 cm: 1.5 cm": the item's value
            before_value = re.split(r"\d", tail[:40], maxsplit=1)[0]
            bounded = re.search(
                r"less\s+than|more\s+than|greater\s+than|up\s+to|[<>]|\bor\s+(?:less|more|greater)\b",
                tail[:40],
                re.I,
            ) or (
                re.search(r"depth|invad|thick", before_value, re.I)
            )  # a bound, or a depth of invasion, is not the tumour's size
            soft = (
                _SIZE_EXCLUDE_RE.search(tail[:60])
                and not re.search(r"greatest|tumou?r\s+size", text, re.I)
            ) or _OTHER_LESION_RE.search(before_value)  # "TUMOR SIZE: TUMOR BED 3.5 CM"
            if not bounded and not soft:
                m = SIZE_VALUE_RE.search(tail[:80])
                # "TUMOR SIZE: Hilar focus 3.1 cm, apical focus 4.2 cm": the largest focus
                sentence = re.split(r"(?<!\d)[.;]\s", tail, maxsplit=1)[0][:160]
                foci = [
                    SIZE_VALUE_RE.match(sentence, focus.start("size"))
                    for focus in _FOCUS_SIZE_RE.finditer(sentence)
                    if not _DISTANCE_AFTER_RE.match(sentence, focus.end())
                ]
                if m is not None and len(foci) >= 2:  # several foci, each with its size
                    m = max([m, *(f for f in foci if f is not None)], key=size_cm)
        if closing and m is not None:
            closed = _closed_size(text, label)
            if closed is not None and size_cm(closed) > size_cm(m):
                m = closed  # "THE LARGER 2.5 CM IN GREATEST DIMENSION, THE SMALLER 0.8 CM"
        if m is None:
            # "... carcinoma, measuring 4.5 cm in greatest dimension"
            after = _SIZE_AFTER_RE.search(text)
            if (
                after
                and re.search(r"carcinoma|tumou?r|mass|neoplasm|lesion", text, re.I)
                and not (_SIZE_EXCLUDE_RE.search(text[max(0, after.start() - 40) : after.start()]))
                and not _METASTASIS_RE.search(text[max(0, after.start() - 100) : after.start()])
                # "LEIOMYOMA, 5.5 CM IN GREATEST DIMENSION": the size of what its clause names
                and not _OTHER_LESION_RE.search(
                    re.split(r"[;:]", text[max(0, after.start() - 60) : after.start()])[-1]
                )
            ):
                m = SIZE_VALUE_RE.search(after.group(0))
        if m is None and not several:
            diameter = _diameter_size(text, histology)
            if diameter is not None and 0 < size_cm(diameter) <= 40:
                diameters.append((size_cm(diameter), unit))
        if m is None:
            # "squamous cell carcinoma; 5.5 cm." (the size set beside the tumour, ending there)
            apposed = _SIZE_APPOSED_RE.search(text)
            # a unit starting lower case is the tail of a broken line: its head ("Metastatic")
            # may say whose size it is
            if (
                apposed
                and not text[:1].islower()
                # "Margins: Free of tumor, 4 mm": a distance, not a size
                and not re.search(
                    r"margin|free\s+of|negative\s+for|\bno\b|distance", text[: apposed.end()], re.I
                )
            ):
                m = SIZE_VALUE_RE.match(text, apposed.end())
        if not m or float(m.group("a").replace(",", ".")) == 0:
            continue  # no size, or an OCR-garbled one ("0 X 0 x 3 cm")
        value = size_cm(m)
        if not 0 < value <= 40:
            continue
        if best is None or value > best[0]:
            best = (value, unit)
    best = best or max(diameters, key=lambda d: d[0], default=None)
    if best is None:
        return None
    return Fact(round(best[0], 2), best[1].start, best[1].end, best[1].text)


_TYPE_WORDS = (
    r"invasive|infiltrating|ductal|lobular|mucinous|papillary|clear|cell|renal|squamous|"
    r"urothelial|endometrioid|serous|small|large|non-small|adenosquamous|signet|ring|tubular|"
    r"medullary|micropapillary|metaplastic|conventional|chromophobe|sarcomatoid|keratinizing|"
    r"non-keratinizing|nonkeratinizing|basaloid|acinar|solid|lepidic|mixed|neuroendocrine|"
    r"undifferentiated|bronchioloalveolar|poorly|moderately|well|differentiated|type|nos|"
    r"hepatocellular|adrenocortical|cortical|transitional|signet-ring|anaplastic|pleomorphic|"
    r"spindle|epithelioid|sarcomatoid|dedifferentiated|intestinal|diffuse|endocervical"
)
_HISTOLOGY_RE = re.compile(
    r"\b(?:(?:" + _TYPE_WORDS + r")[\s,-]+){0,5}(?:" + TUMOUR_NOUN + r")\b"
    r"(?:\s*,\s*(?:clear\s+cell|papillary|chromophobe|endometrioid|serous|conventional)"
    r"(?:\s+type)?)?",
    re.I,
)
_HISTOLOGY_LABEL_RE = re.compile(
    r"histologic(?:al)?\s+(?:tumou?r\s+)?type(?:\s*/\s*subtype)?\s*(?:\([^)]*\))?\s*[:\-.]?\s*"
    r"(?P<v>.{3,100})",
    re.I,
)


def _histology(units: list[Unit], cancer: str | None) -> Fact | None:
    """Histologic type from a "histologic type" item, else the first diagnosis line naming a
    tumour (never the specimen or procedure field), as its term in the cancer's fixed
    vocabulary (:mod:`kemm.knowledge.histology`; the line as written stays the fact's source).
    A phrase too generic for a term ("renal carcinoma") reads the rest of its line."""
    for unit in units:
        m = _HISTOLOGY_LABEL_RE.search(unit.text)
        if m:
            value = _histology_value(m.group("v"))
            if value:
                return _histology_fact(value, unit, cancer)
    metastasis: Fact | None = None
    for unit in units:
        if unit.section not in ("diagnosis", "synoptic", "preamble") or _HISTORY_RE.search(
            unit.text
        ):
            continue
        found = None
        value = _histology_value(unit.text, skip_negated=True)
        if value:
            found = _histology_fact(value, unit, cancer)
        else:
            # a type the generic phrase pattern does not read ("Adenocortical carcinoma"), on a
            # diagnosis line without negation
            term = normalise_histology(unit.text, cancer)
            if not is_generic(term) and not _NEGATION_RE.search(unit.text):
                found = Fact(term.term, unit.start, unit.end, unit.text)
        if found is not None and _names_a_metastasis(unit.text, value):
            # "LYMPH NODE ...: METASTATIC ADENOCARCINOMA (1/1)" listed before the primary's
            # part: the primary's line names the type, the metastasis only if nothing else does
            metastasis = metastasis or found
            continue
        if found is not None:
            return found
    return metastasis


_NEGATION_RE = re.compile(r"\b(?:no|negative\s+for|free\s+of|without|not)\b", re.I)
_METASTATIC_BEFORE_RE = re.compile(r"\bmetasta\w*\s+(?:[\w-]+\s+){0,3}$", re.I)


def _names_a_metastasis(text: str, phrase: str | None) -> bool:
    """True where the type phrase of a line is a metastasis ("METASTATIC ADENOCARCINOMA IN ONE
    LYMPH NODE"), not the primary named beside one ("... CARCINOMA; NO LYMPH NODE METASTASIS",
    "CARCINOMA, METASTATIC TO ONE SENTINEL NODE")."""
    at = text.lower().find(phrase.lower()) if phrase else -1
    if at < 0:
        return False
    # "X, METASTATIC TO ONE SENTINEL NODE" is the primary's own line: not deferred
    before = _METASTATIC_BEFORE_RE.search(text[max(0, at - 40) : at])
    return bool(
        before and not _NEGATION_RE.search(text[max(0, at - 40) : at][: before.start() + 1][-15:])
    )


def _histology_fact(phrase: str, unit: Unit, cancer: str | None) -> Fact | None:
    term = normalise_histology(phrase, cancer)
    if is_generic(term):
        # a generic phrase: a subtype the same line names ("renal carcinoma, clear cell type")
        whole = normalise_histology(unit.text, cancer)
        if not is_generic(whole):
            term = whole
    return None if term is None else Fact(term.term, unit.start, unit.end, unit.text)


def _histology_value(text: str, skip_negated: bool = False) -> str | None:
    for m in _HISTOLOGY_RE.finditer(text):
        if skip_negated and NEGATED_BEFORE_RE.search(text[max(0, m.start() - 40) : m.start()]):
            continue  # "no tumour is seen", "negative for carcinoma"
        value = re.sub(r"\s+", " ", m.group(0)).strip(" ,-").lower()
        value = re.sub(r"^(?:type|nos)\s+", "", value)
        if value in GENERIC_HISTOLOGY or len(value) < 6:
            continue
        if value.split()[-1] in ("tumor", "tumour") and len(value.split()) < 3:
            continue
        return value
    # a labelled value that names a type without a tumour noun ("Clear cell (conventional)")
    m = re.match(r"\s*(clear\s+cell|papillary|chromophobe|endometrioid|serous|ductal|lobular|"
                 r"squamous|adenocarcinoma)\b", text, re.I)  # fmt: skip
    return m.group(1).lower() if m else None


def _receptors(units: list[Unit]) -> dict[str, Fact]:
    out: dict[str, Fact] = {}
    names = {"ER": "er", "PR": "pr", "HER2": "her2"}
    polarity = {"POS": "positive", "NEG": "negative", "EQUIVOCAL": "equivocal"}
    for unit in units:
        if _HISTORY_RE.search(unit.text):
            continue
        for marker, call in sorted(receptor_calls(unit.text)):
            key = names.get(marker)
            if key and key not in out:
                out[key] = Fact(polarity[call], unit.start, unit.end, unit.text)
    return out


# ----------------------------------------------------------------------------------------------


def extract_report_facts(
    text: str | None, cancer: str | None = None, age: float | None = None, *, derive: bool = True
) -> ReportFacts:
    """The typed fact record of one report (see the module docstring for the reading rules).

    ``cancer`` (any name :func:`kemm.knowledge.cancers.resolve_cancer_code` accepts: a TCGA
    code such as ``"kirc"`` or ``"COADREAD"``, an OncoTree code, a common name; an unknown one
    raises :class:`~kemm.errors.ConfigError`) selects the grade scale and the AJCC 7th
    edition table used to derive a stage group from TNM when no group is stated. ``age`` (years
    at diagnosis) picks the table where the groups depend on it (thyroid); without it such a
    stage is derived only where every age band gives the same group. ``derive=False`` leaves
    T and N that the report does not state empty (no derivation from size, depth or node
    counts; a stage is still derived from stated TNM).
    """
    cancer = _rules_code(cancer)
    if not text or not str(text).strip():
        return ReportFacts()
    from kemm.knowledge.ajcc import depends_on_age, years

    # the age changes nothing where the stage table does not depend on it: one cached record
    age = years(age) if depends_on_age(cancer) else None
    # a fresh copy each call: callers may fill or merge the record they get
    return copy.deepcopy(_extract_cached(str(text), cancer, age, derive))


@functools.lru_cache(maxsize=256)
def _rules_code(cancer: str | None) -> str | None:
    """The rules code of any name of a cancer (:func:`kemm.knowledge.cancers.report_rules`):
    never a record silently read without its cancer's rules."""
    from kemm.knowledge.cancers import report_rules

    return report_rules(cancer)


# One run reads each report several times (covariates, statements, grounding) and a benchmark
# once per data variant: the record of a (text, cancer) pair is computed once per process.
@functools.lru_cache(maxsize=16384)
def _extract_cached(
    text: str, cancer: str | None, age: float | None = None, derive: bool = True
) -> ReportFacts:
    facts = ReportFacts()
    every = report_units(str(text))
    units = [
        u for u, foreign in zip(every, _foreign_flags(every, cancer), strict=True) if not foreign
    ]
    readable = [u for u in units if not _HISTORY_RE.search(u.text) or _TNM_HINT_RE.search(u.text)]
    cands = _tnm_candidates(readable)
    if any(_M_NOT_ASSESSED_RE.search(u.text) for u in readable) or any(
        _M_LABEL_ONLY_RE.match(a.text) and _NOT_ASSESSED_START_RE.match(b.text)
        for a, b in zip(readable, readable[1:], strict=False)
    ):
        # "Distant Metastasis (pM): Not applicable" beside a "pM1: Distant metastasis" legend:
        # no M1 is stated (a false M1 is the costliest error of all)
        cands["M"] = [c for c in cands["M"] if not (c.value or "").startswith("M1")]
    for cat, attr, order in (("T", "t", _t_rank), ("N", "n", _nm_rank), ("M", "m", _nm_rank)):
        chosen = _choose(cands[cat], order)
        if chosen is not None:
            unit = chosen.unit
            setattr(facts, attr, Fact(chosen.value, unit.start, unit.end, unit.text))
            setattr(facts, f"{attr}_prefix", chosen.prefix)
    t_from_6th = facts.t is not None and (
        to_7th := seventh_edition_value(text, cancer, facts.t.value, facts.t.source)
    )
    if t_from_6th:
        old = facts.t
        facts.t = Fact(to_7th[0], old.start, old.end, old.source, rule=to_7th[1])
    facts.grade = _grade(units, cancer)
    facts.nodes_positive, facts.nodes_examined = _nodes(units)
    if _contradicts_n(facts.n, facts.nodes_positive):
        facts.nodes_positive = facts.nodes_examined = None  # the counts missed a part
    facts.histology = _histology(units, cancer)
    facts.size_cm = _size(units, facts.histology)
    # the lines naming another organ stay: "invades prostatic stroma" is a bladder tumour's T4a
    if derive:
        # the whole text, skipped sections included, for therapy before the resection
        # ("CLINICAL HISTORY: ... status post chemoradiation")
        whole = [Unit(re.sub(r"\s+", " ", str(text)), 0, len(str(text)), "report")]
        # depth from the cohort tumour's lines only (an incidental prostate cancer's "involving
        # the prostate" is no bladder T4a); another organ's lines still stop a derivation
        own = [u for u in units if not _HISTORY_RE.search(u.text)]
        others = [u for u in every if u not in units and not _HISTORY_RE.search(u.text)]
        _derive_tnm(facts, own, cancer, whole, others)
    stages = _stage_candidates(units, cancer)
    derived = (
        _derived_stage(facts, units, cancer, age)
        if facts.t is not None or facts.m is not None
        else None
    )
    if (
        derived is not None
        and derived.value == "IIIC1"
        and (t_from_6th or _in_sixth_edition(text, cancer))
    ):
        # the 6th edition's N1 counts para-aortic nodes too: the 7th's N1 or N2
        rule = f"{derived.rule}; the 6th edition's N1 is the 7th's N1 or N2: IIIC"
        derived = Fact("IIIC", derived.start, derived.end, derived.source, True, rule)
    if stages:
        value, unit = max(stages, key=lambda s: _stage_key(s[0]))
        facts.stage = Fact(value, unit.start, unit.end, unit.text)
        if to_7th := seventh_edition_value(text, cancer, value, unit.text):
            value, rule = to_7th
            facts.stage = Fact(value, unit.start, unit.end, unit.text, rule=rule)
        tnm = [f for f in (facts.t, facts.n, facts.m) if f is not None]
        tnm_units = {(f.start, f.end) for f in tnm}
        if (
            derived is not None
            and not any(f.derived for f in tnm)
            and _stage_key(derived.value)[0] != _stage_key(value)[0]
            and (unit.start, unit.end) not in tnm_units
        ):
            # a stated group that contradicts the stated TNM, on another line: trust the TNM
            facts.stage = derived
    else:
        facts.stage = derived
    facts.margin = _margin(units)
    facts.lvi = _invasion(units, _LVI_LABEL_RE)
    facts.pni = _invasion(units, _PNI_LABEL_RE)
    if (cancer or "brca").lower() == "brca":  # receptors are breast facts
        for key, fact in _receptors(units).items():
            setattr(facts, key, fact)
    return facts


# The 6th edition (FIGO 1988) split the endometrium's stage I in three (T1a: the endometrium
# only, T1b: under half of the myometrium, T1c: half or more) and its stage II by cervical
# glands (IIA) or stroma (IIB); the 7th (FIGO 2009) has T1a under half, T1b half or more, no
# T2 or stage II subcategories (cervical glands alone are stage I), and splits the 6th's N1
# (pelvic or para-aortic) into N1 and N2. A value only the 6th has (T1c, T2a, T2b; IC, IIA,
# IIB) is read in the 7th's terms (our AJCC table's) unless the report names the AJCC 7th
# edition or the value's line names another primary (an ovary's 7th-edition T1c); a value both
# have (T1b, IB) only in a report in the 6th edition's terms: it names the edition, or writes
# its definition ("pT1b (IB): Tumor invades less than one-half of the myometrium"), and names
# neither the 7th nor FIGO 2008/2009 (a report may give "pT1c" beside a 2009 "FIGO stage
# grouping: IB"). A stage IIIC1 derived from such a report's N1 is IIIC. The value
# stays stated, with its rule. The 6th's IIIA (a positive washing alone, or serosa or adnexa)
# is left as written: the 7th's IIIA, or stage I or II, which the report alone cannot tell.
_UTERUS_6TH = {"T1b": "T1a", "T1c": "T1b", "T2a": "T1", "T2b": "T2",
               "IB": "IA", "IC": "IB", "IIA": "I", "IIB": "II"}  # fmt: skip
_UTERUS_6TH_ONLY = frozenset({"T1c", "T2a", "T2b", "IC", "IIA", "IIB"})
_HALF = r"less\s+than\s+(?:one\s?[-\s]?\s?half|1/2|half)"
_SIXTH_EDITION_RE = re.compile(
    r"(?:ajcc|uicc|tnm|stag(?:e|ing)?|edition)\b[^.;\n]{0,40}(?:\b6\s?t[a-z]?|\bsixth)\.?\s*ed(?:ition|\b)|"
    r"(?:\b6\s?t[a-z]?|\bsixth)\.?\s*ed(?:ition|\b)[^.;\n]{0,40}(?:ajcc|uicc|tnm|stag|p\s?t\s?[0-4l])|"
    r"\bajcc\W{0,3}(?:6th|sixth)\b|\bfigo\b[^.;\n]{0,25}\b1988\b|\b1988\W{0,3}figo\b|"
    # the 6th's definition of T1b / IB written beside it (not the 7th's T1a: "limited to the
    # endometrium or invades less than half")
    r"(?:\bp?t\s?[1l]\s?b|\bib)\b[\s:/()\[\]ibt1l-]{0,12}"
    r"(?:tumou?r\s+confined\s+to\s+(?:the\s+)?corpus\s+uteri\W{0,3})?(?:tumou?r\s+)?(?:invad\w*\s+)?"
    + _HALF + r"|(?<!\bor\sinvades\s)(?<!\bor\s)" + _HALF + r"\s+of\s+the\s+myometrium\s*\(\s*p?t\s?[1l]\s?b\b",
    re.I)  # fmt: skip
# The AJCC 7th edition named; FIGO's revised staging (approved 2008, published 2009) is the 7th's
_SEVENTH_AJCC_RE = re.compile(
    r"(?:7\s?th|seventh)\.?\s*ed(?:ition|\b)|ajcc\W{0,3}(?:7\s?th|seventh|2010)\b|\btnm\W?7\b", re.I
)
_SEVENTH_EDITION_RE = re.compile(
    _SEVENTH_AJCC_RE.pattern + r"|\bfigo\b[^.;\n]{0,25}\b200[89]\b|\b200[89]\W{0,3}figo\b", re.I
)
# another organ named with a tumour of its own ("Left ovary: independent primary endometrioid
# carcinoma, pT1c"), not as free of one ("Right adnexa: Free of tumor", "The bilateral ovaries
# and fallopian tubes are negative for tumor", "Adnexa: tumor not identified")
_OTHER_PRIMARY_RE = re.compile(
    r"\b(?:ovar(?:y|ies|ian)|adnex\w*|fallopian|breast)\b(?P<between>[^.;]{0,60}?)"
    r"(?:carcinoma|primary|tumou?r)(?P<after>[^.;]{0,20})", re.I)  # fmt: skip
_NOT_INVOLVED_RE = re.compile(
    r"negative|\bfree\b|uninvolved|unremarkable|benign|within\s+normal|atroph\w*|absent|"
    r"\bno\s+(?:evidence|residual|tumou?r|carcinoma|malignan\w*)|"
    r"\bnot\s+(?:involved|identified|seen|present)",
    re.I,
)


def _names_another_primary(line: str) -> bool:
    return any(
        not _NOT_INVOLVED_RE.search(m.group("between") + " " + m.group("after"))
        for m in _OTHER_PRIMARY_RE.finditer(line)
    )


def _in_sixth_edition(text: str, cancer: str | None) -> bool:
    """A report of the corpus uteri in the 6th edition's terms (see above)."""
    from kemm.knowledge.ajcc import table_names

    return (
        table_names(_rules_code(cancer)) == ("corpus uteri",)
        and _SIXTH_EDITION_RE.search(text) is not None
        and _SEVENTH_EDITION_RE.search(text) is None
    )


def seventh_edition_value(
    text: str, cancer: str | None, value: object, line: str
) -> tuple[str, str] | None:
    """The 7th-edition value and its rule of a T or stage group that a report of the corpus
    uteri writes in the 6th edition's terms (``line``: where the value stands); None where it
    needs no translation."""
    from kemm.knowledge.ajcc import table_names

    value = str(value)
    if value not in _UTERUS_6TH or table_names(_rules_code(cancer)) != ("corpus uteri",):
        return None
    if _SEVENTH_AJCC_RE.search(text) or _names_another_primary(line):
        return None
    if value not in _UTERUS_6TH_ONLY and not _in_sixth_edition(text, cancer):
        return None
    new = _UTERUS_6TH[value]
    return new, f"the 6th edition's (FIGO 1988) {value} of the corpus uteri is the 7th's {new}"


_FOREIGN_TUMOUR = {
    "thymoma": r"thym(?:oma|ic|us)", "thyroid": r"thyroid(?!\s+cartilage)", "prostate": r"prostat",
    "colorectal": r"\bcolon\b|colorectal|\brect(?:um|al)\b", "liver": r"hepatocellular",
    "bladder": r"urothelial|(?<!gall)bladder", "melanoma": r"melanoma", "lymphoma": r"lymphoma",
    # ("cervical lymph nodes", "cervical esophagus" are the neck's)
    "ovary": r"ovar(?:y|ian)", "kidney": r"renal\s+cell",
    "gist": r"\bGIST\b|gastrointestinal\s+stromal",
    "neuroendocrine": r"carcinoid|(?<!large\scell\s)neuroendocrine\s+tumou?r",
    "cervix": r"cervix|endocervi\w*|ectocervi\w*|cervical\s+(?:carcinoma|cancer|squamous|adeno\w*|"
              r"intraepithelial|stroma|canal|os\b|biopsy|cone|conization)",
}  # fmt: skip
_OWN_SITES = {
    "ucec": {"ovary", "cervix"}, "kirc": {"kidney"}, "kirp": {"kidney"}, "kich": {"kidney"},
    "coad": {"colorectal"}, "read": {"colorectal"}, "blca": {"bladder"}, "prad": {"prostate"},
    "thca": {"thyroid"}, "lihc": {"liver"}, "skcm": {"melanoma"},
    "ov": {"ovary"}, "cesc": {"cervix"}, "luad": {"neuroendocrine"}, "lusc": {"neuroendocrine"},
    "paad": {"neuroendocrine"}, "pcpg": {"neuroendocrine"}, "sarc": {"gist"},
    "thym": {"thymoma", "neuroendocrine"},
}  # fmt: skip


# A site named as what the cohort's tumour invades ("pT4a: Tumor invades prostate", "invasion
# into adjacent prostatic parenchyma", "adherent to the bladder") or as a structure of the
# resected organ ("prostatic stroma", "bladder neck", "prostatic urethra"), not as a tumour's
_INVADED_SITE_BEFORE_RE = re.compile(
    r"\b(?:invad\w*|invasion|involv\w*|extend\w*|extension|infiltrat\w*|adheren\w*|"
    r"adherent|penetrat\w*|into)\s+(?:(?:of|to|into|the|adjacent|through|urinary|left|right)\s+)*$",
    re.I,
)
# another organ reached by the cohort's tumour ("Thyroid gland: involved by squamous cell
# carcinoma (direct extension)"); not another organ's tumour that directly invades a third
# ("Prostate: adenocarcinoma directly invading the seminal vesicles (pT3b)")
_DIRECT_EXTENSION_RE = re.compile(
    r"\bby\s+(?:direct|contiguous)\s+(?:extension|spread|invasion)|"
    r"\(\s*(?:direct|contiguous)\s+(?:extension|spread|invasion)\s*\)|"
    r"\b(?:direct|contiguous)\s+(?:extension|spread)\s+(?:of|from)\b",
    re.I,
)
_SITE_STRUCTURE_AFTER_RE = re.compile(
    r"^\w*\s+(?:stroma|neck|wall|urethra|parenchyma|capsule|fat|soft\s+tissue|apex|base)\b",
    re.I,
)


def _foreign_flags(units: list[Unit], cancer: str | None) -> list[bool]:
    """Per unit, whether it is about another organ's tumour: the unit itself, or a unit under a
    part or title naming another tumour ("C. Thyroid, total thyroidectomy:" then "pT3 pN0";
    "PROSTATE CANCER SYNOPTIC", alone or joined to its first line, then "Pathologic staging:
    pT3a pN0"), up to the next part or title."""
    flags, inherited = [], False
    own = _own_site_re((cancer or "").lower())
    for unit in units:
        foreign = _foreign(unit.text, cancer)
        part = _PART_LABEL_RE.match(unit.text) or _BARE_PART_RE.match(unit.text)
        title = _SYNOPTIC_TITLE_RE.match(unit.text)
        if part or title:
            # a part about another organ that does not also name the cohort's ("A. URINARY
            # BLADDER AND PROSTATE, RADICAL CYSTOPROSTATECTOMY:" is the bladder's)
            inherited = (
                foreign
                and bool(title or unit.text.rstrip().endswith(":"))
                and not (own is not None and own.search(unit.text))
            )
        flags.append(foreign or inherited)
    return flags


_BARE_PART_RE = re.compile(r"^\W*(?:\d{1,2}|[A-H])\s*[.):]\s*$")
# a title opening a synoptic of its own ("PROSTATE CANCER SYNOPTIC", "THYROID CHECKLIST"),
# alone or joined to the first line it labels ("PROSTATE CANCER SYNOPTIC Histologic type: ...")
_SYNOPTIC_TITLE_RE = re.compile(
    r"^\W*[A-Za-z ,&/()-]{2,40}\b(?:synoptic|checklist|case\s+summary|staging\s+summary)\b"
    r"(?:[\w ]{0,20}:?\s*$|\s+(?=[A-Z][a-z]+(?:\s+[a-z]+)?\s*:))",
    re.I,
)


@functools.cache
def _own_site_re(cancer: str) -> re.Pattern[str] | None:
    sites = _OWN_SITES.get(cancer, set())
    return re.compile(_alternation(_FOREIGN_TUMOUR, sites.__contains__), re.I) if sites else None


def _alternation(patterns: dict[str, str], keep) -> str:
    """One alternation of the site patterns whose names ``keep`` accepts."""
    return "|".join(f"(?:{rx})" for site, rx in patterns.items() if keep(site))


# The cohort's own tumour named in a line about another organ, and that organ's own tumour
# (a cystoprostatectomy's prostate holds the bladder's urothelial carcinoma or an incidental
# prostatic adenocarcinoma)
_OWN_TUMOUR = {
    "blca": (
        re.compile(r"urothelial|transitional\s+cell", re.I),
        re.compile(r"adenocarcinoma|gleason|acinar", re.I),
    ),
}


def _foreign(text: str, cancer: str | None) -> bool:
    """True for a line about a tumour of another site than the cohort's (a second specimen,
    e.g. a thymoma resected with a lung cancer): its facts are not the cohort tumour's. A site
    the tumour invades or a structure of the resected organ ("pT4a: Tumor invades prostate",
    "Prostatic stroma: involved") names no other tumour."""
    if not cancer:
        return False
    own = _OWN_TUMOUR.get(cancer.lower())
    if own is not None and own[0].search(text) and not own[1].search(text):
        return False  # "Prostate, excision: urothelial carcinoma involving prostatic urethra"
    if _DIRECT_EXTENSION_RE.search(text) and not _TNM_HINT_RE.search(text):
        return False  # "Thyroid gland: involved by squamous cell carcinoma (direct extension)"
    for m in _foreign_re(cancer.lower()).finditer(text):
        if _INVADED_SITE_BEFORE_RE.search(text[max(0, m.start() - 40) : m.start()]):
            continue
        if _SITE_STRUCTURE_AFTER_RE.match(text[m.start() : m.end() + 25]):
            continue
        return True
    return False


@functools.cache
def _foreign_re(cancer: str) -> re.Pattern[str]:
    """One pattern for the tumour sites foreign to ``cancer``."""
    own = _OWN_SITES.get(cancer, set())
    return re.compile(_alternation(_FOREIGN_TUMOUR, lambda site: site not in own), re.I)


_TNM_HINT_RE = re.compile(r"\b(?:y?p)[TNM]\s?[0-4xX]", re.I)


# A distant site's specimen holding tumour ("B. Liver, segment 7, wedge resection: metastatic
# adenocarcinoma"), or a metastasis to it named in words; not the cohort's own organ or a
# site its staging counts as regional (the kidney's adrenal is T4, the endometrium's ovary IIIA)
_DISTANT_SITES = {
    "liver": r"liver|hepatic", "lung": r"lung|pulmonary", "brain": r"brain|cerebr\w*",
    "bone": r"bone|vertebra\w*", "peritoneum": r"peritone\w*|omentum|omental",
    "ovary": r"ovar\w*", "adrenal": r"adrenal",
}  # fmt: skip
_REGIONAL_SITES = {
    "luad": {"lung"}, "lusc": {"lung"}, "meso": {"lung", "peritoneum"}, "lihc": {"liver"},
    "chol": {"liver"}, "kirc": {"adrenal"}, "kirp": {"adrenal"}, "kich": {"adrenal"},
    "acc": {"adrenal"}, "pcpg": {"adrenal"}, "ucec": {"ovary"}, "ov": {"ovary", "peritoneum"},
    "stad": {"peritoneum"}, "sarc": {"bone", "peritoneum"},
}  # fmt: skip


@functools.cache
def _distant_site_re(cancer: str) -> re.Pattern[str]:
    regional = _REGIONAL_SITES.get(cancer, ())
    sites = _alternation(_DISTANT_SITES, lambda site: site not in regional)
    return re.compile(
        r"^\W*(?:(?:part\s*)?[A-Z0-9]{1,2}[.):]\s*)?(?:" + sites + r")\b[^:]{0,60}[:\-]\s*"
        r"(?P<finding>.*)$|metasta\w*\s+(?:[\w-]+\s+){0,3}(?:to|in|involving)\s+(?:the\s+)?"
        r"(?:" + sites + r")\b",
        re.I,
    )


def _distant_metastasis(text: str, cancer: str) -> bool:
    """A unit stating a metastasis at a site distant for ``cancer`` (M1), not negated."""
    m = _distant_site_re(cancer.lower()).search(text)
    if m is None:
        return False
    finding = NEGATED_FINDING_RE.sub(" ", m.group("finding") or m.group(0))
    return bool(re.search(r"metasta\w*|carcinoma|sarcoma|melanoma|malignan\w*", finding, re.I))


def _derived_stage(
    facts: ReportFacts, units: list[Unit], cancer: str | None, age: float | None = None
) -> Fact | None:
    if not cancer:
        return None
    from kemm.knowledge.ajcc import SUPPORTED_CANCERS, stage_from_tnm, stage_rule

    if cancer.lower() not in SUPPORTED_CANCERS:
        return None
    stage = stage_from_tnm(cancer, facts.value("t"), facts.value("n"), facts.value("m"), age)
    if stage is None:
        return None
    if (
        facts.m is None
        and not stage.startswith("IV")
        and any(_distant_metastasis(u.text, cancer) for u in units)
    ):
        return None  # M1 by a metastasis in another part, which the TNM read does not give
    spans = [f for f in (facts.t, facts.n, facts.m) if f is not None]
    source = "; ".join(dict.fromkeys(f.source for f in spans))
    rule = stage_rule(cancer, [str(f.value) for f in spans], stage, age)
    return Fact(stage, min(f.start for f in spans), max(f.end for f in spans), source, True, rule)


def _derive_tnm(
    facts: ReportFacts,
    units: list[Unit],
    cancer: str | None,
    whole: list[Unit],
    others: list[Unit],
) -> None:
    """T and N from the findings that define them, where the report states no category (a
    stated category always wins over a derived one). ``whole``: the report's whole text, read
    only for therapy before the resection (ypT)."""
    from kemm.knowledge.ajcc import SUPPORTED_CANCERS

    if facts.t is None:
        found = derive_t(units, facts.size_cm, cancer, whole, others)
        if found is not None:
            facts.t = Fact(found.value, found.start, found.end, found.source, True, found.rule)
    if facts.n is None:
        staged = (cancer or "").lower() in SUPPORTED_CANCERS
        found = derive_n(units, facts.nodes_positive, facts.nodes_examined, cancer, staged)
        if found is not None:
            facts.n = Fact(found.value, found.start, found.end, found.source, True, found.rule)
