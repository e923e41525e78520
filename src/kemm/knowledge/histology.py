"""Histologic type in a fixed vocabulary: WHO terms per cancer site, with the subtype kept.

A report writes one type many ways ("clear cell (conventional) renal carcinoma", "carcinoma,
clear cell type", "RCC, clear cell"); as free text each spelling would be its own covariate. The
report-fact record, the statements and the covariate block use the term this module gives:

>>> normalise_histology("Clear cell (conventional) renal carcinoma", "kirc").term
'clear cell renal cell carcinoma'
>>> normalise_histology("infiltrating duct and lobular carcinoma", "brca").key
'mixed_ductal_lobular'

Each site's vocabulary is an ordered list of (key, WHO term, OncoTree code, pattern); the term
whose pattern matches earliest in the text wins, the more specific term first where two match
at the same place ("mixed ductal and lobular" before "ductal"). A site without its own list, and
any text its list does not name, reads the cross-site list (squamous cell carcinoma,
adenocarcinoma, urothelial carcinoma, ...). Text that names a tumour but no term of either list
is ``other``; text naming no tumour gives None.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["HistologyTerm", "histology_keys", "is_generic", "normalise_histology"]


@dataclass(frozen=True)
class HistologyTerm:
    key: str  # covariate key: "clear_cell", "lobular", "endometrioid"
    term: str  # WHO term: "clear cell renal cell carcinoma"
    oncotree: str | None  # OncoTree code where one exists: "CCRCC"


_Entry = tuple[str, str, str | None, str]  # key, term, OncoTree, pattern

_KIDNEY: tuple[_Entry, ...] = (
    ("chromophobe", "chromophobe renal cell carcinoma", "CHRCC", r"chromophob"),
    ("collecting_duct", "collecting duct carcinoma", "CDRCC", r"collecting\s+duct|bellini"),
    ("clear_cell", "clear cell renal cell carcinoma", "CCRCC",
     r"clear[\s-]*cell|conventional(?:\s+type)?\s+(?:renal|rcc|carcinoma)|\bccrcc\b"),
    ("papillary", "papillary renal cell carcinoma", "PRCC", r"(?<!micro)papillary"),
    ("unclassified", "renal cell carcinoma, unclassified", "URCC", r"unclassified"),
    ("nos", "renal cell carcinoma, NOS", "RCC", r"renal\s+(?:cell\s+)?carcinoma|\brcc\b"),
)  # fmt: skip
_BREAST: tuple[_Entry, ...] = (
    ("mixed_ductal_lobular", "mixed ductal and lobular carcinoma", "MDLC",
     r"(?:duct(?:al)?|nst)\b[\w\s,()/-]{0,40}?\blobular|lobular\b[\w\s,()/-]{0,40}?\bduct(?:al)?\b|"
     r"mixed\s+(?:invasive\s+)?(?:ductal|lobular)"),
    ("lobular", "invasive lobular carcinoma", "ILC", r"lobular"),
    ("mucinous", "mucinous carcinoma", "IMMC", r"mucinous|colloid"),
    ("metaplastic", "metaplastic carcinoma", "MBC", r"metaplastic"),
    ("medullary", "carcinoma with medullary features", None, r"medullary"),
    ("micropapillary", "invasive micropapillary carcinoma", None, r"micropapillary"),
    ("papillary", "invasive papillary carcinoma", None, r"papillary"),
    ("tubular", "tubular carcinoma", None, r"tubular|cribriform"),
    ("ductal", "invasive ductal carcinoma (no special type)", "IDC",
     r"duct(?:al)?\b|no\s+special\s+type|\bnst\b"),
)  # fmt: skip
_LUNG_ADENO: tuple[_Entry, ...] = (
    ("mucinous", "invasive mucinous adenocarcinoma", None, r"mucinous|colloid"),
    ("micropapillary", "micropapillary predominant adenocarcinoma", None, r"micropapillary"),
    ("solid", "solid predominant adenocarcinoma", None, r"\bsolid\b"),
    ("papillary", "papillary predominant adenocarcinoma", None, r"papillary"),
    ("acinar", "acinar predominant adenocarcinoma", None, r"acinar"),
    ("lepidic", "lepidic predominant adenocarcinoma", None, r"lepidic|bronchioloalveolar|\bbac\b"),
    ("mixed", "adenocarcinoma, mixed subtype", None, r"mixed"),
    ("nos", "adenocarcinoma, NOS", "LUAD", r"adenocarcinoma"),
)  # fmt: skip
_LUNG_SQUAMOUS: tuple[_Entry, ...] = (
    ("basaloid", "basaloid squamous cell carcinoma", None, r"basaloid"),
    ("papillary", "papillary squamous cell carcinoma", None, r"papillary"),
    ("small_cell", "squamous cell carcinoma, small cell variant", None, r"small\s+cell"),
    ("clear_cell", "squamous cell carcinoma, clear cell variant", None, r"clear\s+cell"),
    ("nonkeratinizing", "non-keratinizing squamous cell carcinoma", None,
     r"non[\s-]*keratini[sz]ing"),
    ("keratinizing", "keratinizing squamous cell carcinoma", None, r"keratini[sz]ing"),
    ("nos", "squamous cell carcinoma, NOS", "LUSC", r"squamous|epidermoid"),
)  # fmt: skip
_ENDOMETRIUM: tuple[_Entry, ...] = (
    ("carcinosarcoma", "carcinosarcoma", "UCS",
     r"carcinosarcoma|malignant\s+mixed\s+(?:mullerian|m[uü]llerian)|\bmmmt\b"),
    ("mixed", "mixed cell adenocarcinoma", "UMEC", r"mixed"),
    ("serous", "serous carcinoma", "USC", r"serous|papillary\s+serous"),
    ("clear_cell", "clear cell carcinoma", "UCCC", r"clear[\s-]*cell"),
    ("undifferentiated", "undifferentiated carcinoma", "UUC", r"undifferentiated|dedifferentiated"),
    ("mucinous", "mucinous carcinoma", None, r"mucinous"),
    ("endometrioid", "endometrioid carcinoma", "UEC", r"endometrioid|endometroid"),
)  # fmt: skip
# Any site: the types a report of another cancer most often names.
_ANY_SITE: tuple[_Entry, ...] = (
    ("carcinosarcoma", "carcinosarcoma", None, r"carcinosarcoma|sarcomatoid\s+carcinoma"),
    ("adenosquamous", "adenosquamous carcinoma", None, r"adenosquamous"),
    ("small_cell", "small cell carcinoma", None, r"small\s+cell\s+(?:neuroendocrine\s+)?carcinoma"),
    ("large_cell_neuroendocrine", "large cell neuroendocrine carcinoma", "LCNEC",
     r"large\s+cell\s+neuroendocrine|neuroendocrine\s+(?:carcinoma|tumou?r)[\w\s,(]{0,20}?"
     r"\blarge\s+cell"),
    # a carcinoid (typical or atypical) is a well-differentiated neuroendocrine tumour, not a
    # neuroendocrine carcinoma
    ("neuroendocrine_tumour", "neuroendocrine tumour (carcinoid)", None,
     r"carcinoid|(?:well|low)[\s-]+(?:differentiated|grade)\s+neuroendocrine\s+(?:tumou?r|neoplasm)|"
     r"neuroendocrine\s+tumou?r,?\s+(?:(?:WHO\s+)?grade\s*[12I]\b|G[12]\b)"),
    ("neuroendocrine", "neuroendocrine carcinoma", None, r"neuroendocrine"),
    ("urothelial", "urothelial carcinoma", None, r"urothelial|transitional\s+cell"),
    ("hepatocellular", "hepatocellular carcinoma", "HCC", r"hepatocellular"),
    ("cholangiocarcinoma", "cholangiocarcinoma", "CHOL", r"cholangio"),
    ("adrenocortical", "adrenocortical carcinoma", "ACC", r"adrenocortical|adenocortical"),
    ("mesothelioma", "mesothelioma", "MESO", r"mesothelioma"),
    ("melanoma", "melanoma", None, r"melanoma"),
    ("signet_ring", "signet ring cell carcinoma", None, r"signet[\s-]*ring"),
    ("mucinous", "mucinous adenocarcinoma", None, r"mucinous|colloid"),
    ("papillary_thyroid", "papillary thyroid carcinoma", "THPA",
     r"papillary\s+(?:thyroid\s+)?carcinoma[\w\s,]{0,30}thyroid|papillary\s+thyroid"),
    ("follicular", "follicular carcinoma", "THFO", r"follicular\s+carcinoma"),
    ("clear_cell", "clear cell carcinoma", None, r"clear[\s-]*cell"),
    ("serous", "serous carcinoma", None, r"serous"),
    ("endometrioid", "endometrioid carcinoma", None, r"endometrioid"),
    ("squamous", "squamous cell carcinoma", None, r"squamous|epidermoid"),
    ("sarcoma", "sarcoma", None, r"sarcoma"),
    ("lymphoma", "lymphoma", None, r"lymphoma"),
    ("glioma", "glioma", None, r"glioblastoma|glioma|astrocytoma|oligodendroglioma"),
    ("adenocarcinoma", "adenocarcinoma", None, r"adenocarcinoma"),
    ("carcinoma_nos", "carcinoma, NOS", None, r"carcinoma"),
)  # fmt: skip

_SITES: dict[str, tuple[_Entry, ...]] = {
    "kirc": _KIDNEY, "kirp": _KIDNEY, "kich": _KIDNEY, "brca": _BREAST, "luad": _LUNG_ADENO,
    "lusc": _LUNG_SQUAMOUS, "ucec": _ENDOMETRIUM, "ucs": _ENDOMETRIUM,
}  # fmt: skip
OTHER = HistologyTerm("other", "other", None)
_TUMOUR_RE = re.compile(
    r"carcinoma|cancer|neoplasm|tumou?r|sarcoma|melanoma|mesothelioma|lymphoma|blastoma|glioma|"
    r"cytoma|\brcc\b|\bidc\b|\bilc\b",
    re.I,
)


def _site_list(site: str | None) -> tuple[_Entry, ...]:
    return _SITES.get((site or "").lower().removeprefix("tcga-"), ())


@functools.lru_cache(maxsize=64)
def _compiled(site: str | None) -> tuple[tuple[HistologyTerm, re.Pattern], ...]:
    entries = _site_list(site) + _ANY_SITE
    return tuple(
        (HistologyTerm(key, term, code), re.compile(pattern, re.I))
        for key, term, code, pattern in entries
    )


def _site_terms(site: str | None) -> dict[str, HistologyTerm]:
    """The site list's own terms (a cross-site term is read by the patterns, so that
    "squamous cell carcinoma" for lusc is the site's NOS term)."""
    count = len(_site_list(site))
    return {t.term.lower(): t for t, _ in _compiled(site)[:count]}


_GENERIC_KEYS = {"nos", "adenocarcinoma", "carcinoma_nos"}  # only where nothing finer matches


def is_generic(term: HistologyTerm | None) -> bool:
    """True for no term, a NOS term or ``other``: a type that names no subtype."""
    return term is None or term.key in _GENERIC_KEYS or term.key == OTHER.key


_PREDOMINANT_RE = re.compile(r"predominant|predominantly", re.I)
_IN_SITU_RE = re.compile(
    r"\b(?:(?:ductal|lobular|squamous|urothelial|cell|intraductal|papillary|cribriform|solid|"
    r"comedo|micropapillary|high[- ]grade|low[- ]grade)[\s,-]+){0,4}carcinoma[\s,-]+in[\s-]*situ\b"
    r"|\b(?:dcis|lcis)\b",
    re.I,
)


@functools.lru_cache(maxsize=8192)
def normalise_histology(text: str | None, cancer: str | None = None) -> HistologyTerm | None:
    """The vocabulary term ``text`` names for ``cancer`` (a rules code such as ``"kirc"``; None
    reads the cross-site list only); :data:`OTHER` for a tumour no term names; None for text
    that names no tumour. A term of the vocabulary maps to itself.

    Order of reading: the site's list before the cross-site one; within a list a named subtype
    before a NOS term, the pattern a report calls "predominant" first, then the one written
    earliest ("papillary RCC with clear cell features" is papillary), ties by list order."""
    if text is None or not str(text).strip():
        return None
    text = re.sub(r"\s+", " ", str(text)).strip()
    exact = _site_terms(cancer).get(text.lower())
    if exact is not None:
        return exact
    # an in-situ lesion names no invasive type ("DUCTAL CARCINOMA IN SITU" is no IDC)
    invasive = _IN_SITU_RE.sub(" ", text).strip()
    if invasive != text and not _TUMOUR_RE.search(invasive):
        return None  # nothing but the in-situ lesion names a tumour ("DCIS, cribriform")
    text = invasive
    site_count = len(_site_list(cancer))
    if text.lower() == OTHER.term:
        return OTHER
    best_key, chosen = None, None
    for rank, (term, pattern) in enumerate(_compiled(cancer)):
        match = pattern.search(text)
        if match is None:
            continue
        around = text[max(0, match.start() - 16) : match.end() + 16]
        key = (
            0 if rank < site_count else 1,
            term.key in _GENERIC_KEYS,
            not _PREDOMINANT_RE.search(around),
            match.start(),
            rank,
        )
        if best_key is None or key < best_key:
            best_key, chosen = key, term
    if chosen is not None:
        return chosen
    return OTHER if _TUMOUR_RE.search(text) else None


def histology_keys(cancer: str | None = None) -> list[str]:
    """Every covariate key the vocabulary of ``cancer`` can give (site list, cross-site list,
    ``other``), in vocabulary order."""
    return list(dict.fromkeys([t.key for t, _ in _compiled(cancer)] + [OTHER.key]))
