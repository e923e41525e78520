"""Survival models: shared layers, baselines, KEMM and tabular Cox models, by name.

>>> from kemm.models import create, list_models
>>> model = create("kemm", dims=dims, n_bins=4)          # doctest: +SKIP
"""

from kemm.models import baselines as _baselines  # noqa: F401  (registers the baselines)
from kemm.models import kemm as _kemm  # noqa: F401  (registers KEMM and its ablations)
from kemm.models import stack as _stack  # noqa: F401  (registers the stack)
from kemm.models import tabular as _tabular  # noqa: F401  (registers the tabular models)
from kemm.models.base import (
    MODALITIES,
    Hyperparameters,
    InputDims,
    ModelInput,
    ModelOutput,
    PatchBudget,
    SurvivalLoss,
    SurvivalModel,
)
from kemm.models.kemm import KEMM
from kemm.models.registry import ModelEntry, create, get_entry, list_models, register
from kemm.models.stack import BreslowCurves, RiskStack, combine
from kemm.models.tabular import ClinicalCox, CoxNet, PenalizedCox, restore_tabular

__all__ = [
    "MODALITIES",
    "BreslowCurves",
    "KEMM",
    "ClinicalCox",
    "CoxNet",
    "Hyperparameters",
    "InputDims",
    "ModelEntry",
    "ModelInput",
    "ModelOutput",
    "PatchBudget",
    "PenalizedCox",
    "RiskStack",
    "SurvivalLoss",
    "SurvivalModel",
    "combine",
    "create",
    "get_entry",
    "list_models",
    "register",
    "restore_tabular",
]
