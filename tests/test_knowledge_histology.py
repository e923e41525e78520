"""Histologic type in a fixed vocabulary (kemm.knowledge.histology), and its use by the
report-fact record and the covariate block."""

from __future__ import annotations

import pandas as pd
import pytest

from kemm.knowledge.covariates import encode_facts
from kemm.knowledge.histology import _compiled, histology_keys, normalise_histology
from kemm.knowledge.report_facts import extract_report_facts


@pytest.mark.parametrize(
    ("text", "cancer", "term"),
    [
        # one kidney subtype, three spellings (issue 20: each was its own covariate)
        ("Clear cell (conventional) renal carcinoma", "kirc", "clear cell renal cell carcinoma"),
        ("carcinoma, clear cell type", "kirc", "clear cell renal cell carcinoma"),
        ("clear cell renal cell carcinoma", "kirc", "clear cell renal cell carcinoma"),
        ("Renal cell carcinoma, clear cell type", "kirc", "clear cell renal cell carcinoma"),
        ("papillary renal cell carcinoma with clear cell features", "kirp",
         "papillary renal cell carcinoma"),  # the type written first, not the feature
        ("chromophobe renal cell carcinoma", "kich", "chromophobe renal cell carcinoma"),
        ("renal carcinoma", "kirc", "renal cell carcinoma, NOS"),
        ("infiltrating duct and lobular carcinoma", "brca", "mixed ductal and lobular carcinoma"),
        ("invasive ductal carcinoma", "brca", "invasive ductal carcinoma (no special type)"),
        ("invasive carcinoma of no special type", "brca",
         "invasive ductal carcinoma (no special type)"),
        ("infiltrating lobular carcinoma", "brca", "invasive lobular carcinoma"),
        ("adenocarcinoma, acinar predominant with papillary and solid areas", "luad",
         "acinar predominant adenocarcinoma"),  # "predominant" decides, not the order
        ("invasive adenocarcinoma", "luad", "adenocarcinoma, NOS"),
        ("squamous cell carcinoma", "lusc", "squamous cell carcinoma, NOS"),
        ("squamous cell carcinoma, basaloid variant", "lusc", "basaloid squamous cell carcinoma"),
        ("papillary serous carcinoma", "ucec", "serous carcinoma"),
        ("mixed endometrioid and serous adenocarcinoma", "ucec", "mixed cell adenocarcinoma"),
        ("malignant mixed mullerian tumor", "ucs", "carcinosarcoma"),
        # any other cancer: the cross-site list
        ("moderately differentiated adenocarcinoma", "esca", "adenocarcinoma"),
        ("adenocarcinoma, signet ring features", "stad", "signet ring cell carcinoma"),
        ("Adenocortical carcinoma, low-grade", "acc", "adrenocortical carcinoma"),
        ("invasive, well-differentiated squamous cell carcinoma", "hnsc", "squamous cell carcinoma"),
        ("urothelial carcinoma, high grade", None, "urothelial carcinoma"),
    ],
)  # fmt: skip
def test_spellings_map_to_one_term(text: str, cancer: str | None, term: str) -> None:
    assert normalise_histology(text, cancer).term == term


def test_text_without_a_tumour_has_no_term_and_an_unnamed_tumour_is_other() -> None:
    assert normalise_histology("benign kidney", "kirc") is None
    assert normalise_histology("", "kirc") is None
    assert normalise_histology("neoplasm of uncertain type", "kirc").key == "other"


@pytest.mark.parametrize("cancer", [None, "kirc", "brca", "luad", "lusc", "ucec", "stad"])
def test_every_term_maps_to_itself(cancer: str | None) -> None:
    for term, _ in _compiled(cancer):
        first = normalise_histology(term.term, cancer)
        assert normalise_histology(first.term, cancer) == first


def test_the_record_gives_the_term_and_keeps_the_line_as_written() -> None:
    text = "FINAL DIAGNOSIS:\nKidney, left, radical nephrectomy: Clear cell (conventional) renal carcinoma.\n"
    fact = extract_report_facts(text, "kirc").histology
    assert fact.value == "clear cell renal cell carcinoma"
    assert "Clear cell (conventional)" in fact.source


def test_covariates_read_one_column_per_term_whatever_the_spelling() -> None:
    spellings = ["Clear cell (conventional) renal carcinoma", "RCC, clear cell type",
                 "clear cell renal cell carcinoma", "papillary renal cell carcinoma", None]  # fmt: skip
    # ten patients of each spelling: no term is rare enough to be pooled into "other"
    histology = spellings * 10
    values = pd.DataFrame({"histology": histology}, index=[f"p{i}" for i in range(50)])
    encoded, directions = encode_facts(values, ["histology"], "kirc")
    assert list(encoded["histology=clear_cell"].fillna(-1)) == [1, 1, 1, 0, -1] * 10
    assert list(encoded["histology=papillary"].fillna(-1)) == [0, 0, 0, 1, -1] * 10
    assert list(encoded["histology=unknown"]) == [0, 0, 0, 0, 1] * 10
    assert {c for c in encoded if c.startswith("histology=")} == {
        "histology=clear_cell",
        "histology=papillary",
        "histology=unknown",
    }
    assert set(histology_keys("kirc")) >= {"clear_cell", "papillary", "chromophobe", "other"}


@pytest.mark.parametrize(
    ("text", "cancer", "term"),
    [
        ("DUCTAL CARCINOMA IN SITU", "brca", None),
        ("Ductal carcinoma in-situ, solid type, nuclear grade 3", "brca", None),
        ("DCIS, cribriform", "brca", None),
        ("CERVIX: SQUAMOUS CELL CARCINOMA IN SITU (CIN III)", "ucec", None),
        ("INVASIVE DUCTAL CARCINOMA WITH DUCTAL CARCINOMA IN SITU", "brca",
         "invasive ductal carcinoma (no special type)"),
        ("Invasive lobular carcinoma and lobular carcinoma in situ", "brca",
         "invasive lobular carcinoma"),
    ],
)  # fmt: skip
def test_an_in_situ_lesion_names_no_invasive_type(text: str, cancer: str, term) -> None:
    found = normalise_histology(text, cancer)
    assert (found.term if found else None) == term


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Typical carcinoid tumor, 1.2 cm", "neuroendocrine tumour (carcinoid)"),
        ("ATYPICAL CARCINOID", "neuroendocrine tumour (carcinoid)"),
        ("Well differentiated neuroendocrine tumor, grade 2", "neuroendocrine tumour (carcinoid)"),
        ("Large cell neuroendocrine carcinoma", "large cell neuroendocrine carcinoma"),
        ("Poorly differentiated neuroendocrine tumor (large cell type)",
         "large cell neuroendocrine carcinoma"),
        ("Small cell neuroendocrine carcinoma", "small cell carcinoma"),
        ("Neuroendocrine carcinoma, poorly differentiated", "neuroendocrine carcinoma"),
    ],
)  # fmt: skip
def test_a_carcinoid_is_a_neuroendocrine_tumour_not_a_carcinoma(text: str, term: str) -> None:
    assert normalise_histology(text, "luad").term == term
