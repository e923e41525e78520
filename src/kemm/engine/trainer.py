"""Device-agnostic training of one torch survival model on one fold."""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from kemm.engine.config import TrainConfig
from kemm.engine.data import FoldInputs
from kemm.models.base import SurvivalModel
from kemm.survival import SurvivalBatch, TimeBins, harrell_c, risk_from_logits, survival_loss

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    selected_epoch: int = 0
    selection: str = "last"


def _uses_bags(inputs: FoldInputs) -> bool:
    return "wsi" in inputs.modalities


def train_model(
    model: SurvivalModel,
    inputs: FoldInputs,
    train_positions: list[int],
    bins: np.ndarray,
    event: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    *,
    time: np.ndarray | None = None,
    n_bins: int | None = None,
    val_positions: list[int] | None = None,
    val_time: np.ndarray | None = None,
    progress=None,
) -> TrainResult:
    """Train in place. One bag per forward when the model reads WSI bags (gradient accumulation
    up to ``batch_size`` patients), otherwise, and always under the Cox loss (its risk sets span
    the batch), ``batch_size`` patients per forward.

    With ``val_positions`` (an inner split carved from the training fold) the epoch with the best
    inner-validation C-index is restored; otherwise the last epoch is kept."""
    model.to(device)
    # The fused kernel updates every parameter in one call (per-tensor Python loops dominate
    # small models on CPU); it exists for CPU and CUDA.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(
        model.parameter_groups(config.lr), lr=config.lr, weight_decay=config.weight_decay,
        fused=fused,
    )  # fmt: skip
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    # Bags go one per forward (memory) and accumulate gradients, except under the Cox loss,
    # whose risk sets need the whole batch in one loss: then batch_size bags per forward.
    micro = 1 if _uses_bags(inputs) and config.loss != "cox" else config.batch_size
    accumulate = config.batch_size if micro == 1 else 1
    generator = np.random.default_rng(config.seed)
    if time is None:
        if config.loss == "cox":
            raise ValueError("the Cox loss needs the patients' follow-up times (time=...)")
        time = np.asarray(bins, dtype=np.float32)  # the discrete likelihood reads bins only
    target = SurvivalBatch(
        torch.as_tensor(bins, dtype=torch.long), torch.as_tensor(event, dtype=torch.float32),
        torch.as_tensor(np.asarray(time, dtype=np.float32)),
        int(n_bins if n_bins is not None else int(np.max(bins)) + 1),
    )  # fmt: skip
    loss_fn = survival_loss(config.loss, alpha=config.nll_alpha)

    result = TrainResult(selection="inner_val" if val_positions else "last")
    best_score, best_state = -np.inf, None
    for epoch in range(config.epochs):
        model.train()
        order = generator.permutation(train_positions)
        chunks = [list(order[i : i + micro]) for i in range(0, len(order), micro)]
        # Drop a trailing single-patient batch for batch models: BatchNorm-free, but a size-1
        # batch of an all-censored patient carries almost no signal and destabilises Adam.
        totals: dict[str, float] = {}
        optimizer.zero_grad(set_to_none=True)
        for step, chunk in enumerate(chunks, start=1):
            x = inputs.batch(chunk, device)
            index = torch.as_tensor(chunk)
            with torch.autocast(device.type, enabled=use_amp):
                loss, logs = model.training_step(x, target[index].to(device), loss_fn)
            scaler.scale(loss / accumulate).backward()
            if step % accumulate == 0 or step == len(chunks):
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
            for key, value in logs.items():
                totals[key] = totals.get(key, 0.0) + value * len(chunk)
        record = {"epoch": epoch + 1, **{k: v / len(order) for k, v in totals.items()}}
        if val_positions:
            risk = predict_logits(model, inputs, val_positions, device)
            record["inner_val_c"] = harrell_c(
                event[val_positions].astype(bool), val_time, risk_from_numpy(risk)
            )
            if record["inner_val_c"] > best_score:
                best_score = record["inner_val_c"]
                best_state = copy.deepcopy(model.state_dict())
                result.selected_epoch = epoch + 1
        result.history.append(record)
        if progress is not None:
            progress(record)
    if val_positions and best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.selected_epoch = config.epochs
    return result


def risk_from_numpy(logits: np.ndarray) -> np.ndarray:
    return risk_from_logits(torch.from_numpy(logits)).numpy()


@torch.no_grad()
def predict_logits(
    model: SurvivalModel,
    inputs: FoldInputs,
    positions: list[int],
    device: torch.device,
    batch: int = 64,
    **forward_kwargs,
) -> np.ndarray:
    """Evaluation-mode logits (n, n_bins). Bags go one patient at a time (whole bag, chunked by
    the model), tabular-sized inputs in batches. ``forward_kwargs`` go to the model's forward
    (e.g. ``use_report=False`` for KEMM's student path)."""
    model.eval()
    step = 1 if _uses_bags(inputs) else batch
    out = []
    for i in range(0, len(positions), step):
        x = inputs.batch(list(positions[i : i + step]), device)
        out.append(model(x, **forward_kwargs).logits.float().cpu())
    return torch.cat(out).numpy()


def fit_bins(train_target, all_target, config: TrainConfig) -> TimeBins:
    if config.legacy_binning:
        return TimeBins.fit_legacy(all_target, n_bins=config.n_bins)
    return TimeBins.fit(train_target, n_bins=config.n_bins)
