"""K-fold cross-validation on given splits, with resume, predictions, metrics and plots.

Scheduling (serial, local processes, Ray) and one fold's fit live here; where each output goes
is :class:`kemm.engine.rundir.RunDirectory`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from scipy.stats import spearmanr

from kemm import __version__
from kemm.cohort import Split
from kemm.cohort.prepared import PreparedCohort, prepare_cohort
from kemm.device import resolve_device
from kemm.engine.config import ModelConfig, RunConfig
from kemm.engine.data import BagCache, FoldInputs, FoldPreprocessor
from kemm.engine.results import aggregate_metrics, paired_comparisons, plot_km, write_report
from kemm.engine.rundir import FoldDirectory, RunDirectory
from kemm.engine.stacking import (
    INNER_FOLDS,
    base_risks,
    tabular_kwargs,
)
from kemm.engine.trainer import (
    fit_bins,
    predict_logits,
    seed_everything,
    train_model,
)
from kemm.errors import ConfigError
from kemm.models import BreslowCurves, combine
from kemm.models.base import InputDims
from kemm.models.registry import create, get_entry
from kemm.survival import (
    evaluate,
    harrell_c,
    integrated_brier,
    km_median,
    median_follow_up,
    n_outputs,
    risk_from_logits,
    survival_from_logits,
)
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


def used_modalities(spec: ModelConfig, data: PreparedCohort) -> set[str]:
    """What the model reads: what it can use, that the data has, that the config allows."""
    entry = get_entry(spec.name)
    used = set(entry.modalities) & data.available_modalities
    return used & set(spec.modalities) if spec.modalities is not None else used


def _dims_for(dims: InputDims, modalities: set[str]) -> InputDims:
    """The input sizes of what a model actually receives: a model never builds a branch for a
    modality the config withholds from it."""
    return replace(
        dims,
        wsi_dim=dims.wsi_dim if "wsi" in modalities else None,
        text_dim=dims.text_dim if {"report", "pbk"} & modalities else None,
        clinical_dim=dims.clinical_dim if "clinical" in modalities else None,
        fact_columns=dims.fact_columns if "report" in modalities else [],
        fact_directions=dims.fact_directions if "report" in modalities else [],
    )


# Cross-fitting of a residual network (fixed a priori): each of the 3 networks trains on two
# thirds of the training fold and scores the third it did not see.
RESIDUAL_FOLDS = 3


def fold_seed(seed: int, fold_index: int) -> int:
    return seed * 1000 + fold_index


def inner_split(
    positions: list[int], event: np.ndarray, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """A validation part carved from the training fold, stratified by event."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for flag in (True, False):
        group = [p for p in positions if bool(event[p]) == flag]
        rng.shuffle(group)
        n_val = int(round(len(group) * fraction))
        val += group[:n_val]
        train += group[n_val:]
    return sorted(train), sorted(val)


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

    def _claim_directory(self) -> None:
        """Write the config into the run directory. A directory holding finished folds of
        another config is refused (resuming would mix two runs) unless ``overwrite``, which
        deletes that run first; one without finished folds is simply taken over."""
        run = self.run_dir
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

    def run(self) -> dict:
        started = time.time()
        data = prepare_cohort(self.config.data, text_loader=self.text_loader)
        self._claim_directory()  # once the config and its inputs are known to be good
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
                futures = {pool.submit(_run_task_in_worker, index): index for index in pending}
                for future in as_completed(futures):
                    result = future.result()
                    results.append(result)
                    if self.on_fold_done is not None:
                        self.on_fold_done(tasks[futures[future]], result)
                    progress.advance(bar)
        except BaseException:
            # Interrupted or failed: stop the workers now. Folds they had not finished have no
            # result.json and are redone on resume; finished ones are kept.
            pool.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():
                child.terminate()
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
        if info.kind in ("tabular", "stack"):
            fit = self._fit_tabular if info.kind == "tabular" else self._fit_stack
            train_risk, test_risk, curves, extra = fit(
                task, data, pre, train_ids, test_ids, train_target, test_target, bins, folder
            )
            metrics = evaluate(train_target, test_target, test_risk)
            metrics["ibs"] = extra.pop("ibs")
        else:
            train_risk, test_risk, curves, extra = self._fit_torch(
                task, data, pre, train_ids, test_ids, train_target, test_target, bins, seed,
                bag_cache, folder,
            )  # fmt: skip
            if "ibs" in extra:  # a residual model: Breslow curves, IBS computed from them
                metrics = evaluate(train_target, test_target, test_risk)
                metrics["ibs"] = extra.pop("ibs")
            else:
                metrics = evaluate(train_target, test_target, test_risk, curves, bins)
        predictions = pd.DataFrame({
            "case_id": test_ids, "seed": task.seed, "fold": task.split.name, "model": task.model.display,
            "time": test_target.time, "event": test_target.event.astype(int), "risk": test_risk,
            "train_risk_median": float(np.median(train_risk)),
        })  # fmt: skip
        for k in range(curves.shape[1]):
            predictions[f"surv_{k}"] = curves[:, k]
        result = {
            "model": task.model.display, "name": task.model.name, "seed": task.seed, "fold": task.split.name,
            "metrics": metrics, "n_train": len(train_ids), "n_test": len(test_ids),
            "excluded": {"train": excluded_train, "test": excluded_test},
            "bins": bins.to_dict(), "seconds": time.time() - started, **extra,
        }  # fmt: skip
        folder.write_result(result, predictions)
        return result

    def _fit_tabular(
        self, task, data, pre, train_ids, test_ids, train_target, test_target, bins, folder
    ):
        modalities = used_modalities(task.model, data)
        x_train, names = pre.tabular_matrix(data, train_ids, modalities)
        x_test, _ = pre.tabular_matrix(data, test_ids, modalities)
        model = create(task.model.name, **tabular_kwargs(task.model, data, names, True))
        model.fit(x_train, train_target)
        train_risk = model.predict_risk(x_train)
        test_risk = model.predict_risk(x_test)
        curves = model.predict_survival(x_test, bins.bin_times)
        ibs = float("nan")
        try:
            ibs = integrated_brier(
                train_target, test_target, lambda t: model.predict_survival(x_test, t)
            )
        except Exception as error:  # noqa: BLE001 - reported as NaN like every undefined metric
            log.warning("IBS undefined for %s: %s", task.model.display, error)
        if hasattr(model, "to_state"):
            folder.write_tabular(model.to_state())
        return (
            train_risk,
            test_risk,
            curves,
            {"ibs": ibs, "selection": "none (closed-form fit on the training fold)"},
        )

    def _base_risks(self, labels: list[str], task: FoldTask, data, train_ids, test_ids):
        """Out-of-fold training risks and refit evaluation risks of the named base models."""
        specs = [self.config.model_by_label(label) for label in labels]
        top = self.config.data.genomics.top_variance if self.config.data.genomics else None
        return [
            base_risks(
                spec, used_modalities(spec, data), data, train_ids, test_ids,
                seed=fold_seed(task.seed, task.fold_index), top_variance=top,
                cache=self.run_dir.base_risks_cache(spec.display, task.seed, task.split.name),
            )
            for spec in specs
        ]  # fmt: skip

    def _fit_stack(
        self, task, data, pre, train_ids, test_ids, train_target, test_target, bins, folder
    ):
        model = create(task.model.name, **task.model.params)
        risks = self._base_risks(model.base, task, data, train_ids, test_ids)
        x_train = np.column_stack([r.train for r in risks])
        x_test = np.column_stack([r.test for r in risks])
        model.fit(x_train, train_target)
        test_risk = model.predict_risk(x_test)
        curves = model.predict_survival(x_test, bins.bin_times)
        ibs = self._ibs(
            task, train_target, test_target, lambda t: model.predict_survival(x_test, t)
        )
        folder.write_tabular(model.to_state())
        return model.predict_risk(x_train), test_risk, curves, {
            "ibs": ibs, "stack_weights": model.weights_, "stack_alpha": model.combiner.alpha_,
            "selection": f"combiner penalty by inner CV over {INNER_FOLDS}-fold out-of-fold base risks",
        }  # fmt: skip

    @staticmethod
    def _ibs(task, train_target, test_target, survival) -> float:
        try:
            return integrated_brier(train_target, test_target, survival)
        except Exception as error:  # noqa: BLE001 - reported as NaN like every undefined metric
            log.warning("IBS undefined for %s: %s", task.model.display, error)
            return float("nan")

    def _network(self, task, dims: InputDims, n_bins: int):
        """A new network for ``task``, reading patches within the run's budget, with the
        outputs the run's loss trains (one per time bin, or one log hazard ratio for Cox)."""
        n_out = n_outputs(self.config.train.loss, n_bins)
        model = create(task.model.name, dims=dims, n_bins=n_out, **task.model.params)
        model.set_patch_budget(self.config.train.patch_budget())
        return model

    def _fit_torch(self, task, data, pre, train_ids, test_ids, train_target, test_target, bins,
                   seed, bag_cache, folder):  # fmt: skip
        config = self.config
        dims = _dims_for(pre.dims(data), used_modalities(task.model, data))
        model = self._network(task, dims, bins.n_bins)
        all_ids = train_ids + test_ids
        inputs = FoldInputs(data, pre, all_ids, used_modalities(task.model, data), bag_cache,
                            genomic_clip=config.train.genomic_clip)  # fmt: skip
        positions = list(range(len(train_ids)))
        test_positions = list(range(len(train_ids), len(all_ids)))
        event = np.concatenate([train_target.event, np.zeros(len(test_ids), bool)]).astype(
            np.float32
        )
        bin_index = np.concatenate(
            [bins.transform(train_target.time), np.zeros(len(test_ids), int)]
        )
        times = np.concatenate([train_target.time, np.zeros(len(test_ids))])
        val_positions = None
        residual = task.model.residual_over
        if residual:
            return self._fit_residual(
                task, data, train_ids, test_ids, train_target, test_target, bins, seed, inputs,
                (bin_index, event, times), dims, folder,
            )  # fmt: skip
        if config.train.selection == "inner_val":
            positions, val_positions = inner_split(
                positions, event, config.train.inner_val_fraction, seed
            )
        result = train_model(
            model, inputs, positions, bin_index, event,
            config.train.model_copy(update={"seed": seed}), self.device,
            time=times, n_bins=bins.n_bins, val_positions=val_positions,
            val_time=train_target.time[val_positions] if val_positions else None,
        )  # fmt: skip
        train_logits = predict_logits(model, inputs, list(range(len(train_ids))), self.device)
        test_logits = predict_logits(model, inputs, test_positions, self.device)
        train_risk = risk_from_logits(torch.from_numpy(train_logits)).numpy()
        test_risk = risk_from_logits(torch.from_numpy(test_logits)).numpy()
        extra: dict = {}
        if test_logits.shape[1] == 1:  # a Cox network: Breslow curves over its risk
            breslow = BreslowCurves(train_risk, train_target)
            folder.write_breslow(breslow.to_state())
            curves = breslow(test_risk, bins.bin_times)
            extra["ibs"] = self._ibs(task, train_target, test_target,
                                     lambda t: breslow(test_risk, t))  # fmt: skip
        else:
            curves = survival_from_logits(torch.from_numpy(test_logits)).numpy()
        agreement = self._alternative_paths(model, data, inputs, test_ids, test_risk, test_target)
        folder.write_network(model, task.model.name, test_logits.shape[1], dims)
        return train_risk, test_risk, curves, {
            **extra, "selection": result.selection, "selected_epoch": result.selected_epoch,
            "history": result.history, **agreement,
        }  # fmt: skip

    def _fit_residual(self, task, data, train_ids, test_ids, train_target, test_target, bins,
                      seed, inputs, outcome, dims, folder):  # fmt: skip
        """A network learning a residual over its linear part, cross-fitted.

        The linear part is a Cox stack of the named models' out-of-fold risks. The training
        fold is cut into ``RESIDUAL_FOLDS`` parts; a network is trained on all parts but one
        with the linear part as a fixed hazard offset, and scores the part it did not see and
        the evaluation patients. A Cox model (penalty by inner CV) then weighs linear part
        against the out-of-fold network risk over the whole training fold, so a residual that
        does not generalise earns ~0 weight and the model falls back on its linear part.
        """
        from sklearn.model_selection import StratifiedKFold

        config = self.config
        bin_index, event, times = outcome
        n_out = n_outputs(config.train.loss, bins.n_bins)  # what each network is built with
        residual = task.model.residual_over
        risks = self._base_risks(residual, task, data, train_ids, test_ids)
        linear = combine([r.train for r in risks], train_target, [r.label for r in risks])
        eta_train = linear.predict_risk(np.column_stack([r.train for r in risks]))
        eta_test = linear.predict_risk(np.column_stack([r.test for r in risks]))
        n_train = len(train_ids)
        test_positions = list(range(n_train, n_train + len(test_ids)))
        network_train = np.zeros(n_train)
        network_test = np.zeros(len(test_ids))
        histories, agreement, scales = [], {}, []
        split = StratifiedKFold(RESIDUAL_FOLDS, shuffle=True, random_state=seed)
        for part, (fit, held) in enumerate(split.split(np.zeros(n_train), train_target.event)):
            part_seed = seed * 10 + part
            seed_everything(part_seed)
            model = self._network(task, dims, bins.n_bins)
            inputs.offset = np.concatenate([eta_train, eta_test]) - float(np.mean(eta_train))
            result = train_model(
                model, inputs, sorted(fit.tolist()), bin_index, event,
                config.train.model_copy(update={"seed": part_seed}), self.device,
                time=times, n_bins=bins.n_bins,
            )  # fmt: skip
            histories.append(result.history)
            inputs.offset = None  # the network's own (residual) risk
            held_risk = risk_from_logits(torch.from_numpy(
                predict_logits(model, inputs, sorted(held.tolist()), self.device))).numpy()  # fmt: skip
            test_risk = risk_from_logits(torch.from_numpy(
                predict_logits(model, inputs, test_positions, self.device))).numpy()  # fmt: skip
            # each network's risks on its own scale: standardised by its held-out part
            center, scale = float(np.mean(held_risk)), float(np.std(held_risk)) or 1.0
            network_train[sorted(held.tolist())] = (held_risk - center) / scale
            network_test += (test_risk - center) / scale / RESIDUAL_FOLDS
            scales.append({"center": center, "scale": scale})
            if part == 0:
                agreement = self._alternative_paths(
                    model, data, inputs, test_ids, test_risk, test_target
                )
                folder.write_network(model, task.model.name, n_out, dims)
            folder.write_network(model, task.model.name, n_out, dims,
                                 weights=f"weights_part{part}")  # fmt: skip
        final = combine([eta_train, network_train], train_target, ["linear part", "network"])
        train_risk = final.predict_risk(np.column_stack([eta_train, network_train]))
        test_risk = final.predict_risk(np.column_stack([eta_test, network_test]))
        breslow = BreslowCurves(train_risk, train_target)
        # what `kemm predict` needs to score new patients the same way
        folder.write_residual({
            "residual_over": list(residual), "linear_part": linear.to_state(),
            "networks": scales, "combiner": final.to_state(), "breslow": breslow.to_state(),
        })  # fmt: skip
        return train_risk, test_risk, breslow(test_risk, bins.bin_times), {
            "ibs": self._ibs(task, train_target, test_target, lambda t: breslow(test_risk, t)),
            "selection": f"fixed epochs; {RESIDUAL_FOLDS} cross-fitted networks, network weight "
                         "by a Cox model over out-of-fold risks (penalty by inner CV)",
            "selected_epoch": None, "history": histories[0],
            "residual_over": list(residual), "residual_weights": final.coef_,
            "residual_alpha": final.alpha_,
            "linear_part_c_index": harrell_c(test_target.event, test_target.time, eta_test),
            "network_c_index": harrell_c(test_target.event, test_target.time, network_test),
            **agreement,
        }  # fmt: skip

    def _alternative_paths(self, model, data, inputs, test_ids, main_risk, test_target) -> dict:
        """Each alternative scoring path of the model (e.g. KEMM's report-free student): the
        Spearman correlation of its risks with the main path's over the evaluation patients that
        have the compared modality, and its C-index on the whole evaluation fold."""
        out: dict = {}
        offset = len(inputs.case_ids) - len(test_ids)
        positions = [offset + i for i in range(len(test_ids))]
        for path in model.alternative_paths(inputs.modalities):
            chosen = [i for i, c in enumerate(test_ids) if data.has_modality(c, path.compare_on)]
            if len(chosen) < 3:
                continue
            logits = predict_logits(model, inputs, positions, self.device, **path.forward_kwargs)
            risk = risk_from_logits(torch.from_numpy(logits)).numpy()
            out[f"{path.agreement}_spearman"] = float(
                spearmanr(main_risk[chosen], risk[chosen]).statistic
            )
            out[f"{path.agreement}_patients"] = len(chosen)
            out[f"{path.name}_c_index"] = harrell_c(test_target.event, test_target.time, risk)
        return out

    def _finish(self, data: PreparedCohort, results: list[dict], seconds: float) -> dict:
        config = self.config
        run = self.run_dir
        frames = [pd.read_csv(p) for p in run.fold_predictions()]
        predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        predictions.to_csv(run.predictions_path, index=False)
        protocol = {
            "cohort": config.data.cohort,
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
        write_report(run.report_path, metrics)
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


def run_cv(config: RunConfig, out_dir: str | Path, **kwargs) -> dict:
    """Run (or resume) a cross-validation and return its metrics."""
    from kemm.cohort.text import load_text_modality

    kwargs.setdefault("text_loader", load_text_modality)
    return CrossValidationRunner(config, out_dir, **kwargs).run()
