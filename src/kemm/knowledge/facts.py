"""Checkable facts in pathology text: numbers, TNM categories, stage groups, grades, receptor calls.

The token-level layer under the report-fact record (:mod:`kemm.knowledge.report_facts` uses
:func:`receptor_calls`, :func:`roman_to_int` and :func:`to_roman`), shared by the grounding check
(to compare a statement's facts with its source) and the audit scorer. Words it shares with the
report-fact rules (differentiation, precursor lesions, Nottingham acronyms) come from
:mod:`kemm.knowledge.patterns`. Everything here is pure regex logic, tolerant of common OCR
confusions (``pTla`` for ``pT1a``, ``Gll`` for ``GII``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kemm.knowledge.patterns import DIFFERENTIATION_WORDS, NHG_RE, PRECURSOR_WORDS

__all__ = [
    "RECEPTOR_MARKERS",
    "Facts",
    "differentiation_terms",
    "extract_facts",
    "grade_values",
    "join_spaced_tnm",
    "normalise_number_words",
    "numbers",
    "receptor_calls",
    "roman_to_int",
    "stage_groups",
    "tnm_categories",
    "to_roman",
]

_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}
_ROMAN_OF = {v: k for k, v in _ROMAN.items()}

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
}  # fmt: skip
_NUMBER_WORD_RE = re.compile(
    r"\b(twenty|thirty|forty|fifty)[- ](one|two|three|four|five|six|seven|eight|nine)\b|\b("
    + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
    + r")\b",
    re.IGNORECASE,
)


def roman_to_int(token: str) -> int | None:
    """``"III"`` -> 3, ``"3"`` -> 3; OCR ``l``/``1`` confusions in romans tolerated."""
    token = token.strip().upper()
    if token.isdigit():
        return int(token)
    token = token.replace("L", "I").replace("1", "I")
    return _ROMAN.get(token)


def to_roman(rank: int) -> str:
    """``3`` -> ``"III"`` (stage groups and grades 1..4)."""
    return _ROMAN_OF[rank]


def normalise_number_words(text: str) -> str:
    """Replace number words by digits: ``"two of seventeen"`` -> ``"2 of 17"``."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return str(_NUMBER_WORDS[m.group(1).lower()] + _NUMBER_WORDS[m.group(2).lower()])
        return str(_NUMBER_WORDS[m.group(3).lower()])

    return _NUMBER_WORD_RE.sub(repl, text)


# --------------------------------------------------------------------------------------------
# Numbers
_NUM_RE = re.compile(r"(?<![A-Za-z\d.])(?<![A-Za-z]-)(\d+(?:\.\d+)?)(?![A-Za-z]*\d)(?!\s*[pq]\b)")
_ANY_NUM_RE = re.compile(r"\d+(?:\.\d+)?")


def numbers(text: str, *, liberal: bool = False) -> set[float]:
    """Numeric values written in ``text`` (number words included).

    Digits inside alphanumeric codes (``HER2``, ``Ki-67``, ``pT2``, ``CK20``) are ignored unless
    ``liberal`` (used for the source side, so a statement number is accepted if it appears
    anywhere in the source, and OCR splits such as ``3. 5`` are read as ``3.5`` too).
    """
    text = normalise_number_words(text)
    values: set[float] = set()
    if liberal:
        for m in _ANY_NUM_RE.finditer(text):
            values.add(float(m.group(0)))
        for m in re.finditer(r"(\d+)\.\s(\d+)", text):
            values.add(float(f"{m.group(1)}.{m.group(2)}"))
        return values
    for m in _NUM_RE.finditer(text):
        values.add(float(m.group(1)))
    return values


# --------------------------------------------------------------------------------------------
# TNM and stage groups
_TNM_PREFIX = r"(?:y?p|y|c|r|a)?"
_TNM_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<prefix>" + _TNM_PREFIX + r")(?P<cat>[TNM])" + r"(?P<value>is|[0-4xX]|[lI]"
    r"(?=[a-d\s,;.)]|$))(?P<sub>(?:[a-d](?:\d)?|mi)?)(?![A-Za-z0-9])",
)
# A TNM run: T followed by N/M (possibly glued: pT2N1a, T4bN1M0) or prefixed tokens (pT2, pN0).
_TNM_CONTEXT_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:y?p|y|c|r)(?:T|N|M)(?:is|[0-4xX]|[lI])"
    r"|(?<![A-Za-z0-9])T(?:is|[0-4xX])[a-d]?\s*[,/]?\s*N(?:[0-3xX])"
    r"|\b(?:primary\s+tumou?r|regional\s+lymph\s+nodes|distant\s+metastasis|tnm|ptnm|"
    r"pathologic(?:al)?\s+(?:tumou?r\s+)?stag(?:e|ing)|classified\s+as|staged?\s+as|"
    r"(?:pathologic(?:al)?|clinical)\s+[TNM])\b",
    re.IGNORECASE,
)


_SPACED_PREFIXED_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<pre>y?p|y|c|r)\s?(?P<cat>[TNM])\s+(?P<val>is|[0-4xX])"
    r"(?:\s?(?P<sub>[a-d])(?![A-Za-z0-9]))?(?![A-Za-z0-9])"
)
_SPACED_RUN_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<pre>y?p|c)?T\s?(?P<t>is|[0-4xX])(?P<ts>[a-d]?)[\s.,;]+"
    r"(?:y?p)?N\s?(?P<n>[0-3xX])(?P<ns>[a-c]?)(?:[\s.,;]+(?:y?p)?M\s?(?P<m>[01xX]))?(?![A-Za-z0-9])"
)
_OCR_ZERO_RE = re.compile(r"(?<![A-Za-z0-9])(?P<pre>y?p)(?P<cat>[NM])O(?=[\s,;.)/]|$)")


def join_spaced_tnm(text: str) -> str:
    """TNM written with OCR spaces, dots or letter O re-joined: ``pT 2`` -> ``pT2``,
    ``T 2. N 1. M X.`` -> ``T2 N1 MX.``, ``pNO`` -> ``pN0``."""
    text = _OCR_ZERO_RE.sub(lambda m: f"{m.group('pre')}{m.group('cat')}0", text)
    text = _SPACED_PREFIXED_RE.sub(
        lambda m: f"{m.group('pre')}{m.group('cat')}{m.group('val')}{m.group('sub') or ''}", text
    )

    def run(m: re.Match[str]) -> str:
        out = f"{m.group('pre') or ''}T{m.group('t')}{m.group('ts')} N{m.group('n')}{m.group('ns')}"
        return out + (f" M{m.group('m')}" if m.group("m") else "")

    return _SPACED_RUN_RE.sub(run, text)


def _norm_tnm_value(value: str) -> str:
    value = value.upper()
    return "1" if value in ("L", "I") else value


def tnm_categories(text: str, *, strict: bool = True) -> set[str]:
    """TNM categories stated in ``text``, normalised without prefix: ``{"T2", "N1A", "MX"}``.

    Prefixed tokens (``pT2``, ``ypN0``) always count; unprefixed ones count when part of a run
    (``T2 N1 MX``, ``T4bN1M0``) or near a staging keyword, so ``T1-weighted`` is not a stage.
    ``strict=False`` (source side of grounding) accepts every well-formed token.
    """
    out: set[str] = set()
    text = join_spaced_tnm(text)
    text = re.sub(
        r"(?<![A-Za-z])([TNM])\s+stage\s*[:\-]?\s*(is|[0-4xX])([a-d]?)(?![A-Za-z0-9])",
        r"\1\2\3",
        text,
        flags=re.IGNORECASE,
    )
    glued = re.compile(
        r"(?<![A-Za-z0-9])(?:y?p|y|c|r)?T(is|[0-4xX]|[lI])([a-d]?\d?)"
        r"(?:\s*,?\s*(?:y?p|c)?N([0-3xX])([a-c]?))?(?:\s*,?\s*(?:y?p|c)?M([01xX])([a-c]?))?"
        r"(?![A-Za-z0-9])"
    )
    for m in glued.finditer(text):
        start = max(0, m.start() - 60)
        window = text[start : m.end() + 60]
        prefixed = bool(re.match(r"(?:y?p|y|c|r)T", m.group(0)))
        has_nm = bool(m.group(3) or m.group(5))
        if strict and not (prefixed or has_nm or _TNM_CONTEXT_RE.search(window)):
            continue
        out.add("T" + _norm_tnm_value(m.group(1)) + m.group(2).upper())
        if m.group(3):
            out.add("N" + _norm_tnm_value(m.group(3)) + m.group(4).upper())
        if m.group(5):
            out.add("M" + _norm_tnm_value(m.group(5)) + m.group(6).upper())
    for m in _TNM_RE.finditer(text):
        if m.group("cat") == "T":
            continue  # handled above
        prefixed = bool(m.group("prefix"))
        window = text[max(0, m.start() - 60) : m.end() + 60]
        if strict and not (prefixed or _TNM_CONTEXT_RE.search(window)):
            continue
        sub = m.group("sub")
        out.add(m.group("cat") + _norm_tnm_value(m.group("value")) + sub.upper())
    return out


_STAGE_GROUP_RE = re.compile(
    r"(?<![A-Za-z])(?<![TNMtnm]\s)(?P<pre>(?:ishak|dukes|astler|clark|breslow|fibrosis|figo)\s+)?stage"
    r"(?:\s+group(?:ing)?)?\s*[:\-]?\s*(?:is\s+)?"
    r"(?P<roman>IV|I{1,3}|[0-4])(?P<sub>[ABC][1-3]?)?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_FIGO_STAGE_RE = re.compile(
    r"\bfigo\s*(?:stage\s*)?[:\-]?\s*(?P<roman>IV|I{1,3})(?P<sub>[ABC][1-3]?)?(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def stage_groups(text: str) -> set[str]:
    """Stage groups (AJCC/FIGO) in ``text``, arabic-normalised: ``"stage IIB"`` -> ``{"2B"}``.

    Fibrosis stages (Ishak), Dukes, Astler-Coller, Clark and Breslow are not stage groups.
    """
    out: set[str] = set()
    for rx in (_STAGE_GROUP_RE, _FIGO_STAGE_RE):
        for m in rx.finditer(text):
            if m.groupdict().get("pre") and not m.group("pre").lower().startswith("figo"):
                continue
            roman = m.group("roman").upper()
            value = roman_to_int(roman)
            if value is None:
                continue
            out.add(f"{value}{(m.group('sub') or '').upper()}")
    return out


# --------------------------------------------------------------------------------------------
# Grade
_GRADE_TOKEN = r"(?:G\s*)?(?P<g>[1-4]|IV|I{1,3}|[lI]{1,3}|X)(?:\s*(?:/|of|out\s+of)\s*(?P<of>[2-4]|IV|I{2,3}))?"
_GRADE_RE = re.compile(
    r"\bgrade\.?\s*(?:\([^)]{0,40}\)\s*)?[:\-]?\s*(?:is\s+)?" + _GRADE_TOKEN + r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_G_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])G(?P<g>[1-4]|IV|I{1,3}|[lI]{1,3})(?![A-Za-z0-9])")
_SCORE_RE = re.compile(
    r"(?<![\d+])(?P<a>[1-3])\s*\+\s*(?P<b>[1-3])\s*\+\s*(?P<c>[1-3])(?![\d+])"
    r"|\b(?:total\s+)?(?:nottingham\s+|sbr\s+|bloom[- ]richardson\s+)?score\s*(?:of\s*)?[:=]?\s*"
    r"(?P<s>[3-9])\s*/\s*9\b",
    re.IGNORECASE,
)
_GLEASON_RE = re.compile(
    r"gleason\s*(?:score|grade|sum)?\s*[:=]?\s*"
    r"(?:(?P<p>[1-5])\s*\+\s*(?P<q>[1-5])(?:\s*=\s*(?P<s1>\d{1,2}))?"
    r"|(?P<s2>\d{1,2})(?:\s*/\s*10)?)",
    re.IGNORECASE,
)
# Stricter than patterns.DIFFERENTIATION_RE (the OCR-tolerant "differen\w{0,3}ated" of the
# fact rules): the token layer reads "differentiated"/"differentiation" spelt out only.
_DIFF_RE = re.compile(
    r"\b(" + DIFFERENTIATION_WORDS + r")[ -]?(?:to[ -](?:moderately|poorly)[ -]?)?"
    r"differentiat(?:ed|ion)\b",
    re.IGNORECASE,
)
_HILO_RE = re.compile(
    r"\b(high|low|intermediate)[ -]grade\b"
    r"(?!\s+(?:" + PRECURSOR_WORDS + r"|prostatic|cervical|comedo))",
    re.IGNORECASE,
)


def _grade_int(token: str) -> int | None:
    token = token.strip().upper()
    if token == "X":
        return None
    return roman_to_int(token)


def grade_values(text: str) -> set[str]:
    """Tumour grades in ``text`` as comparable tokens.

    Numeric grades ``"G1"``..``"G4"`` (``grade III/IV``, ``G2``, ``Fuhrman grade 3``, ``NHG3``,
    Nottingham score ``3+3+3`` -> ``G3``), Gleason sums ``"GLEASON7"``, and qualitative
    ``"HIGH"``/``"LOW"``/``"INTERMEDIATE"``.
    """
    out: set[str] = set()
    for rx in (_GRADE_RE, _G_TOKEN_RE, NHG_RE):
        for m in rx.finditer(text):
            value = _grade_int(m.group("g"))
            if value is not None and 1 <= value <= 4:
                out.add(f"G{value}")
    for m in _SCORE_RE.finditer(text):
        total = int(m.group("s")) if m.group("s") else sum(int(m.group(k)) for k in "abc")
        out.add("G1" if total <= 5 else "G2" if total <= 7 else "G3")
    for m in _GLEASON_RE.finditer(text):
        if m.group("p"):
            total = int(m.group("s1") or int(m.group("p")) + int(m.group("q")))
        else:
            total = int(m.group("s2"))
        if 2 <= total <= 10:
            out.add(f"GLEASON{total}")
    for m in _HILO_RE.finditer(text):
        out.add(m.group(1).upper())
    return out


def differentiation_terms(text: str) -> set[str]:
    """Differentiation words: ``{"WELL", "MODERATELY", "POORLY", "UN"}``."""
    out = set()
    for m in _DIFF_RE.finditer(text):
        word = m.group(1).lower()
        out.add({"moderate": "MODERATELY", "poor": "POORLY"}.get(word, word.upper()))
        second = re.search(r"to[ -](moderately|poorly)", m.group(0), re.IGNORECASE)
        if second:
            out.add(second.group(1).upper())
    return out


# --------------------------------------------------------------------------------------------
# Receptors / IHC calls
RECEPTOR_MARKERS = {
    "ER": r"(?-i:\bER\b)|estrogen\s+receptors?|oestrogen\s+receptors?",
    "PR": r"(?-i:\bPR\b)|\bPgR\b|progesterone\s+receptors?",
    "HER2": r"\bHER[- ]?2(?:[-/ ]?neu)?\b|\bc-?erb-?B-?2\b|\bERBB2\b",
    "P16": r"\bp16\b",
    "P53": r"\bp53\b",
    "IDH": r"\bIDH-?[12]?\b",
    "MGMT": r"\bMGMT\b",
    "EGFR": r"\bEGFR\b",
    "ALK": r"\bALK\b",
    "PDL1": r"\bPD-?L1\b",
    "MMR": r"\bmismatch\s+repair\b|\bMMR\b",
    "MSI": r"\bmicrosatellite\b|\bMSI\b",
    "TTF1": r"\bTTF-?1\b",
}
_POLARITY = (
    r"(?P<pol>not\s+amplified|non-?amplified|unmethylated|not\s+methylated|wild[- ]type|"
    r"no\s+loss|intact|proficient|deficient|stable|high|"
    r"negative|positive|neg\b|pos\b|amplified|methylated|mutant|mutated|equivocal|"
    r"overexpress\w*|3\+|2\+|1\+|0\b|\+(?![\w+])|-(?![\w-]))"
)
_POL_NORMAL = {
    "not amplified": "NEG", "non-amplified": "NEG", "nonamplified": "NEG",
    "unmethylated": "NEG", "not methylated": "NEG", "wild-type": "NEG", "wild type": "NEG",
    "no loss": "NEG", "intact": "NEG", "proficient": "NEG", "stable": "NEG",
    "negative": "NEG", "neg": "NEG", "0": "NEG", "1+": "NEG", "-": "NEG",
    "positive": "POS", "pos": "POS", "amplified": "POS", "methylated": "POS", "mutant": "POS",
    "mutated": "POS", "3+": "POS", "+": "POS", "deficient": "POS", "high": "POS",
    "equivocal": "EQUIVOCAL", "2+": "EQUIVOCAL",
}  # fmt: skip


def _pol(word: str) -> str:
    word = re.sub(r"\s+", " ", word.lower())
    if word.startswith("overexpress"):
        return "POS"
    return _POL_NORMAL.get(word, "")


def receptor_calls(text: str) -> set[tuple[str, str]]:
    """(marker, polarity) calls: ``"ER positive, HER2 not amplified"`` ->
    ``{("ER", "POS"), ("HER2", "NEG")}``. Polarity words are read within a short window after the
    marker (``ER: positive (95%)``) or just before it (``negative for estrogen receptor``)."""
    out: set[tuple[str, str]] = set()
    for marker, pattern in RECEPTOR_MARKERS.items():
        for m in re.finditer(pattern, text, re.IGNORECASE):
            after = text[m.end() : m.end() + 45]
            # stop at the next marker or sentence end
            cut = re.search(
                r"[.;]\s|\band\b\s+(?:"
                + "|".join(v for k, v in RECEPTOR_MARKERS.items() if k != marker)
                + ")",
                after,
                re.IGNORECASE,
            )
            if cut:
                after = after[: cut.start()]
            pm = re.search(
                r"^\s*(?:\([^)]{0,20}\)\s*)?(?:\)\s*)?(?:status|proteins?|receptors?|gene|immunostain|"
                r"expression|by\s+ihc|ihc|fish|test(?:ing)?|results?|promoter(?:\s+methylation)?|"
                r"amplification|is|are|was|were|[:=]|\s)*" + _POLARITY,
                after,
                re.IGNORECASE,
            )
            if pm and _pol(pm.group("pol")):
                out.add((marker, _pol(pm.group("pol"))))
                continue
            before = text[max(0, m.start() - 30) : m.start()]
            bm = re.search(r"(negative|positive)\s+(?:for\s+)?(?:the\s+)?$", before, re.IGNORECASE)
            if bm:
                out.add((marker, _pol(bm.group(1))))
    return out


# --------------------------------------------------------------------------------------------
@dataclass
class Facts:
    """All checkable facts of one text."""

    numbers: set[float] = field(default_factory=set)
    tnm: set[str] = field(default_factory=set)
    stages: set[str] = field(default_factory=set)
    grades: set[str] = field(default_factory=set)
    differentiation: set[str] = field(default_factory=set)
    receptors: set[tuple[str, str]] = field(default_factory=set)


def _strip_codes(text: str) -> str:
    """Remove staging/grade tokens (and an "AJCC 7th edition" reference) so their digits are
    not also read as free numbers."""
    text = re.sub(r"\b\d{1,2}(?:st|nd|rd|th)\s+ed(?:ition|\.)", " edition ", join_spaced_tnm(text))
    text = re.sub(
        r"(?<![A-Za-z0-9])(?:y?p|y|c|r)?[TNM](?:is|[0-4xX])[a-d]?\d?(?![A-Za-z0-9])", " ", text
    )
    text = _GRADE_RE.sub(" grade ", text)
    text = _G_TOKEN_RE.sub(" ", text)
    text = _STAGE_GROUP_RE.sub(" stage ", text)
    return text


def extract_facts(text: str, *, source: bool = False) -> Facts:
    """Facts of a statement (``source=False``) or of a source report (``source=True``)."""
    return Facts(
        numbers=numbers(text, liberal=True) if source else numbers(_strip_codes(text)),
        tnm=tnm_categories(text, strict=not source),
        stages=stage_groups(text),
        grades=grade_values(text),
        differentiation=differentiation_terms(text),
        receptors=receptor_calls(text),
    )
