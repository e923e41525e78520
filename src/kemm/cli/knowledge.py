"""``kemm knowledge refine | pbk | embed``: report refinement, PBK generation, text embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kemm.cli.common import KemmTyper, console, fail
from kemm.errors import KemmError

# what a rerun after failures costs: only the failed reports, unless the cache is off
_RETRY_HINT = {False: " (finished reports are cached)", True: " (--no-cache: every report again)"}

BACKEND_HELP = (
    "extractive (rules, no LLM) | llama_cpp (embedded GGUF) | openai (any OpenAI-compatible "
    "endpoint: OpenAI, vLLM, Ollama, llama.cpp server)."
)


def _backend_config(
    backend: str,
    gguf: Path | None,
    base_url: str | None,
    model: str | None,
    api_key_env: str,
    timeout: float,
    max_retries: int,
    concurrency: int,
    n_ctx: int,
) -> dict[str, Any]:
    kind = backend.lower()
    if kind in ("llama_cpp", "embedded", "llama", "gguf"):
        return {"kind": "llama_cpp", "gguf_path": gguf, "n_ctx": n_ctx}
    if kind in ("openai", "openai-compatible", "vllm", "ollama", "server"):
        return {
            "kind": "openai",
            "base_url": base_url,
            "model": model,
            "api_key_env": api_key_env,
            "timeout": timeout,
            "max_retries": max_retries,
            "concurrency": concurrency,
        }
    return {"kind": kind}


def register(app: typer.Typer) -> None:
    knowledge = KemmTyper(
        help="Report refinement, prognostic background knowledge (PBK) and text embeddings.",
        no_args_is_help=True,
    )
    app.add_typer(knowledge, name="knowledge")

    backend_opt = typer.Option("extractive", "--backend", "-b", help=BACKEND_HELP)
    gguf_opt = typer.Option(
        None,
        "--gguf",
        help="GGUF file for llama_cpp (default: $KEMM_LLM_GGUF or the bundled model).",
    )
    base_url_opt = typer.Option(None, "--base-url", help="OpenAI-compatible base URL (…/v1).")
    model_opt = typer.Option(None, "--model", help="Model name at the endpoint.")
    key_env_opt = typer.Option(
        "OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the API key."
    )
    timeout_opt = typer.Option(120.0, "--timeout", help="Request timeout, seconds.")
    retries_opt = typer.Option(4, "--max-retries", help="Retries per request (with backoff).")
    conc_opt = typer.Option(4, "--concurrency", help="Concurrent requests (openai backend).")
    n_ctx_opt = typer.Option(4096, "--n-ctx", help="Context length (llama_cpp backend).")

    @knowledge.command()
    def refine(
        reports: Path = typer.Option(..., "--reports", help="CSV with case_id and a text column."),
        out: Path = typer.Option(..., "--out", help="Output JSON-lines file."),
        text_column: str = typer.Option("raw_text", "--text-column", help="Report text column."),
        backend: str = backend_opt,
        gguf: Path | None = gguf_opt,
        base_url: str | None = base_url_opt,
        model: str | None = model_opt,
        api_key_env: str = key_env_opt,
        timeout: float = timeout_opt,
        max_retries: int = retries_opt,
        concurrency: int = conc_opt,
        n_ctx: int = n_ctx_opt,
        max_statements: int = typer.Option(12, "--max-statements", min=1),
        max_tokens: int | None = typer.Option(
            None, "--max-tokens", help="Default 24 per statement."
        ),
        max_input_chars: int = typer.Option(2500, "--max-input-chars"),
        cache_dir: Path | None = typer.Option(
            None, "--cache-dir", help="LLM cache (default $KEMM_CACHE/llm or ~/.cache/kemm/llm)."
        ),
        no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the cache."),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N reports."),
        allow_failures: bool = typer.Option(
            False, "--allow-failures", help="Exit 0 even if some reports failed."
        ),
    ) -> None:
        """Refine each report into short grounded prognostic statements (one JSON line each)."""
        from kemm.knowledge.backends import create_backend
        from kemm.knowledge.model_files import cache_dir as default_cache
        from kemm.knowledge.refine import refine_reports
        from kemm.knowledge.reports import read_reports

        try:
            texts = read_reports(reports, text_column=text_column)
            if limit is not None:
                texts = dict(list(texts.items())[:limit])
            llm = create_backend(
                _backend_config(
                    backend,
                    gguf,
                    base_url,
                    model,
                    api_key_env,
                    timeout,
                    max_retries,
                    concurrency,
                    n_ctx,
                )  # fmt: skip
            )
            cache = None if no_cache else (cache_dir or default_cache() / "llm")
            result = refine_reports(
                texts, llm, cache, max_statements, max_tokens=max_tokens,
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
        if result.failures:
            table = Table("case_id", "reason", title=f"{len(result.failures)} failed reports")
            for case_id, reason in result.failures.items():
                table.add_row(case_id, reason)
            console.print(table)
            console.print("rerun the same command to retry them" + _RETRY_HINT[no_cache])
            if not allow_failures:
                raise typer.Exit(code=1)

    @knowledge.command()
    def pbk(
        cancer: str | None = typer.Option(
            None, "--cancer", help="TCGA code, e.g. BRCA (aliases accepted)."
        ),
        backend: str = typer.Option(
            "library",
            "--backend",
            "-b",
            help="library (the shipped reviewed file) | " + BACKEND_HELP,
        ),
        out: Path | None = typer.Option(None, "--out", help="Write the PBK JSON here."),
        name: str | None = typer.Option(None, "--name", help="Full cancer name for new codes."),
        gguf: Path | None = gguf_opt,
        base_url: str | None = base_url_opt,
        model: str | None = model_opt,
        api_key_env: str = key_env_opt,
        timeout: float = timeout_opt,
        max_retries: int = retries_opt,
        n_ctx: int = n_ctx_opt,
        n_general: int = typer.Option(8, "--n-general", min=3),
        n_level: int = typer.Option(4, "--n-level", min=2),
        max_tokens: int = typer.Option(1200, "--max-tokens"),
        cache_dir: Path | None = typer.Option(None, "--cache-dir"),
        list_codes: bool = typer.Option(False, "--list", help="List the shipped cancer codes."),
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
            if backend.lower() == "library":
                record = pbk_mod.load_pbk(cancer).to_dict()
            else:
                from kemm.knowledge.backends import create_backend
                from kemm.knowledge.model_files import cache_dir as default_cache

                llm = create_backend(
                    _backend_config(
                        backend, gguf, base_url, model, api_key_env, timeout, max_retries, 1, n_ctx
                    )
                )
                record = pbk_mod.generate_pbk(
                    cancer, llm, cancer_name=name, n_general=n_general, n_level=n_level,
                    max_tokens=max_tokens, cache_dir=cache_dir or default_cache() / "llm",
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
        backend: str = backend_opt,
        gguf: Path | None = gguf_opt,
        base_url: str | None = base_url_opt,
        model: str | None = model_opt,
        api_key_env: str = key_env_opt,
        timeout: float = timeout_opt,
        max_retries: int = retries_opt,
        concurrency: int = conc_opt,
        n_ctx: int = n_ctx_opt,
        n_threads: int | None = typer.Option(
            None, "--n-threads", help="CPU threads (llama_cpp backend; default: all cores)."
        ),
        max_input_chars: int = typer.Option(
            5000, "--max-input-chars", help="Report text shown to the LLM (~1,500 tokens)."
        ),
        cache_dir: Path | None = typer.Option(
            None, "--cache-dir", help="LLM cache (default $KEMM_CACHE/llm or ~/.cache/kemm/llm)."
        ),
        no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the cache."),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N reports."),
        allow_failures: bool = typer.Option(
            False, "--allow-failures", help="Exit 0 even if some LLM calls failed."
        ),
    ) -> None:
        """One row of report facts per case, each value traced to its span in FACTS.spans.jsonl.

        Fields: t, n, m, stage, grade, nodes_positive, nodes_examined, size_cm, margin, lvi, pni, histology (+ er, pr, her2 for brca); empty = not stated. Reports with no text get an empty row.

        The rules read every field. With an LLM backend, the fields they left empty are asked of the LLM through a JSON schema, and a value is kept only when its verbatim quote is in the report and states it.
        """
        from kemm.knowledge.backends import create_backend
        from kemm.knowledge.facts_llm import extract_facts, read_report_table
        from kemm.knowledge.model_files import cache_dir as default_cache

        code = cancer.strip().lower().removeprefix("tcga-") if cancer else None
        try:
            texts = read_report_table(reports, text_column=text_column)
            if limit is not None:
                texts = dict(list(texts.items())[:limit])
            config = _backend_config(
                backend, gguf, base_url, model, api_key_env, timeout, max_retries, concurrency,
                n_ctx,
            )  # fmt: skip
            if config["kind"] == "llama_cpp" and n_threads:
                config["n_threads"] = n_threads
            llm = create_backend(config)
            cache = None if no_cache else (cache_dir or default_cache() / "llm")
            result = extract_facts(
                texts, llm, cancer=code, cache_dir=cache, max_input_chars=max_input_chars
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
        if result.failures:
            failed = Table("case_id", "reason", title=f"{len(result.failures)} failed LLM calls")
            for case_id, reason in result.failures.items():
                failed.add_row(case_id, reason)
            console.print(failed)
            console.print(
                "their rows hold the rules' facts only; rerun the same command to retry them"
                + _RETRY_HINT[no_cache]
            )
            if not allow_failures:
                raise typer.Exit(code=1)
