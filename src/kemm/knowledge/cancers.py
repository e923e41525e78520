"""One resolver of cancer types: every TCGA project code, the combined cohorts, OncoTree codes and
common names, case-insensitively, to the cancer whose report rules, AJCC table and PBK apply.

An unknown code is one error line listing what is accepted; nothing is matched silently.

>>> resolve_cancer_code("kidney").code, resolve_cancer_code("kidney").rules
('KIPAN', 'kirc')
>>> resolve_cancer_code("TCGA-COAD").rules, resolve_cancer_code("ccrcc").code
('coad', 'KIRC')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kemm.errors import ConfigError


@dataclass(frozen=True)
class CancerType:
    code: str  # TCGA project (or combined cohort) code, upper case: "KIRC", "COADREAD"
    name: str
    rules: str  # the code kemm's report rules and AJCC tables are keyed by, lower case
    oncotree: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()  # a combined cohort's projects' rules codes ("stad", "esca")

    @property
    def projects(self) -> tuple[str, ...]:
        """The TCGA projects of this cancer: a combined cohort's parts, else its own code."""
        return _COMBINED[self.code][1] if self.code in _COMBINED else (self.code,)

    @property
    def tables(self) -> set[tuple[str, ...]]:
        """The AJCC tables of each of its projects (one entry where they share them)."""
        from kemm.knowledge.ajcc import table_names

        return {table_names(rules) for rules in self.parts or (self.rules,)}

    @property
    def mixed_tables(self) -> bool:
        """True for a combined cohort whose projects are staged by different AJCC tables (STES:
        stomach and oesophagus): one set of rules cannot read all its reports."""
        return len(self.tables) > 1

    def tables_text(self) -> str:
        """``"STAD: stomach, ESCA: esophagus"``: each part's AJCC tables, for messages."""
        from kemm.knowledge.ajcc import table_names

        return ", ".join(
            f"{project}: {' / '.join(table_names(_PROJECTS[project][2])) or 'none'}"
            for project in self.projects
        )

    def rules_for(self, oncotree_code: str | None) -> str | None:
        """The rules code of one patient of this cohort, by the patient's OncoTree code: in a
        cohort of mixed tables, the project whose codes hold the patient's (None when none does:
        the patient's tables are unknown); a code that AJCC stages with another project's table
        wherever it occurs (GEJ: the oesophagus) gets that project's; else the cohort's."""
        from kemm.knowledge.ajcc import table_names

        code = str(oncotree_code or "").strip().upper()
        tables = self.tables
        mixed = len(tables) > 1
        if mixed:
            for project in self.projects:
                _, oncotree, rules = _PROJECTS[project]
                if code in oncotree:
                    return rules
        if code in _STAGED_WITH:
            rules = _PROJECTS[_STAGED_WITH[code]][2]
            if table_names(rules) not in tables:
                return rules
        return None if mixed else self.rules


# code: (name, OncoTree codes, rules code). Rules code: the project's own, or the project whose
# report rules and AJCC table apply to it (READ -> the colorectal rules kept under "coad").
_PROJECTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ACC": ("adrenocortical carcinoma", ("ACC",), "acc"),
    "BLCA": ("bladder urothelial carcinoma", ("BLCA",), "blca"),
    "BRCA": ("breast invasive carcinoma", ("BRCA", "IDC", "ILC", "MDLC", "IMMC", "MBC", "BRCNOS",
                                           "ACBC", "SPC", "MPT", "PD"), "brca"),
    "CESC": ("cervical squamous cell carcinoma and endocervical adenocarcinoma",
             ("CESC", "CSCC", "ECAD"), "cesc"),
    "CHOL": ("cholangiocarcinoma", ("CHOL", "IHCH", "EHCH"), "chol"),
    "COAD": ("colon adenocarcinoma", ("COAD", "MACR"), "coad"),
    "DLBC": ("diffuse large B-cell lymphoma", ("DLBCLNOS",), "dlbc"),
    # GEJ: the AJCC 7th edition stages junction adenocarcinomas with the oesophagus
    "ESCA": ("esophageal carcinoma", ("ESCA", "EAC", "ESCC", "GEJ"), "esca"),
    "GBM": ("glioblastoma multiforme", ("GBM",), "gbm"),
    "HNSC": ("head and neck squamous cell carcinoma", ("HNSC", "OCSC", "LXSC", "OPHSC"), "hnsc"),
    "KICH": ("kidney chromophobe", ("CHRCC",), "kich"),
    "KIRC": ("kidney renal clear cell carcinoma", ("CCRCC",), "kirc"),
    "KIRP": ("kidney renal papillary cell carcinoma", ("PRCC",), "kirp"),
    "LAML": ("acute myeloid leukemia", ("AML",), "laml"),
    "LGG": ("brain lower grade glioma", ("ASTR", "ODG", "OAST", "DIFG"), "lgg"),
    "LIHC": ("liver hepatocellular carcinoma", ("HCC",), "lihc"),
    "LUAD": ("lung adenocarcinoma", ("LUAD",), "luad"),
    "LUSC": ("lung squamous cell carcinoma", ("LUSC",), "lusc"),
    "MESO": ("mesothelioma", ("MESO", "PLMESO"), "meso"),
    "OV": ("ovarian serous cystadenocarcinoma", ("OV", "HGSOC"), "ov"),
    "PAAD": ("pancreatic adenocarcinoma", ("PAAD",), "paad"),
    "PCPG": ("pheochromocytoma and paraganglioma", ("PHC", "PGNG"), "pcpg"),
    "PRAD": ("prostate adenocarcinoma", ("PRAD",), "prad"),
    "READ": ("rectum adenocarcinoma", ("READ",), "read"),
    "SARC": ("sarcoma", ("SARC", "LMS", "DDLS", "UPS", "MFS"), "sarc"),
    "SKCM": ("skin cutaneous melanoma", ("SKCM",), "skcm"),
    "STAD": ("stomach adenocarcinoma", ("STAD", "DSTAD", "ISTAD", "MSTAD", "PSTAD", "SSRCC",
                                        "TSTAD"), "stad"),
    "TGCT": ("testicular germ cell tumors", ("NSGCT", "SEM"), "tgct"),
    "THCA": ("thyroid carcinoma", ("THPA", "THFO"), "thca"),
    "THYM": ("thymoma", ("THYM",), "thym"),
    "UCEC": ("uterine corpus endometrial carcinoma", ("UCEC", "UEC", "USC"), "ucec"),
    "UCS": ("uterine carcinosarcoma", ("UCS",), "ucs"),
    "UVM": ("uveal melanoma", ("UM",), "uvm"),
}  # fmt: skip
# OncoTree codes the AJCC 7th edition stages with another project's table in whatever cohort they
# occur: junction adenocarcinomas extending into the oesophagus are staged as oesophageal.
_STAGED_WITH = {"GEJ": "ESCA"}
# Combined cohorts (FireHose / PanCancer study names) -> their parts; the first part's rules.
_COMBINED: dict[str, tuple[str, tuple[str, ...]]] = {
    "COADREAD": ("colorectal adenocarcinoma", ("COAD", "READ")),
    "GBMLGG": ("glioma", ("GBM", "LGG")),
    "KIPAN": ("pan-kidney cohort", ("KIRC", "KIRP", "KICH")),
    "STES": ("stomach and esophageal carcinoma", ("STAD", "ESCA")),
}
# Common names -> code. Names of several projects ("lung") are refused as ambiguous.
_NAMES: dict[str, str] = {
    "breast": "BRCA", "kidney": "KIPAN", "renal": "KIPAN", "clear cell renal": "KIRC",
    "colorectal": "COADREAD", "colon": "COAD", "rectum": "READ", "rectal": "READ",
    "head and neck": "HNSC", "oral cavity": "HNSC", "larynx": "HNSC", "bladder": "BLCA",
    "urothelial": "BLCA", "cervix": "CESC", "cervical": "CESC", "esophagus": "ESCA",
    "oesophagus": "ESCA", "liver": "LIHC", "hepatocellular": "LIHC", "pancreas": "PAAD",
    "pancreatic": "PAAD", "prostate": "PRAD", "melanoma": "SKCM", "skin": "SKCM",
    "stomach": "STAD", "gastric": "STAD", "thyroid": "THCA", "endometrial": "UCEC",
    "endometrium": "UCEC", "uterine": "UCEC", "ovary": "OV", "ovarian": "OV",
    "glioblastoma": "GBM", "glioma": "GBMLGG", "brain": "GBMLGG", "sarcoma": "SARC",
    "mesothelioma": "MESO", "thymoma": "THYM", "adrenal": "ACC", "cholangiocarcinoma": "CHOL",
    "bile duct": "CHOL", "testis": "TGCT", "testicular": "TGCT", "uveal melanoma": "UVM",
    "lung adenocarcinoma": "LUAD", "lung squamous": "LUSC",
}  # fmt: skip
_AMBIGUOUS = {"lung": ("LUAD", "LUSC"), "uterus": ("UCEC", "UCS")}


def _cancer(code: str) -> CancerType:
    if code in _COMBINED:
        name, parts = _COMBINED[code]
        oncotree = tuple(o for part in parts for o in _PROJECTS[part][1])
        rules = tuple(_PROJECTS[part][2] for part in parts)
        return CancerType(code, name, rules[0], oncotree, rules)
    name, oncotree, rules = _PROJECTS[code]
    return CancerType(code, name, rules, oncotree)


def _key(text: str) -> str:
    key = re.sub(r"^tcga[-_ ]", "", text.strip().lower())
    return re.sub(r"[\s_-]+", " ", key).removesuffix(" cancer").strip()


def resolve_cancer_code(text: str) -> CancerType:
    """The cancer type ``text`` names (a TCGA code, a combined cohort, an OncoTree code or a
    common name, case-insensitive; ``TCGA-`` prefix allowed); an unknown or ambiguous name is a
    one-line :class:`ConfigError` listing what is accepted."""
    key = _key(str(text))
    upper = key.upper().replace(" ", "")
    if upper in _PROJECTS or upper in _COMBINED:
        return _cancer(upper)
    for code, (_, oncotree, _) in _PROJECTS.items():
        if upper in oncotree:
            return _cancer(code)
    if key in _NAMES:
        return _cancer(_NAMES[key])
    for code, (name, _, _) in _PROJECTS.items():
        if key == name.lower():
            return _cancer(code)
    if key in _AMBIGUOUS:
        raise ConfigError(
            f"cancer {text!r} is ambiguous: say which of {', '.join(_AMBIGUOUS[key])}"
        )
    raise ConfigError(
        f"unknown cancer {text!r}; accepted: TCGA codes ({', '.join(sorted(_PROJECTS))}), "
        f"combined cohorts ({', '.join(sorted(_COMBINED))}), their OncoTree codes (e.g. CCRCC, "
        f"IDC, UEC) or names (e.g. {', '.join(list(_NAMES)[:6])})"
    )


def report_rules(text: str | None) -> str | None:
    """The code the report rules are keyed by for any name of a cancer ("COADREAD", "kidney",
    "IDC" -> "coad", "kirc", "brca"; blank -> None); an unknown name is the resolver's error, and
    so is a cohort of mixed tables (STES), whose reports each need their own project's rules."""
    if text is None or not str(text).strip():
        return None
    found = resolve_cancer_code(text)
    if found.mixed_tables:
        raise ConfigError(
            f"cancer {text!r} combines projects staged by different AJCC tables "
            f"({found.tables_text()}): give each report its own project's code"
        )
    return found.rules


def cancer_from_oncotree(codes: Iterable[str]) -> CancerType | None:
    """The one TCGA project (or combined cohort) whose OncoTree codes cover ``codes``, if any."""
    wanted = {str(c).strip().upper() for c in codes if str(c).strip()}
    if not wanted:
        return None
    for code in list(_PROJECTS) + list(_COMBINED):
        cancer = _cancer(code)
        if wanted <= set(cancer.oncotree):
            return cancer
    return None


def accepted_codes() -> list[str]:
    return sorted(_PROJECTS) + sorted(_COMBINED)
