"""Discrete time bins for discrete-time survival models.

Bins are left-closed intervals ``[edges[k], edges[k + 1])`` with ``edges[0] = 0`` and
``edges[-1] = +inf``, so every time (training or evaluation) maps to a bin. The inner edges are
quantiles of the *uncensored* times of the training fold (the MCAT/PORPOISE convention, but fitted
on the training part only).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kemm.cohort.target import SurvivalTarget
from kemm.errors import ConfigError, InputDataError

log = logging.getLogger(__name__)


def _inner_edges(event_times: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner quantile edges (linear interpolation, as ``pandas.qcut``), deduplicated, > 0."""
    q = np.quantile(event_times, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.unique(q[q > 0])


@dataclass
class TimeBins:
    """Time-bin edges: ``edges[0] == 0``, ``edges[-1] == inf``, strictly increasing.

    ``max_time`` is the largest follow-up time of the fitting target; it stands in for the
    (infinite) right edge of the last bin in :attr:`bin_times`. ``source`` records how the bins
    were fitted (``"train"``, ``"legacy_whole_cohort"`` or ``"manual"``).
    """

    edges: np.ndarray
    max_time: float | None = None
    source: str = field(default="manual")

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=float)
        if edges.ndim != 1 or len(edges) < 3:
            raise ConfigError(f"TimeBins needs at least 2 bins (3 edges), got edges {edges!r}")
        if edges[0] != 0.0 or not np.isposinf(edges[-1]):
            raise ConfigError(f"TimeBins edges must start at 0 and end at inf, got {edges!r}")
        if np.any(np.diff(edges) <= 0):
            raise ConfigError(f"TimeBins edges must be strictly increasing, got {edges!r}")
        self.edges = edges

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    @classmethod
    def fit(cls, target: SurvivalTarget, n_bins: int = 4) -> TimeBins:
        """Quantile bins of the uncensored times of ``target`` (the training fold).

        Duplicate quantiles (tied event times) are merged, so the result may have fewer than
        ``n_bins`` bins (never fewer than 2).
        """
        return cls._fit(target, n_bins, source="train")

    @classmethod
    def fit_legacy(cls, target_all: SurvivalTarget, n_bins: int = 4) -> TimeBins:
        """Legacy MCAT/PORPOISE binning: quartiles of the uncensored times of the *whole cohort*.

        The bin assignment equals ``pd.qcut`` on the cohort's uncensored times followed by a
        left-closed ``pd.cut`` of every patient. Because the evaluation folds take part in the
        fit, this is optimistic (label information leaks into the targets): use it only to
        reproduce published numbers, never for new results.
        """
        log.warning(
            "TimeBins.fit_legacy: bins fitted on the whole cohort (leaky, for reproduction only)"
        )
        return cls._fit(target_all, n_bins, source="legacy_whole_cohort")

    @classmethod
    def _fit(cls, target: SurvivalTarget, n_bins: int, source: str) -> TimeBins:
        if n_bins < 2:
            raise ConfigError(f"n_bins must be >= 2, got {n_bins}")
        event_times = target.time[target.event]
        if len(event_times) == 0:
            raise InputDataError(
                f"cannot fit time bins: none of the {len(target)} patients has an observed event "
                "(all censored); time bins are quantiles of the uncensored times"
            )
        inner = _inner_edges(event_times, n_bins)
        if len(inner) == 0:
            raise InputDataError(
                "cannot fit time bins: all uncensored times are <= 0; check the time column"
            )
        if len(inner) < n_bins - 1:
            log.warning(
                "TimeBins: tied event times merged quantile edges, %d bins instead of %d",
                len(inner) + 1,
                n_bins,
            )
        edges = np.concatenate([[0.0], inner, [np.inf]])
        return cls(edges=edges, max_time=float(np.max(target.time)), source=source)

    def transform(self, time: np.ndarray | float) -> np.ndarray:
        """Bin index in ``[0, n_bins - 1]`` of each time (negative times go to bin 0)."""
        t = np.asarray(time, dtype=float)
        idx = np.searchsorted(self.edges, t, side="right") - 1
        return np.clip(idx, 0, self.n_bins - 1).astype(np.int64)

    @property
    def bin_times(self) -> np.ndarray:
        """A representative time per bin: its right edge; for the last (open) bin ``max_time``.

        When ``max_time`` is unknown (manual bins), the last finite edge is used for the last bin.
        """
        right = self.edges[1:].copy()
        last = self.max_time if self.max_time is not None else self.edges[-2]
        right[-1] = max(float(last), float(self.edges[-2]))
        return right

    @property
    def midpoints(self) -> np.ndarray:
        """Midpoint of each bin, with the last bin closed at :attr:`bin_times` ``[-1]``."""
        left = self.edges[:-1]
        return (left + self.bin_times) / 2.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``inf`` stored as the string ``"inf"``)."""
        return {
            "edges": [("inf" if math.isinf(e) else float(e)) for e in self.edges],
            "max_time": self.max_time,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimeBins:
        edges = np.array([float(e) for e in data["edges"]], dtype=float)
        max_time = data.get("max_time")
        return cls(
            edges=edges,
            max_time=None if max_time is None else float(max_time),
            source=data.get("source", "manual"),
        )
