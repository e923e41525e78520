"""Models by name (timm-style): ``@register("name")`` on a class or factory, ``create(name, ...)``.

Each entry says what it is (``kind``: a ``"torch"`` :class:`~kemm.models.base.SurvivalModel`
trained by the engine, whose hyper-parameters are the fields of its ``Params``, or a
``"tabular"`` estimator with ``fit``/``predict_risk``), which inputs it can use and which of them
a patient must have. Ablations are registered as the same class with
different default hyper-parameters, so an ablation is a name, not a code edit.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from kemm.errors import ConfigError
from kemm.models.base import MODALITIES, InputDims, PatchBudget

KINDS = ("torch", "tabular", "stack")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name."""

    name: str
    factory: Callable[..., Any]
    kind: str
    modalities: frozenset[str]
    requires_any_of: frozenset[str]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def hparam_names(self) -> list[str] | None:
        """Hyper-parameters the model accepts: a torch model's ``Params`` fields, a tabular
        estimator's keyword arguments (``None`` if it takes ``**kwargs``)."""
        if self.kind == "torch":
            return self.factory.hparam_names()
        params = inspect.signature(self.factory).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return None
        return [
            n
            for n, p in params.items()
            if n not in ("self", "dims", "n_bins")
            and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]


_REGISTRY: dict[str, ModelEntry] = {}


def register(
    name: str,
    *,
    kind: str = "torch",
    modalities: Iterable[str] | None = None,
    requires_any_of: Iterable[str] | None = None,
    description: str | None = None,
    **defaults: Any,
) -> Callable[[F], F]:
    """Register a class or factory under ``name``; ``defaults`` are default hyper-parameters.

    For a :class:`SurvivalModel` class, ``modalities`` and ``requires_any_of`` default to the
    class attributes. The decorated object is returned unchanged, so one class can be registered
    under several names (ablations).
    """
    if kind not in KINDS:
        raise ConfigError(f"model kind must be one of {KINDS}, got {kind!r}")

    def decorator(obj: F) -> F:
        if name in _REGISTRY and _REGISTRY[name].factory is not obj:
            raise ConfigError(f"model name {name!r} is already registered")
        mods = frozenset(modalities if modalities is not None else getattr(obj, "modalities", ()))
        needs = frozenset(
            requires_any_of if requires_any_of is not None else getattr(obj, "requires_any_of", ())
        )
        unknown = (mods | needs) - set(MODALITIES)
        if unknown:
            raise ConfigError(f"{name}: unknown modalities {sorted(unknown)}; known: {MODALITIES}")
        doc = description
        if doc is None:
            doc = (inspect.getdoc(obj) or "").split("\n", 1)[0]
        _REGISTRY[name] = ModelEntry(name, obj, kind, mods, needs, dict(defaults), doc)
        return obj

    return decorator


def _unknown(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown model {name!r}{hint} Available models: {', '.join(list_models())}")


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (its kind, modalities, defaults)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None


def list_models(kind: str | None = None) -> list[str]:
    """Registered model names, sorted; optionally only one ``kind``."""
    return sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind)


def check_hparams(name: str, hparams: dict[str, Any]) -> ModelEntry:
    """The entry of ``name``, once its hyper-parameters are known to be accepted (a typo is an
    error that lists the accepted ones)."""
    entry = get_entry(name)
    accepted = entry.hparam_names()
    if accepted is not None:
        extra = sorted((set(entry.defaults) | set(hparams)) - set(accepted))
        if extra:
            budget = sorted(set(extra) & {f.name for f in fields(PatchBudget)})
            hint = (
                f"; {', '.join(budget)} is the run's patch budget, not a model's: set "
                "train.bag_cap or train.eval_chunk_size"
                if budget
                else ""
            )
            raise ConfigError(
                f"model {name!r} got unknown hyper-parameter(s) {extra}; "
                f"accepted: {', '.join(accepted)}{hint}"
            )
    if entry.kind == "torch":
        _check_types(name, entry.factory.Params, hparams)
    return entry


def _check_types(name: str, params: type, hparams: dict[str, Any]) -> None:
    """Each hyper-parameter of the right type for its field of ``Params`` (``dim: 12.5`` or
    ``dim: "128"`` is an error naming the key, not a crash inside the model later)."""
    from pydantic import TypeAdapter, ValidationError

    types = {f.name: f.type for f in fields(params)}
    for key, value in hparams.items():
        declared = str(types.get(key, ""))
        if isinstance(value, str) and "str" not in declared and "Literal" not in declared:
            raise ConfigError(
                f"model {name!r}: params.{key} must be {types.get(key)}, got the text {value!r}"
            )
    try:
        TypeAdapter(params).validate_python(hparams)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"model {name!r}: params.{key} must be {types.get(key, 'valid')}, got "
            f"{first.get('input')!r} ({first['msg']})"
        ) from None


def create(
    name: str, *, dims: InputDims | None = None, n_bins: int | None = None, **hparams: Any
) -> Any:
    """Build a registered model. Torch models need ``dims`` and ``n_bins``; tabular models ignore
    them. Unknown hyper-parameters are an error that lists the accepted ones."""
    entry = check_hparams(name, hparams)
    kwargs = {**entry.defaults, **hparams}
    if entry.kind in ("tabular", "stack"):
        return entry.factory(**kwargs)
    if dims is None or n_bins is None:
        raise ConfigError(f"model {name!r} is a torch model: create() needs dims= and n_bins=")
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    return entry.factory.build(dims, n_bins, **kwargs)
