"""K-fold cross-validation on given splits, with resume, predictions, metrics and plots.

Scheduling (serial, local processes, Ray) and one fold's fit live here; where each output goes
is :class:`kemm.engine.rundir.RunDirectory`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kemm import __version__
from kemm.cohort import Split
from kemm.cohort.prepared import PreparedCohort, input_files, prepare_cohort
from kemm.device import resolve_device
from kemm.engine.config import ModelConfig, RunConfig
from kemm.engine.data import BagCache, FoldPreprocessor
from kemm.engine.fold_models import FoldFit, fold_model, fold_model_type, used_modalities
from kemm.engine.html_report import write_html_report
from kemm.engine.results import aggregate_metrics, paired_comparisons, plot_km, write_report
from kemm.engine.rundir import FoldDirectory, RunDirectory, fingerprints
from kemm.engine.trainer import fit_bins, seed_everything
from kemm.errors import ConfigError
from kemm.models.registry import get_entry
from kemm.survival import evaluate, integrated_brier, km_median, median_follow_up
from kemm.survival.metrics import IPCW_RULE

log = logging.getLogger(__name__)


@dataclass
class FoldTask:
    seed: int
    fold_index: int
    split: Split
    model: ModelConfig

    def directory(self, run: RunDirectory) -> FoldDirectory:
        return run.fold(self.model.display, self.seed, self.split.name)


def fold_seed(seed: int, fold_index: int) -> int:
    return seed * 1000 + fold_index


class CrossValidationRunner:
    """Runs every (seed, fold, model) of a config into ``out_dir``; finished folds are skipped."""

    def __init__(
        self,
        config: RunConfig,
        out_dir: str | Path,
        *,
        text_loader: Callable | None = None,
        show_progress: bool = True,
        on_fold_done: Callable[[FoldTask, dict], None] | None = None,
        ray_address: str | None = None,
        workers: int = 1,
        overwrite: bool = False,
    ):
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.config = config
        self.workers = workers
        self.out = Path(out_dir)
        self.run_dir = RunDirectory(self.out)
        self.text_loader = text_loader
        self.show_progress = show_progress
        self.on_fold_done = on_fold_done
        self.device = resolve_device(config.train.device)
        self.ray_address = ray_address
        self.overwrite = overwrite

    def _claim_directory(self, data: PreparedCohort) -> None:
        """Lock the run directory and write the config and input fingerprints into it. A
        directory holding finished folds of another config, or of this config on inputs that
        have changed since, is refused (resuming would mix two runs) unless ``overwrite``,
        which deletes that run first; one without finished folds is simply taken over."""
        run = self.run_dir
        run.lock()
        inputs = fingerprints(input_files(self.config.data, data))
        changed = run.changed_inputs(inputs) if run.finished_results() else None
        if changed and not self.overwrite and not run.holds_other_config(self.config):
            raise ConfigError(
                f"{self.out}: the inputs changed since its {len(run.finished_results())} finished "
                f"fold(s) were trained ({_describe(changed)}); to keep them, rerun with a new "
                "--out; to retrain, add --overwrite"
            )
        if changed and self.overwrite:
            log.warning("--overwrite: inputs changed; deleting the previous run in %s", self.out)
            run.clear()
        if run.holds_other_config(self.config):
            finished = run.finished_results()
            if finished and not self.overwrite:
                raise ConfigError(
                    f"{self.out} holds {len(finished)} finished fold(s) of a run with a different "
                    "config; to keep them, rerun with a new --out; to replace them, add "
                    "--overwrite (or, to resume that run, use its config: "
                    f"{run.config_path})"
                )
            if finished or self.overwrite:
                log.warning("--overwrite: deleting the previous run in %s", self.out)
                run.clear()
        run.write_config(self.config)
        run.write_inputs(inputs)

    def run(self) -> dict:
        started = time.time()
        data = prepare_cohort(self.config.data, text_loader=self.text_loader)
        try:
            self._claim_directory(data)  # once the config and its inputs are known to be good
            return self._run(data, started)
        finally:
            self.run_dir.unlock()

    def _run(self, data: PreparedCohort, started: float) -> dict:
        self._set_threads()
        bag_cache = BagCache(data.bag_requirements)
        tasks = self.tasks(data)
        results: list[dict] = []
        pending: list[int] = []
        for index, task in enumerate(tasks):
            fold = task.directory(self.run_dir)
            if fold.finished:
                results.append(fold.result())
            else:
                pending.append(index)
        if results:
            log.info("resume: %d of %d fold fits already finished in %s; %d to go",
                     len(results), len(tasks), self.out, len(pending))  # fmt: skip
        if self.ray_address and pending:
            results += self._run_on_ray(pending, data)
        elif self.workers > 1 and len(pending) > 1:
            results += self._run_in_processes(tasks, pending, data)
        else:
            with self._progress() as progress:
                bar = progress.add_task(
                    "cross-validation", total=len(tasks), completed=len(tasks) - len(pending)
                )
                for index in pending:
                    task = tasks[index]
                    progress.update(
                        bar, description=f"{task.model.display} seed{task.seed} {task.split.name}"
                    )
                    result = self._run_fold(task, data, bag_cache, task.directory(self.run_dir))
                    results.append(result)
                    if self.on_fold_done is not None:
                        self.on_fold_done(task, result)
                    progress.advance(bar)
        return self._finish(data, results, time.time() - started)

    def _set_threads(self) -> None:
        threads = self.config.train.num_threads
        if threads is None and self.device.type == "cpu":
            # One patient (one capped bag) or a small dense batch per step: on CPU, thread
            # hand-offs cost more than they save, and collapse on a shared machine.
            threads = 1
        if threads:
            torch.set_num_threads(threads)

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), TimeRemainingColumn(), disable=not self.show_progress,
        )  # fmt: skip

    def tasks(self, data: PreparedCohort) -> list[FoldTask]:
        return [
            FoldTask(seed, k, split, model)
            for seed in self.config.seed_list
            for k, split in enumerate(data.splits)
            for model in self.config.models
        ]

    def _run_in_processes(
        self, tasks: list[FoldTask], pending: list[int], data: PreparedCohort
    ) -> list[dict]:
        """Pending tasks on ``workers`` local processes (one CPU thread each). Each worker gets
        the cohort the parent prepared (sent once, when the worker starts; nothing is re-read)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        raw = self.config.model_dump(mode="json")
        workers = min(self.workers, len(pending))
        results = []
        pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(raw, str(self.out), data),
        )  # fmt: skip
        try:
            with self._progress() as progress:
                bar = progress.add_task(
                    f"cross-validation ({workers} processes)",
                    total=len(tasks),
                    completed=len(tasks) - len(pending),
                )
                # longest first (a residual's three networks, then networks, then tabular fits),
                # so the run does not end on one long fit with the other workers idle; each fit
                # depends only on its own seed and fold, so the order changes no result
                order = sorted(
                    pending, key=lambda i: -fold_model_type(tasks[i].model).relative_cost
                )
                futures = {pool.submit(_run_task_in_worker, index): index for index in order}
                for future in as_completed(futures):
                    result = future.result()
                    results.append(result)
                    if self.on_fold_done is not None:
                        self.on_fold_done(tasks[futures[future]], result)
                    progress.advance(bar)
        except BaseException:
            # Interrupted or failed: stop the workers now. Folds they had not finished have no
            # result.json and are redone on resume; finished ones are kept.
            stop_worker_pool(pool)
            raise
        pool.shutdown()
        return results

    def _run_on_ray(self, pending: list[int], data: PreparedCohort) -> list[dict]:
        """Each pending (seed, fold, model) becomes a Ray task; the prepared cohort goes through
        the object store once; results land in the same folders."""
        import ray

        if not ray.is_initialized():
            ray.init(address=None if self.ray_address == "local" else self.ray_address, include_dashboard=False,
                     ignore_reinit_error=True, log_to_driver=False)  # fmt: skip
        remote = ray.remote(num_gpus=1 if torch.cuda.is_available() else 0)(_run_task_remotely)
        raw = self.config.model_dump(mode="json")
        cohort = ray.put(data)
        futures = [remote.remote(raw, str(self.out), cohort, index) for index in pending]
        return ray.get(futures)

    def _run_fold(
        self, task: FoldTask, data: PreparedCohort, bag_cache: BagCache, folder: FoldDirectory
    ) -> dict:
        """Fit one (seed, fold, model): preprocessing and time bins on the training part, the
        model of the task's kind (:mod:`kemm.engine.fold_models`), its metrics and predictions
        on the evaluation part; ``result.json`` is written last."""
        config = self.config
        cohort = data.cohort
        info = get_entry(task.model.name)
        modalities = used_modalities(task.model, data)
        required = (set(info.requires_any_of) & modalities) or modalities

        def usable(ids) -> tuple[list[str], list[str]]:
            keep = [c for c in ids if any(data.has_modality(c, m) for m in required)]
            return keep, [c for c in ids if c not in set(keep)]

        train_ids, excluded_train = usable(task.split.train)
        test_ids, excluded_test = usable(task.split.test)
        if not modalities:
            raise ConfigError(
                f"model {task.model.name!r} uses {sorted(info.modalities)} but the config provides "
                f"{sorted(data.available_modalities)}"
            )
        pre = FoldPreprocessor.fit(
            data, train_ids, config.data.genomics.top_variance if config.data.genomics else None
        ).restrict(task.model.clinical)
        train_target = cohort.subset(train_ids).target
        test_target = cohort.subset(test_ids).target
        bins = fit_bins(train_target, cohort.target, config.train)
        seed = fold_seed(task.seed, task.fold_index)
        seed_everything(seed)
        folder.write_preprocessing(bins, pre)
        started = time.time()
        model = fold_model(task.model, config, pre)
        fitted = model.fit(FoldFit(
            data, train_ids, test_ids, train_target, test_target, bins, seed, self.device,
            bag_cache, lambda label: self.run_dir.base_risks_cache(label, task.seed, task.split.name),
        ))  # fmt: skip
        model.save(folder)
        metrics = evaluate(train_target, test_target, fitted.test_risk)
        metrics["ibs"] = self._ibs(task, train_target, test_target, fitted.test_survival)
        predictions = pd.DataFrame({
            "case_id": test_ids, "seed": task.seed, "fold": task.split.name, "model": task.model.display,
            "time": test_target.time, "event": test_target.event.astype(int), "risk": fitted.test_risk,
            "train_risk_median": float(np.median(fitted.train_risk)),
        })  # fmt: skip
        for k in range(fitted.curves.shape[1]):
            predictions[f"surv_{k}"] = fitted.curves[:, k]
        result = {
            "model": task.model.display, "name": task.model.name, "seed": task.seed, "fold": task.split.name,
            "metrics": metrics, "n_train": len(train_ids), "n_test": len(test_ids),
            "excluded": {"train": excluded_train, "test": excluded_test},
            "bins": bins.to_dict(), "seconds": time.time() - started, **fitted.facts,
        }  # fmt: skip
        folder.write_result(result, predictions)
        return result

    @staticmethod
    def _ibs(task, train_target, test_target, survival) -> float:
        try:
            return integrated_brier(train_target, test_target, survival)
        except Exception as error:  # noqa: BLE001 - reported as NaN like every undefined metric
            log.warning("IBS undefined for %s: %s", task.model.display, error)
            return float("nan")

    def _finish(self, data: PreparedCohort, results: list[dict], seconds: float) -> dict:
        config = self.config
        run = self.run_dir
        frames = [pd.read_csv(p) for p in run.fold_predictions()]
        predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        predictions.to_csv(run.predictions_path, index=False)
        protocol = {
            "name": config.name,
            "cohort": config.data.cohort,
            "cancer": _resolved_cancer(config, data),
            "folds": [s.name for s in data.splits],
            "seeds": config.seed_list,
            "selection": config.train.selection,
            "selection_note": (
                "fixed number of epochs (last epoch), evaluation fold never used for selection"
                if config.train.selection == "last"
                else "best epoch on an inner validation split carved from the training fold"
            ),
            "binning": "whole-cohort (legacy, leaky)" if config.train.legacy_binning else "training-fold quartiles of uncensored times",
            "preprocessing": "genomic scalers and filters fitted on the training fold only",
            "ipcw_rule": IPCW_RULE,
            "std": "population std (ddof=0) over folds x seeds",
            "kemm_version": __version__,
            "wall_seconds": round(seconds, 1),
            "patients": _outcome_summary(data),
        }  # fmt: skip
        metrics = aggregate_metrics(
            results, config, protocol, bootstrap=config.eval.bootstrap, predictions=predictions
        )
        run.write_metrics(metrics)
        run.data_summary_path.write_text(json.dumps(_data_summary(data), indent=1, default=str))
        for model in config.models:
            subset = (
                predictions[predictions["model"] == model.display]
                if len(predictions)
                else predictions
            )
            if len(subset):
                p_value = plot_km(
                    subset,
                    run.km_plot(model.display),
                    model.display,
                    config.eval.risk_groups,
                )
                metrics["models"][model.display]["logrank_p"] = p_value
        metrics["paired"] = paired_comparisons(predictions)
        run.write_metrics(metrics)
        warnings = _data_warnings(data)
        write_report(run.report_path, metrics, warnings)
        if config.eval.html:
            write_html_report(
                run.html_report_path, metrics, predictions, _calibration_times(results),
                {m.display: run.km_plot(m.display) for m in config.models}, warnings,
            )  # fmt: skip
        return metrics


_WORKER: dict = {}  # per-process state of a local worker (set once by _init_worker)


def _init_worker(raw_config: dict, out: str, data: PreparedCohort) -> None:
    import contextlib
    import signal

    with contextlib.suppress(ValueError):  # not the main thread (a Ray worker): leave it
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    runner = CrossValidationRunner(RunConfig.model_validate(raw_config), out, show_progress=False)
    runner._set_threads()
    _WORKER.update(runner=runner, data=data, tasks=runner.tasks(data),
                   cache=BagCache(data.bag_requirements))  # fmt: skip


def _run_task_in_worker(index: int) -> dict:
    runner, task = _WORKER["runner"], _WORKER["tasks"][index]
    return runner._run_fold(task, _WORKER["data"], _WORKER["cache"], task.directory(runner.run_dir))


def _run_task_remotely(raw_config: dict, out: str, data: PreparedCohort, index: int) -> dict:
    """A Ray task: one (seed, fold, model) on the cohort the driver prepared."""
    _init_worker(raw_config, out, data)
    return _run_task_in_worker(index)


def _describe(changed: list[str]) -> str:
    names = [Path(p).name for p in changed]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _resolved_cancer(config: RunConfig, data: PreparedCohort) -> str | None:
    """The cancer type the run's report rules and PBK used (None when it reads neither and its
    cohort names no cancer)."""
    from kemm.cohort.prepared import cancer_type

    try:
        return cancer_type(config.data, data.cohort).code
    except ConfigError:
        return None


def _calibration_times(results: list[dict]) -> dict[str, float]:
    """Each fold's calibration time: the end of its second time bin (months)."""
    from kemm.survival import TimeBins

    times = {}
    for result in results:
        bin_times = TimeBins.from_dict(result["bins"]).bin_times
        if len(bin_times) > 1:
            times[result["fold"]] = float(bin_times[1])
    return times


def _data_warnings(data: PreparedCohort) -> list[str]:
    """What the data preparation warned about, for ``report.md``."""
    notes = []
    if data.text is not None and data.text.reports_without_statements:
        silent = data.text.reports_without_statements
        notes.append(f"{len(silent)} report(s) yielded no statement (e.g. {silent[:3]}); those "
                     "patients use the no-report path")  # fmt: skip
    bags = data.bag_report or {}
    if bags.get("slides_without_features"):
        notes.append(
            f"{bags['slides_without_features']} slide(s) listed in the table have no feature "
            f"file in {bags['features_dir']} (e.g. {bags['example_missing'][:3]}); "
            f"{bags['patients_without_bags']} patient(s) have no bag"
        )
    return notes


def _outcome_summary(data: PreparedCohort) -> dict:
    """N, events and follow-up of the patients the folds evaluate."""
    ids = sorted({c for split in data.splits for c in split.test}) or data.cohort.case_ids
    target = data.cohort.subset(ids).target
    return {
        "n": len(ids),
        "events": int(target.event.sum()),
        "median_follow_up_months": median_follow_up(target.time, target.event),
        "median_survival_months": km_median(target.time, target.event),
    }


def _data_summary(data: PreparedCohort) -> dict:
    out: dict = {
        "cohort": data.cohort.summary(),
        "genomic_groups": {g.name: len(g.features) for g in data.groups},
    }
    if data.grouping_report is not None:
        out["grouping"] = data.grouping_report.to_dict()
    if data.text is not None:
        out["text"] = {
            "encoder": data.text.encoder,
            "patients_with_report_statements": len(data.text.report_embeddings),
            "reports_without_statements": len(data.text.reports_without_statements),
            "pbk_statements": len(data.text.pbk_statements),
        }
    if data.bag_report:
        out["wsi"] = data.bag_report
    return out


def stop_worker_pool(pool) -> None:
    """Stop a process pool now (an interrupt or a failed task): queued tasks are cancelled and
    running workers terminated; what they had not finished is redone on resume."""
    import multiprocessing

    pool.shutdown(wait=False, cancel_futures=True)
    for child in multiprocessing.active_children():
        child.terminate()


def run_cv(config: RunConfig, out_dir: str | Path, **kwargs) -> dict:
    """Run (or resume) a cross-validation and return its metrics."""
    from kemm.cohort.text import load_text_modality

    kwargs.setdefault("text_loader", load_text_modality)
    return CrossValidationRunner(config, out_dir, **kwargs).run()
