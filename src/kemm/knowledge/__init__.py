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

from kemm.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    "kemm.knowledge",
    {
        "extractive": ("refine_extractive",),
        "refine": ("refine_reports", "RefineResult"),
        "clean": ("clean_report",),
        "pbk": ("load_pbk", "available_cancers", "PBK"),
        "encoders": ("create_text_encoder",),
        "backends": ("create_backend",),
        "reports": ("read_reports", "read_refined"),
        "store": ("read_statement_embeddings", "write_statement_embeddings"),
    },
)
