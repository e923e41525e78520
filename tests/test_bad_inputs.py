"""Bad input, as a user meets it on the command line: every case ends in a one-line error (exit 2,
no traceback) naming the file, the patient and the problem, or in a result; an interrupted run
says how to resume (exit 130) and loses no finished fold.

Slides, feature files read by ``kemm extract``/``heatmap``, report injection and LLM endpoints are
in ``test_bad_inputs_slides_llm.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from kemm.cli import app
from kemm.cohort.simulate import simulate_cohort


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate_cohort(root, n_patients=60, patches=(10, 20), feature_dim=8, show_progress=False)
    return root


def _table(root: Path) -> Path:
    return root / "tcga" / "sim" / "tcga_sim_all_clean.csv"


def _config(root: Path, tmp_path: Path, models=("coxnet",), **data) -> Path:
    raw = {
        "name": "bad-inputs",
        "data": {"root": str(root), "cohort": "sim", "folds": [0, 1], **data},
        "models": [m if isinstance(m, dict) else {"name": m} for m in models],
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3},
    }
    path = tmp_path / f"config_{len(list(tmp_path.glob('config_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def kemm(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_error(result, code: int, *phrases: str) -> str:
    """Exit ``code``, no traceback, and exactly one ``error:`` line holding every phrase."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def _train(config: Path, out: Path, *extra) -> object:
    return kemm("train", "--config", config, "--out", out, "--quiet", *extra)


def _edited_table(root: Path, tmp_path: Path, edit) -> str:
    frame = pd.read_csv(_table(root))
    frame = edit(frame)
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return str(path)


# --- cohort tables (DESIGN's list) -------------------------------------------------------------


def _set(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


def _second_slide(frame: pd.DataFrame, row: int, **changes) -> pd.DataFrame:
    """Another slide row of the patient on ``row``, with ``changes``."""
    copy = frame.iloc[[row]].copy()
    copy["slide_id"] = copy["slide_id"].str.replace("DX1", "DX2")
    for column, value in changes.items():
        copy[column] = value
    return copy


@pytest.mark.parametrize(
    ("edit", "phrases"),
    [
        (lambda f: pd.concat([f, _second_slide(f, 3, age=99)]),
         ["conflicting rows for one patient", "['age']"]),
        (lambda f: _set(f, 3, "survival_months", -2.0), ["negative survival_months -2.0"]),
        (lambda f: _set(f, 3, "survival_months", None), ["missing or non-numeric survival_months"]),
        (lambda f: _set(f, 3, "censorship", 2), ["censorship must be 0 (death) or 1 (censored)"]),
        (lambda f: _set(f, 3, "TUM001_rnaseq", None), ["'TUM001_rnaseq' is NaN, infinite"]),
        (lambda f: _set(f, 3, "TUM001_cnv", np.inf), ["'TUM001_cnv' is NaN, infinite"]),
    ],
    ids=["conflicting-duplicates", "negative-time", "missing-time", "censorship-2", "nan-genomics",
         "inf-genomics"],
)  # fmt: skip
def test_bad_cohort_table_is_one_line_naming_file_and_patient(sim_root, tmp_path, edit, phrases):
    table = _edited_table(sim_root, tmp_path, edit)
    patient = pd.read_csv(_table(sim_root))["case_id"].iloc[3]
    out = tmp_path / "run"
    line = assert_error(_train(_config(sim_root, tmp_path, table=table), out), 2, *phrases)
    assert table in line and f"patient {patient}" in line
    assert not out.exists()  # nothing was started, nothing to clean up


def _splits(root: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "splits"
    shutil.copytree(root / "tcga" / "sim" / "splits", folder)
    path = folder / "splits_1.csv"
    frame = pd.read_csv(path, index_col=0)
    edit(frame).to_csv(path)
    return folder


def test_split_ids_missing_from_the_table(sim_root, tmp_path):
    def add_unknown(frame):
        frame.loc[len(frame), "train"] = "TCGA-XX-9999"
        return frame

    folder = _splits(sim_root, tmp_path, add_unknown)
    result = _train(_config(sim_root, tmp_path, splits=str(folder)), tmp_path / "run")
    assert_error(result, 2, "splits_1.csv", "patient TCGA-XX-9999", "absent from the cohort table")


def test_split_train_val_overlap(sim_root, tmp_path):
    def overlap(frame):
        frame.loc[len(frame), "train"] = frame["val"].dropna().iloc[0]
        return frame

    folder = _splits(sim_root, tmp_path, overlap)
    result = _train(_config(sim_root, tmp_path, splits=str(folder)), tmp_path / "run")
    assert_error(result, 2, "splits_1.csv", "in both train and val")


def test_empty_gene_group(sim_root, tmp_path):
    signatures = tmp_path / "signatures.csv"
    signatures.write_text("tumour,nothing_here\nTUM000,NOSUCHGENE1\nTUM001,NOSUCHGENE2\n")
    config = _config(sim_root, tmp_path, genomics={"signatures": str(signatures)})
    result = _train(config, tmp_path / "run")
    assert_error(result, 2, str(signatures), "genomic group 'nothing_here' is empty")


def test_missing_data_root_names_the_folder_and_the_option(sim_root, tmp_path):
    config = _config(sim_root, tmp_path)
    result = _train(config, tmp_path / "run", "--data-root", tmp_path / "nowhere")
    assert_error(result, 2, str(tmp_path / "nowhere"), "data root not found", "--data-root")


# --- reports -----------------------------------------------------------------------------------


def test_empty_reports_file_in_train_and_in_refine(sim_root, tmp_path):
    empty = tmp_path / "reports.csv"
    empty.write_text("")
    config = _config(sim_root, tmp_path, reports={"csv": str(empty)}, clinical=["age", "stage"])
    assert_error(_train(config, tmp_path / "run"), 2, str(empty), "reports file is empty")
    result = kemm("knowledge", "refine", "--reports", empty, "--backend", "extractive", "--out",
                  tmp_path / "refined.jsonl")  # fmt: skip
    assert_error(result, 2, str(empty), "reports file is empty")
    empty.write_text("case_id,raw_text\n")
    assert_error(_train(config, tmp_path / "run"), 2, str(empty), "no reports")


def test_non_utf8_reports_name_the_line(sim_root, tmp_path):
    reports = pd.read_csv(sim_root / "tcga" / "sim" / "reports.csv")
    path = tmp_path / "reports_latin1.csv"
    text = reports.to_csv(index=False).replace("Renal cell", "Rénal cell", 1)
    path.write_bytes(text.encode("latin-1"))
    config = _config(sim_root, tmp_path, reports={"csv": str(path)}, clinical=["stage"])
    line = assert_error(_train(config, tmp_path / "run"), 2, str(path), "not UTF-8 text")
    expected_line = text[: text.index("Rénal")].count("\n") + 1
    assert f"on line {expected_line}" in line


def test_facts_file_with_an_invalid_value(sim_root, tmp_path):
    facts = tmp_path / "facts.csv"
    out = tmp_path / "f.csv"
    result = kemm("knowledge", "facts", "--reports", sim_root / "tcga" / "sim" / "reports.csv",
                  "--cancer", "kirc", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert (frame["t"] != "").sum() > 50  # the command's own output reads back
    config = _config(sim_root, tmp_path, facts_csv=str(out), clinical=["t", "stage"])
    assert _train(config, tmp_path / "ok").exit_code == 0
    frame.loc[4, "t"] = "T9"
    frame.to_csv(facts, index=False)
    config = _config(sim_root, tmp_path, facts_csv=str(facts), clinical=["t", "stage"])
    assert_error(_train(config, tmp_path / "run"), 2, str(facts), f"patient {frame.case_id[4]}",
                 "column 't': 'T9' is not a valid value")  # fmt: skip


# --- feature bags ------------------------------------------------------------------------------


def _features_copy(root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "features"
    shutil.copytree(root / "features", folder)
    return folder


def test_feature_bag_of_another_dimension_is_refused_before_any_fold(sim_root, tmp_path):
    folder = _features_copy(sim_root, tmp_path)
    victim = sorted(folder.glob("*.h5"))[5]
    with h5py.File(victim, "r+") as handle:
        attrs = dict(handle["features"].attrs)
        del handle["features"]
        handle.create_dataset("features", data=np.zeros((12, 5), np.float32))
        handle["features"].attrs.update(attrs)
    patient = "-".join(victim.stem.split("-")[:3])
    config = _config(sim_root, tmp_path, models=("abmil",),
                     wsi={"features_dir": str(folder), "encoder": "simulated"})  # fmt: skip
    out = tmp_path / "run"
    line = assert_error(_train(config, out), 2, str(victim), f"patient {patient}")
    assert "dimension" in line or "dim" in line
    assert not (out / "folds").exists()


class _Payload:  # a pickled object, not a tensor
    pass


def test_pickled_feature_file_is_refused_before_any_fold(sim_root, tmp_path):
    folder = _features_copy(sim_root, tmp_path)
    victim = sorted(folder.glob("*.h5"))[7]
    victim.unlink()
    planted = victim.with_suffix(".pt")

    torch.save({"features": torch.zeros(4, 8), "extra": _Payload()}, planted)
    config = _config(sim_root, tmp_path, models=("abmil",),
                     wsi={"features_dir": str(folder), "encoder": "simulated"})  # fmt: skip
    out = tmp_path / "run"
    assert_error(_train(config, out), 2, str(planted), "pickled Python objects")
    assert not (out / "folds").exists()


# --- configs and run directories ---------------------------------------------------------------


def test_model_name_typo_is_caught_before_anything_runs(sim_root, tmp_path):
    out = tmp_path / "run"
    config = _config(sim_root, tmp_path, models=("coxnet", "snnn"))
    started = time.time()
    assert_error(_train(config, out), 2, "unknown model 'snnn'", "did you mean snn")
    assert time.time() - started < 20
    assert not out.exists()
    # the corrected config then runs in the same --out
    fixed = _config(sim_root, tmp_path, models=("coxnet", "snn"))
    assert _train(fixed, out).exit_code == 0


def test_unknown_hyper_parameter_and_a_base_that_is_not_tabular(sim_root, tmp_path):
    config = _config(sim_root, tmp_path, models=({"name": "snn", "params": {"dropuot": 0.1}},))
    assert_error(_train(config, tmp_path / "a"), 2, "unknown hyper-parameter(s) ['dropuot']")
    models = ({"name": "snn"}, {"name": "stack", "params": {"base": ["snn"]}})
    assert_error(_train(_config(sim_root, tmp_path, models=models), tmp_path / "b"), 2,
                 "base model(s) ['snn'] are not tabular")  # fmt: skip


def test_changed_config_says_how_to_go_on_and_overwrite_replaces_the_run(sim_root, tmp_path):
    out = tmp_path / "run"
    assert _train(_config(sim_root, tmp_path), out).exit_code == 0
    finished = sorted(out.glob("folds/*/seed0/*/result.json"))
    changed = _config(sim_root, tmp_path, models=("clinical_cox",), clinical=["age", "sex"])
    assert_error(_train(changed, out), 2, "different config", "new --out", "--overwrite")
    assert all(p.exists() for p in finished)  # refusing loses nothing
    result = _train(changed, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "folds" / "coxnet").exists()
    assert (out / "folds" / "clinical_cox" / "seed0" / "fold1" / "result.json").exists()


def test_verbose_shows_the_traceback(sim_root, tmp_path):
    config = _config(sim_root, tmp_path, models=("snnn",))
    quiet = kemm("train", "--config", config, "--out", tmp_path / "run")
    assert quiet.exit_code == 2 and "Traceback" not in quiet.output
    verbose = kemm("-v", "train", "--config", config, "--out", tmp_path / "run")
    assert verbose.exit_code == 2 and "Traceback" in verbose.output
    assert "unknown model 'snnn'" in verbose.output


# --- interrupted runs --------------------------------------------------------------------------


def _command(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kemm", "train", "--config", str(config), "--out", str(out),
            "--quiet", *extra]  # fmt: skip


def _sigint_delivered() -> None:
    # a job started in the background by a non-interactive shell (`cmd &`, as CI may launch the
    # suite) inherits SIGINT ignored; the user's Ctrl-C that this test plays reaches a
    # foreground command, so the child gets the default disposition back
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_first_fold(command: list[str], first: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_sigint_delivered,
    )  # fmt: skip
    deadline = time.time() + 180
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert first.exists(), process.communicate()
    return process


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_interrupt_says_how_to_resume_and_keeps_finished_folds(sim_root, tmp_path, how, workers):
    config = _config(sim_root, tmp_path, models=("snn", "coxnet"), folds=[0, 1, 2, 3])
    out = tmp_path / "run"
    command = _command(config, out, "--workers", workers)
    first = out / "folds" / "snn" / "seed0" / "fold0" / "result.json"
    process = _start_and_wait_for_first_fold(command, first)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted; rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    stamp = first.stat().st_mtime_ns
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert first.stat().st_mtime_ns == stamp  # finished work kept, not redone
    assert len(list(out.glob("folds/*/seed0/*/result.json"))) == 8


@pytest.mark.slow
def test_kill_9_then_resume(sim_root, tmp_path):
    config = _config(sim_root, tmp_path, models=("snn", "abmil"), folds=[0, 1, 2],
                     wsi={"features_dir": str(sim_root / "features"), "encoder": "simulated"})  # fmt: skip
    out = tmp_path / "run"
    command = _command(config, out)
    first = out / "folds" / "snn" / "seed0" / "fold0" / "result.json"
    process = _start_and_wait_for_first_fold(command, first)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    stamp = first.stat().st_mtime_ns
    assert not (out / "metrics.json").exists()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert first.stat().st_mtime_ns == stamp
    assert len(list(out.glob("folds/*/seed0/*/result.json"))) == 6
    assert (out / "metrics.json").exists()


# --- kemm predict: new patients ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(sim_root, tmp_path_factory) -> Path:
    """Every kind of model `kemm predict` scores: tabular, network, stack and residual."""
    folder = tmp_path_factory.mktemp("trained")
    models = (
        {"name": "clinical_cox", "label": "Clinical Cox", "params": {"direction_prior": True}},
        {"name": "coxnet", "label": "CoxNet", "modalities": ["genomics"]},
        {"name": "snn", "label": "SNN"},
        {"name": "stack", "label": "Stack", "params": {"base": ["Clinical Cox", "CoxNet"]}},
        {"name": "snn", "label": "Residual SNN", "residual_over": ["Clinical Cox", "CoxNet"]},
    )
    config = _config(sim_root, folder, models=models,
                     clinical=["age", "sex", "t", "n", "stage", "grade"])  # fmt: skip
    out = folder / "run"
    result = _train(config, out)
    assert result.exit_code == 0, result.output
    return out


def _new_patients(root: Path, tmp_path: Path, drop=()) -> Path:
    frame = pd.read_csv(_table(root))
    frame = frame.drop(columns=["survival_months", "censorship", *drop])
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    return path


def test_predict_new_patients_without_outcomes(sim_root, trained, tmp_path):
    new = _new_patients(sim_root, tmp_path)
    for label in ("Clinical Cox", "SNN", "Stack", "Residual SNN"):
        out = tmp_path / f"{label}.csv"
        result = kemm("predict", trained, "--cohort", new, "--model", label, "--out", out)
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(out)
        assert len(frame) == 60 and frame["risk"].notna().all()
        assert "time" not in frame.columns and (frame["n_fold_models"] == 2).all()
        surv = frame.filter(like="surv_t").to_numpy()
        assert surv.shape[1] >= 2 and np.all(np.diff(surv, axis=1) <= 1e-9)
        assert "60 patients scored" in result.output


def test_predict_reproduces_each_fold_models_out_of_fold_risks(trained, sim_root, tmp_path):
    """With one fold model left, predicting the patients that fold held out gives exactly the
    risks the run recorded for them: tabular, network, stack and residual models alike."""
    partial = tmp_path / "run"
    shutil.copytree(trained, partial)
    for result in partial.glob("folds/*/seed0/fold1/result.json"):
        result.unlink()
    recorded = pd.read_csv(trained / "predictions.csv")
    for label in ("Clinical Cox", "CoxNet", "SNN", "Stack", "Residual SNN"):
        held_out = recorded[(recorded["model"] == label) & (recorded["fold"] == "fold0")]
        refused = kemm("predict", partial, "--cohort", _table(sim_root), "--model", label)
        assert_error(refused, 2, "unfinished", "1 of 2 fold models", "--allow-partial")
        out = tmp_path / "p.csv"
        result = kemm("predict", partial, "--cohort", _table(sim_root), "--model", label,
                      "--allow-partial", "--out", out)  # fmt: skip
        assert result.exit_code == 0, result.output
        predicted = pd.read_csv(out).set_index("case_id").loc[held_out["case_id"], "risk"]
        np.testing.assert_allclose(predicted.to_numpy(), held_out["risk"].to_numpy(), atol=1e-5)
        assert "Harrell's C on the 60 patients with outcomes" in result.output


def test_predict_without_cnv_columns_names_the_modality_and_counts(sim_root, trained, tmp_path):
    cnv = [c for c in pd.read_csv(_table(sim_root), nrows=0).columns if c.endswith("_cnv")]
    new = _new_patients(sim_root, tmp_path, drop=cnv)
    result = kemm("predict", trained, "--cohort", new, "--model", "CoxNet")
    line = assert_error(result, 2, str(new), "genomics:", "cnv", "--allow-missing")
    assert "0 of" in line and "rnaseq" in line  # what is missing, per group
    out = tmp_path / "p.csv"
    result = kemm("predict", trained, "--cohort", new, "--model", "CoxNet", "--allow-missing",
                  "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    imputed = pd.read_csv(out)["imputed"]
    assert imputed.str.match(r"cnv \d+/\d+").all(), imputed.head()


def test_predict_with_three_rnaseq_columns_missing(sim_root, trained, tmp_path):
    state = json.loads(next(trained.glob("folds/CoxNet/seed0/fold0/preprocess.json")).read_text())
    used = [f for g in state["groups"] for f in g["features"] if f.endswith("_rnaseq")]
    new = _new_patients(sim_root, tmp_path, drop=used[:3])
    result = kemm("predict", trained, "--cohort", new, "--model", "CoxNet")
    assert_error(result, 2, "lacks 3 of them", "3 of", "rnaseq")


def test_predict_without_any_genomic_column_blames_the_file_not_the_signatures(
    sim_root, trained, tmp_path
):
    columns = pd.read_csv(_table(sim_root), nrows=0).columns
    genomic = [c for c in columns if c.rsplit("_", 1)[-1] in ("rnaseq", "cnv", "mut")]
    new = _new_patients(sim_root, tmp_path, drop=genomic)
    line = assert_error(kemm("predict", trained, "--cohort", new, "--model", "SNN"), 2,
                        str(new), "genomics:")  # fmt: skip
    assert "signature" not in line


def test_predict_with_an_empty_reports_file(sim_root, trained, tmp_path):
    empty = tmp_path / "reports.csv"
    empty.write_text("")
    new = _new_patients(sim_root, tmp_path)
    result = kemm("predict", trained, "--cohort", new, "--reports", empty)
    assert_error(result, 2, str(empty), "reports file is empty")


def test_predict_on_a_folder_that_is_not_a_run(tmp_path):
    result = kemm("predict", tmp_path, "--cohort", tmp_path / "x.csv")
    assert_error(result, 2, "not a kemm run directory")


# --- inputs that once gave wrong numbers with exit 0 -------------------------------------------


@pytest.mark.parametrize(
    ("edit", "phrases"),
    [
        (lambda f: f.assign(os_days=f["survival_months"] * 30), ["['os_days'] look like outcomes"]),
        (lambda f: f.assign(vital_status=1 - f["censorship"]),
         ["['vital_status'] look like outcomes", "data.ignore_columns"]),
        (lambda f: f.assign(bmi=25.0), ["1 numeric column(s)", "['bmi']", "unsuffixed_as"]),
    ],
    ids=["os-days", "vital-status", "unknown-numeric"],
)  # fmt: skip
def test_columns_that_are_not_features_never_enter_a_model(sim_root, tmp_path, edit, phrases):
    """Unknown numeric columns once became '<col>_rnaseq' features: with an outcome column and
    grouping 'none', CoxNet scored C = 1.000."""
    table = _edited_table(sim_root, tmp_path, edit)
    config = _config(sim_root, tmp_path, table=table, genomics={"grouping": "none"})
    assert_error(_train(config, tmp_path / "run"), 2, table, *phrases)


def test_a_repeated_header_is_refused(sim_root, tmp_path):
    lines = _table(sim_root).read_text().splitlines()
    lines = [lines[0] + ",survival_months"] + [line + ",1.0" for line in lines[1:]]
    table = tmp_path / "table.csv"
    table.write_text("\n".join(lines) + "\n")
    config = _config(sim_root, tmp_path, table=str(table), genomics={"grouping": "none"})
    assert_error(_train(config, tmp_path / "run"), 2, str(table), "'survival_months' twice")


def test_an_ignored_outcome_column_is_dropped_and_the_run_is_honest(sim_root, tmp_path):
    table = _edited_table(sim_root, tmp_path, lambda f: f.assign(os_days=f["survival_months"]))
    config = _config(sim_root, tmp_path, table=table, genomics={"grouping": "none"},
                     ignore_columns=["os_days"])  # fmt: skip
    result = _train(config, tmp_path / "run")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (coxnet,) = metrics["models"].values()
    assert coxnet["c_index"]["mean"] < 0.95  # not the leaked outcome's C = 1.000


def test_resume_after_the_table_changed_is_refused(sim_root, tmp_path):
    table = _edited_table(sim_root, tmp_path, lambda f: f)
    config = _config(sim_root, tmp_path, table=table)
    out = tmp_path / "run"
    assert _train(config, out).exit_code == 0
    frame = pd.read_csv(table)
    frame.loc[0, "survival_months"] += 5.0
    frame.to_csv(table, index=False)
    assert_error(_train(config, out), 2, "inputs changed", "table.csv", "--overwrite")
    assert _train(config, out, "--overwrite").exit_code == 0
    assert json.loads((out / "inputs.json").read_text())


def test_a_second_run_into_a_held_folder_is_refused(sim_root, tmp_path):
    from kemm.engine.rundir import RunDirectory

    out = tmp_path / "run"
    holder = RunDirectory(out)
    holder.lock()  # another run, writing here
    try:
        assert_error(_train(_config(sim_root, tmp_path), out), 2, "another kemm run")
        assert not (out / "config.yaml").exists()
    finally:
        holder.unlock()
    assert _train(_config(sim_root, tmp_path), out).exit_code == 0


def test_nan_rows_in_one_feature_bag_name_the_file_and_patient(sim_root, tmp_path):
    folder = _features_copy(sim_root, tmp_path)
    victim = sorted(folder.glob("*.h5"))[4]
    with h5py.File(victim, "r+") as handle:
        values = handle["features"][()]
        values[2] = np.nan
        handle["features"][...] = values
    patient = "-".join(victim.stem.split("-")[:3])
    config = _config(sim_root, tmp_path, models=("abmil",),
                     wsi={"features_dir": str(folder), "encoder": "simulated"})  # fmt: skip
    assert_error(_train(config, tmp_path / "run"), 2, str(victim), f"patient {patient}",
                 "NaN or infinite")  # fmt: skip


def test_a_nul_byte_in_a_report_is_refused_not_truncated(sim_root, tmp_path):
    reports = pd.read_csv(sim_root / "tcga" / "sim" / "reports.csv", keep_default_na=False)
    row = int(np.flatnonzero(reports["raw_text"].str.len() > 20)[0])
    patient = reports.loc[row, "case_id"]
    text = reports.loc[row, "raw_text"]
    reports.loc[row, "raw_text"] = text[:10] + "\x00" + text[10:]
    path = tmp_path / "reports.csv"
    reports.to_csv(path, index=False)
    config = _config(sim_root, tmp_path, models=("clinical_cox",), clinical=["age", "grade"],
                     reports={"csv": str(path)})  # fmt: skip
    assert_error(_train(config, tmp_path / "run"), 2, str(path), f"patient {patient}", "0x00")


@pytest.mark.parametrize(
    ("column", "value", "phrase"),
    [("age", "69 years", "'69 years'"), ("is_female", "female", "is_female is 1 for female")],
)
def test_text_clinical_values_are_errors_not_missing(sim_root, tmp_path, column, value, phrase):
    table = _edited_table(sim_root, tmp_path, lambda f: _set(f, 3, column, value))
    patient = pd.read_csv(_table(sim_root))["case_id"].iloc[3]
    config = _config(sim_root, tmp_path, models=("clinical_cox",), table=table,
                     clinical=["age", "sex"])  # fmt: skip
    assert_error(_train(config, tmp_path / "run"), 2, table, f"patient {patient}", phrase)


def test_a_near_miss_covariate_name_gets_a_suggestion(sim_root, tmp_path):
    table = _edited_table(sim_root, tmp_path, lambda f: f.rename(columns={"age": "Age"}))
    config = _config(sim_root, tmp_path, models=("clinical_cox",), table=table, clinical=["age"])
    assert_error(_train(config, tmp_path / "run"), 2, table, "'Age'", "did you mean 'age'?")


def test_a_facts_file_for_other_patients_is_refused(sim_root, tmp_path):
    facts = tmp_path / "facts.csv"
    pd.DataFrame({"case_id": ["TCGA-ZZ-0001", "TCGA-ZZ-0002"], "grade": ["G2", "G3"]}).to_csv(
        facts, index=False
    )
    config = _config(sim_root, tmp_path, models=("clinical_cox",), clinical=["age", "grade"],
                     facts_csv=str(facts))  # fmt: skip
    assert_error(_train(config, tmp_path / "run"), 2, str(facts), "no case_id of the facts file")


def test_fold_lists_that_would_mislead(sim_root, tmp_path):
    folder = tmp_path / "splits"
    shutil.copytree(sim_root / "tcga" / "sim" / "splits", folder)
    (folder / "splits_1.csv").unlink()
    config = _config(sim_root, tmp_path, splits=str(folder), folds=None)
    assert_error(_train(config, tmp_path / "a"), 2, "['splits_1.csv'] missing")
    assert_error(_train(_config(sim_root, tmp_path, folds=[]), tmp_path / "b"), 2,
                 "data.folds", "empty list")  # fmt: skip
    assert_error(_train(_config(sim_root, tmp_path, folds=[0, 0, 1]), tmp_path / "c"), 2,
                 "data.folds", "[0] listed twice")  # fmt: skip


def test_yaml_that_is_not_a_config(tmp_path, sim_root):
    twice = tmp_path / "twice.yaml"
    twice.write_text(_config(sim_root, tmp_path).read_text() + "name: again\n")
    assert_error(_train(twice, tmp_path / "a"), 2, "key 'name' given twice")
    listed = tmp_path / "list.yaml"
    listed.write_text("- data\n- models\n")
    assert_error(_train(listed, tmp_path / "b"), 2, "not a list")


def test_too_few_patients_for_the_folds(sim_root, tmp_path):
    frame = pd.read_csv(_table(sim_root))
    keep = frame["case_id"].iloc[:5].tolist()
    table = tmp_path / "table.csv"
    frame.iloc[:5].to_csv(table, index=False)
    folder = tmp_path / "splits"
    folder.mkdir()
    for k in range(5):
        pd.DataFrame({"train": pd.Series([c for i, c in enumerate(keep) if i != k]),
                      "val": pd.Series([keep[k]])}).to_csv(folder / f"splits_{k}.csv")  # fmt: skip
    config = _config(sim_root, tmp_path, table=str(table), splits=str(folder), folds=None)
    assert_error(_train(config, tmp_path / "run"), 2, "splits_", "fold")


def test_out_that_is_a_file_read_only_or_full(sim_root, tmp_path, monkeypatch):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    assert_error(_train(_config(sim_root, tmp_path), blocker), 2, str(blocker), "is a file")
    from kemm.engine import rundir

    def full_disk(self, result, predictions):
        raise OSError(28, "No space left on device", str(self.path / "predictions.csv"))

    monkeypatch.setattr(rundir.FoldDirectory, "write_result", full_disk)
    out = tmp_path / "full"
    assert_error(_train(_config(sim_root, tmp_path), out), 2, str(out), "No space left on device")
    if os.geteuid() != 0:  # root writes into read-only folders
        monkeypatch.undo()
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert_error(_train(_config(sim_root, tmp_path), locked / "run"), 2, str(locked))
        finally:
            locked.chmod(0o700)


@pytest.mark.parametrize(
    ("victim", "damage", "phrase"),
    [
        ("preprocess.json", '{"bins": {}}', "preprocessing is corrupt"),
        ("model_state.json", '{"kind": "nothing"}', "model state is corrupt"),
        ("weights.safetensors", None, "network weights file is corrupt"),
    ],
)
def test_a_corrupt_run_file_names_itself_in_predict(sim_root, trained, tmp_path, victim, damage,
                                                    phrase):  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    label = "SNN" if victim.endswith("safetensors") else "Clinical Cox"
    path = run / "folds" / label / "seed0" / "fold0" / victim
    if damage is None:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    else:
        path.write_text(damage)
    result = kemm("predict", run, "--cohort", _table(sim_root), "--model", label)
    assert_error(result, 2, str(path), phrase)


def test_a_corrupt_prepared_cohort_names_its_file(sim_root, tmp_path):
    folder = tmp_path / "prepared"
    config = _config(sim_root, tmp_path)
    assert kemm("prepare", "--config", config, "--out", folder).exit_code == 0
    arrays = folder / "arrays.h5"
    arrays.write_bytes(arrays.read_bytes()[:100])
    prepared = _config(sim_root, tmp_path, prepared=str(folder))
    assert_error(_train(prepared, tmp_path / "run"), 2, str(arrays), "kemm prepare")
    (folder / "prepared.json").write_text("{not json")
    assert_error(_train(prepared, tmp_path / "run2"), 2, "prepared.json", "not readable JSON")


# --- kemm predict for a clinician: chosen times, intervals, risk groups, cancer type ----------


def test_predict_at_chosen_months_with_fold_ranges_for_every_kind(sim_root, trained, tmp_path):
    new = _new_patients(sim_root, tmp_path)
    for label in ("Clinical Cox", "SNN", "Stack", "Residual SNN"):
        out = tmp_path / f"{label}.csv"
        result = kemm("predict", trained, "--cohort", new, "--model", label,
                      "--times", "12,36,60", "--out", out)  # fmt: skip
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(out)
        for t in (12, 36, 60):
            lo, mean, hi = (frame[f"surv_{t}{s}"] for s in ("_lo", "", "_hi"))
            assert ((lo <= mean + 1e-12) & (mean <= hi + 1e-12)).all(), label
            assert ((lo >= 0) & (hi <= 1)).all() and (hi > lo).any(), label
        assert (frame["surv_12"] >= frame["surv_60"] - 1e-12).all(), label
        assert set(frame["risk_group"]) == {"high", "low"}
        high = frame["risk_group"] == "high"
        assert frame.loc[high, "risk"].mean() > frame.loc[~high, "risk"].mean()
        assert (frame.loc[high, "high_votes"] * 2 > frame["n_fold_models"][0]).all()
    bad = kemm("predict", trained, "--cohort", new, "--times", "12,three")
    assert_error(bad, 2, "--times", "12,three")


def test_predict_warns_when_the_cancer_type_is_not_the_runs(sim_root, trained, tmp_path):
    frame = pd.read_csv(_table(sim_root)).assign(oncotree_code="LUAD")
    path = tmp_path / "lung.csv"
    frame.to_csv(path, index=False)
    result = kemm("predict", trained, "--cohort", path, "--model", "CoxNet")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "['LUAD'] is not the run's ['CCRCC']" in result.output
    same = kemm("predict", trained, "--cohort", _table(sim_root), "--model", "CoxNet")
    assert "warning:" not in same.output


def test_predict_imputes_an_empty_covariate_only_when_asked(sim_root, trained, tmp_path):
    frame = pd.read_csv(_table(sim_root))
    patient = frame["case_id"].iloc[2]
    frame.loc[2, "is_female"] = np.nan
    path = tmp_path / "blank_sex.csv"
    frame.to_csv(path, index=False)
    refused = kemm("predict", trained, "--cohort", path, "--model", "Clinical Cox")
    assert_error(refused, 2, str(path), f"patient {patient}", "'sex' is empty", "--allow-missing")
    out = tmp_path / "p.csv"
    allowed = kemm("predict", trained, "--cohort", path, "--model", "Clinical Cox",
                   "--allow-missing", "--out", out)  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    imputed = pd.read_csv(out).set_index("case_id")["imputed"]
    assert "sex" in imputed[patient]
