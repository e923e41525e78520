"""The report and PBK modalities of a run: statements → frozen embeddings, cached on disk."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from kemm.cohort import Cohort
from kemm.cohort.config import DataConfig
from kemm.cohort.dataset import TextModality
from kemm.cohort.prepared import cohort_dir
from kemm.errors import InputDataError

log = logging.getLogger(__name__)


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
        from kemm.cohort.prepared import patient_rules
        from kemm.knowledge.extractive import refine_extractive
        from kemm.knowledge.reports import read_reports

        csv = Path(reports.csv) if reports.csv else cohort_dir(config) / "reports.csv"
        texts = read_reports(csv, text_column=reports.column)
        # each reported patient's rules (by its OncoTree code where that names other tables)
        rules = {}
        if reports.refiner == "extractive":
            rules = patient_rules(config, cohort, [c for c in texts if c in cohort.patients.index])
        for case_id, text in texts.items():
            if not text or not str(text).strip() or case_id not in cohort.patients.index:
                continue
            if reports.refiner == "extractive":
                statements[case_id] = refine_extractive(
                    str(text),
                    max_statements=reports.max_statements,
                    cancer=rules[case_id],
                )
            else:
                statements[case_id] = split_sentences(str(text), reports.max_statements)
    known = set(cohort.case_ids)
    statements = {c: s for c, s in statements.items() if c in known}
    empty = sorted(c for c, s in statements.items() if not s)
    return {c: s for c, s in statements.items() if s}, empty


def load_text_modality(config: DataConfig, cohort: Cohort) -> TextModality:
    """Report statements and PBK of a run as frozen embeddings.

    Statements come from ``data.reports`` (refined here, or a ``kemm knowledge refine`` JSONL);
    ``reports.embeddings`` takes a ``kemm knowledge embed`` file as is. The PBK is the shipped
    library's (or ``data.pbk_embeddings``, a ``kemm knowledge embed --pbk-out`` file). Texts are
    embedded through kemm's one embedding cache (:class:`kemm.knowledge.encoders.CachedTextEncoder`).
    """
    from kemm.knowledge.encoders import CachedTextEncoder
    from kemm.knowledge.store import embed_statements

    encoder = CachedTextEncoder(config.text_encoder, config.cache_dir)
    text = TextModality(encoder=config.text_encoder, dim=0)
    if config.reports is not None:
        if config.reports.embeddings:
            embedded, empty = _embedded_statements(config, cohort)
        else:
            statements, empty = report_statements(config, cohort)
            embedded = embed_statements(statements, encoder)
        text.report_statements = {c: s for c, (s, _) in embedded.items()}
        text.report_embeddings = {c: e for c, (_, e) in embedded.items()}
        text.reports_without_statements = empty
        if empty:
            log.warning(
                "%d report(s) yielded no statement; those patients use the no-report path",
                len(empty),
            )
    if config.pbk:
        pbk = _pbk_embedding(config, encoder, cohort)
        text.pbk_statements = list(pbk.statements["general"])
        text.pbk_general = pbk.general
        text.pbk_risk = pbk.prototypes
    text.dim = _common_dim(text, encoder, config)
    return text


def _embedded_statements(config: DataConfig, cohort: Cohort):
    """Statements and embeddings of a ``kemm knowledge embed`` file, checked against the run's
    text encoder (the PBK and every statement must share one embedding space)."""
    from kemm.knowledge.store import read_statement_embeddings, statement_embeddings_info

    path = config.reports.embeddings
    info = statement_embeddings_info(path)
    if info["encoder"] != config.text_encoder:
        raise InputDataError(
            f"embedded with {info['encoder']!r}, but the run's text encoder is "
            f"{config.text_encoder!r} (set data.text_encoder to match)",
            file=str(path),
        )
    known = set(cohort.case_ids)
    embedded = {c: (s[: config.reports.max_statements], e[: config.reports.max_statements])
                for c, (s, e) in read_statement_embeddings(path).items() if c in known}  # fmt: skip
    empty = sorted(c for c, (s, _) in embedded.items() if not s)
    return {c: v for c, v in embedded.items() if v[0]}, empty


def _pbk_embedding(config: DataConfig, encoder, cohort: Cohort | None = None):
    from kemm.knowledge.store import embed_pbk, read_pbk_embedding

    if config.pbk_embeddings:
        embedding = read_pbk_embedding(config.pbk_embeddings)
        if embedding.encoder != config.text_encoder:
            raise InputDataError(
                f"PBK embedded with {embedding.encoder!r}, but the run's text encoder is "
                f"{config.text_encoder!r}",
                file=str(config.pbk_embeddings),
            )
        return embedding
    from kemm.cohort.prepared import cancer_type
    from kemm.knowledge.pbk import load_pbk

    return embed_pbk(load_pbk(cancer_type(config, cohort).code), encoder)


def _common_dim(text: TextModality, encoder, config: DataConfig) -> int:
    dims = {e.shape[1] for e in text.report_embeddings.values() if e.ndim == 2 and len(e)}
    if text.pbk_general is not None:
        dims.add(int(text.pbk_general.shape[1]))
    if len(dims) > 1:
        raise InputDataError(f"text embeddings of different sizes {sorted(dims)} in one run")
    return dims.pop() if dims else encoder.dim
