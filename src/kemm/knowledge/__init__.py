"""kemm.knowledge: pathology-report refinement, prognostic background knowledge, text encoders.

Modules (imported on demand, so ``import kemm.knowledge`` stays light):

- :mod:`~kemm.knowledge.backends`: LLM backends (embedded llama.cpp, OpenAI-compatible, extractive)
- :mod:`~kemm.knowledge.clean`, :mod:`~kemm.knowledge.sections`: OCR cleaning, section detection
- :mod:`~kemm.knowledge.extractive`: rule-based statements (``refine_extractive``)
- :mod:`~kemm.knowledge.refine`, :mod:`~kemm.knowledge.grounding`: LLM refinement + grounding
- :mod:`~kemm.knowledge.pbk`: the shipped PBK library and PBK generation
- :mod:`~kemm.knowledge.encoders`, :mod:`~kemm.knowledge.store`: text encoders, HDF5 stores
- :mod:`~kemm.knowledge.cache`, :mod:`~kemm.knowledge.model_files`: LLM cache, GGUF location
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "refine_extractive": "kemm.knowledge.extractive",
    "refine_reports": "kemm.knowledge.refine",
    "RefineResult": "kemm.knowledge.refine",
    "clean_report": "kemm.knowledge.clean",
    "load_pbk": "kemm.knowledge.pbk",
    "available_cancers": "kemm.knowledge.pbk",
    "PBK": "kemm.knowledge.pbk",
    "create_text_encoder": "kemm.knowledge.encoders",
    "create_backend": "kemm.knowledge.backends",
    "read_reports": "kemm.knowledge.reports",
    "read_refined": "kemm.knowledge.reports",
    "read_statement_embeddings": "kemm.knowledge.store",
    "write_statement_embeddings": "kemm.knowledge.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kemm.knowledge' has no attribute {name!r}")
