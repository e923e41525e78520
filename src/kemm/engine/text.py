"""The report and PBK modalities of a run: statements → frozen embeddings, cached on disk."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import h5py
import numpy as np

from kemm.cohort import Cohort
from kemm.engine.config import DataConfig
from kemm.engine.data import TextModality, cohort_dir
from kemm.errors import InputDataError

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("KEMM_CACHE", Path.home() / ".cache" / "kemm"))


class EmbeddingCache:
    """Statement embeddings keyed by (encoder, sha256 of the text) in one HDF5 file per encoder,
    so repeated runs never re-encode a statement (nor load the encoder when all are cached)."""

    def __init__(self, encoder_name: str, cache_dir: Path, device: str = "cpu"):
        self.encoder_name = encoder_name
        self.device = device
        self._encoder = None
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", encoder_name)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / f"text_embeddings_{safe}.h5"

    @property
    def encoder(self):
        if self._encoder is None:
            from kemm.knowledge.encoders import create_text_encoder

            self._encoder = create_text_encoder(self.encoder_name, device=self.device)
        return self._encoder

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        if self.path.exists():
            with h5py.File(self.path, "r") as store:
                for key in set(keys):
                    if key in store:
                        found[key] = store[key][()]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        if missing:
            vectors = self.encoder.encode(missing)
            with h5py.File(self.path, "a") as store:
                for text, vector in zip(missing, vectors, strict=True):
                    key = hashlib.sha256(text.encode()).hexdigest()
                    found[key] = np.asarray(vector, np.float32)
                    if key not in store:
                        store[key] = found[key]
        if not keys:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    @property
    def dim(self) -> int:
        if self.path.exists():
            with h5py.File(self.path, "r") as store:
                for key in store:
                    return int(store[key].shape[0])
        return int(self.encoder.dim)


def split_sentences(text: str, max_statements: int) -> list[str]:
    """Statements from an already-refined text (e.g. an LLM summary column)."""
    parts = re.split(r"(?<=[.;])\s+|\n+", text)
    return [p.strip() for p in parts if len(p.strip()) > 3][:max_statements]


def report_statements(config: DataConfig, cohort: Cohort) -> tuple[dict[str, list[str]], list[str]]:
    """Per-patient statements; also returns patients whose report yielded none (counted)."""
    reports = config.reports
    assert reports is not None
    statements: dict[str, list[str]] = {}
    if reports.refiner == "jsonl":
        from kemm.knowledge.reports import read_refined

        if not reports.refined_jsonl:
            raise InputDataError("reports.refiner is 'jsonl' but reports.refined_jsonl is not set")
        statements = {
            c: s[: reports.max_statements] for c, s in read_refined(reports.refined_jsonl).items()
        }
    else:
        from kemm.engine.data import cancer_code
        from kemm.knowledge.extractive import refine_extractive
        from kemm.knowledge.reports import read_reports

        csv = Path(reports.csv) if reports.csv else cohort_dir(config) / "reports.csv"
        texts = read_reports(csv, text_column=reports.column)
        for case_id, text in texts.items():
            if not text or not str(text).strip():
                continue
            if reports.refiner == "extractive":
                statements[case_id] = refine_extractive(
                    str(text), max_statements=reports.max_statements, cancer=cancer_code(config)
                )
            else:
                statements[case_id] = split_sentences(str(text), reports.max_statements)
    known = set(cohort.case_ids)
    statements = {c: s for c, s in statements.items() if c in known}
    empty = sorted(c for c, s in statements.items() if not s)
    return {c: s for c, s in statements.items() if s}, empty


def load_text_modality(config: DataConfig, cohort: Cohort) -> TextModality:
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    cache = EmbeddingCache(config.text_encoder, cache_dir)
    text = TextModality(encoder=config.text_encoder, dim=0)
    if config.reports is not None:
        statements, empty = report_statements(config, cohort)
        text.report_statements = statements
        text.reports_without_statements = empty
        flat = [s for case in statements.values() for s in case]
        vectors = cache.encode(flat)
        offset = 0
        for case_id, case in statements.items():
            text.report_embeddings[case_id] = vectors[offset : offset + len(case)]
            offset += len(case)
        if empty:
            log.warning(
                "%d report(s) yielded no statement; those patients use the no-report path",
                len(empty),
            )
    if config.pbk:
        from kemm.knowledge.pbk import load_pbk

        pbk = load_pbk(config.cancer or config.cohort)
        text.pbk_statements = list(pbk.general)
        text.pbk_general = cache.encode(list(pbk.general))
        prototypes = []
        for level in (pbk.low, pbk.intermediate, pbk.high):
            vector = cache.encode(list(level)).mean(axis=0)
            prototypes.append(vector / max(np.linalg.norm(vector), 1e-8))
        text.pbk_risk = np.stack(prototypes).astype(np.float32)
    text.dim = cache.dim
    return text
