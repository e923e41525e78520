"""One cancer-code resolver: TCGA codes, combined cohorts, OncoTree codes and common names."""

from __future__ import annotations

import pytest

from kemm.errors import ConfigError
from kemm.knowledge.cancers import accepted_codes, cancer_from_oncotree, resolve_cancer_code


@pytest.mark.parametrize(
    ("text", "code", "rules"),
    [("KIRC", "KIRC", "kirc"), ("tcga-kirc", "KIRC", "kirc"), ("ccrcc", "KIRC", "kirc"),
     ("kidney", "KIPAN", "kirc"), ("KIPAN", "KIPAN", "kirc"), ("Colorectal", "COADREAD", "coad"),
     ("COADREAD", "COADREAD", "coad"), ("TCGA_READ", "READ", "read"), ("head and neck", "HNSC", "hnsc"),
     ("Head-and-Neck cancer", "HNSC", "hnsc"), ("IDC", "BRCA", "brca"), ("UEC", "UCEC", "ucec"),
     ("gbmlgg", "GBMLGG", "gbm"), ("breast invasive carcinoma", "BRCA", "brca")],
)  # fmt: skip
def test_codes_names_and_oncotree_resolve(text, code, rules):
    cancer = resolve_cancer_code(text)
    assert (cancer.code, cancer.rules) == (code, rules)


def test_unknown_and_ambiguous_names_are_one_line_errors():
    with pytest.raises(ConfigError) as unknown:
        resolve_cancer_code("kidny")
    message = str(unknown.value)
    assert "\n" not in message and "unknown cancer 'kidny'" in message and "KIRC" in message
    with pytest.raises(ConfigError, match="ambiguous: say which of LUAD, LUSC"):
        resolve_cancer_code("lung")


def test_every_tcga_project_and_the_tables_oncotree_codes():
    assert (
        len([c for c in accepted_codes() if c not in ("COADREAD", "GBMLGG", "KIPAN", "STES")]) == 33
    )
    assert cancer_from_oncotree(["IDC", "ILC", "MDLC"]).code == "BRCA"
    assert cancer_from_oncotree(["COAD", "READ"]).code == "COADREAD"
    assert cancer_from_oncotree(["CCRCC", "LUAD"]) is None
    assert cancer_from_oncotree([]) is None


@pytest.mark.data
def test_the_five_cohorts_resolve_from_their_names_and_tables(data_root):
    from kemm.cohort import read_all_clean

    for name in ("brca", "luad", "kirc", "ucec", "lusc"):
        table = read_all_clean(data_root / "tcga" / name / f"tcga_{name}_all_clean.csv",
                               modalities=["mut"])  # fmt: skip
        assert resolve_cancer_code(name).rules == name
        assert cancer_from_oncotree(table.oncotree_codes()).rules == name


def test_knowledge_facts_resolves_kidney_or_ends_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from kemm.cli import app

    reports = tmp_path / "reports.csv"
    reports.write_text(
        'case_id,raw_text\nTCGA-AA-0001,"Clear cell (conventional) renal cell carcinoma, Fuhrman '
        'grade 3. pT3a pN0. Tumor size 7.5 cm."\n'
    )
    runner = CliRunner()
    kidney = runner.invoke(app, ["knowledge", "facts", "--reports", str(reports), "--cancer",
                                 "kidney", "--out", str(tmp_path / "k.csv")])  # fmt: skip
    assert kidney.exit_code == 0, kidney.output
    text = (tmp_path / "k.csv").read_text()
    assert "III" in text  # the stage from the kidney AJCC table (pT3a N0 -> III)
    typo = runner.invoke(app, ["knowledge", "facts", "--reports", str(reports), "--cancer",
                               "kidny", "--out", str(tmp_path / "x.csv")])  # fmt: skip
    assert typo.exit_code == 2 and "unknown cancer 'kidny'" in typo.output


def test_a_cohort_of_two_staging_tables_routes_each_patient_by_its_oncotree_code():
    stes = resolve_cancer_code("STES")
    assert stes.mixed_tables
    assert [stes.rules_for(c) for c in ("ESCC", "EAC", "GEJ", "ESCA", "DSTAD", "stad")] == [
        "esca", "esca", "esca", "esca", "stad", "stad"
    ]  # fmt: skip
    assert stes.rules_for("CCRCC") is None and stes.rules_for(None) is None
    # a junction adenocarcinoma is staged with the oesophagus in a stomach cohort too
    stad = resolve_cancer_code("STAD")
    assert [stad.rules_for(c) for c in ("GEJ", "DSTAD", "CCRCC", None)] == [
        "esca", "stad", "stad", "stad"
    ]  # fmt: skip
    assert resolve_cancer_code("ESCA").rules_for("GEJ") == "esca"
    # projects sharing one table need no code: every patient gets the cohort's rules
    for name in ("COADREAD", "KIPAN", "GBMLGG", "BRCA"):
        cancer = resolve_cancer_code(name)
        assert not cancer.mixed_tables and cancer.rules_for(None) == cancer.rules


def test_knowledge_facts_refuses_one_table_for_a_cohort_of_two(tmp_path):
    from typer.testing import CliRunner

    from kemm.cli import app

    reports = tmp_path / "reports.csv"
    reports.write_text('case_id,raw_text\nTCGA-AA-0001,"Adenocarcinoma. pT1b pN1 cM0"\n')
    result = CliRunner().invoke(app, ["knowledge", "facts", "--reports", str(reports), "--cancer",
                                      "STES", "--out", str(tmp_path / "f.csv")])  # fmt: skip
    assert result.exit_code == 2 and "STAD: stomach, ESCA: esophagus" in result.output
    assert not (tmp_path / "f.csv").exists()
