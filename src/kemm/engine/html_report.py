"""``report.html``: one self-contained page per run (no external file, no network): the
metrics table with each C-index's interval, per-fold metrics, the paired comparisons, the
Kaplan-Meier curves of every model and a calibration plot at a fixed time, plus the warnings."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from kemm.engine.results import METRIC_KEYS

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
figure{display:inline-block;margin:0.5em;vertical-align:top}
figcaption{font-size:0.85em;color:#555;max-width:520px}
img{max-width:520px;border:1px solid #eee}
.warning{color:#8a4b00}
"""
# Marks the page once every figure has decoded (headless-browser tests read it).
SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures-rendered', ok + '/' + images.length);
});
"""


def write_html_report(path: Path, metrics: dict, predictions: pd.DataFrame,
                      fold_times: dict[str, float], km_plots: dict[str, Path],
                      warnings: list[str]) -> Path:  # fmt: skip
    """Write ``report.html``. ``fold_times``: each fold's calibration time (months);
    ``km_plots``: each model's Kaplan-Meier PNG."""
    protocol = metrics["protocol"]
    title = f"kemm run: {protocol.get('name') or ''} ({protocol.get('cohort')})"
    parts = [f"<h1>{_e(title)}</h1>", _patients(protocol), "<h2>Metrics</h2>",
             _metrics_table(metrics), "<h2>Per-fold Harrell C</h2>", _fold_table(metrics)]  # fmt: skip
    if metrics.get("paired"):
        parts += ["<h2>Paired comparisons (same folds)</h2>", _paired_table(metrics["paired"])]
    parts.append("<h2>Kaplan–Meier curves of out-of-fold risk groups</h2>")
    for label, png in km_plots.items():
        if png.is_file():
            parts.append(_figure(png.read_bytes(), f"{label}: risk groups split at each training "
                                                   "fold's median risk, with the log-rank p"))  # fmt: skip
    parts.append("<h2>Calibration</h2>")
    for label in metrics["models"]:
        chosen = predictions[predictions["model"] == label] if len(predictions) else predictions
        figure = _calibration_png(chosen, fold_times, label)
        if figure is not None:
            png, months = figure
            parts.append(_figure(png, f"{label}: predicted survival at ~{months:.0f} months "
                                      "(each fold's second time bin) against the Kaplan–Meier "
                                      "estimate, by quartile of predicted survival"))  # fmt: skip
    if warnings:
        parts += ["<h2>Warnings</h2>", "<ul>"]
        parts += [f"<li class='warning'>{_e(w)}</li>" for w in warnings]
        parts.append("</ul>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}"
            f"</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>"
            + "\n".join(parts) + "</body></html>")  # fmt: skip
    path.write_text(page, encoding="utf-8")
    return path


def _e(text: object) -> str:
    return html.escape(str(text))


def _patients(protocol: dict) -> str:
    patients = protocol.get("patients")
    folds = ", ".join(protocol.get("folds", []))
    text = f"Folds: {_e(folds)}; seeds: {_e(protocol.get('seeds'))}. {_e(protocol.get('selection_note', ''))}."
    if patients:
        text += (f" Patients: N = {patients['n']}, {patients['events']} events; median follow-up "
                 f"{patients['median_follow_up_months']:.1f} months (reverse Kaplan–Meier).")  # fmt: skip
    return f"<p>{text}</p>"


def _metrics_table(metrics: dict) -> str:
    rows = ["<tr><th>model</th><th>Harrell C</th><th>95 % CI (patients)</th><th>Uno C</th>"
            "<th>IBS</th><th>mean AUC</th><th>log-rank p</th></tr>"]  # fmt: skip
    for label, entry in metrics["models"].items():
        low, high = entry["c_index"].get("ci95", [float("nan")] * 2)
        cells = [f"{entry[k]['mean']:.3f} ± {entry[k]['std']:.3f}" for k in METRIC_KEYS]
        cells.insert(1, f"{low:.3f}–{high:.3f}" if np.isfinite(low) else "—")
        p = entry.get("logrank_p")
        cells.append(f"{p:.2g}" if p is not None and np.isfinite(p) else "—")
        rows.append(f"<tr><td>{_e(label)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _fold_table(metrics: dict) -> str:
    models = metrics["models"]
    n = max((len(e["c_index"]["folds"]) for e in models.values()), default=0)
    folds = metrics["protocol"].get("folds", [])
    names = [folds[k % len(folds)] if folds else str(k) for k in range(n)]
    rows = ["<tr><th>model</th>" + "".join(f"<th>{_e(f)}</th>" for f in names) + "</tr>"]
    for label, entry in models.items():
        cells = "".join(f"<td>{v:.3f}</td>" for v in entry["c_index"]["folds"])
        rows.append(f"<tr><td>{_e(label)}</td>{cells}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _paired_table(rows: list[dict]) -> str:
    out = ["<tr><th>comparison</th><th>folds</th><th>ΔC</th><th>95 % CI</th><th>p</th></tr>"]
    for row in rows:
        out.append(
            f"<tr><td>{_e(row['a'])} vs {_e(row['b'])}</td><td>{row['folds']}</td>"
            f"<td>{row['delta_c']:+.3f}</td><td>[{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]"
            f"</td><td>{row['p']:.3g}</td></tr>"
        )
    return "<table>" + "".join(out) + "</table>"


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")  # fmt: skip


def _calibration_png(predictions: pd.DataFrame, fold_times: dict[str, float],
                     label: str) -> tuple[bytes, float] | None:  # fmt: skip
    """Predicted survival (``surv_1``: the end of each fold's second bin) against the
    Kaplan-Meier estimate at that time, by quartile of predicted survival; ``None`` when the
    run's curves have fewer than two bins."""
    import matplotlib.pyplot as plt
    from lifelines import KaplanMeierFitter

    if "surv_1" not in predictions.columns or predictions.empty:
        return None
    first = predictions[predictions["seed"] == predictions["seed"].min()].dropna(subset=["surv_1"])
    times = first["fold"].map(fold_times).to_numpy(float)
    if not np.isfinite(times).any():
        return None
    months = float(np.nanmean(times))
    quartile = pd.qcut(first["surv_1"].rank(method="first"), 4, labels=False)
    predicted, observed = [], []
    for group in range(4):
        chosen = first[quartile.to_numpy() == group]
        if len(chosen) < 3:
            continue
        kmf = KaplanMeierFitter().fit(chosen["time"], chosen["event"].astype(bool))
        predicted.append(float(chosen["surv_1"].mean()))
        observed.append(float(kmf.survival_function_at_times(months).iloc[0]))
    if not predicted:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="ideal")
    ax.plot(predicted, observed, marker="o", label=label)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"predicted survival at ~{months:.0f} months")
    ax.set_ylabel("observed (Kaplan–Meier)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue(), months
