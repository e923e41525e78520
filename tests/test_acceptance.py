"""End-to-end checks as a new user would run them (slow tier)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kemm.cli import app
from kemm.engine.results import read_metrics

REPO = Path(__file__).resolve().parents[1]
SINGLE_MODALITY = ("coxnet", "snn", "abmil")
MULTIMODAL = ("mcat", "survpath", "porpoise")


@pytest.mark.slow
def test_demo_kemm_beats_every_single_modality_model(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "| KEMM |" in result.output
    assert "KEMM against the best single-modality model" in result.output
    assert "| KEMM vs " in result.output  # the paired comparison's row
    models = read_metrics(tmp_path / "run")["models"]
    means = {name: entry["c_index"]["mean"] for name, entry in models.items()}
    single = {name: c for name, c in means.items() if name != "KEMM"}
    assert len(single) == 4 and min(single.values()) > 0.55, means
    assert means["KEMM"] > max(single.values()), means


@pytest.mark.slow
def test_multimodal_baselines_learn_the_planted_signal(tmp_path):
    """MCAT-, SurvPath- and PORPOISE-style models on the simulated cohort beat the
    single-modality networks (slides, genomics) they combine."""
    import yaml

    runner = CliRunner()
    data = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "--out", str(data), "--patients", "200",
                                 "--min-patches", "100", "--max-patches", "400",
                                 "--feature-dim", "64"])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = {
        "name": "baselines",
        "data": {"root": str(data), "cohort": "sim",
                 "genomics": {"modalities": ["rnaseq", "cnv", "mut"], "grouping": "families"},
                 "wsi": {"features_dir": str(data / "features"), "encoder": "simulated"}},
        "models": [{"name": n} for n in SINGLE_MODALITY + MULTIMODAL],
        "train": {"epochs": 6, "batch_size": 16, "lr": 5e-4, "weight_decay": 1e-4,
                  "bag_cap": 128, "seed": 0},
    }  # fmt: skip
    path = tmp_path / "baselines.yaml"
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "run"),
                                 "--workers", "2", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    models = read_metrics(tmp_path / "run")["models"]
    means = {name: entry["c_index"]["mean"] for name, entry in models.items()}
    for name in SINGLE_MODALITY:
        assert means[name] > 0.55, means
    best_multimodal = max(means[name] for name in MULTIMODAL)
    assert all(best_multimodal > means[name] for name in ("snn", "abmil")), means


@pytest.mark.slow
@pytest.mark.data
def test_kirc_genomics_reaches_published_range(data_root, tmp_path):
    out = tmp_path / "kirc"
    result = CliRunner().invoke(app, [
        "train", "--config", str(REPO / "examples" / "tcga_kirc_genomics.yaml"),
        "--out", str(out), "--data-root", str(data_root), "--quiet",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = read_metrics(out)
    assert metrics["protocol"]["selection"] == "last"
    for name in ("coxnet", "snn"):
        assert metrics["models"][name]["c_index"]["mean"] >= 0.60, metrics["models"][name][
            "c_index"
        ]


@pytest.mark.slow
def test_kemm_learns_the_planted_knowledge_signal(tmp_path):
    """The simulated disease extent reaches the model only through the report: full KEMM (report
    statements, report-parsed stage, PBK) must beat the same network with knowledge switched off,
    and its report-free student path must rank patients like the teacher (distillation)."""
    runner = CliRunner()
    data = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "--out", str(data), "--min-patches", "50",
                                 "--max-patches", "100", "--feature-dim", "32", "--extent-effect", "1.0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "train", "--config", str(REPO / "examples" / "sim_knowledge.yaml"),
        "--data-root", str(data), "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    models = read_metrics(out)["models"]
    full, off = models["kemm"], models["kemm_no_knowledge"]
    assert full["c_index"]["mean"] > off["c_index"]["mean"], (full["c_index"], off["c_index"])
    assert full["student_teacher_spearman"]["mean"] >= 0.9, full["student_teacher_spearman"]
    assert "student_teacher_spearman" not in off

    # kemm explain ranks what the simulator made prognostic first: the report's stage (as a
    # fact, and its stage/TNM/grade statements) above the statement every patient shares (the
    # histologic type)
    from kemm.cohort import prepare_cohort
    from kemm.cohort.text import load_text_modality
    from kemm.engine.config import load_config
    from kemm.engine.explain import explain_case

    config = load_config(out / "config.yaml")
    prepared = prepare_cohort(config.data, text_loader=load_text_modality)
    cases = [c for c in pd.read_csv(out / "predictions.csv")["case_id"].unique()
             if c in prepared.text.report_embeddings][:8]  # fmt: skip
    prognostic = ("stage:", "Pathologic stage", "Pathologic TNM", "Tumour grade")
    for case in cases:
        ranked = explain_case(out, case, model="kemm", data=prepared)["contributions"]
        assert ranked[0]["text"].startswith(prognostic), (case, ranked[:3])
        neutral = next(c for c in ranked if c["text"].startswith("Histologic type"))
        assert abs(ranked[0]["delta_risk"]) > abs(neutral["delta_risk"]), (case, ranked)
