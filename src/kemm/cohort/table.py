"""Patient-level cohort tables read from the MCAT/PORPOISE ``*_all_clean.csv`` format.

The file has one row per slide; a :class:`Cohort` has one row per patient. ``censorship``
(1 = censored) is converted here, once, to ``event`` (1 = death observed).
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kemm.cohort.target import SurvivalTarget
from kemm.errors import InputDataError
from kemm.io import read_csv

log = logging.getLogger(__name__)

GENOMIC_MODALITIES = ("rnaseq", "cnv", "mut")
CLINICAL_COLUMNS = ("case_id", "slide_id", "age", "site", "survival_months", "censorship",
                    "is_female", "oncotree_code", "train")  # fmt: skip
REQUIRED_COLUMNS = ("case_id", "survival_months", "censorship")
# Patient-level fields that must agree across the slide rows of one patient.
PATIENT_FIELDS = ("survival_months", "censorship", "age", "is_female", "oncotree_code")


def genomic_modality(column: str) -> str | None:
    """``'TP53_rnaseq'`` → ``'rnaseq'``; None for a column that is not a genomic feature."""
    gene, _, suffix = column.rpartition("_")
    return suffix if gene and suffix in GENOMIC_MODALITIES else None


def gene_of(column: str) -> str:
    """``'TP53_rnaseq'`` → ``'TP53'``."""
    return column.rpartition("_")[0] if genomic_modality(column) else column


@dataclass
class Cohort:
    """One row per patient.

    ``patients`` is indexed by ``case_id`` with columns ``time`` (months), ``event`` (0/1),
    ``slide_ids`` (tuple) and whatever clinical columns the file had (``age``, ``is_female``,
    ``site``, ``oncotree_code``). ``genomics`` is indexed by ``case_id`` with features named
    ``<GENE>_<modality>``; patients without genomics are absent from it.
    """

    name: str
    patients: pd.DataFrame
    genomics: pd.DataFrame
    source: Path | None = None

    @property
    def case_ids(self) -> list[str]:
        return list(self.patients.index)

    @property
    def target(self) -> SurvivalTarget:
        return SurvivalTarget(self.patients["event"].to_numpy(), self.patients["time"].to_numpy())

    def __len__(self) -> int:
        return len(self.patients)

    def subset(self, case_ids: Iterable[str]) -> Cohort:
        ids = list(case_ids)
        missing = [c for c in ids if c not in self.patients.index]
        if missing:
            raise InputDataError(
                f"{len(missing)} patient(s) not in the cohort, e.g. {missing[:5]}",
                file=str(self.source) if self.source else None,
            )
        genomic_ids = [c for c in ids if c in self.genomics.index]
        return Cohort(
            self.name, self.patients.loc[ids], self.genomics.loc[genomic_ids], self.source
        )

    def genomic_features(self, modalities: Sequence[str] = GENOMIC_MODALITIES) -> list[str]:
        return [c for c in self.genomics.columns if genomic_modality(c) in set(modalities)]

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "patients": len(self),
            "events": int(self.patients["event"].sum()),
            "event_rate": float(self.patients["event"].mean()) if len(self) else float("nan"),
            "with_genomics": len(self.genomics),
            "genomic_features": {m: len(self.genomic_features([m])) for m in GENOMIC_MODALITIES},
            "oncotree_codes": self.oncotree_codes(),
        }

    def oncotree_codes(self) -> list[str]:
        """The cancer types of the patients (the table's ``oncotree_code``), when it has them."""
        if "oncotree_code" not in self.patients.columns:
            return []
        return sorted({str(c).strip().upper() for c in self.patients["oncotree_code"].dropna()})


def read_all_clean(
    path: str | Path,
    *,
    name: str | None = None,
    modalities: Sequence[str] = GENOMIC_MODALITIES,
    unsuffixed_genes_as: str | None = None,
    ignore_columns: Sequence[str] = (),
    new_patients: bool = False,
) -> Cohort:
    """Read a ``tcga_<c>_all_clean.csv`` (one row per slide) into a patient-level :class:`Cohort`.

    Only recognised columns are read: the clinical columns (:data:`CLINICAL_COLUMNS`) and genomic
    features by suffix (``_rnaseq``, ``_cnv``, ``_mut``), never by position. Any other numeric
    column is an error, unless it is listed in ``ignore_columns`` (dropped) or
    ``unsuffixed_genes_as`` names the modality unsuffixed gene columns are (MCAT's UCEC RNA
    table: ``rnaseq``; they are renamed ``<GENE>_<modality>`` and the choice is logged). A column
    that looks like an outcome (``os_days``, ``vital_status``, ``dfs_event`` ...) never becomes a
    feature: it is an error unless ignored. Non-numeric unknown columns are dropped and logged.
    Raises :class:`InputDataError` naming the file, the patient
    and the problem for anything that would silently corrupt training.

    ``new_patients``: patients to score rather than train on. Their outcome columns are
    optional (``time``/``event`` are NaN where absent) and missing genomic values stay NaN, for
    the caller to report and impute; values that are present are checked as for training.
    """
    path = Path(path)
    file = str(path)
    frame = read_csv(path, what="cohort table", low_memory=False)
    frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed:")])
    required = ["case_id"] if new_patients else REQUIRED_COLUMNS
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputDataError(f"missing required column(s) {missing}", file=file)
    if new_patients:
        for column in ("survival_months", "censorship"):
            if column not in frame.columns:
                frame[column] = np.nan
    if frame.empty:
        raise InputDataError("no rows", file=file)
    frame["case_id"] = frame["case_id"].astype(str).str.strip()

    frame = _recognised_columns(frame, file, unsuffixed_genes_as, ignore_columns)
    genomic_columns = [c for c in frame.columns if genomic_modality(c) in set(modalities)]

    _check_times_and_censorship(frame, file, outcome_optional=new_patients)
    frame["survival_months"] = pd.to_numeric(frame["survival_months"], errors="coerce")
    frame["censorship"] = pd.to_numeric(frame["censorship"], errors="coerce")
    if "slide_id" in frame.columns:
        duplicated = frame["slide_id"].notna() & frame.duplicated(["case_id", "slide_id"])
        if duplicated.any():
            row = frame[duplicated].iloc[0]
            raise InputDataError(
                f"duplicate row for slide {row['slide_id']!r}", file=file, patient=row["case_id"]
            )
    _check_patient_rows_agree(frame, [c for c in PATIENT_FIELDS if c in frame.columns], file)
    if genomic_columns:
        _check_patient_rows_agree(frame, genomic_columns, file, kind="genomic values")
        _check_finite(frame, genomic_columns, file, allow_nan=new_patients)

    first = frame.groupby("case_id", sort=False).first()
    patients = pd.DataFrame(index=first.index)
    patients.index.name = "case_id"
    patients["time"] = first["survival_months"].astype(float)
    patients["event"] = 1 - first["censorship"].astype(float if new_patients else int)
    for column in ("age", "is_female", "site", "oncotree_code"):
        if column in first.columns:
            patients[column] = first[column]
    if "slide_id" in frame.columns:
        slides = frame.dropna(subset=["slide_id"]).groupby("case_id", sort=False)["slide_id"]
        patients["slide_ids"] = [tuple(slides.get_group(c)) if c in slides.groups else ()
                                 for c in patients.index]  # fmt: skip
    else:
        patients["slide_ids"] = [()] * len(patients)
    genomics = first[genomic_columns].astype(np.float32)
    cohort_name = name or path.stem.replace("_all_clean", "").replace("tcga_", "")
    return Cohort(cohort_name, patients, genomics, path)


# Words of outcome columns (survival, vital status, events): such a column never becomes a feature.
_OUTCOME_WORDS = {"os", "dss", "dfs", "pfs", "efs", "rfs", "survival", "surv", "vital", "death",
                  "dead", "deceased", "censor", "censored", "censorship", "event", "events",
                  "status", "followup", "follow", "days", "months", "time", "outcome"}  # fmt: skip


def looks_like_outcome(column: str) -> bool:
    """``os_days``, ``vital_status``, ``survival_months.1``, ``DFS.event``: True;
    ``TP53_rnaseq``, ``OS9``, ``TIMELESS``: False (words, not substrings)."""
    words = re.split(r"[_.\s-]+", gene_of(str(column)).lower())
    return any(word in _OUTCOME_WORDS for word in words)


def _recognised_columns(
    frame: pd.DataFrame, file: str, unsuffixed_as: str | None, ignore: Sequence[str]
) -> pd.DataFrame:
    """The frame with only the columns kemm recognises (see :func:`read_all_clean`)."""
    if unsuffixed_as is not None and unsuffixed_as not in GENOMIC_MODALITIES:
        raise InputDataError(
            f"unsuffixed gene columns must be read as one of {list(GENOMIC_MODALITIES)}, "
            f"not {unsuffixed_as!r}", file=file,
        )  # fmt: skip
    ignored = [c for c in frame.columns if c in set(ignore) and c not in REQUIRED_COLUMNS]
    frame = frame.drop(columns=ignored)
    outcome_like = [c for c in frame.columns if c not in CLINICAL_COLUMNS
                    and looks_like_outcome(c) and pd.api.types.is_numeric_dtype(frame[c])]  # fmt: skip
    if outcome_like:
        raise InputDataError(
            f"column(s) {outcome_like[:5]} look like outcomes; kemm reads the outcome only from "
            "survival_months and censorship and never uses an outcome as a feature: remove "
            "them, or list them under data.ignore_columns",
            file=file,
        )
    unknown = [c for c in frame.columns if c not in CLINICAL_COLUMNS and not genomic_modality(c)]
    for column in unknown:
        near = [c for c in CLINICAL_COLUMNS if c.lower() == str(column).lower().strip()]
        near = near or difflib.get_close_matches(str(column), CLINICAL_COLUMNS, n=1, cutoff=0.85)
        if near:
            raise InputDataError(
                f"column {column!r} is not a column kemm reads; did you mean {near[0]!r}?",
                file=file,
            )
    numeric = [c for c in unknown if pd.api.types.is_numeric_dtype(frame[c])]
    text = [c for c in unknown if c not in set(numeric)]
    if numeric and unsuffixed_as is None:
        raise InputDataError(
            f"{len(numeric)} numeric column(s) are neither clinical columns "
            f"({', '.join(CLINICAL_COLUMNS)}) nor genomic features (suffix _rnaseq, _cnv, _mut), "
            f"e.g. {numeric[:5]}: add the suffix, set data.genomics.unsuffixed_as (e.g. rnaseq) "
            "if they are unsuffixed gene columns, or list them under data.ignore_columns",
            file=file,
        )
    if numeric:
        log.info("%s: %d unsuffixed numeric column(s) read as %s genes "
                 "(data.genomics.unsuffixed_as), e.g. %s", file, len(numeric), unsuffixed_as,
                 numeric[:3])  # fmt: skip
    if text:
        log.warning("%s: %d non-numeric column(s) kemm does not read were ignored: %s", file,
                    len(text), text[:8])  # fmt: skip
    if ignored:
        log.info("%s: column(s) ignored as configured (data.ignore_columns): %s", file, ignored)
    return frame.drop(columns=text).rename(columns={c: f"{c}_{unsuffixed_as}" for c in numeric})


def _check_times_and_censorship(
    frame: pd.DataFrame, file: str, outcome_optional: bool = False
) -> None:
    times = pd.to_numeric(frame["survival_months"], errors="coerce")
    censorship = pd.to_numeric(frame["censorship"], errors="coerce")
    if outcome_optional:  # a patient to score has both outcome values or neither
        blank = frame["survival_months"].isna() & frame["censorship"].isna()
        half = frame[frame["survival_months"].isna() ^ frame["censorship"].isna()]
        if len(half):
            raise InputDataError(
                "survival_months and censorship must both be given or both be empty",
                file=file, patient=half["case_id"].iloc[0],
            )  # fmt: skip
        if blank.all():
            return
        frame, times, censorship = frame[~blank], times[~blank], censorship[~blank]
    bad = frame[times.isna() | ~np.isfinite(times.fillna(0))]
    if len(bad):
        raise InputDataError(
            f"missing or non-numeric survival_months {bad['survival_months'].iloc[0]!r}",
            file=file, patient=bad["case_id"].iloc[0],
        )  # fmt: skip
    negative = frame[times < 0]
    if len(negative):
        raise InputDataError(
            f"negative survival_months {negative['survival_months'].iloc[0]}",
            file=file, patient=negative["case_id"].iloc[0],
        )  # fmt: skip
    invalid = frame[~censorship.isin([0, 1])]
    if len(invalid):
        raise InputDataError(
            f"censorship must be 0 (death) or 1 (censored), got {invalid['censorship'].iloc[0]!r}",
            file=file, patient=invalid["case_id"].iloc[0],
        )  # fmt: skip


def _check_patient_rows_agree(
    frame: pd.DataFrame, columns: list[str], file: str, kind: str = "patient fields"
) -> None:
    """Slide rows of one patient must carry the same patient-level values."""
    multi = frame[frame.duplicated("case_id", keep=False)]
    if multi.empty or not columns:
        return
    values = multi[["case_id", *columns]]
    nunique = values.groupby("case_id", sort=False).nunique(dropna=False)
    conflicting = nunique[(nunique > 1).any(axis=1)]
    if len(conflicting):
        case_id = conflicting.index[0]
        differing = [c for c in columns if conflicting.loc[case_id, c] > 1]
        raise InputDataError(
            f"conflicting rows for one patient: {kind} differ between its slide rows "
            f"in column(s) {differing[:5]}",
            file=file, patient=case_id,
        )  # fmt: skip


def _check_finite(
    frame: pd.DataFrame, columns: list[str], file: str, allow_nan: bool = False
) -> None:
    raw = frame[columns]
    values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    invalid = ~np.isfinite(values)
    if allow_nan:  # an empty cell is a missing value; text or infinity is still an error
        invalid &= ~raw.isna().to_numpy()
    bad_rows, bad_cols = np.nonzero(invalid)
    if len(bad_rows):
        row, col = bad_rows[0], bad_cols[0]
        raise InputDataError(
            f"genomic value {frame[columns[col]].iloc[row]!r} in column {columns[col]!r} is "
            f"NaN, infinite or non-numeric ({len(bad_rows)} such value(s) in the file)",
            file=file, patient=frame["case_id"].iloc[row],
        )  # fmt: skip
