"""The prepared cohort: everything a run needs from its data root, read and checked once.

:func:`prepare_cohort` reads the cohort table, the splits, the genomic groups, the clinical block
(table covariates and report facts), the text modality and the feature-bag locations, each
checked with errors that name the file and the patient. It is fold-independent; what is fitted
on a training fold lives in :mod:`kemm.engine.data`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kemm.cohort import genomics as gene_groups
from kemm.cohort.config import DataConfig
from kemm.cohort.dataset import PreparedCohort
from kemm.cohort.folder import read_prepared
from kemm.cohort.genomics import GenomicGroup
from kemm.cohort.splits import Split, read_splits
from kemm.cohort.table import Cohort, read_all_clean
from kemm.errors import InputDataError
from kemm.io import read_csv

log = logging.getLogger(__name__)

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms")


def signatures_path(config: DataConfig) -> Path | None:
    """The signature CSV that groups the genomic features (None: no grouping file)."""
    genomics = config.genomics
    if genomics is None or (genomics.grouping == "none" and not genomics.signatures):
        return None
    if genomics.signatures:
        return Path(genomics.signatures)
    return Path(config.root) / "signatures" / gene_groups.SIGNATURE_FILES[genomics.grouping]


def splits_dir(config: DataConfig) -> Path:
    return Path(config.splits) if config.splits else cohort_dir(config) / "splits"


def input_files(config: DataConfig, data: PreparedCohort) -> dict[str, list[Path]]:
    """Every file a run reads, by role (``bags`` apart: many and large, fingerprinted by size
    and modification time only); a resumed run checks them unchanged."""
    from kemm.knowledge.covariates import FACT_COVARIATES

    if config.prepared:
        folder = Path(config.prepared)
        files = {"prepared cohort": [folder / "prepared.json", folder / "arrays.h5"]}
    else:
        files = {
            "cohort table": [resolve_table_path(config)],
            "splits": sorted(splits_dir(config).glob("splits_*.csv")),
            "signatures": [p for p in [signatures_path(config)] if p is not None],
        }
        reads_reports = config.reports is not None or (
            not config.facts_csv and any(c in FACT_COVARIATES for c in config.clinical)
        )
        files["reports"] = [reports_path(config)] if reads_reports else []
        reports = config.reports
        named = [config.facts_csv, config.pbk_embeddings,
                 reports.refined_jsonl if reports else None, reports.embeddings if reports else None]  # fmt: skip
        files["other inputs"] = [Path(p) for p in named if p]
    files["bags"] = sorted({p for paths in data.bag_paths.values() for p in paths})
    return files


def cohort_dir(config: DataConfig) -> Path:
    return Path(config.root) / "tcga" / config.cohort


def check_data_root(config: DataConfig) -> Path:
    """The cohort folder ``<root>/tcga/<cohort>``; a missing data root or cohort folder is an
    error that names the folder and says how to point at the right one."""
    root = Path(config.root)
    if not root.is_dir():
        raise InputDataError(
            f"data root not found (resolved to {root.resolve()}); pass --data-root PATH "
            "(the folder holding tcga/<cohort>/ and signatures/) or set data.root",
            file=str(root),
        )
    folder = cohort_dir(config)
    if not folder.is_dir():
        present = sorted(p.name for p in (root / "tcga").glob("*") if p.is_dir())
        raise InputDataError(
            f"cohort folder not found; cohorts under {root / 'tcga'}: {present or 'none'}",
            file=str(folder),
        )
    return folder


def resolve_table_path(config: DataConfig) -> Path:
    if config.table and Path(config.table).is_absolute():
        return Path(config.table)
    folder = check_data_root(config)
    if config.table:
        return folder / config.table
    path = folder / f"tcga_{config.cohort}_all_clean.csv"
    if not path.is_file():
        candidates = sorted(folder.glob("*_all_clean.csv"))
        if len(candidates) == 1:
            return candidates[0]
        found = f"found {[p.name for p in candidates]}" if candidates else "the folder has none"
        raise InputDataError(
            f"no cohort table: expected {path.name} or one *_all_clean.csv (or set data.table); "
            + found,
            file=str(folder),
        )
    return path


@dataclass
class NewPatients:
    """How :func:`prepare_cohort` reads patients to score (``kemm predict``) rather than to
    cross-validate: no splits, outcomes optional, the trained run's genomic groups instead of
    a regrouping, missing values kept as NaN for the caller to check, report and impute."""

    groups: list[GenomicGroup]
    reports_csv: str | None = None  # these patients' reports (text and report facts)
    allow_missing: bool = False  # a clinical column absent from the table becomes NaN


def prepare_cohort(
    config: DataConfig,
    *,
    text_loader=None,
    with_splits: bool = True,
    new_patients: NewPatients | None = None,
) -> PreparedCohort:
    """Read and validate everything fold-independent. ``text_loader`` builds the text modality
    (see :func:`kemm.engine.text.load_text_modality`); it is injected to keep this testable."""
    if config.prepared and new_patients is None:
        return read_prepared(config.prepared, config)
    table_path = resolve_table_path(config)
    modalities = config.genomics.modalities if config.genomics else []
    cohort = read_all_clean(
        table_path, name=config.cohort, modalities=modalities or ["rnaseq"],
        unsuffixed_genes_as=config.genomics.unsuffixed_as if config.genomics else None,
        ignore_columns=config.ignore_columns, new_patients=new_patients is not None,
    )  # fmt: skip
    if new_patients is not None:
        clinical, directions = _clinical_frame(config, cohort, table_path, new_patients)
        prepared = PreparedCohort(cohort, [], list(new_patients.groups), None, clinical, directions)
        return _attach_bags_and_text(prepared, config, text_loader, scoring=True)
    folder = splits_dir(config)
    splits = read_splits(folder) if with_splits else []
    if with_splits and config.folds is not None:
        unknown = [k for k in config.folds if k >= len(splits) or k < 0]
        if unknown:
            raise InputDataError(
                f"folds {unknown} requested; {len(splits)} split files exist", file=str(folder)
            )
        splits = [splits[k] for k in config.folds]
    for split in splits:
        split.check_against(cohort.case_ids)
        _check_split_outcomes(split, cohort, folder)

    groups: list[GenomicGroup] = []
    report = None
    if config.genomics is not None:
        genomics = config.genomics
        if genomics.grouping == "none" and not genomics.signatures:
            groups = gene_groups.single_group(cohort.genomics.columns, genomics.modalities)
        else:
            signature_path = signatures_path(config)
            groups, report = gene_groups.group_features(
                cohort.genomics.columns,
                gene_groups.read_signatures(signature_path),
                modalities=genomics.modalities,
                signature_file=str(signature_path),
                on_empty=genomics.on_empty,
            )
    clinical, directions = _clinical_frame(config, cohort, table_path)
    prepared = PreparedCohort(cohort, splits, groups, report, clinical, directions)
    return _attach_bags_and_text(prepared, config, text_loader)


def _check_split_outcomes(split: Split, cohort: Cohort, folder: Path) -> None:
    """Each fold must be able to fit and score a survival model: events to learn from in its
    training part, and at least one comparable pair (an event before another time) to score."""
    train, test = cohort.subset(split.train).target, cohort.subset(split.test).target
    file = split.source or str(folder)
    if train.event.sum() < 2:
        raise InputDataError(
            f"{split.name}: its training part ({len(train)} patients) has "
            f"{int(train.event.sum())} event(s); a survival model needs at least 2 (use fewer "
            "folds or more patients)",
            file=file,
        )
    comparable = any(
        e and (test.time > t).any() for e, t in zip(test.event, test.time, strict=True)
    )
    if not comparable:
        raise InputDataError(
            f"{split.name}: its evaluation part ({len(test)} patients, "
            f"{int(test.event.sum())} event(s)) has no comparable pair, so no C-index can be "
            "computed (use fewer folds or more patients)",
            file=file,
        )


def _attach_bags_and_text(
    prepared: PreparedCohort, config: DataConfig, text_loader, scoring: bool = False
) -> PreparedCohort:
    if config.wsi is not None and config.wsi.features_dir:
        _attach_bags(prepared, config, scoring)
    if text_loader is not None and (config.reports is not None or config.pbk):
        prepared.text = text_loader(config, prepared.cohort)
    return prepared


def _clinical_frame(
    config: DataConfig, cohort: Cohort, table_path: Path, new: NewPatients | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Covariates by name: table columns (``age``, ``sex``/``is_female``, any numeric column) and
    report facts (``t, n, m, stage, grade, nodes, margin, lvi, pni, size``), encoded by
    :func:`kemm.knowledge.covariates.encode_facts`; also each column's direction of effect."""
    from kemm.knowledge.covariates import FACT_COVARIATES, encode_facts

    frame = pd.DataFrame(index=cohort.patients.index)
    directions: dict[str, int] = {}
    fact_names = [c for c in config.clinical if c in FACT_COVARIATES]
    for column in config.clinical:
        if column in FACT_COVARIATES:
            continue
        source = "is_female" if column == "sex" else column
        directions[column] = 1 if column == "age" else 0
        if source not in cohort.patients.columns:
            if new is not None and new.allow_missing:
                frame[column] = np.nan  # imputed with the training-fold mean, and reported
                continue
            import difflib

            close = difflib.get_close_matches(source, list(cohort.patients.columns), n=1)
            close = close or [c for c in cohort.patients.columns if c.lower() == source.lower()]
            raise InputDataError(
                f"clinical covariate {column!r} is neither a column of the table nor a report "
                f"fact ({', '.join(FACT_COVARIATES)})"
                + (f"; did you mean {close[0]!r}?" if close else "")
                + ("; pass --allow-missing to impute it" if new is not None else ""),
                file=str(table_path),
            )
        frame[column] = _numeric_covariate(cohort.patients[source], source, table_path)
    if fact_names:
        values = report_fact_values(config, cohort, new.reports_csv if new else None)
        encoded, fact_directions = encode_facts(values, fact_names, cancer_code(config, cohort))
        frame = frame.join(encoded)
        directions.update(fact_directions)
    return frame, directions


def _numeric_covariate(values: pd.Series, column: str, table: Path) -> pd.Series:
    """A table covariate as numbers: an empty cell is missing (imputed on the training fold),
    but text such as ``69 years`` or ``female`` is an error, never a silent missing value."""
    numbers = pd.to_numeric(values, errors="coerce")
    text = values[numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")]
    if len(text):
        hint = " (is_female is 1 for female, 0 for male)" if column == "is_female" else ""
        raise InputDataError(
            f"column {column!r} holds {len(text)} non-numeric value(s), e.g. {text.iloc[0]!r}; "
            f"write numbers only{hint}",
            file=str(table), patient=str(text.index[0]),
        )  # fmt: skip
    if column == "is_female" and not numbers.dropna().isin([0, 1]).all():
        bad = numbers[numbers.notna() & ~numbers.isin([0, 1])]
        raise InputDataError(
            f"is_female must be 0 (male) or 1 (female), got {bad.iloc[0]!r}",
            file=str(table), patient=str(bad.index[0]),
        )  # fmt: skip
    return numbers


def cancer_type(config: DataConfig, cohort: Cohort | None = None):
    """The run's cancer type (:mod:`kemm.knowledge.cancers`): ``data.cancer``, else the cohort
    name when it names one, else the one cancer the table's OncoTree codes belong to; anything
    else is an error saying to set ``data.cancer`` (report rules never run silently without
    their cancer)."""
    from kemm.errors import ConfigError
    from kemm.knowledge.cancers import cancer_from_oncotree, resolve_cancer_code

    if config.cancer:
        try:
            return resolve_cancer_code(config.cancer)
        except ConfigError as error:
            raise ConfigError(f"data.cancer: {error}") from None
    try:
        return resolve_cancer_code(config.cohort)
    except ConfigError:
        pass
    found = cancer_from_oncotree(cohort.oncotree_codes()) if cohort is not None else None
    if found is None:
        codes = cohort.oncotree_codes() if cohort is not None else []
        raise ConfigError(
            f"data.cohort {config.cohort!r} names no cancer type kemm knows"
            + (f", nor do its OncoTree codes {codes[:5]}" if codes else "")
            + "; set data.cancer (a TCGA code such as KIRC, COADREAD, or a name such as kidney)"
        )
    return found


def cancer_code(config: DataConfig, cohort: Cohort | None = None) -> str:
    """The code the report rules and AJCC tables of the run's cancer are keyed by."""
    return cancer_type(config, cohort).rules


def patient_rules(
    config: DataConfig, cohort: Cohort, cases: Iterable[str] | None = None
) -> dict[str, str]:
    """The report-rules code of each patient of ``cases`` (default: all; give those with a
    report): the run's cancer's, except where the patient's ``oncotree_code`` names a project
    staged by other AJCC tables (GEJ in a stomach cohort; each project of STES) — then that
    project's, with a warning counting them. In a cohort of mixed tables a patient whose code
    names none of them is an error naming the table and the patients: a report read with
    another organ's tables would get a wrong stage."""
    found = cancer_type(config, cohort)
    wanted = list(cohort.case_ids if cases is None else cases)
    codes = cohort.patients.get("oncotree_code", pd.Series(None, index=cohort.patients.index))
    code_of = {case: None if pd.isna(codes.get(case)) else str(codes.get(case)) for case in wanted}
    rules = {case: found.rules_for(code) for case, code in code_of.items()}
    unknown = [case for case, code in rules.items() if code is None]
    if unknown:
        raise InputDataError(
            f"{found.code} combines projects staged by different AJCC tables "
            f"({found.tables_text()}), and {len(unknown)} of {len(rules)} patient(s) with a "
            f"report have no oncotree_code naming one of them (e.g. {unknown[:3]}): give each "
            "patient its project's OncoTree code, or set data.cancer to one project",
            file=str(cohort.source) if cohort.source else None, patient=unknown[0],
        )  # fmt: skip
    own = set(found.parts or (found.rules,))
    routed = sorted(case for case, code in rules.items() if code not in own)
    if routed:
        log.warning(
            "%s: %d patient(s) have OncoTree codes of projects staged by other AJCC tables than "
            "%s (%s); their reports are read with those projects' rules (e.g. %s)",
            cohort.source or cohort.name, len(routed), found.code,
            ", ".join(sorted({f"{code_of[c]} -> {rules[c]}" for c in routed})), routed[:3],
        )  # fmt: skip
    return rules  # type: ignore[return-value]


_FACT_CACHE: dict[tuple, pd.DataFrame] = {}


def reports_path(config: DataConfig) -> Path:
    """The run's reports CSV: ``data.reports.csv``, else ``<cohort folder>/reports.csv``."""
    if config.reports and config.reports.csv:
        return Path(config.reports.csv)
    return cohort_dir(config) / "reports.csv"


def report_fact_values(
    config: DataConfig, cohort: Cohort, reports_csv: str | Path | None = None
) -> pd.DataFrame:
    """Patient x fact-field values: from ``data.facts_csv`` (output of ``kemm knowledge facts``)
    when given, else extracted from the reports CSV — the OCR text first, each field the OCR
    text does not state taken from the LLM-summary column (``llm_text``) when there is one."""
    from kemm.knowledge.covariates import facts_for_reports, facts_from_csv, records_frame
    from kemm.knowledge.reports import read_reports

    if config.facts_csv:
        values = facts_from_csv(config.facts_csv)
        covered = values.index.intersection(cohort.patients.index)
        if covered.empty:
            raise InputDataError(
                f"no case_id of the facts file is a patient of the cohort table (facts for "
                f"{len(values)} patient(s), e.g. {list(values.index[:3])}; the table has e.g. "
                f"{cohort.case_ids[:3]})",
                file=str(config.facts_csv),
            )
        if len(covered) < len(cohort):
            log.warning("%s: report facts for %d of %d patients; the other %d are 'unknown'",
                        config.facts_csv, len(covered), len(cohort),
                        len(cohort) - len(covered))  # fmt: skip
        return values.reindex(cohort.patients.index)
    csv = Path(reports_csv) if reports_csv else reports_path(config)
    if not csv.is_file():
        raise InputDataError(
            "report-fact covariates need a reports CSV (data.reports.csv, or --reports)",
            file=str(csv),
        )
    # age at diagnosis picks the AJCC table where stage groups depend on it (thyroid)
    ages = cohort.patients["age"].dropna().to_dict() if "age" in cohort.patients.columns else {}
    # each patient's rules follow from the cancer, its OncoTree code and the reports file
    codes = cohort.patients.get("oncotree_code", pd.Series(None, index=cohort.patients.index))
    key = (
        str(csv.resolve()), csv.stat().st_mtime_ns, cancer_type(config, cohort).code,
        tuple(codes.astype(str).items()), tuple(sorted(ages.items())), config.derived_facts,
    )  # fmt: skip
    if key not in _FACT_CACHE:
        columns = read_csv(csv, what="reports file", nrows=0).columns
        column_texts = [
            read_reports(csv, text_column=column)
            for column in ("raw_text", "llm_text")
            if column in columns
        ]  # fmt: skip
        with_text = {case for texts in column_texts for case in texts}  # none empty
        rules = patient_rules(config, cohort, [c for c in cohort.case_ids if c in with_text])
        frames = []
        for texts in column_texts:
            texts = {case: text for case, text in texts.items() if case in rules}
            records = facts_for_reports(texts, rules, ages, derive=config.derived_facts)
            frames.append(records_frame(records))
        merged = frames[0] if frames else pd.DataFrame()
        for extra in frames[1:]:
            merged = merged.combine_first(extra)
        _FACT_CACHE[key] = merged
    return _FACT_CACHE[key].reindex(cohort.patients.index)


def _attach_bags(prepared: PreparedCohort, config: DataConfig, scoring: bool = False) -> None:
    """Find each patient's feature files (``<slide_id>.h5`` or ``.pt``); the first bag fixes
    the run's dimension, and every bag is checked against it when it is loaded."""
    from kemm.wsi.features import check_compatible, read_bag_header

    assert config.wsi is not None and config.wsi.features_dir
    folder = Path(config.wsi.features_dir)
    if not folder.is_dir():
        raise InputDataError("feature folder not found", file=str(folder))
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.h5")) + sorted(folder.glob("*.pt")):
        found.setdefault(path.stem, path)
    missing_slides: list[str] = []
    for case_id, slides in prepared.cohort.patients["slide_ids"].items():
        paths = []
        for slide in slides:
            stem = str(slide)
            if stem.lower().endswith(SLIDE_SUFFIXES):
                stem = Path(stem).stem
            if stem in found:
                paths.append(found[stem])
            else:
                missing_slides.append(str(slide))
        if paths:
            prepared.bag_paths[case_id] = paths
    if not prepared.bag_paths and not scoring:  # (patients to score may come without slides)
        slides = [str(s) for ids in prepared.cohort.patients["slide_ids"] for s in ids]
        raise InputDataError(
            f"no feature bag matches a slide of the cohort table: {len(slides)} slide ids "
            f"(e.g. {slides[:2]}) and {len(found)} bag(s) here (e.g. {sorted(found)[:2]}); bags "
            "are named <slide_id>.h5 or .pt, with the table's slide_id",
            file=str(folder),
        )
    # every bag's header checked now, before any fold trains: a wrong encoder or dimension, a
    # pickled or unreadable file is an error naming the file and the patient
    for case_id, paths in prepared.bag_paths.items():
        for path in paths:
            try:
                header = read_bag_header(path)
                check_compatible(header, config.wsi.encoder, config.wsi.dim or prepared.wsi_dim,
                                 file=str(path))  # fmt: skip
            except InputDataError as error:
                raise InputDataError(error.problem, file=error.file, patient=case_id) from None
            prepared.wsi_dim = prepared.wsi_dim or int(header["feature_dim"])
    prepared.bag_requirements = (config.wsi.encoder, prepared.wsi_dim)
    prepared.bag_report = {
        "features_dir": str(folder),
        "patients_with_bags": len(prepared.bag_paths),
        "patients_without_bags": len(prepared.cohort) - len(prepared.bag_paths),
        "slides_without_features": len(missing_slides),
        "example_missing": missing_slides[:5],
    }
    if missing_slides:
        log.warning(
            "%d slide(s) listed in the table have no feature file in %s, e.g. %s",
            len(missing_slides), folder, missing_slides[:3],
        )  # fmt: skip
