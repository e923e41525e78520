"""Disk cache of LLM completions.

One JSON file per entry under ``<dir>/<key[:2]>/<key>.json``, written atomically, so concurrent
writers and interrupted runs never leave a half-written entry: a rerun finds every completed
entry and only calls the LLM for the rest. The key is the sha256 of (backend, model, prompt
version, sha256 of the input).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["DiskCache", "cache_key", "input_hash"]


def input_hash(payload: Any) -> str:
    """sha256 of a JSON-serialisable payload (canonical: sorted keys, no whitespace)."""
    data = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def cache_key(backend: str, model: str, prompt_version: str, input_sha256: str) -> str:
    """The cache key of one completion."""
    return input_hash([backend, model, prompt_version, input_sha256])


class DiskCache:
    """A directory of JSON entries keyed by :func:`cache_key`."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None (a corrupt entry counts as missing)."""
        path = self._path(key)
        try:
            with path.open("r", encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` atomically."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(value, fh, ensure_ascii=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json"))
