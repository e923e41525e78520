"""Lazy package exports: ``import kemm.wsi`` stays cheap, and a name imports its module on first
use (PEP 562 module ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, names)`` of a package whose public names live in its submodules.

    ``modules`` maps a submodule to the names it exports; ``"alias=name"`` exports the
    submodule's ``name`` as ``alias``.
    """
    where: dict[str, tuple[str, str]] = {}
    for module, names in modules.items():
        for entry in names:
            alias, _, name = entry.partition("=")
            where[alias] = (f"{package}.{module}", name or alias)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = where[name]
        return getattr(importlib.import_module(module), attribute)

    return __getattr__, sorted(where)
