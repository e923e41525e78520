"""Tissue segmentation on a low-resolution image of the slide.

H&E tissue is coloured (pink to purple) while glass is bright and grey, so the mask starts from
HSV saturation: median-filtered, thresholded by Otsu's method (clipped to a sane range, so that a
thumbnail that is all tissue or all glass is not split in two). Then

- near-black pixels (scanner borders, black ink) are removed;
- pen marks are removed: green/blue ink by hue (H&E never has hues between yellow-green and blue),
  red ink by hue and saturation (red ink is redder and more saturated than eosin), each grown by a
  margin because marker ink is blurred out of focus;
- morphology: opening removes specks, closing joins tissue fibres;
- holes smaller than ``max_hole_area_um2`` are filled (fat and lumens larger than that stay out);
- connected regions smaller than ``min_area_um2`` are dropped.

Areas and radii are in microns, so one setting works at any thumbnail resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclass(frozen=True)
class TissueParams:
    """Settings of :func:`segment_tissue`. Lengths in µm, areas in µm², colours in [0, 1]."""

    saturation_threshold: float | None = None
    """Fixed saturation threshold; None uses Otsu's threshold clipped to the range below."""
    otsu_range: tuple[float, float] = (0.04, 0.10)
    median_filter_um: float = 16.0
    min_brightness: float = 0.12
    """Pixels darker than this (max RGB channel) are not tissue: black borders and ink."""
    remove_pen: bool = True
    min_pen_area_um2: float = 2_000.0
    """Ink blobs smaller than this are ignored (scattered red blood cells are not pen)."""
    pen_margin_um: float = 24.0
    max_pen_fraction: float = 0.5
    """A coloured region at least this much covered by ink is ink altogether (its dark core and
    halo included), not tissue."""
    opening_radius_um: float = 8.0
    closing_radius_um: float = 16.0
    max_hole_area_um2: float = 10_000.0
    min_area_um2: float = 20_000.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees [0, 360), saturation and value in [0, 1] of an RGB uint8 or float image."""
    image = rgb.astype(np.float32)
    if rgb.dtype == np.uint8:
        image /= 255.0
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    value = image.max(axis=-1)
    chroma = value - image.min(axis=-1)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    safe_chroma = np.where(chroma == 0, 1.0, chroma)
    hue = np.select(
        [chroma == 0, value == red, value == green],
        [0.0, ((green - blue) / safe_chroma) % 6.0, (blue - red) / safe_chroma + 2.0],
        (red - green) / safe_chroma + 4.0,
    )
    return (hue * 60.0).astype(np.float32), saturation.astype(np.float32), value


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: maximises the between-class variance."""
    histogram, edges = np.histogram(values.ravel(), bins=bins, range=(0.0, 1.0))
    histogram = histogram.astype(np.float64)
    centers = (edges[:-1] + edges[1:]) / 2.0
    weight_low = np.cumsum(histogram)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(histogram * centers)
    mean_low = sum_low / np.maximum(weight_low, 1e-12)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1e-12)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def pen_mask(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Pixels of marker ink: green or blue, or a red more saturated and redder than eosin."""
    coloured = (saturation > 0.15) & (value > 0.12)
    green_or_blue = coloured & (hue >= 70.0) & (hue <= 235.0)
    red_hue = (hue >= 345.0) | (hue <= 30.0)
    red = coloured & red_hue & (saturation > 0.25)
    deep_red = coloured & ((hue >= 320.0) | (hue <= 30.0)) & (saturation > 0.75)
    return green_or_blue | red | deep_red


def _disk(radius_px: float) -> np.ndarray | None:
    radius = int(round(radius_px))
    if radius < 1:
        return None
    grid = np.arange(-radius, radius + 1)
    return (grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2


def segment_tissue(
    rgb: np.ndarray,
    pixel_size_um: float,
    params: TissueParams | None = None,
) -> np.ndarray:
    """Boolean tissue mask of an RGB image whose pixels are ``pixel_size_um`` microns wide."""
    params = params or TissueParams()
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
    hue, saturation, value = rgb_to_hsv(rgb[..., :3])
    median_size = max(1, int(round(params.median_filter_um / pixel_size_um)) | 1)
    if median_size > 1:
        saturation_smooth = ndimage.median_filter(saturation, size=median_size)
    else:
        saturation_smooth = saturation
    if params.saturation_threshold is not None:
        threshold = params.saturation_threshold
    else:
        low, high = params.otsu_range
        threshold = float(np.clip(otsu_threshold(saturation_smooth), low, high))
    mask = (saturation_smooth > threshold) & (value > params.min_brightness)

    if params.remove_pen:
        pen = _pen_regions(rgb[..., :3], pixel_size_um, median_size, params)
        if pen.any():
            mask = _drop_regions_mostly_pen(mask, pen, params.max_pen_fraction) & ~pen

    opening = _disk(params.opening_radius_um / pixel_size_um)
    if opening is not None:
        mask = ndimage.binary_opening(mask, structure=opening)
    closing = _disk(params.closing_radius_um / pixel_size_um)
    if closing is not None:
        padding = closing.shape[0]
        padded = np.pad(mask, padding)
        mask = ndimage.binary_closing(padded, structure=closing)[padding:-padding, padding:-padding]

    pixel_area = pixel_size_um**2
    mask = _fill_small_holes(mask, params.max_hole_area_um2 / pixel_area)
    mask = _remove_small_regions(mask, params.min_area_um2 / pixel_area)
    return mask


def _pen_regions(
    rgb: np.ndarray, pixel_size_um: float, smoothing_size: int, params: TissueParams
) -> np.ndarray:
    """Sizeable blobs of marker ink, grown by the pen margin (ink is blurred at its edges)."""
    smooth = rgb.astype(np.float32) / 255.0
    if smoothing_size > 1:
        smooth = ndimage.uniform_filter(smooth, size=(smoothing_size, smoothing_size, 1))
    pen = pen_mask(*rgb_to_hsv(smooth))
    if not pen.any():
        return pen
    pen = _remove_small_regions(pen, params.min_pen_area_um2 / pixel_size_um**2)
    margin = _disk(params.pen_margin_um / pixel_size_um)
    if margin is not None and pen.any():
        pen = ndimage.binary_dilation(pen, structure=margin)
    return pen


def _drop_regions_mostly_pen(mask: np.ndarray, pen: np.ndarray, max_fraction: float) -> np.ndarray:
    labels, count = ndimage.label(mask | pen)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    pen_sizes = np.bincount(labels[pen], minlength=count + 1)
    keep = pen_sizes < max_fraction * np.maximum(sizes, 1)
    keep[0] = False
    return mask & keep[labels]


def _fill_small_holes(mask: np.ndarray, max_hole_pixels: float) -> np.ndarray:
    holes = ndimage.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    labels, count = ndimage.label(holes)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes <= max_hole_pixels
    small[0] = False
    return mask | small[labels]


def _remove_small_regions(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


TILE_PARAMS = TissueParams(max_hole_area_um2=0.0, min_area_um2=0.0)
"""Settings for judging a single tile: no region-size filters, which need the whole slide."""


def tissue_fraction(
    rgb: np.ndarray,
    pixel_size_um: float = 1.0,
    params: TissueParams | None = None,
    working_pixel_size_um: float = 4.0,
) -> float:
    """Fraction of a tile that is tissue (not glass, not pen), by the rules of
    :func:`segment_tissue` with :data:`TILE_PARAMS`; the tile is first reduced to
    ``working_pixel_size_um`` per pixel, the resolution slides are segmented at."""
    image = rgb[..., :3]
    if pixel_size_um < working_pixel_size_um:
        factor = working_pixel_size_um / pixel_size_um
        size = (max(1, round(image.shape[1] / factor)), max(1, round(image.shape[0] / factor)))
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BOX))
        pixel_size_um = pixel_size_um * rgb.shape[1] / size[0]
    return float(segment_tissue(image, pixel_size_um, params or TILE_PARAMS).mean())


def is_tissue(rgb: np.ndarray, pixel_size_um: float = 1.0, min_fraction: float = 0.5) -> bool:
    """Whether a tile holds at least ``min_fraction`` tissue (see :func:`tissue_fraction`)."""
    return tissue_fraction(rgb, pixel_size_um) >= min_fraction


def mask_contours(mask: np.ndarray) -> np.ndarray:
    """Boolean image of the mask's boundary pixels (for drawing contours)."""
    if not mask.any():
        return mask.copy()
    return mask & ~ndimage.binary_erosion(mask, border_value=0)
