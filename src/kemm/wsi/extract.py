"""Feature extraction over a folder of slides, resumable and safe to share between workers.

Output folder layout (``out``):

- ``<slide_id>.h5``: the feature bag (see :mod:`kemm.wsi.features`);
- ``<slide_id>.state.json``: the slide's state (done / failed, why, how many patches, settings);
- ``<slide_id>.lock``: present while some worker is processing the slide;
- ``review/<slide_id>.png``: thumbnail with tissue contour and patch grid, for review;
- ``run_summary.json``: processed / skipped / failed slides with reasons, of the latest run
  (and ``runs/<time>-<host>-<pid>.json`` for every run).

Resume is a property of the folder: a slide whose state says ``done`` with the same settings is
skipped; a failed slide is tried again; a locked slide is left to the worker holding the lock.
A finished slide with other settings, or a feature file that no run in the folder wrote (copied
in, from CLAM/TRIDENT), is never replaced without ``overwrite``.
Any error while processing one slide is recorded in its state and the batch goes on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kemm.device import resolve_device
from kemm.errors import ConfigError, InputDataError, KemmError
from kemm.io import atomic_path
from kemm.wsi.encoders import PatchEncoder, create, encode_batch
from kemm.wsi.features import write_bag
from kemm.wsi.slide import MppOverrides, Slide, find_slides, slide_id_of
from kemm.wsi.tiling import PatchGrid, TilingParams, plan_patches, save_review_image

logger = logging.getLogger("kemm.wsi")

STATE_SUFFIX = ".state.json"
LOCK_SUFFIX = ".lock"


@dataclass
class ExtractionConfig:
    """Everything that decides what ``kemm extract`` does."""

    encoder: str = "resnet50_trunc"
    weights: str | None = None
    encoder_kwargs: dict[str, object] = field(default_factory=dict)
    tiling: TilingParams = field(default_factory=TilingParams)
    batch_size: int = 64
    num_workers: int = 2
    """DataLoader worker processes reading patches (0 reads in the main process)."""
    device: str = "auto"
    amp: bool = True
    """Mixed precision on CUDA (ignored elsewhere)."""
    fp16_storage: bool = False
    """Store features as float16 (half the disk) instead of float32."""
    mpp_overrides: MppOverrides | None = None
    save_review: bool = True
    overwrite: bool = False
    stale_lock_seconds: float = 6 * 3600.0
    """A lock older than this (or whose process on this host has died) is taken over."""
    progress: bool = True

    def settings(self) -> dict[str, object]:
        """The settings that make two runs' features interchangeable (recorded per slide)."""
        return json.loads(
            json.dumps(
                {
                    "encoder": self.encoder,
                    "encoder_kwargs": self.encoder_kwargs,
                    "tiling": asdict(self.tiling),
                },
                default=str,
            )
        )


@dataclass
class SlideResult:
    """What happened to one slide in one run."""

    slide_id: str
    slide_path: str
    status: str
    """``processed``, ``skipped`` or ``failed``."""
    reason: str = ""
    num_patches: int = 0
    seconds: float = 0.0
    patches_per_second: float = 0.0
    output: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class RunSummary:
    """Processed, skipped and failed slides of a run, with reasons and throughput."""

    results: list[SlideResult]
    settings: dict[str, object]
    started_at: str
    finished_at: str
    seconds: float

    def _with(self, status: str) -> list[SlideResult]:
        return [r for r in self.results if r.status == status]

    @property
    def processed(self) -> list[SlideResult]:
        return self._with("processed")

    @property
    def skipped(self) -> list[SlideResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[SlideResult]:
        return self._with("failed")

    @property
    def num_patches(self) -> int:
        return sum(r.num_patches for r in self.processed)

    def to_dict(self) -> dict[str, object]:
        encode_seconds = sum(r.seconds for r in self.processed)
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 3),
            "counts": {
                "processed": len(self.processed),
                "skipped": len(self.skipped),
                "failed": len(self.failed),
            },
            "patches": self.num_patches,
            "patches_per_second": round(self.num_patches / encode_seconds, 2)
            if encode_seconds
            else 0.0,
            "settings": self.settings,
            "processed": [r.to_dict() for r in self.processed],
            "skipped": [r.to_dict() for r in self.skipped],
            "failed": [r.to_dict() for r in self.failed],
        }

    def write(self, out_dir: str | Path) -> Path:
        """Write ``run_summary.json`` and a per-run copy under ``runs/``; return the former."""
        out_dir = Path(out_dir)
        content = json.dumps(self.to_dict(), indent=2)
        stamp = self.started_at.replace(":", "").replace("-", "")
        runs = out_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        (runs / f"{stamp}-{socket.gethostname()}-{os.getpid()}.json").write_text(content)
        path = out_dir / "run_summary.json"
        _atomic_write(path, content)
        return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


# -- per-slide state and lock ---------------------------------------------------------------------
class SlideState:
    """The state file of one slide in an output folder."""

    def __init__(self, out_dir: Path, slide_id: str):
        self.path = out_dir / f"{slide_id}{STATE_SUFFIX}"

    def read(self) -> dict[str, object] | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write(self, **content: object) -> None:
        content.setdefault("updated_at", _now())
        _atomic_write(self.path, json.dumps(content, indent=2, default=str))


class SlideLock:
    """An exclusive lock file; a lock whose holder died (same host) or that is too old is taken."""

    def __init__(self, out_dir: Path, slide_id: str, stale_seconds: float):
        self.path = out_dir / f"{slide_id}{LOCK_SUFFIX}"
        self.stale_seconds = stale_seconds
        self.held = False

    def acquire(self) -> bool:
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._is_stale():
                    self.path.unlink(missing_ok=True)
                    continue
                return False
            with os.fdopen(descriptor, "w") as handle:
                json.dump(
                    {"host": socket.gethostname(), "pid": os.getpid(), "since": _now()}, handle
                )
            self.held = True
            return True
        return False

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return f"{info.get('host')}:{info.get('pid')} since {info.get('since')}"
        except (OSError, json.JSONDecodeError):
            return "another worker"

    def _is_stale(self) -> bool:
        try:
            age = time.time() - self.path.stat().st_mtime
            info = json.loads(self.path.read_text())
        except FileNotFoundError:
            return True
        except (OSError, json.JSONDecodeError):
            return False
        if age > self.stale_seconds:
            return True
        if info.get("host") == socket.gethostname():
            pid = int(info.get("pid", -1))
            if pid == os.getpid():
                return False
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


# -- patch reading --------------------------------------------------------------------------------
class PatchDataset(Dataset):
    """Patches of one slide as uint8 tensors (3, S, S); the slide is opened once per worker."""

    def __init__(self, slide_path: str | Path, grid: PatchGrid):
        self.slide_path = str(slide_path)
        self.coords = grid.coords
        self.read_level = grid.read_level
        self.read_size = grid.read_size
        self.patch_size = grid.patch_size
        self._handle = None

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        import openslide
        from PIL import Image

        from kemm.wsi.slide import rgba_to_rgb, unreadable_region_error

        if self._handle is None:
            self._handle = openslide.OpenSlide(self.slide_path)
        x, y = (int(v) for v in self.coords[index])
        try:
            region = self._handle.read_region(
                (x, y), self.read_level, (self.read_size, self.read_size)
            )
        except openslide.OpenSlideError as error:
            raise unreadable_region_error(
                self.slide_path, (x, y), self.read_level, error
            ) from error
        if self.read_size != self.patch_size:
            region = region.resize((self.patch_size, self.patch_size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.ascontiguousarray(rgba_to_rgb(region))).permute(2, 0, 1)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_handle"] = None
        return state


# -- the processor --------------------------------------------------------------------------------
class SlideProcessor:
    """Extracts features for slides into one output folder (see the module docstring)."""

    def __init__(
        self,
        out_dir: str | Path,
        config: ExtractionConfig | None = None,
        encoder: PatchEncoder | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.config = config or ExtractionConfig()
        self._encoder = encoder
        self.device = resolve_device(self.config.device)

    @property
    def encoder(self) -> PatchEncoder:
        """The encoder, built on first use (so a run of skipped slides loads no model)."""
        if self._encoder is None:
            try:
                self._encoder = create(
                    self.config.encoder, weights=self.config.weights, **self.config.encoder_kwargs
                )
            except KemmError as error:
                if isinstance(error, ConfigError):
                    raise
                raise ConfigError(
                    f"cannot build encoder {self.config.encoder!r}: {error}"
                ) from error
        if self._encoder.device != self.device:
            self._encoder = self._encoder.to(self.device)
        return self._encoder

    def output_path(self, slide_id: str) -> Path:
        return self.out_dir / f"{slide_id}.h5"

    def run(self, slides: str | Path | Iterable[str | Path]) -> RunSummary:
        """Process every slide (a folder, a list file, or paths); write and return the summary."""
        if isinstance(slides, (str, Path)):
            slide_paths = find_slides(slides)
        else:
            slide_paths = [Path(s) for s in slides]
        started, clock = _now(), time.perf_counter()
        results: list[SlideResult] = []
        seen: dict[str, Path] = {}
        for index, path in enumerate(slide_paths, start=1):
            slide_id = slide_id_of(path)
            if slide_id in seen:
                result = SlideResult(
                    slide_id,
                    str(path),
                    "failed",
                    f"slide id {slide_id!r} already used by {seen[slide_id]}; rename one",
                )
            else:
                seen[slide_id] = path
                if self.config.progress:
                    logger.info("[%d/%d] %s", index, len(slide_paths), slide_id)
                result = self.process_slide(path)
            results.append(result)
            _log_result(result)
        summary = RunSummary(
            results=results,
            settings=self.config.settings(),
            started_at=started,
            finished_at=_now(),
            seconds=time.perf_counter() - clock,
        )
        summary.write(self.out_dir)
        return summary

    def process_slide(self, slide_path: str | Path) -> SlideResult:
        """Process one slide unless it is done or locked.

        A bad slide is recorded, never raised; a :class:`ConfigError` (the encoder cannot be
        built) is raised, since no slide of the run could succeed.
        """
        slide_path = Path(slide_path)
        slide_id = slide_id_of(slide_path)
        state = SlideState(self.out_dir, slide_id)
        output = self.output_path(slide_id)
        settings = self.config.settings()
        existing = self._existing_result(state, output, settings, slide_path)
        if existing is not None:
            status, reason = existing
            return SlideResult(slide_id, str(slide_path), status, reason, output=str(output))
        lock = SlideLock(self.out_dir, slide_id, self.config.stale_lock_seconds)
        if not lock.acquire():
            return SlideResult(slide_id, str(slide_path), "skipped", f"locked by {lock.holder()}")
        started = _now()
        try:
            result = self._extract(slide_path, slide_id, output)
        except ConfigError:
            # The run is misconfigured (unknown encoder, missing weights): no slide can succeed.
            raise
        except Exception as error:  # noqa: BLE001 - one bad slide must not stop the batch
            reason = _describe_error(error)
            logger.debug("slide %s failed:\n%s", slide_id, traceback.format_exc())
            result = SlideResult(slide_id, str(slide_path), "failed", reason)
        finally:
            lock.release()
        state.write(
            slide_id=slide_id,
            slide_path=str(slide_path),
            slide_bytes=_size(slide_path),
            status="done" if result.status == "processed" else "failed",
            reason=result.reason,
            num_patches=result.num_patches,
            seconds=round(result.seconds, 3),
            patches_per_second=round(result.patches_per_second, 2),
            output=result.output,
            settings=settings,
            started_at=started,
            finished_at=_now(),
            host=socket.gethostname(),
        )
        return result

    def _existing_result(
        self, state: SlideState, output: Path, settings: dict[str, object], slide_path: Path
    ) -> tuple[str, str] | None:
        """(status, reason) when finished features already exist, else None (process it)."""
        if self.config.overwrite or not output.is_file():
            return None
        record = state.read()
        if record is None:
            # copied in, or made by CLAM/TRIDENT: never replaced without --overwrite
            return (
                "failed",
                f"{output} already exists but no run in this folder wrote it "
                f"({_describe_bag(output)}); use another --out folder or --overwrite",
            )
        if record.get("status") != "done":
            return None
        if not _same_slide(record, slide_path):
            return (
                "failed",
                f"{output} holds the features of another slide of the same name "
                f"({record.get('slide_path')}); use another --out folder or --overwrite",
            )
        if record.get("settings") != settings:
            changes = _differences(record.get("settings") or {}, settings)
            return (
                "failed",
                f"features already exist with other settings ({changes}); "
                "use another --out folder or --overwrite",
            )
        return "skipped", "already done"

    def _extract(self, slide_path: Path, slide_id: str, output: Path) -> SlideResult:
        config = self.config
        with Slide(slide_path, mpp_override=config.mpp_overrides) as slide:
            grid = plan_patches(slide, config.tiling)
            if config.save_review:
                save_review_image(grid, self.out_dir / "review" / f"{slide_id}.png")
            info = slide.info()
        if not grid.tissue_mask.any():
            raise KemmError(
                "no tissue patches: no tissue detected on the slide (blank or background only; "
                "see the review image)"
            )
        if len(grid) == 0:
            raise KemmError(
                f"no tissue patches: no {config.tiling.patch_size}-px patch at "
                f"{config.tiling.magnification:g}× has ≥ {config.tiling.min_tissue:.0%} tissue "
                "(see the review image; lower --min-tissue if the tissue is faint)"
            )
        encoder = self.encoder
        clock = time.perf_counter()
        features = self._encode(slide_path, slide_id, grid, encoder)
        seconds = time.perf_counter() - clock
        attrs = {
            **encoder.describe(),
            "slide_id": slide_id,
            "slide_path": str(slide_path),
            "mpp": info.mpp,
            "mpp_source": info.mpp_source,
            "level0_magnification": info.magnification,
            "objective_power": info.objective_power if info.objective_power is not None else "",
            "magnification": grid.magnification,
            "patch_size": grid.patch_size,
            "patch_size_level0": grid.patch_size_level0,
            "read_level": grid.read_level,
            "min_tissue": config.tiling.min_tissue,
            "overlap": config.tiling.overlap,
            "level0_width": grid.level0_dimensions[0],
            "level0_height": grid.level0_dimensions[1],
        }
        write_bag(
            output,
            features,
            grid.coords,
            attrs,
            dtype=np.float16 if config.fp16_storage else np.float32,
        )
        rate = len(grid) / seconds if seconds > 0 else 0.0
        return SlideResult(
            slide_id,
            str(slide_path),
            "processed",
            num_patches=len(grid),
            seconds=seconds,
            patches_per_second=rate,
            output=str(output),
        )

    def _encode(
        self, slide_path: Path, slide_id: str, grid: PatchGrid, encoder: PatchEncoder
    ) -> np.ndarray:
        dataset = PatchDataset(slide_path, grid)
        workers = max(0, int(self.config.num_workers))
        loader = DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        chunks: list[np.ndarray] = []
        progress = _progress_bar(len(dataset), slide_id, enabled=self.config.progress)
        try:
            for batch in loader:
                chunks.append(encode_batch(encoder, batch, amp=self.config.amp).cpu().numpy())
                progress.update(batch.shape[0])
        finally:
            progress.close()
        return np.concatenate(chunks, axis=0)


def _progress_bar(total: int, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit="patch",
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
    )


def _describe_bag(path: Path) -> str:
    """Encoder and size of an existing feature file, read from its metadata only."""
    import h5py

    from kemm.wsi.features import encoder_of

    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
            shape = handle["features"].shape if "features" in handle else None
            if "features" in handle:
                attrs = {**handle["features"].attrs, **attrs}
    except OSError:
        return "not a readable HDF5 file"
    encoder = encoder_of({k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()})
    size = f"{shape[0]} × {shape[-1]} features" if shape and len(shape) >= 2 else "no features"
    return f"encoder {encoder!r}, {size}" if encoder else f"encoder not recorded, {size}"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _same_slide(record: dict, slide_path: Path) -> bool:
    """Whether a finished record is of this slide file: the same size (a moved folder keeps
    it), or, for records without a size, the same resolved path."""
    if record.get("slide_bytes") is not None:
        return record["slide_bytes"] == _size(slide_path)
    recorded = record.get("slide_path")
    return recorded is None or Path(recorded).resolve() == slide_path.resolve()


def _differences(old: dict[str, object], new: dict[str, object]) -> str:
    """The settings that differ, as 'key: old there, new in this run' (at most four)."""

    def flat(settings: dict[str, object], prefix: str = "") -> dict[str, object]:
        items: dict[str, object] = {}
        for key, value in settings.items():
            if isinstance(value, dict):
                items.update(flat(value, f"{prefix}{key}."))
            else:
                items[f"{prefix}{key}"] = value
        return items

    before, after = flat(old), flat(new)
    keys = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    shown = [f"{k}: {before.get(k)!r} there, {after.get(k)!r} in this run" for k in keys[:4]]
    if len(keys) > 4:
        shown.append(f"{len(keys) - 4} more")
    return "; ".join(shown) or "unrecorded settings"


def _describe_error(error: BaseException) -> str:
    """One line naming the error type and message (DataLoader workers wrap the original).

    Data errors are given as their problem alone: the slide's path is recorded beside it.
    """
    message = str(error).strip()
    if "Original Traceback" in message:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        kind, _, text = lines[-1].partition(": ")
        return f"{kind.rsplit('.', 1)[-1]}: {text}" if text else lines[-1]
    if isinstance(error, InputDataError) and error.file is not None:
        return error.problem
    if isinstance(error, KemmError):
        return message
    message = message.splitlines()[0] if message else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _log_result(result: SlideResult) -> None:
    if result.status == "processed":
        logger.info(
            "%s: %d patches, %.1f patches/s",
            result.slide_id,
            result.num_patches,
            result.patches_per_second,
        )
    elif result.status == "skipped":
        logger.info("%s: skipped (%s)", result.slide_id, result.reason)
    else:
        logger.warning("%s (%s): FAILED: %s", result.slide_id, result.slide_path, result.reason)


def extract_features(
    slides: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    config: ExtractionConfig | None = None,
    encoder: PatchEncoder | None = None,
) -> RunSummary:
    """Process slides into ``out_dir`` on this machine; return the run summary."""
    return SlideProcessor(out_dir, config, encoder=encoder).run(slides)
