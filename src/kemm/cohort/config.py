"""The data side of a run configuration: where a cohort's files are and which inputs to use.

Typed (pydantic); :mod:`kemm.engine.config` puts it under ``data:`` of a run config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _doc(default, description: str, **limits):
    """A field with its one line of meaning (``docs/config.md`` is generated from these)."""
    return Field(default, description=description, **limits)


class GenomicsConfig(_Strict):
    modalities: list[Literal["rnaseq", "cnv", "mut"]] = _doc(
        ["rnaseq", "cnv", "mut"], "genomic data types read (columns by suffix _rnaseq, _cnv, _mut)"
    )
    grouping: Literal["families", "hallmarks", "combine", "none"] = _doc(
        "families",
        "genes grouped into the 6 gene families, the 50 Hallmark pathways, both, or one group",
    )
    signatures: str | None = _doc(None, "a signature CSV of your own (overrides grouping's file)")
    on_empty: Literal["error", "drop"] = _doc(
        "error", "a group none of whose genes is in the table: an error, or dropped and reported"
    )
    top_variance: int | None = _doc(
        None, "keep the N most variable features per group (fitted on the training fold)", ge=1
    )
    unsuffixed_as: Literal["rnaseq", "cnv", "mut"] | None = _doc(
        None,
        "read numeric table columns without a suffix as this data type (MCAT's UCEC RNA "
        "table); unset, such a column is an error",
    )


class WSIConfig(_Strict):
    features_dir: str | None = _doc(
        None, "folder of feature bags named <slide_id>.h5 (kemm, CLAM, TRIDENT) or .pt"
    )
    encoder: str | None = _doc(None, "the encoder every bag must have been extracted with")
    dim: int | None = _doc(None, "the feature dimension every bag must have")


class ReportsConfig(_Strict):
    csv: str | None = _doc(
        None, "reports CSV (case_id + text columns); default <root>/tcga/<cohort>/reports.csv"
    )
    column: str = _doc("raw_text", "the column holding the report text")
    refiner: Literal["extractive", "jsonl", "sentences"] = _doc(
        "extractive",
        "statements from the fact extractor, from a `kemm knowledge refine` file, or "
        "the report's own sentences",
    )
    refined_jsonl: str | None = _doc(
        None, "the `kemm knowledge refine` output when refiner is jsonl"
    )
    embeddings: str | None = _doc(
        None, "a `kemm knowledge embed --out` file of statements and their embeddings"
    )
    max_statements: int = _doc(12, "statements kept per report (stage, TNM, grade first)", ge=1)


class DataConfig(_Strict):
    root: str = _doc(
        "../shared/data",
        "data root: the folder holding tcga/<cohort>/ and signatures/ (or --data-root)",
    )
    prepared: str | None = _doc(
        None, "a `kemm prepare` folder made with this config: read instead of the files"
    )
    cohort: str = _doc(..., "cohort folder name under <root>/tcga/ (e.g. kirc)")
    table: str | None = _doc(
        None,
        "the cohort table CSV, relative to the cohort folder or "
        "absolute; default tcga_<cohort>_all_clean.csv",
    )
    ignore_columns: list[str] = _doc(
        [], "table columns to drop unread (they never become features)"
    )
    splits: str | None = _doc(None, "folder of splits_<k>.csv; default <cohort folder>/splits")
    folds: list[int] | None = _doc(None, "the folds to run, e.g. [0, 1]; default all")
    cancer: str | None = _doc(
        None,
        "cancer type of the report rules, AJCC table and PBK: a TCGA code (KIRC), a "
        "combined cohort (COADREAD, KIPAN), an OncoTree code (CCRCC) or a name (kidney); default "
        "the cohort name, else the table's OncoTree codes. In a combined cohort of projects with "
        "different AJCC tables (STES) each patient's oncotree_code picks its project's rules",
    )
    genomics: GenomicsConfig | None = _doc(GenomicsConfig(), "genomic inputs (null: none)")
    wsi: WSIConfig | None = _doc(None, "slide feature bags (null: no slides)")
    reports: ReportsConfig | None = _doc(None, "pathology reports as statements (null: none)")
    pbk: bool = _doc(False, "prognostic background knowledge of the cancer type as text tokens")
    clinical: list[str] = _doc(
        [],
        "covariates by name: table columns (age, sex) and report facts "
        "(t, n, m, stage, grade, nodes, margin, lvi, pni, size, "
        "histology)",
    )
    facts_csv: str | None = _doc(
        None, "a `kemm knowledge facts` CSV; default: facts extracted from the reports"
    )
    derived_facts: bool = _doc(
        True,
        "T and N derived from the findings that define them (size, depth, node counts) where "
        "a report states none; false: only stated categories (a stage is still derived from "
        "stated TNM)",
    )
    pbk_embeddings: str | None = _doc(
        None, "a `kemm knowledge embed --pbk-out` file; default the built-in library"
    )
    text_encoder: str = _doc("all-MiniLM-L6-v2", "sentence encoder of statements and PBK")
    cache_dir: str | None = _doc(None, "text-embedding cache; default ~/.cache/kemm")

    @field_validator("folds")
    @classmethod
    def _distinct_folds(cls, folds: list[int] | None) -> list[int] | None:
        if folds is None:
            return folds
        if not folds:
            raise ValueError("an empty list runs nothing; leave data.folds unset to run all")
        repeated = sorted({k for k in folds if folds.count(k) > 1})
        if repeated:
            raise ValueError(f"fold(s) {repeated} listed twice (each would count twice)")
        return folds
