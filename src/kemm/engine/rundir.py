"""The layout of a run directory, and reloading what a run saved: one place for both.

::

    config.yaml            resolved config (a rerun with a different config is refused)
    inputs.json            fingerprints of every input file (a resume with changed inputs is
                           refused)
    .kemm-run.lock         held while a run writes here (a second run into it is refused)
    data.json              cohort summary, genomic grouping, text/bag coverage, exclusions
    folds/<model>/seed<s>/<fold>/
        preprocess.json    time bins and the preprocessing fitted on the training fold
        result.json        metrics and facts of the fold (written last: a fold is finished
                           once it exists)
        predictions.csv    the fold's out-of-fold predictions
        model_state.json   a tabular model or a stack's combiner (JSON, never pickles)
        model.json + <weights>.safetensors   a network (architecture, then weights)
        residual.json      a residual model's linear part, combiner and Breslow curves
    base_risks/<model>/seed<s>/<fold>.json   out-of-fold base risks shared by stacks
    predictions.csv        every out-of-fold prediction (risk and survival curve)
    metrics.json           {"protocol": {...}, "models": {NAME: {"c_index": {...}, ...}}}
    km_<model>.png         Kaplan-Meier curves of predicted risk groups with the log-rank p
    report.md              N, events, follow-up, the metrics table, warnings
    report.html            the same, self-contained, with every plot and calibration
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kemm import __version__
from kemm.engine.config import RunConfig, dump_config, load_config
from kemm.engine.data import FoldPreprocessor
from kemm.errors import ConfigError, InputDataError, KemmError
from kemm.survival import TimeBins


@dataclass(frozen=True)
class FoldDirectory:
    """What one (model, seed, fold) fit saved, and how it is read back."""

    path: Path

    @property
    def seed_name(self) -> str:
        return self.path.parent.name

    @property
    def fold_name(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        return (self.path / "result.json").is_file()

    def write_preprocessing(self, bins: TimeBins, pre: FoldPreprocessor) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.path / "preprocess.json", {"bins": bins.to_dict(), **pre.to_dict()})

    def preprocessing(self) -> tuple[FoldPreprocessor, TimeBins]:
        path = self.path / "preprocess.json"
        state = _read_json(path, "preprocessing")
        with malformed(path, "preprocessing"):
            return FoldPreprocessor.from_dict(state), TimeBins.from_dict(state["bins"])

    def write_result(self, result: dict, predictions: pd.DataFrame) -> None:
        predictions.to_csv(self.path / "predictions.csv", index=False)
        (self.path / "result.json").write_text(json.dumps(result, indent=1, default=float))

    def result(self) -> dict:
        return _read_json(self.path / "result.json")

    def train_risk_median(self) -> float:
        """The fold's risk-group cut point: the median risk of its training patients."""
        path = self.path / "predictions.csv"
        if not path.is_file():
            raise InputDataError("the fold's predictions are missing", file=str(path))
        with malformed(path, "fold predictions"):
            return float(pd.read_csv(path, nrows=1)["train_risk_median"].iloc[0])

    def write_tabular(self, state: dict) -> None:
        _write_json(self.path / "model_state.json", state)

    def tabular(self):
        """The fitted tabular model or stack combiner (predicts risks and survival)."""
        from kemm.models import restore_tabular

        path = self.path / "model_state.json"
        state = _read_json(path, "model state")
        with malformed(path, "model state"):
            return restore_tabular(state)

    def write_network(self, model, name: str, n_bins: int, dims, weights: str = "weights") -> None:
        from dataclasses import asdict

        from safetensors.torch import save_file

        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            self.path / f"{weights}.safetensors",
        )
        _write_json(self.path / "model.json", {
            "name": name, "params": asdict(model.params), "n_bins": n_bins, "dims": dims.__dict__,
            "patch_budget": asdict(model.patch_budget), "kemm_version": __version__,
        })  # fmt: skip

    @property
    def has_network(self) -> bool:
        return (self.path / "model.json").is_file()

    def network(self, weights: str = "weights"):
        """The saved network in evaluation mode (safetensors: no code is unpickled)."""
        from safetensors.torch import load_file

        from kemm.models.base import InputDims, PatchBudget
        from kemm.models.registry import create

        meta_path = self.path / "model.json"
        meta = _read_json(meta_path, "network description")
        with malformed(meta_path, "network description"):
            params = dict(meta["params"])
            # runs saved before the patch budget was the run's kept it among the model's params
            budget = {key: params.pop(key) for key in ("max_train_patches", "eval_chunk_size")
                      if key in params} | meta.get("patch_budget", {})  # fmt: skip
            network = create(
                meta["name"], dims=InputDims(**meta["dims"]), n_bins=meta["n_bins"], **params
            )
            network.set_patch_budget(PatchBudget(**budget))
        weights_path = self.path / f"{weights}.safetensors"
        if not weights_path.is_file():
            raise InputDataError("the run's network weights are missing", file=str(weights_path))
        with malformed(weights_path, "network weights file"):
            network.load_state_dict(load_file(weights_path))
        return network.eval()

    def write_breslow(self, state: dict) -> None:
        """The Breslow baseline of a Cox-trained network (its survival curves)."""
        _write_json(self.path / "breslow.json", state)

    def breslow(self) -> dict | None:
        path = self.path / "breslow.json"
        return _read_json(path, "Breslow baseline") if path.is_file() else None

    def write_residual(self, state: dict) -> None:
        _write_json(self.path / "residual.json", state)

    def residual(self) -> dict:
        path = self.path / "residual.json"
        if not path.is_file():
            raise InputDataError(
                "this residual model was trained by a kemm version that did not save what "
                "prediction needs (residual.json); retrain the run",
                file=str(self.path),
            )
        return _read_json(path)


class RunDirectory:
    """A run folder: where each output lives, and reading it back."""

    ENTRIES = ("config.yaml", "inputs.json", "data.json", "folds", "base_risks",
               "predictions.csv", "metrics.json", "report.md", "report.html")  # fmt: skip

    def __init__(self, root: str | Path):
        self.root = Path(root)

    config_path = property(lambda self: self.root / "config.yaml")
    inputs_path = property(lambda self: self.root / "inputs.json")
    metrics_path = property(lambda self: self.root / "metrics.json")
    predictions_path = property(lambda self: self.root / "predictions.csv")
    data_summary_path = property(lambda self: self.root / "data.json")
    report_path = property(lambda self: self.root / "report.md")
    html_report_path = property(lambda self: self.root / "report.html")

    def km_plot(self, label: str) -> Path:
        """``km_<label>.png`` with a portable name: ``Clinical Cox (facts)`` ->
        ``km_Clinical_Cox_facts.png`` (no spaces, brackets or slashes)."""
        return self.root / f"km_{portable_name(label)}.png"

    def fold(self, label: str, seed: int, fold_name: str) -> FoldDirectory:
        return FoldDirectory(self.root / "folds" / label / f"seed{seed}" / fold_name)

    def base_risks_cache(self, label: str, seed: int, fold_name: str) -> Path:
        return self.root / "base_risks" / label / f"seed{seed}" / f"{fold_name}.json"

    def finished_folds(self, label: str, seeds: Iterable[int]) -> list[FoldDirectory]:
        return sorted(
            (FoldDirectory(p.parent) for seed in seeds
             for p in (self.root / "folds" / label / f"seed{seed}").glob("*/result.json")),
            key=lambda f: f.path,
        )  # fmt: skip

    def finished_results(self) -> list[Path]:
        return sorted(self.root.glob("folds/*/seed*/*/result.json"))

    def fold_predictions(self) -> list[Path]:
        return sorted(self.root.glob("folds/*/seed*/*/predictions.csv"))

    def sibling(self, fold: FoldDirectory, label: str) -> FoldDirectory:
        """Model ``label``'s folder for the same seed and fold as ``fold``."""
        return FoldDirectory(self.root / "folds" / label / fold.seed_name / fold.fold_name)

    # -- exclusive use and input fingerprints -----------------------------------------------
    def lock(self) -> None:
        """Hold this folder for the current process until it exits (or :meth:`unlock`); a
        folder another run holds is refused."""
        import fcntl

        if self.root.exists() and not self.root.is_dir():
            raise InputDataError(
                "--out is a file, not a folder; choose a folder", file=str(self.root)
            )
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".kemm-run.lock", "a+")  # noqa: SIM115 - held until unlock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"{self.root}: another kemm run is writing into this folder; wait for it to "
                "finish, or choose another --out"
            ) from None
        self._lock = handle

    def unlock(self) -> None:
        handle = getattr(self, "_lock", None)
        if handle is not None:
            handle.close()
            self._lock = None

    def changed_inputs(self, fingerprints: dict[str, str]) -> list[str] | None:
        """Inputs whose fingerprint differs from the one recorded (None: nothing recorded)."""
        if not self.inputs_path.is_file():
            return None
        recorded = _read_json(self.inputs_path, "input fingerprints")
        changed = [name for name in sorted(set(recorded) | set(fingerprints))
                   if recorded.get(name) != fingerprints.get(name)]  # fmt: skip
        return changed

    def write_inputs(self, fingerprints: dict[str, str]) -> None:
        self.inputs_path.write_text(json.dumps(fingerprints, indent=1, sort_keys=True))

    # -- config ----------------------------------------------------------------------------
    def read_config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise InputDataError("not a kemm run directory (no config.yaml)", file=str(self.root))
        return load_config(self.config_path)

    def holds_other_config(self, config: RunConfig) -> bool:
        return self.config_path.exists() and self.config_path.read_text() != dump_config(config)

    def write_config(self, config: RunConfig) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(dump_config(config))

    def clear(self) -> None:
        """Delete what a run wrote here (and nothing else the folder holds)."""
        for entry in [self.root / name for name in self.ENTRIES] + sorted(
            self.root.glob("km_*.png")
        ):
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.exists():
                entry.unlink()

    # -- results ---------------------------------------------------------------------------
    def write_metrics(self, metrics: dict) -> None:
        self.metrics_path.write_text(json.dumps(metrics, indent=1, default=float))

    def read_metrics(self) -> dict:
        if not self.metrics_path.is_file():
            raise InputDataError(
                "no metrics.json (is this a finished kemm run directory?)", file=str(self.root)
            )
        return _read_json(self.metrics_path)

    def expected_fold_fits(self, config: RunConfig) -> int | None:
        """Fold fits per model of the finished run (``None`` while that is unknown)."""
        if self.metrics_path.is_file():
            protocol = self.read_metrics()["protocol"]
            return len(protocol["folds"]) * len(protocol["seeds"])
        if config.data.folds is not None:
            return len(config.data.folds) * len(config.seed_list)
        return None


def portable_name(label: str) -> str:
    """A file-name part of ``label`` that every shell and file system takes as is."""
    import re

    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", label.replace("−", "-")).strip("_.")
    return name or "model"


def fingerprints(files: dict[str, list[Path]], hash_limit: int = 256 * 2**20) -> dict[str, str]:
    """``path -> sha256`` of each input file (``size/mtime`` for bags and files past
    ``hash_limit`` bytes); a missing file is ``missing``."""
    import hashlib

    out = {}
    for role, paths in files.items():
        for path in paths:
            if not path.is_file():
                out[str(path)] = "missing"
                continue
            stat = path.stat()
            if role == "bags" or stat.st_size > hash_limit:
                out[str(path)] = f"size={stat.st_size} mtime_ns={stat.st_mtime_ns}"
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(2**20), b""):
                    digest.update(block)
            out[str(path)] = "sha256=" + digest.hexdigest()
    return out


@contextlib.contextmanager
def malformed(path: Path, what: str):
    """Reading back a file the run wrote: a corrupt or truncated one is one error naming it
    (never a KeyError from deep inside a model)."""
    try:
        yield
    except KemmError:  # already one line naming its problem
        raise
    except Exception as error:  # noqa: BLE001 - any failure to rebuild from it
        detail = " ".join(str(error).split())[:160]
        raise InputDataError(
            f"the run's {what} is corrupt or from an incompatible kemm version "
            f"({type(error).__name__}: {detail}); retrain the run",
            file=str(path),
        ) from None


def _read_json(path: Path, what: str = "file") -> Any:
    if not path.is_file():
        raise InputDataError(f"the run's {what} is missing", file=str(path))
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputDataError(f"not a readable JSON {what} ({error})", file=str(path)) from None


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))
