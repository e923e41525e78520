"""Metrics tables, Kaplan-Meier plots and the run report, all readable back from a run dir."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kemm.errors import InputDataError  # noqa: E402
from kemm.survival import harrell_c, logrank_p  # noqa: E402

log = logging.getLogger(__name__)

METRIC_KEYS = ("c_index", "uno_c", "ibs", "mean_auc")


def _summary(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    return {
        "mean": float(finite.mean()) if len(finite) else float("nan"),
        "std": float(finite.std()) if len(finite) else float("nan"),
        "folds": [float(v) for v in array],
    }


def aggregate_metrics(results: list[dict], config, protocol: dict, *, bootstrap: int = 0,
                      predictions: pd.DataFrame | None = None) -> dict:  # fmt: skip
    models: dict[str, dict] = {}
    for model in config.models:
        # fold order, whatever order parallel workers finished in
        rows = sorted(
            (r for r in results if r["model"] == model.display),
            key=lambda r: (r["seed"], len(r["fold"]), r["fold"]),
        )
        entry = {
            key: _summary([r["metrics"].get(key, float("nan")) for r in rows])
            for key in METRIC_KEYS
        }
        for key in ("student_teacher_spearman", "student_c_index"):  # KEMM's two paths
            values = [r[key] for r in rows if key in r]
            if values:
                entry[key] = _summary(values)
        entry["name"] = model.name
        entry["selection"] = sorted({r.get("selection", "") for r in rows})
        entry["excluded_patients"] = sorted(
            {c for r in rows for part in r["excluded"].values() for c in part}
        )
        collapsed = [
            f"seed{r['seed']}/{r['fold']}" for r in rows if r["metrics"].get("risk_std", 1.0) < 1e-8
        ]
        entry["constant_risk_folds"] = collapsed
        if bootstrap and predictions is not None and len(predictions):
            entry["c_index"]["ci95"] = bootstrap_mean_c(
                predictions[predictions["model"] == model.display], bootstrap
            )
        models[model.display] = entry
    return {"protocol": protocol, "models": models}


def bootstrap_mean_c(predictions: pd.DataFrame, n_boot: int, seed: int = 0) -> list[float]:
    """95% interval of the fold-mean Harrell C, resampling patients within each fold."""
    rng = np.random.default_rng(seed)
    groups = [g for _, g in predictions.groupby(["seed", "fold"])]
    means = []
    for _ in range(n_boot):
        values = []
        for group in groups:
            index = rng.integers(0, len(group), len(group))
            sample = group.iloc[index]
            if sample["event"].sum() == 0:
                continue
            with np.errstate(invalid="ignore", divide="ignore"):  # a resample without pairs
                value = harrell_c(
                    sample["event"].to_numpy(bool),
                    sample["time"].to_numpy(),
                    sample["risk"].to_numpy(),
                )
            if np.isfinite(value):
                values.append(value)
        if values:
            means.append(np.mean(values))
    return (
        [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]
        if means
        else [float("nan")] * 2
    )


def plot_km(predictions: pd.DataFrame, path: Path, title: str, n_groups: int = 2) -> float:
    """Kaplan-Meier curves of risk groups (split at the training-fold median risk), with
    censoring ticks, the numbers at risk under the axis and the log-rank p-value; returns the
    p-value. With several seeds, the first seed's out-of-fold predictions are drawn (each
    patient once)."""
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    if "seed" in predictions.columns and predictions["seed"].nunique() > 1:
        predictions = predictions[predictions["seed"] == predictions["seed"].min()]
    high = (predictions["risk"] > predictions["train_risk_median"]).to_numpy().astype(int)
    time = predictions["time"].to_numpy(float)
    event = predictions["event"].to_numpy(bool)
    p_value = float("nan")
    if len(np.unique(high)) > 1:
        p_value = logrank_p(time, event, high)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    fitted, labels = [], []
    for group, label in ((0, "low risk"), (1, "high risk")):
        chosen = high == group
        if chosen.sum() == 0:
            continue
        kmf = KaplanMeierFitter(label=f"{label} (n={int(chosen.sum())})")
        kmf.fit(time[chosen], event[chosen])
        kmf.plot_survival_function(ax=ax, ci_show=False, show_censors=True,
                                   censor_styles={"marker": "|", "ms": 6})  # fmt: skip
        fitted.append(kmf)
        labels.append(label)
    ax.set_xlabel("time (months)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: out-of-fold risk groups\nlog-rank p = {p_value:.2g}")
    ax.legend(loc="lower left")
    if fitted:
        add_at_risk_counts(*fitted, labels=labels, ax=ax, rows_to_show=["At risk"])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return p_value


def format_table(metrics: dict) -> str:
    """A markdown table: model -> Harrell C mean ± std, Uno C, IBS, mean AUC."""
    with_ci = any("ci95" in entry["c_index"] for entry in metrics["models"].values())
    lines = [
        "| model | C-index | " + ("95 % CI (patients) | " if with_ci else "")
        + "Uno C | IBS | mean AUC |",
        "|---|---|" + ("---|" if with_ci else "") + "---|---|---|",
    ]  # fmt: skip
    for name, entry in metrics["models"].items():
        cells = [f"{entry[k]['mean']:.3f} ± {entry[k]['std']:.3f}" for k in METRIC_KEYS]
        if with_ci:
            low, high = entry["c_index"].get("ci95", [float("nan")] * 2)
            cells.insert(1, f"{low:.3f}–{high:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(path: Path, metrics: dict, warnings: list[str] | None = None) -> None:
    """``report.md``: the run's name and cohort, patients, the metrics table (Harrell C with
    its 95 % bootstrap interval over patients), the paired comparisons and every warning."""
    protocol = metrics["protocol"]
    name = protocol.get("name")
    title = f"{name} ({protocol.get('cohort')})" if name else protocol.get("cohort")
    text = [
        f"# kemm run: {title}",
        "",
        f"Model selection: {protocol['selection_note']}. Time bins: {protocol['binning']}.",
        f"Folds: {', '.join(protocol['folds'])}; seeds: {protocol['seeds']}.",
    ]
    patients = protocol.get("patients")
    if patients:
        text.append(
            f"Patients: N = {patients['n']}, {patients['events']} events "
            f"({patients['events'] / max(patients['n'], 1):.0%}); median follow-up "
            f"{_months(patients['median_follow_up_months'])} (reverse Kaplan-Meier); median "
            f"survival {_months(patients['median_survival_months'])}."
        )
    text += [
        "",
        format_table(metrics),
        "",
    ]
    if metrics.get("paired"):
        from kemm.survival.compare import PairedComparison, format_comparisons

        rows = [PairedComparison.from_dict(c) for c in metrics["paired"]]
        text += [
            "## Paired comparisons",
            "",
            "ΔC = C(first) − C(second) per evaluation fold; 95 % CI and p from the corrected "
            "resampled t-test over folds (Nadeau & Bengio), bootstrap CI over patients within "
            "folds (`kemm compare` for any other pair).",
            "",
            format_comparisons(rows),
            "",
        ]
    notes = list(warnings or [])
    for label, entry in metrics["models"].items():
        if entry.get("constant_risk_folds"):
            notes.append(f"{label} predicted a constant risk in {entry['constant_risk_folds']}")
        if entry.get("excluded_patients"):
            notes.append(
                f"{label}: {len(entry['excluded_patients'])} patient(s) lacked its required modality and were excluded"
            )
    if notes:
        text += ["## Warnings", "", *(f"- {note}" for note in notes), ""]
    path.write_text("\n".join(text) + "\n")


def _months(value: float) -> str:
    return "not reached" if not np.isfinite(value) else f"{value:.1f} months"


def read_metrics(run_dir: str | Path) -> dict:
    """The metrics of a finished run (an error naming the folder when there are none)."""
    from kemm.engine.rundir import RunDirectory

    return RunDirectory(run_dir).read_metrics()


def paired_comparisons(predictions: pd.DataFrame, n_boot: int = 1000) -> list[dict]:
    """Every model of a run against the run's best model (highest mean out-of-fold C): the
    paired comparisons ``report.md`` shows."""
    from kemm.survival.compare import compare_predictions

    models = list(dict.fromkeys(predictions["model"])) if len(predictions) else []
    if len(models) < 2 or predictions.groupby(["seed", "fold"]).ngroups < 2:
        return []
    by_c = {}
    for model in models:
        rows = predictions[predictions["model"] == model]
        by_c[model] = np.mean([
            harrell_c(g["event"].to_numpy(bool), g["time"].to_numpy(float), g["risk"].to_numpy(float))
            for _, g in rows.groupby(["seed", "fold"])
        ])  # fmt: skip
    best = max(models, key=lambda m: by_c[m])
    out = []
    for model in models:
        if model == best:
            continue
        try:
            out.append(compare_predictions(predictions, best, model, scope="this run",
                                           n_boot=n_boot).to_dict())  # fmt: skip
        except InputDataError as error:  # scored on other patients (modality exclusions)
            log.warning("no paired comparison of %s and %s: %s", best, model, error.problem)
    return out
