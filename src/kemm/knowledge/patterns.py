"""Report vocabulary: the regex families that more than one reader of pathology text uses.

The readers are the token layer (:mod:`kemm.knowledge.facts`, for grounding and the audit), the
report-fact rules (:mod:`kemm.knowledge.report_facts`) and the validator of LLM fills
(:mod:`kemm.knowledge.facts_llm`). Each family has its one home here; a reader that needs a
wider variant builds it from the family's words instead of keeping a copy. Every pattern here is
read by the report-fact rules: a change to one changes ``kemm knowledge facts`` output.
"""

from __future__ import annotations

import re

__all__ = [
    "ABSENT_BEFORE_RE",
    "ABSENT_HEAD_RE",
    "ABSENT_WORDS",
    "DIFFERENTIATION_LEVEL",
    "DIFFERENTIATION_RE",
    "DIFFERENTIATION_WORDS",
    "GENERIC_HISTOLOGY",
    "IN_SITU_RE",
    "ISOLATED_CELLS_RE",
    "LVI_LABEL",
    "MARGIN_CALL_RE",
    "MARGIN_MENTION_RE",
    "MARGIN_NEGATIVE_RE",
    "MARGIN_POSITIVE_RE",
    "MARGIN_WORD_RE",
    "NEGATED_BEFORE_RE",
    "NEGATED_FINDING_RE",
    "NHG_RE",
    "NODE_NEGATIVE_WORDS_RE",
    "NODE_POSITIVE_WORDS_RE",
    "NODE_TUMOUR",
    "NODE_WORD",
    "NOT_STATED_RE",
    "OCR_DIGITS",
    "OPEN_FINDING",
    "PNI_LABEL",
    "PRECURSOR_WORDS",
    "PRESENT_BEFORE_RE",
    "PRESENT_HEAD_RE",
    "PRESENT_WORDS",
    "SIZE_VALUE_RE",
    "STATION_BEFORE_RE",
    "TUMOUR_NOUN",
    "UNINVOLVED_RE",
    "differentiation_grade",
    "names_node_tumour",
    "size_cm",
]

NOT_STATED_RE = re.compile(
    r"not\s+(?:specified|applicable|assessed|assessable|evaluable|evaluated|reported|"
    r"submitted|determined|stated)|cannot\s+be\s+(?:assessed|determined|evaluated)|"
    r"indeterminate|unknown|n/?a\b|equivocal",
    re.I,
)
"""A field written but not stated ("not specified", "cannot be assessed"): never absent."""

OPEN_FINDING = (
    r"cannot\s+be\s+(?:excluded|ruled\s+out|assessed|evaluated)|can\s*not\s+be\s+excluded|"
    r"not\s+(?:be\s+)?(?:excluded|ruled\s+out)|indeterminate|equivocal|suspicious|questionable|"
    r"\bpossible\b"
)
"""A finding the report leaves open ("suspicious for", "cannot be excluded", "possible"):
neither stated present nor absent."""

OCR_DIGITS = {"l": "1", "I": "1", "i": "1", "O": "0", "o": "0"}
"""Letters OCR reads for the digits of a TNM category (``pTl``, ``pNO``)."""

# ----------------------------------------------------------------------------------------------
# Grade

IN_SITU_RE = re.compile(
    r"in[\s-]situ|\bdcis\b|\blcis\b|\bpin\b|dysplasia|intraepithelial|atypical\s+hyperplasia|"
    r"\bain\b|\bcin\b|\bvin\b",
    re.I,
)
"""A precursor lesion: a grade on its line is the lesion's, not the invasive tumour's."""

PRECURSOR_WORDS = (
    r"dysplasia|pin|squamous\s+intra|intraepithelial|ductal\s+carcinoma\s+in\s+situ|dcis|"
    r"in\s+situ|panin|cin|ain|vin"
)
"""What "high grade" / "low grade" qualify when they grade a precursor lesion."""

DIFFERENTIATION_LEVEL = {"well": 1, "moderately": 2, "moderate": 2, "poorly": 3, "poor": 3, "un": 4}
"""Differentiation words and the grade each states (undifferentiated: the top of the scale)."""

DIFFERENTIATION_WORDS = "|".join(DIFFERENTIATION_LEVEL)
DIFFERENTIATION_RE = re.compile(
    r"\b(?P<w>" + DIFFERENTIATION_WORDS + r")[ -]?(?:to[ -](?P<w2>moderately|poorly)[ -]?)?"
    r"differen\w{0,3}ated\b",
    re.I,
)
"""A differentiation statement, ranges and OCR slips included ("well to moderately
differentiated", "poorly differenciated")."""


def differentiation_grade(match: re.Match[str], scale: int) -> int:
    """The grade a :data:`DIFFERENTIATION_RE` match states on a 3- or 4-tier ``scale``: the
    less differentiated end of a range; undifferentiated is the top grade."""
    words = [w for w in (match.group("w"), match.group("w2")) if w]
    return min(max(DIFFERENTIATION_LEVEL[w.lower()] for w in words), scale)


NHG_RE = re.compile(r"\b(?:NHG|SBR|MBR|BRE)\s*(?:grade\s*)?(?P<g>[1-3]|I{1,3})\b", re.I)
"""A Nottingham grade written by its system's acronym (``NHG2``, ``SBR grade III``)."""

# ----------------------------------------------------------------------------------------------
# Lymph nodes, size, histology

NODE_WORD = r"(?:lymph\s*nodes?|nodes?|\bLNs?\b|sentinel)"
NODE_POSITIVE_WORDS_RE = re.compile(
    r"positive|metasta|involved|carcinoma\s+(?:in|present)|tumou?r\s+(?:in|present)|\bpos\b", re.I
)
NODE_NEGATIVE_WORDS_RE = re.compile(
    r"negative|\bno\s+(?:evidence|tumou?r|carcinoma|malignan|metasta)|free\s+of|benign|reactive|"
    r"uninvolved",
    re.I,
)
"""What the counted nodes hold: tumour (positive words) or none (negative words)."""
# The tumour a node holds (not a benign "-oma": granuloma, hemangioma; not a lymphoma, which is
# no metastasis of the cohort's cancer). "arcinoma": OCR cuts a line's first letter ("ARCINOMA
# IN ONE (1) OF SIX (6) LYMPH NODES").
NODE_TUMOUR = (
    r"\w*arcinoma|\w*sarcoma|melanoma|mesothelioma|seminoma|carcinoid|tumou?r|neoplasm|"
    r"malignan\w*|metasta\w*|cancer"
)
NEGATED_FINDING_RE = re.compile(
    # "no metastatic carcinoma", "negative for squamous cell carcinoma", "without adenocarcinoma"
    r"\b(?:no|without|negative\s+for|free\s+of|not)\s+(?:(?:evidence|signs?)\s+of\s+)?"
    r"(?:(?!extension|extranodal|extracapsular|spread|extra)[a-z-]+\s+){0,3}?"
    r"(?:" + NODE_TUMOUR + r"|involve\w*|disease)\b"
    r"(?:\s+(?:[a-z-]+\s+){0,3}?(?:\w*carcinoma|tumou?r|disease|neoplasm|malignancy|cells?|"
    r"involvement)\b)?"
    # "carcinoma is absent", "metastatic melanoma not identified", "tumor not seen"
    r"|\b(?:metasta\w*\s+)?(?:" + NODE_TUMOUR + r"|disease)\s+(?:(?:is|are|was|were)\s+)?"
    r"(?:not\s+(?:identified|seen|present|found|detected|noted)|absent)\b"
    r"|\buninvolved\b",
    re.I,
)
"""A finding said to be absent ("no metastatic carcinoma", "negative for metastatic squamous
cell carcinoma")."""


def names_node_tumour(text: str) -> bool:
    """True when ``text`` says nodes hold tumour. A positive word inside a negated finding
    counts only while the line still names a tumour outside it: "SEEN IN 10 OF 10 LYMPH
    NODES. NO METASTATIC CARCINOMA" names none; "Melanoma identified in 1 of 2 lymph nodes;
    the other node is negative for metastatic melanoma" does."""
    kept = NEGATED_FINDING_RE.sub(" ", text)
    if NODE_POSITIVE_WORDS_RE.search(kept):
        return True
    # isolated tumour cells leave a node negative (pN0(i+)): they name no tumour here
    kept = ISOLATED_CELLS_RE.sub(" ", kept)
    return bool(NODE_POSITIVE_WORDS_RE.search(text) and _NODE_TUMOUR_RE.search(kept))


STATION_BEFORE_RE = re.compile(r"(?:level|station|stations|\b[RL]\s*-?|#|\bno\.?|\bN)\s*$", re.I)
"""What comes before a lymph-node station's number ("level 10", "R-4", "station 7"): no count."""

SIZE_VALUE_RE = re.compile(
    r"(?P<a>\d{1,3}(?:[.,]\d{1,2})?)\s*(?:(?:x|×|\*)\s*(?P<b>\d{1,3}(?:[.,]\d{1,2})?)\s*)?"
    r"(?:(?:x|×|\*)\s*(?P<c>\d{1,3}(?:[.,]\d{1,2})?)\s*)?(?P<unit>cm|mm|em|crn|an)\b",
    re.I,
)
"""A size in cm or mm, one to three dimensions (``4.5 x 3 x 2 cm``; OCR ``em``, ``crn``)."""


def size_cm(match: re.Match[str]) -> float:
    """The greatest dimension of a :data:`SIZE_VALUE_RE` match, in cm."""
    values = [float(v.replace(",", ".")) for v in match.group("a", "b", "c") if v]
    value = max(values)
    if match.group("unit").lower() == "mm":
        value /= 10
    return value


TUMOUR_NOUN = (
    r"carcinoma|adenocarcinoma|carcinosarcoma|sarcoma|neoplasm|tumou?r|mesothelioma|"
    r"lymphoma|blastoma|melanoma|glioma|glioblastoma|astrocytoma|seminoma|leiomyosarcoma|"
    r"liposarcoma|oligodendroglioma|oligoastrocytoma|cholangiocarcinoma|mesothelioma"
)
"""The noun that makes a phrase a histologic type."""
ISOLATED_CELLS_RE = re.compile(
    r"isolated\s+(?:[a-z-]+\s+){0,2}?(?:tumou?r|carcinoma|cancer|melanoma)[\s-]+cells?|\bITCs?\b",
    re.I,
)
"""Isolated tumour cells in a node: N0(i+), not a positive node."""
_NODE_TUMOUR_RE = re.compile(NODE_TUMOUR, re.I)

GENERIC_HISTOLOGY = {"carcinoma", "neoplasm", "tumor", "tumour", "cell carcinoma", "type carcinoma"}
"""Phrases too generic to be a histologic type."""

NEGATED_BEFORE_RE = re.compile(
    r"\b(?:no|negative\s+for|free\s+of|without|not)\b[^.;:]{0,30}$", re.I
)
"""A negation just before a tumour mention ("no residual carcinoma")."""

# ----------------------------------------------------------------------------------------------
# Margins

MARGIN_MENTION_RE = re.compile(r"margin|\bR[012]\b", re.I)
MARGIN_CALL_RE = re.compile(r"\b(?:un)?involved|free|negative|positive", re.I)
MARGIN_WORD_RE = re.compile(r"margins?\b", re.I)
MARGIN_NEGATIVE_RE = re.compile(
    r"(?:negative|uninvolved|free|clear|not\s+involved|no\s+(?:tumou?r|carcinoma|malignancy|"
    r"neoplasm|invasive)|without\s+(?:tumou?r|carcinoma)|\bR0\b|widely\s+clear)",
    re.I,
)
MARGIN_POSITIVE_RE = re.compile(
    r"(?:positive|involved|(?:tumou?r|carcinoma)\s+(?:is\s+)?(?:present\s+)?at|extends?\s+to|"
    r"transected|\bR[12]\b)",
    re.I,
)
UNINVOLVED_RE = re.compile(r"\b(?:un|not\s+)involved", re.I)
"""Margin status: a mention, a word that states a status at all (``CALL``: it outweighs "not
specified" nearby), the negative and positive words, and "uninvolved" (which holds the positive
word "involved")."""

# ----------------------------------------------------------------------------------------------
# Lymphovascular and perineural invasion

LVI_LABEL = (
    r"lympho?[- ]?vascular(?:\s+(?:space\s+)?invasion)?|lymph[- ]vascular|angiolymphatic|"
    r"lymphatic(?:\s*\(small\s+vessel\))?\s+invasion|vascular\s+invasion|\bLVI\b|"
    r"small\s+vessel\s+invasion"
)
PNI_LABEL = r"perineural(?:\s+invasion)?|\bPNI\b"
ABSENT_WORDS = r"absent|not\s+(?:identified|seen|present)|none|negative|no\b"
PRESENT_WORDS = r"present|identified|seen|positive|yes|noted|extensive|focal"
ABSENT_HEAD_RE = re.compile(r"(?:" + ABSENT_WORDS + r")", re.I)
PRESENT_HEAD_RE = re.compile(r"(?:" + PRESENT_WORDS + r"|involv|is\s+present|are\s+present)", re.I)
ABSENT_BEFORE_RE = re.compile(
    r"\b(?:no|negative\s+for|without|free\s+of|absence\s+of)\b[^.;:]{0,30}$", re.I
)
PRESENT_BEFORE_RE = re.compile(r"\b(?:with|shows?|showing|demonstrat\w*|focal|extensive)\s+$", re.I)
"""Invasion findings: the labels, the words after a label that say absent / present (``_HEAD``:
matched where the value starts), and the words before it (``no lymphovascular invasion``,
``shows lymphovascular invasion``)."""
