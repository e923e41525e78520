"""``kemm bench``: cost of one training step (time and peak memory) for a registered model."""

from __future__ import annotations

import json

import typer

from kemm.cli.common import KemmTyper


def register(app: typer.Typer) -> None:
    bench = KemmTyper(help="Benchmarks: training-step time and memory.")

    @bench.command("step")
    def step(
        model: str = typer.Option(
            ..., "--model", help="Registered model name (kemm, abmil, floor, ...)."
        ),
        patches: int = typer.Option(..., "--patches", help="Patches in the synthetic bag (N)."),
        features: int = typer.Option(1024, "--features", help="Patch feature size (D)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:i]."),
        steps: int = typer.Option(5, "--steps", help="Timed steps (the median is reported)."),
        warmup: int = typer.Option(2, "--warmup", help="Untimed warm-up steps."),
        amp: bool = typer.Option(
            False, "--amp/--no-amp", help="Autocast (bf16, fp16 on old GPUs)."
        ),
        bag_cap: int | None = typer.Option(
            None, "--bag-cap", help="Train-time bag cap (default: off, the whole bag)."
        ),
        threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    ) -> None:
        """Time full training steps (forward, loss, backward, AdamW) on one synthetic patient and
        print one JSON object (step_seconds = median, peak_mb, model, patches, device, dtype)."""
        import torch

        from kemm.models.benchmark import bench_step

        if threads:
            torch.set_num_threads(threads)
        result = bench_step(
            model,
            patches,
            features,
            device=device,
            steps=steps,
            warmup=warmup,
            amp=amp,
            bag_cap=bag_cap,
        )
        typer.echo(json.dumps(result))

    app.add_typer(bench, name="bench")
