"""LLM-free extraction of prognostic statements from pathology reports.

Rules for the same fields the LLM prompt asks for: histologic type, grade (Fuhrman / ISUP /
Nottingham / FIGO / WHO / Gleason / differentiation), pathologic T/N/M and AJCC stage, lymph
nodes (positive / examined), margins, lymphovascular and perineural invasion, tumour size and
receptor / IHC status. Every statement is built from text found in the report, so it is grounded
by construction; the grounding check runs on it anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kemm.knowledge.clean import clean_report
from kemm.knowledge.facts import normalise_number_words, roman_to_int
from kemm.knowledge.sections import SECTION_PRIORITY, split_sections

__all__ = ["ReportFields", "extract_fields", "refine_extractive"]

_TUMOUR_NOUNS = (
    r"carcinoma|adenocarcinoma|carcinosarcoma|sarcoma|melanoma|glioblastoma|gliosarcoma|"
    r"oligodendroglioma|oligoastrocytoma|astrocytoma|glioma|mesothelioma|lymphoma|blastoma|"
    r"seminoma|neoplasm|tumou?r|cholangiocarcinoma|liposarcoma|leiomyosarcoma|meningioma"
)
_TYPE_MODIFIERS = (
    r"invasive|infiltrating|ductal|lobular|mucinous|papillary|clear|cell|renal|squamous|"
    r"urothelial|transitional|endometrioid|serous|small|large|non-small|adenosquamous|"
    r"hepatocellular|signet|ring|tubular|medullary|micropapillary|metaplastic|conventional|"
    r"chromophobe|sarcomatoid|keratinizing|non-keratinizing|nonkeratinizing|basaloid|"
    r"acinar|solid|lepidic|anaplastic|follicular|mixed|diffuse|intestinal|epithelioid|"
    r"fibrillary|gemistocytic|pleomorphic|undifferentiated|neuroendocrine|high-grade|"
    r"low-grade|malignant|primary|dedifferentiated|adrenocortical|cortical|adrenal|"
    r"multiforme|colloid|poorly|moderately|well|differentiated|type|uterine|pelvis|"
    r"spindle|mucoepidermoid|bronchioloalveolar|oncocytic|nos|clear-cell|ovarian|lung|breast"
)
_TYPE_RE = re.compile(
    r"\b(?:(?:" + _TYPE_MODIFIERS + r")[\s,-]+){0,5}(?:" + _TUMOUR_NOUNS + r")\b"
    r"(?:\s*,\s*(?:clear\s+cell|papillary|chromophobe|conventional(?:\s*\(clear\s+cell\))?|"
    r"nos|not\s+otherwise\s+specified|endometrioid|serous|(?:[a-z-]+\s+)?type)(?:\s+type)?)?"
    r"(?:\s*\((?:clear\s+cell|conventional)[^)]{0,20}\))?",
    re.IGNORECASE,
)
_GENERIC_TYPES = {"carcinoma", "neoplasm", "tumor", "tumour", "malignant neoplasm", "cell"}
_NEGATED_BEFORE = re.compile(
    r"(?:\bno\b|\bnegative\s+for\b|\bfree\s+of\b|\bwithout\b|\bnot\b|\bfor\b|\bhistory\s+of\b|"
    r"\brule\s+out\b|\br/o\b|\bsuspicious\s+for\b)[^.;:]{0,25}$",
    re.IGNORECASE,
)


@dataclass
class ReportFields:
    """Fields found in one report; each value is the statement text for that field."""

    histologic_type: str | None = None
    grade: list[str] = field(default_factory=list)
    tnm: str | None = None
    stage_group: str | None = None
    lymph_nodes: str | None = None
    margins: str | None = None
    lvi: str | None = None
    pni: str | None = None
    size: str | None = None
    receptors: list[str] = field(default_factory=list)

    def statements(self) -> list[str]:
        """Statements in priority order."""
        out: list[str] = []
        if self.histologic_type:
            out.append(f"Histologic type: {self.histologic_type}.")
        out.extend(f"Tumour grade: {g}." for g in self.grade)
        if self.tnm:
            out.append(f"Pathologic TNM: {self.tnm}.")
        if self.stage_group:
            out.append(f"Pathologic stage: {self.stage_group}.")
        if self.lymph_nodes:
            out.append(f"Lymph nodes: {self.lymph_nodes}.")
        if self.margins:
            out.append(f"Surgical margins: {self.margins}.")
        if self.lvi:
            out.append(f"{self.lvi}.")
        if self.pni:
            out.append(f"Perineural invasion: {self.pni}.")
        if self.size:
            out.append(f"Tumour size: {self.size}.")
        out.extend(f"{r}." for r in self.receptors)
        return out


def _ordered_text(text: str) -> list[str]:
    """Sections in priority order (diagnosis and synoptic first), then the whole text."""
    sections = split_sections(text)
    rank = {name: i for i, name in enumerate(SECTION_PRIORITY)}
    ordered = sorted(sections, key=lambda s: (rank.get(s.name, len(rank)), s.start))
    # Clinical history states what was suspected, not what was found: search it last.
    rest = "\n".join(s.text for s in sections if s.name != "clinical")
    return [s.text for s in ordered if s.name != "clinical"] + [rest or text]


def _first(patterns: list[re.Pattern[str]], texts: list[str]) -> re.Match[str] | None:
    for text in texts:
        for rx in patterns:
            m = rx.search(text)
            if m:
                return m
    return None


def _windows(texts: list[str], keyword: str, before: int = 100, after: int = 140) -> list[str]:
    """Each text cut down to the merged windows around ``keyword`` matches (keeps regexes fast)."""
    rx = re.compile(keyword, re.IGNORECASE)
    out: list[str] = []
    for text in texts:
        spans: list[list[int]] = []
        for m in rx.finditer(text):
            start, end = max(0, m.start() - before), min(len(text), m.end() + after)
            if spans and start <= spans[-1][1]:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        out.append("\n".join(text[a:b] for a, b in spans))
    return out


def _clean_value(value: str) -> str:
    value = re.sub(r"\s+", " ", value).strip(" ,;:-.")
    return value


# --------------------------------------------------------------------------------------------
def _histologic_type(texts: list[str]) -> str | None:
    labelled = re.compile(
        r"histologic(?:al)?\s+(?:tumou?r\s+)?type(?:\s*/\s*subtype)?[ \t]*[:\-][ \t]*(?P<v>[^\n.;:]{4,90})",
        re.IGNORECASE,
    )
    for text in texts:
        m = labelled.search(text)
        if m and _TYPE_RE.search(m.group("v")):
            value = re.split(
                r",\s*(?=(?:histologic|grade|tumou?r\s+(?:size|site|extent)|margins?|lymph|see\b))",
                m.group("v"),
                flags=re.IGNORECASE,
            )[0]
            return _clean_value(value)
    best: str | None = None
    for text in texts:
        for m in _TYPE_RE.finditer(text):
            value = _clean_value(m.group(0))
            low = value.lower()
            if low in _GENERIC_TYPES or len(low) < 6:
                continue
            tail = text[m.end() : m.end() + 12].lower()
            if "in situ" in tail or "intraepithelial" in low:
                continue
            if _NEGATED_BEFORE.search(text[max(0, m.start() - 40) : m.start()]):
                continue
            if re.search(r"\b(tumou?r|neoplasm)$", low) and not re.search(
                r"(carcinoma|sarcoma|melanoma|blastoma|glioma|mesothelioma|lymphoma)", low
            ):
                continue
            # strip leading grade words: "poorly differentiated adenocarcinoma" keeps the words
            # (they are part of what the report says) but drops leading filler.
            value = re.sub(r"^(?:primary|malignant)\s+", "", value, flags=re.IGNORECASE)
            if best is None:
                best = value
                break
        if best:
            break
    return best


def _grade(texts: list[str]) -> list[str]:
    out: list[str] = []
    systems = [
        re.compile(
            r"(?:(?P<sys>fuhrman|isup|who/isup|who|figo|nottingham|elston|sbr|scarff[- ]bloom[- ]"
            r"richardson|bloom[- ]richardson|modified\s+bloom[- ]richardson|nsabp|nuclear|"
            r"histologic(?:al)?|architectural)[^.\n:]{0,25}?\bgrade|\bgrade)\.?\s*(?:\([^)]{0,40}\)\s*)?"
            r"[:\-]?\s*(?:is\s+)?(?:G\s*)?(?P<g>[1-4]|IV|I{1,3}|[lI]{2,3})(?:\s*(?:/|of|out\s+of)"
            r"\s*(?P<of>[2-4]|IV|I{2,3}))?(?![A-Za-z0-9])",
            re.IGNORECASE,
        ),
        re.compile(
            r"(?:(?:grade|differentiat\w*|p?T[0-4]\w*|\bL[01]|\bV[01]|\bR[01])[^.;]{0,30}?|\(\s*)"
            r"(?<![A-Za-z0-9])G(?P<g>[1-4]|IV|I{1,3})(?![A-Za-z0-9])"
            r"|(?<![A-Za-z0-9])G(?P<g2>[1-4]|IV|I{1,3})(?![A-Za-z0-9])(?=[^.;]{0,30}?"
            r"(?:differentiat|grade|\bp?T[0-4]))",
            re.IGNORECASE,
        ),
        re.compile(r"\b(?P<sys>NHG|SBR|MBR)\s*(?:grade\s*)?(?P<g>[1-3]|I{1,3})\b", re.IGNORECASE),
    ]
    m = _first(systems, _windows(texts, r"grade|\bG[1-4IVl]|NHG|SBR|MBR", 60, 60))
    if m:
        value = roman_to_int(m.groupdict().get("g") or m.groupdict().get("g2") or "")
        if value is not None and 1 <= value <= 4:
            system = (m.groupdict().get("sys") or "").strip()
            of = m.groupdict().get("of")
            of_txt = f" of {roman_to_int(of)}" if of and roman_to_int(of) else ""
            label = f"{system} grade" if system else "grade"
            label = label[0].upper() + label[1:]
            out.append(f"{label} {value}{of_txt}")
    score = _first(
        [
            re.compile(r"(?<![\d+])([1-3])\s*\+\s*([1-3])\s*\+\s*([1-3])(?![\d+])"),
            re.compile(r"\btotal\s+score\s*(?:of\s*)?[:=]?\s*([3-9])\s*/\s*9\b", re.IGNORECASE),
        ],
        texts,
    )
    if score and not out:
        total = int(score.group(1)) if score.lastindex == 1 else sum(map(int, score.groups()))
        grade = 1 if total <= 5 else 2 if total <= 7 else 3
        out.append(f"Nottingham score {score.group(0).strip()} (grade {grade})")
    gleason = _first(
        [
            re.compile(
                r"gleason\s*(?:score|grade|sum)?\s*[:=]?\s*(?:\d\s*\+\s*\d(?:\s*=\s*\d{1,2})?|"
                r"\d{1,2}(?:\s*/\s*10)?)",
                re.IGNORECASE,
            )
        ],
        texts,
    )
    if gleason:
        out.append(_clean_value(gleason.group(0)))
    diff = _first(
        [
            re.compile(
                r"\b(?:well|moderately|poorly|un)[ -]?(?:to[ -](?:moderately|poorly)[ -]?)?"
                r"differentiated\b",
                re.IGNORECASE,
            )
        ],
        texts,
    )
    if diff:
        out.append(_clean_value(diff.group(0)).lower())
    hilo = _first(
        [
            re.compile(
                r"\b(?:high|low)[ -]grade\b(?!\s+(?:dysplasia|pin|prostatic|intraepithelial|"
                r"ductal\s+carcinoma\s+in\s+situ|dcis|in\s+situ|comedo|panin|squamous\s+intra))",
                re.IGNORECASE,
            )
        ],
        texts,
    )
    if hilo and not out:
        out.append(_clean_value(hilo.group(0)).lower())
    return out[:3]


_TNM_TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<pre>y?p|y|c|r)?(?P<cat>[TNM])(?P<val>is|[0-4xX]|[lI](?=[a-d\s,;.)]|$))"
    r"(?P<sub>(?:[a-d]\d?|mi)?)(?:\s*\((?:sn|i[+-]|mol[+-]|m|\d+)\))?(?![A-Za-z0-9])"
)


_TNM_STAGE_LABEL_RE = re.compile(
    r"(?<![A-Za-z])([TNM])\s+stage\s*[:\-]?\s*(is|[0-4xX])([a-d]?)(?![A-Za-z0-9])", re.IGNORECASE
)


def _tnm(texts: list[str]) -> str | None:
    glued = re.compile(
        r"(?<![A-Za-z0-9])(?P<pre>y?p|y|c|r)?T(?:is|[0-4xX]|[lI])[a-d]?\d?"
        r"(?:\s*,?\s*(?:y?p|c)?N[0-3xX][a-c]?)?(?:\s*,?\s*(?:y?p|c)?M[01xX][a-c]?)?"
        r"(?![A-Za-z0-9])"
    )
    context = re.compile(
        r"primary\s+tumou?r|regional\s+lymph|distant\s+metast|tnm|stag(?:e|ing)|classified|"
        r"classification|pathologic",
        re.IGNORECASE,
    )
    for text in texts:
        text = _TNM_STAGE_LABEL_RE.sub(r"\1\2\3", text)
        parts: dict[str, str] = {}
        for m in _TNM_TOKEN_RE.finditer(text):
            window = text[max(0, m.start() - 80) : m.end() + 40]
            if not m.group("pre") and not (
                context.search(window)
                or re.match(r"T\w*\s*,?\s*N|N\w*\s*,?\s*M", text[m.start() : m.end() + 6])
                or re.search(r"\bN[0-3xX][a-c]?\s*,?\s*$", text[max(0, m.start() - 8) : m.start()])
            ):
                continue
            cat = m.group("cat")
            if cat in parts:
                continue
            val = m.group("val")
            val = "1" if val in ("l", "I") else val.upper() if val.lower() == "x" else val
            parts[cat] = f"{m.group('pre') or ''}{cat}{val}{m.group('sub')}"
        if "T" in parts or "N" in parts:
            return " ".join(parts[c] for c in "TNM" if c in parts)
        m = glued.search(text)
        if m and m.group("pre"):
            return m.group(0)
    return None


def _stage_group(texts: list[str]) -> str | None:
    rx = re.compile(
        r"(?<![A-Za-z])(?<![TNM]\s)(?P<pre>(?:ishak|dukes|astler|clark|breslow|fibrosis|modified)\s+)?"
        r"(?P<label>(?:ajcc\s+)?(?:pathologic(?:al)?\s+)?(?:tnm\s+|prognostic\s+)?stage"
        r"(?:\s+group(?:ing)?)?|figo\s+stage|figo)\s*[:\-]?\s*(?:is\s+)?"
        r"(?P<v>IV|I{1,3}|[1-4])(?P<sub>[ABC][1-3]?)?(?![A-Za-z0-9])(?!\s*-\s*\d)",
        re.IGNORECASE,
    )
    for text in texts:
        for m in rx.finditer(text):
            if m.group("pre"):
                continue
            if roman_to_int(m.group("v")) is None:
                continue
            if m.group("label").lower() == "figo" and m.group("v").isdigit():
                continue  # "FIGO 1-2", "FIGO 3": a FIGO grade, not a stage
            label = "FIGO stage" if "figo" in m.group("label").lower() else "stage"
            return f"{label} {m.group('v').upper()}{(m.group('sub') or '').upper()}"
    return None


def _lymph_nodes(texts: list[str]) -> str | None:
    node = r"(?:(?:regional|axillary|sentinel|pelvic|peri\w+|hilar|mediastinal|cervical|neck|" \
        r"para-?aortic|mesenteric|lymph|local)\s+){0,3}(?:lymph\s+)?nodes?"  # fmt: skip
    pos = r"(?:positive|involved|metasta\w*|with\s+(?:metasta\w*|tumou?r|carcinoma)|contain)"
    patterns = [
        # "2 of 17 lymph nodes are positive", "two of seventeen (2/17) lymph nodes positive"
        re.compile(
            r"(?P<p>\d{1,2})\s*(?:/|of|out\s+of)\s*(?P<n>\d{1,3})\s*(?:\(\s*\d+\s*/\s*\d+\s*\)\s*)?"
            r"(?:[a-z]+\s+){0,3}?" + node + r"[^.;]{0,40}?" + pos,
            re.IGNORECASE,
        ),
        # "lymph nodes: 2/17 positive", "metastatic carcinoma in 3 of 15 lymph nodes"
        re.compile(
            pos + r"[^.;]{0,40}?\b(?:in\s+)?(?P<p>\d{1,2})\s*(?:/|of|out\s+of)\s*(?P<n>\d{1,3})\s*"
            r"(?:[a-z]+\s+){0,3}?" + node,
            re.IGNORECASE,
        ),
        re.compile(
            node + r"[^.;]{0,60}?(?P<p>\d{1,2})\s*/\s*(?P<n>\d{1,3})(?!\s*(?:cm|mm|%))",
            re.IGNORECASE,
        ),
        # "(pN1 3/21)"
        re.compile(r"\bp?N[0-3][a-c]?\s*\(?\s*(?P<p>\d{1,2})\s*/\s*(?P<n>\d{1,3})\b"),
    ]
    normalised = _windows(
        [normalise_number_words(t) for t in texts], r"nodes?\b|\bp?N[0-3]", before=120, after=120
    )
    m = _first(patterns, normalised)
    if m and int(m.group("p")) <= int(m.group("n")):
        p, n = int(m.group("p")), int(m.group("n"))
        return f"{p} of {n} positive" if p else f"0 of {n} positive (negative)"
    examined = _first(
        [
            re.compile(
                r"(?:number\s+of\s+)?(?:lymph\s+)?nodes?\s+examined\s*[:\-]?\s*(?P<n>\d{1,3})",
                re.IGNORECASE,
            )
        ],
        normalised,
    )
    involved = _first(
        [
            re.compile(
                r"(?:number\s+of\s+)?(?:lymph\s+)?nodes?\s+(?:involved|positive)\s*[:\-]?\s*"
                r"(?P<p>\d{1,3})",
                re.IGNORECASE,
            )
        ],
        normalised,
    )
    if examined and involved and int(involved.group("p")) <= int(examined.group("n")):
        return f"{involved.group('p')} of {examined.group('n')} positive"
    negative = _first(
        [
            re.compile(
                r"\bno\s+(?:regional\s+)?(?:lymph\s+node|nodal)\s+metasta\w*|"
                r"(?P<n>\d{1,3})?\s*(?:[a-z]+\s+){0,2}lymph\s+nodes?[^.;]{0,25}?"
                r"(?:negative|free\s+of|no\s+evidence|without|uninvolved|benign)",
                re.IGNORECASE,
            )
        ],
        normalised,
    )
    if negative:
        n = negative.groupdict().get("n")
        return f"negative ({n} examined)" if n else "negative for metastasis"
    if examined:
        return f"{examined.group('n')} examined"
    return None


def _margins(texts: list[str]) -> str | None:
    polarity = (
        r"(?P<pol>uninvolved|not\s+involved|free|negative|clear|involved|positive|close|"
        r"present\s+at|extends?\s+to|extending\s+to)"
    )
    patterns = [
        re.compile(
            r"\bno\s+(?:invasive\s+)?(?P<pol>tumou?r|carcinoma|malignancy|neoplasm|neoplasia)\s+"
            r"(?:is\s+)?(?:seen|identified|present)?\s*(?:in|at)\s+(?:the\s+)?(?:[a-z]+\s+){0,3}"
            r"margins?",
            re.IGNORECASE,
        ),
        re.compile(
            r"margins?(?:\s+status)?(?:\s+of\s+(?:resection|excision))?\s*[:\-]?\s*(?:are\s+|is\s+)?"
            r"(?:all\s+)?(?:widely\s+)?" + polarity,
            re.IGNORECASE,
        ),
        re.compile(
            r"(?P<pol>free|negative|clear|uninvolved|positive|involved)\s+(?:surgical\s+|resection\s+"
            r"|excision\s+)?margins?",
            re.IGNORECASE,
        ),
        re.compile(
            r"margins?[^.;\n]{0,60}?\b" + polarity + r"\b",
            re.IGNORECASE,
        ),
        re.compile(r"(?P<pol>extends?\s+to|extending\s+to|present\s+at)[^.;]{0,30}margin", re.I),
        re.compile(r"(?<![A-Za-z0-9])(?P<pol>R[012])(?![A-Za-z0-9])"),
    ]
    m = _first(patterns, texts)
    if not m:
        return None
    pol = re.sub(r"\s+", " ", m.group("pol").lower())
    if m.re is patterns[0]:
        return "negative (no tumour at the margin)"
    if pol in ("uninvolved", "not involved", "free", "negative", "clear", "r0"):
        return f"negative ({m.group('pol').strip()})"
    if pol == "close":
        return "close"
    return f"positive ({m.group('pol').strip()})"


def _invasion(texts: list[str], kinds: str) -> tuple[str, str] | None:
    """(kind as written, "present" / "absent" / ...) for the first invasion statement found."""
    status = (
        r"(?P<st>not\s+identified|not\s+seen|not\s+present|absent|negative|none|no|"
        r"identified|present|positive|seen|suspicious|indeterminate|extensive|focal)"
    )
    patterns = [
        re.compile(
            r"\b(?:no|without|negative\s+for)\s+(?:evidence\s+of\s+)?(?P<kind>" + kinds + r")\s+"
            r"(?:\w+\s+){0,2}?invasion",
            re.IGNORECASE,
        ),
        re.compile(
            r"(?P<kind>" + kinds + r")\s*(?:\([^)]{0,30}\)\s*)?(?:tumou?r\s+)?invasion\s*"
            r"(?:\([^)]{0,20}\)\s*)?[:\-]?\s*(?:is\s+|was\s+)?" + status,
            re.IGNORECASE,
        ),
        re.compile(
            r"(?P<st2>extensive|focal|prominent)?\s*(?P<kind>" + kinds + r")\s+invasion\s+"
            r"(?:is\s+|was\s+)?(?:also\s+)?(?P<st>present|identified|seen)?",
            re.IGNORECASE,
        ),
    ]
    m = _first(patterns, texts)
    if not m:
        return None
    st = (m.groupdict().get("st") or "").lower()
    if m.re is patterns[0] or st in (
        "not identified",
        "not seen",
        "not present",
        "absent",
        "negative",
        "none",
        "no",
    ):
        value = "absent"
    elif st in ("suspicious", "indeterminate"):
        value = st
    else:
        value = "present"
    kind = re.sub(r"\s+", " ", m.group("kind").lower())
    return kind, value


def _lvi(texts: list[str], kinds: str) -> str | None:
    found = _invasion(texts, kinds)
    if not found:
        return None
    kind, value = found
    kind = "lymphovascular" if kind in ("lympho-vascular", "vessel") else kind
    return f"{kind[0].upper() + kind[1:]} invasion: {value}"


def _size(texts: list[str]) -> str | None:
    num = r"(?P<v>\d{1,3}(?:\.\d{1,2})?)\s*(?P<u>cm|mm)"
    patterns = [
        re.compile(
            r"tumou?r\s+size\s*[:\-]?\s*(?:(?:greatest|largest|maximum)\s+(?:dimension|diameter)"
            r"\s*(?:is\s*)?[:\-]?\s*)?(?:is\s+)?" + num,
            re.IGNORECASE,
        ),
        re.compile(
            num + r"\s+(?:in\s+)?(?:greatest|largest|maximum|max\.?)\s+(?:dimension|"
            r"diameter|extent)",
            re.IGNORECASE,
        ),  # fmt: skip
        re.compile(
            r"(?:carcinoma|tumou?r|mass|neoplasm|lesion)[^.;\d]{0,30}?\(\s*" + num + r"\s*\)",
            re.IGNORECASE,
        ),
        re.compile(
            r"(?:carcinoma|tumou?r|mass|neoplasm|lesion)[^.;\d]{0,25}?(?:measur\w+|size\s+of)\s*"
            r"(?:up\s+to\s+)?" + num,
            re.IGNORECASE,
        ),
        re.compile(
            r"(?:measur\w+\s+)?" + r"(?P<v>\d{1,3}(?:\.\d{1,2})?)\s*(?:x\s*\d{1,3}(?:\.\d{1,2})?\s*"
            r"){1,2}(?P<u>cm|mm)[^.;]{0,25}?(?:mass|tumou?r|nodule|lesion)",
            re.IGNORECASE,
        ),
    ]
    for text in texts:
        for rx in patterns:
            for m in rx.finditer(text):
                before = text[max(0, m.start() - 60) : m.start() + 12].lower()
                if re.search(
                    r"[<>≤≥]|than|up\s+to|exceed|not\s+more|lymph|nodes?\b|ranging", before
                ):
                    continue
                return f"{m.group('v')} {m.group('u').lower()}"
    return None


def _receptors(texts: list[str]) -> list[str]:
    pol = (
        r"(?P<pol>not\s+amplified|non-?amplified|amplified|positive|negative|equivocal|"
        r"unmethylated|methylated|wild[- ]type|mutant|mutated|intact|deficient|3\+|2\+|1\+|0)"
    )
    markers = [
        ("Estrogen receptor (ER)", r"(?:estrogen\s+receptors?|(?-i:\bER\b))"),
        ("Progesterone receptor (PR)", r"(?:progesterone\s+receptors?|(?-i:\bPR\b)|(?-i:\bPgR\b))"),
        ("HER2", r"(?:HER[- ]?2(?:[-/ ]?neu)?|c-?erb-?B-?2)"),
        ("MGMT promoter", r"MGMT(?:\s+promoter)?"),
        ("IDH", r"IDH-?[12]?"),
        ("p16", r"p16"),
        ("Mismatch repair proteins", r"(?:mismatch\s+repair|MMR)(?:\s+proteins?)?"),
    ]
    out: list[str] = []
    for label, marker in markers:
        rx = re.compile(
            marker + r"(?:\s*\([^)]{0,20}\))?\s*(?:status|protein|by\s+IHC|immunostain|"
            r"expression|promoter|methylation|gene|amplification|\(IHC\)|\(FISH\))?\s*"
            r"(?:is|are|was|were)?\s*[:=]?\s*" + pol + r"(?![\w+])",
            re.IGNORECASE,
        )
        m = next((m for m in (rx.search(t) for t in texts) if m), None)
        if not m:
            continue
        value = re.sub(r"\s+", " ", m.group("pol").lower())
        pct = re.match(
            r"[^.;]{0,25}?\(?\s*(\d{1,3}(?:\.\d)?\s*%)", m.string[m.end() : m.end() + 40]
        )
        out.append(f"{label}: {value}" + (f" ({pct.group(1).replace(' ', '')})" if pct else ""))
    ki = _first(
        [re.compile(r"(?:Ki-?67|MIB-?1)[^.;\d]{0,40}?(\d{1,3}(?:\.\d)?\s*%)", re.IGNORECASE)], texts
    )
    if ki:
        out.append(f"Ki-67 proliferation index: {ki.group(1).replace(' ', '')}")
    return out


def extract_fields(text: str, *, clean: bool = True) -> ReportFields:
    """Find every supported field in a report (cleaned first unless ``clean=False``)."""
    text = clean_report(text) if clean else text
    texts = _ordered_text(text)
    lvi_kinds = (
        r"lymphovascular|lympho-vascular|angiolymphatic|angio-lymphatic|lymphatic|vascular|"
        r"venous|small\s+vessel|large\s+vessel|blood\s+vessel|vessel"
    )
    return ReportFields(
        histologic_type=_histologic_type(texts),
        grade=_grade(texts),
        tnm=_tnm(texts),
        stage_group=_stage_group(texts),
        lymph_nodes=_lymph_nodes(texts),
        margins=_margins(texts),
        lvi=_lvi(texts, lvi_kinds),
        pni=(_invasion(texts, r"perineural|peri-neural") or (None, None))[1],
        size=_size(texts),
        receptors=_receptors(texts),
    )


def refine_extractive(text: str, max_statements: int = 12) -> list[str]:
    """Short prognostic statements extracted by rules from one report (at most ``max_statements``)."""
    if max_statements <= 0:
        return []
    return extract_fields(text).statements()[:max_statements]
