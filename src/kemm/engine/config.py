"""Typed run configuration: YAML in, validated pydantic objects inside."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kemm.cohort.config import DataConfig, _Strict
from kemm.errors import ConfigError

if TYPE_CHECKING:
    from kemm.models.base import PatchBudget


class ModelConfig(_Strict):
    name: str
    label: str | None = None  # column name in the results table (default: name)
    params: dict[str, Any] = {}
    # Restrict the inputs the model receives (default: every modality it can use that the data has).
    modalities: list[Literal["genomics", "wsi", "report", "pbk", "clinical"]] | None = None
    # Labels of tabular models of the run whose out-of-fold risks, stacked by a Cox model, form
    # a linear part that this (torch) model learns a residual over (kemm.engine.stacking).
    residual_over: list[str] | None = None
    # The covariates of `data.clinical` this model reads (default: all of them).
    clinical: list[str] | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


class TrainConfig(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)  # patients per optimizer step
    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    # Cox partial likelihood (one output, Breslow curves) or the discrete-time likelihood
    loss: Literal["cox", "nll"] = "nll"
    nll_alpha: float = Field(0.0, ge=0, le=1)
    # networks read genomic z-scores (training-fold scalers) clipped to +-genomic_clip
    genomic_clip: float | None = Field(None, gt=0)
    n_bins: int = Field(4, ge=2)
    legacy_binning: bool = False  # whole-cohort bins (MCAT habit; leaky, for reproduction only)
    selection: Literal["last", "inner_val"] = "last"
    inner_val_fraction: float = Field(0.15, gt=0, lt=0.5)
    bag_cap: int | None = Field(4096, ge=1)  # train-time random subsample of patches
    eval_chunk_size: int | None = Field(16384, ge=1)  # patches projected at once in evaluation
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA only
    num_threads: int | None = None  # CPU threads for training; default 1 (small per-step work)

    def patch_budget(self) -> PatchBudget:
        """How many patches a WSI model reads at a time in this run."""
        from kemm.models.base import PatchBudget

        return PatchBudget(max_train_patches=self.bag_cap, eval_chunk_size=self.eval_chunk_size)


class EvalConfig(_Strict):
    bootstrap: int = Field(0, ge=0)  # bootstrap resamples for confidence intervals (0 = off)
    risk_groups: int = Field(2, ge=2, le=4)


class RunConfig(_Strict):
    name: str = "run"
    data: DataConfig
    models: list[ModelConfig]
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    seeds: list[int] | None = None  # repeat the CV per seed; default [train.seed]

    @field_validator("models")
    @classmethod
    def _unique_labels(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        labels = [m.display for m in models]
        duplicates = {x for x in labels if labels.count(x) > 1}
        if duplicates:
            raise ValueError(f"duplicate model labels {sorted(duplicates)}: give each a `label`")
        if not models:
            raise ValueError("at least one model is required")
        return models

    @model_validator(mode="after")
    def _model_references(self) -> RunConfig:
        from kemm.models import registry

        labels = {m.display for m in self.models}
        kinds = {}
        for index, model in enumerate(self.models):
            try:  # every name and hyper-parameter resolved before anything is read or trained
                kinds[model.display] = registry.check_hparams(model.name, model.params).kind
            except ConfigError as error:
                raise ValueError(f"models[{index}] ({model.display!r}): {error}") from None
        for model in self.models:
            if model.residual_over and kinds[model.display] != "torch":
                raise ValueError(
                    f"model {model.display!r}: residual_over applies to network models, and "
                    f"{model.name!r} is a {kinds[model.display]} model"
                )
            unknown = sorted(set(model.clinical or []) - set(self.data.clinical))
            if unknown:
                raise ValueError(
                    f"model {model.display!r} reads clinical covariates {unknown} that "
                    f"data.clinical does not provide ({self.data.clinical})"
                )
            named = list(model.residual_over or []) + list(model.params.get("base", []))
            missing = [label for label in named if label not in labels]
            if missing:
                raise ValueError(
                    f"model {model.display!r} names {missing}, which are not models of the run "
                    f"(labels: {sorted(labels)})"
                )
            if model.display in named:
                raise ValueError(f"model {model.display!r} names itself as a base model")
            not_tabular = [label for label in named if kinds[label] != "tabular"]
            if not_tabular:
                raise ValueError(
                    f"model {model.display!r}: base model(s) {not_tabular} are not tabular; "
                    "bases are refit K times per fold, which kemm supports for tabular models"
                )
        return self

    @property
    def seed_list(self) -> list[int]:
        return self.seeds or [self.train.seed]

    def model_by_label(self, label: str) -> ModelConfig:
        """The model of the run labelled ``label`` (an error listing the labels if none)."""
        for spec in self.models:
            if spec.display == label:
                return spec
        raise ConfigError(
            f"model {label!r} is not in the run; it has {[m.display for m in self.models]}"
        )

    def bases_of(self, spec: ModelConfig) -> list[ModelConfig]:
        """The models ``spec`` combines: its ``residual_over`` models, then a stack's
        ``base`` (checked to exist and be tabular when the config was validated)."""
        labels = list(spec.residual_over or []) + list(spec.params.get("base", []))
        return [self.model_by_label(label) for label in labels]


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read and validate a YAML run config; ``overrides`` maps dotted keys to values."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config ({error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or " ".join(str(error).split())
        raise ConfigError(f"{path}: invalid YAML: {problem}{where}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a config is a mapping of sections (data:, models:, train:, eval:), "
            f"not a {type(raw).__name__}"
        )
    return parse_config(raw or {}, source=str(path), overrides=overrides)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (the
    plain loader keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def parse_config(
    raw: dict[str, Any], source: str = "<config>", overrides: dict[str, Any] | None = None
) -> RunConfig:
    raw = dict(raw)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            ".".join(str(p) for p in e["loc"]) + ": " * bool(e["loc"])
            + e["msg"].removeprefix("Value error, ")
            for e in error.errors()
        )  # fmt: skip
        raise ConfigError(f"{source}: {problems}") from None


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
