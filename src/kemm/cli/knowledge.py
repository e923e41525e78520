"""``kemm knowledge refine | pbk | embed``: report refinement, PBK generation, text embeddings."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kemm.cli.common import F, KemmTyper, console, fail, option_group
from kemm.errors import KemmError

# what a rerun after failures costs: only the failed reports, unless the cache is off
_RETRY_HINT = {False: " (finished reports are cached)", True: " (--no-cache: every report again)"}

BACKEND_HELP = (
    "extractive (rules, no LLM) | llama_cpp (embedded GGUF) | openai (any OpenAI-compatible "
    "endpoint: OpenAI, vLLM, Ollama, llama.cpp server)."
)


@dataclass(frozen=True)
class LLMOptions:
    """The LLM backend options a knowledge command takes (``--backend``, ``--gguf`` ...)."""

    backend: str
    gguf: Path | None
    base_url: str | None
    model: str | None
    api_key_env: str
    timeout: float
    max_retries: int
    n_ctx: int
    # the defaults are the options' (below); these two a command may leave out (``exclude``):
    concurrency: int = 1  # pbk: one request at a time
    n_threads: int | None = None  # llama.cpp's default: all cores

    def backend_config(self) -> dict[str, Any]:
        """The ``create_backend`` config of these options."""
        from kemm.knowledge.backends import backend_kind

        kind = backend_kind(self.backend)
        if kind == "llama_cpp":
            return {"kind": kind, "gguf_path": self.gguf, "n_ctx": self.n_ctx,
                    "n_threads": self.n_threads}  # fmt: skip
        if kind == "openai":
            return {"kind": kind, "base_url": self.base_url, "model": self.model,
                    "api_key_env": self.api_key_env, "timeout": self.timeout,
                    "max_retries": self.max_retries, "concurrency": self.concurrency}  # fmt: skip
        return {"kind": kind}


def _llm_option_parameters(backend_default: str, backend_help: str) -> dict[str, Any]:
    """name -> (type, typer option) of every :class:`LLMOptions` field."""
    return {
        "backend": (str, typer.Option(backend_default, "--backend", "-b", help=backend_help)),
        "gguf": (Path | None, typer.Option(
            None, "--gguf",
            help="GGUF file for llama_cpp (default: $KEMM_LLM_GGUF or the bundled model).",
        )),
        "base_url": (str | None, typer.Option(
            None, "--base-url", help="OpenAI-compatible base URL (…/v1).")),
        "model": (str | None, typer.Option(None, "--model", help="Model name at the endpoint.")),
        "api_key_env": (str, typer.Option(
            "OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the API key.")),
        "timeout": (float, typer.Option(120.0, "--timeout", help="Request timeout, seconds.")),
        "max_retries": (int, typer.Option(
            4, "--max-retries", help="Retries per request (with backoff).")),
        "concurrency": (int, typer.Option(
            4, "--concurrency", help="Concurrent requests (openai backend).")),
        "n_ctx": (int, typer.Option(4096, "--n-ctx", help="Context length (llama_cpp backend).")),
        "n_threads": (int | None, typer.Option(
            None, "--n-threads", help="CPU threads (llama_cpp backend; default: all cores).")),
    }  # fmt: skip


def with_llm_options(
    *,
    backend_default: str = "extractive",
    backend_help: str = BACKEND_HELP,
    exclude: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Give a command the LLM backend options, passed to it as ``llm: LLMOptions``."""
    options = _llm_option_parameters(backend_default, backend_help)
    kept = {name: spec for name, spec in options.items() if name not in exclude}
    return option_group(kept, LLMOptions, "llm")


def _llm_cache(cache_dir: Path | None, no_cache: bool = False) -> Path | None:
    """``--cache-dir``, else the default LLM cache; None under ``--no-cache``."""
    from kemm.knowledge.model_files import cache_dir as default_cache

    return None if no_cache else (cache_dir or default_cache() / "llm")


@dataclass(frozen=True)
class BatchOptions:
    """How a command over many reports runs: its LLM cache, a report limit, failures."""

    cache_dir: Path | None = None
    no_cache: bool = False
    limit: int | None = None
    allow_failures: bool = False

    def take(self, texts: dict[str, str]) -> dict[str, str]:
        """The reports to process (the first ``--limit``)."""
        return texts if self.limit is None else dict(list(texts.items())[: self.limit])

    def llm_cache(self) -> Path | None:
        """The LLM cache folder, None under ``--no-cache``."""
        return _llm_cache(self.cache_dir, self.no_cache)

    def report_failures(self, failures: dict[str, str], title: str, kept: str) -> None:
        """List failed reports and how to retry them; exit 1 unless ``--allow-failures``."""
        if not failures:
            return
        table = Table("case_id", "reason", title=f"{len(failures)} {title}")
        for case_id, reason in failures.items():
            table.add_row(case_id, reason)
        console.print(table)
        console.print(f"{kept}rerun the same command to retry them" + _RETRY_HINT[self.no_cache])
        if not self.allow_failures:
            raise typer.Exit(code=1)


with_batch_options = option_group(
    {
        "cache_dir": (Path | None, typer.Option(
            None, "--cache-dir", help="LLM cache (default $KEMM_CACHE/llm or ~/.cache/kemm/llm).")),
        "no_cache": (bool, typer.Option(
            False, "--no-cache", help="Do not read or write the cache.")),
        "limit": (int | None, typer.Option(None, "--limit", help="Only the first N reports.")),
        "allow_failures": (bool, typer.Option(
            False, "--allow-failures", help="Exit 0 even if some reports or LLM calls failed.")),
    },
    BatchOptions,
    "batch",
)  # fmt: skip
"""Give a command the options of a run over many reports, passed as ``batch``."""


def register(app: typer.Typer) -> None:
    knowledge = KemmTyper(
        help="Report refinement, prognostic background knowledge (PBK) and text embeddings.",
        no_args_is_help=True,
    )
    app.add_typer(knowledge, name="knowledge")

    @knowledge.command()
    @with_llm_options(exclude=("n_threads",))
    @with_batch_options
    def refine(
        reports: Path = typer.Option(..., "--reports", help="CSV with case_id and a text column."),
        out: Path = typer.Option(..., "--out", help="Output JSON-lines file."),
        text_column: str = typer.Option("raw_text", "--text-column", help="Report text column."),
        max_statements: int = typer.Option(12, "--max-statements", min=1),
        max_tokens: int | None = typer.Option(
            None, "--max-tokens", help="Default 24 per statement."
        ),
        max_input_chars: int = typer.Option(2500, "--max-input-chars"),
        llm: LLMOptions = None,  # type: ignore[assignment]
        batch: BatchOptions = None,  # type: ignore[assignment]
    ) -> None:
        """Refine each report into short grounded prognostic statements (one JSON line each)."""
        from kemm.knowledge.backends import create_backend
        from kemm.knowledge.refine import refine_reports
        from kemm.knowledge.reports import read_reports

        try:
            texts = read_reports(reports, text_column=text_column)
            texts = batch.take(texts)
            backend = create_backend(llm.backend_config())
            result = refine_reports(
                texts, backend, batch.llm_cache(), max_statements, max_tokens=max_tokens,
                max_input_chars=max_input_chars,
            )  # fmt: skip
        except KemmError as error:
            fail(error)
            return
        result.write_jsonl(out)
        summary = result.summary()
        summary_path = out.with_name(out.name + ".summary.json")
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
        console.print(
            f"{summary['succeeded']}/{summary['reports']} reports refined "
            f"({summary['with_grounded_statements']} with grounded statements), "
            f"{summary['statements']} statements kept, {summary['dropped_statements']} dropped "
            f"by grounding; {summary['llm_calls']} LLM calls, {summary['cache_hits']} cache hits; "
            f"{summary['reports_per_minute']} reports/min → {out}"
        )
        batch.report_failures(result.failures, "failed reports", "")

    @knowledge.command()
    @with_llm_options(
        backend_default="library",
        backend_help="library (the shipped reviewed file) | " + BACKEND_HELP,
        exclude=("concurrency", "n_threads"),
    )
    def pbk(
        cancer: str | None = typer.Option(
            None, "--cancer", help="TCGA code, e.g. BRCA (aliases accepted)."
        ),
        out: Path | None = typer.Option(None, "--out", help="Write the PBK JSON here."),
        name: str | None = typer.Option(None, "--name", help="Full cancer name for new codes."),
        n_general: int = typer.Option(8, "--n-general", min=3),
        n_level: int = typer.Option(4, "--n-level", min=2),
        max_tokens: int = typer.Option(1200, "--max-tokens"),
        cache_dir: Path | None = typer.Option(None, "--cache-dir"),
        list_codes: bool = typer.Option(False, "--list", help="List the shipped cancer codes."),
        llm: LLMOptions = None,  # type: ignore[assignment]
    ) -> None:
        """Print or generate the PBK of a cancer type (validated against the PBK schema)."""
        from kemm.knowledge import pbk as pbk_mod

        if list_codes:
            for code in pbk_mod.available_cancers():
                typer.echo(code)
            return
        if not cancer:
            fail(KemmError("--cancer is required (kemm knowledge pbk --list shows the codes)"))
            return
        try:
            if llm.backend.lower() == "library":
                record = pbk_mod.load_pbk(cancer).to_dict()
            else:
                from kemm.knowledge.backends import create_backend

                backend = create_backend(llm.backend_config())
                record = pbk_mod.generate_pbk(
                    cancer, backend, cancer_name=name, n_general=n_general, n_level=n_level,
                    max_tokens=max_tokens, cache_dir=_llm_cache(cache_dir),
                )  # fmt: skip
        except KemmError as error:
            fail(error)
            return
        text = json.dumps(record, indent=2, ensure_ascii=False)
        if out is None:
            typer.echo(text)
        else:
            pbk_mod.write_pbk(record, out)
            console.print(f"PBK for {record['cancer']} (schema-valid) → {out}")

    @knowledge.command()
    def embed(
        refined: Path | None = typer.Option(
            None, "--refined", help="JSON lines from `kemm knowledge refine`."
        ),
        out: Path | None = typer.Option(None, "--out", help="Statement embeddings (.h5)."),
        cancer: str | None = typer.Option(None, "--cancer", help="Also embed this cancer's PBK."),
        pbk_file: Path | None = typer.Option(
            None, "--pbk-file", help="A PBK JSON instead of the shipped one."
        ),
        pbk_out: Path | None = typer.Option(None, "--pbk-out", help="PBK embeddings (.h5)."),
        encoder: str = typer.Option(
            "all-MiniLM-L6-v2", "--encoder", help="all-MiniLM-L6-v2, a HF id/alias or a local path."
        ),
        device: str = typer.Option("cpu", "--device"),
        cache_dir: Path | None = typer.Option(
            None, "--cache-dir", help="Embedding cache (default $KEMM_CACHE or ~/.cache/kemm)."
        ),
    ) -> None:
        """Embed refined statements per patient and/or a PBK with a frozen text encoder (through
        the embedding cache training uses; a run names the files with data.reports.embeddings
        and data.pbk_embeddings)."""
        from kemm.knowledge.encoders import CachedTextEncoder
        from kemm.knowledge.pbk import load_pbk
        from kemm.knowledge.reports import read_refined
        from kemm.knowledge.store import (
            embed_pbk,
            embed_statements,
            write_pbk_embedding,
            write_statement_embeddings,
        )

        if refined is None and cancer is None and pbk_file is None:
            fail(KemmError("nothing to embed: give --refined and/or --cancer/--pbk-file"))
        if refined is not None and out is None:
            fail(KemmError("--refined needs --out"))
        if (cancer or pbk_file) and pbk_out is None:
            fail(KemmError("--cancer/--pbk-file needs --pbk-out"))
        try:
            text_encoder = CachedTextEncoder(encoder, cache_dir, device=device)
            if refined is not None and out is not None:
                statements = read_refined(refined)
                data = embed_statements(statements, text_encoder)
                write_statement_embeddings(out, data, text_encoder.name)
                console.print(
                    f"{sum(len(s) for s in statements.values())} statements of "
                    f"{len(statements)} patients embedded with {text_encoder.name} "
                    f"(dim {text_encoder.dim}) → {out}"
                )
            if pbk_out is not None and (cancer or pbk_file):
                knowledge_pbk = load_pbk(cancer or "", path=pbk_file)
                write_pbk_embedding(pbk_out, embed_pbk(knowledge_pbk, text_encoder))
                console.print(f"PBK {knowledge_pbk.cancer} embedded → {pbk_out}")
        except KemmError as error:
            fail(error)

    @knowledge.command()
    @with_llm_options()
    @with_batch_options
    def facts(
        reports: Path = typer.Option(..., "--reports", help="CSV with case_id and a text column."),
        out: Path = typer.Option(
            ..., "--out", help="Facts CSV; FACTS.spans.jsonl and FACTS.csv.summary.json beside it."
        ),
        cancer: str | None = typer.Option(
            None,
            "--cancer",
            help="TCGA code (brca, kirc, luad, lusc, ucec ...): the grade scale, the AJCC 7th "
            "table that derives a stage from TNM when none is stated, and er/pr/her2 columns for "
            "brca. Default: none (no derived stage, grade scale 1-4).",
        ),
        text_column: str = typer.Option(
            "raw_text", "--column", "--text-column", help="Report text column."
        ),
        age_column: str | None = typer.Option(
            None,
            "--age-column",
            help="Column of the reports CSV with the age at diagnosis (years): picks the AJCC "
            "table where stage groups depend on age (thyroid). Without it such a stage is "
            "derived only where every age band agrees.",
        ),
        max_input_chars: int = typer.Option(
            5000, "--max-input-chars", help="Report text shown to the LLM (~1,500 tokens)."
        ),
        llm: LLMOptions = None,  # type: ignore[assignment]
        batch: BatchOptions = None,  # type: ignore[assignment]
    ) -> None:
        """One row of report facts per case, each value traced to its span in FACTS.spans.jsonl.

        Fields: t, n, m, stage, grade, nodes_positive, nodes_examined, size_cm, margin, lvi, pni, histology (+ er, pr, her2 for brca); empty = not stated. Reports with no text get an empty row.

        The rules read every field. With an LLM backend, the fields they left empty are asked of the LLM through a JSON schema, and a value is kept only when its verbatim quote is in the report and states it.
        """
        from kemm.knowledge.backends import create_backend
        from kemm.knowledge.facts_llm import extract_facts, read_report_ages, read_report_table

        try:
            from kemm.knowledge.cancers import report_rules

            # one resolver: "kidney", "TCGA-KIRC", "CCRCC" -> the kidney rules, or one error line
            code = report_rules(cancer)
            texts = read_report_table(reports, text_column=text_column)
            texts = batch.take(texts)
            ages = read_report_ages(reports, age_column) if age_column else None
            backend = create_backend(llm.backend_config())
            result = extract_facts(
                texts,
                backend,
                cancer=code,
                cache_dir=batch.llm_cache(),
                max_input_chars=max_input_chars,
                ages=ages,
            )
        except KemmError as error:
            fail(error)
        result.write_csv(out)
        spans_path = result.write_spans(out.with_suffix(".spans.jsonl"))
        summary = result.summary()
        summary_path = out.with_name(out.name + ".summary.json")
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
        n = summary["reports"]
        llm_used = result.prompt_version != "rules"
        table = Table("field", "rules", *(("llm",) if llm_used else ()), "coverage",
                      title=f"{n} reports read ({summary['empty_reports']} without text)")  # fmt: skip
        for name, cov in summary["coverage"].items():
            share = f"{cov['total']}/{n} ({100 * cov['total'] / n:.0f}%)" if n else "0/0"
            table.add_row(name, str(cov["rules"]), *((str(cov["llm"]),) if llm_used else ()), share)
        console.print(table)
        if llm_used:
            reasons = ", ".join(f"{k} {v}" for k, v in summary["dropped_by_reason"].items())
            console.print(
                f"LLM ({summary['backend']} {summary['model']}): {summary['llm_asked_fields']} "
                f"missing fields asked in {summary['llm_asked_reports']} reports, "
                f"{summary['llm_filled']} filled, {summary['llm_dropped']} dropped"
                + (f" ({reasons})" if reasons else "")
                + f"; {summary['llm_calls']} LLM calls, {summary['cache_hits']} cache hits, "
                f"{summary['elapsed_s']} s"
            )
        console.print(f"{n} rows → {out}; spans → {spans_path}")
        batch.report_failures(
            result.failures, "failed LLM calls", "their rows hold the rules' facts only; "
        )
