"""``kemm knowledge refine | pbk | embed`` end to end (extractive backend, no LLM)."""

from __future__ import annotations

import json

import h5py
import pandas as pd
import pytest
from typer.testing import CliRunner

from kemm.cli import app
from kemm.errors import InputDataError
from kemm.knowledge.reports import read_refined, read_reports

runner = CliRunner()

REPORT_A = (
    "FINAL DIAGNOSIS: Right kidney: clear cell renal cell carcinoma, Fuhrman nuclear grade 3, "
    "5.2 cm, pT1b pNX. Margins uninvolved by tumor."
)
REPORT_B = "DIAGNOSIS: Invasive ductal carcinoma, Nottingham grade 2, 2 of 14 lymph nodes positive."


@pytest.fixture()
def reports_csv(tmp_path):
    path = tmp_path / "reports.csv"
    pd.DataFrame(
        {
            "case_id": ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"],
            "raw_text": [REPORT_A, REPORT_B, ""],
            "llm_text": ["x", "y", "z"],
        }
    ).to_csv(path, index=False)
    return path


def test_read_reports_errors(tmp_path, reports_csv):
    assert list(read_reports(reports_csv)) == ["TCGA-AA-0001", "TCGA-AA-0002"]
    with pytest.raises(InputDataError, match="missing column 'text'"):
        read_reports(reports_csv, text_column="text")
    dup = tmp_path / "dup.csv"
    pd.DataFrame({"case_id": ["A", "A"], "raw_text": ["x", "y"]}).to_csv(dup, index=False)
    with pytest.raises(InputDataError, match="duplicate case_id") as info:
        read_reports(dup)
    assert info.value.patient == "A" and info.value.file == str(dup)
    with pytest.raises(InputDataError, match="not found"):
        read_reports(tmp_path / "nope.csv")


def test_refine_then_embed(tmp_path, reports_csv):
    out = tmp_path / "refined.jsonl"
    result = runner.invoke(
        app,
        ["knowledge", "refine", "--reports", str(reports_csv), "--out", str(out),
         "--backend", "extractive", "--cache-dir", str(tmp_path / "cache")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["case_id"] for r in records] == ["TCGA-AA-0001", "TCGA-AA-0002"]
    first = records[0]
    assert set(first) == {"case_id", "statements", "dropped", "backend", "model", "prompt_version"}
    assert first["backend"] == "extractive" and first["prompt_version"] == "refine_v1"
    assert any("pT1b" in s for s in first["statements"]) and first["dropped"] == 0
    summary = json.loads((tmp_path / "refined.jsonl.summary.json").read_text())
    assert summary["succeeded"] == 2 and summary["failures"] == {}
    assert read_refined(out)["TCGA-AA-0002"] == records[1]["statements"]

    emb, pbk_emb = tmp_path / "statements.h5", tmp_path / "pbk.h5"
    result = runner.invoke(
        app,
        ["knowledge", "embed", "--refined", str(out), "--out", str(emb), "--cancer", "KIRC",
         "--pbk-out", str(pbk_emb)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with h5py.File(emb) as h5:
        assert sorted(h5) == ["TCGA-AA-0001", "TCGA-AA-0002"]
        assert h5["TCGA-AA-0001/embeddings"].shape == (len(first["statements"]), 384)
    with h5py.File(pbk_emb) as h5:
        assert h5["prototypes"].shape == (3, 384) and h5.attrs["cancer"] == "KIRC"


def test_refine_bad_column_is_a_clear_error(tmp_path, reports_csv):
    result = runner.invoke(
        app,
        ["knowledge", "refine", "--reports", str(reports_csv), "--out", str(tmp_path / "o.jsonl"),
         "--text-column", "report"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "missing column 'report'" in result.output


def test_refine_lists_failures_and_exits_nonzero(tmp_path, reports_csv):
    # an unreachable OpenAI-compatible endpoint: every report fails, each is listed
    out = tmp_path / "o.jsonl"
    args = ["knowledge", "refine", "--reports", str(reports_csv), "--out", str(out),
            "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
            "--max-retries", "0", "--timeout", "2", "--no-cache"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "2 failed reports" in result.output and "TCGA-AA-0001" in result.output
    summary = json.loads((tmp_path / "o.jsonl.summary.json").read_text())
    assert set(summary["failures"]) == {"TCGA-AA-0001", "TCGA-AA-0002"}
    assert runner.invoke(app, [*args, "--allow-failures"]).exit_code == 0


def test_pbk_command(tmp_path):
    result = runner.invoke(app, ["knowledge", "pbk", "--list"])
    assert result.exit_code == 0 and "BRCA" in result.output.split()
    result = runner.invoke(app, ["knowledge", "pbk", "--cancer", "luad"])
    assert result.exit_code == 0 and json.loads(result.output)["cancer"] == "LUAD"
    out = tmp_path / "brca.json"
    result = runner.invoke(app, ["knowledge", "pbk", "--cancer", "BRCA", "--out", str(out)])
    assert result.exit_code == 0 and json.loads(out.read_text())["provenance"]["prompt_version"]
    result = runner.invoke(app, ["knowledge", "pbk", "--cancer", "KIRP"])
    assert result.exit_code == 2 and "available: BLCA" in result.output
