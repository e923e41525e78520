"""Cohort reading and validation: every corruption gets a message naming file, patient, problem."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from kemm.cohort import (
    group_features,
    read_all_clean,
    read_signatures,
    read_split,
    read_splits,
)
from kemm.cohort.table import looks_like_outcome
from kemm.errors import InputDataError


def _table(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        for slide in range(1 + (i == 0)):  # patient 0 has two slides
            rows.append({
                "case_id": f"TCGA-AA-{i:04d}", "slide_id": f"TCGA-AA-{i:04d}-DX{slide}", "age": 50 + i,
                "site": "AA", "survival_months": 10.0 + i, "censorship": i % 2, "is_female": 1,
                "oncotree_code": "CCRCC", "train": 1, "TP53_rnaseq": float(i), "TP53_cnv": 0.0,
                "EGFR_rnaseq": rng.normal(), "KRAS_mut": float(i % 2),
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.loc[frame.case_id == "TCGA-AA-0000", "EGFR_rnaseq"] = 0.5
    return frame


def _write(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "tcga_x_all_clean.csv"
    frame.to_csv(path)
    return path


def test_reads_one_row_per_patient_and_converts_censorship(tmp_path):
    cohort = read_all_clean(_write(tmp_path, _table()))
    assert len(cohort) == 6
    assert cohort.patients.loc["TCGA-AA-0000", "slide_ids"] == (
        "TCGA-AA-0000-DX0",
        "TCGA-AA-0000-DX1",
    )
    # censorship 1 (censored) -> event 0
    assert cohort.patients.loc["TCGA-AA-0001", "event"] == 0
    assert cohort.patients.loc["TCGA-AA-0000", "event"] == 1
    assert list(cohort.target.event) == [True, False, True, False, True, False]
    assert set(cohort.genomics.columns) == {"TP53_rnaseq", "TP53_cnv", "EGFR_rnaseq", "KRAS_mut"}


def test_modalities_select_columns_by_name(tmp_path):
    cohort = read_all_clean(_write(tmp_path, _table()), modalities=["cnv"])
    assert list(cohort.genomics.columns) == ["TP53_cnv"]


@pytest.mark.parametrize(
    "corrupt, message, patient",
    [
        (lambda f: f.assign(survival_months=f.survival_months.where(f.index != 3)), "missing or non-numeric survival_months", "TCGA-AA-0002"),
        (lambda f: f.assign(survival_months=f.survival_months.where(f.index != 3, -2.0)), "negative survival_months", "TCGA-AA-0002"),
        (lambda f: f.assign(censorship=f.censorship.where(f.index != 4, 2)), "censorship must be 0", "TCGA-AA-0003"),
        (lambda f: f.assign(TP53_rnaseq=f.TP53_rnaseq.where(f.index != 5, np.nan)), "NaN, infinite", "TCGA-AA-0004"),
        (lambda f: f.assign(EGFR_rnaseq=f.EGFR_rnaseq.where(f.index != 5, np.inf)), "NaN, infinite", "TCGA-AA-0004"),
        (lambda f: f.assign(survival_months=f.survival_months.where(f.index != 1, 99.0)), "conflicting rows for one patient", "TCGA-AA-0000"),
        (lambda f: f.assign(EGFR_rnaseq=f.EGFR_rnaseq.where(f.index != 1, 7.0)), "genomic values differ", "TCGA-AA-0000"),
        (lambda f: pd.concat([f, f.iloc[[3]]]), "duplicate row for slide", "TCGA-AA-0002"),
    ],
)  # fmt: skip
def test_corrupt_tables_name_file_patient_and_problem(tmp_path, corrupt, message, patient):
    path = _write(tmp_path, corrupt(_table()).reset_index(drop=True))
    with pytest.raises(InputDataError) as caught:
        read_all_clean(path)
    text = str(caught.value)
    assert message in text
    assert str(path) in text
    assert f"patient {patient}" in text


def test_missing_required_column(tmp_path):
    path = _write(tmp_path, _table().drop(columns=["censorship"]))
    with pytest.raises(InputDataError, match=r"missing required column\(s\) \['censorship'\]"):
        read_all_clean(path)


def _split(tmp_path, train, val, name="splits_0.csv"):
    frame = pd.DataFrame(
        {"train": pd.Series(train, dtype=object), "val": pd.Series(val, dtype=object)}
    )
    path = tmp_path / name
    frame.to_csv(path)
    return path


def test_split_overlap_and_absent_ids(tmp_path):
    overlap = _split(tmp_path, ["TCGA-AA-0000", "TCGA-AA-0001"], ["TCGA-AA-0001"])
    with pytest.raises(InputDataError, match="in both train and val") as caught:
        read_split(overlap)
    assert "patient TCGA-AA-0001" in str(caught.value)

    cohort = read_all_clean(_write(tmp_path, _table()))
    absent = read_split(
        _split(tmp_path, ["TCGA-AA-0000", "TCGA-ZZ-9999"], ["TCGA-AA-0001"], "splits_1.csv")
    )
    with pytest.raises(InputDataError, match="absent from the cohort table") as caught:
        absent.check_against(cohort.case_ids)
    assert "TCGA-ZZ-9999" in str(caught.value) and "splits_1.csv" in str(caught.value)


def test_read_splits_orders_by_fold_number(tmp_path):
    for k in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9):
        _split(tmp_path, ["A"], [f"B{k}"], f"splits_{k}.csv")
    assert [s.test[0] for s in read_splits(tmp_path)] == [f"B{k}" for k in range(11)]


def test_a_gap_in_the_split_files_is_an_error_not_fewer_folds(tmp_path):
    for k in (0, 2, 3):
        _split(tmp_path, ["A"], [f"B{k}"], f"splits_{k}.csv")
    with pytest.raises(InputDataError, match=r"\['splits_1.csv'\] missing"):
        read_splits(tmp_path)


def test_groups_by_gene_name_and_reports_missing(tmp_path):
    cohort = read_all_clean(_write(tmp_path, _table()))
    signatures = {"Suppressors": ["TP53", "RB1"], "Oncogenes": ["KRAS", "EGFR"]}
    groups, report = group_features(cohort.genomics.columns, signatures)
    by_name = {g.name: set(g.features) for g in groups}
    assert by_name == {
        "Suppressors": {"TP53_rnaseq", "TP53_cnv"},
        "Oncogenes": {"KRAS_mut", "EGFR_rnaseq"},
    }
    assert report.genes_not_found["Suppressors"] == ["RB1"]
    assert report.sizes == {"Suppressors": 2, "Oncogenes": 2}


def test_empty_group_is_an_error_or_dropped_and_reported(tmp_path):
    cohort = read_all_clean(_write(tmp_path, _table()))
    signatures = {"Suppressors": ["TP53"], "Nothing": ["NOPE1", "NOPE2"]}
    with pytest.raises(InputDataError, match="genomic group 'Nothing' is empty"):
        group_features(cohort.genomics.columns, signatures, signature_file="sig.csv")
    groups, report = group_features(cohort.genomics.columns, signatures, on_empty="drop")
    assert [g.name for g in groups] == ["Suppressors"]
    assert report.dropped_empty_groups == ["Nothing"]


def test_unsuffixed_gene_columns_are_read_only_by_explicit_choice(tmp_path):
    frame = _table().rename(columns={"EGFR_rnaseq": "EGFR"})
    path = _write(tmp_path, frame)
    with pytest.raises(InputDataError, match=r"1 numeric column\(s\).*\['EGFR'\].*unsuffixed_as"):
        read_all_clean(path)
    cohort = read_all_clean(path, unsuffixed_genes_as="rnaseq")
    assert "EGFR_rnaseq" in cohort.genomics.columns
    ignored = read_all_clean(path, ignore_columns=["EGFR"])
    assert "EGFR_rnaseq" not in ignored.genomics.columns and "EGFR" not in ignored.genomics.columns


@pytest.mark.parametrize("column", ["os_days", "vital_status", "DFS.event", "days_to_death"])
def test_outcome_like_columns_never_become_features(tmp_path, column):
    frame = _table()
    frame[column] = np.arange(len(frame)) % 2
    path = _write(tmp_path, frame)
    for kwargs in ({}, {"unsuffixed_genes_as": "rnaseq"}):
        with pytest.raises(InputDataError, match=f"\\['{re.escape(column)}'\\] look like outcomes"):
            read_all_clean(path, **kwargs)
    cohort = read_all_clean(path, ignore_columns=[column])
    assert not [c for c in cohort.genomics.columns if column in c]


def test_gene_names_are_not_outcomes():
    for gene in ("TP53_rnaseq", "OS9_cnv", "TIMELESS_rnaseq", "EVENT1"):
        assert not looks_like_outcome(gene)
    assert looks_like_outcome("survival_months.1") and looks_like_outcome("OS_time")


def test_a_repeated_header_is_an_error_naming_both_columns(tmp_path):
    path = _write(tmp_path, _table())
    text = path.read_text().splitlines()
    text[0] = text[0] + ",survival_months"
    text[1:] = [line + ",1.0" for line in text[1:]]
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(InputDataError, match=r"'survival_months' twice \(columns \d+ and \d+\)"):
        read_all_clean(path)


def test_text_columns_kemm_does_not_read_are_logged(tmp_path, caplog):
    frame = _table()
    frame["project"] = "TCGA-KIRC"
    cohort = read_all_clean(_write(tmp_path, frame))
    assert "project" not in cohort.patients.columns
    assert "non-numeric column(s) kemm does not read were ignored: ['project']" in caplog.text


@pytest.mark.data
def test_real_cohorts_match_their_canonical_splits(data_root):
    for name in ("brca", "luad", "kirc", "ucec", "lusc"):
        cohort = read_all_clean(data_root / "tcga" / name / f"tcga_{name}_all_clean.csv")
        splits = read_splits(data_root / "tcga" / name / "splits")
        assert len(splits) == 5
        covered = set()
        for split in splits:
            split.check_against(cohort.case_ids)
            assert not covered & set(split.test)
            covered |= set(split.test)
        assert covered == set(cohort.case_ids)
    signatures = read_signatures(data_root / "signatures" / "gene_families.csv")
    groups, report = group_features(cohort.genomics.columns, signatures)
    assert len(groups) == 6 and min(report.sizes.values()) > 10


def test_atomic_writes_leave_no_temporary_file_behind(tmp_path):
    from kemm.io import atomic_path

    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device", str(tmp))  # the disk filled up
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]
