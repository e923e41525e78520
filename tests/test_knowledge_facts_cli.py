"""``kemm knowledge facts``: the CLI (rules only, no LLM), the validator of LLM fills (canned JSON
answers, checked against the report), and one embedded-LLM run (``llm``)."""

from __future__ import annotations

import importlib.util
import json
import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from kemm.cli import app
from kemm.knowledge.facts_llm import (
    askable_fields,
    build_facts_schema,
    extract_facts,
    locate_quote,
    normalise_value,
    prompt_units,
    supports,
    validate_fills,
)
from kemm.knowledge.report_facts import FACT_COLUMNS, RECEPTOR_COLUMNS, extract_report_facts

runner = CliRunner()

KIDNEY = (
    "FINAL DIAGNOSIS:\nKidney, left, radical nephrectomy: clear cell renal cell carcinoma, "
    "Fuhrman nuclear grade 3.\nTumor size: 5.2 cm.\npT3a pN0 pMX\nMargins uninvolved by tumor.\n"
    "Lymphovascular invasion: not identified."
)
BREAST = (
    "DIAGNOSIS: Left breast, mastectomy: invasive ductal carcinoma, Nottingham grade 2, 2.1 cm. "
    "2 of 14 lymph nodes positive (pT2 pN1a). ER positive, PR negative, HER2 not amplified."
)
# T only stated in a form the rules do not read ("Extent of invasion: T1b")
T_IN_WORDS = (
    "FINAL DIAGNOSIS:\nKidney, left, radical nephrectomy: clear cell renal cell carcinoma, "
    "Fuhrman nuclear grade 2.\nTumor size: 5.5 cm.\nExtent of invasion: T1b.\n"
    "Margins: negative."
)
T_IN_DATA = (
    "DIAGNOSIS:\nKidney, right, partial nephrectomy: papillary renal cell carcinoma.\n"
    "Tumor size: 2.8 cm.\nEXTENT OF INVASION: T1a\nLymph nodes: none submitted.\n"
    "Surgical margins: free of tumor."
)


def _write(path, rows, columns=("case_id", "raw_text")):
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


@pytest.fixture()
def reports_csv(tmp_path):
    return _write(
        tmp_path / "reports.csv",
        [("TCGA-AA-0001", KIDNEY), ("TCGA-AA-0002", ""), ("TCGA-AA-0003", BREAST)],
    )


def _invoke(*args):
    return runner.invoke(app, ["knowledge", "facts", *map(str, args)])


# ----------------------------------------------------------------------------------------------
# CLI, rules only


def test_facts_cli_one_row_per_case_with_spans(tmp_path, reports_csv):
    out = tmp_path / "facts.csv"
    result = _invoke("--reports", reports_csv, "--cancer", "KIRC", "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["case_id", *FACT_COLUMNS]
    assert list(table.case_id) == ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"]
    kidney = table.iloc[0]
    assert (kidney.t, kidney.n, kidney.stage, kidney.grade) == ("T3a", "N0", "III", "G3")
    assert (kidney.margin, kidney.lvi, kidney.size_cm) == ("negative", "absent", "5.2")
    assert set(table.iloc[1].drop("case_id")) == {""}  # the empty report keeps its (empty) row
    assert "3 reports read (1 without text)" in result.output
    assert "coverage" in result.output

    text = {"TCGA-AA-0001": KIDNEY, "TCGA-AA-0002": "", "TCGA-AA-0003": BREAST}
    spans = [json.loads(line) for line in (tmp_path / "facts.spans.jsonl").read_text().splitlines()]
    assert [s["case_id"] for s in spans] == list(text)
    assert spans[1]["facts"] == {}
    for record in spans:
        for fact in record["facts"].values():
            assert fact["by"] == "rules"
            assert set(fact) >= {"value", "start", "end", "source", "derived", "by", "origin"}
            assert fact["origin"] == ("derived" if fact["derived"] else "stated")
            assert ("rule" in fact) == fact["derived"]
            assert fact["start"] < fact["end"] <= len(text[record["case_id"]])
        kept = {k: v["value"] for k, v in record["facts"].items()}
        row = table[table.case_id == record["case_id"]].iloc[0]
        assert {k: str(v) for k, v in kept.items()} == {k: row[k] for k in kept}
    stage = spans[0]["facts"]["stage"]
    assert stage["derived"] is True and "pT3a" in stage["source"]
    assert stage["origin"] == "derived" and "stage group of T3a" in stage["rule"]
    summary = json.loads((tmp_path / "facts.csv.summary.json").read_text())
    assert summary["reports"] == 3 and summary["empty_reports"] == 1
    assert summary["coverage"]["t"] == {"rules": 2, "llm": 0, "total": 2, "derived": 0}


def test_facts_cli_brca_receptors_and_no_cancer(tmp_path, reports_csv):
    out = tmp_path / "brca.csv"
    assert _invoke("--reports", reports_csv, "--cancer", "brca", "--out", out).exit_code == 0
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["case_id", *FACT_COLUMNS, *RECEPTOR_COLUMNS]
    breast = table.iloc[2]
    assert (breast.er, breast.pr, breast.her2) == ("positive", "negative", "negative")
    assert (breast.nodes_positive, breast.nodes_examined, breast.grade) == ("2", "14", "G2")

    # no --cancer: no receptor columns, no stage derived from TNM
    out = tmp_path / "plain.csv"
    assert _invoke("--reports", reports_csv, "--out", out, "--column", "raw_text").exit_code == 0
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["case_id", *FACT_COLUMNS]
    assert table.iloc[0].t == "T3a" and table.iloc[0].stage == ""


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "reports file not found"),
        ("no_case_id", "missing column 'case_id'"),
        ("no_text", "missing column 'raw_text'"),
    ],
)
def test_facts_cli_bad_input_is_a_one_line_error(tmp_path, case, message):
    path = tmp_path / "reports.csv"
    if case == "no_case_id":
        _write(path, [("x", KIDNEY)], columns=("patient", "raw_text"))
    elif case == "no_text":
        _write(path, [("A", KIDNEY)], columns=("case_id", "text"))
    result = _invoke("--reports", path, "--out", tmp_path / "facts.csv")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "facts.csv").exists()


THYROID = (
    "FINAL DIAGNOSIS:\nThyroid, total thyroidectomy: papillary thyroid carcinoma, 3.5 cm.\n"
    "Pathologic stage: pT3 pN1a pMX\n"
)


def test_facts_cli_age_column_picks_the_thyroid_table_by_age(tmp_path):
    path = _write(
        tmp_path / "reports.csv",
        [("TCGA-T1", THYROID, "30"), ("TCGA-T2", THYROID, "61"), ("TCGA-T3", THYROID, "")],
        columns=("case_id", "raw_text", "age"),
    )
    out = tmp_path / "facts.csv"
    result = _invoke("--reports", path, "--cancer", "thyroid", "--out", out, "--age-column", "age")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    # under 45 any T and N without M1 is stage I; from 45, T3 N1a is III; no age, no group
    assert list(table.stage) == ["I", "III", ""]
    spans = [json.loads(line) for line in out.with_suffix(".spans.jsonl").read_text().splitlines()]
    stage = {s["case_id"]: s["facts"].get("stage") for s in spans}
    assert stage["TCGA-T2"]["origin"] == "derived" and "age 61" in stage["TCGA-T2"]["rule"]
    # without the column the bands disagree for every case: no stage is derived
    assert _invoke("--reports", path, "--cancer", "thca", "--out", out).exit_code == 0
    assert set(pd.read_csv(out, dtype=str, keep_default_na=False).stage) == {""}


@pytest.mark.parametrize(
    "ages, message", [(("30",), "no age column 'years'"), (("thirty",), "patient TCGA-T1")]
)
def test_facts_cli_bad_age_column_is_a_one_line_error(tmp_path, ages, message):
    path = _write(tmp_path / "r.csv", [("TCGA-T1", THYROID, *ages)], ("case_id", "raw_text", "age"))
    column = "years" if "years" in message else "age"
    result = _invoke(
        "--reports", path, "--cancer", "thca", "--out", tmp_path / "f.csv", "--age-column", column
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and str(path.name) in lines[0], result.output


# ----------------------------------------------------------------------------------------------
# Validation of LLM fills (canned answers, checked against the report)

REPORT = (
    "SYNOPTIC REPORT\n"
    "Histologic type: clear cell renal cell carcinoma\n"
    "Extent of invasion: T1b\n"
    "Regional lymph nodes: 0 of 3 lymph nodes involved\n"
    "ER Status\n"
    "Negative\n"
    "Perineural invasion: not identified\n"
)


def _answer(**fields):
    return json.dumps(fields)


def test_validator_keeps_a_grounded_value_with_its_span():
    kept, dropped = validate_fills(
        REPORT, _answer(t={"quote": "extent of invasion: T1b", "value": "T1b"}), ["t"]
    )
    assert dropped == []
    fact = kept["t"]
    assert (fact.value, fact.by, fact.derived) == ("T1b", "llm", False)
    assert REPORT[fact.start : fact.end] == fact.source == "Extent of invasion: T1b"


def test_validator_reads_a_sixth_edition_endometrial_value_as_the_rules_do():
    """An LLM's FIGO 1988 "IC" (half or more of the myometrium) is the 7th edition's IB."""
    text = "Endometrioid adenocarcinoma. Tumor invades 12 of 20 mm. FIGO stage IC."
    answer = _answer(stage={"quote": "FIGO stage IC", "value": "IC"})
    kept, _ = validate_fills(text, answer, ["stage"], cancer="ucec")
    assert kept["stage"].value == extract_report_facts(text, "ucec").value("stage") == "IB"
    assert validate_fills(text, answer, ["stage"], cancer="endometrial")[0]["stage"].value == "IB"
    assert "(FIGO 1988) IC of the corpus uteri is the 7th's IB" in kept["stage"].rule
    kept, _ = validate_fills(text.replace("IC", "IB"), answer.replace("IC", "IB"), ["stage"],
                             cancer="ucec")  # fmt: skip
    assert (kept["stage"].value, kept["stage"].rule) == ("IB", None)  # edition not named


def test_validator_drops_a_quote_not_in_the_report():
    kept, dropped = validate_fills(
        REPORT, _answer(t={"quote": "tumor stage pT2a", "value": "T2a"}), ["t"]
    )
    assert kept == {} and [d.reason for d in dropped] == ["quote_not_found"]
    # matched on word boundaries: "T1" is not in "T1b"
    kept, dropped = validate_fills(REPORT, _answer(t={"quote": "stage: T1", "value": "T1"}), ["t"])
    assert kept == {} and dropped[0].reason == "quote_not_found"


def test_validator_drops_a_value_its_quote_does_not_state():
    answer = _answer(
        t={"quote": "Extent of invasion: T1b", "value": "T2"},
        pni={"quote": "Perineural invasion: not identified", "value": "present"},
        nodes_positive={"quote": "0 of 3 lymph nodes involved", "value": 3},
        histology={"quote": "Histologic type: clear cell", "value": "papillary carcinoma"},
    )
    kept, dropped = validate_fills(REPORT, answer, ["t", "pni", "nodes_positive", "histology"])
    assert kept == {}
    assert {d.field: d.reason for d in dropped} == {
        "t": "unsupported_by_quote",
        "pni": "unsupported_by_quote",
        "nodes_positive": "unsupported_by_quote",
        "histology": "unsupported_by_quote",
    }


def test_validator_reasons_and_label_value_lines():
    answer = _answer(
        t={"quote": "", "value": "T1b"},
        n={"quote": "lymph nodes", "value": "N7"},
        m={"quote": "", "value": "not stated"},
        er={"quote": "ER Status", "value": "negative"},  # the value is on the next line
        nodes_examined={"quote": "0 of 3 lymph nodes involved", "value": 3},
        pni={"quote": "Perineural invasion: not identified", "value": "absent"},
    )
    requested = ["t", "n", "m", "er", "nodes_examined", "pni"]
    kept, dropped = validate_fills(REPORT, answer, requested, cancer="brca")
    assert {d.field: d.reason for d in dropped} == {"t": "no_quote", "n": "invalid_value"}
    assert {k: f.value for k, f in kept.items()} == {
        "er": "negative",
        "nodes_examined": 3,
        "pni": "absent",
    }
    assert kept["er"].source == "ER Status\nNegative"
    assert validate_fills(REPORT, "{not json", ["t"])[1][0].reason == "invalid_json"
    # more positive nodes than examined (the examined count from the rules)
    kept, dropped = validate_fills(
        REPORT,
        _answer(nodes_positive={"quote": "0 of 3 lymph nodes", "value": 0}),
        ["nodes_positive"],
        known={"nodes_examined": 3},
    )
    assert kept["nodes_positive"].value == 0


def test_validator_drops_a_finding_the_report_leaves_open():
    # TCGA-44-A4SU: "suspicious for" is not "present"
    report = (
        "Pleura: Negative for malignancy\n"
        "Vascular invasion: Focal features suspicious for vascular invasion\n"
        "pTNM stage: Tla\n"
    )
    quote = "Vascular invasion: Focal features suspicious for vascular invasion"
    answer = _answer(lvi={"quote": quote, "value": "present"})
    kept, dropped = validate_fills(report, answer, ["lvi"], cancer="luad")
    assert kept == {} and [d.reason for d in dropped] == ["left_open"]
    # the whole statement counts, not only the words quoted
    report = "Lymphovascular invasion: Present (suspicious, see comment)\nHistologic grade: 2\n"
    answer = _answer(lvi={"quote": "Lymphovascular invasion: Present", "value": "present"})
    kept, dropped = validate_fills(report, answer, ["lvi"], cancer="luad")
    assert kept == {} and [d.reason for d in dropped] == ["left_open"]
    # a receptor may be "equivocal": that is its value, not a finding left open
    report = "ER: Positive\nHER2 (IHC): Equivocal (2+)\n"
    answer = _answer(her2={"quote": "HER2 (IHC): Equivocal (2+)", "value": "equivocal"})
    kept, dropped = validate_fills(report, answer, ["her2"], cancer="brca")
    assert dropped == [] and kept["her2"].value == "equivocal"


@pytest.mark.parametrize(
    "report,quote,value",
    [
        (  # TCGA-BS-A0V4: the model copied part B's count, the total is 35
            "Lymph node involvement: 35 lymph nodes free of metastatic tumor\n"
            "B. Left pelvic lymph nodes:\n15 lymph nodes free of metastatic tumor\n"
            "D. Right pelvic lymph nodes:\n18 lymph nodes free of metastatic tumor\n",
            "15 lymph nodes free of metastatic tumor",
            15,
        ),
        (  # counts under node labels, on lines that do not name nodes
            "B. Left pelvic lymph nodes, excision:\nBenign (0/15)\n"
            "D. Right pelvic lymph nodes, excision:\nBenign (0/18)\n",
            "Benign (0/15)",
            15,
        ),
        (  # counts in words
            "Left pelvic: fifteen lymph nodes, negative.\nRight pelvic: eighteen lymph nodes.\n",
            "fifteen lymph nodes",
            15,
        ),
        (  # TCGA-49-4510: two node parts of one node each
            "R4 LYMPH NODE (EXCISION): ONE (1) LYMPH NODE, NEGATIVE FOR TUMOR.\n"
            "STATION 7 LYMPH NODE (EXCISION): ONE (1) LYMPH NODE, NEGATIVE FOR TUMOR.\n",
            "ONE (1) LYMPH NODE",
            1,
        ),
    ],
)
def test_validator_leaves_node_totals_of_several_parts_to_the_rules(report, quote, value):
    answer = _answer(nodes_examined={"quote": quote, "value": value})
    kept, dropped = validate_fills(report, answer, ["nodes_examined"])
    assert kept == {} and [d.reason for d in dropped] == ["several_node_counts"]


def test_validator_reads_node_counts_in_the_whole_report_not_only_what_was_shown():
    report = (
        "DIAGNOSIS\nA. Left pelvic lymph nodes: 15 lymph nodes, negative.\n"
        + "Comment: see below.\n" * 3
        + "MICROSCOPIC\nB. Right pelvic lymph nodes: 18 lymph nodes, negative.\n"
    )
    shown = [u for u in prompt_units(report) if u.start < report.index("MICROSCOPIC")]
    answer = _answer(nodes_examined={"quote": "15 lymph nodes", "value": 15})
    kept, dropped = validate_fills(report, answer, ["nodes_examined"], units=shown)
    assert kept == {} and [d.reason for d in dropped] == ["several_node_counts"]


def test_validator_keeps_a_node_count_given_in_one_place():
    report = "Lymph node involvement: 35 lymph nodes free of metastatic tumor\n"
    answer = _answer(nodes_examined={"quote": "35 lymph nodes free", "value": 35})
    kept, dropped = validate_fills(report, answer, ["nodes_examined"])
    assert dropped == [] and kept["nodes_examined"].value == 35
    # a TNM token or a node station is no count
    report = (
        "Regional lymph nodes: pN0 (sn)\nSpecimen: level 2 lymph nodes\n"
        "Sentinel lymph nodes: 0/2 involved\n"
    )
    answer = _answer(nodes_examined={"quote": "Sentinel lymph nodes: 0/2", "value": 2})
    kept, dropped = validate_fills(report, answer, ["nodes_examined"])
    assert dropped == [] and kept["nodes_examined"].value == 2


def test_validator_never_overwrites_what_was_not_asked():
    # the rules found t, so only n was asked: a t in the answer is dropped, not used
    answer = _answer(
        t={"quote": "Extent of invasion: T1b", "value": "T1b"},
        n={"quote": "not in this report", "value": "N1"},
    )
    kept, dropped = validate_fills(REPORT, answer, ["n"])
    assert kept == {}
    assert {d.field: d.reason for d in dropped} == {"t": "not_requested", "n": "quote_not_found"}


class _Canned:
    """A backend that returns a fixed answer (to exercise the pipeline around the validator)."""

    name = "canned"
    model = "fixed-answer"
    concurrency = 1

    def __init__(self, answer: str):
        self.answer = answer
        self.calls = 0
        self.prompts: list[str] = []

    def complete(self, messages, *, max_tokens=256, temperature=0.0, seed=0):
        self.calls += 1
        self.prompts.append(messages[-1]["content"])
        return self.answer


def test_pipeline_fills_only_missing_fields_and_caches(tmp_path):
    # A: the rules read t and grade; only PNI is missing (and mentioned), so only PNI is asked
    reports = {"A": KIDNEY + "\nPNI: see comment.", "B": "", "C": T_IN_WORDS + "\npN0"}
    answer = _answer(
        t={"quote": "Extent of invasion: T1b", "value": "T1b"},
        grade={"quote": "Fuhrman nuclear grade 3", "value": "G4"},
    )
    backend = _Canned(answer)
    result = extract_facts(reports, backend, cancer="kirc", cache_dir=tmp_path, progress=False)
    # A: the rules found t and grade, so the canned t/grade are never used for A
    a = result.cases["A"]
    assert a.facts["t"].value == "T3a" and a.facts["t"].by == "rules"
    assert a.facts["grade"].value == "G3" and a.facts["grade"].by == "rules"
    assert a.asked == ["pni"] and {d.field for d in a.dropped} == {"t", "grade"}
    assert result.cases["B"].empty and result.cases["B"].facts == {}
    c = result.cases["C"]
    assert c.asked == ["t"] and c.filled == ["t", "stage"]
    assert c.facts["t"].value == "T1b" and c.facts["t"].by == "llm"
    # no stage stated: derived from the LLM's T1b and the rules' N0 (kidney T1 N0 M0 -> I)
    assert c.facts["stage"].value == "I" and c.facts["stage"].derived
    assert {d.reason for d in c.dropped} == {"not_requested"}
    assert "Extent of invasion: T1b" in backend.prompts[-1]
    calls = backend.calls
    assert calls == 2 and result.llm_calls == 2
    again = extract_facts(reports, backend, cancer="kirc", cache_dir=tmp_path, progress=False)
    assert backend.calls == calls and again.llm_calls == 0 and again.cache_hits == 2
    assert again.rows() == result.rows()
    summary = result.summary()
    assert summary["coverage"]["t"] == {"rules": 1, "llm": 1, "total": 2, "derived": 0}
    assert summary["llm_filled"] == 2 and summary["dropped_by_reason"] == {"not_requested": 3}


def test_values_tokens_and_quotes():
    assert normalise_value("t", "pT2A") == "T2a" and normalise_value("t", "T5") is None
    assert normalise_value("n", "N1mic") == "N1mi" and normalise_value("m", "cM1b") == "M1b"
    assert normalise_value("stage", "Stage 3A") == "IIIA" and normalise_value("stage", "V") is None
    assert (
        normalise_value("grade", "G4", "brca") is None and normalise_value("grade", "III") == "G3"
    )
    assert (
        normalise_value("size_cm", "4,5") == 4.5 and normalise_value("nodes_positive", 1.5) is None
    )
    assert supports("stage", "IIIA", "AJCC stage IIIA")
    # a node group's name is no N category (TCGA-MP-A4SW: the model quoted the station label)
    station = "Lymph nodes, superior and inferior mediastinal, N1, excision: Multiple lymph nodes"
    assert not supports("n", "N1", station, "luad")
    assert not supports("n", "N2", "N2 lymph nodes: negative", "luad")
    assert supports("n", "N1", "Lymph nodes, mediastinal, excision: negative. Stage: pT2 pN1")
    assert supports("n", "N0", "Regional lymph nodes: N0", "luad")
    assert supports("n", "N1", "Metastatic carcinoma in 2 of 15 lymph nodes (N1).", "luad")
    assert supports("n", "N2", "Lymph nodes, 4/12 involved, N2, M0", "luad")
    assert supports("n", "N1", "Regional lymph nodes, N1, Distant metastasis, M0", "luad")
    assert supports("n", "N0", "Lymph nodes, regional, N0, M0", "luad")
    assert not supports("stage", "IIIA", "T-stage: 3a")  # a T category, not a stage group
    assert supports("size_cm", 4.0, "measuring 40 x 25 x 10 mm")
    assert not supports("size_cm", 2.5, "measuring 4.0 x 2.5 x 1.0 cm")  # not the greatest
    assert supports("grade", "G2", "moderately differentiated adenocarcinoma", "luad")
    assert not supports("grade", "G2", "nuclear grade 2", "brca")  # a Nottingham component
    assert supports("margin", "positive", "Margins: involved by carcinoma")
    assert not supports("margin", "positive", "Margins: uninvolved")
    assert askable_fields("SUBMITTED TO PATHOLOGY", ["t", "n", "m"]) == []  # "TO" is a word
    assert askable_fields("pTNM stage: T2a; N0", ["t", "n", "margin"]) == ["t", "n"]
    text = "Stage:  pT 2,\nN0."
    assert locate_quote(text, "stage: pT 2, N0") == (0, len(text) - 1)
    assert locate_quote(text, "T 2") is None  # not on a word boundary ("pT 2")


def test_schema_is_valid_and_compiles_to_a_llama_grammar():
    import jsonschema

    schema = build_facts_schema(["t", "nodes_positive", "size_cm", "margin", "histology"], "kirc")
    jsonschema.Draft202012Validator.check_schema(schema)
    answer = {
        "t": {"quote": "pT2a", "value": "T2a"},
        "nodes_positive": {"quote": "", "value": None},
        "size_cm": {"quote": "4 cm", "value": 4.0},
        "margin": {"quote": "", "value": "not stated"},
        "histology": {"quote": "clear cell", "value": "clear cell renal cell carcinoma"},
    }
    jsonschema.validate(answer, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**answer, "t": {"quote": "x", "value": "T9"}}, schema)
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    from llama_cpp.llama_grammar import LlamaGrammar

    assert LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False) is not None


@pytest.mark.parametrize(
    ("schema_status", "schema_message"),
    [
        (400, "unsupported response_format"),
        # llama-cpp-python's server: its request validation answers 500
        (500, "validation error: ('body', 'response_format', 'type'): Input should be 'text' "
              "or 'json_object'"),
    ],
)  # fmt: skip
def test_openai_structured_output_falls_back_when_refused(tmp_path, schema_status, schema_message):
    """A local stub endpoint that refuses json_schema (400, or 500 naming response_format) and
    json_object + schema (422), as older servers do: the request steps down to json_object and
    the choice is remembered."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from kemm.knowledge.backends import OpenAICompatibleBackend

    seen: list[dict] = []
    answer = _answer(t={"quote": "Extent of invasion: T1b", "value": "T1b"})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fmt = body.get("response_format") or {}
            seen.append(fmt)
            if fmt.get("type") == "json_schema" or "schema" in fmt:
                status = schema_status if fmt.get("type") == "json_schema" else 422
                message = schema_message if status == schema_status else "unsupported format"
                payload = {"error": {"message": message}}
            else:
                status = 200
                payload = {
                    "id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}],
                }  # fmt: skip
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        backend = OpenAICompatibleBackend(
            f"http://127.0.0.1:{server.server_port}/v1", "stub", max_retries=0, concurrency=1
        )
        reports = {"A": T_IN_WORDS, "B": T_IN_DATA}
        result = extract_facts(reports, backend, cancer="kirc", cache_dir=None, progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert [f.get("type") for f in seen] == [
        "json_schema",
        "json_object",
        "json_object",
        "json_object",
    ]
    assert "schema" in seen[1] and "schema" not in seen[2] and "schema" not in seen[3]
    assert result.failures == {}
    assert result.cases["A"].facts["t"].value == "T1b"  # grounded in A
    assert "t" not in result.cases["B"].facts  # the same answer is not grounded in B
    assert [d.reason for d in result.cases["B"].dropped] == ["quote_not_found"]


# ----------------------------------------------------------------------------------------------
# The embedded LLM


def _unavailable(reason: str):
    if os.environ.get("KEMM_REQUIRE_LLM") == "1":
        pytest.fail(reason + "; KEMM_REQUIRE_LLM=1 makes it mandatory")
    pytest.skip(reason)


@pytest.mark.llm
@pytest.mark.slow
def test_facts_cli_embedded_llm_fills_are_grounded(tmp_path):
    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable("llama-cpp-python is not installed (pip install 'kemm[llm]')")
    from kemm.knowledge.model_files import ModelNotAvailableError, locate_gguf

    try:
        gguf = locate_gguf()
    except ModelNotAvailableError as error:
        _unavailable(str(error))
    texts = {"SYN-1": T_IN_WORDS, "SYN-2": T_IN_DATA}
    reports = _write(tmp_path / "reports.csv", list(texts.items()))
    out = tmp_path / "facts.csv"
    args = ["--reports", reports, "--out", out, "--cancer", "kirc", "--backend", "llama_cpp",
            "--gguf", gguf, "--n-ctx", "2048", "--n-threads", "1",
            "--cache-dir", tmp_path / "cache"]  # fmt: skip
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    print(result.output)
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.case_id) == ["SYN-1", "SYN-2"]
    spans = [json.loads(line) for line in (tmp_path / "facts.spans.jsonl").read_text().splitlines()]
    filled = 0
    for record in spans:
        text = texts[record["case_id"]]
        assert "t" in record["asked"]
        for name, fact in record["facts"].items():
            assert text[fact["start"] : fact["end"]] == fact["source"]
            if fact["by"] != "llm" or fact["derived"]:
                continue
            filled += 1
            # grounded: the quote is in the report and the report there states the value
            assert locate_quote(text, fact["quote"]) is not None
            statement = fact["source"].replace("\n", ": ", 1)  # a label line and its value
            assert supports(name, fact["value"], fact["source"], "kirc") or supports(
                name, fact["value"], statement, "kirc"
            )
            assert str(fact["value"]) == table[table.case_id == record["case_id"]].iloc[0][name]
    summary = json.loads((tmp_path / "facts.csv.summary.json").read_text())
    assert summary["llm_calls"] == 2 and summary["llm_filled"] >= filled
    print(f"embedded LLM: {filled} grounded fills, dropped {summary['dropped_by_reason']}")
    # a rerun makes no LLM call (cached completions)
    assert _invoke(*args).exit_code == 0
    again = json.loads((tmp_path / "facts.csv.summary.json").read_text())
    assert again["llm_calls"] == 0 and again["cache_hits"] == 2
    assert pd.read_csv(out, dtype=str, keep_default_na=False).equals(table)
