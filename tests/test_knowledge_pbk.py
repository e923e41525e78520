"""The shipped PBK library, PBK loading, and PBK generation with a scripted backend."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from kemm.errors import ConfigError
from kemm.knowledge.pbk import (
    PBKGenerationError,
    available_cancers,
    generate_pbk,
    load_pbk,
    pbk_schema,
    validate_pbk,
    write_pbk,
)

SHIPPED = ["BLCA", "BRCA", "COADREAD", "GBMLGG", "HNSC", "KIRC", "LUAD", "LUSC", "STAD", "UCEC"]


def _library_files():
    root = resources.files("kemm.knowledge") / "pbk_library"
    return sorted((p for p in root.iterdir() if p.name.endswith(".json")), key=lambda p: p.name)


def test_every_shipped_file_is_schema_valid_with_provenance():
    jsonschema.Draft202012Validator.check_schema(pbk_schema())
    files = _library_files()
    assert [f.name[:-5] for f in files] == SHIPPED
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        validate_pbk(record)
        assert record["cancer"] == path.name[:-5]
        prov = record["provenance"]
        assert prov["generator"] and prov["prompt_version"] == "pbk_v1" and prov["date"]
        assert "review" in prov and len(prov["review"]) > 20
        statements = record["general"] + record["low"] + record["intermediate"] + record["high"]
        assert len(set(statements)) == len(statements), "duplicate statements"


def test_available_and_aliases():
    assert available_cancers() == SHIPPED
    assert load_pbk("brca").cancer == "BRCA"
    assert load_pbk("TCGA-LUAD").cancer == "LUAD"
    assert load_pbk("coad").cancer == "COADREAD" and load_pbk("READ").cancer == "COADREAD"
    assert load_pbk("GBM").cancer == "GBMLGG" and load_pbk("lgg").cancer == "GBMLGG"
    pbk = load_pbk("kirc")
    assert len(pbk.general) >= 6 and all(len(pbk.levels()[k]) >= 3 for k in pbk.levels())
    assert any("grade" in s.lower() for s in pbk.general)


def test_unknown_code_lists_available():
    with pytest.raises(ConfigError, match="available: BLCA, BRCA") as info:
        load_pbk("KIRP")
    assert "clear cell" in str(info.value)
    with pytest.raises(ConfigError, match="kemm knowledge pbk --cancer XYZ"):
        load_pbk("xyz")


def test_schema_rejects_bad_records():
    record = load_pbk("BRCA").to_dict()
    for broken in (
        {**record, "low": []},
        {**record, "general": ["too short"]},
        {**record, "extra": 1},
        {**record, "provenance": {"generator": "me"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_pbk(broken)


class Scripted:
    name = "scripted"
    model = "s-1"
    concurrency = 1

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = 0

    def complete(self, messages, *, max_tokens=256, temperature=0.0, seed=0):
        self.calls += 1
        return self.replies.pop(0)


GOOD = {
    "general": [
        "Stage is the strongest prognostic factor.",
        "Nodal metastasis worsens survival.",
        "High grade predicts recurrence.",
    ],
    "low": ["Small node-negative low-grade tumour.", "Complete resection with clear margins."],
    "intermediate": ["Regional nodal spread without metastasis.", "Intermediate grade tumour."],
    "high": ["Distant metastasis at diagnosis.", "Positive margins and extensive invasion."],
}


def test_generate_pbk_validates_retries_and_caches(tmp_path):
    reply = "Sure! Here it is:\n```json\n" + json.dumps(GOOD) + "\n```"
    backend = Scripted(["not json at all", json.dumps({"general": ["x"]}), reply])
    record = generate_pbk("kirp", backend, cache_dir=tmp_path)
    assert backend.calls == 3
    assert record["cancer"] == "KIRP" and record["cancer_name"].startswith("Kidney renal papillary")
    assert record["provenance"]["prompt_version"] == "pbk_v1"
    assert "scripted" in record["provenance"]["generator"]
    validate_pbk(record)
    again = Scripted([])  # everything cached: no call
    assert generate_pbk("KIRP", again, cache_dir=tmp_path)["general"] == GOOD["general"]
    assert again.calls == 0
    out = write_pbk(record, tmp_path / "KIRP.json")
    assert load_pbk("KIRP", path=out).high == GOOD["high"]


def test_generate_pbk_reports_every_failed_attempt():
    with pytest.raises(PBKGenerationError, match="attempt 1: .*attempt 2: "):
        generate_pbk("BRCA", Scripted(["nope", "{}"]), attempts=2)
    with pytest.raises(ConfigError, match="--name"):
        generate_pbk("ZZZ", Scripted([]))
