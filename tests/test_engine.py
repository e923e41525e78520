"""The cross-validation engine on a small simulated cohort: outputs, determinism, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kemm.cohort.simulate import simulate_cohort
from kemm.engine.config import load_config, parse_config
from kemm.engine.rundir import FoldDirectory
from kemm.engine.runner import CrossValidationRunner, run_cv
from kemm.errors import ConfigError, InputDataError
from kemm.models import PatchBudget


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate_cohort(root, n_patients=80, patches=(40, 80), feature_dim=16, show_progress=False)
    return root


def _config(root: Path, models=("coxnet", "snn"), **train) -> dict:
    return {
        "name": "test",
        "data": {"root": str(root), "cohort": "sim", "folds": [0, 1, 2],
                 "wsi": {"features_dir": str(root / "features"), "encoder": "simulated"}},
        "models": [{"name": m} for m in models],
        "train": {"epochs": 3, "batch_size": 16, "lr": 1e-3, "bag_cap": 64, **train},
    }  # fmt: skip


def test_config_errors_name_the_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"data": {"cohort": "x", "bogus": 1}, "models": [{"name": "snn"}]})
    )
    with pytest.raises(ConfigError, match=r"bad.yaml, line 2: data.bogus"):
        load_config(path)
    with pytest.raises(ConfigError, match="duplicate model labels"):
        parse_config({"data": {"cohort": "x"}, "models": [{"name": "snn"}, {"name": "snn"}]})
    # a label names the folder of the model's folds
    with pytest.raises(ConfigError, match="label 'SNN a/b'.*no '/'"):
        parse_config({"data": {"cohort": "x"}, "models": [{"name": "snn", "label": "SNN a/b"}]})
    config = parse_config(
        {"data": {"cohort": "x"}, "models": [{"name": "snn"}]}, overrides={"train.epochs": 7}
    )
    assert config.train.epochs == 7


def test_run_writes_a_readable_run_directory(sim_root, tmp_path):
    out = tmp_path / "run"
    metrics = run_cv(
        parse_config(_config(sim_root, models=("coxnet", "snn", "abmil"))), out, show_progress=False
    )
    assert set(metrics["models"]) == {"coxnet", "snn", "abmil"}
    for entry in metrics["models"].values():
        for key in ("c_index", "uno_c", "ibs"):
            assert set(entry[key]) >= {"mean", "std", "folds"}
            assert len(entry[key]["folds"]) == 3
        assert 0.0 <= entry["c_index"]["mean"] <= 1.0
    assert metrics["protocol"]["selection"] == "last"
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        json.dumps(metrics, default=float)
    )
    predictions = pd.read_csv(out / "predictions.csv")
    assert {"case_id", "fold", "model", "risk", "time", "event", "surv_0", "surv_3"} <= set(
        predictions.columns
    )
    assert len(predictions) == 3 * 3 * 16  # 3 models x 3 folds x 16 test patients
    surv = predictions[[f"surv_{k}" for k in range(4)]].to_numpy()
    assert np.all(np.diff(surv, axis=1) <= 1e-6), "survival curves must be non-increasing"
    assert (out / "km_snn.png").stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert page.count("<img") == 6 and "data:image/png;base64," in page  # 3 KM + 3 calibration
    assert "Per-fold Harrell C" in page and "95 % CI" in page and "kemm run: test (sim)" in page
    fold = FoldDirectory(out / "folds" / "abmil" / "seed0" / "fold0")
    assert (fold.path / "weights.safetensors").exists()
    # the network reloads with its typed hyper-parameters and the run's patch budget (bag_cap)
    saved = json.loads((fold.path / "model.json").read_text())
    assert saved["params"] == {"dim": 256, "dropout": 0.25, "attn_hidden": 128}
    assert saved["patch_budget"] == {"max_train_patches": 64, "eval_chunk_size": 16384}
    network = fold.network()
    assert network.patch_budget == PatchBudget(max_train_patches=64)
    assert network.pool.gate.in_features == 256 and not network.training
    # a run saved before the budget was the run's kept it among the params: still readable
    legacy = {**saved, "params": {**saved["params"], "max_train_patches": 64}}
    del legacy["patch_budget"]
    (fold.path / "model.json").write_text(json.dumps(legacy))
    assert fold.network().patch_budget == PatchBudget(max_train_patches=64)
    (fold.path / "model.json").write_text(json.dumps(saved))
    assert load_config(out / "config.yaml").models[0].name == "coxnet"
    # A different config may not silently reuse the directory.
    with pytest.raises(ConfigError, match="different config"):
        run_cv(parse_config(_config(sim_root, models=("snn",))), out, show_progress=False)


def test_same_seed_gives_identical_metrics(sim_root, tmp_path):
    config = parse_config(_config(sim_root, models=("snn", "abmil")))
    first = run_cv(config, tmp_path / "a", show_progress=False)
    second = run_cv(config, tmp_path / "b", show_progress=False)
    for name in ("snn", "abmil"):
        assert (
            first["models"][name]["c_index"]["folds"] == second["models"][name]["c_index"]["folds"]
        )
        assert first["models"][name]["ibs"]["folds"] == second["models"][name]["ibs"]["folds"]
    other = run_cv(
        parse_config(_config(sim_root, models=("snn",), seed=5)),
        tmp_path / "c",
        show_progress=False,
    )
    assert other["models"]["snn"]["c_index"]["folds"] != first["models"]["snn"]["c_index"]["folds"]


def test_parallel_workers_give_the_same_metrics_as_one_process(sim_root, tmp_path):
    config = parse_config(_config(sim_root, models=("coxnet", "abmil")))
    serial = run_cv(config, tmp_path / "serial", show_progress=False)
    parallel = run_cv(config, tmp_path / "parallel", show_progress=False, workers=2)
    for name in ("coxnet", "abmil"):
        for key in ("c_index", "ibs"):
            assert serial["models"][name][key]["folds"] == parallel["models"][name][key]["folds"]
    with pytest.raises(ConfigError, match="workers"):
        run_cv(config, tmp_path / "bad", show_progress=False, workers=0)


@pytest.mark.slow
def test_ray_tasks_give_the_same_metrics_as_in_process(sim_root, tmp_path):
    ray = pytest.importorskip("ray")
    config = parse_config(_config(sim_root, models=("coxnet", "snn")))
    serial = run_cv(config, tmp_path / "serial", show_progress=False)
    try:
        distributed = run_cv(config, tmp_path / "ray", show_progress=False, ray_address="local")
    finally:
        ray.shutdown()
    for name in ("coxnet", "snn"):
        assert (
            serial["models"][name]["c_index"]["folds"]
            == (distributed["models"][name]["c_index"]["folds"])
        )
    assert (tmp_path / "ray" / "folds" / "snn" / "seed0" / "fold2" / "result.json").exists()


def test_inner_validation_selection_is_recorded(sim_root, tmp_path):
    metrics = run_cv(
        parse_config(_config(sim_root, models=("snn",), selection="inner_val")),
        tmp_path / "r",
        show_progress=False,
    )
    assert metrics["protocol"]["selection"] == "inner_val"
    result = json.loads(
        (tmp_path / "r" / "folds" / "snn" / "seed0" / "fold0" / "result.json").read_text()
    )
    assert result["selection"] == "inner_val"
    assert 1 <= result["selected_epoch"] <= 3
    assert all("inner_val_c" in h for h in result["history"])


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_without_redoing_finished_folds(sim_root, tmp_path):
    config = parse_config(_config(sim_root, models=("snn",)))
    out = tmp_path / "run"
    finished = []

    def crash_after_first(task, result):
        finished.append(task.split.name)
        raise _Interrupt

    with pytest.raises(_Interrupt):
        CrossValidationRunner(
            config, out, show_progress=False, on_fold_done=crash_after_first
        ).run()
    first = out / "folds" / "snn" / "seed0" / "fold0" / "result.json"
    stamp = first.stat().st_mtime_ns
    redone = []
    from kemm.cohort.text import load_text_modality

    resumed = CrossValidationRunner(config, out, show_progress=False, text_loader=load_text_modality,
                                    on_fold_done=lambda task, result: redone.append(task.split.name)).run()  # fmt: skip
    assert finished == ["fold0"] and redone == ["fold1", "fold2"]
    assert first.stat().st_mtime_ns == stamp
    fresh = run_cv(config, tmp_path / "fresh", show_progress=False)
    assert (
        resumed["models"]["snn"]["c_index"]["folds"] == fresh["models"]["snn"]["c_index"]["folds"]
    )


def test_predict_new_patients_and_cli(sim_root, tmp_path):
    from typer.testing import CliRunner

    from kemm.cli import app

    out = tmp_path / "run"
    run_cv(parse_config(_config(sim_root, models=("snn", "coxnet"))), out, show_progress=False)
    table = sim_root / "tcga" / "sim" / "tcga_sim_all_clean.csv"
    runner = CliRunner()
    result = runner.invoke(
        app, ["predict", str(out), "--cohort", str(table), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert len(predictions) == 80 and predictions["risk"].notna().all()
    assert predictions["n_fold_models"].iloc[0] == 3
    result = runner.invoke(app, ["predict", str(out), "--cohort", str(table), "--model", "coxnet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(out)])
    assert result.exit_code == 0 and "| snn |" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no metrics.json" in result.output


@pytest.mark.slow
def test_kemm_run_and_explain_a_patient(sim_root, tmp_path):
    from typer.testing import CliRunner

    from kemm.cli import app

    raw = _config(sim_root, models=("kemm",), epochs=1)
    raw["data"].update(
        {
            "folds": [0],
            "reports": {},
            "pbk": True,
            "cancer": "KIRC",
            "cache_dir": str(tmp_path / "cache"),
            "clinical": ["age", "stage", "grade"],
        }
    )
    raw["train"]["loss"] = "cox"
    out = tmp_path / "run"
    metrics = run_cv(parse_config(raw), out, show_progress=False)
    data = json.loads((out / "data.json").read_text())
    assert data["text"]["patients_with_report_statements"] > 50
    assert data["text"]["pbk_statements"] > 3
    assert np.isfinite(metrics["models"]["kemm"]["c_index"]["mean"])
    case = pd.read_csv(out / "predictions.csv")["case_id"].iloc[0]
    result = CliRunner().invoke(
        app, ["explain", str(out), "--case", case, "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 0, result.output
    explanation = json.loads((tmp_path / "x" / f"{case}_explanation.json").read_text())
    texts = [s["text"] for s in explanation["statements"]]
    assert any(t.startswith("Pathologic stage") for t in texts), texts
    # the report's facts are knowledge tokens too, named with the patient's values
    facts = {
        s["label"]: s["text"] for s in explanation["statements"] if s["label"].startswith("fact:")
    }
    assert set(facts) == {"fact:stage", "fact:grade"}, facts
    assert re.fullmatch(r"report fact grade: (grade [1-4]|not stated)", facts["fact:grade"])
    assert re.fullmatch(r"report fact stage: (stage (I|II|III|IV)( \(or lower\))?|not stated)",
                        facts["fact:stage"]), facts  # fmt: skip
    learned = [q["weight"] for q in explanation["learned_queries"]]
    assert all(q["label"].startswith("learned") for q in explanation["learned_queries"])
    assert not any(s["label"].startswith("learned") for s in explanation["statements"])
    assert abs(sum(explanation["statement_weight"]) + sum(learned) - 1.0) < 1e-4
    ranked = explanation["contributions"]
    assert {c["label"] for c in ranked} >= {"fact:stage", "fact:grade", "report:0"}
    sizes = [abs(c["delta_risk"]) for c in ranked]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 0
    summary = (tmp_path / "x" / f"{case}_summary.txt").read_text()
    assert summary.startswith(case) and "months" in summary and "contribution" in result.output
    assert len(explanation["coords"]) == len(explanation["scores"]) > 0
    assert len(explanation["genomic_groups"]) == 6


@pytest.mark.slow
def test_a_run_trains_on_the_outputs_of_knowledge_refine_and_embed(sim_root, tmp_path):
    """One text path: `kemm knowledge refine` -> `kemm knowledge embed` -> a config naming both
    files trains on exactly those statements and embeddings (the embedding cache is shared)."""
    from typer.testing import CliRunner

    from kemm.cli import app

    runner = CliRunner()
    cache = tmp_path / "cache"
    refined, embedded, pbk = tmp_path / "r.jsonl", tmp_path / "e.h5", tmp_path / "pbk.h5"
    reports = sim_root / "tcga" / "sim" / "reports.csv"
    result = runner.invoke(app, ["knowledge", "refine", "--reports", str(reports), "--backend",
                                 "extractive", "--out", str(refined)])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["knowledge", "embed", "--refined", str(refined), "--out",
                                 str(embedded), "--cancer", "KIRC", "--pbk-out", str(pbk),
                                 "--cache-dir", str(cache)])  # fmt: skip
    assert result.exit_code == 0, result.output
    raw = _config(sim_root, models=("kemm",), epochs=1)
    raw["data"].update({"folds": [0], "reports": {"embeddings": str(embedded)}, "pbk": True,
                        "pbk_embeddings": str(pbk), "cache_dir": str(cache)})  # fmt: skip
    run_cv(parse_config(raw), tmp_path / "run", show_progress=False)
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    from kemm.knowledge.reports import read_refined

    with_statements = sum(1 for s in read_refined(refined).values() if s)
    assert data["text"]["patients_with_report_statements"] == with_statements
    raw["data"]["text_encoder"] = "pubmedbert"
    with pytest.raises(InputDataError, match="embedded with 'all-MiniLM-L6-v2'"):
        run_cv(parse_config(raw), tmp_path / "other", show_progress=False)


def test_kemm_prepare_writes_a_folder_a_run_trains_on(sim_root, tmp_path):
    """`kemm prepare` reads and checks the cohort once; a run with data.prepared gets the same
    cohort (values and dtypes) without rereading reports or bags, and the same metrics (to
    floating-point summation order); a folder made with another data config is refused."""
    from typer.testing import CliRunner

    from kemm.cli import app
    from kemm.cohort import prepare_cohort
    from kemm.cohort.folder import read_prepared
    from kemm.cohort.text import load_text_modality

    raw = _config(sim_root, models=("coxnet", "snn"))
    raw["data"].update({"clinical": ["age", "sex", "t", "stage"], "reports": {}, "pbk": True,
                        "cancer": "KIRC", "cache_dir": str(tmp_path / "cache")})  # fmt: skip
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    prepared = tmp_path / "prepared"
    result = CliRunner().invoke(app, ["prepare", "--config", str(path), "--out", str(prepared)])
    assert result.exit_code == 0, result.output
    assert "prepared 80 patients" in result.output
    config = parse_config(raw)
    fresh = prepare_cohort(config.data, text_loader=load_text_modality)
    back = read_prepared(prepared, config.data)
    pd.testing.assert_frame_equal(back.cohort.genomics, fresh.cohort.genomics)
    pd.testing.assert_frame_equal(back.clinical, fresh.clinical)
    pd.testing.assert_frame_equal(back.cohort.patients, fresh.cohort.patients)
    assert [s.train for s in back.splits] == [s.train for s in fresh.splits]
    assert (
        back.bag_paths == fresh.bag_paths
        and back.available_modalities == fresh.available_modalities
    )
    for case, embeddings in fresh.text.report_embeddings.items():
        np.testing.assert_array_equal(back.text.report_embeddings[case], embeddings)
    np.testing.assert_array_equal(back.text.pbk_risk, fresh.text.pbk_risk)

    direct = run_cv(config, tmp_path / "direct", show_progress=False)
    raw["data"]["prepared"] = str(prepared)
    via = run_cv(parse_config(raw), tmp_path / "via", show_progress=False)
    for model in ("coxnet", "snn"):
        np.testing.assert_allclose(via["models"][model]["c_index"]["folds"],
                                   direct["models"][model]["c_index"]["folds"], atol=1e-6)  # fmt: skip
    raw["data"]["clinical"] = ["age"]
    with pytest.raises(
        ConfigError, match=r"prepared with another data config \(fields \['clinical'\]"
    ):
        run_cv(parse_config(raw), tmp_path / "other", show_progress=False)

    # a folder prepared by other code (older report rules) is refused, and the benchmark
    # prepares it again
    from kemm.cohort.folder import prepared_is_current
    from kemm.engine.benchmark import _from_prepared
    from kemm.errors import InputDataError

    manifest = json.loads((prepared / "prepared.json").read_text())
    manifest["preparer_fingerprint"] = "0" * 64
    (prepared / "prepared.json").write_text(json.dumps(manifest))
    assert not prepared_is_current(prepared)
    with pytest.raises(InputDataError, match=r"prepared by other code.*run kemm prepare again"):
        read_prepared(prepared, config.data)
    _from_prepared(config, prepared)
    assert prepared_is_current(prepared)
    np.testing.assert_array_equal(read_prepared(prepared, config.data).clinical, back.clinical)


def test_cox_loss_trains_one_output_with_breslow_curves(sim_root, tmp_path):
    """train.loss: cox — one output per patient (the log hazard ratio), bag models read the
    whole batch per forward (risk sets), survival curves from a Breslow baseline that
    `kemm predict` reloads; report.md carries the paired comparisons."""
    from typer.testing import CliRunner

    from kemm.cli import app

    out = tmp_path / "run"
    config = _config(sim_root, models=("coxnet", "snn", "abmil"), loss="cox", genomic_clip=3.0)
    metrics = run_cv(parse_config(config), out, show_progress=False)
    fold = FoldDirectory(out / "folds" / "snn" / "seed0" / "fold0")
    assert json.loads((fold.path / "model.json").read_text())["n_bins"] == 1
    assert fold.breslow() is not None
    assert fold.network()(fold_input(sim_root, fold)).logits.shape[1] == 1
    predictions = pd.read_csv(out / "predictions.csv")
    surv = predictions[[f"surv_{k}" for k in range(4)]].to_numpy()
    assert np.all(np.diff(surv, axis=1) <= 1e-9) and np.all((surv >= 0) & (surv <= 1))
    for name in ("snn", "abmil"):
        assert np.isfinite(metrics["models"][name]["ibs"]["mean"])
        assert metrics["models"][name]["c_index"]["mean"] > 0.5
    paired = metrics["paired"]
    assert len(paired) == 2 and {p["a"] for p in paired} == {paired[0]["a"]}
    assert all(len(p["fold_deltas"]) == 3 and p["ci95"][0] <= p["delta_c"] for p in paired)
    assert "## Paired comparisons" in (out / "report.md").read_text()
    # kemm predict reads the Breslow baseline back
    table = sim_root / "tcga" / "sim" / "tcga_sim_all_clean.csv"
    result = CliRunner().invoke(app, ["predict", str(out), "--cohort", str(table),
                                      "--model", "snn", "--out", str(tmp_path / "p.csv")])  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "p.csv")
    curves = scored[[c for c in scored.columns if c.startswith("surv_t")]].to_numpy()
    assert np.all(np.diff(curves, axis=1) <= 1e-9) and curves.min() < curves.max()
    # kemm compare: the same pair as report.md, and a second run on the same splits
    result = CliRunner().invoke(app, ["compare", str(out), "snn", "coxnet", "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    assert "| snn vs coxnet |" in result.output and "per-fold ΔC" in result.output
    result = CliRunner().invoke(app, ["compare", str(out), "snn", "absent"])
    assert result.exit_code == 2 and "no predictions of model 'absent'" in result.output
    result = CliRunner().invoke(
        app, ["compare", str(out), "snn", "coxnet", "--run-b", str(out), "--bootstrap", "0"]
    )
    assert result.exit_code == 0 and "| snn vs coxnet (" in result.output, result.output


def fold_input(root: Path, fold: FoldDirectory):
    """One patient of the simulated cohort as the fold's network reads it."""
    from kemm.cohort import prepare_cohort
    from kemm.engine.data import FoldInputs

    config = parse_config(_config(root))
    data = prepare_cohort(config.data)
    pre = fold.preprocessing()[0]
    return FoldInputs(data, pre, data.cohort.case_ids[:2], {"genomics"}).batch([0, 1])


def test_report_names_the_run_and_carries_intervals_and_warnings(tmp_path):
    from kemm.engine.results import write_report
    from kemm.engine.rundir import RunDirectory

    entry = {
        k: {"mean": 0.7, "std": 0.02, "folds": [0.7]}
        for k in ("c_index", "uno_c", "ibs", "mean_auc")
    }
    entry["c_index"]["ci95"] = [0.66, 0.74]
    metrics = {
        "protocol": {"name": "kirc-facts", "cohort": "kirc", "selection_note": "last epoch",
                     "binning": "quartiles", "folds": ["fold0"], "seeds": [0]},
        "models": {"Clinical Cox (facts)": {**entry, "constant_risk_folds": ["seed0/fold0"]}},
    }  # fmt: skip
    path = tmp_path / "report.md"
    write_report(path, metrics, ["11 report(s) yielded no statement (e.g. ['A'])"])
    text = path.read_text()
    assert text.startswith("# kemm run: kirc-facts (kirc)")
    assert "95 % CI (patients)" in text and "0.660–0.740" in text
    assert "## Warnings" in text and "11 report(s) yielded no statement" in text
    assert "Clinical Cox (facts) predicted a constant risk" in text
    plot = RunDirectory(tmp_path).km_plot("Clinical Cox (facts) −PBK prior [site-held-out]")
    assert plot.name == "km_Clinical_Cox_facts_-PBK_prior_site-held-out.png"


def test_the_html_report_renders_in_a_headless_browser(sim_root, tmp_path):
    """report.html opens in a real browser (Debian's Chromium, headless) with every figure
    decoded: the page marks itself once the images have loaded."""
    import os
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        message = "no headless Chromium (apt-get install chromium)"
        if os.environ.get("KEMM_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; KEMM_REQUIRE_BROWSER=1 makes it mandatory")
        pytest.skip(message)
    out = tmp_path / "run"
    raw = _config(sim_root, models=("coxnet", "snn"))
    raw["data"]["folds"] = [0, 1]
    run_cv(parse_config(raw), out, show_progress=False)
    page = out / "report.html"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert 'data-figures-rendered="4/4"' in dom, dom[:500]
    assert "CoxNet" in dom or "coxnet" in dom
