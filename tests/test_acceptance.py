"""End-to-end checks as a new user would run them (slow tier)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kemm.cli import app
from kemm.engine.results import read_metrics

REPO = Path(__file__).resolve().parents[1]
SINGLE_MODALITY = ("coxnet", "snn", "abmil")
MULTIMODAL = ("mcat", "survpath", "porpoise")


@pytest.mark.slow
def test_demo_baselines_learn_the_planted_signal(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "| porpoise |" in result.output
    models = read_metrics(tmp_path / "run")["models"]
    means = {name: entry["c_index"]["mean"] for name, entry in models.items()}
    for name in SINGLE_MODALITY:
        assert means[name] > 0.55, means
    best_multimodal = max(means[name] for name in MULTIMODAL)
    assert all(best_multimodal > means[name] for name in SINGLE_MODALITY), means


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
