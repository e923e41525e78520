"""Commands that simulate, train, evaluate and predict."""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path

import typer
import yaml
from rich.console import Console

from kemm.cli.common import option_group
from kemm.errors import ConfigError

console = Console(
    soft_wrap=True
)  # results (stdout); messages and errors go to kemm.cli.common.console


def _parse_sets(values: list[str]) -> dict[str, object]:
    overrides = {}
    for item in values:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return overrides


def _load_run_config(config: Path, data_root: Path | None, set_: list[str]):
    """The run config of ``--config`` with ``--set`` and ``--data-root`` applied."""
    from kemm.engine.config import load_config

    overrides = _parse_sets(set_)
    if data_root is not None:
        overrides["data.root"] = str(data_root)
    return load_config(config, overrides)


with_run_config = option_group(
    {
        "config": (Path, typer.Option(..., "--config", "-c", help="YAML run config.")),
        "data_root": (Path | None, typer.Option(None, "--data-root", help="Overrides data.root.")),
        "set_": (
            list[str],
            typer.Option([], "--set", help="Override a config key: train.epochs=5"),
        ),
    },
    _load_run_config,
    "run_config",
)
"""Give a command ``--config``, ``--data-root`` and ``--set``, passed as ``run_config``."""


def _workers(requested: int) -> int:
    """``--workers``: 0 means one worker process per CPU core."""
    return requested or os.cpu_count() or 1


def _cross_validate(config, out: Path, quiet: bool, workers: int, **options) -> dict:
    """Run ``kemm train``'s cross-validation and print its table; the metrics."""
    from kemm.engine.results import format_table
    from kemm.engine.runner import run_cv

    metrics = run_cv(config, out, show_progress=not quiet, workers=workers, **options)
    console.print(format_table(metrics))
    return metrics


def _months(text: str) -> list[float]:
    """``--times 12,36,60`` as months; anything else is one line naming the option."""
    try:
        return [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ConfigError(
            f"--times: expected months separated by commas (12,36,60), got {text!r}"
        ) from None


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        out: Path = typer.Option(
            ..., "--out", help="Data root to create (laid out like ../shared/data)."
        ),
        patients: int = typer.Option(240, help="Number of patients."),
        feature_dim: int = typer.Option(256, help="Patch-feature dimension."),
        min_patches: int = typer.Option(500),
        max_patches: int = typer.Option(3000),
        seed: int = typer.Option(0),
        extent_effect: float = typer.Option(
            0.45, help="Log-hazard per SD of stage, a signal seen only through the report."
        ),
    ) -> None:
        """Write a synthetic multimodal cohort (tables, splits, reports, HDF5 feature bags)."""
        from kemm.cohort.simulate import simulate_cohort

        summary = simulate_cohort(out, n_patients=patients, feature_dim=feature_dim,
                                  patches=(min_patches, max_patches), seed=seed,
                                  extent_effect=extent_effect)  # fmt: skip
        console.print(
            f"simulated {summary.patients} patients ({summary.events} deaths), {summary.slides} slides, "
            f"{summary.patches} patches, {summary.with_report} reports → {summary.root}"
        )

    @app.command()
    def demo(
        out: Path = typer.Option(
            Path("kemm-demo"), "--out", help="Folder for the simulated data and the run."
        ),
        patients: int = typer.Option(200, help="Simulated patients."),
        workers: int = typer.Option(
            0, min=0, help="Local processes running folds in parallel (0 = one per CPU core)."
        ),
        quiet: bool = typer.Option(False, help="No progress bars."),
    ) -> None:
        """Simulate a cohort, cross-validate KEMM and single-modality models on it, print the
        metrics table and the paired comparison of KEMM with the best single-modality model."""
        import pandas as pd

        from kemm.cohort.simulate import simulate_cohort
        from kemm.engine.config import parse_config
        from kemm.survival.compare import compare_predictions, format_comparisons

        started = time.time()
        data_root = out / "data"
        if not (data_root / "tcga" / "sim").is_dir():
            simulate_cohort(data_root, n_patients=patients, feature_dim=64, patches=(100, 400),
                            show_progress=not quiet)  # fmt: skip
        raw = yaml.safe_load(resources.files("kemm.configs").joinpath("demo.yaml").read_text())
        raw["data"]["root"] = str(data_root)
        raw["data"]["wsi"]["features_dir"] = str(data_root / "features")
        metrics = _cross_validate(
            parse_config(raw, source="demo.yaml"), out / "run", quiet, _workers(workers)
        )
        single = [m for m in metrics["models"] if m != "KEMM"]
        best = max(single, key=lambda m: metrics["models"][m]["c_index"]["mean"])
        predictions = pd.read_csv(out / "run" / "predictions.csv")
        console.print("\nKEMM against the best single-modality model (paired, same folds):")
        console.print(format_comparisons([compare_predictions(predictions, "KEMM", best)]))
        console.print(f"run directory: {out / 'run'}  ({time.time() - started:.0f} s)")

    @app.command()
    @with_run_config
    def train(
        out: Path = typer.Option(..., "--out", help="Run directory (resumed if it exists)."),
        quiet: bool = typer.Option(False, help="No progress bars."),
        ray_address: str | None = typer.Option(
            None, help="Run folds as Ray tasks ('local' or ADDR)."
        ),
        workers: int = typer.Option(
            1, min=1, help="Local processes running folds in parallel (one CPU thread each)."
        ),
        overwrite: bool = typer.Option(
            False, help="Replace a run of another config in --out (its folds are deleted)."
        ),
        run_config=None,
    ) -> None:
        """Cross-validate the models of a config; an interrupted run resumes where it stopped."""
        metrics = _cross_validate(
            run_config, out, quiet, workers,
            ray_address=ray_address, overwrite=overwrite,
        )  # fmt: skip
        console.print(f"selection: {metrics['protocol']['selection_note']}")

    @app.command()
    @with_run_config
    def prepare(
        out: Path = typer.Option(..., "--out", help="Folder for the prepared cohort."),
        run_config=None,
    ) -> None:
        """Read and check a cohort once (tables, splits, genomic groups, report facts, text
        embeddings, feature-bag headers) into a folder that runs read with data.prepared=OUT."""
        from kemm.cli.common import console as messages
        from kemm.cohort import prepare_cohort
        from kemm.cohort.folder import write_prepared
        from kemm.cohort.text import load_text_modality

        data = prepare_cohort(run_config.data, text_loader=load_text_modality)
        write_prepared(data, run_config.data, out)
        summary = data.cohort.summary()
        messages.print(
            f"prepared {summary['patients']} patients ({summary['events']} events), "
            f"{len(data.splits)} splits, modalities {sorted(data.available_modalities)} -> {out}; "
            f"train on it with --set data.prepared={out}",
            soft_wrap=True,
            highlight=False,
        )

    @app.command()
    def evaluate(run_dir: Path = typer.Argument(..., help="A finished run directory.")) -> None:
        """Print the metrics table of a run."""
        from kemm.engine.results import format_table, read_metrics

        metrics = read_metrics(run_dir)
        console.print(format_table(metrics))
        console.print(f"selection: {metrics['protocol']['selection_note']}")

    @app.command()
    def compare(
        run_dir: Path = typer.Argument(..., help="A finished run directory."),
        model_a: str = typer.Argument(..., help="Model label (first of the pair)."),
        model_b: str = typer.Argument(..., help="Model label (second of the pair)."),
        run_b: Path | None = typer.Option(
            None, "--run-b", help="Read the second model from this run (same splits)."
        ),
        bootstrap: int = typer.Option(2000, min=0, help="Patient bootstrap resamples."),
        seed: int = typer.Option(0, help="Bootstrap seed."),
    ) -> None:
        """Paired comparison of two models on the same folds: per-fold ΔC, its mean with a 95 %
        interval and p (corrected resampled t-test), and a patient bootstrap within folds."""
        import pandas as pd

        from kemm.engine.rundir import RunDirectory
        from kemm.errors import InputDataError
        from kemm.survival.compare import compare_predictions, format_comparisons

        def read(folder: Path) -> pd.DataFrame:
            path = RunDirectory(folder).predictions_path
            if not path.is_file():
                raise InputDataError(
                    "no predictions.csv (is this a finished kemm run directory?)", file=str(folder)
                )
            from kemm.io import read_csv

            return read_csv(path, what="predictions file")

        first = read(run_dir)
        frame = first
        label_b = model_b
        if run_b is not None:
            second = read(run_b)
            label_b = f"{model_b} ({run_b})"
            second = second[second["model"] == model_b].assign(model=label_b)
            if second.empty:
                raise InputDataError(f"no predictions of model {model_b!r}", file=str(run_b))
            frame = pd.concat([first[first["model"] == model_a], second], ignore_index=True)
        result = compare_predictions(frame, model_a, label_b, scope=str(run_dir),
                                     n_boot=bootstrap, seed=seed)  # fmt: skip
        console.print(format_comparisons([result]))
        line = "per-fold ΔC: " + ", ".join(f"{d:+.3f}" for d in result.deltas)
        if bootstrap:
            line += f"; bootstrap p = {result.bootstrap_p:.3f}"
        console.print(f"{line}; corrected t-test p = {result.p:.3g} (df {result.df:.0f})")

    @app.command()
    def predict(
        run_dir: Path = typer.Argument(..., help="A finished run directory."),
        cohort: Path = typer.Option(
            ..., "--cohort", help="Patients to score (all_clean-format CSV; outcomes optional)."
        ),
        model: str | None = typer.Option(None, help="Model label (default: the run's first)."),
        reports: str | None = typer.Option(
            None, help="These patients' reports CSV (when the run reads reports or facts)."
        ),
        facts: str | None = typer.Option(
            None, help="These patients' facts (`kemm knowledge facts` output) instead."
        ),
        features_dir: str | None = typer.Option(None, help="These patients' feature bags."),
        allow_missing: bool = typer.Option(
            False, help="Impute missing columns/values (training-fold mean) and record it."
        ),
        allow_partial: bool = typer.Option(
            False, help="Use the finished folds of an unfinished run."
        ),
        times: str | None = typer.Option(
            None,
            help="Survival at these months, e.g. 12,36,60 (mean, lowest and highest fold "
            "model), plus risk groups by the training folds' median risk.",
        ),
        out: Path | None = typer.Option(None, "--out", help="CSV to write (default: print)."),
    ) -> None:
        """Risk and survival curves for new patients: the mean of the run's fold models."""
        from kemm.cli.common import console as messages
        from kemm.engine.predict import predict_new

        result = predict_new(
            run_dir, cohort, model=model, reports_csv=reports, facts_csv=facts,
            features_dir=features_dir, allow_missing=allow_missing, allow_partial=allow_partial,
            times=_months(times) if times else None,
        )  # fmt: skip
        frame = result.frame
        if out is None:
            console.print(frame.to_string(index=False), soft_wrap=True)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(out, index=False)
        summary = (
            f"{len(frame)} patients scored by {result.model!r} "
            f"(mean of {result.fold_models} fold models)"
        )
        if result.imputed_patients:
            summary += f"; {result.imputed_patients} with imputed inputs (column 'imputed')"
        if result.c_index is not None:
            summary += (
                f"; Harrell's C on the {result.with_outcome} patients with outcomes "
                f"({result.events} events): {result.c_index:.3f}"
            )
        messages.print(summary + (f" -> {out}" if out else ""), soft_wrap=True, highlight=False)
        if result.cancer_warning:
            messages.print(f"[yellow]warning:[/yellow] {result.cancer_warning}", soft_wrap=True,
                           highlight=False)  # fmt: skip

    @app.command()
    def benchmark(
        data_root: Path = typer.Option(
            Path("../shared/data"), "--data-root", help="Data root (tcga/<cohort>/, signatures/)."
        ),
        out: Path = typer.Option(
            Path("runs/benchmark"), "--out", help="Benchmark folder (resumed if it exists)."
        ),
        cohorts: str | None = typer.Option(
            None, help="Comma-separated cohorts (default: brca,luad,kirc,ucec,lusc)."
        ),
        quick: bool = typer.Option(False, help="One cohort's worth: fewer models and epochs."),
        ray_address: str | None = typer.Option(
            None, help="Run cohort x fold tasks on Ray ('local' or ADDR)."
        ),
        workers: int = typer.Option(
            0, min=0, help="Local processes running folds in parallel (0 = one per CPU core)."
        ),
        table: Path | None = typer.Option(
            None, help="Also write the markdown table here (e.g. docs/benchmarks.md)."
        ),
        quiet: bool = typer.Option(False, help="No progress bars."),
        prepare: bool = typer.Option(
            False, help="Read each cohort once into a prepared-cohort folder and train from it."
        ),
    ) -> None:
        """Baselines, KEMM and its ablations on TCGA cohorts under the honest protocol."""
        import sys

        from kemm.engine.benchmark import format_benchmark, provenance, run_benchmark

        chosen = [c.strip().lower() for c in cohorts.split(",")] if cohorts else None
        summary = run_benchmark(data_root, out, cohorts=chosen, quick=quick, ray_address=ray_address,
                                workers=_workers(workers), show_progress=not quiet,
                                prepared=prepare)  # fmt: skip
        text = format_benchmark(summary)
        console.print(text)
        if table is not None:
            command = "kemm " + " ".join(sys.argv[1:])
            table.parent.mkdir(parents=True, exist_ok=True)
            table.write_text(
                "# Benchmark\n\n" + provenance(command, summary["wall_seconds"]) + "\n" + text
            )
            console.print(f"wrote {table}")

    @app.command()
    def explain(
        run_dir: Path = typer.Argument(..., help="A finished run directory."),
        case: str = typer.Option(..., "--case", help="Patient (case_id) to explain."),
        model: str | None = typer.Option(None, help="Model label (default: the run's KEMM model)."),
        out: Path | None = typer.Option(
            None, "--out", help="Folder for the JSON (and heatmap PNG)."
        ),
        slide: str | None = typer.Option(None, help="The patient's slide, to draw a heatmap."),
        patch_size_level0: int | None = typer.Option(
            None, help="Patch size in level-0 pixels (heatmap)."
        ),
    ) -> None:
        """Which knowledge statements the model weighed, and where they looked (patches, genes)."""
        from kemm.engine.explain import explain_case, write_explanation

        result = explain_case(run_dir, case, model=model)
        written = write_explanation(
            result, out or run_dir / "explanations", slide, patch_size_level0
        )
        from kemm.engine.explain import summary_text

        console.print(summary_text(result), highlight=False, soft_wrap=True)
        if result["contributions"]:
            console.print("\ncontribution to the risk (statements removed, facts set to the "
                          "training-fold mean):", highlight=False)  # fmt: skip
            for item in result["contributions"]:
                console.print(f"{item['delta_risk']:+8.4f}  [{item['kind']}] {item['text']}",
                              highlight=False, soft_wrap=True)  # fmt: skip
        if result["learned_queries"]:
            console.print(f"({len(result['learned_queries'])} learned queries, listed in the JSON)",
                          highlight=False)  # fmt: skip
        console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)
