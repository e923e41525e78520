"""Anatomic stage groups from TNM categories, AJCC Cancer Staging Manual, 7th edition.

The 7th edition (2010) is the one TCGA's pathologic staging used. Each supported cancer has one
table, written in ``ajcc7.yaml`` as rows ``[group, T categories, N categories]`` for M0; ``*``
means "any" category the table distinguishes. M1 gives the cancer's stage IV group whatever T and
N are.

Reading rules (:func:`stage_from_tnm`):

- Categories are normalised first: case is ignored, a ``y``/``p``/``c``/``r``/``a`` prefix and
  parenthesised descriptors (``N0(i+)``, ``Tis(DCIS)``, ``T2(m)``) are dropped.
- A category finer than the table (``T1a`` for kidney, ``N2b`` for breast) is read as its
  table category; one coarser than the table (``T2`` for lung, ``N2`` for colorectum) stands for
  all the table's subcategories of it, as does ``TX``/``NX``/``None`` for all of them.
- When those readings give more than one group, the answer is their common main group
  (``'III'`` for IIIA or IIIB, the level TCGA records when the subgroup is unknown; ``'IV'`` for
  colorectal M1 without a subcategory). No common main group (e.g. lung T2 N0: IB or IIA)
  gives ``None``.
- MX or absent M is read as M0, as TCGA's pathologic staging did.
- A subcategory the table does not know (an older edition's endometrial ``T1c``) reads as its
  main category (``T1``: IA or IB, so ``'I'``).
- Combinations the table does not stage (e.g. breast T0 N0, a 6th-edition kidney N2) give
  ``None``; so does an unparseable category, and a cell the table marks ``?`` because the
  edition groups it by more than TNM (grade for oesophagus, PSA and Gleason for prostate).
- A cancer whose groups depend on age (thyroid) has one table per age band; without an age,
  a group is returned only where every band gives the same one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources

import yaml

__all__ = [
    "SUPPORTED_CANCERS",
    "depends_on_age",
    "stage_from_tnm",
    "stage_rank",
    "stage_rule",
    "table_names",
    "years",
]

_Row = tuple[str, str, str]  # (group, space-separated T categories, space-separated N categories)


@dataclass(frozen=True)
class _Table:
    """One cancer's stage table: M0 groups by (T, N), M1 groups by M category."""

    name: str
    t: tuple[str, ...]
    n: tuple[str, ...]
    cells: dict[tuple[str, str], str]
    m1: dict[str, str]
    ages: tuple[float | None, float | None] = (None, None)  # [from, below) in years

    def covers(self, age: float | None) -> bool:
        low, high = self.ages
        return age is None or ((low is None or age >= low) and (high is None or age < high))


def _table(
    name: str,
    t: str,
    n: str,
    rows: tuple[_Row, ...],
    m1: dict[str, str],
    ages: tuple[float | None, float | None] = (None, None),
) -> _Table:
    """Build a table from readable rows, rejecting a cell given two different groups."""
    t_cats, n_cats = tuple(t.split()), tuple(n.split())
    cells: dict[tuple[str, str], str] = {}
    for group, t_spec, n_spec in rows:
        ts = t_cats if t_spec == "*" else tuple(t_spec.split())
        ns = n_cats if n_spec == "*" else tuple(n_spec.split())
        for t_cat in ts:
            for n_cat in ns:
                if t_cat not in t_cats or n_cat not in n_cats:
                    raise ValueError(f"{name}: {t_cat} {n_cat} is not a category of the table")
                if cells.setdefault((t_cat, n_cat), group) != group:
                    raise ValueError(f"{name}: {t_cat} {n_cat} given two groups")
    return _Table(name, t_cats, n_cats, cells, dict(m1), ages)


_TABLES_FILE = "ajcc7.yaml"


def _load_tables() -> dict[str, tuple[_Table, ...]]:
    """The tables of ``ajcc7.yaml`` (shipped beside this module) by TCGA code: one per age band
    (most cancers have one band, all ages)."""
    raw = yaml.safe_load(resources.files("kemm.knowledge").joinpath(_TABLES_FILE).read_text())
    tables: dict[str, tuple[_Table, ...]] = {}
    for name, spec in raw.items():
        rows = tuple((str(g), t, n) for g, t, n in spec["groups"])
        low, high = spec.get("age", (None, None))
        table = _table(name, spec["t"], spec["n"], rows, spec["m1"], (low, high))
        for code in spec["cancers"]:
            tables[code] = (*tables.get(code, ()), table)
    return tables


_TABLES = _load_tables()
SUPPORTED_CANCERS: tuple[str, ...] = tuple(sorted(_TABLES))

_INDETERMINATE = "?"  # a cell TNM alone does not group
_UNKNOWN = "X"  # normalised TX/NX/MX/None
_INVALID = "?"  # an unparseable category
_CATEGORY_RE = re.compile(r"[ycpra]{0,3}([TNM])(x|is|a|\d[a-z]*\d?)", re.IGNORECASE)
_STAGE_RE = re.compile(r"(?:STAGE\s*)?(0(?:A|IS)?|I{1,3}|IV)([A-C])?(\d)?")
_RANKS = {"0": 0, "I": 1, "II": 2, "III": 3, "IV": 4}


def _normalise(value: str | None, axis: str) -> str:
    """``'t2A'`` -> ``'T2a'``, ``'N0(i+)'`` -> ``'N0'``; X/None -> ``_UNKNOWN``."""
    if value is None:
        return _UNKNOWN
    text = re.sub(r"\([^)]*\)", "", value).replace(" ", "")
    if not text:
        return _UNKNOWN
    match = _CATEGORY_RE.fullmatch(text)
    if match is None or match.group(1).upper() != axis:
        return _INVALID
    rest = match.group(2).lower()
    return _UNKNOWN if rest == "x" else axis + rest


def _resolve(category: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The table categories a normalised category stands for (empty when none)."""
    if category == _UNKNOWN:
        return allowed
    if category in allowed:
        return (category,)
    for end in range(len(category) - 1, 1, -1):  # finer than the table: its parent category
        if category[:end] in allowed:
            return (category[:end],)
    coarser = tuple(a for a in allowed if a.startswith(category))  # its subcategories
    if coarser or len(category) < 3 or not category[1].isdigit():
        return coarser
    # a subcategory the table does not know (an older edition's endometrial T1c): the main
    # category's, so a group is given only where the main category fixes it
    return tuple(a for a in allowed if a.startswith(category[:2]))


def _parse_stage(stage: str) -> tuple[str, str, str] | None:
    match = _STAGE_RE.fullmatch(stage.strip().upper())
    if match is None:
        return None
    main, letter, digit = match.groups()
    return (main[0] if main.startswith("0") else main), letter or "", digit or ""


def _common(groups: set[str]) -> str | None:
    """The single group, else the main group shared by all of them, else None."""
    if _INDETERMINATE in groups:
        return None
    if len(groups) == 1:
        return next(iter(groups))
    mains = {parsed[0] if parsed else None for parsed in map(_parse_stage, groups)}
    return mains.pop() if len(mains) == 1 else None


def stage_from_tnm(
    cancer: str, t: str | None, n: str | None, m: str | None, age: float | None = None
) -> str | None:
    """Anatomic stage group, e.g. ``'IIIA'``, from categories like ``'T2a'``, ``'N1mi'``,
    ``'M0'``, or None when it cannot be determined.

    ``cancer`` is a TCGA study code (case-insensitive, see :data:`SUPPORTED_CANCERS`). MX or
    absent M is read as M0, as TCGA's pathologic staging did; any M1 gives the cancer's stage IV
    group regardless of T and N. TX/NX/None count as "any category", so a group is returned
    only where the table fixes it without them (kidney T3 NX -> ``'III'``; breast T1 NX -> None).
    ``age`` (years at diagnosis) picks the table where the groups depend on it (thyroid).
    See the module docstring for subcategory handling.

    Raises:
        ValueError: for a cancer without a table.
    """
    tables = _tables_of(cancer)
    if not tables:
        raise ValueError(
            f"no AJCC 7th-edition table for cancer {cancer!r}; "
            f"supported: {', '.join(SUPPORTED_CANCERS)}"
        )
    groups = {_group(table, t, n, m) for table in tables if table.covers(age)}
    return groups.pop() if len(groups) == 1 else None


def _group(table: _Table, t: str | None, n: str | None, m: str | None) -> str | None:
    m_cat = _normalise(m, "M")
    if m_cat == _INVALID:
        return None
    if m_cat.startswith("M1"):
        m1_cats = _resolve(m_cat, tuple(table.m1)) or tuple(table.m1)
        return _common({table.m1[c] for c in m1_cats})
    if m_cat not in (_UNKNOWN, "M0"):
        return None
    t_cats = _resolve(_normalise(t, "T"), table.t)
    n_cats = _resolve(_normalise(n, "N"), table.n)
    groups = {table.cells[c] for c in ((x, y) for x in t_cats for y in n_cats) if c in table.cells}
    return _common(groups) if groups else None


def years(age: object) -> float | None:
    """An age at diagnosis as the tables read it: a float, or None for a missing one (None or
    NaN), so that a missing age means "every band" everywhere."""
    if age is None:
        return None
    value = float(age)  # type: ignore[arg-type]
    return None if math.isnan(value) else value


def _tables_of(cancer: str | None) -> tuple[_Table, ...]:
    """A cancer's tables (one per age band) by TCGA code, ``TCGA-`` prefix and case ignored."""
    if not cancer:
        return ()
    return _TABLES.get(str(cancer).strip().lower().removeprefix("tcga-"), ())


def table_names(cancer: str | None) -> tuple[str, ...]:
    """The names of a cancer's AJCC tables (``("colorectum",)``; empty where it has none)."""
    return tuple(table.name for table in _tables_of(cancer))


def depends_on_age(cancer: str | None) -> bool:
    """True where the cancer's stage groups depend on the age at diagnosis (thyroid)."""
    return len(_tables_of(cancer)) > 1


def stage_rule(cancer: str, categories: list[str], stage: str, age: float | None = None) -> str:
    """How a derived stage was read: ``"AJCC 7th kirc stage group of T3a N0 -> III"`` (with
    ``", age 52"`` after the categories where the cancer's groups depend on age)."""
    by_age = age is not None and depends_on_age(cancer)
    at = f", age {age:g}" if by_age else ""
    return f"AJCC 7th {cancer.lower()} stage group of {' '.join(categories)}{at} -> {stage}"


def stage_rank(stage: str | None) -> int | None:
    """The main stage group 0..4 of a group label (``'IIIA'`` -> 3, ``'IV'`` -> 4, ``'0is'`` -> 0;
    a leading ``'Stage '`` is allowed); None for None or an unparseable label."""
    if not isinstance(stage, str):
        return None
    parsed = _parse_stage(stage)
    return None if parsed is None else _RANKS[parsed[0]]
