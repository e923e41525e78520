"""What is fitted on the training part of a fold, and patients as model inputs.

:class:`FoldPreprocessor` holds the feature filters, scalers and imputation values fitted on a
fold's training patients; :class:`FoldInputs` turns patients of a
:class:`~kemm.cohort.prepared.PreparedCohort` into :class:`ModelInput` batches; :class:`BagCache`
keeps feature bags in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kemm.cohort.prepared import PreparedCohort
from kemm.errors import InputDataError
from kemm.models.base import InputDims, ModelInput

log = logging.getLogger(__name__)


class BagCache:
    """Reads feature bags once and keeps them in memory up to a byte budget."""

    def __init__(
        self,
        requirements: tuple[str | None, int | None] = (None, None),
        budget_bytes: int = 4 << 30,
    ):
        self.requirements = requirements
        self.budget = budget_bytes
        self.used = 0
        self._bags: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def get(self, case_id: str, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if case_id in self._bags:
            return self._bags[case_id]
        from kemm.wsi.features import check_compatible, read_bag

        bags = [read_bag(p) for p in paths]
        for path, bag in zip(paths, bags, strict=True):
            try:
                check_compatible(bag, *self.requirements)
            except InputDataError as error:
                raise InputDataError(error.problem, file=error.file, patient=case_id) from None
            finite = np.isfinite(bag.features).all(axis=1)
            if not finite.all():
                raise InputDataError(
                    f"{int((~finite).sum())} of {len(finite)} patch feature rows hold NaN or "
                    f"infinite values (first: row {int(np.argmin(finite))}); re-extract this "
                    "slide's features",
                    file=str(path), patient=case_id,
                )  # fmt: skip
        features = torch.from_numpy(np.concatenate([b.features for b in bags]).astype(np.float32))
        coords = None
        if all(b.coords is not None for b in bags):
            coords = torch.from_numpy(np.concatenate([b.coords for b in bags]).astype(np.int64))
        size = features.numel() * 4
        if self.used + size <= self.budget:
            self._bags[case_id] = (features, coords)
            self.used += size
        return features, coords


@dataclass
class FoldPreprocessor:
    """Feature filters and scalers fitted on the training part of one fold."""

    group_names: list[str]
    group_features: list[list[str]]
    group_mean: list[np.ndarray]
    group_std: list[np.ndarray]
    clinical_columns: list[str]
    clinical_fill: np.ndarray
    clinical_mean: np.ndarray
    clinical_std: np.ndarray

    @classmethod
    def fit(
        cls, data: PreparedCohort, train_ids: list[str], top_variance: int | None = None
    ) -> FoldPreprocessor:
        genomics = data.cohort.genomics
        train_genomic = genomics.loc[[c for c in train_ids if c in genomics.index]]
        names, features, means, stds = [], [], [], []
        for group in data.groups:
            values = train_genomic[list(group.features)]
            variance = values.var(axis=0, ddof=0)
            keep = variance[variance > 1e-12]
            if top_variance is not None and len(keep) > top_variance:
                keep = keep.sort_values(ascending=False, kind="stable").iloc[:top_variance]
            kept = [f for f in group.features if f in keep.index]
            if not kept:
                log.warning(
                    "genomic group %r has no feature varying on this training fold; dropped",
                    group.name,
                )
                continue
            names.append(group.name)
            features.append(kept)
            means.append(values[kept].mean(axis=0).to_numpy(np.float32))
            stds.append(values[kept].std(axis=0, ddof=0).to_numpy(np.float32))
        clinical = data.clinical.loc[train_ids]
        # mean imputation (with the facts' `unknown` indicators, see kemm.knowledge.covariates)
        fill = clinical.mean(axis=0).fillna(0.0).to_numpy(np.float32)
        filled = clinical.fillna(pd.Series(fill, index=clinical.columns))
        std = filled.std(axis=0, ddof=0).to_numpy(np.float32)
        return cls(names, features, means, stds, list(clinical.columns), fill,
                   filled.mean(axis=0).to_numpy(np.float32), np.where(std > 1e-12, std, 1.0))  # fmt: skip

    def restrict(self, covariates: list[str] | None) -> FoldPreprocessor:
        """The same preprocessing with only the clinical columns of the named covariates
        (``None``: all of them)."""
        if covariates is None:
            return self
        from kemm.knowledge.covariates import covariate_of

        keep = [i for i, c in enumerate(self.clinical_columns) if covariate_of(c) in covariates]
        return replace(
            self,
            clinical_columns=[self.clinical_columns[i] for i in keep],
            clinical_fill=self.clinical_fill[keep],
            clinical_mean=self.clinical_mean[keep],
            clinical_std=self.clinical_std[keep],
        )

    def fact_positions(self) -> list[int]:
        """Positions of the clinical columns that are report facts (not age, sex, table
        columns): what the report modality gives a network as facts."""
        from kemm.knowledge.covariates import FACT_COVARIATES, covariate_of

        return [
            i for i, c in enumerate(self.clinical_columns) if covariate_of(c) in FACT_COVARIATES
        ]

    def dims(self, data: PreparedCohort) -> InputDims:
        facts = self.fact_positions()
        return InputDims(
            genomic_groups=[len(f) for f in self.group_features],
            genomic_group_names=list(self.group_names),
            wsi_dim=data.wsi_dim,
            text_dim=data.text.dim if data.text is not None else None,
            clinical_dim=len(self.clinical_columns) or None,
            fact_columns=[self.clinical_columns[i] for i in facts],
            fact_directions=[
                int(data.clinical_directions.get(self.clinical_columns[i], 0)) for i in facts
            ],
        )

    def genomic_arrays(
        self, data: PreparedCohort, case_ids: list[str]
    ) -> tuple[list[np.ndarray], np.ndarray]:
        genomics = data.cohort.genomics
        mask = np.array([c in genomics.index for c in case_ids])
        present = [c for c, m in zip(case_ids, mask, strict=True) if m]
        arrays = []
        for features, mean, std in zip(
            self.group_features, self.group_mean, self.group_std, strict=True
        ):
            out = np.zeros((len(case_ids), len(features)), dtype=np.float32)
            if present:
                values = genomics.loc[present, features].to_numpy(np.float32)
                scaled = (values - mean) / np.where(std > 1e-12, std, 1.0)
                # NaN only for new patients scored with --allow-missing: the training-fold mean
                out[mask] = np.nan_to_num(scaled, nan=0.0)
            arrays.append(out)
        return arrays, mask

    def clinical_array(self, data: PreparedCohort, case_ids: list[str]) -> np.ndarray:
        if not self.clinical_columns:
            return np.zeros((len(case_ids), 0), dtype=np.float32)
        values = data.clinical.loc[case_ids, self.clinical_columns].to_numpy(np.float32)
        values = np.where(np.isnan(values), self.clinical_fill, values)
        return (values - self.clinical_mean) / self.clinical_std

    def tabular_matrix(
        self, data: PreparedCohort, case_ids: list[str], modalities: set[str]
    ) -> tuple[np.ndarray, list[str]]:
        """A flat design matrix (unique genomic features, then clinical) for tabular models."""
        blocks, names = [], []
        if "genomics" in modalities:
            arrays, _ = self.genomic_arrays(data, case_ids)
            seen: dict[str, int] = {}
            for array, features in zip(arrays, self.group_features, strict=True):
                for j, feature in enumerate(features):
                    if feature not in seen:
                        seen[feature] = len(names)
                        names.append(feature)
                        blocks.append(array[:, j])
        if "clinical" in modalities:
            clinical = self.clinical_array(data, case_ids)
            for j, column in enumerate(self.clinical_columns):
                names.append(column)
                blocks.append(clinical[:, j])
        if not blocks:
            raise InputDataError(f"no tabular features for modalities {sorted(modalities)}")
        return np.stack(blocks, axis=1).astype(np.float32), names

    def to_dict(self) -> dict[str, object]:
        return {
            "groups": [
                {"name": n, "features": f, "mean": m.tolist(), "std": s.tolist()}
                for n, f, m, s in zip(
                    self.group_names,
                    self.group_features,
                    self.group_mean,
                    self.group_std,
                    strict=True,
                )
            ],
            "clinical": {
                "columns": self.clinical_columns,
                "fill": self.clinical_fill.tolist(),
                "mean": self.clinical_mean.tolist(),
                "std": self.clinical_std.tolist(),
            },
        }

    @classmethod
    def from_dict(cls, state: dict) -> FoldPreprocessor:
        groups = state["groups"]
        clinical = state["clinical"]
        return cls(
            [g["name"] for g in groups],
            [list(g["features"]) for g in groups],
            [np.asarray(g["mean"], np.float32) for g in groups],
            [np.asarray(g["std"], np.float32) for g in groups],
            list(clinical["columns"]),
            np.asarray(clinical["fill"], np.float32),
            np.asarray(clinical["mean"], np.float32),
            np.asarray(clinical["std"], np.float32),
        )


class FoldInputs:
    """Turns lists of patients into :class:`ModelInput` batches for one fold and one model."""

    def __init__(self, data: PreparedCohort, pre: FoldPreprocessor, case_ids: list[str],
                 modalities: set[str], bag_cache: BagCache | None = None,
                 genomic_clip: float | None = None):  # fmt: skip
        self.data = data
        self.case_ids = list(case_ids)
        self.modalities = modalities & data.available_modalities
        self.genomics, self.genomics_mask = pre.genomic_arrays(data, self.case_ids)
        if genomic_clip is not None:  # z-scores winsorised for networks (train.genomic_clip)
            self.genomics = [np.clip(g, -genomic_clip, genomic_clip) for g in self.genomics]
        self.clinical = pre.clinical_array(data, self.case_ids)
        self.facts = self.clinical[:, pre.fact_positions()]
        self.bags = bag_cache or BagCache(data.bag_requirements)
        self.offset: np.ndarray | None = None  # (n,) fixed log-hazard offsets, when set

    def batch(self, positions: list[int], device: torch.device | str = "cpu") -> ModelInput:
        ids = [self.case_ids[i] for i in positions]
        x = ModelInput()
        if "genomics" in self.modalities:
            x.genomics = [torch.from_numpy(g[positions]) for g in self.genomics]
            x.genomics_mask = torch.from_numpy(self.genomics_mask[positions])
        if "clinical" in self.modalities:
            x.clinical = torch.from_numpy(self.clinical[positions])
        if "report" in self.modalities and self.facts.shape[1]:
            x.facts = torch.from_numpy(np.ascontiguousarray(self.facts[positions]))
        if self.offset is not None:
            x.offset = torch.from_numpy(self.offset[positions].astype(np.float32))
        if "wsi" in self.modalities:
            bags, coords = [], []
            for case_id in ids:
                if case_id in self.data.bag_paths:
                    features, xy = self.bags.get(case_id, self.data.bag_paths[case_id])
                    bags.append(features)
                    coords.append(xy)
                else:
                    bags.append(None)
                    coords.append(None)
            x.wsi, x.wsi_coords = bags, coords
        text = self.data.text
        if text is not None and "report" in self.modalities:
            x.report, x.report_mask = _pad([text.report_embeddings.get(c) for c in ids], text.dim)
        if text is not None and "pbk" in self.modalities and text.pbk_general is not None:
            general = torch.from_numpy(text.pbk_general)
            x.pbk = general.unsqueeze(0).expand(len(ids), -1, -1).contiguous()
            x.pbk_mask = torch.ones(x.pbk.shape[:2], dtype=torch.bool)
            x.pbk_risk = (
                torch.from_numpy(text.pbk_risk).unsqueeze(0).expand(len(ids), -1, -1).contiguous()
            )
        return x.to(device)


def _pad(items: list[np.ndarray | None], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max([len(a) for a in items if a is not None] + [1])
    values = torch.zeros(len(items), width, dim)
    mask = torch.zeros(len(items), width, dtype=torch.bool)
    for i, array in enumerate(items):
        if array is not None and len(array):
            values[i, : len(array)] = torch.from_numpy(array)
            mask[i, : len(array)] = True
    return values, mask
