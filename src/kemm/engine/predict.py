"""Predictions for new patients from a finished run: the mean of the fold models.

Each fold model (:func:`kemm.engine.fold_models.load_fold_model`) scores the patients as it
scored its evaluation fold: the fold's fitted preprocessing, then the model, whatever its
kind. Outcome columns are optional; when given, the C-index on these patients is reported.

What a model reads must be in the new patients' files. A missing genomic column or clinical
covariate is an error naming the modality and how many columns of each group are missing;
with ``allow_missing`` it is imputed as in training (the training fold's mean, i.e. 0 on the
standardised scale) and recorded per patient in the ``imputed`` column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kemm.cohort import GenomicGroup
from kemm.cohort.prepared import NewPatients, PreparedCohort, prepare_cohort, reports_path
from kemm.cohort.table import GENOMIC_MODALITIES, genomic_modality
from kemm.engine.config import ModelConfig, RunConfig
from kemm.engine.fold_models import load_fold_model
from kemm.engine.rundir import FoldDirectory, RunDirectory
from kemm.errors import InputDataError
from kemm.survival import harrell_c


@dataclass
class Prediction:
    """The output of :func:`predict_new`."""

    frame: pd.DataFrame  # one row per patient (columns: see the README)
    model: str
    fold_models: int  # fold models averaged
    expected_fold_models: int | None  # how many the finished run has
    c_index: float | None  # Harrell's C on the patients with outcomes, when any
    with_outcome: int
    events: int
    imputed_patients: int
    cancer_warning: str | None = None  # the patients' cancer type is not the run's


def predict_new(
    run_dir: str | Path,
    table: str | Path,
    *,
    model: str | None = None,
    reports_csv: str | None = None,
    facts_csv: str | None = None,
    features_dir: str | None = None,
    allow_missing: bool = False,
    allow_partial: bool = False,
    times: list[float] | None = None,
) -> Prediction:
    """Risk and survival curve of each patient of ``table`` (an all_clean-format CSV; outcome
    columns optional), averaged over the run's fold models of ``model`` (default: the run's
    first). Survival is given at ``times`` (months), with the lowest and highest fold model's
    value beside the mean (``surv_<t>``, ``surv_<t>_lo``, ``surv_<t>_hi``), or by default at the
    first fold's bin end times (``surv_t<months>``). ``risk_group`` is high where most fold
    models put the patient above their training fold's median risk (``high_votes`` of
    ``n_fold_models``)."""
    run = RunDirectory(run_dir)
    config = run.read_config()
    spec = config.model_by_label(model or config.models[0].display)
    folds, expected = _fold_folders(run, config, spec, allow_partial)
    fold_models = [load_fold_model(run, config, spec, folder) for folder in folds]

    data_config = config.data.model_copy(deep=True)
    data_config.table = str(Path(table).resolve())
    if facts_csv:
        data_config.facts_csv = facts_csv
    if reports_csv and data_config.reports is not None:
        data_config.reports.csv = reports_csv
    if features_dir and data_config.wsi is not None:
        data_config.wsi.features_dir = features_dir
    needs_reports = config.data.reports is not None or (
        _reads_facts(config) and not data_config.facts_csv
    )
    if needs_reports and not reports_csv and not reports_path(config.data).is_file():
        raise InputDataError(
            "the run's models read pathology reports; give these patients' reports with "
            "--reports CSV"
            + (" (or their facts with --facts CSV)" if _reads_facts(config) else ""),
            file=str(reports_path(config.data)),
        )
    from kemm.cohort.text import load_text_modality

    # each model (the one asked for, then its bases) over the folds
    every = [
        m for parts in zip(*(f.fold_models() for f in fold_models), strict=True) for m in parts
    ]
    new = NewPatients(_groups(m.pre for m in every), reports_csv, allow_missing)
    data = prepare_cohort(data_config, text_loader=load_text_modality, new_patients=new)
    imputed = _check_and_fill_genomics(data, Path(table), allow_missing)
    imputed = _record_clinical(data, config, imputed, allow_missing, Path(table))

    case_ids = data.cohort.case_ids
    reference_times = folds[0].preprocessing()[1].bin_times
    chosen = _check_times(times, run) if times else None
    risks, curves, at_times = [], [], []
    for fitted in fold_models:
        risk, curve = fitted.score(data, case_ids, reference_times)
        risks.append(risk)
        curves.append(curve)
        if chosen is not None:
            at_times.append(fitted.survival(data, case_ids, chosen))
    read = set().union(*(m.reads(data) for m in fold_models[0].fold_models()))
    silent = set(data.text.reports_without_statements) if data.text is not None else set()
    for case_id in case_ids:
        for modality in sorted(read & {"report", "wsi"}):
            if not data.has_modality(case_id, modality):
                what = "no statement" if case_id in silent else "none"
                imputed.setdefault(case_id, []).append(f"{modality} ({what})")

    frame = pd.DataFrame({"case_id": case_ids, "model": spec.display, "risk": np.mean(risks, 0)})
    if chosen is None:
        mean_curve = np.mean(curves, axis=0)
        for k, t in enumerate(reference_times):
            frame[f"surv_t{t:.1f}"] = mean_curve[:, k]
    else:
        stacked = np.stack(at_times)  # (fold models, patients, times)
        for k, t in enumerate(chosen):
            name = f"surv_{t:g}"
            frame[name] = stacked[:, :, k].mean(axis=0)
            frame[f"{name}_lo"] = stacked[:, :, k].min(axis=0)
            frame[f"{name}_hi"] = stacked[:, :, k].max(axis=0)
        cuts = np.array([folder.train_risk_median() for folder in folds])
        votes = (np.stack(risks) > cuts[:, None]).sum(axis=0)
        frame["high_votes"] = votes
        frame["risk_group"] = np.where(votes * 2 > len(folds), "high", "low")
    frame["n_fold_models"] = len(folds)
    frame["imputed"] = ["; ".join(imputed.get(c, [])) for c in case_ids]
    patients = data.cohort.patients
    known = patients["time"].notna().to_numpy()
    c_index = None
    if known.any():
        frame["time"] = patients["time"].to_numpy()
        frame["event"] = patients["event"].astype("Int64").to_numpy()
        if patients["event"][known].sum() > 0:
            c_index = harrell_c(
                patients["event"][known].to_numpy().astype(bool),
                patients["time"][known].to_numpy(),
                frame["risk"].to_numpy()[known],
            )
    return Prediction(
        frame, spec.display, len(folds), expected, c_index,
        int(known.sum()), int(patients["event"][known].sum()), sum(1 for v in imputed.values() if v),
        _cancer_warning(run, config, data, Path(table)),
    )  # fmt: skip


def _cancer_warning(run: RunDirectory, config: RunConfig, data: PreparedCohort,
                    table: Path) -> str | None:  # fmt: skip
    """A line when these patients' OncoTree codes are not among the training cohort's (a model
    trained on one cancer scoring another, its reports read with the other's rules)."""
    import json

    new = set(data.cohort.oncotree_codes())
    trained: set[str] = set()
    if run.data_summary_path.is_file():
        summary = json.loads(run.data_summary_path.read_text()).get("cohort", {})
        trained = set(summary.get("oncotree_codes", []))
    if not trained:  # a run from before kemm recorded them: its table, when still there
        from kemm.cohort import read_all_clean
        from kemm.cohort.prepared import resolve_table_path

        try:
            trained = set(read_all_clean(resolve_table_path(config.data), modalities=["mut"],
                                         ignore_columns=config.data.ignore_columns).oncotree_codes())  # fmt: skip
        except Exception:  # noqa: BLE001 - the check is advisory; no table, no check
            trained = set()
    foreign = sorted(new - trained)
    if not trained or not foreign:
        return None
    return (
        f"{table}: these patients' cancer type {foreign} is not the run's {sorted(trained)} "
        f"(cohort {config.data.cohort!r}); the model and its report rules were fitted on that "
        "cancer, so its risks and C-index may not transfer"
    )


def _check_times(times: list[float], run: RunDirectory) -> np.ndarray:
    """``--times``: positive, finite months (sorted, each once)."""
    chosen = np.asarray(sorted(set(float(t) for t in times)), dtype=float)
    if (chosen <= 0).any() or not np.isfinite(chosen).all():
        raise InputDataError(f"--times must be positive months, got {times}", file=str(run.root))
    return chosen


def _reads_facts(config: RunConfig) -> bool:
    from kemm.knowledge.covariates import FACT_COVARIATES

    return any(c in FACT_COVARIATES for c in config.data.clinical)


def _fold_folders(
    run: RunDirectory, config: RunConfig, spec: ModelConfig, allow_partial: bool
) -> tuple[list[FoldDirectory], int | None]:
    """The model's finished fold folders and how many the finished run has; an unfinished run
    is refused unless ``allow_partial``."""
    folders = run.finished_folds(spec.display, config.seed_list)
    expected = run.expected_fold_fits(config)
    if not folders:
        raise InputDataError(
            f"no finished fold of model {spec.display!r}; finish the run first "
            "(rerun its kemm train command)",
            file=str(run.root),
        )
    unfinished = not run.metrics_path.is_file() or (
        expected is not None and len(folders) < expected
    )
    if unfinished and not allow_partial:
        of = f" of {expected}" if expected else ""
        raise InputDataError(
            f"the run is unfinished: {len(folders)}{of} fold models of {spec.display!r} exist; "
            "finish it (rerun its kemm train command) or pass --allow-partial to average those",
            file=str(run.root),
        )
    return folders, expected


def _groups(preprocessors) -> list[GenomicGroup]:
    """The genomic groups the fold models read (each group's features over all folds)."""
    features: dict[str, list[str]] = {}
    for pre in preprocessors:
        for name, columns in zip(pre.group_names, pre.group_features, strict=True):
            known = features.setdefault(name, [])
            known += [c for c in columns if c not in set(known)]
    return [GenomicGroup(name, tuple(columns)) for name, columns in features.items()]


def _check_and_fill_genomics(
    data: PreparedCohort, table: Path, allow_missing: bool
) -> dict[str, list[str]]:
    """Genomic columns and values the models read but the file lacks: an error naming how many
    of each group are missing, or (``allow_missing``) NaN columns imputed later; returns what
    is imputed per patient."""
    needed = list(dict.fromkeys(f for g in data.groups for f in g.features))
    if not needed:
        return {}
    genomics = data.cohort.genomics
    absent = [f for f in needed if f not in genomics.columns]
    if absent and not allow_missing:
        counts = {m: sum(genomic_modality(f) == m for f in needed) for m in GENOMIC_MODALITIES}
        lacking = {m: sum(genomic_modality(f) == m for f in absent) for m in GENOMIC_MODALITIES}
        groups = ", ".join(
            f"{lacking[m]} of {counts[m]} {m}" for m in GENOMIC_MODALITIES if counts[m]
        )
        raise InputDataError(
            f"genomics: the run's models read {len(needed)} genomic columns and this file lacks "
            f"{len(absent)} of them ({groups}; e.g. {absent[:3]}); add them, or pass "
            "--allow-missing to impute each with the training-fold mean",
            file=str(table),
        )
    if absent:
        genomics = genomics.reindex(columns=[*genomics.columns, *absent])
        data.cohort.genomics = genomics
    values = genomics[needed]
    blank = values.isna()
    if blank.to_numpy().any() and not allow_missing:
        case_id = blank.any(axis=1).idxmax()
        raise InputDataError(
            f"{int(blank.loc[case_id].sum())} empty genomic value(s), e.g. "
            f"{list(blank.columns[blank.loc[case_id]][:3])}; pass --allow-missing to impute them",
            file=str(table), patient=case_id,
        )  # fmt: skip
    imputed: dict[str, list[str]] = {}
    for modality in GENOMIC_MODALITIES:
        columns = [f for f in needed if genomic_modality(f) == modality]
        for case_id, missing in blank[columns].sum(axis=1).items():
            if missing:
                imputed.setdefault(case_id, []).append(f"{modality} {missing}/{len(columns)}")
    return imputed


def _record_clinical(
    data: PreparedCohort, config: RunConfig, imputed: dict[str, list[str]], allow_missing: bool,
    table: Path,
) -> dict[str, list[str]]:  # fmt: skip
    """Table covariates (age, sex, ...) without a value are imputed with the training-fold mean,
    as in training; report facts not stated are the documented ``unknown`` level. Both are
    recorded per patient."""
    from kemm.knowledge.covariates import FACT_COVARIATES, covariate_of

    clinical = data.clinical
    for column in [c for c in config.data.clinical if c not in FACT_COVARIATES]:
        if column not in clinical.columns or allow_missing:
            continue
        blank = clinical.index[clinical[column].isna()]
        if len(blank) == len(clinical) and len(clinical) > 1:
            raise InputDataError(
                f"clinical covariate {column!r} has no value for any patient; pass "
                "--allow-missing to impute it",
                file=str(table),
            )
        if len(blank):
            raise InputDataError(
                f"clinical covariate {column!r} is empty for {len(blank)} patient(s); pass "
                "--allow-missing to impute it with the training-fold mean",
                file=str(table), patient=str(blank[0]),
            )  # fmt: skip
    unknown_columns = [c for c in clinical.columns if c.endswith("=unknown")
                       and covariate_of(c) in FACT_COVARIATES]  # fmt: skip
    for case_id, row in clinical.iterrows():
        missing = [c for c in config.data.clinical if c in clinical.columns and pd.isna(row[c])]
        if unknown_columns and all(row[c] == 1 for c in unknown_columns):
            missing.append("report facts (none stated)")
        if missing:
            imputed.setdefault(case_id, []).extend(missing)
    return imputed
