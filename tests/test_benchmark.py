"""The TCGA benchmark command: input checks, site-held-out folds, the quick run CI performs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kemm.cohort import read_splits
from kemm.engine.benchmark import check_data_root, format_benchmark, run_benchmark, site_splits
from kemm.errors import InputDataError


def test_missing_input_is_named(tmp_path):
    (tmp_path / "tcga" / "abc").mkdir(parents=True)
    with pytest.raises(
        InputDataError, match="tcga_abc_all_clean.csv: benchmark input missing for cohort 'abc'"
    ):
        check_data_root(tmp_path, ["abc"])


@pytest.mark.data
def test_site_held_out_folds_keep_each_site_on_one_side(data_root, tmp_path):
    folder = site_splits(data_root, "kirc", tmp_path)
    splits = read_splits(folder)
    assert len(splits) == 5
    seen_sites: dict[str, int] = {}
    tested = []
    for k, split in enumerate(splits):
        test_sites = {c.split("-")[1] for c in split.test}
        train_sites = {c.split("-")[1] for c in split.train}
        assert not test_sites & train_sites
        for site in test_sites:
            assert site not in seen_sites
            seen_sites[site] = k
        tested += split.test
    table = pd.read_csv(
        data_root / "tcga" / "kirc" / "tcga_kirc_all_clean.csv", usecols=["case_id"]
    )
    assert sorted(tested) == sorted(table["case_id"].unique())


@pytest.mark.slow
@pytest.mark.data
def test_quick_benchmark_runs_and_writes_its_table(data_root, tmp_path):
    summary = run_benchmark(data_root, tmp_path, cohorts=["kirc"], quick=True, show_progress=False)
    table = summary["table"]["kirc"]
    assert {"CoxNet (genomics)", "Clinical Cox (facts)", "Stack (facts Cox + genomic CoxNet)",
            "KEMM"} <= set(table)  # fmt: skip
    assert table["CoxNet (genomics)"]["c_index"]["mean"] > 0.6
    # report facts carry the clinical model well past age + stage alone (0.635 before facts)
    assert table["Clinical Cox (facts)"]["c_index"]["mean"] > 0.67
    # KEMM is at least as good as its own linear part, up to fold noise
    linear = table["Stack (facts Cox + genomic CoxNet)"]["c_index"]["mean"]
    assert table["KEMM"]["c_index"]["mean"] >= linear - 0.02
    for entry in table.values():
        assert len(entry["c_index"]["folds"]) == 5
        assert not entry["constant_risk_folds"]
    text = format_benchmark(summary)
    assert "| KEMM |" in text and "KIRC" in text
    assert (tmp_path / "benchmark.json").exists()
    # from prepared-cohort folders (kemm prepare): the same folds, to summation order
    again = run_benchmark(data_root, tmp_path / "prepared", cohorts=["kirc"], quick=True,
                          show_progress=False, prepared=True)  # fmt: skip
    assert (tmp_path / "prepared" / "kirc" / "prepared_families" / "prepared.json").exists()
    # (genomic scalers agree to float32 summation order, ~1e-6: the tabular models' folds are
    # the same; a network trained by the Cox loss on mini-batches may rank a pair differently)
    for label, entry in again["table"]["kirc"].items():
        tolerance = 0.01 if label == "KEMM" else 1e-6
        np.testing.assert_allclose(entry["c_index"]["folds"], table[label]["c_index"]["folds"],
                                   atol=tolerance)  # fmt: skip
    assert "Paired comparisons" in text and "| KEMM vs Stack (facts Cox + genomic CoxNet) |" in text
    assert {p["scope"] for p in summary["paired"]} == {"KIRC"}


@pytest.mark.data
def test_runs_on_one_process_pool_give_each_runs_own_results(data_root, tmp_path):
    """``--workers 2``: the benchmark's (cohort, variant) runs share one pool of processes and
    give exactly the folds each run gives on its own."""
    from kemm.engine.benchmark import (
        AGE_SEX_COX,
        ENTRIES,
        FACTS_COX,
        _run_jobs_in_processes,
        variant_config,
    )  # fmt: skip
    from kemm.engine.runner import run_cv

    chosen = [e for e in ENTRIES if e.label in (FACTS_COX, AGE_SEX_COX)]

    def config(cohort, out):
        return variant_config(data_root, cohort, "families", chosen, out / cohort, epochs=1, seed=0)

    jobs = [(c, "families", chosen, config(c, tmp_path / "pool")) for c in ("kirc", "lusc")]
    pooled = _run_jobs_in_processes(jobs, tmp_path / "pool", 2, False, False)
    assert set(pooled) == {("kirc", "families"), ("lusc", "families")}
    for cohort in ("kirc", "lusc"):
        alone = run_cv(config(cohort, tmp_path / "alone"), tmp_path / "alone" / cohort / "families",
                       show_progress=False)  # fmt: skip
        for label in (FACTS_COX, AGE_SEX_COX):
            folds = pooled[cohort, "families"]["models"][label]["c_index"]["folds"]
            assert folds == alone["models"][label]["c_index"]["folds"]
        assert (tmp_path / "pool" / cohort / "families" / "predictions.csv").is_file()


@pytest.mark.data
def test_derived_facts_ablation_pairs_across_data_variants(data_root, tmp_path):
    """The facts Cox on stated T/N only (``stated_facts``) is a second data variant on the same
    folds; its paired comparison with the facts Cox reads both runs' predictions."""
    from kemm.cohort import prepare_cohort
    from kemm.engine.benchmark import (
        ENTRIES,
        FACTS_COX,
        FACTS_COX_STATED,
        paired_table,
        variant_config,
    )  # fmt: skip
    from kemm.engine.runner import run_cv

    chosen = [e for e in ENTRIES if e.label in (FACTS_COX, FACTS_COX_STATED)]
    for variant in ("families", "stated_facts"):
        entries = [e for e in chosen if e.variant == variant]
        config = variant_config(data_root, "kirc", variant, entries, tmp_path / "kirc",
                                epochs=1, seed=0)  # fmt: skip
        run_cv(config, tmp_path / "kirc" / variant, show_progress=False)
        clinical = prepare_cohort(config.data).clinical
        unknown_t = int(clinical["t=unknown"].sum())
        if variant == "families":
            derived_unknown_t = unknown_t
    # kidney T by size where a report says the tumour is limited to the kidney: fewer unknown
    assert derived_unknown_t < unknown_t
    rows = paired_table(tmp_path, ["kirc"], chosen)
    assert [(r["a"], r["b"]) for r in rows] == [(FACTS_COX, FACTS_COX_STATED)]
    assert rows[0]["folds"] == 5 and rows[0]["unpaired"] == 0
