"""Prognostic background knowledge (PBK) per cancer type.

A PBK holds general prognostic factors of a cancer type plus statements describing low-,
intermediate- and high-risk patients, with provenance (generator, prompt version, date, review
note). kemm ships a library for the 10 cancer types in ``pbk_library/``; :func:`generate_pbk`
asks an LLM backend for a new one, validated against ``pbk_schema.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from kemm.errors import ConfigError, KemmError
from kemm.knowledge.backends import LLMBackend
from kemm.knowledge.cache import DiskCache, cache_key, input_hash
from kemm.knowledge.prompting import PBK_PROMPT, load_prompt

__all__ = [
    "CANCER_NAMES",
    "PBK",
    "PBKGenerationError",
    "available_cancers",
    "generate_pbk",
    "load_pbk",
    "pbk_schema",
    "resolve_cancer",
    "validate_pbk",
    "write_pbk",
]

RISK_LEVELS = ("low", "intermediate", "high")

# TCGA project names, for prompts (any code can be generated with an explicit name).
CANCER_NAMES = {
    "ACC": "Adrenocortical carcinoma",
    "BLCA": "Bladder urothelial carcinoma",
    "BRCA": "Breast invasive carcinoma",
    "CESC": "Cervical squamous cell carcinoma and endocervical adenocarcinoma",
    "CHOL": "Cholangiocarcinoma",
    "COADREAD": "Colorectal adenocarcinoma",
    "DLBC": "Diffuse large B-cell lymphoma",
    "ESCA": "Esophageal carcinoma",
    "GBMLGG": "Diffuse glioma (glioblastoma and lower-grade glioma)",
    "HNSC": "Head and neck squamous cell carcinoma",
    "KICH": "Kidney chromophobe",
    "KIRC": "Kidney renal clear cell carcinoma",
    "KIRP": "Kidney renal papillary cell carcinoma",
    "LIHC": "Liver hepatocellular carcinoma",
    "LUAD": "Lung adenocarcinoma",
    "LUSC": "Lung squamous cell carcinoma",
    "MESO": "Mesothelioma",
    "OV": "Ovarian serous cystadenocarcinoma",
    "PAAD": "Pancreatic adenocarcinoma",
    "PCPG": "Pheochromocytoma and paraganglioma",
    "PRAD": "Prostate adenocarcinoma",
    "SARC": "Sarcoma",
    "SKCM": "Skin cutaneous melanoma",
    "STAD": "Stomach adenocarcinoma",
    "TGCT": "Testicular germ cell tumors",
    "THCA": "Thyroid carcinoma",
    "THYM": "Thymoma",
    "UCEC": "Uterine corpus endometrial carcinoma",
    "UCS": "Uterine carcinosarcoma",
    "UVM": "Uveal melanoma",
}


class PBKGenerationError(KemmError, RuntimeError):
    """The backend did not return a schema-valid PBK."""


@dataclass(frozen=True)
class PBK:
    """Prognostic background knowledge of one cancer type."""

    cancer: str
    general: list[str]
    low: list[str]
    intermediate: list[str]
    high: list[str]
    provenance: dict[str, Any]
    cancer_name: str = ""
    aliases: list[str] = field(default_factory=list)

    def levels(self) -> dict[str, list[str]]:
        """Risk level -> statements, in low, intermediate, high order."""
        return {"low": self.low, "intermediate": self.intermediate, "high": self.high}

    def to_dict(self) -> dict[str, Any]:
        return {
            "cancer": self.cancer,
            "cancer_name": self.cancer_name,
            "aliases": list(self.aliases),
            "general": list(self.general),
            "low": list(self.low),
            "intermediate": list(self.intermediate),
            "high": list(self.high),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PBK:
        return cls(
            cancer=record["cancer"],
            cancer_name=record.get("cancer_name", ""),
            aliases=list(record.get("aliases", [])),
            general=list(record["general"]),
            low=list(record["low"]),
            intermediate=list(record["intermediate"]),
            high=list(record["high"]),
            provenance=dict(record["provenance"]),
        )


def _library():  # type: ignore[no-untyped-def]
    return resources.files("kemm.knowledge") / "pbk_library"


@lru_cache(maxsize=1)
def pbk_schema() -> dict[str, Any]:
    """The PBK JSON schema."""
    text = (resources.files("kemm.knowledge") / "pbk_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_pbk(record: dict[str, Any]) -> None:
    """Raise :class:`jsonschema.ValidationError` if ``record`` is not a valid PBK."""
    jsonschema.Draft202012Validator(pbk_schema()).validate(record)


@lru_cache(maxsize=1)
def _library_index() -> dict[str, str]:
    """Every accepted code or alias (upper case) -> shipped file stem."""
    index: dict[str, str] = {}
    for item in _library().iterdir():
        if not item.name.endswith(".json"):
            continue
        stem = item.name[:-5]
        record = json.loads(item.read_text(encoding="utf-8"))
        index[stem.upper()] = stem
        for alias in record.get("aliases", []):
            index[alias.upper()] = stem
    return index


def available_cancers() -> list[str]:
    """Codes of the shipped PBK files (e.g. ``["BLCA", "BRCA", ...]``)."""
    return sorted(set(_library_index().values()))


def resolve_cancer(code: str) -> str:
    """Map a code or alias to a shipped PBK (``"tcga-coad"`` -> ``"COADREAD"``), else raise."""
    key = re.sub(r"^TCGA[-_]", "", code.strip().upper())
    index = _library_index()
    if key in index:
        return index[key]
    hint = ""
    if key in ("KIRP", "KICH"):
        hint = (
            " The shipped KIRC knowledge is specific to clear cell renal cell carcinoma and is not"
            f" used for {key}."
        )
    raise ConfigError(
        f"no shipped PBK for cancer {code!r}; available: {', '.join(available_cancers())} "
        f"(aliases: {', '.join(sorted(k for k in index if k not in index.values()))}).{hint} "
        f"Generate one with: kemm knowledge pbk --cancer {key} --backend ... --out FILE"
    )


def load_pbk(cancer_code: str, path: str | os.PathLike[str] | None = None) -> PBK:
    """The shipped PBK for a cancer code (case-insensitive, aliases accepted), or one from ``path``."""
    if path is not None:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    else:
        stem = resolve_cancer(cancer_code)
        record = json.loads((_library() / f"{stem}.json").read_text(encoding="utf-8"))
    validate_pbk(record)
    return PBK.from_dict(record)


def write_pbk(record: dict[str, Any] | PBK, path: str | os.PathLike[str]) -> Path:
    """Validate and write a PBK JSON file."""
    data = record.to_dict() if isinstance(record, PBK) else record
    validate_pbk(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _parse_json_object(text: str) -> dict[str, Any]:
    text = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.MULTILINE).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the reply")
    return json.loads(text[start : end + 1])


def _clean_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for item in value:
        if isinstance(item, dict):  # {"statement": "..."} style answers
            item = next((v for v in item.values() if isinstance(v, str)), "")
        if isinstance(item, str):
            item = re.sub(r"\s+", " ", item).strip()
            if len(item) >= 10 and item not in out:
                out.append(item[:300])
    return out


def generate_pbk(
    cancer: str,
    backend: LLMBackend,
    *,
    cancer_name: str | None = None,
    n_general: int = 8,
    n_level: int = 4,
    prompt_version: str = PBK_PROMPT,
    cache_dir: str | os.PathLike[str] | None = None,
    max_tokens: int = 1200,
    attempts: int = 3,
    review: str = "not reviewed: generated automatically, review before use",
) -> dict[str, Any]:
    """Ask ``backend`` for a PBK and return a schema-valid record (with provenance).

    Retries with a different seed when the reply is not valid JSON or fails the schema; raises
    :class:`PBKGenerationError` listing every attempt's problem otherwise.
    """
    code = re.sub(r"^TCGA[-_]", "", cancer.strip().upper())
    name = cancer_name or CANCER_NAMES.get(code)
    if not name:
        raise ConfigError(f"unknown cancer code {cancer!r}: pass its full name (--name)")
    prompt = load_prompt(prompt_version)
    messages = prompt.messages(cancer=code, cancer_name=name, n_general=n_general, n_level=n_level)
    cache = DiskCache(cache_dir) if cache_dir is not None else None
    problems: list[str] = []
    for attempt in range(attempts):
        seed, temperature = attempt, 0.0 if attempt == 0 else 0.4
        payload = {"messages": messages, "max_tokens": max_tokens, "seed": seed, "t": temperature}
        key = cache_key(backend.name, backend.model, prompt_version, input_hash(payload))
        entry = cache.get(key) if cache is not None else None
        if entry is None:
            reply = backend.complete(
                messages, max_tokens=max_tokens, temperature=temperature, seed=seed
            )
            if cache is not None:
                cache.put(key, {"cancer": code, "output": reply})
        else:
            reply = str(entry["output"])
        try:
            parsed = _parse_json_object(reply)
            record = {
                "cancer": code,
                "cancer_name": name,
                "aliases": [],
                "general": _clean_list(parsed.get("general")),
                "low": _clean_list(parsed.get("low")),
                "intermediate": _clean_list(parsed.get("intermediate")),
                "high": _clean_list(parsed.get("high")),
                "provenance": {
                    "generator": f"kemm knowledge pbk, backend {backend.name}, model {backend.model}",
                    "prompt_version": prompt_version,
                    "date": _dt.date.today().isoformat(),
                    "review": review,
                },
            }
            validate_pbk(record)
            return record
        except (ValueError, jsonschema.ValidationError) as error:
            message = error.message if isinstance(error, jsonschema.ValidationError) else str(error)
            problems.append(f"attempt {attempt + 1}: {message}")
    raise PBKGenerationError(
        f"{backend.name} {backend.model}: no valid PBK for {code}: " + "; ".join(problems)
    )
