"""Tiling: a grid of patches at a target magnification, kept where the tissue mask covers enough.

Coordinates are the top-left corners of patches in level-0 pixels (the CLAM/TRIDENT convention).
A patch of ``patch_size`` pixels at the target magnification spans
``patch_size_level0 = round(patch_size × slide magnification / target magnification)`` level-0
pixels; it is read from the coarsest pyramid level that still has at least the target resolution
and resized to ``patch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from kemm.errors import InputDataError
from kemm.wsi.slide import Slide
from kemm.wsi.tissue import TissueParams, mask_contours, segment_tissue


@dataclass(frozen=True)
class TilingParams:
    """Where and how big patches are."""

    magnification: float = 20.0
    patch_size: int = 256
    min_tissue: float = 0.5
    """Smallest fraction of a patch that the tissue mask must cover."""
    overlap: int = 0
    """Overlap between neighbouring patches, in pixels at the target magnification."""
    segmentation_pixel_size_um: float = 4.0
    """Resolution of the thumbnail that tissue is segmented on."""
    max_thumbnail_side: int = 8192
    tissue: TissueParams = field(default_factory=TissueParams)

    def __post_init__(self) -> None:
        if self.patch_size < 8:
            raise ValueError(f"patch_size must be at least 8 pixels, got {self.patch_size}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ValueError(f"min_tissue must lie in [0, 1], got {self.min_tissue}")
        if not 0 <= self.overlap < self.patch_size:
            raise ValueError(f"overlap must lie in [0, patch_size), got {self.overlap}")
        if self.magnification <= 0:
            raise ValueError(f"magnification must be positive, got {self.magnification}")


@dataclass
class PatchGrid:
    """The patches of one slide and what is needed to read and review them."""

    coords: np.ndarray
    """(N, 2) int64 top-left corners (x, y) in level-0 pixels."""
    tissue_fractions: np.ndarray
    patch_size: int
    patch_size_level0: int
    read_level: int
    read_size: int
    """Side of the region read at ``read_level`` before resizing to ``patch_size``."""
    magnification: float
    level0_magnification: float
    mpp: float
    level0_dimensions: tuple[int, int]
    thumbnail: np.ndarray
    thumbnail_downsample: float
    tissue_mask: np.ndarray

    def __len__(self) -> int:
        return int(self.coords.shape[0])


def level0_patch_size(slide: Slide, params: TilingParams) -> int:
    """Side in level-0 pixels of a patch at the target magnification; refuses to upsample."""
    if slide.magnification < params.magnification * 0.99:
        raise InputDataError(
            f"the slide's native magnification {slide.magnification:g}× (mpp {slide.mpp:.4g}) "
            f"is below the target {params.magnification:g}×; choose --magnification "
            f"{slide.magnification:g} or lower",
            file=str(slide.path),
        )
    return int(round(params.patch_size * slide.magnification / params.magnification))


def plan_patches(slide: Slide, params: TilingParams | None = None) -> PatchGrid:
    """Segment tissue on a thumbnail and lay a patch grid over it."""
    params = params or TilingParams()
    patch_level0 = level0_patch_size(slide, params)
    width, height = slide.dimensions
    if min(width, height) < patch_level0:
        raise InputDataError(
            f"the slide ({width}×{height} px) is smaller than one patch ({patch_level0} level-0 "
            f"px = {params.patch_size} px at {params.magnification:g}×)",
            file=str(slide.path),
        )
    downsample = max(1.0, params.segmentation_pixel_size_um / slide.mpp)
    downsample = max(downsample, max(width, height) / params.max_thumbnail_side)
    thumbnail, downsample = slide.thumbnail(downsample)
    mask = segment_tissue(thumbnail, downsample * slide.mpp, params.tissue)

    step = int(round((params.patch_size - params.overlap) * patch_level0 / params.patch_size))
    xs = np.arange(0, width - patch_level0 + 1, max(step, 1), dtype=np.int64)
    ys = np.arange(0, height - patch_level0 + 1, max(step, 1), dtype=np.int64)
    if xs.size == 0 or ys.size == 0:
        coords = np.zeros((0, 2), dtype=np.int64)
        fractions = np.zeros((0,), dtype=np.float32)
    else:
        grid_x, grid_y = np.meshgrid(xs, ys)
        candidates = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        fractions = _coverage(mask, candidates, patch_level0, downsample)
        keep = fractions >= params.min_tissue
        if params.min_tissue == 0.0:
            keep = fractions > 0.0
        coords, fractions = candidates[keep], fractions[keep].astype(np.float32)

    read_level = slide.best_level_for_downsample(patch_level0 / params.patch_size)
    read_size = int(round(patch_level0 / slide.level_downsamples[read_level]))
    return PatchGrid(
        coords=coords.astype(np.int64),
        tissue_fractions=fractions,
        patch_size=params.patch_size,
        patch_size_level0=patch_level0,
        read_level=read_level,
        read_size=read_size,
        magnification=params.magnification,
        level0_magnification=slide.magnification,
        mpp=slide.mpp,
        level0_dimensions=slide.dimensions,
        thumbnail=thumbnail,
        thumbnail_downsample=downsample,
        tissue_mask=mask,
    )


def _coverage(
    mask: np.ndarray, coords: np.ndarray, patch_level0: int, downsample: float
) -> np.ndarray:
    """Fraction of each patch covered by the mask, via an integral image at mask resolution."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0), axis=1)
    x0 = np.clip(np.floor(coords[:, 0] / downsample).astype(np.int64), 0, mask.shape[1])
    y0 = np.clip(np.floor(coords[:, 1] / downsample).astype(np.int64), 0, mask.shape[0])
    x1 = np.clip(
        np.ceil((coords[:, 0] + patch_level0) / downsample).astype(np.int64), 0, mask.shape[1]
    )
    y1 = np.clip(
        np.ceil((coords[:, 1] + patch_level0) / downsample).astype(np.int64), 0, mask.shape[0]
    )
    x1, y1 = np.maximum(x1, x0 + 1), np.maximum(y1, y0 + 1)
    x1, y1 = np.minimum(x1, mask.shape[1]), np.minimum(y1, mask.shape[0])
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    return inside / area


def read_patch(slide: Slide, grid: PatchGrid, index: int) -> np.ndarray:
    """The RGB uint8 patch ``index`` of ``grid``, at ``grid.patch_size`` pixels."""
    x, y = grid.coords[index]
    region = slide.read_region((int(x), int(y)), grid.read_level, (grid.read_size, grid.read_size))
    if grid.read_size != grid.patch_size:
        image = Image.fromarray(region).resize(
            (grid.patch_size, grid.patch_size), Image.Resampling.BILINEAR
        )
        region = np.asarray(image)
    return region


def review_image(grid: PatchGrid, max_side: int = 2048) -> Image.Image:
    """The thumbnail with the tissue contour (green) and the kept patches (blue) drawn on it."""
    image = Image.fromarray(grid.thumbnail)
    scale = 1.0
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BOX,
        )
    contour = mask_contours(grid.tissue_mask)
    if scale != 1.0:
        contour = (
            np.asarray(
                Image.fromarray(contour.astype(np.uint8) * 255).resize(
                    image.size, Image.Resampling.BOX
                )
            )
            > 0
        )
    pixels = np.asarray(image).copy()
    pixels[contour] = (0, 200, 0)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    factor = scale / grid.thumbnail_downsample
    side = grid.patch_size_level0 * factor
    for x, y in grid.coords:
        left, top = x * factor, y * factor
        draw.rectangle([left, top, left + side, top + side], outline=(30, 60, 220), width=1)
    return image


def save_review_image(grid: PatchGrid, path: str | Path, max_side: int = 2048) -> Path:
    """Save :func:`review_image` as a PNG and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    review_image(grid, max_side=max_side).save(path)
    return path
