"""One home for a model fitted on one training fold: fit, save, load and score, per kind.

Every kind of model a run trains (a tabular estimator, a stack of tabular bases, a network, a
network learning a residual over a linear part) is one :class:`FoldModel` class. The runner
calls :meth:`FoldModel.fit` and :meth:`FoldModel.save`; ``kemm predict`` and ``kemm explain``
call :func:`load_fold_model` and :meth:`FoldModel.score`. Neither asks which kind it holds:
what a kind needs to be scored again (its preprocessing, weights, bases, Breslow baseline) is
written by its own ``save`` and read by its own ``load``, so training and prediction cannot
drift apart. A stack and a residual hold their bases as fold models (loaded from the bases'
folders of the same seed and fold); their cross-fitting lives with them.

::

    model = fold_model(spec, config, pre)       # a new, unfitted model of spec's kind
    fitted = model.fit(FoldFit(...))            # train risks, evaluation risks and curves
    model.save(folder)
    again = load_fold_model(run, config, spec, folder)
    risk, survival = again.score(data, case_ids, times)
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from kemm.cohort import SurvivalTarget
from kemm.cohort.prepared import PreparedCohort
from kemm.engine.config import ModelConfig, RunConfig
from kemm.engine.data import BagCache, FoldInputs, FoldPreprocessor
from kemm.engine.rundir import FoldDirectory, RunDirectory, malformed
from kemm.engine.stacking import INNER_FOLDS, BaseRisks, base_risks, tabular_kwargs
from kemm.engine.trainer import predict_logits, seed_everything, train_model
from kemm.errors import ConfigError, InputDataError
from kemm.models import BreslowCurves, combine, restore_tabular
from kemm.models.base import InputDims
from kemm.models.registry import create, get_entry
from kemm.survival import (
    TimeBins,
    harrell_c,
    n_outputs,
    risk_from_logits,
    survival_at_times,
    survival_from_logits,
)

log = logging.getLogger(__name__)

# Cross-fitting of a residual network (fixed a priori): each of the 3 networks trains on two
# thirds of the training fold and scores the third it did not see.
RESIDUAL_FOLDS = 3


def used_modalities(spec: ModelConfig, data: PreparedCohort) -> set[str]:
    """What the model reads: what it can use, that the data has, that the config allows."""
    entry = get_entry(spec.name)
    used = set(entry.modalities) & data.available_modalities
    return used & set(spec.modalities) if spec.modalities is not None else used


def network_dims(dims: InputDims, modalities: set[str]) -> InputDims:
    """The input sizes of what a model actually receives: a model never builds a branch for a
    modality the config withholds from it."""
    return replace(
        dims,
        wsi_dim=dims.wsi_dim if "wsi" in modalities else None,
        text_dim=dims.text_dim if {"report", "pbk"} & modalities else None,
        clinical_dim=dims.clinical_dim if "clinical" in modalities else None,
        fact_columns=dims.fact_columns if "report" in modalities else [],
        fact_directions=dims.fact_directions if "report" in modalities else [],
    )


@dataclass
class FoldFit:
    """One training fold, as a fold model is fitted on it."""

    data: PreparedCohort
    train_ids: list[str]
    test_ids: list[str]
    train_target: SurvivalTarget
    test_target: SurvivalTarget
    bins: TimeBins  # the fold's time bins (fitted on the training part)
    seed: int  # the fold's seed
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    bag_cache: BagCache | None = None
    # where the run caches a base model's out-of-fold risks for this seed and fold (a stack
    # and a residual over the same bases share one cross-fitting; resume reuses it)
    base_cache: Callable[[str], Path] | None = None


@dataclass
class Fitted:
    """What a fit gives the runner: risks of both parts, the evaluation patients' survival at
    the fold's bin ends and as a function of time, and facts for ``result.json``."""

    train_risk: np.ndarray  # the risk-group cut points come from these
    test_risk: np.ndarray
    curves: np.ndarray  # (n_test, n_bins): survival at the fold's bin end times
    test_survival: Callable[[np.ndarray], np.ndarray]  # times -> (n_test, len(times))
    facts: dict = field(default_factory=dict)


class FoldModel(ABC):
    """A model of one kind on one training fold (fitted, or loaded from its folder)."""

    relative_cost = 1.0  # a fit's time relative to one network's (schedulers start long ones first)

    def __init__(self, spec: ModelConfig, config: RunConfig, pre: FoldPreprocessor):
        self.spec = spec
        self.config = config
        self.pre = pre  # the preprocessing fitted on the training fold

    @abstractmethod
    def fit(self, fold: FoldFit) -> Fitted:
        """Fit on ``fold.train_ids``; score ``fold.test_ids``."""

    @abstractmethod
    def save(self, folder: FoldDirectory) -> None:
        """Write what :meth:`load` needs (the preprocessing is the runner's to write)."""

    @classmethod
    @abstractmethod
    def load(cls, spec: ModelConfig, config: RunConfig, folder: FoldDirectory,
             bases: list[FoldModel]) -> FoldModel:  # fmt: skip
        """The model saved in ``folder`` (its bases already loaded)."""

    @abstractmethod
    def score(
        self, data: PreparedCohort, case_ids: list[str], times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Risks ``(n,)`` and survival ``(n, len(times))`` of patients of ``data``."""

    def risk(self, data: PreparedCohort, case_ids: list[str]) -> np.ndarray:
        return self.score(data, case_ids, np.zeros(0))[0]

    def survival(self, data: PreparedCohort, case_ids: list[str], times) -> np.ndarray:
        return self.score(data, case_ids, np.asarray(times, dtype=float))[1]

    def fold_models(self) -> list[FoldModel]:
        """This model and every model it combines (bases first-level and below)."""
        return [self]

    def cross_fitted_risks(self, fold: FoldFit, labels: list[str]) -> list[BaseRisks]:
        """The named bases' out-of-fold risks on the training part (an inner K-fold) and their
        risks on the evaluation part (refit on the whole training part), for a combiner."""
        genomics = self.config.data.genomics
        out = []
        for label in labels:
            spec = self.config.model_by_label(label)
            cache = fold.base_cache(spec.display) if fold.base_cache else None
            out.append(base_risks(
                spec, used_modalities(spec, fold.data), fold.data, fold.train_ids,
                fold.test_ids, seed=fold.seed, cache=cache,
                top_variance=genomics.top_variance if genomics else None,
            ))  # fmt: skip
        return out

    def reads(self, data: PreparedCohort) -> set[str]:
        """The modalities this model reads itself."""
        return used_modalities(self.spec, data)

    def network(self):
        """The network to explain; models without one refuse."""
        raise ConfigError(f"model {self.spec.display!r} has no torch weights to explain")


# -- tabular estimators ----------------------------------------------------------------------
class TabularFoldModel(FoldModel):
    """A scikit-learn-style estimator on the fold's tabular matrix (``model_state.json``)."""

    relative_cost = 0.1

    estimator = None

    def fit(self, fold: FoldFit) -> Fitted:
        modalities = used_modalities(self.spec, fold.data)
        x_train, names = self.pre.tabular_matrix(fold.data, fold.train_ids, modalities)
        x_test, _ = self.pre.tabular_matrix(fold.data, fold.test_ids, modalities)
        self.estimator = create(self.spec.name, **tabular_kwargs(self.spec, fold.data, names, True))
        return _fit_estimator(self.estimator, x_train, x_test, fold)

    def save(self, folder: FoldDirectory) -> None:
        if hasattr(self.estimator, "to_state"):
            folder.write_tabular(self.estimator.to_state())

    @classmethod
    def load(cls, spec, config, folder, bases):
        model = cls(spec, config, folder.preprocessing()[0])
        model.estimator = folder.tabular()
        return model

    def score(self, data, case_ids, times):
        x, _ = self.pre.tabular_matrix(data, case_ids, used_modalities(self.spec, data))
        return self.estimator.predict_risk(x), self.estimator.predict_survival(x, times)


def _fit_estimator(model, x_train: np.ndarray, x_test: np.ndarray, fold: FoldFit) -> Fitted:
    """Fit a tabular estimator (or a stack's combiner) on the training rows; score both parts."""
    model.fit(x_train, fold.train_target)
    return Fitted(
        model.predict_risk(x_train), model.predict_risk(x_test),
        model.predict_survival(x_test, fold.bins.bin_times),
        lambda t: model.predict_survival(x_test, t),
        {"selection": "none (closed-form fit on the training fold)"},
    )  # fmt: skip


# -- stacks ----------------------------------------------------------------------------------
class StackFoldModel(FoldModel):
    """A Cox combiner over its bases' out-of-fold risks (the bases are fold models)."""

    relative_cost = 0.2

    combiner = None
    bases: list[FoldModel] = []

    def fit(self, fold: FoldFit) -> Fitted:
        stack = create(self.spec.name, **self.spec.params)
        risks = self.cross_fitted_risks(fold, stack.base)
        x_train = np.column_stack([r.train for r in risks])
        x_test = np.column_stack([r.test for r in risks])
        self.combiner = stack
        fitted = _fit_estimator(stack, x_train, x_test, fold)
        fitted.facts = {
            "stack_weights": stack.weights_, "stack_alpha": stack.combiner.alpha_,
            "selection": f"combiner penalty by inner CV over {INNER_FOLDS}-fold out-of-fold "
                         "base risks",
        }  # fmt: skip
        return fitted

    def save(self, folder: FoldDirectory) -> None:
        folder.write_tabular(self.combiner.to_state())

    @classmethod
    def load(cls, spec, config, folder, bases):
        model = cls(spec, config, folder.preprocessing()[0])
        model.combiner = folder.tabular()
        model.bases = bases
        return model

    def score(self, data, case_ids, times):
        risks = np.column_stack([base.risk(data, case_ids) for base in self.bases])
        return self.combiner.predict_risk(risks), self.combiner.predict_survival(risks, times)

    def fold_models(self) -> list[FoldModel]:
        return [self, *(m for base in self.bases for m in base.fold_models())]

    def reads(self, data: PreparedCohort) -> set[str]:
        return set()  # only its bases' risks


# -- networks --------------------------------------------------------------------------------
class NetworkFoldModel(FoldModel):
    """A torch network (``model.json`` + safetensors); under the Cox loss its survival curves
    come from a Breslow baseline on the training fold (``breslow.json``), otherwise from its
    discrete hazards over the fold's bins."""

    net = None
    breslow: BreslowCurves | None = None
    bins: TimeBins | None = None
    dims: InputDims | None = None  # what the network was built with
    n_out: int = 0

    def _inputs(self, data, case_ids, bag_cache=None) -> FoldInputs:
        return FoldInputs(data, self.pre, case_ids, used_modalities(self.spec, data), bag_cache,
                          genomic_clip=self.config.train.genomic_clip)  # fmt: skip

    def _new_network(self, data: PreparedCohort, n_bins: int):
        """A new network reading patches within the run's budget, with the outputs the run's
        loss trains (one per time bin, or one log hazard ratio for Cox)."""
        self.dims = network_dims(self.pre.dims(data), used_modalities(self.spec, data))
        self.n_out = n_outputs(self.config.train.loss, n_bins)
        net = create(self.spec.name, dims=self.dims, n_bins=self.n_out, **self.spec.params)
        net.set_patch_budget(self.config.train.patch_budget())
        return net

    def _outcome(self, fold: FoldFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Time bins, events and times of the training patients, zeros for the evaluation ones
        (they are never trained on)."""
        n_test = len(fold.test_ids)
        bin_index = np.concatenate([fold.bins.transform(fold.train_target.time), np.zeros(n_test, int)])  # fmt: skip
        event = np.concatenate([fold.train_target.event, np.zeros(n_test, bool)]).astype(np.float32)  # fmt: skip
        times = np.concatenate([fold.train_target.time, np.zeros(n_test)])
        return bin_index, event, times

    def fit(self, fold: FoldFit) -> Fitted:
        config = self.config
        net = self._new_network(fold.data, fold.bins.n_bins)
        n_train = len(fold.train_ids)
        inputs = self._inputs(fold.data, fold.train_ids + fold.test_ids, fold.bag_cache)
        bin_index, event, times = self._outcome(fold)
        positions, val_positions = list(range(n_train)), None
        if config.train.selection == "inner_val":
            positions, val_positions = inner_split(
                positions, event, config.train.inner_val_fraction, fold.seed
            )
        result = train_model(
            net, inputs, positions, bin_index, event,
            config.train.model_copy(update={"seed": fold.seed}), fold.device,
            time=times, n_bins=fold.bins.n_bins, val_positions=val_positions,
            val_time=fold.train_target.time[val_positions] if val_positions else None,
        )  # fmt: skip
        self.net, self.bins = net, fold.bins
        train_logits = predict_logits(net, inputs, list(range(n_train)), fold.device)
        test_positions = list(range(n_train, n_train + len(fold.test_ids)))
        test_logits = predict_logits(net, inputs, test_positions, fold.device)
        train_risk = risk_from_logits(torch.from_numpy(train_logits)).numpy()
        test_risk = risk_from_logits(torch.from_numpy(test_logits)).numpy()
        if test_logits.shape[1] == 1:  # a Cox network: Breslow curves over its risk
            self.breslow = BreslowCurves(train_risk, fold.train_target)
        curves, at = self._curves(test_logits, test_risk)
        facts = {
            "selection": result.selection, "selected_epoch": result.selected_epoch,
            "history": result.history,
            **alternative_paths(net, fold, inputs, test_risk),
        }  # fmt: skip
        return Fitted(train_risk, test_risk, curves, at, facts)

    def _curves(self, logits: np.ndarray, risk: np.ndarray):
        """Survival at the fold's bin ends, and as a function of time."""
        if self.breslow is not None:
            breslow = self.breslow
            return breslow(risk, self.bins.bin_times), lambda t: breslow(risk, t)
        surv = survival_from_logits(torch.from_numpy(logits)).numpy()
        return surv, lambda t: survival_at_times(surv, self.bins, t)

    def save(self, folder: FoldDirectory) -> None:
        if self.breslow is not None:
            folder.write_breslow(self.breslow.to_state())
        folder.write_network(self.net, self.spec.name, self.n_out, self.dims)

    @classmethod
    def load(cls, spec, config, folder, bases):
        pre, bins = folder.preprocessing()
        model = cls(spec, config, pre)
        model.net, model.bins = folder.network(), bins
        state = folder.breslow()
        if state is not None:
            with malformed(folder.path / "breslow.json", "Breslow baseline"):
                model.breslow = BreslowCurves.from_state(state)
        return model

    def _logits(self, net, data, case_ids) -> torch.Tensor:
        inputs = self._inputs(data, case_ids)
        with torch.no_grad():
            return torch.cat([net(inputs.batch([i])).logits for i in range(len(case_ids))])

    def score(self, data, case_ids, times):
        logits = self._logits(self.net, data, case_ids)
        risk = risk_from_logits(logits).numpy()
        if self.breslow is not None:
            return risk, self.breslow(risk, times)
        return risk, survival_at_times(survival_from_logits(logits).numpy(), self.bins, times)

    def network(self):
        return self.net


class ResidualFoldModel(NetworkFoldModel):
    """Networks learning a residual over a linear part, cross-fitted (``residual.json``).

    The linear part is a Cox stack of the named models' out-of-fold risks. The training fold is
    cut into ``RESIDUAL_FOLDS`` parts; a network is trained on all parts but one with the
    linear part as a fixed hazard offset, and scores the part it did not see and the evaluation
    patients. A Cox model (penalty by inner CV) then weighs linear part against the out-of-fold
    network risk over the whole training fold, so a residual that does not generalise earns ~0
    weight and the model falls back on its linear part.
    """

    relative_cost = float(RESIDUAL_FOLDS)

    def __init__(self, spec, config, pre):
        super().__init__(spec, config, pre)
        self.bases: list[FoldModel] = []
        self.nets: list = []
        self.state: dict = {}

    def fit(self, fold: FoldFit) -> Fitted:
        from sklearn.model_selection import StratifiedKFold

        config, residual = self.config, list(self.spec.residual_over)
        train_target, test_target = fold.train_target, fold.test_target
        risks = self.cross_fitted_risks(fold, residual)
        linear = combine([r.train for r in risks], train_target, [r.label for r in risks])
        eta_train = linear.predict_risk(np.column_stack([r.train for r in risks]))
        eta_test = linear.predict_risk(np.column_stack([r.test for r in risks]))
        n_train = len(fold.train_ids)
        inputs = self._inputs(fold.data, fold.train_ids + fold.test_ids, fold.bag_cache)
        bin_index, event, times = self._outcome(fold)
        test_positions = list(range(n_train, n_train + len(fold.test_ids)))
        network_train = np.zeros(n_train)
        network_test = np.zeros(len(fold.test_ids))
        histories, agreement, scales = [], {}, []
        split = StratifiedKFold(RESIDUAL_FOLDS, shuffle=True, random_state=fold.seed)
        for part, (fit, held) in enumerate(split.split(np.zeros(n_train), train_target.event)):
            part_seed = fold.seed * 10 + part
            seed_everything(part_seed)
            net = self._new_network(fold.data, fold.bins.n_bins)
            inputs.offset = np.concatenate([eta_train, eta_test]) - float(np.mean(eta_train))
            result = train_model(
                net, inputs, sorted(fit.tolist()), bin_index, event,
                config.train.model_copy(update={"seed": part_seed}), fold.device,
                time=times, n_bins=fold.bins.n_bins,
            )  # fmt: skip
            histories.append(result.history)
            inputs.offset = None  # the network's own (residual) risk
            held_risk = risk_from_logits(torch.from_numpy(
                predict_logits(net, inputs, sorted(held.tolist()), fold.device))).numpy()  # fmt: skip
            test_risk = risk_from_logits(torch.from_numpy(
                predict_logits(net, inputs, test_positions, fold.device))).numpy()  # fmt: skip
            # each network's risks on its own scale: standardised by its held-out part
            center, scale = float(np.mean(held_risk)), float(np.std(held_risk)) or 1.0
            network_train[sorted(held.tolist())] = (held_risk - center) / scale
            network_test += (test_risk - center) / scale / RESIDUAL_FOLDS
            scales.append({"center": center, "scale": scale})
            if part == 0:
                agreement = alternative_paths(net, fold, inputs, test_risk)
            self.nets.append(net)
        final = combine([eta_train, network_train], train_target, ["linear part", "network"])
        train_risk = final.predict_risk(np.column_stack([eta_train, network_train]))
        test_risk = final.predict_risk(np.column_stack([eta_test, network_test]))
        breslow = BreslowCurves(train_risk, train_target)
        # what `kemm predict` needs to score new patients the same way
        self.state = {
            "residual_over": residual, "linear_part": linear.to_state(),
            "networks": scales, "combiner": final.to_state(), "breslow": breslow.to_state(),
        }  # fmt: skip
        return Fitted(train_risk, test_risk, breslow(test_risk, fold.bins.bin_times),
                      lambda t: breslow(test_risk, t), {
            "selection": f"fixed epochs; {RESIDUAL_FOLDS} cross-fitted networks, network weight "
                         "by a Cox model over out-of-fold risks (penalty by inner CV)",
            "selected_epoch": None, "history": histories[0],
            "residual_over": residual, "residual_weights": final.coef_,
            "residual_alpha": final.alpha_,
            "linear_part_c_index": harrell_c(test_target.event, test_target.time, eta_test),
            "network_c_index": harrell_c(test_target.event, test_target.time, network_test),
            **agreement,
        })  # fmt: skip

    def save(self, folder: FoldDirectory) -> None:
        # part 0 also as "weights": the network `kemm explain` reads
        folder.write_network(self.nets[0], self.spec.name, self.n_out, self.dims)
        for part, net in enumerate(self.nets):
            folder.write_network(net, self.spec.name, self.n_out, self.dims,
                                 weights=f"weights_part{part}")  # fmt: skip
        folder.write_residual(self.state)

    @classmethod
    def load(cls, spec, config, folder, bases):
        model = cls(spec, config, folder.preprocessing()[0])
        model.state = state = folder.residual()
        model.bases = bases
        with malformed(folder.path / "residual.json", "residual model"):
            model.linear = restore_tabular(state["linear_part"])
            model.combiner = restore_tabular(state["combiner"])
            model.breslow = BreslowCurves.from_state(state["breslow"])
            model.scales = [(float(s["center"]), float(s["scale"])) for s in state["networks"]]
        model.nets = [folder.network(f"weights_part{part}") for part in range(len(model.scales))]
        return model

    def score(self, data, case_ids, times):
        base = np.column_stack([b.risk(data, case_ids) for b in self.bases])
        eta = self.linear.predict_risk(base)
        network = np.zeros(len(case_ids))
        for net, (center, scale) in zip(self.nets, self.scales, strict=True):
            risk = risk_from_logits(self._logits(net, data, case_ids)).numpy()
            network += (risk - center) / scale / len(self.scales)
        risk = self.combiner.predict_risk(np.column_stack([eta, network]))
        return risk, self.breslow(risk, times)

    def fold_models(self) -> list[FoldModel]:
        return [self, *(m for base in self.bases for m in base.fold_models())]

    def network(self):
        return self.nets[0]


# -- which class, and loading ----------------------------------------------------------------
# The one place a model's kind is looked up: a registry kind, or a network with a linear part.
FOLD_MODEL_TYPES: dict[str, type[FoldModel]] = {
    "tabular": TabularFoldModel,
    "stack": StackFoldModel,
    "torch": NetworkFoldModel,
    "residual": ResidualFoldModel,
}


def fold_model_type(spec: ModelConfig) -> type[FoldModel]:
    kind = get_entry(spec.name).kind
    return FOLD_MODEL_TYPES["residual" if spec.residual_over else kind]


def fold_model(spec: ModelConfig, config: RunConfig, pre: FoldPreprocessor) -> FoldModel:
    """A new, unfitted fold model of ``spec``'s kind."""
    return fold_model_type(spec)(spec, config, pre)


def load_fold_model(
    run: RunDirectory, config: RunConfig, spec: ModelConfig, folder: FoldDirectory
) -> FoldModel:
    """The fold model saved in ``folder``, with the bases it combines loaded from their folders
    of the same seed and fold."""
    bases = [
        load_fold_model(run, config, base, _sibling(run, folder, base))
        for base in config.bases_of(spec)
    ]
    return fold_model_type(spec).load(spec, config, folder, bases)


def _sibling(run: RunDirectory, fold: FoldDirectory, spec: ModelConfig) -> FoldDirectory:
    """The folder of ``spec``'s model for the same seed and fold as ``fold``."""
    sibling = run.sibling(fold, spec.display)
    if not sibling.finished:
        raise InputDataError(
            f"base model {spec.display!r} has no finished {fold.seed_name}/{fold.fold_name}",
            file=str(run.root),
        )
    return sibling


# -- helpers shared by the network kinds ------------------------------------------------------
def inner_split(
    positions: list[int], event: np.ndarray, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """A validation part carved from the training fold, stratified by event."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for flag in (True, False):
        group = [p for p in positions if bool(event[p]) == flag]
        rng.shuffle(group)
        n_val = int(round(len(group) * fraction))
        val += group[:n_val]
        train += group[n_val:]
    return sorted(train), sorted(val)


def alternative_paths(net, fold: FoldFit, inputs: FoldInputs, main_risk: np.ndarray) -> dict:
    """Each alternative scoring path of the network (e.g. KEMM's report-free student): the
    Spearman correlation of its risks with the main path's over the evaluation patients that
    have the compared modality, and its C-index on the whole evaluation fold."""
    out: dict = {}
    test_ids, target = fold.test_ids, fold.test_target
    offset = len(inputs.case_ids) - len(test_ids)
    positions = [offset + i for i in range(len(test_ids))]
    for path in net.alternative_paths(inputs.modalities):
        chosen = [i for i, c in enumerate(test_ids) if fold.data.has_modality(c, path.compare_on)]
        if len(chosen) < 3:
            continue
        logits = predict_logits(net, inputs, positions, fold.device, **path.forward_kwargs)
        risk = risk_from_logits(torch.from_numpy(logits)).numpy()
        out[f"{path.agreement}_spearman"] = float(
            spearmanr(main_risk[chosen], risk[chosen]).statistic
        )
        out[f"{path.agreement}_patients"] = len(chosen)
        out[f"{path.name}_c_index"] = harrell_c(target.event, target.time, risk)
    return out
