"""Typed run configuration: YAML in, validated pydantic objects inside."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
    field_validator,
    model_validator,
)

from kemm.cohort.config import DataConfig, _doc, _Strict
from kemm.errors import ConfigError

if TYPE_CHECKING:
    from kemm.models.base import PatchBudget


class ModelConfig(_Strict):
    name: str = _doc(
        ...,
        "registered model name (`kemm config models` lists them), e.g. coxnet, snn, abmil, kemm",
    )
    label: str | None = _doc(None, "its name in tables and plots; default the name")
    params: dict[str, Any] = _doc(
        {},
        "hyper-parameters: the fields of the model's Params (typed, checked before anything runs)",
    )
    modalities: list[Literal["genomics", "wsi", "report", "pbk", "clinical"]] | None = _doc(
        None, "restrict what the model reads; default every input it can use that the data has"
    )
    residual_over: list[str] | None = _doc(
        None,
        "labels of tabular models of the run: a network learns a residual over their "
        "stacked out-of-fold risks",
    )
    clinical: list[str] | None = _doc(
        None, "the data.clinical covariates this model reads; default all"
    )

    @field_validator("label")
    @classmethod
    def _label_names_a_folder(cls, label: str | None) -> str | None:
        # each model's folds are written under a folder named by its label
        if label is not None and (not label.strip() or any(c in label for c in "/\\\0")):
            raise ValueError(f"label {label!r}: a label names a folder, so no '/' or '\\'")
        return label

    @property
    def display(self) -> str:
        return self.label or self.name


class TrainConfig(_Strict):
    epochs: int = _doc(
        20, "training epochs of every network (the last is kept unless selection: inner_val)", ge=1
    )
    batch_size: int = _doc(32, "patients per optimizer step", ge=1)
    lr: float = _doc(2e-4, "AdamW learning rate", gt=0)
    weight_decay: float = _doc(1e-5, "AdamW weight decay", ge=0)
    loss: Literal["cox", "nll"] = _doc(
        "nll",
        "Cox partial likelihood (one output, Breslow curves) or the discrete-time "
        "likelihood over n_bins",
    )
    nll_alpha: float = _doc(
        0.0, "weight of the uncensored term in the discrete likelihood", ge=0, le=1
    )
    genomic_clip: float | None = _doc(
        None, "networks read genomic z-scores clipped to +-this (null: unclipped)", gt=0
    )
    n_bins: int = _doc(4, "time bins (quartiles of uncensored training times)", ge=2)
    legacy_binning: bool = _doc(
        False, "whole-cohort bins (MCAT's habit; leaky, for reproduction only)"
    )
    selection: Literal["last", "inner_val"] = _doc(
        "last", "keep the last epoch, or the best on an inner split of the training fold"
    )
    inner_val_fraction: float = _doc(
        0.15, "share of the training fold held out when selection: inner_val", gt=0, lt=0.5
    )
    bag_cap: int | None = _doc(
        4096, "train-time random subsample of patches per bag (null: all)", ge=1
    )
    eval_chunk_size: int | None = _doc(
        16384, "patches projected at once in evaluation (bounds memory)", ge=1
    )
    seed: int = _doc(0, "seed of everything random (folds x seeds are deterministic)")
    device: str = _doc("auto", "cpu, cuda, cuda:N, mps or auto")
    amp: bool = _doc(True, "mixed precision (on CUDA only)")
    num_threads: int | None = _doc(
        None, "CPU threads per process; default 1 on CPU (small per-step work)"
    )

    def patch_budget(self) -> PatchBudget:
        """How many patches a WSI model reads at a time in this run."""
        from kemm.models.base import PatchBudget

        return PatchBudget(max_train_patches=self.bag_cap, eval_chunk_size=self.eval_chunk_size)


class EvalConfig(_Strict):
    bootstrap: int = _doc(
        200,
        "resamples of patients within folds for each C-index's 95 % interval in report.md (0: off)",
        ge=0,
    )
    risk_groups: int = _doc(2, "risk groups of the Kaplan-Meier plots", ge=2, le=4)
    html: bool = _doc(
        True, "write report.html (self-contained: tables, Kaplan-Meier and calibration plots)"
    )


class RunConfig(_Strict):
    name: str = _doc("run", "the run's name (report.md's title)")
    data: DataConfig = _doc(..., "the cohort and its inputs")
    models: list[ModelConfig] = _doc(..., "the models to cross-validate")
    train: TrainConfig = _doc(TrainConfig(), "how networks train")
    eval: EvalConfig = _doc(EvalConfig(), "what the report adds to the fold metrics")
    seeds: list[int] | None = _doc(
        None, "repeat the cross-validation per seed; default [train.seed]"
    )

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
    return parse_config(raw or {}, source=str(path), overrides=overrides, text=path.read_text())


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
    raw: dict[str, Any], source: str = "<config>", overrides: dict[str, Any] | None = None,
    text: str | None = None,
) -> RunConfig:  # fmt: skip
    """Validate a config dict; an error names each bad key and where its value came from: the
    ``--set`` override, or the line of the YAML ``text`` it was read from."""
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
        problems = []
        for e in error.errors():
            key = ".".join(str(p) for p in e["loc"])
            message = e["msg"].removeprefix("Value error, ")
            where = _origin(key, e["loc"], source, overrides or {}, text)
            problems.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        raise ConfigError("; ".join(problems)) from None


def _origin(key: str, loc: tuple, source: str, overrides: dict[str, Any], text: str | None) -> str:
    """Where a bad value came from: ``--set key=value``, or ``FILE, line N``."""
    for dotted, value in overrides.items():
        if key == dotted or key.startswith(dotted + "."):
            return f"--set {dotted}={value}"
    line = _yaml_line(text, loc) if text else None
    return f"{source}, line {line}" if line else source


def _yaml_line(text: str, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (keys and list indices), as deep as found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# -- the config reference (docs/config.md is generated from this; a test keeps it current) -----
_SECTIONS = (
    ("", "RunConfig"), ("data", "DataConfig"), ("data.genomics", "GenomicsConfig"),
    ("data.wsi", "WSIConfig"), ("data.reports", "ReportsConfig"), ("models[]", "ModelConfig"),
    ("train", "TrainConfig"), ("eval", "EvalConfig"),
)  # fmt: skip
EXAMPLES = (
    ("Genomics only", "tcga_kirc_genomics.yaml"),
    ("Reports, report facts and PBK", "tcga_kirc_facts.yaml"),
    ("WSI features from CLAM, TRIDENT or kemm extract", "wsi_features.yaml"),
)


def _type_name(annotation: Any) -> str:
    """A field's type in words that fit a markdown table (no ``|``)."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        named = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (", or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__} of " + ", ".join(_type_name(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    return (
        "null"
        if value is None
        else f"`{yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}`"
    )


def config_reference(examples: dict[str, str] | None = None) -> str:
    """``docs/config.md``: every key with its type, default and meaning, from the schema;
    then the worked examples (``examples``: file name -> its text)."""
    from kemm.cohort import config as data_config

    classes = {**{n: getattr(data_config, n) for n in ("DataConfig", "GenomicsConfig",
                                                          "WSIConfig", "ReportsConfig")},
               "RunConfig": RunConfig, "ModelConfig": ModelConfig, "TrainConfig": TrainConfig,
               "EvalConfig": EvalConfig}  # fmt: skip
    lines = [
        "# Run configuration reference",
        "",
        "<!-- generated by `kemm config docs` from the typed schema (kemm.engine.config); do not "
        "edit: tests/test_config_docs.py fails when it is out of date -->",
        "",
        "A run config is YAML: the sections below, every key optional unless marked required. "
        "`kemm config check --config FILE` validates one without training (types, model "
        "hyper-parameters, and that its files exist and cover the patients); any key can be "
        "overridden on the command line with `--set section.key=value`. A model's `params` are "
        "the fields of its typed `Params` (`kemm config models` lists each model's).",
        "",
    ]
    for prefix, name in _SECTIONS:
        model = classes[name]
        title = f"`{prefix}`" if prefix else "top level"
        lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for key, field in model.model_fields.items():
            dotted = f"{prefix}.{key}" if prefix else key
            lines.append(f"| `{dotted}` | `{_type_name(field.annotation)}` | {_default(field)} | "
                         f"{field.description or ''} |")  # fmt: skip
        lines.append("")
    if examples:
        lines += ["## Worked examples", ""]
        for title, file in EXAMPLES:
            if file in examples:
                lines += [f"### {title} (`examples/{file}`)", "", "```yaml",
                          examples[file].rstrip(), "```", ""]  # fmt: skip
    return "\n".join(lines)
