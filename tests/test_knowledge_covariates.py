"""Report facts as covariates: encoding, unknown levels, directions, and the engine's
clinical block built from a reports CSV or a facts CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kemm.cohort.prepared import prepare_cohort
from kemm.engine.config import parse_config
from kemm.errors import InputDataError
from kemm.knowledge.covariates import covariate_of, encode_facts, facts_from_csv


def test_ordinal_facts_are_cumulative_with_an_unknown_level():
    values = pd.DataFrame(
        {"t": ["T1a", "T2", "T4b", None, "Tis"], "stage": ["IA", "IIB", "IV", None, None]},
        index=list("abcde"),
    )
    encoded, directions = encode_facts(values, ["t", "stage"])
    assert list(encoded.loc["c", ["t>=2", "t>=3", "t>=4", "t=unknown"]]) == [1, 1, 1, 0]
    assert list(encoded.loc["b", ["t>=2", "t>=3", "t>=4"]]) == [1, 0, 0]
    # not stated: the level columns are left for the fold's mean imputation, the flag is set
    assert encoded.loc["d", ["t>=2", "t>=3", "t>=4"]].isna().all()
    assert encoded.loc["d", "t=unknown"] == 1
    assert list(encoded.loc["e", ["t>=2", "t=unknown"]]) == [0, 0]  # Tis is below T1, stated
    assert encoded.loc["b", "stage>=2"] == 1 and encoded.loc["b", "stage>=3"] == 0
    assert directions["t>=3"] == 1 and directions["t=unknown"] == 0


def test_binary_count_and_histology_facts():
    values = pd.DataFrame(
        {
            "m": ["M0", "M1a", None],
            "margin": ["negative", "positive", None],
            "nodes_positive": ["0", "3", None],
            "histology": ["serous carcinoma", "endometrioid adenocarcinoma", None],
        },
        index=list("abc"),
    )
    encoded, directions = encode_facts(values, ["m", "margin", "nodes", "histology"], "ucec")
    assert list(encoded["m=m1"].fillna(-1)) == [0, 1, -1] and list(encoded["m=unknown"]) == [
        0,
        0,
        1,
    ]
    assert list(encoded["margin=positive"].fillna(-1)) == [0, 1, -1]
    np.testing.assert_allclose(encoded["log1p_nodes"], [0, np.log(4), np.nan])
    assert list(encoded["nodes=unknown"]) == [0, 0, 1]
    assert directions["margin=positive"] == 1
    assert {covariate_of(c) for c in encoded} == {"m", "margin", "nodes", "histology"}


def test_histology_indicators_pool_rare_terms():
    """One indicator per vocabulary term; a term fewer than MIN_SUBTYPE_PATIENTS patients have
    is pooled into "other" (no coefficient from a handful of patients)."""
    from kemm.knowledge.covariates import MIN_SUBTYPE_PATIENTS

    n = MIN_SUBTYPE_PATIENTS
    histology = ["serous carcinoma"] * n + ["endometrioid adenocarcinoma"] * n
    histology += ["clear cell carcinoma"] * 2 + [None]
    values = pd.DataFrame({"histology": histology}, index=[f"p{i}" for i in range(len(histology))])
    encoded, directions = encode_facts(values, ["histology"], "ucec")
    assert list(encoded["histology=serous"].fillna(-1)) == [1] * n + [0] * (n + 2) + [-1]
    assert list(encoded["histology=other"].fillna(-1)) == [0] * (2 * n) + [1, 1, -1]
    assert "histology=clear_cell" not in encoded  # two patients: pooled into "other"
    assert "histology=lobular" not in encoded  # no patient has it
    assert directions["histology=serous"] == 0


def test_facts_csv_errors_name_the_file(tmp_path):
    path = tmp_path / "facts.csv"
    path.write_text("case,t\nA,T2\n")
    with pytest.raises(InputDataError, match="facts.csv.*no case_id column"):
        facts_from_csv(str(path))
    path.write_text("case_id,t\nA,T2\nA,T3\n")
    with pytest.raises(InputDataError, match="twice"):
        facts_from_csv(str(path))


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    from kemm.cohort.simulate import simulate_cohort

    root = tmp_path_factory.mktemp("sim_cov")
    simulate_cohort(root, n_patients=60, patches=(10, 20), feature_dim=8, show_progress=False)
    return root


def test_clinical_block_from_reports_and_from_a_facts_csv(sim_root, tmp_path):
    raw = {"data": {"root": str(sim_root), "cohort": "sim", "cancer": "kirc",
                    "clinical": ["age", "sex", "t", "stage", "margin"]},
           "models": [{"name": "clinical_cox"}]}  # fmt: skip
    data = prepare_cohort(parse_config(raw).data)
    columns = list(data.clinical.columns)
    assert columns[:2] == ["age", "sex"] and "t>=2" in columns and "margin=positive" in columns
    assert data.clinical_directions["age"] == 1 and data.clinical_directions["sex"] == 0
    # the simulated reports state T for every patient with a report
    with_report = data.clinical["t=unknown"] == 0
    assert with_report.mean() > 0.8
    # unknown levels are imputed with the training fold's mean, so such patients sit at the
    # average of the stated levels rather than at the lowest category
    from kemm.engine.data import FoldPreprocessor

    pre = FoldPreprocessor.fit(data, data.cohort.case_ids)
    unknown = data.clinical.index[data.clinical["t=unknown"] == 1][:1].tolist()
    if unknown:
        row = pre.clinical_array(data, unknown)[0]
        assert abs(row[pre.clinical_columns.index("t>=2")]) < 1e-5  # standardised mean = 0
    # the same block from a facts CSV that says every patient is T4
    facts = pd.DataFrame({"case_id": data.cohort.case_ids, "t": "T4", "stage": "", "margin": ""})
    facts.to_csv(tmp_path / "facts.csv", index=False)
    raw["data"]["facts_csv"] = str(tmp_path / "facts.csv")
    from_csv = prepare_cohort(parse_config(raw).data).clinical
    assert (from_csv["t>=4"] == 1).all() and (from_csv["stage=unknown"] == 1).all()


def test_unknown_covariate_is_named(sim_root):
    raw = {"data": {"root": str(sim_root), "cohort": "sim", "clinical": ["ldh"]},
           "models": [{"name": "clinical_cox"}]}  # fmt: skip
    with pytest.raises(InputDataError, match="'ldh' is neither a column of the table nor"):
        prepare_cohort(parse_config(raw).data)


def test_encoded_facts_read_back_as_a_pathologist_writes_them():
    from kemm.knowledge.covariates import describe_fact, encode_facts

    values = pd.DataFrame(
        {"t": ["pT3a", None], "grade": ["G2", "G4"], "margin": ["positive", None],
         "size_cm": [4.5, None], "stage": ["IIIB", "I"]},
        index=["A", "B"],
    )  # fmt: skip
    encoded, _ = encode_facts(values, ["t", "grade", "margin", "size", "stage"], "kirc")
    row = {name: {c: v for c, v in encoded.loc["A"].items() if c.startswith((name, f"log1p_{name}"))}
           for name in ("t", "grade", "margin", "size", "stage")}  # fmt: skip
    assert [describe_fact(n, row[n]) for n in row] == ["T3", "grade 2", "positive", "4.5 cm",
                                                       "stage III"]  # fmt: skip
    other = {c: v for c, v in encoded.loc["B"].items() if c.startswith("t")}
    assert describe_fact("t", other) == "not stated"
    assert describe_fact("stage", {c: v for c, v in encoded.loc["B"].items()
                                   if c.startswith("stage")}) == "stage I (or lower)"  # fmt: skip


def test_a_derived_stage_uses_each_patients_age_where_the_table_depends_on_it(sim_root, tmp_path):
    # thyroid (AJCC 7th): T3 N1a M0 is stage I under 45 and stage III from 45
    cohort = pd.read_csv(sim_root / "tcga" / "sim" / "tcga_sim_all_clean.csv")
    text = "FINAL DIAGNOSIS:\nThyroid: papillary thyroid carcinoma.\nPathologic stage: pT3 pN1a\n"
    reports = pd.DataFrame({"case_id": cohort.case_id, "raw_text": text})
    reports.to_csv(tmp_path / "reports.csv", index=False)
    raw = {"data": {"root": str(sim_root), "cohort": "sim", "cancer": "thca",
                    "clinical": ["age", "stage"], "reports": {"csv": str(tmp_path / "reports.csv")}},
           "models": [{"name": "clinical_cox"}]}  # fmt: skip
    data = prepare_cohort(parse_config(raw).data)
    age = cohort.set_index("case_id").age.reindex(data.clinical.index)
    assert (age < 45).any() and (age >= 45).any()
    assert (data.clinical["stage>=3"] == (age >= 45).astype(float)).all()
    assert (data.clinical["stage=unknown"] == 0).all()


def _coded_stomach_cohort(sim_root, tmp_path, codes: list[str], cancer: str):
    """The simulated cohort with these OncoTree codes, every report "pT1b pN1 cM0" (stage IB by
    the stomach's table, IIB by the oesophagus's): its table, table path and run config."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(sim_root, root)
    table_path = root / "tcga" / "sim" / "tcga_sim_all_clean.csv"
    table = pd.read_csv(table_path)
    table["oncotree_code"] = codes[: len(table)]
    table.to_csv(table_path, index=False)
    reports = pd.DataFrame({"case_id": table.case_id, "raw_text": "Adenocarcinoma. pT1b pN1 cM0"})
    reports.to_csv(tmp_path / "reports.csv", index=False)
    raw = {"data": {"root": str(root), "cohort": "sim", "cancer": cancer,
                    "clinical": ["stage"], "reports": {"csv": str(tmp_path / "reports.csv")}},
           "models": [{"name": "clinical_cox"}]}  # fmt: skip
    return table, table_path, raw


def test_a_cohort_of_two_staging_tables_reads_each_report_by_its_patients_project(
    sim_root, tmp_path
):
    """STES holds stomach and oesophagus: pT1b pN1 is stage IB by the stomach table and IIB by
    the oesophagus one, so each patient is staged by the project of its OncoTree code, and a
    patient whose code names neither is an error naming it (never the first project's table)."""
    codes = ["ESCC" if i % 2 else "DSTAD" for i in range(100)]
    table, table_path, raw = _coded_stomach_cohort(sim_root, tmp_path, codes, "STES")
    data = prepare_cohort(parse_config(raw).data)
    oesophagus = table.set_index("case_id").oncotree_code.reindex(data.clinical.index) == "ESCC"
    assert (data.clinical["stage>=2"] == oesophagus.astype(float)).all()
    assert (data.clinical["stage=unknown"] == 0).all()

    table.loc[3, "oncotree_code"] = "XYZ"
    table.to_csv(table_path, index=False)
    with pytest.raises(InputDataError, match="1 of 60 patient.*no oncotree_code") as error:
        prepare_cohort(parse_config(raw).data)
    assert table.case_id[3] in str(error.value) and "tcga_sim_all_clean.csv" in str(error.value)
    # a patient without a report needs no code: there is nothing to read
    reports = pd.read_csv(tmp_path / "reports.csv")
    reports.drop(index=3).to_csv(tmp_path / "reports.csv", index=False)
    data = prepare_cohort(parse_config(raw).data)
    assert data.clinical.loc[table.case_id[3], "stage=unknown"] == 1


def test_a_patient_coded_for_another_staging_table_is_read_by_it_with_a_warning(
    sim_root, tmp_path, caplog
):
    """A junction (GEJ) adenocarcinoma in a stomach cohort is staged with the oesophagus (AJCC
    7th edition): its report is read by the oesophagus rules, and the warning counts it."""
    codes = ["GEJ" if i == 5 else "STAD" for i in range(100)]
    table, _, raw = _coded_stomach_cohort(sim_root, tmp_path, codes, "STAD")
    with caplog.at_level("WARNING"):
        data = prepare_cohort(parse_config(raw).data)
    junction = data.clinical.index == table.case_id[5]
    assert (data.clinical["stage>=2"] == junction.astype(float)).all()  # IIB vs IB
    assert "1 patient(s) have OncoTree codes" in caplog.text and "GEJ -> esca" in caplog.text


def test_facts_for_reports_refuses_a_case_its_cancer_mapping_leaves_out():
    from kemm.knowledge.covariates import facts_for_reports

    texts = {"A": "pT1b pN1 cM0", "B": "pT1b pN1 cM0"}
    records = facts_for_reports(texts, {"A": "esca", "B": "stad"})
    assert (records["A"].value("stage"), records["B"].value("stage")) == ("IIB", "IB")
    with pytest.raises(ValueError, match="no cancer given for 1 report.*'B'"):
        facts_for_reports(texts, {"A": "esca"})
