"""Reading cohort report tables and refined-statement files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from kemm.errors import InputDataError
from kemm.io import read_csv

__all__ = ["read_refined", "read_reports"]


def read_reports(
    csv_path: str | os.PathLike[str], text_column: str = "raw_text", *, id_column: str = "case_id"
) -> dict[str, str]:
    """``case_id -> report text`` from a CSV (e.g. ``tcga/<c>/reports.csv``).

    Rows with an empty text are left out (a patient without a report simply has none).
    Raises :class:`~kemm.errors.InputDataError` for a missing file or column, or a case_id that
    appears twice.
    """
    path = Path(csv_path)
    table = read_csv(path, what="reports file", dtype=str, keep_default_na=False)
    _check_control_characters(path, id_column)
    for column in (id_column, text_column):
        if column not in table.columns:
            raise InputDataError(
                f"missing column {column!r}; columns are {list(table.columns)}"
                + (" (choose the text column with --text-column)" if column == text_column else ""),
                file=str(path),
            )
    if table.empty:
        raise InputDataError("no reports: the file has a header but no rows", file=str(path))
    ids = table[id_column].str.strip()
    if (ids == "").any():
        row = int((ids == "").to_numpy().nonzero()[0][0]) + 2
        raise InputDataError(f"empty {id_column} on line {row}", file=str(path))
    duplicated = ids[ids.duplicated()].unique().tolist()
    if duplicated:
        raise InputDataError(
            f"{len(duplicated)} duplicate {id_column}(s), one row per patient expected "
            f"(first: {duplicated[:5]})",
            file=str(path),
            patient=duplicated[0],
        )
    texts = table[text_column].fillna("")
    return {cid: text for cid, text in zip(ids, texts, strict=True) if text.strip()}


# NUL and the other C0 controls that are not whitespace (tab, newlines, form feed are text)
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_MARK = "\ufffc"


def _check_control_characters(path: Path, id_column: str) -> None:
    """A NUL byte ends a field for the CSV parser, silently cutting the report short: any
    control character is an error naming the patient (found by parsing a marked copy)."""
    data = path.read_bytes()
    found = _CONTROL.search(data)
    if found is None:
        return
    import io

    import pandas as pd

    line = data[: found.start()].count(b"\n") + 1
    text = _CONTROL.sub(_MARK.encode(), data).decode("utf-8", errors="replace")
    patient = None
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        hits = table.apply(lambda column: column.str.contains(_MARK, regex=False))
        row = hits.any(axis=1).to_numpy().nonzero()[0]
        if len(row) and id_column in table.columns:
            patient = str(table[id_column].iloc[row[0]]).strip()
    except Exception:  # noqa: BLE001 - the line number still says where
        patient = None
    raise InputDataError(
        f"control character 0x{found.group()[0]:02x} on line {line} (a NUL byte would cut the report "
        "short when read): remove it",
        file=str(path), patient=patient,
    )  # fmt: skip


def read_refined(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``case_id -> statements`` from a ``kemm knowledge refine`` JSON-lines file."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError("refined statements file not found", file=str(path))
    out: dict[str, list[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise InputDataError(f"not UTF-8 text ({error.reason})", file=str(path)) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            case_id, statements = record["case_id"], record["statements"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputDataError(
                f"line {number}: not a refine record ({error})", file=str(path)
            ) from error
        if case_id in out:
            raise InputDataError(
                f"line {number}: duplicate case_id", file=str(path), patient=case_id
            )
        if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
            raise InputDataError(
                f"line {number}: statements must be a list of strings",
                file=str(path),
                patient=case_id,
            )
        out[case_id] = statements
    return out
