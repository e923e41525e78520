"""Predictions for new patients from a finished run: the fold models' ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from kemm.engine.config import RunConfig, load_config
from kemm.engine.data import FoldInputs, FoldPreprocessor, prepare_cohort
from kemm.engine.runner import used_modalities
from kemm.errors import ConfigError
from kemm.models.base import InputDims
from kemm.models.registry import create, get_entry
from kemm.survival import TimeBins, risk_from_logits, survival_from_logits


def predict_new(run_dir: str | Path, table: str | Path, *, model: str | None = None,
                reports_csv: str | None = None, features_dir: str | None = None) -> pd.DataFrame:  # fmt: skip
    """Risk and survival curve per patient of ``table`` (an all_clean-format CSV), averaged over
    the run's fold models. Survival is given at each fold's bin times (``surv_<k>`` columns) and
    as the ensemble of curves evaluated at the first fold's bin end times."""
    run_dir = Path(run_dir)
    config: RunConfig = load_config(run_dir / "config.yaml")
    labels = [m.display for m in config.models]
    label = model or labels[0]
    if label not in labels:
        raise ConfigError(f"model {label!r} is not in the run; it has {labels}")
    spec = next(m for m in config.models if m.display == label)
    if get_entry(spec.name).kind == "stack" or spec.residual_over:
        raise ConfigError(
            f"model {label!r} combines out-of-fold risks of other models ("
            f"{', '.join(spec.residual_over or spec.params.get('base', []))}); predicting new "
            "patients with it is not supported yet: predict with one of its base models"
        )
    data_config = config.data.model_copy(deep=True)
    data_config.table = str(Path(table).resolve())
    if reports_csv and data_config.reports is not None:
        data_config.reports.csv = reports_csv
    if features_dir and data_config.wsi is not None:
        data_config.wsi.features_dir = features_dir
    from kemm.engine.text import load_text_modality

    data = prepare_cohort(data_config, text_loader=load_text_modality, with_splits=False)
    info = get_entry(spec.name)
    folds = sorted((run_dir / "folds" / label).glob("seed*/*/preprocess.json"))
    if not folds:
        raise ConfigError(f"{run_dir}: no fitted folds for model {label!r}")
    case_ids = data.cohort.case_ids
    risks, curves, reference_times = [], [], None
    for path in folds:
        folder = path.parent
        state = json.loads(path.read_text())
        bins = TimeBins.from_dict(state["bins"])
        pre = FoldPreprocessor.from_dict(state)
        if reference_times is None:
            reference_times = bins.bin_times
        if info.kind == "tabular":
            saved = folder / "model_state.json"
            if not saved.exists():
                raise ConfigError(f"{folder}: model {label!r} saved no state; it cannot predict")
            fitted = info.factory.from_state(json.loads(saved.read_text()))
            x, _ = pre.tabular_matrix(data, case_ids, used_modalities(spec, data))
            risks.append(fitted.predict_risk(x))
            curves.append(fitted.predict_survival(x, reference_times))
            continue
        meta = json.loads((folder / "model.json").read_text())
        network = create(
            meta["name"], dims=InputDims(**meta["dims"]), n_bins=meta["n_bins"], **meta["params"]
        )
        network.load_state_dict(load_file(folder / "weights.safetensors"))
        network.eval()
        inputs = FoldInputs(data, pre, case_ids, used_modalities(spec, data))
        with torch.no_grad():
            logits = torch.cat([network(inputs.batch([i])).logits for i in range(len(case_ids))])
        risks.append(risk_from_logits(logits).numpy())
        surv = survival_from_logits(logits).numpy()
        from kemm.survival import survival_at_times

        curves.append(survival_at_times(surv, bins, reference_times))
    out = pd.DataFrame({"case_id": case_ids, "model": label, "risk": np.mean(risks, axis=0)})
    mean_curve = np.mean(curves, axis=0)
    for k, t in enumerate(reference_times):
        out[f"surv_t{t:.1f}"] = mean_curve[:, k]
    out["n_fold_models"] = len(folds)
    return out
