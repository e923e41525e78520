"""Cross-validation splits in the MCAT/PORPOISE ``splits_{k}.csv`` format.

Header ``,train,val``; each column lists ``case_id``s, NaN-padded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kemm.errors import InputDataError
from kemm.io import read_csv


@dataclass(frozen=True)
class Split:
    """One fold: patients to fit on (``train``) and to evaluate on (``test``)."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    source: str | None = None

    def check_against(self, case_ids: Iterable[str]) -> None:
        """Every id of the split must be a patient of the cohort."""
        known = set(case_ids)
        for part, ids in (("train", self.train), ("val", self.test)):
            absent = [c for c in ids if c not in known]
            if absent:
                raise InputDataError(
                    f"{len(absent)} {part} id(s) of split {self.name} are absent from the "
                    f"cohort table, e.g. {absent[:5]}",
                    file=self.source, patient=absent[0],
                )  # fmt: skip


def read_split(path: str | Path, name: str | None = None) -> Split:
    path = Path(path)
    file = str(path)
    frame = read_csv(path, what="split file")
    missing = [c for c in ("train", "val") if c not in frame.columns]
    if missing:
        raise InputDataError(
            f"missing column(s) {missing}; expected header ',train,val'", file=file
        )
    parts = {}
    for column in ("train", "val"):
        ids = [str(v).strip() for v in frame[column].dropna()]
        seen: set[str] = set()
        for case_id in ids:
            if case_id in seen:
                raise InputDataError(
                    f"listed twice in the {column} column", file=file, patient=case_id
                )
            seen.add(case_id)
        parts[column] = tuple(ids)
    overlap = sorted(set(parts["train"]) & set(parts["val"]))
    if overlap:
        raise InputDataError(
            f"{len(overlap)} patient(s) in both train and val, e.g. {overlap[:5]}",
            file=file, patient=overlap[0],
        )  # fmt: skip
    if not parts["train"] or not parts["val"]:
        raise InputDataError("train or val column is empty", file=file)
    return Split(name or path.stem, parts["train"], parts["val"], file)


def read_splits(directory: str | Path) -> list[Split]:
    """All ``splits_{k}.csv`` of a folder, ordered by k."""
    directory = Path(directory)
    files = sorted(
        (p for p in directory.glob("splits_*.csv") if re.fullmatch(r"splits_\d+\.csv", p.name)),
        key=lambda p: int(p.stem.split("_")[1]),
    )
    if not files:
        raise InputDataError("no splits_<k>.csv files", file=str(directory))
    numbers = [int(p.stem.split("_")[1]) for p in files]
    gaps = sorted(set(range(max(numbers) + 1)) - set(numbers))
    if gaps:
        raise InputDataError(
            f"split file(s) {[f'splits_{k}.csv' for k in gaps]} missing: the folder has "
            f"{[p.name for p in files]}; folds are numbered from 0 without gaps",
            file=str(directory),
        )
    return [read_split(p, name=f"fold{p.stem.split('_')[1]}") for p in files]
