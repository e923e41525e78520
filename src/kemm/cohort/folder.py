"""A prepared cohort on disk: what ``kemm prepare`` writes and a run reads back (``data.prepared``).

::

    prepared.json   format, kemm version, the data config it was prepared with, the cohort's
                    summary, splits, genomic groups and grouping report, clinical column
                    directions, feature-bag locations, text statements and the patient table
    arrays.h5       genomics (patients x features, float32), the clinical block (patients x
                    covariate columns), report-statement embeddings per patient, PBK embeddings

Reading it back gives the same :class:`~kemm.cohort.dataset.PreparedCohort` as preparing the
cohort from its files (the same values and dtypes), without reading a report or a feature bag
again. JSON and HDF5 only: nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from kemm import __version__
from kemm.cohort.config import DataConfig
from kemm.cohort.dataset import PreparedCohort, TextModality
from kemm.cohort.genomics import GenomicGroup, GroupingReport
from kemm.cohort.splits import Split
from kemm.cohort.table import Cohort
from kemm.errors import ConfigError, InputDataError, KemmError
from kemm.io import atomic_path

FORMAT = "kemm.prepared_cohort.v1"
# Data-config fields that may differ between preparing and training: where things are.
_LOCATION_FIELDS = {"prepared", "root", "cache_dir"}


# What a prepared folder's values depend on: the packages that read tables, reports, feature-bag
# headers and knowledge, and the CSV reader under all of them.
_PREPARING_CODE = ("cohort", "knowledge", "wsi", "io.py")
_PREPARING_SUFFIXES = {".py", ".yaml", ".json", ".txt"}


@lru_cache(maxsize=1)
def preparer_fingerprint() -> str:
    """A hash of the code and data that prepare a cohort (report rules, AJCC tables, PBK,
    genomics, the CSV reader; not stray files beside them): a folder prepared by other code
    holds values that code read (a report's stage by older tables), so it is refused."""
    kemm_root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for part in _PREPARING_CODE:
        paths = (
            [kemm_root / part] if part.endswith(".py") else sorted((kemm_root / part).rglob("*"))
        )
        for path in paths:
            if (
                path.is_file()
                and path.suffix in _PREPARING_SUFFIXES
                and "__pycache__" not in path.parts
            ):
                digest.update(path.relative_to(kemm_root).as_posix().encode())
                digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def prepared_is_current(folder: str | Path) -> bool:
    """Whether ``folder`` holds a prepared cohort written by this code (see
    :func:`preparer_fingerprint`)."""
    try:
        manifest = json.loads((Path(folder) / "prepared.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("preparer_fingerprint") == preparer_fingerprint()


def write_prepared(data: PreparedCohort, config: DataConfig, folder: str | Path) -> Path:
    """Write ``data`` (prepared from ``config``) into ``folder``; returns the manifest's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cohort = data.cohort
    patients = cohort.patients.copy()
    patients["slide_ids"] = [list(s) for s in patients["slide_ids"]]
    text = data.text
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "kemm_version": __version__,
        "preparer_fingerprint": preparer_fingerprint(),
        "data_config": _comparable(config),
        "cohort": {
            "name": cohort.name,
            "source": str(cohort.source) if cohort.source else None,
            "summary": cohort.summary(),
        },  # fmt: skip
        "patients": {
            "index": list(patients.index),
            "columns": {c: str(patients[c].dtype) for c in patients.columns},
            "values": {c: patients[c].tolist() for c in patients.columns},
        },
        "splits": [asdict(s) for s in data.splits],
        "groups": [{"name": g.name, "features": list(g.features)} for g in data.groups],
        "grouping_report": asdict(data.grouping_report) if data.grouping_report else None,
        "clinical_directions": data.clinical_directions,
        "bags": {
            "paths": {c: [str(p) for p in paths] for c, paths in data.bag_paths.items()},
            "wsi_dim": data.wsi_dim,
            "report": data.bag_report,
            "requirements": list(data.bag_requirements),
        },
        "text": None
        if text is None
        else {
            "encoder": text.encoder,
            "dim": text.dim,
            "report_statements": text.report_statements,
            "reports_without_statements": text.reports_without_statements,
            "pbk_statements": text.pbk_statements,
        },  # fmt: skip
    }
    arrays = folder / "arrays.h5"
    with atomic_path(arrays) as tmp, h5py.File(tmp, "w") as h5:
        _write_frame(h5, "genomics", cohort.genomics)
        _write_frame(h5, "clinical", data.clinical)
        if text is not None:
            for case_id, embeddings in text.report_embeddings.items():
                h5.create_dataset(f"report/{case_id}", data=embeddings)
            for name in ("pbk_general", "pbk_risk"):
                if getattr(text, name) is not None:
                    h5.create_dataset(name, data=getattr(text, name))
    path = folder / "prepared.json"
    path.write_text(json.dumps(manifest, default=_json_default))
    return path


def read_prepared(folder: str | Path, config: DataConfig | None = None) -> PreparedCohort:
    """The prepared cohort in ``folder``; with ``config``, an error unless it was prepared with
    the same data config (so a run never trains on a folder made for other inputs). A corrupt
    or truncated ``prepared.json`` or ``arrays.h5`` is one error naming it."""
    folder = Path(folder)
    path = folder / "prepared.json"
    if not path.is_file():
        raise InputDataError("not a prepared cohort (no prepared.json; see kemm prepare)",
                             file=str(folder))  # fmt: skip
    try:
        return _read_prepared(folder, path, config)
    except KemmError:  # its own messages (a config mismatch, an unknown format) as they are
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputDataError(
            f"not readable JSON ({error}); rerun kemm prepare", file=str(path)
        ) from None
    except OSError as error:  # h5py: truncated or not HDF5
        raise InputDataError(f"cannot read the prepared arrays ({' '.join(str(error).split())}); "
                             "rerun kemm prepare", file=str(folder / "arrays.h5")) from None  # fmt: skip
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise InputDataError(f"incomplete or inconsistent prepared cohort ({type(error).__name__}: "
                             f"{error}); rerun kemm prepare", file=str(folder)) from None  # fmt: skip


def _read_prepared(folder: Path, path: Path, config: DataConfig | None) -> PreparedCohort:
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise InputDataError(f"unknown prepared-cohort format {manifest.get('format')!r}",
                             file=str(path))  # fmt: skip
    if manifest.get("preparer_fingerprint") != preparer_fingerprint():
        raise InputDataError(
            f"prepared by other code (kemm {manifest.get('kemm_version', '?')}, preparing code "
            f"{str(manifest.get('preparer_fingerprint') or 'unrecorded')[:12]}; this is kemm "
            f"{__version__}, {preparer_fingerprint()[:12]}): its report facts, statements and "
            "genomics are as that code read them; run kemm prepare again",
            file=str(path),
        )
    if config is not None:
        _check_same_config(manifest["data_config"], _comparable(config), path)
    table = manifest["patients"]
    patients = pd.DataFrame(table["values"], index=pd.Index(table["index"], name="case_id"))
    for column, dtype in table["columns"].items():
        if column == "slide_ids":
            patients[column] = [tuple(s) for s in patients[column]]
        else:
            patients[column] = patients[column].astype(dtype)
    with h5py.File(folder / "arrays.h5", "r") as h5:
        genomics = _read_frame(h5, "genomics")
        clinical = _read_frame(h5, "clinical")
        text = None
        if manifest["text"] is not None:
            meta = manifest["text"]
            text = TextModality(
                encoder=meta["encoder"], dim=meta["dim"],
                report_statements=meta["report_statements"],
                report_embeddings={c: h5[f"report/{c}"][()] for c in meta["report_statements"]},
                pbk_statements=meta["pbk_statements"],
                pbk_general=h5["pbk_general"][()] if "pbk_general" in h5 else None,
                pbk_risk=h5["pbk_risk"][()] if "pbk_risk" in h5 else None,
                reports_without_statements=meta["reports_without_statements"],
            )  # fmt: skip
    info = manifest["cohort"]
    cohort = Cohort(
        info["name"], patients, genomics, Path(info["source"]) if info["source"] else None
    )
    bags = manifest["bags"]
    report = manifest["grouping_report"]
    return PreparedCohort(
        cohort=cohort,
        splits=[
            Split(s["name"], tuple(s["train"]), tuple(s["test"]), s["source"])
            for s in manifest["splits"]
        ],  # fmt: skip
        groups=[GenomicGroup(g["name"], tuple(g["features"])) for g in manifest["groups"]],
        grouping_report=GroupingReport(**report) if report else None,
        clinical=clinical,
        clinical_directions={k: int(v) for k, v in manifest["clinical_directions"].items()},
        text=text,
        bag_paths={c: [Path(p) for p in paths] for c, paths in bags["paths"].items()},
        wsi_dim=bags["wsi_dim"],
        bag_report=bags["report"],
        bag_requirements=tuple(bags["requirements"]),
    )


def _comparable(config: DataConfig) -> dict[str, Any]:
    return {k: v for k, v in config.model_dump(mode="json").items() if k not in _LOCATION_FIELDS}


def _check_same_config(prepared: dict, wanted: dict, path: Path) -> None:
    differing = sorted(k for k in set(prepared) | set(wanted) if prepared.get(k) != wanted.get(k))
    if differing:
        raise ConfigError(
            f"{path}: prepared with another data config (fields {differing} differ); prepare "
            "the cohort again with this config (kemm prepare) or use the config it was made with"
        )


def _write_frame(h5: h5py.File, name: str, frame: pd.DataFrame) -> None:
    values = frame.to_numpy()
    h5.create_dataset(name, data=values if values.dtype != object else values.astype(float))
    h5[name].attrs["index"] = json.dumps(list(frame.index))
    h5[name].attrs["columns"] = json.dumps(list(frame.columns))
    h5[name].attrs["index_name"] = frame.index.name or ""
    h5[name].attrs["dtypes"] = json.dumps([str(t) for t in frame.dtypes])


def _read_frame(h5: h5py.File, name: str) -> pd.DataFrame:
    data = h5[name]
    index = pd.Index(json.loads(data.attrs["index"]), name=data.attrs["index_name"] or None)
    frame = pd.DataFrame(data[()], index=index, columns=json.loads(data.attrs["columns"]))
    return frame.astype(dict(zip(frame.columns, json.loads(data.attrs["dtypes"]), strict=True)))


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in prepared.json")
