"""A synthetic multimodal cohort in the real data's formats, for demos and tests.

Hazard model (documented so results can be checked against it). Per patient, three independent
latent factors ~ N(0, 1): ``molecular`` (genomics), ``histology`` (slide) and ``extent``
(clinical extent, seen only through the pathology report). Then

* grade 1–4 = quartile cut of ``0.8·histology + 0.6·noise`` (stated in the report),
* stage I–IV = quartile cut of ``extent`` (report: pT, pN, stage group, size, margins, LVI),
* log-hazard η = 0.55·molecular + 0.55·histology + e·z(stage) + 0.15·z(age), with the extent
  effect e = ``extent_effect`` (0.45 by default; larger plants a stronger report-only signal),
* event time T ~ Weibull(shape 1.3, scale 60 months · exp(−η / 1.3)), censoring C ~ U(3, 120)
  months; ``survival_months = min(T, C)``, ``censorship = 1[C < T]``.

Genomics: six gene families of synthetic genes in the PORPOISE layout (``<GENE>_rnaseq``,
``_cnv``, ``_mut``); oncogene RNA loads +molecular, tumour-suppressor RNA −molecular, a few CNV
and mutation columns depend on it, the rest is noise. Slides: one bag per patient of a realistic
number of patches (default 500–3000) × ``feature_dim``; 30–60 % are tumour patches whose features
move along a fixed "aggressiveness" direction in proportion to ``histology``. Reports: noisy
OCR-like pathology text; 10 % of patients have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

FAMILIES = (
    "Tumor Suppressor Genes",
    "Oncogenes",
    "Protein Kinases",
    "Cell Differentiation Markers",
    "Transcription Factors",
    "Cytokines and Growth Factors",
)
SIM_COHORT = "sim"


@dataclass
class SimulationSummary:
    root: Path
    patients: int
    events: int
    slides: int
    patches: int
    with_report: int


def _grade_text(grade: int) -> str:
    return f"Fuhrman nuclear grade {grade}"


def _report(rng: np.random.Generator, case_id: str, grade: int, stage: int, age: int) -> str:
    t_stage = {1: "pT1a", 2: "pT2", 3: "pT3a", 4: "pT4"}[stage]
    n_positive = 0 if stage < 3 else int(rng.integers(1, 6))
    n_examined = int(rng.integers(n_positive + 1, n_positive + 12))
    size = {
        1: rng.uniform(1.5, 4.0),
        2: rng.uniform(4.0, 7.0),
        3: rng.uniform(6.0, 10.0),
        4: rng.uniform(8.0, 15.0),
    }[stage]
    margins = "negative for tumor" if stage < 4 or rng.random() < 0.5 else "positive for tumor"
    lvi = "present" if stage >= 3 and rng.random() < 0.7 else "not identified"
    roman = {1: "I", 2: "II", 3: "III", 4: "IV"}[stage]
    noise = [
        f"UUID:{rng.integers(10**7, 10**8):X}-{rng.integers(1000, 9999)} Redacted",
        "III II IIIIIIIII11111111111IIIII11111111 III",
        "SURGICAL PATHOLOGY REPORT Page 1 of 2",
    ]
    body = [
        f"Patient: {case_id}   Age: {age}",
        "SPECIMEN: Right kidney, radical nephrectomy.",
        "FINAL DIAGNOSIS:",
        f"Renal cell carcinoma, clear cell type, {_grade_text(grade)}.",
        f"Tumor size: {size:.1f} cm in greatest dimension.",
        f"Lymphovascular invasion: {lvi}.",
        f"Surgical margins: {margins}.",
        f"Regional lymph nodes: {n_positive} of {n_examined} lymph nodes positive for metastatic carcinoma.",
        "SYNOPTIC REPORT",
        f"Pathologic stage: {t_stage} pN{'1' if n_positive else '0'}, AJCC stage {roman}.",
        "GROSS DESCRIPTION: Received in formalin is a nephrectomy specimen.",
    ]
    lines = noise[:2] + body[:4] + [noise[2]] + body[4:]
    return "\n".join(lines)


def simulate_cohort(
    root: str | Path,
    *,
    n_patients: int = 240,
    genes_per_family: int = 30,
    patches: tuple[int, int] = (500, 3000),
    feature_dim: int = 256,
    n_folds: int = 5,
    seed: int = 0,
    cancer: str = "KIRC",
    extent_effect: float = 0.45,
    show_progress: bool = True,
) -> SimulationSummary:
    """Write the cohort under ``root`` laid out like the real data root."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    folder = root / "tcga" / SIM_COHORT
    (folder / "splits").mkdir(parents=True, exist_ok=True)
    (root / "signatures").mkdir(parents=True, exist_ok=True)
    features_dir = root / "features"
    features_dir.mkdir(parents=True, exist_ok=True)

    n = n_patients
    molecular, histology, extent = rng.standard_normal((3, n))
    grade = (
        np.digitize(
            0.8 * histology + 0.6 * rng.standard_normal(n),
            np.quantile(0.8 * histology, [0.25, 0.5, 0.75]),
        )
        + 1
    )
    stage = np.digitize(extent, np.quantile(extent, [0.35, 0.6, 0.85])) + 1
    age = np.clip(rng.normal(62, 11, n), 25, 90).round().astype(int)
    stage_z = (stage - stage.mean()) / stage.std()
    eta = (
        0.55 * molecular
        + 0.55 * histology
        + extent_effect * stage_z
        + 0.15 * (age - age.mean()) / age.std()
    )
    shape = 1.3
    event_time = 60.0 * np.exp(-eta / shape) * rng.weibull(shape, n)
    censor_time = rng.uniform(3, 120, n)
    time = np.minimum(event_time, censor_time).round(2).clip(0.1, None)
    censorship = (censor_time < event_time).astype(int)

    case_ids = [f"TCGA-S{i // 100:d}-{i:04d}" for i in range(n)]
    sites = rng.choice(["A3", "B0", "BP", "CJ", "CZ"], n)
    genes = {
        family: [f"{family.split()[0][:3].upper()}{j:03d}" for j in range(genes_per_family)]
        for family in FAMILIES
    }
    columns: dict[str, np.ndarray] = {}
    for family, names in genes.items():
        for j, gene in enumerate(names):
            loading = 0.0
            if family == "Oncogenes" and j < 8:
                loading = 0.8
            elif family == "Tumor Suppressor Genes" and j < 6:
                loading = -0.8
            columns[f"{gene}_rnaseq"] = (loading * molecular + rng.standard_normal(n)).round(4)
            if j < genes_per_family // 2:
                cnv_signal = (
                    0.9 * molecular if family == "Oncogenes" and j < 4 else 0.0
                ) + rng.standard_normal(n)
                columns[f"{gene}_cnv"] = np.clip(np.round(cnv_signal), -2, 2)
            if j < 3:
                p = 1 / (
                    1
                    + np.exp(
                        -(molecular * (1.2 if family == "Tumor Suppressor Genes" else 0.0) - 2.0)
                    )
                )
                columns[f"{gene}_mut"] = (rng.random(n) < p).astype(int)
    signatures = pd.DataFrame({family: pd.Series(names) for family, names in genes.items()})
    signatures.to_csv(root / "signatures" / "gene_families.csv", index=False)

    table = pd.DataFrame({
        "case_id": case_ids, "slide_id": [f"{c}-01Z-00-DX1" for c in case_ids], "age": age, "site": sites,
        "survival_months": time, "censorship": censorship, "is_female": rng.integers(0, 2, n),
        "oncotree_code": "CCRCC", "train": 1,
    })  # fmt: skip
    table = pd.concat([table, pd.DataFrame(columns)], axis=1)
    table.to_csv(folder / f"tcga_{SIM_COHORT}_all_clean.csv")

    has_report = rng.random(n) >= 0.1
    reports = pd.DataFrame({
        "case_id": case_ids,
        "raw_text": [_report(rng, c, int(g), int(s), int(a)) if r else "" for c, g, s, a, r in zip(case_ids, grade, stage, age, has_report, strict=True)],
        "raw_source": "simulated",
        "llm_text": "",
        "llm_source": "",
    })  # fmt: skip
    reports.to_csv(folder / "reports.csv", index=False)

    order = rng.permutation(n)
    for k in range(n_folds):
        val = [case_ids[i] for i in order[k::n_folds]]
        train = [c for c in case_ids if c not in set(val)]
        frame = pd.DataFrame({"train": pd.Series(train), "val": pd.Series(val)})
        frame.to_csv(folder / "splits" / f"splits_{k}.csv")

    total = _write_bags(
        rng,
        features_dir,
        table["slide_id"].tolist(),
        histology,
        patches,
        feature_dim,
        show_progress,
    )
    return SimulationSummary(root, n, int((1 - censorship).sum()), n, total, int(has_report.sum()))


def _write_bags(rng, folder: Path, slide_ids: list[str], histology: np.ndarray,
                patches: tuple[int, int], dim: int, show_progress: bool) -> int:  # fmt: skip
    from kemm.wsi.features import write_bag

    stroma = rng.standard_normal(dim).astype(np.float32)
    tumour = rng.standard_normal(dim).astype(np.float32)
    aggressive = rng.standard_normal(dim).astype(np.float32)
    aggressive /= np.linalg.norm(aggressive) / 4.0
    total = 0
    iterator = (
        track(list(enumerate(slide_ids)), description="simulating slides")
        if show_progress
        else enumerate(slide_ids)
    )
    for i, slide_id in iterator:
        count = int(rng.integers(patches[0], patches[1] + 1))
        n_tumour = int(count * rng.uniform(0.3, 0.6))
        noise = rng.standard_normal((count, dim)).astype(np.float32)
        features = np.empty((count, dim), np.float32)
        features[:n_tumour] = tumour + histology[i] * aggressive + noise[:n_tumour]
        features[n_tumour:] = stroma + noise[n_tumour:]
        features = rng.permutation(features)
        side = int(np.ceil(np.sqrt(count)))
        grid = np.stack(np.divmod(np.arange(count), side), axis=1)[:, ::-1] * 512
        write_bag(
            folder / f"{slide_id}.h5", features.astype(np.float16), grid.astype(np.int64),
            {"encoder": "simulated", "feature_dim": dim, "patch_size": 256, "magnification": 20.0,
             "mpp": 0.5},
            dtype=np.float16,
        )  # fmt: skip
        total += count
    return total
