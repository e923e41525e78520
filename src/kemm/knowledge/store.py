"""On-disk formats for knowledge embeddings (HDF5).

Statement embeddings (one file per cohort): root attrs ``encoder`` and ``dim``; one group per
``case_id`` with dataset ``embeddings`` (M x E float32) and attr ``statements`` (JSON list of the M
statements). PBK embeddings: root attrs ``encoder``, ``dim``, ``cancer``, ``provenance`` (JSON);
datasets ``general`` (P x E), ``prototypes`` (3 x E: low, intermediate, high; each the normalised
mean of that level's statement embeddings) and ``levels/<level>`` (the per-statement embeddings),
with the statements as JSON attrs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from kemm.errors import InputDataError
from kemm.io import atomic_path
from kemm.knowledge.pbk import PBK, RISK_LEVELS

__all__ = [
    "PBKEmbedding",
    "embed_pbk",
    "embed_statements",
    "read_pbk_embedding",
    "read_statement_embeddings",
    "statement_embeddings_info",
    "write_pbk_embedding",
    "write_statement_embeddings",
]


def _check_matrix(name: str, statements: list[str], emb: np.ndarray, dim: int | None) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(statements):
        raise InputDataError(
            f"embeddings of shape {emb.shape} do not match {len(statements)} statements",
            patient=name,
        )
    if dim is not None and emb.shape[0] and emb.shape[1] != dim:
        raise InputDataError(f"embedding dim {emb.shape[1]} != {dim}", patient=name)
    return emb


def write_statement_embeddings(
    path: str | os.PathLike[str],
    data: Mapping[str, tuple[list[str], np.ndarray]],
    encoder_name: str,
) -> Path:
    """Write ``{case_id: (statements, M x E embeddings)}`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dims = {np.asarray(e).shape[1] for _, e in data.values() if np.asarray(e).ndim == 2 and len(e)}
    if len(dims) > 1:
        raise InputDataError(f"mixed embedding dimensions {sorted(dims)}", file=str(path))
    dim = dims.pop() if dims else 0
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["encoder"] = encoder_name
        h5.attrs["dim"] = dim
        h5.attrs["format"] = "kemm.statement_embeddings.v1"
        for case_id, (statements, emb) in data.items():
            if "/" in case_id:
                raise InputDataError("case_id may not contain '/'", file=str(path), patient=case_id)
            emb = _check_matrix(case_id, list(statements), emb, dim or None)
            if emb.shape[0] == 0:
                emb = np.zeros((0, dim), dtype=np.float32)
            group = h5.create_group(case_id)
            group.create_dataset("embeddings", data=emb)
            group.attrs["statements"] = json.dumps(list(statements), ensure_ascii=False)
    return path


def embed_statements(
    statements: Mapping[str, list[str]], encoder: Any
) -> dict[str, tuple[list[str], np.ndarray]]:
    """``{case_id: (statements, M x E embeddings)}``, every statement encoded in one call."""
    flat = [s for case in statements.values() for s in case]
    vectors = np.asarray(encoder.encode(flat), dtype=np.float32)
    out, offset = {}, 0
    for case_id, case in statements.items():
        out[case_id] = (list(case), vectors[offset : offset + len(case)])
        offset += len(case)
    return out


def read_statement_embeddings(
    path: str | os.PathLike[str],
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Read a file written by :func:`write_statement_embeddings`."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError("statement embedding file not found", file=str(path))
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    with h5py.File(path, "r") as h5:
        for case_id, group in h5.items():
            statements = json.loads(group.attrs["statements"])
            out[case_id] = (statements, np.asarray(group["embeddings"][()], dtype=np.float32))
    return out


def statement_embeddings_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Root attributes (encoder, dim) of a statement embedding file."""
    with h5py.File(path, "r") as h5:
        return {"encoder": str(h5.attrs["encoder"]), "dim": int(h5.attrs["dim"]), "cases": len(h5)}


def _unit_mean(emb: np.ndarray) -> np.ndarray:
    mean = emb.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


@dataclass
class PBKEmbedding:
    """Embedded PBK: general statements (P x E) and risk prototypes (3 x E)."""

    cancer: str
    encoder: str
    general: np.ndarray
    prototypes: np.ndarray
    statements: dict[str, list[str]]
    level_embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.general.shape[1])


def embed_pbk(pbk: PBK, encoder: Any) -> PBKEmbedding:
    """Embed a PBK; each prototype is the normalised mean of its level's statement embeddings."""
    general = np.asarray(encoder.encode(list(pbk.general)), dtype=np.float32)
    levels = {
        lvl: np.asarray(encoder.encode(list(getattr(pbk, lvl))), np.float32) for lvl in RISK_LEVELS
    }
    prototypes = np.stack([_unit_mean(levels[lvl]) for lvl in RISK_LEVELS])
    statements = {"general": list(pbk.general)} | {
        lvl: list(getattr(pbk, lvl)) for lvl in RISK_LEVELS
    }
    return PBKEmbedding(
        cancer=pbk.cancer,
        encoder=encoder.name,
        general=general,
        prototypes=prototypes,
        statements=statements,
        level_embeddings=levels,
        provenance=dict(pbk.provenance),
    )


def write_pbk_embedding(path: str | os.PathLike[str], emb: PBKEmbedding) -> Path:
    """Write a :class:`PBKEmbedding` to HDF5."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = "kemm.pbk_embedding.v1"
        h5.attrs["encoder"] = emb.encoder
        h5.attrs["dim"] = emb.dim
        h5.attrs["cancer"] = emb.cancer
        h5.attrs["provenance"] = json.dumps(emb.provenance, ensure_ascii=False)
        h5.attrs["risk_levels"] = json.dumps(list(RISK_LEVELS))
        ds = h5.create_dataset("general", data=emb.general.astype(np.float32))
        ds.attrs["statements"] = json.dumps(emb.statements["general"], ensure_ascii=False)
        h5.create_dataset("prototypes", data=emb.prototypes.astype(np.float32))
        for level in RISK_LEVELS:
            data = emb.level_embeddings.get(level, np.zeros((0, emb.dim), np.float32))
            ds = h5.create_dataset(f"levels/{level}", data=np.asarray(data, np.float32))
            ds.attrs["statements"] = json.dumps(emb.statements.get(level, []), ensure_ascii=False)
    return path


def read_pbk_embedding(path: str | os.PathLike[str]) -> PBKEmbedding:
    """Read a file written by :func:`write_pbk_embedding`."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError("PBK embedding file not found", file=str(path))
    with h5py.File(path, "r") as h5:
        statements = {"general": json.loads(h5["general"].attrs["statements"])}
        levels = {}
        for level in RISK_LEVELS:
            levels[level] = np.asarray(h5[f"levels/{level}"][()], np.float32)
            statements[level] = json.loads(h5[f"levels/{level}"].attrs["statements"])
        return PBKEmbedding(
            cancer=str(h5.attrs["cancer"]),
            encoder=str(h5.attrs["encoder"]),
            general=np.asarray(h5["general"][()], np.float32),
            prototypes=np.asarray(h5["prototypes"][()], np.float32),
            statements=statements,
            level_embeddings=levels,
            provenance=json.loads(h5.attrs["provenance"]),
        )
