"""Exception types shared by every layer."""

from __future__ import annotations


class KemmError(Exception):
    """Base class for kemm errors that carry a user-facing message."""


class InputDataError(KemmError, ValueError):
    """Bad input data. The message names the file, the patient (if any) and the problem."""

    def __init__(self, problem: str, *, file: str | None = None, patient: str | None = None):
        self.problem = problem
        self.file = file
        self.patient = patient
        parts = []
        if file is not None:
            parts.append(f"{file}")
        if patient is not None:
            parts.append(f"patient {patient}")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class ConfigError(KemmError, ValueError):
    """Invalid configuration."""
