"""T and N categories derived from the findings that define them (AJCC 7th edition).

Many reports never write "pT2" or "pN1" but state what defines them: the tumour's size, the
structure it invades, the number of positive nodes. Where the cancer's AJCC 7th-edition
definition fixes a category from such a finding alone, :func:`derive_t` and :func:`derive_n`
give it, with the rule that produced it. Where the definition needs more than the report gives
(a T4 feature the size rule cannot see, a node count for a cancer whose N is by size or side),
they give ``None``: a wrong category is worse than a missing one.

Rules (``cancer`` is the report-rules code of :mod:`kemm.knowledge.cancers`):

* **Breast** T by the invasive tumour's greatest dimension (T1mi <= 0.1 cm < T1a <= 0.5 < T1b
  <= 1 < T1c <= 2 < T2 <= 5 < T3), unless the report names skin, chest wall or inflammatory
  involvement (T4 by extension, which size cannot give).
* **Head and neck** T4a by invasion of bone (mandible, maxilla, cortical bone), deep (extrinsic)
  tongue muscle, maxillary sinus, or through the thyroid cartilage (not its inner cortex);
  otherwise, for an oral cavity or oropharynx primary, T by the primary's size (T1 <= 2 cm < T2
  <= 4 < T3) unless another T4 structure is named (pterygoid, skin, larynx, hard palate, skull
  base, carotid, nerve). A structure the tumour only reaches, abuts or erodes superficially, or
  whose invasion the report leaves open, gives no T (7th edition: superficial erosion of bone
  by a gingival primary is not T4).
* **Bladder** T by the deepest layer invaded: lamina propria T1, muscularis propria T2 (its
  halves, T2a/T2b, are not derived), perivesical fat T3, prostatic stroma, seminal vesicle,
  uterus or vagina T4a; none when a pelvic or abdominal wall is named (T4b).
* **Colorectum** T by depth: submucosa T1, muscularis propria T2, through it into subserosa or
  pericolorectal tissue T3, visceral peritoneum (serosal surface) T4a; invasion of or adherence
  to another organ (T4b) gives no T.
* **Stomach** T by depth: lamina propria or muscularis mucosae T1a, submucosa T1b, muscularis
  propria T2, through it into subserosa or perigastric tissue T3, serosa (visceral peritoneum)
  T4a; none beside invasion of an adjacent organ (T4b). **Oesophagus** likewise: T1a, T1b, T2,
  adventitia or periesophageal tissue T3; none beside a T4 structure (pleura, pericardium,
  diaphragm, aorta, airway, vertebra).
* **Thyroid** T by size (T1a <= 1 cm < T1b <= 2 < T2 <= 4 < T3) only where the report says the
  tumour is limited to the thyroid or denies extrathyroidal extension; minimal (microscopic)
  extrathyroidal extension T3 at any size; none when extension is left open, gross or reaches a
  T4 structure, or the size is one of several foci.
* **Kidney** T by size (T1a <= 4 cm < T1b <= 7 < T2a <= 10 < T2b) only where the report says
  the tumour is limited to (confined to) the kidney and names no extension into the renal vein,
  sinus or perinephric fat, Gerota's fascia or the adrenal, even as a possibility.
* **Melanoma** T by the Breslow thickness (T1 <= 1.0 mm < T2 <= 2.0 < T3 <= 4.0 < T4; a/b by
  ulceration is not derived), none from a bound ("at least") or from two disagreeing thicknesses.
* No T is derived after neoadjuvant therapy (ypT), nor for breast from a size that includes the
  in-situ component or is one of several foci.
* **N0** for every staged cancer when nodes were examined and none is positive (and, for the
  colorectum, no tumour deposit or discontinuous extramural extension is reported: N1c; for
  melanoma, no satellite or in-transit metastasis: N2c).
* **N by the count of positive nodes** where the definition is a count: breast (1-3 N1, 4-9
  N2, >= 10 N3; none derived when a metastasis is called micro or isolated cells), colorectum
  (1 N1a, 2-3 N1b, 4-6 N2a, >= 7 N2b), stomach (1-2 N1, 3-6 N2, 7-15 N3a, >= 16 N3b),
  oesophagus (1-2 N1, 3-6 N2, >= 7 N3), bladder (1 N1, >= 2 N2; none when a common iliac node
  is named: N3), melanoma (1 N1, 2-3 N2, >= 4 N3; none below 4 beside matted nodes or
  in-transit or satellite metastases), and N1 for any positive node where the 7th edition has
  only N0/N1 (adrenal cortex, cervix, liver, ovary, pancreas, prostate). Not kidney (the 7th
  edition's N1 is the 6th's N1 and N2, which TCGA's registries mix), head and neck (size and
  side), lung and thyroid (node stations), uterus (pelvic or para-aortic). Isolated tumour
  cells in any line: no N from the count.

A structure counts as invaded only in a unit that says so: an invasion verb or an
"extent/depth of invasion" item, not negated ("no", "free of", "uninvolved", "intact", "not
identified") and not left open ("cannot be excluded": then no T at all).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from kemm.knowledge.patterns import ISOLATED_CELLS_RE, OPEN_FINDING

__all__ = ["Derivation", "derive_n", "derive_t"]


class _Unit(Protocol):
    text: str
    start: int
    end: int


class _Finding(Protocol):
    """A fact the derivation reads (a size or a node count): its value and span."""

    value: str | float | int
    start: int
    end: int
    source: str


@dataclass(frozen=True)
class Derivation:
    """A derived category, the rule that gave it and the span of the finding it read."""

    value: str
    rule: str
    start: int
    end: int
    source: str


# ----------------------------------------------------------------------------------------------
# Reading "the tumour invades X"

# ("into" and "through" alone are not verbs of invasion: "sections through the detrusor")
_INVADES = (
    r"invad\w*|invasion|infiltrat\w*|extend\w*|extension|involv\w*|penetrat\w*|"
    r"perforat\w*|breach\w*"
)
# an invasion verb, not the name of vessel or nerve invasion ("lymphovascular invasion: ...")
_INVADES_RE = re.compile(
    r"(?<!vascular\s)(?<!lymphatic\s)(?<!perineural\s)(?<!venous\s)\b(?:" + _INVADES + r")",
    re.I,
)
_NEGATED_BEFORE_RE = re.compile(
    r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|uninvolved|spar\w+)\b"
    r"[^.;:]{0,45}$",
    re.I,
)
_NEGATED_AFTER_RE = re.compile(
    r"^[^.;]{0,45}?\b(?:not\s+(?:identified|involved|invaded|present|seen|applicable|given|"
    r"received|administered)|"
    r"uninvolved|negative|absent|free|spared|intact|is\s+not|are\s+not|none|no|n/a)\b",
    re.I,
)
_NOT_STATED_AFTER_RE = re.compile(
    r"^[^.;]{0,45}?\b(?:not\s+(?:specified|stated|reported|known)|unknown|cannot\s+be\s+"
    r"determined)",
    re.I,
)
# a finding the report leaves open: neither invaded nor spared
_UNCERTAIN_AFTER_RE = re.compile(
    r"^[^.;]{0,45}?\b(?:cannot|can\s*not|indeterminate|equivocal|suspicious|"
    r"not\s+(?:be\s+)?(?:excluded|ruled\s+out|assessed|evaluable))",
    re.I,
)
# reaching or eroding a structure is not invading it
_NEAR_BEFORE_RE = re.compile(
    r"\b(?:up\s+to|abut\w*|approach\w*|close\s+to|near|adjacent\s+to|toward\w*|within\s+\d|"
    r"superficial(?:ly)?(?!\s+$)|erosion|erod\w*|focal(?:ly)?\s+reach\w*|reach\w*|at\s+least|"
    r"possibl\w*|probabl\w*|questionabl\w*|equivocal|suspicious|overlying|periosteum\s+of|"
    r"whether|cannot\s+be\s+(?:determined|assessed|evaluated)|"
    r"(?:\d\s*(?:mm|cm)\s+)?(?:from|away))\b[^.;:]{0,30}$",
    re.I,
)
_EXTENT_LABEL_RE = re.compile(
    r"(?:extent|depth|level)\s+of\s+(?:tumou?r\s+)?(?:invasion|extension)|tumou?r\s+extent|"
    r"extension\s+of\s+(?:invasive\s+)?tumou?r|microscopic\s+(?:tumou?r\s+)?extension",
    re.I,
)


# an extension item ending its unit with its first value: "Direct Extension of Invasive
# Tumor: Perivesical fat."
_EXTENSION_ITEM_RE = re.compile(
    r"(?:extension|extent)[^:]{0,40}:\s*(?!(?:present|absent|not|no|none|identified|yes)\b)"
    r"[^:;]{0,40}[.]?\s*$",
    re.I,
)
_CUT_BEFORE_STRUCTURE_RE = re.compile(
    r"\b(?:invad\w*|extend\w*|infiltrat\w*|penetrat\w*)\b[^.;:]{0,60}\b(?:into|to|through)\W*$",
    re.I,
)
# a unit that can be one more value of such a list: a few words naming a structure
_LISTED_VALUE_RE = re.compile(r"^[A-Za-z ,'-]{3,30}\.?$")
_DENIAL_START_RE = re.compile(r"^\W*(?:no|not|none|negative|free|without|uninvolved)\b", re.I)


# a negation's scope ends at a finite verb of its own ("Adenocarcinoma without mucinous features
# invades the subserosa"), not at the verb it negates ("not involving", "no evidence of tumor
# invading")
_WIDE_NEGATION_RE = re.compile(
    r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|uninvolved|spar\w+)\b"
    r"(?P<scope>[^.;:]{0,80})$",
    re.I,
)
_FINITE_VERB_RE = re.compile(
    r"\s\S+\s(?:(?!\b(?:that|whether|if)\b).)*\b(?:invades|extends|penetrates|infiltrates|"
    r"involves|is|are|was|were)\b",
    re.I,
)
# what a negation after the structure is about when it names another finding: "invades the
# liver, hepatic parenchymal margin negative", "the serosa, with no perineural invasion"
_OTHER_FINDING_RE = re.compile(
    r"margins?|perineural|lymphovascular|vascular|venous|lymphatic|\blymph|\bnodes?\b|\bLVI\b|"
    r"\bPNI\b",
    re.I,
)
# a clause about something other than the tumour's own spread: lymphatics, vessels, nodes,
# glands, inflammation, an ulcer or its scar, dysplasia ("neutrophils infiltrating the lamina
# propria", "extranodal extension into periesophageal adipose tissue")
_NODE_CLAUSE_RE = re.compile(r"\bnodes?\b|nodal|extracapsular", re.I)
_OTHER_SUBJECT_RE = re.compile(
    r"lymphovascular|lymphatic|vessels?\b|vascular|perineural|neutrophil|inflamm\w*|gastritis|"
    r"\bulcer\b|scar\b|fibrosis|granulation|dysplasia|\bglands?\b|metasta\w*|adequacy|"
    r"determin\w*",
    re.I,
)
_TUMOUR_NOUN_RE = re.compile(
    r"carcinoma|tumou?r|neoplasm|malignan\w*|cancer|sarcoma|melanoma|\bmass\b|lesion", re.I
)
# a layer said to be present in the specimen, not invaded ("detrusor muscle present in
# specimen", "Muscularis propria (detrusor muscle) present")
_PRESENT_IN_SPECIMEN_AFTER_RE = re.compile(
    r"^\w*\s*(?:muscle\s*)?(?:\([^()]{0,30}\)\s*)?(?:is\s+)?present\b(?!\s*[:,]?\s*(?:with|and)?\s*"
    r"(?:invad|involv|infiltrat))",
    re.I,
)
_OTHER_SUBJECT_AFTER_RE = re.compile(
    r"^\w*\s+(?:\w+\s+)?(?:lymphatic|vessels?|glands?|lymph\s+nodes?)\b", re.I
)
# the structure said to be invaded after it: "Serosal involvement: Present", "Serosa: involved
# by tumor"
_AFFIRMED_AFTER_RE = re.compile(
    r"^\w*\s*(?:\([^()]{0,30}\)\s*)?(?:involvement|invasion|penetration|extension)\s*[:\-]\s*"
    r"(?:present|identified|yes|involved|positive)\b|^\w*\s*(?:surface\s*)?(?:\([^()]{0,30}\)\s*)?"
    r"[:\-]?\s*(?:is\s+|are\s+)?(?:focally\s+|extensively\s+)?(?:involved|invaded|"
    r"penetrated|infiltrated)\s+by\s+(?:the\s+)?(?:tumou?r|carcinoma|adenocarcinoma)",
    re.I,
)
_INVASION_NOUN_AFTER_RE = re.compile(
    r"^\w*\s+(?:invasion|involvement|penetration|extension|infiltration)\b", re.I
)
_PRESENT_AT_BEFORE_RE = re.compile(r"\bpresent\s+(?:at|on)\s+(?:the\s+)?$", re.I)


def _negated_before(before: str) -> bool:
    if re.search(r"\bnot\s+(?:through|beyond)\s+(?:the\s+)?$", before, re.I):
        return False  # "into but not through the muscularis propria": in it
    m = _WIDE_NEGATION_RE.search(before)
    return bool(m and not _FINITE_VERB_RE.match(m.group("scope")))


def _negated_after(after: str) -> bool:
    m = _NEGATED_AFTER_RE.match(after)
    return bool(m and not _OTHER_FINDING_RE.search(m.group(0)))


def _mentions(
    units: Sequence[_Unit], structure: str, reach: int = 80
) -> tuple[list[_Unit], list[_Unit]]:
    """(units saying the tumour invades ``structure``, units naming it ambiguously: reached,
    abutted, eroded or not excluded). ``reach``: how far before the structure its verb may
    stand."""
    rx = re.compile(structure, re.I)
    invaded: list[_Unit] = []
    near: list[_Unit] = []
    listed = False  # the unit continues an extension item's list of structures
    for index, unit in enumerate(units):
        text = unit.text
        # "THE TUMOR INVADES THROUGH THE MUSCULARIS PROPRIA INTO. PERIVESICAL SOFT TISSUE."
        carried = index > 0 and bool(_CUT_BEFORE_STRUCTURE_RE.search(units[index - 1].text))
        # "Direct Extension of Invasive Tumor: Perivesical fat. Prostatic stroma.": OCR cut
        # the item's value into units of their own (not a heading followed by its finding:
        # "Prostate and seminal vesicles. No carcinoma identified.")
        # (the unit's first sentence: OCR may join the next item to it, "PROSTATIC STROMA.
        # MARGINS: UNINVOLVED")
        first, _, rest = text.partition(". ")
        following = rest or (units[index + 1].text if index + 1 < len(units) else "")
        listed = (
            listed
            and bool(_LISTED_VALUE_RE.match(first))
            and not _INVADES_RE.search(first)
            and not _DENIAL_START_RE.match(following)
        )
        for m in rx.finditer(text):
            before, after = text[max(0, m.start() - reach) : m.start()], text[m.end() :]
            # the verb in the structure's own clause ("INTO. PERIVESICAL": OCR's full stop)
            clause = re.split(r"(?<!into)(?<!through)[;.]", before, flags=re.I)[-1]
            if (
                _NODE_CLAUSE_RE.search(clause)
                or _OTHER_SUBJECT_RE.search(clause)
                and not _TUMOUR_NOUN_RE.search(clause)
                or _OTHER_SUBJECT_AFTER_RE.match(after)
                or _PRESENT_IN_SPECIMEN_AFTER_RE.match(after)
            ):
                continue
            context = (
                _INVADES_RE.search(clause)
                or _EXTENT_LABEL_RE.search(text)
                or (listed and m.end() <= len(first))
                or (carried and not text[: m.start()].strip())
                or _AFFIRMED_AFTER_RE.match(after)
                or _PRESENT_AT_BEFORE_RE.search(clause)
                # "serosal involvement cannot be excluded", "possible serosal penetration"
                or _INVASION_NOUN_AFTER_RE.match(after)
            )
            if not context:
                continue
            if _UNCERTAIN_AFTER_RE.match(after):
                near.append(unit)
                continue
            if _negated_before(clause) or _negated_after(after):
                continue
            if _NEAR_BEFORE_RE.search(before):
                near.append(unit)
                continue
            invaded.append(unit)
            break
        listed = listed or bool(_EXTENSION_ITEM_RE.search(text))
    return invaded, near


def _affirmed(
    text: str,
    rx: re.Pattern[str],
    denied: Callable[[str, re.Match[str], str], bool] | None = None,
) -> bool:
    """True when ``rx`` matches somewhere the text does not negate or leave open ("no
    neoadjuvant therapy", "Skin involvement: negative", "... treatment: not specified");
    ``denied(before, match, after)`` names further ways a finding's context denies it."""
    for m in rx.finditer(text):
        before = re.split(r"[;.]", text[max(0, m.start() - 60) : m.start()])[-1]
        after = text[m.end() :]
        if _NEGATED_BEFORE_RE.search(before) or _NEGATED_AFTER_RE.match(after):
            continue
        if _UNCERTAIN_AFTER_RE.match(after) or _NOT_STATED_AFTER_RE.match(after):
            continue
        if denied is not None and denied(before, m, after):
            continue
        return True
    return False


def _deepest(
    units: Sequence[_Unit], layers: Sequence[tuple[str, str, str]], cancer: str
) -> Derivation | None:
    """The category of the deepest layer a unit says is invaded; None when a deeper layer is
    named only ambiguously (reached, abutted)."""
    for category, structure, name in reversed(layers):
        invaded, near = _mentions(units, structure)
        if invaded:
            unit = invaded[0]
            rule = f"AJCC 7th {cancer} T: invasion of {name} -> {category}"
            return Derivation(category, rule, unit.start, unit.end, unit.text)
        if near:
            return None
    return None


# ----------------------------------------------------------------------------------------------
# T

# Skin, dermis or chest-wall involvement: T4 by extension, or a dermal invasion that
# pathologists code T4 although the 7th edition does not: either way size cannot say
_BREAST_T4_RE = re.compile(
    r"(?:skin|dermis|dermal|chest\s+wall|pectoral\w*)[^.;:]{0,40}\b(?:involv\w*|invad\w*|"
    r"invasion|ulcerat\w*|infiltrat\w*|satellite|nodules?)|(?:involv\w*|invad\w*|invasion\s+of|"
    r"ulcerat\w*|infiltrat\w*|extends?\s+(?:in)?to|present\s+in|satellite)\s+(?:of\s+)?"
    r"(?:the\s+|overlying\s+)*(?:skin|dermis|dermal|chest\s+wall|pectoral\w*)|"
    r"inflammatory\s+(?:breast\s+)?carcinoma|peau\s+d.orange",
    re.I,
)
_SEVERAL_FOCI_RE = re.compile(r"\bfoci\b|multifocal|multiple\s+(?:tumou?rs|masses|nodules)", re.I)
_BREAST_T_BY_SIZE = ((0.1, "T1mi"), (0.5, "T1a"), (1.0, "T1b"), (2.0, "T1c"), (5.0, "T2"))
_HEAD_NECK_T_BY_SIZE = ((2.0, "T1"), (4.0, "T2"))

_ORAL_OR_OROPHARYNX_RE = re.compile(
    r"\btongue\b|floor\s+of\s+(?:the\s+)?mouth|\bgingiva|\bgum\b|buccal|retromolar|"
    r"hard\s+palate|alveolar\s+ridge|\blip\b|oral\s+cavity|glossectomy|tonsil|oropharyn\w*|"
    r"soft\s+palate|\bmandib\w*\s+(?:resection|mandibulectomy)|mandibulectomy",
    re.I,
)
_LARYNX_RE = re.compile(
    r"laryn\w*|glott\w*|vocal\s+cord|epiglott\w*|hypopharyn\w*|pyriform|piriform", re.I
)
_HEAD_NECK_T4A = (
    (
        # not the mucosa, periosteum, nerve or margin named after the bone
        r"\b(?:mandib\w*|maxill\w*(?!\s+sinus)|cortical\s+bone|(?:jaw\s+)?bone)\b"
        r"(?!\s+(?:gingiv|alveol|mucos|periost|vestib|nerve|margin|ridge))",
        "bone",
    ),
    (
        r"\bdeep\s+(?:(?!intrinsic)\w+\s+){0,2}muscles?\s+of\s+(?:the\s+)?tongue|extrinsic\s+(?:tongue\s+)?"
        r"muscle|genioglossus|hyoglossus|styloglossus|palatoglossus",
        "deep (extrinsic) muscle of tongue",
    ),
    (r"maxillary\s+sinus", "maxillary sinus"),
)
# through the thyroid cartilage, named as such (the inner cortex alone is T3)
_THROUGH_CARTILAGE = (
    r"(?:through|transgress\w*)\s+(?:the\s+)?(?:(?:full\s+thickness|outer\s+cortex)\s+of\s+"
    r"(?:the\s+)?)?thyroid\s+cartilage|(?:full[- ]thickness|outer\s+cortex)\s+(?:invasion\s+)?"
    r"of\s+(?:the\s+)?thyroid\s+cartilage"
)
_INNER_CORTEX_RE = re.compile(r"inner\s+cortex|paraglottic", re.I)
# T4 features the size rule cannot see: no T from size when any is named
_HEAD_NECK_OTHER_T4 = (
    r"pterygoid|skin|\blarynx|hard\s+palate|skull\s+base|carotid|masticator|"
    r"maxillary\s+sinus|nerve"
)
# the size of a node metastasis is not the primary tumour's
_NOT_PRIMARY_SIZE_RE = re.compile(r"metasta|\bnode|neck\s+dissection", re.I)
# a breast size that includes the in-situ component is not the invasive size
_BREAST_TOTAL_SIZE_RE = re.compile(r"dcis|in\s+situ|including|\btotal\b", re.I)
# after neoadjuvant therapy the size is ypT's, and the residual may be scattered
_AFTER_THERAPY_RE = re.compile(
    r"neo-?adjuvant|status\s+post\s+(?:chemo|radia)|post-?\s?(?:chemo|radia)\w*|tumou?r\s+bed|"
    r"residual\s+(?:invasive\s+)?(?:tumou?r|carcinoma)\s+(?:size|measur)|"
    r"(?:pre-?operative|induction)\s+(?:chemo\w*|radia\w*|therapy|treatment)|"
    r"(?:chemo\w*|radia\w*|therapy)(?:\s+\w+){0,2}\s+(?:prior\s+to|before)\s+(?:the\s+)?"
    r"(?:surgery|resection|operation)|"
    r"(?:after|following|status\s+post|s/p)\s+(?!bcg|intravesical)(?:\w+\s+){0,2}?(?:chemo\w*|radia\w*|"
    r"(?:systemic\s+)?therapy)|"
    # a checklist item with no value ("Treatment Effect: Comments:") says nothing
    r"(?:treatment\s+(?:effect|response)|(?:tumou?r\s+)?regression\s+grade)(?!\s*:\s*(?:[A-Z][a-z]+\s*)?"
    r"(?::|$))|mandard|\byp\s?T",
    re.I,
)

_BLADDER_LAYERS = (
    (
        "T1",
        r"lamina\s+propria|muscularis\s+mucosae|sub[- ]?epithelial\s+connective\s+tissue",
        "lamina propria",
    ),
    ("T2", r"muscularis\s+propria|detrusor|muscle\s+propria", "muscularis propria"),
    (
        "T3",
        r"(?:perivesic|extravesic)\w+\s+(?:fat|soft\s+tissue|tissue|adipose)",
        "perivesical tissue",
    ),
    (
        "T4a",
        r"prostat\w*\s+(?:stroma|parenchyma)|\bprostate\b|seminal\s+vesicle|\buter(?:us|ine)\b|"
        r"\bvagina\w*",
        "prostatic stroma, seminal vesicle, uterus or vagina",
    ),
)
_COLORECTAL_LAYERS = (
    ("T1", r"submucosa", "submucosa"),
    ("T2", r"muscularis\s+propria", "muscularis propria"),
    (
        "T3",
        r"(?:through|beyond)\s+(?:the\s+)?muscularis\s+propria|subserosa\w*|"
        r"peri[- ]?(?:colonic|colic|rectal|colorectal)\s+(?:\w+\s+)?(?:fat|tissue|soft\s+tissue|"
        r"adipose)|mesorect\w*\s+(?:fat|tissue)|mesenteric\s+(?:fat|adipose)",
        "subserosa or pericolorectal tissue",
    ),
    (
        "T4a",
        r"visceral\s+peritone\w*|(?<!sub)serosal?\b|peritoneal\s+surface",
        "visceral peritoneum",
    ),
)
# the layers of the stomach and oesophagus wall up to the muscularis propria (7th edition)
_GI_WALL_LAYERS = (
    ("T1a", r"lamina\s+propria|muscularis\s+mucosae", "lamina propria or muscularis mucosae"),
    ("T1b", r"submucosa", "submucosa"),
    ("T2", r"muscularis\s+propria", "muscularis propria"),
)
_STOMACH_LAYERS = (
    *_GI_WALL_LAYERS,
    (
        "T3",
        r"(?:through|beyond)\s+(?:the\s+)?muscularis\s+propria|subserosa\w*|"
        r"peri-?gastric\s+(?:\w+\s+)?(?:fat|tissue|soft\s+tissue|adipose)",
        "subserosal connective tissue",
    ),
    (
        "T4a",
        r"visceral\s+peritone\w*|(?<!sub)serosal?\b",
        "serosa (visceral peritoneum)",
    ),
)
_OESOPHAGUS_LAYERS = (
    *_GI_WALL_LAYERS,
    (
        "T3",
        r"(?:through|beyond)\s+(?:the\s+)?muscularis\s+propria|adventiti\w*|"
        r"peri-?o?esophageal\s+(?:\w+\s+)?(?:fat|tissue|soft\s+tissue|adipose)",
        "adventitia",
    ),
)
# T4 structures of the stomach (7th edition: intramural spread to the duodenum or oesophagus is
# staged by depth, so neither is here) and of the oesophagus: no T from the layers beside one
_STOMACH_T4B = (
    r"adjacent\s+(?:organs?|structures?)|spleen|(?:transverse\s+)?colon\b|liver|diaphragm|"
    r"pancrea\w*|abdominal\s+wall|adrenal|kidney|small\s+(?:bowel|intestine)|retroperitone\w*"
)
# (a serosa is the stomach's: a junction tumour through it is not staged by these layers)
_OESOPHAGUS_T4 = (
    r"adjacent\s+(?:organs?|structures?)|pleura\b|pericardi\w*|diaphragm|aort\w*|"
    r"vertebra\w*|trachea|bronch\w*|airway|(?<!sub)serosal?\b"
)
# "No invasive carcinoma identified" (high-grade dysplasia or carcinoma in situ: Tis)
_NO_INVASIVE_TUMOUR_RE = re.compile(
    r"\b(?:no|negative\s+for|without)\s+(?:residual\s+|evidence\s+of\s+)?invasive\s+"
    r"(?:\w+\s+)?(?:carcinoma|adenocarcinoma|malignancy|tumou?r)",
    re.I,
)


def _no_invasive_tumour(units: Sequence[_Unit]) -> bool:
    return any(_NO_INVASIVE_TUMOUR_RE.search(u.text) for u in units)


_ADJACENT_ORGAN_RE = re.compile(
    r"(?:invad\w*|invasion|adheren\w*|involv\w*|extends?|extension)\s+(?:\w+\s+){0,4}"
    r"(?:(?:adjacent|other)\s+(?:organs?|structures?)|small\s+(?:bowel|intestine)|bladder|"
    r"uterus|ovar\w*|vagina|prostate|seminal|abdominal\s+wall|pelvic\s+(?:side\s?)?wall|"
    r"(?:terminal\s+)?ileum|jejunum|omentum|"
    r"kidney|spleen|stomach|liver|pancrea\w*|duodenum|ureter|sacrum)",
    re.I,
)
# organs a colorectal tumour invades as T4b, named far from the verb ("invades through the
# muscularis propria into pericolic fat and into the wall of the terminal ileum")
_COLORECTAL_T4B = (
    r"adjacent\s+(?:organs?|structures?)|small\s+(?:bowel|intestine)|\bileum|jejunum|"
    r"urinary\s+bladder|\buterus|ovar\w*|vagina\w*|prostat\w*|seminal|abdominal\s+wall|"
    r"pelvic\s+(?:side\s?)?wall|omentum|spleen|stomach|liver|pancrea\w*|duodenum|ureter|sacrum"
)
_BLADDER_T4B_RE = re.compile(r"pelvic\s+(?:side\s?)?wall|abdominal\s+wall", re.I)


def _by_size(size_cm: float, cuts: Sequence[tuple[float, str]], above: str) -> tuple[str, str]:
    for limit, category in cuts:
        if size_cm <= limit:
            return category, f"<= {limit:g} cm"
    return above, f"> {cuts[-1][0]:g} cm"


def derive_t(
    units: Sequence[_Unit],
    size: _Finding | None,
    cancer: str | None,
    context: Sequence[_Unit] = (),
    others: Sequence[_Unit] = (),
) -> Derivation | None:
    """The T category the report's findings define for ``cancer``, or None (see the module
    docstring). ``size`` is the main tumour's greatest dimension in cm with its span;
    ``context``: more text (the clinical history), read only for therapy before the
    resection; ``others``: the lines about another organ's tumour (an incidental prostate
    cancer), never read for depth but read for structures that stop a derivation."""
    cancer = (cancer or "").lower()
    if any(_affirmed(u.text, _AFTER_THERAPY_RE) for u in (*units, *context)):
        return None  # ypT: what remains after therapy, not decided by these rules
    if cancer == "brca":
        if size is None or any(_affirmed(u.text, _BREAST_T4_RE) for u in units):
            return None
        if _SEVERAL_FOCI_RE.search(size.source) or _BREAST_TOTAL_SIZE_RE.search(size.source):
            return None  # one of several sizes, or one including the in-situ component
        category, bound = _by_size(float(size.value), _BREAST_T_BY_SIZE, "T3")
        return Derivation(
            category, f"AJCC 7th breast T: invasive tumour {bound} -> {category}",
            size.start, size.end, size.source,
        )  # fmt: skip
    if cancer == "hnsc":
        return _head_neck_t(units, size)
    if cancer == "blca":
        if any(_BLADDER_T4B_RE.search(u.text) for u in (*units, *others)):
            return None  # T4b, or a wall named in a way the layers cannot place
        return _deepest(units, _BLADDER_LAYERS, "bladder")
    if cancer in ("coad", "read"):
        if any(_ADJACENT_ORGAN_RE.search(u.text) for u in (*units, *others)) or any(
            _mentions((*units, *others), _COLORECTAL_T4B, reach=240)
        ):
            return None  # T4b or adherent only: not decidable from the words
        return _deepest(units, _COLORECTAL_LAYERS, "colorectal")
    if cancer == "stad":
        # an organ named far from the verb ("invades through the muscularis propria,
        # subserosal connective tissue and serosa into the body and tail of the pancreas")
        if any(_mentions((*units, *others), _STOMACH_T4B, reach=240)) or _no_invasive_tumour(units):
            return None  # T4b (or only reached): not decided from the layers
        return _deepest(units, _STOMACH_LAYERS, "stomach")
    if cancer == "esca":
        if any(_mentions((*units, *others), _OESOPHAGUS_T4, reach=240)) or _no_invasive_tumour(
            units
        ):
            return None  # T4a or T4b: not decided from the words
        return _deepest(units, _OESOPHAGUS_LAYERS, "oesophagus")
    if cancer == "thca":
        return _thyroid_t(units, size)
    if cancer in ("kirc", "kirp", "kich"):
        return _kidney_t(units, size)
    if cancer == "skcm":
        return _melanoma_t(units)
    return None


_KIDNEY_T_BY_SIZE = ((4.0, "T1a"), (7.0, "T1b"), (10.0, "T2a"))
# a finding left open anywhere in the unit ("perinephric fat invasion cannot be excluded")
_OPEN_RE = re.compile(OPEN_FINDING + r"|\bfocal(?:ly)?\s+(?:invasion|extension)", re.I)
# the report says the tumour stays in the kidney ("Tumor limited to the kidney", "Extent of
# involvement: Confined to kidney")
_KIDNEY_CONFINED_RE = re.compile(
    r"(?:limited|confined)\s+to\s+(?:the\s+)?(?:kidney|renal\s+parenchyma)|"
    r"intra-?renal\s+(?:tumou?r|mass)|organ[- ]confined",
    re.I,
)
# T3/T4 structures: a tumour invading (or only reaching) one is not staged by its size
_KIDNEY_BEYOND = (
    r"renal\s+vein|vena\s+cava|\bivc\b|(?:renal\s+)?sinus(?:\s+(?:fat|adipose|tissue))?|"
    r"peri-?(?:renal|nephric)|gerota\w*|adrenal|capsule|hilar\s+fat|segmental\s+veins?|"
    r"beyond\s+the\s+kidney"
)


# an extension named in a clause that does not deny it ("Renal vein invasion: present",
# "Tumor thrombus in the main renal vein", "Perinephric fat inv.: present", "invades into the
# fat"); a clause with "no", "not", "free", "confined" ... denies
_KIDNEY_EXTENSION_TERMS_RE = re.compile(
    _KIDNEY_BEYOND + r"|thromb\w*|venous\s+invasion|(?:large\s+|major\s+)?vessels?\s+invasion|"
    r"extra-?renal|\bfat\b|adipose|major\s+veins?|hilar|hilum",
    re.I,
)
# an invasion word in the clause ("present" alone is not one: "representative section of
# adrenal", "lymph node identified on the adrenal")
_EXTENSION_WORD_RE = re.compile(
    r"invad\w*|invasion|\binv\b|involv\w*|extend\w*|extension|thromb\w*|penetrat\w*|"
    r"\binto\b",
    re.I,
)
_DENIED_RE = re.compile(
    r"\b(?:no|not|without|negative|free|uninvolved|absent|none|confined|limited|intact|spared|"
    r"n/a)\b",
    re.I,
)
# "Tumor limited to the kidney: No", "...? Cannot be determined", an unticked checklist box
_CONFINED_DENIED_AFTER_RE = re.compile(
    r"^\s*[:?\-]?\s*(?:no\b|not\b|cannot|unknown|indetermin)", re.I
)
_UNTICKED_RE = re.compile(r"^\s*(?:\[\s*\]|\(\s*\)|_{2,})")
# whose confinement: the tumour's, or a synoptic item's value ("Extent: Confined to kidney")
_TUMOUR_SUBJECT_RE = re.compile(
    r"tumou?r|carcinoma|neoplasm|\bmass\b|extent|extension|involvement|invasion|^\W*$", re.I
)
# another lesion with its own size: the largest size may be its
_OTHER_LESION_RE = re.compile(
    r"angiomyolipoma|leiomyoma|oncocytoma|adenoma|\bcyst\b|(?:second|separate|another|"
    r"additional)\s+(?:\w+\s+)?(?:tumou?r|mass|nodule|lesion|focus|neoplasm)",
    re.I,
)
_SIZE_IN_TEXT_RE = re.compile(r"(\d{1,2}(?:\.\d{1,2})?)\s*(cm|mm)\b", re.I)


def _kidney_confined(units: Sequence[_Unit]) -> bool:
    for unit in units:
        for m in _KIDNEY_CONFINED_RE.finditer(unit.text):
            before, after = unit.text[: m.start()], unit.text[m.end() :]
            if (
                _NEGATED_BEFORE_RE.search(before[-40:])
                or _CONFINED_DENIED_AFTER_RE.match(after)
                or _UNTICKED_RE.match(unit.text)
                or not _TUMOUR_SUBJECT_RE.search(re.split(r"[.;]\s", before)[-1])
            ):
                continue
            return True
    return False


def _kidney_extension_named(units: Sequence[_Unit]) -> bool:
    """True where a clause names an extension beyond the kidney without denying it, or a unit
    names one and leaves it open ("cannot be excluded")."""
    for unit in units:
        if _KIDNEY_EXTENSION_TERMS_RE.search(unit.text) and _OPEN_RE.search(unit.text):
            return True
        for clause in re.split(r"[.;,]", unit.text):
            if (
                _KIDNEY_EXTENSION_TERMS_RE.search(clause)
                and _EXTENSION_WORD_RE.search(clause)
                and not _DENIED_RE.search(clause)
            ):
                return True
    return False


def _another_lesion_as_large(units: Sequence[_Unit], size: _Finding) -> bool:
    """True where another lesion (a cyst, an adenoma, a second tumour) is given a size (within
    60 characters after its name) at least the tumour size read: that size may be its."""
    for unit in units:
        for lesion in _OTHER_LESION_RE.finditer(unit.text):
            after = unit.text[lesion.end() : lesion.end() + 60]
            for value, unit_name in _SIZE_IN_TEXT_RE.findall(after):
                cm = float(value) / (10.0 if unit_name.lower() == "mm" else 1.0)
                if cm >= float(size.value):
                    return True
    return False


def _kidney_t(units: Sequence[_Unit], size: _Finding | None) -> Derivation | None:
    """Kidney T1a-T2b by the tumour's size, only where the report says it is limited to the
    kidney and names no extension beyond it (renal vein, sinus or perinephric fat, Gerota's
    fascia, adrenal, a tumour thrombus: T3-T4 whatever the size), not even as a possibility,
    and no other lesion is as large."""
    if (
        size is None
        or _NOT_PRIMARY_SIZE_RE.search(size.source)
        or _SEVERAL_FOCI_RE.search(size.source)
        or not _kidney_confined(units)
    ):
        return None
    # (clause by clause, so that a denied list, "does not invade the perinephric fat, renal
    # sinus or renal vein", stays denied; a structure only reached or abutted still counts)
    _, near = _mentions(units, _KIDNEY_BEYOND)
    if near or _kidney_extension_named(units) or _another_lesion_as_large(units, size):
        return None
    category, bound = _by_size(float(size.value), _KIDNEY_T_BY_SIZE, "T2b")
    rule = f"AJCC 7th kidney T: tumour {bound}, limited to the kidney -> {category}"
    return Derivation(category, rule, size.start, size.end, size.source)


# "Breslow thickness: 2.3 mm", "Tumor thickness (Breslow): 1.1 mm", "Breslow depth 0.8 mm"
_BRESLOW_RE = re.compile(
    r"(?:breslow(?:'s)?\s*(?:thickness|depth|level)?|(?:tumou?r|maximum|vertical)\s+thickness"
    r"(?:\s*\(breslow\))?)\s*[:=]?\s*(?:is\s+|of\s+|measures?\s+)?"
    r"(?P<bound>at\s+least|greater\s+than|more\s+than|less\s+than|up\s+to|[<>]|approximately)?"
    r"\s*(?P<value>\d{1,2}(?:\.\d{1,2})?)\s*(?P<unit>mm|cm)\b",
    re.I,
)
_MELANOMA_T_BY_THICKNESS = ((1.0, "T1"), (2.0, "T2"), (4.0, "T3"))
# a thickness that is only a lower bound ("1.2 mm (at least)", "transected at the deep margin")
_THICKNESS_BOUND_AFTER_RE = re.compile(
    r"^[^.;]{0,40}?(?:at\s+least|minimum|transect\w*|deep\s+margin|greater|underestimat\w*)",
    re.I,
)
# not the invasive primary: a metastasis, in-transit disease, a re-excision's residual or scar
_NOT_PRIMARY_MELANOMA_RE = re.compile(
    r"metasta\w*|in[- ]transit|re-?excision|\bresidual\b|\bscar\b|lymph\s+nodes?\s+dissection",
    re.I,
)
_IN_SITU_RE = re.compile(r"in[- ]situ", re.I)


_THYROID_T_BY_SIZE = ((1.0, "T1a"), (2.0, "T1b"), (4.0, "T2"))
_EXTRATHYROIDAL = (
    r"extra-?\s?thyroid(?:al)?(?:\s+(?:soft\s+tissue\s+)?(?:extension|invasion|spread))?|"
    r"(?:extension|invasion)\s+(?:\w+\s+){0,2}(?:beyond|through)\s+(?:the\s+)?"
    r"(?:thyroid\s+)?capsule|perithyroidal\s+(?:\w+\s+)?(?:tissue|fat)|"
    r"(?:strap|skeletal)\s+muscles?"
)
_EXTRATHYROIDAL_RE = re.compile(_EXTRATHYROIDAL, re.I)
# the report says the tumour stays in the thyroid: "Extrathyroidal extension: not identified",
# "no extrathyroidal extension", "confined to the thyroid"
_THYROID_CONFINED_RE = re.compile(r"(?:limited|confined)\s+to\s+(?:the\s+)?thyroid", re.I)
_ANAPLASTIC_RE = re.compile(r"anaplastic|undifferentiated\s+(?:thyroid\s+)?carcinoma", re.I)
# T4 structures named on any line ("Tumor invades the recurrent laryngeal nerve")
_THYROID_T4_STRUCTURES = (
    r"subcutaneous|\blarynx|trachea\w*|o?esophag\w*|recurrent\s+laryngeal|prevertebral|"
    r"carotid|mediastin\w*"
)
_MULTIFOCAL_RE = re.compile(r"multi-?focal|multiple\s+(?:tumou?rs|foci|nodules)", re.I)
_LARGEST_RE = re.compile(r"largest|dominant|greatest\s+(?:focus|tumou?r)", re.I)
_MINIMAL_RE = re.compile(r"\b(?:minimal|microscopic|focal)\b", re.I)
# gross extension (T4a/T4b) or a structure beyond the strap muscles
_THYROID_T4_RE = re.compile(
    r"\b(?:gross|extensive|massive)\b|subcutaneous|larynx|laryngeal|trachea\w*|o?esophag\w*|"
    r"recurrent\s+laryngeal|prevertebral|carotid|mediastin\w*",
    re.I,
)


def _thyroid_t(units: Sequence[_Unit], size: _Finding | None) -> Derivation | None:
    """Thyroid T by the tumour's size where the report says whether it extends beyond the
    thyroid: none stated, T1a <= 1 cm < T1b <= 2 < T2 <= 4 < T3; minimal (microscopic)
    extrathyroidal extension, T3 at any size. None where extension is left open or gross, a
    T4 structure is named, or the size is one of several foci."""
    if size is None or any(_affirmed(u.text, _ANAPLASTIC_RE) for u in units):
        return None  # every anaplastic carcinoma is T4
    if (
        _SEVERAL_FOCI_RE.search(size.source) or any(_MULTIFOCAL_RE.search(u.text) for u in units)
    ) and not _LARGEST_RE.search(size.source):
        return None  # T is the largest focus's: the size read may be another's
    confined = any(_affirmed(u.text, _THYROID_CONFINED_RE) for u in units)
    extension, open_ = _mentions_extension(units)
    t4, t4_near = _mentions(units, _THYROID_T4_STRUCTURES)
    if open_ or t4 or t4_near:
        return None
    if extension is None:
        if not confined and not _extension_denied(units):
            return None  # the report does not say: T3 by minimal extension cannot be ruled out
        category, bound = _by_size(float(size.value), _THYROID_T_BY_SIZE, "T3")
        rule = f"AJCC 7th thyroid T: tumour {bound}, limited to the thyroid -> {category}"
        return Derivation(category, rule, size.start, size.end, size.source)
    if confined or not _MINIMAL_RE.search(extension.text) or _THYROID_T4_RE.search(extension.text):
        return None  # contradictory, or extension that may be gross (T4a)
    rule = "AJCC 7th thyroid T: minimal extrathyroidal extension -> T3"
    return Derivation("T3", rule, extension.start, extension.end, extension.text)


def _mentions_extension(units: Sequence[_Unit]) -> tuple[_Unit | None, bool]:
    """(the unit affirming extrathyroidal extension, whether a unit leaves it open)."""
    for unit in units:
        for m in _EXTRATHYROIDAL_RE.finditer(unit.text):
            before = re.split(r"[;.]", unit.text[max(0, m.start() - 60) : m.start()])[-1]
            after = unit.text[m.end() :]
            if _NODE_CLAUSE_RE.search(unit.text[: m.start()]):
                continue  # a node metastasis's extranodal extension, not the primary's
            if _UNCERTAIN_AFTER_RE.match(after) or _OPEN_RE.search(before):
                return None, True
            if _NEGATED_BEFORE_RE.search(before) or _NEGATED_AFTER_RE.match(after):
                continue
            if _NOT_STATED_AFTER_RE.match(after):
                return None, True
            if re.match(r"^\s*[:\-]?\s*(?:present|identified|yes|seen)\b", after, re.I) or (
                _INVADES_RE.search(before + m.group(0))
            ):
                return unit, False
            return None, True  # named, neither denied nor affirmed
    return None, False


def _extension_denied(units: Sequence[_Unit]) -> bool:
    """True when a unit denies extrathyroidal extension ("Extrathyroidal extension: Not
    identified", "no extrathyroidal extension", "capsule intact")."""
    for unit in units:
        for m in _EXTRATHYROIDAL_RE.finditer(unit.text):
            before = re.split(r"[;.]", unit.text[max(0, m.start() - 60) : m.start()])[-1]
            if _NEGATED_BEFORE_RE.search(before) or _NEGATED_AFTER_RE.match(unit.text[m.end() :]):
                return True
    return False


def _melanoma_t(units: Sequence[_Unit]) -> Derivation | None:
    """Melanoma T1-T4 by the Breslow thickness (its a/b, by ulceration and mitoses, is not
    derived); none from a bound ("at least 2 mm": the base was transected) or when two
    thicknesses disagree on the category."""
    if (
        any(_NOT_PRIMARY_MELANOMA_RE.search(u.text) for u in units)
        or any(_IN_SITU_RE.search(u.text) for u in units)
        and not any(re.search(r"\binvasive\b", u.text, re.I) for u in units)
    ):
        return None  # a metastasis, a re-excision, a scar; or melanoma in situ (Tis)
    found: list[tuple[str, str, _Unit]] = []
    for unit in units:
        for m in _BRESLOW_RE.finditer(unit.text):
            if m.group("bound") or _THICKNESS_BOUND_AFTER_RE.match(unit.text[m.end() :]):
                return None
            mm = float(m.group("value")) * (10.0 if m.group("unit").lower() == "cm" else 1.0)
            if mm <= 0:
                continue
            category, bound = _by_size(mm, _MELANOMA_T_BY_THICKNESS, "T4")
            found.append((category, bound.replace("cm", "mm"), unit))
    if not found or len({c for c, _, _ in found}) > 1:
        return None
    category, bound, unit = found[0]
    rule = f"AJCC 7th melanoma T: Breslow thickness {bound} -> {category}"
    return Derivation(category, rule, unit.start, unit.end, unit.text)


def _head_neck_t(units: Sequence[_Unit], size: _Finding | None) -> Derivation | None:
    named = [*_HEAD_NECK_T4A, (_THROUGH_CARTILAGE, "through the thyroid cartilage")]
    ambiguous = False
    for structure, name in named:
        invaded, near = _mentions(units, structure)
        invaded = [u for u in invaded if not _INNER_CORTEX_RE.search(u.text)]
        if invaded:
            unit = invaded[0]
            rule = f"AJCC 7th head and neck T: invasion of {name} -> T4a"
            return Derivation("T4a", rule, unit.start, unit.end, unit.text)
        ambiguous = ambiguous or bool(near)
    other_t4, other_near = _mentions(units, _HEAD_NECK_OTHER_T4)
    text = " ".join(u.text for u in units)
    if (
        ambiguous
        or other_t4
        or other_near
        or size is None
        or _NOT_PRIMARY_SIZE_RE.search(size.source)
        or _LARYNX_RE.search(text)  # laryngeal T is by subsites and fixation, not size
        or not _ORAL_OR_OROPHARYNX_RE.search(text)
    ):
        return None
    category, bound = _by_size(float(size.value), _HEAD_NECK_T_BY_SIZE, "T3")
    rule = f"AJCC 7th oral cavity/oropharynx T: tumour {bound} -> {category}"
    return Derivation(category, rule, size.start, size.end, size.source)


# ----------------------------------------------------------------------------------------------
# N

# (most positive nodes, category) in order; above the last limit, _N_ABOVE
_N_BY_COUNT: dict[str, tuple[tuple[int, str], ...]] = {
    "brca": ((3, "N1"), (9, "N2")),
    "coad": ((1, "N1a"), (3, "N1b"), (6, "N2a")),
    "read": ((1, "N1a"), (3, "N1b"), (6, "N2a")),
    "stad": ((2, "N1"), (6, "N2"), (15, "N3a")),
    "esca": ((2, "N1"), (6, "N2")),
    "blca": ((1, "N1"),),
    "skcm": ((1, "N1"), (3, "N2")),
}
_N_ABOVE = {"brca": "N3", "coad": "N2b", "read": "N2b", "stad": "N3b", "esca": "N3",
            "blca": "N2", "skcm": "N3"}  # fmt: skip
# cancers whose 7th-edition N is N1 for any regional node metastasis
for _code in ("acc", "cesc", "lihc", "ov", "paad", "prad"):
    _N_BY_COUNT[_code] = ()
    _N_ABOVE[_code] = "N1"
# bladder N3 is a common iliac node, whatever the count
_COMMON_ILIAC_RE = re.compile(r"common\s+iliac", re.I)
# node groups that are not regional for the cancer (a metastasis there is M1): where the
# report names one, the count may include it
_NON_REGIONAL_NODES = {
    code: re.compile(rx, re.I)
    for code, rx in {
        "prad": r"common\s+iliac|para-?aortic|aort\w*|inguinal|retroperitoneal",
        "cesc": r"para-?aortic|aort\w*|inguinal|supraclavicular",
        "paad": r"para-?aortic|aorto-?caval|aortic",
        "blca": r"\bCI\b|para-?aortic|aort\w*|inguinal",
        "lihc": r"para-?aortic|aort\w*|celiac|mediastin\w*|cardiophrenic",
    }.items()
}
# a node metastasis stated in words ("Parametrial lymph node: metastatic carcinoma"); for
# melanoma, isolated cells or a metastasis seen on immunostains count too (N1a)
_NODE_METASTASIS_RE = re.compile(
    r"metasta\w*|positive\s+for\s+(?:\w+\s+){0,2}(?:carcinoma|malignan\w*|melanoma)|"
    r"involved\s+by\s+(?:\w+\s+){0,2}(?:carcinoma|melanoma)|"
    # "Lymph node, right obturator, excision: urothelial carcinoma present, with extranodal
    # extension", "squamous cell carcinoma replacing a lymph node"
    r"(?:carcinoma|melanoma|sarcoma)\s+(?:is\s+)?(?:present|identified|seen)\b|"
    r"extra-?nodal\s+extension|replacing\s+(?:a\s+|the\s+)?(?:lymph\s+)?node",
    re.I,
)
_MELANOMA_NODE_CELLS_RE = re.compile(
    r"isolated\s+(?:\w+\s+)?cells|micro-?metasta\w*|immunostain\w*[^.;]{0,40}(?:positive|"
    r"reveal|highlight|show)",
    re.I,
)
# "Number of metastatic nodes: 0", "... metastasis: none", "SENTINEL NODE METASTASIS:
# NON-NEOPLASTIC ...", a label whose value is on the next line
_ZERO_AFTER_RE = re.compile(
    r"^\W{0,3}\(?\s*[0O]\b|^[\s:]*(?:non-?neoplastic|benign|reactive|negative)", re.I
)
_LABEL_END_RE = re.compile(r"^\s*:?\s*$")
# "0/8 positive for metastasis", "0 OF 11 NODES ARE POSITIVE FOR METASTATIC TUMOR"
_ZERO_BEFORE_RE = re.compile(
    r"(?:\b[0O]\s*(?:/|of\b|out\s+of\b)\s*\d+|\b(?:zero|none)\b)[^.;]{0,60}$", re.I
)


# "1/5", "0/14" (not a date "8/05", not a stain clone "AE1/3")
_NODE_RATIO_RE = re.compile(r"(?<![\w/])([0-9O]{1,2})\s*/\s*([1-9]\d?)(?![\d/])")
# a label or legend, not a finding: "Number of metastatic nodes", "(... the number of
# metastatic nodes in relation to the total number of nodes examined)"
_NODE_LABEL_BEFORE_RE = re.compile(r"number\s+of\s+(?:\w+\s+){0,6}$", re.I)
_NODE_LABEL_AFTER_RE = re.compile(r"^\s*(?:lymph\s+)?nodes?\s*(?:in\b|:?\s*[0O]\b|$)", re.I)


def _node_metastasis_affirmed(text: str, cancer: str) -> bool:
    """True where a unit about lymph nodes states a metastasis it does not deny. Where the unit
    gives node ratios ("1/5", "0/14"), they decide: a metastasis iff one is non-zero."""
    if not re.search(r"\bnodes?\b|\bnodal\b", text, re.I):
        return False
    if cancer == "skcm" and _affirmed(text, _MELANOMA_NODE_CELLS_RE):
        return True
    ratios = [
        (int(k.replace("O", "0")), int(n))
        for k, n in _NODE_RATIO_RE.findall(text)
        if int(k.replace("O", "0")) <= int(n)
    ]
    if ratios:
        return any(k > 0 for k, _ in ratios)
    return _affirmed(text, _NODE_METASTASIS_RE, _no_node_metastasis)


def _no_node_metastasis(before: str, match: re.Match[str], after: str) -> bool:
    """A count of zero, a label or legend, or a distant metastasis around a metastasis word."""
    return bool(
        _ZERO_AFTER_RE.match(after)
        or _LABEL_END_RE.match(after)
        and re.match(r"metasta", match.group(0), re.I)
        or _ZERO_BEFORE_RE.search(before)
        or _NODE_LABEL_BEFORE_RE.search(before)
        or _NODE_LABEL_AFTER_RE.match(after)
        or re.search(r"distant|\bM\s?[01X]\b|\(p?M\)", before + match.group(0), re.I)
    )


# melanoma N3 is also matted nodes, or in-transit or satellite metastases with nodes
_MATTED_RE = re.compile(r"\bmatted\b", re.I)
_SMALL_METASTASIS_RE = re.compile(r"micro[- ]?metasta\w*|" + ISOLATED_CELLS_RE.pattern, re.I)
_TUMOUR_DEPOSIT_RE = re.compile(
    r"tumou?r\s+deposits?|satellite\s+(?:tumou?r\s+)?nodules?|tumou?r\s+nodules?|"
    r"discontinuous\s+extramural\s+extension",
    re.I,
)
# melanoma N counts satellite and in-transit metastases as well as nodes (N2c)
_MELANOMA_NON_NODAL_RE = re.compile(r"satellite|in[- ]transit", re.I)
_DEPOSIT_ABSENT_RE = re.compile(
    r"(?:tumou?r\s+deposits?|satellite\s+(?:tumou?r\s+)?nodules?|tumou?r\s+nodules?)\s*"
    r"(?:\([^)]*\))?\s*[:\-]?\s*(?:(?:are|is)\s+)?(?:not\s+identified|none|absent|no\b|negative|"
    r"not\s+present|0\b)|discontinuous\s+extramural\s+extension\s*[:\-]?\s*(?:not\s+identified|"
    r"none|absent|no\b|not\s+present)|\bno\s+(?:\w+\s+)?(?:tumou?r\s+deposits?|(?:satellite\s+)?"
    r"(?:tumou?r\s+)?nodules?)",
    re.I,
)


def derive_n(
    units: Sequence[_Unit],
    positive: _Finding | None,
    examined: _Finding | None,
    cancer: str | None,
    staged: bool,
) -> Derivation | None:
    """The N category the node counts define for ``cancer``, or None (see the module
    docstring). ``staged``: the cancer has an AJCC table (N0 is derived only for those)."""
    cancer = (cancer or "").lower()
    if positive is None:
        return None
    count = int(positive.value)
    if count == 0:
        if not staged or examined is None or int(examined.value) <= 0:
            return None
        if any(_node_metastasis_affirmed(u.text, cancer) for u in units):
            return None  # a metastasis reported outside the count ("Parametrial node: metastatic")
        if cancer in ("coad", "read") and any(
            _TUMOUR_DEPOSIT_RE.search(u.text) and not _DEPOSIT_ABSENT_RE.search(u.text)
            for u in units
        ):
            return None  # N1c: deposits without nodal metastasis
        if cancer == "skcm" and any(_affirmed(u.text, _MELANOMA_NON_NODAL_RE) for u in units):
            return None  # N2c: satellite or in-transit metastases without nodal metastasis
        rule = f"AJCC 7th N: 0 of {int(examined.value)} regional nodes positive -> N0"
        return Derivation("N0", rule, positive.start, positive.end, positive.source)
    cuts = _N_BY_COUNT.get(cancer)
    if cuts is None:
        return None
    if cancer == "brca" and any(_SMALL_METASTASIS_RE.search(u.text) for u in units):
        return None  # N1mi or N0(i+): the count alone does not decide
    if any(ISOLATED_CELLS_RE.search(u.text) for u in units):
        return None  # isolated tumour cells are N0(i+), yet may be counted as positive
    if cancer == "blca" and any(_COMMON_ILIAC_RE.search(u.text) for u in units):
        return None  # N3 if the common iliac node is the positive one
    non_regional = _NON_REGIONAL_NODES.get(cancer)
    if non_regional is not None and any(non_regional.search(u.text) for u in units):
        return None  # a positive node there is a distant metastasis (M1), not N
    if (
        cancer == "skcm"
        and count < 4
        and any(
            _MATTED_RE.search(u.text) or _affirmed(u.text, _MELANOMA_NON_NODAL_RE) for u in units
        )
    ):
        return None  # N3 by matted nodes or in-transit / satellite metastases
    category = _N_ABOVE[cancer]
    for limit, name in cuts:
        if count <= limit:
            category = name
            break
    rule = f"AJCC 7th {cancer} N: {count} positive regional nodes -> {category}"
    return Derivation(category, rule, positive.start, positive.end, positive.source)
