"""Slide reading with OpenSlide: pyramid levels, microns per pixel and magnification.

Microns per pixel (mpp) come from the slide's metadata (``openslide.mpp-x``/``-y``, which OpenSlide
fills from the vendor fields or the TIFF resolution), unless an override table names the slide.
A slide whose mpp is missing or implausible (the 72-dpi TIFF default gives 352.8 µm/px) is refused
with a message that says how to supply an override. Magnification is derived from mpp (10 / mpp,
snapped to the usual objective powers), the convention that makes "20×" mean ≈0.5 µm/px whatever
the scanner wrote in its objective-power field.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kemm.errors import InputDataError

SLIDE_EXTENSIONS = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
    ".dcm",
)
"""File extensions picked up when a folder of slides is given."""

STANDARD_MAGNIFICATIONS = (80.0, 60.0, 40.0, 20.0, 10.0, 5.0, 2.5, 1.25)
THUMBNAIL_CHUNK = 4096
MPP_PLAUSIBLE_RANGE = (0.05, 50.0)
"""Microns per pixel outside this range are treated as missing (default TIFF resolutions)."""


def magnification_from_mpp(mpp: float) -> float:
    """Objective magnification for a pixel size: 10 / mpp, snapped to a standard power within 15 %."""
    raw = 10.0 / mpp
    for standard in STANDARD_MAGNIFICATIONS:
        if abs(raw - standard) <= 0.15 * standard:
            return standard
    return round(raw, 3)


class MppOverrides:
    """A table slide → microns per pixel, for slides whose metadata lack it (or are wrong).

    Keys may be a slide id (file stem), a file name, or a path; lookups try all three.
    """

    def __init__(self, table: Mapping[str, float] | None = None, default: float | None = None):
        self._table = {str(key): float(value) for key, value in (table or {}).items()}
        self.default = default
        for key, value in self._table.items():
            _check_mpp_value(value, f"override for {key}")

    @classmethod
    def load(cls, path: str | Path) -> MppOverrides:
        """Read a CSV (columns ``slide`` and ``mpp``), YAML or JSON (mapping slide → mpp) file."""
        path = Path(path)
        if not path.is_file():
            raise InputDataError("mpp override file not found", file=str(path))
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml", ".json"):
            text = path.read_text()
            if suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
            if not isinstance(data, Mapping):
                raise InputDataError("expected a mapping slide → mpp", file=str(path))
            default = data.get("default")
            table = {key: value for key, value in data.items() if key != "default"}
            return cls(table, default=float(default) if default is not None else None)
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower(): name for name in (reader.fieldnames or [])}
            slide_column = next(
                (columns[c] for c in ("slide", "slide_id", "filename", "path") if c in columns),
                None,
            )
            mpp_column = next((columns[c] for c in ("mpp", "mpp_x") if c in columns), None)
            if slide_column is None or mpp_column is None:
                raise InputDataError(
                    f"mpp override CSV needs columns 'slide' and 'mpp'; found {reader.fieldnames}",
                    file=str(path),
                )
            table: dict[str, float] = {}
            for line_number, row in enumerate(reader, start=2):
                try:
                    table[row[slide_column].strip()] = float(row[mpp_column])
                except (TypeError, ValueError) as error:
                    raise InputDataError(
                        f"line {line_number}: mpp {row[mpp_column]!r} is not a number",
                        file=str(path),
                    ) from error
        return cls(table)

    def lookup(self, slide_path: str | Path) -> float | None:
        """The override for a slide, or None."""
        slide_path = Path(slide_path)
        for key in (str(slide_path), slide_path.name, slide_id_of(slide_path)):
            if key in self._table:
                return self._table[key]
        return self.default

    def __len__(self) -> int:
        return len(self._table)


def _check_mpp_value(value: float, what: str) -> None:
    low, high = MPP_PLAUSIBLE_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise InputDataError(
            f"{what}: mpp {value} is outside the plausible range {low}–{high} µm/px"
        )


def slide_id_of(path: str | Path) -> str:
    """The slide identifier: the file name without its extension."""
    name = Path(path).name
    for extension in SLIDE_EXTENSIONS:
        if name.lower().endswith(extension):
            return name[: -len(extension)]
    return Path(path).stem


@dataclass(frozen=True)
class SlideInfo:
    """What is known about one slide, as recorded in feature files and summaries."""

    path: str
    slide_id: str
    dimensions: tuple[int, int]
    level_count: int
    mpp: float
    mpp_source: str
    magnification: float
    objective_power: float | None
    vendor: str | None


class Slide:
    """An opened whole-slide image: levels, mpp, magnification, region reads as RGB arrays."""

    def __init__(
        self,
        path: str | Path,
        mpp_override: MppOverrides | float | None = None,
    ):
        import openslide

        self.path = Path(path)
        self.slide_id = slide_id_of(self.path)
        if not self.path.exists():
            raise InputDataError("slide file not found", file=str(self.path))
        try:
            self._handle = openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, OSError) as error:
            size = self.path.stat().st_size
            raise InputDataError(
                f"OpenSlide cannot open the slide ({error}); the file ({size} bytes) may be "
                "truncated, corrupt or in an unsupported format",
                file=str(self.path),
            ) from error
        properties = self._handle.properties
        self.vendor = properties.get("openslide.vendor")
        self.objective_power = _float_or_none(properties.get("openslide.objective-power"))
        self.mpp, self.mpp_source = self._resolve_mpp(properties, mpp_override)
        self.magnification = magnification_from_mpp(self.mpp)

    def _resolve_mpp(
        self, properties: Mapping[str, str], override: MppOverrides | float | None
    ) -> tuple[float, str]:
        if isinstance(override, MppOverrides):
            override = override.lookup(self.path)
        if override is not None:
            _check_mpp_value(float(override), f"{self.path}: mpp override")
            return float(override), "override"
        mpp_x = _float_or_none(properties.get("openslide.mpp-x"))
        mpp_y = _float_or_none(properties.get("openslide.mpp-y"))
        low, high = MPP_PLAUSIBLE_RANGE
        how_to_fix = (
            "give it with --mpp-override FILE (a CSV with columns slide,mpp, or a YAML line "
            f"'{self.slide_id}: 0.25'), or mpp_override= in Python"
        )
        if mpp_x is None:
            raise InputDataError(
                f"slide metadata has no microns-per-pixel (openslide.mpp-x); {how_to_fix}",
                file=str(self.path),
            )
        mpp = mpp_x if mpp_y is None else (mpp_x + mpp_y) / 2.0
        if not low <= mpp <= high:
            raise InputDataError(
                f"slide metadata give an implausible {mpp:.4g} µm/px (expected {low}–{high}; "
                f"a default TIFF resolution?); {how_to_fix}",
                file=str(self.path),
            )
        return mpp, "metadata"

    # -- geometry -------------------------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        return tuple(self._handle.dimensions)  # type: ignore[return-value]

    @property
    def level_count(self) -> int:
        return self._handle.level_count

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(tuple(d) for d in self._handle.level_dimensions)  # type: ignore[misc]

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self._handle.level_downsamples)

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample`` (never upsample)."""
        best = 0
        for level, level_downsample in enumerate(self.level_downsamples):
            if level_downsample <= downsample * 1.001:
                best = level
        return best

    def info(self) -> SlideInfo:
        return SlideInfo(
            path=str(self.path),
            slide_id=self.slide_id,
            dimensions=self.dimensions,
            level_count=self.level_count,
            mpp=self.mpp,
            mpp_source=self.mpp_source,
            magnification=self.magnification,
            objective_power=self.objective_power,
            vendor=self.vendor,
        )

    # -- pixels ---------------------------------------------------------------------------------
    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """RGB uint8 array (height, width, 3) of a region; ``location`` in level-0 pixels.

        Transparent pixels (outside the scanned area) are composited on white, the background.
        """
        import openslide

        try:
            region = self._handle.read_region(
                (int(location[0]), int(location[1])), level, (int(size[0]), int(size[1]))
            )
        except openslide.OpenSlideError as error:
            raise unreadable_region_error(self.path, location, level, error) from error
        return rgba_to_rgb(region)

    def thumbnail(self, downsample: float) -> tuple[np.ndarray, float]:
        """An RGB image at roughly ``downsample`` × level 0, read from the nearest finer level.

        Read in chunks so that a slide without a low-resolution level does not fill memory.
        Returns the image and its exact downsample relative to level 0 (width-based).
        """
        width, height = self.dimensions
        target_width = max(1, round(width / downsample))
        target_height = max(1, round(height / downsample))
        level = self.best_level_for_downsample(downsample)
        level_downsample = self.level_downsamples[level]
        level_width, level_height = self.level_dimensions[level]
        scale = target_width / level_width  # level pixels → thumbnail pixels
        canvas = Image.new("RGB", (target_width, target_height), "white")
        chunk = THUMBNAIL_CHUNK
        for top in range(0, level_height, chunk):
            for left in range(0, level_width, chunk):
                size = (min(chunk, level_width - left), min(chunk, level_height - top))
                location = (round(left * level_downsample), round(top * level_downsample))
                region = Image.fromarray(self.read_region(location, level, size))
                box = (
                    round(left * scale),
                    round(top * scale),
                    max(round(left * scale) + 1, round((left + size[0]) * scale)),
                    max(round(top * scale) + 1, round((top + size[1]) * scale)),
                )
                target = (box[2] - box[0], box[3] - box[1])
                if target != region.size:
                    region = region.resize(target, Image.Resampling.BOX)
                canvas.paste(region, box[:2])
        return np.asarray(canvas), width / target_width

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Slide({self.slide_id!r}, {self.dimensions[0]}×{self.dimensions[1]}, "
            f"mpp={self.mpp:.4g} ({self.mpp_source}), {self.magnification:g}×)"
        )


def unreadable_region_error(
    path: str | Path, location: tuple[int, int], level: int, error: BaseException
) -> InputDataError:
    """The error for a region OpenSlide cannot decode (a truncated or corrupt file)."""
    return InputDataError(
        f"cannot read the region at level-0 ({int(location[0])}, {int(location[1])}), level "
        f"{level} ({error}); the file may be truncated or corrupt",
        file=str(path),
    )


def open_slide(path: str | Path, mpp_override: MppOverrides | float | None = None) -> Slide:
    """Open a slide; raises :class:`InputDataError` naming the file and the reason."""
    return Slide(path, mpp_override=mpp_override)


def rgba_to_rgb(image: Image.Image) -> np.ndarray:
    """Composite an RGBA PIL image over white and return an RGB uint8 array."""
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode != "RGBA":
        return np.asarray(image.convert("RGB"))
    rgba = np.asarray(image)
    alpha = rgba[..., 3:4].astype(np.uint16)
    rgb = (rgba[..., :3].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
    return rgb.astype(np.uint8)


def find_slides(source: str | Path) -> list[Path]:
    """Slides named by ``source``: a folder (searched for slide extensions), a slide file, or a
    text/CSV file listing one slide path per line (first column)."""
    source = Path(source)
    if source.is_dir():
        found = sorted(
            path
            for path in source.iterdir()
            if path.is_file() and path.suffix.lower() in SLIDE_EXTENSIONS
        )
        if not found:
            raise InputDataError(
                f"no slide in this folder (looked for {', '.join(sorted(SLIDE_EXTENSIONS))}); "
                "nothing to do",
                file=str(source),
            )
        return found
    if not source.exists():
        raise InputDataError("slide source not found", file=str(source))
    if source.suffix.lower() in SLIDE_EXTENSIONS:
        return [source]
    slides: list[Path] = []
    for line in source.read_text().splitlines():
        entry = line.split(",")[0].strip()
        if not entry or entry.startswith("#") or entry.lower() in ("slide", "path", "slide_path"):
            continue
        path = Path(entry)
        slides.append(path if path.is_absolute() else source.parent / path)
    if not slides:
        raise InputDataError("the slide list names no slide; nothing to do", file=str(source))
    return slides


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None
