"""Per-patient explanations from a finished run: which knowledge statements looked where."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kemm.cohort.prepared import prepare_cohort
from kemm.engine.data import FoldInputs
from kemm.engine.fold_models import load_fold_model, used_modalities
from kemm.engine.rundir import RunDirectory
from kemm.errors import ConfigError, InputDataError


def _statement_text(label: str, reports: list[str], pbk: list[str],
                    facts: dict[str, str] | None = None) -> str:  # fmt: skip
    source, _, index = label.partition(":")
    i = int(index) if index.isdigit() else -1
    if source == "report" and 0 <= i < len(reports):
        return reports[i]
    if source == "pbk" and 0 <= i < len(pbk):
        return pbk[i]
    if source == "fact":
        return f"report fact {index}: {(facts or {}).get(index, 'not stated')}"
    return f"({label}: learned query)"


def _fact_values(data, case_id: str) -> dict[str, str]:
    """The patient's report facts as a pathologist writes them (``T2``, ``grade 3``,
    ``negative``, ``not stated``), from the encoded clinical block."""
    from kemm.knowledge.covariates import FACT_COVARIATES, covariate_of, describe_fact

    if case_id not in data.clinical.index:
        return {}
    row = data.clinical.loc[case_id]
    columns: dict[str, dict[str, float]] = {}
    for column, value in row.items():
        name = covariate_of(str(column))
        if name in FACT_COVARIATES and pd.notna(value):
            columns.setdefault(name, {})[str(column)] = float(value)
    return {name: describe_fact(name, values) for name, values in columns.items()}


def _risk(network, x) -> float:
    from kemm.survival import risk_from_logits

    with torch.no_grad():
        return float(risk_from_logits(network(x).logits)[0])


def _occlusion(network, x, pre, reports: list[str], facts: dict[str, str]) -> list[dict]:
    """Each report statement's and report fact's contribution to the network's risk for this
    patient, relative to the cohort: the risk minus the risk with the statement removed, or
    with the fact set to its training-fold mean (0 on the standardised scale). Sorted by size;
    positive raises the risk."""
    from dataclasses import replace

    from kemm.knowledge.covariates import FACT_COVARIATES, covariate_of

    base = _risk(network, x)
    out = []
    if x.report is not None and x.report_mask is not None:
        for j in range(int(x.report_mask[0].sum())):
            mask = x.report_mask.clone()
            mask[0, j] = False
            # the last statement removed: the patient's no-report path
            without = replace(x, report_mask=mask) if mask.any() else replace(x, report=None, report_mask=None)  # fmt: skip
            text = reports[j] if j < len(reports) else f"report:{j}"
            out.append({"kind": "statement", "label": f"report:{j}", "text": text,
                        "delta_risk": base - _risk(network, without)})  # fmt: skip
    columns = pre.clinical_columns
    fact_columns = [columns[i] for i in pre.fact_positions()]
    for name in dict.fromkeys(covariate_of(c) for c in fact_columns):
        if name not in FACT_COVARIATES:
            continue
        changed = {}
        if x.facts is not None:
            facts_now = x.facts.clone()
            facts_now[0, [k for k, c in enumerate(fact_columns) if covariate_of(c) == name]] = 0.0
            changed["facts"] = facts_now
        if x.clinical is not None:
            clinical_now = x.clinical.clone()
            clinical_now[0, [k for k, c in enumerate(columns) if covariate_of(c) == name]] = 0.0
            changed["clinical"] = clinical_now
        if not changed:
            continue
        text = f"{name}: {facts.get(name, 'not stated')}"
        out.append({"kind": "fact", "label": f"fact:{name}", "text": text,
                    "delta_risk": base - _risk(network, replace(x, **changed))})  # fmt: skip
    for item in out:
        item["delta_risk"] = round(float(item["delta_risk"]), 6)
    return sorted(out, key=lambda item: -abs(item["delta_risk"]))


def summary_text(result: dict, top: int = 3) -> str:
    """A few readable lines on one patient: risk, outcome, and what moved the risk most."""
    outcome = "died" if result["event"] else "censored (alive at last follow-up)"
    lines = [
        f"{result['case_id']} — {result['model']}, scored out of fold ({result['fold']}): risk "
        f"{result['risk']:.3f}; {outcome} at {result['time']:.1f} months.",
    ]
    ranked = result.get("contributions") or []
    up = [c for c in ranked if c["delta_risk"] > 0][:top]
    down = [c for c in ranked if c["delta_risk"] < 0][:top]
    if up:
        lines.append("Raised the risk most (vs. the training-fold mean, or without it): "
                     + "; ".join(f"{c['text']} ({c['delta_risk']:+.3f})" for c in up) + ".")  # fmt: skip
    if down:
        lines.append("Lowered it most: "
                     + "; ".join(f"{c['text']} ({c['delta_risk']:+.3f})" for c in down) + ".")  # fmt: skip
    if not ranked:
        lines.append("The model reads no report statement or fact for this patient.")
    return "\n".join(lines)


def _to_list(value):
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy().round(6).tolist()
    if isinstance(value, np.ndarray):
        return value.round(6).tolist()
    return value


def explain_case(run_dir: str | Path, case_id: str, *, model: str | None = None,
                 data=None) -> dict:  # fmt: skip
    """Explain one patient with the fold model that held it out (so the explanation is
    out-of-fold); returns a JSON-ready dict: the report statements and facts ranked by their
    contribution to the risk (``contributions``), the attention weights of statements and
    (apart) learned queries, and attention maps. ``data``: the run's prepared cohort, when the
    caller explains several patients (read once)."""
    run = RunDirectory(run_dir)
    config = run.read_config()
    label = model or next(
        (m.display for m in config.models if m.name.startswith("kemm")), config.models[0].display
    )
    spec = config.model_by_label(label)
    predictions = pd.read_csv(run.predictions_path)
    rows = predictions[(predictions["case_id"] == case_id) & (predictions["model"] == label)]
    if rows.empty:
        raise InputDataError(
            f"no out-of-fold prediction for this patient in model {label!r}",
            file=str(run.root),
            patient=case_id,
        )
    row = rows.iloc[0]
    fitted = load_fold_model(run, config, spec, run.fold(label, int(row["seed"]), row["fold"]))
    network = fitted.network()  # models without one refuse, naming themselves
    from kemm.cohort.text import load_text_modality

    if data is None:
        data = prepare_cohort(config.data, text_loader=load_text_modality)
    inputs = FoldInputs(data, fitted.pre, [case_id], used_modalities(spec, data),
                        genomic_clip=config.train.genomic_clip)  # fmt: skip
    x = inputs.batch([0])
    with torch.no_grad():
        try:
            out = network(x, explain=True)
        except TypeError:
            raise ConfigError(f"model {spec.name!r} does not produce explanations") from None
    patient = out.explanation["patients"][0]
    reports = data.text.report_statements.get(case_id, []) if data.text else []
    pbk = data.text.pbk_statements if data.text else []
    facts = _fact_values(data, case_id)
    labels = list(patient.get("statements", []))
    weights = _to_list(patient.get("statement_weight")) or []
    learned = [i for i, lab in enumerate(labels) if lab.startswith("learned")]
    kept = [i for i in range(len(labels)) if i not in set(learned)]
    contributions = _occlusion(network, x, fitted.pre, reports, facts)
    result = {
        "case_id": case_id, "model": label, "fold": row["fold"], "risk": float(row["risk"]),
        "time": float(row["time"]), "event": int(row["event"]),
        "contributions": contributions,
        "statements": [{"label": labels[i], "text": _statement_text(labels[i], reports, pbk, facts)} for i in kept],
        "statement_weight": [weights[i] for i in kept] if weights else None,
        "learned_queries": [{"label": labels[i], "weight": weights[i] if weights else None} for i in learned],
        "genomic_groups": out.explanation.get("genomic_groups", []),
        "genomic_attention": _to_list(patient.get("genomic_attention")),
        "genomic_pool": _to_list(patient.get("genomic_pool")),
    }  # fmt: skip
    if "patch_attention" in patient:
        attention = patient["patch_attention"].float().cpu().numpy()
        bag, coords = inputs.bags.get(case_id, data.bag_paths[case_id])
        index = patient.get("patch_index")
        coords_np = coords.numpy() if coords is not None else None
        if coords_np is not None and index is not None:
            coords_np = coords_np[index.cpu().numpy()]
        result["patch_queries"] = patient.get("patch_queries")
        result["patch_attention"] = attention.round(6).tolist()
        pool = patient.get("patch_pool")
        result["scores"] = _to_list(pool if pool is not None else attention.mean(axis=0))
        if coords_np is not None:
            result["coords"] = coords_np.tolist()
    return result


def write_explanation(result: dict, out_dir: str | Path, slide: str | None = None,
                      patch_size_level0: int | None = None) -> list[Path]:  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{result['case_id']}_explanation.json",
               out_dir / f"{result['case_id']}_summary.txt"]  # fmt: skip
    written[0].write_text(json.dumps(result, indent=1))
    written[1].write_text(summary_text(result) + "\n")
    if slide and "coords" in result and patch_size_level0:
        from kemm.wsi.heatmap import render_heatmap

        png = out_dir / f"{result['case_id']}_heatmap.png"
        render_heatmap(
            slide,
            np.asarray(result["coords"]),
            np.asarray(result["scores"]),
            patch_size_level0,
            png,
        )
        written.append(png)
    return written
