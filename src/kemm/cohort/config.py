"""The data side of a run configuration: where a cohort's files are and which inputs to use.

Typed (pydantic); :mod:`kemm.engine.config` puts it under ``data:`` of a run config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenomicsConfig(_Strict):
    modalities: list[Literal["rnaseq", "cnv", "mut"]] = ["rnaseq", "cnv", "mut"]
    grouping: Literal["families", "hallmarks", "combine", "none"] = "families"
    signatures: str | None = None  # explicit signature CSV (overrides `grouping`'s file)
    on_empty: Literal["error", "drop"] = "error"
    top_variance: int | None = Field(None, ge=1)  # per-group filter fitted on the training fold
    # the modality of numeric table columns without a _rnaseq/_cnv/_mut suffix (MCAT's UCEC RNA
    # table); unset: such a column is an error (or list it under data.ignore_columns)
    unsuffixed_as: Literal["rnaseq", "cnv", "mut"] | None = None


class WSIConfig(_Strict):
    features_dir: str | None = None  # folder of <slide_id>.h5 / .pt bags
    encoder: str | None = None  # required encoder name in the bag attributes, when given
    dim: int | None = None


class ReportsConfig(_Strict):
    csv: str | None = None  # default: <root>/tcga/<cohort>/reports.csv
    column: str = "raw_text"
    refiner: Literal["extractive", "jsonl", "sentences"] = "extractive"
    refined_jsonl: str | None = None  # output of `kemm knowledge refine` when refiner=jsonl
    embeddings: str | None = None  # `kemm knowledge embed --out` file: statements + embeddings
    max_statements: int = Field(12, ge=1)


class DataConfig(_Strict):
    root: str = "../shared/data"
    prepared: str | None = None  # a `kemm prepare` folder made with this config: read, not rebuilt
    cohort: str  # folder name under <root>/tcga/
    table: str | None = None  # explicit table CSV, relative to the cohort folder or absolute
    ignore_columns: list[str] = []  # table columns kemm should drop unread (never features)
    splits: str | None = None  # default: <cohort folder>/splits
    folds: list[int] | None = None  # subset of folds to run (default: all)
    cancer: str | None = None  # cancer code for PBK; default: the cohort folder name
    genomics: GenomicsConfig | None = GenomicsConfig()
    wsi: WSIConfig | None = None
    reports: ReportsConfig | None = None
    pbk: bool = False
    # covariates by name: table columns (age, sex, ...) and report facts
    # (t, n, m, stage, grade, nodes, margin, lvi, pni, size), see kemm.knowledge.covariates
    clinical: list[str] = []
    facts_csv: str | None = None  # `kemm knowledge facts` output; default: extract from reports
    pbk_embeddings: str | None = None  # `kemm knowledge embed --pbk-out` file (default: library)
    text_encoder: str = "all-MiniLM-L6-v2"
    cache_dir: str | None = None  # text-embedding cache; default ~/.cache/kemm

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
