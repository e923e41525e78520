"""Speed and coverage of the rule-based report-fact extractor over the five TCGA cohorts.

    python benchmarks/bench_report_facts.py [--data-root ../shared/data]

Prints, per cohort, the reports read, the share of reports stating each field, and the
wall time of extraction (target: all five cohorts' reports in under 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kemm.knowledge.covariates import facts_for_reports
from kemm.knowledge.report_facts import FACT_COLUMNS
from kemm.knowledge.reports import read_reports

COHORTS = ("brca", "luad", "kirc", "ucec", "lusc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    args = parser.parse_args()
    total_reports, started = 0, time.perf_counter()
    print("| cohort | reports | seconds | " + " | ".join(FACT_COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(FACT_COLUMNS))
    for cohort in COHORTS:
        texts = read_reports(Path(args.data_root) / "tcga" / cohort / "reports.csv", "raw_text")
        t0 = time.perf_counter()
        records = facts_for_reports(texts, cohort)
        seconds = time.perf_counter() - t0
        total_reports += len(records)
        cover = [
            sum(r.value(f) is not None for r in records.values()) / max(len(records), 1)
            for f in FACT_COLUMNS
        ]
        print(f"| {cohort.upper()} | {len(records)} | {seconds:.1f} | "
              + " | ".join(f"{c:.0%}" for c in cover) + " |")  # fmt: skip
    wall = time.perf_counter() - started
    print(
        f"\n{total_reports} reports in {wall:.1f} s ({total_reports / wall * 60:.0f} reports/min)"
    )


if __name__ == "__main__":
    main()
