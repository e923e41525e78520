"""The TCGA benchmark: every cohort × model (baselines, KEMM, ablations) under one protocol.

Each (cohort, data variant) is one cross-validation run directory; the table gathers them.
Data variants differ only in what the models read:

* ``families``   — genomics grouped into the 6 gene families, reports refined by the
  extractive backend (raw OCR text), PBK of the cancer type, clinical covariates;
* ``hallmarks``  — RNA grouped into the 50 Hallmark pathways (for SurvPath; UCEC uses its
  RNA table), same text;
* ``raw_reports`` — the report modality as unrefined sentences of the cleaned OCR text;
* ``llm_reports`` — the report modality from the shipped LLM summaries (``llm_text``);
* ``site_held_out`` — ``families`` with folds that keep each tissue-source site on one side;
* ``stated_facts`` — ``families`` whose fact covariates keep only the T and N categories the
  reports state (``data.derived_facts: false``), for the facts Cox model's paired ablation.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kemm.cohort import read_all_clean
from kemm.engine.config import RunConfig, parse_config
from kemm.engine.results import METRIC_KEYS
from kemm.errors import InputDataError

log = logging.getLogger(__name__)

COHORTS = ("brca", "luad", "kirc", "ucec", "lusc")
# Age, sex and the facts of the pathology report (kemm.knowledge.report_facts), encoded by
# kemm.knowledge.covariates: ordinal facts cumulative, each with an 'unknown' level.
CLINICAL = ["age", "sex", "t", "n", "m", "stage", "grade", "nodes", "margin", "lvi", "pni", "size",
            "histology"]  # fmt: skip
# KEMM at width 128 with one fusion layer: cohorts of 300-1000 patients and no WSI branch here
# (every KEMM row the same).
KEMM_PARAMS = (("dim", 128), ("fusion_layers", 1))
EPOCHS = {"quick": 5, "full": 10}  # every deep model; the training loss memorises beyond ~10
# Every network is trained with the Cox partial likelihood (Breslow curves from the training
# fold) and reads genomic z-scores clipped to +-3 SD: both fixed a priori (docs/benchmarks.md).
LOSS = "cox"
GENOMIC_CLIP = 3.0

FACTS_COX = "Clinical Cox (facts)"
FACTS_COX_NO_PRIOR = "Clinical Cox (facts) −PBK prior"
FACTS_COX_STATED = "Clinical Cox (facts) −derived T, N"  # stated categories only
AGE_SEX_COX = "Clinical Cox (age, sex)"
GENOMIC_COXNET = "CoxNet (genomics)"
LINEAR_PART = (FACTS_COX, GENOMIC_COXNET)  # KEMM's linear part: the stack of these two
PAPER = "KEMM −linear part (paper's inputs)"  # the paper's network on the paper's inputs


@dataclass(frozen=True)
class Entry:
    label: str
    model: str
    variant: str
    params: tuple = ()
    modalities: tuple[str, ...] | None = None  # restrict the model's inputs
    clinical: tuple[str, ...] | None = None  # restrict the clinical covariates
    residual_over: tuple[str, ...] | None = None  # labels of the linear part's base models


ENTRIES = (
    Entry(GENOMIC_COXNET, "coxnet", "families", modalities=("genomics",)),
    Entry("CoxNet (genomics + facts)", "coxnet", "families", modalities=("genomics", "clinical")),
    Entry("SNN (genomics)", "snn", "families"),
    Entry("Report-only", "report_only", "families"),
    Entry(AGE_SEX_COX, "clinical_cox", "families", clinical=("age", "sex")),
    Entry("Clinical Cox (age, sex, stage)", "clinical_cox", "families",
          clinical=("age", "sex", "stage")),
    Entry(FACTS_COX, "clinical_cox", "families", (("direction_prior", True),)),
    Entry(FACTS_COX_NO_PRIOR, "clinical_cox", "families"),
    Entry(FACTS_COX_STATED, "clinical_cox", "stated_facts", (("direction_prior", True),)),
    Entry("Stack (facts Cox + genomic CoxNet)", "stack", "families",
          (("base", LINEAR_PART),)),
    Entry("MCAT-style", "mcat", "families"),
    Entry("SurvPath-style (Hallmarks)", "survpath", "hallmarks"),
    Entry("PORPOISE-style", "porpoise", "families"),
    Entry("KEMM", "kemm", "families", KEMM_PARAMS, residual_over=LINEAR_PART),
    Entry("KEMM −fact covariates", "kemm", "families", KEMM_PARAMS, clinical=("age", "sex"),
          residual_over=(AGE_SEX_COX, GENOMIC_COXNET)),
    Entry("KEMM −PBK prior", "kemm", "families", KEMM_PARAMS,
          residual_over=(FACTS_COX_NO_PRIOR, GENOMIC_COXNET)),
    Entry("KEMM −report", "kemm_no_report", "families", KEMM_PARAMS, residual_over=LINEAR_PART),
    Entry("KEMM −PBK", "kemm_no_pbk", "families", KEMM_PARAMS, residual_over=LINEAR_PART),
    Entry("KEMM −KECM (plain co-attention)", "kemm_no_kecm", "families", KEMM_PARAMS,
          residual_over=LINEAR_PART),
    Entry(PAPER, "kemm_no_clinical", "families", KEMM_PARAMS),
    Entry(f"{PAPER} −report", "kemm_no_clinical", "families",
          KEMM_PARAMS + (("use_report", False), ("use_distillation", False),
                         ("use_report_alignment", False)),
          modalities=("wsi", "genomics", "pbk")),
    Entry(f"{PAPER} −PBK", "kemm_no_clinical", "families",
          KEMM_PARAMS + (("use_pbk", False), ("use_risk_alignment", False)),
          modalities=("wsi", "genomics", "report")),
    Entry(f"{PAPER} −KECM", "kemm_no_clinical", "families", KEMM_PARAMS + (("use_kecm", False),)),
    Entry(f"{PAPER} −distillation", "kemm_no_clinical", "families",
          KEMM_PARAMS + (("use_distillation", False),)),
)  # fmt: skip
# The paired comparisons of the table (first − second, on the same folds).
PAIRS = (
    ("KEMM", "Stack (facts Cox + genomic CoxNet)"),
    ("KEMM", "Clinical Cox (facts)"),
    ("KEMM", "KEMM −report"),
    ("KEMM", "KEMM −PBK"),
    ("KEMM", "KEMM −KECM (plain co-attention)"),
    ("KEMM", "KEMM −PBK prior"),
    ("KEMM", "KEMM −fact covariates"),
    (FACTS_COX, FACTS_COX_STATED),
    (PAPER, f"{PAPER} −report"),
    (PAPER, f"{PAPER} −PBK"),
    (PAPER, f"{PAPER} −KECM"),
    (PAPER, f"{PAPER} −distillation"),
    (PAPER, GENOMIC_COXNET),
    (PAPER, "Report-only"),
)
# The site-held-out evaluation: KEMM and the models it needs, and the facts Cox model.
SITE_HELD_OUT = (FACTS_COX, GENOMIC_COXNET, "KEMM")
SITE_SUFFIX = " [site-held-out]"


def site_held_out(entry: Entry) -> Entry:
    """The entry on site-held-out folds (its label, and those of its base models, suffixed)."""
    bases = tuple(b + SITE_SUFFIX for b in entry.residual_over) if entry.residual_over else None
    return replace(entry, label=entry.label + SITE_SUFFIX, variant="site_held_out",
                   residual_over=bases)  # fmt: skip


def required_files(root: Path, cohort: str) -> list[Path]:
    folder = root / "tcga" / cohort
    return [folder / f"tcga_{cohort}_all_clean.csv", folder / "splits", folder / "reports.csv",
            root / "signatures" / "gene_families.csv", root / "signatures" / "hallmarks_signatures.csv"]  # fmt: skip


def check_data_root(root: Path, cohorts: list[str]) -> None:
    for cohort in cohorts:
        for path in required_files(root, cohort):
            if not path.exists():
                raise InputDataError(
                    f"benchmark input missing for cohort {cohort!r}", file=str(path)
                )


def _rna_table(root: Path, cohort: str) -> str | None:
    """The table with RNA for Hallmark pathways: UCEC keeps it in a separate MCAT file."""
    folder = root / "tcga" / cohort
    alternative = folder / f"tcga_{cohort}_rna_cnv_all_clean.csv"
    default = folder / f"tcga_{cohort}_all_clean.csv"
    header = pd.read_csv(default, nrows=0).columns
    if any(str(c).endswith("_rnaseq") for c in header):
        return None
    if alternative.is_file():
        return alternative.name
    raise InputDataError(
        f"cohort {cohort!r} has no RNA columns for Hallmark pathways", file=str(default)
    )


def site_splits(root: Path, cohort: str, out: Path, n_folds: int = 5) -> Path:
    """Folds that keep each tissue-source site (barcode characters 6–7) on one side: sites are
    dealt, largest first, to the fold with the fewest patients."""
    table = read_all_clean(
        root / "tcga" / cohort / f"tcga_{cohort}_all_clean.csv", modalities=["mut"]
    )
    sites = pd.Series([c.split("-")[1] for c in table.case_ids], index=table.case_ids)
    sizes = sites.value_counts()
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for site in sorted(sizes.index, key=lambda s: (-sizes[s], s)):
        target = min(range(n_folds), key=lambda k: (len(folds[k]), k))
        folds[target].extend(sites.index[sites == site])
    folder = out / "site_splits"
    folder.mkdir(parents=True, exist_ok=True)
    everyone = set(table.case_ids)
    for k, test in enumerate(folds):
        train = sorted(everyone - set(test))
        pd.DataFrame({"train": pd.Series(train), "val": pd.Series(sorted(test))}).to_csv(
            folder / f"splits_{k}.csv"
        )
    return folder


def variant_config(root: Path, cohort: str, variant: str, models: list[Entry], out: Path,
                   *, epochs: int, seed: int) -> RunConfig:  # fmt: skip
    data: dict = {
        "root": str(root), "cohort": cohort, "pbk": True, "clinical": CLINICAL,
        "genomics": {"modalities": ["rnaseq", "cnv", "mut"], "grouping": "families"},
        "reports": {"column": "raw_text", "refiner": "extractive", "max_statements": 12},
    }  # fmt: skip
    if variant == "hallmarks":
        data["genomics"] = {"modalities": ["rnaseq"], "grouping": "hallmarks", "on_empty": "drop"}
        data["table"] = _rna_table(root, cohort)
        if data["table"] is not None:  # MCAT's UCEC RNA table names its genes without suffix
            data["genomics"]["unsuffixed_as"] = "rnaseq"
    elif variant == "raw_reports":
        data["reports"] = {"column": "raw_text", "refiner": "sentences", "max_statements": 12}
    elif variant == "llm_reports":
        data["reports"] = {"column": "llm_text", "refiner": "sentences", "max_statements": 12}
    elif variant == "site_held_out":
        data["splits"] = str(site_splits(root, cohort, out))
    elif variant == "stated_facts":
        data["derived_facts"] = False
    raw = {
        "name": f"benchmark_{cohort}_{variant}",
        "data": data,
        "models": [
            {
                "name": e.model,
                "label": e.label,
                "params": {k: list(v) if isinstance(v, tuple) else v for k, v in e.params},
                "modalities": list(e.modalities) if e.modalities else None,
                "clinical": list(e.clinical) if e.clinical else None,
                "residual_over": list(e.residual_over) if e.residual_over else None,
            }
            for e in models
        ],  # fmt: skip
        # the paired table carries the intervals the benchmark reports; docs/benchmarks.md its plots
        "eval": {"bootstrap": 0, "html": False},
        "train": {
            "loss": LOSS,
            "genomic_clip": GENOMIC_CLIP,
            "epochs": epochs,
            "batch_size": 32,
            "lr": 5e-4,
            "weight_decay": 1e-4,
            "seed": seed,
        },
    }
    return parse_config(raw, source=f"benchmark:{cohort}:{variant}")


def run_benchmark(root: str | Path, out: str | Path, *, cohorts: list[str] | None = None,
                  quick: bool = False, ray_address: str | None = None, seed: int = 0,
                  workers: int = 1, show_progress: bool = True,
                  prepared: bool = False) -> dict:  # fmt: skip
    """Run (or resume) the benchmark; returns ``{cohort: {label: metrics-entry}}``.

    ``prepared``: each cohort variant is read once into a prepared-cohort folder
    (``OUT/<cohort>/prepared_<variant>``, what ``kemm prepare`` writes) and trained from it; a
    resumed benchmark reads the folders instead of the reports and tables.
    """
    from kemm.engine.runner import run_cv

    root, out = Path(root), Path(out)
    cohorts = list(cohorts or COHORTS)
    check_data_root(root, cohorts)
    started = time.time()
    epochs = EPOCHS["quick" if quick else "full"]
    quick_labels = {GENOMIC_COXNET, FACTS_COX, "Stack (facts Cox + genomic CoxNet)", "KEMM"}
    entries = [e for e in ENTRIES if not quick or e.label in quick_labels]
    jobs: list[tuple[str, str, list[Entry], RunConfig]] = []
    for cohort in cohorts:
        variants = list(dict.fromkeys(e.variant for e in entries))
        if not quick:
            variants.append("site_held_out")
        for variant in variants:
            chosen = [e for e in entries if e.variant == variant]
            if variant == "site_held_out":
                chosen = [site_held_out(e) for e in ENTRIES if e.label in SITE_HELD_OUT]
            config = variant_config(
                root, cohort, variant, chosen, out / cohort, epochs=epochs, seed=seed
            )
            jobs.append((cohort, variant, chosen, config))
    if workers > 1 and ray_address is None and len(jobs) > 1:
        metrics_of = _run_jobs_in_processes(jobs, out, workers, prepared, show_progress)
    else:
        metrics_of = {}
        for cohort, variant, _, config in jobs:
            if prepared:
                config = _from_prepared(config, out / cohort / f"prepared_{variant}")
            metrics_of[cohort, variant] = run_cv(
                config, out / cohort / variant, show_progress=show_progress,
                ray_address=ray_address, workers=workers,
            )  # fmt: skip
    table: dict[str, dict] = {cohort: {} for cohort in cohorts}
    for cohort, variant, chosen, _ in jobs:
        for entry in chosen:
            table[cohort][entry.label] = metrics_of[cohort, variant]["models"][entry.label]
    summary = {"cohorts": cohorts, "quick": quick, "seed": seed, "wall_seconds": round(time.time() - started, 1),
               "table": table, "paired": paired_table(out, cohorts, entries)}  # fmt: skip
    (out / "benchmark.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def _job_cost(config: RunConfig) -> float:
    """A (cohort, variant) run's rough cost: its fits' relative costs times the cohort table's
    size (patients x features), for longest-first scheduling."""
    from kemm.engine.fold_models import fold_model_type

    tables = list((Path(config.data.root) / "tcga" / config.data.cohort).glob("*_all_clean.csv"))
    size = sum(table.stat().st_size for table in tables) or 1.0
    return size * sum(fold_model_type(model).relative_cost for model in config.models)


def _run_job(raw: dict, out_dir: str, prepared_dir: str | None) -> dict:
    """One (cohort, variant) cross-validation in a worker process, one fit at a time."""
    from kemm.engine.runner import run_cv

    config = parse_config(raw, source=f"benchmark:{Path(out_dir).name}")
    if prepared_dir is not None:
        config = _from_prepared(config, Path(prepared_dir))
    return run_cv(config, out_dir, show_progress=False, workers=1)


def _run_jobs_in_processes(
    jobs: list[tuple[str, str, list[Entry], RunConfig]], out: Path, workers: int,
    prepared: bool, show_progress: bool,
) -> dict[tuple[str, str], dict]:  # fmt: skip
    """The benchmark's (cohort, variant) runs on ``workers`` processes, longest first: one pool
    for the whole benchmark, so no worker idles at the end of each run while the other finishes
    its last fit. Each run is the same cross-validation as in one process (same folds, seeds and
    fits; each fit depends only on its own seed and fold), resumable fold by fold."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kemm.engine.runner import stop_worker_pool

    order = sorted(range(len(jobs)), key=lambda i: -_job_cost(jobs[i][3]))
    results: dict[tuple[str, str], dict] = {}
    pool = ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), disable=not show_progress,
    )  # fmt: skip
    try:
        with progress:
            bar = progress.add_task(f"benchmark runs ({workers} processes)", total=len(jobs))
            futures = {}
            for i in order:
                cohort, variant, _, config = jobs[i]
                prepared_dir = str(out / cohort / f"prepared_{variant}") if prepared else None
                raw = config.model_dump(mode="json")
                future = pool.submit(_run_job, raw, str(out / cohort / variant), prepared_dir)
                futures[future] = (cohort, variant)
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                progress.advance(bar)
    except BaseException:
        stop_worker_pool(pool)
        raise
    pool.shutdown()
    return results


def paired_table(out: Path, cohorts: list[str], entries: list[Entry]) -> list[dict]:
    """The benchmark's paired comparisons (:data:`PAIRS` whose models ran): per cohort and
    pooled over the cohorts (see :mod:`kemm.survival.compare`)."""
    from kemm.survival.compare import compare_predictions, pool

    variant_of = {e.label: e.variant for e in entries}
    rows = []
    for a, b in PAIRS:
        if a not in variant_of or b not in variant_of:
            continue
        variants = list(dict.fromkeys((variant_of[a], variant_of[b])))
        if "site_held_out" in variants and len(variants) > 1:
            continue  # other folds: not paired
        per_cohort = []
        for cohort in cohorts:
            # two data variants of one cohort share its folds: their predictions pair up
            predictions = pd.concat(
                [pd.read_csv(out / cohort / v / "predictions.csv") for v in variants]
            )
            per_cohort.append(compare_predictions(predictions, a, b, scope=cohort.upper(),
                                                  n_boot=1000))  # fmt: skip
        pooled = [pool(per_cohort)] if len(per_cohort) > 1 else []
        rows += [c.to_dict() for c in per_cohort + pooled]
    return rows


def format_paired(summary: dict) -> str:
    """The paired-comparisons table: pooled rows first, then one row per cohort."""
    from kemm.survival.compare import PairedComparison, format_comparisons

    rows = summary.get("paired") or []
    pooled = [PairedComparison.from_dict(c) for c in rows if c["scope"].startswith("pooled")]
    cohort = [PairedComparison.from_dict(c) for c in rows if not c["scope"].startswith("pooled")]
    if not rows:
        return ""
    lines = ["### Paired comparisons (ΔC = C(first) − C(second), same folds)", ""]
    if pooled:
        lines += ["Pooled over the cohorts (each cohort weighs the same):", "",
                  format_comparisons(pooled), "", "Per cohort:", ""]  # fmt: skip
    return "\n".join([*lines, format_comparisons(cohort), ""])


def _from_prepared(config: RunConfig, folder: Path) -> RunConfig:
    """``config`` reading its cohort from ``folder``, prepared there first if need be (again
    where the folder was prepared by other code)."""
    from kemm.cohort import prepare_cohort
    from kemm.cohort.folder import prepared_is_current, write_prepared
    from kemm.cohort.text import load_text_modality

    if not prepared_is_current(folder):
        if (folder / "prepared.json").is_file():
            log.warning("%s: prepared by other code; preparing it again", folder)
        write_prepared(prepare_cohort(config.data, text_loader=load_text_modality), config.data,
                       folder)  # fmt: skip
    return config.model_copy(
        update={"data": config.data.model_copy(update={"prepared": str(folder)})}
    )


def format_benchmark(summary: dict, command: str | None = None) -> str:
    """Markdown: one row per model, Harrell C mean ± std per cohort and the cohort mean, then
    Uno C and IBS tables."""
    cohorts = summary["cohorts"]
    labels = list(dict.fromkeys(label for c in cohorts for label in summary["table"][c]))
    lines = []
    for key, title in (
        ("c_index", "Harrell C-index"),
        ("uno_c", "Uno's IPCW C-index"),
        ("ibs", "Integrated Brier score (lower is better)"),
    ):
        lines += [f"### {title} (mean ± std over 5 folds)", "",
                  "| model | " + " | ".join(c.upper() for c in cohorts) + " | mean |",
                  "|---|" + "---|" * (len(cohorts) + 1)]  # fmt: skip
        for label in labels:
            cells, means = [], []
            for cohort in cohorts:
                entry = summary["table"][cohort].get(label)
                if entry is None:
                    cells.append("—")
                    continue
                cells.append(f"{entry[key]['mean']:.3f} ± {entry[key]['std']:.3f}")
                means.append(entry[key]["mean"])
            mean = f"{np.mean(means):.3f}" if len(means) == len(cohorts) else "—"
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean} |")
        lines.append("")
    paired = format_paired(summary)
    if paired:
        lines.append(paired)
    return "\n".join(lines)


def provenance(command: str, wall_seconds: float) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    import os

    return (
        f"- command: `{command}`\n- commit: `{commit or 'unknown'}`\n"
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}\n"
        f"- wall time: {wall_seconds / 60:.1f} min\n"
    )


__all__ = ["COHORTS", "ENTRIES", "METRIC_KEYS", "format_benchmark", "run_benchmark", "site_splits"]
