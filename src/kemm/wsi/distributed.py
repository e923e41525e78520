"""Extraction spread over a Ray cluster: one actor per GPU (or per CPU slot without GPUs).

Every actor runs the same :class:`~kemm.wsi.extract.SlideProcessor` as a local run, on the shared
output folder, so resume, per-slide locks and error isolation are unchanged; only the loop over
slides is distributed. The output folder must be visible to every node (a shared filesystem).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from kemm.errors import ConfigError
from kemm.wsi.extract import (
    ExtractionConfig,
    RunSummary,
    SlideProcessor,
    SlideResult,
    _log_result,
    _now,
    _progress_bar,
)
from kemm.wsi.slide import find_slides, slide_id_of


def _import_ray():
    try:
        import ray
    except Exception as error:  # noqa: BLE001 - a broken install fails in many ways
        raise ConfigError(
            f"distributed extraction needs Ray, which cannot be imported ({error}); "
            "pip install 'ray>=2.9'"
        ) from error
    return ray


class _ExtractionWorker:
    """Holds one encoder and processes the slides it is given."""

    def __init__(self, out_dir: str, config: ExtractionConfig):
        self.processor = SlideProcessor(out_dir, config)

    def process(self, slide_path: str) -> dict[str, object]:
        return self.processor.process_slide(slide_path).to_dict()


def extract_features_ray(
    slides: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    config: ExtractionConfig | None = None,
    *,
    address: str | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float = 1.0,
) -> RunSummary:
    """Process slides on a Ray cluster (``address``; ``None`` or ``"local"`` starts or joins a
    local instance) and write the run summary, as :func:`~kemm.wsi.extract.extract_features` does.

    With GPUs in the cluster each actor takes one GPU and ``num_actors`` defaults to their number;
    without, each takes ``cpus_per_actor`` CPUs.
    """
    ray = _import_ray()
    config = config or ExtractionConfig()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    slide_paths = find_slides(slides) if isinstance(slides, (str, Path)) else list(slides)
    slide_paths = [str(Path(p).resolve()) for p in slide_paths]

    started_here = False
    if not ray.is_initialized():
        if address in (None, "", "local"):
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started_here = True
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus > 0:
            options = {"num_gpus": 1, "num_cpus": cpus_per_actor}
            default_actors = gpus
        else:
            options = {"num_gpus": 0, "num_cpus": cpus_per_actor}
            default_actors = max(1, int(resources.get("CPU", 1) // max(cpus_per_actor, 1e-6)))
        count = max(1, min(num_actors or default_actors, len(slide_paths) or 1))
        # Actors log their slides; the driver shows one bar over slides.
        worker_config = _replace(config, progress=False)
        if gpus > 0 and config.device == "auto":
            worker_config = _replace(worker_config, device="cuda")
        remote_worker = ray.remote(**options)(_ExtractionWorker)
        actors = [remote_worker.remote(str(out_dir), worker_config) for _ in range(count)]
        pool = ray.util.ActorPool(actors)

        clock, started = time.perf_counter(), _now()
        results: list[SlideResult] = []
        unique: list[str] = []
        seen: dict[str, str] = {}
        for path in slide_paths:
            slide_id = slide_id_of(path)
            if slide_id in seen:
                results.append(
                    SlideResult(
                        slide_id,
                        path,
                        "failed",
                        f"slide id {slide_id!r} already used by {seen[slide_id]}; rename one",
                    )
                )
            else:
                seen[slide_id] = path
                unique.append(path)
        progress = _progress_bar(len(unique), "slides", enabled=config.progress)
        progress.unit = "slide"
        patches = 0
        try:
            for outcome in pool.map_unordered(
                lambda actor, path: actor.process.remote(path), unique
            ):
                result = SlideResult(**outcome)
                _log_result(result)
                results.append(result)
                patches += result.num_patches
                elapsed = time.perf_counter() - clock
                progress.set_postfix_str(f"{patches / elapsed:.1f} patches/s", refresh=False)
                progress.update(1)
        finally:
            progress.close()
        order = {path: index for index, path in enumerate(slide_paths)}
        results.sort(key=lambda r: order.get(r.slide_path, len(order)))
        summary = RunSummary(
            results=results,
            settings={**config.settings(), "ray_actors": count, "ray_gpus": gpus},
            started_at=started,
            finished_at=_now(),
            seconds=time.perf_counter() - clock,
        )
        summary.write(out_dir)
        for actor in actors:
            ray.kill(actor)
        return summary
    finally:
        if started_here:
            ray.shutdown()


def _replace(config: ExtractionConfig, **changes: object) -> ExtractionConfig:
    from dataclasses import replace

    return replace(config, **changes)
