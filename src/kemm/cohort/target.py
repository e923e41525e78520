"""The survival target: (event, time) kept together so they cannot be swapped."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SurvivalTarget:
    """Right-censored survival outcome. ``event`` is 1 for an observed death, 0 for censored.

    The MCAT/PORPOISE ``censorship`` column (1 = censored) is converted once, at the file edge,
    by :meth:`from_censorship`.
    """

    event: np.ndarray  # bool, shape (n,)
    time: np.ndarray  # float, shape (n,), > 0

    def __post_init__(self) -> None:
        event = np.asarray(self.event).astype(bool)
        time = np.asarray(self.time, dtype=float)
        if event.shape != time.shape or event.ndim != 1:
            raise ValueError(f"event {event.shape} and time {time.shape} must be 1-d, same length")
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "time", time)

    @classmethod
    def from_censorship(cls, censorship, time) -> SurvivalTarget:
        return cls(event=1 - np.asarray(censorship, dtype=int), time=time)

    def __len__(self) -> int:
        return len(self.time)

    def __getitem__(self, index) -> SurvivalTarget:
        return SurvivalTarget(self.event[index], self.time[index])

    def to_structured(self) -> np.ndarray:
        """The scikit-survival structured array (``event``, ``time``)."""
        out = np.empty(len(self), dtype=[("event", bool), ("time", float)])
        out["event"] = self.event
        out["time"] = self.time
        return out
