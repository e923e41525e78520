"""Patient-level cohort tables read from the MCAT/PORPOISE ``*_all_clean.csv`` format.

The file has one row per slide; a :class:`Cohort` has one row per patient. ``censorship``
(1 = censored) is converted here, once, to ``event`` (1 = death observed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kemm.cohort.target import SurvivalTarget
from kemm.errors import InputDataError
from kemm.io import read_csv

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
        }


def read_all_clean(
    path: str | Path,
    *,
    name: str | None = None,
    modalities: Sequence[str] = GENOMIC_MODALITIES,
    unsuffixed_genes_as: str | None = "rnaseq",
    new_patients: bool = False,
) -> Cohort:
    """Read a ``tcga_<c>_all_clean.csv`` (one row per slide) into a patient-level :class:`Cohort`.

    Genomic columns are recognised by name (``_rnaseq``, ``_cnv``, ``_mut``), never by position.
    Files with unsuffixed gene columns (MCAT's UCEC RNA table) get them renamed to
    ``<GENE>_<unsuffixed_genes_as>``. Raises :class:`InputDataError` naming the file, the patient
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

    renames = {}
    for column in frame.columns:
        if column in CLINICAL_COLUMNS or genomic_modality(column):
            continue
        if unsuffixed_genes_as is not None and pd.api.types.is_numeric_dtype(frame[column]):
            renames[column] = f"{column}_{unsuffixed_genes_as}"
    frame = frame.rename(columns=renames)
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
