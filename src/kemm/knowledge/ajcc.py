"""Anatomic stage groups from TNM categories, AJCC Cancer Staging Manual, 7th edition.

The 7th edition (2010) is the one TCGA's pathologic staging used. Each supported cancer has one
table, written as rows ``(group, T categories, N categories)`` for M0; ``*`` means "any" category
the table distinguishes. M1 gives the cancer's stage IV group whatever T and N are.

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
- Combinations the table does not stage (e.g. breast T0 N0, a 6th-edition kidney N2) give
  ``None``; so does an unparseable category.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SUPPORTED_CANCERS", "stage_from_tnm", "stage_rank"]

_Row = tuple[str, str, str]  # (group, space-separated T categories, space-separated N categories)


@dataclass(frozen=True)
class _Table:
    """One cancer's stage table: M0 groups by (T, N), M1 groups by M category."""

    name: str
    t: tuple[str, ...]
    n: tuple[str, ...]
    cells: dict[tuple[str, str], str]
    m1: dict[str, str]


def _table(
    name: str,
    t: str,
    n: str,
    rows: tuple[_Row, ...],
    m1: dict[str, str],
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
    return _Table(name, t_cats, n_cats, cells, dict(m1))


# Breast. T1 includes T1mi; N0(i+)/N0(mol+) are N0. T0/T1 with N1mi only are IB; T2-T4 with
# N1mi are staged as N1.
_BREAST = _table(
    "breast",
    t="T0 Tis T1 T2 T3 T4",
    n="N0 N1mi N1 N2 N3",
    rows=(
        ("0", "Tis", "N0"),
        ("IA", "T1", "N0"),
        ("IB", "T0 T1", "N1mi"),
        ("IIA", "T0 T1", "N1"),
        ("IIA", "T2", "N0"),
        ("IIB", "T2", "N1mi N1"),
        ("IIB", "T3", "N0"),
        ("IIIA", "T0 T1 T2", "N2"),
        ("IIIA", "T3", "N1mi N1 N2"),
        ("IIIB", "T4", "N0 N1mi N1 N2"),
        ("IIIC", "*", "N3"),
    ),
    m1={"M1": "IV"},
)

# Lung (non-small cell and small cell carcinoma). Occult carcinoma (TX N0 M0) is not a group.
_LUNG = _table(
    "lung",
    t="Tis T1a T1b T2a T2b T3 T4",
    n="N0 N1 N2 N3",
    rows=(
        ("0", "Tis", "N0"),
        ("IA", "T1a T1b", "N0"),
        ("IB", "T2a", "N0"),
        ("IIA", "T2b", "N0"),
        ("IIA", "T1a T1b T2a", "N1"),
        ("IIB", "T2b", "N1"),
        ("IIB", "T3", "N0"),
        ("IIIA", "T1a T1b T2a T2b", "N2"),
        ("IIIA", "T3", "N1 N2"),
        ("IIIA", "T4", "N0 N1"),
        ("IIIB", "T4", "N2"),
        ("IIIB", "*", "N3"),
    ),
    m1={"M1": "IV", "M1a": "IV", "M1b": "IV"},
)

# Kidney (renal cell carcinoma). The 7th edition has N0/N1 only.
_KIDNEY = _table(
    "kidney",
    t="T1 T2 T3 T4",
    n="N0 N1",
    rows=(
        ("I", "T1", "N0"),
        ("II", "T2", "N0"),
        ("III", "T1 T2", "N1"),
        ("III", "T3", "N0 N1"),
        ("IV", "T4", "*"),
    ),
    m1={"M1": "IV"},
)

# Corpus uteri carcinoma (and carcinosarcoma); groups equal FIGO 2009. Stage 0 is AJCC only.
_CORPUS_UTERI = _table(
    "corpus uteri",
    t="Tis T1a T1b T2 T3a T3b T4",
    n="N0 N1 N2",
    rows=(
        ("0", "Tis", "N0"),
        ("IA", "T1a", "N0"),
        ("IB", "T1b", "N0"),
        ("II", "T2", "N0"),
        ("IIIA", "T3a", "N0"),
        ("IIIB", "T3b", "N0"),
        ("IIIC1", "T1a T1b T2 T3a T3b", "N1"),
        ("IIIC2", "T1a T1b T2 T3a T3b", "N2"),
        ("IVA", "T4", "*"),
    ),
    m1={"M1": "IVB"},
)

# Colon and rectum. N1 includes N1a, N1b and N1c.
_COLORECTUM = _table(
    "colorectum",
    t="Tis T1 T2 T3 T4a T4b",
    n="N0 N1 N2a N2b",
    rows=(
        ("0", "Tis", "N0"),
        ("I", "T1 T2", "N0"),
        ("IIA", "T3", "N0"),
        ("IIB", "T4a", "N0"),
        ("IIC", "T4b", "N0"),
        ("IIIA", "T1 T2", "N1"),
        ("IIIA", "T1", "N2a"),
        ("IIIB", "T3 T4a", "N1"),
        ("IIIB", "T2 T3", "N2a"),
        ("IIIB", "T1 T2", "N2b"),
        ("IIIC", "T4a", "N2a"),
        ("IIIC", "T3 T4a", "N2b"),
        ("IIIC", "T4b", "N1 N2a N2b"),
    ),
    m1={"M1a": "IVA", "M1b": "IVB"},
)

# Urinary bladder. Stage 0 is split into 0a (Ta) and 0is (Tis).
_BLADDER = _table(
    "urinary bladder",
    t="T0 Ta Tis T1 T2 T3 T4a T4b",
    n="N0 N1 N2 N3",
    rows=(
        ("0a", "Ta", "N0"),
        ("0is", "Tis", "N0"),
        ("I", "T1", "N0"),
        ("II", "T2", "N0"),
        ("III", "T3 T4a", "N0"),
        ("IV", "T4b", "N0"),
        ("IV", "*", "N1 N2 N3"),
    ),
    m1={"M1": "IV"},
)

# Stomach.
_STOMACH = _table(
    "stomach",
    t="Tis T1 T2 T3 T4a T4b",
    n="N0 N1 N2 N3",
    rows=(
        ("0", "Tis", "N0"),
        ("IA", "T1", "N0"),
        ("IB", "T2", "N0"),
        ("IB", "T1", "N1"),
        ("IIA", "T3", "N0"),
        ("IIA", "T2", "N1"),
        ("IIA", "T1", "N2"),
        ("IIB", "T4a", "N0"),
        ("IIB", "T3", "N1"),
        ("IIB", "T2", "N2"),
        ("IIB", "T1", "N3"),
        ("IIIA", "T4a", "N1"),
        ("IIIA", "T3", "N2"),
        ("IIIA", "T2", "N3"),
        ("IIIB", "T4b", "N0 N1"),
        ("IIIB", "T4a", "N2"),
        ("IIIB", "T3", "N3"),
        ("IIIC", "T4b", "N2 N3"),
        ("IIIC", "T4a", "N3"),
    ),
    m1={"M1": "IV"},
)

# Head and neck: lip and oral cavity, oropharynx, hypopharynx and larynx share this grouping.
_HEAD_NECK = _table(
    "head and neck",
    t="Tis T1 T2 T3 T4a T4b",
    n="N0 N1 N2 N3",
    rows=(
        ("0", "Tis", "N0"),
        ("I", "T1", "N0"),
        ("II", "T2", "N0"),
        ("III", "T3", "N0"),
        ("III", "T1 T2 T3", "N1"),
        ("IVA", "T4a", "N0 N1"),
        ("IVA", "T1 T2 T3 T4a", "N2"),
        ("IVB", "*", "N3"),
        ("IVB", "T4b", "*"),
    ),
    m1={"M1": "IVC"},
)

# Cutaneous melanoma, pathologic groups. T0 (unknown primary) is not in the table.
_MELANOMA = _table(
    "melanoma of the skin",
    t="Tis T1a T1b T2a T2b T3a T3b T4a T4b",
    n="N0 N1a N1b N2a N2b N2c N3",
    rows=(
        ("0", "Tis", "N0"),
        ("IA", "T1a", "N0"),
        ("IB", "T1b T2a", "N0"),
        ("IIA", "T2b T3a", "N0"),
        ("IIB", "T3b T4a", "N0"),
        ("IIC", "T4b", "N0"),
        ("IIIA", "T1a T2a T3a T4a", "N1a N2a"),
        ("IIIB", "T1b T2b T3b T4b", "N1a N2a"),
        ("IIIB", "T1a T2a T3a T4a", "N1b N2b N2c"),
        ("IIIC", "T1b T2b T3b T4b", "N1b N2b N2c"),
        ("IIIC", "T1a T1b T2a T2b T3a T3b T4a T4b", "N3"),
    ),
    m1={"M1": "IV", "M1a": "IV", "M1b": "IV", "M1c": "IV"},
)

_TABLES: dict[str, _Table] = {
    "brca": _BREAST,
    "luad": _LUNG,
    "lusc": _LUNG,
    "kirc": _KIDNEY,
    "kirp": _KIDNEY,
    "kich": _KIDNEY,
    "ucec": _CORPUS_UTERI,
    "ucs": _CORPUS_UTERI,
    "coad": _COLORECTUM,
    "read": _COLORECTUM,
    "blca": _BLADDER,
    "stad": _STOMACH,
    "hnsc": _HEAD_NECK,
    "skcm": _MELANOMA,
}

SUPPORTED_CANCERS: tuple[str, ...] = tuple(sorted(_TABLES))

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
    return tuple(a for a in allowed if a.startswith(category))  # coarser: its subcategories


def _parse_stage(stage: str) -> tuple[str, str, str] | None:
    match = _STAGE_RE.fullmatch(stage.strip().upper())
    if match is None:
        return None
    main, letter, digit = match.groups()
    return (main[0] if main.startswith("0") else main), letter or "", digit or ""


def _common(groups: set[str]) -> str | None:
    """The single group, else the main group shared by all of them, else None."""
    if len(groups) == 1:
        return next(iter(groups))
    mains = {parsed[0] if parsed else None for parsed in map(_parse_stage, groups)}
    return mains.pop() if len(mains) == 1 else None


def stage_from_tnm(cancer: str, t: str | None, n: str | None, m: str | None) -> str | None:
    """Anatomic stage group, e.g. ``'IIIA'``, from categories like ``'T2a'``, ``'N1mi'``,
    ``'M0'``, or None when it cannot be determined.

    ``cancer`` is a TCGA study code (case-insensitive, see :data:`SUPPORTED_CANCERS`). MX or
    absent M is read as M0, as TCGA's pathologic staging did; any M1 gives the cancer's stage IV
    group regardless of T and N. TX/NX/None count as "any category", so a group is returned
    only where the table fixes it without them (kidney T3 NX -> ``'III'``; breast T1 NX -> None).
    See the module docstring for subcategory handling.

    Raises:
        ValueError: for a cancer without a table.
    """
    table = _TABLES.get(str(cancer).strip().lower().removeprefix("tcga-"))
    if table is None:
        raise ValueError(
            f"no AJCC 7th-edition table for cancer {cancer!r}; "
            f"supported: {', '.join(SUPPORTED_CANCERS)}"
        )
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


def stage_rank(stage: str | None) -> int | None:
    """The main stage group 0..4 of a group label (``'IIIA'`` -> 3, ``'IV'`` -> 4, ``'0is'`` -> 0;
    a leading ``'Stage '`` is allowed); None for None or an unparseable label."""
    if not isinstance(stage, str):
        return None
    parsed = _parse_stage(stage)
    return None if parsed is None else _RANKS[parsed[0]]
