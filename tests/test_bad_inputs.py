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
