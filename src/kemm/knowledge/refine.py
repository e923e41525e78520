"""Refinement of pathology reports into short, grounded prognostic statements.

For each report: clean it, keep the most informative sections (diagnosis, synoptic, ...) within
an input budget, put it between ``<report>`` delimiters as untrusted data, ask the backend for at
most N statements with the versioned prompt, parse the lines, and keep only statements whose
checkable facts are supported by the source (:mod:`kemm.knowledge.grounding`). Completions are
cached on disk by (backend, model, prompt version, input hash): a second run makes no LLM call
and an interrupted run resumes. Failures are collected per case and reported, never skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kemm.io import atomic_path
from kemm.knowledge.backends import LLMBackend
from kemm.knowledge.batch import run_per_report
from kemm.knowledge.cache import DiskCache, cache_key, input_hash
from kemm.knowledge.clean import clean_report, strip_injected_blocks
from kemm.knowledge.grounding import GroundingResult, ground_statements
from kemm.knowledge.prompting import REFINE_PROMPT, load_prompt, neutralise_delimiters
from kemm.knowledge.sections import focus_text

__all__ = [
    "CaseResult",
    "RefineResult",
    "build_refine_messages",
    "parse_statements",
    "refine_reports",
]

log = logging.getLogger(__name__)

_BULLET_RE = re.compile(r"^\s*(?:[-*\u2022\u2013]|\d{1,2}[.)]|\(\d{1,2}\))\s*")


@dataclass
class CaseResult:
    """The outcome for one patient."""

    case_id: str
    statements: list[str]
    dropped: list[GroundingResult] = field(default_factory=list)
    raw_output: str = ""
    cached: bool = False
    injections_removed: int = 0

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)


@dataclass
class RefineResult:
    """Per-case statements, dropped counts and failures of one refinement run."""

    backend: str
    model: str
    prompt_version: str
    cases: dict[str, CaseResult] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    llm_calls: int = 0
    cache_hits: int = 0
    elapsed_s: float = 0.0

    @property
    def statements(self) -> dict[str, list[str]]:
        return {cid: c.statements for cid, c in self.cases.items()}

    @property
    def dropped(self) -> dict[str, int]:
        return {cid: c.n_dropped for cid, c in self.cases.items()}

    @property
    def total_dropped(self) -> int:
        return sum(c.n_dropped for c in self.cases.values())

    @property
    def n_grounded(self) -> int:
        """Cases with at least one grounded statement."""
        return sum(bool(c.statements) for c in self.cases.values())

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per successful case (the ``refine`` output format)."""
        return [
            {
                "case_id": cid,
                "statements": c.statements,
                "dropped": c.n_dropped,
                "backend": self.backend,
                "model": self.model,
                "prompt_version": self.prompt_version,
            }
            for cid, c in self.cases.items()
        ]

    def write_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`records` as JSON lines (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
            for record in self.records():
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path

    def summary(self) -> dict[str, Any]:
        """Run summary: counts, dropped statements, LLM calls, rate, failures."""
        n = len(self.cases) + len(self.failures)
        return {
            "backend": self.backend,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "reports": n,
            "succeeded": len(self.cases),
            "with_grounded_statements": self.n_grounded,
            "statements": sum(len(c.statements) for c in self.cases.values()),
            "dropped_statements": self.total_dropped,
            "injections_removed": sum(c.injections_removed for c in self.cases.values()),
            "llm_calls": self.llm_calls,
            "cache_hits": self.cache_hits,
            "elapsed_s": round(self.elapsed_s, 2),
            "reports_per_minute": round(60 * n / self.elapsed_s, 2) if self.elapsed_s else None,
            "failures": dict(self.failures),
        }


def parse_statements(output: str, max_statements: int) -> list[str]:
    """Statement lines of an LLM reply: bullets/numbering stripped, headings and echoes dropped."""
    out: list[str] = []
    seen: set[str] = set()
    for line in output.splitlines():
        line = line.strip().strip("`")
        if not line or line.startswith(("<", "#", "```")):
            continue
        line = _BULLET_RE.sub("", line.replace("**", "")).strip().strip('"').strip()
        if not line or len(line) < 4:
            continue
        if line.endswith(":") and len(line) < 60:
            continue  # a heading
        if re.match(r"(?i)(here are|the following|list the|statements?:|sure\b)", line):
            continue
        line = line[:300]
        key = line.lower().rstrip(".")
        if key in seen:
            continue
        seen.add(key)
        out.append(line)
        if len(out) >= max_statements:
            break
    return out


def build_refine_messages(
    report: str,
    max_statements: int,
    *,
    prompt_version: str = REFINE_PROMPT,
    max_input_chars: int = 2500,
) -> list[dict[str, str]]:
    """The chat messages for one report (cleaned, injection-stripped, focused, delimited)."""
    text = focus_text(strip_injected_blocks(clean_report(report))[0], max_input_chars)
    prompt = load_prompt(prompt_version)
    return prompt.messages(max_statements=max_statements, report=neutralise_delimiters(text))


def refine_reports(
    reports: Mapping[str, str],
    backend: LLMBackend,
    cache_dir: str | os.PathLike[str] | None = None,
    max_statements: int = 12,
    *,
    prompt_version: str = REFINE_PROMPT,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    max_input_chars: int = 2500,
    min_content_overlap: float = 0.5,
    progress: bool = True,
) -> RefineResult:
    """Refine every report; see the module docstring.

    ``cache_dir=None`` disables the cache. ``max_tokens`` defaults to ``24 * max_statements``.
    """
    cache = DiskCache(cache_dir) if cache_dir is not None else None
    use_cache = cache is not None and backend.name != "extractive"
    max_tokens = max_tokens or 24 * max_statements
    result = RefineResult(backend=backend.name, model=backend.model, prompt_version=prompt_version)
    started = time.perf_counter()
    calls = [0]
    calls_lock = threading.Lock()

    def one(case_id: str, report: str) -> CaseResult:
        if not report or not report.strip():
            raise ValueError("empty report text")
        messages = build_refine_messages(
            report, max_statements, prompt_version=prompt_version, max_input_chars=max_input_chars
        )
        payload = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        key = cache_key(backend.name, backend.model, prompt_version, input_hash(payload))
        entry = cache.get(key) if use_cache and cache is not None else None
        cached = entry is not None
        if entry is None:
            if backend.name != "extractive":
                with calls_lock:
                    calls[0] += 1
            output = backend.complete(
                messages, max_tokens=max_tokens, temperature=temperature, seed=seed
            )
            if use_cache and cache is not None:
                cache.put(key, {"case_id": case_id, "output": output, "created": time.time()})
        else:
            output = str(entry["output"])
        statements = parse_statements(output, max_statements)
        # grounded against the report without injected text, so echoing it is never "supported"
        source, n_injected = strip_injected_blocks(report)
        if n_injected:
            log.warning("%s: removed %d sentence(s) addressed to an LLM", case_id, n_injected)
        kept, dropped = ground_statements(
            statements, source, min_content_overlap=min_content_overlap
        )
        return CaseResult(
            case_id, kept, dropped, raw_output=output, cached=cached, injections_removed=n_injected
        )

    items = list(reports.items())
    outcomes = run_per_report(
        items, one, workers=max(1, int(getattr(backend, "concurrency", 1))),
        desc=f"refine [{backend.name}]", progress=progress,
    )  # fmt: skip
    for case_id, outcome in outcomes.items():  # input order
        if isinstance(outcome, CaseResult):
            result.cases[case_id] = outcome
            result.cache_hits += outcome.cached
        else:
            result.failures[case_id] = outcome
    result.llm_calls = calls[0]
    result.elapsed_s = time.perf_counter() - started
    return result
