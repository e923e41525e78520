"""Section detection in (cleaned) pathology reports.

Headers are recognised at the start of a line or of a sentence, followed by ``:``, ``.`` or a
line break. Canonical section names: ``final_diagnosis``, ``synoptic``, ``microscopic``,
``gross``, ``frozen_section``, ``clinical``, ``ancillary``, ``comment``; text before the first
header is ``preamble``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "SECTION_PRIORITY",
    "Section",
    "focus_text",
    "sections_by_name",
    "split_sections",
]

# Order matters inside the alternation only through the names; the regex takes the longest match.
_HEADERS: dict[str, str] = {
    "frozen_section": r"frozen\s+section(?:\s+(?:diagnosis|consultation))?|intra-?operative\s+"
    r"(?:consultation|diagnosis)",
    "clinical": r"clinical\s+(?:history|data|information|diagnosis|notes?)|"
    r"pre-?\s?op(?:erative)?\.?\s+diagnosis|post-?\s?op(?:erative)?\.?\s+diagnosis|"
    r"indications?(?:\s+for\s+(?:procedure|surgery))?",
    "synoptic": r"synoptic(?:\s+(?:report|data|summary|comment))?|(?:cancer|tumou?r)\s+(?:case\s+)?"
    r"summary|key\s+pathologic(?:al)?\s+findings|summary\s+of\s+(?:pathologic\s+)?findings|"
    r"(?:cap\s+)?(?:cancer\s+)?checklist|pathologic(?:al)?\s+staging(?:\s+summary)?",
    "final_diagnosis": r"(?:final\s+)?(?:surgical\s+)?(?:pathologic(?:al)?\s+)?diagnos[ie]s"
    r"(?:\s+based\s+on\s+gross\s+and\s+microscopic\s+examination)?|final\s+report|"
    r"histopathological\s+diagnosis|conclusions?",
    "microscopic": r"microscopic(?:al)?(?:\s+(?:description|examination|findings|exam))?|"
    r"histolog(?:y|ical\s+(?:description|examination|findings))",
    "gross": r"gross(?:\s+(?:description|examination|findings|exam))?|macroscopic(?:al)?"
    r"(?:\s+(?:description|examination|findings))?",
    "ancillary": r"ancillary\s+stud(?:y|ies)|immunohistochemi(?:stry|cal\s+(?:stains?|studies))|"
    r"special\s+stains?|molecular\s+(?:studies|testing|results)|addendum(?:\s+report)?",
    "comment": r"comments?|notes?",
}

_HEADER_RE = re.compile(
    r"(?:^|(?<=\n)|(?<=\.\s)|(?<=\.))\s*(?P<header>"
    + "|".join(f"(?P<{name}>{pattern})" for name, pattern in _HEADERS.items())
    + r")\s*(?:\(s\))?\s*(?::|\.(?=\s)|\n|$)",
    re.IGNORECASE,
)

# What a reader of the prognosis wants first.
SECTION_PRIORITY = (
    "final_diagnosis",
    "synoptic",
    "comment",
    "microscopic",
    "ancillary",
    "frozen_section",
    "preamble",
    "gross",
    "clinical",
)


@dataclass(frozen=True)
class Section:
    """One section of a report: canonical name, header as written, character span, body."""

    name: str
    header: str
    start: int
    end: int
    text: str


def split_sections(text: str) -> list[Section]:
    """Split a report into sections in reading order (``preamble`` first when non-empty)."""
    matches = []
    for match in _HEADER_RE.finditer(text):
        name = next(n for n in _HEADERS if match.group(n))
        header = match.group("header")
        # A header word in the middle of a sentence ("... no diagnosis. ") is not a header:
        # headers are short lines, upper/title case, or followed by a colon.
        followed_by_colon = text[match.end() - 1 : match.end()] == ":"
        if not (followed_by_colon or header.isupper() or header.istitle()):
            continue
        matches.append((match.start("header"), match.end(), name, header))
    sections: list[Section] = []
    first = matches[0][0] if matches else len(text)
    if text[:first].strip():
        sections.append(Section("preamble", "", 0, first, text[:first].strip()))
    for i, (start, body_start, name, header) in enumerate(matches):
        end = matches[i + 1][0] if i + 1 < len(matches) else len(text)
        sections.append(Section(name, header, start, end, text[body_start:end].strip()))
    return sections


def sections_by_name(text: str) -> dict[str, str]:
    """Canonical section name -> body text (bodies of repeated sections joined by newlines)."""
    out: dict[str, str] = {}
    for section in split_sections(text):
        if section.text:
            out[section.name] = (
                (out[section.name] + "\n" + section.text).strip()
                if section.name in out
                else section.text
            )
    return out


def focus_text(text: str, max_chars: int = 2000) -> str:
    """The most prognostically informative part of a report, at most ``max_chars`` long.

    Sections are taken in :data:`SECTION_PRIORITY` order (diagnosis, synoptic, comment,
    microscopic, ...) and each is labelled with its header; text without recognised sections is
    simply truncated.
    """
    if len(text) <= max_chars:
        return text
    sections = split_sections(text)
    if len(sections) <= 1:
        return text[:max_chars]
    rank = {name: i for i, name in enumerate(SECTION_PRIORITY)}
    ordered = sorted(sections, key=lambda s: (rank.get(s.name, len(rank)), s.start))
    pieces: list[str] = []
    used = 0
    for section in ordered:
        label = section.header.upper() if section.header else "REPORT"
        piece = f"{label}: {section.text}"
        room = max_chars - used
        if room <= 40:
            break
        if len(piece) > room:
            piece = piece[:room].rsplit(" ", 1)[0]
        pieces.append(piece)
        used += len(piece) + 1
    return "\n".join(pieces)
