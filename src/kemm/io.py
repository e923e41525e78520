"""Reading the user's input files with one kind of failure: :class:`~kemm.errors.InputDataError`.

Every table kemm reads (cohort tables, splits, signatures, reports, facts) goes through
:func:`read_csv`, so a missing, empty, unparsable or non-UTF-8 file gives the same one-line
message naming the file (and the line, where pandas says which) instead of a pandas traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from kemm.errors import InputDataError


def read_csv(
    path: str | os.PathLike[str], *, what: str = "CSV file", **options: Any
) -> pd.DataFrame:
    """``pandas.read_csv`` of a UTF-8 file; every way it can fail is an :class:`InputDataError`
    naming ``path``. ``what`` says what the file is for ("cohort table", "reports file")."""
    path = Path(path)
    file = str(path)
    if not path.exists():
        raise InputDataError(f"{what} not found", file=file)
    if not path.is_file():
        raise InputDataError(f"{what} is not a file", file=file)
    try:
        frame = pd.read_csv(path, encoding="utf-8", **options)
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{what} is empty (no header row)", file=file) from None
    except UnicodeDecodeError:
        data = path.read_bytes()  # pandas reports offsets within a chunk: find the byte again
        try:
            data.decode("utf-8")
            start = 0
        except UnicodeDecodeError as whole:
            start = whole.start
        line = data[:start].count(b"\n") + 1
        raise InputDataError(
            f"{what} is not UTF-8 text (byte 0x{data[start]:02x} on line {line}); "
            "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
            file=file,
        ) from None
    except pd.errors.ParserError as error:
        raise InputDataError(
            f"{what} cannot be parsed as CSV: {_one_line(error)}", file=file
        ) from None
    except (ValueError, OSError) as error:  # bad usecols/dtype, permissions, a directory
        raise InputDataError(f"cannot read {what}: {_one_line(error)}", file=file) from None
    _check_unique_header(path, what, options)
    return frame


def _check_unique_header(path: Path, what: str, options: dict[str, Any]) -> None:
    """pandas renames a repeated header (``x``, ``x.1``): two columns of one name are an
    error, since which one a reader takes (or whether both enter a model) is a guess."""
    import csv

    if options.get("header", "infer") is None or "names" in options:
        return
    with open(path, "rb") as handle:  # the header line only: the body is pandas' to decode
        line = handle.readline().decode("utf-8", errors="replace").lstrip("\ufeff")
    header = next(csv.reader([line], delimiter=options.get("sep", ",")), [])
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        name = name.strip()
        if name and name in seen:
            raise InputDataError(
                f"{what} has the column {name!r} twice (columns {seen[name]} and {index}); "
                "keep one",
                file=str(path),
            )
        seen.setdefault(name, index)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write into; it replaces ``path`` when the block
    ends, and is removed if the block fails (a full or read-only disk, an interrupt), so a
    reader never sees half a file and no ``*.tmp`` is left behind."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _one_line(error: Exception) -> str:
    return re.sub(r"\s+", " ", str(error)).strip()


def torch_load(path: str | os.PathLike[str], *, what: str, save_as: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never pickled
    code. A file holding pickled objects, or not a torch file, is one :class:`InputDataError`
    line naming it (torch's own text advises ``weights_only=False``: never for kemm users);
    ``save_as`` says what to save instead."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = " ".join(str(error).split())
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            problem = (
                f"refused: the file holds pickled Python objects ({found.group(1)}), not only "
                f"tensors; kemm reads {what} with torch.load(weights_only=True) and never runs "
                f"pickled code; save {save_as}"
            )
        else:
            detail = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
            reason = detail.group(1).strip() if detail else type(error).__name__
            problem = f"cannot read {what}: not a torch file that loads safely ({reason})"
        raise InputDataError(problem, file=str(path)) from None
    except Exception as error:  # noqa: BLE001 - any decoding failure is a bad file
        raise InputDataError(f"cannot read {what} ({_one_line(error)})", file=str(path)) from None
