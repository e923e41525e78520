"""The training-step benchmark behind ``kemm bench step``.

One synthetic patient (a bag of N x D patch features, six genomic groups, eight report and eight
PBK statements, the three risk prototypes; each model gets the inputs it uses) and one full
training step: ``training_step`` (forward + survival loss + extra objectives), backward, AdamW
step (fused where torch supports it). The bag cap is off by default, so the whole bag goes through the model. Reports the median
step time and the peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the process'
peak resident set (``VmHWM``, reset before the timed steps where the kernel allows), which
includes the input bag and the torch runtime.

On a shared CPU, OpenMP's default spin-waiting makes every multi-threaded operation wait for a
core another process holds; run with ``OMP_WAIT_POLICY=PASSIVE`` (or ``--threads 1``) there.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import nullcontext
from typing import Any

import torch

from kemm.device import resolve_device
from kemm.errors import ConfigError
from kemm.models.base import InputDims, ModelInput, PatchBudget
from kemm.models.registry import create, get_entry
from kemm.survival.losses import SurvivalBatch, survival_loss

GENOMIC_GROUPS = (100, 300, 500, 450, 1500, 480)  # sizes like the six MCAT gene families
TEXT_DIM = 384  # all-MiniLM-L6-v2


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def synthetic_input(
    modalities: frozenset[str],
    dims: InputDims,
    patches: int,
    device: torch.device,
    n_report: int = 8,
    n_pbk: int = 8,
) -> ModelInput:
    """One synthetic patient with the inputs named in ``modalities``."""
    x = ModelInput()
    if "wsi" in modalities:
        x.wsi = [torch.randn(patches, dims.wsi_dim, device=device)]
    if "genomics" in modalities:
        x.genomics = [torch.randn(1, g, device=device) for g in dims.genomic_groups]
        x.genomics_mask = torch.ones(1, dtype=torch.bool, device=device)
    if "report" in modalities:
        x.report = torch.randn(1, n_report, dims.text_dim, device=device)
        x.report_mask = torch.ones(1, n_report, dtype=torch.bool, device=device)
    if "pbk" in modalities:
        x.pbk = torch.randn(1, n_pbk, dims.text_dim, device=device)
        x.pbk_mask = torch.ones(1, n_pbk, dtype=torch.bool, device=device)
        x.pbk_risk = torch.randn(1, 3, dims.text_dim, device=device)
    return x


def bench_step(
    model: str,
    patches: int,
    features: int = 1024,
    *,
    device: str = "auto",
    steps: int = 5,
    warmup: int = 2,
    amp: bool = False,
    bag_cap: int | None = None,
    n_bins: int = 4,
    seed: int = 0,
    hparams: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time ``steps`` full training steps of ``model`` on one synthetic patient; see the module
    docstring. Returns a JSON-able dict (``step_seconds`` is the median)."""
    if steps < 1 or warmup < 0:
        raise ConfigError("steps must be >= 1 and warmup >= 0")
    entry = get_entry(model)
    if entry.kind != "torch":
        raise ConfigError(f"model {model!r} is a {entry.kind} model; bench step times torch models")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    rss_start = _proc_status_mb("VmRSS")
    dims = InputDims(
        genomic_groups=list(GENOMIC_GROUPS),
        genomic_group_names=[f"group{i}" for i in range(len(GENOMIC_GROUPS))],
        wsi_dim=features,
        text_dim=TEXT_DIM,
    )
    net = create(model, dims=dims, n_bins=n_bins, **(hparams or {}))
    net.set_patch_budget(PatchBudget(max_train_patches=bag_cap))
    net = net.to(dev).train()
    x = synthetic_input(entry.modalities, dims, patches, dev)
    y = SurvivalBatch(torch.tensor([1], device=dev), torch.tensor([1.0], device=dev),
                      torch.tensor([12.0], device=dev), n_bins)  # fmt: skip
    loss_fn = survival_loss("nll")
    try:  # one fused kernel per parameter instead of ~8 ops (the same for every model)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    amp_dtype = torch.bfloat16
    if amp and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        amp_dtype = torch.float16
    scaler = torch.amp.GradScaler(dev.type, enabled=amp and amp_dtype == torch.float16)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def step() -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        ctx = torch.autocast(dev.type, dtype=amp_dtype) if amp else nullcontext()
        with ctx:
            loss, logs = net.training_step(x, y, loss_fn)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return logs

    logs: dict[str, float] = {}
    for _ in range(warmup):
        logs = step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    peak_reset = dev.type == "cpu" and _reset_peak_rss()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logs = step()
        sync()
        times.append(time.perf_counter() - start)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        memory = "torch.cuda.max_memory_allocated"
    else:
        peak = _proc_status_mb("VmHWM")
        memory = "process peak RSS (VmHWM" + (", reset after warm-up)" if peak_reset else ")")
    return {
        "model": model,
        "patches": patches,
        "features": features,
        "device": str(dev),
        "dtype": str(amp_dtype).replace("torch.", "") + " autocast" if amp else "float32",
        "step_seconds": statistics.median(times),
        "step_seconds_all": [round(t, 4) for t in times],
        "peak_mb": round(peak, 1) if peak is not None else None,
        "start_rss_mb": round(rss_start, 1) if rss_start is not None else None,
        "memory": memory,
        "bag_cap": bag_cap,
        "steps": steps,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "parameters": sum(p.numel() for p in net.parameters()),
        "losses": sorted(logs),
    }
