"""Versioned prompt files (``kemm/knowledge/prompts/<name>_v<N>.txt``) and their rendering.

A prompt file has a ``### system`` and a ``### user`` part; ``{placeholders}`` are filled by
plain substitution (never ``str.format``, so braces in report text are harmless). Untrusted text
is delimited, and any delimiter it contains is neutralised first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from kemm.errors import ConfigError

__all__ = ["Prompt", "available_prompts", "load_prompt", "neutralise_delimiters"]

REFINE_PROMPT = "refine_v1"
PBK_PROMPT = "pbk_v1"


@dataclass(frozen=True)
class Prompt:
    """A versioned chat prompt."""

    version: str
    system: str
    user: str

    def messages(self, **values: object) -> list[dict[str, str]]:
        """Chat messages with ``{name}`` placeholders replaced by ``values``."""

        def fill(template: str) -> str:
            unknown = sorted(set(re.findall(r"\{([a-z_]+)\}", template)) - set(values))
            if unknown:
                raise ConfigError(f"prompt {self.version}: no value for {unknown}")
            # One pass over the template: substituted (untrusted) text is never re-scanned.
            return re.sub(r"\{([a-z_]+)\}", lambda m: str(values[m.group(1)]), template)

        return [
            {"role": "system", "content": fill(self.system)},
            {"role": "user", "content": fill(self.user)},
        ]


def _prompt_dir():  # type: ignore[no-untyped-def]
    return resources.files("kemm.knowledge") / "prompts"


def available_prompts() -> list[str]:
    """Versions of the shipped prompts (file stems)."""
    return sorted(p.name[:-4] for p in _prompt_dir().iterdir() if p.name.endswith(".txt"))


def load_prompt(version: str) -> Prompt:
    """Load a shipped prompt by version, e.g. ``"refine_v1"``."""
    path = _prompt_dir() / f"{version}.txt"
    if not path.is_file():
        raise ConfigError(
            f"unknown prompt {version!r}; available: {', '.join(available_prompts())}"
        )
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"^### (system|user)\s*$", text, flags=re.MULTILINE)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise ConfigError(f"prompt {version}: needs '### system' and '### user' sections")
    return Prompt(version=version, system=sections["system"], user=sections["user"])


def neutralise_delimiters(text: str, tag: str = "report") -> str:
    """Defuse ``<report>``/``</report>`` (any case/spacing) inside untrusted text."""
    return re.sub(rf"<\s*/?\s*{tag}\s*>", f"[{tag}]", text, flags=re.IGNORECASE)
