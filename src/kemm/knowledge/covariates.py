"""Report facts as clinical covariates, named in a config and encoded a priori.

``clinical: [age, sex, t, n, m, stage, grade, nodes, margin, lvi]`` becomes a numeric block:

* ordinal facts (T, N, stage, grade) are coded cumulatively — ``t>=2``, ``t>=3``, ``t>=4`` —
  so each column says "at least this far", plus a ``t=unknown`` level for reports that do not
  state it;
* binary facts (M1, positive margin, LVI, PNI) are one indicator plus ``=unknown``;
* counts and sizes are ``log1p`` values plus ``=unknown``;
* where a fact is not stated its value columns are NaN, which the engine fills with the
  training fold's mean (mean imputation plus the ``unknown`` indicator): a penalised model that
  shrinks the ``unknown`` coefficient then puts such a patient at the average risk, not at the
  risk of the lowest category (which is what zeros would do);
* table columns (age, sex/is_female, any numeric column of the cohort table) pass through.

Each fact column also has a *direction of effect* from prognostic background knowledge
(:func:`fact_directions`): +1 where a higher level is known to be worse (higher T, N, stage,
grade; M1; positive margin; LVI; PNI; more positive nodes; larger size; older age), 0 where
no direction is assumed (unknown levels, sex). Models may use it as a sign constraint
(``direction_prior``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from kemm.knowledge.ajcc import stage_rank
from kemm.knowledge.histology import histology_keys, normalise_histology
from kemm.knowledge.report_facts import FACT_COLUMNS, ReportFacts, extract_report_facts

__all__ = [
    "FACT_COVARIATES",
    "covariate_of",
    "encode_facts",
    "fact_directions",
    "facts_for_reports",
    "facts_from_csv",
]

# covariate name -> (record field, kind)
FACT_COVARIATES: dict[str, tuple[str, str]] = {
    "t": ("t", "ordinal"),
    "n": ("n", "ordinal"),
    "m": ("m", "binary"),
    "stage": ("stage", "ordinal"),
    "grade": ("grade", "ordinal"),
    "nodes": ("nodes_positive", "count"),
    "margin": ("margin", "binary"),
    "lvi": ("lvi", "binary"),
    "pni": ("pni", "binary"),
    "size": ("size_cm", "count"),
    "histology": ("histology", "subtype"),
}
# A histologic term fewer patients have is pooled into "other": no coefficient is estimated
# from a handful of patients (scikit-learn's OneHotEncoder(min_frequency=...) idea)
MIN_SUBTYPE_PATIENTS = 10
_LEVELS = {"t": (2, 3, 4), "n": (1, 2, 3), "stage": (2, 3, 4), "grade": (2, 3, 4)}
_POSITIVE = {"m": "M1", "margin": "positive", "lvi": "present", "pni": "present"}

# Directions of effect on the hazard, from prognostic background knowledge shared by the
# solid tumours kemm's PBK library covers (AJCC staging is built on them): +1 = worse.
_DIRECTIONS = {"t": 1, "n": 1, "m": 1, "stage": 1, "grade": 1, "nodes": 1, "margin": 1,
               "lvi": 1, "pni": 1, "size": 1, "age": 1}  # fmt: skip


def fact_directions(cancer: str | None = None) -> dict[str, int]:
    """Direction of effect of each covariate (+1 higher is worse, 0 none assumed). The same for
    every cancer type in the shipped library; a cancer-specific PBK could override it."""
    return dict(_DIRECTIONS)


def _ordinal_level(name: str, value: object) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    text = str(value).strip()
    if name == "stage":
        return stage_rank(text)
    if name == "grade":
        m = re.search(r"[1-4]", text)
        return int(m.group(0)) if m else None
    if name in ("t", "n"):
        if text.upper().startswith(("TIS", "T0")):
            return 0
        m = re.search(r"[0-4]", text)
        return int(m.group(0)) if m else None
    return None


def encode_facts(
    values: pd.DataFrame, covariates: Iterable[str], cancer: str | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Encode fact values (one row per patient, columns named like the record's fields or the
    ``kemm knowledge facts`` CSV) into covariate columns and their directions."""
    directions = fact_directions(cancer)
    out = pd.DataFrame(index=values.index)
    column_directions: dict[str, int] = {}
    for name in covariates:
        field_name, kind = FACT_COVARIATES[name]
        raw = (
            values[field_name]
            if field_name in values.columns
            else pd.Series(None, index=values.index)
        )
        raw = raw.where(raw.notna() & (raw.astype(str).str.strip() != ""), None)
        unknown = raw.isna().astype(float)
        if kind == "ordinal":
            levels = pd.to_numeric(raw.map(lambda v, n=name: _ordinal_level(n, v)), errors="coerce")
            unknown = levels.isna().astype(float)
            for level in _LEVELS[name]:
                column = f"{name}>={level}"
                out[column] = (levels >= level).astype(float).where(levels.notna())
                column_directions[column] = directions.get(name, 0)
        elif kind == "binary":
            positive = _POSITIVE[name]
            flag = raw.map(
                lambda v, p=positive: (
                    None if v is None else float(str(v).upper().startswith(p.upper()))
                )
            )
            column = f"{name}={positive.lower()}"
            out[column] = pd.to_numeric(flag, errors="coerce")
            column_directions[column] = directions.get(name, 0)
        elif kind == "subtype":
            # one indicator per term of the cancer's fixed vocabulary (kemm.knowledge.histology),
            # whatever spelling the report or an LLM used; no direction assumed
            terms = raw.map(lambda v: None if v is None else normalise_histology(str(v), cancer))
            unknown = terms.isna().astype(float)
            keys = terms.map(lambda t: None if t is None else t.key)
            counts = keys.value_counts()
            rare = set(counts[counts < MIN_SUBTYPE_PATIENTS].index)
            keys = keys.where(~keys.isin(rare), "other")
            for key in dict.fromkeys([*histology_keys(cancer), "other"]):
                flag = (keys == key).astype(float).where(keys.notna())
                if flag.sum() > 0:  # a subtype no patient has adds nothing
                    column = f"histology={key}"
                    out[column] = flag
                    column_directions[column] = 0
        else:  # count / size
            numeric = pd.to_numeric(raw, errors="coerce")
            unknown = numeric.isna().astype(float)
            column = f"log1p_{name}"
            out[column] = np.log1p(numeric.clip(lower=0))
            column_directions[column] = directions.get(name, 0)
        out[f"{name}=unknown"] = unknown
        column_directions[f"{name}=unknown"] = 0
    return out, column_directions


_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


def describe_fact(name: str, columns: dict[str, float]) -> str:
    """A fact as a pathologist writes it, from its encoded columns (``encode_facts``'s output
    for one patient): ``{"t>=2": 1, "t>=3": 0, ...}`` -> ``"T2"``; ``"not stated"`` when its
    ``=unknown`` column is set. Ordinal levels below the first cut read as "T0-1", "grade 1"."""
    if columns.get(f"{name}=unknown") == 1:
        return "not stated"
    kind = FACT_COVARIATES[name][1]
    if kind == "ordinal":
        cuts = _LEVELS[name]
        reached = [level for level in cuts if columns.get(f"{name}>={level}") == 1]
        level = max(reached) if reached else cuts[0] - 1
        if name == "stage":
            return f"stage {_ROMAN.get(level, level)}" + ("" if reached else " (or lower)")
        if name == "grade":
            return f"grade {level}"
        prefix = name.upper()
        return f"{prefix}{level}" if reached else f"{prefix}0-{level}"
    if kind == "binary":
        positive = _POSITIVE[name]
        flag = columns.get(f"{name}={positive.lower()}")
        negative = {"m": "M0", "margin": "negative", "lvi": "absent", "pni": "absent"}[name]
        return positive if flag == 1 else negative
    if kind == "subtype":
        named = [c.split("=", 1)[1].replace("_", " ") for c, v in columns.items()
                 if c.startswith("histology=") and c != "histology=unknown" and v == 1]  # fmt: skip
        return ", ".join(named) if named else "the usual type"
    value = columns.get(f"log1p_{name}")
    if value is None:
        return "not stated"
    number = float(np.expm1(value))
    return f"{number:.1f} cm" if name == "size" else f"{number:.0f} positive"


def covariate_of(column: str) -> str:
    """The covariate a clinical column belongs to: ``"t>=2"`` -> ``"t"``, ``"log1p_nodes"`` ->
    ``"nodes"``, ``"age"`` -> ``"age"``."""
    if column.startswith("log1p_"):
        return column[len("log1p_") :]
    return re.split(r">=|=", column, maxsplit=1)[0]


def facts_for_reports(
    texts: Mapping[str, str | None],
    cancer: str | Mapping[str, str | None] | None = None,
    ages: Mapping[str, float] | None = None,
    *,
    derive: bool = True,
) -> dict[str, ReportFacts]:
    """The fact record of every patient's report text (empty record for an empty text);
    ``cancer``: one cancer for all, or each patient's (a cohort of mixed AJCC tables, see
    :func:`kemm.cohort.prepared.patient_rules`); ``ages`` (years at diagnosis) pick the AJCC
    table where stage groups depend on age; ``derive=False``: only the T and N categories the
    reports state."""
    ages = ages or {}
    per_case = cancer if isinstance(cancer, Mapping) else dict.fromkeys(texts, cancer)
    # a case the mapping does not cover would be read without rules: refused, not guessed
    missing = [case for case in texts if case not in per_case]
    if missing:
        raise ValueError(f"no cancer given for {len(missing)} report(s), e.g. {missing[:3]}")
    return {
        case: extract_report_facts(text, per_case[case], ages.get(case), derive=derive)
        for case, text in texts.items()
    }


def records_frame(records: Mapping[str, ReportFacts]) -> pd.DataFrame:
    """Patient x field values of fact records (None where not stated)."""
    rows = {case: {k: record.value(k) for k in FACT_COLUMNS} for case, record in records.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(FACT_COLUMNS))


def facts_from_csv(path: str) -> pd.DataFrame:
    """A ``kemm knowledge facts`` CSV (one row per ``case_id``) as patient x field values."""
    from kemm.errors import InputDataError
    from kemm.io import read_csv

    frame = read_csv(path, what="facts file", dtype=str, keep_default_na=False)
    if "case_id" not in frame.columns:
        raise InputDataError("facts CSV has no case_id column", file=str(path))
    duplicated = frame["case_id"][frame["case_id"].duplicated()].tolist()
    if duplicated:
        raise InputDataError(
            f"facts CSV lists {len(duplicated)} patient(s) twice, e.g. {duplicated[:3]}",
            file=str(path),
        )
    frame = frame.set_index("case_id").replace("", None)
    _check_fact_values(frame, str(path))
    return frame


def _check_fact_values(frame: pd.DataFrame, file: str) -> None:
    """A value the facts CSV format does not allow (``T9``, stage ``IIX``, a negative count) is
    an error, never silently read as "not stated"."""
    from kemm.errors import InputDataError
    from kemm.knowledge.facts_llm import normalise_value

    def valid(name: str, value: str) -> bool:
        if name in ("nodes_positive", "nodes_examined", "size_cm"):  # any count or size
            number = pd.to_numeric(value, errors="coerce")
            return bool(number >= 0) and (name == "size_cm" or float(number).is_integer())
        if name == "stage" and str(value).strip() == "0":  # AJCC stage 0 (Tis N0 M0)
            return True
        return normalise_value(name, value) is not None

    for name in [c for c in FACT_COLUMNS if c in frame.columns and c != "histology"]:
        for case_id, value in frame[name].dropna().items():
            if not valid(name, value):
                raise InputDataError(
                    f"column {name!r}: {value!r} is not a valid value (written like "
                    f"{_FACT_EXAMPLES.get(name, 'the kemm knowledge facts output')}; "
                    "empty when not stated)",
                    file=file, patient=str(case_id),
                )  # fmt: skip


_FACT_EXAMPLES = {"t": "T2a", "n": "N1", "m": "M0", "stage": "IIIA", "grade": "G2",
                  "nodes_positive": "3", "nodes_examined": "12", "size_cm": "4.5",
                  "margin": "negative", "lvi": "absent", "pni": "present"}  # fmt: skip
